"""PEVI: pessimistic value iteration (Jin, Yang & Wang 2021), the non-robust offline baseline.

Note section 1.7: ``w_h = Lambda_h^{-1} sum_k phi_k (r_k + V_{h+1}(s'_k))`` and
``Q_h = clip(phi^T w_h - beta ||phi||_{Lambda_h^{-1}}, 0, H - h)`` (0-indexed h). The authors'
code regresses the rewards (``reward="estimated"``, the default here).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from robustrl.agents._offline import OfflineAgent


class PEVI(OfflineAgent):
    """Pessimistic (elliptical-penalty) least-squares value iteration on an offline dataset.

    Args:
        env: a robustrl linear-feature environment (``horizon``, ``feature_dim``,
            ``action_features`` on ``env.unwrapped``).
        ridge, beta, reward, theta, truncate_below, max_reward: see
            :class:`robustrl.agents._offline.OfflineAgent`.
    """

    _hyperparam_names: ClassVar[tuple[str, ...]] = (
        "ridge", "beta", "reward", "theta", "truncate_below", "max_reward",
    )

    def __init__(
        self,
        env,
        ridge: float = 0.1,
        beta: float = 1.0,
        reward: str = "estimated",
        theta=None,
        truncate_below: bool = True,
        max_reward: float = 1.0,
    ) -> None:
        super().__init__(env, ridge=ridge, beta=beta, reward=reward, theta=theta,
                         truncate_below=truncate_below, max_reward=max_reward)

    @property
    def _bonus_name(self) -> str:
        return "elliptical"

    def _estimate(self, h, xi, values, in_regression) -> np.ndarray:
        return xi @ values

    def _uses_moments(self) -> bool:
        # Only when _estimate is this class's own (a subclass may redefine the estimator).
        return type(self)._estimate is PEVI._estimate

    def _moment_target(self, h, values, value_min) -> np.ndarray:
        return values
