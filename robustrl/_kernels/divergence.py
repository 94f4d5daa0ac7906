"""Numba kernels for the robust inner problem inf_mu E_mu[V] (+ penalty) under TV, KL and chi2.

Conventions (see docs/index.md, Conventions): D_TV = 1/2 sum|mu - p|,
D_KL = sum mu log(mu / p), D_chi2 = sum (mu - p)^2 / p. The kernels trust their inputs (the
public module :mod:`robustrl.divergences` validates them): ``p`` rows are probability vectors
summing to one, ``v`` is finite, radii are >= 0 and weights lam are > 0.

Batch kernels take one value vector ``v`` (S,) shared by the rows of ``nominal`` (m, S) and one
parameter per row; they sort ``v`` once for all rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Golden-section step for the KL constrained dual.
_INV_PHI = 0.6180339887498949

# Below this radius the constrained duals take their small-radius value E_p v - sqrt(c rho Var)
# (exact for chi2; for KL the next term is O(rho) * spread, 1e-100 of the spread): the searches
# would need brackets of width spread / rho, which overflow for subnormal rho.
TINY_RADIUS = 1e-100


@njit(cache=True)
def _support_variance(v, p, mean):
    """sum_j p_j (v_j - mean)^2 over supp(p) (two-pass, no cancellation)."""
    acc = 0.0
    for j in range(v.shape[0]):
        if p[j] > 0.0:
            acc += p[j] * (v[j] - mean) ** 2
    return acc


# --------------------------------------------------------------------------------------------
# TV
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def tv_dual_sorted_rows(v_sorted, w_sorted, rho, v_min):
    """tv_dual_weighted of every column of ``w_sorted (n, m)`` (row ``j`` the weights of the
    ``j``-th smallest value, ``v_sorted`` ascending), with radius ``rho[i]`` for column ``i``:
    ``(m,)``. The columns advance together, so the scan runs in SIMD lanes across them; each
    column's sums are formed in the same order as for one column alone."""
    n, m = w_sorted.shape
    total_w = np.zeros(m)
    at_v_min = np.zeros(m)
    for j in range(n):
        floor = min(v_sorted[j], v_min)
        for i in range(m):
            total_w[i] += w_sorted[j, i]
            at_v_min[i] += w_sorted[j, i] * floor
    best = at_v_min.copy()  # alpha = v_min: the rho term vanishes
    below = np.zeros(m)  # sum_{j <= k} w_j v_j
    cum_w = np.zeros(m)  # sum_{j <= k} w_j
    for k in range(n):
        alpha = v_sorted[k]
        for i in range(m):
            w = w_sorted[k, i]
            below[i] += w * alpha
            cum_w[i] += w
            # Ties need no care: for j > k with v_j == alpha, min(v_j, alpha) = v_j either way.
            val = below[i] + alpha * (total_w[i] - cum_w[i]) - rho[i] * (alpha - v_min)
            best[i] = val if val > best[i] else best[i]
    return best


@njit(cache=True)
def tv_dual_weighted(v, w, rho, v_min):
    """max over alpha in {v_min} U {v_j} of sum_j w_j min(v_j, alpha) - rho (alpha - v_min).

    The objective is piecewise linear in alpha with kinks at the v_j, so on [v_min, max v]
    its maximum is at one of these candidates (DRPVI estimator, arXiv:2411.18612 baselines,
    docs/algorithms/drpvi.md). With ``w`` a
    probability vector and v_min <= min v this is the TV-constrained inner value (arXiv:2411.18612,
    docs/algorithms/drpvi.md).
    Weights may be signed and need not sum to one. O(n log n): sort + cumulative sums.
    """
    order = np.argsort(v, kind="mergesort")
    return tv_dual_sorted_rows(v[order], w[order].reshape((v.shape[0], 1)), np.full(1, rho),
                               v_min)[0]


