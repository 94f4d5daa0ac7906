"""``python -m benchmarks``: robustrl against its peers, measured side by side in one process per
comparison on the same inputs, then the scaling curves and the memory of the streaming path.

    python -m benchmarks                      # everything (about 10-20 min on 2 busy cores)
    python -m benchmarks --quick              # tiny sizes, < 30 s: checks that it all runs
    python -m benchmarks --only offline,online --out results/bench.json
    python -m benchmarks --rlberry-python /tmp/rlberry_venv/bin/python   # rlberry's LSVI-UCB
    python -m benchmarks --only fig1,put --r2pvi-official /tmp/r2pvi_official   # authors' code

Sections (``--only``, comma-separated): ``fig1`` (the R2PVI Figure-1 job end to end, warm and
cold Numba cache, peak memory of the process tree; with ``--r2pvi-official PATH`` the authors'
script in the same run, ``benchmarks/bench_fig1.py``), ``compile`` (the same job on an empty
Numba cache: the compile time of each kernel), ``put`` (every offline agent's
American-put fit, always-hold and distinct-start-price data, vs the loop reference),
``offline`` (R2PVI TV/KL/chi2 and DRPVI fit time vs the loop-style NumPy/SciPy reference,
American put and simulated linear MDP), ``online``
(DR-RPO and LSVI-UCB episodes/s vs the loop reference and rlberry), ``scaling`` (fit time vs K
and d, log-log slopes, GFLOP/s vs the measured matmul peak), ``memory`` (peak memory of the
in-memory and the streaming fit), ``primitives`` (the Numba kernels vs their vectorised NumPy
twins, ``benchmarks/bench_primitives.py``), ``dred`` (Cave Escape env steps/s of today's
DummyVecEnv pipeline vs the batched ``CaveEscapeVecEnv`` at 36, 1,024 and 8,192 environments,
and end-to-end SB3 PPO steps/s with each, ``benchmarks/bench_dred.py``). Timings on a shared
machine are noisy: every ratio is measured within one run, package timings are
best-of-``--repeats``. ``--out FILE.json`` writes every number (and the machine description)
atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchmarks import bench_memory, bench_offline, bench_online, bench_scaling, common
from benchmarks.common import machine_info
from robustrl._io import atomic_write_json

SECTIONS = ("fig1", "compile", "put", "offline", "online", "scaling", "memory", "primitives",
            "dred")

FULL = {
    "fig1": {"extra": []},
    "compile": {"extra": []},
    "put": {"sizes": [100, 1000], "budget": 20.0},
    "offline": {"sizes": {"put": [100, 1000, 10000], "sim": [100, 1000, 10000]}, "budget": 20.0},
    "online": {"episodes": [100, 300]},
    "scaling": {"ks": [10**3, 10**4, 10**5, 10**6], "d_for_ks": 16,
                "dims": [4, 8, 16, 32, 64, 128, 256], "k_for_dims": 10**4,
                "gram_shapes": [(500_000, 16), (5_000, 256), (100_000, 256)]},
    "memory": {"samples": [10**4, 10**5, 10**6], "dim": 64, "chunk": 20_000},
    "primitives": {"argv": []},
    "dred": {"n_levels": 64, "size": 13, "dummy_envs": [36, 1024], "dummy_env_steps": 7200,
             "batched_envs": [36, 1024, 8192], "batched_env_steps": 400_000,
             "ppo": [(36, 256), (288, 32)], "ppo_lstm": [(36, 256)], "ppo_updates": 2},
}
QUICK = {
    "fig1": {"extra": ["--seeds", "2"]},
    "compile": {"extra": ["--seeds", "1"]},
    "put": {"sizes": [10, 30], "budget": 0.5},
    "offline": {"sizes": {"put": [10, 30], "sim": [20, 60]}, "budget": 0.5},
    "online": {"episodes": [8]},
    "scaling": {"ks": [500, 2000], "d_for_ks": 8, "dims": [4, 8, 16], "k_for_dims": 1000,
                "gram_shapes": [(2000, 16)]},
    "memory": {"samples": [400, 1600], "dim": 8, "chunk": 200},
    "primitives": {"argv": ["--samples", "200", "--horizon", "3", "--repeats", "2"]},
    "dred": {"n_levels": 8, "size": 13, "dummy_envs": [4], "dummy_env_steps": 64,
             "batched_envs": [4, 64], "batched_env_steps": 2048, "ppo": [(4, 16)],
             "ppo_lstm": [(4, 16)], "ppo_updates": 1},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--out", default=None, help="write all results to this JSON file")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of the package side (best kept; outside --quick "
                             "also at least 0.1 s of calls); default 5, quick 2")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds one loop-reference fit may take before it is timed on a "
                             "subset and extrapolated (default 20, quick 0.5)")
    parser.add_argument("--rlberry-python", default=None,
                        help="interpreter of a venv with rlberry + rlberry-scool (default "
                             "/tmp/rlberry_venv/bin/python if present; never in --quick unless "
                             "given)")
    parser.add_argument("--r2pvi-official", default=None, metavar="PATH",
                        help="a local copy of the R2PVI authors' code (github.com/panxulab/"
                             "Robust-Regularized-Pessimistic-Value-Iteration, never vendored): "
                             "the fig1 section times its Simulated_Linear_MDP/main.py too")
    parser.add_argument("--r2pvi-official-python", default=None, metavar="PYTHON",
                        help="interpreter for the authors' code (needs pyrallis; default this "
                             "one)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad or not only:
        parser.error(f"--only must list sections among {', '.join(SECTIONS)}; got {args.only!r}")
    args.sections = only
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be > 0")
    return args


def summary(results: dict[str, Any]) -> list[str]:
    """The headline numbers against the issue's targets."""
    lines = []
    if "fig1" in results:
        for r in results["fig1"]["rows"]:
            vs = f", {r['ratio']:.1f}x the authors' code" if "ratio" in r else ""
            lines.append(f"fig1 {r['job']}: {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB peak "
                         f"(process tree){vs}")
        lines += [f"fig1: {n}" for n in results["fig1"]["notes"]]
    if "compile" in results:
        c = results["compile"]
        lines.append(f"compile: {c['total_s']:.1f} s of Numba compilation ({c['compilations']} "
                     f"compilations) in the {c['job_s']:.1f} s of the Figure-1 job on an empty "
                     "cache")
    if "put" in results:
        rows = results["put"]["rows"]
        for r in rows:
            kind = "measured" if r["reference"] == "measured" else "extrapolated"
            vs = (f", {r['official_ratio']:.0f}x the authors' fit" if "official_ratio" in r
                  else "")
            lines.append(f"put {r['env']} N={r['N']} {r['method']}: {r['package_s'] * 1e3:.3g} "
                         f"ms, {r['ratio']:.0f}x the loop reference ({kind}; target >= 100x)"
                         f"{vs}")
        lines.append(f"put: official code {results['put'].get('official', 'not run')}")
    if "offline" in results:
        rows = results["offline"]["rows"]
        for env in sorted({r["env"] for r in rows}):
            n = max(r["N"] for r in rows if r["env"] == env)
            for r in (r for r in rows if r["env"] == env and r["N"] == n):
                kind = "measured" if r["reference"] == "measured" else "extrapolated"
                lines.append(f"offline {env} N={n} {r['method']}: {r['ratio']:.0f}x over the "
                             f"loop reference ({kind}; target >= 100x)")
    if "online" in results:
        rows = results["online"]["rows"]
        k = max(r["K"] for r in rows)
        for r in (r for r in rows if r["K"] == k):
            lines.append(f"online K={k} {r['agent']} vs {r['peer']}: {r['ratio']:.1f}x "
                         "episodes/s (target >= 10x)")
        lines += [f"online: {n}" for n in results["online"]["notes"]]
    if "scaling" in results:
        sc = results["scaling"]
        for s, v in sc["slopes"].items():
            lines.append(f"scaling: log-log slope of fit time vs {s} {v['time']:.2f} "
                         f"(operation count {v['flops']:.2f})")
        best = max(sc["gram"], key=lambda g: g["K"] * g["d"] ** 2)
        frac = max(best["fraction_1_thread"], best["fraction_default"])
        lines.append(f"scaling: largest Gram update (K={best['K']}, d={best['d']}) at "
                     f"{100 * frac:.0f}% of the measured matmul peak "
                     f"{sc['peak_gflops']:.1f} GFLOP/s (target >= 30%)")
    if "memory" in results:
        rows = [r for r in results["memory"]["rows"] if r["note"] != "not run"]
        for mode in ("inmemory", "stream"):
            sel = [r for r in rows if r["mode"] == mode]
            if sel:
                r = max(sel, key=lambda r: r["samples"])
                lines.append(f"memory {mode} K={r['samples']} d={r['d']}: "
                             f"{r['max_rss_mb']:.0f} MB max RSS "
                             f"({r['tracemalloc_peak_mb']:.0f} MB traced)")
    if "dred" in results:
        rows = results["dred"]["rows"]
        for r in (r for r in rows if r["env"] == "CaveEscapeVecEnv"):
            target = " (target >= 100x)" if r["n_envs"] == 1024 else ""
            lines.append(f"dred env n={r['n_envs']}: {r['steps_per_s']:,.0f} steps/s, "
                         f"{r['ratio']:.0f}x DummyVecEnv (n={r['vs']}){target}")
        for r in results["dred"]["ppo_rows"]:
            if r["env"] == "CaveEscapeVecEnv":
                lines.append(f"dred PPO {r['policy']} {r['n_envs']}x{r['n_steps']}: "
                             f"{r['steps_per_s']:,.0f} "
                             f"env steps/s, {r['ratio']:.2f}x today's pipeline")
    return lines


