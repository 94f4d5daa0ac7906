"""NumPy/scipy twins of :mod:`robustrl._kernels.divergence` (slow, written from the definitions).

Each function evaluates the dual objective straight from its definition (np.minimum, sums,
logsumexp) and maximises it either over an explicit candidate set or with a bounded scalar
search, so it shares no algebra with the sort/cumsum/segment formulas of the kernels.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

_XATOL = 1e-12
TINY_RADIUS = 1e-100  # below it the constrained duals take their small-radius expansion


def _small_radius(vs: np.ndarray, ps: np.ndarray, rho: float, c: float) -> float:
    """E_p v - sqrt(c rho Var_p v): the chi2 ball's exact value (c = 1) and the KL ball's up to
    O(rho) (c = 2) for rho below TINY_RADIUS, where a search bracket of width spread / rho
    overflows."""
    mean = float(ps @ vs)
    return max(float(vs.min()), mean - float(np.sqrt(c * rho * (ps @ (vs - mean) ** 2))))


def _bounded_max(fun, lo: float, hi: float) -> float:
    """max of a unimodal ``fun`` on [lo, hi]: bounded Brent plus both endpoints."""
    best = max(fun(lo), fun(hi))
    if hi > lo:
        res = minimize_scalar(
            lambda x: -fun(x),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": _XATOL * max(1.0, abs(hi)), "maxiter": 2000},
        )
        best = max(best, -float(res.fun))
    return float(best)


def tv_dual_weighted(v: np.ndarray, w: np.ndarray, rho: float, v_min: float) -> float:
    """max over alpha in {v_min} U {v_j} of sum w min(v, alpha) - rho (alpha - v_min)."""
    candidates = np.concatenate(([v_min], v))
    return float(max(np.sum(w * np.minimum(v, a)) - rho * (a - v_min) for a in candidates))


def tv_constrained_batch(v, nominal, rho, v_min) -> np.ndarray:
    return np.array([tv_dual_weighted(v, p, r, v_min) for p, r in zip(nominal, rho, strict=True)])


def tv_regularized_batch(v, nominal, lam, v_min) -> np.ndarray:
    return np.array(
        [np.sum(p * np.minimum(v, v_min + l)) for p, l in zip(nominal, lam, strict=True)]
    )


def kl_regularized(v: np.ndarray, p: np.ndarray, lam: float) -> float:
    """-lam log E_p exp(-v / lam)."""
    s = p > 0
    return float(-lam * logsumexp(-v[s] / lam, b=p[s]))


def kl_constrained(v: np.ndarray, p: np.ndarray, rho: float) -> float:
    """sup_{beta > 0} -beta log E_p exp(-v/beta) - beta rho by bounded search in log(beta)."""
    s = p > 0
    vs, ps = v[s], p[s]
    mean, low = float(ps @ vs), float(vs.min())
    if rho == 0.0:
        return mean
    if rho < TINY_RADIUS:
        return _small_radius(vs, ps, rho, 2.0)
    if mean - low <= 0.0:
        return low

    u = vs - low

    def dual(log_beta: float) -> float:
        beta = np.exp(log_beta)
        log_mean = float(logsumexp(-u / beta, b=ps))
        if log_mean > np.log(0.5):  # near 1: log1p of the expm1 sum keeps the digits
            log_mean = float(np.log1p(np.sum(ps * np.expm1(-u / beta))))
        return low - beta * log_mean - beta * rho

    # The maximiser is below (E v - min v) / rho (Jensen) and, for small rho, near
    # sd / sqrt(2 rho); the beta -> 0 limit is min v.
    hi = np.log((mean - low) / rho)
    return max(low, _bounded_max(dual, hi - 60.0 - 0.5 * max(0.0, -np.log(rho)), hi))


def chi2_regularized_dual_weighted(v: np.ndarray, w: np.ndarray, lam: float) -> float:
    """max over alpha in [min v, max v] of z1 - (z2 - z1^2)/(4 lam), z_k = sum w min(v,alpha)^k."""

    def objective(alpha: float) -> float:
        clipped = np.minimum(v, alpha)
        z1 = np.sum(w * clipped)
        z2 = np.sum(w * clipped**2)
        return float(z1 - (z2 - z1 * z1) / (4.0 * lam))

    # The objective is a quadratic between consecutive sorted values: search each piece.
    knots = np.unique(v)
    best = max(objective(a) for a in knots)
    for lo, hi in zip(knots[:-1], knots[1:], strict=True):
        best = max(best, _bounded_max(objective, float(lo), float(hi)))
    return float(best)


def chi2_constrained(v: np.ndarray, p: np.ndarray, rho: float) -> float:
    """sup_eta eta - sqrt(1 + rho) sqrt(E_p (eta - v)_+^2) by bounded search."""
    s = p > 0
    vs, ps = v[s], p[s]
    mean, low = float(ps @ vs), float(vs.min())
    if rho == 0.0:
        return mean
    if rho < TINY_RADIUS:
        return _small_radius(vs, ps, rho, 1.0)
    c = np.sqrt(1.0 + rho)

    def dual(eta: float) -> float:
        return float(eta - c * np.sqrt(np.sum(ps * np.maximum(eta - vs, 0.0) ** 2)))

    # Below min v the dual is eta (increasing); beyond the bound it is < min v.
    hi = mean + (mean - low) / (c - 1.0) if mean > low else low
    return _bounded_max(dual, low, hi)


def kl_regularized_batch(v, nominal, lam) -> np.ndarray:
    return np.array([kl_regularized(v, p, l) for p, l in zip(nominal, lam, strict=True)])


def kl_constrained_batch(v, nominal, rho) -> np.ndarray:
    return np.array([kl_constrained(v, p, r) for p, r in zip(nominal, rho, strict=True)])


def chi2_regularized(v: np.ndarray, p: np.ndarray, lam: float) -> float:
    """max over alpha of E_p[W] - Var_p(W) / (4 lam), W = min(v, alpha), for a probability
    vector p: the variance as sum p (W - E_p W)^2 (no z2 - z1^2 cancellation), the result
    clamped to [min of v on supp(p), E_p v]."""

    def objective(alpha: float) -> float:
        clipped = np.minimum(v, alpha)
        mean = float(p @ clipped)
        return mean - float(p @ (clipped - mean) ** 2) / (4.0 * lam)

    # Searched as an offset from the left knot, so that the tolerance is relative to the segment
    # length: at tiny lam the maximiser sits 20 lam above a knot of size ~100.
    knots = np.unique(v)
    best = max(objective(a) for a in knots)
    for lo, hi in zip(knots[:-1], knots[1:], strict=True):
        best = max(best, _bounded_max(lambda x, lo=lo: objective(lo + x), 0.0, float(hi - lo)))
    return float(min(max(best, float(v[p > 0].min())), float(p @ v)))


def chi2_regularized_batch(v, nominal, lam) -> np.ndarray:
    return np.array([chi2_regularized(v, p, l) for p, l in zip(nominal, lam, strict=True)])


def chi2_constrained_batch(v, nominal, rho) -> np.ndarray:
    return np.array([chi2_constrained(v, p, r) for p, r in zip(nominal, rho, strict=True)])
