"""NumPy/SciPy twins of :mod:`robustrl._kernels.offline_pass` and :mod:`robustrl._kernels.lapack`,
written from the definitions (per-sample regression matrices, no grouping, no shared buffers;
arXiv:2411.18612, Algorithm 1)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from robustrl.reference import offline as _ref

REGRESSION, TV_REGULARIZED, KL_REGULARIZED, CHI2_REGULARIZED, TV_DUAL, KL_DUAL = range(6)


def stable_argsort(v: np.ndarray) -> np.ndarray:
    return np.argsort(v, kind="stable")


def cholesky_into(gram: np.ndarray, out: np.ndarray) -> int:
    """Twin: the lower factor, transposed into ``out``'s upper triangle (the kernel's layout)."""
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return 1
    out[:, :] = lower.T
    return 0


def cho_solve_inplace(factor: np.ndarray, rhs: np.ndarray) -> None:
    lower = np.triu(factor).T
    rhs[:, :] = scipy.linalg.cho_solve((lower, True), rhs.T).T


def cho_inverse_into(factor: np.ndarray, out: np.ndarray) -> None:
    lower = np.triu(factor).T
    out[:, :] = scipy.linalg.cho_solve((lower, True), np.eye(lower.shape[0]))


def gram_add(x: np.ndarray, gram: np.ndarray) -> None:
    gram += x.T @ x


def _bonus_name(code: int) -> str:
    from robustrl.bonus import BONUS_CODES

    return {c: name for name, c in BONUS_CODES.items()}[code]


def offline_pass(features, rewards, next_features, valid, nonterminal, known, has_known,
                 sample_weights, use_weights, theta, known_reward, ridge, signed_beta, code,
                 max_reward, truncate_below, est, lam, v_min, v_min_data, cap, rho, z_floor,
                 centered, far_shift, kl_truncate, keep_values):
    """Twin of the kernel (same arguments and results; the KL
    worst-cancellation outputs are those of the per-row shift of
    :func:`robustrl.reference.offline.kl_regularized_rows`; the step-major arrays are read
    as trajectory-major views)."""
    features, rewards, next_features, valid, nonterminal, known = (
        np.swapaxes(a, 0, 1) for a in (features, rewards, next_features, valid, nonterminal,
                                       known))
    n_traj, horizon, dim = features.shape
    bonus = _bonus_name(code)
    weights = np.zeros((horizon, dim))
    lambda_inv = np.zeros((horizon, dim, dim))
    n_samples = np.zeros(horizon, dtype=np.int64)
    values_out = np.zeros((horizon if keep_values else 0, n_traj))
    worst, worst_at = np.zeros(horizon), np.zeros(horizon, dtype=np.int64)
    for h in range(horizon - 1, -1, -1):
        last = h == horizon - 1
        rows = np.flatnonzero(valid[:, h])
        n = rows.size
        phi, r = features[rows, h], rewards[rows, h]
        sw = sample_weights[h, :n] if use_weights else np.ones(n)
        inside = np.any(phi != 0.0, axis=1)
        n_samples[h] = int(inside.sum())
        if last or n == 0:
            v = np.zeros(n)
        else:
            v = _ref.next_state_values(
                next_features[rows, h], weights[h + 1], lambda_inv[h + 1], signed_beta, bonus,
                max_reward * (horizon - h - 1), truncate_below,
                known[rows, h] if has_known else None, nonterminal[rows, h])
        if keep_values:
            values_out[h, :n] = v
        gram = ridge * np.eye(dim) + phi.T @ (sw[:, None] * phi)
        if np.any(np.linalg.eigvalsh(gram) <= 0.0):
            return weights, lambda_inv, n_samples, values_out, worst, worst_at, h
        lambda_inv[h] = np.linalg.inv(gram)
        xi = lambda_inv[h] @ (phi * sw[:, None]).T  # (d, n)
        base = v_min
        if v_min_data:
            base = float(v[inside].min()) if inside.any() else 0.0
        nu = np.zeros(dim)
        if est == KL_REGULARIZED and not last and n == 0:
            nu[:] = 0.0 if kl_truncate else cap
        elif not last and n > 0:
            if est == REGRESSION:
                nu = xi @ v
            elif est == TV_REGULARIZED:
                nu = xi @ np.minimum(v, base + lam)
            elif est == KL_REGULARIZED:
                s, shifts, absum = _ref.kl_regularized_rows(v, xi, lam)
                nu = _ref.kl_from_row_sums(s, shifts, lam, cap, kl_truncate)
                worst[h], worst_at[h] = _ref.worst_cancellation(s, absum)
            elif est == CHI2_REGULARIZED:
                nu = _ref.chi2_regularized_rows(v, xi, lam)
            elif est == TV_DUAL:
                nu = _ref.tv_dual_rows(v, xi, rho[h], base)
            else:
                nu = _ref.kl_constrained_rows(v, xi, rho[h], z_floor, centered)
        reward_w = theta[h] if known_reward else xi @ r
        weights[h] = reward_w + nu
    return weights, lambda_inv, n_samples, values_out, worst, worst_at, -1


def tied_steps(features, next_features, valid, nonterminal, weights, lambda_inv, signed_beta,
               code, max_reward, truncate_below, max_states):
    """Twin of the kernel (the step-major arrays read as trajectory-major views)."""
    features, next_features, valid, nonterminal = (
        np.swapaxes(a, 0, 1) for a in (features, next_features, valid, nonterminal))
    n_traj, horizon, _ = features.shape
    bonus = _bonus_name(code)
    tied = np.zeros(horizon, dtype=bool)
    example = np.zeros(horizon)
    for h in range(horizon):
        if h == 0:
            rows = np.flatnonzero(valid[:, 0])[:max_states]
            feats = features[rows, 0][:, None, :]
        else:
            rows = np.flatnonzero(valid[:, h - 1] & nonterminal[:, h - 1])[:max_states]
            feats = next_features[rows, h - 1]
        if rows.size == 0:
            continue
        upper = max_reward * (horizon - h)
        q = _ref.clipped_q(feats, weights[h], lambda_inv[h], signed_beta, bonus, upper,
                           truncate_below, None)
        example[h] = q[0, 0]
        at = np.all(q == upper, axis=1)
        if truncate_below:
            at |= np.all(q == 0.0, axis=1)
        tied[h] = bool(at.all())
    return tied, example


def elliptical_rows(next_features, rows, lambda_inv):
    """Twin of the kernel."""
    out = np.zeros(next_features.shape[:2])
    x = next_features[rows]
    quad = np.einsum("kai,ij,kaj->ka", x, lambda_inv, x)
    out[rows] = np.sqrt(np.maximum(quad, 0.0))
    return out


def regression_matrix(g, factor, lambda_inv):
    """Twin of the kernel ``_regression_matrix``: ``Lambda^{-1} G^T``."""
    return lambda_inv @ g.T
