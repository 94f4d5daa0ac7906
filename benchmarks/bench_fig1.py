"""End to end: the R2PVI paper's Figure-1 job as a user runs it, and the American-put fits of
every offline agent on always-hold and distinct-start-price data.

* **Figure 1** (``fig1``): ``robustrl run r2pvi_fig1 --config
  experiments/configs/fig1_official.yaml`` (PEVI and R2PVI-TV/KL/chi2, K = 100, 20
  replications, 11 perturbation levels, 100 Monte-Carlo test episodes per level -- the work of
  the authors' ``Simulated_Linear_MDP/main.py``) in a fresh process, timed from the command's
  start to its exit: warm (Numba's cache filled by an untimed run first) and cold (every run
  with its own empty ``NUMBA_CACHE_DIR``), best of ``repeats``. Where the kernels were compiled
  ahead of time (``robustrl compile-kernels``, :mod:`robustrl._kernels.aot`) these rows use
  them, and two more rows time the same job on the JIT alone (``ROBUSTRL_AOT=0``): what a
  machine without a C compiler gets (``jit_rows=False`` skips them). The peak memory is that of the
  whole process tree (the sum of the resident sizes of the process and its children, sampled
  every 10 ms from ``/proc``), the largest over the runs. With ``official=PATH`` (a local copy
  of github.com/panxulab/Robust-Regularized-Pessimistic-Value-Iteration, never vendored) the
  authors' script runs the same way in the same run; without it, or when its interpreter lacks
  its dependencies (``pyrallis``), that row says why and is skipped.
* **Compilation** (``compile``): the Figure-1 job on the JIT alone (``ROBUSTRL_AOT=0``) once
  with an empty ``NUMBA_CACHE_DIR`` and a
  listener on Numba's ``numba:compile`` events: the compile time of every kernel it compiles
  (its own, without the kernels it calls), summed over its type specialisations -- where a
  cold start's seconds go.
* **Put fits** (``put``): :mod:`benchmarks.bench_offline` with every offline agent (PEVI,
  R2PVI-TV/KL/chi2, DRPVI, DRVI-L) on ``put`` (always hold, one start price: few distinct
  next-state values) and ``put-distinct`` (a start price per trajectory: every next-state value
  distinct) against the loop reference measured in the same run; with ``official=PATH`` the
  authors' put fits of both kinds of data as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import format_table
from robustrl._kernels import aot

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "configs" / "fig1_official.yaml"
OFFICIAL_SCRIPT = Path("Simulated_Linear_MDP") / "main.py"


def _tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and all its descendants, from ``/proc`` (Linux)."""
    total_kb = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):  # the process ended meanwhile
            continue
    return total_kb / 1024.0


