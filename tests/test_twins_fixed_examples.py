"""Fixed adversarial examples for the NumPy twins of robustrl/reference/ (and their kernels).

The twins are the oracles of the hypothesis agreement tests, so their own edge cases need
fixed examples with answers worked out by hand: interior maxima that a candidates-only search
misses, maximisers far from the search bracket's end, near-ties, tiny gaps, huge values that
overflow a naive exp, zero-probability states, ties in sampling. Every example runs on the
twin and, where the signature is the same, on the Numba kernel. Docstrings name the bug that
was injected into the twin by hand and made the test fail (then reverted).

Two-point worst cases used throughout (V = (0, 1), P = (.5, .5)):

* KL ball of radius rho: the minimiser is q = (1 - t, t) with
  KL(q || P) = (1 - t) log(2 (1 - t)) + t log(2 t) = rho, value t; for rho >= log 2 the point
  mass on V = 0 is feasible and the value is 0.
* chi2 ball: q = (.5 + u, .5 - u) has chi2 = 4 u^2, so the value is .5 - sqrt(rho) / 2 up to
  rho = 1 and 0 beyond.
* chi2-regularised, lam: max over alpha in [0, 1] of alpha/2 - alpha^2 / (16 lam), at
  alpha = 4 lam (inside the piece for lam < 1/4): value lam; for lam >= 1/4: 1/2 - 1/(16 lam).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl._kernels import divergence as kdiv
from robustrl._kernels import offline as koff
from robustrl._kernels import policy as kpol
from robustrl.reference import bonus as rbonus
from robustrl.reference import divergence as rdiv
from robustrl.reference import glow as rglow
from robustrl.reference import offline as roff
from robustrl.reference import policy as rpol
from robustrl.reference import ridge as rridge
from robustrl.reference import value_iteration as rvi

DIV = [pytest.param(rdiv, id="twin"), pytest.param(kdiv, id="kernel")]
OFF = [pytest.param(roff, id="twin"), pytest.param(koff, id="kernel")]
V2 = np.array([0.0, 1.0])
P2 = np.array([0.5, 0.5])


def _kl_radius(t: float) -> float:
    return (1.0 - t) * math.log(2.0 * (1.0 - t)) + t * math.log(2.0 * t)


# ------------------------------------------------------------------------------------------
# divergence twins
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mod", DIV)
def test_tv_dual_candidates_include_v_min(mod):
    """alpha over {v_min} U {v}: V = (1, 2), P = (.5, .5), rho = 1.5, v_min = 0: alpha = 0
    gives 0, alpha = 1 gives 1 - 1.5 = -.5, alpha = 2 gives 1.5 - 3 = -1.5, so 0 = v_min.
    V = (0, 1, 2) uniform, rho = .2: 0, 2/3 - .2, 1 - .4 = .6. A near-tie (rho = 1/3: alpha 1
    and 2 both give 1/3). Fails when v_min is left out of the candidates (-.5)."""
    assert mod.tv_dual_weighted(np.array([1.0, 2.0]), P2, 1.5, 0.0) == pytest.approx(0.0,
                                                                                     abs=1e-15)
    w = np.full(3, 1.0 / 3.0)
    v = np.array([0.0, 1.0, 2.0])
    assert mod.tv_dual_weighted(v, w, 0.2, 0.0) == pytest.approx(0.6, rel=1e-14)
    assert mod.tv_dual_weighted(v, w, 1.0 / 3.0, 0.0) == pytest.approx(1.0 / 3.0, rel=1e-14)
    # v_min below every value: an unlisted state (rho = .9: alpha = 1 gives 1 - .9 * 2 = -.8)
    assert mod.tv_dual_weighted(np.array([1.0, 2.0]), P2, 0.9, -1.0) == pytest.approx(-0.8)
    np.testing.assert_allclose(
        mod.tv_regularized_batch(v, np.stack([w, w]), np.array([0.5, 5.0]), 0.0),
        [(0.0 + 0.5 + 0.5) / 3.0, 1.0], rtol=1e-14)


@pytest.mark.parametrize("mod", DIV)
def test_kl_regularized_is_stable_for_huge_values_and_tiny_lam(mod):
    """-lam log E exp(-V / lam): V = (1000, 1001), lam = 1e-3 is 1000 + lam log 2 (a naive
    exp underflows to log 0); V = (0, 1), lam = 1: -log((1 + e^-1) / 2); a zero-probability
    state is ignored (V = (0, 5), P = (0, 1): 5)."""
    got = mod.kl_regularized(np.array([1000.0, 1001.0]), P2, 1e-3)
    assert got - 1000.0 == pytest.approx(1e-3 * math.log(2.0), abs=1e-12)
    assert mod.kl_regularized(V2, P2, 1.0) == pytest.approx(
        -math.log((1.0 + math.exp(-1.0)) / 2.0), rel=1e-14)
    assert mod.kl_regularized(np.array([0.0, 5.0]), np.array([0.0, 1.0]), 0.3) == pytest.approx(
        5.0, rel=1e-14)


@pytest.mark.parametrize("mod", DIV)
@pytest.mark.parametrize("t", [0.2, 1e-6, 0.5 - 1e-3])
def test_kl_constrained_two_point_closed_form(mod, t):
    """The two-point KL ball: value t at radius KL((1-t, t) || P). t = 1e-6 puts the dual's
    maximiser (beta = 1 / log((1-t)/t) ~ .072) 2.3 below the log-bracket's top, t = .499 puts it
    far above 1 (beta ~ 250, tiny radius 2e-6). Fails with a log-bracket of width 2 instead of
    60 (t = 1e-6) or an upper end of log(1 / rho) - 6 (t = .499)."""
    assert mod.kl_constrained(V2, P2, _kl_radius(t)) == pytest.approx(t, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("mod", DIV)
def test_kl_constrained_edges(mod):
    """rho = 0: the mean; rho >= log 2: the point mass on V = 0 is in the ball, value 0 = min V;
    one-point support (V equal where P > 0): that value."""
    assert mod.kl_constrained(V2, P2, 0.0) == pytest.approx(0.5)
    assert mod.kl_constrained(V2, P2, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert mod.kl_constrained(V2, P2, math.log(2.0) + 1e-9) == pytest.approx(0.0, abs=1e-7)
    assert mod.kl_constrained(np.array([3.0, 3.0, 9.0]), np.array([0.5, 0.5, 0.0]),
                              0.7) == pytest.approx(3.0)


@pytest.mark.parametrize("mod", DIV)
def test_chi2_regularized_interior_maximum(mod):
    """lam = .1: the maximum is at alpha = .4, inside the piece [0, 1], value .1 (the knots
    give 0 and .5 - 1/1.6 = -.125); lam = .5: alpha = 1, value .375. Fails when only the knots
    are searched (0 instead of .1)."""
    assert mod.chi2_regularized_dual_weighted(V2, P2, 0.1) == pytest.approx(0.1, rel=1e-9)
    assert mod.chi2_regularized_dual_weighted(V2, P2, 0.5) == pytest.approx(0.375, rel=1e-12)
    np.testing.assert_allclose(mod.chi2_regularized_batch(V2, np.stack([P2, P2]),
                                                          np.array([0.1, 0.5])),
                               [0.1, 0.375], rtol=1e-9)


@pytest.mark.parametrize("mod", DIV)
def test_chi2_constrained_two_point_closed_form(mod):
    """.5 - sqrt(rho)/2 for rho <= 1: rho = .25 gives .25 with the dual maximiser eta = 1.5,
    above max V = 1 and three times the mean; rho >= 1 gives 0; rho = 0 the mean. Fails when
    the search stops at max V or at the mean (.209 or 0)."""
    assert mod.chi2_constrained(V2, P2, 0.25) == pytest.approx(0.25, rel=1e-9)
    assert mod.chi2_constrained(V2, P2, 0.64) == pytest.approx(0.1, rel=1e-8)
    assert mod.chi2_constrained(V2, P2, 3.0) == pytest.approx(0.0, abs=1e-12)
    assert mod.chi2_constrained(V2, P2, 0.0) == pytest.approx(0.5)
    np.testing.assert_allclose(mod.chi2_constrained_batch(V2, np.stack([P2, P2]),
                                                          np.array([0.25, 3.0])),
                               [0.25, 0.0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mod.kl_constrained_batch(V2, np.stack([P2, P2]),
                                                        np.array([_kl_radius(0.2), 0.0])),
                               [0.2, 0.5], rtol=1e-7)
    np.testing.assert_allclose(mod.kl_regularized_batch(V2, np.stack([P2, P2]),
                                                        np.array([1.0, 1.0])),
                               [-math.log((1.0 + math.exp(-1.0)) / 2.0)] * 2, rtol=1e-14)


# ------------------------------------------------------------------------------------------
# offline row twins
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mod", OFF)
def test_offline_rows_on_exact_weights(mod):
    """Rows whose weights are a probability vector equal the single-row worst cases: TV with
    rho = 0 is w.v, TV with rho = .2 on (0, 1, 2) uniform is .6; chi2-regularised lam = .1 is
    .1; DRVI-L's KL rows (uncentred, tiny floor) give the two-point KL ball value t."""
    v3 = np.array([0.0, 1.0, 2.0])
    xi = np.array([[1 / 3, 1 / 3, 1 / 3], [0.0, 0.25, 0.75]])
    np.testing.assert_allclose(mod.tv_dual_rows(v3, xi, np.array([0.2, 0.0]), 0.0),
                               [0.6, 1.75], rtol=1e-14)
    np.testing.assert_allclose(mod.chi2_regularized_rows(V2, P2[None, :], 0.1), [0.1],
                               rtol=1e-9)
    for t in (0.2, 1e-4):
        got = mod.kl_constrained_rows(V2, P2[None, :], np.array([_kl_radius(t)]), 1e-300,
                                      False)
        np.testing.assert_allclose(got, [t], rtol=1e-6, atol=1e-10)
    # zero radius: the plain regression; a row with no weight on any value: 0
    np.testing.assert_allclose(
        mod.kl_constrained_rows(V2, np.array([[0.25, 0.75], [0.0, 0.0]]), np.array([0.0, 0.3]),
                                1e-300, False), [0.75, 0.0], atol=1e-15)


