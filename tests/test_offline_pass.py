"""The compiled backward pass (robustrl._kernels.offline_pass) against its NumPy twin, the
LAPACK/BLAS kernels against SciPy/NumPy (bit for bit), and the fit's tie check against
robustrl.agents.base.warn_if_q_ties_at_bounds."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from scipy.linalg.lapack import dpotrf, dpotri, dpotrs

from robustrl._kernels import lapack
from robustrl._kernels import offline_pass as kernel
from robustrl.agents import DRPVI, DRVI_L, PEVI, R2PVI
from robustrl.agents.base import warn_if_q_ties_at_bounds
from robustrl.bonus import BONUS_CODES
from robustrl.data import OfflineDataset, step_view
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv
from robustrl.reference import offline_pass as twin

ESTIMATORS = (kernel.REGRESSION, kernel.TV_REGULARIZED, kernel.KL_REGULARIZED,
              kernel.CHI2_REGULARIZED, kernel.TV_DUAL, kernel.KL_DUAL)


def _by_step(args):
    """The pass's first six arguments (tied_steps': four), built trajectory-major ``(K, H,
    ...)`` here, as the kernels take them: step-major, C-contiguous ``(H, K, ...)``."""
    n = 4 if len(args) == 4 else 6
    return (*(step_view(a) for a in args[:n]), *args[n:])


def _random_pass_inputs(rng, est):
    """A random trajectory-major dataset: trajectories that end early (some by termination),
    sparse or dense features, ties among the next-state values (features from a few
    prototypes) or none, known action values with NaNs, optional sample weights."""
    K, H, d, A = rng.integers(0, 14), rng.integers(1, 5), rng.integers(1, 6), rng.integers(1, 4)
    lengths = rng.integers(0, H + 1, size=K)
    valid = np.arange(H)[None, :] < lengths[:, None]
    terminal = np.zeros((K, H), dtype=bool)
    for k in range(K):
        if lengths[k] > 0 and rng.random() < 0.5:
            terminal[k, lengths[k] - 1] = True
    sparse = rng.random() < 0.5
    prototypes = rng.random((3, d)) * (rng.random((3, d)) < (0.4 if sparse else 1.0))
    few = rng.random() < 0.5

    def feats(shape):
        if few:
            return prototypes[rng.integers(0, 3, size=shape)]
        x = rng.random((*shape, d))
        return x * (rng.random((*shape, d)) < (0.3 if sparse else 1.0))

    features = feats((K, H)) * valid[..., None]
    next_features = feats((K, H, A))
    rewards = rng.random((K, H)) * valid
    known = np.where(rng.random((K, H, A)) < 0.3, rng.random((K, H, A)), np.nan)
    has_known = bool(rng.random() < 0.5)
    use_weights = bool(rng.random() < 0.3)
    sample_weights = rng.uniform(0.2, 2.0, size=(H, K)) if use_weights else np.zeros((1, 0))
    code = int(rng.choice(list(BONUS_CODES.values())))
    truncate = bool(rng.random() < 0.8)
    v_min_data = bool(rng.random() < 0.5)
    rho = rng.uniform(0.0, 0.5, size=(H, d)) * (rng.random((H, d)) < 0.8)
    return (features, rewards, next_features, valid, ~terminal,
            known if has_known else np.zeros((0, H, A)), has_known, sample_weights,
            use_weights, rng.random((H, d)), bool(rng.random() < 0.3), float(rng.uniform(0.1, 1)),
            float(-rng.uniform(0, 0.5)), code, 1.0, truncate, est, float(rng.uniform(0.05, 1)),
            0.0 if v_min_data else float(rng.uniform(0, 0.5)), v_min_data,
            float(H), rho, 1e-6, bool(rng.random() < 0.3), 600.0, truncate, True)


@pytest.mark.parametrize("est", ESTIMATORS)
def test_offline_pass_agrees_with_its_numpy_twin(est):
    rng = np.random.default_rng(100 + est)
    for _ in range(60):
        args = _random_pass_inputs(rng, est)
        got = kernel.offline_pass(*_by_step(args))
        want = twin.offline_pass(*_by_step(args))
        assert got[6] == want[6] == -1
        for a, b in zip(got[:4], want[:4], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def test_stable_argsort_is_numpys_stable_order():
    rng = np.random.default_rng(0)
    tiny = np.nextafter(0.5, 1.0)
    fixed = [np.zeros(0), np.array([1.0]), np.array([0.5, tiny, 0.5, tiny, 0.5]),
             np.array([3.0, 2.0, 1.0, 2.0, 3.0, 1.0]), np.full(7, 2.0)]
    for v in fixed + [rng.integers(0, 4, size=n).astype(float) for n in range(1, 70)] + \
            [rng.random(n) for n in (33, 64, 65, 129)]:
        np.testing.assert_array_equal(kernel.stable_argsort(v), twin.stable_argsort(v))


@pytest.mark.parametrize("n, d", [(3, 2), (7, 4), (300, 30), (2000, 64)])
def test_lapack_kernels_are_scipys_routines_bit_for_bit(n, d):
    rng = np.random.default_rng(n + d)
    x = rng.random((n, d))
    gram = 0.5 * np.eye(d)
    gram += x.T @ x
    got = 0.5 * np.eye(d)
    lapack.gram_add(x, got)
    np.testing.assert_array_equal(got, gram)
    lower, _ = dpotrf(gram, lower=1, clean=1)
    factor = np.empty((d, d))
    assert lapack.cholesky_into(gram, factor) == 0
    np.testing.assert_array_equal(np.triu(factor).T, lower)
    rhs = rng.normal(size=(d, 3))
    solved = np.ascontiguousarray(rhs.T)
    lapack.cho_solve_inplace(factor, solved)
    np.testing.assert_array_equal(solved.T, dpotrs(lower, rhs, lower=1)[0])
    inverse = np.empty((d, d))
    lapack.cho_inverse_into(factor, inverse)
    np.testing.assert_array_equal(np.tril(inverse), np.tril(dpotri(lower, lower=1)[0]))
    np.testing.assert_array_equal(inverse, inverse.T)
    # the twins
    twin_factor = np.empty((d, d))
    assert twin.cholesky_into(gram, twin_factor) == 0
    np.testing.assert_allclose(np.triu(twin_factor), np.triu(factor), rtol=1e-10, atol=1e-12)
    assert lapack.cholesky_into(-np.eye(d), factor) > 0


class _FreshStartPrice(gym.Wrapper):
    """A new start price at every reset: every trajectory starts in its own state."""

    def __init__(self, env, seed: int) -> None:
        super().__init__(env)
        self._seeds = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=int(self._seeds.integers(2**31 - 1)), options=options)


def _datasets():
    put = AmericanPutEnv(feature_dim=8, horizon=5)
    put.reset(seed=0)
    sim = SimulatedLinearMDPEnv()
    yield put, OfflineDataset.collect(put, 30, behaviour_policy=lambda obs: 0, seed=0)
    distinct = OfflineDataset.collect(_FreshStartPrice(put, 1), 30,
                                      behaviour_policy=lambda obs: 0, seed=0)
    assert np.unique(distinct.observations[:, 0, 0]).size == 30
    yield put, distinct
    yield sim, OfflineDataset.collect(sim, 20, seed=1)
    yield sim, OfflineDataset.collect(sim, 200, seed=2)


@pytest.mark.parametrize("make", [
    lambda env: PEVI(env, beta=1.0, ridge=0.1),
    lambda env: PEVI(env, beta=50.0, ridge=0.1),
    lambda env: R2PVI(env, divergence="tv", lam=0.1, beta=1.0),
    lambda env: DRPVI(env, rho=0.3, beta=5.0),
    lambda env: DRVI_L(env, rho=0.3, beta=0.0),
])
def test_fit_tie_check_equals_the_generic_one(make):
    for env, data in _datasets():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            agent = make(env).fit(data)
            want = warn_if_q_ties_at_bounds(agent, data)
            got = agent._warn_if_tied(data)
        assert got == want
        tied, _ = kernel.tied_steps(
            *_by_step((data.features, data.next_action_features, data.valid, ~data.terminal)),
            agent.weights_, agent.lambda_inv_, -agent.beta, agent._bonus_code(),
            agent.max_reward, agent.truncate_below, 256)
        tied_twin, _ = twin.tied_steps(
            *_by_step((data.features, data.next_action_features, data.valid, ~data.terminal)),
            agent.weights_, agent.lambda_inv_, -agent.beta, agent._bonus_code(),
            agent.max_reward, agent.truncate_below, 256)
        np.testing.assert_array_equal(tied, tied_twin)


def test_elliptical_rows_and_a_dense_wide_pass_agree_with_their_twins():
    """Dense features with d >= 16: the pass forms the elliptical bonus by BLAS."""
    rng = np.random.default_rng(5)
    K, H, d, A = 40, 3, 18, 2
    lam_inv = np.linalg.inv(np.eye(d) + rng.random((d, d)) @ rng.random((d, d)).T)
    nf = rng.random((K, A, d))
    rows = np.flatnonzero(rng.random(K) < 0.7)
    np.testing.assert_allclose(kernel.elliptical_rows(nf, rows, lam_inv),
                               twin.elliptical_rows(nf, rows, lam_inv), rtol=1e-12, atol=1e-14)
    valid = np.ones((K, H), dtype=bool)
    args = (rng.random((K, H, d)), rng.random((K, H)), rng.random((K, H, A, d)), valid, valid,
            np.zeros((0, H, A)), False, np.zeros((1, 0)), False, np.zeros((H, d)), False, 0.5,
            -0.3, BONUS_CODES["elliptical"], 1.0, True, kernel.REGRESSION, 1.0, 0.0, False,
            float(H), np.zeros((H, d)), 1e-6, False, 600.0, True, True)
    args = _by_step(args)
    for a, b in zip(kernel.offline_pass(*args)[:4], twin.offline_pass(*args)[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_regression_matrix_sparse_and_dense_agree_with_the_twin():
    rng = np.random.default_rng(9)
    d = 6
    gram = np.eye(d) + 0.1 * np.ones((d, d))
    factor, inverse = np.empty((d, d)), np.empty((d, d))
    assert lapack.cholesky_into(gram, factor) == 0
    lapack.cho_inverse_into(factor, inverse)
    for density in (0.1, 0.2, 0.5, 1.0):
        g = rng.random((40, d)) * (rng.random((40, d)) < density)
        want = twin.regression_matrix(g, factor, inverse)
        got = kernel._regression_matrix(g.copy(), factor, inverse)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("est", ESTIMATORS)
def test_offline_pass_with_tied_and_one_ulp_apart_values(est):
    """Next-state values fixed through known action values: ties, values one and two ulp
    apart, and a lone value; sparse features (the regression matrix over the nonzeros)."""
    H, d, A = 2, 5, 1
    half = 0.5
    values = np.array([half, np.nextafter(half, 1.0), half, 0.2, 0.2,
                       np.nextafter(np.nextafter(half, 1.0), 1.0), 0.9, 0.2])
    K = values.size
    features = np.zeros((K, H, d))
    for k in range(K):
        features[k, :, k % d] = 1.0
        features[k, :, (k + 2) % d] = 0.5
    known = np.full((K, H, A), np.nan)
    known[:, 0, 0] = values
    valid = np.ones((K, H), dtype=bool)
    rewards = np.linspace(0.0, 1.0, K)[:, None] * np.ones((1, H))
    for v_min_data in (True, False):
        args = (features, rewards, np.ones((K, H, A, d)), valid, valid, known, True,
                np.zeros((1, 0)), False, np.zeros((H, d)), False, 0.1, 0.0,
                BONUS_CODES["none"], 1.0, True, est, 0.3, 0.0, v_min_data, float(H),
                np.full((H, d), 0.2), 1e-6, False, 600.0, True, True)
        got, want = kernel.offline_pass(*_by_step(args)), twin.offline_pass(*_by_step(args))
        np.testing.assert_array_equal(got[3][0], values)  # the values went in unchanged
        for a, b in zip(got[:4], want[:4], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)


def test_tie_check_takes_each_state_at_its_own_bound():
    """Step 0's states tie at different bounds (every action 0 at some states, every action at
    the cap H at the others): a tie, as in warn_if_q_ties_at_bounds, which checks per state."""
    from test_offline_agents import TableEnv, exact_dataset, one_hot_model

    model = one_hot_model(horizon=3)
    env, data = TableEnv(model), exact_dataset(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = PEVI(env, beta=0.0, ridge=0.1).fit(data)
    start_states = {int(s) for s in data.observations[:, 0, 0]}
    assert len(start_states) > 1
    weights = agent.weights_.copy()
    weights[0] = -1.0  # every action 0 ...
    first = min(start_states)
    weights[0, 2 * first: 2 * first + 2] = 100.0  # ... but at the cap H at one start state
    agent.weights_ = weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = warn_if_q_ties_at_bounds(agent, data)
        got = agent._warn_if_tied(data)
    assert 0 in want
    assert got == want


def test_fit_threads_blas_only_from_the_configured_gram_size(monkeypatch):
    """``robustrl.ridge.PARALLEL_BLAS_MIN_FLOPS``: the in-memory fit runs BLAS single-threaded
    below it (by default always) and threaded from it on, with the same weights up to
    rounding."""
    import robustrl.agents._offline as offline_module
    from robustrl import ridge

    env = SimulatedLinearMDPEnv()
    data = OfflineDataset.collect(env, 50, seed=3)
    asked = []
    real = offline_module.blas_threads

    def spy(n):
        asked.append(n)
        return real(n)

    monkeypatch.setattr(offline_module, "blas_threads", spy)
    default = R2PVI(env, divergence="tv", lam=0.1, beta=1.0).fit(data).weights_
    assert asked == [1]
    d = env.feature_dim
    rows = int(data.valid.sum(axis=0).max())
    for threshold, want in ((rows * d * d + 1, 1), (rows * d * d, 1024), (0.0, 1024)):
        asked.clear()
        monkeypatch.setattr(ridge, "PARALLEL_BLAS_MIN_FLOPS", threshold)
        weights = R2PVI(env, divergence="tv", lam=0.1, beta=1.0).fit(data).weights_
        assert asked == [want], threshold
        np.testing.assert_allclose(weights, default, rtol=1e-12, atol=1e-12)


def test_a_cold_kernel_cache_is_announced_once_with_its_folder(tmp_path, monkeypatch, caplog):
    import logging
    from types import SimpleNamespace

    import robustrl._kernels as kernels_pkg

    def dispatcher(index):
        return SimpleNamespace(overloads={}, _cache=SimpleNamespace(
            _cache_file=SimpleNamespace(_index_path=str(index))))

    (tmp_path / "warm.nbi").write_text("")
    warm, cold = dispatcher(tmp_path / "warm.nbi"), dispatcher(tmp_path / "cold.nbi")
    monkeypatch.setattr(kernels_pkg, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="robustrl"):
        assert not kernels_pkg.announce_compile((warm,), "the PEVI fit")
        assert kernels_pkg.announce_compile((warm, cold), "the PEVI fit")
        assert not kernels_pkg.announce_compile((cold,), "the PEVI fit")  # once a process
    (record,) = caplog.records
    assert "the PEVI fit" in record.getMessage() and str(tmp_path) in record.getMessage()
    assert "10-20 s" in record.getMessage()
    assert "compiles them ahead of time instead" in record.getMessage()
    # a path that `robustrl compile-kernels` does not export must not promise that it does
    monkeypatch.setattr(kernels_pkg, "_announced", False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="robustrl"):
        assert kernels_pkg.announce_compile((cold,), "the PEVI fit", ahead_of_time=False)
    assert "does not cover this path" in caplog.records[0].getMessage()
    assert "ahead of time instead" not in caplog.records[0].getMessage()


def test_many_rows_with_only_the_maxima_kept_agree_with_the_twins():
    """Steps with thousands of samples, where clipped_q_rows keeps only each row's maximum (no
    ``(rows, A)`` scratch): the pass and next_state_values agree with their NumPy twins."""
    from robustrl._kernels import offline as koff
    from robustrl.reference import offline as roff

    rng = np.random.default_rng(21)
    K, H, d, A = 2348, 2, 4, 3
    nf = rng.random((K, A, d))
    w, inv = rng.normal(size=d), np.linalg.inv(np.eye(d) + 0.1 * np.ones((d, d)))
    nonterminal = rng.random(K) < 0.9
    got = koff.next_state_values(nf, w, inv, -0.3, BONUS_CODES["elliptical"], 2.0, True,
                                 np.zeros((0, 0)), False, nonterminal, np.zeros((0, 0)), False)
    want = roff.next_state_values(nf, w, inv, -0.3, "elliptical", 2.0, True, None, nonterminal)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    valid = np.ones((K, H), dtype=bool)
    terminal = np.zeros((K, H), dtype=bool)
    terminal[rng.random(K) < 0.1, 0] = True
    args = (rng.random((K, H, d)), rng.random((K, H)), rng.random((K, H, A, d)), valid,
            ~terminal, np.zeros((0, H, A)), False, np.zeros((1, 0)), False, np.zeros((H, d)),
            False, 0.5, -0.3, BONUS_CODES["elliptical"], 1.0, True, kernel.REGRESSION, 1.0, 0.0,
            False, float(H), np.zeros((H, d)), 1e-6, False, 600.0, True, True)
    args = _by_step(args)
    for a, b in zip(kernel.offline_pass(*args)[:4], twin.offline_pass(*args)[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("code", sorted(BONUS_CODES.values()))
@pytest.mark.parametrize("seed", range(4))
def test_clipped_q_on_two_nonzero_entries_equals_the_general_loops_to_the_bit(code, seed):
    """clipped_q_rows sums a feature vector with at most two nonzero entries over those alone.
    An inert third entry (zero weight, zero row and column of Lambda^-1) sends the same vector
    through the general loops, whose sums it changes by exact zeros only: the two Q tables are
    equal bit for bit, for every bonus (wrong indices or a dropped cross term would not be).
    Above _DENSE_Q_DIM, where the search for the nonzero entries runs for every bonus."""
    from robustrl._kernels import offline as offline_kernels

    rng = np.random.default_rng(seed)
    n, n_actions, d = 300, 3, offline_kernels._DENSE_Q_DIM + 1
    features = np.zeros((n, n_actions, d))
    for k in range(n):
        for a in range(n_actions):
            where = rng.choice(d, rng.integers(0, 3), replace=False)
            features[k, a, where] = rng.normal(size=where.size)
    m = rng.normal(size=(d, d))
    lambda_inv = m @ m.T / d + 0.1 * np.eye(d)
    weights = rng.normal(size=d)
    inert = np.concatenate([features, np.full((n, n_actions, 1), 0.5)], axis=2)
    lambda_inv_inert = np.zeros((d + 1, d + 1))
    lambda_inv_inert[:d, :d] = lambda_inv
    weights_inert = np.append(weights, 0.0)
    none = np.zeros((n, n_actions))
    args = (-0.3, code, 2.5, bool(seed % 2), none, False, none, False)
    fast = offline_kernels.clipped_q(features, weights, lambda_inv, *args)
    general = offline_kernels.clipped_q(inert, weights_inert, lambda_inv_inert, *args)
    assert np.array_equal(fast, general)
    assert np.count_nonzero(features, axis=2).max() == 2
