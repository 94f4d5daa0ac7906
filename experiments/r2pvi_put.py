"""R2PVI paper, Figure 1(d): American put option return against the price-up probability p.

arXiv:2411.18612 American put, docs/r2pvi-results.md. Each cell seeds one American put environment
(nominal p0 = 0.5, H = 20,
d = 30 hat features, its start price s0 ~ U[95, 105] drawn once from the seed, as the authors'
environment), collects N trajectories of the behaviour policy (``behaviour=hold``: always hold,
the authors' code; ``uniform``: uniformly random, the paper's text), fits one learner and
evaluates its greedy policy **exactly** (:meth:`AmericanPutEnv.expected_return`, binomial tree,
no test noise) at p = 0.2, 0.4, ..., 1 from the same s0. The exercise payoff is known exactly
to every learner (``env.known_action_values``); only the hold value is learned.

``method``: ``pevi``; ``tv:LAM`` / ``kl:LAM`` (R2PVI); ``drpvi:RHO`` (DRPVI, one radius on every
factor and step, ``v_min = 0``). Defaults follow the authors' put settings: beta = 0.1,
ridge = 1, N = 100, unscaled payoffs (``reward_scale = 1``) with the learned Q truncated at
``H - h`` as in the authors' code (docs/r2pvi-results.md). Because values reach about 20 while
lambda = 0.025 is the
authors' setting, the grid adds larger lambda to show the whole trade-off.

The ``plot`` hook draws ``r2pvi_put.png`` (return against p per method, the paper's digitised
PEVI curve dotted); ``report`` prints the table with the paper's PEVI values.

Run: robustrl run r2pvi_put --out results/r2pvi_put --workers 2
"""

from __future__ import annotations

import sys
from pathlib import Path

from robustrl._io import atomic_write

NAME = "r2pvi_put"
DESCRIPTION = ("R2PVI paper Fig. 1(d): American put return vs price-up probability p "
               "(PEVI, R2PVI-TV/KL, DRPVI), exact evaluation")
GRID = {
    "method": ["pevi", "tv:0.025", "tv:2", "tv:5", "kl:0.025", "kl:1", "kl:5",
               "drpvi:0.025", "drpvi:0.03", "drpvi:0.1"],
    "N": [100],
    "d": [30],
    "beta": [0.1],
    "ridge": [1.0],
    "reward_scale": [1.0],
    "behaviour": ["hold"],
}
SEEDS = 10
P_GRID = (0.2, 0.4, 0.6, 0.8, 1.0)
LABEL = {"pevi": "PEVI", "tv": "R2PVI-TV", "kl": "R2PVI-KL", "chi2": "R2PVI-chi2",
         "drpvi": "DRPVI"}
# arXiv:2411.18612 American put, docs/r2pvi-results.md, digitised from the paper's Fig. 1(d) (the
# R2PVI / DRPVI lambdas and rhos unknown).
PAPER_PEVI = [6.28, 5.02, 2.20, 0.30, 0.00]
PAPER_R2PVI = [[3.80, 3.30, 2.12, 0.87, 0.00], [4.77, 4.32, 2.21, 0.57, 0.00],
               [1.41, 1.32, 1.14, 0.88, 0.55]]
PAPER_DRPVI = [[3.85, 3.28, 2.11, 0.84, 0.00], [4.96, 4.33, 2.16, 0.40, 0.00],
               [1.49, 1.42, 1.20, 0.88, 0.55]]


def parse_method(spec: str) -> tuple[str, float | None]:
    """``"pevi"``, ``"tv:LAM"``, ``"kl:LAM"``, ``"chi2:LAM"`` (LAM > 0) or ``"drpvi:RHO"``
    (RHO >= 0); ValueError names the forms."""
    if spec == "pevi":
        return spec, None
    kind, sep, num = str(spec).partition(":")
    try:
        value = float(num) if sep else None
    except ValueError:
        value = None
    if value is None or kind not in ("tv", "kl", "chi2", "drpvi") or value < 0 or (
            kind != "drpvi" and value == 0):
        raise ValueError("method must be pevi, tv|kl|chi2:LAMBDA (LAMBDA > 0) or drpvi:RHO "
                         f"(RHO >= 0); got {spec!r}")
    return kind, value


def method_label(spec: str) -> str:
    kind, value = parse_method(spec)
    if value is None:
        return LABEL[kind]
    return f"{LABEL[kind]}, {'rho' if kind == 'drpvi' else 'lambda'}={value:g}"