@njit(cache=True)
def tv_constrained_batch(v, nominal, rho, v_min):
    """Row-wise inf_{mu in Delta, D_TV(mu||p_i) <= rho_i} E_mu[v] (mass may go to v_min)."""
    order = np.argsort(v, kind="mergesort")
    return tv_dual_sorted_rows(v[order], np.ascontiguousarray(nominal[:, order].T), rho, v_min)


@njit(cache=True)
def tv_regularized_batch(v, nominal, lam, v_min):
    """Row-wise E_p[min(v, v_min + lam)] = inf_mu E_mu[v] + lam D_TV(mu||p) (arXiv:2411.18612,
    docs/algorithms/r2pvi.md)."""
    m = nominal.shape[0]
    out = np.empty(m)
    for i in range(m):
        cap = v_min + lam[i]
        acc = 0.0
        for j in range(v.shape[0]):
            acc += nominal[i, j] * min(v[j], cap)
        out[i] = acc
    return out


# --------------------------------------------------------------------------------------------
# KL
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _support_min_mean(v, p):
    """(min of v on supp(p), E_p[v], p-mass of the argmin set)."""
    m = np.inf
    mean = 0.0
    for j in range(v.shape[0]):
        if p[j] > 0.0:
            mean += p[j] * v[j]
            if v[j] < m:
                m = v[j]
    mass_at_min = 0.0
    for j in range(v.shape[0]):
        if p[j] > 0.0 and v[j] == m:
            mass_at_min += p[j]
    return m, mean, mass_at_min


@njit(cache=True)
def _log_mean_exp_neg(u, p, scale):
    """log E_p[exp(-u / scale)] for u >= 0 on supp(p), accurate for every scale > 0.

    For large ``scale`` the mean is 1 - O(1/scale) and log() of it loses all relative precision,
    so that branch goes through log1p(E_p[expm1(.)]); a mean below 1/2 is summed directly.
    """
    direct = 0.0
    for j in range(u.shape[0]):
        if p[j] > 0.0:
            direct += p[j] * math.exp(-u[j] / scale)
    if direct < 0.5:
        return math.log(direct)
    shifted = 0.0
    for j in range(u.shape[0]):
        if p[j] > 0.0:
            shifted += p[j] * math.expm1(-u[j] / scale)
    return math.log1p(shifted)


@njit(cache=True)
def kl_regularized(v, p, lam):
    """-lam log E_p[exp(-v / lam)] = inf_mu E_mu[v] + lam D_KL(mu||p) (arXiv:2411.18612,
    docs/algorithms/r2pvi.md, Gibbs)."""
    m, _, _ = _support_min_mean(v, p)
    return m - lam * _log_mean_exp_neg(v - m, p, lam)


@njit(cache=True)
def _kl_dual_objective(u, p, beta, rho):
    # Dual minus the support minimum: -beta log E_p exp(-u/beta) - beta rho, with u = v - min.
    if beta <= 0.0:
        return 0.0  # the beta -> 0 limit
    return -beta * _log_mean_exp_neg(u, p, beta) - beta * rho


