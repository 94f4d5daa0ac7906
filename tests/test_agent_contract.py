"""The contract every agent keeps (applied by parametrisation over the registry and the specs).

A new agent gets these checks by being added to ``robustrl.agents.OFFLINE_AGENTS`` or
``ONLINE_AGENTS`` (constructed as ``Agent(env)``), or, if it needs more constructor arguments
(value / weight classes, offline data), by an :class:`AgentSpec` in ``EXTRA_SPECS`` that says
how to build and train it, which bad hyperparameters it must reject, and how it rejects an
environment it cannot run on.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import observations_of, value_class_of

from robustrl.agents import OFFLINE_AGENTS, ONLINE_AGENTS, NotFittedError
from robustrl.agents.glow import GLOW
from robustrl.agents.glow_lin import GLOWLin
from robustrl.agents.golf import GOLF
from robustrl.agents.h2o import H2OFQI
from robustrl.agents.hyglow import HyGLOW
from robustrl.agents.hyq import HyQ
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv

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
                     train=lambda agent, data: agent.learn(total_episodes=4), acts_untrained=True)


GLOW_BAD = [{"kappa": -1.0}, {"kappa": 0.0}, {"delta": 1.5}, {"kappa": float("nan")}]

EXTRA_SPECS = [
    AgentSpec("GLOW", GLOW, "online",
              make=lambda env, seed=None, **hp: GLOW(env, value_class_of(env), "tabular",
                                                     **{"kappa": 0.1, "seed": seed, **hp}),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=GLOW_BAD, bad_env_match="env_or_model"),
    AgentSpec("HyGLOW", HyGLOW, "hybrid",
              make=lambda env, seed=None, data=None, **hp: HyGLOW(
                  env, value_class_of(env), "tabular", offline_dataset=data, seed=seed, **hp),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=[{"alpha0": -1.0}, {"alpha0": 0.0}, {"delta": 1.5}, {"gamma0": float("nan")}],
              bad_env_match="env_or_model"),
    AgentSpec("GLOWLin", GLOWLin, "online",
              make=lambda env, seed=None, **hp: GLOWLin(env, **{"kappa": 0.1, "seed": seed, **hp}),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=[{"ridge": -1.0}, {"ridge": 0.0}, {"kappa": -0.5}, {"ridge": float("nan")}]),
    AgentSpec("GOLF", GOLF, "online",
              make=lambda env, seed=None, **hp: GOLF(env, value_class_of(env), seed=seed, **hp),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=[{"beta": -1.0}, {"delta": 1.5}, {"value_range": 0.0},
                   {"beta": float("nan")}],
              bad_env_match="env_or_model"),
    AgentSpec("HyQ", HyQ, "hybrid",
              make=lambda env, seed=None, data=None, **hp: HyQ(
                  env, value_class_of(env), offline_dataset=data, seed=seed, **hp),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=[{"episodes_per_round": 0}, {"episodes_per_round": 2.5}],
              bad_env_match="env_or_model"),
    AgentSpec("H2OFQI", H2OFQI, "hybrid",
              make=lambda env, seed=None, data=None, **hp: H2OFQI(
                  env, value_class_of(env), offline_dataset=data, seed=seed, **hp),
              train=lambda agent, data: agent.learn(total_rounds=4),
              bad=[{"offline_schedule": "balanced"}, {"episodes_per_round": 0}],
              bad_env_match="env_or_model"),
]

SPECS = ([_registry_spec(n, c, "offline") for n, c in OFFLINE_AGENTS.items()]
         + [_registry_spec(n, c, "online") for n, c in ONLINE_AGENTS.items()] + EXTRA_SPECS)
IDS = [spec.name for spec in SPECS]
BAD_CASES = [(spec, bad) for spec in SPECS for bad in spec.bad]
BAD_IDS = [f"{spec.name}-{next(iter(bad))}={next(iter(bad.values()))}" for spec, bad in BAD_CASES]


@pytest.fixture(scope="module")
def sim_data(sim_data_small):
    return sim_data_small


def _trained(spec: AgentSpec, data, seed=0, env=None):
    env = env if env is not None else SimulatedLinearMDPEnv()
    if spec.kind == "hybrid":
        return spec.train(spec.make(env, seed, data=data), data)
    return spec.train(spec.make(env, seed), data)


_observations = observations_of


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
        return (value_class_of(SimulatedLinearMDPEnv()), "tabular")
    if spec.cls in (GOLF, HyQ, H2OFQI):
        return (value_class_of(SimulatedLinearMDPEnv()),)
    return ()


@pytest.mark.parametrize(("name", "cls"), list(OFFLINE_AGENTS.items()), ids=list(OFFLINE_AGENTS))
def test_offline_agents_fit_on_the_put_option(name, cls):
    env = AmericanPutEnv(horizon=8, feature_dim=10, reward_scale=0.01)
    data = OfflineDataset.collect(env, 40, seed=0)
    agent = cls(env).fit(data)
    obs = _observations(env, 6)
    actions, _ = agent.predict(obs)
    assert set(np.unique(actions)) <= {0, 1}


# ============================================================================================
# The one contract of docs/agent-contract.md, over all 18 agents: shared signatures (inspect),
# stable-baselines3 callbacks called by every learn / fit, save -> load(path) without an env.

try:  # the neural extra (torch, stable-baselines3)
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
except ImportError:  # pragma: no cover - the linear agents' checks still run
    BaseCallback = object
needs_sb3 = pytest.mark.skipif(BaseCallback is object, reason="needs the neural extra (SB3)")

H_SIM = SimulatedLinearMDPEnv().horizon
TINY_NEURAL = dict(hidden=(8,), ensemble_size=2, gradient_steps=2, batch_size=16,
                   device="cpu", seed=0)


def _sim_observations():
    obs = observations_of(SimulatedLinearMDPEnv())
    return obs, list(obs[:3])


@dataclass(frozen=True)
class Contract:
    """How the contract test builds one agent, trains it by ``units`` of its documented unit,
    and how many ``_on_step`` calls that makes."""

    name: str
    kind: str  # "offline" (fit) or "online" (learn)
    make: Callable  # (data) -> untrained agent
    unit: str | None  # keyword of the family's own unit (None: total_timesteps is the unit)
    units: int  # budget passed in that unit
    calls: int  # _on_step calls that budget makes
    # the agent's own environment: eval env of EvalCallback, and () -> (a batch of observations,
    # a few single observations) for predictions before and after save / load
    env: Callable = SimulatedLinearMDPEnv
    observations: Callable = _sim_observations

    def train(self, agent, data, **kw):
        if self.kind == "offline":
            return agent.fit(data, **kw)
        if self.unit is None:
            return agent.learn(self.units, **kw)
        return agent.learn(**{self.unit: self.units}, **kw)


def _neural(name):
    def make(data):
        from robustrl.agents import neural

        return getattr(neural, name)(SimulatedLinearMDPEnv(), horizon=H_SIM, **TINY_NEURAL)
    return make


def _neural_drrpo(data):
    from robustrl.agents import NeuralDRRPO

    return NeuralDRRPO(SimulatedLinearMDPEnv(), hidden=(8,), ensemble_size=2, buffer_size=64,
                       learning_starts=4, batch_size=4, target_update_interval=2,
                       device="cpu", seed=0)


def _cave_levels():
    from robustrl.envs.cave_levels import generate_level_set

    return generate_level_set("train", 4, seed=0)


def _level_replay_ppo(data):
    from robustrl.agents import LevelReplayPPO

    return LevelReplayPPO("uniform", _cave_levels(), seed=0, n_envs=2, n_steps=16,
                          navigation_only=True, device="cpu")


def _cave_env():
    from robustrl.envs import CaveEscapeEnv

    return CaveEscapeEnv(_cave_levels()[1], navigation_only=True)


def _cave_observations():
    """Dict (image, direction) observations along a random episode of a training level."""
    env, rng = _cave_env(), np.random.default_rng(1)
    obs, _ = env.reset(seed=1)
    singles = []
    while len(singles) < 12:
        singles.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    return {k: np.stack([o[k] for o in singles]) for k in singles[0]}, singles[:3]


CONTRACTS = [
    *[Contract(n, "offline", lambda data, c=c: c(SimulatedLinearMDPEnv()), None, 0, 1)
      for n, c in OFFLINE_AGENTS.items()],
    *[Contract(n, "online", lambda data, c=c: c(SimulatedLinearMDPEnv(), seed=0),
               "total_episodes", 3, 3) for n, c in ONLINE_AGENTS.items()],
    Contract("GLOW", "online", lambda data: GLOW(SimulatedLinearMDPEnv(),
                                                 value_class_of(SimulatedLinearMDPEnv()),
                                                 "tabular", kappa=0.1, seed=0),
             "total_rounds", 3, 3),
    Contract("HyGLOW", "online", lambda data: HyGLOW(SimulatedLinearMDPEnv(),
                                                     value_class_of(SimulatedLinearMDPEnv()),
                                                     "tabular", data, seed=0),
             "total_rounds", 3, 3),
    Contract("GLOWLin", "online", lambda data: GLOWLin(SimulatedLinearMDPEnv(), kappa=0.1,
                                                       seed=0), "total_rounds", 3, 3),
    Contract("GOLF", "online", lambda data: GOLF(SimulatedLinearMDPEnv(),
                                                 value_class_of(SimulatedLinearMDPEnv()),
                                                 seed=0), "total_rounds", 3, 3),
    Contract("HyQ", "online", lambda data: HyQ(SimulatedLinearMDPEnv(),
                                               value_class_of(SimulatedLinearMDPEnv()), data,
                                               seed=0), "total_rounds", 3, 3),
    Contract("H2OFQI", "online", lambda data: H2OFQI(SimulatedLinearMDPEnv(),
                                                     value_class_of(SimulatedLinearMDPEnv()),
                                                     data, seed=0), "total_rounds", 3, 3),
    Contract("NeuralR2PVI", "offline", _neural("NeuralR2PVI"), None, 0, H_SIM),
    Contract("NeuralFQI", "offline", _neural("NeuralFQI"), None, 0, H_SIM),
    # one call per vector step: 6 transitions of 3-step episodes take 7 steps of one env (the
    # step after an episode's end only resets it: gymnasium's next-step autoreset)
    Contract("NeuralDRRPO", "online", _neural_drrpo, None, 6, 7),
    Contract("LevelReplayPPO", "online", _level_replay_ppo, "total_updates", 1, 1,
             env=_cave_env, observations=_cave_observations),
]
CONTRACT_IDS = [c.name for c in CONTRACTS]


def _params(cls, verb: str) -> dict:
    return inspect.signature(getattr(cls, verb)).parameters


def _contract_cases(test: str | None = None):
    def marks(c):
        return [needs_sb3] if c.name.startswith(("Neural", "Level")) else []
    return [pytest.param(c, id=c.name, marks=marks(c)) for c in CONTRACTS]


def _cls(contract: Contract) -> type:
    import robustrl.agents as agents

    return getattr(agents, contract.name)


def test_the_contract_covers_all_18_agents():
    import robustrl.agents as agents

    exported = {n for n in agents.__all__ if isinstance(getattr(agents, n), type)
                and n not in ("LinearAgent", "NotFittedError", "RegretCurve")}
    assert sorted(exported) == sorted(CONTRACT_IDS) and len(CONTRACTS) == 18


@pytest.mark.parametrize("contract", _contract_cases("test_shared_signatures"))
def test_shared_signatures(contract):
    cls = _cls(contract)
    verb = "fit" if contract.kind == "offline" else "learn"
    p = _params(cls, verb)
    first = list(p)[1]
    assert first == ("dataset" if verb == "fit" else "total_timesteps")
    assert p["callback"].default is None and p["progress_bar"].default is False
    units = [n for n in p if n.startswith("total_") and n != "total_timesteps"]
    if contract.unit is not None:  # one explicit alternative unit, keyword-only
        assert units == [contract.unit]
        assert p[contract.unit].kind is inspect.Parameter.KEYWORD_ONLY
        assert p[contract.unit].default is None and p["total_timesteps"].default is None
    pred = _params(cls, "predict")
    assert list(pred)[1:5] == ["obs", "state", "episode_start", "deterministic"]
    assert (pred["state"].default, pred["episode_start"].default,
            pred["deterministic"].default) == (None, None, True)
    assert list(_params(cls, "save"))[1:] == ["path"]
    assert isinstance(inspect.getattr_static(cls, "load"), classmethod)
    load = _params(cls, "load")
    assert list(load)[:3] == ["path", "env", "device"]
    assert load["env"].default is None and load["device"].default == "auto"
    # hyperparameters declared once, in the constructor signature (no **kwargs)
    assert not any(q.kind is inspect.Parameter.VAR_KEYWORD
                   for q in _params(cls, "__init__").values())


class _Counter(BaseCallback):
    """Counts SB3's calls and sees the agent's locals; stops after ``stop_after`` steps."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.stop_after = stop_after
        self.started = self.ended = 0
        self.timesteps: list[int] = []

    def _on_training_start(self) -> None:
        self.started += 1

    def _on_step(self) -> bool:
        assert self.locals["self"] is self.model
        self.timesteps.append(self.num_timesteps)
        return self.stop_after is None or self.n_calls < self.stop_after

    def _on_training_end(self) -> None:
        self.ended += 1