def timed_process(cmd: list[str], env: dict[str, str] | None = None,
                  cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run ``cmd``; ``{"seconds", "peak_mb", "returncode", "stderr_tail"}``, the peak being the
    largest sampled resident size of the process tree (``nan`` where ``/proc`` is missing)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            done.wait(0.01)

    watcher = threading.Thread(target=sample, daemon=True)
    if Path("/proc").is_dir():
        watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    if watcher.is_alive():
        watcher.join()
    return {"seconds": seconds, "peak_mb": peak[0] if Path("/proc").is_dir() else float("nan"),
            "returncode": proc.returncode, "stderr_tail": err[-2000:]}


def _fig1_command(out: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "robustrl", "run", "r2pvi_fig1", "--config", str(CONFIG),
            "--out", out, "--quiet", *extra]


def _best(runs: list[dict]) -> dict[str, Any]:
    bad = [r for r in runs if r["returncode"] != 0]
    if bad:
        raise RuntimeError(f"the job failed (exit {bad[0]['returncode']}):\n"
                           f"{bad[0]['stderr_tail']}")
    return {"seconds": min(r["seconds"] for r in runs),
            "seconds_all": [r["seconds"] for r in runs],
            "peak_mb": max(r["peak_mb"] for r in runs)}


def _compiled_ahead(env: dict[str, str]) -> bool:
    """Whether a ``robustrl`` process with ``env`` runs the ahead-of-time compiled kernels."""
    proc = subprocess.run([sys.executable, "-m", "robustrl", "compile-kernels", "--check"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    return proc.returncode == 0


def run_fig1(repeats: int = 3, official: str | None = None,
             official_python: str | None = None, extra: list[str] | None = None,
             fill: bool = True, jit_rows: bool = True, log=print) -> dict[str, Any]:
    """Time the Figure-1 job warm and cold (and the authors' script if ``official``);
    ``extra``: more ``robustrl run`` arguments (``--quick`` uses ``--seeds 2``); ``fill=False``
    skips the untimed run that fills Numba's cache before the warm runs (``--quick``);
    ``jit_rows``: also time the JIT alone where compiled kernels are present."""
    extra = list(extra or [])
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop(aot.ENV_SWITCH, None)
    ahead = _compiled_ahead(env)
    variants = [("robustrl", env, "ahead of time" if ahead else "JIT")]
    if ahead and jit_rows:
        variants.append(("robustrl JIT only", {**env, aot.ENV_SWITCH: "0"}, "JIT"))
    if not ahead:
        notes.append("kernels: JIT (no ahead-of-time module for these sources and this "
                     "machine; `robustrl compile-kernels` builds it)")
    with tempfile.TemporaryDirectory(prefix="robustrl_fig1_") as tmp:
        for v, (label, venv, kernels) in enumerate(variants):
            out = f"{tmp}/{v}"  # a run of its own: the runner would resume a finished one
            if fill:  # fills the default cache
                _best([timed_process(_fig1_command(f"{out}/fill", extra), venv)])
            warm = _best([timed_process(_fig1_command(f"{out}/warm{i}", extra), venv)
                          for i in range(repeats)])
            rows.append({"job": f"{label}, warm Numba cache", "kernels": kernels, **warm})
            log(f"  fig1 {label} warm: {warm['seconds']:.2f} s, {warm['peak_mb']:.0f} MB")
            cold_runs = []
            for i in range(repeats):
                cache = tempfile.mkdtemp(prefix="numba_cold_", dir=tmp)
                cold_runs.append(timed_process(_fig1_command(f"{out}/cold{i}", extra),
                                               {**venv, "NUMBA_CACHE_DIR": cache}))
            cold = _best(cold_runs)
            rows.append({"job": f"{label}, cold Numba cache", "kernels": kernels, **cold})
            log(f"  fig1 {label} cold: {cold['seconds']:.2f} s, {cold['peak_mb']:.0f} MB")
    peer = _official(official, official_python, repeats, notes, log)
    if peer is not None:
        rows.insert(0, peer)
        for r in rows[1:]:
            r["ratio"] = peer["seconds"] / r["seconds"]
    header = ["job", "kernels", "best s", "all runs s", "peak MB (tree)", "official / this"]
    table = format_table(header, [
        [r["job"], r.get("kernels", "-"), r["seconds"],
         " ".join(f"{s:.2f}" for s in r["seconds_all"]), f"{r['peak_mb']:.0f}",
         f"{r['ratio']:.1f}x" if "ratio" in r else "-"] for r in rows])
    if notes:
        table += "\n" + "\n".join(notes)
    return {"rows": rows, "notes": notes, "table": table, "repeats": repeats,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


_COMPILE_LISTENER = r"""
import collections, json, os, sys, time
from numba.core import event

stack, own, count = [], collections.Counter(), collections.Counter()


class Listener(event.Listener):
    def on_start(self, ev):
        stack.append([ev.data["dispatcher"].py_func.__qualname__, time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, t0, inner = stack.pop()
        took = time.perf_counter() - t0
        own[name] += took - inner
        count[name] += 1
        if stack:
            stack[-1][2] += took


event.register("numba:compile", Listener())
from robustrl.cli import main

start = time.perf_counter()
status = main(sys.argv[1:])
with open(os.environ["ROBUSTRL_COMPILE_REPORT"], "w") as fh:
    json.dump({"status": status, "seconds": time.perf_counter() - start,
               "kernels": [[k, v, count[k]] for k, v in own.most_common()]}, fh)
"""


def run_compile(extra: list[str] | None = None, top: int = 15, log=print) -> dict[str, Any]:
    """The Figure-1 job once on the JIT alone and an empty Numba cache (what ``robustrl
    compile-kernels`` saves, and what a machine without a C compiler pays), with the compile
    time of each kernel
    (its own share, summed over its specialisations; NumPy overloads such as ``np.empty``
    count as kernels of their own). ``extra``: more ``robustrl run`` arguments."""
    import json

    with tempfile.TemporaryDirectory(prefix="robustrl_compile_") as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "cache"),
               "ROBUSTRL_COMPILE_REPORT": str(report), aot.ENV_SWITCH: "0"}
        cmd = [sys.executable, "-c", _COMPILE_LISTENER, "run", "r2pvi_fig1", "--config",
               str(CONFIG), "--out", str(Path(tmp) / "out"), "--quiet", *(extra or [])]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0 or not report.exists():
            raise RuntimeError(f"the job failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        data = json.loads(report.read_text())
    kernels = data["kernels"]
    total = sum(k[1] for k in kernels)
    compiles = sum(k[2] for k in kernels)
    log(f"  compile: {total:.2f} s in {compiles} compilations of {len(kernels)} kernels; the "
        f"job {data['seconds']:.2f} s on an empty cache")
    rows = [{"kernel": name, "seconds": sec, "compilations": n} for name, sec, n in kernels]
    table = format_table(["kernel", "compile s (own)", "compilations"],
                         [[r["kernel"], f"{r['seconds']:.2f}", r["compilations"]]
                          for r in rows[:top]])
    table += (f"\n{len(rows) - min(top, len(rows))} more kernels; all: {total:.2f} s in "
              f"{compiles} compilations; the whole job {data['seconds']:.2f} s")
    return {"rows": rows, "total_s": total, "compilations": compiles,
            "job_s": data["seconds"], "table": table}


def _official(path: str | None, python: str | None, repeats: int, notes: list[str],
              log) -> dict[str, Any] | None:
    """The authors' Figure-1 script timed like the package's job, or None with a note."""
    if not path:
        notes.append("official code: not given (--r2pvi-official PATH to a local copy of "
                     "panxulab/Robust-Regularized-Pessimistic-Value-Iteration)")
        return None
    script_dir = Path(path) / OFFICIAL_SCRIPT.parent
    if not (script_dir / OFFICIAL_SCRIPT.name).is_file():
        notes.append(f"official code: skipped, {script_dir / OFFICIAL_SCRIPT.name} not found")
        return None
    python = python or sys.executable
    probe = subprocess.run([python, "-c", "import pyrallis, numpy, scipy, matplotlib"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        notes.append(f"official code: skipped, {python} cannot import its dependencies "
                     f"(pyrallis, numpy, scipy, matplotlib): "
                     f"{probe.stderr.strip().splitlines()[-1:]}")
        return None
    with tempfile.TemporaryDirectory(prefix="r2pvi_official_") as tmp:
        # run in a scratch copy of its folder: the script writes its figure next to itself
        import shutil

        work = Path(tmp) / script_dir.name
        shutil.copytree(script_dir, work)
        env = {**os.environ, "MPLBACKEND": "Agg"}
        runs = [timed_process([python, OFFICIAL_SCRIPT.name], env, cwd=work)
                for _ in range(max(1, min(repeats, 2)))]
    best = _best(runs)
    log(f"  fig1 official: {best['seconds']:.2f} s, {best['peak_mb']:.0f} MB")
    return {"job": "authors' Simulated_Linear_MDP/main.py", **best}


def run_put(sizes: list[int], repeats: int = 5, budget: float = 20.0, log=print,
            official: str | None = None, official_python: str | None = None
            ) -> dict[str, Any]:
    """Every offline agent on the put, always-hold and distinct-start-price data; with
    ``official`` (a local copy of the authors' repository) their fits of both kinds of data
    too (:mod:`benchmarks.r2pvi_official_put`, their own data collection and settings, the
    distinct data by a start price drawn per trajectory), in a subprocess with
    ``official_python``."""
    from benchmarks import bench_offline

    out = bench_offline.run({"put": sizes, "put-distinct": sizes}, repeats=repeats,
                            budget=budget, methods=bench_offline.ALL_METHODS, log=log)
    put_dir = Path(official or "") / "American_put_opt"
    if not official or not (put_dir / "algorithm.py").is_file():
        out["official"] = (f"not given or not found ({put_dir})" if official else
                           "not given (--r2pvi-official PATH)")
        return out
    import json

    rows = []
    for env_name, mode in (("put", []), ("put-distinct", ["distinct"])):
        proc = subprocess.run(
            [official_python or sys.executable, str(Path(__file__).with_name(
                "r2pvi_official_put.py")), str(put_dir), ",".join(map(str, sizes)),
             ",".join(bench_offline.ALL_METHODS), *mode],
            capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
        if proc.returncode != 0:
            out["official"] = f"failed: {proc.stderr.strip().splitlines()[-1:]}"
            return out
        seconds = json.loads(proc.stdout.strip().splitlines()[-1])
        for r in (r for r in out["rows"] if r["env"] == env_name):
            r["official_s"] = seconds[r["method"]][str(r["N"])]
            r["official_ratio"] = r["official_s"] / r["package_s"]
            log(f"  {env_name} {r['method']} N={r['N']}: official {r['official_s']:.4g} s, "
                f"{r['official_ratio']:.1f}x")
            rows.append(r)
    out["official"] = "measured"
    out["official_table"] = format_table(
        ["data", "method", "N", "package s", "official s", "official / this"],
        [[r["env"], r["method"], r["N"], r["package_s"], r["official_s"],
          f"{r['official_ratio']:.1f}x"] for r in rows])
    return out
