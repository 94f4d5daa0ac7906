"""A Gymnasium environment for any known finite d-rectangular linear MDP.

:class:`LinearMDPEnv` turns a :class:`~robustrl.models.LinearMDP` into an environment that samples
from exactly that model, so that the exact solvers in :mod:`robustrl.exact` give the true values
of anything run in it. Concrete environments (the simulated MDP of the R2PVI paper, random
d-rectangular MDPs) subclass it and only build their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.envs.perturbations import perturbation_from_options
from robustrl.models import LinearMDP


class LinearMDPEnv(gym.Env):
    """Episodes of a finite-horizon linear MDP given by its exact model.

    Observation: ``(state, step)`` as int64 in ``MultiDiscrete([S, H + 1])``; ``step`` is the
    0-indexed step of the next decision (``H`` after the last one). Action: ``Discrete(A)``.
    Reward: ``phi(s, a)^T theta_h`` (deterministic). The episode ends with ``terminated=True``
    after ``H`` steps. Features for agents: :meth:`features`, :meth:`action_features`.

    Args:
        model: the exact model; :meth:`step` samples from ``model.P``.
        render_mode: ``None`` or ``"ansi"``.
        state_names: optional names used by :meth:`render`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    nominal_perturbation: ClassVar[Any] = None

    def __init__(
        self,
        model: LinearMDP,
        render_mode: str | None = None,
        state_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, LinearMDP):
            raise ValueError(f"model must be a LinearMDP; got {type(model).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}; "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.horizon = model.horizon
        self.feature_dim = model.feature_dim
        self.n_states = model.n_states
        self.n_actions = model.n_actions
        self.state_names = (
            tuple(state_names) if state_names is not None
            else tuple(f"s{i}" for i in range(self.n_states))
        )
        self._set_model(model)
        self.observation_space = spaces.MultiDiscrete([self.n_states, self.horizon + 1])
        self.action_space = spaces.Discrete(self.n_actions)
        self._state: int | None = None
        self._step = 0

    def _set_model(self, model: LinearMDP) -> None:
        if (model.horizon, model.n_states, model.n_actions, model.feature_dim) != (
            self.horizon, self.n_states, self.n_actions, self.feature_dim
        ):
            raise ValueError("model must keep the environment's H, S, A and d")
        self.model = model
        # step() samples from the model's own dense kernel, so the environment and its model
        # cannot disagree. Dividing by the last entry makes it exactly 1.0: a uniform draw in
        # [0, 1) always lands on a state and a zero-probability state never does.
        cumulative = np.cumsum(model.P, axis=-1)
        self._cumulative_kernel = cumulative / cumulative[..., -1:]
        self._rewards = model.R

    def _model_for(self, perturbation) -> LinearMDP:
        """The model at another perturbation level; subclasses with a knob override this."""
        raise ValueError(f"{type(self).__name__} has no perturbation knob")

    # ------------------------------------------------------------ features
    def features(self, obs, action: int) -> np.ndarray:
        """``phi(s, a)`` of the observation's state, shape ``(d,)``."""
        return self.model.phi[self._obs_state(obs), self._check_action(action)].copy()

    def action_features(self, obs) -> np.ndarray:
        """``phi(s, a)`` for every action, shape ``(A, d)``."""
        return self.model.phi[self._obs_state(obs)].copy()

    def _obs_state(self, obs) -> int:
        state = int(np.asarray(obs).reshape(-1)[0])
        if not 0 <= state < self.n_states:
            raise ValueError(
                f"obs[0] (the state) must lie in [0, {self.n_states - 1}]; got {state}"
            )
        return state

    def _check_action(self, action) -> int:
        if isinstance(action, (bool, np.bool_)) or not np.issubdtype(
            np.asarray(action).dtype, np.integer
        ) or np.ndim(action) != 0 or not 0 <= int(action) < self.n_actions:
            raise ValueError(
                f"action must be an integer in [0, {self.n_actions - 1}]; got {action!r}"
            )
        return int(action)

    # ---------------------------------------------------------------- API
    def _obs(self) -> np.ndarray:
        return np.array([self._state, self._step], dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"perturbation": q}`` switches the dynamics to level q."""
        given, level = perturbation_from_options(options)
        if given:
            self._set_model(self._model_for(level))
            self.perturbation = level
        super().reset(seed=seed)
        self._state = int(
            self.np_random.choice(self.n_states, p=self.model.initial_distribution)
        )
        self._step = 0
        return self._obs(), {"step": 0}

    def step(self, action):
        if self._state is None or self._step >= self.horizon:
            raise RuntimeError("step() called before reset() or after the episode ended")
        a = self._check_action(action)
        h, s = self._step, self._state
        reward = float(self._rewards[h, s, a])
        u = self.np_random.random()  # inverse-CDF draw from P_h(. | s, a)
        self._state = int(np.searchsorted(self._cumulative_kernel[h, s, a], u, side="right"))
        self._step = h + 1
        terminated = self._step == self.horizon
        return self._obs(), reward, terminated, False, {"step": self._step}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        name = type(self).__name__
        if self._state is None:
            return f"{name} (not reset)"
        return f"step {self._step}/{self.horizon}: state {self.state_names[self._state]}"
