"""Feature wrappers: run robustrl's linear agents on any Gymnasium environment.

A linear agent needs the feature protocol of :mod:`robustrl.protocols` (``horizon``,
``feature_dim``, ``features(obs, a)``, ``action_features(obs)``, a Discrete action space, and the
0-indexed step as the last entry of each observation). These wrappers provide it:

* :class:`OneHotFeatures` -- discrete observations (FrozenLake, CliffWalking, Taxi):
  ``phi(s, a) = e_{s A + a}``, so a linear agent is exactly a tabular one;
* :class:`FeatureMap` -- a user-supplied ``phi(state, a) -> (d,)``;
* :class:`TileCoding` -- continuous (Box) observations (CartPole, Acrobot, MountainCar):
  several offset grids ("tilings") over a box, one block per action (Sutton & Barto 2018,
  Sec. 9.5.4). Each tiling is a hard state aggregation, so the features are non-negative and
  sum to 1, as a d-rectangular linear MDP requires (arXiv:2411.18612, Sec. 3;
  arXiv:2510.14246); an active tile's weight ``1 / n_tilings`` keeps the uncertainty bonus of an
  unvisited tile large, which the linear agents' optimism needs;
* :class:`RBFFeatures` -- normalised Gaussian radial basis functions of a continuous state, one
  block per action (the soft state aggregation of the same kind; its features are spread over
  many centres, so a fresh state's bonus is small: prefer :class:`TileCoding` for the online
  agents).

Each wrapper appends the step ``h`` to the observation (``Discrete(n)`` becomes
``MultiDiscrete([n, H + 1])``; a 1-D ``Box`` gains a last coordinate in ``[0, H]``) and truncates
the episode after ``horizon`` steps. :func:`finite_mdp_from_toy_text` builds the exact
:class:`~robustrl.models.FiniteMDP` of a toy-text environment's transition table, so exact robust
DP gives the ground truth for agents run through :class:`OneHotFeatures`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.models import FiniteMDP
from robustrl.validation import check_int, check_positive, check_seed

__all__ = ["FeatureMap", "OneHotFeatures", "RBFFeatures", "StepFeatureWrapper", "TileCoding",
           "finite_mdp_from_toy_text"]


class StepFeatureWrapper(gym.Wrapper):
    """Base wrapper: appends the step index, truncates at ``horizon``, serves the features.

    Subclasses implement :meth:`state_features` (``phi(state, a)`` for every action of one
    state, shape ``(A, d)``) and set ``feature_dim``.
    """

    feature_dim: int

    def __init__(self, env: gym.Env, horizon: int) -> None:
        super().__init__(env)
        self.horizon = check_int(horizon, "horizon", low=1)
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError("env.action_space must be Discrete for a linear agent; got "
                             f"{env.action_space}")
        self.n_actions = int(env.action_space.n)
        inner = env.observation_space
        if isinstance(inner, spaces.Discrete):
            self._discrete = True
            self._offset = int(inner.start)
            self.observation_space = spaces.MultiDiscrete([int(inner.n), self.horizon + 1])
        elif isinstance(inner, spaces.Box) and len(inner.shape) == 1:
            self._discrete = False
            low = np.append(inner.low, 0).astype(inner.dtype)
            high = np.append(inner.high, self.horizon).astype(inner.dtype)
            self.observation_space = spaces.Box(low, high, dtype=inner.dtype)
        else:
            raise ValueError("env.observation_space must be Discrete or a 1-D Box; got "
                             f"{inner}")
        self._h = 0

    # ----------------------------------------------------------------- episodes
    def _with_step(self, obs: Any) -> np.ndarray:
        if self._discrete:
            return np.array([int(obs) - self._offset, self._h], dtype=np.int64)
        return np.append(np.asarray(obs), self._h).astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._h = 0
        return self._with_step(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._h += 1
        if self._h >= self.horizon and not terminated:
            truncated = True
        return self._with_step(obs), reward, terminated, truncated, info

    # ----------------------------------------------------------------- features
    def state_of(self, obs: Any) -> Any:
        """The wrapped environment's observation inside a wrapped one (the step removed)."""
        arr = np.asarray(obs)
        if arr.shape != self.observation_space.shape:
            raise ValueError(f"obs must have shape {self.observation_space.shape} (the state and "
                             f"the step); got {arr.shape}")
        return int(arr[0]) if self._discrete else arr[:-1].astype(np.float64)

    def state_features(self, state: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def action_features(self, obs: Any) -> np.ndarray:
        """``phi(s, a)`` for every action of ``obs``'s state, shape ``(A, d)``."""
        return self.state_features(self.state_of(obs))

    def features(self, obs: Any, action: int) -> np.ndarray:
        """``phi(s, a)`` of ``obs``'s state, shape ``(d,)``."""
        a = int(action)
        if not 0 <= a < self.n_actions or a != action:
            raise ValueError(f"action must be an integer in [0, {self.n_actions - 1}]; got "
                             f"{action!r}")
        return self.action_features(obs)[a]


class OneHotFeatures(StepFeatureWrapper):
    """One-hot ``phi(s, a) = e_{s A + a}`` (``d = S A``) for a Discrete observation space.

    Example: ``OneHotFeatures(gym.make("FrozenLake-v1"), horizon=20)``.
    """

    def __init__(self, env: gym.Env, horizon: int) -> None:
        super().__init__(env, horizon)
        if not self._discrete:
            raise ValueError("OneHotFeatures needs a Discrete observation space; got "
                             f"{env.observation_space} (use RBFFeatures or FeatureMap)")
        self.n_states = int(env.observation_space.n)
        self.feature_dim = self.n_states * self.n_actions

    def state_features(self, state: int) -> np.ndarray:
        if not 0 <= state < self.n_states:
            raise ValueError(f"obs state must be in [0, {self.n_states - 1}]; got {state}")
        phi = np.zeros((self.n_actions, self.feature_dim))
        phi[np.arange(self.n_actions), state * self.n_actions + np.arange(self.n_actions)] = 1.0
        return phi


class FeatureMap(StepFeatureWrapper):
    """Features from a user function ``phi(state, a) -> (feature_dim,)``.

    ``state`` is the wrapped environment's observation (an int for Discrete spaces, a float
    array for Box spaces). Every call's output is checked for shape and finiteness.
    """

    def __init__(self, env: gym.Env, horizon: int,
                 phi: Callable[[Any, int], Any], feature_dim: int) -> None:
        super().__init__(env, horizon)
        if not callable(phi):
            raise ValueError(f"phi must be callable phi(state, a); got {type(phi).__name__}")
        self.phi = phi
        self.feature_dim = check_int(feature_dim, "feature_dim", low=1)

    def state_features(self, state: Any) -> np.ndarray:
        rows = np.asarray([np.asarray(self.phi(state, a), dtype=np.float64)
                           for a in range(self.n_actions)])
        if rows.shape != (self.n_actions, self.feature_dim):
            raise ValueError(f"phi(state, a) must return shape ({self.feature_dim},); got "
                             f"{rows.shape[1:]}")
        if not np.all(np.isfinite(rows)):
            raise ValueError("phi(state, a) returned a non-finite value")
        return rows


class RBFFeatures(StepFeatureWrapper):
    """Normalised Gaussian RBF features of a continuous state, one block per action.

    With ``x = (s - low) / (high - low)`` and centres ``c_j`` drawn uniformly in ``[0, 1]^k``
    (seeded), ``k_j(s) = exp(-|x - c_j|^2 / (2 bandwidth^2))`` and
    ``phi(s, a) = e_a (x) k(s) / sum_j k_j(s)``: ``d = A * n_centers``, non-negative, summing to 1.

    Args:
        env: an environment with a 1-D Box observation space and Discrete actions.
        horizon: steps per episode (the episode is truncated there).
        n_centers: RBF centres per action.
        bandwidth: kernel width in the scaled unit cube; default ``n_centers ** (-1 / k)``
            (about one centre spacing).
        low, high: the state box used for scaling; default the observation space's bounds,
            which must then be finite (CartPole's velocities are not: pass them).
        seed: seed of the centres.
    """

    def __init__(self, env: gym.Env, horizon: int, n_centers: int = 32,
                 bandwidth: float | None = None, low=None, high=None, seed: int | None = 0) -> None:
        super().__init__(env, horizon)
        if self._discrete:
            raise ValueError("RBFFeatures needs a 1-D Box observation space; got "
                             f"{env.observation_space} (use OneHotFeatures)")
        self.n_centers = check_int(n_centers, "n_centers", low=1)
        k = int(env.observation_space.shape[0])
        self.low, self.high = _state_box(env, low, high, k)
        self.bandwidth = (check_positive(bandwidth, "bandwidth") if bandwidth is not None
                          else float(self.n_centers ** (-1.0 / k)))
        rng = np.random.default_rng(check_seed(seed))
        self.centers = rng.uniform(0.0, 1.0, size=(self.n_centers, k))
        self.feature_dim = self.n_actions * self.n_centers

    def state_features(self, state: np.ndarray) -> np.ndarray:
        x = (np.asarray(state, dtype=np.float64) - self.low) / (self.high - self.low)
        logits = -((x - self.centers) ** 2).sum(axis=1) / (2.0 * self.bandwidth ** 2)
        # log-sum-exp shift: a state far from every centre still gets weights summing to 1
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        phi = np.zeros((self.n_actions, self.feature_dim))
        for a in range(self.n_actions):
            phi[a, a * self.n_centers:(a + 1) * self.n_centers] = weights
        return phi


def _state_box(env: gym.Env, low, high, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The scaling box ``low``/``high`` (default: the observation space's bounds), checked."""
    lo = np.asarray(env.observation_space.low if low is None else low, dtype=np.float64)
    hi = np.asarray(env.observation_space.high if high is None else high, dtype=np.float64)
    for name, arr in (("low", lo), ("high", hi)):
        if arr.shape != (k,):
            raise ValueError(f"{name} must have shape ({k},); got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite (the observation space is unbounded "
                             f"there; pass {name}=...); got {arr.tolist()}")
    if np.any(hi <= lo):
        raise ValueError(f"high must exceed low in every coordinate; got low={lo.tolist()}, "
                         f"high={hi.tolist()}")
    return lo, hi


class TileCoding(StepFeatureWrapper):
    """Tile coding of a continuous state, one block per action (Sutton & Barto 2018, Sec. 9.5.4).

    The box ``[low, high]`` is cut into ``n_tiles[j]`` equal intervals along coordinate ``j``.
    Tiling ``i = 0 .. n_tilings - 1`` is that grid shifted by ``i * (2 j + 1) / n_tilings`` of a
    tile width along coordinate ``j`` (the asymmetric offsets recommended there); the part of the
    box pushed past the last tile joins it, so every tiling has exactly ``prod(n_tiles)`` tiles.
    ``phi(s, a) = e_a (x) (1 / n_tilings) sum_i e_{tile_i(s)}``: ``d = A * n_tilings *
    prod(n_tiles)``, non-negative, summing to 1, with exactly ``n_tilings`` non-zero entries.
    A coordinate with ``n_tiles[j] = 1`` is ignored.

    **States outside the box** are mapped to the edge tile of each offending coordinate (the
    coordinate is clamped to ``[low, high]``), the standard practice for tile coding. This
    changes the features of those states, so it is never silent: every clamped state is counted
    in :attr:`n_out_of_box` and the first one raises a ``RuntimeWarning``. Choose the box to
    cover the states the agent should tell apart (for CartPole the termination limits:
    ``|x| <= 2.4``, ``|theta| <= 0.2095``; the velocities are unbounded, pass a range).

    Args:
        env: an environment with a 1-D Box observation space and Discrete actions.
        horizon: steps per episode (the episode is truncated there).
        low, high: the box, one value per state coordinate; default the observation space's
            bounds, which must then be finite.
        n_tiles: intervals per coordinate, an int (all coordinates) or one int per coordinate.
        n_tilings: number of offset tilings (>= 1).
    """

    def __init__(self, env: gym.Env, horizon: int, low=None, high=None,
                 n_tiles: int | Any = 4, n_tilings: int = 4) -> None:
        super().__init__(env, horizon)
        if self._discrete:
            raise ValueError("TileCoding needs a 1-D Box observation space; got "
                             f"{env.observation_space} (use OneHotFeatures)")
        k = int(env.observation_space.shape[0])
        self.low, self.high = _state_box(env, low, high, k)
        if isinstance(n_tiles, (int, np.integer)) and not isinstance(n_tiles, bool):
            tiles = [check_int(n_tiles, "n_tiles", low=1)] * k
        else:
            try:
                tiles = [check_int(t, "n_tiles", low=1) for t in n_tiles]
            except TypeError:
                raise ValueError(f"n_tiles must be an int >= 1 or a sequence of {k} of them; "
                                 f"got {n_tiles!r}") from None
            if len(tiles) != k:
                raise ValueError(f"n_tiles must have one entry per state coordinate ({k}); "
                                 f"got {len(tiles)}")
        self.n_tiles = np.asarray(tiles, dtype=np.int64)
        self.n_tilings = check_int(n_tilings, "n_tilings", low=1)
        self.tiles_per_tiling = int(np.prod(self.n_tiles))
        self.feature_dim = self.n_actions * self.n_tilings * self.tiles_per_tiling
        # offsets (n_tilings, k) in tile widths, in [0, 1)
        self.offsets = np.mod(np.outer(np.arange(self.n_tilings), 2 * np.arange(k) + 1)
                              / self.n_tilings, 1.0)
        self._strides = np.cumprod(np.append(1, self.n_tiles[::-1][:-1]))[::-1]
        #: number of states clamped into the box so far (see the class docstring)
        self.n_out_of_box = 0

    def active_tiles(self, state: np.ndarray) -> np.ndarray:
        """The active tile of every tiling, ``(n_tilings,)`` indices in ``[0, prod(n_tiles))``
        (plus ``i * prod(n_tiles)`` for tiling ``i``)."""
        s = np.asarray(state, dtype=np.float64)
        if s.shape != self.low.shape or not np.all(np.isfinite(s)):
            raise ValueError(f"state must be a finite array of shape {self.low.shape}; got "
                             f"{s.tolist()}")
        clamped = np.clip(s, self.low, self.high)
        if np.any(clamped != s):
            self.n_out_of_box += 1
            if self.n_out_of_box == 1:
                outside = np.flatnonzero(clamped != s).tolist()
                warnings.warn(
                    f"TileCoding: state {s.tolist()} lies outside the box low={self.low.tolist()}"
                    f", high={self.high.tolist()} (coordinates {outside}); it is mapped to the "
                    "edge tiles. Further such states are counted in n_out_of_box, not warned.",
                    RuntimeWarning, stacklevel=3)
        u = (clamped - self.low) / (self.high - self.low) * self.n_tiles  # in [0, n_tiles]
        # the shift pushes the last part of the box past the last tile: it joins that tile
        idx = np.minimum(np.floor(u[None] + self.offsets), self.n_tiles - 1).astype(np.int64)
        return idx @ self._strides + np.arange(self.n_tilings) * self.tiles_per_tiling

    def state_features(self, state: np.ndarray) -> np.ndarray:
        block = self.n_tilings * self.tiles_per_tiling
        phi = np.zeros((self.n_actions, self.feature_dim))
        tiles = self.active_tiles(state)
        for a in range(self.n_actions):
            phi[a, a * block + tiles] = 1.0 / self.n_tilings
        return phi


def finite_mdp_from_toy_text(env: gym.Env, horizon: int) -> FiniteMDP:
    """The exact finite-horizon model of a toy-text environment (FrozenLake, CliffWalking,
    Taxi) from its transition table ``env.unwrapped.P[s][a] = [(p, s', r, terminated), ...]``.

    A state entered with ``terminated=True`` ends the episode; in the model it is absorbing with
    reward 0, which gives every policy the same value as the terminated episode. Rewards are
    the expected ``r`` of each ``(s, a)``; the initial distribution is ``initial_state_distrib``
    (uniform over states if the environment has none).
    """
    horizon = check_int(horizon, "horizon", low=1)
    base = env.unwrapped
    table = getattr(base, "P", None)
    if not isinstance(table, dict):
        raise ValueError(f"env.unwrapped.P must be a toy-text transition table; "
                         f"{type(base).__name__} has none")
    S, A = int(base.observation_space.n), int(base.action_space.n)
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    terminal = np.zeros(S, dtype=bool)
    for s in range(S):
        for a in range(A):
            for p, nxt, r, done in table[s][a]:
                P[s, a, nxt] += p
                R[s, a] += p * r
                terminal[nxt] |= bool(done)
    for s in np.flatnonzero(terminal):
        P[s] = 0.0
        P[s, :, s] = 1.0
        R[s] = 0.0
    init = np.asarray(getattr(base, "initial_state_distrib", np.full(S, 1.0 / S)), dtype=float)
    return FiniteMDP(np.broadcast_to(P, (horizon, S, A, S)).copy(),
                     np.broadcast_to(R, (horizon, S, A)).copy(), init / init.sum())
