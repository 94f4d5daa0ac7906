"""The robust inner problem under TV, KL and chi-square, constrained and regularised.

For a value function ``values`` over all states and a nominal next-state distribution p:

* constrained (DRMDP, arXiv:2411.18612, docs/algorithms/drpvi.md):  inf { E_mu[V] : mu in Delta(S),
  D(mu || p) <= rho }
* regularised (d-RRMDP, arXiv:2411.18612, docs/algorithms/r2pvi.md): inf { E_mu[V] + lam D(mu || p)
  : mu in Delta(S) }

with D_TV = 1/2 sum|mu - p|, D_KL = sum mu log(mu/p), D_chi2 = sum (mu - p)^2 / p. Both are
computed through exact (or 1e-8-accurate) one-dimensional duals, see the kernels in
:mod:`robustrl._kernels.divergence`. KL and chi2 need mu << p, so only supp(p) matters for them;
TV may move mass to ANY state, so its answer depends on the minimum value ``v_min`` over the
whole state space.

``v_min`` (TV only): the smallest value the adversary can reach. It defaults to
``values.min()``; pass it when ``values`` covers only part of a larger state space (e.g. 0 for
an absorbing zero-value state not listed). It must satisfy ``v_min <= values.min()``, since a
state listed in ``values`` is always reachable. It is validated for every divergence and ignored
by KL and chi2.

Accepted ranges: ``values`` finite with ``|values| <= 1e150`` (:data:`VALUE_BOUND`; squares and
products of the chi2 and TV duals then stay finite), ``nominal`` rows probability vectors,
``rho`` in ``[0, inf)`` (finite; a tiny or subnormal radius is handled by the small-radius
expansion of the dual, exact for chi2 and exact to within ``rho * spread`` for KL), ``lam`` in
``(0, inf)`` (finite), ``weights`` finite. Anything else raises ``ValueError`` naming the
argument.

The weighted kernels used by the offline estimators (signed regression weights) are re-exported
here: :func:`tv_dual_weighted` and :func:`chi2_regularized_dual_weighted`; the row-wise duals
that the agents run on a regression matrix are :func:`tv_dual_rows` and :func:`kl_dual_rows` (one
KL dual for DRVI-L and DR-LSVI-UCB, the clip rule of a non-positive regression estimate an
explicit argument, :data:`KL_CLIP_RULES`). The agents call the unchecked cores
``_tv_dual_rows`` / ``_kl_dual_rows`` with inputs they have validated once.
"""

from __future__ import annotations

import numpy as np

from robustrl._kernels import divergence as _k
from robustrl._kernels import offline as _offline_kernels
from robustrl.validation import (
    check_array,
    check_bool,
    check_distribution,
    check_divergence,
    check_nonnegative,
    check_positive,
    check_scalar,
)

__all__ = [
    "VALUE_BOUND",
    "constrained_inner",
    "regularized_inner",
    "tv_dual_weighted",
    "chi2_regularized_dual_weighted",
    "KL_CLIP_RULES",
    "kl_dual_rows",
    "tv_dual_rows",
]

#: How :func:`kl_dual_rows` treats a regression estimate ``z`` of ``E exp(-(v - m) / alpha)``
#: that a distribution could not give (``m`` the smallest value the row weights):
#: ``"floor"`` clips ``z`` below at ``z_floor`` (DRVI-L as its authors' code does, golden
#: section over a 40-wide ``log alpha`` bracket; optionally centred); ``"support"`` clips ``z``
#: to ``[exp(-span / alpha), 1]``, what a distribution on the row's observed values can give,
#: so the estimate stays in ``[m, m + span]`` before the ``rho`` term (the R2PVI-KL clip of
#: arXiv 2411.18612, applied to the constrained dual; 70 golden-section steps).
KL_CLIP_RULES: tuple[str, ...] = ("floor", "support")
# Golden-section iterations of the "support" rule (log alpha interval shrinks by 0.618^70).
_KL_SUPPORT_ITERATIONS = 70


# Largest accepted |value|: the chi2 duals square values and the TV dual sums products of them,
# which overflow float64 beyond about 1e154.
VALUE_BOUND = 1e150


def _check_values(values, name: str = "values") -> np.ndarray:
    """``values`` as a finite 1-D float array with entries in [-VALUE_BOUND, VALUE_BOUND]."""
    v = check_array(values, name, ndim=1)
    if np.any(np.abs(v) > VALUE_BOUND):
        raise ValueError(
            f"{name} must lie in [-{VALUE_BOUND:g}, {VALUE_BOUND:g}]; found "
            f"{v[np.argmax(np.abs(v))]:g} (squares of larger values overflow float64)"
        )
    return v


