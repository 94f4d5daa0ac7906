"""Cumulative regret of DR-RPO, DR-LSVI-UCB, LSVI-UCB and OPPO against episodes.

Each cell trains one online agent for ``episodes`` episodes on one environment and records its
exact cumulative regret (the environments expose their models, so every episode's regret is
the exact value gap of the policy played, no Monte-Carlo noise):

* ``env="simulated"``: the simulated d-rectangular linear MDP (5 states, ``d = 4``, 16 actions,
  ``H = 3``; arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md);
* ``env="random"``: the risky-or-safe :class:`~robustrl.envs.RandomLinearMDPEnv` (30 states,
  ``d = 16``, 8 actions, ``H = 10``), built from ``mdp_seed`` (one fixed MDP; the cell seed
  drives the agent and the sampling).

Agents and their regret's reference (each against its own objective's exact optimum, so the
numbers are not comparable across agents, only the rates are):

* ``DR-RPO``: TV ball of radius ``rho`` on every factor, reference-policy KL regulariser
  ``tau``, mirror-descent step ``eta`` -> the exact regularised robust optimum (the defaults:
  clipped Q into mirror descent, evaluation under the played policy);
* ``DR-RPO-old``: the same with the 0.1.0 defaults ``policy_q="linear"``,
  ``evaluation="updated"`` (unclipped Q, value-iteration order);
* ``DR-LSVI-UCB``: TV ball ``rho`` -> the exact d-rectangular robust optimum;
* ``LSVI-UCB``: the nominal optimum;
* ``OPPO`` (arXiv:1912.05830, :class:`~robustrl.agents.OPPO`): mirror-descent step ``eta``, no
  robustness, no reference regulariser -> the nominal optimum.

The ``report`` hook fits ``log R(K) = a + b log K`` per seed on log-spaced counts
(:func:`robustrl.theory.drrpo.fit_loglog_slope`) and prints the mean slope with its 95%
Student-t interval over seeds, over the whole run and over its last decade (``K >= episodes /
10``), with the final cumulative regret. ``plot`` draws ``drrpo_regret.png``: mean cumulative
regret with 95% bands, linear and log-log, one column per environment.

Run: robustrl run drrpo_regret --out results/drrpo_regret --workers 2
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write

NAME = "drrpo_regret"
DESCRIPTION = ("online regret vs episodes: DR-RPO (new and 0.1.0 defaults), DR-LSVI-UCB, "
               "LSVI-UCB, OPPO on the simulated and a 16-dim random linear MDP, log-log slopes "
               "with CIs")
GRID = {
    "env": ["simulated", "random"],
    "agent": ["DR-RPO", "DR-RPO-old", "DR-LSVI-UCB", "LSVI-UCB", "OPPO"],
    "episodes": [5000],
    "rho": [0.3],
    "tau": [0.1],
    "eta": [2.0],
    "beta": [1.0],
    "mdp_seed": [0],
}
SEEDS = 10
X_AXIS = "episodes"

ENVS = ("simulated", "random")
AGENTS = ("DR-RPO", "DR-RPO-old", "DR-LSVI-UCB", "LSVI-UCB", "OPPO")
#: first episode count of the fits (earlier counts are dominated by the burn-in).
FIT_START = 10
N_CHECKPOINTS = 40


def check(params: dict) -> None:
    from robustrl.validation import check_int, check_positive, check_scalar

    if params["env"] not in ENVS:
        raise ValueError(f"env must be one of {ENVS}; got {params['env']!r}")
    if params["agent"] not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}; got {params['agent']!r}")
    check_int(params["episodes"], "episodes", low=2)
    check_scalar(params["rho"], "rho", low=0.0, high=1.0)
    check_positive(params["tau"], "tau")
    check_positive(params["eta"], "eta")
    check_scalar(params["beta"], "beta", low=0.0)
    check_int(params["mdp_seed"], "mdp_seed", low=0)


def env_factory(env: str, mdp_seed: int = 0):
    """``perturbation -> environment`` for ``env`` (``None`` = nominal)."""
    from robustrl.envs import RandomLinearMDPEnv, SimulatedLinearMDPEnv

    if env == "simulated":
        return lambda q=None: SimulatedLinearMDPEnv(perturbation=q)
    if env == "random":
        return lambda q=None: RandomLinearMDPEnv(perturbation=q, seed=int(mdp_seed))
    raise ValueError(f"env must be one of {ENVS}; got {env!r}")


def agent_spec(params: dict):
    """``(agent class, hyperparameters)`` of a cell."""
    from robustrl.agents import DRLSVIUCB, DRRPO, LSVIUCB, OPPO

    beta = float(params["beta"])
    if params["agent"] in ("DR-RPO", "DR-RPO-old"):
        hyper = {"rho": float(params["rho"]), "tau": float(params["tau"]),
                 "eta": float(params["eta"]), "beta": beta}
        if params["agent"] == "DR-RPO-old":
            hyper.update(policy_q="linear", evaluation="updated")
        return DRRPO, hyper
    if params["agent"] == "OPPO":
        return OPPO, {"eta": float(params["eta"]), "beta": beta}
    if params["agent"] == "DR-LSVI-UCB":
        return DRLSVIUCB, {"rho": float(params["rho"]), "beta": beta}
    if params["agent"] == "LSVI-UCB":
        return LSVIUCB, {"beta": beta}
    raise ValueError(f"agent must be one of {AGENTS}; got {params['agent']!r}")


def checkpoints(episodes: int) -> np.ndarray:
    """Log-spaced episode counts for the fits, plus a linear grid for the figures."""
    from robustrl.theory.drrpo import log_spaced_episodes

    log_k = log_spaced_episodes(episodes, N_CHECKPOINTS, start=1)
    lin_k = np.unique(np.linspace(1, episodes, N_CHECKPOINTS).round().astype(np.int64))
    return np.union1d(log_k, lin_k)


def run_one(params: dict, seed: int) -> dict:
    from robustrl.agents import run_regret_curve

    cls, hyper = agent_spec(params)
    make = env_factory(params["env"], params["mdp_seed"])
    curve = run_regret_curve(cls, make, int(params["episodes"]), seed=seed, hyperparams=hyper)
    cum = curve.cumulative_regret
    ks = checkpoints(int(params["episodes"]))
    return {
        "final_regret": float(cum[-1]),
        "mean_regret_last_10pct": float(curve.regret[-max(1, len(cum) // 10):].mean()),
        "optimal_value": float(curve.optimal_value),
        "train_seconds": float(curve.seconds),
        "checkpoints": ks.tolist(),
        "cumulative_regret": cum[ks - 1].tolist(),
    }


# ------------------------------------------------------------------------ summaries
def _groups(results: list[dict]) -> dict[tuple, list[dict]]:
    """Records grouped by every parameter (the seeds of one grid point together)."""
    out: dict[tuple, list[dict]] = {}
    for rec in results:
        out.setdefault(tuple(sorted(rec["params"].items())), []).append(rec)
    return out


def slope_fits(records: list[dict], start: int = FIT_START, late: bool = False):
    """:class:`~robustrl.theory.drrpo.SlopeFit` of one grid point's seeds, or None.

    Counts from ``max(start, episodes / 10 if late)`` up to the end, dropping any count where
    some seed's regret is still 0 (log scale).
    """
    from robustrl.theory.drrpo import fit_loglog_slope, log_spaced_episodes

    ks = np.asarray(records[0]["metrics"]["checkpoints"])
    R = np.array([r["metrics"]["cumulative_regret"] for r in records])
    log_k = log_spaced_episodes(int(ks[-1]), N_CHECKPOINTS, start=1)
    lo = max(start, int(ks[-1]) // 10) if late else start
    keep = np.isin(ks, log_k) & (ks >= lo) & np.all(R > 0.0, axis=0)
    if keep.sum() < 2:
        return None
    return fit_loglog_slope(ks[keep], R[:, keep])


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    from robustrl.stats import confidence_interval

    return confidence_interval(x)


def _fmt_fit(fit) -> str:
    if fit is None:
        return f"{'n/a':>22}"
    return f"{fit.slope:>6.3f} ({fit.low:6.3f},{fit.high:6.3f})"


def report(results: list[dict]) -> str:
    """Slopes (whole run and last decade, 95% CI over seeds) and final regret per env/agent."""
    head = (f"{'env':<10}{'agent':<13}{'K':>6}{'seeds':>6}  {'slope [10, K] (95% CI)':>22}"
            f"  {'slope [K/10, K] (95% CI)':>24}  {'R(K) mean +- 95%':>18}")
    lines = ["Cumulative exact regret, log-log slopes fitted per seed (theory: ~0.5, < 1)",
             head, "-" * len(head)]
    for _key, recs in _groups(results).items():
        p = recs[0]["params"]
        final = np.array([r["metrics"]["final_regret"] for r in recs])
        mean, half = _mean_ci(final)
        lines.append(f"{p['env']:<10}{p['agent']:<13}{p['episodes']:>6}{len(recs):>6}  "
                     f"{_fmt_fit(slope_fits(recs))}  {_fmt_fit(slope_fits(recs, late=True)):>24}"
                     f"  {mean:>9.2f} +- {half:<6.2f}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``drrpo_regret.png``: mean cumulative regret with 95% bands (linear and log-log)."""
    from matplotlib.figure import Figure

    from robustrl.stats import student_t_halfwidth

    groups = _groups(results)
    envs = [e for e in ENVS if any(g[0]["params"]["env"] == e for g in groups.values())]
    fig = Figure(figsize=(6 * len(envs), 8.4))
    axes = np.array(fig.subplots(2, len(envs), squeeze=False))
    for col, env in enumerate(envs):
        for recs in groups.values():
            p = recs[0]["params"]
            if p["env"] != env:
                continue
            ks = np.asarray(recs[0]["metrics"]["checkpoints"])
            R = np.array([r["metrics"]["cumulative_regret"] for r in recs])
            m = R.mean(axis=0)
            n = R.shape[0]
            half = student_t_halfwidth(R, single=0.0)
            for row in range(2):
                ax = axes[row, col]
                (line,) = ax.plot(ks, m, label=f"{p['agent']} (n={n})")
                ax.fill_between(ks, np.maximum(m - half, 1e-12), m + half,
                                color=line.get_color(), alpha=0.2, linewidth=0)
        axes[0, col].set_title(f"{env} linear MDP: cumulative regret (mean, 95% CI)")
        axes[1, col].set_xscale("log")
        axes[1, col].set_yscale("log")
        k_max = max(int(r["params"]["episodes"]) for r in results if r["params"]["env"] == env)
        ref = np.array([1.0, k_max])
        axes[1, col].plot(ref, ref**0.5 * 0.5, color="gray", ls=":", label="slope 1/2")
        axes[1, col].plot(ref, ref * 0.05, color="gray", ls="--", label="slope 1")
        axes[1, col].set_title(f"{env}: log-log")
        for row in range(2):
            axes[row, col].set_xlabel("episodes K")
            axes[row, col].set_ylabel("cumulative regret R(K)")
            axes[row, col].legend(fontsize=8)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "drrpo_regret.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
