"""Time rlberry's LSVI-UCB agent (``rlberry_scool.agents.linear.LSVIUCBAgent``) on a finite MDP
exported by :mod:`benchmarks.bench_online` (``phi (S, A, d)``, ``P (H, S, A, S)``, ``R (H, S, A)``,
initial distribution). rlberry pins gymnasium < 0.30, so this script imports nothing from
robustrl and runs in a separate virtual environment:

    python -m venv /tmp/rlberry_venv && /tmp/rlberry_venv/bin/pip install rlberry rlberry-scool
    /tmp/rlberry_venv/bin/python benchmarks/rlberry_lsvi.py MODEL.npz EPISODES SEED

Prints one JSON line: ``{"seconds": ..., "episodes": ..., "rlberry": version}``.
"""

from __future__ import annotations

import json
import sys
import time

import gymnasium as gym
import numpy as np


class ExportedMDP(gym.Env):
    """The exported finite-horizon MDP; observations are state indices (the step is kept inside,
    rlberry's agent counts steps itself)."""

    def __init__(self, path: str, seed: int) -> None:
        data = np.load(path)
        self.phi, self.P, self.R = data["phi"], data["P"], data["R"]
        self.init = data["initial_distribution"]
        self.H = self.P.shape[0]
        self.observation_space = gym.spaces.Discrete(self.phi.shape[0])
        self.action_space = gym.spaces.Discrete(self.phi.shape[1])
        self.reward_range = (0.0, 1.0)
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        self.h = 0
        self.s = int(self.rng.choice(self.init.shape[0], p=self.init))
        return self.s, {}

    def step(self, action):
        r = float(self.R[self.h, self.s, action])
        self.s = int(self.rng.choice(self.P.shape[3], p=self.P[self.h, self.s, action]))
        self.h += 1
        return self.s, r, False, self.h >= self.H, {}


class TableFeatures:
    def __init__(self, env) -> None:
        self.phi = env.unwrapped.phi
        self.shape = (self.phi.shape[2],)

    def map(self, observation, action):
        return self.phi[int(observation), int(action)]


def main(argv: list[str]) -> int:
    import rlberry
    from rlberry_scool.agents.linear import LSVIUCBAgent

    path, episodes, seed = argv[0], int(argv[1]), int(argv[2])
    env = ExportedMDP(path, seed)
    agent = LSVIUCBAgent(env, horizon=env.H, feature_map_fn=TableFeatures, gamma=1.0,
                         bonus_scale_factor=1.0, reg_factor=0.1)
    start = time.perf_counter()
    agent.fit(budget=episodes)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "episodes": episodes,
                      "rlberry": getattr(rlberry, "__version__", "?")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
