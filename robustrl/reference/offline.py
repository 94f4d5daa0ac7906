"""NumPy/scipy twins of :mod:`robustrl._kernels.offline` (slow, written from the definitions).

Each row is solved on its own: the TV and chi2 duals through the single-row references of
:mod:`robustrl.reference.divergence` (explicit candidates / bounded search), the DRVI-L dual by a
plain golden-section search in ``log alpha`` over the same bracket as the kernel. (Not scipy's
bounded Brent: the DRVI-L objective has a kink where ``z`` meets its floor, often at the maximum,
and Brent's parabolic steps stop up to 1e-8 short of a kinked maximum.)
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from robustrl.reference import divergence as _div

KL_LOG_BRACKET = 40.0
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def _golden_max(fun, lo: float, hi: float, tol: float = 1e-12) -> float:
    """Largest value of ``fun`` seen by a golden-section search for a maximum on ``[lo, hi]``
    (end points included); exact up to ``tol`` in ``x`` for a unimodal ``fun``, kinks included."""
    best = max(fun(lo), fun(hi))
    x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f1, f2 = fun(x1), fun(x2)
    while hi - lo > tol:
        best = max(best, f1, f2)
        if f1 >= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - _GOLDEN * (hi - lo)
            f1 = fun(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + _GOLDEN * (hi - lo)
            f2 = fun(x2)
    return float(max(best, f1, f2))


def tv_dual_rows(v: np.ndarray, xi: np.ndarray, rho: np.ndarray, v_min: float) -> np.ndarray:
    if v.size == 0:
        return np.zeros(xi.shape[0])
    return np.array(
        [
            float(w @ v) if r == 0.0 else _div.tv_dual_weighted(v, w, r, v_min)
            for w, r in zip(xi, rho, strict=True)
        ]
    )


def chi2_regularized_rows(v: np.ndarray, xi: np.ndarray, lam: float) -> np.ndarray:
    if v.size == 0:
        return np.zeros(xi.shape[0])
    return np.array([_div.chi2_regularized_dual_weighted(v, w, lam) for w in xi])


def tv_dual_rows_ordered(v, xi, rho, v_min, order) -> np.ndarray:
    """Twin of the kernel that takes ``order``, the ascending order of ``v``."""
    return tv_dual_rows(v[order], xi[:, order], rho, v_min)


def chi2_regularized_rows_ordered(v, xi, lam, order) -> np.ndarray:
    return chi2_regularized_rows(v[order], xi[:, order], lam)


def exp_neg_into(x, scale, m, out, bits) -> None:
    """Twin of the kernel: NumPy's ``exp(-x * scale)``, 0 where the result is below the
    smallest normal number (``x * scale > 708.39``)."""
    y = x[:m] * scale
    out[:m] = np.where(y > 708.39, 0.0, np.exp(-np.minimum(y, 708.39)))


def kl_dual_objective(v, w, alpha: float, rho: float, z_floor: float, centered: bool) -> float:
    """``-alpha log z - alpha rho``: centred, ``z = max(1 + sum w (exp(-v/alpha) - 1), z_floor)``;
    otherwise ``z = exp(-m/alpha) max(sum w exp(-(v - m)/alpha), z_floor)``, m the smallest value
    with nonzero weight. Logs of signed sums are taken by ``logsumexp``."""
    if centered:
        log_z, sign = logsumexp(
            np.concatenate(([0.0], -v / alpha, [0.0])),
            b=np.concatenate(([1.0], w, [-float(np.sum(w))])),
            return_sign=True,
        )
        log_z = float(log_z) if sign > 0 else -np.inf
        return float(-alpha * max(log_z, np.log(z_floor)) - alpha * rho)
    # z = exp(-m / alpha) S with m the smallest weighted value; the floor clips S.
    shift = float(v[w != 0.0].min())
    log_s, sign = logsumexp(-(v - shift) / alpha, b=w, return_sign=True)
    log_s = float(log_s) if sign > 0 else -np.inf
    return float(shift - alpha * max(log_s, np.log(z_floor)) - alpha * rho)


def kl_constrained_rows(v: np.ndarray, xi: np.ndarray, rho: np.ndarray, z_floor: float,
                        centered: bool) -> np.ndarray:
    out = np.zeros(xi.shape[0])
    for i, (w, r) in enumerate(zip(xi, rho, strict=True)):
        if v.size == 0:
            continue
        if r == 0.0:
            out[i] = float(w @ v)
            continue
        support = v[w != 0.0]
        if support.size == 0:
            continue
        lo_v, hi_v = float(support.min()), float(support.max())
        if centered:
            lo_v, hi_v = min(lo_v, 0.0), max(hi_v, 0.0)
        spread = max(hi_v - lo_v, 1e-8 * max(1.0, abs(lo_v), abs(hi_v)))
        hi = np.log(spread / r)
        out[i] = _golden_max(
            lambda x, w=w, r=r: kl_dual_objective(v, w, float(np.exp(x)), r, z_floor, centered),
            hi - KL_LOG_BRACKET,
            hi,
        )
    return out


def clipped_q(features, weights, lambda_inv, beta_signed, bonus, upper, truncate_below,
              known) -> np.ndarray:
    """Twin of the kernel: ``bonus`` is a canonical :mod:`robustrl.bonus` name, ``known`` an
    ``(n, A)`` array with NaN where Q is learned, or None."""
    from robustrl.reference.bonus import bonus as bonus_values

    q = features @ weights
    if bonus != "none" and beta_signed != 0.0:
        q = q + beta_signed * bonus_values(features, lambda_inv, bonus)
    q = np.minimum(q, upper)
    if truncate_below:
        q = np.maximum(q, 0.0)
    if known is not None:
        q = np.where(np.isnan(known), q, known)
    return q


def next_state_values(next_features, weights, lambda_inv, beta_signed, bonus, upper,
                      truncate_below, known, nonterminal) -> np.ndarray:
    """Twin of the kernel (arguments as :func:`clipped_q`)."""
    q = clipped_q(next_features, weights, lambda_inv, beta_signed, bonus, upper,
                  truncate_below, known)
    if q.shape[0] == 0:
        return np.zeros(0)
    return np.where(nonterminal, q.max(axis=1), 0.0)


def next_state_values_minima(next_features, weights, lambda_inv, beta_signed, bonus, upper,
                             truncate_below, known, nonterminal, in_regression):
    values = next_state_values(next_features, weights, lambda_inv, beta_signed, bonus, upper,
                               truncate_below, known, nonterminal)
    return (values, *value_minima(values, in_regression))


def group_rows(inverse, features, weights, n_groups) -> np.ndarray:
    out = np.zeros((n_groups, features.shape[1]))
    np.add.at(out, inverse, features * weights[:, None])
    return out


def gather_features(source, out, in_regression) -> int:
    out[:] = source
    in_regression[:] = np.any(source != 0.0, axis=1)
    return int(np.count_nonzero(source))


def moment_into(moment, features, rewards, target, has_target, weights, use_weights) -> None:
    w = weights if use_weights else np.ones(features.shape[0])
    moment[:, 0] += (features * w[:, None]).T @ rewards
    if has_target:
        moment[:, 1] += (features * w[:, None]).T @ target


def sparse_gram_moment_into(gram, moment, features, rewards, target, has_target, weights,
                            use_weights) -> None:
    w = weights if use_weights else np.ones(features.shape[0])
    gram += (features * w[:, None]).T @ features
    moment_into(moment, features, rewards, target, has_target, weights, use_weights)


def kl_from_sum(s, shift, lam, cap, empty, truncate_below) -> np.ndarray:
    d = s.shape[0]
    if empty:
        return np.zeros(d) if truncate_below else np.full(d, cap)
    nu = np.full(d, cap)
    pos = s > 0.0
    nu[pos] = shift - lam * np.log(s[pos])
    nu = np.minimum(nu, cap)
    return np.maximum(nu, 0.0) if truncate_below else nu


def value_minima(values, in_regression) -> tuple[float, float]:
    sel = values[in_regression]
    return (float(values.min()) if values.size else np.inf,
            float(sel.min()) if sel.size else np.inf)


def group_by_value(values, features, weights, in_regression):
    u, inverse = np.unique(values, return_inverse=True)
    inside = np.zeros(u.size, dtype=bool)
    inside[inverse[in_regression]] = True
    return u, group_rows(inverse, features, weights, u.size), inside


def group_sorted(values, features, weights, in_regression, order):
    """Twin of the kernel that takes ``order``, the stable ascending order of ``values``."""
    return group_by_value(values[order], features[order], weights[order], in_regression[order])


def column_value_minima(features, values, out) -> None:
    loads = features != 0.0
    col = np.where(loads, values[:, None], np.inf).min(axis=0, initial=np.inf)
    np.minimum(out, col, out=out)


def value_range_column_minima(features, values, out, width):
    lo = float(values.min()) if values.size else np.inf
    hi = float(values.max()) if values.size else -np.inf
    scanned = hi - lo > width
    if scanned:
        column_value_minima(features, values, out)
    return lo, hi, scanned


def shifted_column_moment_into(out, features, values, weights, use_weights, shifts, lam,
                               cutoff) -> None:
    w = weights if use_weights else np.ones(features.shape[0])
    active = (shifts > cutoff) & np.isfinite(shifts)
    loads = features[:, active] != 0.0
    expo = np.exp(np.where(loads, -(values[:, None] - shifts[None, active]) / lam, -np.inf))
    out[active] += (features[:, active] * w[:, None] * expo).sum(axis=0)


def column_shifted_sums_into(mins, sums, features, values, weights, use_weights, lam) -> None:
    """Two passes: the column minima (merged with ``mins``), then the sums relative to them."""
    w = weights if use_weights else np.ones(features.shape[0])
    loads = features != 0.0
    new_mins = np.minimum(mins, np.where(loads, values[:, None], np.inf).min(axis=0,
                                                                             initial=np.inf))
    with np.errstate(invalid="ignore", under="ignore"):
        old = np.where(np.isfinite(mins), sums * np.exp(-(mins - new_mins) / lam), 0.0)
    expo = np.exp(np.where(loads, -(values[:, None] - new_mins[None, :]) / lam, -np.inf))
    sums[:] = old + (features * w[:, None] * expo).sum(axis=0)
    mins[:] = new_mins


def kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam, far_shift):
    d = z.shape[0]
    loads = (lambda_inv != 0.0) & np.isfinite(columns)[None, :]
    row_min = np.where(loads, columns[None, :], np.inf).min(axis=1)
    far = np.isfinite(row_min) & (row_min > v_min + far_shift * lam)
    s, shifts = z.astype(float).copy(), np.full(d, float(v_min))
    absum = np.abs(lambda_inv * moment[None, :]).sum(axis=1)
    for i in np.flatnonzero(far):
        cols = loads[i]
        terms = lambda_inv[i, cols] * far_moment[cols] * np.exp(-(columns[cols] - row_min[i])
                                                                / lam)
        s[i], shifts[i], absum[i] = terms.sum(), row_min[i], np.abs(terms).sum()
    return s, shifts, absum


def worst_cancellation(s, absum) -> tuple[float, int]:
    use = absum > 0.0
    if not use.any():
        return 0.0, 0
    with np.errstate(divide="ignore"):
        ratio = np.where(use, absum / np.abs(np.where(s != 0.0, s, 0.0)), 0.0)
    i = int(np.argmax(ratio))
    return float(ratio[i]), i


def kl_regularized_rows(v, xi, lam) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R2PVI-KL per row with its own shift (the general path): the test oracle of the moment
    path of :class:`robustrl.agents.estimators.KLRegularized`; ``(s, shifts, absum)``."""
    d = xi.shape[0]
    s, shifts, absum = np.zeros(d), np.zeros(d), np.zeros(d)
    for i in range(d):
        nz = xi[i] != 0.0
        if not nz.any():
            continue
        shifts[i] = v[nz].min()
        terms = xi[i, nz] * np.exp(-(v[nz] - shifts[i]) / lam)
        s[i], absum[i] = terms.sum(), np.abs(terms).sum()
    return s, shifts, absum


def kl_from_row_sums(s, shifts, lam, cap, truncate_below) -> np.ndarray:
    nu = np.full(s.shape[0], cap)
    pos = s > 0.0
    nu[pos] = shifts[pos] - lam * np.log(s[pos])
    nu = np.minimum(nu, cap)
    return np.maximum(nu, 0.0) if truncate_below else nu


def kl_factor_estimate(lambda_inv, moment, z, columns, far_moment, v_min, lam, far_shift, cap,
                       truncate_below):
    s, shifts, absum = kl_factor_sums(lambda_inv, moment, z, columns, far_moment, v_min, lam,
                                      far_shift)
    return (kl_from_row_sums(s, shifts, lam, cap, truncate_below),
            *worst_cancellation(s, absum))
