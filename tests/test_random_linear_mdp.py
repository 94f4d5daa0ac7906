import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl.envs import (
    RANDOM_LINEAR_MDP_ID,
    RandomLinearMDPEnv,
    perturbation_grid,
    perturbed_envs,
    random_linear_mdp,
)
from robustrl.exact import evaluate_policy, robust_value_iteration
from robustrl.models import LinearMDP

# the module (robustrl.envs.random_linear_mdp is the function of the same name)
module = importlib.import_module("robustrl.envs.random_linear_mdp")


@pytest.mark.parametrize("kwargs", [{}, {"perturbation": 0.7}, {"seed": 3, "n_states": 9,
                                                                 "feature_dim": 5,
                                                                 "n_actions": 2, "horizon": 4}])
def test_check_env_passes_without_warnings(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(RANDOM_LINEAR_MDP_ID, **kwargs).unwrapped)


def test_default_sizes_and_interface():
    env = RandomLinearMDPEnv()
    m = env.model
    assert isinstance(m, LinearMDP)
    assert (m.feature_dim, m.n_actions, m.horizon, m.n_states) == (16, 8, 10, 30)
    assert (env.feature_dim, env.n_actions, env.horizon) == (16, 8, 10)
    assert env.observation_space == gym.spaces.MultiDiscrete([30, 11])
    assert env.nominal_perturbation is None
    np.testing.assert_array_equal(perturbation_grid(RANDOM_LINEAR_MDP_ID),
                                  np.linspace(0.0, 1.0, 11).round(10))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.action_features(obs), m.phi[obs[0]])
    np.testing.assert_array_equal(env.features(obs, 3), m.phi[obs[0], 3])
    # rewards are phi^T theta and lie in [0, 1]
    R = m.R
    assert R.min() >= 0.0 and R.max() <= 1.0


def test_same_seed_same_mdp_other_seed_another():
    a, b, c = random_linear_mdp(5), random_linear_mdp(5), random_linear_mdp(6)
    for name in ("phi", "mu", "theta", "initial_distribution"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.phi, c.phi) and not np.array_equal(a.mu, c.mu)


def test_same_env_seed_same_trajectories():
    def rollout(seed):
        env = RandomLinearMDPEnv(perturbation=0.4, seed=2)
        obs, _ = env.reset(seed=seed)
        trace = [obs.tolist()]
        for t in range(env.horizon):
            obs, r, term, trunc, _ = env.step(t % env.n_actions)
            trace.append((obs.tolist(), r, term, trunc))
        assert term and not trunc
        return trace

    assert rollout(11) == rollout(11)
    assert rollout(11) != rollout(12)


def test_fail_state_is_absorbing_with_zero_reward():
    for q in (None, 0.5, 1.0):
        m = random_linear_mdp(1, q)
        fail = m.n_states - 1
        P, R = m.P, m.R
        np.testing.assert_array_equal(P[:, fail, :, fail], 1.0)
        np.testing.assert_array_equal(R[:, fail], 0.0)
        # regular states never fail nominally
        if q is None:
            assert P[:, :fail, :, fail].max() == 0.0


