import importlib
import itertools
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.stats import norm

import robustrl.envs as envs
from robustrl.envs import (
    ACTION_VECTORS,
    AMERICAN_PUT_ID,
    SIMULATED_LINEAR_MDP_ID,
    AmericanPutEnv,
    SimulatedLinearMDPEnv,
    make_env,
    perturbation_grid,
    perturbed_envs,
)

X1, X2, X3, X4, X5 = range(5)


def rollout(env, seed, actions):
    """Observations and rewards of one episode that plays ``actions`` in order."""
    obs, info = env.reset(seed=seed)
    trace = [(obs.tolist(), info["step"])]
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        trace.append((obs.tolist(), r, terminated, truncated, info["step"]))
        if terminated:
            break
    return trace


# ------------------------------------------------------------------ gymnasium API
@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        (SIMULATED_LINEAR_MDP_ID, {}),
        (SIMULATED_LINEAR_MDP_ID, {"perturbation": 0.7}),
        (AMERICAN_PUT_ID, {}),
        (AMERICAN_PUT_ID, {"perturbation": 0.2, "horizon": 5, "reward_scale": 0.01}),
    ],
)
def test_check_env_passes_without_warnings(env_id, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, **kwargs).unwrapped)


def test_registration_is_idempotent_on_reimport():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is registered twice
        importlib.reload(envs)
    assert SIMULATED_LINEAR_MDP_ID in gym.registry and AMERICAN_PUT_ID in gym.registry


@pytest.mark.parametrize(
    "make, actions",
    [
        (lambda: SimulatedLinearMDPEnv(perturbation=0.5), [3, 15, 0]),
        (lambda: AmericanPutEnv(perturbation=0.5, horizon=8), [0] * 7 + [1]),
    ],
)
def test_same_seed_same_trajectories(make, actions):
    env = make()
    first = [rollout(env, seed, actions) for seed in range(40)]
    again = [rollout(make(), seed, actions) for seed in range(40)]
    assert first == again
    # ... and the seeds matter: not all 40 episodes are alike
    assert len({str(t) for t in first}) > 1


# ------------------------------------------------------------------ simulated MDP
def action_index(vector):
    return int(np.flatnonzero((ACTION_VECTORS == np.asarray(vector)).all(axis=1))[0])


def test_action_index_map_is_the_documented_product_order():
    assert ACTION_VECTORS.shape == (16, 4)
    assert [tuple(v) for v in ACTION_VECTORS] == list(itertools.product([-1, 1], repeat=4))
    for k in range(16):
        bits = [(k >> (3 - i)) & 1 for i in range(4)]
        np.testing.assert_array_equal(ACTION_VECTORS[k], 2 * np.array(bits) - 1)


def test_hand_checked_model_entries():
    delta, xi_norm = 0.3, 0.2
    a = action_index([1, -1, 1, 1])
    xi_a = (xi_norm / 4) * (1 - 1 + 1 + 1)  # 0.1
    keep, goal = 1 - delta - xi_a, delta + xi_a  # 0.6, 0.4
    nominal = SimulatedLinearMDPEnv(delta=delta, xi_norm=xi_norm).model.P
    perturbed = SimulatedLinearMDPEnv(perturbation=0.3, delta=delta, xi_norm=xi_norm).model.P
    # step 1 from x1 (arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md): nominal has the fail
    # leak, perturbed moves q of the goal mass
    np.testing.assert_allclose(nominal[0, X1, a], [0, 0.999 * keep, 0, 0.001 * keep, goal])
    np.testing.assert_allclose(perturbed[0, X1, a], [0, keep, 0, 0.3 * goal, 0.7 * goal])
    np.testing.assert_allclose(perturbed[0, X1, a], [0, 0.6, 0, 0.12, 0.28])
    # steps 2 and 3 are the same in both kernels
    for P in (nominal, perturbed):
        np.testing.assert_allclose(P[1, X2, a], [0, 0, 0.999 * keep, 0.001 * keep, goal])
        np.testing.assert_allclose(P[2, X3, a], [0, 0, 0, keep, goal])
        for h in (1, 2):
            np.testing.assert_array_equal(P[h, X4], np.tile(np.eye(5)[X4], (16, 1)))
            np.testing.assert_array_equal(P[h, X5], np.tile(np.eye(5)[X5], (16, 1)))
    np.testing.assert_array_equal(nominal[1:], perturbed[1:])
    np.testing.assert_array_equal(nominal[0, X4], np.tile(np.eye(5)[X4], (16, 1)))


