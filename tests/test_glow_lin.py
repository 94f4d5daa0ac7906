"""GLOW-lin (agents/glow_lin.py): linear classes, closed-form inner max (docs/algorithms/glow.md,
GLOW-lin)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl.agents.glow_lin import GLOWLin
from robustrl.envs import LinearMDPEnv, SimulatedLinearMDPEnv
from robustrl.exact import robust_value_iteration
from robustrl.models import LinearMDP


def small_linear_mdp(seed: int = 7, S: int = 6, d: int = 3, A: int = 2, H: int = 3) -> LinearMDP:
    """An exactly linear MDP whose data cover R^d under ANY policy: 6 states with random simplex
    features (6 > d = 3, so phi(s, pi(s)) spans R^3), full-support transitions and d_1."""
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.ones(d), size=(S, A))
    mu = rng.dirichlet(np.ones(S), size=(H, d))
    theta = rng.uniform(0.0, 1.0, (H, d))
    return LinearMDP(phi, mu, theta, np.full(S, 1.0 / S))


def theta_star(model: LinearMDP) -> np.ndarray:
    """Q*_h = phi^T (theta_h + mu_h V*_{h+1}) in a linear MDP: its exact parameters."""
    V = robust_value_iteration(model).V
    return np.stack([model.theta[h] + model.mu[h] @ V[h + 1] for h in range(model.horizon)])


@pytest.fixture(scope="module")
def model():
    m = small_linear_mdp()
    Q = np.sort(robust_value_iteration(m).Q, axis=-1)
    # seed 7 is used because its smallest action gap is >= 0.05, so that pi* is identifiable at
    # these data sizes (several other seeds have gaps of 1e-4); asserted, not assumed
    assert (Q[..., -1] - Q[..., -2]).min() >= 0.05
    return m


def test_theta_star_is_q_star(model):
    Q = robust_value_iteration(model).Q
    np.testing.assert_allclose(np.einsum("sad,hd->hsa", model.phi, theta_star(model)), Q,
                               atol=1e-12)


def test_t7_recovers_theta_star_as_data_grows(model):
    """T7: theta* stays in every confidence set; the fitted theta is within the set's
    parameter diameter of theta* (the stated tolerance: two points of one set slice cannot be
    farther apart, see GLOWLin.parameter_diameter), and both shrink as data grow."""
    ts = theta_star(model)
    errors, diameters = [], []
    for T, K in [(25, 10), (100, 40)]:
        agent = GLOWLin(LinearMDPEnv(model), episodes_per_round=K, kappa=0.01, seed=0).learn(
            total_rounds=T)
        assert agent.solver_failures_ == []
        # linear T1: theta* (with its own greedy target) satisfies the final constraints
        assert np.all(agent.constraint_values(ts) <= agent.radius_sq_[-1])
        assert np.all(np.linalg.norm(ts, axis=1) <= agent._radius)  # Q* in the value class
        # the fitted theta's greedy policy is pi* (so both lie in the same fixed-policy slice)
        assert agent.regret_[-1] == pytest.approx(0.0, abs=1e-12)
        diam = agent.parameter_diameter()
        err = np.linalg.norm(agent.theta_ - ts, axis=1)
        assert np.all(err <= diam)
        # the least-squares (LSVI) fit is in the same set, hence also within the diameter
        ls = agent.least_squares_parameters()
        assert np.all(agent.constraint_values(ls) <= agent.radius_sq_[-1])
        assert np.all(np.linalg.norm(ls - ts, axis=1) <= diam)
        errors.append(err.max())
        diameters.append(diam[0])
    # r^2 ~ L / n, so 16 times the data shrinks the diameter about 4-fold (sqrt(16) up to the
    # log factor in L and the data's conditioning); 2-fold is asserted
    assert diameters[1] < 0.5 * diameters[0]
    assert errors[1] < errors[0]


def test_zero_radius_program_is_the_least_squares_bellman_solution(model):
    """With radius -> 0 the set is the point solving E_hat[phi Delta f_theta] = 0 for the fixed
    greedy policies: unregularised least-squares value iteration (compare docs/algorithms/glow.md,
    GLOW-lin)."""
    agent = GLOWLin(LinearMDPEnv(model), episodes_per_round=40, kappa=0.01, seed=1).learn(
        total_rounds=50)
    r_sq = 1e-14
    theta, _, ok = agent.optimistic_parameters(r_sq)
    assert ok
    H, d = model.horizon, model.feature_dim
    ls = np.zeros((H, d))
    for h in range(H - 1, -1, -1):
        Phi = agent._phi[h]
        nxt = agent._greedy_next(theta, h)  # the program's own (fixed) greedy targets
        y = agent._rew[h] + (nxt @ ls[h + 1] if h < H - 1 else 0.0)
        ls[h] = np.linalg.solve(Phi.T @ Phi, Phi.T @ y)
    tol = agent.parameter_diameter(theta, r_sq)
    assert tol[0] < 1e-4
    assert np.all(np.linalg.norm(theta - ls, axis=1) <= tol)


def test_constraint_closed_forms_match_direct_maximisation(model):
    agent = GLOWLin(LinearMDPEnv(model), episodes_per_round=5, seed=0).learn(total_rounds=6)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(model.horizon, model.feature_dim))
    vals = agent.constraint_values(theta)
    for h in range(model.horizon):
        Phi = agent._phi[h]
        n = len(Phi)
        nxt = agent._greedy_next(theta, h)
        tgt = nxt @ theta[h + 1] if h < model.horizon - 1 else 0.0
        resid = Phi @ theta[h] - agent._rew[h] - tgt
        b = Phi.T @ resid / n
        Sigma = Phi.T @ Phi / n + agent.ridge / n * np.eye(model.feature_dim)
        # max_nu nu^T b - alpha nu^T Sigma nu is attained at nu = Sigma^{-1} b / (2 alpha)
        alpha = 0.37
        nu = np.linalg.solve(Sigma, b) / (2 * alpha)
        best = nu @ b - alpha * nu @ Sigma @ nu
        assert vals[h] / (4 * alpha) == pytest.approx(best, rel=1e-10)
        for _ in range(20):  # and no other nu does better
            other = nu + rng.normal(scale=0.1, size=nu.shape)
            assert other @ b - alpha * other @ Sigma @ other <= best + 1e-12
    plain = GLOWLin(LinearMDPEnv(model), episodes_per_round=5, penalty=False, seed=0).learn(
        total_rounds=6)
    b0 = plain.constraint_values(theta)
    # ball form: ||b||_2^2 (the dual norm of the nu-ball, squared, radius cancelled)
    Phi = plain._phi[0]
    nxt = plain._greedy_next(theta, 0)
    b = Phi.T @ (Phi @ theta[0] - plain._rew[0] - nxt @ theta[1]) / len(Phi)
    assert b0[0] == pytest.approx(b @ b, rel=1e-10)


def test_radius_schedules():
    env = SimulatedLinearMDPEnv()
    agent = GLOWLin(env, episodes_per_round=2, kappa=0.5, delta=0.2, seed=0).learn(total_rounds=5)
    H, d, T = 3, 4, 5
    L = math.log(H * T / 0.2) + 2 * d * math.log(math.e + (T - 1) * 2)
    assert agent.log_term(T) == pytest.approx(L)
    assert agent.radius_sq(3, T) == pytest.approx(4 * 0.5 * L / 4)
    plain = GLOWLin(env, episodes_per_round=2, kappa=0.5, delta=0.2, penalty=False,
                    seed=0).learn(total_rounds=5)
    psi_max = max(np.linalg.norm(p, axis=1).max() for p in plain._phi)
    assert plain.radius_sq(3, T) == pytest.approx((0.5 * psi_max * H) ** 2 * 2 * L / 4)
    assert agent.radius_sq_[0] == np.inf  # round 1: no data, no constraint


def test_opens_a_combination_lock_only_with_the_optimistic_prior():
    """The alternation is local: optimism reaches unexplored directions through the
    optimistic warm start (module docstring). H = 4, 2 actions: 16 codes."""
    from robustrl.envs import CombinationLockEnv

    for seed in range(2):
        env = CombinationLockEnv(horizon=4, n_states=2, n_actions=2, seed=seed)
        agent = GLOWLin(env, kappa=0.1, seed=seed).learn(total_rounds=60)
        solved = np.flatnonzero(agent.regret_ < 1e-9)
        # uniform exploration needs A^H = 16 episodes on average to hit the code once
        assert solved.size and solved[0] < 16
        assert np.all(agent.regret_[-10:] < 1e-9)  # settled on the code once the set shrank
    flat = GLOWLin(CombinationLockEnv(horizon=4, n_states=2, n_actions=2, seed=0), kappa=0.1,
                   optimistic_prior=False, seed=0).learn(total_rounds=30)
    assert np.all(flat.regret_ == pytest.approx(1.0))


def test_same_seed_same_numbers_save_load_and_predict(tmp_path):
    env = SimulatedLinearMDPEnv()
    a = GLOWLin(env, episodes_per_round=3, kappa=0.1, seed=4).learn(total_rounds=8)
    b = GLOWLin(SimulatedLinearMDPEnv(), episodes_per_round=3, kappa=0.1, seed=4).learn(
        total_rounds=8)
    np.testing.assert_array_equal(a.theta_history_, b.theta_history_)
    c = GLOWLin.load(a.save(tmp_path / "gl"), SimulatedLinearMDPEnv())
    np.testing.assert_array_equal(c.theta_, a.theta_)
    assert c.kappa == 0.1 and c.episodes_per_round == 3
    obs = np.array([[0, 0], [1, 1], [3, 2]])
    np.testing.assert_array_equal(c.predict(obs)[0], a.predict(obs)[0])
    np.testing.assert_allclose(a.q_values(obs[1]), env.unwrapped.model.phi[1] @ a.theta_[1])


def test_bad_arguments():
    import gymnasium as gym

    env = SimulatedLinearMDPEnv()
    for bad in ({"kappa": 0.0}, {"ridge": -1.0}, {"ridge": float("nan")}, {"delta": 1.0},
                {"episodes_per_round": 0}, {"max_policy_iters": 0}, {"value_radius": -1.0},
                {"value_radius": [1.0, 2.0]}, {"penalty": "yes"}, {"optimistic_prior": 1}):
        (name,) = bad
        with pytest.raises(ValueError, match=name):
            GLOWLin(env, **bad)
    with pytest.raises(ValueError, match="needs an environment with"):
        GLOWLin(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="total_rounds"):
        GLOWLin(env).learn(total_rounds=0)
    with pytest.raises(ValueError, match="theta"):
        GLOWLin(env).constraint_values(np.zeros((2, 4)))


def test_linear_t1_theta_star_stays_in_every_round_over_seeds(model):
    """T1 for the linear variant: over 30 seeds and every round t >= 2 (data of rounds < t),
    theta* meets every step's constraint at kappa = 0.01; a 10x smaller radius loses it in
    some runs, so the retention is not vacuous (measured: 0/30 vs 9/30 runs)."""
    ts = theta_star(model)
    T, K = 30, 5

    def worst_ratio(agent):
        return max((agent.constraint_values(ts, (t - 1) * K) / agent.radius_sq_[t - 1]).max()
                   for t in range(2, T + 1))

    ratios = [worst_ratio(GLOWLin(LinearMDPEnv(model), episodes_per_round=K, kappa=0.01,
                                  seed=s).learn(total_rounds=T)) for s in range(30)]
    assert max(ratios) <= 1.0
    tight = [worst_ratio(GLOWLin(LinearMDPEnv(model), episodes_per_round=K, kappa=0.001,
                                 seed=s).learn(total_rounds=T)) for s in range(10)]
    assert max(tight) > 1.0
