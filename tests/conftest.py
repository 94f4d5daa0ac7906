"""Shared test fixtures: small seeded data sets and helpers that several test files use."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.exact import robust_value_iteration


def value_class_of(env, n: int = 20, seed: int = 0) -> np.ndarray:
    """Q* of the env's model and ``n`` perturbed copies, clipped to ``[0, H - h]`` (the finite
    value class GLOW and HyGLOW need)."""
    model = env.unwrapped.model
    Q = robust_value_iteration(model).Q
    caps = (model.horizon - np.arange(model.horizon))[:, None, None]
    noise = np.random.default_rng(seed).normal(0.0, 0.3, (n, *Q.shape))
    return np.concatenate([Q[None], np.clip(Q[None] + noise, 0.0, caps)])


def observations_of(env, n: int = 12, seed: int = 1) -> np.ndarray:
    """``n`` observations met along random episodes of ``env`` (seeded)."""
    rng = np.random.default_rng(seed)
    obs_list = []
    obs, _ = env.reset(seed=seed)
    while len(obs_list) < n:
        obs_list.append(np.array(obs))
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(obs_list)


@pytest.fixture(scope="session")
def sim_data_small() -> OfflineDataset:
    """30 trajectories of the simulated linear MDP (seed 0)."""
    return OfflineDataset.collect(SimulatedLinearMDPEnv(), 30, seed=0)


@pytest.fixture(scope="session")
def value_class():
    """:func:`value_class_of` as a fixture."""
    return value_class_of


@pytest.fixture(scope="session")
def observations():
    """:func:`observations_of` as a fixture."""
    return observations_of
