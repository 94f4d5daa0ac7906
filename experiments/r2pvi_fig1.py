"""R2PVI paper, Figure 1(a)-(c): average return against the perturbation q on the simulated MDP.

arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md. Each cell draws K offline trajectories of the
uniformly random behaviour
policy from the nominal simulated d-rectangular linear MDP (H = 3, d = 4, 16 actions), fits one
learner, and evaluates its greedy policy on the perturbed kernels q = 0, 0.1, ..., 1 (q moves
the goal factor's mass to the fail state at the first transition) twice: by ``episodes``
Monte-Carlo episodes per q (the paper's measure: 100 test episodes, 20 replications = seeds)
and exactly (:func:`robustrl.evaluation.evaluate_exact`, no test noise).

The ``method`` grid axis names the learner:

* ``pevi``: PEVI (the non-robust baseline, rewards regressed as in the authors' code);
* ``tv:LAM``, ``kl:LAM``, ``chi2:LAM``: R2PVI with that divergence and regulariser lambda
  (known reward weights ``theta``, as the authors' simulated-MDP code);
* ``chi2-code:LAM``: R2PVI-chi2 as the authors' simulated-MDP code computes it
  (docs/algorithms/r2pvi.md,
  differences from the authors' code): the chi2 dual ``z1 - (z2 - z1^2) / (4 lam)`` *minimised* over
  alpha in ``[min V, max V]``
  instead of maximised (exactly: the smaller of the two endpoint values, the dual being concave
  in alpha) -- an explicitly labelled reproduction of their bug, not R2PVI;
* ``drpvi:RHO``: DRPVI with a TV ball of radius RHO on the goal factor at the first transition
  only (the authors' ``Rho = [[0, 0, 0, rho], [0, 0, 0, 0], ...]``).

The d-rectangular penalty form is the spec's optional third field, ``KIND:VALUE:BONUS`` with
BONUS ``paper_l1`` (the default when omitted: ``beta sum_i phi_i sqrt([Lambda^-1]_ii)``, the
paper's form, arXiv:2411.18612 Algorithm 1) or ``code_l2`` (``beta sqrt(sum_i phi_i^2
[Lambda^-1]_ii)``, the authors' code), e.g. ``method: ["tv:0.1", "tv:0.1:code_l2"]`` draws both
R2PVI-TV curves. It lives in the method spec rather than in a grid key of its own so that the
cells of the default form keep their parameters, hence their seeds and numbers.

Paper settings (defaults): K = 100, beta = 1, ridge = 0.1, lambda = 0.1, DRPVI rho = 0.1,
20 seeds x 100 test episodes, TV ``V_min`` taken from the data (``v_min=data``, the authors'
choice; ``v_min=0`` is the exact minimum over states, the fail state's 0).

The ``plot`` hook draws ``r2pvi_fig1.png``: (a) PEVI and the three R2PVI variants at lambda =
0.1 with the paper's digitised curves (dotted), (b) each divergence for several lambda, (c) the
return at q = 1 against DRPVI's rho and R2PVI-TV's lambda. ``report`` prints the table with the
paper's numbers side by side.

Run: robustrl run r2pvi_fig1 --out results/r2pvi_fig1 --workers 2
"""

from __future__ import annotations

import functools
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write
from robustrl.agents.estimators import RowEstimator

NAME = "r2pvi_fig1"
DESCRIPTION = ("R2PVI paper Fig. 1: return vs perturbation q on the simulated linear MDP "
               "(PEVI, R2PVI TV/KL/chi2 for several lambda, DRPVI for several rho)")
