"""A Gymnasium environment for any known finite d-rectangular linear MDP.

:class:`LinearMDPEnv` turns a :class:`~robustrl.models.LinearMDP` into an environment that samples
from exactly that model, so that the exact solvers in :mod:`robustrl.exact` give the true values
of anything run in it. It is :class:`~robustrl.envs.layered_mdp.FiniteMDPEnv` (same sampling,
observations, ``reset(options={"perturbation": q})``) with the model's own features ``phi``
instead of one-hot ones. Concrete environments (the simulated MDP of the R2PVI paper, random
d-rectangular MDPs) subclass it and only build their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from robustrl.envs.layered_mdp import FiniteMDPEnv
from robustrl.models import LinearMDP


class LinearMDPEnv(FiniteMDPEnv):
    """Episodes of a finite-horizon linear MDP given by its exact model.

    Observation: ``(state, step)`` as int64 in ``MultiDiscrete([S, H + 1])``; ``step`` is the
    0-indexed step of the next decision (``H`` after the last one). Action: ``Discrete(A)``.
    Reward: ``phi(s, a)^T theta_h`` (deterministic). The episode ends with ``terminated=True``
    after ``H`` steps. Features for agents: the model's ``phi`` (:meth:`features`,
    :meth:`action_features`, ``feature_dim = d``).

    Args:
        model: the exact model; :meth:`step` samples from ``model.P``.
        render_mode: ``None`` or ``"ansi"``.
        state_names: optional names used by :meth:`render`.
    """

    model_type: ClassVar[type] = LinearMDP

    def __init__(
        self,
        model: LinearMDP,
        render_mode: str | None = None,
        state_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model, render_mode=render_mode, state_names=state_names)
        self.feature_dim = model.feature_dim

    def _set_model(self, model: LinearMDP) -> None:
        if hasattr(self, "model") and model.feature_dim != self.model.feature_dim:
            raise ValueError("model must keep the environment's feature dimension d")
        super()._set_model(model)

    @property
    def linear_model(self) -> LinearMDP:
        """The model itself (already linear)."""
        return self.model

    def batch_action_features(self, observations) -> np.ndarray:
        """:meth:`action_features` of every row of ``observations (n, 2)``, shape
        ``(n, A, d)``."""
        return self.model.phi[self._batch_states(observations)]

    def features(self, obs, action: int) -> np.ndarray:
        """``phi(s, a)`` of the observation's state, shape ``(d,)``."""
        return self.model.phi[self._obs_state(obs), self._check_action(action)].copy()

    def action_features(self, obs) -> np.ndarray:
        """``phi(s, a)`` for every action, shape ``(A, d)``."""
        return self.model.phi[self._obs_state(obs)].copy()
