"""The contract every registered agent keeps (applied by parametrisation over the registry).

A new agent gets these checks by being added to ``robustrl.agents.OFFLINE_AGENTS`` or
``ONLINE_AGENTS``.
"""

import numpy as np
import pytest

from robustrl.agents import OFFLINE_AGENTS, ONLINE_AGENTS, NotFittedError
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv

ALL = [(name, cls, "offline") for name, cls in OFFLINE_AGENTS.items()] + [
    (name, cls, "online") for name, cls in ONLINE_AGENTS.items()
]
IDS = [name for name, _, _ in ALL]


@pytest.fixture(scope="module")
def sim_data():
    return OfflineDataset.collect(SimulatedLinearMDPEnv(), 30, seed=0)


def _trained(cls, kind, data, seed=0, env=None):
    env = env if env is not None else SimulatedLinearMDPEnv()
    if kind == "offline":
        return cls(env).fit(data)
    return cls(env, seed=seed).learn(4)


def _observations(env, n=12, seed=1):
    """Observations met along a few random episodes."""
    rng = np.random.default_rng(seed)
    obs_list = []
    obs, _ = env.reset(seed=seed)
    while len(obs_list) < n:
        obs_list.append(np.array(obs))
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(obs_list)


@pytest.mark.parametrize(("name", "cls", "kind"), ALL, ids=IDS)
def test_defaults_train_and_predict_valid_actions(name, cls, kind, sim_data):
    env = SimulatedLinearMDPEnv()
    if kind == "offline":
        # An offline agent has nothing to act on before fit; an online agent acts from the
        # start (its first episodes are how it learns).
        with pytest.raises(NotFittedError):
            cls(env).predict(_observations(env, 1)[0])
    agent = _trained(cls, kind, sim_data, env=env)
    obs = _observations(env)
    actions, state = agent.predict(obs)
    assert state is None
    assert actions.shape == (len(obs),) and actions.dtype == np.int64
    assert np.all((actions >= 0) & (actions < env.action_space.n))
    single, _ = agent.predict(obs[0])
    assert int(single) == actions[0] and env.action_space.contains(int(single))
    q = agent.q_values(obs[0])
    assert q.shape == (env.action_space.n,) and np.all(np.isfinite(q))


@pytest.mark.parametrize(("name", "cls", "kind"), ALL, ids=IDS)
def test_save_then_load_gives_identical_predictions(name, cls, kind, sim_data, tmp_path):
    agent = _trained(cls, kind, sim_data)
    path = agent.save(tmp_path / name)
    env = SimulatedLinearMDPEnv()
    loaded = cls.load(path, env)
    obs = _observations(env)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    for o in obs:
        np.testing.assert_array_equal(loaded.q_values(o), agent.q_values(o))


@pytest.mark.parametrize(("name", "cls", "kind"), ALL, ids=IDS)
def test_same_seed_same_results(name, cls, kind):
    env = SimulatedLinearMDPEnv()
    obs = _observations(env)
    data_a = OfflineDataset.collect(SimulatedLinearMDPEnv(), 20, seed=5)
    data_b = OfflineDataset.collect(SimulatedLinearMDPEnv(), 20, seed=5)
    a = _trained(cls, kind, data_a, seed=5)
    b = _trained(cls, kind, data_b, seed=5)
    for o in obs:
        np.testing.assert_array_equal(a.q_values(o), b.q_values(o))


@pytest.mark.parametrize(("name", "cls", "kind"), ALL, ids=IDS)
@pytest.mark.parametrize("bad", [{"ridge": -1.0}, {"ridge": 0.0}, {"beta": -0.5},
                                 {"ridge": float("nan")}])
def test_bad_hyperparameters_raise_naming_the_argument(name, cls, kind, bad):
    (arg,) = bad
    with pytest.raises(ValueError, match=arg):
        cls(SimulatedLinearMDPEnv(), **bad)


@pytest.mark.parametrize(("name", "cls", "kind"), ALL, ids=IDS)
def test_env_without_the_feature_interface_is_rejected(name, cls, kind):
    import gymnasium as gym

    with pytest.raises(ValueError, match="env must expose"):
        cls(gym.make("CartPole-v1"))


@pytest.mark.parametrize(("name", "cls"), list(OFFLINE_AGENTS.items()), ids=list(OFFLINE_AGENTS))
def test_offline_agents_fit_on_the_put_option(name, cls):
    env = AmericanPutEnv(horizon=8, feature_dim=10)
    data = OfflineDataset.collect(env, 40, seed=0)
    agent = cls(env).fit(data)
    obs = _observations(env, 6)
    actions, _ = agent.predict(obs)
    assert set(np.unique(actions)) <= {0, 1}
