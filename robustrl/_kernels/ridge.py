"""Ridge-regression kernels: Gram matrices, Cholesky solves, Sherman-Morrison updates.

Used by every least-squares value iteration (arXiv:2411.18612, docs/algorithms/r2pvi.md):
``Lambda = ridge I + sum_k w_k
phi_k phi_k^T`` and ``w = Lambda^{-1} sum_k w_k phi_k y_k``. Inputs are validated, C-contiguous
float64 arrays (see :mod:`robustrl.ridge`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# fastmath flags for the kernels with short dot-product reductions: reassociation lets LLVM
# vectorise them (2-5x faster at d = 16) and changes results only by rounding. No NaN/inf
# assumptions are made (inputs are validated finite anyway).
VECTORISE = {"reassoc"}


@njit(cache=True, fastmath=VECTORISE)
def accumulate_gram(gram, features, weights):
    """In place: ``gram += sum_k weights[k] phi_k phi_k^T``; ``gram`` stays exactly symmetric."""
    n_samples, dim = features.shape
    update = np.zeros((dim, dim))
    for k in range(n_samples):
        w = weights[k]
        if w == 0.0:
            continue
        for i in range(dim):
            wi = w * features[k, i]
            # The full square (not the triangle) so that the inner loop vectorises.
            for j in range(dim):
                update[i, j] += wi * features[k, j]
    for i in range(dim):
        for j in range(i, dim):
            gram[i, j] += update[i, j]
            gram[j, i] = gram[i, j]


@njit(cache=True)
def add_rank_one(gram, x, weight):
    """In place: ``gram += weight * x x^T``."""
    dim = x.shape[0]
    for i in range(dim):
        wi = weight * x[i]
        for j in range(dim):
            gram[i, j] += wi * x[j]


@njit(cache=True)
def gram_matrix(features, ridge, weights):
    """``ridge * I + sum_k weights[k] phi_k phi_k^T``."""
    dim = features.shape[1]
    gram = np.zeros((dim, dim))
    for i in range(dim):
        gram[i, i] = ridge
    accumulate_gram(gram, features, weights)
    return gram


@njit(cache=True)
def lower_triangular_inverse(lower):
    """Inverse of a lower-triangular matrix by forward substitution (the result is lower)."""
    dim = lower.shape[0]
    inverse = np.zeros((dim, dim))
    for j in range(dim):
        inverse[j, j] = 1.0 / lower[j, j]
        for i in range(j + 1, dim):
            s = 0.0
            for k in range(j, i):
                s -= lower[i, k] * inverse[k, j]
            inverse[i, j] = s / lower[i, i]
    return inverse


@njit(cache=True)
def inverse_from_lower_inverse(lower_inverse):
    """``M^T M`` for lower-triangular ``M = L^{-1}``, i.e. ``(L L^T)^{-1}``, exactly symmetric."""
    dim = lower_inverse.shape[0]
    out = np.empty((dim, dim))
    for i in range(dim):
        for j in range(i, dim):
            s = 0.0
            # M[k, i] M[k, j] vanishes unless k >= max(i, j) = j
            for k in range(j, dim):
                s += lower_inverse[k, i] * lower_inverse[k, j]
            out[i, j] = s
            out[j, i] = s
    return out


@njit(cache=True)
def spd_inverse(matrix):
    """Inverse of a symmetric positive definite matrix through its Cholesky factor."""
    return inverse_from_lower_inverse(lower_triangular_inverse(np.linalg.cholesky(matrix)))


@njit(cache=True)
def cholesky_solve(lower, rhs):
    """Solve ``L L^T X = rhs`` for ``rhs`` of shape ``(d, m)`` by two triangular substitutions."""
    dim, n_cols = rhs.shape
    x = rhs.copy()
    for c in range(n_cols):
        for i in range(dim):
            s = x[i, c]
            for k in range(i):
                s -= lower[i, k] * x[k, c]
            x[i, c] = s / lower[i, i]
        for i in range(dim - 1, -1, -1):
            s = x[i, c]
            for k in range(i + 1, dim):
                s -= lower[k, i] * x[k, c]
            x[i, c] = s / lower[i, i]
    return x


@njit(cache=True)
def weighted_cross_moment(features, targets, weights):
    """``sum_k weights[k] phi_k y_k^T`` of shape ``(d, m)`` for targets of shape ``(K, m)``."""
    n_samples, dim = features.shape
    n_cols = targets.shape[1]
    out = np.zeros((dim, n_cols))
    for k in range(n_samples):
        w = weights[k]
        if w == 0.0:
            continue
        for i in range(dim):
            wi = w * features[k, i]
            for c in range(n_cols):
                out[i, c] += wi * targets[k, c]
    return out


@njit(cache=True)
def ridge_solve(features, targets, ridge, weights):
    """Weighted ridge regression for every column of ``targets (K, m)``: one Cholesky factor."""
    lower = np.linalg.cholesky(gram_matrix(features, ridge, weights))
    return cholesky_solve(lower, weighted_cross_moment(features, targets, weights))


@njit(cache=True)
def sherman_morrison_update(lambda_inv, x, weight):
    """In place: ``A <- A - w A x x^T A / (1 + w x^T A x)``, the inverse after adding ``w x x^T``.

    ``A x`` is used on both sides (A is symmetric), so the update keeps A exactly symmetric.
    """
    dim = x.shape[0]
    u = np.zeros(dim)
    for i in range(dim):
        s = 0.0
        for j in range(dim):
            s += lambda_inv[i, j] * x[j]
        u[i] = s
    quad = 0.0
    for i in range(dim):
        quad += x[i] * u[i]
    coef = weight / (1.0 + weight * quad)
    for i in range(dim):
        ci = coef * u[i]
        for j in range(dim):
            lambda_inv[i, j] -= ci * u[j]


@njit(cache=True)
def sherman_morrison_batch(lambda_inv, features, weights):
    """In place: one Sherman-Morrison update per row of ``features``."""
    for k in range(features.shape[0]):
        if weights[k] != 0.0:
            sherman_morrison_update(lambda_inv, features[k], weights[k])


@njit(cache=True)
def sparse_gram_into(gram, features, weights, use_weights):
    """In place: ``gram += sum_k w_k phi_k phi_k^T`` touching only the nonzero entries of each
    row (``O(nnz_k^2)`` per row instead of ``O(d^2)``): hat, one-hot and tabular features have
    one or two nonzeros. Each product is formed once for ``(i, j)`` and ``(j, i)``, so ``gram``
    stays exactly symmetric. ``use_weights=False`` means unit weights."""
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
        for a in range(m):
            va = w * val[a]
            ia = idx[a]
            gram[ia, ia] += va * val[a]
            for b in range(a + 1, m):
                p = va * val[b]
                gram[ia, idx[b]] += p
                gram[idx[b], ia] += p