_TENTHS = [round(0.1 * i, 1) for i in range(1, 11)]
GRID = {
    "method": (["pevi"] + [f"tv:{x:g}" for x in _TENTHS]
               + [f"{div}:{x:g}" for div in ("kl", "chi2") for x in (0.1, 0.2, 0.3, 0.6)]
               + [f"drpvi:{x:g}" for x in _TENTHS] + ["chi2-code:0.1"]),
    "K": [100],
    "episodes": [100],
    "beta": [1.0],
    "ridge": [0.1],
    "v_min": ["data"],
}
SEEDS = 20
# the paper's figure (plot) and the table (report, summary.csv) replace the runner's per-metric
# figures, which would take longer to draw than the demo's cells take to run;
# `robustrl plot DIR --metric-figures` draws them
METRIC_FIGURES = False

KINDS = ("pevi", "tv", "kl", "chi2", "drpvi", "chi2-code")
LABEL = {"pevi": "PEVI", "tv": "R2PVI-TV", "kl": "R2PVI-KL", "chi2": "R2PVI-chi2",
         "drpvi": "DRPVI", "chi2-code": "chi2 as code"}

# arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md, digitised from the paper's Fig. 1(a) (q =
# 0, 0.1, ..., 1), lambda = 0.1, rho = 0.1.
PAPER_FIG1A = {
    "pevi": [1.545, 1.473, 1.391, 1.301, 1.228, 1.162, 1.089, 0.997, 0.912, 0.827, 0.747],
    "tv:0.1": [1.390, 1.345, 1.309, 1.282, 1.246, 1.207, 1.166, 1.125, 1.078, 1.045, 1.004],
    "kl:0.1": [1.397, 1.355, 1.315, 1.274, 1.227, 1.188, 1.154, 1.115, 1.071, 1.037, 1.000],
    "chi2:0.1": [1.350, 1.329, 1.308, 1.291, 1.265, 1.238, 1.199, 1.168, 1.134, 1.109, 1.084],
}
# Fig. 1(b): one R2PVI variant (divergence unknown), return at q = 0 and q = 1.
PAPER_FIG1B = {0.1: (1.574, 1.096), 0.2: (1.608, 0.993), 0.3: (1.659, 0.874),
               0.6: (1.723, 0.698)}
# Fig. 1(c): x = 0.1 .. 1 (rho for DRPVI, lambda for R2PVI); the q used is not stated.
PAPER_FIG1C = {
    "drpvi": [0.769, 0.786, 0.800, 0.830, 0.865, 0.913, 0.961, 1.011, 1.022, 1.029],
    "r2pvi": [1.066, 1.018, 0.950, 0.877, 0.800, 0.778, 0.766, 0.760, 0.760, 0.760],
}


BONUSES = ("paper_l1", "code_l2")


def parse_bonus(spec: str) -> str:
    """The penalty form a ``method`` spec names: its third field, ``"paper_l1"`` when absent
    (``"tv:0.1"`` -> ``"paper_l1"``, ``"tv:0.1:code_l2"`` -> ``"code_l2"``)."""
    parse_method(spec)
    parts = str(spec).split(":")
    return parts[2] if len(parts) == 3 else "paper_l1"


def parse_method(spec: str) -> tuple[str, float | None]:
    """``"pevi"`` -> ("pevi", None); ``"kl:0.1"`` -> ("kl", 0.1); ``"drpvi:0.3"`` ->
    ("drpvi", 0.3); ``"tv:0.1:code_l2"`` -> ("tv", 0.1) (the penalty form:
    :func:`parse_bonus`). ValueError names the accepted forms."""
    if spec == "pevi":
        return spec, None
    forms = ("pevi, tv|kl|chi2|chi2-code:LAMBDA (LAMBDA > 0) or drpvi:RHO (0 <= RHO <= 1), "
             f"each optionally followed by :BONUS with BONUS in {', '.join(BONUSES)}")
    kind, sep, num = str(spec).partition(":")
    num, sep3, bonus = num.partition(":")
    if sep3 and bonus not in BONUSES:
        raise ValueError(f"method {spec!r}: the penalty form BONUS must be one of "
                         f"{', '.join(BONUSES)}; got {bonus!r}")
    try:
        value = float(num) if sep else None
    except ValueError:
        value = None
    if value is None or kind not in KINDS[1:]:
        raise ValueError(f"method must be one of {forms}; got {spec!r}")
    if kind == "drpvi" and not 0.0 <= value <= 1.0:
        raise ValueError(f"method {spec!r}: the DRPVI radius RHO must lie in [0, 1]")
    if kind != "drpvi" and not value > 0.0:
        raise ValueError(f"method {spec!r}: LAMBDA must be > 0")
    return kind, value


