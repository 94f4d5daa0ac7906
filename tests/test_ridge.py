import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl import ridge
from robustrl._kernels import ridge as kernels
from robustrl.reference import ridge as reference

SETTINGS = settings(max_examples=40, deadline=None)


def _problem(seed, n_samples, dim, with_zero_weights=True):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_samples, dim))
    weights = rng.uniform(0.1, 2.0, size=n_samples)
    if with_zero_weights:
        weights[rng.random(n_samples) < 0.2] = 0.0
    return rng, features, weights


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_samples=st.integers(1, 40),
    dim=st.integers(1, 7),
    ridge_value=st.floats(0.05, 10.0),
)
def test_gram_kernels_match_reference(seed, n_samples, dim, ridge_value):
    _, features, weights = _problem(seed, n_samples, dim)
    gram = kernels.gram_matrix(features, ridge_value, weights)
    expected = reference.gram_matrix(features, ridge_value, weights)
    np.testing.assert_allclose(gram, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert np.array_equal(gram, gram.T)
    inverse = ridge.gram_inverse(features, ridge_value, weights)
    expected_inv = reference.gram_inverse(features, ridge_value, weights)
    np.testing.assert_allclose(inverse, expected_inv, rtol=1e-9, atol=1e-12 / ridge_value)
    assert np.array_equal(inverse, inverse.T)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_samples=st.integers(1, 40),
    dim=st.integers(1, 7),
    n_targets=st.integers(1, 4),
    ridge_value=st.floats(0.05, 10.0),
)
def test_ridge_solve_matches_reference_and_lstsq_on_augmented_system(
    seed, n_samples, dim, n_targets, ridge_value
):
    rng, features, weights = _problem(seed, n_samples, dim)
    targets = rng.standard_normal((n_samples, n_targets))
    solution = ridge.ridge_solve(features, targets, ridge_value, weights)
    assert solution.shape == (dim, n_targets)
    np.testing.assert_allclose(
        solution, reference.ridge_solve(features, targets, ridge_value, weights),
        rtol=1e-9, atol=1e-11,
    )
    # Ridge = least squares on the augmented system
    # [sqrt(W) Phi; sqrt(ridge) I] w = [sqrt(W) y; 0].
    root_w = np.sqrt(weights)[:, None]
    design = np.vstack([root_w * features, np.sqrt(ridge_value) * np.eye(dim)])
    rhs = np.vstack([root_w * targets, np.zeros((dim, n_targets))])
    expected = np.linalg.lstsq(design, rhs, rcond=None)[0]
    np.testing.assert_allclose(solution, expected, rtol=1e-9, atol=1e-11)
    # One-column targets give a vector, equal to the first column of the batched solve.
    single = ridge.ridge_solve(features, targets[:, 0], ridge_value, weights)
    assert single.shape == (dim,)
    np.testing.assert_allclose(single, solution[:, 0], rtol=1e-12, atol=1e-14)


def test_unweighted_ridge_solve_is_the_normal_equations():
    rng = np.random.default_rng(3)
    features = rng.standard_normal((50, 4))
    targets = rng.standard_normal(50)
    expected = np.linalg.solve(features.T @ features + 0.5 * np.eye(4), features.T @ targets)
    np.testing.assert_allclose(ridge.ridge_solve(features, targets, 0.5), expected, rtol=1e-11)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 7), weight=st.floats(0.0, 5.0))
def test_sherman_morrison_kernel_matches_reference(seed, dim, weight):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((dim + 2, dim))
    lambda_inv = np.linalg.inv(base.T @ base + np.eye(dim))
    lambda_inv = 0.5 * (lambda_inv + lambda_inv.T)
    x = rng.standard_normal(dim)
    expected = lambda_inv.copy()
    reference.sherman_morrison_update(expected, x, weight)
    ridge.sherman_morrison_update(lambda_inv, x, weight)
    np.testing.assert_allclose(lambda_inv, expected, rtol=1e-10, atol=1e-13)


def test_sherman_morrison_after_many_updates_equals_direct_inverse():
    rng = np.random.default_rng(11)
    dim, n_updates, ridge_value = 8, 2000, 0.7
    features = rng.standard_normal((n_updates, dim))
    weights = rng.uniform(0.1, 2.0, size=n_updates)
    lambda_inv = np.eye(dim) / ridge_value
    for x, w in zip(features, weights, strict=True):
        ridge.sherman_morrison_update(lambda_inv, x, w)
    direct = np.linalg.inv(ridge_value * np.eye(dim) + (features * weights[:, None]).T @ features)
    rel = np.linalg.norm(lambda_inv - direct) / np.linalg.norm(direct)
    assert rel < 1e-8


