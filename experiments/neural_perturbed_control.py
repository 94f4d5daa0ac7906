"""Neural robust offline RL on perturbed CartPole: NeuralR2PVI vs fitted Q-iteration.

One offline dataset per ``data_seed``: a stable-baselines3 PPO policy trained on the nominal
CartPole for a small budget, made epsilon-greedy (``epsilon``), rolls out ``K`` episodes cut at
``H`` steps (:func:`robustrl.control_data.offline_control_dataset`, cached on disk). Every
agent of the ``agent`` axis is trained on *that same* dataset and evaluated on the same
perturbation grid with the same evaluation seeds (paired comparison): the physical
``parameter`` (default the pole length) is scaled by each value of the grid, nominal = 1
(:func:`robustrl.evaluation.compare` with :func:`robustrl.envs.env_factory`, greedy policies,
``max_episode_steps = H``).

The ``agent`` axis:

* ``fqi``: :class:`~robustrl.agents.neural.NeuralFQI`, the non-robust baseline (the same
  ensemble, lower confidence bound ``beta`` and networks, plain expectation target);
* ``kl:LAM``, ``tv:LAM``, ``chi2:LAM``: :class:`~robustrl.agents.neural.NeuralR2PVI` with
  that divergence and regulariser lambda (discounted, ``gamma``);
* ``behaviour``: the SB3 behaviour policy itself, greedy (no epsilon), for reference.

``data_action_noise`` > 0 makes the recorded transitions stochastic: while collecting, the
environment executes a uniformly random action instead of the recorded one with that
probability (the behaviour policy is trained without it; evaluation is noiseless). Then the
robust targets have a genuine next-state distribution to be robust against; with 0 (default)
CartPole's transitions are deterministic and the regression's smoothing is the only spread.

``scale`` picks the budget (behaviour timesteps, K, H, networks, fitted-Q rounds, evaluation
episodes and the default grid): ``tiny`` (tests, seconds), ``small`` (default: a few minutes on
2 CPU cores for the default grid), ``full`` (larger data, networks and grid; meant for a GPU,
``device="auto"`` picks CUDA). ``values`` overrides the grid (comma-separated scales).

Metrics per cell: the return curve, the return at nominal, at the largest shift and its ratio
to nominal, the worst return, the return lost per doubling of the shift
(:func:`degradation`), the normalised area under the curve, fit time and the behaviour's
return on the data. ``report`` averages over data seeds and gives each robust agent's paired
difference to ``fqi``; ``plot`` draws ``neural_perturbed_control.png``.

Run: robustrl run neural_perturbed_control --out results/neural_perturbed_control --workers 2
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write

NAME = "neural_perturbed_control"
DESCRIPTION = ("NeuralR2PVI (KL/TV) vs NeuralFQI on an offline CartPole dataset, return vs "
               "pole-length (or other physics) perturbation")
GRID = {
    "agent": ["behaviour", "fqi", "kl:5", "tv:30"],
    "data_seed": [0, 1, 2],
    "scale": ["small"],
    "parameter": ["pole_length"],
    "values": [""],
    "epsilon": [0.3],
    "data_action_noise": [0.0],
    "beta": [1.0],
    "gamma": [0.99],
}
# Third-party modules the cells import -> the extra that installs them (checked before any cell).
REQUIRES = {"torch": "neural", "stable_baselines3": "neural"}
SEEDS = 1  # replication is over data_seed, so that every agent sees the same dataset
X_AXIS = "data_seed"
ENV_ID = "CartPole-v1"

SCALES = {
    "tiny": {"timesteps": 512, "K": 4, "H": 40, "hidden": (16, 16), "ensemble_size": 2,
             "n_iterations": 3, "gradient_steps": 10, "batch_size": 64, "episodes": 2,
             "values": (0.5, 1.0, 2.0)},
    "small": {"timesteps": 20_000, "K": 50, "H": 200, "hidden": (64, 64), "ensemble_size": 5,
              "n_iterations": 50, "gradient_steps": 300, "batch_size": 256, "episodes": 20,
              "values": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)},
    "full": {"timesteps": 50_000, "K": 200, "H": 500, "hidden": (256, 256),
             "ensemble_size": 5, "n_iterations": 100, "gradient_steps": 500,
             "batch_size": 1024, "episodes": 50,
             "values": (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)},
}
KINDS = ("behaviour", "fqi", "kl", "tv", "chi2")
LABEL = {"behaviour": "SB3 behaviour (greedy)", "fqi": "NeuralFQI", "kl": "NeuralR2PVI-KL",
         "tv": "NeuralR2PVI-TV", "chi2": "NeuralR2PVI-chi2"}


def parse_agent(spec: str) -> tuple[str, float | None]:
    """``"fqi"`` -> ("fqi", None); ``"kl:5"`` -> ("kl", 5.0). ValueError names the forms."""
    if spec in ("fqi", "behaviour"):
        return spec, None
    kind, sep, num = str(spec).partition(":")
    try:
        lam = float(num) if sep else None
    except ValueError:
        lam = None
    if kind not in ("kl", "tv", "chi2") or lam is None or not lam > 0 or not np.isfinite(lam):
        raise ValueError(
            f"agent must be 'behaviour', 'fqi' or kl|tv|chi2:LAMBDA with LAMBDA > 0; got {spec!r}"
        )
    return kind, lam


def agent_label(spec: str) -> str:
    kind, lam = parse_agent(spec)
    return LABEL[kind] if lam is None else f"{LABEL[kind]}, lambda={lam:g}"


def grid_values(params: dict) -> list[float]:
    text = str(params.get("values", "")).strip()
    if not text:
        return [float(v) for v in SCALES[params["scale"]]["values"]]
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"values must be comma-separated numbers; got {text!r}") from None
    return vals


def check(params: dict) -> None:
    from robustrl.envs.perturbations import perturbation_grid
    from robustrl.validation import check_int, check_nonnegative, check_scalar

    parse_agent(params["agent"])
    if params["scale"] not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}; got {params['scale']!r}")
    check_int(params["data_seed"], "data_seed", low=0)
    vals = grid_values(params)
    perturbation_grid(ENV_ID, params["parameter"], vals)
    if 1.0 not in vals:
        raise ValueError(f"values must contain the nominal scale 1.0; got {vals}")
    check_scalar(params["epsilon"], "epsilon", low=0.0, high=1.0)
    check_scalar(params["data_action_noise"], "data_action_noise", low=0.0, high=1.0)
    check_nonnegative(params["beta"], "beta")
    check_scalar(params["gamma"], "gamma", low=0.0, high=1.0, high_inclusive=False)


def make_agent(spec: str, cfg: dict, *, beta: float, gamma: float, seed: int):
    """The learner an ``agent`` spec names, with the scale's network and fitting budget."""
    from robustrl.agents.neural import NeuralFQI, NeuralR2PVI

    kind, lam = parse_agent(spec)
    common = {"hidden": cfg["hidden"], "ensemble_size": cfg["ensemble_size"],
              "n_iterations": cfg["n_iterations"], "gradient_steps": cfg["gradient_steps"],
              "batch_size": cfg["batch_size"], "gamma": gamma, "beta": beta, "device": "auto",
              "seed": seed}
    if kind == "fqi":
        return NeuralFQI(**common)
    return NeuralR2PVI(divergence=kind, lam=lam, **common)