def method_label(spec: str) -> str:
    kind, value = parse_method(spec)
    if value is None:
        return LABEL[kind]
    l2 = "-l2" if parse_bonus(spec) == "code_l2" else ""
    return f"{LABEL[kind]}{l2}, {'rho' if kind == 'drpvi' else 'lambda'}={value:g}"


def parse_v_min(text) -> str | float:
    if text == "data":
        return "data"
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"v_min must be 'data' or a number; got {text!r}") from None


def check(params: dict) -> None:
    from robustrl.validation import check_int, check_nonnegative, check_positive

    parse_method(params["method"])
    check_int(params["K"], "K", low=1)
    check_int(params["episodes"], "episodes", low=1)
    check_nonnegative(params["beta"], "beta")
    check_positive(params["ridge"], "ridge")
    parse_v_min(params["v_min"])


def goal_factor_radius(rho: float, horizon: int = 3, d: int = 4) -> np.ndarray:
    """DRPVI radii: only the goal factor (index d-1) at the first transition is uncertain."""
    radius = np.zeros((horizon, d))
    radius[0, d - 1] = rho
    return radius


def make_agent(spec: str, env, beta: float, ridge: float, v_min="data"):
    """The learner a ``method`` spec names, with the paper's other settings."""
    from robustrl.agents import DRPVI, PEVI, R2PVI

    kind, value = parse_method(spec)
    if kind == "pevi":
        return PEVI(env, beta=beta, ridge=ridge)
    # the authors' robust learners use the simulated MDP's known reward weights
    known = {"reward": "known", "bonus": parse_bonus(spec)}
    if kind == "drpvi":
        return DRPVI(env, rho=goal_factor_radius(value, env.horizon, env.feature_dim),
                     beta=beta, ridge=ridge, **known)
    if kind == "chi2-code":
        return R2PVI(env, divergence="chi2", lam=value, beta=beta, ridge=ridge,
                     estimator=Chi2AsCode(value), **known)
    return R2PVI(env, divergence=kind, lam=value, beta=beta, ridge=ridge,
                 v_min=parse_v_min(v_min) if kind == "tv" else "data", **known)