def test_nominal_model_and_perturbation_levels():
    env = SimulatedLinearMDPEnv()
    assert env.perturbation is None and SimulatedLinearMDPEnv.nominal_perturbation is None
    np.testing.assert_array_equal(env.model.P, SimulatedLinearMDPEnv.nominal_model().P)
    # q = 0 removes the leak but is not the nominal kernel
    q0 = SimulatedLinearMDPEnv(perturbation=0.0).model.P
    assert q0[0, X1, :, X4].max() == 0.0 and env.model.P[0, X1, :, X4].min() > 0.0
    np.testing.assert_array_equal(
        SimulatedLinearMDPEnv.perturbation_grid, np.round(np.linspace(0, 1, 11), 10)
    )


def test_features_on_the_simplex_and_rewards_are_phi_theta():
    env = SimulatedLinearMDPEnv(perturbation=0.4)
    m = env.model
    assert m.phi.shape == (5, 16, 4) and env.feature_dim == 4 and env.n_actions == 16
    assert np.all(m.phi >= 0) and np.allclose(m.phi.sum(axis=-1), 1.0)
    assert np.allclose(m.mu.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(m.theta, [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    # phi(x_j, a) = (1 - delta - xi^T a) e_j + (delta + xi^T a) e_4; phi(x4) = e_3, phi(x5) = e_4
    xi_a = ACTION_VECTORS @ np.full(4, 0.05)
    for j in range(3):
        np.testing.assert_allclose(m.phi[j, :, j], 0.7 - xi_a)
        np.testing.assert_allclose(m.phi[j, :, 3], 0.3 + xi_a)
    np.testing.assert_array_equal(m.phi[X4], np.tile([0, 0, 1, 0], (16, 1)))
    np.testing.assert_array_equal(m.phi[X5], np.tile([0, 0, 0, 1], (16, 1)))
    rng = np.random.default_rng(0)
    seen_goal_reward = False
    for episode in range(60):
        obs, _ = env.reset(seed=episode)
        for h in range(3):
            a = int(rng.integers(16))
            phi = env.features(obs, a)
            np.testing.assert_array_equal(env.action_features(obs)[a], phi)
            np.testing.assert_array_equal(phi, m.phi[obs[0], a])
            assert obs[1] == h
            obs, r, terminated, truncated, info = env.step(a)
            assert r == pytest.approx(phi @ m.theta[h], abs=1e-15)
            seen_goal_reward |= h > 0 and r == 1.0
            assert terminated == (h == 2) and not truncated and info["step"] == h + 1
    assert seen_goal_reward


def tolerance(p, n, cells, alpha=1e-4):
    """Two-sided binomial normal-approximation bound on |freq - p|, Bonferroni over cells."""
    z = norm.isf(alpha / (2 * cells))
    return z * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("perturbation", [None, 0.3])
def test_empirical_transitions_match_the_model(perturbation):
    env = SimulatedLinearMDPEnv(perturbation=perturbation)
    a = action_index([1, -1, 1, 1])
    n = 20_000
    counts = {(0, X1): np.zeros(5), (1, X2): np.zeros(5), (2, X3): np.zeros(5)}
    env.reset(seed=123)
    for _ in range(n):
        obs, _ = env.reset()
        for h in range(3):
            s = int(obs[0])
            obs, *_ = env.step(a)
            if (h, s) in counts:
                counts[(h, s)][obs[0]] += 1
    P = env.model.P
    assert counts[(0, X1)].sum() == n
    for (h, s), c in counts.items():
        total = c.sum()
        assert total > 5000  # x2 and x3 are reached often enough for a sharp test
        p = P[h, s, a]
        freq = c / total
        np.testing.assert_array_equal(c[p == 0], 0)  # impossible transitions never happen
        tol = tolerance(p, total, cells=15)
        assert np.all(np.abs(freq - p) <= tol), (h, s, freq, p, tol)


def test_simulated_env_bad_arguments():
    for bad in (-0.1, 1.5, float("nan"), "high"):
        with pytest.raises(ValueError, match="perturbation"):
            SimulatedLinearMDPEnv(perturbation=bad)
    with pytest.raises(ValueError, match="delta"):
        SimulatedLinearMDPEnv(delta=0.1, xi_norm=0.2)  # delta - xi_norm < 0
    with pytest.raises(ValueError, match="xi_norm"):
        SimulatedLinearMDPEnv(delta=0.9, xi_norm=0.2)  # delta + xi_norm > 1
    with pytest.raises(ValueError, match="delta"):
        SimulatedLinearMDPEnv(delta=-0.5)
    with pytest.raises(ValueError, match="horizon"):
        SimulatedLinearMDPEnv(horizon=0)
    env = SimulatedLinearMDPEnv()
    env.reset(seed=0)
    for bad in (16, -1, 2.0, True):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    with pytest.raises(ValueError, match="obs"):
        env.features(np.array([7, 0]), 0)


def test_step_after_the_episode_ended_is_refused():
    env = SimulatedLinearMDPEnv(horizon=1)
    with pytest.raises(RuntimeError):
        env.step(0)
    env.reset(seed=0)
    assert env.step(0)[2]
    with pytest.raises(RuntimeError):
        env.step(0)


# ------------------------------------------------------------------ American put
def test_exercise_pays_the_intrinsic_value_and_terminates():
    for s0, payoff in ((90.0, 10.0), (100.0, 0.0), (110.0, 0.0)):
        env = AmericanPutEnv(initial_price=s0)
        obs, info = env.reset(seed=0)
        np.testing.assert_array_equal(obs, np.float32([s0, 0]))
        obs, r, terminated, truncated, info = env.step(1)
        assert r == pytest.approx(payoff, abs=1e-12)
        assert terminated and not truncated and info["step"] == 1
        assert env.exercise_value(s0) == pytest.approx(payoff, abs=1e-12)
    scaled = AmericanPutEnv(initial_price=90.0, reward_scale=0.01)
    scaled.reset(seed=0)
    assert scaled.step(1)[1] == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize("p, factor", [(1.0, 1.02), (0.0, 0.98)])
def test_hold_moves_the_price_deterministically_at_the_extremes(p, factor):
    env = AmericanPutEnv(perturbation=p, horizon=6, initial_price=100.0)
    obs, _ = env.reset(seed=5)
    for h in range(6):
        obs, r, terminated, truncated, info = env.step(0)
        assert r == 0.0 and not truncated
        assert obs[0] == np.float32(100.0 * factor ** (h + 1)) and obs[1] == h + 1
        assert terminated == (h == 5)


def test_hold_moves_up_with_probability_p():
    env = AmericanPutEnv(perturbation=0.3, horizon=1, initial_price=100.0)
    env.reset(seed=11)
    n = 20_000
    ups = 0
    for _ in range(n):
        env.reset()
        obs, *_ = env.step(0)
        assert obs[0] in (np.float32(102.0), np.float32(98.0))
        ups += obs[0] > 100.0
    assert abs(ups / n - 0.3) <= tolerance(0.3, n, cells=1)


def test_hat_features():
    env = AmericanPutEnv(feature_dim=30)
    spacing = (160.0 - 60.0) / 30
    np.testing.assert_allclose(env.anchors, 80.0 + spacing * np.arange(30))
    inside = np.linspace(80.0, 80.0 + 29 * spacing, 1001)
    phi = env.hold_features(inside)
    assert phi.shape == (1001, 30) and np.all(phi >= 0) and np.all(phi <= 1)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0, atol=1e-12)  # partition of unity
    assert np.all((phi > 0).sum(axis=1) <= 2)  # at most two neighbouring hats are active
    np.testing.assert_allclose(env.hold_features(env.anchors), np.eye(30), atol=1e-12)
    # halfway between anchors 3 and 4
    np.testing.assert_allclose(env.hold_features(80.0 + 3.5 * spacing)[[3, 4]], [0.5, 0.5])
    assert np.all(env.hold_features(50.0) == 0)  # below the first hat: no support
    obs = np.float32([95.0, 3])
    np.testing.assert_array_equal(env.features(obs, 0), env.hold_features(95.0))
    np.testing.assert_array_equal(env.features(obs, 1), np.zeros(30))
    np.testing.assert_array_equal(env.action_features(obs), [env.hold_features(95.0), np.zeros(30)])


def test_initial_price_draw_and_reuse():
    env = AmericanPutEnv()
    obs_a, _ = env.reset(seed=1)
    assert 95.0 <= obs_a[0] <= 105.0 and env.start_price == pytest.approx(obs_a[0], rel=1e-6)
    for _ in range(3):
        assert env.reset()[0][0] == obs_a[0]  # kept until the next seeded reset
    assert env.reset(seed=2)[0][0] != obs_a[0]
    assert env.reset(seed=1)[0][0] == obs_a[0]
    assert AmericanPutEnv().reset(seed=1)[0][0] == obs_a[0]
    starts = {float(AmericanPutEnv().reset(seed=s)[0][0]) for s in range(50)}
    assert len(starts) == 50 and min(starts) >= 95.0 and max(starts) <= 105.0
    fixed = AmericanPutEnv(initial_price=97.5)
    assert {float(fixed.reset(seed=s)[0][0]) for s in range(5)} == {97.5}


def european_put(s0, p, n_moves, strike=100.0):
    """Closed-form expected payoff of exercising at the last decision (after n_moves holds)."""
    return sum(
        math.comb(n_moves, j) * p**j * (1 - p) ** (n_moves - j)
        * max(0.0, strike - s0 * 1.02**j * 0.98 ** (n_moves - j))
        for j in range(n_moves + 1)
    )


def brute_force_return(env, policy_fn, s0):
    """Expected return by enumerating all 2^(H-1) up/down paths (independent of the tree)."""
    p, H = env.up_probability, env.horizon
    total = 0.0
    for moves in itertools.product([0, 1], repeat=H - 1):
        path_prob = math.prod(p if up else 1 - p for up in moves)
        price = s0
        for h in range(H):
            if policy_fn(float(np.float32(price)), h) == 1:
                total += path_prob * max(0.0, 100.0 - price)
                break
            if h < H - 1:
                n_up = sum(moves[: h + 1])
                price = s0 * 1.02**n_up * 0.98 ** (h + 1 - n_up)
    return total


def test_expected_return_is_exact_on_hand_computable_policies():
    env = AmericanPutEnv(perturbation=0.4, horizon=20, initial_price=99.0)
    assert env.expected_return(lambda price, step: 0) == 0.0
    assert env.expected_return(lambda price, step: 1) == pytest.approx(1.0, abs=1e-12)
    at_last = env.expected_return(lambda price, step: int(step == 19))
    assert at_last == pytest.approx(european_put(99.0, 0.4, 19), rel=1e-12)
    assert AmericanPutEnv(perturbation=0.4, horizon=20, initial_price=99.0,
                          reward_scale=0.5).expected_return(
        lambda price, step: int(step == 19)) == pytest.approx(0.5 * at_last, rel=1e-12)

    def odd_steps_below_99(price, step):
        return int(step % 2 == 1 and price < 99.0)

    small = AmericanPutEnv(perturbation=0.35, horizon=9, initial_price=100.5)
    assert small.expected_return(odd_steps_below_99) == pytest.approx(
        brute_force_return(small, odd_steps_below_99, 100.5), rel=1e-12
    )


@pytest.mark.parametrize("policy", ["always-hold", "threshold"])
def test_expected_return_matches_monte_carlo(policy):
    env = AmericanPutEnv(perturbation=0.45, horizon=12)
    env.reset(seed=3)
    s0 = env.start_price

    def policy_fn(price, step):
        # threshold: exercise once the price is 3% below its start, or at the last step
        return 0 if policy == "always-hold" else int(price < 0.97 * s0 or step == 11)

    exact = env.expected_return(policy_fn)
    assert exact == env.expected_return(policy_fn, initial_price=s0)
    n = 4000
    returns = np.zeros(n)
    for e in range(n):
        obs, _ = env.reset()
        assert obs[0] == np.float32(s0)
        done = False
        while not done:
            obs, r, done, _, _ = env.step(policy_fn(float(obs[0]), int(obs[1])))
            returns[e] += r
    stderr = returns.std(ddof=1) / np.sqrt(n)
    if stderr == 0.0:  # always-hold: every episode returns exactly 0
        assert exact == 0.0 and np.all(returns == 0.0)
    else:
        assert exact > 0.5  # not a trivial comparison
        assert abs(returns.mean() - exact) <= 4 * stderr, (returns.mean(), exact, stderr)


def test_expected_return_shows_the_policy_the_observed_prices():
    env = AmericanPutEnv(perturbation=0.5, horizon=3, initial_price=99.1)
    seen = set()
    env.expected_return(lambda price, step: seen.add((price, step)) or 0)
    observed = set()  # the decision-time observations of the environment itself
    env.reset(seed=0)
    for _ in range(200):  # covers all 6 decision nodes with overwhelming probability
        obs, _ = env.reset()
        for _ in range(3):
            observed.add((float(obs[0]), int(obs[1])))
            obs, *_ = env.step(0)
    assert seen == observed and (99.1, 0) not in seen  # float32 prices, as in the env


def test_expected_return_needs_an_initial_price():
    with pytest.raises(ValueError, match="initial_price"):
        AmericanPutEnv().expected_return(lambda price, step: 0)
    with pytest.raises(ValueError, match="action"):
        AmericanPutEnv(initial_price=100.0).expected_return(lambda price, step: 2)


def test_put_bad_arguments():
    bad = [
        ({"perturbation": 1.2}, "perturbation"),
        ({"perturbation": -0.01}, "perturbation"),
        ({"horizon": 0}, "horizon"),
        ({"strike": 0.0}, "strike"),
        ({"up": 0.9, "down": 0.98}, "up"),
        ({"down": -1.0}, "down"),
        ({"initial_price": -5.0}, "initial_price"),
        ({"initial_price_range": (105.0, 95.0)}, "initial_price_range"),
        ({"initial_price_range": 100.0}, "initial_price_range"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"feature_low": 160.0, "feature_high": 60.0}, "feature_high"),
        ({"reward_scale": 0.0}, "reward_scale"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ValueError, match=name):
            AmericanPutEnv(**kwargs)
    env = AmericanPutEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(2)


# ------------------------------------------------------------------ perturbation helpers
@pytest.mark.parametrize(
    "target, cls, grid",
    [
        (SimulatedLinearMDPEnv, SimulatedLinearMDPEnv, np.round(np.linspace(0, 1, 11), 10)),
        (SIMULATED_LINEAR_MDP_ID, SimulatedLinearMDPEnv, np.round(np.linspace(0, 1, 11), 10)),
        (AmericanPutEnv, AmericanPutEnv, [0.2, 0.4, 0.6, 0.8, 1.0]),
        (AMERICAN_PUT_ID, AmericanPutEnv, [0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_perturbed_envs_builds_one_env_per_grid_point(target, cls, grid):
    np.testing.assert_array_equal(perturbation_grid(target), grid)
    pairs = perturbed_envs(target)
    assert [p for p, _ in pairs] == list(grid)
    for p, env in pairs:
        assert isinstance(env.unwrapped, cls) and env.unwrapped.perturbation == p
    custom = perturbed_envs(target, grid=[0.25, 0.75], horizon=4)
    assert [(p, e.unwrapped.perturbation, e.unwrapped.horizon) for p, e in custom] == [
        (0.25, 0.25, 4), (0.75, 0.75, 4)
    ]


def test_make_env_and_helper_errors():
    assert make_env(AmericanPutEnv).unwrapped.perturbation == AmericanPutEnv.nominal_perturbation
    env = make_env(SIMULATED_LINEAR_MDP_ID, perturbation=0.6)
    assert env.unwrapped.perturbation == 0.6 and env.unwrapped.spec.id == SIMULATED_LINEAR_MDP_ID
    with pytest.raises(ValueError, match="perturbation"):
        make_env(SimulatedLinearMDPEnv, perturbation=2.0)
    with pytest.raises(ValueError, match="env_id_or_class"):
        make_env("robustrl/NoSuchEnv-v0")
    with pytest.raises(ValueError, match="env_id_or_class"):
        perturbation_grid(42)
    with pytest.raises(ValueError, match="grid"):
        perturbed_envs(AmericanPutEnv, grid=[])
    with pytest.raises(ValueError, match="perturbation"):
        perturbed_envs(AmericanPutEnv, grid=[0.5, 1.5])


def test_linear_mdp_env_wraps_any_known_model():
    from gymnasium.utils.env_checker import check_env

    from robustrl.envs import LinearMDPEnv
    from robustrl.models import LinearMDP

    rng = np.random.default_rng(0)
    S, A, d, H = 4, 3, 2, 3
    model = LinearMDP(rng.dirichlet(np.ones(d), size=(S, A)), rng.dirichlet(np.ones(S), (H, d)),
                      rng.uniform(size=(H, d)), np.full(S, 0.25))
    env = LinearMDPEnv(model)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.action_features(obs), model.phi[obs[0]])
    with pytest.raises(ValueError, match="model"):
        LinearMDPEnv(model.to_finite())


def test_simulated_linear_mdp_models_are_independent_copies():
    """The model is built and validated once per setting, and every call gets its own arrays:
    changing one environment's model changes no other."""
    from robustrl.envs.simulated_linear_mdp import simulated_linear_mdp

    a, b = simulated_linear_mdp(0.3), simulated_linear_mdp(0.3)
    assert a is not b and a.mu is not b.mu and a.phi.flags.writeable
    for name in ("phi", "mu", "theta", "initial_distribution"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    a.mu[0, 3] = 0.0
    assert simulated_linear_mdp(0.3).mu[0, 3].sum() == pytest.approx(1.0)
    assert not np.array_equal(simulated_linear_mdp(0.3).mu, simulated_linear_mdp(0.7).mu)
