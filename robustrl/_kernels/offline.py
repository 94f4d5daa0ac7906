"""Numba kernels for the per-coordinate dual estimators of the offline agents (arXiv:2411.18612,
docs/algorithms/r2pvi.md; docs/algorithms/drpvi.md).

Each kernel takes the next-state values ``v`` (K,) shared by every coordinate and the regression
matrix ``xi = Lambda^{-1} Phi^T W`` (d, K), whose row ``i`` holds the signed weights with which
the data estimate factor ``i``; ``v`` is sorted once for all ``d`` rows. Inputs are trusted
(C-contiguous float64, finite); the agents in :mod:`robustrl.agents` prepare them.

A coordinate whose radius is 0 is not uncertain: it gets the plain regression estimate
``sum_j xi_ij v_j`` (the dual's rho -> 0 limit for exact weights, and what the exact DP uses).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from robustrl._kernels.bonus import (
    BONUS_D_RECTANGULAR_L1,
    BONUS_D_RECTANGULAR_L2,
    BONUS_ELLIPTICAL,
    BONUS_NONE,
)
from robustrl._kernels.divergence import _chi2_regularized_sorted, tv_dual_sorted_rows
from robustrl._kernels.ridge import VECTORISE

# Golden-section ratio and the width (in log alpha) of the DRVI-L search bracket.
_INV_PHI = 0.6180339887498949
KL_LOG_BRACKET = 40.0
_KL_LOG_TOL = 1e-10
# DRVI-L's search switches from golden section to Newton at this bracket width (log alpha)
_KL_NEWTON_FROM = 1e-1
_KL_NEWTON_STEPS = 30


@njit(cache=True)
def _row_dot(xi, i, v):
    acc = 0.0
    for j in range(v.shape[0]):
        acc += xi[i, j] * v[j]
    return acc


def stable_order(v: np.ndarray) -> np.ndarray:
    """Stable ascending order of ``v`` by NumPy (the same permutation as a stable sort inside a
    kernel): sorting in NumPy spares every kernel that needs an order Numba's sort
    implementations, which cost seconds of compilation on a cold cache."""
    return np.argsort(v, kind="stable")


def tv_dual_rows(v, xi, rho, v_min):
    """DRPVI (arXiv:2411.18612 baselines, docs/algorithms/drpvi.md): per row, max over alpha in
    {v_min} U {v_j} of
    ``sum_j xi_ij min(v_j, alpha) - rho_i (alpha - v_min)``, exact by sort and cumulative sums
    (:func:`tv_dual_rows_ordered` on the stable order of ``v``)."""
    return tv_dual_rows_ordered(v, xi, rho, v_min, stable_order(v))


@njit(cache=True)
def tv_dual_rows_ordered(v, xi, rho, v_min, order):
    """:func:`tv_dual_rows` given ``order``, the stable ascending order of ``v``."""
    n = v.shape[0]
    d = xi.shape[0]
    if n == 0:
        return np.zeros(d)
    w_sorted = np.empty((n, d))  # the rows' weights, transposed so the scan runs across rows
    for j in range(n):
        for i in range(d):
            w_sorted[j, i] = xi[i, order[j]]
    out = tv_dual_sorted_rows(v[order], w_sorted, rho, v_min)
    for i in range(d):
        if rho[i] == 0.0:
            out[i] = _row_dot(xi, i, v)
    return out


def chi2_regularized_rows(v, xi, lam):
    """R2PVI chi2 (arXiv:2411.18612, docs/algorithms/r2pvi.md): per row, max over alpha in [min v,
    max v] of
    ``z1 - (z2 - z1^2) / (4 lam)``, ``z_k = sum_j xi_ij min(v_j, alpha)^k``, exact by segments
    (:func:`chi2_regularized_rows_ordered` on the stable order of ``v``)."""
    return chi2_regularized_rows_ordered(v, xi, lam, stable_order(v))


@njit(cache=True)
def chi2_regularized_rows_ordered(v, xi, lam, order):
    """:func:`chi2_regularized_rows` given ``order``, the stable ascending order of ``v``."""
    n = v.shape[0]
    d = xi.shape[0]
    out = np.empty(d)
    if n == 0:
        out[:] = 0.0
        return out
    v_sorted = v[order]
    w = np.empty(n)
    for i in range(d):
        for j in range(n):
            w[j] = xi[i, order[j]]
        out[i] = _chi2_regularized_sorted(v_sorted, w, lam, False)
    return out


# exp_neg_into: Cody-Waite reduction y = n ln2 + r, |r| <= ln2 / 2, exp(r) by its Taylor
# polynomial of degree 13 (remainder below 4e-18), times 2^n built in the exponent bits
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: n * _LN2_HI is exact for |n| < 2^21
_LN2_LO = 1.90821492927058770002e-10
# below the smallest normal, 2^-1022 = exp(-708.396): a term of at most 2.2e-308 |w| is
# dropped (libm's result is a subnormal there), far below any sum's rounding
_EXP_NORMAL_BEYOND = 708.39


@njit(cache=True, fastmath={"contract"})
def exp_neg_into(x, scale, m, out, bits):
    """``out[k] = exp(-x[k] * scale)`` for ``k < m``, ``x[k] * scale >= 0`` (0 where that
    exceeds 708.39, i.e. where the result is not a normal number), within 2 ulps of NumPy's.

    Written for SIMD: no call, no branch but a select, so LLVM vectorises the loop (AVX-512:
    8 lanes), about 4x libm's scalar ``exp`` per term, which is what DRVI-L's search spends its
    time on. ``bits`` (int64, at least ``m``) is scratch for the powers of two. Only
    ``contract`` (fused multiply-add) is allowed: ``reassoc`` would fold the two-part
    reduction ``y - n ln2_hi - n ln2_lo`` into one product and lose its extra bits, so this
    kernel must not be inlined into, or called from, a ``reassoc`` kernel (a callee takes its
    caller's flags)."""
    powers = bits[:m].view(np.float64)
    for k in range(m):
        y = min(x[k] * scale, _EXP_NORMAL_BEYOND)
        n = np.floor(y * _LOG2E + 0.5)
        r = (n * _LN2_HI - y) + n * _LN2_LO  # = -(y - n ln2), in [-ln2/2, ln2/2]
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[k] = p if y < _EXP_NORMAL_BEYOND else 0.0
        bits[k] = (1023 - np.int64(n)) << 52
    for k in range(m):
        out[k] = out[k] * powers[k]


@njit(cache=True, fastmath=VECTORISE)
def _weighted_sum(w, e, m):
    """``sum_k w[k] e[k]`` for ``k < m``, in any order (vectorised)."""
    s = 0.0
    for k in range(m):
        s += w[k] * e[k]
    return s


@njit(cache=True)
def kl_dual_objective(w, x, m, alpha, rho, log_floor, centered, shift, e, bits):
    """DRVI-L objective ``-alpha log max(z, z_floor) - alpha rho`` at one alpha > 0 of one row
    (arXiv:2411.18612 baselines, docs/algorithms/drpvi.md), given the row's ``m`` nonzero
    weights ``w[:m]`` and their values ``x[:m]`` (the zero weights add nothing to either sum,
    so the sums are those over the whole row); ``e`` (float64) and ``bits`` (int64), at least
    ``m`` long, are scratch.

    ``centered=False``: ``x`` holds ``v_j - shift``, and ``z = sum_j xi_ij exp(-v_j / alpha)``
    (the formula of docs/algorithms/drvi_l.md) is written as ``exp(-shift / alpha) S`` with
    ``S = sum_j xi_ij exp(-(v_j - shift) / alpha)`` and ``shift`` the smallest value the row
    weights; the floor clips ``S`` (not z), so that exact data are never clipped however small
    ``exp(-shift / alpha)`` is, and only a (near) non-positive estimate is. ``S`` is summed by
    :func:`exp_neg_into` and :func:`_weighted_sum` (SIMD; within a few ulps of the sum of
    libm's terms in row order).
    ``centered=True``: ``x`` holds ``v_j``, and ``z = 1 + sum_j xi_ij (exp(-v_j / alpha) - 1)``,
    the authors' code (it regresses ``exp(-V/alpha) - 1`` and adds 1 back), so a coordinate
    without data gets z = 1; summed in row order with libm's ``expm1``.
    """
    if centered:
        z = 1.0
        for k in range(m):
            z += w[k] * math.expm1(-x[k] / alpha)
        log_z = math.log(z) if z > 0.0 else -np.inf
        if log_z < log_floor:
            log_z = log_floor
        return -alpha * log_z - alpha * rho
    exp_neg_into(x, 1.0 / alpha, m, e, bits)
    s = _weighted_sum(w, e, m)
    # The floor applies to the shifted sum, so it only bites where the estimate is (near)
    # non-positive, never merely because exp(-shift / alpha) is small.
    return shift - alpha * max(math.log(s) if s > 0.0 else -np.inf, log_floor) - alpha * rho


@njit(cache=True, fastmath=VECTORISE)
def _weighted_moments(w, x, e, m):
    """``sum_k w_k e_k``, ``sum_k w_k e_k x_k`` and ``sum_k w_k e_k x_k^2`` (any order)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for k in range(m):
        a = w[k] * e[k]
        b = a * x[k]
        s0 += a
        s1 += b
        s2 += b * x[k]
    return s0, s1, s2


@njit(cache=True)
def _kl_moments_at(w, x, m, t, e, bits):
    """``alpha = exp(t)`` and the sums of ``w_k e_k`` times ``1, x_k, x_k^2``,
    ``e_k = exp(-x_k / alpha)``."""
    alpha = math.exp(t)
    exp_neg_into(x, 1.0 / alpha, m, e, bits)
    s0, s1, s2 = _weighted_moments(w, x, e, m)
    return alpha, s0, s1, s2


@njit(cache=True)
def _kl_above_floor(s0, log_floor):
    """Whether the estimate ``S`` lies above the floor (where the objective is smooth)."""
    return s0 > 0.0 and math.log(s0) > log_floor


@njit(cache=True)
def _kl_slope(alpha, s0, s1, rho):
    """``df/dt`` of the uncentred DRVI-L objective (above the floor) in ``t = log alpha``."""
    return -alpha * (math.log(s0) + rho) - s1 / s0


@njit(cache=True)
def _kl_curvature(alpha, s0, s1, s2, slope):
    """``d2f/dt2 = df/dt - (S_2 / S - (S_1 / S)^2) / alpha`` (above the floor)."""
    return slope - (s2 / s0 - (s1 / s0) ** 2) / alpha


@njit(cache=True)
def _kl_kink(w, x, m, below, above, rho, log_floor, shift, best, e, bits):
    """The floor's kink of the uncentred DRVI-L objective between ``below`` (where ``S <=
    z_floor``: there ``f = shift - alpha (log z_floor + rho)``, rising with alpha) and
    ``above`` (``S > z_floor`` or the bracket's end), in ``t = log alpha``: the crossing of
    ``S`` and ``z_floor``, by Newton on ``S`` (``dS/dt = S_1 / alpha``) from the latest point,
    bisection where a step leaves the bracket. Converged, the crossing is known far below
    ``_KL_LOG_TOL`` (quadratic convergence), and so is the objective there. Returns
    ``(done, best)``: done when the crossing is found and ``f`` falls just beyond it (a
    maximum)."""
    floor = math.exp(log_floor)
    cur = below
    alpha, s0, s1, s2 = _kl_moments_at(w, x, m, cur, e, bits)
    for _ in range(_KL_NEWTON_STEPS + 60):
        nxt = 0.5 * (below + above)
        newton = False
        if s1 > 0.0:
            guess = cur + (floor - s0) * alpha / s1
            if below <= guess <= above:
                nxt = guess
                newton = True
        if newton and abs(nxt - cur) <= _KL_LOG_TOL:
            f = shift - math.exp(nxt) * (log_floor + rho)
            if f > best:
                best = f
            alpha, s0, s1, s2 = _kl_moments_at(w, x, m, nxt + _KL_LOG_TOL, e, bits)
            return s0 > floor and _kl_slope(alpha, s0, s1, rho) < 0.0, best
        if above - below <= _KL_LOG_TOL:
            return False, best
        cur = nxt
        alpha, s0, s1, s2 = _kl_moments_at(w, x, m, cur, e, bits)
        if s0 > floor:
            above = cur
        else:
            below = cur
    return False, best


@njit(cache=True)
def _kl_finish(w, x, m, t, lo, hi, top, rho, log_floor, shift, best, e, bits):
    """The end of DRVI-L's search (uncentred) from ``t``, the golden section's best point in
    its bracket ``(lo, hi)`` (``top``: the bracket's original upper end), with
    ``S, S_1, S_2`` the sums of ``w_k e_k`` times ``1, x_k, x_k^2``, ``e_k = exp(-x_k /
    alpha)``: above the floor the objective is ``f = shift - alpha log S - alpha rho``, with
    ``df/dt = -alpha (log S + rho) - S_1 / S`` and ``d2f/dt2 = df/dt - (S_2 / S - (S_1 /
    S)^2) / alpha`` in ``t = log alpha``, all from one set of exponentials. Three cases,
    each ending where the golden section would (to ``_KL_LOG_TOL`` in ``t`` or better):

    - concave: Newton's method on the slope; a step onto the floor turns to the kink;
    - at or below the floor (``S <= z_floor``): the maximum is the floor's kink
      (:func:`_kl_kink`);
    - convex and rising at ``t`` in a bracket that reaches ``top``, and still rising at
      ``top``: the maximum is at ``top``, whose value the search already has.

    Returns ``(done, best)``, ``best`` the largest objective value seen (this search's points
    included); not done (anything else: a step leaving the bracket, a crossing that is not a
    maximum) hands the search back to the golden section."""
    alpha, s0, s1, s2 = _kl_moments_at(w, x, m, t, e, bits)
    if not _kl_above_floor(s0, log_floor):
        return _kl_kink(w, x, m, t, hi, rho, log_floor, shift, best, e, bits)
    slope = _kl_slope(alpha, s0, s1, rho)
    curvature = _kl_curvature(alpha, s0, s1, s2, slope)
    if not curvature < 0.0:
        if slope > 0.0 and hi == top:
            alpha, s0, s1, s2 = _kl_moments_at(w, x, m, top, e, bits)
            return _kl_above_floor(s0, log_floor) and _kl_slope(alpha, s0, s1, rho) > 0.0, best
        return False, best
    for _ in range(_KL_NEWTON_STEPS):
        f = shift - alpha * math.log(s0) - alpha * rho
        if f > best:
            best = f
        step = -slope / curvature
        if abs(step) <= _KL_LOG_TOL:
            return True, best
        previous = t
        t = t + step
        if not lo < t < hi:
            return False, best
        alpha, s0, s1, s2 = _kl_moments_at(w, x, m, t, e, bits)
        if not _kl_above_floor(s0, log_floor):
            if t < previous:  # the floor lies below, the last point above it
                return _kl_kink(w, x, m, t, previous, rho, log_floor, shift, best, e, bits)
            return False, best
        slope = _kl_slope(alpha, s0, s1, rho)
        curvature = _kl_curvature(alpha, s0, s1, s2, slope)
        if not curvature < 0.0:
            return False, best
    return False, best


@njit(cache=True)
def kl_constrained_rows(v, xi, rho, z_floor, centered):
    """DRVI-L (arXiv:2411.18612 baselines, docs/algorithms/drpvi.md): per row, sup over alpha > 0 of
    :func:`kl_dual_objective`.

    For exact weights (a probability vector) the objective is concave and its maximiser lies
    below ``(E v - min v) / rho`` (Jensen), so the search bracket is
    ``log alpha in [log a_hi - 40, log a_hi]`` with ``a_hi = spread / rho``: ``spread`` is the range
    of the values the row weights (``centered=True`` adds the value 0, which the centring
    implicitly puts the missing mass on). Golden section in ``log alpha``, both end points
    evaluated, the best point seen returned; the centred form runs it down to a 1e-10
    bracket, the uncentred one down to ``_KL_NEWTON_FROM`` (0.1) and then ends it by
    :func:`_kl_finish` (Newton on the slope, the floor's kink, or the bracket's top), which
    lands where the golden section would, in about 3 evaluations instead of 43
    (where it cannot, the golden section goes on). With signed regression weights the
    objective need not be concave and the search returns a local maximum. A row with no
    nonzero weight (no data) gets 0, the ridge estimate.

    Each row's nonzero weights are gathered once, so a search step costs O(nonzeros), not O(K),
    and its exponentials are taken in SIMD lanes (:func:`exp_neg_into`).
    """
    n = v.shape[0]
    d = xi.shape[0]
    out = np.zeros(d)
    log_floor = math.log(z_floor)
    w = np.empty(n)
    x = np.empty(n)
    e = np.empty(n)
    bits = np.empty(n, dtype=np.int64)
    for i in range(d):
        if n == 0:
            continue
        if rho[i] == 0.0:
            out[i] = _row_dot(xi, i, v)
            continue
        m = 0
        lo_v = np.inf
        hi_v = -np.inf
        for j in range(n):
            if xi[i, j] != 0.0:
                w[m] = xi[i, j]
                x[m] = v[j]
                m += 1
                lo_v = min(lo_v, v[j])
                hi_v = max(hi_v, v[j])
        if m == 0:
            continue
        if centered:
            lo_v = min(lo_v, 0.0)
            hi_v = max(hi_v, 0.0)
        else:
            for k in range(m):
                x[k] = x[k] - lo_v
        spread = max(hi_v - lo_v, 1e-8 * max(1.0, abs(lo_v), abs(hi_v)))
        r = rho[i]
        hi = math.log(spread / r)
        lo = hi - KL_LOG_BRACKET
        top = hi
        best = max(
            kl_dual_objective(w, x, m, math.exp(lo), r, log_floor, centered, lo_v, e, bits),
            kl_dual_objective(w, x, m, math.exp(hi), r, log_floor, centered, lo_v, e, bits),
        )
        x1 = hi - _INV_PHI * (hi - lo)
        x2 = lo + _INV_PHI * (hi - lo)
        f1 = kl_dual_objective(w, x, m, math.exp(x1), r, log_floor, centered, lo_v, e, bits)
        f2 = kl_dual_objective(w, x, m, math.exp(x2), r, log_floor, centered, lo_v, e, bits)
        best = max(best, f1, f2)
        # golden section to a bracket of _KL_NEWTON_FROM, then Newton from its best point;
        # where Newton stops short (the floor, a convex stretch, a step out of the bracket)
        # the golden section goes on from where it was, down to _KL_LOG_TOL
        width = _KL_LOG_TOL if centered else _KL_NEWTON_FROM
        while True:
            while hi - lo > width:
                if f1 >= f2:
                    hi = x2
                    x2 = x1
                    f2 = f1
                    x1 = hi - _INV_PHI * (hi - lo)
                    f1 = kl_dual_objective(w, x, m, math.exp(x1), r, log_floor, centered,
                                           lo_v, e, bits)
                    if f1 > best:
                        best = f1
                else:
                    lo = x1
                    x1 = x2
                    f1 = f2
                    x2 = lo + _INV_PHI * (hi - lo)
                    f2 = kl_dual_objective(w, x, m, math.exp(x2), r, log_floor, centered,
                                           lo_v, e, bits)
                    if f2 > best:
                        best = f2
            if width == _KL_LOG_TOL:
                break
            width = _KL_LOG_TOL
            done, best = _kl_finish(w, x, m, x1 if f1 >= f2 else x2, lo, hi, top, r,
                                    log_floor, lo_v, best, e, bits)
            if done:
                break
        out[i] = best
    return out


# --------------------------------------------------------------------------------------------
# the backward pass's per-sample work (arXiv:2411.18612, docs/algorithms/r2pvi.md): next-state
# values and value grouping
@njit(cache=True, fastmath=VECTORISE)
def _bonus_scale(lambda_inv, code):
    """Per-coordinate factor of the d-rectangular bonuses: ``sqrt([Lambda^-1]_ii)`` (L1 form)
    or ``[Lambda^-1]_ii`` (L2 form); unused by the other bonuses."""
    dim = lambda_inv.shape[0]
    scale = np.empty(dim)
    if code == BONUS_D_RECTANGULAR_L1:
        for i in range(dim):
            scale[i] = np.sqrt(lambda_inv[i, i])
    elif code == BONUS_D_RECTANGULAR_L2:
        for i in range(dim):
            scale[i] = lambda_inv[i, i]
    return scale


#: Feature dimension up to which clipped_q_rows runs its dense O(d) loops on every row (but
#: for the elliptical bonus, whose dense loop is O(d^2)): there the search for the (at most
#: two) nonzero entries, a data-dependent branch per entry, costs more than the loops (the
#: simulated MDP's d = 4 with a d-rectangular bonus: 8.2 -> 4.5 ns per state-action pair).
#: Both paths give the same bits (see _sparse_q), so this is a matter of speed only.
_DENSE_Q_DIM = 8


@njit(cache=True, fastmath=VECTORISE)  # its caller's flags, which a callee takes anyway
def _sparse_q(fa, fb, wa, wb, l_aa, l_ab, l_ba, l_bb, sa, sb, code, use_bonus, has_bonus,
              given, signed_beta):
    """``phi^T w + signed_beta * Gamma(phi)`` for a feature vector whose only nonzero entries
    are ``fa`` (the first) and ``fb`` (zeros, with zero weights, ``Lambda^-1`` entries and
    scales, stand for absent ones), as the general loops of :func:`clipped_q_rows` compute it
    (``given``: the bonus where ``has_bonus``). With two nonzero terms a sum is one rounding in
    any order, and an absent term adds an exact zero, so the result is the loops' to the bit.
    Every product has two factors or a sum for one: under ``reassoc`` a chain ``a * (b * a)``
    may be regrouped, which the loops' ``x * acc`` (a loop's sum) never is."""
    q = fa * wa + fb * wb
    if use_bonus:
        if has_bonus:
            b = given
        elif code == BONUS_D_RECTANGULAR_L1:
            b = abs(fa) * sa + abs(fb) * sb
        elif code == BONUS_D_RECTANGULAR_L2:
            b = np.sqrt(fa * fa * sa + fb * fb * sb)
        else:
            b = fa * (l_aa * fa + l_ab * fb) + fb * (l_ba * fa + l_bb * fb)
            b = np.sqrt(max(b, 0.0))
        q += signed_beta * b
    return q


@njit(cache=True, fastmath=VECTORISE)
def clipped_q_rows(features, rows, n_rows, weights, lambda_inv, scale, signed_beta, code,
                   upper, truncate_below, known, has_known, bonus, has_bonus, out, best):
    """The learned, clipped action values at the rows ``rows[:n_rows]`` of ``features (n, A,
    d)`` (any layout): ``out[t, a] = min(phi^T w + signed_beta * Gamma(phi), upper)``, then
    ``max(., 0)`` when ``truncate_below``, with ``phi = features[rows[t], a]``; ``known[k, a]``
    instead where ``has_known`` and it is not NaN; ``best[t]`` the maximum over actions. The
    one implementation of the offline agents' Q (arXiv:2411.18612, Algorithm 1 line 9).
    ``scale``: :func:`_bonus_scale`; ``bonus[k, a]`` the bonus where ``has_bonus``. An ``out``
    with no rows (``(0, A)``) keeps only the maxima: no scratch that grows with the rows.

    Many rows per call: Numba keeps reference-count updates around each call of a function
    taking arrays, which cost more than the arithmetic at small ``d`` (a call per action made
    the simulated MDP's fits several times slower, a call per row cost the put's tie check a
    fifth of its time)."""
    n_actions, dim = features.shape[1], features.shape[2]
    keep = out.shape[0] > 0
    use_bonus = code != BONUS_NONE and signed_beta != 0.0
    dense_loops = dim <= _DENSE_Q_DIM and not (use_bonus and code == BONUS_ELLIPTICAL)
    for t in range(n_rows):
        k = rows[t]
        top = -np.inf
        for a in range(n_actions):
            if has_known and not np.isnan(known[k, a]):
                q = known[k, a]
            else:
                # at most two nonzero entries (hat features, one-hot ones): the sums over them
                # alone. With two nonzero terms a sum is one rounding whatever the order, so this
                # is the dense loops' result to the bit, without their O(d) and O(nnz d) work.
                first = -1
                second = -1
                count = 3  # the dense loops, without the search (see dense_loops)
                if not dense_loops:
                    count = 0
                    for i in range(dim):
                        if features[k, a, i] != 0.0:
                            if count == 0:
                                first = i
                            elif count == 1:
                                second = i
                            count += 1
                            if count > 2:
                                break
                if count <= 2:
                    fa = fb = wa = wb = l_aa = l_ab = l_ba = l_bb = sa = sb = given = 0.0
                    if count >= 1:
                        fa, wa = features[k, a, first], weights[first]
                    if count == 2:
                        fb, wb = features[k, a, second], weights[second]
                    if use_bonus and has_bonus:
                        given = bonus[k, a]
                    elif use_bonus and count >= 1:
                        sa, l_aa = scale[first], lambda_inv[first, first]
                        if count == 2:
                            sb, l_bb = scale[second], lambda_inv[second, second]
                            l_ab, l_ba = lambda_inv[first, second], lambda_inv[second, first]
                    q = _sparse_q(fa, fb, wa, wb, l_aa, l_ab, l_ba, l_bb, sa, sb, code, use_bonus,
                                  has_bonus, given, signed_beta)
                else:
                    q = 0.0
                    for i in range(dim):
                        q += features[k, a, i] * weights[i]
                    if use_bonus:
                        b = 0.0
                        if has_bonus:
                            b = bonus[k, a]
                        elif code == BONUS_D_RECTANGULAR_L1:
                            for i in range(dim):
                                b += abs(features[k, a, i]) * scale[i]
                        elif code == BONUS_D_RECTANGULAR_L2:
                            for i in range(dim):
                                b += features[k, a, i] * features[k, a, i] * scale[i]
                            b = np.sqrt(b)
                        else:
                            for i in range(dim):
                                x = features[k, a, i]
                                # zero entries add nothing: O(nnz d) per vector for sparse (hat,
                                # one-hot) features instead of O(d^2)
                                if x == 0.0:
                                    continue
                                acc = 0.0
                                for j in range(dim):
                                    acc += lambda_inv[i, j] * features[k, a, j]
                                b += x * acc
                            b = np.sqrt(max(b, 0.0))
                        q += signed_beta * b
                q = min(q, upper)
                if truncate_below:
                    q = max(q, 0.0)
            if keep:
                out[t, a] = q
            if q > top:
                top = q
        best[t] = top


@njit(cache=True)
def clipped_q(features, weights, lambda_inv, signed_beta, code, upper, truncate_below, known,
              has_known, bonus, has_bonus):
    """``Q (n, A)`` at ``features (n, A, d)`` (any layout), by :func:`clipped_q_rows`."""
    n, n_actions, _ = features.shape
    out = np.empty((n, n_actions))
    # contiguous, the argument types of the compiled pass's call, so that one compiled
    # clipped_q_rows serves both (a second would compile on a cold cache)
    feats, kn = np.ascontiguousarray(features), np.ascontiguousarray(known)
    clipped_q_rows(feats, np.arange(n), n, weights, lambda_inv, _bonus_scale(lambda_inv, code),
                   signed_beta, code, upper, truncate_below, kn, has_known, bonus, has_bonus,
                   out, np.empty(n))
    return out


@njit(cache=True)
def next_state_values(next_features, weights, lambda_inv, signed_beta, code, upper,
                      truncate_below, known, has_known, nonterminal, bonus, has_bonus):
    """``V(s'_k) = max_a Q(s'_k, a)`` for ``next_features (n, A, d)`` (any memory layout, so a
    strided step slice of the dataset is read in place, never copied), ``Q`` by
    :func:`clipped_q_rows`; ``V = 0`` where ``nonterminal`` is False."""
    n, n_actions, _ = next_features.shape
    live = np.empty(n, dtype=np.int64)
    m = np.int64(0)  # not the literal 0: a second clipped_q_rows specialisation
    for k in range(n):
        if nonterminal[k]:
            live[m] = k
            m += 1
    best = np.empty(n)
    clipped_q_rows(next_features, live, m, weights, lambda_inv, _bonus_scale(lambda_inv, code),
                   signed_beta, code, upper, truncate_below, known, has_known, bonus, has_bonus,
                   np.empty((0, n_actions)), best)
    out = np.zeros(n)
    for t in range(m):
        out[live[t]] = best[t]
    return out


@njit(cache=True)
def next_state_values_minima(next_features, weights, lambda_inv, signed_beta, code, upper,
                             truncate_below, known, has_known, nonterminal, bonus, has_bonus,
                             in_regression):
    """:func:`next_state_values` and :func:`value_minima` of the result in one call (the pass
    needs both before it forms a target): ``(values, min, min over regression rows)``."""
    values = next_state_values(next_features, weights, lambda_inv, signed_beta, code, upper,
                               truncate_below, known, has_known, nonterminal, bonus, has_bonus)
    lo, lo_regression = value_minima(values, in_regression)
    return values, lo, lo_regression


@njit(cache=True)
def group_rows(inverse, features, weights, n_groups):
    """``G[g] = sum_{k: inverse[k] = g} weights[k] phi_k``: per distinct value, the weighted
    feature sum, so that ``Lambda^{-1} G^T`` is the regression matrix of the distinct values."""
    n, dim = features.shape
    out = np.zeros((n_groups, dim))
    for k in range(n):
        w = weights[k]
        if w == 0.0:
            continue
        g = inverse[k]
        for i in range(dim):
            out[g, i] += w * features[k, i]
    return out


@njit(cache=True)
def gather_features(source, out, in_regression):
    """Copy ``source (n, d)`` (any layout: a step slice of a trajectory-major dataset) into the
    C-contiguous ``out`` and mark the rows with a nonzero entry; returns the number of nonzero
    entries (one pass over the features instead of a copy, a comparison and a reduction)."""
    n, dim = source.shape
    nnz = 0
    for k in range(n):
        inside = False
        for i in range(dim):
            x = source[k, i]
            out[k, i] = x
            if x != 0.0:
                inside = True
                nnz += 1
        in_regression[k] = inside
    return nnz


@njit(cache=True)
def moment_into(moment, features, rewards, target, has_target, weights, use_weights):
    """In place: ``moment[:, 0] += sum_k w_k r_k phi_k`` and, when ``has_target``,
    ``moment[:, 1] += sum_k w_k y_k phi_k`` (``Phi^T W [r, y]`` without forming ``[r, y]``),
    skipping zero feature entries; ``use_weights=False`` means unit weights. Any layout."""
    n, dim = features.shape
    for k in range(n):
        w = weights[k] if use_weights else 1.0
        if w == 0.0:
            continue
        wr = w * rewards[k]
        wy = w * target[k] if has_target else 0.0
        for i in range(dim):
            x = features[k, i]
            if x != 0.0:
                moment[i, 0] += x * wr
                if has_target:
                    moment[i, 1] += x * wy


@njit(cache=True)
def sparse_gram_moment_into(gram, moment, features, rewards, target, has_target, weights,
                            use_weights):
    """:func:`robustrl._kernels.ridge.sparse_gram_into` and :func:`moment_into` in one pass
    over the rows (same sums in the same order, so the same numbers): for sparse features the
    Gram matrix and the moments ``Phi^T W [r, y]`` touch only the nonzero entries."""
    n, dim = features.shape
    idx = np.empty(dim, dtype=np.int64)
    val = np.empty(dim)
    for k in range(n):
        w = weights[k] if use_weights else 1.0
        if w == 0.0:
            continue
        m = 0
        for i in range(dim):
            x = features[k, i]
            if x != 0.0:
                idx[m] = i
                val[m] = x
                m += 1
        wr = w * rewards[k]
        wy = w * target[k] if has_target else 0.0
        for a in range(m):
            va = w * val[a]
            ia = idx[a]
            gram[ia, ia] += va * val[a]
            for b in range(a + 1, m):
                p = va * val[b]
                gram[ia, idx[b]] += p
                gram[idx[b], ia] += p
            moment[ia, 0] += val[a] * wr
            if has_target:
                moment[ia, 1] += val[a] * wy


@njit(cache=True)
def kl_from_sum(s, shift, lam, cap, empty, truncate_below):
    """R2PVI-KL's ``nu`` (arXiv:2411.18612, docs/algorithms/r2pvi.md) from
    ``s = Xi exp(-(V - shift) / lam)``:
    ``min(shift - lam log s, cap)`` where ``s > 0`` and ``cap`` elsewhere, then ``max(., 0)``
    when ``truncate_below``; without data (``empty``) 0, or ``cap`` without ``truncate_below``."""
    d = s.shape[0]
    out = np.empty(d)
    for i in range(d):
        if empty:
            out[i] = 0.0 if truncate_below else cap
            continue
        x = cap
        if s[i] > 0.0:
            x = min(shift - lam * np.log(s[i]), cap)
        if truncate_below:
            x = max(x, 0.0)
        out[i] = x
    return out


@njit(cache=True)
def value_minima(values, in_regression):
    """``(min of values, min of the values of the rows in the regression)``, ``inf`` where
    empty: both running minima of a step's next-state values in one pass."""
    lo = np.inf
    lo_reg = np.inf
    for k in range(values.shape[0]):
        x = values[k]
        if x < lo:
            lo = x
        if in_regression[k] and x < lo_reg:
            lo_reg = x
    return lo, lo_reg


# group_by_value without a sort while a step has at most this many distinct values (the put's
# next-state values take at most H + 1, the simulated MDP's a handful)
_FEW_VALUES = 32


@njit(cache=True)
def _group_few_values(values, features, weights, in_regression):
    """:func:`group_by_value` by a scan over the distinct values seen so far (no sort of the
    n rows): each group's rows are summed in row order, as the stable sort does, so the sums
    are identical. Gives up (last output False) at more than ``_FEW_VALUES`` distinct values."""
    n, dim = features.shape
    u = np.empty(_FEW_VALUES)
    sums = np.zeros((_FEW_VALUES, dim))
    inside = np.zeros(_FEW_VALUES, dtype=np.bool_)
    m = 0
    g = -1
    for k in range(n):
        x = values[k]
        if g < 0 or u[g] != x:
            g = -1
            for j in range(m):
                if u[j] == x:
                    g = j
                    break
            if g < 0:
                if m == _FEW_VALUES:
                    return u[:0], sums[:0], inside[:0], False
                u[m] = x
                g = m
                m += 1
        if in_regression[k]:
            inside[g] = True
        w = weights[k]
        if w != 0.0:
            for i in range(dim):
                sums[g, i] += w * features[k, i]
    # ascending by insertion (at most _FEW_VALUES distinct values: no sort to compile)
    for a in range(1, m):
        j = a
        while j > 0 and u[j - 1] > u[j]:
            u[j - 1], u[j] = u[j], u[j - 1]
            inside[j - 1], inside[j] = inside[j], inside[j - 1]
            for i in range(dim):
                sums[j - 1, i], sums[j, i] = sums[j, i], sums[j - 1, i]
            j -= 1
    return u[:m], sums[:m], inside[:m], True


def group_by_value(values, features, weights, in_regression):
    """Distinct ``values`` (ascending), per distinct value the weighted feature sum
    ``G[g] = sum_{k: v_k = u_g} w_k phi_k`` and whether any of its rows enters the regression:
    a scan while there are few distinct values (:func:`_group_few_values`), else one stable
    NumPy sort and one pass over the rows (:func:`group_sorted`); ``np.unique`` plus
    :func:`group_rows` in one."""
    few = _group_few_values(values, features, weights, in_regression)
    if few[3]:
        return few[0], few[1], few[2]
    return group_sorted(values, features, weights, in_regression, stable_order(values))


@njit(cache=True)
def group_sorted(values, features, weights, in_regression, order):
    """:func:`group_by_value` given ``order``, the stable ascending order of ``values``: each
    group's rows are summed in row order."""
    n, dim = features.shape
    m = 0
    for j in range(n):
        if j == 0 or values[order[j]] != values[order[j - 1]]:
            m += 1
    u = np.empty(m)
    sums = np.zeros((m, dim))
    inside = np.zeros(m, dtype=np.bool_)
    g = -1
    for j in range(n):
        k = order[j]
        if j == 0 or values[k] != values[order[j - 1]]:
            g += 1
            u[g] = values[k]
        if in_regression[k]:
            inside[g] = True
        w = weights[k]
        if w != 0.0:
            for i in range(dim):
                sums[g, i] += w * features[k, i]
    return u, sums, inside


# --------------------------------------------------------------------------------------------
# R2PVI-KL with one shift per factor (arXiv 2411.18612, KL estimator of R2PVI): the sum
# Xi exp(-V / lam) of factor i is formed as exp(-m_i / lam) sum Xi_i exp(-(V - m_i) / lam) with m_i
# the smallest value factor i's regression row weights, so no factor underflows merely because
# its values lie far above another factor's.
@njit(cache=True)
def column_value_minima(features, values, out):
    """In place ``out[j] = min(out[j], min {values[k] : features[k, j] != 0})``: per feature
    column the smallest next-state value of the rows that load on it (any layout)."""
    n, dim = features.shape
    for k in range(n):
        x = values[k]
        for j in range(dim):
            if features[k, j] != 0.0 and x < out[j]:
                out[j] = x


@njit(cache=True)
def value_range_column_minima(features, values, out, width):
    """``(min values, max values)`` of a chunk and, when they are more than ``width`` apart,
    :func:`column_value_minima` into ``out`` (returns whether it scanned): the first read of
    R2PVI-KL per chunk in one call."""
    lo = np.inf
    hi = -np.inf
    for k in range(values.shape[0]):
        x = values[k]
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    scanned = hi - lo > width
    if scanned:
        column_value_minima(features, values, out)
    return lo, hi, scanned


@njit(cache=True)
def shifted_column_moment_into(out, features, values, weights, use_weights, shifts, lam, cutoff):
    """In place, for the "far" columns ``j`` with ``cutoff < shifts[j] < inf``:
    ``out[j] += sum_k w_k phi_kj exp(-(values[k] - shifts[j]) / lam)`` over the nonzero
    ``phi_kj`` (``use_weights=False``: unit weights). With ``shifts[j]`` the column's smallest
    value every exponent is <= 0 and the column's leading terms are ~1."""
    n, dim = features.shape
    far = False
    for j in range(dim):
        if cutoff < shifts[j] < np.inf:
            far = True
    if not far:  # the usual case: one O(d) check instead of a pass over the rows
        return
    for k in range(n):
        w = weights[k] if use_weights else 1.0
        if w == 0.0:
            continue
        x = values[k]
        for j in range(dim):
            f = features[k, j]
            if f != 0.0 and cutoff < shifts[j] < np.inf:
                out[j] += w * f * math.exp(-(x - shifts[j]) / lam)


@njit(cache=True)
def column_shifted_sums_into(mins, sums, features, values, weights, use_weights, lam):
    """In place, one pass over the nonzero ``phi_kj`` (any layout): per feature column ``j`` the
    smallest value ``mins[j]`` of the rows that load on it and
    ``sums[j] = sum_k w_k phi_kj exp(-(values[k] - mins[j]) / lam)`` (``use_weights=False``:
    unit weights), kept relative to the running minimum (rescaled when it drops, as in a
    streaming log-sum-exp), so every exponent is <= 0 and the leading terms are ~1. Start
    from ``mins = inf``, ``sums = 0``; chunks merge by calling it again."""
    n, dim = features.shape
    for k in range(n):
        w = weights[k] if use_weights else 1.0
        x = values[k]
        for j in range(dim):
            f = features[k, j]
            if f == 0.0:
                continue
            if x < mins[j]:
                if sums[j] != 0.0:
                    sums[j] *= math.exp(-(mins[j] - x) / lam)
                mins[j] = x
            if w != 0.0:
                sums[j] += w * f * math.exp(-(x - mins[j]) / lam)


@njit(cache=True)
def kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam, far_shift):
    """Per factor ``i`` of the moment path: ``(s_i, m_i, a_i)``, the sum of
    ``Xi_i exp(-(V - m_i) / lam)``, its shift and the sum of its absolute terms.

    ``m_i`` is the smallest column minimum ``columns[j]`` over the columns ``j`` that row ``i`` of
    ``Lambda^{-1}`` loads on. Within ``far_shift * lam`` of ``v_min`` the global-shift sum
    ``z_i = (Lambda^{-1} moment)_i`` is exact and kept (``m_i = v_min``, ``a_i = sum_j
    |Lambda^{-1}_ij moment_j|``); beyond, every column the row loads on is "far" and
    ``s_i = sum_j Lambda^{-1}_ij far_moment_j exp(-(columns[j] - m_i) / lam)`` from the exactly
    shifted column sums of :func:`shifted_column_moment_into`."""
    d = z.shape[0]
    s = np.empty(d)
    shifts = np.empty(d)
    absum = np.zeros(d)
    cutoff = v_min + far_shift * lam
    for i in range(d):
        m = np.inf
        for j in range(d):
            if lambda_inv[i, j] != 0.0 and columns[j] < m:
                m = columns[j]
        if cutoff < m < np.inf:
            acc = 0.0
            acc_abs = 0.0
            for j in range(d):
                if lambda_inv[i, j] != 0.0 and columns[j] < np.inf:
                    t = lambda_inv[i, j] * far_moment[j] * math.exp(-(columns[j] - m) / lam)
                    acc += t
                    acc_abs += abs(t)
            s[i] = acc
            shifts[i] = m
            absum[i] = acc_abs
        else:
            s[i] = z[i]
            shifts[i] = v_min
            acc_abs = 0.0
            for j in range(d):
                acc_abs += abs(lambda_inv[i, j] * moment[j])
            absum[i] = acc_abs
    return s, shifts, absum