def check(params: dict) -> None:
    from robustrl.validation import check_int, check_nonnegative, check_positive

    parse_method(params["method"])
    check_int(params["N"], "N", low=1)
    check_int(params["d"], "d", low=1)
    check_nonnegative(params["beta"], "beta")
    check_positive(params["ridge"], "ridge")
    check_positive(params["reward_scale"], "reward_scale")
    if params["behaviour"] not in ("hold", "uniform"):
        raise ValueError(f"behaviour must be 'hold' or 'uniform'; got {params['behaviour']!r}")


def make_agent(spec: str, env, beta: float, ridge: float):
    from robustrl.agents import DRPVI, PEVI, R2PVI

    kind, value = parse_method(spec)
    # The authors truncate Q at H - h although unscaled payoffs reach about 40: an explicit
    # max_reward = 1 keeps that setting (fit warns that the data exceed it).
    common = {"beta": beta, "ridge": ridge, "max_reward": 1.0}
    if kind == "pevi":
        return PEVI(env, **common)
    if kind == "drpvi":
        return DRPVI(env, rho=value, **common)
    return R2PVI(env, divergence=kind, lam=value, **common)


def run_one(params: dict, seed: int) -> dict:
    from robustrl.data import OfflineDataset
    from robustrl.envs import AmericanPutEnv
    from robustrl.evaluation import evaluate_exact

    scale = float(params["reward_scale"])
    d = int(params["d"])
    env = AmericanPutEnv(feature_dim=d, reward_scale=scale)
    env.reset(seed=seed)
    behaviour = (lambda obs: 0) if params["behaviour"] == "hold" else None
    data = OfflineDataset.collect(env, int(params["N"]), behaviour_policy=behaviour, seed=seed)
    agent = make_agent(params["method"], env, float(params["beta"]),
                       float(params["ridge"])).fit(data)
    s0 = env.start_price
    # Exact returns through the package's evaluation harness (binomial tree from the same
    # start price), in the paper's (unscaled) units.
    exact = evaluate_exact(
        agent,
        lambda p: AmericanPutEnv(perturbation=p, feature_dim=d, reward_scale=scale,
                                 initial_price=s0),
        P_GRID,
    )
    returns = exact.mean / scale
    out = {f"return_p{p:g}": float(r) for p, r in zip(P_GRID, returns, strict=True)}
    out.update({"start_price": float(s0), "p_grid": list(P_GRID),
                "return_vs_p": [float(r) for r in returns]})
    return out


def report(results: list[dict]) -> str:
    from robustrl.experiments.r2pvi_fig1 import group_curves

    curves = group_curves(results, "return_vs_p")
    head = f"{'method':<24}{'n':>4}" + "".join(f"{f'p={p:g}':>14}" for p in P_GRID)
    lines = ["American put: exact expected return (unscaled payoff units) at each p, "
             "mean +- 95% CI over seeds", head, "-" * len(head)]
    for spec, (m, h, n) in curves.items():
        lines.append(f"{method_label(spec):<24}{n:>4}"
                     + "".join(f"{x:>8.2f}+-{e:<4.2f}" for x, e in zip(m, h, strict=True)))
    lines.append(f"{'paper PEVI':<28}" + "".join(f"{x:>14.2f}" for x in PAPER_PEVI))
    for i, c in enumerate(PAPER_R2PVI):
        lines.append(f"{f'paper R2PVI #{i + 1}':<28}" + "".join(f"{x:>14.2f}" for x in c))
    for i, c in enumerate(PAPER_DRPVI):
        lines.append(f"{f'paper DRPVI #{i + 1}':<28}" + "".join(f"{x:>14.2f}" for x in c))
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``r2pvi_put.png``: return against p per method (paper's curves dotted gray)."""
    from matplotlib.figure import Figure

    from robustrl.experiments.r2pvi_fig1 import group_curves

    curves = group_curves(results, "return_vs_p")
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    for spec, (m, h, _) in curves.items():
        kind, _v = parse_method(spec)
        style = {"color": "black", "lw": 2} if kind == "pevi" else (
            {"ls": "--"} if kind == "drpvi" else {})
        ax.errorbar(P_GRID, m, yerr=h, marker="o", ms=3, capsize=2, label=method_label(spec),
                    **style)
    ax.plot(P_GRID, PAPER_PEVI, ls=":", color="black", label="paper PEVI")
    for c in PAPER_R2PVI:
        ax.plot(P_GRID, c, ls=":", color="gray", alpha=0.6)
    ax.set_xlabel("price-up probability p (nominal 0.5)")
    ax.set_ylabel("expected return")
    ax.set_title("American put: return vs p (dotted gray: paper's R2PVI)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "r2pvi_put.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=90), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
