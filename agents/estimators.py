"""Offline estimators as values: what the backward pass of the offline agents turns the
next-state values ``V`` of a step into, ``nu_h (d,)`` (R2PVI, arXiv 2411.18612, and the
baselines DRPVI and DRVI-L it compares with).

Two kinds, both passed to the pass as objects (``estimator=`` of every offline agent; each agent
builds its own in ``__init__`` otherwise):

* :class:`MomentEstimator`: ``nu = finish(Xi target(V))``, a function of one ridge estimate,
  so the pass accumulates only ``Phi^T W target(V)`` (PEVI: :class:`Regression`; R2PVI-TV:
  :class:`TVRegularized`; R2PVI-KL: :class:`KLRegularized`);
* :class:`RowEstimator`: ``nu = estimate(h, Xi, u, inside)`` on the regression matrix ``Xi (d, m)``
  of the ``m`` distinct next-state values ``u`` (R2PVI-chi2: :class:`Chi2Regularized`; DRPVI:
  :class:`TVDual`; DRVI-L: :class:`KLDual`). A custom estimator subclasses this one.

Inputs from the pass are trusted (C-contiguous float64); constructors validate their arguments.
"""

from __future__ import annotations

import warnings

import numpy as np

from robustrl._kernels import offline as _kernels
from robustrl.divergences import _kl_dual_rows, _tv_dual_rows
from robustrl.validation import (
    check_array,
    check_bool,
    check_nonnegative,
    check_positive,
    check_scalar,
)

__all__ = [
    "Chi2Regularized", "KLDual", "KLRegularized", "MomentEstimator", "Regression",
    "RowEstimator", "StepStats", "TVDual", "TVRegularized", "data_v_min", "radius_row",
]

# A feature column whose smallest value lies more than this many lam above the step's smallest
# value gets its own exactly shifted sum: below it, exp(-(V - min V) / lam) >= e^-600 = 3e-261
# keeps the column's leading terms normal floats (above 2e-308 = e^-708) even after a factor
# 1e-47 from the features, weights and Lambda^{-1}, and the global-shift sum is exact.
KL_FAR_SHIFT = 600.0

# Cancellation factor sum|terms| / |sum| of a factor's signed sum Xi exp(-V / lam) beyond which
# float64 rounding (and the rounding of Lambda^{-1}) may change nu by more than about
# lam * 1e-8 * cond(Lambda): R2PVI-KL warns (see robustrl.agents.R2PVI).
KL_MAX_CANCELLATION = 1e8

_NO_WEIGHTS = np.zeros(0)


def data_v_min(values: np.ndarray, in_regression: np.ndarray) -> float:
    """Smallest next-state value among the rows that enter the regression (0 if none): the
    R2PVI authors' TV ``V_min`` (arXiv 2411.18612)."""
    sel = values[in_regression]
    return float(sel.min()) if sel.size else 0.0


def radius_row(radius: float | np.ndarray, h: int, dim: int) -> np.ndarray:
    """The ``(d,)`` radii of step ``h`` of a scalar or ``(H, d)`` radius."""
    if isinstance(radius, np.ndarray):
        return np.ascontiguousarray(radius[h])
    return np.full(dim, float(radius))


def check_v_min(value, name: str = "v_min") -> str | float:
    """``"data"`` (the smallest next-state value in the step's data) or a finite float."""
    if isinstance(value, str) and value == "data":
        return value
    if isinstance(value, (str, bool, np.bool_)):
        raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}")
    try:
        return check_scalar(value, name)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}") from None


def check_radius(value, name: str = "rho", shape: tuple[int, int] | None = None):
    """A radius ``>= 0``: a scalar (every step and factor) or an ``(H, d)`` array."""
    if np.ndim(value) == 0:
        return check_nonnegative(value, name)
    return check_array(value, name, shape=shape if shape is not None else (None, None), low=0.0)


class StepStats:
    """Per-step statistics of the next-state values that moment estimators read: running
    minima over all rows and over regression rows, and what an estimator's
    :meth:`MomentEstimator.first_read` / :meth:`~MomentEstimator.accumulate` keep."""

    def __init__(self) -> None:
        self.all = np.inf
        self.regression = np.inf
        self.count = 0
        self.top = -np.inf  # largest value (estimators that ask, in their first read)
        self.skipped = False  # an estimator's per-chunk scan was skipped for some chunk
        self.columns: np.ndarray | None = None  # per feature column (estimators that ask)
        self.extra: np.ndarray | None = None  # an estimator's per-step sums

    def merge(self, lo: float, lo_regression: float, count: int) -> None:
        """Fold in the minima (all rows, regression rows) of ``count > 0`` more values."""
        self.all = min(self.all, lo)
        self.count += count
        self.regression = min(self.regression, lo_regression)

    @property
    def data_v_min(self) -> float:
        """:func:`data_v_min` of the whole step (0 when no row enters the regression)."""
        return self.regression if np.isfinite(self.regression) else 0.0