@njit(cache=True)
def worst_cancellation(s, absum):
    """``(max_i absum_i / |s_i|, argmax)`` over the rows with ``absum_i > 0`` (``inf`` where
    ``s_i = 0``); ``(0, 0)`` when there is none."""
    worst = 0.0
    at = 0
    for i in range(s.shape[0]):
        if absum[i] > 0.0:
            r = absum[i] / abs(s[i]) if s[i] != 0.0 else np.inf
            if r > worst:
                worst = r
                at = i
    return worst, at


@njit(cache=True)
def kl_from_row_sums(s, shifts, lam, cap, truncate_below):
    """:func:`kl_from_sum` with one shift per row: ``min(shifts_i - lam log s_i, cap)`` where
    ``s_i > 0`` and ``cap`` elsewhere, then ``max(., 0)`` when ``truncate_below``."""
    d = s.shape[0]
    out = np.empty(d)
    for i in range(d):
        x = cap
        if s[i] > 0.0:
            x = min(shifts[i] - lam * np.log(s[i]), cap)
        if truncate_below:
            x = max(x, 0.0)
        out[i] = x
    return out


@njit(cache=True)
def kl_factor_estimate(lambda_inv, moment, z, columns, far_moment, v_min, lam, far_shift, cap,
                       truncate_below):
    """R2PVI-KL's ``nu`` on the moment path in one call: :func:`kl_factor_sums`, then
    :func:`kl_from_row_sums`; returns ``(nu, worst cancellation factor, its factor)``."""
    s, shifts, absum = kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam,
                                      far_shift)
    worst, at = worst_cancellation(s, absum)
    return kl_from_row_sums(s, shifts, lam, cap, truncate_below), worst, at
