"""Scaling of the offline fit: time against the number of samples K and the feature dimension d,
the fitted log-log slopes, the operation counts and the achieved GFLOP/s against the machine's
measured float64 matmul peak (same run).

The fit is PEVI (the LSVI core with the elliptical bonus; R2PVI's extra work is O(K d) per
step) on synthetic simplex features (``benchmarks.common.synthetic_dataset``), horizon H = 2,
|A| = 2, so K samples are K / 2 trajectories. Operation counts per fit:

* Gram updates: ``H * K_h * d (d + 1)`` flops (``syrk``: the symmetric product, half of a
  general matmul's ``2 K d^2``), K_h = K / H samples per step;
* greedy step: ``H * K_h * |A| * 2 d^2`` flops (``phi^T Lambda^{-1} phi`` at every next state
  and action; the steps after the first, i.e. (H - 1) of them, need it, counted for all H as the
  issue's ``H K |A| d^2``: an upper bound).

``GFLOP/s`` = counted flops / best fit seconds. The Gram update alone is also timed on the
largest per-step matrices, single-threaded and with BLAS's default threads, against the peak.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import (
    SyntheticEnv,
    best_time,
    format_table,
    loglog_slope,
    matmul_peak,
    synthetic_dataset,
)
from robustrl.agents import PEVI
from robustrl.ridge import blas_threads

HORIZON = 2
N_ACTIONS = 2


def fit_flops(k: int, d: int, horizon: int = HORIZON, n_actions: int = N_ACTIONS):
    per_step = k // horizon
    gram = horizon * per_step * d * (d + 1)
    greedy = horizon * per_step * n_actions * 2 * d * d
    return gram, greedy


def time_fit(k: int, d: int, repeats: int) -> float:
    data = synthetic_dataset(k // HORIZON, HORIZON, d, N_ACTIONS, seed=0)
    agent = PEVI(SyntheticEnv(HORIZON, d, N_ACTIONS), beta=1.0, ridge=1.0, reward="estimated")
    return best_time(lambda: agent.fit(data), repeats)


def gram_rate(k: int, d: int, threads: int | None, repeats: int) -> float:
    """GFLOP/s of one ``Phi^T Phi`` (syrk, ``k d (d + 1)`` flops) of a ``(k, d)`` matrix."""
    x = np.random.default_rng(0).random((k, d))
    if threads is None:
        seconds = best_time(lambda: x.T @ x, repeats)
    else:
        with blas_threads(threads):
            seconds = best_time(lambda: x.T @ x, repeats)
    return k * d * (d + 1) / seconds / 1e9


def run(ks: list[int], dims: list[int], k_for_dims: int, d_for_ks: int,
        gram_shapes: list[tuple[int, int]], repeats: int = 3, log=print) -> dict[str, Any]:
    peaks = matmul_peak()
    peak = peaks["peak"]
    log(f"  scaling: matmul peak {peak:.1f} GFLOP/s (float64 NumPy matmul; 1 thread "
        f"{peaks['one_thread']:.1f}, default threads {peaks['default_threads']:.1f})")
    rows = []
    for sweep, values in (("K", ks), ("d", dims)):
        for x in values:
            k, d = (x, d_for_ks) if sweep == "K" else (k_for_dims, x)
            seconds = time_fit(k, d, repeats if k < 10**6 else max(1, repeats - 1))
            gram, greedy = fit_flops(k, d)
            rate = (gram + greedy) / seconds / 1e9
            rows.append({"sweep": sweep, "K": k, "d": d, "seconds": seconds,
                         "gram_flops": gram, "greedy_flops": greedy, "gflops": rate,
                         "fraction_of_peak": rate / peak})
            log(f"  scaling {sweep}: K={k} d={d}: {seconds:.4g} s, {rate:.2f} GFLOP/s")
    slopes = {}
    for sweep in ("K", "d"):
        sel = [r for r in rows if r["sweep"] == sweep]
        xs = [r[sweep] for r in sel]
        slopes[sweep] = {
            "time": loglog_slope(xs, [r["seconds"] for r in sel]),
            "flops": loglog_slope(xs, [r["gram_flops"] + r["greedy_flops"] for r in sel]),
        }
    grams = []
    for k, d in gram_shapes:
        one = gram_rate(k, d, 1, repeats)
        default = gram_rate(k, d, None, repeats)
        grams.append({"K": k, "d": d, "gflops_1_thread": one, "gflops_default_threads": default,
                      "fraction_1_thread": one / peak, "fraction_default": default / peak})
        log(f"  gram K={k} d={d}: {one:.1f} GFLOP/s (1 thread), {default:.1f} (default)")
    table = format_table(
        ["sweep", "K", "d", "fit s", "Gram flops", "greedy flops", "GFLOP/s", "of peak"],
        [[r["sweep"], r["K"], r["d"], r["seconds"], float(r["gram_flops"]),
          float(r["greedy_flops"]), r["gflops"], f"{100 * r['fraction_of_peak']:.1f}%"]
         for r in rows])
    table += "\n" + "\n".join(
        f"log-log slope vs {s}: time {v['time']:.2f} (operation count {v['flops']:.2f})"
        for s, v in slopes.items())
    table += (f"\nmatmul peak (1500^3 NumPy float64 matmul, same run): {peak:.1f} GFLOP/s "
              f"(1 thread {peaks['one_thread']:.1f}, default threads "
              f"{peaks['default_threads']:.1f})\n")
    table += format_table(
        ["Gram K", "d", "GFLOP/s 1 thread", "of peak", "GFLOP/s default threads", "of peak"],
        [[g["K"], g["d"], g["gflops_1_thread"], f"{100 * g['fraction_1_thread']:.1f}%",
          g["gflops_default_threads"], f"{100 * g['fraction_default']:.1f}%"] for g in grams])
    return {"rows": rows, "slopes": slopes, "peak_gflops": peak, "peaks": peaks, "gram": grams,
            "table": table}
