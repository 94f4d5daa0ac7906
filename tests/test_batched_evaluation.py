"""Batched Monte-Carlo evaluation on known-model environments gives the loop's numbers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robustrl.agents import R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import CombinationLockEnv, SimulatedLinearMDPEnv
from robustrl.evaluation import _batched_table, evaluate


def _looped(make):
    """The same environments behind a wrapper the batched path does not trust, which forces
    the episode-by-episode loop."""
    return lambda q: gym.wrappers.RecordEpisodeStatistics(make(q))


@pytest.fixture(scope="module")
def agent():
    env = SimulatedLinearMDPEnv()
    return R2PVI(env, divergence="tv", lam=0.1).fit(OfflineDataset.collect(env, 50, seed=1))


def test_batched_equals_the_loop_bit_for_bit(agent):
    def make(q):
        return SimulatedLinearMDPEnv(perturbation=q)

    grid = [0.0, 0.3, 0.7, 1.0]
    assert _batched_table(agent, make(0.0)) is not None
    assert _batched_table(agent, _looped(make)(0.0)) is None
    fast = evaluate(agent, make, grid, episodes=200, seed=3)
    slow = evaluate(agent, _looped(make), grid, episodes=200, seed=3)
    np.testing.assert_array_equal(fast.returns, slow.returns)
    assert np.unique(fast.returns).size > 2  # the episodes really differ


def test_batched_table_policy_on_the_lock_and_gym_make_wrappers():
    env = gym.make("robustrl/CombinationLock-v0", horizon=4, n_states=3, n_actions=3, seed=2)
    assert _batched_table(np.zeros((4, 3), dtype=np.int64), env) is not None  # passive wrappers
    rng = np.random.default_rng(0)
    table = rng.integers(0, 3, size=(4, 3))

    def make(q):
        return CombinationLockEnv(horizon=4, n_states=3, n_actions=3, seed=2, perturbation=q)

    fast = evaluate(table, make, [0.0, 0.5], episodes=300, seed=0)
    slow = evaluate(table, _looped(make), [0.0, 0.5], episodes=300, seed=0)
    np.testing.assert_array_equal(fast.returns, slow.returns)


def test_stochastic_policies_take_the_loop():
    env = SimulatedLinearMDPEnv()
    assert _batched_table(lambda obs: 0, env) is None  # a callable may be random
    probs = np.full((env.horizon, env.n_states, env.n_actions), 1.0 / env.n_actions)
    assert _batched_table(probs, env) is None
    short = gym.wrappers.TimeLimit(SimulatedLinearMDPEnv(), max_episode_steps=1)
    assert _batched_table(np.zeros((env.horizon, env.n_states), dtype=np.int64), short) is None


def test_rollout_returns_checks_its_table():
    env = SimulatedLinearMDPEnv()
    with pytest.raises(ValueError, match="integer"):
        env.rollout_returns(np.zeros((env.horizon, env.n_states)), 3, 0)
    with pytest.raises(ValueError, match="lie in"):
        env.rollout_returns(np.full((env.horizon, env.n_states), 99), 3, 0)