@pytest.mark.parametrize("mod", OFF)
def test_empty_value_sets_give_zero_rows(mod):
    xi = np.zeros((2, 0))
    np.testing.assert_array_equal(mod.tv_dual_rows(np.zeros(0), xi, np.array([0.1, 0.1]), 0.0),
                                  [0.0, 0.0])
    np.testing.assert_array_equal(mod.chi2_regularized_rows(np.zeros(0), xi, 0.5), [0.0, 0.0])


@pytest.mark.parametrize("mod", OFF)
def test_value_minima_kl_from_sum_and_grouping_by_hand(mod):
    """value_minima: (min over all, min over regression rows), inf when empty; kl_from_sum:
    shift - lam log s, capped, the cap where s <= 0, truncation at 0; group_by_value: distinct
    values ascending, weighted feature sums, whether any row of a value is a regression row."""
    vals = np.array([3.0, -1.0, 2.0, 3.0])
    inside = np.array([True, False, True, False])
    assert mod.value_minima(vals, inside) == (-1.0, 2.0)
    lo, lo_reg = mod.value_minima(vals, np.zeros(4, dtype=bool))
    assert lo == -1.0 and lo_reg == math.inf
    s = np.array([math.exp(-1.0), 0.0, 2.0, math.exp(-20.0)])
    np.testing.assert_allclose(mod.kl_from_sum(s, 0.5, 1.0, 10.0, False, True),
                               [1.5, 10.0, 0.0, 10.0], rtol=1e-14)
    np.testing.assert_allclose(mod.kl_from_sum(s, 0.5, 1.0, 10.0, False, False),
                               [1.5, 10.0, 0.5 - math.log(2.0), 10.0], rtol=1e-14)
    np.testing.assert_array_equal(mod.kl_from_sum(s, 0.5, 1.0, 10.0, True, True), np.zeros(4))
    np.testing.assert_array_equal(mod.kl_from_sum(s, 0.5, 1.0, 10.0, True, False),
                                  np.full(4, 10.0))
    feats = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, 0.0]])
    u, sums, ins = mod.group_by_value(vals, feats, np.array([1.0, 1.0, 1.0, 2.0]), inside)
    np.testing.assert_array_equal(u, [-1.0, 2.0, 3.0])
    np.testing.assert_allclose(sums, [[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(ins, [False, True, True])
    # near-equal values stay separate groups (a gap of one ulp)
    near = np.array([1.0, np.nextafter(1.0, 2.0)])
    u, _, _ = mod.group_by_value(near, feats[:2], np.ones(2), np.ones(2, dtype=bool))
    assert u.size == 2


@pytest.mark.parametrize("mod", OFF)
def test_gather_moments_and_symmetric_fill_by_hand(mod):
    source = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, -1.0]])
    out = np.empty_like(source)
    inside = np.empty(3, dtype=bool)
    assert mod.gather_features(source, out, inside) == 3
    np.testing.assert_array_equal(out, source)
    np.testing.assert_array_equal(inside, [False, True, True])
    moment = np.zeros((2, 2))
    mod.moment_into(moment, source, np.array([5.0, 1.0, 2.0]), np.array([1.0, 1.0, 3.0]), True,
                    np.array([1.0, 2.0, 0.5]), True)
    # phi^T W r = 2 * (1, 0) * 1 + .5 * (2, -1) * 2 = (4, -1); target (1, 1, 3): (2 + 3, -1.5)
    np.testing.assert_allclose(moment, [[4.0, 5.0], [-1.0, -1.5]])
    gram = np.zeros((2, 2))
    moment = np.zeros((2, 2))
    mod.sparse_gram_moment_into(gram, moment, source, np.ones(3), np.zeros(3), False,
                                np.ones(3), False)
    np.testing.assert_allclose(gram, [[5.0, -2.0], [-2.0, 1.0]])
    np.testing.assert_allclose(moment, [[3.0, 0.0], [-1.0, 0.0]])


