"""R2PVI-KL at small lam: one shift per factor (per regression row) and the cancellation guard.

The KL estimate of factor i is -lam log sum_k Xi_ik exp(-V_k / lam) (arXiv 2411.18612, KL case
of R2PVI). Shifting every value by the step's global minimum made each exponential of a factor
whose values all lie more than ~745 lam above that minimum underflow, and the factor took the
clip value (Q = H - h). With one shift per factor the one-hot examples are exact at any lam;
with mixed-sign regression weights the sum cancels and the fit warns, naming lam.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_offline_agents import TableEnv, exact_dataset, one_hot_model, q_table

from robustrl._kernels import offline as kern
from robustrl.agents.estimators import RowEstimator
from robustrl.agents.r2pvi import R2PVI
from robustrl.data import OfflineDataset
from robustrl.exact import robust_value_iteration
from robustrl.models import LinearMDP
from robustrl.reference import offline as ref

TINY_RIDGE = 1e-12


def _table_dataset(model: LinearMDP, rows: list[tuple[int, int]]) -> OfflineDataset:
    """One trajectory per ``(state, next state)`` pair, repeated at every step (A = 1)."""
    H, d = model.horizon, model.feature_dim
    K = len(rows)
    out = {
        "observations": np.zeros((K, H, 2)),
        "actions": np.zeros((K, H), dtype=np.int64),
        "rewards": np.zeros((K, H)),
        "next_observations": np.zeros((K, H, 2)),
        "features": np.zeros((K, H, d)),
        "next_action_features": np.zeros((K, H, 1, d)),
        "valid": np.ones((K, H), dtype=bool),
        "terminal": np.zeros((K, H), dtype=bool),
    }
    for k, (s, t) in enumerate(rows):
        for h in range(H):
            out["observations"][k, h] = (s, h)
            out["next_observations"][k, h] = (t, h + 1)
            out["rewards"][k, h] = model.phi[s, 0] @ model.theta[h]
            out["features"][k, h] = model.phi[s, 0]
            out["next_action_features"][k, h] = model.phi[t]
            out["terminal"][k, h] = h == H - 1
    return OfflineDataset(**out)


def two_state_model(horizon: int = 3) -> LinearMDP:
    """State 0 absorbing with reward 0, state 1 absorbing with reward 1/2; phi(s) = e_s."""
    phi = np.zeros((2, 1, 2))
    phi[0, 0, 0] = phi[1, 0, 1] = 1.0
    mu = np.zeros((horizon, 2, 2))
    mu[:, 0, 0] = mu[:, 1, 1] = 1.0
    theta = np.zeros((horizon, 2))
    theta[:, 1] = 0.5
    return LinearMDP(phi, mu, theta, np.array([0.5, 0.5]))


def overlapping_model(horizon: int = 3) -> LinearMDP:
    """Two absorbing states (rewards 0 and 1/2, phi = e_0, e_1) and a state with phi = (1/2, 1/2):
    Lambda^{-1} has negative off-diagonal entries, so the regression weights are mixed-sign."""
    phi = np.zeros((3, 1, 2))
    phi[0, 0] = (1.0, 0.0)
    phi[1, 0] = (0.0, 1.0)
    phi[2, 0] = (0.5, 0.5)
    mu = np.zeros((horizon, 2, 3))
    mu[:, 0, 0] = mu[:, 1, 1] = 1.0
    theta = np.zeros((horizon, 2))
    theta[:, 1] = 0.5
    return LinearMDP(phi, mu, theta, np.full(3, 1.0 / 3.0))


def _fit_quietly(agent, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cancellation warning on these examples
        return agent.fit(data)


# --------------------------------------------------------------------------------------------
# per-factor shift


# 1 / 650 and 1 / 740: the step-1 gap (1.0) sits just below and above the far-column cutoff
# (600 lam) and near the underflow of exp (745 lam)
@pytest.mark.parametrize("lam", [1e-3, 1e-4, 1e-2, 0.3, 1.0 / 650.0, 1.0 / 740.0, 1.0 / 590.0])
def test_two_state_one_hot_small_lam_equals_exact_dp(lam):
    # Before: Q_0(state 1) = 3 (the clip H - h) at lam = 1e-3, exact 1.5.
    model = two_state_model()
    data = _table_dataset(model, [(0, 0), (1, 1)])
    want = robust_value_iteration(model, divergence="kl", lam=lam).Q
    assert want[0, 1, 0] == pytest.approx(1.5)
    agent = _fit_quietly(R2PVI(TableEnv(model), divergence="kl", lam=lam, ridge=TINY_RIDGE,
                               beta=0.0), data)
    np.testing.assert_allclose(q_table(agent, model), want, rtol=0, atol=1e-9)
    # streamed one trajectory per chunk: each chunk's values are narrow (one state), so the
    # first read skips the per-chunk column scan and the sums run with running minima
    chunks = [_table_dataset(model, [(0, 0)]), _table_dataset(model, [(1, 1)])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamed = R2PVI(TableEnv(model), divergence="kl", lam=lam, ridge=TINY_RIDGE,
                         beta=0.0).fit_stream(chunks)
    np.testing.assert_allclose(q_table(streamed, model), want, rtol=0, atol=1e-9)


def test_two_state_issue_example_with_ridge_1e3():
    # the reported setting: ridge 1e-3 biases z by a factor 1/(1 + 1e-3), i.e. nu by
    # lam * log(1.001) = 1e-6 at lam = 1e-3; the answer is 1.5, not the clip 3
    model = two_state_model()
    data = _table_dataset(model, [(0, 0), (1, 1)])
    agent = _fit_quietly(R2PVI(TableEnv(model), divergence="kl", lam=1e-3, ridge=1e-3,
                               beta=0.0, reward="known"), data)
    q0 = agent.q_values_from_features(model.phi, 0)[1, 0]
    assert q0 == pytest.approx(1.5 + 2e-6, abs=1e-8)


@pytest.mark.parametrize("lam", [1e-3, 1e-4])
def test_one_hot_model_small_lam_equals_exact_dp(lam):
    # S = 4, d = 8, state 0 absorbing with value 0 at every step: every other factor's values
    # lie more than 745 lam above the step minimum.
    model = one_hot_model()
    env, data = TableEnv(model), exact_dataset(model)
    want = robust_value_iteration(model, divergence="kl", lam=lam).Q
    for kwargs in ({"reward": "known"}, {"reward": "estimated"}, {"variance_aware": True},
                   {"truncate_below": False}):
        agent = _fit_quietly(R2PVI(env, divergence="kl", lam=lam, ridge=TINY_RIDGE, beta=0.0,
                                   **kwargs), data)
        np.testing.assert_allclose(q_table(agent, model), want, rtol=0, atol=1e-9)


class _GeneralPathKL(RowEstimator):
    """R2PVI-KL through the general path (a test oracle): ``-lam log clip(Xi exp(-V / lam),
    exp(-cap / lam), 1)`` on the regression matrix, per row with its own shift."""

    def __init__(self, lam, cap):
        self.lam, self.cap = lam, cap

    def estimate(self, h, xi, values, in_regression):
        if values.size == 0:
            return kern.kl_from_sum(np.zeros(xi.shape[0]), 0.0, self.lam, self.cap, True, True)
        s, shifts, absum = ref.kl_regularized_rows(values, xi, self.lam)
        assert kern.worst_cancellation(s, absum)[0] < 1e8
        return kern.kl_from_row_sums(s, shifts, self.lam, self.cap, True)


@pytest.mark.parametrize("lam", [1e-4, 1e-3, 0.05])
def test_general_path_and_streaming_agree_with_the_moment_path(lam):
    model = one_hot_model()
    env, data = TableEnv(model), exact_dataset(model)
    want = robust_value_iteration(model, divergence="kl", lam=lam).Q
    moment = _fit_quietly(R2PVI(env, divergence="kl", lam=lam, ridge=TINY_RIDGE, beta=0.0), data)
    general = R2PVI(env, divergence="kl", lam=lam, ridge=TINY_RIDGE, beta=0.0,
                    estimator=_GeneralPathKL(lam, model.horizon))
    _fit_quietly(general, data)
    K = data.valid.shape[0]
    names = ("observations", "actions", "rewards", "next_observations", "features",
             "next_action_features", "valid", "terminal")
    chunks = [OfflineDataset(**{k: getattr(data, k)[a:a + 5] for k in names})
              for a in range(0, K, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamed = R2PVI(env, divergence="kl", lam=lam, ridge=TINY_RIDGE,
                         beta=0.0).fit_stream(chunks)
    for agent in (moment, general, streamed):
        np.testing.assert_allclose(q_table(agent, model), want, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# mixed-sign regression weights: the cancellation guard


def _overlapping_fit(lam: float):
    model = overlapping_model()
    data = _table_dataset(model, [(0, 0), (1, 1), (2, 0), (2, 1)])
    want = robust_value_iteration(model, divergence="kl", lam=lam).Q
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = R2PVI(TableEnv(model), divergence="kl", lam=lam, ridge=TINY_RIDGE,
                      beta=0.0).fit(data)
    err = float(np.abs(q_table(agent, model) - want).max())
    return err, [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("lam", [1.0, 0.2, 0.1])
def test_mixed_sign_weights_in_range_are_accurate_and_quiet(lam):
    err, caught = _overlapping_fit(lam)
    assert not caught
    assert err < 1e-8


@pytest.mark.parametrize("lam", [0.03, 0.01])
def test_mixed_sign_weights_beyond_range_warn_naming_lam(lam):
    # gap / lam = 1 / lam >= 33: the sum that should be exp(-1 / lam) is lost in rounding (the
    # estimate is off by 0.13 at lam = 0.03 and 0.71 at 0.01); the fit says so.
    err, caught = _overlapping_fit(lam)
    assert err > 0.1  # the published estimator's float64 limit, not hidden
    assert caught
    msg = str(caught[0].message)
    assert f"lam={lam:g}" in msg and "cancels by a factor" in msg


# --------------------------------------------------------------------------------------------
# kernels vs NumPy twins, and the adversarial inputs


@st.composite
def _kl_rows_problem(draw):
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 4))
    v = np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n)))
    xi = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(-1.5, 1.5)),
                                min_size=n * d, max_size=n * d))).reshape(d, n)
    lam = draw(st.sampled_from([1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0]))
    return np.ascontiguousarray(v), np.ascontiguousarray(xi), lam


@settings(max_examples=60, deadline=None)
@given(_kl_rows_problem(), st.booleans())
def test_kl_row_kernels_match_reference(problem, truncate):
    v, xi, lam = problem
    s, shifts, _ = ref.kl_regularized_rows(v, xi, lam)
    np.testing.assert_allclose(kern.kl_from_row_sums(s, shifts, lam, 7.0, truncate),
                               ref.kl_from_row_sums(s, shifts, lam, 7.0, truncate),
                               rtol=1e-14, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 8), st.integers(0, 8), st.integers(1, 5), st.booleans(),
       st.sampled_from([1e-4, 1e-2, 1.0]), st.integers(0, 2**31 - 1))
def test_column_shifted_sums_match_reference(n1, n2, d, weighted, lam, seed):
    # two chunks: the streaming rescaling of the kernel against two plain passes per chunk
    rng = np.random.default_rng(seed)
    got_min, got_sum = np.full(d, np.inf), np.zeros(d)
    want_min, want_sum = np.full(d, np.inf), np.zeros(d)
    for n in (n1, n2):
        feats = np.where(rng.random((n, d)) < 0.5, rng.random((n, d)), 0.0)
        values = rng.choice([0.0, 0.01, 0.5, 1.5, 3.0], n) + rng.uniform(0.0, 1e-3, n)
        weights = rng.uniform(0.1, 2.0, n) if weighted else np.zeros(0)
        kern.column_shifted_sums_into(got_min, got_sum, feats, values, weights, weighted, lam)
        ref.column_shifted_sums_into(want_min, want_sum, feats, values, weights, weighted, lam)
    np.testing.assert_array_equal(got_min, want_min)
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 8), st.integers(1, 5), st.booleans(),
       st.sampled_from([1e-4, 1e-2, 1.0]), st.integers(0, 2**31 - 1))
def test_column_minima_and_far_sums_match_reference(n, d, weighted, lam, seed):
    rng = np.random.default_rng(seed)
    feats = np.where(rng.random((n, d)) < 0.5, rng.random((n, d)), 0.0)
    values = rng.uniform(0.0, 3.0, n)
    weights = rng.uniform(0.1, 2.0, n) if weighted else np.zeros(0)
    got_min = np.full(d, np.inf)
    want_min = np.full(d, np.inf)
    kern.column_value_minima(feats, values, got_min)
    ref.column_value_minima(feats, values, want_min)
    np.testing.assert_array_equal(got_min, want_min)
    width = float(rng.choice([0.0, 1.0, 10.0]))
    got_scan, want_scan = np.full(d, np.inf), np.full(d, np.inf)
    assert (kern.value_range_column_minima(feats, values, got_scan, width)
            == ref.value_range_column_minima(feats, values, want_scan, width))
    np.testing.assert_array_equal(got_scan, want_scan)
    shifts = np.where(rng.random(d) < 0.7, got_min, np.inf)
    cutoff = float(rng.uniform(-1.0, 2.0))
    got = np.zeros(d)
    want = np.zeros(d)
    kern.shifted_column_moment_into(got, feats, values, weights, weighted, shifts, lam, cutoff)
    ref.shifted_column_moment_into(want, feats, values, weights, weighted, shifts, lam, cutoff)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.sampled_from([1e-4, 1e-2, 1.0]), st.integers(0, 2**31 - 1))
def test_kl_factor_sums_match_reference(d, lam, seed):
    rng = np.random.default_rng(seed)
    # block structure with exact zeros in Lambda^{-1}, column minima spread far apart
    lambda_inv = rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.5)
    lambda_inv = lambda_inv + lambda_inv.T + np.diag(rng.uniform(1.0, 2.0, d))
    columns = np.where(rng.random(d) < 0.8, rng.choice([0.0, 0.5, 1.5, 3.0], d), np.inf)
    moment = rng.random(d)
    far_moment = rng.uniform(0.5, 1.5, d)
    z = lambda_inv @ moment
    v_min = 0.0
    got = kern.kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam, 300.0)
    want = ref.kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam, 300.0)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)
    s, _, absum = got
    assert kern.worst_cancellation(s, absum) == pytest.approx(ref.worst_cancellation(s, absum))
    args = (lambda_inv, moment, z, columns, far_moment, v_min, lam, 300.0, 3.0, True)
    nu, worst, at = kern.kl_factor_estimate(*args)
    nu_ref, worst_ref, at_ref = ref.kl_factor_estimate(*args)
    np.testing.assert_allclose(nu, nu_ref, rtol=1e-13, atol=1e-15)
    assert (worst, at) == pytest.approx((worst_ref, at_ref))


def test_kl_rows_adversarial_far_apart_factors():
    # one-hot rows whose values are 1.5 / 1e-3 = 1500 lam apart: every row is shifted by its
    # own minimum, so both sums are exactly 1 and nu is the value itself
    v = np.array([0.0, 1.5, 1.5, 3.0])
    xi = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])
    for mod in (kern, ref):
        s, shifts, absum = ref.kl_regularized_rows(v, xi, 1e-3)
        np.testing.assert_array_equal(s, [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(shifts, [0.0, 1.5, 3.0])
        np.testing.assert_array_equal(absum, s)
        np.testing.assert_array_equal(mod.kl_from_row_sums(s, shifts, 1e-3, 3.0, True),
                                      [0.0, 1.5, 3.0])
    # columns 1500 lam above the step minimum: the shifted column sums stay O(1)
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.5]])
    values = np.array([0.0, 1.5, 2.0])
    for mod in (kern, ref):
        mins, out = np.full(2, np.inf), np.zeros(2)
        # the later, lower value rescales the column's earlier sum (2.0 -> relative to 1.5)
        mod.column_shifted_sums_into(mins, out, feats[2:], values[2:], np.zeros(0), False, 1e-3)
        mod.column_shifted_sums_into(mins, out, feats[:2], values[:2], np.zeros(0), False, 1e-3)
        np.testing.assert_array_equal(mins, [0.0, 1.5])
        assert out[0] == 1.0
        assert out[1] == pytest.approx(1.0 + 0.5 * np.exp(-500.0), rel=1e-15)
        # the factor sums: each one-hot factor keeps its own shift, the sums stay 1
        s, shifts, absum = mod.kl_factor_sums(np.eye(2), np.array([1.0, 0.0]),
                                              np.array([1.0, 0.0]), mins, out, 0.0, 1e-3, 300.0)
        np.testing.assert_allclose(s, [1.0, out[1]], rtol=1e-15)
        np.testing.assert_array_equal(shifts, [0.0, 1.5])
        assert mod.worst_cancellation(s, absum) == (1.0, 0)
