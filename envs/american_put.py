"""American put option on a binomial price (Tamar et al. 2014; R2PVI paper, arXiv:2411.18612
American put, docs/r2pvi-results.md).

At each of ``H`` undiscounted steps the holder either holds (action 0) or exercises (action 1).
Exercising pays ``max(0, strike - s)`` and ends the episode. Holding pays nothing, and the price
moves to ``up * s`` with probability ``p`` (the perturbation knob; nominal ``p0 = 0.5``) and to
``down * s`` otherwise. An option that is never exercised expires worthless after step ``H``.

The price after ``h`` steps with ``j`` up-moves is computed as
``s_0 * up**j * down**(h - j)``, not by repeated multiplication. The price therefore depends
only on the node ``(h, j)`` of the recombining binomial tree, and
:meth:`AmericanPutEnv.expected_return` can evaluate a deterministic ``(price, step)`` policy
exactly on that tree with ``O(H^2)`` policy calls. The tree holds exactly the prices the
environment produces.

Learner features (arXiv:2411.18612 American put, docs/r2pvi-results.md) are ``d`` hat functions with
width
``Delta = (feature_high - feature_low) / d`` and anchors ``first_anchor + i * Delta``,
``phi_i(s) = max(0, 1 - |s - a_i| / Delta)``. The defaults (60, 160, first anchor 80) are the
authors'. The hats sum to one only on ``[first_anchor, first_anchor + (d - 1) Delta]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.envs.perturbations import perturbation_from_options
from robustrl.validation import check_int, check_positive, check_scalar, supported_render_mode

HOLD = 0
EXERCISE = 1


class AmericanPutEnv(gym.Env):
    """American put option with binomial prices (Tamar et al. 2014; arXiv:2411.18612 American put,
    docs/r2pvi-results.md).

    Observation: ``Box([price, step])`` float32. ``step`` is the 0-indexed step of the next
    decision, which is ``H`` after the last step. After an exercise, the observation keeps the
    exercise price. Actions: 0 = hold, 1 = exercise.
    Reward: ``reward_scale * max(0, strike - s)`` on exercise, else 0. ``reward_scale`` handles
    the authors' code truncates Q at H - h (docs/r2pvi-results.md): the payoffs reach about 40 while
    the learners clip ``Q`` at
    ``H - h``. Pass e.g. ``reward_scale=1/strike`` to bring rewards into ``[0, 1]``.

    Initial price: if ``initial_price`` is given, every episode starts there. Otherwise
    ``s_0 ~ U[initial_price_range]`` (default ``U[95, 105]``, as in the paper) is drawn from
    ``self.np_random``. A draw happens at every ``reset(seed=...)`` with a seed, and at the first
    reset when no seeded reset came before it. Later ``reset()`` calls without a seed keep the
    same ``s_0``. So one seeded object plays a fixed starting price, like the authors'
    environment, and the same seed always gives the same ``s_0`` and the same episodes.

    Args:
        perturbation: up-move probability ``p in [0, 1]``; ``None`` means ``p0 = 0.5``.
        horizon: ``H`` (20 in the paper).
        strike: strike price ``K > 0``.
        up, down: price factors, ``0 < down < up``.
        initial_price: fixed ``s_0 > 0``, or ``None`` for the random draw described above.
        initial_price_range: ``(low, high)`` with ``0 < low <= high`` for the random draw.
        feature_dim: number ``d`` of hat features (30 in the paper).
        feature_low, feature_high: set the hat width ``(feature_high - feature_low) / d``.
        first_anchor: centre of the first hat.
        reward_scale: positive multiplier on every payoff.
        render_mode: ``None`` or ``"ansi"``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    nominal_perturbation: ClassVar[float] = 0.5
    perturbation_grid: ClassVar[tuple[float, ...]] = (0.2, 0.4, 0.6, 0.8, 1.0)
    n_actions: int = 2

    def __init__(
        self,
        perturbation: float | None = None,
        horizon: int = 20,
        strike: float = 100.0,
        up: float = 1.02,
        down: float = 0.98,
        initial_price: float | None = None,
        initial_price_range: tuple[float, float] = (95.0, 105.0),
        feature_dim: int = 30,
        feature_low: float = 60.0,
        feature_high: float = 160.0,
        first_anchor: float = 80.0,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        render_mode = supported_render_mode(render_mode, self.metadata["render_modes"],
                                            type(self).__name__)
        self.perturbation = (
            self.nominal_perturbation
            if perturbation is None
            else check_scalar(perturbation, "perturbation", low=0.0, high=1.0)
        )
        self.horizon = check_int(horizon, "horizon", low=1)
        self.strike = check_positive(strike, "strike")
        self.down = check_positive(down, "down")
        self.up = check_scalar(up, "up", low=self.down, low_inclusive=False)
        self.initial_price = None if initial_price is None else check_positive(
            initial_price, "initial_price"
        )
        try:
            low, high = (float(x) for x in initial_price_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"initial_price_range must be a pair (low, high); got {initial_price_range!r}"
            ) from None
        low = check_positive(low, "initial_price_range[0]")
        high = check_scalar(high, "initial_price_range[1]", low=low)
        self.initial_price_range = (low, high)
        self.feature_dim = check_int(feature_dim, "feature_dim", low=1)
        self.feature_low = check_scalar(feature_low, "feature_low")
        self.feature_high = check_scalar(feature_high, "feature_high", low=self.feature_low,
                                         low_inclusive=False)
        self.first_anchor = check_scalar(first_anchor, "first_anchor")
        self.reward_scale = check_positive(reward_scale, "reward_scale")
        self.render_mode = render_mode

        self.anchor_spacing = (self.feature_high - self.feature_low) / self.feature_dim
        self.anchors = self.first_anchor + self.anchor_spacing * np.arange(self.feature_dim)

        highest_start = max(high, self.initial_price or 0.0)
        # Largest reachable price; the margin keeps the float32 observation inside the box.
        price_high = highest_start * max(self.up, 1.0) ** self.horizon * (1.0 + 1e-5)
        if not np.isfinite(np.float32(price_high)):
            raise ValueError(
                f"horizon={self.horizon} with up={self.up} makes prices overflow float32"
            )
        self.observation_space = spaces.Box(
            low=np.array([0.0, 0.0], dtype=np.float32),
            high=np.array([price_high, self.horizon], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Discrete(2)

        self._start_price: float | None = self.initial_price
        self._step = 0
        self._n_up = 0
        self._price = 0.0
        self._done = True

    @property
    def up_probability(self) -> float:
        """The price-up probability ``p`` of this environment."""
        return float(self.perturbation)

    @property
    def start_price(self) -> float | None:
        """``s_0`` of the current episodes (``None`` before the first reset if it is random)."""
        return self._start_price

    # ------------------------------------------------------------ features
    def hold_features(self, price) -> np.ndarray:
        """Hat features ``phi_i(s) = max(0, 1 - |s - a_i| / Delta)`` (arXiv:2411.18612 American put,
        docs/r2pvi-results.md).

        ``price`` may be a scalar or an array; the result has shape ``(..., d)``.
        """
        s = np.asarray(price, dtype=np.float64)[..., None]
        return np.maximum(0.0, 1.0 - np.abs(s - self.anchors) / self.anchor_spacing)

    def exercise_value(self, price) -> np.ndarray | float:
        """Payoff of exercising at ``price``, in reward units: ``reward_scale * max(0, K - s)``."""
        value = self.reward_scale * np.maximum(0.0, self.strike - np.asarray(price, dtype=float))
        return float(value) if np.ndim(value) == 0 else value

    def known_action_values(self, obs) -> np.ndarray:
        """Action values known without learning, NaN where a learner must estimate them.

        ``obs`` is one observation ``(price, step)`` or a batch ``(..., 2)``; the result has
        shape ``(..., 2)``: NaN for hold (learned) and :meth:`exercise_value` for exercise, which
        pays a known amount and ends the episode. Offline agents use it as
        ``V(s) = max(exercise value, learned hold Q)`` (arXiv:2411.18612 American put,
        docs/r2pvi-results.md).
        """
        prices = np.asarray(obs, dtype=np.float64)[..., 0]
        out = np.full((*prices.shape, 2), np.nan)
        out[..., EXERCISE] = self.exercise_value(prices)
        return out

    def features(self, obs, action: int) -> np.ndarray:
        """``phi(s, hold)`` = the hat features, and ``phi(s, exercise)`` = 0.

        Exercising ends the episode with a payoff known exactly (:meth:`exercise_value`). No value
        follows it, so a learner has nothing to estimate for it, and zero features keep it out of
        every regression.
        """
        a = self._check_action(action)
        if a == EXERCISE:
            return np.zeros(self.feature_dim)
        return self.hold_features(float(np.asarray(obs).reshape(-1)[0]))

    def action_features(self, obs) -> np.ndarray:
        """Features of both actions, shape ``(2, d)``: hold features, then zeros."""
        out = np.zeros((2, self.feature_dim))
        out[HOLD] = self.hold_features(float(np.asarray(obs).reshape(-1)[0]))
        return out

    def batch_action_features(self, observations) -> np.ndarray:
        """:meth:`action_features` of every row of ``observations (n, 2)`` (price, step), shape
        ``(n, 2, d)``."""
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[0] and obs.shape[1] < 1:
            raise ValueError(f"observations must be an (n, 2) array of (price, step) rows; got "
                             f"shape {obs.shape}")
        out = np.zeros((obs.shape[0], 2, self.feature_dim))
        out[:, HOLD] = self.hold_features(obs[:, 0])
        return out

    def _check_action(self, action) -> int:
        if isinstance(action, (bool, np.bool_)) or not np.issubdtype(
            np.asarray(action).dtype, np.integer
        ) or np.ndim(action) != 0 or int(action) not in (HOLD, EXERCISE):
            raise ValueError(f"action must be 0 (hold) or 1 (exercise); got {action!r}")
        return int(action)

    # ---------------------------------------------------------------- API
    def price_at(self, start_price: float, step: int, n_up) -> np.ndarray | float:
        """Price after ``step`` moves of which ``n_up`` went up: ``s_0 up^j down^(h-j)``."""
        n_up = np.asarray(n_up)
        price = start_price * self.up ** n_up * self.down ** (step - n_up)
        return float(price) if price.ndim == 0 else price

    def _obs(self) -> np.ndarray:
        return np.array([self._price, self._step], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"perturbation": p}`` switches the up-probability to p."""
        given, level = perturbation_from_options(options)
        if given:
            self.perturbation = (
                self.nominal_perturbation if level is None
                else check_scalar(level, "perturbation", low=0.0, high=1.0)
            )
        super().reset(seed=seed)
        if self.initial_price is None and (seed is not None or self._start_price is None):
            low, high = self.initial_price_range
            self._start_price = float(self.np_random.uniform(low, high))
        self._step, self._n_up, self._done = 0, 0, False
        self._price = self._start_price
        return self._obs(), {"step": 0}

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called before reset() or after the episode ended")
        a = self._check_action(action)
        if a == EXERCISE:
            reward = self.exercise_value(self._price)
            self._done = True
        else:
            reward = 0.0
            # random() < p is True always at p = 1 and never at p = 0.
            self._n_up += int(self.np_random.random() < self.up_probability)
        self._step += 1
        if a == HOLD:
            self._price = self.price_at(self._start_price, self._step, self._n_up)
        self._done = self._done or self._step == self.horizon
        return self._obs(), float(reward), self._done, False, {"step": self._step}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return f"step {self._step}/{self.horizon}: price {self._price:.4f}"

    # ------------------------------------------------------- exact return
    def expected_return(
        self,
        policy_fn: Callable[[float, int], int],
        initial_price: float | None = None,
    ) -> float:
        """Exact expected return of a deterministic policy under this environment's ``p``.

        ``policy_fn(price, step) -> action`` gets the price as the observation shows it, in
        float32 precision and passed as a Python float. It therefore sees exactly what it would
        see in the environment. The computation pushes the probability of the paths that are
        still unexercised forward through the recombining tree, one NumPy step at a time. It
        is exact because a node ``(h, j)`` fixes the price, so it fixes the policy's decision
        too.

        Args:
            policy_fn: deterministic policy; must return 0 (hold) or 1 (exercise).
            initial_price: ``s_0``. If omitted, this uses the environment's fixed
                ``initial_price``, or else the ``s_0`` of the last reset.
        """
        if initial_price is not None:
            s0 = check_positive(initial_price, "initial_price")
        elif self._start_price is not None:
            s0 = self._start_price
        else:
            raise ValueError(
                "initial_price must be given: the environment has no fixed initial_price and "
                "has not been reset yet"
            )
        p = self.up_probability
        alive = np.array([1.0])  # probability of reaching node (h, j) unexercised
        total = 0.0
        for h in range(self.horizon):
            n_up = np.arange(h + 1)
            prices = self.price_at(s0, h, n_up)
            observed = np.asarray(prices, dtype=np.float32).astype(np.float64)
            actions = np.array([self._check_action(policy_fn(float(x), h)) for x in observed])
            exercise = actions == EXERCISE
            total += float(np.sum(alive[exercise] * self.exercise_value(prices[exercise])))
            held = np.where(exercise, 0.0, alive)
            alive = np.zeros(h + 2)
            alive[:-1] += (1.0 - p) * held
            alive[1:] += p * held
        return total
