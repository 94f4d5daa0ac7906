"""Exact return of the final online policies across a perturbation grid.

Each cell trains one online agent (as in :mod:`robustrl.experiments.drrpo_regret`) for
``episodes`` episodes on the *nominal* environment, then evaluates its final policy (the
action distribution it would play next, ``agent.policy_table``) **exactly** on every level of
the environment's perturbation grid with :func:`robustrl.evaluation.evaluate_exact`:

* ``env="simulated"``: q moves the goal factor's mass to the fail state at the first step,
  ``q = 0, 0.1, ..., 1``;
* ``env="random"``: :class:`~robustrl.envs.RandomLinearMDPEnv` (``mdp_seed``), q is the
  probability that a risky factor's rich branch fails, ``q = 0, 0.1, ..., 1``.

Two exact-DP references (no learning, the same for every seed) are rows of the grid too:
``optimal-nominal`` (the nominal optimal policy) and ``optimal-robust`` (the optimal
d-rectangular TV-robust policy with the agents' ``rho``).

Expectation: the robust agents (DR-RPO, DR-LSVI-UCB) should lose less return than
LSVI-UCB as q grows, and DR-RPO less than its non-robust policy-optimisation counterpart OPPO
(arXiv:1912.05830). Any agent of :mod:`robustrl.experiments.drrpo_regret` can be set
(``DR-RPO-old`` included). ``report`` prints the return at each q (mean and 95% CI over seeds) and
the loss ``return(q=0) - return(q=1)``; ``plot`` draws ``drrpo_robustness.png``.

Run: robustrl run drrpo_robustness --out results/drrpo_robustness --workers 2
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write

NAME = "drrpo_robustness"
DESCRIPTION = ("exact return of the final DR-RPO / DR-LSVI-UCB / LSVI-UCB / OPPO policies "
               "across the "
               "perturbation grid (simulated and random linear MDP)")
GRID = {
    "env": ["simulated", "random"],
    "agent": ["DR-RPO", "DR-LSVI-UCB", "LSVI-UCB", "OPPO", "optimal-nominal",
              "optimal-robust"],
    "episodes": [1500],
    "rho": [0.3],
    "tau": [0.1],
    "eta": [2.0],
    "beta": [1.0],
    "mdp_seed": [0],
}
SEEDS = 10

REFERENCES = ("optimal-nominal", "optimal-robust")


def check(params: dict) -> None:
    from robustrl.experiments import drrpo_regret

    drrpo_regret.check({**params, "agent": "LSVI-UCB"} if params["agent"] in REFERENCES
                       else params)


def final_policy(params: dict, seed: int) -> tuple[np.ndarray, float]:
    """The policy table ``(H, S, A)`` of a cell and its training wall time (0 for references)."""
    import time

    from robustrl.exact import robust_value_iteration
    from robustrl.experiments.drrpo_regret import agent_spec, env_factory

    make = env_factory(params["env"], params["mdp_seed"])
    env = make(None)
    model = env.unwrapped.model
    if params["agent"] == "optimal-nominal":
        return robust_value_iteration(model).policy, 0.0
    if params["agent"] == "optimal-robust":
        return robust_value_iteration(model, divergence="tv",
                                      rho=float(params["rho"])).policy, 0.0
    cls, hyper = agent_spec(params)
    agent = cls(env, seed=seed, **hyper)
    start = time.perf_counter()
    agent.learn(total_episodes=int(params["episodes"]))
    return agent.policy_table(model), time.perf_counter() - start


def run_one(params: dict, seed: int) -> dict:
    from robustrl.evaluation import evaluate_exact
    from robustrl.experiments.drrpo_regret import env_factory

    policy, seconds = final_policy(params, seed)
    make = env_factory(params["env"], params["mdp_seed"])
    grid = [float(q) for q in type(make(None).unwrapped).perturbation_grid]
    returns = evaluate_exact(policy, make, grid).mean
    return {
        "return_q0": float(returns[0]),
        "return_qmax": float(returns[-1]),
        "loss": float(returns[0] - returns[-1]),
        "relative_loss": float((returns[0] - returns[-1]) / returns[0]) if returns[0] else 0.0,
        "train_seconds": float(seconds),
        "perturbations": grid,
        "return_vs_q": returns.tolist(),
    }


def _table(results: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (env, agent): the grid, mean and 95% half-width of the return at every q, the loss."""
    from robustrl.stats import student_t_halfwidth

    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in results:
        groups.setdefault((rec["params"]["env"], rec["params"]["agent"]), []).append(rec)
    out = {}
    for key, recs in groups.items():
        R = np.array([r["metrics"]["return_vs_q"] for r in recs])
        loss = np.array([r["metrics"]["loss"] for r in recs])
        out[key] = {
            "grid": recs[0]["metrics"]["perturbations"], "n": R.shape[0],
            "mean": R.mean(axis=0), "half": student_t_halfwidth(R, single=0.0),
            "loss": float(loss.mean()), "loss_half": student_t_halfwidth(loss, single=0.0),
        }
    return out