@needs_sb3
@pytest.mark.parametrize(
    "contract",
    _contract_cases("test_sb3_checkpoint_and_custom_callbacks_are_called"))
def test_sb3_checkpoint_and_custom_callbacks_are_called(contract, sim_data, tmp_path):
    counter = _Counter()
    checkpoint = CheckpointCallback(save_freq=1, save_path=str(tmp_path), name_prefix="ck")
    agent = contract.make(sim_data)
    contract.train(agent, sim_data, callback=CallbackList([checkpoint, counter]))
    assert (counter.started, counter.ended) == (1, 1)
    assert counter.n_calls == contract.calls
    assert counter.timesteps[-1] == agent.num_timesteps > 0
    assert np.all(np.diff(counter.timesteps) >= 0)
    # CheckpointCallback saved the agent at every call; the last file loads and predicts
    files = sorted(tmp_path.glob("ck_*"), key=lambda f: f.stat().st_mtime_ns)
    assert len(files) >= 1
    obs, _ = contract.observations()
    loaded = _cls(contract).load(files[-1])
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])


@needs_sb3
@pytest.mark.parametrize(
    "contract",
    [c for c in _contract_cases("test_a_callback_returning_false_stops_training")
     if c.values[0].calls > 1])
def test_a_callback_returning_false_stops_training(contract, sim_data):
    counter = _Counter(stop_after=1)
    contract.train(contract.make(sim_data), sim_data, callback=counter)
    assert counter.n_calls == 1 and counter.ended == 1