class Chi2AsCode(RowEstimator):
    """R2PVI-chi2 with the dual minimised over alpha, as the authors' simulated-MDP code
    (arXiv 2411.18612 code release, chi2 case); a reproduction of their numbers, not the paper's
    estimator: ``min over alpha in {min V, max V} of z1 - (z2 - z1^2) / (4 lam)``."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def estimate(self, h, xi, values, in_regression):
        if values.size == 0:
            return np.zeros(xi.shape[0])
        ends = []
        for alpha in (values.min(), values.max()):
            w = np.minimum(values, alpha)
            z1, z2 = xi @ w, xi @ (w * w)
            ends.append(z1 - (z2 - z1 * z1) / (4.0 * self.lam))
        return np.minimum(ends[0], ends[1])


@functools.cache
def evaluation_env(q: float):
    """The test environment at level ``q``, built once per process: evaluation reseeds it
    (batched rollouts) or reads its model (exact returns), so every cell may share it."""
    from robustrl.envs import SimulatedLinearMDPEnv

    return SimulatedLinearMDPEnv(perturbation=q)


def run_one(params: dict, seed: int) -> dict:
    from robustrl.data import OfflineDataset
    from robustrl.envs import SimulatedLinearMDPEnv
    from robustrl.evaluation import evaluate, evaluate_exact
    from robustrl.theory.r2pvi import greedy_policy

    env = SimulatedLinearMDPEnv()
    rng = np.random.default_rng(seed)
    data_seed, test_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
    data = OfflineDataset.collect(env, int(params["K"]), seed=data_seed)
    agent = make_agent(params["method"], env, float(params["beta"]), float(params["ridge"]),
                       params["v_min"]).fit(data)
    policy = greedy_policy(agent, env.model)
    grid = [float(q) for q in SimulatedLinearMDPEnv.perturbation_grid]
    mc = evaluate(policy, evaluation_env, grid, episodes=int(params["episodes"]),
                  seed=test_seed).mean
    exact = evaluate_exact(policy, evaluation_env, grid).mean
    # xi^T a of the first action: the knob that trades nominal return for robustness
    xi_a = float(env.model.phi[0, policy[0, 0], 3] - 0.3)
    return {
        "return_q0": float(mc[0]),
        "return_q1": float(mc[-1]),
        "exact_return_q0": float(exact[0]),
        "exact_return_q1": float(exact[-1]),
        "first_action_xi_a": xi_a,
        "perturbations": grid,
        "return_vs_q": mc.tolist(),
        "exact_return_vs_q": exact.tolist(),
    }


# ------------------------------------------------------------------------------ aggregation
def group_curves(results: list[dict], key: str, by: str = "method") -> dict:
    """``{params[by]: (mean curve, 95% CI half-width, n_seeds)}`` of the list metric ``key``
    over seeds (Student t), for records that share every other parameter."""
    from robustrl.stats import student_t_halfwidth

    groups: dict = defaultdict(list)
    for rec in results:
        groups[rec["params"][by]].append(np.asarray(rec["metrics"][key], dtype=np.float64))
    out = {}
    for name, curves in groups.items():
        arr = np.stack(curves)
        out[name] = (arr.mean(axis=0), student_t_halfwidth(arr, single=0.0), arr.shape[0])
    return out


def _fmt(x) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def paper_value(spec: str, idx: int) -> float | None:
    """The paper's digitised return for ``spec`` at q index 0 or 10 (None if not read)."""
    if spec in PAPER_FIG1A:
        return PAPER_FIG1A[spec][idx]
    if spec == "chi2-code:0.1":  # the authors' code behind the paper's chi2 curve
        return PAPER_FIG1A["chi2:0.1"][idx]
    return None