def degradation(values: list[float], means: list[float]) -> dict[str, float]:
    """Scalar summaries of one return curve (``values`` contains the nominal 1.0).

    The largest shift is the grid scale furthest from 1 in ratio (``|log x|``; ties go to the
    larger scale). ``slope_per_doubling`` is the least-squares slope of the return against
    ``|log2 x|`` over the nominal point and the grid points on the side of the largest shift:
    the return lost per doubling (or halving) of the parameter; 0 is a flat curve.
    """
    x, y = np.asarray(values, dtype=float), np.asarray(means, dtype=float)
    nominal = float(y[np.argmin(np.abs(x - 1.0))])
    dist = np.abs(np.log2(x))
    far = int(np.lexsort((x, dist))[-1])
    side = (x >= 1.0) if x[far] >= 1.0 else (x <= 1.0)
    slope = (float(np.polyfit(dist[side], y[side], 1)[0]) if side.sum() >= 2
             else float("nan"))
    return {
        "return_nominal": nominal,
        "return_max_shift": float(y[far]),
        "max_shift": float(x[far]),
        "relative_max_shift": float(y[far] / nominal) if nominal != 0 else float("nan"),
        "worst_return": float(y.min()),
        "slope_per_doubling": slope,
    }


def run_one(params: dict, seed: int) -> dict:
    """Build (or load) the dataset of ``data_seed``, fit one agent, evaluate it on the grid.

    Every random choice derives from ``data_seed``, so all agents of one data seed share the
    dataset and the evaluation episodes; the runner's cell seed is not used.
    """
    import torch

    from robustrl.control_data import offline_control_dataset, train_behaviour_policy
    from robustrl.envs.perturbations import env_factory
    from robustrl.evaluation import EvaluationResult, compare, robustness_metrics

    torch.set_num_threads(1)
    cfg = SCALES[params["scale"]]
    ds = int(params["data_seed"])
    values = grid_values(params)
    data_kw = {"n_trajectories": cfg["K"], "horizon": cfg["H"],
               "epsilon": float(params["epsilon"]), "algo": "ppo",
               "timesteps": cfg["timesteps"], "seed": ds,
               "action_noise": float(params["data_action_noise"])}
    data = offline_control_dataset(ENV_ID, **data_kw)
    kind, _ = parse_agent(params["agent"])
    t0 = time.perf_counter()
    if kind == "behaviour":
        policy = train_behaviour_policy(ENV_ID, algo="ppo", timesteps=cfg["timesteps"], seed=ds)
    else:
        policy = make_agent(params["agent"], cfg, beta=float(params["beta"]),
                            gamma=float(params["gamma"]), seed=ds)
        policy.fit(data)
    fit_time = time.perf_counter() - t0
    make = env_factory(ENV_ID, params["parameter"], max_episode_steps=cfg["H"])
    rows = compare({"policy": policy}, make, values, episodes=cfg["episodes"],
                   seed=10_000 + ds).rows()
    means = [r["mean"] for r in rows]
    res = EvaluationResult(np.asarray(values), np.asarray(means)[:, None], exact=True)
    return {
        **degradation(values, means),
        "auc": robustness_metrics(res)["auc"],
        "perturbations": values,
        "return_vs_perturbation": means,
        "stderr_vs_perturbation": [r["stderr"] for r in rows],
        "fit_time_s": fit_time,
        "transitions": len(data),
        "behaviour_data_return": data.metadata["behaviour_return_mean"],
    }


