"""Extreme inputs of the robust inner problems: each computes the right number or raises.

The chi2-regularised value at tiny lam (the exact total of the nominal), subnormal radii,
values near the accepted bound, and values beyond it; the references are closed forms,
mpmath at 50 digits, and positive homogeneity of the duals.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from robustrl import divergences as dv
from robustrl._kernels import divergence as kern
from robustrl.exact import robust_value_iteration
from robustrl.models import FiniteMDP
from robustrl.reference import divergence as ref

V100 = np.arange(100.0, 110.0)
P_UNIFORM = np.full(10, 0.1)


# --------------------------------------------------------------------------------------------
# chi2-regularised: exact total on the probability path, clamp to [min V, E_p V]


def _chi2_regularized_mp(v, p, lam) -> mpmath.mpf:
    """sup_alpha E_p[min(v, alpha)] - Var_p(min(v, alpha)) / (4 lam) in 50-digit arithmetic.

    Per segment [v_k, v_{k+1}] of the sorted support the objective is a concave quadratic with
    stationary point alpha = (A + 2 lam) / (1 - B), A = sum_{i <= k} p_i v_i, B = the mass
    above v_k; candidates are the knots and those stationary points."""
    with mpmath.workdps(50):
        vs = [mpmath.mpf(float(x)) for x in v]
        ps = [mpmath.mpf(float(x)) for x in p]
        total = mpmath.fsum(ps)
        ps = [x / total for x in ps]
        lam = mpmath.mpf(float(lam))

        def objective(alpha):
            w = [min(x, alpha) for x in vs]
            mean = mpmath.fsum(q * x for q, x in zip(ps, w, strict=True))
            var = mpmath.fsum(q * (x - mean) ** 2 for q, x in zip(ps, w, strict=True))
            return mean - var / (4 * lam)

        knots = sorted({x for x, q in zip(vs, ps, strict=True) if q > 0})
        cands = list(knots)
        for k in range(len(knots) - 1):
            below = [(q, x) for q, x in zip(ps, vs, strict=True) if x <= knots[k]]
            a = mpmath.fsum(q * x for q, x in below)
            b = 1 - mpmath.fsum(q for q, _ in below)
            alpha = (a + 2 * lam) / (1 - b)
            if knots[k] < alpha < knots[k + 1]:
                cands.append(alpha)
        return max(objective(a) for a in cands)


@pytest.mark.parametrize(
    ("lam", "want"),
    # values 100..109 under the uniform p: for lam < 1/20 the optimum is alpha = 100 + 20 lam,
    # value 100 + 9 lam (the objective is 100 + 0.9 x - 0.09 x^2 / (4 lam) on [100, 101])
    [(1e-10, 100.0 + 9e-10), (1e-14, 100.0 + 9e-14), (1e-20, 100.0), (1e-300, 100.0)],
)
def test_chi2_regularized_tiny_lam_is_exact(lam, want):
    # Before: 99.9972 at 1e-10 (below min V), 72.2 at 1e-14, -2.8e7 at 1e-20.
    got = dv.regularized_inner(V100, P_UNIFORM, lam, "chi2")
    assert got == pytest.approx(want, rel=0, abs=4 * np.spacing(110.0))
    assert V100.min() <= got <= P_UNIFORM @ V100
    assert float(_chi2_regularized_mp(V100, P_UNIFORM, lam)) == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("lam", [1e-300, 1e-20, 1e-14, 1e-10, 1e-6, 1e-2, 1.0, 1e6, 1e300])
def test_chi2_regularized_unclamped_search_is_within_rounding(lam):
    # The clamp removes rounding only: the raw segment search (exact total) already lies within
    # a few ulp of [min V, E_p V] and of the 50-digit value.
    order = np.argsort(V100)
    raw = kern._chi2_regularized_sorted(V100[order], P_UNIFORM[order], lam, True)
    want = float(_chi2_regularized_mp(V100, P_UNIFORM, lam))
    assert raw == pytest.approx(want, rel=0, abs=8 * np.spacing(110.0))


def test_chi2_regularized_reference_agrees_at_tiny_lam():
    for lam in (1e-20, 1e-14, 1e-10, 1e-6):
        got = kern.chi2_regularized_batch(V100, P_UNIFORM[None, :], np.array([lam]))
        want = ref.chi2_regularized_batch(V100, P_UNIFORM[None, :], np.array([lam]))
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.spacing(110.0))


def _random_finite_mdp(seed: int, H: int, S: int, A: int) -> FiniteMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(H, S, A))
    R = rng.uniform(0.0, 1.0, size=(H, S, A))
    return FiniteMDP(P=P, R=R, initial_distribution=np.full(S, 1.0 / S))


def test_exact_dp_chi2_regularized_long_horizon_against_mpmath():
    # H = 200, lam = 1e-6: values reach ~100, and the former (1 - total_w) / (4 lam) term put an
    # error of 5.6e-7 into the exact DP; the 50-digit DP below is independent of the kernels.
    H, S, A, lam = 200, 3, 2, 1e-6
    model = _random_finite_mdp(7, H, S, A)
    sol = robust_value_iteration(model, divergence="chi2", lam=lam)
    v_next = [mpmath.mpf(0)] * S
    with mpmath.workdps(50):
        for h in range(H - 1, -1, -1):
            v_h = []
            for s in range(S):
                q = [
                    mpmath.mpf(float(model.R[h, s, a]))
                    + _chi2_regularized_mp([float(x) for x in v_next], model.P[h, s, a], lam)
                    for a in range(A)
                ]
                v_h.append(max(q))
            # the next step's inputs are the 50-digit values rounded to float64, as the solver
            # holds them; this isolates the inner problem's error at each step
            v_next = v_h
        want = np.array([float(x) for x in v_next])
    assert want.max() > 50.0
    np.testing.assert_allclose(sol.V[0], want, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# subnormal and tiny radii


@pytest.mark.parametrize("rho", [5e-324, 1e-310, 1e-200])
@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_constrained_tiny_radius_is_the_nominal_mean(divergence, rho):
    # Before: KL returned 0 (the support minimum) and chi2 0.95 at a subnormal radius.
    v = np.array([0.0, 1.0, 2.0])
    p = np.array([0.2, 0.3, 0.5])
    got = dv.constrained_inner(v, p, rho, divergence)
    c = 2.0 if divergence == "kl" else 1.0
    want = 1.3 - np.sqrt(c * rho * 0.61)  # Var_p v = 0.61
    assert got == pytest.approx(want, rel=0, abs=4e-16)
    assert got <= 1.3 + 4e-16


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_constrained_tiny_radius_expansion_is_visible_around_zero_mean(divergence):
    # Around a zero mean the sqrt(rho Var) term is representable: the expansion is returned,
    # not just E_p v.
    v = np.array([-1.0, 1.0])
    p = np.array([0.5, 0.5])
    got = dv.constrained_inner(v, p, 1e-200, divergence)
    c = 2.0 if divergence == "kl" else 1.0
    assert got == pytest.approx(-np.sqrt(c * 1e-200), rel=1e-12)


def test_constrained_small_radius_continuity_across_the_tiny_threshold():
    v = np.array([0.0, 1.0, 2.0])
    p = np.array([0.2, 0.3, 0.5])
    for divergence, c in (("kl", 2.0), ("chi2", 1.0)):
        for rho in (1e-99, 1e-101, 1e-30):
            got = dv.constrained_inner(v, p, rho, divergence)
            assert got == pytest.approx(1.3 - np.sqrt(c * rho * 0.61), rel=0, abs=1e-14)


# --------------------------------------------------------------------------------------------
# huge values: accepted up to 1e150 and computed right; rejected beyond


@pytest.mark.parametrize(
    ("call", "values"),
    [
        (lambda v: dv.regularized_inner(v, np.full(v.size, 1 / v.size), 1.0, "chi2"),
         np.array([1e154, 2e154])),
        (lambda v: dv.constrained_inner(v, np.full(v.size, 1 / v.size), 10.0, "chi2"),
         np.array([0.0, 1e155])),
        (lambda v: dv.constrained_inner(v, np.full(v.size, 1 / v.size), 1e-10, "kl"),
         np.array([0.0, 1e300])),
        (lambda v: dv.constrained_inner(v, np.full(v.size, 1 / v.size), 0.1, "tv"),
         np.array([-1e308, 1e308, 0.0])),
        (lambda v: dv.regularized_inner(v, np.full(v.size, 1 / v.size), 0.1, "tv"),
         np.array([-1e308, 1e308])),
        (lambda v: dv.chi2_regularized_dual_weighted(v, np.ones(v.size), 1.0),
         np.array([1.0, 1e200])),
        (lambda v: dv.tv_dual_weighted(v, np.ones(v.size), 0.1, -1e300),
         np.array([1.0, -1e300])),
    ],
)
def test_values_beyond_the_bound_raise(call, values):
    # Before: 0, 0, 0, -3.3e307 and -1e308 returned silently.
    with pytest.raises(ValueError, match=r"values must lie in \[-1e\+150, 1e\+150\]"):
        call(values)


BASE_V = np.array([0.0, 0.3, 1.0, 2.5])
BASE_P = np.array([0.1, 0.4, 0.3, 0.2])


@pytest.mark.parametrize("scale", [1e148, 1e-150])
@pytest.mark.parametrize("divergence", ["tv", "kl", "chi2"])
def test_duals_are_positively_homogeneous_up_to_the_bound(divergence, scale):
    # I(cV; rho) = c I(V; rho) (constrained) and I(cV; c lam) = c I(V; lam) (regularised) for
    # c > 0. Values up to the bound 1e150 (here max 2.5e148) must keep it within 1e-9.
    for rho in (0.05, 0.4):
        base = dv.constrained_inner(BASE_V, BASE_P, rho, divergence)
        got = dv.constrained_inner(scale * BASE_V, BASE_P, rho, divergence)
        assert got == pytest.approx(scale * base, rel=1e-9), (rho, got, scale * base)
    for lam in (0.05, 1.0):
        base = dv.regularized_inner(BASE_V, BASE_P, lam, divergence)
        got = dv.regularized_inner(scale * BASE_V, BASE_P, scale * lam, divergence)
        assert got == pytest.approx(scale * base, rel=1e-9), (lam, got, scale * base)


def test_tv_huge_opposite_values_are_exact():
    v = np.array([-1e150, 1e150, 0.0])
    p = np.full(3, 1.0 / 3.0)
    assert dv.constrained_inner(v, p, 0.0, "tv") == pytest.approx(0.0, abs=1e135)
    # rho moves rho of mass from the top to the minimum: (1/3 - rho) 1e150 - (1/3 + rho) 1e150
    assert dv.constrained_inner(v, p, 0.1, "tv") == pytest.approx(-0.2e150, rel=1e-12)
    assert dv.constrained_inner(v, p, 1.0, "tv") == -1e150


@pytest.mark.parametrize("bad", [np.inf, np.nan, -1.0, 0.0])
def test_lam_outside_its_range_raises(bad):
    with pytest.raises(ValueError, match="lam"):
        dv.regularized_inner(BASE_V, BASE_P, bad, "chi2")


@pytest.mark.parametrize("bad", [np.inf, np.nan, -1e-300])
def test_rho_outside_its_range_raises(bad):
    with pytest.raises(ValueError, match="rho"):
        dv.constrained_inner(BASE_V, BASE_P, bad, "kl")


@pytest.mark.parametrize("lam", [5e-324, 1e-300, 1e300, 1.7e308])
@pytest.mark.parametrize("divergence", ["tv", "kl", "chi2"])
def test_regularized_extreme_lam_limits(divergence, lam):
    # lam -> 0: the support minimum (TV: v_min); lam -> inf: E_p V.
    got = dv.regularized_inner(BASE_V, BASE_P, lam, divergence)
    mean = float(BASE_P @ BASE_V)
    if lam < 1.0:
        assert got == pytest.approx(0.0, abs=1e-290)
    else:
        assert got == pytest.approx(mean, rel=1e-12)


# (the definition-based chi2 twin cannot resolve radii just above 1e-100: its search runs over
# eta up to spread / rho; the kernels there are checked against the closed form above)
@pytest.mark.parametrize("rho", [5e-324, 1e-310, 1e-200, 1e-101])
def test_constrained_kernels_match_reference_at_tiny_radii(rho):
    v = np.array([0.0, 1.0, 2.0, 1.0])
    p = np.array([[0.2, 0.3, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])
    rhos = np.full(2, rho)
    np.testing.assert_allclose(kern.kl_constrained_batch(v, p, rhos),
                               ref.kl_constrained_batch(v, p, rhos), rtol=0, atol=1e-14)
    np.testing.assert_allclose(kern.chi2_constrained_batch(v, p, rhos),
                               ref.chi2_constrained_batch(v, p, rhos), rtol=0, atol=1e-14)
    for i in range(2):
        assert kern.kl_constrained(v, p[i], rho) == pytest.approx(
            ref.kl_constrained(v, p[i], rho), abs=1e-14)
        assert kern.chi2_constrained(v, p[i], rho) == pytest.approx(
            ref.chi2_constrained(v, p[i], rho), abs=1e-14)
