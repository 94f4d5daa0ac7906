"""``robustrl verify-bounds glow``: the command-line check built on :mod:`robustrl.theory.glow`
(the CLI layer: it may use the runner, the experiments and the agents)."""

from __future__ import annotations

from robustrl.theory.glow import run_glow_regret
from robustrl.validation import check_int, check_positive


def _verify_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="robustrl verify-bounds glow",
        description="GLOW's cumulative exact regret on combination locks (several seeds) "
                    "against the Theorem 3.1 order c H sqrt(C_cov T log(eT) L) "
                    "(L = log(|F||W|HT/delta), explicit form and c are our choice); exits 1 if "
                    "the mean regret exceeds the bound at any T.")
    parser.add_argument("--rounds", default="10,20,40,80",
                        help="comma-separated T values (one GLOW run each)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--states", type=int, default=2)
    parser.add_argument("--actions", type=int, default=2)
    parser.add_argument("--kappa", type=float, default=0.01)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--constants", choices=("recon", "paper"), default="recon",
                        help="GLOW's schedule: reconstructed (with --kappa) or Algorithm 1's")
    parser.add_argument("--constant", type=float, default=1.0,
                        help="c in the bound (a tiny value makes the check fail)")
    return parser


def verify_main(argv: list[str]) -> int:
    """``robustrl verify-bounds glow [options]``: GLOW regret vs Theorem 3.1 (explicit form)."""
    parser = _verify_parser()
    args = parser.parse_args(argv)
    try:
        rounds = [int(x) for x in args.rounds.split(",") if x.strip()]
        if not rounds or min(rounds) < 1:
            raise ValueError(f"--rounds must list positive integers; got {args.rounds!r}")
        check_positive(args.constant, "--constant")
        check_positive(args.kappa, "--kappa")
        check_int(args.seeds, "--seeds", low=1)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    try:
        res = run_glow_regret(rounds, seeds=args.seeds, horizon=args.horizon,
                              n_states=args.states, n_actions=args.actions, kappa=args.kappa,
                              delta=args.delta, constant=args.constant,
                              constants=args.constants, progress=True)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"GLOW on the combination lock H={args.horizon}, S={args.states}, "
          f"A={args.actions} (F = Q* of all {args.actions ** args.horizon} codes, tabular W, "
          f"K=1, constants={args.constants}, kappa={args.kappa:g}), {args.seeds} seeds; "
          f"C_cov={res.C_cov:g} (exact)")
    print(f"bound: c H sqrt(C_cov T log(eT) log(|F||W|HT/delta)), c={args.constant:g}, "
          f"delta={args.delta:g} [order: Theorem 3.1 of arXiv:2401.09681; explicit form ours]")
    print(f"{'T':>6}{'mean Reg(T)':>13}{'max Reg(T)':>12}{'bound(T)':>12}{'trivial T':>11}"
          f"{'mean/bound':>12}")
    for j, T in enumerate(res.rounds):
        print(f"{T:>6d}{res.mean_regret[j]:>13.3f}{res.regret[:, j].max():>12.3f}"
              f"{res.bound[j]:>12.3f}{res.trivial[j]:>11.0f}"
              f"{res.mean_regret[j] / res.bound[j]:>12.3g}")
    print("PASS" if res.passed else "FAIL: mean regret above the bound")
    return 0 if res.passed else 1
