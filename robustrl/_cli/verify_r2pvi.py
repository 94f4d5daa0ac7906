"""``robustrl verify-bounds r2pvi``: the command-line check built on :mod:`robustrl.theory.r2pvi`
(the CLI layer: it may use the runner, the experiments and the agents)."""

from __future__ import annotations

import sys

import numpy as np

from robustrl.theory.r2pvi import (
    fit_mean_loglog,
    suboptimality_curve,
)


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--K must be comma-separated integers; got {text!r}") from None
    return ks


def verify_bounds_main(argv: list[str]) -> int:
    """R2PVI exact suboptimality vs K on the simulated MDP against the instance-dependent bound.

    Prints, per K, the mean (and max) exact suboptimality over seeds, the bound surrogate with
    the theorems' beta (times ``--bound-scale``), the same surrogate with the agent's beta and
    the fraction of seeds above the bound, then the log-log slope of the mean suboptimality
    (seed-bootstrap CI) and its intercept. Exit status 1 when at some K more than a fraction
    ``delta`` of the seeds exceed the bound (the bound holds with probability 1 - delta),
    2 on bad arguments, else 0.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="robustrl verify-bounds r2pvi",
        description="R2PVI exact suboptimality against K vs the instance-dependent bound")
    parser.add_argument("--divergence", default="chi2", choices=["tv", "kl", "chi2"])
    parser.add_argument("--lam", type=float, default=0.1)
    parser.add_argument("--K", default="20,50,100,200,500",
                        help="comma-separated increasing dataset sizes")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--beta", type=float, default=1.0, help="the agent's pessimism")
    parser.add_argument("--ridge", type=float, default=0.1)
    parser.add_argument("--bound-beta", type=float, default=None,
                        help="beta inside the bound (default: the theorems' beta)")
    parser.add_argument("--bound-scale", type=float, default=1.0,
                        help="multiply the bound (e.g. 1e-6 to check that violations fail)")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        curve = suboptimality_curve(
            args.divergence, args.lam, _parse_ks(args.K), args.seeds, beta=args.beta,
            ridge=args.ridge, bound_beta=args.bound_beta, bound_scale=args.bound_scale,
            delta=args.delta, seed=args.seed, progress=not args.quiet)
    except ValueError as exc:
        print(f"robustrl verify-bounds r2pvi: error: {exc}", file=sys.stderr)
        return 2
    sub, bnd = curve.suboptimality, curve.bound
    above = (sub > bnd).mean(axis=0)
    print(f"R2PVI-{args.divergence} (lambda={args.lam:g}, beta={args.beta:g}, "
          f"ridge={args.ridge:g}) on the simulated linear MDP, {args.seeds} seeds per K; "
          f"bound = {args.bound_scale:g} x 2 beta max_P sum_h E[sum_i phi_i "
          f"sqrt(Lambda^-1_ii)] with beta = "
          f"{'theorems' if args.bound_beta is None else f'{args.bound_beta:g}'}")
    head = (f"{'K':>7}{'mean subopt':>13}{'max subopt':>12}{'frac > 0':>10}{'bound':>13}"
            f"{'bound(agent beta)':>19}{'frac > bound':>14}")
    print(head)
    print("-" * len(head))
    for j, K in enumerate(curve.n_trajectories):
        print(f"{K:>7}{sub[:, j].mean():>13.5f}{sub[:, j].max():>12.5f}"
              f"{(sub[:, j] > 0).mean():>10.2f}{bnd[:, j].mean():>13.5g}"
              f"{curve.practical_bound[:, j].mean():>19.5g}{above[j]:>14.2f}")
    fit = fit_mean_loglog(curve.n_trajectories, sub, seed=args.seed)
    bfit = fit_mean_loglog(curve.n_trajectories, bnd, n_boot=0)
    if np.isfinite(fit.slope):
        print(f"log-log slope of mean suboptimality vs K: {fit.slope:.3f} "
              f"(95% seed-bootstrap CI [{fit.low:.3f}, {fit.high:.3f}]), intercept "
              f"{fit.intercept:.3f}, over K = "
              f"{', '.join(str(k) for k in curve.n_trajectories[fit.used])}")
    else:
        print("log-log slope of mean suboptimality: not defined (mean suboptimality is 0 at "
              "fewer than two K)")
    print(f"log-log slope of the bound vs K: {bfit.slope:.3f} (theory: -0.5 up to logs)")
    if np.any(above > args.delta):
        bad = ", ".join(str(k) for k in curve.n_trajectories[above > args.delta])
        print(f"FAIL: more than delta={args.delta:g} of the seeds exceed the bound at K = {bad}")
        return 1
    print(f"OK: at every K at most delta={args.delta:g} of the seeds exceed the bound")
    return 0
