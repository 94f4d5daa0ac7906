"""R2PVI: robust regularised pessimistic value iteration (Tang, Liu & Xu, ICML 2025).

The offline learner of the d-rectangular regularised robust MDP (note sections 1.2-1.6). At each
step the ridge regression matrix ``Xi = Lambda_h^{-1} Phi^T`` turns next-state values ``V`` into
per-factor estimates ``nu_h`` of the regularised inner value ``I_lam[V; mu_{h,i}]``
(note 1.3 / 1.4):

* TV: ``nu = Xi min(V, v_min + lam)`` (closed form, no optimisation);
* KL: ``nu = -lam log clip(Xi exp(-V / lam), exp(-max_reward H / lam), 1)`` (arXiv 2411.18612,
  the KL case of R2PVI), each factor's sum formed with its own shift (see below);
* chi2: ``nu_i = max_alpha z1_i - (z2_i - z1_i^2) / (4 lam)`` with ``z_k = Xi min(V, alpha)^k``,
  solved exactly by the sorted piecewise-quadratic method (not Nelder-Mead, pitfall 8).

Then ``w_h = theta_h + nu_h`` (or the reward regression plus ``nu_h``) and
``Q_h = clip(phi^T w_h - beta Gamma_h, 0, H - h)`` with the d-rectangular penalty
``Gamma_h = sum_i phi_i sqrt([Lambda_h^{-1}]_ii)`` (``bonus="paper_l1"``) or the authors' code's
``sqrt(sum_i phi_i^2 [Lambda_h^{-1}]_ii)`` (``"code_l2"``).

Variance-aware variant (note 1.6, ``variance_aware=True``): a plain pass first, then
``sigma_k^2 = max(max_reward^2, clip(phi_k^T z2, 0, (max_reward H)^2) - clip(phi_k^T z1, 0,
max_reward H)^2)`` from ridge regressions ``z1, z2`` of ``V`` and ``V^2`` of that pass, and a
second pass with sample weights ``1 / sigma_k^2`` in every Gram matrix and regression. (The
authors' code computes ``z1, z2`` with a Gram matrix that does not yet contain the data; this
implementation uses the data's.)
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from robustrl._kernels import offline as _kernels
from robustrl._kernels.offline import chi2_regularized_rows
from robustrl._kernels.offline import kl_from_sum as _kl_from_sum_kernel
from robustrl.agents._offline import (
    OfflineAgent,
    check_bool,
    check_d_rectangular_bonus,
    check_v_min,
    data_v_min,
)
from robustrl.data import OfflineDataset
from robustrl.ridge import ridge_solve
from robustrl.validation import check_divergence, check_positive

# A feature column whose smallest value lies more than this many lam above the step's smallest
# value gets its own exactly shifted sum: below it, exp(-(V - min V) / lam) >= e^-600 = 3e-261
# keeps the column's leading terms normal floats (above 2e-308 = e^-708) even after a factor
# 1e-47 from the features, weights and Lambda^{-1}, and the global-shift sum is exact.
KL_FAR_SHIFT = 600.0

# Cancellation factor sum|terms| / |sum| of a factor's signed sum Xi exp(-V / lam) beyond which
# float64 rounding (and the rounding of Lambda^{-1}) may change nu by more than about
# lam * 1e-8 * cond(Lambda): R2PVI-KL warns (see the class docstring).
KL_MAX_CANCELLATION = 1e8

_NO_WEIGHTS = np.zeros(0)


class R2PVI(OfflineAgent):
    """Robust regularised pessimistic value iteration (TV, KL or chi2 regulariser).

    Args:
        env: a robustrl linear-feature environment.
        divergence: ``"tv"``, ``"kl"`` or ``"chi2"``.
        lam: regulariser lambda > 0 (smaller is more robust; the authors pass it as ``Rho``).
        ridge: ridge parameter gamma > 0 (the authors' ``gamma``).
        beta: pessimism coefficient >= 0.
        bonus: ``"paper_l1"`` (default) or ``"code_l2"``.
        reward: ``"auto"``, ``"known"`` or ``"estimated"`` (see
            :class:`robustrl.agents._offline.OfflineAgent`).
        theta: known reward weights ``(H, d)``; default ``env.unwrapped.model.theta``.
        v_min: TV only: ``"data"`` (the authors: the smallest next-state value in the step's
            data) or a number (exact: the minimum over all states, e.g. 0 with an absorbing
            zero-value fail state).
        variance_aware: run the variance-weighted variant (note 1.6).
        truncate_below: clip Q at 0 (the paper) or only above (the authors' code).
        max_reward: rewards lie in ``[0, max_reward]``.

    Range of lam where R2PVI-KL is trustworthy in float64: the factor-``i`` estimate is
    ``nu_i = m_i - lam log sum_k Xi_ik exp(-(V_k - m_i) / lam)``, ``m_i`` the smallest value its
    regression row weights (per-factor shift: no factor underflows because another factor's
    values are lower). With nonnegative regression weights (one-hot, tabular or
    disjoint-support features, exact data) the sum has no cancellation and every lam > 0 is
    exact up to rounding. With mixed-sign weights (overlapping features: ``Lambda^{-1}`` has
    negative entries) the terms are O(1) while the sum can be ``exp(-gap / lam)``: the result
    degrades from ``gap / lam`` of about 20 and is lost in rounding beyond about 30 (a limit
    of the published estimator
    arXiv 2411.18612, whose KL bound already grows like ``exp(H / lam)``). The fit measures the
    cancellation factor ``sum|terms| / |sum|`` of every factor and warns (naming lam, the step
    and the factor) when it exceeds 1e8, i.e. keep ``(max V - min V) / lam`` below about
    ``ln 1e8 = 18`` with overlapping features.
    """

    _hyperparam_names: ClassVar[tuple[str, ...]] = (
        "divergence", "lam", "ridge", "beta", "bonus", "reward", "theta", "v_min",
        "variance_aware", "truncate_below", "max_reward",
    )

    def __init__(
        self,
        env,
        divergence: str = "tv",
        lam: float = 0.1,
        ridge: float = 0.1,
        beta: float = 1.0,
        bonus: str = "paper_l1",
        reward: str = "auto",
        theta=None,
        v_min: str | float = "data",
        variance_aware: bool = False,
        truncate_below: bool = True,
        max_reward: float = 1.0,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward)
        self.divergence = check_divergence(divergence)
        self.lam = check_positive(lam, "lam")
        self.bonus = check_d_rectangular_bonus(bonus)
        self.v_min = check_v_min(v_min)
        self.variance_aware = check_bool(variance_aware, "variance_aware")
        self._narrow: tuple[np.ndarray, np.ndarray] | None = None  # KL: read-only fillers

    @property
    def _bonus_name(self) -> str:
        return self.bonus

    def _estimate(self, h, xi, values, in_regression) -> np.ndarray:
        lam = self.lam
        if self.divergence == "tv":
            v_min = data_v_min(values, in_regression) if self.v_min == "data" else self.v_min
            return xi @ np.minimum(values, v_min + lam)
        if self.divergence == "kl":
            return self._kl_estimate(xi, values, h)
        return chi2_regularized_rows(np.ascontiguousarray(values), xi, lam)

    # The closed forms (TV, KL) need only one ridge estimate Xi f(V): the moment path.
    def _uses_moments(self) -> bool:
        return self.divergence in ("tv", "kl") and type(self)._estimate is R2PVI._estimate

    def _needs_value_min(self) -> bool:
        return self.divergence == "kl" or self.v_min == "data"

    def _moment_target(self, h, values, value_min) -> np.ndarray:
        if self.divergence == "tv":
            v_min = value_min.data_v_min if self.v_min == "data" else self.v_min
            return np.minimum(values, v_min + self.lam)
        return np.exp(-(values - value_min.all) / self.lam)

    def _first_read(self, st, values, value_min) -> None:
        # The step's largest value, and each chunk's per-column minima where the chunk's values
        # spread over more than KL_FAR_SHIFT lam (else no column of it can be far; the chunk is
        # marked skipped).
        if self.divergence != "kl" or values.size == 0:
            return
        if value_min.columns is None:
            value_min.columns = np.full(self.feature_dim, np.inf)
        _, hi, scanned = _kernels.value_range_column_minima(
            st.features, values, value_min.columns, KL_FAR_SHIFT * self.lam)
        value_min.top = max(value_min.top, hi)
        if not scanned:
            value_min.skipped = True

    def _accumulate(self, st, values, sample_weights, value_min) -> None:
        # Per-column shifted sums, only where some column can lie more than KL_FAR_SHIFT lam
        # above the step's minimum (the values spread that wide): over the far columns from the
        # first read's minima, or, when a chunk skipped that scan, over every column with
        # running minima (one pass, rescaled as the minima drop).
        if value_min.columns is None:
            return
        cutoff = value_min.all + KL_FAR_SHIFT * self.lam
        if value_min.extra is None:
            if value_min.top <= cutoff:  # narrow: no column can be far
                value_min.columns = None
                return
            value_min.extra = np.zeros(self.feature_dim)
            if value_min.skipped:
                value_min.columns = np.full(self.feature_dim, np.inf)
        sw = _NO_WEIGHTS if sample_weights is None else sample_weights
        if value_min.skipped:
            _kernels.column_shifted_sums_into(value_min.columns, value_min.extra, st.features,
                                              values, sw, sw.size > 0, self.lam)
        else:
            _kernels.shifted_column_moment_into(value_min.extra, st.features, values, sw,
                                                sw.size > 0, value_min.columns, self.lam, cutoff)

    def _moment_estimate(self, h, z, value_min, moment, lambda_inv) -> np.ndarray:
        if self.divergence == "tv":
            return z
        if value_min.count == 0:
            return self._kl_from_sum(z, value_min.all, True)
        # The global-shift sum z_i is exact for a factor whose row reaches a column within
        # KL_FAR_SHIFT lam of the minimum; the other factors are re-formed from the exactly
        # shifted column sums with their own shift (the smallest column minimum they load on).
        # Narrow values (no column sums): column minima -inf, every factor takes the global
        # shift.
        columns, extra = value_min.columns, value_min.extra
        if columns is None or extra is None:
            if self._narrow is None or self._narrow[0].size != self.feature_dim:
                self._narrow = (np.full(self.feature_dim, -np.inf), np.zeros(self.feature_dim))
            columns, extra = self._narrow
        nu, worst, at = _kernels.kl_factor_estimate(
            lambda_inv, moment, z, columns, extra, value_min.all, self.lam,
            KL_FAR_SHIFT, self.max_reward * self.horizon, self.truncate_below)
        self._check_cancellation(h, worst, at)
        return nu

    def _check_cancellation(self, h: int, ratio: float, i: int) -> None:
        """Warn when a factor's signed sum ``Xi exp(-V / lam)`` cancels beyond float64."""
        if ratio > KL_MAX_CANCELLATION:
            where = f"step {h}, factor {i}" if h >= 0 else f"factor {i}"
            warnings.warn(
                f"R2PVI-KL: lam={self.lam:g} is too small for these regression weights: at "
                f"{where} the signed sum Xi exp(-V / lam) cancels by a factor {ratio:.3g} "
                f"(> {KL_MAX_CANCELLATION:.0e}), beyond what float64 resolves, so nu there may "
                f"be wrong; use a larger lam (with overlapping features keep "
                f"(max V - min V) / lam below about 18)",
                RuntimeWarning, stacklevel=2)

    def _kl_estimate(self, xi: np.ndarray, values: np.ndarray, h: int = -1) -> np.ndarray:
        """``-lam log clip(Xi exp(-V/lam), exp(-cap/lam), 1)``, ``cap = max_reward H`` (note 1.4).

        Computed per factor as ``m_i - lam log(Xi_i exp(-(V - m_i)/lam))`` with ``m_i`` the
        smallest value row ``i`` weights, so that nothing underflows for small lam; a
        non-positive regression estimate takes the clip value cap.
        So a factor without data (estimate 0) is valued at the top of the range, unlike TV and
        chi2 (estimate 0); only the penalty ``beta Gamma`` makes it pessimistic. (The authors'
        simulated-MDP code never meets this: it hard-codes the fail state's value to 0.)
        The upper clip at 1 (estimate >= 0) applies only with ``truncate_below`` (the code
        clips only from below).
        """
        if values.size == 0:
            return self._kl_from_sum(np.zeros(xi.shape[0]), 0.0, True)
        s, shifts, absum = _kernels.kl_regularized_rows(np.ascontiguousarray(values), xi,
                                                        self.lam)
        nu = _kernels.kl_from_row_sums(s, shifts, self.lam, self.max_reward * self.horizon,
                                       self.truncate_below)
        self._check_cancellation(h, *_kernels.worst_cancellation(s, absum))
        return nu

    def _kl_from_sum(self, s: np.ndarray, shift: float, empty: bool) -> np.ndarray:
        """``nu`` from ``s = Xi exp(-(V - shift) / lam)``, ``shift = min V`` (see above)."""
        # one Numba call (robustrl._kernels.offline.kl_from_sum): a handful of NumPy calls
        # cost more than the d logarithms
        return _kl_from_sum_kernel(np.ascontiguousarray(s, dtype=np.float64), float(shift),
                                   self.lam, self.max_reward * self.horizon, bool(empty),
                                   self.truncate_below)

    def _fit_stream(self, chunks, progress: bool) -> None:
        """See :meth:`robustrl.agents._offline.OfflineAgent.fit_stream` (not with
        ``variance_aware``, whose weights need the first pass's per-sample values)."""
        if self.variance_aware:
            raise ValueError("variance_aware=True is not supported by fit_stream: the sample "
                             "weights need every sample's first-pass value; use fit")
        super()._fit_stream(chunks, progress)

    def _fit(self, dataset: OfflineDataset, progress: bool) -> None:
        """The pass (twice with ``variance_aware``: the second weighted by the first)."""
        if not self.variance_aware:
            self._store(self._dataset_pass(dataset, progress))
            return
        steps = self._step_arrays(dataset)  # the second pass re-reads every step
        result = self._backward_pass(steps, None, progress)
        result = self._backward_pass(steps, self._variance_weights(steps, result), progress)
        self._store(result)

    def _variance_weights(self, steps, first) -> list[np.ndarray]:
        """``1 / sigma_k^2`` per step from the first pass's next-state values (note 1.6)."""
        H = self.horizon
        cap = self.max_reward * H
        out = []
        for h, st in enumerate(steps):
            n = st.features.shape[0]
            if h == H - 1 or n == 0:
                out.append(np.ones(n))
                continue
            v = first.next_values[h]
            z = ridge_solve(st.features, np.column_stack([v, v * v]), self.ridge)  # (d, 2)
            mean = np.clip(st.features @ z[:, 0], 0.0, cap)
            second = np.clip(st.features @ z[:, 1], 0.0, cap * cap)
            sigma2 = np.maximum(self.max_reward**2, second - mean * mean)
            out.append(1.0 / sigma2)
        return out