class MomentEstimator:
    """``nu = finish(Xi target(V))``: the pass accumulates ``Phi^T W target(V)`` only.
    ``needs_value_min``: the target reads the step's smallest values (:class:`StepStats`), so
    the pass reads the step's data once before forming targets."""

    needs_value_min: bool = False

    def target(self, values: np.ndarray, stats: StepStats) -> np.ndarray:
        raise NotImplementedError

    def first_read(self, features: np.ndarray, values: np.ndarray, stats: StepStats) -> None:
        """Per chunk of the first read (only with ``needs_value_min``)."""

    def accumulate(self, features: np.ndarray, values: np.ndarray,
                   sample_weights: np.ndarray | None, stats: StepStats) -> None:
        """Per chunk of the second read: extra per-step sums."""

    def finish(self, h: int, z: np.ndarray, stats: StepStats, moment: np.ndarray,
               lambda_inv: np.ndarray) -> np.ndarray:
        """``nu_h`` from ``z = Lambda^{-1} moment``, ``moment = Phi^T W target(V)`` (d,)."""
        return z


class RowEstimator:
    """``nu = estimate(h, Xi, u, inside)`` on the regression matrix of the distinct values."""

    def estimate(self, h: int, xi: np.ndarray, values: np.ndarray,
                 in_regression: np.ndarray) -> np.ndarray:
        """``nu_h (d,)`` from ``xi (d, m)``, distinct next-state values ``values (m,)`` and
        whether any row of each value enters the regression ``in_regression (m,)``."""
        raise NotImplementedError


class Regression(MomentEstimator):
    """``nu = Xi V``: the ordinary regression of the next-state values (PEVI)."""

    def target(self, values, stats):
        return values


class TVRegularized(MomentEstimator):
    """R2PVI-TV (arXiv 2411.18612): ``nu = Xi min(V, v_min + lam)``, ``v_min`` a
    number or ``"data"`` (the smallest next-state value among the step's regression rows)."""

    def __init__(self, lam: float, v_min: str | float = "data") -> None:
        self.lam = check_positive(lam, "lam")
        self.v_min = check_v_min(v_min)
        self.needs_value_min = self.v_min == "data"

    def target(self, values, stats):
        v_min = stats.data_v_min if self.v_min == "data" else self.v_min
        return np.minimum(values, v_min + self.lam)


