"""DRPVI: distributionally robust pessimistic value iteration (Liu & Xu 2024), TV ball.

The d-rectangular DRMDP baseline of the R2PVI paper (arXiv:2411.18612 baselines,
docs/algorithms/drpvi.md): each factor's inner problem
``inf { E_mu V : D_TV(mu || mu_{h,i}) <= rho_{h,i} }`` is estimated through its dual
``nu_i = max_alpha [Xi min(V, alpha)]_i - rho_i (alpha - v_min)``, which is piecewise linear in
alpha, so the maximum is at ``v_min`` or a data value: exact by sort and cumulative sums (the
authors run Nelder-Mead from H/2). A factor with ``rho = 0`` is not uncertain and gets the
plain regression ``[Xi V]_i``. The penalty is the d-rectangular one of R2PVI.
"""

from __future__ import annotations

from robustrl.agents._offline import OfflineAgent, check_d_rectangular_bonus
from robustrl.agents.estimators import (
    MomentEstimator,
    RowEstimator,
    TVDual,
    check_radius,
    check_v_min,
)


class DRPVI(OfflineAgent):
    """DRPVI on a d-rectangular TV uncertainty set.

    Args:
        env: a robustrl linear-feature environment.
        rho: radius >= 0: a scalar for every step and factor, or ``(H, d)`` per step and factor
            (the authors' simulated MDP: ``[[0, 0, 0, rho], [0, 0, 0, 0], ...]``).
        v_min: ``0.0`` (default; Liu & Xu assume the smallest value is 0), ``"data"`` or a
            number: where the adversary may move mass.
        ridge, beta, reward, theta, truncate_below, max_reward: see
            :class:`robustrl.agents._offline.OfflineAgent`.
        bonus: ``"paper_l1"`` or ``"code_l2"`` (the code's form for every method).
        estimator: ``None`` (:class:`~robustrl.agents.estimators.TVDual`, exact) or another
            estimator (see :class:`robustrl.agents._offline.OfflineAgent`).
    """

    def __init__(
        self,
        env,
        rho=0.1,
        ridge: float = 0.1,
        beta: float = 1.0,
        bonus: str = "paper_l1",
        reward: str = "estimated",
        theta=None,
        v_min: str | float = 0.0,
        truncate_below: bool = True,
        max_reward: float | None = None,
        estimator: MomentEstimator | RowEstimator | None = None,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward,
                         estimator=estimator)
        self.rho = check_radius(rho, "rho", (self.horizon, self.feature_dim))
        self.bonus = check_d_rectangular_bonus(bonus)
        self.v_min = check_v_min(v_min)
        self._penalty, self._estimator = self.bonus, estimator or TVDual(self.rho, self.v_min)

