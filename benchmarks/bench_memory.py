"""Peak memory of the offline fit at K samples and d features: the in-memory fit against the
streaming fit (:meth:`robustrl.agents._offline.OfflineAgent.fit_stream`, chunks of the dataset,
only sums kept per step), each in a fresh subprocess (peak RSS: ``VmHWM``, and the
``tracemalloc`` peak of the Python/NumPy heap, which includes building the in-memory dataset).

The learner is R2PVI-TV (``v_min="data"``: two reads of the chunks at every step but the last)
on synthetic simplex features, H = 2, |A| = 2 (``benchmarks.common``). The in-memory run holds
the whole :class:`~robustrl.data.OfflineDataset` (its arrays are ``K (1 + |A|) d`` float64 plus
observations); the streamed run generates chunks of ``chunk`` trajectories on the fly (its time
includes generating the data three times, the in-memory time does not include generating it).
``baseline`` is the RSS of a child that only imports the package.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from benchmarks.common import SyntheticChunks, SyntheticEnv, format_table, synthetic_dataset

HORIZON = 2
N_ACTIONS = 2


def _peak_rss_kb() -> float:
    """Peak resident memory of this process in kB: ``VmHWM`` of ``/proc/self/status`` (Linux;
    ``getrusage``'s ``ru_maxrss`` would include the parent's size at fork, which Linux keeps
    across ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(mode: str, samples: int, dim: int, chunk: int) -> dict[str, Any]:
    from robustrl.agents import R2PVI

    trajectories = samples // HORIZON
    agent = R2PVI(SyntheticEnv(HORIZON, dim, N_ACTIONS), divergence="tv", lam=0.1,
                  reward="estimated")
    # compile and warm up on a tiny problem, outside the measurement
    agent.fit(synthetic_dataset(4, HORIZON, dim, N_ACTIONS, seed=1))
    if mode == "baseline":
        seconds = 0.0
        tracemalloc.start()
    elif mode == "inmemory":
        tracemalloc.start()
        data = synthetic_dataset(trajectories, HORIZON, dim, N_ACTIONS, seed=0)
        start = time.perf_counter()
        agent.fit(data)
        seconds = time.perf_counter() - start
    else:
        tracemalloc.start()
        chunks = SyntheticChunks(trajectories, chunk, HORIZON, dim, N_ACTIONS, seed=0)
        start = time.perf_counter()
        agent.fit_stream(chunks)
        seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kb = _peak_rss_kb()
    return {"mode": mode, "samples": samples, "d": dim, "chunk": chunk, "fit_s": seconds,
            "max_rss_mb": rss_kb / 1024.0, "tracemalloc_peak_mb": peak / 2**20}


def measure(mode: str, samples: int, dim: int, chunk: int, timeout: float = 600.0):
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", mode, str(samples),
           str(dim), str(chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {mode} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(samples: list[int], dim: int = 64, chunk: int = 20_000, inmemory_max: int = 10**6,
        log=print) -> dict[str, Any]:
    """In-memory and streamed peaks for every K in ``samples`` (in-memory only up to
    ``inmemory_max``; larger rows say 'not run')."""
    base = measure("baseline", 2 * HORIZON, dim, chunk)
    log(f"  memory baseline (imports + warm-up): {base['max_rss_mb']:.0f} MB RSS")
    rows = []
    for k in samples:
        for mode in ("inmemory", "stream"):
            if mode == "inmemory" and k > inmemory_max:
                rows.append({"mode": mode, "samples": k, "d": dim, "chunk": chunk,
                             "fit_s": float("nan"), "max_rss_mb": float("nan"),
                             "tracemalloc_peak_mb": float("nan"), "note": "not run"})
                continue
            r = measure(mode, k, dim, chunk)
            r["note"] = ""
            rows.append(r)
            log(f"  memory {mode} K={k} d={dim}: {r['max_rss_mb']:.0f} MB RSS, "
                f"{r['tracemalloc_peak_mb']:.0f} MB traced, fit {r['fit_s']:.3g} s")
    table = format_table(
        ["mode", "K samples", "d", "chunk (traj.)", "max RSS MB", "RSS - baseline MB",
         "traced peak MB", "fit s"],
        [[r["mode"], r["samples"], r["d"], r["chunk"] if r["mode"] == "stream" else "-",
          r["max_rss_mb"], r["max_rss_mb"] - base["max_rss_mb"], r["tracemalloc_peak_mb"],
          r["fit_s"]] for r in rows])
    table += f"\nbaseline (imports + JIT warm-up): {base['max_rss_mb']:.0f} MB max RSS"
    return {"rows": rows, "baseline": base, "table": table}


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                int(sys.argv[5]))))
    else:
        sys.exit("usage: python -m benchmarks.bench_memory --child MODE SAMPLES DIM CHUNK "
                 "(use python -m benchmarks --only memory)")
