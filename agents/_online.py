"""Shared machinery of the online linear agents: LSVI-UCB, DR-LSVI-UCB and DR-RPO.

All three follow the same episode loop (arXiv:2510.14246, docs/algorithms/drrpo.md;
docs/algorithms/lsvi_ucb.md):

1. play one episode in the (nominal) training environment with the current policy;
2. add its transitions to per-step buffers and update ``Lambda_h^{-1}`` with one Sherman-Morrison
   rank-one update per step (``O(d^2)``; the Gram matrix is kept exactly and
   ``Lambda_h^{-1}`` is recomputed from it by Cholesky every ``_REFRESH_EVERY`` updates to stop
   rounding drift);
3. run one optimistic backward pass over all past data,
   ``w_h = Lambda_h^{-1} sum_tau phi_tau r_tau + nu_h`` where ``nu_h`` is the (robust)
   regression of the next-step values ``V_{h+1}(s'_tau)``.

Cost of one episode, per step ``h`` with ``n`` past transitions of ``m <= n`` distinct next
states: ``O(d^2)`` for the Gram update, ``O(|A| d)`` to act, and for the regression over past
data ``O(m |A| d^2 + n)`` to re-evaluate ``V_{h+1}`` at the past next states (the targets change
every episode, as in any LSVI method),
``O(n d^2)`` for ``Xi = Lambda^{-1} Phi^T`` and the dual: ``O(n log n + n d)`` for the TV dual
(one sort shared by the ``d`` coordinates, then cumulative sums), ``O(70 n d)`` for the KL dual
(golden section). Nothing is refitted from scratch: no ``d x d`` factorisation per episode.

When ``env.unwrapped`` has a ``model`` (an exact :class:`~robustrl.models.LinearMDP`), every
episode also records the exact value of the policy played and the exact optimum, so
``regret_`` is the per-episode regret with no Monte-Carlo noise.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robustrl._kernels import aot
from robustrl._kernels import value_iteration as _vi_kernels
from robustrl._kernels.ridge import spd_inverse
from robustrl.agents.base import LinearAgent, Training, deprecated_progress, resolve_budget
from robustrl.bonus import BONUS_CODES, check_bonus_name
from robustrl.data import StepData
from robustrl.divergences import _kl_dual_rows, _tv_dual_rows
from robustrl.exact import evaluate_policy, robust_evaluate_policy, robust_value_iteration
from robustrl.models import LinearMDP
from robustrl.ridge import blas_threads, rank_one_update
from robustrl.validation import (
    check_array,
    check_distribution,
    check_divergence,
    check_int,
    check_nonnegative,
    check_positive,
    check_scalar,
    check_seed,
)

# the per-episode kernels compiled ahead of time (robustrl compile-kernels), where present and
# current, registered in their Numba dispatchers (idempotent: the offline agents do the same)
aot.install()

__all__ = [
    "OnlineLinearAgent",
    "RegretCurve",
    "robust_value_regression",
    "run_regret_curve",
]

# Recompute Lambda^{-1} from the exact Gram matrix every this many rank-one updates.
_REFRESH_EVERY = 256


# --------------------------------------------------------------------------------------------
# the robust regression of next-step values (arXiv:2411.18612; docs/algorithms/drpvi.md,
# docs/algorithms/lsvi_ucb.md)


def robust_value_regression(values, xi, divergence: str | None, rho: float,
                            v_min: float | str = 0.0) -> np.ndarray:
    """``nu = `` regression of the next-step ``values (n,)`` with weights ``xi (d, n)``.

    ``divergence=None`` or ``rho = 0``: the ordinary regression ``xi @ values`` (a factor of
    radius 0 is not uncertain, as in :mod:`robustrl.exact`). ``"tv"``:
    :func:`robustrl.divergences.tv_dual_rows` with ``v_min`` (a number, or ``"data"`` for the
    smallest observed value, the R2PVI authors' code's choice; docs/algorithms/r2pvi.md). ``"kl"``:
    :func:`robustrl.divergences.kl_dual_rows` with ``clip="support"`` (see
    docs/algorithms/lsvi_ucb.md for why not DRVI-L's ``"floor"``).
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    if divergence is None or rho == 0.0 or v.shape[0] == 0:
        return xi @ v
    w = np.ascontiguousarray(xi, dtype=np.float64)
    radii = np.full(w.shape[0], float(rho))
    if divergence == "tv":
        floor = float(v.min()) if v_min == "data" else float(v_min)
        return _tv_dual_rows(v, w, radii, floor)
    if divergence == "kl":
        return _kl_dual_rows(v, w, radii, "support")
    raise ValueError(f"divergence must be None, 'tv' or 'kl'; got {divergence!r}")


# --------------------------------------------------------------------------------------------
# transition storage


_FLAT_FIELDS = (("features", "features"), ("rewards", "rewards"),
                ("next_features", "next_action_features"), ("next_valid", "next_nonterminal"))


class _StepBuffers:
    """Per-step transitions ``(phi, r, phi(s', .), valid)``, stored with capacity doubling.

    A step keeps each distinct next-state feature block ``phi(s', .)`` once, and per transition
    the row of its block (:meth:`distinct_next`): the regression targets ``V_{h+1}(s')`` are
    evaluated once per distinct next state, which on a finite-state environment is a handful of
    rows however many transitions there are (on a continuous one every block is distinct)."""

    def __init__(self, horizon: int, dim: int, n_actions: int, capacity: int = 64) -> None:
        self.horizon, self.dim, self.n_actions = horizon, dim, n_actions
        self.count = np.zeros(horizon, dtype=np.int64)
        self._cap = capacity
        self._phi = np.zeros((horizon, capacity, dim))
        self._r = np.zeros((horizon, capacity))
        self._next_row = np.zeros((horizon, capacity), dtype=np.int64)
        self._valid = np.zeros((horizon, capacity), dtype=bool)
        # per step: the distinct blocks, their count, and their rows by hash of the block's bytes
        self._distinct = [np.zeros((capacity, n_actions, dim)) for _ in range(horizon)]
        self._n_distinct = np.zeros(horizon, dtype=np.int64)
        self._by_hash: list[dict[int, list[int]]] = [{} for _ in range(horizon)]

    def _grow(self) -> None:
        cap = 2 * self._cap
        for name in ("_phi", "_r", "_next_row", "_valid"):
            old = getattr(self, name)
            new = np.zeros((old.shape[0], cap, *old.shape[2:]), dtype=old.dtype)
            new[:, : self._cap] = old
            setattr(self, name, new)
        self._cap = cap

    def add(self, h: int, phi, r: float, next_phi, valid: bool) -> None:
        if self.count[h] == self._cap:
            self._grow()
        k = self.count[h]
        self._phi[h, k] = phi
        self._r[h, k] = r
        self._valid[h, k] = valid
        block = np.asarray(next_phi, dtype=np.float64)
        data, table = block.tobytes(), self._distinct[h]
        # rows keyed by a hash, not by the bytes: a continuous environment's blocks are all
        # distinct, and keeping their bytes as keys would store every block twice
        rows = self._by_hash[h].setdefault(hash(data), [])
        for row in rows:
            if table[row].tobytes() == data:
                break
        else:  # a next-state block not seen before at this step
            row = int(self._n_distinct[h])
            if row == table.shape[0]:
                table = self._distinct[h] = np.concatenate([table, np.zeros_like(table)])
            table[row] = block
            rows.append(row)
            self._n_distinct[h] += 1
        self._next_row[h, k] = row
        self.count[h] += 1

    def distinct_next(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct step-``h`` next-state blocks ``(m, A, d)`` (in order of first
        appearance) and, per transition, the row of its block ``(n,)``."""
        return (self._distinct[h][: self._n_distinct[h]],
                self._next_row[h, : self.count[h]])

    def step(self, h: int, next_features: bool = True) -> StepData:
        """The step-``h`` transitions: views, but ``next_action_features`` is gathered from the
        distinct blocks (a copy; None unless ``next_features``)."""
        n = self.count[h]
        blocks = self._distinct[h][self._next_row[h, :n]] if next_features else None
        return StepData(features=self._phi[h, :n], rewards=self._r[h, :n],
                        next_action_features=blocks, next_nonterminal=self._valid[h, :n])

    def to_flat(self) -> dict[str, np.ndarray]:
        steps = np.concatenate([np.full(c, h, dtype=np.int64) for h, c in enumerate(self.count)])
        per_step = [self.step(h) for h in range(self.horizon)]
        return {"steps": steps, **{key: np.concatenate([getattr(st, field) for st in per_step])
                                   for key, field in _FLAT_FIELDS}}

    @classmethod
    def from_flat(cls, horizon, dim, n_actions, steps, features, rewards, next_features,
                  next_valid) -> _StepBuffers:
        buf = cls(horizon, dim, n_actions)
        for i in range(len(steps)):
            buf.add(int(steps[i]), features[i], float(rewards[i]), next_features[i],
                    bool(next_valid[i]))
        return buf


# --------------------------------------------------------------------------------------------
# the agent base class


def _uniform_over_maximisers(q: np.ndarray) -> np.ndarray:
    """Rows of ``q (N, A)`` to distributions spread evenly over each row's exact maximisers
    (the greedy rule with ``tie_break="random"``)."""
    top = q == q.max(axis=1, keepdims=True)
    return top / top.sum(axis=1, keepdims=True)


def _check_eta(eta) -> float:
    try:
        x = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a positive real number or inf; got {eta!r}") from None
    if x == math.inf:
        return x
    return check_positive(x, "eta")


class OnlineLinearAgent(LinearAgent):
    """Optimistic least-squares value iteration, online, on a linear-feature environment.

    Subclasses define the next-step value used in the regression targets
    (:meth:`_next_values`), the robust regression (``divergence``/``rho``), the action
    distribution and the exact value of the played policy (:meth:`_exact_episode_value`,
    :meth:`_exact_optimum`).

    Args:
        env: a Gymnasium environment whose ``unwrapped`` exposes ``horizon``, ``feature_dim``
            and ``action_features(obs) -> (A, d)``; observations end with the 0-indexed step.
        ridge: ridge parameter ``gamma > 0`` of ``Lambda_h = gamma I + sum phi phi^T``.
        beta: bonus multiplier ``>= 0``.
        bonus: bonus name of :mod:`robustrl.bonus` (``"elliptical"``, ``"d_rectangular_l1"`` /
            ``"paper_l1"``, ``"d_rectangular_l2"`` / ``"code_l2"``, ``"none"``).
        seed: seeds the first ``env.reset`` and the agent's action sampling.

    Learned state (saved by :meth:`save`): ``weights_ (H, d)``, ``lambda_inv_ (H, d, d)``, the
    transition buffers and the per-episode records ``episode_returns_``, ``episode_values_``,
    ``regret_`` (per-episode exact regret; ``cumulative_regret_`` is its running sum) and
    ``optimal_value_`` (NaN without a model).
    """

    _base_param_names: ClassVar[tuple[str, ...]] = (
        "weights_", "lambda_inv_", "gram_", "reward_moment_", "n_updates_",
        "episode_returns_", "episode_values_", "regret_", "optimal_value_",
        "data_steps_", "data_features_", "data_rewards_", "data_next_features_",
        "data_next_valid_",
    )
    _param_names: ClassVar[tuple[str, ...]] = _base_param_names
    #: divergence of the robust regression (None: ordinary LSVI).
    divergence: str | None = None
    rho: float = 0.0
    v_min: float | str = 0.0

    def __init__(self, env, *, ridge: float = 0.1, beta: float = 1.0,
                 bonus: str = "elliptical", seed: int | None = None) -> None:
        super().__init__(env)
        self.ridge = check_positive(ridge, "ridge")
        self.beta = check_nonnegative(beta, "beta")
        self.bonus = check_bonus_name(bonus)
        self.seed = check_seed(seed)
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        self.weights_ = np.zeros((H, d))
        self.gram_ = np.repeat(self.ridge * np.eye(d)[None], H, axis=0)
        self.lambda_inv_ = np.repeat((np.eye(d) / self.ridge)[None], H, axis=0)
        self.reward_moment_ = np.zeros((H, d))
        self.n_updates_ = np.zeros(H, dtype=np.int64)
        self.episode_returns_ = np.zeros(0)
        self.episode_values_ = np.zeros(0)
        self.regret_ = np.zeros(0)
        self.optimal_value_ = np.float64(np.nan)
        self._buffers = _StepBuffers(H, d, A)
        self._act_rng = np.random.default_rng(self.seed)
        self._env_seeded = False
        # The initial policy (zero weights plus the bonus; pi_ref for DR-RPO) is well defined,
        # so an online agent can act before any training, as in SB3.
        self._fitted = True

    # ------------------------------------------------------------ records
    @property
    def cumulative_regret_(self) -> np.ndarray:
        """Running sum of :attr:`regret_` (empty without an exact model)."""
        return np.cumsum(self.regret_)

    @property
    def n_episodes_(self) -> int:
        return int(self.episode_returns_.shape[0])

    def transitions(self, step: int) -> dict[str, np.ndarray]:
        """Copies of the step-``step`` data: ``features (n, d)``, ``rewards (n,)``,
        ``next_features (n, A, d)``, ``next_valid (n,)``."""
        st = self._buffers.step(check_int(step, "step", low=0, high=self.horizon - 1))
        return {key: getattr(st, field).copy() for key, field in _FLAT_FIELDS}

    # ------------------------------------------------------------- Q-values
    def _q_rows(self, features: np.ndarray, h: int) -> np.ndarray:
        """Clipped optimistic ``Q_h`` at ``features (N, A, d)``: shape ``(N, A)``.

        Calls the kernel behind :func:`robustrl.value_iteration.greedy_q_values` directly: the
        agent's own arrays need no validation (that check factorised ``Lambda^{-1}`` on every
        call, several times per episode)."""
        code = BONUS_CODES[self.bonus] if self.beta > 0.0 else BONUS_CODES["none"]
        return _vi_kernels.q_values(np.ascontiguousarray(features, dtype=np.float64),
                                    self.weights_[h], self.lambda_inv_[h], self.beta, code,
                                    float(self.horizon - h))

    def q_values(self, obs) -> np.ndarray:
        """Optimistic ``Q_h(s, .) = clip(phi^T w_h + beta Gamma_h, 0, H - h)`` at ``obs``."""
        h = self.step_of(obs)
        return self._q_rows(self.action_features(obs)[None], h)[0]

    def _probs_rows(self, features: np.ndarray, h: int) -> np.ndarray:
        """Greedy action distribution at ``features (N, A, d)``: all mass on the first
        maximiser (``tie_break="first"``) or spread evenly over the exact maximisers
        (``"random"``; clipping at ``H - h`` makes exact ties common early on)."""
        q = self._q_rows(features, h)
        if getattr(self, "tie_break", "first") == "random":
            return _uniform_over_maximisers(q)
        probs = np.zeros_like(q)
        probs[np.arange(q.shape[0]), np.argmax(q, axis=1)] = 1.0
        return probs

    def action_probabilities(self, obs) -> np.ndarray:
        h = self.step_of(obs)
        return self._probs_rows(self.action_features(obs)[None], h)[0]

    # ---------------------------------------------------------- the update
    def _add_episode(self, episode: list[tuple[int, np.ndarray, float, np.ndarray, bool]]) -> None:
        for h, phi, r, next_phi, valid in episode:
            self._buffers.add(h, phi, r, next_phi, valid)
            # the Gram / Sherman-Morrison state of robustrl.ridge.OnlineRidge, per step
            rank_one_update(self.gram_[h], self.lambda_inv_[h], self.reward_moment_[h][:, None],
                            phi, (r,))
            self.n_updates_[h] += 1
            if self.n_updates_[h] % _REFRESH_EVERY == 0:
                self.lambda_inv_[h] = spd_inverse(self.gram_[h])

    def _next_values(self, h: int) -> np.ndarray:
        """``V_{h+1}(s'_tau)`` at the step-``h`` next states (0 where no step follows),
        evaluated once per distinct next state."""
        blocks, rows = self._buffers.distinct_next(h)
        values = self._q_rows(blocks, h + 1).max(axis=1)[rows]
        return np.where(self._buffers.step(h, next_features=False).next_nonterminal, values, 0.0)

    def _after_step(self, h: int) -> None:
        """Hook called once ``w_h`` is final in the backward pass (DR-RPO's policy step)."""

    def _after_pass(self) -> None:
        """Hook called after the whole backward pass."""

    def _backward_pass(self) -> None:
        """One optimistic (robust) LSVI pass over all data, ``h = H-1 .. 0``
        (docs/algorithms/lsvi_ucb.md)."""
        b = self._buffers
        for h in range(self.horizon - 1, -1, -1):
            n = int(b.count[h])
            w = self.lambda_inv_[h] @ self.reward_moment_[h]
            if n and h < self.horizon - 1:
                xi = self.lambda_inv_[h] @ b.step(h, next_features=False).features.T  # (d, n)
                values = self._next_values(h)
                w = w + robust_value_regression(values, xi, self.divergence, self.rho,
                                                self.v_min)
            self.weights_[h] = w
            self._after_step(h)
        self._after_pass()

    # -------------------------------------------------------- exact values
    #: Record the exact per-episode value and regret when the environment has a model. An
    #: instance may set it False (benchmarks time the learning alone; no records are kept).
    track_regret: bool = True

    def _model(self) -> LinearMDP | None:
        if not self.track_regret:
            return None
        model = getattr(self.env.unwrapped, "model", None)
        return model if isinstance(model, LinearMDP) else None

    def _check_model(self, model: LinearMDP) -> None:
        if (model.horizon, model.n_actions, model.feature_dim) != (
            self.horizon, self.n_actions, self.feature_dim
        ):
            raise ValueError(
                "env.unwrapped.model must match the environment (horizon, actions, features); "
                f"got {(model.horizon, model.n_actions, model.feature_dim)}, expected "
                f"{(self.horizon, self.n_actions, self.feature_dim)}"
            )

    def policy_table(self, model: LinearMDP) -> np.ndarray:
        """The current policy on the model's states, ``(H, S, A)`` probabilities, computed
        from the model's features ``phi (S, A, d)`` exactly as :meth:`action_probabilities`."""
        return np.stack([self._probs_rows(model.phi, h) for h in range(self.horizon)])

    def _exact_episode_value(self, model: LinearMDP) -> float:
        """Exact value of the current policy: nominal, or robust on the agent's ball."""
        if self.divergence is None:
            return evaluate_policy(model, self.policy_table(model)).value
        return robust_evaluate_policy(model, self.policy_table(model),
                                      divergence=self.divergence, rho=self.rho).value

    def _exact_optimum(self, model: LinearMDP) -> float:
        if self.divergence is None:
            return robust_value_iteration(model).value
        return robust_value_iteration(model, divergence=self.divergence, rho=self.rho).value

    # ----------------------------------------------------------- interaction
    def _choose(self, features: np.ndarray, h: int) -> int:
        """The action at ``features (A, d)``: a draw from :meth:`_probs_rows`, made as
        :meth:`_sample` makes it; the greedy rule needs no distribution unless ``Q`` ties."""
        q = self._q_rows(features[None], h)
        best = int(np.argmax(q[0]))
        tie_break = getattr(self, "tie_break", "first")
        if tie_break == "first" or np.count_nonzero(q == q[0, best]) == 1:
            return best
        return self._sample(_uniform_over_maximisers(q)[0])

    def _sample(self, probs: np.ndarray) -> int:
        """An index drawn from ``probs (A,)``: exactly ``Generator.choice(A, p=probs)`` (the
        same cumulative sum, normalisation and one uniform, so the same stream), without its
        argument checks; a distribution on one action draws nothing."""
        if np.count_nonzero(probs) == 1:
            return int(np.argmax(probs))
        cdf = np.cumsum(probs)
        cdf /= cdf[-1]
        return int(cdf.searchsorted(self._act_rng.random(), side="right"))

    def _session_seed(self) -> int | None:
        """``seed`` for a fresh agent; after :meth:`load`, a seed derived from ``(seed,
        episodes so far)`` so that resumed training is reproducible too."""
        if self.seed is None or self.n_episodes_ == 0:
            return self.seed
        return int(np.random.SeedSequence([self.seed, self.n_episodes_]).generate_state(1)[0])

    def _run_episode(self) -> tuple[list, float]:
        env = self.env
        if not self._env_seeded:
            obs, _ = env.reset(seed=self._session_seed())
            self._env_seeded = True
        else:
            obs, _ = env.reset()
        episode: list = []
        total = 0.0
        while True:
            h = self.step_of(obs)
            feats = self.action_features(obs)
            a = self._choose(feats, h)
            next_obs, reward, terminated, truncated, _ = env.step(a)
            total += float(reward)
            next_step = int(round(float(np.ravel(next_obs)[-1])))
            valid = (not terminated) and next_step < self.horizon
            next_feats = (self.action_features(next_obs) if valid
                          else np.zeros((self.n_actions, self.feature_dim)))
            episode.append((h, feats[a].copy(), float(reward), next_feats, valid))
            if terminated or truncated or next_step >= self.horizon:
                return episode, total
            obs = next_obs

    def learn(self, total_timesteps: int | None = None, callback=None,
              progress_bar: bool = False, *, total_episodes: int | None = None,
              progress: bool | None = None):
        """Interact for more episodes (repeated calls continue training); returns ``self``.

        The budget is exactly one of ``total_timesteps`` (env steps, rounded up to whole
        episodes of ``horizon`` steps) and ``total_episodes``. ``callback``: a stable-baselines3
        ``BaseCallback`` (or a list); ``_on_step`` runs after each episode's update (its
        ``locals`` hold ``self``, ``episode`` and ``episode_return``; the records so far are
        set), and returning False stops early. ``progress_bar=True`` shows a tqdm bar.
        ``progress=`` is the deprecated name of ``progress_bar``; a plain ``callable(locals)``
        callback is deprecated.
        """
        total_episodes = resolve_budget(total_timesteps, "total_episodes", total_episodes,
                                        self.horizon, low=0)
        progress_bar = deprecated_progress(progress_bar, progress)
        if self.env is None:
            raise ValueError("env is required to learn; load(path, env=...) to keep training")
        training = Training(self, callback, progress_bar, total_episodes, "episode")
        model = self._model()
        if model is not None:
            self._check_model(model)
            if np.isnan(self.optimal_value_):
                self.optimal_value_ = np.float64(self._exact_optimum(model))
        returns, values = [], []
        training.start(locals())
        try:
            for episode in range(total_episodes):  # noqa: B007 (read by callbacks' locals)
                if model is not None:
                    values.append(self._exact_episode_value(model))
                transitions, episode_return = self._run_episode()
                returns.append(episode_return)
                # d x d and d x n products: BLAS threads only add latency (robustrl.ridge)
                with blas_threads(1):
                    self._add_episode(transitions)
                    self._backward_pass()
                self._fitted = True
                self.num_timesteps += len(transitions)
                if training.callback is not None:
                    # Records of this call so far are visible to the callback.
                    self._extend_records(returns, values, model)
                    returns, values = [], []
                if not training.step(locals()):
                    break
        finally:
            self._extend_records(returns, values, model)
            training.end()
        self._fitted = True
        return self

    def _extend_records(self, returns: list, values: list, model) -> None:
        if not returns:
            return
        self.episode_returns_ = np.concatenate([self.episode_returns_, returns])
        if model is not None:
            vals = np.asarray(values[: len(returns)], dtype=np.float64)
            self.episode_values_ = np.concatenate([self.episode_values_, vals])
            self.regret_ = np.concatenate([self.regret_, float(self.optimal_value_) - vals])

    # ---------------------------------------------------------- persistence
    def _export_state(self) -> dict[str, np.ndarray]:
        """Arrays saved besides the plain attributes (named in ``_param_names``)."""
        return {f"data_{key}_": value for key, value in self._buffers.to_flat().items()}

    def _import_state(self) -> None:
        """Rebuild internal state from the attributes :meth:`load` set (then drop them)."""
        self._buffers = _StepBuffers.from_flat(
            self.horizon, self.feature_dim, self.n_actions,
            np.asarray(self.data_steps_, dtype=np.int64).reshape(-1),
            np.asarray(self.data_features_).reshape(-1, self.feature_dim),
            np.asarray(self.data_rewards_).reshape(-1),
            np.asarray(self.data_next_features_).reshape(-1, self.n_actions, self.feature_dim),
            np.asarray(self.data_next_valid_, dtype=bool).reshape(-1),
        )
        self.num_timesteps = int(np.asarray(self.data_steps_).size)
        for key in ("steps", "features", "rewards", "next_features", "next_valid"):
            delattr(self, f"data_{key}_")
        for name in ("weights_", "lambda_inv_", "gram_", "reward_moment_"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        for name in ("episode_returns_", "episode_values_", "regret_"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        self.n_updates_ = np.asarray(self.n_updates_, dtype=np.int64)
        self.optimal_value_ = np.float64(self.optimal_value_)
        # The environment passed to load is fresh: seed it (and the action sampling) from
        # (seed, episodes so far) at the next learn call.
        self._env_seeded = False
        self._act_rng = np.random.default_rng(self._session_seed())

    def _param_specs(self) -> dict[str, dict]:
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        return {
            "weights_": {"kind": "f", "shape": (H, d)},
            "lambda_inv_": {"kind": "f", "shape": (H, d, d)},
            "gram_": {"kind": "f", "shape": (H, d, d)},
            "reward_moment_": {"kind": "f", "shape": (H, d)},
            "n_updates_": {"kind": "i", "shape": (H,), "low": 0},
            "episode_returns_": {"kind": "f", "shape": (None,)},
            "episode_values_": {"kind": "f", "shape": (None,)},
            "regret_": {"kind": "f", "shape": (None,)},
            # NaN when the environment has no exact model
            "optimal_value_": {"kind": "f", "shape": (), "finite": False},
            "data_steps_": {"kind": "i", "shape": (None,), "low": 0, "high": H - 1},
            "data_features_": {"kind": "f", "shape": (None, d)},
            "data_rewards_": {"kind": "f", "shape": (None,)},
            "data_next_features_": {"kind": "f", "shape": (None, A, d)},
            "data_next_valid_": {"kind": "b", "shape": (None,)},
        }

    def _check_loaded(self, path: str | Path) -> None:
        """The transition arrays have one row per stored transition, ``n_updates_`` counts
        them per step, the per-episode records agree in length, ``optimal_value_`` is NaN or
        finite."""
        n = self.data_steps_.shape[0]
        for name in ("data_features_", "data_rewards_", "data_next_features_",
                     "data_next_valid_"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"path {path}: array {name!r} must have {n} rows like "
                                 f"'data_steps_'; got shape {getattr(self, name).shape}")
        counts = np.bincount(self.data_steps_, minlength=self.horizon)
        if not np.array_equal(counts, self.n_updates_):
            raise ValueError(f"path {path}: array 'n_updates_' {self.n_updates_.tolist()} must "
                             f"count the stored transitions per step {counts.tolist()}")
        n_ep, n_val = self.episode_returns_.shape[0], self.episode_values_.shape[0]
        if n_val > n_ep or self.regret_.shape[0] != n_val:
            raise ValueError(f"path {path}: arrays 'episode_values_' ({n_val}) and 'regret_' "
                             f"({self.regret_.shape[0]}) must have the same length, at most "
                             f"that of 'episode_returns_' ({n_ep})")
        if np.isinf(self.optimal_value_):
            raise ValueError(f"path {path}: array 'optimal_value_' must be finite or NaN")
        # gram_ and reward_moment_ are sums over the stored transitions (up to rounding:
        # they were accumulated in episode order)
        H, d = self.horizon, self.feature_dim
        gram = np.repeat(self.ridge * np.eye(d)[None], H, axis=0)
        moment = np.zeros((H, d))
        for h in range(H):
            rows = self.data_steps_ == h
            phi = self.data_features_[rows]
            gram[h] += phi.T @ phi
            moment[h] = phi.T @ self.data_rewards_[rows]
        for name, want in (("gram_", gram), ("reward_moment_", moment)):
            got = getattr(self, name)
            scale = 1.0 + np.abs(want).max(initial=0.0)
            if not np.allclose(got, want, rtol=1e-6, atol=1e-9 * scale):
                raise ValueError(f"path {path}: array {name!r} does not match the stored "
                                 "transitions (it is their ridge-regularised sum)")

    def save(self, path: str | Path) -> Path:
        exported = self._export_state()
        for key, value in exported.items():
            setattr(self, key, value)
        try:
            return super().save(path)
        finally:
            for key in exported:
                delattr(self, key)

    @classmethod
    def load(cls, path: str | Path, env=None, device: str = "auto"):
        """Rebuild an agent saved with :meth:`save` (``env=None``: predict only): identical
        predictions; ``learn`` continues
        from the saved data, with the environment and the action sampling reseeded from
        ``(seed, episodes so far)`` (reproducible, though not the stream an uninterrupted run
        would have drawn)."""
        agent = super().load(path, env, device)
        agent._import_state()
        return agent


# --------------------------------------------------------------------------------------------
# one regret curve


@dataclass
class RegretCurve:
    """Result of :func:`run_regret_curve` (all arrays of length ``n_episodes``)."""

    agent: str
    seed: int | None
    hyperparams: dict[str, Any]
    regret: np.ndarray
    episode_values: np.ndarray
    episode_returns: np.ndarray
    optimal_value: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (arrays as lists)."""
        return json.loads(json.dumps({
            "agent": self.agent, "seed": self.seed, "hyperparams": self.hyperparams,
            "regret": self.regret.tolist(), "episode_values": self.episode_values.tolist(),
            "episode_returns": self.episode_returns.tolist(),
            "optimal_value": self.optimal_value, "seconds": self.seconds, "extra": self.extra,
        }, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def run_regret_curve(agent_cls: type[OnlineLinearAgent], make_env: Callable[[], Any],
                     n_episodes: int, *, seed: int | None = 0,
                     hyperparams: dict[str, Any] | None = None,
                     progress: bool = False) -> RegretCurve:
    """Train one ``agent_cls(make_env(), seed=seed, **hyperparams)`` for ``n_episodes`` and
    return its exact per-episode regret (the environment must expose an exact ``model``)."""
    n_episodes = check_int(n_episodes, "n_episodes", low=1)
    env = make_env()
    if not isinstance(getattr(getattr(env, "unwrapped", env), "model", None), LinearMDP):
        raise ValueError("make_env() must build an environment whose unwrapped.model is a "
                         "robustrl.models.LinearMDP (exact regret needs the model)")
    agent = agent_cls(env, seed=seed, **(hyperparams or {}))
    start = time.perf_counter()
    agent.learn(total_episodes=n_episodes, progress_bar=progress)
    seconds = time.perf_counter() - start
    return RegretCurve(
        agent=agent_cls.__name__, seed=seed, hyperparams=agent.get_hyperparams(),
        regret=agent.regret_.copy(), episode_values=agent.episode_values_.copy(),
        episode_returns=agent.episode_returns_.copy(),
        optimal_value=float(agent.optimal_value_), seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# validation helpers shared by the robust agents


def check_robust_setting(divergence, rho, v_min) -> tuple[str, float, float | str]:
    """Validate ``divergence`` ('tv' or 'kl'), ``rho`` (TV: [0, 1]; KL: >= 0) and ``v_min``."""
    div = check_divergence(divergence)
    if div == "chi2":
        raise ValueError("divergence must be 'tv' or 'kl' for the online agents; got 'chi2'")
    if div == "tv":
        rho = check_scalar(rho, "rho", low=0.0, high=1.0)
    else:
        rho = check_nonnegative(rho, "rho")
    if isinstance(v_min, str):
        if v_min != "data":
            raise ValueError(f"v_min must be a number >= 0 or 'data'; got {v_min!r}")
    else:
        v_min = check_nonnegative(v_min, "v_min")
    return div, rho, v_min


def check_tie_break(tie_break) -> str:
    if tie_break not in ("first", "random"):
        raise ValueError(f"tie_break must be 'first' or 'random'; got {tie_break!r}")
    return tie_break


def check_reference_vector(reference_policy, n_actions: int) -> np.ndarray:
    """``None`` -> uniform; otherwise an ``(A,)`` probability vector (state-independent)."""
    if reference_policy is None:
        return np.full(n_actions, 1.0 / n_actions)
    arr = check_array(reference_policy, "reference_policy", shape=(n_actions,), low=0.0)
    return check_distribution(arr, "reference_policy")