# ------------------------------------------------------------------------------ aggregation
def _setting(params: dict) -> tuple:
    """Every parameter except the agent and the data seed: records that share it are
    comparable (same datasets, same grid)."""
    return tuple(sorted((k, v) for k, v in params.items() if k not in ("agent", "data_seed")))


def _title(setting: tuple) -> str:
    s = dict(setting)
    extra = [f"{k}={s[k]}" for k in ("epsilon", "data_action_noise", "beta", "gamma")
             if k in s and s[k] != GRID[k][0]]
    return f"{s.get('parameter')} ({s.get('scale')}{', ' if extra else ''}{', '.join(extra)})"


def _order(agent: str) -> tuple:
    return (KINDS.index(parse_agent(agent)[0]), parse_agent(agent)[1] or 0.0)


def curves(results: list[dict]) -> dict[tuple, dict]:
    """``{(agent, setting): {"values", "mean", "half", "n", "per_seed"}}``: the mean return
    curve over data seeds with a Student-t 95% CI half-width (``setting``: see
    :func:`_setting`)."""
    from robustrl.stats import student_t_halfwidth

    groups: dict = defaultdict(dict)
    values = {}
    for rec in results:
        p = rec["params"]
        key = (p["agent"], _setting(p))
        groups[key][p["data_seed"]] = np.asarray(rec["metrics"]["return_vs_perturbation"])
        values[key] = rec["metrics"]["perturbations"]
    out = {}
    for key, by_seed in groups.items():
        arr = np.stack([by_seed[s] for s in sorted(by_seed)])
        out[key] = {"values": values[key], "mean": arr.mean(axis=0),
                    "half": student_t_halfwidth(arr), "n": arr.shape[0],
                    "per_seed": by_seed}
    return out


def paired_differences(results: list[dict], metric: str) -> dict[tuple, tuple]:
    """``{(agent, setting): (mean, min, max, wins, n)}`` over data seeds of
    ``metric(agent) - metric(fqi)`` on the same dataset; ``wins`` counts the datasets where
    the robust agent's value is larger."""
    by = defaultdict(dict)
    for rec in results:
        p = rec["params"]
        by[(_setting(p), p["data_seed"])][p["agent"]] = rec["metrics"][metric]
    diffs: dict = defaultdict(list)
    for (setting, _), agents in by.items():
        if "fqi" not in agents:
            continue
        for name, val in agents.items():
            if name not in ("fqi", "behaviour"):
                diffs[(name, setting)].append(val - agents["fqi"])
    return {k: (float(np.mean(v)), float(np.min(v)), float(np.max(v)),
                int(np.sum(np.asarray(v) > 0)), len(v)) for k, v in diffs.items()}


