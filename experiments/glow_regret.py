"""Cumulative regret of GLOW (two schedules) and GLOW-lin on combination locks, with the bound.

GLOW regret experiment. Each cell runs one method for ``rounds`` rounds (``K = 1``) on the nominal
combination lock (:mod:`robustrl.envs.combination_lock`, ``S`` states per layer, ``A`` actions,
horizon ``H``; the secret code is drawn from the cell seed) and records its exact cumulative
regret at log-spaced checkpoints (``robustrl.exact``):

* ``glow``: :class:`robustrl.agents.GLOW`, ``F`` = Q* of all ``A^H`` codes, tabular ``W``,
  ``constants="recon"`` with ``kappa``;
* ``glow_paper``: the same with Algorithm 1's constants (``constants="paper"``, arXiv:2401.09681);
* ``glow_lin``: :class:`robustrl.agents.glow_lin.GLOWLin` on the lock's one-hot features
  (an approximation of GLOW, ``kappa`` as given).

``bound`` is :func:`robustrl.theory.glow.glow_regret_bound` at every checkpoint ``T`` with the
GLOW configuration's ``log(|F||W|HT/delta)`` (tabular covering surrogate) and the exact
``C_cov``; it is the order of Theorem 3.1 in an explicit form with ``c = 1`` (our choice).
Note that the ``T`` of a checkpoint is an intermediate round of a run tuned for ``rounds``.
``plot`` draws ``glow_regret.png`` (mean cumulative regret, log-log, bound dotted); ``report``
prints the final regret per method and horizon.

Run: robustrl run glow_regret --out results/glow_regret --workers 2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "glow_regret"
DESCRIPTION = "cumulative regret of GLOW (recon / paper constants) and GLOW-lin on locks vs bound"
METHODS = ("glow", "glow_paper", "glow_lin")
GRID = {
    "horizon": [4, 6],
    "method": list(METHODS),
    "rounds": [200],
    "n_states": [2],
    "n_actions": [2],
    "kappa": [0.01],
    "delta": [0.1],
}
SEEDS = 3
X_AXIS = "horizon"
N_CHECKPOINTS = 12


def check(params: dict) -> None:
    from robustrl.validation import check_int, check_positive, check_scalar

    if params["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {params['method']!r}")
    check_int(params["horizon"], "horizon", low=1)
    check_int(params["rounds"], "rounds", low=2)
    check_int(params["n_states"], "n_states", low=2)
    check_int(params["n_actions"], "n_actions", low=2)
    check_positive(params["kappa"], "kappa")
    check_scalar(params["delta"], "delta", low=0.0, high=1.0, low_inclusive=False,
                 high_inclusive=False)


def checkpoints(rounds: int) -> np.ndarray:
    return np.unique(np.geomspace(1, rounds, N_CHECKPOINTS).round().astype(np.int64))


def run_one(params: dict, seed: int) -> dict:
    from robustrl.agents.glow import GLOW
    from robustrl.agents.glow_lin import GLOWLin
    from robustrl.envs.combination_lock import (
        CombinationLockEnv,
        combination_lock,
        combination_lock_value_class,
    )
    from robustrl.theory.coverability import coverability_coefficient
    from robustrl.theory.glow import glow_regret_bound

    check(params)
    H, S, A = params["horizon"], params["n_states"], params["n_actions"]
    T, kappa, delta = params["rounds"], params["kappa"], params["delta"]
    code_seed = int(seed % (2**31))
    model = combination_lock(H, S, A, seed=code_seed)
    F = combination_lock_value_class(H, S, A)
    C_cov = float(coverability_coefficient(model))
    glow = GLOW(model, F, "tabular", kappa=kappa, delta=delta, seed=0, coverability_guess=C_cov,
                constants="paper" if params["method"] == "glow_paper" else "recon")
    if params["method"] == "glow_lin":
        env = CombinationLockEnv(horizon=H, n_states=S, n_actions=A, seed=code_seed)
        agent = GLOWLin(env, kappa=kappa, delta=delta, seed=0).learn(total_rounds=T)
    else:
        agent = glow.learn(total_rounds=T)
    cum = np.cumsum(agent.regret_)
    ks = checkpoints(T)
    bound = [glow_regret_bound(int(k), H, C_cov, glow.log_term(int(k))) for k in ks]
    solved = np.flatnonzero(agent.regret_ < 1e-12)
    return {
        "final_regret": float(cum[-1]),
        "first_optimal_round": int(solved[0] + 1) if solved.size else -1,
        "C_cov": C_cov,
        "checkpoints": ks.tolist(),
        "cumulative_regret": cum[ks - 1].tolist(),
        "bound": [float(b) for b in bound],
    }


def _groups(results: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for rec in results:
        out.setdefault(tuple(sorted(rec["params"].items())), []).append(rec)
    return out


def report(results: list[dict]) -> str:
    """Final cumulative regret (mean, max over seeds) and the bound at the last round."""
    head = f"{'H':>3} {'method':<11}{'T':>6}{'seeds':>6}{'mean R(T)':>11}{'max R(T)':>10}" \
           f"{'bound(T)':>11}  first optimal round"
    lines = ["Exact cumulative regret on combination locks (bound: Thm 3.1 order, c = 1)",
             head, "-" * len(head)]
    for recs in sorted(_groups(results).values(),
                       key=lambda r: (r[0]["params"]["horizon"], r[0]["params"]["method"])):
        p = recs[0]["params"]
        final = np.array([r["metrics"]["final_regret"] for r in recs])
        first = [r["metrics"]["first_optimal_round"] for r in recs]
        lines.append(f"{p['horizon']:>3} {p['method']:<11}{p['rounds']:>6}{len(recs):>6}"
                     f"{final.mean():>11.2f}{final.max():>10.2f}"
                     f"{recs[0]['metrics']['bound'][-1]:>11.1f}  {first}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``glow_regret.png``: mean cumulative regret per method (log-log), bound dotted."""
    from matplotlib.figure import Figure

    from robustrl._io import atomic_write

    groups = _groups(results)
    horizons = sorted({r["params"]["horizon"] for r in results})
    fig = Figure(figsize=(5.5 * len(horizons), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(horizons), squeeze=False)[0])
    for ax, H in zip(axes, horizons, strict=True):
        drawn_bound = False
        for recs in groups.values():
            p = recs[0]["params"]
            if p["horizon"] != H:
                continue
            ks = np.asarray(recs[0]["metrics"]["checkpoints"])
            mean = np.mean([r["metrics"]["cumulative_regret"] for r in recs], axis=0)
            ax.plot(ks, np.maximum(mean, 1e-2), marker="o", label=p["method"])
            if not drawn_bound:
                ax.plot(ks, recs[0]["metrics"]["bound"], ":", color="gray",
                        label="bound (Thm 3.1 order, c=1)")
                ax.plot(ks, ks, "--", color="lightgray", label="trivial: T")
                drawn_bound = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("round T")
        ax.set_ylabel("cumulative exact regret (0 drawn at 0.01)")
        ax.set_title(f"combination lock H={H}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / "glow_regret.png"
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)
    return [path]