@njit(cache=True)
def kl_constrained(v, p, rho):
    """sup_{beta > 0} -beta log E_p[exp(-v/beta)] - beta rho (KL-ball inner value, arXiv:2411.18612,
    docs/algorithms/drpvi.md).

    The dual f is concave with f'(beta) = KL(q_beta || p) - rho, q_beta ∝ p exp(-v/beta), so
    - rho = 0: the sup is the beta -> inf limit E_p[v];
    - rho >= -log p(argmin): f' <= 0 everywhere and the answer is the beta -> 0 limit min v;
    - otherwise the maximiser lies in (0, (E_p v - min v) / rho] because f <= E_p v - beta rho
      (Jensen); golden-section search there, stopped once bracket width times the Lipschitz
      bound rho + max log(1/p_j) of f is below 1e-13 (relative), i.e. far below 1e-8 in value.
    Every evaluated beta is a valid lower bound, so the best one seen is returned.
    """
    m, mean, mass_at_min = _support_min_mean(v, p)
    if rho == 0.0:
        return mean
    if rho < TINY_RADIUS:
        return max(m, mean - math.sqrt(2.0 * rho * _support_variance(v, p, mean)))
    spread = mean - m
    if spread <= 0.0 or rho >= -math.log(mass_at_min):
        return m
    u = v - m
    lipschitz = rho
    for j in range(v.shape[0]):
        if p[j] > 0.0:
            lipschitz = max(lipschitz, rho - math.log(p[j]))
    tol = 1e-13 * max(1.0, abs(m), abs(mean))
    lo = 0.0
    hi = spread / rho
    x1 = hi - _INV_PHI * (hi - lo)
    x2 = lo + _INV_PHI * (hi - lo)
    f1 = _kl_dual_objective(u, p, x1, rho)
    f2 = _kl_dual_objective(u, p, x2, rho)
    best = max(0.0, f1, f2)
    for _ in range(400):
        if (hi - lo) * lipschitz <= tol or hi - lo <= 1e-15 * hi:
            break
        if f1 >= f2:
            hi = x2
            x2 = x1
            f2 = f1
            x1 = hi - _INV_PHI * (hi - lo)
            f1 = _kl_dual_objective(u, p, x1, rho)
            if f1 > best:
                best = f1
        else:
            lo = x1
            x1 = x2
            f1 = f2
            x2 = lo + _INV_PHI * (hi - lo)
            f2 = _kl_dual_objective(u, p, x2, rho)
            if f2 > best:
                best = f2
    return m + best


@njit(cache=True)
def kl_regularized_batch(v, nominal, lam):
    out = np.empty(nominal.shape[0])
    for i in range(nominal.shape[0]):
        out[i] = kl_regularized(v, nominal[i], lam[i])
    return out


@njit(cache=True)
def kl_constrained_batch(v, nominal, rho):
    out = np.empty(nominal.shape[0])
    for i in range(nominal.shape[0]):
        out[i] = kl_constrained(v, nominal[i], rho[i])
    return out


# --------------------------------------------------------------------------------------------
# chi2
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _chi2_reg_at(x, a, b, c, shift, total_w, lam):
    # Objective at alpha = shift + x, from sums over the shifted values u = v - shift:
    # z1' = a + x b, z2' = c + x^2 b. Shifting by min v keeps z2 - z1^2 free of cancellation
    # when alpha sits near min v (small lam); the (1 - total_w) terms undo the shift exactly
    # for weights that do not sum to one.
    z1s = a + x * b
    z2s = c + x * x * b
    spread = z2s - z1s * z1s + (1.0 - total_w) * shift * (2.0 * z1s + shift * total_w)
    return z1s + shift * total_w - spread / (4.0 * lam)


