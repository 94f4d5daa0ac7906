"""Online episodes per second: DR-RPO and LSVI-UCB of the package against the loop-style
references of :mod:`benchmarks.loop_reference` and, when it is installed in a separate virtual
environment, rlberry's LSVI-UCB (``rlberry_scool.agents.linear.LSVIUCBAgent``).

All run K episodes on the simulated linear MDP (d = 4, |A| = 16, H = 3; ridge 0.1, beta 1,
rlberry with gamma = 1, bonus factor 1, reg 0.1) from seed 0. The package agents run with
``track_regret = False`` (the exact regret bookkeeping is not part of the learning) after a
warm-up run that compiles the kernels; ``package eps/s`` is the best of ``repeats`` runs, the
references run once. Every LSVI-style agent refits over all past data each episode, so the cost
per episode grows with K: compare rows of the same K only. ``max |dw|`` compares the final
weights with the loop reference (same seed, so the same episodes are played while rounding
does not flip a decision).

rlberry's agent is not the same algorithm in every detail: it keeps one Gram matrix for all
steps (stationary features), adds ``v_max * phi^T Lambda^{-1} phi`` to its bonus, and does not
clip at ``H - h``; it is timed as the ecosystem's LSVI-UCB on the same environment, d, H and K.
rlberry pins gymnasium < 0.30, so it runs as a subprocess (``benchmarks/rlberry_lsvi.py``) with
the interpreter given by ``--rlberry-python`` (default ``/tmp/rlberry_venv/bin/python`` if it
exists; install: ``python -m venv /tmp/rlberry_venv && /tmp/rlberry_venv/bin/pip install rlberry
rlberry-scool``); its time includes nothing but ``agent.fit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import best_time, format_table, once
from benchmarks.loop_reference import LoopDRRPO, LoopLSVIUCB
from robustrl.agents import DRRPO, LSVIUCB
from robustrl.envs import SimulatedLinearMDPEnv

DEFAULT_RLBERRY_PYTHON = "/tmp/rlberry_venv/bin/python"
RLBERRY_SCRIPT = Path(__file__).with_name("rlberry_lsvi.py")


#: settings matching the loop references (LoopDRRPO is DR-RPO's 0.1.0 default order).
LOOP_SETTINGS = {"DRRPO": {"policy_q": "linear", "evaluation": "updated"}}


def _package_run(cls, episodes: int):
    agent = cls(SimulatedLinearMDPEnv(), seed=0, **LOOP_SETTINGS.get(cls.__name__, {}))
    agent.track_regret = False
    agent.learn(total_episodes=episodes)
    return agent


def rlberry_seconds(python: str, episodes: int, timeout: float) -> tuple[float | None, str]:
    """Seconds of rlberry's ``LSVIUCBAgent.fit(episodes)``, or ``(None, reason)``."""
    if not python or not Path(python).exists():
        return None, f"rlberry not run: no interpreter at {python!r}"
    model = SimulatedLinearMDPEnv().model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.npz")
        np.savez(path, phi=model.phi, P=model.P, R=model.R,
                 initial_distribution=model.initial_distribution)
        try:
            proc = subprocess.run([python, str(RLBERRY_SCRIPT), path, str(episodes), "0"],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"rlberry timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return None, "rlberry failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(out["seconds"]), f"rlberry {out.get('rlberry', '?')}"


def run(episodes: list[int], repeats: int = 3, rlberry_python: str | None = None,
        rlberry_timeout: float = 300.0, log=print) -> dict[str, Any]:
    if rlberry_python is None:
        rlberry_python = DEFAULT_RLBERRY_PYTHON
    for cls in (LSVIUCB, DRRPO):  # compile the kernels outside the timings
        _package_run(cls, 3)
    rows = []
    notes = []
    for k in episodes:
        for cls, ref_cls in ((LSVIUCB, LoopLSVIUCB), (DRRPO, LoopDRRPO)):
            package = best_time(lambda cls=cls, k=k: _package_run(cls, k), repeats, warmup=False)
            agent = _package_run(cls, k)
            ref_seconds, ref = once(lambda ref_cls=ref_cls, k=k:
                                    ref_cls(SimulatedLinearMDPEnv(), seed=0).learn(k))
            diff = float(np.max(np.abs(np.array(ref.w) - agent.weights_)))
            rows.append({"agent": cls.__name__, "peer": "loop reference (NumPy)", "K": k,
                         "package_eps": k / package, "peer_eps": k / ref_seconds,
                         "ratio": ref_seconds / package, "max_abs_weight_diff": diff})
            log(f"  online {cls.__name__} K={k}: {k / package:.1f} eps/s vs loop reference "
                f"{k / ref_seconds:.1f} eps/s ({ref_seconds / package:.1f}x)")
        seconds, note = rlberry_seconds(rlberry_python, k, rlberry_timeout)
        if seconds is None:
            notes.append(f"K={k}: {note}")
            log(f"  online rlberry K={k}: {note}")
            continue
        for r in [r for r in rows if r["K"] == k and r["peer"].startswith("loop")]:
            package_seconds = k / r["package_eps"]
            rows.append({"agent": r["agent"], "peer": f"{note} LSVIUCBAgent", "K": k,
                         "package_eps": r["package_eps"], "peer_eps": k / seconds,
                         "ratio": seconds / package_seconds,
                         "max_abs_weight_diff": float("nan")})
        log(f"  online rlberry K={k}: {k / seconds:.1f} eps/s ({note})")
    header = ["agent", "peer", "K", "package eps/s", "peer eps/s", "ratio", "max |dw|"]
    table = format_table(header, [
        [r["agent"], r["peer"], r["K"], r["package_eps"], r["peer_eps"], f"{r['ratio']:.1f}x",
         r["max_abs_weight_diff"]] for r in rows])
    if notes:
        table += "\n" + "\n".join(notes)
    return {"rows": rows, "table": table, "notes": notes,
            "rlberry_python": rlberry_python, "python": sys.executable}