def _prepare(values, nominal, param, param_name: str, positive: bool, v_min):
    """Validate and convert; returns (values, nominal (m,S), param (m,), v_min, was_1d)."""
    v = _check_values(values)
    p = check_array(nominal, "nominal", ndim=(1, 2), low=0.0)
    if p.shape[-1] != v.shape[0]:
        raise ValueError(
            f"nominal must have last dimension equal to len(values) = {v.shape[0]}; "
            f"got shape {p.shape}"
        )
    p = check_distribution(p, "nominal")
    was_1d = p.ndim == 1
    p2 = np.ascontiguousarray(p.reshape(-1, v.shape[0]))
    # Rows are validated to sum to 1 within 1e-8; rescale away that rounding so the kernels
    # can assume exact probability vectors (no entry changes by more than a 1e-8 fraction).
    p2 = np.ascontiguousarray(p2 / p2.sum(axis=1, keepdims=True))
    m = p2.shape[0]
    check = check_positive if positive else check_nonnegative
    if np.ndim(param) == 0:
        prm = np.full(m, check(param, param_name))
    elif was_1d:
        raise ValueError(
            f"{param_name} must be a scalar when nominal is one distribution; "
            f"got shape {np.shape(param)}"
        )
    else:
        prm = check_array(param, param_name, shape=(m,), low=0.0)
        if positive and np.any(prm <= 0.0):
            raise ValueError(f"{param_name} entries must be > 0; found minimum {prm.min():g}")
    v_low = float(v.min())
    if v_min is None:
        vm = v_low
    else:
        vm = check_scalar(v_min, "v_min", high=v_low)
    return v, p2, prm, vm, was_1d


# the batch kernels of the inner problems; TV's also takes v_min
_CONSTRAINED = {"tv": _k.tv_constrained_batch, "kl": _k.kl_constrained_batch,
                "chi2": _k.chi2_constrained_batch}
_REGULARIZED = {"tv": _k.tv_regularized_batch, "kl": _k.kl_regularized_batch,
                "chi2": _k.chi2_regularized_batch}


def _finish(out: np.ndarray, was_1d: bool) -> float | np.ndarray:
    return float(out[0]) if was_1d else out


def constrained_inner(
    values, nominal, rho, divergence: str, *, v_min: float | None = None
) -> float | np.ndarray:
    """inf over mu in Delta(S) with D(mu || nominal) <= rho of E_mu[values] (arXiv:2411.18612,
    docs/algorithms/drpvi.md).

    ``nominal`` is (S,) -> float, or (m, S) -> (m,) array, each row sharing ``values``; ``rho``
    is a scalar or one radius per row, finite rho >= 0 (rho = 0 gives E_nominal[values]);
    ``values`` finite with ``|values| <= 1e150``; else ValueError. Duals:
    TV sup_alpha E_p[min(V, alpha)] - rho (alpha - v_min) (exact, sort + cumsum; rho >= 1
    gives v_min); KL sup_beta -beta log E_p exp(-V/beta) - beta rho (golden section, 1e-8 in
    value or better); chi2 sup_eta eta - sqrt(1 + rho) sqrt(E_p (eta - V)_+^2) (exact by
    segments). A radius below 1e-100 (subnormal ones included) takes the small-radius value
    ``E_p V - sqrt(c rho Var_p V)`` (c = 1 for chi2, exact there; c = 2 for KL, exact up to
    ``O(rho) * spread``, far below float64 resolution).
    """
    div = check_divergence(divergence)
    v, p, rho_arr, vm, was_1d = _prepare(values, nominal, rho, "rho", False, v_min)
    tv_args = (vm,) if div == "tv" else ()
    return _finish(_CONSTRAINED[div](v, p, rho_arr, *tv_args), was_1d)


