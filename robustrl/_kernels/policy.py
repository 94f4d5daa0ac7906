"""Softmax-policy kernels over rows of ``(N, A)`` arrays (arXiv:2510.14246,
docs/algorithms/drrpo.md).

Logits may hold ``-inf`` (an action with probability 0) but every row has a finite entry.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def log_softmax_rows(logits, inverse_temperature):
    """Row-wise ``log softmax(logits * inverse_temperature)``, shifted by the row maximum."""
    n_rows, n_cols = logits.shape
    out = np.empty((n_rows, n_cols))
    for n in range(n_rows):
        top = -np.inf
        for a in range(n_cols):
            top = max(top, logits[n, a] * inverse_temperature)
        total = 0.0
        for a in range(n_cols):
            total += np.exp(logits[n, a] * inverse_temperature - top)
        # Subtract the maximum before the log-normaliser: top + log(total) would round away
        # the small differences between huge logits (e.g. Q / tau with tau -> 0).
        log_total = np.log(total)
        for a in range(n_cols):
            out[n, a] = (logits[n, a] * inverse_temperature - top) - log_total
    return out


@njit(cache=True)
def softmax_rows(logits, inverse_temperature):
    """Row-wise ``softmax(logits * inverse_temperature)``; each row sums to 1 up to rounding."""
    n_rows, n_cols = logits.shape
    out = np.empty((n_rows, n_cols))
    for n in range(n_rows):
        top = -np.inf
        for a in range(n_cols):
            top = max(top, logits[n, a] * inverse_temperature)
        total = 0.0
        for a in range(n_cols):
            e = np.exp(logits[n, a] * inverse_temperature - top)
            out[n, a] = e
            total += e
        for a in range(n_cols):
            out[n, a] /= total
    return out


@njit(cache=True)
def regularized_log_policy(log_reference, q, eta, alpha):
    """``log pi_new`` with ``pi_new ∝ pi_ref^alpha exp(eta q)`` row-wise.

    Actions with ``log_reference = -inf`` keep probability 0 for every ``alpha`` (including
    ``alpha = 0``, where ``0 * -inf`` would otherwise be NaN).
    """
    n_rows, n_cols = q.shape
    logits = np.empty((n_rows, n_cols))
    for n in range(n_rows):
        for a in range(n_cols):
            if log_reference[n, a] == -np.inf:
                logits[n, a] = -np.inf
            else:
                logits[n, a] = alpha * log_reference[n, a] + eta * q[n, a]
    return log_softmax_rows(logits, 1.0)


@njit(cache=True)
def sample_rows(probs, uniforms):
    """Inverse-CDF sampling: one action index per row of ``probs (N, A)``, ``uniforms`` in
    ``[0, 1)``. Never returns an action of probability 0."""
    n_rows, n_cols = probs.shape
    out = np.empty(n_rows, dtype=np.int64)
    for n in range(n_rows):
        total = 0.0
        last_positive = 0
        for a in range(n_cols):
            total += probs[n, a]
            if probs[n, a] > 0.0:
                last_positive = a
        threshold = uniforms[n] * total
        # Rounding can leave the threshold at the row total; the last action with mass is then
        # the right answer.
        out[n] = last_positive
        cumulative = 0.0
        for a in range(n_cols):
            cumulative += probs[n, a]
            if cumulative > threshold and probs[n, a] > 0.0:
                out[n] = a
                break
    return out
