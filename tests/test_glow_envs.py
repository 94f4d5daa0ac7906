"""Environments of the GLOW experiments: CombinationLockEnv and LayeredTabularMDPEnv on
FiniteMDPEnv."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl.envs.combination_lock import (
    CombinationLockEnv,
    combination_lock,
    combination_lock_code,
)
from robustrl.envs.layered_mdp import FiniteMDPEnv, LayeredTabularMDPEnv, layered_tabular_mdp
from robustrl.exact import evaluate_policy, robust_value_iteration


def _check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" render-mode warning only
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env", [
    CombinationLockEnv(horizon=4, n_states=3, n_actions=3, seed=1),
    CombinationLockEnv(horizon=3, n_states=2, n_actions=2, seed=0, perturbation=0.2),
    LayeredTabularMDPEnv(horizon=3, n_states=4, n_actions=2, seed=2),
    LayeredTabularMDPEnv(seed=5, perturbation=0.5),
], ids=["lock", "lock-perturbed", "layered", "layered-perturbed"])
def test_check_env(env):
    _check(env)


def _empirical_kernel(env, episodes: int, seed: int):
    H, S, A = env.horizon, env.n_states, env.n_actions
    counts = np.zeros((H, S, A, S))
    starts = np.zeros(S)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        obs, _ = env.reset()
        starts[obs[0]] += 1
        for h in range(H):
            a = int(rng.integers(A))
            s = int(obs[0])
            obs, r, term, trunc, _ = env.step(a)
            assert r == env.model.R[h, s, a]
            counts[h, s, a, obs[0]] += 1
            assert term == (h == H - 1) and not trunc
    return counts, starts


def _assert_frequencies_match(counts, P):
    n = counts.sum(axis=-1, keepdims=True)
    seen = n[..., 0] > 0
    freq = counts[seen] / n[seen]
    expected = P[seen]
    # 5 binomial standard deviations per cell (plus a floor for p near 0 or 1)
    tol = 5 * np.sqrt(expected * (1 - expected) / n[seen]) + 1e-12
    assert np.all(np.abs(freq - expected) <= tol + 3.0 / n[seen])


def test_layered_sampling_matches_exact_model():
    env = LayeredTabularMDPEnv(horizon=3, n_states=3, n_actions=2, seed=4)
    counts, starts = _empirical_kernel(env, 6000, seed=11)
    assert starts[0] == 6000  # every episode starts in state 0
    assert counts[0, 1:].sum() == 0
    _assert_frequencies_match(counts, env.model.P)
    assert counts[1:].sum(axis=-1).min() > 300  # every (h>0, s, a) well sampled


def test_perturbed_lock_sampling_matches_exact_model():
    env = CombinationLockEnv(horizon=3, n_states=3, n_actions=2, seed=3, perturbation=0.4)
    counts, _ = _empirical_kernel(env, 6000, seed=2)
    _assert_frequencies_match(counts, env.model.P)
    c0 = env.code[0]
    fail = counts[0, 0, c0, 1] / counts[0, 0, c0].sum()
    assert abs(fail - 0.4) < 0.05


@pytest.mark.parametrize("H,S,A,seed", [(4, 3, 2, 0), (3, 2, 3, 7), (5, 4, 2, 2)])
def test_lock_reward_only_on_the_right_code(H, S, A, seed):
    env = CombinationLockEnv(horizon=H, n_states=S, n_actions=A, seed=seed)
    model = env.model
    np.testing.assert_array_equal(env.code, combination_lock_code(H, A, seed))
    # every open-loop action sequence: value 1 for the code, 0 otherwise
    for seq in itertools.product(range(A), repeat=H):
        policy = np.tile(np.array(seq)[:, None], (1, S))
        value = evaluate_policy(model, policy).value
        assert value == (1.0 if tuple(seq) == tuple(env.code) else 0.0)
    assert robust_value_iteration(model).value == 1.0 == env.optimal_value
    uniform = np.full((H, S, A), 1.0 / A)
    assert evaluate_policy(model, uniform).value == pytest.approx(A ** -H, rel=1e-12)
    assert np.count_nonzero(model.R) == 1 and model.R[H - 1, 0, env.code[-1]] == 1.0
    # played in the environment: reward only at the last step of the code
    obs, _ = env.reset(seed=0)
    rewards = []
    for h in range(H):
        assert obs[0] == 0 and obs[1] == h
        obs, r, *_ = env.step(int(env.code[h]))
        rewards.append(r)
    assert rewards == [0.0] * (H - 1) + [1.0]
    # one wrong action anywhere: dead for good, no reward
    for wrong_at in range(H):
        obs, _ = env.reset()
        total = 0.0
        for h in range(H):
            a = int(env.code[h]) if h != wrong_at else int((env.code[h] + 1) % A)
            obs, r, *_ = env.step(a)
            total += r
            if h >= wrong_at:
                assert obs[0] != 0
        assert total == 0.0


def test_lock_dead_states_never_return():
    model = combination_lock(5, 4, 3, seed=1, perturbation=0.3)
    assert np.all(model.P[:, 1:, :, 0] == 0.0)
    assert np.all(model.R[:, 1:, :] == 0.0)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.35, 1.0])
def test_lock_perturbation_value(q):
    env = CombinationLockEnv(horizon=4, n_states=3, n_actions=2, seed=0, perturbation=q)
    assert robust_value_iteration(env.model).value == pytest.approx((1 - q) ** 3)
    assert env.optimal_value == pytest.approx((1 - q) ** 3)


def test_reset_option_switches_perturbation():
    env = CombinationLockEnv(horizon=4, n_states=3, n_actions=2, seed=0)
    env.reset(seed=0, options={"perturbation": 0.25})
    assert env.perturbation == 0.25
    np.testing.assert_array_equal(env.model.P, combination_lock(4, 3, 2, 0, 0.25).P)
    assert env.optimal_value == pytest.approx(0.75 ** 3)
    env.reset(options={"perturbation": None})
    np.testing.assert_array_equal(env.model.P, combination_lock(4, 3, 2, 0).P)
    layered = LayeredTabularMDPEnv(seed=3)
    layered.reset(seed=0, options={"perturbation": 0.5})
    np.testing.assert_array_equal(layered.model.P, layered_tabular_mdp(3, 3, 2, 3, 0.5).P)
    with pytest.raises(ValueError, match="perturbation"):
        env.reset(options={"perturbation": 2.0})
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"radius": 0.1})


def test_layered_perturbation_lowers_optimal_value():
    values = [robust_value_iteration(layered_tabular_mdp(4, 4, 3, 9, q)).value
              for q in (0.0, 0.2, 0.5, 1.0)]
    assert np.all(np.diff(values) <= 1e-12)
    assert values[-1] < values[0]
    np.testing.assert_array_equal(layered_tabular_mdp(4, 4, 3, 9, None).P,
                                  layered_tabular_mdp(4, 4, 3, 9, 0.0).P)


def test_layered_model_properties():
    model = layered_tabular_mdp(5, 4, 3, seed=1)
    assert model.P.shape == (5, 4, 3, 4) and model.R.shape == (5, 4, 3)
    assert model.R.min() >= 0.0 and model.R.max() <= 1.0
    np.testing.assert_allclose(model.P.sum(-1), 1.0)
    assert model.initial_distribution[0] == 1.0


def test_same_seed_same_env_and_trajectory():
    for make in (lambda s: CombinationLockEnv(horizon=6, n_states=3, n_actions=4, seed=s),
                 lambda s: LayeredTabularMDPEnv(horizon=4, n_states=3, n_actions=2, seed=s)):
        a, b, c = make(3), make(3), make(4)
        np.testing.assert_array_equal(a.model.P, b.model.P)
        np.testing.assert_array_equal(a.model.R, b.model.R)
        assert not (np.array_equal(a.model.P, c.model.P)
                    and np.array_equal(a.model.R, c.model.R))
        trajs = []
        for env in (a, b):
            obs, _ = env.reset(seed=42)
            traj = [tuple(obs)]
            for h in range(env.horizon):
                obs, r, *_ = env.step(h % env.n_actions)
                traj.append((*obs, r))
            trajs.append(traj)
        assert trajs[0] == trajs[1]


def test_one_hot_features():
    env = CombinationLockEnv(horizon=3, n_states=3, n_actions=2, seed=0)
    assert env.feature_dim == 6
    obs = np.array([2, 1])
    phi = env.features(obs, 1)
    assert phi.shape == (6,) and phi[2 * 2 + 1] == 1.0 and phi.sum() == 1.0
    table = env.action_features(obs)
    assert table.shape == (2, 6)
    for a in range(2):
        np.testing.assert_array_equal(table[a], env.features(obs, a))
    # a linear Q with per-step weights theta_h = Q*_h.ravel() is exactly Q*
    q = robust_value_iteration(env.model).Q
    np.testing.assert_allclose(table @ q[1].ravel(), q[1, 2])


@pytest.mark.parametrize("kwargs,name", [
    ({"n_states": 1}, "n_states"), ({"n_actions": 1}, "n_actions"), ({"horizon": 0}, "horizon"),
    ({"seed": -1}, "seed"), ({"seed": None}, "seed"), ({"perturbation": 1.5}, "perturbation"),
    ({"perturbation": -0.1}, "perturbation"), ({"horizon": 2.0}, "horizon"),
])
def test_lock_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CombinationLockEnv(**kwargs)


@pytest.mark.parametrize("kwargs,name", [
    ({"n_states": 0}, "n_states"), ({"n_actions": 0}, "n_actions"), ({"horizon": -1}, "horizon"),
    ({"seed": 1.5}, "seed"), ({"perturbation": 3}, "perturbation"),
    ({"concentration": 0.0}, "concentration"),
])
def test_layered_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LayeredTabularMDPEnv(**kwargs)


def test_step_and_feature_errors():
    env = CombinationLockEnv(horizon=2, n_states=2, n_actions=2)
    with pytest.raises(RuntimeError):
        env.step(0)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, True, np.array([0])):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    with pytest.raises(ValueError, match="obs"):
        env.features(np.array([5, 0]), 0)
    with pytest.raises(ValueError, match="model"):
        FiniteMDPEnv(np.zeros((1, 2, 2, 2)))
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError):
        env.step(0)


def test_linear_model_is_the_same_mdp():
    env = LayeredTabularMDPEnv(horizon=3, n_states=3, n_actions=2, seed=6, perturbation=0.2)
    lin = env.linear_model
    assert lin.feature_dim == env.feature_dim == 6
    np.testing.assert_allclose(lin.P, env.model.P, atol=1e-15)
    np.testing.assert_allclose(lin.R, env.model.R, atol=1e-15)
    assert robust_value_iteration(lin).value == pytest.approx(
        robust_value_iteration(env.model).value, abs=1e-12)
    obs = np.array([1, 0])
    np.testing.assert_array_equal(lin.phi[1], env.action_features(obs))


def test_monte_carlo_evaluation_agrees_with_exact_values():
    from robustrl.evaluation import evaluate, evaluate_exact

    def factory(q):
        return CombinationLockEnv(horizon=3, n_states=3, n_actions=2, seed=0, perturbation=q)

    code = factory(None).code
    policy = np.tile(code[:, None], (1, 3))
    exact = evaluate_exact(policy, factory, [0.0, 0.5])
    np.testing.assert_allclose(exact.mean, [1.0, 0.25])
    mc = evaluate(policy, factory, [0.0, 0.5], episodes=2000, seed=0)
    assert mc.mean[0] == 1.0
    assert abs(mc.mean[1] - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000)


ECOSYSTEM = {
    "lock": lambda **kw: CombinationLockEnv(horizon=4, n_states=3, n_actions=3, seed=2, **kw),
    "layered": lambda **kw: LayeredTabularMDPEnv(horizon=3, n_states=4, n_actions=2, seed=1,
                                                 **kw),
}


def _rollout(env, seed, options=None, n_steps=120):
    obs, _ = env.reset(seed=seed, options=options)
    out = [tuple(obs)]
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        obs, r, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        out.append((*obs, r))
        if term or trunc:
            obs, _ = env.reset()
    return out


@pytest.mark.parametrize("name", list(ECOSYSTEM))
def test_reset_option_equals_constructor_and_vector_env(name):
    import gymnasium as gym

    make = ECOSYSTEM[name]
    assert _rollout(make(), 3, options={"perturbation": 0.6}) == _rollout(
        make(perturbation=0.6), 3)
    vec = gym.vector.SyncVectorEnv([make, make])
    obs, _ = vec.reset(seed=[0, 1])
    assert obs.shape == (2, 2)
    for _ in range(5):
        _, rewards, *_ = vec.step(vec.action_space.sample())
        assert rewards.shape == (2,)
    vec.reset(seed=0, options={"perturbation": 0.4})
    assert all(e.unwrapped.perturbation == 0.4 for e in vec.envs)
    vec.close()


@pytest.mark.parametrize("name", list(ECOSYSTEM))
def test_stable_baselines3_env_checker(name):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(ECOSYSTEM[name](), warn=False)


@pytest.mark.parametrize("q", [None, 0.3])
def test_lock_value_class_contains_q_star_at_the_code_index(q):
    from robustrl.envs.combination_lock import (
        combination_lock_code_index,
        combination_lock_value_class,
    )

    H, S, A = 4, 3, 3
    F = combination_lock_value_class(H, S, A, perturbation=q)
    assert F.shape == (A**H, H, S, A)
    for seed in range(5):
        env = CombinationLockEnv(horizon=H, n_states=S, n_actions=A, seed=seed, perturbation=q)
        i = combination_lock_code_index(env.code, A)
        np.testing.assert_allclose(F[i], robust_value_iteration(env.model).Q, atol=1e-15)
    for i, seq in enumerate(itertools.product(range(A), repeat=H)):
        assert combination_lock_code_index(seq, A) == i
        assert np.all(F[i, :, 0].argmax(axis=1) == np.array(seq))
    with pytest.raises(ValueError, match="n_actions"):
        combination_lock_value_class(30, 2, 2)
    with pytest.raises(ValueError, match="code"):
        combination_lock_code_index([0, 3], 3)
