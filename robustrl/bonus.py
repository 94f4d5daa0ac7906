"""Uncertainty bonuses of linear MDPs (arXiv:2411.18612, docs/algorithms/r2pvi.md), batched over any
leading dimensions.

* :func:`elliptical_bonus`: ``sqrt(phi^T Lambda^{-1} phi)``, the PEVI / LSVI-UCB bonus;
* :func:`d_rectangular_bonus`: ``sum_i |phi_i| sqrt([Lambda^{-1}]_ii)`` (R2PVI paper form,
  ``form="paper_l1"``) or ``sqrt(sum_i phi_i^2 [Lambda^{-1}]_ii)`` (authors' code,
  ``form="code_l2"``; never larger than the paper form).

Multiply by ``beta`` yourself; the value-iteration routines take ``beta`` and a bonus name.
"""

from __future__ import annotations

import numpy as np

from robustrl._kernels import bonus as _kernels
from robustrl.ridge import check_lambda_inv
from robustrl.validation import check_array

__all__ = [
    "BONUS_NAMES",
    "bonus",
    "check_bonus_name",
    "d_rectangular_bonus",
    "elliptical_bonus",
]

#: Canonical bonus names accepted by :func:`bonus` and :mod:`robustrl.value_iteration`.
BONUS_NAMES: tuple[str, ...] = ("elliptical", "d_rectangular_l1", "d_rectangular_l2", "none")
_BONUS_ALIASES = {
    "elliptical": "elliptical",
    "d_rectangular_l1": "d_rectangular_l1",
    "paper_l1": "d_rectangular_l1",
    "d_rectangular_l2": "d_rectangular_l2",
    "code_l2": "d_rectangular_l2",
    "none": "none",
}
BONUS_CODES = {
    "none": _kernels.BONUS_NONE,
    "elliptical": _kernels.BONUS_ELLIPTICAL,
    "d_rectangular_l1": _kernels.BONUS_D_RECTANGULAR_L1,
    "d_rectangular_l2": _kernels.BONUS_D_RECTANGULAR_L2,
}
_FORMS = {"paper_l1": "d_rectangular_l1", "code_l2": "d_rectangular_l2"}


def check_bonus_name(name: str, argument: str = "bonus") -> str:
    """Canonical bonus name (``"paper_l1"`` / ``"code_l2"`` alias the d-rectangular forms)."""
    key = name.lower() if isinstance(name, str) else None
    if key not in _BONUS_ALIASES:
        raise ValueError(
            f"{argument} must be one of {', '.join(repr(n) for n in BONUS_NAMES)} "
            f"(or 'paper_l1' / 'code_l2'); got {name!r}"
        )
    return _BONUS_ALIASES[key]


def _bonus(features, lambda_inv, name: str) -> np.ndarray:
    phi = check_array(features, "features", ndim=tuple(range(1, 33)))
    dim = phi.shape[-1]
    inv = check_lambda_inv(lambda_inv, dim)
    flat = phi.reshape(-1, dim)
    return _kernels.bonus_rows(flat, inv, BONUS_CODES[name]).reshape(phi.shape[:-1])


def elliptical_bonus(features, lambda_inv) -> np.ndarray:
    """``sqrt(phi^T Lambda^{-1} phi)`` for ``features (..., d)``; returns shape ``(...)``."""
    return _bonus(features, lambda_inv, "elliptical")


def d_rectangular_bonus(features, lambda_inv, form: str = "paper_l1") -> np.ndarray:
    """d-rectangular bonus (arXiv:2411.18612, docs/algorithms/r2pvi.md) for ``features (..., d)``;
    returns ``(...)``.

    ``form="paper_l1"``: ``sum_i |phi_i| sqrt([Lambda^{-1}]_ii)`` (the paper's
    ``sum_i ||phi_i e_i||_{Lambda^{-1}}``); ``form="code_l2"``:
    ``sqrt(sum_i phi_i^2 [Lambda^{-1}]_ii)`` (the authors' code).
    """
    if form not in _FORMS:
        raise ValueError(f"form must be 'paper_l1' or 'code_l2'; got {form!r}")
    return _bonus(features, lambda_inv, _FORMS[form])


def bonus(features, lambda_inv, name: str) -> np.ndarray:
    """The bonus called ``name`` (see :data:`BONUS_NAMES`); ``"none"`` gives zeros."""
    canonical = check_bonus_name(name)
    if canonical == "none":
        phi = check_array(features, "features", ndim=tuple(range(1, 33)))
        return np.zeros(phi.shape[:-1])
    return _bonus(features, lambda_inv, canonical)