def test_next_state_values_twin_by_hand():
    """q = phi.w - beta * bonus, capped at ``upper``, truncated at 0, known values override,
    terminal rows 0. Elliptical bonus with Lambda^{-1} = diag(4, 1): action 0 (phi = e1) has
    bonus 2, action 1 (phi = e2) bonus 1."""
    nf = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 3)
    w = np.array([3.0, 0.5])
    lam_inv = np.diag([4.0, 1.0])
    got = roff.next_state_values(nf, w, lam_inv, -1.0, "elliptical", 2.5, True, None,
                                 np.array([True, True, False]))
    # q = (3 - 2, .5 - 1) = (1, -.5) -> truncated (1, 0) -> max 1
    np.testing.assert_allclose(got, [1.0, 1.0, 0.0])
    got = roff.next_state_values(nf, w, lam_inv, 0.0, "elliptical", 2.5, False, None,
                                 np.ones(3, dtype=bool))
    np.testing.assert_allclose(got, [2.5, 2.5, 2.5])  # 3 capped at 2.5
    known = np.array([[np.nan, 7.0]] * 3)
    got = roff.next_state_values(nf, w, lam_inv, 0.0, "none", 2.5, False, known,
                                 np.ones(3, dtype=bool))
    np.testing.assert_allclose(got, [7.0, 7.0, 7.0])
    vals, lo, lo_reg = roff.next_state_values_minima(
        nf, w, lam_inv, -1.0, "elliptical", 2.5, False, None, np.array([True, True, False]),
        np.array([False, True, True]))
    np.testing.assert_allclose(vals, [1.0, 1.0, 0.0])
    assert (lo, lo_reg) == (0.0, 0.0)