def _primitives(argv: list[str]) -> dict[str, Any]:
    """The Numba kernels against their vectorised NumPy twins (``bench_primitives``)."""
    from benchmarks import bench_primitives
    from benchmarks.common import format_table

    rows = bench_primitives.run(bench_primitives.parse_args(argv))
    table = format_table(["primitive", "numpy s", "numba s", "speed-up", "max rel diff"],
                         [[name, a, b, f"{a / b:.2f}x", diff] for name, a, b, diff in rows])
    return {"rows": [{"name": n, "numpy_s": a, "numba_s": b, "max_rel_diff": d}
                     for n, a, b, d in rows], "table": table}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (2 if args.quick else 5)
    if args.quick:  # a smoke run: the repeats only, not a tenth of a second of calls each
        common.MIN_TOTAL_S = 0.0
    info = machine_info()
    print("robustrl benchmarks" + (" (quick)" if args.quick else ""))
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    results: dict[str, Any] = {"machine": info, "quick": args.quick, "repeats": repeats}
    start = time.perf_counter()
    for section in args.sections:
        print(f"\n== {section} ==", flush=True)
        cfg = sizes[section]
        if section == "fig1":
            from benchmarks import bench_fig1

            out = bench_fig1.run_fig1(1 if args.quick else 3, args.r2pvi_official,
                                      args.r2pvi_official_python, cfg["extra"],
                                      fill=not args.quick, jit_rows=not args.quick)
        elif section == "compile":
            from benchmarks import bench_fig1

            out = bench_fig1.run_compile(cfg["extra"])
        elif section == "put":
            from benchmarks import bench_fig1

            out = bench_fig1.run_put(cfg["sizes"], repeats=repeats,
                                     budget=args.budget or cfg["budget"],
                                     official=args.r2pvi_official,
                                     official_python=args.r2pvi_official_python)
        elif section == "offline":
            out = bench_offline.run(cfg["sizes"], repeats=repeats,
                                    budget=args.budget or cfg["budget"])
        elif section == "online":
            rl = args.rlberry_python
            if rl is None and args.quick:
                rl = ""
            out = bench_online.run(cfg["episodes"], repeats=max(1, repeats - 2) if not
                                   args.quick else 1, rlberry_python=rl)
        elif section == "scaling":
            out = bench_scaling.run(cfg["ks"], cfg["dims"], cfg["k_for_dims"], cfg["d_for_ks"],
                                    cfg["gram_shapes"], repeats=min(repeats, 3))
        elif section == "memory":
            out = bench_memory.run(cfg["samples"], dim=cfg["dim"], chunk=cfg["chunk"])
        elif section == "dred":
            from benchmarks import bench_dred

            out = bench_dred.run(cfg, repeats=min(repeats, 3))
        else:
            out = _primitives(cfg["argv"])
        results[section] = out
        print(out["table"], flush=True)
        if "official_table" in out:
            print(out["official_table"], flush=True)
        if args.out:
            atomic_write_json(args.out, results)  # a later crash keeps the finished sections
    results["seconds"] = time.perf_counter() - start
    print("\n== summary ==")
    lines = summary(results)
    results["summary"] = lines
    print("\n".join(lines))
    print(f"(total {results['seconds']:.1f} s)")
    if args.out:
        atomic_write_json(args.out, results)
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
