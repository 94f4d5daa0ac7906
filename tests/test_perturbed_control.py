"""Perturbed classic-control wrappers (envs/perturbed_control.py)."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl.envs.perturbations import env_factory, make_env, perturbation_grid
from robustrl.envs.perturbed_control import (
    ActionNoise,
    DiscreteActions,
    ObservationNoise,
    PhysicsPerturbation,
    nominal_parameters,
    perturbable_parameters,
)
from robustrl.evaluation import compare

IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"]
ALL_PARAMS = [(env_id, p) for env_id in IDS for p in perturbable_parameters(env_id)]


def _kw(env_id):
    return {"discretize": 5} if env_id.startswith("Pendulum") else {}


def _rollout(env, actions, seed=0):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, _, terminated, truncated, _ = env.step(a)
        out.append(obs)
        if terminated or truncated:
            break
    return np.array(out)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("noise", [False, True])
def test_check_env(env_id, noise):
    first = next(iter(perturbable_parameters(env_id)))
    kw = {"action_noise": 0.2, "obs_noise": 0.05} if noise else {}
    env = make_env(env_id, {first: 1.7}, **kw, **_kw(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wrapped-env and infinite-bound notices only
        check_env(env, skip_render_check=True)


def test_check_env_continuous_pendulum_with_action_noise():
    env = make_env("Pendulum-v1", {"length": 0.8}, action_noise=0.3, obs_noise=0.1)
    assert isinstance(env.action_space, gym.spaces.Box)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize(("env_id", "param"), ALL_PARAMS)
def test_every_parameter_changes_the_dynamics(env_id, param):
    rng = np.random.default_rng(1)
    nominal = make_env(env_id, None, **_kw(env_id))
    actions = rng.integers(nominal.action_space.n, size=40)
    base = _rollout(nominal, actions)
    # scale 1 is exactly the unwrapped task
    plain = gym.make(env_id)
    if env_id.startswith("Pendulum"):
        plain = DiscreteActions(plain, 5)
    np.testing.assert_array_equal(_rollout(plain, actions), base)
    np.testing.assert_array_equal(_rollout(make_env(env_id, {param: 1.0}, **_kw(env_id)),
                                           actions), base)
    shifted = _rollout(make_env(env_id, {param: 1.5}, **_kw(env_id)), actions)
    n = min(len(base), len(shifted))
    np.testing.assert_array_equal(shifted[0], base[0])  # same seed, same initial state
    assert np.abs(shifted[:n] - base[:n]).max() > 1e-6, f"{param} did not change {env_id}"


def _cartpole_thetaacc(state, force, gravity, masscart, masspole, half_length):
    # the cart-pole equations of motion (Florian 2007), written out independently
    _, _, theta, theta_dot = state
    total = masscart + masspole
    temp = (force + masspole * half_length * theta_dot**2 * math.sin(theta)) / total
    return (gravity * math.sin(theta) - math.cos(theta) * temp) / (
        half_length * (4.0 / 3.0 - masspole * math.cos(theta) ** 2 / total))


def _measured_thetaacc(env, state, action):
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    env.step(action)
    return (env.unwrapped.state[3] - state[3]) / env.unwrapped.tau


STATE = (0.1, -0.2, 0.05, 0.3)


@pytest.mark.parametrize(("scales", "physics"), [
    ({}, dict(gravity=9.8, masscart=1.0, masspole=0.1, half_length=0.5, force=10.0)),
    ({"pole_length": 2.0}, dict(gravity=9.8, masscart=1.0, masspole=0.1, half_length=1.0,
                                force=10.0)),
    ({"pole_mass": 3.0}, dict(gravity=9.8, masscart=1.0, masspole=0.3, half_length=0.5,
                              force=10.0)),
    ({"cart_mass": 0.5, "pole_length": 0.5, "gravity": 1.5, "force_mag": 0.4},
     dict(gravity=14.7, masscart=0.5, masspole=0.1, half_length=0.25, force=4.0)),
])
def test_cartpole_angular_acceleration_follows_the_physics(scales, physics):
    env = make_env("CartPole-v1", scales)
    got = _measured_thetaacc(env, STATE, 1)
    want = _cartpole_thetaacc(STATE, **physics)
    assert got == pytest.approx(want, rel=1e-9)
    base = env.unwrapped
    assert base.total_mass == pytest.approx(physics["masscart"] + physics["masspole"])
    assert base.polemass_length == pytest.approx(physics["masspole"] * physics["half_length"])


def test_pole_length_doubling_slows_the_fall():
    # at rest and tilted, doubling the pole roughly halves the angular acceleration
    state = (0.0, 0.0, 0.1, 0.0)
    nominal = _measured_thetaacc(make_env("CartPole-v1"), state, 1)
    doubled = _measured_thetaacc(make_env("CartPole-v1", {"pole_length": 2.0}), state, 1)
    assert doubled == pytest.approx(_cartpole_thetaacc(state, 10.0, 9.8, 1.0, 0.1, 1.0))
    assert 0.45 < doubled / nominal < 0.55


def test_pendulum_gravity_and_length_follow_the_physics():
    env = make_env("Pendulum-v1", {"gravity": 2.0, "length": 1.5, "mass": 0.5},
                         discretize=3)
    env.reset(seed=0)
    th, thdot = 0.7, -0.4
    env.unwrapped.state = np.array([th, thdot])
    env.step(2)  # torque +2
    g, m, l, dt = 20.0, 0.5, 1.5, 0.05
    want = thdot + (3 * g / (2 * l) * math.sin(th) + 3.0 / (m * l**2) * 2.0) * dt
    # the torque term is float32 in gymnasium (NumPy 2 keeps float32 * python float in float32)
    assert env.unwrapped.state[1] == pytest.approx(want, rel=1e-6)
    nominal_g = thdot + (3 * 10.0 / (2 * l) * math.sin(th) + 3.0 / (m * l**2) * 2.0) * dt
    assert abs(env.unwrapped.state[1] - nominal_g) > 0.1


def test_acrobot_link_length_moves_the_centre_of_mass():
    env = make_env("Acrobot-v1", {"link_length_2": 2.0})
    assert env.unwrapped.LINK_LENGTH_2 == 2.0 and env.unwrapped.LINK_COM_POS_2 == 1.0
    assert env.unwrapped.LINK_COM_POS_1 == 0.5


def test_reset_options_switch_the_dynamics():
    env = PhysicsPerturbation(gym.make("CartPole-v1"), axis="pole_length", pole_mass=2.0)
    base = env.unwrapped
    assert base.masspole == pytest.approx(0.2) and base.length == 0.5
    _, info = env.reset(seed=0, options={"perturbation": 3.0})  # scalar -> axis
    assert base.length == pytest.approx(1.5) and base.masspole == pytest.approx(0.1)
    assert info["perturbation"]["pole_length"] == 3.0
    env.reset(options={"perturbation": {"force_mag": 0.5}})
    assert base.force_mag == 5.0 and base.length == 0.5
    env.reset(options={"perturbation": None})
    assert base.force_mag == 10.0 and env.perturbation == dict.fromkeys(env.parameters, 1.0)
    # the wrapper's nominal is the value at wrap time: re-applying never compounds
    for _ in range(3):
        env.reset(options={"perturbation": 2.0})
    assert base.length == pytest.approx(1.0)
    # other option keys reach CartPole (its reset bounds)
    obs, _ = env.reset(seed=0, options={"low": -0.01, "high": 0.01})
    assert np.all(np.abs(obs) <= 0.01)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="not a perturbable parameter of CartPole.*pole_length"):
        make_env("CartPole-v1", {"pole_lenght": 2.0})
    with pytest.raises(ValueError, match=r"scale factor.*\(0, 10\]"):
        make_env("CartPole-v1", {"pole_mass": 0.0})
    with pytest.raises(ValueError, match=r"scale factor.*\[0, 10\]"):
        make_env("CartPole-v1", {"gravity": -1.0})
    make_env("CartPole-v1", {"gravity": 0.0})  # zero gravity is a valid task
    with pytest.raises(ValueError, match="scale factor"):
        make_env("CartPole-v1", {"pole_mass": 11.0})
    with pytest.raises(ValueError, match="axis"):
        make_env("CartPole-v1", 2.0)
    with pytest.raises(ValueError, match="axis"):
        PhysicsPerturbation(gym.make("CartPole-v1"), axis="mass")
    with pytest.raises(ValueError, match="axis"):
        PhysicsPerturbation(gym.make("CartPole-v1")).reset(options={"perturbation": 2.0})
    with pytest.raises(ValueError, match="env_id"):
        make_env("LunarLander-v9")
    with pytest.raises(ValueError, match="env_id.*not a supported"):
        make_env("FrozenLake-v1")
    with pytest.raises(ValueError, match="env must wrap"):
        PhysicsPerturbation(gym.make("FrozenLake-v1"))
    with pytest.raises(ValueError, match="n_actions"):
        DiscreteActions(gym.make("Pendulum-v1"), 1)
    with pytest.raises(ValueError, match="Box action"):
        DiscreteActions(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        ActionNoise(gym.make("CartPole-v1"), p=1.5)
    with pytest.raises(ValueError, match="std applies to Box"):
        ActionNoise(gym.make("CartPole-v1"), std=0.1)
    with pytest.raises(ValueError, match="std must lie"):
        ObservationNoise(gym.make("CartPole-v1"), std=-0.1)
    with pytest.raises(ValueError, match="action_noise"):
        make_env("CartPole-v1", action_noise=1.5)
    with pytest.raises(ValueError, match="values"):
        perturbation_grid("CartPole-v1", "pole_length", [])


def test_nominal_parameters_and_grid():
    assert nominal_parameters("CartPole-v1") == {
        "gravity": 9.8, "cart_mass": 1.0, "pole_mass": 0.1, "pole_length": 0.5,
        "force_mag": 10.0}
    assert nominal_parameters("Pendulum-v1")["gravity"] == 10.0
    grid = perturbation_grid("MountainCar-v0", "force", [0.5, 1, 2])
    assert grid.tolist() == [0.5, 1.0, 2.0]
    assert perturbation_grid("CartPole-v1", "pole_length")[2] == 1.0
    with pytest.raises(ValueError, match="parameter is required"):
        perturbation_grid("CartPole-v1")


class _Recorder(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(int(action))
        return self.env.step(action)


def _noisy_actions(p, seed, n=2000):
    rec = _Recorder(gym.make("CartPole-v1", max_episode_steps=10**6))
    env = ActionNoise(rec, p=p)
    env.reset(seed=seed)
    for _ in range(n):
        _, _, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            env.reset()
    return np.array(rec.actions)


def test_action_noise_replaces_actions_at_rate_p():
    assert not _noisy_actions(0.0, 0).any()
    acts = _noisy_actions(0.3, 0)
    # replaced with prob 0.3, and then a different action with prob 1/2 -> 0.15 flipped
    rate, sd = acts.mean(), math.sqrt(0.15 * 0.85 / acts.size)
    assert abs(rate - 0.15) < 4 * sd
    np.testing.assert_array_equal(acts, _noisy_actions(0.3, 0))  # same seed, same noise
    assert not np.array_equal(acts, _noisy_actions(0.3, 1))


def test_box_action_noise_is_gaussian_in_half_range_units():
    rec_actions = []

    class Rec(gym.Wrapper):
        def step(self, action):
            rec_actions.append(float(np.asarray(action)[0]))
            return self.env.step(action)

    env = ActionNoise(Rec(gym.make("Pendulum-v1")), std=0.1)
    env.reset(seed=3)
    for _ in range(1000):
        _, _, _, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
        if truncated:
            env.reset()
    acts = np.array(rec_actions)
    assert acts.std() == pytest.approx(0.2, rel=0.1)  # half range 2 x std 0.1
    assert np.all(np.abs(acts) <= 2.0)


def test_observation_noise_statistics_and_paired_initial_states():
    clean = gym.make("CartPole-v1", max_episode_steps=10**6)
    noisy = ObservationNoise(gym.make("CartPole-v1", max_episode_steps=10**6), std=0.05)
    diffs = []
    for k in range(300):
        c, _ = clean.reset(seed=7 if k == 0 else None)
        n, _ = noisy.reset(seed=7 if k == 0 else None)
        # the noise has its own stream: the initial states stay those of the clean env
        np.testing.assert_array_equal(noisy.unwrapped.state, clean.unwrapped.state)
        diffs.append(n - c)
    diffs = np.array(diffs)
    assert diffs.std() == pytest.approx(0.05, rel=0.1)
    assert abs(diffs.mean()) < 4 * 0.05 / math.sqrt(diffs.size)
    a, _ = ObservationNoise(gym.make("CartPole-v1"), std=0.05).reset(seed=1)
    b, _ = ObservationNoise(gym.make("CartPole-v1"), std=0.05).reset(seed=1)
    np.testing.assert_array_equal(a, b)


def test_discrete_pendulum_actions_are_evenly_spaced_torques():
    env = DiscreteActions(gym.make("Pendulum-v1"), 5)
    np.testing.assert_allclose(env.values, [-2.0, -1.0, 0.0, 1.0, 2.0])
    assert env.action(3).shape == (1,) and env.action(3)[0] == 1.0
    assert env.action_space == gym.spaces.Discrete(5)


def _stay_upright(obs):
    # push towards the side the pole leans to: a decent CartPole controller
    return int(obs[2] + 0.5 * obs[3] > 0)


def _grid_rows(policy, env_id, parameter, values, episodes, seed, **kwargs):
    make = env_factory(env_id, parameter, **kwargs)
    return compare({"policy": policy}, make, values, episodes=episodes, seed=seed).rows()


def test_grid_evaluation_rows_and_reproducibility():
    rows = _grid_rows(_stay_upright, "CartPole-v1", "pole_length", [0.1, 1.0], 3, 0,
                      max_episode_steps=100)
    assert [r["perturbation"] for r in rows] == [0.1, 1.0]
    assert rows[1]["mean"] == 100.0  # the controller balances the nominal pole
    assert rows[0]["mean"] < 100.0  # but not one ten times shorter (10x faster dynamics)
    again = _grid_rows(_stay_upright, "CartPole-v1", "pole_length", [0.1, 1.0], 3, 0,
                       max_episode_steps=100)
    assert rows == again


def test_grid_evaluation_with_sb3_models():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    # discretised Pendulum (Discrete(5)) and continuous Pendulum (Box), untrained models
    for kw in ({"discretize": 5}, {}):
        env = make_env("Pendulum-v1", **kw)
        model = PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
        rows = _grid_rows(model, "Pendulum-v1", "mass", [0.5, 2.0], 1, 0,
                          max_episode_steps=20, **kw)
        assert len(rows) == 2 and all(np.isfinite(r["mean"]) for r in rows)
        assert all(r["mean"] < 0 for r in rows)  # Pendulum rewards are costs


def test_factory_plugs_into_evaluate():
    from robustrl.envs import TileCoding
    from robustrl.evaluation import evaluate

    make = env_factory("CartPole-v1", "pole_length", max_episode_steps=50)
    res = evaluate(_stay_upright, make, [0.5, 2.0], episodes=2, seed=0)
    assert res.returns.shape == (2, 2)
    assert res.info["nominal_perturbation"] == 1.0 and "nominal_mean" in res.info
    with pytest.raises(ValueError, match="seed"):
        env_factory("CartPole-v1", "pole_length", seed=1)
    with pytest.raises(ValueError, match="not a perturbable parameter"):
        env_factory("CartPole-v1", "length")
    with pytest.raises(ValueError, match="wrapper must be a callable"):
        env_factory("CartPole-v1", "pole_length", wrapper=3)
    # a wrapper (here the feature map a linear agent needs) is applied to every level
    box = np.array([2.4, 3.0, 0.21, 2.0])
    tiled = env_factory("CartPole-v1", "pole_length", wrapper=lambda env: TileCoding(
        env, horizon=20, low=-box, high=box, n_tiles=[1, 1, 3, 3], n_tilings=1))
    env = tiled(2.0)
    assert isinstance(env, TileCoding) and env.get_wrapper_attr("perturbation") == {
        "gravity": 1.0, "cart_mass": 1.0, "pole_mass": 1.0, "pole_length": 2.0, "force_mag": 1.0}
    assert env.get_wrapper_attr("nominal_perturbation") == 1.0


def test_one_family_robustrl_envs_and_classic_control_alike():
    from robustrl.envs import AMERICAN_PUT_ID, perturbed_envs

    assert perturbation_grid(AMERICAN_PUT_ID).size > 1
    assert perturbation_grid(AMERICAN_PUT_ID, values=[0.3, 0.5]).tolist() == [0.3, 0.5]
    assert make_env(AMERICAN_PUT_ID, 0.3).unwrapped.perturbation == 0.3
    with pytest.raises(ValueError, match="parameter must be None"):
        make_env(AMERICAN_PUT_ID, 0.3, parameter="p")
    pairs = perturbed_envs("CartPole-v1", [0.5, 2.0], parameter="pole_length")
    assert [p for p, _ in pairs] == [0.5, 2.0]
    assert pairs[1][1].get_wrapper_attr("perturbation")["pole_length"] == 2.0


def test_deprecated_helpers_warn_and_give_the_same_numbers():
    """make_perturbed, physics_grid, perturbed_factory and evaluate_on_grid are thin aliases;
    evaluate_on_grid's default episode count is now evaluate/compare's 100 (it was 20)."""
    from robustrl.envs import perturbed_control as pc

    with pytest.warns(DeprecationWarning, match="use make_env"):
        old = pc.make_perturbed("CartPole-v1", 2.0, axis="pole_length")
    assert old.get_wrapper_attr("perturbation")["pole_length"] == 2.0
    with pytest.warns(DeprecationWarning, match="use perturbation_grid"):
        assert pc.physics_grid("CartPole-v1", "pole_length", [0.5, 2]) == [
            {"pole_length": 0.5}, {"pole_length": 2.0}]
    with pytest.warns(DeprecationWarning, match="use env_factory"):
        make = pc.perturbed_factory("CartPole-v1", "pole_length", max_episode_steps=30)
    assert make(0.5).get_wrapper_attr("perturbation")["pole_length"] == 0.5
    with pytest.warns(DeprecationWarning, match="evaluate_on_grid is deprecated"):
        rows = pc.evaluate_on_grid(_stay_upright, "CartPole-v1", "pole_length", [0.1, 1.0],
                                   seed=0, max_episode_steps=30)
    assert {r["episodes"] for r in rows} == {100} and {r["parameter"] for r in rows} == {
        "pole_length"}
    new = _grid_rows(_stay_upright, "CartPole-v1", "pole_length", [0.1, 1.0], 100, 0,
                     max_episode_steps=30)
    assert [r["mean"] for r in rows] == [r["mean"] for r in new]


def test_as_action_fn_with_sb3_models_batched_and_unbatched():
    import torch
    from stable_baselines3 import PPO

    from robustrl._policy import as_action_fn

    torch.set_num_threads(1)
    obs = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    discrete = PPO("MlpPolicy", make_env("Pendulum-v1", discretize=5), seed=0,
                   device="cpu", n_steps=64, batch_size=64)
    act = as_action_fn(discrete)
    for o in obs:
        a = act(o)
        assert isinstance(a, int) and a == act(o[None])  # a batch of one gives the same action
        assert a == int(discrete.predict(o, deterministic=True)[0])
    continuous = PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0, device="cpu", n_steps=64,
                     batch_size=64)
    act = as_action_fn(continuous)
    a = act(obs[0])
    # the torque is kept as a float array of the action shape, not truncated to an int
    assert isinstance(a, np.ndarray) and a.shape == (1,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, continuous.predict(obs[0], deterministic=True)[0])
