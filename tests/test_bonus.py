import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl import bonus
from robustrl.reference import bonus as reference

SETTINGS = settings(max_examples=40, deadline=None)


def _spd_inverse(rng, dim):
    base = rng.standard_normal((dim + 3, dim))
    inv = np.linalg.inv(base.T @ base + 0.3 * np.eye(dim))
    return 0.5 * (inv + inv.T)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    leading=st.lists(st.integers(1, 9), min_size=0, max_size=3),
    dim=st.integers(1, 9),
)
def test_bonus_kernels_match_reference(seed, leading, dim):
    rng = np.random.default_rng(seed)
    # Signed features exercise the |phi_i| of the paper form; rows of zeros the sqrt at 0.
    features = rng.standard_normal((*leading, dim))
    features.reshape(-1, dim)[::5] = 0.0
    lambda_inv = _spd_inverse(rng, dim)
    for name, func in reference.BONUSES.items():
        got = bonus.bonus(features, lambda_inv, name)
        assert got.shape == tuple(leading)
        np.testing.assert_allclose(got, func(features, lambda_inv), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        bonus.elliptical_bonus(features, lambda_inv),
        reference.elliptical_bonus(features, lambda_inv), rtol=1e-12, atol=1e-14,
    )
    np.testing.assert_allclose(
        bonus.d_rectangular_bonus(features, lambda_inv, form="code_l2"),
        reference.d_rectangular_bonus_l2(features, lambda_inv), rtol=1e-12, atol=1e-14,
    )


def test_bonus_closed_forms():
    rng = np.random.default_rng(2)
    dim = 5
    phi = rng.dirichlet(np.ones(dim), size=(4, 3))
    # Lambda^{-1} = c I: elliptical = code form = sqrt(c) ||phi||_2;
    # paper form = sqrt(c) ||phi||_1.
    c = 0.36
    np.testing.assert_allclose(
        bonus.elliptical_bonus(phi, c * np.eye(dim)), 0.6 * np.linalg.norm(phi, axis=-1)
    )
    np.testing.assert_allclose(
        bonus.d_rectangular_bonus(phi, c * np.eye(dim), "code_l2"),
        0.6 * np.linalg.norm(phi, axis=-1),
    )
    np.testing.assert_allclose(
        bonus.d_rectangular_bonus(phi, c * np.eye(dim)), 0.6 * np.abs(phi).sum(axis=-1)
    )
    # One-hot features e_i: all three bonuses are sqrt([Lambda^{-1}]_ii).
    lambda_inv = _spd_inverse(rng, dim)
    one_hot = np.eye(dim)
    for name in ("elliptical", "d_rectangular_l1", "d_rectangular_l2"):
        np.testing.assert_allclose(
            bonus.bonus(one_hot, lambda_inv, name), np.sqrt(np.diag(lambda_inv)), rtol=1e-14
        )
    # On the simplex the authors' l2 form never exceeds the paper's l1 form (arXiv:2411.18612,
    # docs/algorithms/r2pvi.md).
    general = _spd_inverse(rng, dim)
    l1 = bonus.d_rectangular_bonus(phi, general, "paper_l1")
    l2 = bonus.d_rectangular_bonus(phi, general, "code_l2")
    assert np.all(l2 <= l1 + 1e-15) and np.any(l2 < l1 - 1e-3)
    # A single feature vector gives a 0-d result; "none" gives zeros of the batch shape.
    assert bonus.elliptical_bonus(phi[0, 0], general).shape == ()
    np.testing.assert_array_equal(bonus.bonus(phi, None, "none"), np.zeros((4, 3)))


def test_bad_inputs_raise_value_errors_naming_the_argument():
    phi = np.ones((4, 3)) / 3
    with pytest.raises(ValueError, match="lambda_inv must have shape \\(3, 3\\)"):
        bonus.elliptical_bonus(phi, np.eye(2))
    with pytest.raises(ValueError, match="lambda_inv must be symmetric"):
        bonus.elliptical_bonus(phi, np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="lambda_inv must be positive definite"):
        bonus.d_rectangular_bonus(phi, np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="features must be finite"):
        bonus.elliptical_bonus(np.full((2, 3), np.nan), np.eye(3))
    with pytest.raises(ValueError, match="features must not be empty"):
        bonus.elliptical_bonus(np.ones((0, 3)), np.eye(3))
    with pytest.raises(ValueError, match="form must be"):
        bonus.d_rectangular_bonus(phi, np.eye(3), form="l3")
    with pytest.raises(ValueError, match="bonus must be one of"):
        bonus.bonus(phi, np.eye(3), "hoeffding")
    assert bonus.check_bonus_name("paper_l1") == "d_rectangular_l1"
    assert bonus.check_bonus_name("code_l2") == "d_rectangular_l2"
