import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl import policies
from robustrl._kernels import policy as kernels
from robustrl.reference import policy as reference

SETTINGS = settings(max_examples=40, deadline=None)


def _reference_with_zeros(rng, n_rows, n_actions):
    probs = rng.dirichlet(np.ones(n_actions), size=n_rows)
    zeros = rng.random((n_rows, n_actions)) < 0.3
    zeros[np.arange(n_rows), rng.integers(n_actions, size=n_rows)] = False  # keep some mass
    probs[zeros] = 0.0
    return probs / probs.sum(axis=1, keepdims=True)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 12),
    n_actions=st.integers(1, 6),
    scale=st.sampled_from([1.0, 50.0, 1e4]),
    temperature=st.floats(0.05, 20.0),
)
def test_softmax_kernels_match_reference(seed, n_rows, n_actions, scale, temperature):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n_rows, n_actions))
    masked = rng.random((n_rows, n_actions)) < 0.2
    masked[:, 0] = False
    logits[masked] = -np.inf
    probs = policies.softmax(logits, temperature)
    np.testing.assert_allclose(probs, reference.softmax(logits, 1.0 / temperature),
                               rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(probs[masked] == 0.0)
    log_probs = policies.log_softmax(logits, temperature)
    expected = reference.log_softmax(logits, 1.0 / temperature)
    assert np.array_equal(np.isneginf(log_probs), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(log_probs[finite], expected[finite], rtol=1e-12, atol=1e-12)
    # Shifting every logit of a row by a constant leaves the distribution unchanged.
    np.testing.assert_allclose(policies.softmax(logits + 123.0, temperature), probs,
                               rtol=1e-9, atol=1e-300)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 12),
    n_actions=st.integers(1, 6),
    eta=st.floats(0.0, 100.0),
    alpha=st.floats(0.0, 3.0),
)
def test_kl_regularized_update_matches_reference(seed, n_rows, n_actions, eta, alpha):
    rng = np.random.default_rng(seed)
    pi_ref = _reference_with_zeros(rng, n_rows, n_actions)
    q = rng.uniform(-5.0, 5.0, size=(n_rows, n_actions))
    new = policies.kl_regularized_update(pi_ref, q, eta, alpha)
    expected = np.exp(reference.regularized_log_policy(_log(pi_ref), q, eta, alpha))
    np.testing.assert_allclose(new, expected, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(new.sum(axis=1), 1.0, rtol=1e-13)
    assert np.all(new[pi_ref == 0.0] == 0.0)


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


def test_kl_update_closed_forms():
    # Two actions: pi_new(0) = sigmoid(alpha * logit(p) + eta * (q0 - q1)).
    p, q0, q1, eta, alpha = 0.3, 1.7, -0.4, 0.8, 0.6
    new = policies.kl_regularized_update([[p, 1 - p]], [[q0, q1]], eta, alpha)
    z = alpha * np.log(p / (1 - p)) + eta * (q0 - q1)
    np.testing.assert_allclose(new[0, 0], 1.0 / (1.0 + np.exp(-z)), rtol=1e-14)
    # alpha = 0 and eta = 0: uniform over the support of pi_ref.
    rng = np.random.default_rng(1)
    pi_ref = rng.dirichlet(np.ones(4), size=3)
    q = rng.standard_normal((3, 4))
    np.testing.assert_allclose(policies.kl_regularized_update(pi_ref, q, 0.0, 0.0), 0.25)
    sparse = np.array([[0.5, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(
        policies.kl_regularized_update(sparse, q[:1], 0.0, 0.0), [[0.5, 0.0, 0.5, 0.0]]
    )
    # alpha = 1, eta = 0 returns pi_ref; huge eta * q does not overflow (greedy in the limit).
    np.testing.assert_allclose(policies.kl_regularized_update(pi_ref, q, 0.0), pi_ref,
                               rtol=1e-13)
    greedy = policies.kl_regularized_update(pi_ref, q, 1e6)
    np.testing.assert_array_equal(greedy, np.eye(4)[q.argmax(axis=1)])


def test_sampling_kernel_matches_reference_and_frequencies():
    rng = np.random.default_rng(2)
    probs = _reference_with_zeros(rng, 50, 5)
    uniforms = rng.random(50)
    uniforms[:3] = [0.0, np.nextafter(1.0, 0.0), 0.5]
    np.testing.assert_array_equal(
        kernels.sample_rows(probs, uniforms), reference.sample_actions(probs, uniforms)
    )
    drawn = kernels.sample_rows(probs, uniforms)
    # Boundaries: u = 0 skips leading zero-probability actions; u exactly at a cumulative mass
    # goes to the next action (the interval of action a is [F(a-1), F(a))).
    edge = np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    np.testing.assert_array_equal(kernels.sample_rows(edge, np.array([0.0, 0.5, 0.5])), [1, 1, 2])
    assert np.all(probs[np.arange(50), drawn] > 0.0)
    # Empirical frequencies of 200k draws lie within 5 standard errors of the probabilities.
    p = np.array([0.1, 0.0, 0.6, 0.3])
    n = 200_000
    actions = policies.sample_actions(np.tile(p, (n, 1)), np.random.default_rng(3))
    freq = np.bincount(actions, minlength=4) / n
    assert freq[1] == 0.0
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n))
    # Same seed, same actions.
    again = policies.sample_actions(np.tile(p, (n, 1)), np.random.default_rng(3))
    np.testing.assert_array_equal(actions, again)


def test_softmax_policy_mirror_descent_and_sampling():
    rng = np.random.default_rng(4)
    H, S, A = 3, 4, 5
    policy = policies.SoftmaxPolicy(H, S, A)
    np.testing.assert_allclose(policy.probabilities, 1.0 / A)
    q1, q2 = rng.standard_normal((2, H, S, A))
    policy.update(q1, eta=0.7)
    policy.update(q2, eta=0.7)
    # Two mirror-descent steps from uniform = one softmax of eta * (q1 + q2).
    expected = policies.softmax(0.7 * (q1 + q2))
    np.testing.assert_allclose(policy.probabilities, expected, rtol=1e-12)
    np.testing.assert_allclose(policy.probs(2, 1), expected[2, 1], rtol=1e-12)
    # An explicit reference: pi <- pi_ref^alpha exp(eta q).
    pi_ref = policies.softmax(rng.standard_normal((H, S, A)))
    pi_ref[0, 0] = [0.0, 0.5, 0.5, 0.0, 0.0]
    policy.update(q1, eta=2.0, pi_ref=pi_ref, alpha=0.5)
    np.testing.assert_allclose(
        policy.probabilities, policies.kl_regularized_update(pi_ref, q1, 2.0, 0.5), rtol=1e-12
    )
    actions = {policy.act(0, 0, rng) for _ in range(200)}
    assert actions == {1, 2}
    restored = policies.SoftmaxPolicy.from_probabilities(policy.probabilities)
    np.testing.assert_allclose(restored.probabilities, policy.probabilities, rtol=1e-12)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="temperature"):
        policies.softmax([1.0, 2.0], temperature=0.0)
    with pytest.raises(ValueError, match="logits must not contain NaN"):
        policies.softmax([1.0, np.nan])
    with pytest.raises(ValueError, match="logits must not contain NaN or \\+inf"):
        policies.log_softmax([1.0, np.inf])
    with pytest.raises(ValueError, match="at least one finite entry"):
        policies.softmax([[0.0, 1.0], [-np.inf, -np.inf]])
    with pytest.raises(ValueError, match="pi_ref must sum to 1"):
        policies.kl_regularized_update([[0.5, 0.6]], [[0.0, 0.0]], 1.0)
    with pytest.raises(ValueError, match="pi_ref entries must be >= 0"):
        policies.kl_regularized_update([[1.5, -0.5]], [[0.0, 0.0]], 1.0)
    with pytest.raises(ValueError, match="eta"):
        policies.kl_regularized_update([[0.5, 0.5]], [[0.0, 0.0]], -1.0)
    with pytest.raises(ValueError, match="alpha"):
        policies.kl_regularized_update([[0.5, 0.5]], [[0.0, 0.0]], 1.0, alpha=-0.1)
    with pytest.raises(ValueError, match="q must have shape"):
        policies.kl_regularized_update([[0.5, 0.5]], [[0.0, 0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="q must be finite"):
        policies.kl_regularized_update([[0.5, 0.5]], [[0.0, np.nan]], 1.0)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        policies.sample_actions([[0.5, 0.5]], rng=0)
    policy = policies.SoftmaxPolicy(2, 3, 2)
    with pytest.raises(ValueError, match="step must lie in \\[0, 1\\]"):
        policy.probs(2, 0)
    with pytest.raises(ValueError, match="state must lie in \\[0, 2\\]"):
        policy.act(0, 3, rng)
    with pytest.raises(ValueError, match="q must have shape"):
        policy.update(np.zeros((2, 3, 3)), eta=1.0)
    with pytest.raises(ValueError, match="eta"):
        policy.update(np.zeros((2, 3, 2)), eta=np.nan)
    with pytest.raises(ValueError, match="n_actions must lie in \\[1, inf\\)"):
        policies.SoftmaxPolicy(2, 3, 0)
    with pytest.raises(ValueError, match="logits must have shape"):
        policies.SoftmaxPolicy(2, 3, 2, logits=np.zeros((2, 3, 3)))


def test_log_softmax_keeps_precision_for_huge_logits():
    # Logits around 1e12 (Q / tau with tiny tau) differ by O(1); shifting by the maximum
    # before taking the log-normaliser keeps those differences exact.
    offsets = np.array([0.0, 1.0, -3.0])
    expected = offsets - np.log(np.exp(offsets).sum())
    np.testing.assert_allclose(
        policies.log_softmax((1e12 + offsets)[None]), expected[None], rtol=0, atol=1e-12
    )


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 8),
    n_actions=st.integers(1, 6),
    eta=st.floats(0.01, 50.0),
    tau=st.sampled_from([0.0, 0.05, 1.0, 7.0]),
)
def test_kl_mirror_descent_step_is_the_regularised_proximal_maximiser(seed, n_rows, n_actions,
                                                                        eta, tau):
    """pi_new ∝ pi^{1/(1+eta tau)} pi_ref^{eta tau/(1+eta tau)} exp(eta q/(1+eta tau)), computed
    here in plain NumPy; zeros of pi_ref (hence of pi) stay zero when tau > 0."""
    rng = np.random.default_rng(seed)
    ref = _reference_with_zeros(rng, n_rows, n_actions)
    pol = rng.dirichlet(np.ones(n_actions), size=n_rows) * (ref > 0)
    pol /= pol.sum(axis=1, keepdims=True)
    q = 3.0 * rng.random((n_rows, n_actions))
    got = policies.kl_mirror_descent_step(pol, q, eta, tau, ref)
    a = 1.0 / (1.0 + eta * tau)
    with np.errstate(divide="ignore"):
        log_ref = np.log(ref) if tau > 0 else 0.0  # tau = 0: pi_ref does not enter
        logits = a * np.log(pol) + (1 - a) * log_ref + eta * a * q
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    if tau == 0.0:  # plain mirror descent = kl_regularized_update with alpha = 1
        np.testing.assert_allclose(got, policies.kl_regularized_update(pol, q, eta),
                                   rtol=1e-12, atol=1e-15)


def test_kl_mirror_descent_step_soft_greedy_limit_and_errors():
    rng = np.random.default_rng(3)
    ref, pol = rng.dirichlet(np.ones(4), size=3), rng.dirichlet(np.ones(4), size=3)
    q = rng.random((3, 4))
    soft = policies.kl_mirror_descent_step(pol, q, np.inf, 0.2, ref)
    np.testing.assert_allclose(soft, policies.kl_regularized_update(ref, q, 1 / 0.2),
                               rtol=1e-12)
    # a very large step approaches the soft-greedy policy
    np.testing.assert_allclose(policies.kl_mirror_descent_step(pol, q, 1e9, 0.2, ref), soft,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="eta = inf needs tau > 0"):
        policies.kl_mirror_descent_step(pol, q, np.inf, 0.0)
    with pytest.raises(ValueError, match="tau"):
        policies.kl_mirror_descent_step(pol, q, 1.0, -0.1)
    with pytest.raises(ValueError, match="eta"):
        policies.kl_mirror_descent_step(pol, q, 0.0, 0.1)
    with pytest.raises(ValueError, match="reference"):
        policies.kl_mirror_descent_step(pol, q, 1.0, 0.1, ref[:2])
