"""Offline fit time: R2PVI (TV, KL, chi2) and DRPVI of the package against the loop-style
NumPy/SciPy reference of :mod:`benchmarks.loop_reference`, on the same datasets.

Inputs: the American put option (d = 30 hat features, H = 20, always-hold behaviour as the
authors' code, beta = 0.1, ridge = 1, lambda = rho = 0.025) and the simulated linear MDP
(d = 4, |A| = 16, H = 3, uniform behaviour, beta = 1, ridge = 0.1, lambda = rho = 0.1), for
N trajectories. The package's time is the best of ``2 x repeats`` fits (half before, half
after the reference run, so that a load change during the reference does not bias the ratio)
after a warm-up fit (JIT compilation excluded); the reference runs once per size. When the
reference would exceed the time budget (predicted linearly from the largest size already
measured), it is timed on the largest subset of trajectories that fits the budget and its time
at N is *extrapolated* linearly in N (its cost is per-sample loops); such rows say so.
``max |dw|`` is the largest difference between the two fitted weight arrays where the
reference was run in full.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.common import best_time, format_table, once
from benchmarks.loop_reference import fit_offline
from robustrl.agents import DRPVI, DRVI_L, PEVI, R2PVI
from robustrl.agents.base import TiedQWarning
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv

METHODS = ("R2PVI-TV", "R2PVI-KL", "R2PVI-chi2", "DRPVI")
#: every offline agent (``--only put``): the put fits of the end-to-end comparison
ALL_METHODS = ("PEVI", *METHODS, "DRVI-L")


class _FreshStartPrice(gym.Wrapper):
    """Every reset draws a new start price (a seeded reset of the put), so that every
    trajectory of a dataset -- hence every next-state value -- is distinct."""

    def __init__(self, env, seed: int) -> None:
        super().__init__(env)
        self._seeds = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=int(self._seeds.integers(2**31 - 1)), options=options)


def make_env_data(env_name: str, n: int, seed: int = 0):
    """``put``: the authors' always-hold data from one start price; ``put-distinct``: the
    same behaviour with a start price per trajectory; ``sim``: the simulated linear MDP."""
    if env_name in ("put", "put-distinct"):
        env = AmericanPutEnv(feature_dim=30, horizon=20)
        env.reset(seed=seed)
        source = _FreshStartPrice(env, seed) if env_name == "put-distinct" else env
        data = OfflineDataset.collect(source, n, behaviour_policy=lambda obs: 0, seed=seed)
        return env, data, {"beta": 0.1, "ridge": 1.0, "lam": 0.025}
    env = SimulatedLinearMDPEnv()
    data = OfflineDataset.collect(env, n, seed=seed)
    return env, data, {"beta": 1.0, "ridge": 0.1, "lam": 0.1}


def make_agent(method: str, env, settings: dict):
    beta, ridge, lam = settings["beta"], settings["ridge"], settings["lam"]
    if method == "PEVI":
        return PEVI(env, beta=beta, ridge=ridge)
    if method == "DRPVI":
        return DRPVI(env, rho=lam, beta=beta, ridge=ridge)
    if method == "DRVI-L":
        return DRVI_L(env, rho=lam, beta=beta, ridge=ridge)
    return R2PVI(env, divergence=method.split("-")[1].lower(), lam=lam, beta=beta, ridge=ridge)


def run(sizes: dict[str, list[int]], repeats: int = 5, budget: float = 20.0,
        methods: tuple[str, ...] = METHODS, log=print) -> dict[str, Any]:
    """Time every (env, method, N); returns ``{"rows": [...], "table": str}``. A fit whose
    greedy policy ties at a clip bound (:class:`robustrl.agents.base.TiedQWarning`, raised by
    every one of the timed fits) is reported in one line, not once per repeat."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TiedQWarning)
        out = _run(sizes, repeats, budget, methods, log, caught)
    return out


def _run(sizes, repeats, budget, methods, log, caught) -> dict[str, Any]:
    rows = []
    for env_name, ns in sizes.items():
        per_traj: dict[str, float] = {}  # reference seconds per trajectory, last measured
        for n in ns:
            env, data, settings = make_env_data(env_name, n)
            for method in methods:
                agent = make_agent(method, env, settings)
                package = best_time(lambda agent=agent, data=data: agent.fit(data), repeats)
                predicted = per_traj.get(method, 0.0) * n
                if predicted <= budget:
                    ref_seconds, (w, _) = once(
                        lambda agent=agent, data=data: fit_offline(agent, data))
                    status, n_ref = "measured", n
                    diff = float(np.max(np.abs(w - agent.weights_)))
                    per_traj[method] = ref_seconds / n
                else:
                    n_ref = max(1, int(budget / per_traj[method]))
                    sub = data.subset(n_ref)
                    sub_seconds, _ = once(lambda agent=agent, sub=sub: fit_offline(agent, sub))
                    ref_seconds = sub_seconds * n / n_ref
                    status = (f"extrapolated (measured {sub_seconds:.3g} s at N={n_ref}, "
                              f"x{n / n_ref:.3g})")
                    diff = float("nan")
                # again after the reference: on a shared machine the load drifts over the
                # seconds the reference takes; the best of both batches is kept
                package = min(package, best_time(lambda agent=agent, data=data: agent.fit(data),
                                                 repeats, warmup=False))
                row = {"env": env_name, "method": method, "N": n, "samples": len(data),
                       "package_s": package, "reference_s": ref_seconds,
                       "reference": status, "reference_N": n_ref,
                       "ratio": ref_seconds / package, "max_abs_weight_diff": diff}
                rows.append(row)
                log(f"  offline {env_name} {method} N={n}: package {package:.4g} s, reference "
                    f"{ref_seconds:.4g} s ({status.split(' ')[0]}), ratio {row['ratio']:.1f}x")
                tied = [w for w in caught if issubclass(w.category, TiedQWarning)]
                if tied:  # the same message for every repeat: the first says it all
                    row["tied_q_warning"] = str(tied[0].message)
                    log(f"    (TiedQWarning: {str(tied[0].message).split(', so the')[0]})")
                caught.clear()
    header = ["env", "method", "N", "samples", "package s", "loop ref s", "ratio", "ref timing",
              "max |dw|"]
    table = format_table(header, [
        [r["env"], r["method"], r["N"], r["samples"], r["package_s"], r["reference_s"],
         f"{r['ratio']:.1f}x", r["reference"], r["max_abs_weight_diff"]] for r in rows])
    return {"rows": rows, "table": table}
