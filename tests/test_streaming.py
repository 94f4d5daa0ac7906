"""The streaming fit (chunks of the dataset, sums accumulated chunk by chunk) equals the
in-memory fit; the new backward-pass kernels agree with their NumPy twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl._kernels import offline as kern
from robustrl.agents import DRPVI, DRVI_L, PEVI, R2PVI
from robustrl.bonus import BONUS_CODES
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv
from robustrl.reference import offline as ref


def _chunks(data: OfflineDataset, sizes: list[int]) -> list[OfflineDataset]:
    out, start = [], 0
    for size in sizes:
        arrays = {k: getattr(data, k)[start:start + size] for k in (
            "observations", "actions", "rewards", "next_observations", "features",
            "next_action_features", "valid", "terminal")}
        out.append(OfflineDataset(**arrays))
        start += size
    assert start == data.n_trajectories
    return out


@pytest.fixture(scope="module")
def sim():
    env = SimulatedLinearMDPEnv()
    return env, OfflineDataset.collect(env, 90, seed=4)


@pytest.fixture(scope="module")
def put():
    env = AmericanPutEnv(horizon=8, feature_dim=10, reward_scale=0.01)
    env.reset(seed=2)
    return env, OfflineDataset.collect(env, 60, seed=2)  # uniform: early exercises, ragged


AGENTS = [
    lambda env: PEVI(env),
    lambda env: R2PVI(env, divergence="tv", lam=0.3),
    lambda env: R2PVI(env, divergence="tv", lam=0.3, v_min=0.0),
    lambda env: R2PVI(env, divergence="kl", lam=0.3),
    lambda env: R2PVI(env, divergence="chi2", lam=0.3),
    lambda env: DRPVI(env, rho=0.2),
    lambda env: DRVI_L(env, rho=0.2),
]


@pytest.mark.parametrize("make", AGENTS)
@pytest.mark.parametrize("problem", ["sim", "put"])
def test_streamed_fit_equals_in_memory_fit(make, problem, request):
    env, data = request.getfixturevalue(problem)
    full = make(env).fit(data)
    chunks = _chunks(data, [7, 30, 1, data.n_trajectories - 38])
    streamed = make(env).fit_stream(chunks)
    scale = max(1.0, float(np.abs(full.weights_).max()))
    np.testing.assert_allclose(streamed.weights_, full.weights_, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(streamed.lambda_inv_, full.lambda_inv_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(streamed.n_samples_, full.n_samples_)
    # a callable giving fresh iterators works too, and a smaller dataset gives other weights
    again = make(env).fit_stream(lambda: iter(chunks))
    np.testing.assert_allclose(again.weights_, streamed.weights_, rtol=0, atol=0)
    fewer = make(env).fit_stream(chunks[:2])
    assert np.abs(fewer.weights_ - full.weights_).max() > 1e-8


def test_fit_stream_rejects_one_shot_iterators_and_variance_aware(sim):
    env, data = sim
    with pytest.raises(ValueError, match="re-iterable"):
        R2PVI(env).fit_stream(iter([data]))
    with pytest.raises(ValueError, match="re-iterable"):
        R2PVI(env).fit_stream(42)
    with pytest.raises(ValueError, match="variance_aware"):
        R2PVI(env, variance_aware=True).fit_stream([data])
    with pytest.raises(ValueError, match="OfflineDataset"):
        R2PVI(env).fit_stream([data.features])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 5),
       st.sampled_from(["none", "elliptical", "d_rectangular_l1", "d_rectangular_l2"]),
       st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_next_state_values_kernel_matches_reference(n, n_actions, d, bonus, truncate, known_on,
                                                    seed):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, n_actions, d))
    w = rng.normal(size=d)
    m = rng.normal(size=(d, d))
    inv = m @ m.T + np.eye(d)
    nonterminal = rng.random(n) < 0.8
    known = np.where(rng.random((n, n_actions)) < 0.3, rng.normal(size=(n, n_actions)), np.nan)
    want = ref.next_state_values(feats, w, inv, -0.7, bonus, 2.5, truncate,
                                 known if known_on else None, nonterminal)
    code = BONUS_CODES[bonus]
    got = kern.next_state_values(feats, w, inv, -0.7, code, 2.5, truncate,
                                 known if known_on else np.zeros((0, 0)), known_on, nonterminal,
                                 np.zeros((0, 0)), False)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the agents' Q (q_values_from_features) is the same clipped Q, every action kept
    q = kern.clipped_q(feats, w, inv, -0.7, code, 2.5, truncate,
                       known if known_on else np.zeros((0, 0)), known_on, np.zeros((0, 0)),
                       False)
    np.testing.assert_allclose(q, ref.clipped_q(feats, w, inv, -0.7, bonus, 2.5, truncate,
                                                known if known_on else None),
                               rtol=1e-12, atol=1e-12)
    # strided input (a step slice of a trajectory-major array) reads the same numbers (the
    # contiguous layout may vectorise the sums in another order: rounding only)
    big = np.zeros((n, 3, n_actions, d))
    big[:, 1] = feats
    got_strided = kern.next_state_values(big[:, 1], w, inv, -0.7, code, 2.5, truncate,
                                         known if known_on else np.zeros((0, 0)), known_on,
                                         nonterminal, np.zeros((0, 0)), False)
    np.testing.assert_allclose(got_strided, got, rtol=1e-13, atol=1e-13)
    if bonus == "elliptical":  # precomputed bonus path
        pre = np.sqrt(np.einsum("kai,ij,kaj->ka", feats, inv, feats))
        got_pre = kern.next_state_values(feats, w, inv, -0.7, code, 2.5, truncate,
                                         known if known_on else np.zeros((0, 0)), known_on,
                                         nonterminal, pre, True)
        np.testing.assert_allclose(got_pre, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_group_rows_matches_reference(n, d, groups, seed):
    rng = np.random.default_rng(seed)
    inverse = rng.integers(groups, size=n).astype(np.int64)
    feats = rng.normal(size=(n, d))
    weights = np.where(rng.random(n) < 0.2, 0.0, rng.random(n))
    np.testing.assert_allclose(kern.group_rows(inverse, feats, weights, groups),
                               ref.group_rows(inverse, feats, weights, groups),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 25), st.integers(1, 6), st.floats(0.0, 1.0), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_sparse_gram_matches_reference_and_stays_symmetric(n, d, density, weighted, seed):
    from robustrl._kernels import ridge as ridge_kern
    from robustrl.reference import ridge as ridge_ref

    rng = np.random.default_rng(seed)
    feats = np.where(rng.random((n, d)) < density, rng.normal(size=(n, d)), 0.0)
    weights = rng.random(n) if weighted else np.zeros(0)
    got = np.eye(d)
    want = np.eye(d)
    ridge_kern.sparse_gram_into(got, feats, weights, weighted)
    ridge_ref.sparse_gram_into(want, feats, weights, weighted)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got, got.T)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 12), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_gather_features_matches_reference(n, d, seed):
    rng = np.random.default_rng(seed)
    big = np.where(rng.random((n, 3, d)) < 0.4, rng.normal(size=(n, 3, d)), 0.0)
    source = big[:, 1]  # a strided step slice
    out, inside = np.empty((n, d)), np.empty(n, dtype=bool)
    out_ref, inside_ref = np.empty((n, d)), np.empty(n, dtype=bool)
    nnz = kern.gather_features(source, out, inside)
    assert nnz == ref.gather_features(source, out_ref, inside_ref)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(inside, inside_ref)


def test_sparse_and_dense_gram_paths_give_the_same_fit(put, monkeypatch):
    """The put's hat features take the sparse Gram path; forcing the dense (BLAS) path gives
    the same fit up to rounding."""
    import robustrl.agents._offline as offline

    env, data = put
    sparse = R2PVI(env, divergence="kl", lam=0.3).fit(data)
    monkeypatch.setattr(offline, "_SPARSE_GRAM_DENSITY", 0.0)
    dense = R2PVI(env, divergence="kl", lam=0.3).fit(data)
    np.testing.assert_allclose(sparse.lambda_inv_, dense.lambda_inv_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sparse.weights_, dense.weights_, rtol=0, atol=1e-9)


def test_dataset_chunks_on_disk_stream_to_the_in_memory_fit(sim, tmp_path):
    from robustrl.data import DatasetChunks

    env, data = sim
    chunks = DatasetChunks.save(data, tmp_path / "parts", trajectories_per_chunk=25)
    assert len(chunks) == 4 and [c.n_trajectories for c in chunks] == [25, 25, 25, 15]
    full = R2PVI(env, divergence="chi2", lam=0.3).fit(data)
    streamed = R2PVI(env, divergence="chi2", lam=0.3).fit_stream(chunks)
    np.testing.assert_allclose(streamed.weights_, full.weights_, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="do not exist"):
        DatasetChunks([tmp_path / "nope.npz"])
    with pytest.raises(ValueError, match="at least one"):
        DatasetChunks([])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 3), st.integers(1, 6), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_next_state_values_on_sparse_features_matches_reference(n, n_actions, d, truncate,
                                                                seed):
    """The elliptical bonus skips zero entries (hat / one-hot features): same values."""
    rng = np.random.default_rng(seed)
    feats = np.where(rng.random((n, n_actions, d)) < 0.3,
                     rng.normal(size=(n, n_actions, d)), 0.0)
    w = rng.normal(size=d)
    m = rng.normal(size=(d, d))
    inv = m @ m.T + np.eye(d)
    nonterminal = rng.random(n) < 0.8
    for bonus in ("elliptical", "d_rectangular_l1", "d_rectangular_l2"):
        want = ref.next_state_values(feats, w, inv, -0.7, bonus, 2.5, truncate, None,
                                     nonterminal)
        got = kern.next_state_values(feats, w, inv, -0.7, BONUS_CODES[bonus], 2.5, truncate,
                                     np.zeros((0, 0)), False, nonterminal, np.zeros((0, 0)),
                                     False)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 20), st.integers(1, 6), st.booleans(), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_moment_into_matches_reference(n, d, has_target, weighted, seed):
    rng = np.random.default_rng(seed)
    big = np.where(rng.random((n, 3, d)) < 0.5, rng.normal(size=(n, 3, d)), 0.0)
    feats = big[:, 1]  # strided, as a step slice
    rewards, target = rng.normal(size=n), rng.normal(size=n)
    weights = rng.random(n) if weighted else np.zeros(0)
    start = rng.normal(size=(d, 2))
    got, want = start.copy(), start.copy()
    kern.moment_into(got, feats, rewards, target if has_target else np.zeros(0), has_target,
                     weights, weighted)
    ref.moment_into(want, feats, rewards, target, has_target, weights, weighted)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 12), st.integers(0, 2**31 - 1))
def test_value_minima_match_reference(n, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    inside = rng.random(n) < 0.5
    assert kern.value_minima(values, inside) == ref.value_minima(values, inside)


@pytest.mark.parametrize("make", [
    lambda env: R2PVI(env, divergence="tv", lam=0.2),
    lambda env: R2PVI(env, divergence="kl", lam=0.3),
    lambda env: R2PVI(env, divergence="chi2", lam=0.3),
    lambda env: DRPVI(env, rho=0.1),
    lambda env: PEVI(env),
])
def test_fit_equals_the_pass_over_all_steps_gathered_up_front(put, sim, make):
    """``fit`` gathers each step into one reused buffer when the pass reaches it; the pass over
    the steps gathered up front (``_step_arrays``, as the variance-aware fit does) is the same
    up to rounding, with and without trajectories that end early."""
    for env, data in (put, sim):
        agent = make(env)
        fitted = agent.fit(data)
        steps = agent._step_arrays(data)
        result = agent._backward_pass(steps, None, False)
        np.testing.assert_allclose(fitted.weights_, result.weights, rtol=0, atol=1e-12)
        np.testing.assert_allclose(fitted.lambda_inv_, result.lambda_inv, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(fitted.n_samples_, result.n_samples)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 200), st.integers(1, 4), st.sampled_from([1, 2, 3, 5, 6, 32, 33, 80]),
       st.integers(0, 2**31 - 1))
def test_group_by_value_with_few_and_many_distinct_values(n, d, levels, seed):
    """Up to 32 distinct values are grouped without a sort, more by the sort: both give the
    reference's groups, and the scan sums each group in the sort's (row) order exactly."""
    from robustrl._kernels.offline import _FEW_VALUES

    rng = np.random.default_rng(seed)
    values = rng.integers(levels, size=n).astype(float) * 0.25 - 3.0
    feats = rng.normal(size=(n, d))
    weights = np.where(rng.random(n) < 0.2, 0.0, rng.random(n))
    inside = rng.random(n) < 0.7
    u, g, ins = kern.group_by_value(values, feats, weights, inside)
    u_ref, g_ref, ins_ref = ref.group_by_value(values, feats, weights, inside)
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ins, ins_ref)
    if np.unique(values).size <= _FEW_VALUES:
        order = np.argsort(values, kind="mergesort")  # the sort path's summation order
        want = np.zeros_like(g)
        for k in order:
            want[np.searchsorted(u, values[k])] += weights[k] * feats[k]
        np.testing.assert_array_equal(g, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 20), st.integers(1, 6), st.booleans(), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_sparse_gram_moment_into_matches_reference_and_the_two_kernels(n, d, has_target,
                                                                       weighted, seed):
    from robustrl._kernels import ridge as ridge_kern

    rng = np.random.default_rng(seed)
    big = np.where(rng.random((n, 3, d)) < 0.3, rng.normal(size=(n, 3, d)), 0.0)
    feats = big[:, 1]
    rewards, target = rng.normal(size=n), rng.normal(size=n)
    target_arg = target if has_target else np.zeros(0)
    weights = rng.random(n) if weighted else np.zeros(0)
    gram, moment = np.eye(d), rng.normal(size=(d, 2))
    got_g, got_m = gram.copy(), moment.copy()
    kern.sparse_gram_moment_into(got_g, got_m, feats, rewards, target_arg, has_target,
                                 weights, weighted)
    want_g, want_m = gram.copy(), moment.copy()
    ref.sparse_gram_moment_into(want_g, want_m, feats, rewards, target, has_target, weights,
                                weighted)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got_g, got_g.T)
    # the same sums in the same order as the two separate kernels: identical numbers
    sep_g, sep_m = gram.copy(), moment.copy()
    ridge_kern.sparse_gram_into(sep_g, feats, weights, weighted)
    kern.moment_into(sep_m, feats, rewards, target_arg, has_target, weights, weighted)
    np.testing.assert_array_equal(got_g, sep_g)
    np.testing.assert_array_equal(got_m, sep_m)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.floats(-3.0, 3.0), st.floats(0.01, 5.0), st.booleans(),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_kl_from_sum_matches_reference(d, shift, lam, empty, truncate, seed):
    rng = np.random.default_rng(seed)
    s = np.where(rng.random(d) < 0.3, -rng.random(d), rng.random(d) * 3.0)
    s[rng.random(d) < 0.1] = 0.0
    got = kern.kl_from_sum(s, shift, lam, 7.0, empty, truncate)
    want = ref.kl_from_sum(s, shift, lam, 7.0, empty, truncate)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 8), st.integers(1, 3), st.integers(1, 5),
       st.sampled_from(["none", "elliptical", "d_rectangular_l1"]), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_next_state_values_minima_matches_reference(n, n_actions, d, bonus, known_on, seed):
    rng = np.random.default_rng(seed)
    feats = np.where(rng.random((n, n_actions, d)) < 0.5,
                     rng.normal(size=(n, n_actions, d)), 0.0)
    w = rng.normal(size=d)
    m = rng.normal(size=(d, d))
    inv = m @ m.T + np.eye(d)
    nonterminal = rng.random(n) < 0.8
    inside = rng.random(n) < 0.6
    known = np.where(rng.random((n, n_actions)) < 0.3, rng.normal(size=(n, n_actions)), np.nan)
    want = ref.next_state_values_minima(feats, w, inv, -0.7, bonus, 2.5, True,
                                        known if known_on else None, nonterminal, inside)
    got = kern.next_state_values_minima(feats, w, inv, -0.7, BONUS_CODES[bonus], 2.5, True,
                                        known if known_on else np.zeros((0, 0)), known_on,
                                        nonterminal, np.zeros((0, 0)), False, inside)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-12, atol=1e-12)
