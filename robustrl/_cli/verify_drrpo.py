"""``robustrl verify-bounds drrpo``: the command-line check built on :mod:`robustrl.theory.drrpo`
(the CLI layer: it may use the runner, the experiments and the agents)."""

from __future__ import annotations

import numpy as np

from robustrl.theory.drrpo import (
    _AGENT_NAMES,
    _FORMS,
    check_regret,
    log_spaced_episodes,
    regret_bound,
)
from robustrl.validation import check_int, check_scalar


def _verify_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="robustrl verify-bounds drrpo",
        description="Run an online agent for many seeds on a linear MDP with an exact model, "
                    "print the cumulative regret R(K) against regret_bound and the fitted "
                    "log-log slope; exit 1 unless the slope's CI lies below 1 and no seed "
                    "exceeds the bound.")
    parser.add_argument("--env", choices=("simulated", "random"), default="simulated",
                        help="simulated (d=4, H=3) or the random risky-or-safe MDP "
                             "(d=16, |A|=8, H=10) (default: simulated)")
    parser.add_argument("--agent", choices=_AGENT_NAMES, default="DR-RPO")
    parser.add_argument("--seeds", type=int, default=10, help="agent seeds 0..N-1 (default 10)")
    parser.add_argument("--episodes", type=int, default=1000, help="K (default 1000)")
    parser.add_argument("--start", type=int, default=10,
                        help="first episode count of the slope fit (default 10)")
    parser.add_argument("--points", type=int, default=15,
                        help="log-spaced episode counts in the fit (default 15)")
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--eta", type=float, default=2.0)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--form", choices=_FORMS, default="dr_lsvi_ucb")
    parser.add_argument("--constant", type=float, default=1.0,
                        help="the bound's constant C (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 5 seeds, 200 episodes, fit from K=5 (overrides "
                             "--seeds/--episodes/--start)")
    return parser


def verify_main(argv: list[str]) -> int:
    """``robustrl verify-bounds drrpo [options]``: measured regret against the reconstructed
    bound and the log-log slope test (:func:`check_regret`); ``--help`` lists the options."""
    from robustrl.experiments.drrpo_regret import agent_spec, env_factory

    parser = _verify_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.episodes, args.start = 5, 200, 5
    params = {"agent": args.agent, "rho": args.rho, "tau": args.tau, "eta": args.eta,
              "beta": args.beta}
    try:
        seeds = check_int(args.seeds, "--seeds", low=2)
        episodes = check_int(args.episodes, "--episodes", low=2)
        counts = log_spaced_episodes(episodes, check_int(args.points, "--points", low=2),
                                     start=check_int(args.start, "--start", low=1,
                                                     high=episodes))
        cls, hyper = agent_spec(params)
        # validate every hyperparameter and the bound's arguments before the long run
        cls(env_factory(args.env)(None), seed=0, **hyper)
        regret_bound(4, 3, 1, max(args.rho, 0.0), None, args.delta, form=args.form,
                     constant=args.constant)
        check_scalar(args.confidence, "--confidence", low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    make = env_factory(args.env)
    model = make(None).unwrapped.model
    from robustrl.agents import run_regret_curve

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        def tqdm(x, **_):
            return x
    curves = np.array([
        np.cumsum(run_regret_curve(cls, make, episodes, seed=s, hyperparams=hyper).regret)
        for s in tqdm(range(seeds), desc=f"{args.agent} seeds", unit="seed")
    ])
    R = curves[:, counts - 1]
    keep = np.all(R > 0.0, axis=0)
    if keep.sum() < 2:
        print("error: the cumulative regret is 0 for some seed at all but one episode count; "
              "nothing to fit (use more --episodes)")
        return 1
    counts, R = counts[keep], R[:, keep]
    uses_rho = args.agent != "LSVI-UCB"
    result = check_regret(counts, R, d=model.feature_dim, H=model.horizon,
                          rho=args.rho if uses_rho else 0.0,
                          tau=args.tau if args.agent == "DR-RPO" else None, delta=args.delta,
                          confidence=args.confidence, form=args.form, constant=args.constant)
    print(f"{args.agent} on the {args.env} linear MDP (d={model.feature_dim}, "
          f"H={model.horizon}, |A|={model.n_actions}), {seeds} seeds x {episodes} episodes")
    print(f"bound: form={args.form}, C={args.constant:g}, delta={args.delta:g}")
    print(f"{'K':>7}{'mean R(K)':>12}{'max R(K)':>12}{'bound(K)':>14}{'max ratio':>12}")
    for j, k in enumerate(result.fit.episodes):
        print(f"{k:>7d}{R[:, j].mean():>12.4f}{R[:, j].max():>12.4f}{result.bound[j]:>14.4g}"
              f"{R[:, j].max() / result.bound[j]:>12.3g}")
    fit = result.fit
    print(f"log-log slope {fit.slope:.3f}, {fit.confidence:.0%} CI ({fit.low:.3f}, "
          f"{fit.high:.3f}) over {fit.n_seeds} seeds; slope of the mean curve "
          f"{fit.pooled_slope:.3f}")
    print(f"slope below 1 with confidence: {'yes' if result.slope_below_one else 'NO'}; "
          f"regret within the bound: {'yes' if result.within_bound else 'NO'} "
          f"(max ratio {result.max_ratio:.3g})")
    print("PASS" if result.passed else "FAIL")
    return 0 if result.passed else 1
