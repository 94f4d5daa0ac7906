"""Robust inner problems (robustrl.divergences): kernels vs NumPy twins, primal vs dual, limits,
hand-worked two-state cases and argument validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize
from scipy.special import xlogy

from robustrl import divergences as dv
from robustrl._kernels import divergence as kern
from robustrl.reference import divergence as ref

DIVS = ("tv", "kl", "chi2")
HYP = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------
@st.composite
def value_and_distribution(draw, max_states: int = 7, rows: int = 1):
    """Values in [0, 10] (ties likely) and `rows` distributions over them, zeros included."""
    n = draw(st.integers(2, max_states))
    grid = st.one_of(st.floats(0.0, 10.0), st.integers(0, 10).map(float))
    v = np.array(draw(st.lists(grid, min_size=n, max_size=n)))
    ps = []
    for _ in range(rows):
        raw = np.array(
            draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=n, max_size=n))
        )
        if raw.sum() == 0.0:
            raw[draw(st.integers(0, n - 1))] = 1.0
        ps.append(raw / raw.sum())
    return v, np.array(ps)


@st.composite
def values_and_signed_weights(draw):
    n = draw(st.integers(1, 9))
    grid = st.one_of(st.floats(0.0, 10.0), st.integers(0, 10).map(float))
    v = np.array(draw(st.lists(grid, min_size=n, max_size=n)))
    w = np.array(draw(st.lists(st.floats(-2.0, 2.0), min_size=n, max_size=n)))
    return v, w


radius = st.one_of(st.just(0.0), st.floats(1e-4, 5.0))
weight = st.floats(1e-2, 100.0)


# ------------------------------------------------------------------------------------------
# 1. Numba kernels agree with their NumPy/scipy twins
# ------------------------------------------------------------------------------------------
@HYP
@given(values_and_signed_weights(), radius, st.floats(-5.0, 12.0))
def test_tv_dual_weighted_matches_reference(vw, rho, v_min):
    v, w = vw
    got = kern.tv_dual_weighted(v, w, rho, v_min)
    want = ref.tv_dual_weighted(v, w, rho, v_min)
    assert got == pytest.approx(want, abs=1e-10 * (1.0 + np.abs(w).sum() * 12.0))


@HYP
@given(st.integers(1, 60), st.integers(1, 40), st.integers(0, 2**31), st.booleans())
def test_tv_dual_scan_across_columns_is_each_column_alone_to_the_bit(n, m, seed, ties):
    """tv_dual_sorted_rows scans all columns together (SIMD lanes across them): each column's
    result is the one-column scan's, bit for bit, at every column count (vector bodies and
    remainders), with ties and radii of 0; and it agrees with the NumPy twin."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0, 3.0, n)
    if ties:
        v = np.round(v)
    w = rng.standard_normal((m, n))
    rho = np.where(rng.random(m) < 0.2, 0.0, rng.uniform(0.0, 1.0, m))
    v_min = float(rng.choice([0.0, v.min(), -1.0]))
    order = np.argsort(v, kind="stable")
    got = kern.tv_dual_sorted_rows(v[order], np.ascontiguousarray(w[:, order].T), rho, v_min)
    alone = [kern.tv_dual_weighted(v, w[i], rho[i], v_min) for i in range(m)]
    assert np.array_equal(got, alone)
    want = [ref.tv_dual_weighted(v, w[i], rho[i], v_min) for i in range(m)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * (1.0 + 3.0 * np.abs(w).sum()))


@HYP
@given(values_and_signed_weights(), weight)
def test_chi2_regularized_dual_weighted_matches_reference(vw, lam):
    v, w = vw
    got = kern.chi2_regularized_dual_weighted(v, w, lam)
    want = ref.chi2_regularized_dual_weighted(v, w, lam)
    # The reference forms z2 - z1^2 without shifting: its rounding error is ~eps * sum|w| *
    # max v^2 * (1 + sum|w|) / lam, which sets the scale of the comparison.
    scale = 1.0 + np.abs(w).sum() * (1.0 + v.max() ** 2) * (1.0 + np.abs(w).sum()) / lam
    assert got == pytest.approx(want, abs=1e-11 * scale)


