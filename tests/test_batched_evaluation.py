"""Batched Monte-Carlo evaluation on known-model environments gives the loop's numbers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robustrl import data as data_module
from robustrl.agents import R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import (
    CombinationLockEnv,
    LayeredTabularMDPEnv,
    RandomLinearMDPEnv,
    SimulatedLinearMDPEnv,
)
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


# ---------------------------------------------------------------- batched data collection
def _collect_both(env, looped_env, n, seed):
    fast = OfflineDataset.collect(env, n, seed=seed)
    slow = OfflineDataset.collect(looped_env, n, seed=seed)
    return fast, slow


@pytest.mark.parametrize("make", [
    lambda: SimulatedLinearMDPEnv(perturbation=0.4),
    lambda: CombinationLockEnv(horizon=5, n_states=3, n_actions=4, seed=1),
    lambda: gym.make("robustrl/CombinationLock-v0", horizon=4, n_states=3, n_actions=3, seed=2),
    lambda: LayeredTabularMDPEnv(horizon=3, n_states=4, n_actions=2, seed=5),
    lambda: RandomLinearMDPEnv(seed=3),
])
def test_batched_collection_equals_the_loop_bit_for_bit(make):
    env = make()
    assert data_module._uniform_rollout(  # the batched path is taken here ...
        env, OfflineDataset.empty_arrays(2, env.unwrapped.horizon, 2, env.unwrapped.feature_dim,
                                         env.action_space.n),
        np.random.default_rng(0), 0, env.unwrapped.features,
        env.unwrapped.action_features) is not None
    looped = gym.wrappers.RecordEpisodeStatistics(make())  # ... and not behind this wrapper
    fast, slow = _collect_both(env, looped, 200, seed=7)
    for name in ("observations", "actions", "rewards", "next_observations", "features",
                 "next_action_features", "valid", "terminal"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    assert np.unique(fast.actions).size > 1 and np.unique(fast.next_observations[..., 0]).size > 1


def test_collection_loops_where_a_batch_could_differ():
    class OwnFeatures(SimulatedLinearMDPEnv):  # new features, the inherited table: loop
        def features(self, obs, action):
            return 2.0 * super().features(obs, action)

    env = OwnFeatures()
    data = OfflineDataset.collect(env, 20, seed=0)
    s, a = data.observations[0, 0, 0].astype(int), data.actions[0, 0]
    np.testing.assert_array_equal(data.features[0, 0], 2.0 * env.model.phi[s, a])

    class OwnStep(SimulatedLinearMDPEnv):  # a new step without a new rollout_uniform: loop
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, reward + 1.0, terminated, truncated, info

    data = OfflineDataset.collect(OwnStep(), 20, seed=0)
    plain = OfflineDataset.collect(SimulatedLinearMDPEnv(), 20, seed=0)
    np.testing.assert_array_equal(data.rewards, plain.rewards + 1.0)
    # a behaviour policy, a feature wrapper or a short time limit take the loop as well
    short = gym.wrappers.TimeLimit(SimulatedLinearMDPEnv(), max_episode_steps=2)
    assert data_module._uniform_rollout(
        short, OfflineDataset.empty_arrays(2, 3, 2, 4, 16), np.random.default_rng(0), 0,
        short.unwrapped.features, short.unwrapped.action_features) is None


def test_rollout_uniform_checks_episodes():
    with pytest.raises(ValueError, match="episodes"):
        SimulatedLinearMDPEnv().rollout_uniform(0, np.random.default_rng(0), 0)
