"""Main job: exact robust values of the simulated d-rectangular linear MDP against perturbation.

For the simulated linear MDP of Liu & Xu (2024) / the R2PVI paper (arXiv:2411.18612 simulated MDP,
docs/r2pvi-results.md) each cell
solves one policy by exact robust dynamic programming on the known nominal model and evaluates
it exactly on the perturbed kernels q = 0, 0.1, ..., 1 (q moves the goal factor's mass to the
fail state at the first transition). The ``policy`` grid axis names the policy:

* ``non-robust``: the non-robust optimal policy;
* ``tv-ball:RHO``: the optimal d-rectangular *constrained* robust policy (DRMDP) with a TV ball
  of radius RHO on the goal factor at the first transition only (the radii the DRPVI baseline
  uses, ``Rho = [[0, 0, 0, rho], [0, 0, 0, 0]]``);
* ``tv:LAM``, ``kl:LAM``, ``chi2:LAM``: the optimal d-rectangular *regularised* robust policy
  (d-RRMDP, the R2PVI objective) with one lambda for every factor and step.

Everything is exact and deterministic, so one seed suffices. The ``plot`` hook draws
``exact_robust_values.png`` (left: return against q; middle and right: the optimal robust value
against rho and lambda, solved on fine grids and stored in ``curves.json``); ``report`` prints
the table.

What the exact answer shows: a radius on the goal factor switches the optimal first action to
the cautious one once rho exceeds about 0.38, trading return at q = 0 for return at q = 1. A
single lambda on all factors lowers the robust value but keeps the greedy first action: the
fail state (value 0) caps every factor's worst case alike, and KL / chi-square cannot move a
point mass at all, so no factor becomes relatively worse.

Run: robustrl run exact_robust_values --out results/exact_robust_values
(``python experiments/exact_robust_values.py [run options]`` does the same.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write, atomic_write_json

NAME = "exact_robust_values"
DESCRIPTION = ("exact robust DP policies (TV ball; TV/KL/chi2 regularised) "
               "evaluated exactly under dynamics shift")
GRID = {"policy": ["non-robust", "tv-ball:0.2", "tv-ball:0.5", "tv:0.1", "tv:1", "kl:0.1",
                   "kl:1", "chi2:0.1", "chi2:1"]}
SEEDS = 1

DIVERGENCES = ("tv", "kl", "chi2")
LABEL = {"tv": "TV", "kl": "KL", "chi2": "chi^2"}
RHO_CURVE = np.linspace(0.0, 1.0, 41)
LAM_CURVE = np.logspace(-2, 1, 31)


def parse_policy(spec: str) -> tuple[str, float | None]:
    """``"non-robust"`` -> ("non-robust", None); ``"tv-ball:0.5"`` -> ("tv-ball", 0.5);
    ``"kl:0.1"`` -> ("kl", 0.1). ValueError names the accepted forms."""
    if spec == "non-robust":
        return spec, None
    kind, sep, num = spec.partition(":")
    forms = "non-robust, tv-ball:RHO (0 <= RHO <= 1) or tv|kl|chi2:LAMBDA (LAMBDA > 0)"
    try:
        value = float(num) if sep else None
    except ValueError:
        value = None
    if value is None or kind not in ("tv-ball", *DIVERGENCES):
        raise ValueError(f"policy must be one of {forms}; got {spec!r}")
    if kind == "tv-ball" and not 0.0 <= value <= 1.0:
        raise ValueError(f"policy {spec!r}: the TV radius RHO must lie in [0, 1]")
    if kind != "tv-ball" and not value > 0.0:
        raise ValueError(f"policy {spec!r}: LAMBDA must be > 0")
    return kind, value


def label(spec: str) -> str:
    kind, value = parse_policy(spec)
    if kind == "non-robust":
        return kind
    if kind == "tv-ball":
        return f"TV ball, rho={value:g}"
    return f"{LABEL[kind]}, lambda={value:g}"


def check(params: dict) -> None:
    parse_policy(params["policy"])


def goal_factor_radius(rho: float, horizon: int = 3, d: int = 4) -> np.ndarray:
    """Per-step, per-factor TV radii with only the goal factor (4) uncertain at step 0."""
    radius = np.zeros((horizon, d))
    radius[0, d - 1] = rho
    return radius


def solve(spec: str):
    """The exact robust DP solution for a policy spec (see the module docstring)."""
    from robustrl.envs import SimulatedLinearMDPEnv
    from robustrl.exact import robust_value_iteration

    nominal = SimulatedLinearMDPEnv().model
    kind, value = parse_policy(spec)
    if kind == "non-robust":
        return robust_value_iteration(nominal)
    if kind == "tv-ball":
        return robust_value_iteration(nominal, divergence="tv", rho=goal_factor_radius(value))
    return robust_value_iteration(nominal, divergence=kind, lam=value)


def run_one(params: dict, seed: int) -> dict:
    from robustrl.envs import SimulatedLinearMDPEnv
    from robustrl.evaluation import evaluate_exact

    sol = solve(params["policy"])
    grid = [float(q) for q in SimulatedLinearMDPEnv.perturbation_grid]
    returns = evaluate_exact(sol.policy, lambda q: SimulatedLinearMDPEnv(perturbation=q),
                             grid).mean
    return {
        "objective_value": float(sol.value),
        "return_q0": float(returns[0]),
        "return_q1": float(returns[-1]),
        "max_min_gap": float(returns.max() - returns.min()),
        "first_action": int(sol.policy[0, 0]),
        "perturbations": grid,
        "return_vs_q": returns.tolist(),
    }


def value_curves() -> dict:
    """Optimal robust values against rho (goal-factor TV ball) and lambda (each divergence)."""
    from robustrl.envs import SimulatedLinearMDPEnv
    from robustrl.exact import robust_value_iteration

    nominal = SimulatedLinearMDPEnv().model
    return {
        "rho_curve": RHO_CURVE.tolist(),
        "robust_value_vs_rho": [
            float(robust_value_iteration(nominal, divergence="tv",
                                         rho=goal_factor_radius(r)).value) for r in RHO_CURVE],
        "lam_curve": LAM_CURVE.tolist(),
        "robust_value_vs_lam": {
            div: [float(robust_value_iteration(nominal, divergence=div, lam=lam).value)
                  for lam in LAM_CURVE] for div in DIVERGENCES},
        "non_robust_value": float(robust_value_iteration(nominal).value),
    }


def report(results: list[dict]) -> str:
    """The table: each policy's objective and exact return at q = 0, 0.5, 1."""
    grid = results[0]["metrics"]["perturbations"]
    cols = [0, len(grid) // 2, len(grid) - 1]
    head = f"{'policy':<20}{'objective':>10}" + "".join(f"{f'q={grid[c]:.1f}':>9}" for c in cols)
    head += f"{'max-min':>10}"
    lines = ["Exact return of each policy on the perturbed kernels (simulated linear MDP, H=3)",
             head, "-" * len(head)]
    for rec in results:
        m = rec["metrics"]
        r = m["return_vs_q"]
        lines.append(f"{label(rec['params']['policy']):<20}{m['objective_value']:>10.4f}"
                     + "".join(f"{r[i]:>9.4f}" for i in cols) + f"{m['max_min_gap']:>10.4f}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``exact_robust_values.png`` (three panels) and ``curves.json``."""
    from matplotlib.figure import Figure

    curves = value_curves()
    out_dir = Path(out_dir)
    paths = [atomic_write_json(out_dir / "curves.json", curves)]
    fig = Figure(figsize=(15, 4.2))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for rec in results:
        m, name = rec["metrics"], label(rec["params"]["policy"])
        style = {"color": "black", "ls": "--", "zorder": 5} if name == "non-robust" else {}
        ax1.plot(m["perturbations"], m["return_vs_q"], marker="o", ms=3, label=name, **style)
    ax1.set_xlabel("perturbation q (goal mass moved to fail state)")
    ax1.set_ylabel("exact expected return")
    ax1.set_title("Exact-DP robust policies under dynamics shift")
    ax1.legend(fontsize=7, ncol=2)
    ax2.plot(curves["rho_curve"], curves["robust_value_vs_rho"], color="C0")
    ax2.set_xlabel("TV radius rho on the goal factor at step 1")
    ax2.set_ylabel("optimal robust value V*_rho(x1)")
    ax2.set_title("DRMDP value against rho (kink: policy switch)")
    for div, vals in curves["robust_value_vs_lam"].items():
        ax3.plot(curves["lam_curve"], vals, label=LABEL[div])
    ax3.axhline(curves["non_robust_value"], color="black", ls="--", label="non-robust V*")
    ax3.set_xscale("log")
    ax3.set_xlabel("regulariser lambda (small = more robust)")
    ax3.set_ylabel("optimal regularised robust value V*_lambda(x1)")
    ax3.set_title("d-rectangular RRMDP value against lambda")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    paths.append(atomic_write(out_dir / "exact_robust_values.png",
                              lambda fh: fig.savefig(fh, format="png", dpi=120), binary=True))
    return paths


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
