"""PEVI: pessimistic value iteration (Jin, Yang & Wang 2021), the non-robust offline baseline.

The PEVI baseline of arXiv:2411.18612 (docs/algorithms/pevi.md):
``w_h = Lambda_h^{-1} sum_k phi_k (r_k + V_{h+1}(s'_k))`` and
``Q_h = clip(phi^T w_h - beta ||phi||_{Lambda_h^{-1}}, 0, H - h)`` (0-indexed h). The authors'
code regresses the rewards (``reward="estimated"``, the default here).
"""

from __future__ import annotations

from robustrl.agents._offline import OfflineAgent
from robustrl.agents.estimators import MomentEstimator, Regression, RowEstimator


class PEVI(OfflineAgent):
    """Pessimistic (elliptical-penalty) least-squares value iteration on an offline dataset.

    Args:
        env: a robustrl linear-feature environment (``horizon``, ``feature_dim``,
            ``action_features`` on ``env.unwrapped``).
        ridge, beta, reward, theta, truncate_below, max_reward, estimator: see
            :class:`robustrl.agents._offline.OfflineAgent` (default estimator
            :class:`~robustrl.agents.estimators.Regression`, ``nu = Xi V``).
    """

    def __init__(
        self,
        env,
        ridge: float = 0.1,
        beta: float = 1.0,
        reward: str = "estimated",
        theta=None,
        truncate_below: bool = True,
        max_reward: float | None = None,
        estimator: MomentEstimator | RowEstimator | None = None,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward,
                         estimator=estimator)
        self._penalty, self._estimator = "elliptical", estimator or Regression()

