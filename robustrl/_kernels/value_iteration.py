"""Backward value-iteration kernels for linear MDPs (note sections 1.5-1.7 and 4).

A Q-value at 0-indexed step ``h`` of a horizon-``H`` problem is
``clip(phi^T w_h + signed_beta * Gamma_h(phi), 0, H - h)``: ``signed_beta < 0`` is pessimism
(PEVI, R2PVI), ``> 0`` optimism (LSVI-UCB, DR-LSVI-UCB).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from robustrl._kernels.bonus import BONUS_NONE, bonus_rows_into
from robustrl._kernels.ridge import (
    VECTORISE,
    cholesky_solve,
    gram_matrix,
    inverse_from_lower_inverse,
    lower_triangular_inverse,
    weighted_cross_moment,
)


@njit(cache=True, fastmath=VECTORISE)
def clipped_q_rows_into(features, weights, lambda_inv, signed_beta, code, upper, out):
    """In place: ``out[n] = clip(phi_n^T w + signed_beta * Gamma(phi_n), 0, upper)`` for the
    rows of ``features (N, d)``."""
    n_rows, dim = features.shape
    if code != BONUS_NONE and signed_beta != 0.0:
        bonus_rows_into(features, lambda_inv, code, out)
    else:
        out[:] = 0.0
    for r in range(n_rows):
        q = 0.0
        for i in range(dim):
            q += features[r, i] * weights[i]
        out[r] = min(max(q + signed_beta * out[r], 0.0), upper)


@njit(cache=True)
def q_values(features, weights, lambda_inv, signed_beta, code, upper):
    """Clipped Q-values of ``features (N, A, d)``; returns ``(N, A)``."""
    n_states, n_actions, dim = features.shape
    out = np.empty(n_states * n_actions)
    clipped_q_rows_into(
        features.reshape((n_states * n_actions, dim)), weights, lambda_inv, signed_beta, code,
        upper, out,
    )
    return out.reshape((n_states, n_actions))


@njit(cache=True)
def backward_value_iteration(weights, features, lambda_inv, signed_beta, code, factors,
                             use_factors):
    """Greedy backward pass over ``H`` steps on a finite set of ``N`` states.

    The step-``h`` weights are ``weights[h]``, plus ``factors[h] @ V_{h+1}`` when
    ``use_factors`` (a known linear MDP, ``factors = mu (H, d, N)``). Returns
    ``Q (H, N, A)``, ``V (H + 1, N)`` with ``V[H] = 0`` and the greedy ``policy (H, N)``
    (first maximiser on ties).
    """
    horizon, dim = weights.shape
    n_states, n_actions, _ = features.shape
    q = np.empty((horizon, n_states, n_actions))
    v = np.zeros((horizon + 1, n_states))
    policy = np.zeros((horizon, n_states), dtype=np.int64)
    w = np.empty(dim)
    for h in range(horizon - 1, -1, -1):
        for i in range(dim):
            w[i] = weights[h, i]
            if use_factors:
                for n in range(n_states):
                    w[i] += factors[h, i, n] * v[h + 1, n]
        q[h] = q_values(features, w, lambda_inv[h], signed_beta, code, float(horizon - h))
        for n in range(n_states):
            best = 0
            for a in range(1, n_actions):
                if q[h, n, a] > q[h, n, best]:
                    best = a
            policy[h, n] = best
            v[h, n] = q[h, n, best]
    return q, v, policy


@njit(cache=True)
def lsvi_backward_pass(features, rewards, next_features, next_valid, ridge, signed_beta, code):
    """Least-squares value iteration (PEVI / LSVI-UCB), note sections 1.6-1.7.

    For ``h = H-1 .. 0``: ``Lambda_h = ridge I + sum_k phi_hk phi_hk^T``, targets
    ``y_k = r_hk + V_{h+1}(s'_k)`` with ``V_{h+1}(s') = max_a Q_{h+1}(s', a)`` from
    ``next_features[h, k]`` (0 where ``next_valid`` is False, and ``V_H = 0``), and
    ``w_h = Lambda_h^{-1} sum_k phi_hk y_k`` by a Cholesky solve.
    Returns ``weights (H, d)``, ``lambda_inv (H, d, d)`` and ``next_values (H, K)``.
    """
    horizon, n_samples, dim = features.shape
    n_actions = next_features.shape[2]
    weights = np.zeros((horizon, dim))
    lambda_inv = np.empty((horizon, dim, dim))
    next_values = np.zeros((horizon, n_samples))
    unit_weights = np.ones(n_samples)
    targets = np.empty((n_samples, 1))
    q_next = np.empty(n_samples * n_actions)  # reused every step
    for h in range(horizon - 1, -1, -1):
        lower = np.linalg.cholesky(gram_matrix(features[h], ridge, unit_weights))
        lambda_inv[h] = inverse_from_lower_inverse(lower_triangular_inverse(lower))
        if h < horizon - 1:
            clipped_q_rows_into(
                next_features[h].reshape((n_samples * n_actions, dim)), weights[h + 1],
                lambda_inv[h + 1], signed_beta, code, float(horizon - h - 1), q_next,
            )
            for k in range(n_samples):
                if next_valid[h, k]:
                    best = q_next[k * n_actions]
                    for a in range(1, n_actions):
                        best = max(best, q_next[k * n_actions + a])
                    next_values[h, k] = best
        for k in range(n_samples):
            targets[k, 0] = rewards[h, k] + next_values[h, k]
        moment = weighted_cross_moment(features[h], targets, unit_weights)
        weights[h] = cholesky_solve(lower, moment)[:, 0]
    return weights, lambda_inv, next_values