def regularized_inner(
    values, nominal, lam, divergence: str, *, v_min: float | None = None
) -> float | np.ndarray:
    """inf over mu in Delta(S) of E_mu[values] + lam D(mu || nominal) (arXiv:2411.18612,
    docs/algorithms/r2pvi.md).

    Shapes as in :func:`constrained_inner`; lam in (0, inf) finite (large lam ->
    E_nominal[values]); ``values`` finite with ``|values| <= 1e150``; else ValueError.
    TV: E_p[min(V, v_min + lam)]; KL: -lam log E_p exp(-V/lam); chi2: sup over alpha of
    E_p[V ^ alpha] - Var_p(V ^ alpha) / (4 lam), V ^ alpha = min(V, alpha), exact by segments
    with the exact total 1 of ``nominal`` and clamped to [min V on supp(p), E_p V] (rounding
    only; accurate to a few ulp of max|V| for every lam).
    """
    div = check_divergence(divergence)
    v, p, lam_arr, vm, was_1d = _prepare(values, nominal, lam, "lam", True, v_min)
    tv_args = (vm,) if div == "tv" else ()
    return _finish(_REGULARIZED[div](v, p, lam_arr, *tv_args), was_1d)


def tv_dual_weighted(values, weights, rho: float, v_min: float) -> float:
    """max over alpha in {v_min} U {values_j} of sum_j w_j min(v_j, alpha) - rho (alpha - v_min).

    DRPVI's TV estimator (arXiv:2411.18612 baselines, docs/algorithms/drpvi.md) with regression
    weights ``weights`` (signed, any sum).
    Accepted: ``values`` finite in [-1e150, 1e150], ``weights`` finite of the same length,
    ``rho`` finite >= 0, ``v_min`` finite; else ValueError naming the argument.
    """
    v = _check_values(values)
    w = check_array(weights, "weights", shape=(v.shape[0],))
    return float(
        _k.tv_dual_weighted(v, w, check_nonnegative(rho, "rho"), check_scalar(v_min, "v_min"))
    )


def chi2_regularized_dual_weighted(values, weights, lam: float) -> float:
    """max over alpha in [min v, max v] of z1 - (z2 - z1^2) / (4 lam) (R2PVI chi2, arXiv:2411.18612,
    docs/algorithms/r2pvi.md).

    z1 = sum w min(v, alpha), z2 = sum w min(v, alpha)^2 with signed regression weights w.
    Accepted: ``values`` finite in [-1e150, 1e150], ``weights`` finite of the same length,
    ``lam`` finite > 0; else ValueError naming the argument. The weights' float total is used
    as it is (no clamp): for a probability vector use :func:`regularized_inner`.
    """
    v = _check_values(values)
    w = check_array(weights, "weights", shape=(v.shape[0],))
    return float(_k.chi2_regularized_dual_weighted(v, w, check_positive(lam, "lam")))


def _weighted_rows(values, weights, rho):
    """Validated ``(values (n,), weights (d, n), rho (d,))`` of the row-wise duals."""
    v = _check_values(values)
    w = check_array(weights, "weights", ndim=2)
    if w.shape[1] != v.shape[0]:
        raise ValueError(f"weights must have shape (d, {v.shape[0]}) (one column per value); "
                         f"got {w.shape}")
    if np.ndim(rho) == 0:
        r = np.full(w.shape[0], check_nonnegative(rho, "rho"))
    else:
        r = check_array(rho, "rho", shape=(w.shape[0],), low=0.0)
    return np.ascontiguousarray(v), np.ascontiguousarray(w), np.ascontiguousarray(r)


def tv_dual_rows(values, weights, rho, v_min: float) -> np.ndarray:
    """Row-wise TV dual of DRPVI and DR-LSVI-UCB (Liu & Xu 2024): ``nu_i = max over alpha in
    {v_min} U {v_j} of sum_j W_ij min(v_j, alpha) - rho_i (alpha - v_min)`` for ``values (n,)``,
    signed regression weights ``weights (d, n)`` and radii ``rho`` (scalar or ``(d,)``, >= 0);
    exact, one sort shared by the rows. A row with ``rho_i = 0`` is the plain regression
    ``W_i . v``; otherwise row ``i`` equals :func:`tv_dual_weighted`."""
    v, w, r = _weighted_rows(values, weights, rho)
    return _tv_dual_rows(v, w, r, check_scalar(v_min, "v_min"))


def _tv_dual_rows(v: np.ndarray, w: np.ndarray, rho: np.ndarray, v_min: float) -> np.ndarray:
    """:func:`tv_dual_rows` on trusted C-contiguous float64 inputs."""
    return _offline_kernels.tv_dual_rows(v, w, rho, float(v_min))