class KLRegularized(MomentEstimator):
    """R2PVI-KL (arXiv 2411.18612): ``nu = -lam log clip(Xi exp(-V / lam),
    exp(-cap / lam), 1)``, each factor's sum formed with its own shift (see
    :class:`robustrl.agents.R2PVI` for the range of lam where this is trustworthy); the upper
    clip at 1 only with ``truncate_below``."""

    needs_value_min = True

    def __init__(self, lam: float, cap: float, truncate_below: bool = True) -> None:
        self.lam = check_positive(lam, "lam")
        self.cap = check_positive(cap, "cap")
        self.truncate_below = bool(truncate_below)
        self._narrow: tuple[np.ndarray, np.ndarray] | None = None  # read-only fillers

    def target(self, values, stats):
        return np.exp(-(values - stats.all) / self.lam)

    def first_read(self, features, values, stats) -> None:
        # The step's largest value, and each chunk's per-column minima where the chunk's values
        # spread over more than KL_FAR_SHIFT lam (else no column of it can be far; the chunk is
        # marked skipped).
        if values.size == 0:
            return
        if stats.columns is None:
            stats.columns = np.full(features.shape[1], np.inf)
        _, hi, scanned = _kernels.value_range_column_minima(
            features, values, stats.columns, KL_FAR_SHIFT * self.lam)
        stats.top = max(stats.top, hi)
        if not scanned:
            stats.skipped = True

    def accumulate(self, features, values, sample_weights, stats) -> None:
        # Per-column shifted sums, only where some column can lie more than KL_FAR_SHIFT lam
        # above the step's minimum (the values spread that wide): over the far columns from the
        # first read's minima, or, when a chunk skipped that scan, over every column with
        # running minima (one pass, rescaled as the minima drop).
        if stats.columns is None:
            return
        cutoff = stats.all + KL_FAR_SHIFT * self.lam
        d = features.shape[1]
        if stats.extra is None:
            if stats.top <= cutoff:  # narrow: no column can be far
                stats.columns = None
                return
            stats.extra = np.zeros(d)
            if stats.skipped:
                stats.columns = np.full(d, np.inf)
        sw = _NO_WEIGHTS if sample_weights is None else sample_weights
        if stats.skipped:
            _kernels.column_shifted_sums_into(stats.columns, stats.extra, features, values, sw,
                                              sw.size > 0, self.lam)
        else:
            _kernels.shifted_column_moment_into(stats.extra, features, values, sw, sw.size > 0,
                                                stats.columns, self.lam, cutoff)

    def finish(self, h, z, stats, moment, lambda_inv):
        if stats.count == 0:
            return _kernels.kl_from_sum(np.ascontiguousarray(z, dtype=np.float64),
                                        float(stats.all), self.lam, self.cap, True,
                                        self.truncate_below)
        # The global-shift sum z_i is exact for a factor whose row reaches a column within
        # KL_FAR_SHIFT lam of the minimum; the other factors are re-formed from the exactly
        # shifted column sums with their own shift (the smallest column minimum they load on).
        # Narrow values (no column sums): column minima -inf, every factor takes the global
        # shift.
        columns, extra = stats.columns, stats.extra
        if columns is None or extra is None:
            d = z.shape[0]
            if self._narrow is None or self._narrow[0].size != d:
                self._narrow = (np.full(d, -np.inf), np.zeros(d))
            columns, extra = self._narrow
        nu, worst, at = _kernels.kl_factor_estimate(
            lambda_inv, moment, z, columns, extra, stats.all, self.lam, KL_FAR_SHIFT, self.cap,
            self.truncate_below)
        self.check_cancellation(h, worst, at)
        return nu

    def check_cancellation(self, h: int, ratio: float, i: int) -> None:
        """Warn when a factor's signed sum ``Xi exp(-V / lam)`` cancels beyond float64."""
        if ratio > KL_MAX_CANCELLATION:
            where = f"step {h}, factor {i}" if h >= 0 else f"factor {i}"
            warnings.warn(
                f"R2PVI-KL: lam={self.lam:g} is too small for these regression weights: at "
                f"{where} the signed sum Xi exp(-V / lam) cancels by a factor {ratio:.3g} "
                f"(> {KL_MAX_CANCELLATION:.0e}), beyond what float64 resolves, so nu there may "
                f"be wrong; use a larger lam (with overlapping features keep "
                f"(max V - min V) / lam below about 18)",
                RuntimeWarning, stacklevel=3)


class Chi2Regularized(RowEstimator):
    """R2PVI-chi2 (arXiv 2411.18612): ``nu_i = max_alpha z1_i - (z2_i - z1_i^2) /
    (4 lam)``, ``z_k = Xi min(V, alpha)^k``, exact by the sorted piecewise-quadratic method."""

    def __init__(self, lam: float) -> None:
        self.lam = check_positive(lam, "lam")

    def estimate(self, h, xi, values, in_regression):
        return _kernels.chi2_regularized_rows(values, xi, self.lam)


class TVDual(RowEstimator):
    """DRPVI (Liu & Xu 2024): ``nu_i = max_alpha [Xi min(V, alpha)]_i - rho_i (alpha - v_min)``,
    exact (:func:`robustrl.divergences.tv_dual_rows`); ``rho`` a scalar or ``(H, d)``."""

    def __init__(self, rho, v_min: str | float = 0.0) -> None:
        self.rho = check_radius(rho)
        self.v_min = check_v_min(v_min)

    def estimate(self, h, xi, values, in_regression):
        v_min = data_v_min(values, in_regression) if self.v_min == "data" else self.v_min
        return _tv_dual_rows(values, xi, radius_row(self.rho, h, xi.shape[0]), float(v_min))


class KLDual(RowEstimator):
    """DRVI-L (Ma et al. 2022): ``nu_i = sup_alpha -alpha log [Xi exp(-V / alpha)]_i - alpha rho_i``
    (:func:`robustrl.divergences.kl_dual_rows` with ``clip="floor"``, the DRVI-L authors' rule:
    the estimate is floored at ``z_floor``; ``centered``: regress ``exp(-V/alpha) - 1``)."""

    def __init__(self, rho, z_floor: float = 1e-6, centered: bool = False) -> None:
        self.rho = check_radius(rho)
        self.z_floor = check_scalar(z_floor, "z_floor", low=0.0, high=1.0, low_inclusive=False,
                                    high_inclusive=False)
        self.centered = check_bool(centered, "centered")

    def estimate(self, h, xi, values, in_regression):
        return _kl_dual_rows(values, xi, radius_row(self.rho, h, xi.shape[0]), "floor",
                             self.z_floor, self.centered)