@njit(cache=True)
def _chi2_regularized_sorted(v_sorted, w_sorted, lam, probability):
    """Segment maximisation behind :func:`chi2_regularized_dual_weighted`.

    ``probability=True``: ``w_sorted`` is a probability vector, so its total is taken to be
    exactly 1 and the weight of the "above" set comes from suffix sums. The float sum of a
    probability vector is 1 +- a few ulp, and the shift-undoing terms ``(1 - total_w) shift``
    divided by ``4 lam`` would turn that into an error of order ulp * min(v)^2 / lam (e.g. 28 at
    values 100..109 and lam = 1e-14). ``probability=False``: signed regression weights, whose
    float total is used as it is.
    """
    n = v_sorted.shape[0]
    shift = v_sorted[0]
    after = np.empty(n if probability else 0)  # weight strictly after position k
    total_w = 1.0
    if probability:
        acc = 0.0
        for k in range(n - 1, -1, -1):
            after[k] = acc
            acc += w_sorted[k]
    else:
        total_w = 0.0
        for j in range(n):
            total_w += w_sorted[j]
    a = 0.0  # sum_{i <= k} w_i u_i, u = v - shift
    c = 0.0  # sum_{i <= k} w_i u_i^2
    cum_w = 0.0
    best = -np.inf
    for k in range(n):
        u = v_sorted[k] - shift
        a += w_sorted[k] * u
        c += w_sorted[k] * u * u
        cum_w += w_sorted[k]
        b = after[k] if probability else total_w - cum_w  # weight of the "above" set {i > k}
        val = _chi2_reg_at(u, a, b, c, shift, total_w, lam)
        if val > best:
            best = val
        if k + 1 < n and v_sorted[k + 1] > v_sorted[k]:
            # On this segment the objective is a2 x^2 + a1 x + a0; an interior maximum exists
            # only where it is strictly concave.
            a2 = (b * b - b) / (4.0 * lam)
            a1 = b * (1.0 + (a - (1.0 - total_w) * shift) / (2.0 * lam))
            if a2 < 0.0:
                stat = -a1 / (2.0 * a2)
                if u < stat < v_sorted[k + 1] - shift:
                    val = _chi2_reg_at(stat, a, b, c, shift, total_w, lam)
                    if val > best:
                        best = val
    return best


@njit(cache=True)
def chi2_regularized_dual_weighted(v, w, lam):
    """max over alpha in [min v, max v] of z1 - (z2 - z1^2) / (4 lam), exactly.

    z1(alpha) = sum w min(v, alpha), z2(alpha) = sum w min(v, alpha)^2 (arXiv:2411.18612,
    docs/algorithms/r2pvi.md, R2PVI
    chi2 estimator). Between consecutive sorted v both are polynomials in alpha, so the
    objective is a quadratic per segment: check every breakpoint and every interior
    stationary point of a concave piece. With ``w`` a probability vector this is the exact
    chi2-regularised inner value. Weights may be signed and need not sum to one.
    """
    order = np.argsort(v, kind="mergesort")
    return _chi2_regularized_sorted(v[order], w[order], lam, False)


@njit(cache=True)
def chi2_regularized_batch(v, nominal, lam):
    """Row-wise chi2-regularised inner value inf_mu E_mu[v] + lam D_chi2(mu||p) (arXiv:2411.18612,
    docs/algorithms/r2pvi.md).

    Rows are probability vectors: the segment search uses their exact total 1, and the result
    is clamped to [min of v on supp(p), E_p v], the range the exact value lies in (mu = p is
    feasible; E_mu v >= min v on the support). The clamp removes rounding only: without it the
    search stays within a few ulp * max|v| of the range (tests/test_divergences.py checks it at
    lam down to 1e-300).
    """
    order = np.argsort(v, kind="mergesort")
    v_sorted = v[order]
    out = np.empty(nominal.shape[0])
    w = np.empty(v.shape[0])
    for i in range(nominal.shape[0]):
        for j in range(v.shape[0]):
            w[j] = nominal[i, order[j]]
        raw = _chi2_regularized_sorted(v_sorted, w, lam[i], True)
        low, mean, _ = _support_min_mean(v, nominal[i])
        out[i] = min(max(raw, low), mean)
    return out


