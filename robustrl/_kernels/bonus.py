"""Exploration / pessimism bonus kernels (arXiv:2411.18612, docs/algorithms/r2pvi.md).

* elliptical: ``sqrt(phi^T Lambda^{-1} phi)`` (PEVI, LSVI-UCB);
* d-rectangular, paper form: ``sum_i |phi_i| sqrt([Lambda^{-1}]_ii)`` (R2PVI, DR-LSVI-UCB);
* d-rectangular, authors' code form: ``sqrt(sum_i phi_i^2 [Lambda^{-1}]_ii)``.

Features come flattened to ``(N, d)`` and are indexed as ``features[n, i]``: slicing out a row
view per feature vector costs more than the arithmetic at small ``d``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from robustrl._kernels.ridge import VECTORISE

# Integer codes so that the value-iteration kernels can pick a bonus without Python objects.
BONUS_NONE = 0
BONUS_ELLIPTICAL = 1
BONUS_D_RECTANGULAR_L1 = 2
BONUS_D_RECTANGULAR_L2 = 3

# Rows per block in quadratic_forms: each matrix entry loaded is used for this many rows.
_ROW_BLOCK = 4


@njit(cache=True, fastmath=VECTORISE)
def quadratic_forms(features, matrix, out):
    """In place: ``out[n] = phi_n^T M phi_n`` for every row of ``features (N, d)``."""
    n_rows, dim = features.shape
    n_blocked = n_rows - n_rows % _ROW_BLOCK
    for r in range(0, n_blocked, _ROW_BLOCK):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for i in range(dim):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            for j in range(dim):
                m = matrix[i, j]
                a0 += m * features[r, j]
                a1 += m * features[r + 1, j]
                a2 += m * features[r + 2, j]
                a3 += m * features[r + 3, j]
            s0 += features[r, i] * a0
            s1 += features[r + 1, i] * a1
            s2 += features[r + 2, i] * a2
            s3 += features[r + 3, i] * a3
        out[r] = s0
        out[r + 1] = s1
        out[r + 2] = s2
        out[r + 3] = s3
    for r in range(n_blocked, n_rows):
        s = 0.0
        for i in range(dim):
            a = 0.0
            for j in range(dim):
                a += matrix[i, j] * features[r, j]
            s += features[r, i] * a
        out[r] = s


@njit(cache=True, fastmath=VECTORISE)
def bonus_rows_into(features, lambda_inv, code, out):
    """In place: ``out[n]`` = the bonus ``code`` of row ``n`` of ``features (N, d)``."""
    n_rows, dim = features.shape
    if code == BONUS_ELLIPTICAL:
        quadratic_forms(features, lambda_inv, out)
        for r in range(n_rows):
            # Rounding can push a tiny quadratic form below zero; the true value is >= 0.
            out[r] = np.sqrt(max(out[r], 0.0))
    elif code == BONUS_D_RECTANGULAR_L1:
        scale = np.empty(dim)
        for i in range(dim):
            scale[i] = np.sqrt(lambda_inv[i, i])
        for r in range(n_rows):
            s = 0.0
            for i in range(dim):
                s += abs(features[r, i]) * scale[i]
            out[r] = s
    elif code == BONUS_D_RECTANGULAR_L2:
        diagonal = np.empty(dim)
        for i in range(dim):
            diagonal[i] = lambda_inv[i, i]
        for r in range(n_rows):
            s = 0.0
            for i in range(dim):
                s += features[r, i] * features[r, i] * diagonal[i]
            out[r] = np.sqrt(s)
    else:
        out[:] = 0.0


@njit(cache=True)
def bonus_rows(features, lambda_inv, code):
    """The bonus ``code`` of every row of ``features (N, d)``."""
    out = np.empty(features.shape[0])
    bonus_rows_into(features, lambda_inv, code, out)
    return out
