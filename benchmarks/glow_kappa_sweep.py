"""GLOW's confidence radius ``kappa`` (``constants="recon"``): speed against validity.

``beta_t = kappa L / (alpha_t n_t)`` (docs/algorithms/glow.md); Algorithm 1 of arXiv:2401.09681
corresponds to ``kappa = 288``. For each ``kappa`` this script measures

* **speed**: on combination locks (``S = 2``, ``A = 2``, ``F`` = ``Q*`` of every code, tabular
  ``W``, ``K = 1``), the first round whose policy is optimal (median over code seeds) and the
  codes still in the confidence set at the end;
* **validity** (check T1 of docs/algorithms/glow.md): on random layered MDPs (``H = 3``,
  ``S = 3``, ``A = 2``, ``F`` = ``Q*`` + 200 perturbed tables, tabular ``W``, ``K = 5``, 30
  rounds), the fraction of seeds in which ``Q*`` leaves the confidence set in some round (the
  guarantee needs it never to), and the fraction that reach the optimal policy.

Usage: ``python benchmarks/glow_kappa_sweep.py [--quick]`` (about 1 min; ``--quick`` seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robustrl.agents.glow import GLOW
from robustrl.envs.combination_lock import (
    combination_lock,
    combination_lock_code,
    combination_lock_code_index,
    combination_lock_coverability,
    combination_lock_value_class,
)
from robustrl.envs.layered_mdp import layered_tabular_mdp
from robustrl.exact import robust_value_iteration

KAPPAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 288.0)


def lock_row(kappa: float, H: int, seeds: int, T: int) -> tuple[str, str, int]:
    """(median first optimal round, codes left (median), seeds where Q* was excluded)."""
    firsts, left, excluded = [], [], 0
    F = combination_lock_value_class(H, 2, 2)
    for s in range(seeds):
        model = combination_lock(H, 2, 2, seed=s)
        true = combination_lock_code_index(combination_lock_code(H, 2, s), 2)
        a = GLOW(model, F, "tabular", kappa=kappa, seed=s,
                 coverability_guess=combination_lock_coverability(H, 2, 2)).learn(total_rounds=T)
        hits = np.flatnonzero(a.regret_ < 1e-12)
        firsts.append(hits[0] + 1 if hits.size else np.inf)
        left.append(int(a.in_set_[-1].sum()))
        excluded += int(not a.in_set_[:, true].all())
    med = float(np.median(firsts))
    return ("never" if not np.isfinite(med) else f"{med:g}"), f"{np.median(left):g}", excluded


def validity_row(kappa: float, seeds: int, rounds: int = 30) -> tuple[float, float]:
    """(fraction of seeds where Q* was excluded at some round, fraction ending optimal)."""
    excluded = optimal = 0
    for s in range(seeds):
        model = layered_tabular_mdp(3, 3, 2, seed=s)
        rng = np.random.default_rng(s)
        Q = robust_value_iteration(model).Q
        caps = (3 - np.arange(3))[:, None, None]
        F = np.concatenate([Q[None], np.clip(Q[None] + rng.normal(0, 0.5, (200, 3, 3, 2)),
                                             0.0, caps)])
        a = GLOW(model, F, "tabular", episodes_per_round=5, kappa=kappa, seed=s)
        a.learn(total_rounds=rounds)
        excluded += int(not a.in_set_[:, 0].all())
        optimal += int(a.regret_[-1] < 1e-12)
    return excluded / seeds, optimal / seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 kappas, tiny sizes (tests)")
    args = parser.parse_args(argv)
    kappas = (1e-3, 288.0) if args.quick else KAPPAS
    seeds, T, vseeds = (2, 30, 3) if args.quick else (5, 200, 20)
    t0 = time.perf_counter()
    print(f"lock: S=2, A=2, K=1, {seeds} codes, T={T}; validity: layered H=3 S=3 A=2, "
          f"|F|=201, K=5, 30 rounds, {vseeds} seeds")
    print("| kappa | H=4: first optimal round | H=4: codes left | H=6: first optimal round "
          "| H=6: codes left | lock seeds with Q* excluded | layered: Q* excluded | "
          "layered: optimal at the end |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kappa in kappas:
        f4, l4, e4 = lock_row(kappa, 4, seeds, T)
        f6, l6, e6 = lock_row(kappa, 6, seeds, T)
        ex, opt = validity_row(kappa, vseeds)
        print(f"| {kappa:g} | {f4} | {l4} | {f6} | {l6} | {e4 + e6} of {2 * seeds} | "
              f"{ex:.2f} | {opt:.2f} |")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
