import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl import value_iteration as vi
from robustrl.models import FiniteMDP
from robustrl.reference import value_iteration as reference

SETTINGS = settings(max_examples=30, deadline=None)
BONUS_NAMES = ["elliptical", "d_rectangular_l1", "d_rectangular_l2", "none"]


def _spd_inverse(rng, dim, n):
    base = rng.standard_normal((n, dim + 3, dim))
    gram = np.swapaxes(base, -1, -2) @ base + 0.5 * np.eye(dim)
    inv = np.linalg.inv(gram)
    return 0.5 * (inv + np.swapaxes(inv, -1, -2))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(1, 9),
    n_actions=st.integers(1, 4),
    dim=st.integers(1, 6),
    horizon=st.integers(1, 5),
    beta=st.floats(0.0, 3.0),
    bonus=st.sampled_from(BONUS_NAMES),
    sign=st.sampled_from([-1, 1]),
    use_factors=st.booleans(),
)
def test_q_values_and_backward_value_iteration_match_reference(
    seed, n_states, n_actions, dim, horizon, beta, bonus, sign, use_factors
):
    rng = np.random.default_rng(seed)
    features = rng.dirichlet(np.ones(dim), size=(n_states, n_actions))
    weights = rng.uniform(-1.0, 3.0, size=(horizon, dim))
    lambda_inv = _spd_inverse(rng, dim, horizon)
    step = int(rng.integers(horizon))
    q = vi.greedy_q_values(
        features, weights[step], lambda_inv[step], beta, step, horizon, bonus, sign
    )
    expected = reference.greedy_q_values(
        features, weights[step], lambda_inv[step], beta, step, horizon, bonus, sign
    )
    np.testing.assert_allclose(q, expected, rtol=1e-12, atol=1e-12)
    factors = rng.dirichlet(np.ones(n_states), size=(horizon, dim)) if use_factors else None
    got = vi.backward_value_iteration(weights, features, lambda_inv, beta, bonus, sign, factors)
    want = reference.backward_value_iteration(
        weights, features, lambda_inv, beta, bonus, sign, factors
    )
    for g, w in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    _assert_same_greedy_policy(got[2], want[0], want[2])
    assert got[2].dtype == np.int64