@HYP
@given(value_and_distribution(rows=3), st.lists(radius, min_size=3, max_size=3))
def test_constrained_batches_match_reference(vp, rhos):
    v, p = vp
    rho = np.array(rhos)
    v_min = v.min() - 0.5
    np.testing.assert_allclose(
        kern.tv_constrained_batch(v, p, rho, v_min),
        ref.tv_constrained_batch(v, p, rho, v_min),
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        kern.kl_constrained_batch(v, p, rho), ref.kl_constrained_batch(v, p, rho), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        kern.chi2_constrained_batch(v, p, rho),
        ref.chi2_constrained_batch(v, p, rho),
        rtol=0,
        atol=1e-9,
    )
    for i in range(p.shape[0]):  # single-row kernels = batch rows
        assert kern.kl_constrained(v, p[i], rho[i]) == pytest.approx(
            ref.kl_constrained(v, p[i], rho[i]), abs=1e-9
        )
        assert kern.chi2_constrained(v, p[i], rho[i]) == pytest.approx(
            ref.chi2_constrained(v, p[i], rho[i]), abs=1e-9
        )


@HYP
@given(value_and_distribution(rows=3), st.lists(weight, min_size=3, max_size=3))
def test_regularized_batches_match_reference(vp, lams):
    v, p = vp
    lam = np.array(lams)
    v_min = v.min() - 0.5
    np.testing.assert_allclose(
        kern.tv_regularized_batch(v, p, lam, v_min),
        ref.tv_regularized_batch(v, p, lam, v_min),
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        kern.kl_regularized_batch(v, p, lam), ref.kl_regularized_batch(v, p, lam), rtol=0, atol=1e-9
    )
    # Reference rounding as in the weighted chi2 test, with sum|w| = 1.
    np.testing.assert_allclose(
        kern.chi2_regularized_batch(v, p, lam),
        ref.chi2_regularized_batch(v, p, lam),
        rtol=0,
        atol=1e-11 * (1.0 + 2.0 * (1.0 + v.max() ** 2) / lam.min()),
    )
    for i in range(p.shape[0]):
        assert kern.kl_regularized(v, p[i], lam[i]) == pytest.approx(
            ref.kl_regularized(v, p[i], lam[i]), abs=1e-9
        )