def report(results: list[dict]) -> str:
    """Monte-Carlo and exact return at q = 0, 0.5, 1 per method, the paper's values beside."""
    mc = group_curves(results, "return_vs_q")
    ex = group_curves(results, "exact_return_vs_q")
    head = (f"{'method':<24}{'n':>4}{'q=0 (MC)':>14}{'q=0.5':>8}{'q=1 (MC)':>14}"
            f"{'exact q=0':>11}{'exact q=1':>11}{'paper q=0':>11}{'paper q=1':>11}")
    lines = ["R2PVI Fig. 1 reproduction: average return on the simulated linear MDP "
             "(mean over seeds, +- 95% CI)", head, "-" * len(head)]
    for spec, (m, h, n) in mc.items():
        e = ex[spec][0]
        lines.append(
            f"{method_label(spec):<24}{n:>4}{m[0]:>8.3f}+-{h[0]:.3f}{m[len(m) // 2]:>8.3f}"
            f"{m[-1]:>8.3f}+-{h[-1]:.3f}{e[0]:>11.3f}{e[-1]:>11.3f}"
            f"{_fmt(paper_value(spec, 0)):>11}{_fmt(paper_value(spec, -1)):>11}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``r2pvi_fig1.png``: panels (a)-(c) as in the paper, for whatever methods were run."""
    from matplotlib.figure import Figure

    mc = group_curves(results, "return_vs_q")
    grid = results[0]["metrics"]["perturbations"]
    by_kind: dict = defaultdict(dict)
    l2_specs = []  # code_l2 penalty variants: extra dashed curves in panel (a)
    for spec in mc:
        kind, value = parse_method(spec)
        if parse_bonus(spec) == "code_l2":
            l2_specs.append(spec)
        else:
            by_kind[kind][value] = spec
    fig = Figure(figsize=(15, 4.4))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    # (a) the headline: PEVI and the three divergences at the paper's lambda
    colors = {"pevi": "black", "tv": "C0", "kl": "C1", "chi2": "C2", "drpvi": "C3",
              "chi2-code": "C4"}
    for kind in KINDS:
        specs = by_kind.get(kind, {})
        spec = specs.get(None) or specs.get(0.1)
        if spec is None and specs:
            spec = specs[min(specs)]
        if spec is None:
            continue
        m, h, _ = mc[spec]
        ax1.errorbar(grid, m, yerr=h, marker="o", ms=3, capsize=2, color=colors[kind],
                     label=method_label(spec))
        if spec in PAPER_FIG1A:
            ax1.plot(grid, PAPER_FIG1A[spec], ls=":", color=colors[kind], alpha=0.8)
    for spec in l2_specs:
        m, h, _ = mc[spec]
        ax1.errorbar(grid, m, yerr=h, marker="s", ms=3, capsize=2, ls="--",
                     color=colors[parse_method(spec)[0]], label=method_label(spec))
    ax1.set_title("(a) return vs perturbation (dotted: paper)")
    ax1.set_xlabel("perturbation q")
    ax1.set_ylabel("average return")
    ax1.legend(fontsize=7)
    # (b) several lambda per divergence
    styles = {"tv": "-", "kl": "--", "chi2": "-."}
    for kind in ("tv", "kl", "chi2"):
        lams = sorted(v for v in by_kind.get(kind, {}) if v in (0.1, 0.2, 0.3, 0.6))
        cmap = [f"C{i}" for i in range(len(lams))]
        for c, lam in zip(cmap, lams, strict=True):
            ax2.plot(grid, mc[by_kind[kind][lam]][0], ls=styles[kind], color=c, marker=".",
                     label=f"{LABEL[kind]}, lambda={lam:g}")
    if "pevi" in mc:
        ax2.plot(grid, mc["pevi"][0], color="black", lw=2, label="PEVI")
    ax2.set_title("(b) several lambda")
    ax2.set_xlabel("perturbation q")
    # (c) return at q = 1 against rho (DRPVI) and lambda (R2PVI-TV)
    for kind, paper_key, color in (("drpvi", "drpvi", "C3"), ("tv", "r2pvi", "C0")):
        pts = sorted((v, s) for v, s in by_kind.get(kind, {}).items() if v is not None)
        if len(pts) < 2:
            continue
        xs = [v for v, _ in pts]
        ys = [mc[s][0][-1] for _, s in pts]
        hs = [mc[s][1][-1] for _, s in pts]
        ax3.errorbar(xs, ys, yerr=hs, marker="o", ms=3, capsize=2, color=color,
                     label=f"{LABEL[kind]} ({'rho' if kind == 'drpvi' else 'lambda'})")
        ax3.plot(_TENTHS, PAPER_FIG1C[paper_key], ls=":", color=color, alpha=0.8)
    ax3.set_title("(c) return at q = 1 vs rho / lambda (dotted: paper)")
    ax3.set_xlabel("rho (DRPVI) or lambda (R2PVI-TV)")
    ax3.set_ylabel("average return at q = 1")
    for ax in (ax2, ax3):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7 if ax is ax3 else 6, ncol=1 if ax is ax3 else 2)
    # the margins tight_layout() finds for these three panels, fixed: it drew the figure an
    # extra time to measure them (0.14 s, a third of the plot)
    fig.subplots_adjust(left=0.045, right=0.985, bottom=0.135, top=0.915, wspace=0.16)
    return [atomic_write(Path(out_dir) / "r2pvi_fig1.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=90), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
