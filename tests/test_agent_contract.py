"""The contract every agent keeps (applied by parametrisation over the registry and the specs).

A new agent gets these checks by being added to ``robustrl.agents.OFFLINE_AGENTS`` or
``ONLINE_AGENTS`` (constructed as ``Agent(env)``), or, if it needs more constructor arguments
(value / weight classes, offline data), by an :class:`AgentSpec` in ``EXTRA_SPECS`` that says
how to build and train it, which bad hyperparameters it must reject, and how it rejects an
environment it cannot run on.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from robustrl.agents import OFFLINE_AGENTS, ONLINE_AGENTS, NotFittedError
from robustrl.agents.glow import GLOW
from robustrl.agents.glow_lin import GLOWLin
from robustrl.agents.hyglow import HyGLOW
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv
from robustrl.exact import robust_value_iteration

DEFAULT_BAD = [{"ridge": -1.0}, {"ridge": 0.0}, {"beta": -0.5}, {"ridge": float("nan")}]


@dataclass(frozen=True)
class AgentSpec:
    """How the contract builds, trains and mis-configures one agent class."""

    name: str
    cls: type
    kind: str  # "offline", "online" or "hybrid"
    make: Callable  # (env, seed, **hyperparams) -> untrained agent
    train: Callable  # (agent, data) -> trained agent
    bad: list = field(default_factory=lambda: list(DEFAULT_BAD))
    bad_env_match: str = (
        "needs an environment with `horizon`, `feature_dim`, `features`, `action_features`")
    # online registry agents act from their first episode; the others refuse before training
    acts_untrained: bool = False


def _registry_spec(name, cls, kind) -> AgentSpec:
    if kind == "offline":
        return AgentSpec(name, cls, kind, make=lambda env, seed=None, **hp: cls(env, **hp),
                         train=lambda agent, data: agent.fit(data))
    return AgentSpec(name, cls, kind, make=lambda env, seed=None, **hp: cls(env, seed=seed, **hp),
                     train=lambda agent, data: agent.learn(4), acts_untrained=True)


def _value_class(env, n: int = 20, seed: int = 0) -> np.ndarray:
    """Q* of the env's model and n perturbed copies (the finite class GLOW needs)."""
    model = env.unwrapped.model
    Q = robust_value_iteration(model).Q
    caps = (model.horizon - np.arange(model.horizon))[:, None, None]
    noise = np.random.default_rng(seed).normal(0.0, 0.3, (n, *Q.shape))
    return np.concatenate([Q[None], np.clip(Q[None] + noise, 0.0, caps)])


GLOW_BAD = [{"kappa": -1.0}, {"kappa": 0.0}, {"delta": 1.5}, {"kappa": float("nan")}]

EXTRA_SPECS = [
    AgentSpec("GLOW", GLOW, "online",
              make=lambda env, seed=None, **hp: GLOW(env, _value_class(env), "tabular",
                                                     **{"kappa": 0.1, "seed": seed, **hp}),
              train=lambda agent, data: agent.learn(4),
              bad=GLOW_BAD, bad_env_match="env_or_model"),
    AgentSpec("HyGLOW", HyGLOW, "hybrid",
              make=lambda env, seed=None, data=None, **hp: HyGLOW(
                  env, _value_class(env), "tabular", offline_dataset=data, seed=seed, **hp),
              train=lambda agent, data: agent.learn(4),
              bad=[{"alpha0": -1.0}, {"alpha0": 0.0}, {"delta": 1.5}, {"gamma0": float("nan")}],
              bad_env_match="env_or_model"),
    AgentSpec("GLOWLin", GLOWLin, "online",
              make=lambda env, seed=None, **hp: GLOWLin(env, **{"kappa": 0.1, "seed": seed, **hp}),
              train=lambda agent, data: agent.learn(4),
              bad=[{"ridge": -1.0}, {"ridge": 0.0}, {"kappa": -0.5}, {"ridge": float("nan")}]),
]

SPECS = ([_registry_spec(n, c, "offline") for n, c in OFFLINE_AGENTS.items()]
         + [_registry_spec(n, c, "online") for n, c in ONLINE_AGENTS.items()] + EXTRA_SPECS)
