"""``robustrl verify-bounds drrpo``: the command-line check built on :mod:`robustrl.theory.drrpo`
(the CLI layer: it may use the runner, the experiments and the agents)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustrl.theory.drrpo import (
    _AGENT_NAMES,
    _FORMS,
    check_regret,
    informative_episodes,
    log_spaced_episodes,
    regret_bound,
    trivial_bound,
)
from robustrl.validation import check_int, check_scalar


def _verify_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="robustrl verify-bounds drrpo",
        description="Run an online agent for many seeds on a linear MDP with an exact model; "
                    "print the cumulative regret R(K) against the reconstructed bound and the "
                    "trivial bound, the episode count where the bound would become "
                    "informative, and the log-log slope on the late part of the run with a "
                    "bootstrap CI against the exponent 1/2; write a table, a JSON and a "
                    "log-log figure. Exit 1 when more than delta of the seeds exceed the bound "
                    "or the slope's CI lies above 1/2.")
    parser.add_argument("--env", choices=("simulated", "random"), default="simulated",
                        help="simulated (d=4, H=3) or the random risky-or-safe MDP "
                             "(d=16, |A|=8, H=10) (default: simulated)")
    parser.add_argument("--agent", choices=_AGENT_NAMES, default="DR-RPO")
    parser.add_argument("--seeds", type=int, default=10, help="agent seeds 0..N-1 (default 10)")
    parser.add_argument("--episodes", type=int, default=1000, help="K (default 1000)")
    parser.add_argument("--start", type=int, default=None,
                        help="first episode count of the slope fit (default episodes/10: the "
                             "bound constrains growth, not the burn-in)")
    parser.add_argument("--points", type=int, default=15,
                        help="log-spaced episode counts in the fit (default 15)")
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--eta", type=float, default=2.0)
    parser.add_argument("--beta", type=float, default=1.0,
                        help="bonus multiplier (0 turns optimism off)")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--exponent", type=float, default=0.5,
                        help="the theorem's exponent of K (default 1/2)")
    parser.add_argument("--form", choices=_FORMS, default="dr_lsvi_ucb")
    parser.add_argument("--constant", type=float, default=1.0,
                        help="the bound's constant C (default 1; no source states it)")
    parser.add_argument("--out", type=Path, default=Path("results/verify_drrpo"),
                        help="folder of verify_drrpo.json and verify_drrpo.png "
                             "(default results/verify_drrpo)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 5 seeds, 300 episodes (overrides "
                             "--seeds/--episodes)")
    return parser


def _figure(path: Path, ks, R, bound, trivial, title: str) -> Path:
    from matplotlib.figure import Figure

    from robustrl._io import atomic_write
    from robustrl.stats import student_t_halfwidth

    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.subplots()
    mean = R.mean(axis=0)
    half = student_t_halfwidth(R, single=0.0)
    ax.plot(ks, mean, label=f"R(K), mean of {R.shape[0]} seeds")
    ax.fill_between(ks, np.maximum(mean - half, 1e-12), mean + half, alpha=0.25, linewidth=0,
                    label="95% band")
    ax.plot(ks, bound, ls="--", label="bound (reconstruction, C explicit)")
    ax.plot(ks, trivial, ls=":", color="gray", label="trivial bound K H (1 + tau log|A|)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("episodes K")
    ax.set_ylabel("cumulative regret")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)


def verify_main(argv: list[str], agent_spec=None) -> int:
    """``robustrl verify-bounds drrpo [options]``: measured regret against the reconstructed
    bound and the rate test (:func:`check_regret`); ``--help`` lists the options.

    ``agent_spec`` (tests only): replaces :func:`robustrl.experiments.drrpo_regret.agent_spec`,
    e.g. to check that a deliberately broken agent fails."""
    from robustrl.experiments import drrpo_regret

    spec = drrpo_regret.agent_spec if agent_spec is None else agent_spec
    parser = _verify_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.episodes = 5, 300
    params = {"agent": args.agent, "rho": args.rho, "tau": args.tau, "eta": args.eta,
              "beta": args.beta}
    try:
        seeds = check_int(args.seeds, "--seeds", low=2)
        episodes = check_int(args.episodes, "--episodes", low=2)
        start = max(1, episodes // 10) if args.start is None else args.start
        counts = log_spaced_episodes(episodes, check_int(args.points, "--points", low=2),
                                     start=check_int(start, "--start", low=1, high=episodes))
        cls, hyper = spec(params)
        # validate every hyperparameter and the bound's arguments before the long run
        cls(drrpo_regret.env_factory(args.env)(None), seed=0, **hyper)
        regret_bound(4, 3, 1, max(args.rho, 0.0), None, args.delta, form=args.form,
                     constant=args.constant)
        check_scalar(args.confidence, "--confidence", low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
        check_scalar(args.exponent, "--exponent", low=0.0, high=1.0)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    make = drrpo_regret.env_factory(args.env)
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
    regularised = args.agent.startswith("DR-RPO")
    uses_rho = args.agent in ("DR-RPO", "DR-RPO-old", "DR-LSVI-UCB")
    rho = args.rho if uses_rho else 0.0
    tau = args.tau if regularised else 0.0
    d, H, A = model.feature_dim, model.horizon, model.n_actions
    result = check_regret(counts, R, d=d, H=H, rho=rho, tau=tau if regularised else None,
                          delta=args.delta, confidence=args.confidence, form=args.form,
                          constant=args.constant, exponent=args.exponent,
                          interval="bootstrap")
    trivial = np.asarray(trivial_bound(counts, H, tau, A))
    k_inf = informative_episodes(d, H, rho, tau, A, args.delta, form=args.form,
                                 constant=args.constant)
    fit = result.fit
    lines = [
        f"{args.agent} on the {args.env} linear MDP (d={d}, H={H}, |A|={A}), {seeds} seeds x "
        f"{episodes} episodes",
        f"bound: form={args.form} (a reconstruction: the DR-RPO theorem is not available), "
        f"C={args.constant:g} (not sourced), delta={args.delta:g}",
        f"{'K':>7}{'mean R(K)':>12}{'max R(K)':>12}{'bound(K)':>12}{'trivial':>11}"
        f"{'seeds > bound':>15}",
    ]
    for j, k in enumerate(fit.episodes):
        over = int(np.sum(R[:, j] > result.bound[j]))
        lines.append(f"{k:>7d}{R[:, j].mean():>12.4f}{R[:, j].max():>12.4f}"
                     f"{result.bound[j]:>12.4g}{trivial[j]:>11.4g}{over:>15d}")
    informative = ("never below 1e18 episodes" if k_inf is None else f"K >= {k_inf:,}")
    lines += [
        f"the bound is below the trivial bound (informative) only for {informative}: "
        + ("it is vacuous at every K run here, so the bound test cannot fail; the rate test "
           "is the informative part" if k_inf is None or k_inf > episodes else
           "it is informative in part of this run"),
        f"log-log slope on K in [{fit.episodes[0]}, {fit.episodes[-1]}]: {fit.slope:.3f}, "
        f"{fit.confidence:.0%} bootstrap CI ({fit.low:.3f}, {fit.high:.3f}) over "
        f"{fit.n_seeds} seeds; slope of the mean curve {fit.pooled_slope:.3f}",
        f"rate: CI {'does not lie' if result.rate_ok else 'LIES'} above the exponent "
        f"{result.exponent:g}; bound: {result.exceed_fraction:.0%} of the seeds exceed it "
        f"(allowed {args.delta:.0%}; max ratio {result.max_ratio:.3g})",
        "PASS" if result.passed else "FAIL",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blob = {
        "agent": args.agent, "env": args.env, "seeds": seeds, "episodes": episodes,
        "hyperparams": {k: (v if isinstance(v, (int, float, str)) else str(v))
                        for k, v in hyper.items()},
        "d": d, "H": H, "n_actions": A, "form": args.form, "constant": args.constant,
        "delta": args.delta, "exponent": result.exponent,
        "K": fit.episodes.tolist(), "regret": R.tolist(), "bound": result.bound.tolist(),
        "trivial_bound": trivial.tolist(), "informative_from": k_inf,
        "slope": fit.slope, "slope_ci": [fit.low, fit.high], "per_seed_slopes":
        fit.per_seed.tolist(), "exceed_fraction": result.exceed_fraction,
        "rate_ok": result.rate_ok, "within_bound": result.within_bound,
        "passed": result.passed,
    }
    from robustrl._io import atomic_write_json

    atomic_write_json(out / "verify_drrpo.json", blob)
    _figure(out / "verify_drrpo.png", fit.episodes, R, result.bound, trivial,
            f"verify-bounds drrpo: {args.agent}, {args.env} MDP "
            f"({'PASS' if result.passed else 'FAIL'})")
    print(f"wrote {out / 'verify_drrpo.json'} and {out / 'verify_drrpo.png'}")
    return 0 if result.passed else 1
