"""GLOW's finite-class objective: core kernel vs the literal NumPy reference, in one run.

Times ``L_h(f, w)`` for every step and every pair of an enumerated value class ``F`` and
weight class ``W`` (an enumerated finite class; docs/algorithms/glow.md, Three instantiations) on
``n`` pooled transitions of
a small layered tabular instance, and -- for the tabular full weight class -- the closed-form
``max_w L_h(f, w)`` (closed form over all tables). Two implementations of each:

* kernel, :mod:`robustrl._kernels.glow`: sufficient statistics ``N(s,a)``, ``sum r``,
  ``N(s,a,s')`` per step, then one BLAS product ``(|F|, SA) x (SA, |W|)``, so its cost does
  not grow with ``n`` beyond the ``bincount``. It is NumPy + BLAS, not Numba: there is no
  JIT to exclude, the warm-up call is kept only so the first-touch allocations are not timed.
* reference, :mod:`robustrl.reference.glow`: per step the literal ``(|F|, n_h)`` residual and
  ``(|W|, n_h)`` clipped-weight matrices and their product; ``O(|F| |W| n)``.

At the defaults (``|F| = |W| = 1000``, ``n = 10^5``) the reference takes seconds per call, so
it is timed ONCE (``--reference-repeats 1``, no warm-up; that call's output is the agreement
baseline); the kernel is the best of ``--repeats`` (3) calls after a warm-up. One
"(f,w)-evaluation" is the objective of one pair on all ``H`` steps, so evaluations/s is
``|F| |W| / seconds`` (``|F| / seconds`` for the full-class rows, one ``max_w`` per ``f``).
The ratio is reference seconds / kernel seconds of the same objective. The agreement check is
the largest absolute difference between the two outputs. BLAS may use several threads on both
sides; set OPENBLAS_NUM_THREADS=1 for a one-core comparison.

    python benchmarks/bench_glow.py [--functions 1000 --weights 1000 --transitions 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from robustrl._kernels import glow as glow_kernels
from robustrl.reference import glow as glow_reference


def timed(func: Callable[[], np.ndarray], repeats: int,
          warm_up: bool) -> tuple[float, np.ndarray]:
    """Best wall-clock time of ``repeats`` calls (after an untimed warm-up if asked) and the
    output of the last call."""
    out = func() if warm_up else None
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def make_problem(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Layered tabular instance: ``H`` layers of ``S`` states and ``A`` actions, ``n`` tuples
    spread evenly over the steps, rewards in [0, 1]; ``F`` tables with ``f_h`` in
    ``[0, H - h]`` (the truncation range), ``W`` tables in ``[0, 2 gamma]`` so the clip binds,
    with 5% of the entries ``+inf`` (allowed by the kernel: the clip makes them ``gamma``)."""
    rng = np.random.default_rng(args.seed)
    H, S, A, n = args.horizon, args.states, args.actions, args.transitions
    steps = np.arange(n) % H
    ceiling = (H - np.arange(H, dtype=np.float64))[None, :, None, None]
    F = rng.random((args.functions, H, S, A)) * ceiling
    W = rng.random((args.weights, H, S, A)) * (2.0 * args.gamma)
    W[rng.random(W.shape) < 0.05] = np.inf
    return {
        "F": F,
        "W": W,
        "steps": steps,
        "states": rng.integers(0, S, size=n),
        "actions": rng.integers(0, A, size=n),
        "rewards": rng.random(n),
        "next_states": rng.integers(0, S, size=n),
    }


