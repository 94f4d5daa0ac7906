"""DRVI-L: distributionally robust value iteration with a d-rectangular KL ball (offline).

The KL baseline of the R2PVI paper (arXiv:2411.18612; docs/algorithms/drvi_l.md): each factor's
inner problem
``inf { E_mu V : D_KL(mu || mu_{h,i}) <= rho_{h,i} }`` is estimated through its dual
``nu_i = sup_{alpha > 0} -alpha log [Xi exp(-V / alpha)]_i - alpha rho_i``, a one-dimensional
search per coordinate (golden section in log alpha, :func:`robustrl.divergences.kl_dual_rows`
with ``clip="floor"``, the KL dual DR-LSVI-UCB runs with ``clip="support"``). A factor with
``rho = 0`` gets the plain regression ``[Xi V]_i``.

Deviation knobs (a regression estimate of ``E exp(-V/alpha)`` can be non-positive):

* ``z_floor`` (default 1e-6, the authors' clip): the estimate is clipped below at ``z_floor``
  (relative to the factor ``exp(-min V / alpha)`` of the smallest weighted value, so exact data
  are never clipped);
* ``centered=True`` reproduces the authors' code, which regresses ``exp(-V/alpha) - 1`` and adds
  1 back (a coordinate without data then reads ``z = 1``); the default follows the formula of
  docs/algorithms/drvi_l.md.
  The centred form is biased even on exact data: its floor caps the estimate at
  ``alpha log(1 / z_floor)``, which bites when the dual optimum is at small alpha (e.g. a factor
  with a one-point support), and ridge shrinkage puts the missing weight on the value 0.
"""

from __future__ import annotations

from robustrl.agents._offline import OfflineAgent, check_bool, check_d_rectangular_bonus
from robustrl.agents.estimators import KLDual, MomentEstimator, RowEstimator, check_radius
from robustrl.validation import check_scalar


class DRVI_L(OfflineAgent):  # noqa: N801 (the paper's name)
    """DRVI-L on a d-rectangular KL uncertainty set.

    Args:
        env: a robustrl linear-feature environment.
        rho: radius >= 0, a scalar or ``(H, d)`` per step and factor.
        z_floor: lower clip of the regression estimate, in (0, 1).
        centered: regress ``exp(-V/alpha) - 1`` and add 1 (the authors' code).
        ridge, beta, reward, theta, truncate_below, max_reward: see
            :class:`robustrl.agents._offline.OfflineAgent`.
        bonus: ``"paper_l1"`` or ``"code_l2"``.
        estimator: ``None`` (:class:`~robustrl.agents.estimators.KLDual`) or another
            estimator (see :class:`robustrl.agents._offline.OfflineAgent`).
    """

    def __init__(
        self,
        env,
        rho=0.1,
        z_floor: float = 1e-6,
        centered: bool = False,
        ridge: float = 0.1,
        beta: float = 1.0,
        bonus: str = "paper_l1",
        reward: str = "estimated",
        theta=None,
        truncate_below: bool = True,
        max_reward: float | None = None,
        estimator: MomentEstimator | RowEstimator | None = None,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward,
                         estimator=estimator)
        self.rho = check_radius(rho, "rho", (self.horizon, self.feature_dim))
        self.z_floor = check_scalar(z_floor, "z_floor", low=0.0, high=1.0,
                                    low_inclusive=False, high_inclusive=False)
        self.centered = check_bool(centered, "centered")
        self.bonus = check_d_rectangular_bonus(bonus)
        self._penalty = self.bonus
        self._estimator = estimator or KLDual(self.rho, self.z_floor, self.centered)