def report(results: list[dict]) -> str:
    """Exact return at q = 0, 0.2, ..., 1 (mean +- 95% CI) and the loss from q=0 to q=max."""
    table = _table(results)
    lines = ["Exact return of the final policies under perturbation (mean +- 95% CI over seeds)"]
    for env in dict.fromkeys(k[0] for k in table):
        rows = {a: v for (e, a), v in table.items() if e == env}
        grid = next(iter(rows.values()))["grid"]
        cols = list(range(0, len(grid), 2)) if len(grid) > 6 else list(range(len(grid)))
        head = f"{'agent':<16}{'n':>3}" + "".join(f"{f'q={grid[c]:g}':>15}" for c in cols)
        head += f"{'loss q0->qmax':>17}"
        lines += ["", f"env = {env}", head, "-" * len(head)]
        for agent, v in rows.items():
            lines.append(f"{agent:<16}{v['n']:>3}" + "".join(
                f"{v['mean'][c]:>8.3f} +-{v['half'][c]:<5.3f}" for c in cols)
                + f"{v['loss']:>9.3f} +-{v['loss_half']:<5.3f}")
        if "LSVI-UCB" in rows:
            base = rows["LSVI-UCB"]
            for agent in ("DR-RPO", "DR-RPO-old", "DR-LSVI-UCB"):
                if agent in rows:
                    diff = rows[agent]["loss"] - base["loss"]
                    # Welch-style half-width from the two independent 95% half-widths
                    half = float(np.hypot(rows[agent]["loss_half"], base["loss_half"]))
                    if diff + half < 0:
                        verdict = "loses less than LSVI-UCB (significant)"
                    elif diff < 0:
                        verdict = "loses less than LSVI-UCB (not significant)"
                    else:
                        verdict = "does NOT lose less than LSVI-UCB"
                    lines.append(f"  {agent} {verdict}: loss difference {diff:+.3f} "
                                 f"+- {half:.3f}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``drrpo_robustness.png``: exact return against q, one panel per environment."""
    from matplotlib.figure import Figure

    table = _table(results)
    envs = list(dict.fromkeys(k[0] for k in table))
    fig = Figure(figsize=(6.2 * len(envs), 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(envs)))
    for ax, env in zip(axes, envs, strict=True):
        for (e, agent), v in table.items():
            if e != env:
                continue
            style = ({"ls": "--", "color": "black" if agent == "optimal-nominal" else "gray"}
                     if agent in REFERENCES else {"marker": "o", "ms": 3})
            name = f"{agent} (exact DP)" if agent in REFERENCES else f"{agent} (n={v['n']})"
            (line,) = ax.plot(v["grid"], v["mean"], label=name, **style)
            if agent not in REFERENCES:
                ax.fill_between(v["grid"], v["mean"] - v["half"], v["mean"] + v["half"],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("perturbation q")
        ax.set_ylabel("exact expected return")
        ax.set_title(f"{env} linear MDP: final policies under shift")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "drrpo_robustness.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
