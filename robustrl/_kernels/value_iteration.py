"""Backward value-iteration kernels for linear MDPs (arXiv:2411.18612; docs/algorithms/r2pvi.md,
docs/algorithms/lsvi_ucb.md).

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
