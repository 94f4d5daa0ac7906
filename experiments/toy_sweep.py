"""Monte-Carlo vs exact return of the uniform random policy on the simulated linear MDP.

A small, fast sweep over the perturbation level q and the number of episodes: each cell runs
``episodes`` Monte-Carlo episodes of the uniform random policy on the q-perturbed simulated
d-rectangular linear MDP (arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md) and compares the
mean return with the exact
expected return. It exercises the runner end to end (tests, CI) and shows the Monte-Carlo error
shrinking like 1/sqrt(episodes), with 95% intervals over seeds.

Run: robustrl run toy_sweep --out results/toy_sweep
"""

from __future__ import annotations

import numpy as np

from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.evaluation import evaluate, evaluate_exact
from robustrl.validation import check_int

NAME = "toy_sweep"
DESCRIPTION = "uniform random policy on the simulated linear MDP: Monte-Carlo vs exact return"
GRID = {"perturbation": [0.0, 0.5, 1.0], "episodes": [20, 200]}
SEEDS = 3
X_AXIS = "perturbation"


def check(params: dict) -> None:
    if not 0.0 <= params["perturbation"] <= 1.0:
        raise ValueError(f"perturbation must lie in [0, 1]; got {params['perturbation']}")
    check_int(params["episodes"], "episodes", low=1)


def _uniform_policy(env: SimulatedLinearMDPEnv) -> np.ndarray:
    shape = (env.horizon, env.model.n_states, env.n_actions)
    return np.full(shape, 1.0 / env.n_actions)


def run_one(params: dict, seed: int) -> dict:
    q, episodes = float(params["perturbation"]), int(params["episodes"])
    policy = _uniform_policy(SimulatedLinearMDPEnv())

    def make(p):
        return SimulatedLinearMDPEnv(perturbation=p)

    mc = evaluate(policy, make, [q], episodes=episodes, seed=seed)
    exact = float(evaluate_exact(policy, make, [q]).mean[0])
    mean = float(mc.mean[0])
    return {
        "mc_return": mean,
        "exact_return": exact,
        "abs_error": abs(mean - exact),
        "mc_stderr": float(mc.stderr[0]),
    }