def report(results: list[dict]) -> str:
    cur = curves(results)
    lines = []
    for setting in sorted({k[1] for k in cur}, key=repr):
        keys = sorted((k for k in cur if k[1] == setting), key=lambda k: _order(k[0]))
        vals = cur[keys[0]]["values"]
        head = f"{'agent':<34}{'n':>3}" + "".join(f"{f'x{v:g}':>9}" for v in vals)
        lines += [f"{NAME}: return vs {_title(setting)} scale, mean over data seeds "
                  "(CI@max: 95% CI half-width at the largest shift)",
                  head + f"{'CI@max':>8}{'rel.max':>9}{'slope/x2':>10}",
                  "-" * (len(head) + 27)]
        for key in keys:
            c = cur[key]
            deg = degradation(vals, list(c["mean"]))
            cells = "".join(f"{m:>9.1f}" for m in c["mean"])
            far = vals.index(deg["max_shift"])
            lines.append(f"{agent_label(key[0]):<34}{c['n']:>3}{cells}{c['half'][far]:>8.1f}"
                         f"{deg['relative_max_shift']:>9.3f}{deg['slope_per_doubling']:>10.2f}")
        for metric in ("return_max_shift", "relative_max_shift", "slope_per_doubling", "auc"):
            diffs = paired_differences(results, metric)
            for key in keys:
                if (key[0], setting) not in diffs:
                    continue
                mean, lo, hi, wins, n = diffs[(key[0], setting)]
                lines.append(f"  {key[0]} - fqi, {metric}: {mean:+.3g} (per dataset {lo:+.3g} "
                             f".. {hi:+.3g}; robust higher on {wins}/{n} datasets)")
        lines.append("")
    return "\n".join(lines).rstrip()


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``neural_perturbed_control.png``: return and return / nominal vs the scale, one row
    per setting (e.g. noiseless and noisy data)."""
    from matplotlib.figure import Figure

    cur = curves(results)
    panels = sorted({k[1] for k in cur}, key=repr)
    robust = sorted({k[0] for k in cur if parse_agent(k[0])[1] is not None}, key=_order)
    colors = {"fqi": "black", "behaviour": "grey",
              **{a: f"C{i}" for i, a in enumerate(robust)}}  # one colour per agent, all rows
    fig = Figure(figsize=(12, 4.4 * len(panels)))
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for row, setting in zip(axes, panels, strict=True):
        keys = sorted((k for k in cur if k[1] == setting), key=lambda k: _order(k[0]))
        param = dict(setting).get("parameter")
        for key in keys:
            c = cur[key]
            x = np.asarray(c["values"], dtype=float)
            kind = parse_agent(key[0])[0]
            style = {"behaviour": ":", "fqi": "-"}.get(kind, "--")
            color = colors[key[0]]
            label = f"{agent_label(key[0])} (n={c['n']})"
            row[0].plot(x, c["mean"], marker="o", ms=3, ls=style, color=color, label=label)
            if np.all(np.isfinite(c["half"])):
                row[0].fill_between(x, c["mean"] - c["half"], c["mean"] + c["half"],
                                    color=color, alpha=0.08, linewidth=0)
            nominal = c["mean"][int(np.argmin(np.abs(x - 1.0)))]
            row[1].plot(x, c["mean"] / nominal, marker="o", ms=3, ls=style, color=color,
                        label=label)
        for ax, ylab in zip(row, ("average return (95% CI over data seeds)",
                                  "return / return at nominal"), strict=True):
            ax.axvline(1.0, color="grey", lw=0.8, alpha=0.6)
            ax.set_xscale("log", base=2)  # halving and doubling are equally far from nominal
            grid = sorted({v for k in keys for v in cur[k]["values"]})
            ax.set_xticks(grid, [f"{v:g}" for v in grid])
            ax.set_xlabel(f"{param} scale (1 = nominal, the training dynamics; log scale)")
            ax.set_ylabel(ylab)
            ax.grid(alpha=0.3)
        row[0].set_title(f"CartPole offline: return vs {_title(setting)}", fontsize=10)
        row[1].set_title("degradation relative to nominal", fontsize=10)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "neural_perturbed_control.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=100), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
