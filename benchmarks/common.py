"""Shared helpers of the benchmarks: timing, tables, machine peak, synthetic data."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.data import OfflineDataset

#: seconds of calls that :func:`best_time` takes at least (``--quick``: 0, a smoke run)
MIN_TOTAL_S = 0.1


def best_time(func: Callable[[], Any], repeats: int, warmup: bool = True,
              min_total: float | None = None) -> float:
    """Best wall-clock seconds of at least ``repeats`` calls, and of as many more as fit in
    ``min_total`` seconds (default :data:`MIN_TOTAL_S`; after one untimed warm-up call): on a
    shared machine the minimum is the least noisy estimate of the cost, and a sub-millisecond
    call needs more than a handful of samples for it (as ``timeit`` repeats short
    statements)."""
    min_total = MIN_TOTAL_S if min_total is None else min_total
    if warmup:
        func()
    best, total, calls = np.inf, 0.0, 0
    while calls < max(1, repeats) or total < min_total:
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        best, total, calls = min(best, elapsed), total + elapsed, calls + 1
    return float(best)


def once(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = func()
    return time.perf_counter() - start, out


def matmul_peak(n: int = 1500, repeats: int = 3) -> dict[str, float]:
    """The machine's measured float64 peak in GFLOP/s: best ``n x n`` NumPy matmul (BLAS),
    ``2 n^3`` flops, single-threaded and with BLAS's default threads; ``"peak"`` is the larger
    (on a busy shared machine the threaded one can be the smaller)."""
    from robustrl.ridge import blas_threads

    rng = np.random.default_rng(0)
    a = rng.random((n, n))
    b = rng.random((n, n))
    default = 2.0 * n**3 / best_time(lambda: a @ b, repeats) / 1e9
    with blas_threads(1):
        one = 2.0 * n**3 / best_time(lambda: a @ b, repeats) / 1e9
    return {"peak": max(one, default), "one_thread": one, "default_threads": default}


def machine_info() -> dict[str, Any]:
    import numba
    import scipy

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
    }


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width table (floats to 4 significant digits)."""

    def cell(x: Any) -> str:
        if isinstance(x, float):
            if not np.isfinite(x):
                return "-"
            return f"{x:.4g}"
        return str(x)

    text = [[cell(x) for x in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(lines)


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# --------------------------------------------------------------------------------------------
# synthetic linear-feature data


class SyntheticEnv(gym.Env):
    """A stand-in environment that only describes the shapes (``horizon``, ``feature_dim``,
    ``action_features``, Discrete actions) so that the agents can be built for synthetic data;
    it is never stepped."""

    def __init__(self, horizon: int, dim: int, n_actions: int) -> None:
        self.horizon, self.feature_dim = horizon, dim
        self.action_space = spaces.Discrete(n_actions)
        self.observation_space = spaces.Box(0.0, float(horizon), shape=(1,), dtype=np.float64)

    def action_features(self, obs) -> np.ndarray:
        return np.full((self.action_space.n, self.feature_dim), 1.0 / self.feature_dim)

    def features(self, obs, action) -> np.ndarray:
        return self.action_features(obs)[action]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1), {}

    def step(self, action):  # pragma: no cover - never stepped
        raise NotImplementedError("SyntheticEnv only describes shapes")


def synthetic_dataset(n_trajectories: int, horizon: int, dim: int, n_actions: int,
                      seed: int | list[int]) -> OfflineDataset:
    """Random simplex features (uniform entries normalised to sum one: the d-rectangular
    setting), rewards in [0, 1], every step taken; ``n_trajectories * horizon`` samples."""
    rng = np.random.default_rng(seed)
    K, H, d, A = n_trajectories, horizon, dim, n_actions
    arrays = OfflineDataset.empty_arrays(K, H, 1, d, A)
    # filled in place (the arrays are step-major) in blocks of trajectories: the random stream
    # is the one of a single draw of the whole array, and no second full-size copy is made
    block = 4096
    for name, shape in (("features", (H, d)), ("next_action_features", (H, A, d))):
        for start in range(0, K, block):
            x = rng.random((min(block, K - start), *shape))
            x /= x.sum(axis=-1, keepdims=True)
            arrays[name][start:start + block] = x
    arrays["rewards"][:] = rng.random((K, H))
    arrays["actions"][:] = rng.integers(A, size=(K, H))
    arrays["observations"][:, :, 0] = np.arange(H)
    arrays["next_observations"][:, :, 0] = np.arange(1, H + 1)
    arrays["valid"][:] = True
    arrays["terminal"][:, H - 1] = True
    return OfflineDataset(**arrays, metadata={"synthetic": True, "seed": seed})


class SyntheticChunks:
    """A dataset of ``n_trajectories`` synthetic trajectories produced ``chunk`` at a time:
    every iteration regenerates the same chunks (seeded by ``(seed, index)``), so a streaming
    fit can read them once per step while only one chunk is ever in memory."""

    def __init__(self, n_trajectories: int, chunk: int, horizon: int, dim: int,
                 n_actions: int, seed: int = 0) -> None:
        self.n, self.chunk = n_trajectories, chunk
        self.shape = (horizon, dim, n_actions)
        self.seed = seed

    def __iter__(self) -> Iterator[OfflineDataset]:
        for i, start in enumerate(range(0, self.n, self.chunk)):
            size = min(self.chunk, self.n - start)
            yield synthetic_dataset(size, *self.shape, seed=[self.seed, i])