def run(args: argparse.Namespace) -> list[tuple[str, float, float, float, float]]:
    """Rows ``(name, seconds, evaluations/s, ratio, max abs diff)``."""
    d = make_problem(args)
    data = (d["steps"], d["states"], d["actions"], d["rewards"], d["next_states"])
    hyper = (args.gamma, args.alpha)
    pairs = args.functions * args.weights
    ref_label = f"best of {args.reference_repeats}" if args.reference_repeats > 1 else "1 call"
    ker_label = f"best of {args.repeats}"
    rows = []

    ref_s, expected = timed(lambda: glow_reference.glow_objective(d["F"], d["W"], *data, *hyper),
                            args.reference_repeats, warm_up=False)
    ker_s, got = timed(lambda: glow_kernels.glow_objective(d["F"], d["W"], *data, *hyper),
                       args.repeats, warm_up=True)
    diff = float(np.max(np.abs(got - expected)))
    rows.append((f"reference glow_objective ({ref_label})", ref_s, pairs / ref_s, 1.0, 0.0))
    rows.append((f"kernel glow_objective ({ker_label})", ker_s, pairs / ker_s, ref_s / ker_s,
                 diff))

    # What a GLOW round pays once the per-step statistics are kept up to date incrementally:
    # only the per-step products (statistics and V_{h+1} computed outside the timing).
    H, S, A = args.horizon, args.states, args.actions
    prepared = []
    for h in range(H):
        m = d["steps"] == h
        last = h == H - 1
        stats = glow_kernels.step_statistics(d["states"][m], d["actions"][m], d["rewards"][m],
                                             None if last else d["next_states"][m], S, A)
        v_next = np.zeros((args.functions, S)) if last else d["F"][:, h + 1].max(axis=-1)
        prepared.append((d["F"][:, h], v_next, d["W"][:, h], stats))

    def products_only() -> np.ndarray:
        return np.stack([glow_kernels.step_objective(F_h, v, W_h, *stats, *hyper)
                         for F_h, v, W_h, stats in prepared])

    prod_s, got = timed(products_only, args.repeats, warm_up=True)
    rows.append((f"kernel step_objective, statistics precomputed ({ker_label})", prod_s,
                 pairs / prod_s, ref_s / prod_s, float(np.max(np.abs(got - expected)))))

    if not args.skip_full_class:
        ref_s, expected = timed(
            lambda: glow_reference.full_class_objective(d["F"], *data, *hyper),
            args.reference_repeats, warm_up=False)
        ker_s, got = timed(lambda: glow_kernels.full_class_objective(d["F"], *data, *hyper),
                           args.repeats, warm_up=True)
        rows.append((f"reference full_class_objective ({ref_label})", ref_s,
                     args.functions / ref_s, 1.0, 0.0))
        rows.append((f"kernel full_class_objective ({ker_label})", ker_s,
                     args.functions / ker_s, ref_s / ker_s,
                     float(np.max(np.abs(got - expected)))))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=1000, help="value-class size |F|")
    parser.add_argument("--weights", type=int, default=1000, help="weight-class size |W|")
    parser.add_argument("--transitions", type=int, default=100_000,
                        help="pooled transitions n (all steps together)")
    parser.add_argument("--horizon", type=int, default=5, help="horizon H")
    parser.add_argument("--states", type=int, default=10, help="states per layer S")
    parser.add_argument("--actions", type=int, default=4, help="actions A")
    parser.add_argument("--gamma", type=float, default=2.0, help="weight clip gamma")
    parser.add_argument("--alpha", type=float, default=0.5, help="penalty alpha")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed kernel calls (best is kept, after a warm-up)")
    parser.add_argument("--reference-repeats", type=int, default=1,
                        help="timed reference calls (best is kept; no warm-up)")
    parser.add_argument("--skip-full-class", action="store_true",
                        help="do not time the full-weight-class closed form")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-8,
                        help="largest accepted absolute difference between the two outputs")
    args = parser.parse_args(argv)
    for name in ("functions", "weights", "transitions", "horizon", "states", "actions",
                 "repeats", "reference_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.transitions < args.horizon:
        parser.error("--transitions must be >= --horizon (every step gets data)")
    if not args.gamma > 0 or args.alpha < 0:
        parser.error("--gamma must be > 0 and --alpha >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(
        f"|F|={args.functions} |W|={args.weights} n={args.transitions} H={args.horizon} "
        f"S={args.states} A={args.actions} gamma={args.gamma} alpha={args.alpha} "
        f"seed={args.seed}\n"
        f"kernel: best of {args.repeats} after a warm-up; reference: best of "
        f"{args.reference_repeats} (no warm-up)\n"
        f"numpy {np.__version__}, {os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={threads}\n"
        f"evaluations: (f,w) pairs over all H steps per second (full class: f per second); "
        f"ratio = reference s / kernel s"
    )
    rows = run(args)
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'seconds':>10}  {'evals/s':>10}  {'ratio':>9}  "
          f"{'max abs diff':>12}")
    for name, seconds, rate, ratio, diff in rows:
        print(f"{name:<{width}}  {seconds:>10.4f}  {rate:>10.3e}  {ratio:>8.1f}x  {diff:>12.1e}")
    worst = max(r[4] for r in rows)
    if not worst <= args.tolerance:
        print(f"MISMATCH: largest absolute difference {worst:.2e} > {args.tolerance:.0e}")
        return 1
    print(f"outputs agree (largest absolute difference {worst:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