@needs_sb3
@pytest.mark.parametrize("contract", _contract_cases("test_eval_callback_runs"))
def test_eval_callback_runs(contract, sim_data):
    from stable_baselines3.common.callbacks import EvalCallback

    ev = EvalCallback(contract.env(), n_eval_episodes=1, eval_freq=1, verbose=0, warn=False)
    agent = contract.make(sim_data)
    with pytest.warns(UserWarning, match="Training and eval env are not of the same type"):
        contract.train(agent, sim_data, callback=ev)
    assert ev.n_calls == contract.calls and np.isfinite(ev.last_mean_reward)


@pytest.mark.parametrize(
    "contract",
    _contract_cases("test_plain_callable_callback_still_works_with_a_deprecation_warning"))
def test_plain_callable_callback_still_works_with_a_deprecation_warning(contract, sim_data):
    seen = []
    with pytest.warns(DeprecationWarning, match="callback"):
        contract.train(contract.make(sim_data), sim_data,
                       callback=lambda local: seen.append(local["self"]))
    assert len(seen) == contract.calls


@pytest.mark.parametrize(
    "contract",
    _contract_cases("test_save_then_load_without_env_reproduces_predictions"))
def test_save_then_load_without_env_reproduces_predictions(contract, sim_data, tmp_path):
    agent = contract.train(contract.make(sim_data), sim_data)
    path = agent.save(tmp_path / "agent")
    assert isinstance(path, Path) and path.exists()
    loaded = _cls(contract).load(path)
    assert loaded.get_env() is None
    obs, singles = contract.observations()
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    for o in singles:
        assert int(loaded.predict(o)[0]) == int(agent.predict(o)[0])


@pytest.mark.parametrize(
    "contract",
    [c for c in _contract_cases("test_exactly_one_budget") if c.values[0].unit])
def test_exactly_one_budget(contract, sim_data):
    agent = contract.make(sim_data)
    with pytest.raises(ValueError, match=f"exactly one of total_timesteps .*{contract.unit}"):
        agent.learn(10, **{contract.unit: 1})
    with pytest.raises(ValueError, match="exactly one of total_timesteps"):
        agent.learn()




@pytest.mark.parametrize("contract", [
    pytest.param(c.values[0], id=c.id,
                 marks=c.marks)
    for c in _contract_cases()])
def test_learned_arrays_end_with_an_underscore(contract, sim_data):
    agent = contract.train(contract.make(sim_data), sim_data)
    hyper = set(inspect.signature(type(agent).__init__).parameters)
    plain = [k for k, v in vars(agent).items()
             if not k.startswith("_") and not k.endswith("_") and k not in hyper
             and isinstance(v, (np.ndarray, list))]
    assert plain == []