IDS = [spec.name for spec in SPECS]
BAD_CASES = [(spec, bad) for spec in SPECS for bad in spec.bad]
BAD_IDS = [f"{spec.name}-{next(iter(bad))}={next(iter(bad.values()))}" for spec, bad in BAD_CASES]


@pytest.fixture(scope="module")
def sim_data():
    return OfflineDataset.collect(SimulatedLinearMDPEnv(), 30, seed=0)


def _trained(spec: AgentSpec, data, seed=0, env=None):
    env = env if env is not None else SimulatedLinearMDPEnv()
    if spec.kind == "hybrid":
        return spec.train(spec.make(env, seed, data=data), data)
    return spec.train(spec.make(env, seed), data)


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


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_defaults_train_and_predict_valid_actions(spec, sim_data):
    env = SimulatedLinearMDPEnv()
    if not spec.acts_untrained:
        # An offline (or class-based online) agent has nothing to act on before training; the
        # registry's online agents act from the start (their first episodes are how they learn).
        untrained = (spec.make(env, 0, data=sim_data) if spec.kind == "hybrid"
                     else spec.make(env, 0))
        with pytest.raises(NotFittedError):
            untrained.predict(_observations(env, 1)[0])
    agent = _trained(spec, sim_data, env=env)
    obs = _observations(env)
    actions, state = agent.predict(obs)
    assert state is None
    assert actions.shape == (len(obs),) and actions.dtype == np.int64
    assert np.all((actions >= 0) & (actions < env.action_space.n))
    single, _ = agent.predict(obs[0])
    assert int(single) == actions[0] and env.action_space.contains(int(single))
    q = agent.q_values(obs[0])
    assert q.shape == (env.action_space.n,) and np.all(np.isfinite(q))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_save_then_load_gives_identical_predictions(spec, sim_data, tmp_path):
    agent = _trained(spec, sim_data)
    path = agent.save(tmp_path / spec.name)
    env = SimulatedLinearMDPEnv()
    loaded = spec.cls.load(path, env)
    obs = _observations(env)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    for o in obs:
        np.testing.assert_array_equal(loaded.q_values(o), agent.q_values(o))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_same_seed_same_results(spec):
    env = SimulatedLinearMDPEnv()
    obs = _observations(env)
    data_a = OfflineDataset.collect(SimulatedLinearMDPEnv(), 20, seed=5)
    data_b = OfflineDataset.collect(SimulatedLinearMDPEnv(), 20, seed=5)
    a = _trained(spec, data_a, seed=5)
    b = _trained(spec, data_b, seed=5)
    for o in obs:
        np.testing.assert_array_equal(a.q_values(o), b.q_values(o))


@pytest.mark.parametrize(("spec", "bad"), BAD_CASES, ids=BAD_IDS)
def test_bad_hyperparameters_raise_naming_the_argument(spec, bad):
    (arg,) = bad
    with pytest.raises(ValueError, match=arg):
        spec.make(SimulatedLinearMDPEnv(), None, **bad)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_env_without_the_feature_interface_is_rejected(spec):
    import gymnasium as gym

    with pytest.raises(ValueError, match=spec.bad_env_match):
        spec.cls(gym.make("CartPole-v1"), *_class_args(spec))


def _class_args(spec: AgentSpec) -> tuple:
    """Positional class arguments (value / weight classes) the constructor needs first."""
    if spec.cls in (GLOW, HyGLOW):
        return (_value_class(SimulatedLinearMDPEnv()), "tabular")
    return ()


@pytest.mark.parametrize(("name", "cls"), list(OFFLINE_AGENTS.items()), ids=list(OFFLINE_AGENTS))
def test_offline_agents_fit_on_the_put_option(name, cls):
    env = AmericanPutEnv(horizon=8, feature_dim=10, reward_scale=0.01)
    data = OfflineDataset.collect(env, 40, seed=0)
    agent = cls(env).fit(data)
    obs = _observations(env, 6)
    actions, _ = agent.predict(obs)
    assert set(np.unique(actions)) <= {0, 1}