def _assert_same_greedy_policy(policy, q_reference, policy_reference):
    """Equal to the reference policy wherever the best action is unique beyond rounding; on
    (near-)ties, any maximiser of the reference Q is accepted."""
    chosen = np.take_along_axis(q_reference, policy[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(chosen, q_reference.max(axis=-1), rtol=1e-12, atol=1e-12)
    top_two = np.sort(q_reference, axis=-1)[..., -2:] if q_reference.shape[-1] > 1 else None
    clear = np.ones(policy.shape, bool) if top_two is None else (
        top_two[..., 1] - top_two[..., 0] > 1e-9
    )
    np.testing.assert_array_equal(policy[clear], policy_reference[clear])


def _tabular_value_iteration(P, R):
    horizon, n_states, n_actions, _ = P.shape
    Q = np.zeros((horizon, n_states, n_actions))
    V = np.zeros((horizon + 1, n_states))
    for h in reversed(range(horizon)):
        for s in range(n_states):
            for a in range(n_actions):
                Q[h, s, a] = R[h, s, a] + sum(P[h, s, a, t] * V[h + 1, t] for t in range(n_states))
            V[h, s] = max(Q[h, s])
    return Q, V


def _one_hot_features(n_states, n_actions):
    return np.eye(n_states * n_actions).reshape(n_states, n_actions, n_states * n_actions)


def test_backward_value_iteration_on_tabular_mdp_equals_ordinary_value_iteration():
    rng = np.random.default_rng(4)
    horizon, n_states, n_actions = 5, 6, 3
    mdp = FiniteMDP(
        rng.dirichlet(np.ones(n_states), size=(horizon, n_states, n_actions)),
        rng.random((horizon, n_states, n_actions)),
        np.full(n_states, 1.0 / n_states),
    )
    Q, V = _tabular_value_iteration(mdp.P, mdp.R)
    features = _one_hot_features(n_states, n_actions)
    # Known model as a linear MDP: theta_h = R_h, mu_h[(s, a), s'] = P_h(s' | s, a).
    theta = mdp.R.reshape(horizon, -1)
    mu = mdp.P.reshape(horizon, n_states * n_actions, n_states)
    q, v, policy = vi.backward_value_iteration(theta, features, bonus="none", factors=mu)
    np.testing.assert_allclose(q, Q, rtol=1e-13)
    np.testing.assert_allclose(v, V, rtol=1e-13)
    np.testing.assert_array_equal(policy, Q.argmax(axis=2))
    # Given the optimal per-step weights w_h = Q*_h directly, the pass reproduces Q*.
    q2, v2, policy2 = vi.backward_value_iteration(Q.reshape(horizon, -1), features)
    np.testing.assert_allclose(q2, Q, rtol=1e-13)
    np.testing.assert_array_equal(policy2, policy)


def test_lsvi_with_one_hot_features_recovers_empirical_model_value_iteration():
    rng = np.random.default_rng(8)
    horizon, n_states, n_actions, n_samples = 4, 5, 3, 400
    P = rng.dirichlet(np.ones(n_states), size=(horizon, n_states, n_actions))
    dim = n_states * n_actions
    one_hot = _one_hot_features(n_states, n_actions)
    states = rng.integers(n_states, size=(horizon, n_samples))
    actions = rng.integers(n_actions, size=(horizon, n_samples))
    # Every (s, a) is visited at every step.
    states[:, :dim] = np.arange(dim) // n_actions
    actions[:, :dim] = np.arange(dim) % n_actions
    rewards = rng.random((horizon, n_samples))
    next_states = np.array(
        [[rng.choice(n_states, p=P[h, s, a]) for s, a in zip(states[h], actions[h], strict=True)]
         for h in range(horizon)]
    )
    next_valid = rng.random((horizon, n_samples)) < 0.9
    features = one_hot[states, actions]
    next_features = one_hot[next_states]  # (H, K, A, d)
    weights, lambda_inv, _ = reference.lsvi_backward_pass(
        features, rewards, next_features, next_valid, 1e-9, 0.0, "elliptical", -1)
    # Empirical-model value iteration: Q_h(s, a) = mean over visits of r + V_{h+1}(s') (0 after
    # a transition with no successor).
    Q = np.zeros((horizon, n_states, n_actions))
    V = np.zeros((horizon + 1, n_states))
    for h in reversed(range(horizon)):
        for s in range(n_states):
            for a in range(n_actions):
                visits = np.flatnonzero((states[h] == s) & (actions[h] == a))
                Q[h, s, a] = np.mean([
                    rewards[h, k] + (V[h + 1, next_states[h, k]] if next_valid[h, k] else 0.0)
                    for k in visits
                ])
        V[h] = Q[h].max(axis=1)
    np.testing.assert_allclose(weights, Q.reshape(horizon, -1), rtol=1e-8)
    q, v, policy = vi.backward_value_iteration(weights, one_hot, lambda_inv, 0.0)
    np.testing.assert_allclose(q, Q, rtol=1e-8)
    np.testing.assert_allclose(v, V, rtol=1e-8)
    np.testing.assert_array_equal(policy, Q.argmax(axis=2))
    # Lambda_h = diag(visit counts) + ridge I.
    counts = np.stack([np.bincount(states[h] * n_actions + actions[h], minlength=dim)
                       for h in range(horizon)])
    np.testing.assert_allclose(
        np.diagonal(lambda_inv, axis1=1, axis2=2), 1.0 / (counts + 1e-9), rtol=1e-12
    )


def test_optimistic_lsvi_with_large_bonus_saturates_at_the_truncation_level():
    rng = np.random.default_rng(9)
    H, K, A, d = 4, 20, 3, 3
    features = rng.dirichlet(np.ones(d), size=(H, K))
    next_features = rng.dirichlet(np.ones(d), size=(H, K, A))
    valid = np.ones((H, K), dtype=bool)
    _, _, next_values = reference.lsvi_backward_pass(
        features, rng.random((H, K)), next_features, valid, 1.0, 100.0, "elliptical", +1)
    # V_{h+1} is clipped at H - (h + 1) (0-indexed steps).
    expected = np.repeat((H - 1 - np.arange(H))[:, None], K, axis=1).astype(float)
    np.testing.assert_array_equal(next_values, expected)
    _, _, pessimistic = reference.lsvi_backward_pass(
        features, rng.random((H, K)), next_features, valid, 1.0, 100.0, "elliptical", -1)
    np.testing.assert_array_equal(pessimistic, 0.0)


def test_pessimism_and_optimism_shift_q_values_and_truncation_applies():
    features = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one state, two actions
    weights = np.array([0.5, 9.0])
    lambda_inv = np.diag([0.25, 0.04])
    horizon = 3
    # Bonus of action 0 is 0.5, of action 1 is 0.2; the upper clip at step 1 is H - 1 = 2.
    pess = vi.greedy_q_values(features, weights, lambda_inv, 2.0, 1, horizon, "elliptical", -1)
    opt = vi.greedy_q_values(features, weights, lambda_inv, 2.0, 1, horizon, "elliptical", +1)
    np.testing.assert_allclose(pess, [[0.0, 2.0]])  # 0.5 - 1.0 clipped at 0; 8.6 clipped at 2
    np.testing.assert_allclose(opt, [[1.5, 2.0]])
    last = vi.greedy_q_values(features, [0.3, 0.0], None, 0.0, 2, horizon)
    np.testing.assert_allclose(last, [[0.3, 0.0]])
    # Ties go to the first maximiser.
    _, _, policy = vi.backward_value_iteration(np.ones((2, 2)), np.full((1, 3, 2), 0.5))
    np.testing.assert_array_equal(policy, 0)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    rng = np.random.default_rng(0)
    H, K, A, d = 2, 5, 2, 3
    next_features = rng.dirichlet(np.ones(d), size=(H, K, A))
    state_features = next_features[0]
    with pytest.raises(ValueError, match="lambda_inv is required"):
        vi.greedy_q_values(state_features, np.ones(d), None, beta=1.0)
    with pytest.raises(ValueError, match="lambda_inv must have shape \\(3, 3\\)"):
        vi.greedy_q_values(state_features, np.ones(d), np.eye(2), beta=1.0)
    with pytest.raises(ValueError, match="weights must have shape"):
        vi.greedy_q_values(state_features, np.ones(d + 1))
    with pytest.raises(ValueError, match="step must lie in \\[0, 2\\]"):
        vi.greedy_q_values(state_features, np.ones(d), step=3, horizon=3)
    with pytest.raises(ValueError, match="horizon"):
        vi.greedy_q_values(state_features, np.ones(d), horizon=0)
    with pytest.raises(ValueError, match="lambda_inv must have shape \\(2, \\*, \\*\\)"):
        vi.backward_value_iteration(np.ones((H, d)), state_features, np.eye(d), beta=1.0)
    with pytest.raises(ValueError, match="factors must have shape"):
        vi.backward_value_iteration(np.ones((H, d)), state_features, factors=np.ones((H, d, 2)))
    with pytest.raises(ValueError, match="features must have shape"):
        vi.backward_value_iteration(np.ones((H, d)), state_features[..., :2])