# ------------------------------------------------------------------------------------------
# 2. Primal (solved directly over the simplex with scipy) vs the public dual functions
# ------------------------------------------------------------------------------------------
def _tv_primal(v, p, rho=None, lam=None):
    """LP over (mu, t) with |mu - p| <= t: min v.mu [+ lam/2 sum t] s.t. [1/2 sum t <= rho]."""
    n = v.size
    eye = np.eye(n)
    cost = np.concatenate([v, np.zeros(n) if lam is None else np.full(n, 0.5 * lam)])
    a_ub = np.block([[eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([p, -p])
    if rho is not None:
        a_ub = np.vstack([a_ub, np.concatenate([np.zeros(n), np.full(n, 0.5)])])
        b_ub = np.append(b_ub, rho)
    a_eq = np.concatenate([np.ones(n), np.zeros(n)])[None]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=(0, None))
    assert res.status == 0
    return res.fun


def _smooth_primal(v, p, divergence, rho=None, lam=None):
    """SLSQP on mu over the simplex on supp(p) (mu << p), 3 starts, each restarted twice.

    Only points satisfying the constraint (to 1e-10) are accepted, so the result is an
    upper bound on the true infimum that is tight when SLSQP converges.
    """
    s = p > 0
    vs, ps = v[s], p[s]
    n = vs.size
    if divergence == "kl":

        def div(mu):
            return float(np.sum(xlogy(mu, mu) - mu * np.log(ps)))

        def ddiv(mu):
            return np.log(np.maximum(mu, 1e-300)) + 1.0 - np.log(ps)
    else:

        def div(mu):
            return float(np.sum((mu - ps) ** 2 / ps))

        def ddiv(mu):
            return 2.0 * (mu - ps) / ps

    cons = [{"type": "eq", "fun": lambda mu: mu.sum() - 1.0, "jac": lambda mu: np.ones(n)}]
    if rho is not None:

        def obj(mu):
            return float(vs @ mu)

        def jac(mu):
            return vs

        cons.append({"type": "ineq", "fun": lambda mu: rho - div(mu), "jac": lambda mu: -ddiv(mu)})
    else:

        def obj(mu):
            return float(vs @ mu + lam * div(mu))

        def jac(mu):
            return vs + lam * ddiv(mu)

    corner = np.zeros(n)
    corner[np.argmin(vs)] = 1.0
    best = np.inf
    for start in (ps, np.full(n, 1.0 / n), 0.5 * (ps + corner)):
        x = start
        for _ in range(3):
            res = minimize(
                obj,
                x,
                jac=jac,
                method="SLSQP",
                bounds=[(0.0, 1.0)] * n,
                constraints=cons,
                options={"ftol": 1e-15, "maxiter": 1000},
            )
            x = np.clip(res.x, 0.0, 1.0)
            x = x / x.sum()
            if rho is None or div(x) <= rho + 1e-10:
                best = min(best, obj(x))
    return best


def _instances(seed: int, count: int = 10):
    """(values in [0, H], nominal rows with zeros); some values rounded to create ties."""
    rng = np.random.default_rng(seed)
    horizon = 5.0
    out = []
    for k in range(count):
        n = int(rng.integers(2, 7))
        v = rng.uniform(0.0, horizon, n)
        if k % 3 == 0:
            v = np.round(v)
        p = rng.dirichlet(np.ones(n))
        p[rng.random(n) < 0.3] = 0.0
        if p.sum() == 0.0:
            p[int(rng.integers(n))] = 1.0
        out.append((v, p / p.sum()))
    return out


RHOS = (0.0, 1e-3, 0.05, 0.3, 1.0, 4.0)
LAMS = (0.02, 0.1, 0.5, 2.0, 30.0)


@pytest.mark.parametrize("divergence", DIVS)
def test_constrained_matches_primal(divergence):
    for v, p in _instances(seed=11):
        # All radii at once as an (m, S) batch with per-row rho: exercises the batch path.
        got = dv.constrained_inner(v, np.tile(p, (len(RHOS), 1)), np.array(RHOS), divergence)
        for rho, value in zip(RHOS, got, strict=True):
            if divergence == "tv":
                want = _tv_primal(v, p, rho=rho)
            else:
                want = _smooth_primal(v, p, divergence, rho=rho)
            assert value == pytest.approx(want, abs=1e-6), (divergence, rho, v, p)


@pytest.mark.parametrize("divergence", DIVS)
def test_regularized_matches_primal(divergence):
    for v, p in _instances(seed=12):
        got = dv.regularized_inner(v, np.tile(p, (len(LAMS), 1)), np.array(LAMS), divergence)
        for lam, value in zip(LAMS, got, strict=True):
            if divergence == "tv":
                want = _tv_primal(v, p, lam=lam)
            else:
                want = _smooth_primal(v, p, divergence, lam=lam)
            assert value == pytest.approx(want, abs=1e-6), (divergence, lam, v, p)


def test_tv_v_min_is_an_extra_reachable_state():
    """v_min below min(values) acts as an unlisted state of value v_min with nominal mass 0."""
    for v, p in _instances(seed=13, count=6):
        v_min = v.min() - 1.5
        v_ext, p_ext = np.append(v, v_min), np.append(p, 0.0)
        for rho in RHOS:
            assert dv.constrained_inner(v, p, rho, "tv", v_min=v_min) == pytest.approx(
                _tv_primal(v_ext, p_ext, rho=rho), abs=1e-9
            )
        for lam in LAMS:
            assert dv.regularized_inner(v, p, lam, "tv", v_min=v_min) == pytest.approx(
                _tv_primal(v_ext, p_ext, lam=lam), abs=1e-9
            )


# ------------------------------------------------------------------------------------------
# 3. Limits and hand-worked cases
# ------------------------------------------------------------------------------------------
V2 = np.array([0.0, 1.0])
P2 = np.array([0.5, 0.5])


def test_two_state_tv_by_hand():
    # Move rho = 0.2 of the mass on V=1 to V=0: E = 0.3.
    assert dv.constrained_inner(V2, P2, 0.2, "tv") == pytest.approx(0.3, abs=1e-14)
    # Moving delta costs 0.4 delta and gains delta: move all of it, 0 + 0.4 * 0.5 = 0.2.
    assert dv.regularized_inner(V2, P2, 0.4, "tv") == pytest.approx(0.2, abs=1e-14)
    # lam = 2 > gain: stay at p.
    assert dv.regularized_inner(V2, P2, 2.0, "tv") == pytest.approx(0.5, abs=1e-14)
    # With an outside state of value -1: 0.5 - 0.2 * (1 - (-1)) = 0.1, and -1 + 0.4 = -0.6.
    assert dv.constrained_inner(V2, P2, 0.2, "tv", v_min=-1.0) == pytest.approx(0.1, abs=1e-14)
    assert dv.regularized_inner(V2, P2, 0.4, "tv", v_min=-1.0) == pytest.approx(-0.6, abs=1e-14)


def test_two_state_kl_by_hand():
    # Gibbs: mu ∝ p exp(-V/lam); value -log((1 + e^-1) / 2) at lam = 1.
    want = math.log(2.0) - math.log(1.0 + math.exp(-1.0))
    assert dv.regularized_inner(V2, P2, 1.0, "kl") == pytest.approx(want, abs=1e-14)
    # mu = (0.9, 0.1) has KL = log 2 + 0.1 log 0.1 + 0.9 log 0.9; at that radius the value is 0.1.
    rho = math.log(2.0) + 0.1 * math.log(0.1) + 0.9 * math.log(0.9)
    assert dv.constrained_inner(V2, P2, rho, "kl") == pytest.approx(0.1, abs=1e-9)


def test_two_state_chi2_by_hand():
    # mu = (1 - q, q): chi2 = 4 (q - 1/2)^2; rho = 0.64 allows q = 0.1.
    assert dv.constrained_inner(V2, P2, 0.64, "chi2") == pytest.approx(0.1, abs=1e-12)
    # min_q q + 4 lam (q - 1/2)^2: q = 1/2 - 1/(8 lam) = 3/8 at lam = 1, value 7/16.
    assert dv.regularized_inner(V2, P2, 1.0, "chi2") == pytest.approx(7.0 / 16.0, abs=1e-12)
    # lam = 0.1 < 1/4: q hits 0, value 0 + 0.1 * 4 * 1/4 = 0.1.
    assert dv.regularized_inner(V2, P2, 0.1, "chi2") == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize("divergence", DIVS)
def test_zero_radius_and_huge_weight_give_nominal_mean(divergence):
    for v, p in _instances(seed=14, count=6):
        mean = float(p @ v)
        assert dv.constrained_inner(v, p, 0.0, divergence) == pytest.approx(mean, abs=1e-12)
        assert dv.regularized_inner(v, p, 1e8, divergence) == pytest.approx(mean, abs=1e-6)
        # Tiny radius: E_p V - O(sqrt(rho)) for KL/chi2 (O(rho) for TV), approached from below.
        tiny = dv.constrained_inner(v, p, 1e-12, divergence)
        assert mean - 1e-5 <= tiny <= mean + 1e-12


def test_tv_radius_at_least_one_gives_v_min():
    for v, p in _instances(seed=15, count=6):
        for rho in (1.0, 5.0):
            assert dv.constrained_inner(v, p, rho, "tv") == pytest.approx(v.min(), abs=1e-12)
            assert dv.constrained_inner(v, p, rho, "tv", v_min=-2.0) == pytest.approx(-2.0)


@pytest.mark.parametrize("divergence", ("kl", "chi2"))
def test_large_radius_gives_support_minimum(divergence):
    # A state outside supp(p) with a lower value must be ignored (mu << p).
    v = np.array([-3.0, 1.0, 2.0, 4.0])
    p = np.array([0.0, 0.1, 0.6, 0.3])
    big = 10.0 if divergence == "kl" else 1.0 / 0.1  # -log 0.1 = 2.3, 1/0.1 - 1 = 9
    assert dv.constrained_inner(v, p, big, divergence) == pytest.approx(1.0, abs=1e-12)
    assert dv.constrained_inner(v, p, 1e3, divergence) == pytest.approx(1.0, abs=1e-12)
    # Just below the threshold the value is strictly above the support minimum.
    below = math.log(10.0) - 0.05 if divergence == "kl" else 9.0 - 0.5
    assert dv.constrained_inner(v, p, below, divergence) > 1.0 + 1e-6
    # Small lam: all mass on the argmin (mass 0.1), value min + lam * D(delta_argmin || p):
    # KL = log 10 (plus terms of order exp(-1/lam)), chi2 = 1/0.1 - 1 = 9 (exact corner).
    penalty = math.log(10.0) if divergence == "kl" else 9.0
    assert dv.regularized_inner(v, p, 1e-3, divergence) == pytest.approx(
        1.0 + 1e-3 * penalty, abs=1e-12
    )


def test_closed_forms_in_extreme_regimes():
    v = np.array([10.0, 11.0, 13.0, 12.5])
    p = np.array([0.2, 0.5, 0.3, 0.0])
    mean = float(p @ v)
    var = float(p @ (v - mean) ** 2)
    # Huge lam: chi2 reweights mu = p (1 - (V - E V) / (2 lam)) without clipping, so the value
    # is exactly E V - Var / (4 lam); KL is E V - Var / (2 lam) + O(lam^-2).
    for lam in (10.0, 1e10):
        assert dv.regularized_inner(v, p, lam, "chi2") == pytest.approx(
            mean - var / (4.0 * lam), abs=1e-12
        )
    assert dv.regularized_inner(v, p, 1e10, "kl") == pytest.approx(mean - var / 2e10, abs=1e-12)
    # Small chi2 radius: mu = p (1 - k (V - E V)) stays nonnegative, value E V - sqrt(rho Var).
    for rho in (1e-12, 1e-4, 0.1):
        assert dv.constrained_inner(v, p, rho, "chi2") == pytest.approx(
            mean - math.sqrt(rho * var), abs=1e-12
        )
    # Tiny lam: everything on the support argmin (mass 0.2): min + lam * D(delta || p).
    lam = 1e-9
    assert dv.regularized_inner(v, p, lam, "tv") == pytest.approx(10.0 + 0.8 * lam, abs=1e-13)
    assert dv.regularized_inner(v, p, lam, "kl") == pytest.approx(
        10.0 - lam * math.log(0.2), abs=1e-13
    )
    assert dv.regularized_inner(v, p, lam, "chi2") == pytest.approx(10.0 + 4.0 * lam, abs=1e-13)
    # Nearly all nominal mass away from the minimum: E_p exp(-V/lam) ~ 1e-12 must keep its
    # relative precision.
    q = np.array([1e-12, 1.0 - 1e-12])
    assert dv.regularized_inner([0.0, 1.0], q, 0.01, "kl") == pytest.approx(
        -0.01 * math.log(1e-12 + (1.0 - 1e-12) * math.exp(-100.0)), abs=1e-12
    )


@HYP
@given(value_and_distribution(max_states=6), st.floats(1e-3, 3.0), st.floats(1e-3, 3.0))
def test_monotone_and_bounded(vp, a, b):
    v, p = vp
    p = p[0]
    lo, hi = min(a, b), max(a, b)
    s = p > 0
    for divergence in DIVS:
        floor = v.min() if divergence == "tv" else v[s].min()
        mean = float(p @ v)
        c_lo, c_hi = (dv.constrained_inner(v, p, r, divergence) for r in (lo, hi))
        r_lo, r_hi = (dv.regularized_inner(v, p, r, divergence) for r in (lo, hi))
        # Bigger ball -> smaller value; bigger penalty weight -> bigger value.
        assert floor - 1e-9 <= c_hi <= c_lo + 1e-9 <= mean + 2e-9
        assert floor - 1e-9 <= r_lo <= r_hi + 1e-9 <= mean + 2e-9


def test_one_row_returns_float_and_batch_matches_rows():
    v = np.array([0.5, 2.0, 1.0])
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    rho = np.array([0.1, 0.4, 2.0])
    for divergence in DIVS:
        out_c = dv.constrained_inner(v, p, rho, divergence)
        out_r = dv.regularized_inner(v, p, rho, divergence)
        assert isinstance(out_c, np.ndarray) and out_c.shape == (3,)
        for i in range(3):
            one = dv.constrained_inner(v, p[i], rho[i], divergence)
            assert isinstance(one, float) and one == out_c[i]
            assert dv.regularized_inner(v, p[i], rho[i], divergence) == out_r[i]
        # A scalar parameter is shared by all rows.
        np.testing.assert_array_equal(
            dv.constrained_inner(v, p, 0.4, divergence),
            [dv.constrained_inner(v, row, 0.4, divergence) for row in p],
        )


def test_weighted_kernels_reduce_to_exact_inner_values():
    v = np.array([3.0, 0.0, 1.5, 2.0])
    p = np.array([0.4, 0.1, 0.2, 0.3])
    assert dv.tv_dual_weighted(v, p, 0.25, 0.0) == pytest.approx(
        dv.constrained_inner(v, p, 0.25, "tv"), abs=1e-14
    )
    assert dv.chi2_regularized_dual_weighted(v, p, 0.7) == pytest.approx(
        dv.regularized_inner(v, p, 0.7, "chi2"), abs=1e-14
    )


# ------------------------------------------------------------------------------------------
# 4. Bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: dv.constrained_inner(V2, P2, -0.1, "tv"), "rho"),
        (lambda: dv.constrained_inner(V2, P2, math.nan, "kl"), "rho"),
        (lambda: dv.constrained_inner(V2, np.tile(P2, (2, 1)), [0.1, -1.0], "kl"), "rho"),
        (lambda: dv.constrained_inner(V2, np.tile(P2, (2, 1)), [0.1, 0.2, 0.3], "kl"), "rho"),
        (lambda: dv.constrained_inner(V2, P2, [0.1], "kl"), "rho"),
        (lambda: dv.regularized_inner(V2, P2, 0.0, "kl"), "lam"),
        (lambda: dv.regularized_inner(V2, P2, -1.0, "chi2"), "lam"),
        (lambda: dv.regularized_inner(V2, P2, math.inf, "tv"), "lam"),
        (lambda: dv.regularized_inner(V2, np.tile(P2, (2, 1)), [1.0, 0.0], "tv"), "lam"),
        (lambda: dv.constrained_inner([0.0, math.nan], P2, 0.1, "tv"), "values"),
        (lambda: dv.regularized_inner(np.ones((2, 2)), P2, 0.1, "tv"), "values"),
        (lambda: dv.constrained_inner(V2, P2, 0.1, "hellinger"), "divergence"),
        (lambda: dv.regularized_inner(V2, P2, 0.1, None), "divergence"),
        (lambda: dv.constrained_inner(V2, [0.2, 0.3, 0.5], 0.1, "kl"), "nominal"),
        (lambda: dv.regularized_inner([0.0, 1.0, 2.0], P2, 0.1, "chi2"), "nominal"),
        (lambda: dv.constrained_inner(V2, [0.6, 0.6], 0.1, "tv"), "nominal"),
        (lambda: dv.constrained_inner(V2, [1.5, -0.5], 0.1, "tv"), "nominal"),
        (lambda: dv.regularized_inner(V2, [math.nan, 1.0], 0.1, "kl"), "nominal"),
        (lambda: dv.constrained_inner(V2, np.ones((1, 1, 2)) / 2, 0.1, "kl"), "nominal"),
        (lambda: dv.constrained_inner(V2, P2, 0.1, "tv", v_min=0.5), "v_min"),
        (lambda: dv.regularized_inner(V2, P2, 0.1, "kl", v_min=math.nan), "v_min"),
        (lambda: dv.tv_dual_weighted(V2, [1.0, 2.0, 3.0], 0.1, 0.0), "weights"),
        (lambda: dv.tv_dual_weighted(V2, P2, -0.1, 0.0), "rho"),
        (lambda: dv.chi2_regularized_dual_weighted(V2, P2, 0.0), "lam"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
