"""Layered tabular MDPs as Gymnasium environments with an exact :class:`FiniteMDP` model.

:class:`FiniteMDPEnv` turns any finite-horizon :class:`~robustrl.models.FiniteMDP` into an
environment that samples from exactly that model (the tabular twin of
:class:`~robustrl.envs.linear_mdp_env.LinearMDPEnv`), with one-hot ``(s, a)`` features so that
linear agents run on it unchanged. :class:`LayeredTabularMDPEnv` is a seeded random layered MDP
built on it; :class:`~robustrl.envs.combination_lock.CombinationLockEnv` is another.

**State layout (layered MDPs).** A layered MDP with ``S`` states per layer is stored with ``S``
layer-independent state indices ``0 .. S-1``: the state at step ``h`` is ``(index, h)``, and the
time-indexed kernel ``P[h, s, a, s']`` maps layer ``h`` to layer ``h + 1``. The observation
``(state, step)`` carries both, so the layer is always known to the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.envs.perturbations import perturbation_from_options
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.validation import check_int, check_scalar, check_seed, supported_render_mode

__all__ = ["FiniteMDPEnv", "LayeredTabularMDPEnv", "layered_tabular_mdp", "with_unreachable_states"]


def _check_perturbation(perturbation: Any) -> float | None:
    if perturbation is None:
        return None
    return check_scalar(perturbation, "perturbation", low=0.0, high=1.0)


def _check_model_seed(seed: Any) -> int:
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("seed must be an integer >= 0 (the MDP is built from it); got None")
    return seed


class FiniteMDPEnv(gym.Env):
    """Episodes of a finite-horizon tabular MDP given by its exact model.

    Observation: ``(state, step)`` as int64 in ``MultiDiscrete([S, H + 1])``; ``step`` is the
    0-indexed step of the next decision (``H`` after the last one). Action: ``Discrete(A)``.
    Reward: ``R[h, s, a]`` (deterministic). The episode ends with ``terminated=True`` after
    ``H`` steps. Features: one-hot ``e_{s * A + a}`` of dimension ``S * A``
    (:meth:`features`, :meth:`action_features`), so a linear agent with per-step weights is
    exactly a tabular one here.

    Args:
        model: the exact model; :meth:`step` samples from ``model.P``.
        render_mode: ``None`` or ``"ansi"``.
        state_names: optional names used by :meth:`render`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    nominal_perturbation: ClassVar[Any] = None
    # The model class this environment runs (LinearMDPEnv narrows it to LinearMDP).
    model_type: ClassVar[type] = FiniteMDP

    def __init__(
        self,
        model: FiniteMDP,
        render_mode: str | None = None,
        state_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, self.model_type):
            raise ValueError(
                f"model must be a {self.model_type.__name__}; got {type(model).__name__}"
            )
        render_mode = supported_render_mode(render_mode, self.metadata["render_modes"],
                                            type(self).__name__)
        self.render_mode = render_mode
        self.horizon = model.horizon
        self.n_states = model.n_states
        self.n_actions = model.n_actions
        self.feature_dim = self.n_states * self.n_actions
        self.state_names = (
            tuple(state_names) if state_names is not None
            else tuple(f"s{i}" for i in range(self.n_states))
        )
        self._set_model(model)
        self.observation_space = spaces.MultiDiscrete([self.n_states, self.horizon + 1])
        self.action_space = spaces.Discrete(self.n_actions)
        self._state: int | None = None
        self._step = 0

    def _set_model(self, model: FiniteMDP) -> None:
        if (model.horizon, model.n_states, model.n_actions) != (
            self.horizon, self.n_states, self.n_actions
        ):
            raise ValueError("model must keep the environment's H, S and A")
        self.model = model
        # step() samples from the model's own dense kernel and rewards (cached: a LinearMDP
        # computes them from its factors), so the environment and its model cannot disagree.
        # Dividing by the last entry makes each CDF end at exactly 1.0, so a uniform draw in
        # [0, 1) never lands on a zero-probability state.
        cumulative = np.cumsum(model.P, axis=-1)
        self._cumulative_kernel = cumulative / cumulative[..., -1:]
        self._rewards = model.R
        self._cumulative_initial = np.cumsum(model.initial_distribution)
        self._cumulative_initial /= self._cumulative_initial[-1]

    def _model_for(self, perturbation) -> FiniteMDP:
        """The model at another perturbation level; subclasses with a knob override this."""
        raise ValueError(f"{type(self).__name__} has no perturbation knob")

    @property
    def linear_model(self) -> LinearMDP:
        """The model as an exact d-rectangular :class:`LinearMDP` with the one-hot features.

        ``phi(s, a) = e_{s A + a}``, ``mu[h, sA + a] = P[h, s, a]``, ``theta[h] = R[h].ravel()``:
        the same kernel and rewards, for the linear agents' exact solvers.
        """
        H, S, A = self.horizon, self.n_states, self.n_actions
        phi = np.eye(S * A).reshape(S, A, S * A)
        return LinearMDP(phi, self.model.P.reshape(H, S * A, S), self.model.R.reshape(H, S * A),
                         self.model.initial_distribution)

    # ------------------------------------------------------------ features
    def features(self, obs, action: int) -> np.ndarray:
        """One-hot ``phi(s, a) = e_{s * A + a}``, shape ``(S * A,)``."""
        s, a = self._obs_state(obs), self._check_action(action)
        phi = np.zeros(self.feature_dim)
        phi[s * self.n_actions + a] = 1.0
        return phi

    def action_features(self, obs) -> np.ndarray:
        """``phi(s, a)`` for every action, shape ``(A, S * A)``."""
        s = self._obs_state(obs)
        phi = np.zeros((self.n_actions, self.feature_dim))
        phi[np.arange(self.n_actions), s * self.n_actions + np.arange(self.n_actions)] = 1.0
        return phi

    def batch_action_features(self, observations) -> np.ndarray:
        """:meth:`action_features` of every row of ``observations (n, 2)``, shape
        ``(n, A, d)``."""
        states = self._batch_states(observations)
        out = np.zeros((states.size, self.n_actions, self.feature_dim))
        actions = np.arange(self.n_actions)
        out[np.arange(states.size)[:, None], actions, states[:, None] * self.n_actions + actions] \
            = 1.0
        return out

    def _batch_states(self, observations) -> np.ndarray:
        """The states of the rows of ``observations (n, 2)``, checked as :meth:`_obs_state`
        checks one."""
        obs = np.asarray(observations)
        if obs.ndim != 2 or obs.shape[1] < 1:
            raise ValueError(f"observations must be an (n, 2) array of (state, step) rows; got "
                             f"shape {obs.shape}")
        states = obs[:, 0]
        if np.any(states != np.floor(states)) or states.size and (
                states.min() < 0 or states.max() >= self.n_states):
            raise ValueError(f"observations must be rows whose first entry (the state) is an "
                             f"integer in [0, {self.n_states - 1}]")
        return states.astype(np.int64)

    def _obs_state(self, obs) -> int:
        state = int(np.asarray(obs).reshape(-1)[0])
        if not 0 <= state < self.n_states:
            raise ValueError(
                f"obs[0] (the state) must lie in [0, {self.n_states - 1}]; got {state}"
            )
        return state

    def _check_action(self, action) -> int:
        if type(action) is int and 0 <= action < self.n_actions:  # the common case, fast
            return action
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
        u = self.np_random.random()
        self._state = int(np.searchsorted(self._cumulative_initial, u, side="right"))
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

    def rollout_returns(self, actions: np.ndarray, episodes: int, seed: int | None) -> np.ndarray:
        """Returns of ``episodes`` episodes of the deterministic policy ``actions[h, s]``, all
        stepped together.

        Bit-identical to ``reset(seed=seed)`` followed by ``episodes`` sequential
        reset/step loops: every episode of this environment draws exactly ``1 + H`` uniforms
        (the initial state, then one per step) from ``np_random``, so drawing them as one
        ``(episodes, 1 + H)`` block gives the same numbers, and each inverse-CDF draw counts
        the cumulative entries ``<= u`` as ``searchsorted(side="right")`` does.
        """
        H, S = self.horizon, self.n_states
        table = np.asarray(actions)
        if table.shape != (H, S) or not np.issubdtype(table.dtype, np.integer):
            raise ValueError(f"actions must be an integer (H, S) = ({H}, {S}) table; got "
                             f"{table.dtype} {table.shape}")
        if table.min() < 0 or table.max() >= self.n_actions:
            raise ValueError(f"actions must lie in [0, {self.n_actions - 1}]")
        _, _, rewards = self._rollout(int(episodes), seed, lambda h, state: table[h, state])
        total = np.zeros(int(episodes))
        for h in range(H):  # step by step, the loop's order of additions
            total += rewards[:, h]
        return total

    def rollout_uniform(self, episodes: int, action_rng: np.random.Generator,
                        seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``episodes`` episodes of uniformly random actions, all stepped together: the
        ``(episodes, H + 1)`` states, ``(episodes, H)`` actions and ``(episodes, H)`` rewards.

        Bit-identical to ``reset(seed=seed)`` followed by ``episodes`` sequential reset/step
        loops with ``a = int(action_rng.integers(A))`` before each step (what
        :meth:`robustrl.data.OfflineDataset.collect` does without a behaviour policy): every
        episode takes exactly ``H`` steps, so the actions are the next ``episodes * H``
        draws of ``action_rng`` in episode order, one ``integers(A, size=...)`` call.
        """
        K = check_int(episodes, "episodes", low=1)
        drawn = action_rng.integers(self.n_actions, size=(K, self.horizon))
        return self._rollout(K, seed, lambda h, state: drawn[:, h])

    def _rollout(self, episodes: int, seed: int | None, choose
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """States, actions and rewards of ``episodes`` episodes stepped together, the action
        of step ``h`` being ``choose(h, states)``; the uniforms as in :meth:`rollout_returns`."""
        H = self.horizon
        gym.Env.reset(self, seed=seed)
        u = self.np_random.random((episodes, H + 1))
        states = np.empty((episodes, H + 1), dtype=np.int64)
        actions = np.empty((episodes, H), dtype=np.int64)
        rewards = np.empty((episodes, H))
        state = np.searchsorted(self._cumulative_initial, u[:, 0], side="right")
        states[:, 0] = state
        for h in range(H):
            a = choose(h, state)
            actions[:, h] = a
            rewards[:, h] = self._rewards[h, state, a]
            state = np.count_nonzero(self._cumulative_kernel[h, state, a] <= u[:, h + 1, None],
                                     axis=1)
            states[:, h + 1] = state
        self._state, self._step = int(state[-1]), H
        return states, actions, rewards

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        name = type(self).__name__
        if self._state is None:
            return f"{name} (not reset)"
        return f"step {self._step}/{self.horizon}: state {self.state_names[self._state]}"


def _check_layered_sizes(horizon, n_states, n_actions) -> tuple[int, int, int]:
    horizon = check_int(horizon, "horizon", low=1)
    n_states = check_int(n_states, "n_states", low=1)
    n_actions = check_int(n_actions, "n_actions", low=1)
    return horizon, n_states, n_actions


def layered_tabular_mdp(
    horizon: int = 3,
    n_states: int = 3,
    n_actions: int = 2,
    seed: int = 0,
    perturbation: float | None = None,
    *,
    concentration: float = 1.0,
) -> FiniteMDP:
    """A seeded random layered tabular MDP (the layout of the module docstring).

    Construction (``rng = numpy.random.default_rng(seed)``): every episode starts in state 0 of
    layer 0; ``P[h, s, a] ~ Dirichlet(concentration * 1_S)`` over the ``S`` states of layer
    ``h + 1`` independently per ``(h, s, a)``; rewards ``R[h, s, a] ~ U(0, 1)``.

    **Perturbation** ``q in [0, 1]``: every transition is diverted, with probability ``q``, to
    the worst state of the next layer under the nominal optimal values,
    ``P_q[h, s, a] = (1 - q) P[h, s, a] + q * delta_{argmin_s' V*_{h+1}(s')}`` (ties to the
    lowest index; at the last step the next state does not matter and nothing moves). This
    is the worst corner of the TV ball of radius ``q`` that puts all moved mass on one state,
    so the optimal value never rises with ``q``. The random draws do not depend on ``q``.
    """
    horizon, n_states, n_actions = _check_layered_sizes(horizon, n_states, n_actions)
    seed = _check_model_seed(seed)
    q = _check_perturbation(perturbation)
    concentration = check_scalar(concentration, "concentration", low=0.0, low_inclusive=False)
    rng = np.random.default_rng(seed)
    H, S, A = horizon, n_states, n_actions
    P = rng.dirichlet(np.full(S, concentration), size=(H, S, A))
    # Small concentrations can underflow to exact zeros; renormalise to exact distributions.
    P /= P.sum(axis=-1, keepdims=True)
    R = rng.uniform(0.0, 1.0, size=(H, S, A))
    initial = np.zeros(S)
    initial[0] = 1.0
    if q is not None and q > 0.0:
        values = np.zeros((H + 1, S))
        for h in range(H - 1, -1, -1):
            values[h] = (R[h] + P[h] @ values[h + 1]).max(axis=1)
        for h in range(H - 1):
            worst = int(np.argmin(values[h + 1]))
            P[h] *= 1.0 - q
            P[h, :, :, worst] += q
    return FiniteMDP(P, R, initial)


def with_unreachable_states(model: FiniteMDP, n_extra: int, seed: int = 0) -> FiniteMDP:
    """``model`` with ``n_extra`` states appended that no policy ever reaches (coverability is
    unchanged by them; docs/algorithms/glow.md).

    The new states ``S .. S + n_extra - 1`` have initial probability 0 and no incoming mass;
    their own transitions (``Dirichlet(1)`` over all states) and rewards (``U(0, 1)``) are
    random, so they change ``|X|`` without changing any occupancy, value or ``C_cov``.
    """
    if not isinstance(model, FiniteMDP):
        raise ValueError(f"model must be a FiniteMDP; got {type(model).__name__}")
    n_extra = check_int(n_extra, "n_extra", low=0)
    rng = np.random.default_rng(_check_model_seed(seed))
    H, S, A = model.horizon, model.n_states, model.n_actions
    T = S + n_extra
    P = np.zeros((H, T, A, T))
    P[:, :S, :, :S] = model.P
    if n_extra:
        P[:, S:] = rng.dirichlet(np.ones(T), size=(H, n_extra, A))
        P[:, S:] /= P[:, S:].sum(axis=-1, keepdims=True)
    R = np.zeros((H, T, A))
    R[:, :S] = model.R
    R[:, S:] = rng.uniform(0.0, 1.0, size=(H, n_extra, A))
    initial = np.concatenate([model.initial_distribution, np.zeros(n_extra)])
    return FiniteMDP(P, R, initial)


class LayeredTabularMDPEnv(FiniteMDPEnv):
    """Seeded random layered tabular MDP (:func:`layered_tabular_mdp`) as a Gymnasium env.

    Observation ``(state, step)`` in ``MultiDiscrete([n_states, H + 1])``; action in
    ``[0, n_actions)``; reward ``R[h, s, a]`` in ``[0, 1]``; ``terminated=True`` after ``H``
    steps. ``model`` is the exact :class:`FiniteMDP` that :meth:`step` samples from.

    Args:
        horizon, n_states (per layer), n_actions: sizes (defaults 3, 3, 2).
        seed: the MDP's construction seed (not the sampling seed, which ``reset`` takes).
        perturbation: ``None`` (nominal) or ``q in [0, 1]``, the probability that a
            transition is diverted to the worst next state.
        concentration: Dirichlet concentration of the transition laws (default 1).
        render_mode: ``None`` or ``"ansi"``.
    """

    nominal_perturbation: ClassVar[float | None] = None
    perturbation_grid: ClassVar[np.ndarray] = np.round(np.linspace(0.0, 1.0, 11), 10)

    def __init__(
        self,
        horizon: int = 3,
        n_states: int = 3,
        n_actions: int = 2,
        seed: int = 0,
        perturbation: float | None = None,
        concentration: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        self.perturbation = _check_perturbation(perturbation)
        self.mdp_seed = _check_model_seed(seed)
        self.concentration = concentration
        model = layered_tabular_mdp(horizon, n_states, n_actions, seed, self.perturbation,
                                    concentration=concentration)
        super().__init__(model, render_mode=render_mode)

    def _model_for(self, perturbation) -> FiniteMDP:
        return layered_tabular_mdp(self.horizon, self.n_states, self.n_actions, self.mdp_seed,
                                   _check_perturbation(perturbation),
                                   concentration=self.concentration)