@njit(cache=True)
def _chi2_constrained_sorted(v_sorted, p_sorted, rho):
    """Exact sup_eta eta - sqrt(1 + rho) sqrt(E_p[(eta - v)_+^2]) over sorted support values.

    Dual of inf{E_mu v : E_p[(dmu/dp - 1)^2] <= rho}: Lagrange multipliers eta (mass) and
    gamma (radius), the pointwise minimiser dmu/dp = (eta - v)_+ / gamma, then the optimal gamma.
    Below eta the 'active' set has mass P, mean mu and M2 = sum p (v - mu)^2 (kept by a stable
    running update, no cancellation), so E_p[(eta - v)_+^2] = P (eta - mu)^2 + M2 and on a
    segment the dual is maximised at eta = mu + t, t = sqrt(M2 / (P (c^2 P - 1))), with value
    mu - sqrt(M2 (c^2 P - 1) / P), c = sqrt(1 + rho), when c^2 P > 1 (else it increases).
    ``p_sorted`` is taken to sum to exactly one.
    """
    n = v_sorted.shape[0]
    c = math.sqrt(1.0 + rho)
    # Mass strictly after position k, summed from the end: c^2 P - 1 = rho P - (1 - P) is then
    # formed without cancellation (1 - P from 1 - sum would bury a tiny rho in rounding).
    after = np.empty(n)
    acc = 0.0
    for k in range(n - 1, -1, -1):
        after[k] = acc
        acc += p_sorted[k]
    mass = 0.0
    mean = 0.0
    m2 = 0.0
    best = -np.inf
    # Stationary point of the segment that starts at the previous support value; it counts
    # only if it lies before the next support value, known one iteration later.
    pending_eta = np.inf
    pending_val = -np.inf
    for k in range(n):
        pk = p_sorted[k]
        if pk <= 0.0:
            continue
        x = v_sorted[k]
        if pending_eta < x and pending_val > best:
            best = pending_val
        # Breakpoint eta = x, using the active set strictly below x (ties contribute 0). The
        # dual is C^1 above min v, so only eta = min v can win here; the rest are cheap guards.
        val = x - c * math.sqrt(mass * (x - mean) ** 2 + m2)
        if val > best:
            best = val
        new_mass = mass + pk
        delta = x - mean
        mean += delta * pk / new_mass
        m2 += pk * delta * (x - mean)
        mass = new_mass
        pending_eta = np.inf
        excess = rho * mass - after[k]
        if excess > 0.0 and m2 > 0.0:
            eta = mean + math.sqrt(m2 / (mass * excess))
            if eta > x:
                pending_eta = eta
                pending_val = mean - math.sqrt(m2 * excess / mass)
    # The last segment is unbounded above.
    if pending_eta < np.inf and pending_val > best:
        best = pending_val
    return best


@njit(cache=True)
def _chi2_constrained_tiny(v, p, rho):
    """chi2-ball value for rho < TINY_RADIUS (rho = 0 included): E_p v - sqrt(rho Var_p v).

    Exact: by Cauchy-Schwarz E_mu v >= E_p v - sqrt(rho Var_p v) on the ball, with equality at
    mu = p (1 - sqrt(rho) (v - E_p v) / sd), a distribution once sqrt(rho) (max v - E_p v) <= sd,
    which always holds here since rho < 1e-100 and |v| <= 1e150.
    """
    mean = 0.0
    for j in range(v.shape[0]):
        mean += p[j] * v[j]
    if rho == 0.0:
        return mean
    return mean - math.sqrt(rho * _support_variance(v, p, mean))


@njit(cache=True)
def chi2_constrained(v, p, rho):
    """inf{E_mu v : mu in Delta, mu << p, sum (mu - p)^2 / p <= rho}; rho = 0 gives E_p v."""
    if rho < TINY_RADIUS:
        return _chi2_constrained_tiny(v, p, rho)
    order = np.argsort(v, kind="mergesort")
    return _chi2_constrained_sorted(v[order], p[order], rho)


@njit(cache=True)
def chi2_constrained_batch(v, nominal, rho):
    order = np.argsort(v, kind="mergesort")
    v_sorted = v[order]
    out = np.empty(nominal.shape[0])
    w = np.empty(v.shape[0])
    for i in range(nominal.shape[0]):
        if rho[i] < TINY_RADIUS:
            out[i] = _chi2_constrained_tiny(v, nominal[i], rho[i])
            continue
        for j in range(v.shape[0]):
            w[j] = nominal[i, order[j]]
        out[i] = _chi2_constrained_sorted(v_sorted, w, rho[i])
    return out
