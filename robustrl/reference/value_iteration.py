"""NumPy twins of :mod:`robustrl._kernels.value_iteration` (vectorised per step), and the
least-squares value-iteration pass that the PEVI and LSVI-UCB agents are tested against.

Arguments are already validated: ``bonus`` is a canonical name of :mod:`robustrl.bonus`,
``sign`` is -1 or +1 and ``lambda_inv`` is an array (ignored when the bonus is off).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from robustrl.reference.bonus import bonus as bonus_values


def greedy_q_values(features, weights, lambda_inv, beta, step, horizon, bonus, sign):
    """``clip(phi^T w + sign * beta * Gamma(phi), 0, horizon - step)`` of shape ``(N, A)``."""
    q = features @ weights
    if bonus != "none" and beta != 0.0:
        q = q + sign * beta * bonus_values(features, lambda_inv, bonus)
    return np.clip(q, 0.0, float(horizon - step))


def backward_value_iteration(weights, features, lambda_inv, beta, bonus, sign, factors=None):
    """``Q (H, N, A)``, ``V (H + 1, N)``, greedy ``policy (H, N)``; see the kernel."""
    horizon = weights.shape[0]
    n_states, n_actions, _ = features.shape
    q = np.empty((horizon, n_states, n_actions))
    v = np.zeros((horizon + 1, n_states))
    for h in range(horizon - 1, -1, -1):
        w = weights[h] if factors is None else weights[h] + factors[h] @ v[h + 1]
        q[h] = greedy_q_values(features, w, lambda_inv[h], beta, h, horizon, bonus, sign)
        v[h] = q[h].max(axis=1)
    return q, v, q.argmax(axis=2)


def lsvi_backward_pass(features, rewards, next_features, next_valid, ridge, beta, bonus, sign):
    """Least-squares value iteration, PEVI (``sign=-1``, Jin, Yang & Wang 2021) or LSVI-UCB
    (``+1``): for ``h = H-1 .. 0``, ``Lambda_h = ridge I + sum_k phi_hk phi_hk^T``,
    ``w_h = Lambda_h^{-1} sum_k phi_hk (r_hk + V_{h+1}(s'_k))`` with ``V_{h+1}(s') = max_a
    clip(phi(s', a)^T w_{h+1} + sign beta Gamma_{h+1}(s', a), 0, H - h - 1)`` (0 where
    ``next_valid`` is False). Inputs ``features (H, K, d)``, ``rewards (H, K)``,
    ``next_features (H, K, A, d)``, ``next_valid (H, K)``; returns ``weights (H, d)``,
    ``lambda_inv (H, d, d)``, ``next_values (H, K)``."""
    horizon, n_samples, dim = features.shape
    weights = np.zeros((horizon, dim))
    lambda_inv = np.empty((horizon, dim, dim))
    next_values = np.zeros((horizon, n_samples))
    identity = np.eye(dim)
    for h in range(horizon - 1, -1, -1):
        phi = features[h]
        factor = scipy.linalg.cho_factor(ridge * identity + phi.T @ phi, lower=True)
        lambda_inv[h] = scipy.linalg.cho_solve(factor, identity)
        if h < horizon - 1:
            q_next = greedy_q_values(
                next_features[h], weights[h + 1], lambda_inv[h + 1], beta, h + 1, horizon,
                bonus, sign,
            )
            next_values[h] = np.where(next_valid[h], q_next.max(axis=1), 0.0)
        weights[h] = scipy.linalg.cho_solve(factor, phi.T @ (rewards[h] + next_values[h]))
    return weights, lambda_inv, next_values