def test_online_ridge_matches_batch_regression_with_several_targets():
    rng = np.random.default_rng(5)
    dim, n, ridge_value = 5, 300, 1.3
    features = rng.standard_normal((n, dim))
    targets = rng.standard_normal((n, 3))
    weights = rng.uniform(0.5, 1.5, size=n)
    one_by_one = ridge.OnlineRidge(dim, ridge_value, n_targets=3)
    for x, y, w in zip(features, targets, weights, strict=True):
        one_by_one.update(x, y, weight=w)
    batched = ridge.OnlineRidge(dim, ridge_value, n_targets=3)
    batched.update_batch(features[:100], targets[:100], weights[:100])
    batched.update_batch(features[100:], targets[100:], weights[100:])
    expected = ridge.ridge_solve(features, targets, ridge_value, weights)
    for model in (one_by_one, batched):
        assert model.n_updates == n
        np.testing.assert_allclose(model.solve(), expected, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            model.gram, ridge.gram_matrix(features, ridge_value, weights), rtol=1e-12
        )
        np.testing.assert_allclose(
            model.lambda_inv, ridge.gram_inverse(features, ridge_value, weights),
            rtol=1e-8, atol=1e-12,
        )


def test_online_ridge_scalar_targets_unlabelled_samples_and_refresh():
    rng = np.random.default_rng(6)
    dim = 4
    labelled = rng.standard_normal((30, dim))
    y = rng.standard_normal(30)
    unlabelled = rng.standard_normal((10, dim))
    model = ridge.OnlineRidge(dim, 0.5)
    model.update_batch(labelled, y)
    model.update_batch(unlabelled)
    model.update(unlabelled[0])
    assert model.n_updates == 41
    all_features = np.vstack([labelled, unlabelled, unlabelled[:1]])
    all_targets = np.concatenate([y, np.zeros(11)])
    solution = model.solve()
    assert solution.shape == (dim,)
    np.testing.assert_allclose(
        solution, ridge.ridge_solve(all_features, all_targets, 0.5), rtol=1e-9, atol=1e-12
    )
    # refresh() replaces the Sherman-Morrison inverse by the exact Cholesky inverse of the Gram.
    model.refresh()
    np.testing.assert_array_equal(model.lambda_inv, kernels.spd_inverse(model.gram.copy()))
    with pytest.raises(ValueError):
        model.gram[0, 0] = 1.0  # read-only view


def test_bad_inputs_raise_value_errors_naming_the_argument():
    features = np.ones((3, 2))
    with pytest.raises(ValueError, match="ridge"):
        ridge.gram_matrix(features, 0.0)
    with pytest.raises(ValueError, match="ridge"):
        ridge.ridge_solve(features, np.ones(3), -1.0)
    with pytest.raises(ValueError, match="features must not be empty"):
        ridge.gram_inverse(np.ones((0, 2)), 1.0)
    with pytest.raises(ValueError, match="weights"):
        ridge.gram_matrix(features, 1.0, weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        ridge.gram_matrix(features, 1.0, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="targets must be finite"):
        ridge.ridge_solve(features, [1.0, np.nan, 0.0], 1.0)
    with pytest.raises(ValueError, match="targets must have 3 rows"):
        ridge.ridge_solve(features, np.ones(4), 1.0)
    lambda_inv = np.eye(2)
    with pytest.raises(ValueError, match="x must have shape"):
        ridge.sherman_morrison_update(lambda_inv, np.ones(3))
    with pytest.raises(ValueError, match="weight"):
        ridge.sherman_morrison_update(lambda_inv, np.ones(2), weight=-0.5)
    with pytest.raises(ValueError, match="lambda_inv must be a writeable"):
        ridge.sherman_morrison_update(np.eye(2, dtype=np.float32), np.ones(2))
    with pytest.raises(ValueError, match="lambda_inv must be a writeable"):
        ridge.sherman_morrison_update(np.eye(4)[::2, ::2], np.ones(2))
    with pytest.raises(ValueError, match="dim"):
        ridge.OnlineRidge(0, 1.0)
    with pytest.raises(ValueError, match="ridge"):
        ridge.OnlineRidge(2, 0.0)
    model = ridge.OnlineRidge(2, 1.0, n_targets=2)
    with pytest.raises(ValueError, match="x must have shape"):
        model.update(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="y must have shape"):
        model.update(np.ones(2), 1.0)
    with pytest.raises(ValueError, match="Y must have shape"):
        model.update_batch(np.ones((4, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="lambda_inv must be positive definite"):
        ridge.check_lambda_inv(-np.eye(2), 2)
    with pytest.raises(ValueError, match="lambda_inv must be symmetric"):
        ridge.check_lambda_inv([[1.0, 0.5], [0.0, 1.0]], 2)
    with pytest.raises(ValueError, match="feature dimension 3"):
        ridge.check_lambda_inv(np.eye(2), 3)