# ------------------------------------------------------------------------------------------
# bonus, ridge, value iteration, policy and GLOW twins
# ------------------------------------------------------------------------------------------
def test_bonus_twins_by_hand():
    """phi = (3, -4), Lambda^{-1} = diag(4, 1) plus off-diagonal .5: elliptical
    sqrt(phi^T L phi) = sqrt(36 + 16 - 12) = sqrt 40; d-rectangular l1 sum |phi_i| sqrt(L_ii)
    = 6 + 4 = 10; l2 sqrt(sum phi_i^2 L_ii) = sqrt(36 + 16) = sqrt 52. Fails with phi_i instead
    of |phi_i| in l1 (2 instead of 10)."""
    phi = np.array([[3.0, -4.0]])
    L = np.array([[4.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(rbonus.bonus(phi, L, "elliptical"), [math.sqrt(40.0)])
    np.testing.assert_allclose(rbonus.bonus(phi, L, "d_rectangular_l1"), [10.0])
    np.testing.assert_allclose(rbonus.bonus(phi, L, "d_rectangular_l2"), [math.sqrt(52.0)])
    np.testing.assert_array_equal(rbonus.bonus(phi, L, "none"), [0.0])
    # a tiny negative quadratic form from rounding is floored at 0, not NaN
    assert rbonus.elliptical_bonus(np.array([1.0, -1.0]), np.array([[1.0, 1.0 + 1e-15],
                                                                     [1.0 + 1e-15, 1.0]])) >= 0


def test_ridge_twins_by_hand():
    """Phi = ((1, 0), (1, 1)), weights (1, 2), ridge 1: Lambda = I + (1 0; 0 0) + 2 (1 1; 1 1)
    = (4 2; 2 3), det 8, inverse (3 -2; -2 4) / 8; Sherman-Morrison of adding x = (0, 1) with
    weight 2 to Lambda = diag(1, 1) gives diag(1, 1/3)."""
    phi = np.array([[1.0, 0.0], [1.0, 1.0]])
    w = np.array([1.0, 2.0])
    np.testing.assert_allclose(rridge.gram_matrix(phi, 1.0, w), [[4.0, 2.0], [2.0, 3.0]])
    np.testing.assert_allclose(rridge.gram_inverse(phi, 1.0, w),
                               np.array([[3.0, -2.0], [-2.0, 4.0]]) / 8.0)
    # targets (1, 2): Phi^T W y = (1 + 4, 4) = (5, 4); solve: (3*5 - 2*4, -2*5 + 4*4) / 8
    np.testing.assert_allclose(rridge.ridge_solve(phi, np.array([[1.0], [2.0]]), 1.0, w),
                               [[7.0 / 8.0], [6.0 / 8.0]])
    L = np.eye(2)
    rridge.sherman_morrison_update(L, np.array([0.0, 1.0]), 2.0)
    np.testing.assert_allclose(L, np.diag([1.0, 1.0 / 3.0]))
    gram = np.zeros((2, 2))
    rridge.sparse_gram_into(gram, phi, w, True)
    np.testing.assert_allclose(gram, [[3.0, 2.0], [2.0, 2.0]])


def test_value_iteration_twins_by_hand():
    """One state, actions e1 and e2, H = 2, weights (1, .2) at step 0 and (1.5, .2) at step 1,
    no factors: Q_1 = (1.5, .2) capped at H - 1 = 1 (fails with the cap H); with a factor
    moving all mass to the same state, step 0 adds V_1 = 1: (2, 1.2) capped at 2. A positive
    sign adds the bonus (optimism)."""
    feats = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    weights = np.array([[1.0, 0.2], [1.5, 0.2]])
    L = np.stack([np.eye(2)] * 2)
    q, v, pol = rvi.backward_value_iteration(weights, feats, L, 0.0, "none", -1)
    np.testing.assert_allclose(q[:, 0], [[1.0, 0.2], [1.0, 0.2]])
    factors = np.ones((2, 2, 1))
    q, v, pol = rvi.backward_value_iteration(weights, feats, L, 0.0, "none", -1, factors)
    np.testing.assert_allclose(q[:, 0], [[2.0, 1.2], [1.0, 0.2]])
    np.testing.assert_allclose(v[:, 0], [2.0, 1.0, 0.0])
    np.testing.assert_array_equal(pol[:, 0], [0, 0])
    np.testing.assert_allclose(rvi.greedy_q_values(feats[0], weights[0], L[0], 0.5, 0, 2,
                                                   "elliptical", +1), [1.5, 0.7])
    # LSVI on one sample per step (phi = e1, reward 1, ridge 1): w_1 = (1/2, 0), next value
    # max(1/2, 0) = 1/2, w_0 = ((1 + 1/2) / 2, 0) = (3/4, 0)
    f = np.array([[[1.0, 0.0]], [[1.0, 0.0]]])
    nf = np.array([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 0.0], [0.0, 1.0]]]])
    w, lam_inv, nv = rvi.lsvi_backward_pass(f, np.ones((2, 1)), nf, np.ones((2, 1), bool), 1.0,
                                            0.0, "none", -1)
    np.testing.assert_allclose(w, [[0.75, 0.0], [0.5, 0.0]])
    np.testing.assert_allclose(nv, [[0.5], [0.0]])
    np.testing.assert_allclose(lam_inv[0], np.diag([0.5, 1.0]))


