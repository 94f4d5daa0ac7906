"""Offline classic-control datasets from an SB3 behaviour policy (robustrl/control_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl import control_data as cd
from robustrl.data import OfflineDataset


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


def _upright(obs):
    return int(obs[2] + 0.5 * obs[3] > 0)


def test_feature_map_is_onehot_kron_affine_obs():
    obs = np.array([0.5, -1.0, 2.0])
    phi = cd.control_features(obs, 1, 3)
    np.testing.assert_array_equal(phi, [0, 0, 0, 0, 1, 0.5, -1, 2, 0, 0, 0, 0])
    table = cd.control_action_features(obs, 3)
    assert table.shape == (3, 12)
    for b in range(3):
        np.testing.assert_array_equal(table[b], cd.control_features(obs, b, 3))


def test_collect_layout_matches_the_offline_dataset_contract():
    data = cd.collect_control_dataset("CartPole-v1", _upright, 4, horizon=30, seed=3)
    assert (data.n_trajectories, data.horizon, data.n_actions, data.feature_dim) == (4, 30, 2, 10)
    # the controller balances: every trajectory runs to the horizon cut, which is a timeout
    assert data.valid.all() and data.metadata["timeouts"] == [0, 1, 2, 3]
    assert data.terminal[:, -1].all() and not data.terminal[:, :-1].any()
    np.testing.assert_array_equal(data.next_observations[:, :-1], data.observations[:, 1:])
    assert np.all(data.rewards == 1.0)
    for k, h in [(0, 0), (2, 17)]:
        np.testing.assert_array_equal(
            data.features[k, h],
            cd.control_features(data.observations[k, h], data.actions[k, h], 2))
        np.testing.assert_array_equal(
            data.next_action_features[k, h],
            cd.control_action_features(data.next_observations[k, h], 2))
    assert data.metadata["behaviour_return_mean"] == 30.0
    # same seed, same data; another seed, other initial states
    again = cd.collect_control_dataset("CartPole-v1", _upright, 4, horizon=30, seed=3)
    np.testing.assert_array_equal(again.observations, data.observations)
    other = cd.collect_control_dataset("CartPole-v1", _upright, 4, horizon=30, seed=4)
    assert not np.array_equal(other.observations[0, 0], data.observations[0, 0])


def test_collect_terminated_episodes_are_not_timeouts():
    # always pushing right drops the pole within ~10 steps: true terminations
    data = cd.collect_control_dataset("CartPole-v1", lambda obs: 1, 3, horizon=100, seed=0)
    lengths = data.valid.sum(axis=1)
    assert np.all(lengths < 100) and data.metadata["timeouts"] == []
    for k, n in enumerate(lengths):
        assert data.valid[k, :n].all() and not data.valid[k, n:].any()
        assert data.terminal[k, n - 1] and data.terminal[k].sum() == 1
        assert not data.features[k, n:].any()


def test_horizon_is_cut_to_the_time_limit():
    data = cd.collect_control_dataset("CartPole-v1", _upright, 1, horizon=10_000, seed=0,
                                      env_kwargs={"max_episode_steps": 40})
    assert data.horizon == 40 and data.metadata["timeouts"] == [0]


def test_discretised_pendulum_and_perturbed_collection():
    data = cd.collect_control_dataset("Pendulum-v1", None, 2, horizon=20, seed=0,
                                      env_kwargs={"discretize": 5},
                                      perturbation={"mass": 2.0})
    assert data.n_actions == 5 and data.feature_dim == 5 * 4 and data.valid.all()
    assert data.metadata["perturbation"] == {"mass": 2.0}
    assert np.all(data.rewards <= 0.0)
    with pytest.raises(ValueError, match="discretize"):
        cd.collect_control_dataset("Pendulum-v1", None, 1, horizon=5)


def test_epsilon_greedy_rates():
    greedy = cd.EpsilonGreedy(lambda obs: 1, 4, 0.0, seed=0)
    assert all(greedy(np.zeros(4)) == 1 for _ in range(50))
    noisy = cd.EpsilonGreedy(lambda obs: 1, 4, 0.4, seed=0)
    acts = np.array([noisy(np.zeros(4)) for _ in range(4000)])
    # the greedy action 1 is kept with prob 0.6 + 0.4 / 4 = 0.7
    assert abs((acts == 1).mean() - 0.7) < 4 * np.sqrt(0.21 / acts.size)
    assert set(np.unique(acts)) == {0, 1, 2, 3}
    a2 = [cd.EpsilonGreedy(lambda obs: 1, 4, 0.4, seed=0).predict(np.zeros(4))[0]
          for _ in range(3)]
    assert a2 == [acts[0]] * 3
    with pytest.raises(ValueError, match="epsilon"):
        cd.EpsilonGreedy(lambda obs: 1, 4, 1.5)


def test_train_behaviour_policy_is_cached(tmp_path):
    model = cd.train_behaviour_policy("CartPole-v1", algo="ppo", timesteps=256, seed=0,
                                      cache=tmp_path)
    files = sorted(p.name for p in (tmp_path / "control").iterdir())
    zips = [f for f in files if f.endswith(".zip")]
    assert len(zips) == 1
    stamp = (tmp_path / "control" / zips[0]).stat().st_mtime_ns
    again = cd.train_behaviour_policy("CartPole-v1", algo="ppo", timesteps=256, seed=0,
                                      cache=tmp_path)
    assert (tmp_path / "control" / zips[0]).stat().st_mtime_ns == stamp  # reused, not retrained
    obs = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0],
                                  again.predict(obs, deterministic=True)[0])
    cd.train_behaviour_policy("CartPole-v1", algo="ppo", timesteps=256, seed=1, cache=tmp_path)
    assert len(list((tmp_path / "control").glob("*.zip"))) == 2  # keyed by seed


def test_dqn_behaviour_trains_without_cache():
    model = cd.train_behaviour_policy("CartPole-v1", algo="dqn", timesteps=300, seed=0,
                                      cache=False)
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1)


def test_offline_control_dataset_cache_roundtrip(tmp_path, monkeypatch):
    kw = dict(n_trajectories=3, horizon=25, epsilon=0.2, algo="ppo", timesteps=256, seed=0,
              cache=tmp_path)
    data = cd.offline_control_dataset("CartPole-v1", **kw)
    assert data.horizon == 25 and data.metadata["epsilon"] == 0.2
    assert data.metadata["algo"] == "ppo" and data.metadata["timesteps"] == 256

    def boom(*args, **kwargs):
        raise AssertionError("the cached dataset should have been reused")

    monkeypatch.setattr(cd, "train_behaviour_policy", boom)
    again = cd.offline_control_dataset("CartPole-v1", **kw)
    for name in ("observations", "actions", "rewards", "features", "valid", "terminal"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name))
    assert again.metadata == data.metadata
    with pytest.raises(AssertionError, match="reused"):  # another epsilon is another dataset
        cd.offline_control_dataset("CartPole-v1", **{**kw, "epsilon": 0.5})
    path = data.save(tmp_path / "d.npz")
    assert OfflineDataset.load(path).metadata["timeouts"] == data.metadata["timeouts"]


def test_collection_action_noise_makes_transitions_stochastic(tmp_path):
    kw = dict(n_trajectories=3, horizon=25, epsilon=0.0, algo="ppo", timesteps=256, seed=0,
              cache=tmp_path)
    clean = cd.offline_control_dataset("CartPole-v1", **kw)
    noisy = cd.offline_control_dataset("CartPole-v1", **kw, action_noise=0.5)
    assert noisy.metadata["action_noise"] == 0.5 and clean.metadata["action_noise"] == 0.0
    assert len(list((tmp_path / "control").glob("dataset-*.npz"))) == 2
    assert len(list((tmp_path / "control").glob("behaviour-*.zip"))) == 1  # same behaviour
    np.testing.assert_array_equal(noisy.observations[0, 0], clean.observations[0, 0])
    assert not np.array_equal(noisy.next_observations[0, :5], clean.next_observations[0, :5])
    # the recorded actions are the behaviour's (greedy, epsilon 0); the executed ones are not,
    # so some recorded (s, a) pairs are followed by the other action's next state
    obs, act, nxt = (noisy.observations[noisy.valid], noisy.actions[noisy.valid],
                     noisy.next_observations[noisy.valid])
    import gymnasium as gym

    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    mismatch = 0
    for o, a, n in zip(obs, act, nxt, strict=True):
        env.state = o.astype(np.float64)
        env.step(int(a))
        mismatch += not np.allclose(env.state, n, atol=1e-6)
    assert 0 < mismatch < len(obs)
    with pytest.raises(ValueError, match="action_noise"):
        cd.offline_control_dataset("CartPole-v1", **kw, action_noise=1.5)


def test_environment_variable_sets_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTRL_CACHE", str(tmp_path / "c"))
    assert cd.cache_dir() == tmp_path / "c" / "control"
    assert cd.cache_dir(tmp_path / "x") == tmp_path / "x" / "control"


def test_bad_arguments():
    with pytest.raises(ValueError, match="algo"):
        cd.train_behaviour_policy("CartPole-v1", algo="sac", timesteps=10)
    with pytest.raises(ValueError, match="timesteps"):
        cd.train_behaviour_policy("CartPole-v1", timesteps=0)
    with pytest.raises(ValueError, match="n_trajectories"):
        cd.collect_control_dataset("CartPole-v1", None, 0)
    with pytest.raises(ValueError, match="horizon"):
        cd.collect_control_dataset("CartPole-v1", None, 1, horizon=0)
    with pytest.raises(ValueError, match="epsilon"):
        cd.offline_control_dataset("CartPole-v1", epsilon=-0.1, cache=False)
