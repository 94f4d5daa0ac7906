"""NumPy reference vs Numba kernel timings for the linear-MDP primitives.

Times, in one run, the batched bonuses (elliptical and both d-rectangular forms) over
K x |A| feature vectors (the backward passes are timed by the agents' benchmarks, offline and
online), checks that the two implementations agree,
and prints name, NumPy seconds, Numba seconds and the speed-up. Each timing is the best of
``--repeats`` calls after a warm-up call, so JIT compilation is excluded. The NumPy side is
the vectorised reference of :mod:`robustrl.reference` (BLAS matmuls, einsum), which may use
several BLAS threads; the Numba kernels are single-threaded. Set OPENBLAS_NUM_THREADS=1 for a
one-core comparison.

    python benchmarks/bench_primitives.py [--dim 16 --actions 8 --horizon 20 --samples 10000]
    (also the ``primitives`` section of ``python -m benchmarks``)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from robustrl._kernels import bonus as bonus_kernels
from robustrl.bonus import BONUS_CODES
from robustrl.reference import bonus as bonus_reference
from robustrl.ridge import gram_inverse


def best_time(func: Callable[[], object], repeats: int) -> float:
    """Best wall-clock time of ``repeats`` calls, after one untimed warm-up call."""
    func()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def max_relative_difference(a, b) -> float:
    a = np.asarray(a)
    b = np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def make_problem(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Simplex features (the d-rectangular setting), rewards in [0, 1], 5% terminal next states."""
    rng = np.random.default_rng(args.seed)
    H, K, A, d = args.horizon, args.samples, args.actions, args.dim
    features = rng.dirichlet(np.ones(d), size=(H, K))
    next_features = rng.dirichlet(np.ones(d), size=(H, K, A))
    return {
        "features": features,
        "rewards": rng.random((H, K)),
        "next_features": next_features,
        "next_valid": rng.random((H, K)) < 0.95,
        "lambda_inv": gram_inverse(features[0], args.ridge),
    }


def run(args: argparse.Namespace) -> list[tuple[str, float, float, float]]:
    data = make_problem(args)
    flat = data["next_features"][0].reshape(-1, args.dim)  # K x |A| feature vectors
    lambda_inv = data["lambda_inv"]
    rows = []

    for name in ("elliptical", "d_rectangular_l1", "d_rectangular_l2"):
        code = BONUS_CODES[name]
        ref = bonus_reference.BONUSES[name]
        expected = ref(flat, lambda_inv)
        got = bonus_kernels.bonus_rows(flat, lambda_inv, code)
        rows.append((
            f"bonus {name} ({flat.shape[0]} vectors)",
            best_time(lambda ref=ref: ref(flat, lambda_inv), args.repeats),
            best_time(lambda code=code: bonus_kernels.bonus_rows(flat, lambda_inv, code),
                      args.repeats),
            max_relative_difference(got, expected),
        ))

    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=16, help="feature dimension d")
    parser.add_argument("--actions", type=int, default=8, help="number of actions |A|")
    parser.add_argument("--horizon", type=int, default=20, help="horizon H")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per step K")
    parser.add_argument("--ridge", type=float, default=1.0, help="ridge parameter")
    parser.add_argument("--beta", type=float, default=0.1, help="bonus multiplier beta")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest accepted relative difference between the two outputs")
    args = parser.parse_args(argv)
    for name in ("dim", "actions", "horizon", "samples", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.ridge <= 0 or args.beta < 0:
        parser.error("--ridge must be > 0 and --beta >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(
        f"d={args.dim} |A|={args.actions} H={args.horizon} K={args.samples} "
        f"beta={args.beta} ridge={args.ridge} seed={args.seed} repeats={args.repeats}\n"
        f"numpy {np.__version__}, numba {numba.__version__}, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={threads}"
    )
    rows = run(args)
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  {'numpy s':>10}  {'numba s':>10}  {'speed-up':>8}  "
          f"{'max rel diff':>12}")
    for name, numpy_s, numba_s, diff in rows:
        print(f"{name:<{width}}  {numpy_s:>10.5f}  {numba_s:>10.5f}  {numpy_s / numba_s:>7.2f}x"
              f"  {diff:>12.1e}")
    worst = max(r[3] for r in rows)
    if worst > args.tolerance:
        print(f"MISMATCH: largest relative difference {worst:.2e} > {args.tolerance:.0e}")
        return 1
    print(f"outputs agree (largest relative difference {worst:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
