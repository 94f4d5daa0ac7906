"""R2PVI: robust regularised pessimistic value iteration (Tang, Liu & Xu, ICML 2025).

The offline learner of the d-rectangular regularised robust MDP (arXiv:2411.18612,
docs/algorithms/r2pvi.md). At each
step the ridge regression matrix ``Xi = Lambda_h^{-1} Phi^T`` turns next-state values ``V`` into
per-factor estimates ``nu_h`` of the regularised inner value ``I_lam[V; mu_{h,i}]``
(arXiv:2411.18612, docs/algorithms/r2pvi.md):

* TV: ``nu = Xi min(V, v_min + lam)`` (closed form, no optimisation);
* KL: ``nu = -lam log clip(Xi exp(-V / lam), exp(-max_reward H / lam), 1)`` (arXiv 2411.18612,
  the KL case of R2PVI), each factor's sum formed with its own shift (see below);
* chi2: ``nu_i = max_alpha z1_i - (z2_i - z1_i^2) / (4 lam)`` with ``z_k = Xi min(V, alpha)^k``,
  solved exactly by the sorted piecewise-quadratic method (not the Nelder-Mead of the authors' code,
  docs/algorithms/r2pvi.md).

Then ``w_h = theta_h + nu_h`` (or the reward regression plus ``nu_h``) and
``Q_h = clip(phi^T w_h - beta Gamma_h, 0, H - h)`` with the d-rectangular penalty
``Gamma_h = sum_i phi_i sqrt([Lambda_h^{-1}]_ii)`` (``bonus="paper_l1"``) or the authors' code's
``sqrt(sum_i phi_i^2 [Lambda_h^{-1}]_ii)`` (``"code_l2"``).

Variance-aware variant (docs/algorithms/r2pvi.md, ``variance_aware=True``): a plain pass first, then
``sigma_k^2 = max(max_reward^2, clip(phi_k^T z2, 0, (max_reward H)^2) - clip(phi_k^T z1, 0,
max_reward H)^2)`` from ridge regressions ``z1, z2`` of ``V`` and ``V^2`` of that pass, and a
second pass with sample weights ``1 / sigma_k^2`` in every Gram matrix and regression. (The
authors' code computes ``z1, z2`` with a Gram matrix that does not yet contain the data; this
implementation uses the data's.)
"""

from __future__ import annotations

import numpy as np

from robustrl.agents._offline import OfflineAgent, check_bool, check_d_rectangular_bonus
from robustrl.agents.estimators import (
    Chi2Regularized,
    KLRegularized,
    MomentEstimator,
    RowEstimator,
    TVRegularized,
    check_v_min,
)
from robustrl.data import OfflineDataset
from robustrl.ridge import ridge_solve
from robustrl.validation import check_divergence, check_positive


class R2PVI(OfflineAgent):
    """Robust regularised pessimistic value iteration (TV, KL or chi2 regulariser).

    Args:
        env: a robustrl linear-feature environment.
        divergence: ``"tv"``, ``"kl"`` or ``"chi2"``.
        lam: regulariser lambda > 0 (smaller is more robust; the authors pass it as ``Rho``).
        ridge: ridge parameter gamma > 0 (the authors' ``gamma``).
        beta: pessimism coefficient >= 0.
        bonus: ``"paper_l1"`` (default) or ``"code_l2"``.
        reward: ``"estimated"`` (default), ``"known"`` or ``"auto"`` (see
            :class:`robustrl.agents._offline.OfflineAgent`).
        theta: known reward weights ``(H, d)``; default ``env.unwrapped.model.theta``.
        v_min: TV only: ``"data"`` (the authors: the smallest next-state value in the step's
            data) or a number (exact: the minimum over all states, e.g. 0 with an absorbing
            zero-value fail state).
        variance_aware: run the variance-weighted variant (arXiv:2411.18612,
            docs/algorithms/r2pvi.md).
        truncate_below: clip Q at 0 (the paper) or only above (the authors' code).
        max_reward: rewards lie in ``[0, max_reward]``.
        estimator: ``None`` (the divergence's: :class:`~robustrl.agents.estimators.
            TVRegularized`, :class:`~robustrl.agents.estimators.KLRegularized` or
            :class:`~robustrl.agents.estimators.Chi2Regularized`) or another estimator (see
            :class:`robustrl.agents._offline.OfflineAgent`).

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

    def __init__(
        self,
        env,
        divergence: str = "tv",
        lam: float = 0.1,
        ridge: float = 0.1,
        beta: float = 1.0,
        bonus: str = "paper_l1",
        reward: str = "estimated",
        theta=None,
        v_min: str | float = "data",
        variance_aware: bool = False,
        truncate_below: bool = True,
        max_reward: float | None = None,
        estimator: MomentEstimator | RowEstimator | None = None,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward,
                         estimator=estimator)
        self.divergence = check_divergence(divergence)
        self.lam = check_positive(lam, "lam")
        self.bonus = check_d_rectangular_bonus(bonus)
        self.v_min = check_v_min(v_min)
        self.variance_aware = check_bool(variance_aware, "variance_aware")
        self._penalty = self.bonus
        self._estimator = estimator or (
            TVRegularized(self.lam, self.v_min) if self.divergence == "tv" else
            KLRegularized(self.lam, self.max_reward * self.horizon, self.truncate_below)
            if self.divergence == "kl" else Chi2Regularized(self.lam))

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
        first = self._dataset_pass(dataset, progress, keep_values=True)
        weights = self._variance_weights(self._step_arrays(dataset), first)
        self._store(self._dataset_pass(dataset, progress, weights))

    def _variance_weights(self, steps, first) -> list[np.ndarray]:
        """``1 / sigma_k^2`` per step from the first pass's next-state values (arXiv:2411.18612,
        docs/algorithms/r2pvi.md)."""
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
