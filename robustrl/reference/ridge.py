"""NumPy twins of :mod:`robustrl._kernels.ridge` (direct inverses and solves)."""

from __future__ import annotations

import numpy as np


def gram_matrix(features: np.ndarray, ridge: float, weights: np.ndarray) -> np.ndarray:
    dim = features.shape[1]
    return ridge * np.eye(dim) + (features * weights[:, None]).T @ features


def gram_inverse(features: np.ndarray, ridge: float, weights: np.ndarray) -> np.ndarray:
    return np.linalg.inv(gram_matrix(features, ridge, weights))


def ridge_solve(
    features: np.ndarray, targets: np.ndarray, ridge: float, weights: np.ndarray
) -> np.ndarray:
    """Solve ``(ridge I + Phi^T W Phi) X = Phi^T W Y`` for ``targets`` of shape ``(K, m)``."""
    rhs = (features * weights[:, None]).T @ targets
    return np.linalg.solve(gram_matrix(features, ridge, weights), rhs)


def sherman_morrison_update(lambda_inv: np.ndarray, x: np.ndarray, weight: float) -> None:
    """In place: the inverse of ``Lambda + weight x x^T`` given ``lambda_inv = Lambda^{-1}``."""
    u = lambda_inv @ x
    lambda_inv -= weight * np.outer(u, u) / (1.0 + weight * (x @ u))


def sparse_gram_into(gram: np.ndarray, features: np.ndarray, weights: np.ndarray,
                     use_weights: bool) -> None:
    """Twin of the kernel (a dense product: the kernel only skips zero entries)."""
    w = weights if use_weights else np.ones(features.shape[0])
    gram += (features * w[:, None]).T @ features
