"""Environments in the ecosystem: perturbation through reset(options), vector envs, SB3."""

import gymnasium as gym
import numpy as np
import pytest

from robustrl.envs import AmericanPutEnv, RandomLinearMDPEnv, SimulatedLinearMDPEnv
from robustrl.evaluation import evaluate_exact

FACTORIES = {
    "simulated": lambda **kw: SimulatedLinearMDPEnv(**kw),
    "random": lambda **kw: RandomLinearMDPEnv(horizon=4, n_states=8, **kw),
    "put": lambda **kw: AmericanPutEnv(horizon=5, feature_dim=8, initial_price=100.0, **kw),
}


def _rollout(env, seed, options=None, n_steps=300):
    obs, _ = env.reset(seed=seed, options=options)
    out = [np.array(obs, dtype=float)]
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        obs, r, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        out.append(np.append(np.array(obs, dtype=float), r))
        if term or trunc:
            obs, _ = env.reset()
    return out


@pytest.mark.parametrize("name", list(FACTORIES))
def test_reset_option_equals_constructor_perturbation(name):
    make = FACTORIES[name]
    level = 0.8
    via_option = make()
    a = _rollout(via_option, 3, options={"perturbation": level})
    b = _rollout(make(perturbation=level), 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert via_option.unwrapped.perturbation == level
    # the level stays for later episodes and can be set back to nominal
    via_option.reset(options={"perturbation": None})
    c = _rollout(via_option, 3)
    for x, y in zip(c, _rollout(make(), 3), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ["simulated", "random"])
def test_reset_option_switches_the_exact_model(name):
    env = FACTORIES[name]()
    env.reset(options={"perturbation": 1.0})
    np.testing.assert_array_equal(env.unwrapped.model.P, FACTORIES[name](perturbation=1.0).model.P)
    policy = np.zeros((env.unwrapped.horizon, env.unwrapped.n_states), dtype=np.int64)
    switched = evaluate_exact(policy, lambda q: env, [None]).mean[0]
    built = evaluate_exact(policy, lambda q: FACTORIES[name](perturbation=1.0), [None]).mean[0]
    assert switched == built


@pytest.mark.parametrize("name", list(FACTORIES))
def test_bad_reset_options_are_rejected(name):
    env = FACTORIES[name]()
    with pytest.raises(ValueError, match="perturbation"):
        env.reset(options={"perturbation": 1.5})
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"gravity": 3})


@pytest.mark.parametrize("name", list(FACTORIES))
def test_vector_env_runs_and_can_set_a_perturbation_per_sub_env(name):
    make = FACTORIES[name]
    vec = gym.vector.SyncVectorEnv([make, make])
    obs, _ = vec.reset(seed=[0, 1])
    assert obs.shape[0] == 2
    for _ in range(6):
        obs, rewards, term, trunc, _ = vec.step(vec.action_space.sample())
        assert rewards.shape == (2,)
    # vector envs pass options to every sub-environment
    vec.reset(seed=0, options={"perturbation": 0.4})
    assert all(e.unwrapped.perturbation == 0.4 for e in vec.envs)
    vec.close()


@pytest.mark.parametrize("name", list(FACTORIES))
def test_stable_baselines3_trains_and_predicts(name):
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = FACTORIES[name]()
    sb3_check_env(env, warn=False)
    model = sb3.PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0,
                    device="cpu").learn(64)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