@pytest.mark.parametrize("mod", [pytest.param("twin", id="twin"),
                                 pytest.param("kernel", id="kernel")])
def test_policy_twins_near_ties_and_sampling_boundaries(mod):
    """Huge equal logits (1000, 1000): log-probs -log 2 each (a naive exp overflows); a gap of
    1e-12 at inverse temperature 1: still ~1/2 each. Inverse-CDF sampling with probabilities
    (.25, 0, .75): u = 0 -> 0, u = .25 exactly -> 2 (strict inequality on the cumulative mass,
    and never the zero-probability action 1), u just below 1 -> 2."""
    log_softmax = rpol.log_softmax if mod == "twin" else kpol.log_softmax_rows
    sample = rpol.sample_actions if mod == "twin" else kpol.sample_rows
    got = log_softmax(np.array([[1000.0, 1000.0]]), 1.0)
    np.testing.assert_allclose(got, [[-math.log(2.0)] * 2], rtol=1e-12)  # 1000 - 1000.69...
    got = np.exp(log_softmax(np.array([[0.0, 1e-12]]), 1.0))
    np.testing.assert_allclose(got, [[0.5, 0.5]], atol=1e-12)
    got = log_softmax(np.array([[0.0, math.log(3.0)]]), 2.0)  # probabilities 1/10, 9/10
    np.testing.assert_allclose(np.exp(got), [[0.1, 0.9]], rtol=1e-12)
    probs = np.tile([0.25, 0.0, 0.75], (4, 1))
    u = np.array([0.0, 0.25, np.nextafter(1.0, 0.0), 0.2499999])
    np.testing.assert_array_equal(sample(probs, u), [0, 2, 2, 0])
    lp = (rpol if mod == "twin" else kpol).regularized_log_policy(
        np.array([[math.log(0.5), -np.inf, math.log(0.5)]]),
        np.array([[0.0, 5.0, math.log(3.0)]]), 1.0, 1.0)
    # pi ∝ pi_ref^1 exp(q): (.5, 0, 1.5) -> (1/4, 0, 3/4); the zero-probability action stays 0
    np.testing.assert_allclose(np.exp(lp), [[0.25, 0.0, 0.75]], rtol=1e-12)


