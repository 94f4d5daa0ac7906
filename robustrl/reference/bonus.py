"""NumPy twins of :mod:`robustrl._kernels.bonus`, vectorised over any leading dimensions."""

from __future__ import annotations

import numpy as np


def elliptical_bonus(features: np.ndarray, lambda_inv: np.ndarray) -> np.ndarray:
    """``sqrt(phi^T Lambda^{-1} phi)`` for features of shape ``(..., d)``."""
    quad = np.einsum("...i,...i->...", features @ lambda_inv, features)
    return np.sqrt(np.maximum(quad, 0.0))


def d_rectangular_bonus_l1(features: np.ndarray, lambda_inv: np.ndarray) -> np.ndarray:
    """``sum_i |phi_i| sqrt([Lambda^{-1}]_ii)`` (paper form, arXiv:2411.18612,
    docs/algorithms/r2pvi.md)."""
    return np.abs(features) @ np.sqrt(np.diag(lambda_inv))


def d_rectangular_bonus_l2(features: np.ndarray, lambda_inv: np.ndarray) -> np.ndarray:
    """``sqrt(sum_i phi_i^2 [Lambda^{-1}]_ii)`` (authors' code form, arXiv:2411.18612,
    docs/algorithms/r2pvi.md)."""
    return np.sqrt((features * features) @ np.diag(lambda_inv))


BONUSES = {
    "elliptical": elliptical_bonus,
    "d_rectangular_l1": d_rectangular_bonus_l1,
    "d_rectangular_l2": d_rectangular_bonus_l2,
}


def bonus(features: np.ndarray, lambda_inv: np.ndarray, name: str) -> np.ndarray:
    """The bonus called ``name`` (a key of :data:`BONUSES`, or ``"none"`` for zeros)."""
    if name == "none":
        return np.zeros(features.shape[:-1])
    return BONUSES[name](features, lambda_inv)
