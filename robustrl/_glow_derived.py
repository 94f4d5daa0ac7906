"""The re-derived Theorem 3.1 bound of GLOW (arXiv:2401.09681): its constants and its
minimising truncation slope, shared by :mod:`robustrl.theory.glow` (the bound) and
``GLOW(constants="derived")`` (the schedule it is proved for), which may not import the
theory layer. Derivation: docs/algorithms/glow.md, "Theorem 3.1, re-derived"."""

from __future__ import annotations

import math

import numpy as np

from robustrl.validation import check_int, check_positive, check_scalar

__all__ = ["DERIVED_ALPHA_SCALE", "FREEDMAN", "RHO", "RHO_SQ", "glow_derived_gamma"]


#: Freedman's inequality (Beygelzimer et al. 2011, arXiv:1002.4058, Theorem 1): for martingale
#: differences ``X_i <= R`` and ``lam in (0, 1/R]``, ``sum X_i <= (e - 2) lam V + l / lam``.
FREEDMAN = math.e - 2.0
#: ``lam = RHO / gamma_t`` for the residual term (range ``R = 3 gamma_t``: ``c Delta in
#: [-2 gamma_t, gamma_t]``), ``lam' = RHO_SQ / gamma_t^2`` for ``c^2`` (range ``gamma_t^2``).
RHO, RHO_SQ = 1.0 / 3.0, 1.0
#: the smallest ``alpha_t gamma_t`` for which the self-normalised bound retains ``Q*``.
DERIVED_ALPHA_SCALE = 0.5


def _derived_constants(alpha_scale: float) -> tuple[float, float]:
    """``(k, u)``: the coefficient ``k`` of ``E_{d^t}[min(w_t / gamma_t, 1)]`` and the
    coefficient ``u`` of ``gamma_t l / n_t`` left by the two Freedman steps (docs/algorithms/
    glow.md, "Theorem 3.1, re-derived"): ``k = a (1 + (e-2) rho') + 4 (e-2) rho``,
    ``u = a / rho' + 1 / rho``."""
    a = alpha_scale
    return a * (1.0 + FREEDMAN * RHO_SQ) + 4.0 * FREEDMAN * RHO, a / RHO_SQ + 1.0 / RHO


def _harmonic(T_arr: np.ndarray) -> np.ndarray:
    """``H_{T-1} = sum_{i<T} 1/i = digamma(T) + Euler's gamma`` (elementwise)."""
    from scipy.special import digamma

    return digamma(T_arr) + np.euler_gamma


def _derived_parts(T, H, C_cov, log_F, log_W, delta, alpha_scale, beta_scale,
                   tabular_entries, episodes_per_round=1):
    K = check_int(episodes_per_round, "episodes_per_round", low=1)
    H = check_int(H, "H", low=1)
    C_cov = check_scalar(C_cov, "C_cov", low=1.0)
    log_F = check_scalar(log_F, "log_F", low=0.0)
    delta = check_scalar(delta, "delta", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
    alpha_scale = check_scalar(alpha_scale, "alpha_scale", low=DERIVED_ALPHA_SCALE)
    T_arr = np.asarray(T, dtype=np.float64)
    if (T_arr.size == 0 or np.any(~np.isfinite(T_arr)) or np.any(T_arr < 2)
            or np.any(T_arr != np.round(T_arr))):
        raise ValueError(f"T must be an integer >= 2 or an array of them; got {T!r}")
    if (log_W is None) == (tabular_entries is None):
        raise ValueError("give exactly one of log_W (a finite W) and tabular_entries (S A of "
                         "the tabular class)")
    if tabular_entries is None:
        log_W = check_scalar(log_W, "log_W", low=0.0)
        s_q = s_f = 0.0
    else:  # the grid {0, gamma_t/n_t, ..., gamma_t}^{S A}: at most (n_T + 1)^{S A} per (t, h)
        log_W = (check_int(tabular_entries, "tabular_entries", low=1)
                 * np.log((T_arr - 1.0) * K + 1.0))
        s_q, s_f = 1.0, 2.0  # the grid's slack (docs, step 3)
    ell = np.log(3.0 * T_arr * H / delta) + log_F + log_W
    need = 2.0 * ell + s_q
    if beta_scale is None:
        beta = need
    else:
        beta = np.broadcast_to(np.asarray(check_positive(beta_scale, "beta_scale"), float),
                               T_arr.shape)
        if np.any(beta < need - 1e-12):
            raise ValueError(f"beta_scale must be at least 2 l + {s_q:g} (= {float(need.min()):.4g}"
                             f" at these T) for Q* to stay in the confidence set; got "
                             f"{beta_scale!r}")
    k, u = _derived_constants(alpha_scale)
    lin = (beta + u * ell + s_f) * (T_arr - 1.0 + _harmonic(T_arr))
    pot = K * (k + 1.0) * C_cov * np.log2(1.0 + T_arr / C_cov)
    return T_arr, H, C_cov, lin, pot, k, K


def glow_derived_gamma(T, H: int, C_cov: float, log_F: float, log_W: float | None,
                       delta: float, *, alpha_scale: float = DERIVED_ALPHA_SCALE,
                       beta_scale: float | None = None,
                       tabular_entries: int | None = None,
                       episodes_per_round: int = 1) -> np.ndarray | float:
    """The truncation slope ``gamma`` (``gamma_t = gamma t``) that minimises
    :func:`glow_regret_bound_derived` at ``T``: ``sqrt(pot / lin)`` in the notation there."""
    T_arr, _, _, lin, pot, _, _ = _derived_parts(T, H, C_cov, log_F, log_W, delta,
                                                 alpha_scale, beta_scale, tabular_entries,
                                                 episodes_per_round)
    out = np.sqrt(pot / lin)
    return float(out) if out.ndim == 0 else out