def test_perturbation_moves_the_risky_rich_branch_to_fail():
    nominal = random_linear_mdp(4)
    S, d = nominal.n_states, nominal.feature_dim
    k = d - 1
    n_payout = max(1, k // 5)
    risky = np.arange(n_payout, n_payout + (k - n_payout) // 2)
    rich = np.flatnonzero(np.arange(S - 1) * 3 // (S - 1) == 0)
    assert np.allclose(nominal.mu[:, risky][:, :, rich].sum(axis=-1), module._RISKY_RICH)
    for q in (0.0, 0.3, 1.0):
        pert = random_linear_mdp(4, q)
        np.testing.assert_array_equal(pert.phi, nominal.phi)
        np.testing.assert_array_equal(pert.theta, nominal.theta)
        diff = pert.mu - nominal.mu
        others = np.setdiff1d(np.arange(d), risky)
        np.testing.assert_array_equal(diff[:, others], 0.0)
        np.testing.assert_allclose(diff[:, risky][:, :, rich],
                                   -q * nominal.mu[:, risky][:, :, rich], atol=1e-15)
        np.testing.assert_allclose(diff[:, risky, S - 1], q * module._RISKY_RICH, atol=1e-12)
        # the perturbed factors stay in the TV ball of radius q * (rich mass) around nominal
        tv = 0.5 * np.abs(diff).sum(axis=-1)
        assert tv.max() <= q * module._RISKY_RICH + 1e-12
    np.testing.assert_array_equal(random_linear_mdp(4, 0.0).mu, nominal.mu)


def test_empirical_transitions_match_the_model():
    env = RandomLinearMDPEnv(perturbation=0.5, seed=0, horizon=1)
    P = env.model.P[0]
    n = 4000
    for state, action in [(0, 2), (15, 5), (27, 7)]:
        counts = np.zeros(env.n_states)
        rng_seed = 100 + state
        env.reset(seed=rng_seed)
        for _ in range(n):
            env._state, env._step = state, 0
            obs, *_ = env.step(action)
            counts[obs[0]] += 1
        p = P[state, action]
        sd = np.sqrt(p * (1 - p) / n)
        assert np.all(np.abs(counts / n - p) <= 5 * sd + 1e-12)
        assert counts[p == 0.0].sum() == 0


def test_robust_policy_loses_less_than_the_nominal_one():
    """The design claim of the module docstring: a TV-robust optimal policy gives up a little
    nominal return and loses much less as the risky branch fails."""
    nominal = random_linear_mdp(0)
    pi_nom = robust_value_iteration(nominal).policy
    pi_rob = robust_value_iteration(nominal, divergence="tv", rho=0.3).policy
    ret = {name: np.array([evaluate_policy(random_linear_mdp(0, q), pi).value
                           for q in (0.0, 1.0)]) for name, pi in
           (("nominal", pi_nom), ("robust", pi_rob))}
    assert ret["nominal"][0] > ret["robust"][0]
    assert ret["robust"][1] > ret["nominal"][1] + 0.5
    assert ret["nominal"][0] - ret["nominal"][1] > ret["robust"][0] - ret["robust"][1] + 1.0


def test_perturbed_envs_by_id():
    envs = perturbed_envs(RANDOM_LINEAR_MDP_ID, [0.0, 0.5], seed=2)
    assert [q for q, _ in envs] == [0.0, 0.5]
    np.testing.assert_array_equal(envs[1][1].unwrapped.model.mu,
                                  random_linear_mdp(2, 0.5).mu)


@pytest.mark.parametrize("kwargs, name", [
    ({"perturbation": 1.5}, "perturbation"),
    ({"perturbation": -0.1}, "perturbation"),
    ({"seed": -1}, "seed"),
    ({"seed": None}, "seed"),
    ({"n_states": 3}, "n_states"),
    ({"feature_dim": 3}, "feature_dim"),
    ({"n_actions": 0}, "n_actions"),
    ({"horizon": 0}, "horizon"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomLinearMDPEnv(**kwargs)


def test_bad_actions_and_observations_and_step_after_end():
    env = RandomLinearMDPEnv(horizon=2)
    obs, _ = env.reset(seed=0)
    for bad in (8, -1, 1.0, True, np.array([1])):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    with pytest.raises(ValueError, match="obs"):
        env.action_features(np.array([30, 0]))
    env.step(0)
    _, _, term, _, _ = env.step(0)
    assert term
    with pytest.raises(RuntimeError):
        env.step(0)


def test_render():
    env = RandomLinearMDPEnv(render_mode="ansi")
    assert "not reset" in env.render()
    env.reset(seed=0)
    assert env.render().startswith("step 0/10")
    assert RandomLinearMDPEnv().render() is None