def test_glow_twins_by_hand():
    """One step, one state-action, one tuple with reward .2, f = 1: residual .8. With w = .7,
    gamma = 1, alpha = 1: (.8 * .7 - .49) / 1 = .07; w = 2 is clipped to gamma = 1: .8 - 1 =
    -.2. The full class maximises c .8 - c^2 on [0, 1] at the interior c = .4: .16 (the
    endpoints give 0 and -.2). Fails when only the endpoints are compared (0 instead of .16)
    or the weights are not clipped at gamma (1.6 - 4 = -2.4)."""
    F = np.ones((1, 1, 1, 1))
    W = np.array([0.7, 2.0]).reshape(2, 1, 1, 1)
    data = ([0], [0], [0], [0.2], [0])
    np.testing.assert_allclose(rglow.glow_objective(F, W, *data, 1.0, 1.0)[0, 0], [0.07, -0.2],
                               rtol=1e-12)
    np.testing.assert_allclose(rglow.full_class_objective(F, *data, 1.0, 1.0), [[0.16]],
                               rtol=1e-12)
    np.testing.assert_allclose(rglow.full_class_objective(F, *data, 1.0, 0.25), [[0.55]],
                               rtol=1e-12)  # stationary point 1.6 clipped to gamma = 1
    # two steps: the step-0 target is max_a f_1(s', a) = 1, so the residual is 1 - .2 - 1
    F2 = np.ones((1, 2, 1, 2))
    out = rglow.glow_objective(F2, np.full((1, 2, 1, 2), 0.5), [0], [0], [1], [0.2], [0], 1.0,
                               0.0)
    np.testing.assert_allclose(out[:, 0, 0], [-0.1, 0.0], atol=1e-15)