def kl_dual_rows(values, weights, rho, *, clip: str, z_floor: float = 1e-6,
                 centered: bool = False) -> np.ndarray:
    """Row-wise KL dual ``nu_i = sup_{alpha > 0} -alpha log [W exp(-v / alpha)]_i - alpha rho_i``
    (DRVI-L, Ma et al. 2022) for ``values (n,)``, regression weights ``weights (d, n)`` and
    radii ``rho`` (scalar or ``(d,)``, >= 0).

    With signed regression weights the estimate ``z_i`` of ``E exp(-v / alpha)`` can be
    non-positive, and ``clip`` (one of :data:`KL_CLIP_RULES`, no default: the two rules give
    different estimates there) says what then happens: ``"floor"`` (DRVI-L) takes
    ``max(z, z_floor)``, ``z_floor`` in (0, 1), relative to ``exp(-m / alpha)`` for the row's
    smallest weighted value ``m`` (``centered=True``: regress ``exp(-v/alpha) - 1`` and add 1,
    the DRVI-L authors' code); ``"support"`` (DR-LSVI-UCB) clips ``z`` to what a distribution
    on the row's weighted values can give. On probability rows both equal
    :func:`constrained_inner` with ``divergence="kl"``; on signed rows they differ wherever
    the clip binds. A row with ``rho_i = 0`` is the plain regression ``W_i . v``.
    """
    if clip not in KL_CLIP_RULES:
        raise ValueError(f"clip must be one of {KL_CLIP_RULES}; got {clip!r}")
    v, w, r = _weighted_rows(values, weights, rho)
    z_floor = check_scalar(z_floor, "z_floor", low=0.0, high=1.0, low_inclusive=False,
                           high_inclusive=False)
    if check_bool(centered, "centered") and clip != "floor":
        raise ValueError("centered=True applies to clip='floor' only (the DRVI-L code)")
    return _kl_dual_rows(v, w, r, clip, z_floor, bool(centered))


def _kl_dual_rows(v: np.ndarray, w: np.ndarray, rho: np.ndarray, clip: str,
                  z_floor: float = 1e-6, centered: bool = False) -> np.ndarray:
    """:func:`kl_dual_rows` on trusted C-contiguous float64 inputs."""
    if clip == "floor":
        return _offline_kernels.kl_constrained_rows(v, w, rho, z_floor, centered)
    d, n = w.shape
    out = w @ v
    robust = (rho > 0.0) & np.any(w != 0.0, axis=1)
    if n == 0 or not np.any(robust):
        return out
    wr, rr = w[robust], rho[robust]
    support = wr != 0.0
    shift = np.where(support, v[None, :], np.inf).min(axis=1)
    span = np.where(support, v[None, :], -np.inf).max(axis=1) - shift
    flat = span <= 0.0  # one value in the support: every distribution gives it
    span = np.where(flat, 1.0, span)
    # golden section over log alpha in [log(1e-12 span), log(span (1 + 1/rho))]: beyond the
    # upper end the objective is below its alpha -> 0 limit; the lower end stands for that limit
    lo, hi = np.log(1e-12 * span), np.log(span * (1.0 + 1.0 / rr))
    golden = 0.6180339887498949
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa = _kl_support_objective(a, v, wr, rr, shift, span)
    fb = _kl_support_objective(b, v, wr, rr, shift, span)
    for _ in range(_KL_SUPPORT_ITERATIONS):
        left = fa >= fb  # the maximum lies in [lo, b]; otherwise in [a, hi]
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
        a_next = np.where(left, hi - golden * (hi - lo), b)
        b_next = np.where(left, a, lo + golden * (hi - lo))
        f_new = _kl_support_objective(np.where(left, a_next, b_next), v, wr, rr, shift, span)
        fa, fb = np.where(left, f_new, fb), np.where(left, fa, f_new)
        a, b = a_next, b_next
    out[robust] = np.where(flat, shift, np.maximum(fa, fb))
    return out


def _kl_support_objective(log_alpha, v, w, rho, shift, span):
    """``shift - alpha log clip(sum_j W_ij exp(-(v_j - shift) / alpha), e^{-span/alpha}, 1)
    - alpha rho_i`` per row (the ``"support"`` rule of :func:`kl_dual_rows`)."""
    alpha = np.exp(log_alpha)
    with np.errstate(over="ignore"):
        z = np.einsum("in,in->i", w, np.exp(-np.maximum(v[None, :] - shift[:, None], 0.0)
                                           / alpha[:, None]))
    with np.errstate(divide="ignore"):
        log_z = np.where(z > 0.0, np.log(np.where(z > 0.0, z, 1.0)), -np.inf)
    log_z = np.clip(log_z, -span / alpha, 0.0)
    return shift - alpha * log_z - alpha * rho
