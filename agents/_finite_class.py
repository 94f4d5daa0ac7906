"""Shared machinery of the squared-loss comparators of GLOW on finite value classes.

GOLF (:mod:`robustrl.agents.golf`), Hy-Q (:mod:`robustrl.agents.hyq`) and H2O with an FQI
learner (:mod:`robustrl.agents.h2o`) run on the same inputs as :class:`~robustrl.agents.GLOW`:
an enumerated value class ``F`` of shape ``(|F|, H, S, A)`` (e.g.
:func:`robustrl.envs.combination_lock.combination_lock_value_class`), a Gymnasium env with
``(state, step)`` observations or a :class:`~robustrl.models.FiniteMDP` /
:class:`~robustrl.models.LinearMDP` to sample from, GLOW's sufficient statistics
(:func:`robustrl._kernels.glow.step_statistics`) and, for the hybrid agents, offline data read by
:func:`robustrl.agents.hyglow.offline_tuples`. Per round ``t = 1..T`` an agent picks a Q-table
(:meth:`FiniteClassAgent._round_q`), plays ``K`` episodes of its greedy policy (ties to the
lowest action) and pools every tuple; with a known model the exact regret of every round's
policy is recorded (``regret_``). :meth:`predict` acts with the last round's table ``Q_``
(the last iterate; the PAC output of these algorithms is the uniform mixture of
``policies_``, whose exact value is ``mixture_value_``).

The squared Bellman loss of a step-``h`` candidate is :mod:`robustrl._kernels.squared_bellman`;
candidates are the distinct step-``h`` slices of ``F`` (``np.unique``; ties go to the lowest
row of ``F``), so the lock class of ``A^H`` codes costs ``A`` candidates per step.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robustrl._artifacts import loaded_array
from robustrl._kernels.glow import step_statistics
from robustrl._kernels.squared_bellman import regression_losses
from robustrl.agents.base import (
    LinearAgent,
    Training,
    resolve_budget,
)
from robustrl.agents.glow import _finite_model, _TabularSampler
from robustrl.agents.hyglow import offline_tuples
from robustrl.exact import evaluate_policy, robust_value_iteration
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.validation import check_array, check_int, check_seed


def unique_slices(F: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per step ``h``: the distinct tables ``F[:, h]`` in order of first appearance and, for
    every row of ``F``, the index of its slice among them (so the lowest row wins ties)."""
    slices, which = [], []
    for h in range(F.shape[1]):
        flat = F[:, h].reshape(F.shape[0], -1)
        _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first)  # unique rows by first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        slices.append(F[first[order], h])
        which.append(rank[np.ravel(inverse)])
    return slices, which


class FiniteClassAgent(_TabularSampler, LinearAgent):
    """Base of GOLF, Hy-Q and H2O-FQI on an enumerated value class ``(|F|, H, S, A)``."""

    _param_names: ClassVar[tuple[str, ...]] = ("Q_",)
    #: per-round arrays saved with the agent (checked on load by :meth:`_round_specs`)
    _round_arrays: ClassVar[tuple[str, ...]] = ()
    #: whether the constructor's third positional argument is ``offline_dataset``
    _hybrid: ClassVar[bool] = False

    def __init__(self, env_or_model, value_class, *, episodes_per_round: int = 1,
                 seed: int | None = None, offline_dataset=None) -> None:
        is_model = isinstance(env_or_model, (FiniteMDP, LinearMDP))
        super().__init__(None if is_model else env_or_model, check_seed(seed),
                         needs_features=False)
        if env_or_model is None or is_model:
            self.model = None if env_or_model is None else _finite_model(env_or_model)
        else:
            base = getattr(env_or_model, "unwrapped", env_or_model)
            if not hasattr(env_or_model, "action_space") or not hasattr(base, "horizon"):
                raise ValueError(
                    "env_or_model must be a FiniteMDP/LinearMDP or a Gymnasium env exposing "
                    f"`horizon` on env.unwrapped; got {type(env_or_model).__name__}")
            self.model = _finite_model(getattr(base, "model", None))
        F = check_array(value_class, "value_class", ndim=4)
        _, H, S, A = F.shape
        if self.model is not None and (self.model.horizon, self.model.n_states,
                                       self.model.n_actions) != (H, S, A):
            raise ValueError(
                f"value_class (H, S, A) = {(H, S, A)} does not match the model's "
                f"{(self.model.horizon, self.model.n_states, self.model.n_actions)}")
        if self.env is not None and (int(self.env.unwrapped.horizon) != H
                                     or int(self.env.action_space.n) != A):
            raise ValueError(
                f"value_class (H, A) = {(H, A)} does not match the env's "
                f"{(int(self.env.unwrapped.horizon), int(self.env.action_space.n))}")
        self.value_class = F
        self.horizon, self.n_states, self.n_actions = H, S, A
        self.feature_dim = None
        self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        self._slices, self._slice_of = unique_slices(F)
        self._offline = self._read_offline(offline_dataset)
        self._reset_state()

    # ------------------------------------------------------------------ data
    def _read_offline(self, data) -> list[tuple[np.ndarray, ...]] | None:
        """Per step: ``(states, actions, rewards, next_states, nonterminal)`` in data order."""
        if data is None:
            return None
        H = self.horizon
        steps, s, a, r, s2, nonterm = offline_tuples(data, H, self.n_states, self.n_actions)
        return [tuple(col[steps == h] for col in (s, a, r, s2, nonterm)) for h in range(H)]

    @property
    def n_offline_(self) -> int:
        """Largest number of offline tuples at any step (0 without offline data)."""
        if self._offline is None:
            return 0
        return max(len(part[0]) for part in self._offline)

    def _offline_statistics(self, h: int, n: int | None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Statistics of the first ``n`` offline tuples of step ``h`` (all when None)."""
        S, A = self.n_states, self.n_actions
        s, a, r, s2, nonterm = self._offline[h]
        if n is not None:
            s, a, r, s2, nonterm = s[:n], a[:n], r[:n], s2[:n], nonterm[:n]
        counts, rsum, _ = step_statistics(s, a, r, None, S, A)
        if h == self.horizon - 1:
            return counts, rsum, np.zeros((S, A, S))
        keep = nonterm
        return counts, rsum, step_statistics(s[keep], a[keep], r[keep], s2[keep], S, A)[2]

    def statistics(self, h: int, n_offline: int | None = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pooled statistics of step ``h``: every online tuple so far plus the first
        ``n_offline`` offline tuples (None: all of them). ``(N, sum r, N(s, a, s'))``."""
        stats = (self._counts[h], self._reward_sums[h], self._next_counts[h])
        if self._offline is None or n_offline == 0:
            return stats
        off = self._offline_statistics(h, n_offline)
        return tuple(x + y for x, y in zip(stats, off, strict=True))

    def fitted_q_iteration(self, n_offline: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """FQI over the product of the step slices of ``F`` on the pooled data (arXiv:2210.06718,
        Algorithm 1, line 7): for ``h = H-1..0``, ``f_h = argmin_{g in F_h} ell(g; max f_{h+1})``
        (ties to the lowest row of ``F``; a step without data keeps row 0's slice).

        Returns the table ``(H, S, A)`` and the row of ``F`` whose slice each step took ``(H,)``.
        """
        H, S = self.horizon, self.n_states
        Q = np.zeros(self.value_class.shape[1:])
        rows = np.zeros(H, dtype=np.int64)
        V = np.zeros((1, S))
        for h in range(H - 1, -1, -1):
            losses = regression_losses(self._slices[h], V, *self.statistics(h, n_offline))[0]
            per_row = losses[self._slice_of[h]]  # the loss of every row's slice
            rows[h] = int(np.argmin(per_row))
            Q[h] = self.value_class[rows[h], h]
            V = Q[h].max(axis=-1)[None, :]
        return Q, rows

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        H, S, A = self.horizon, self.n_states, self.n_actions
        self._counts = np.zeros((H, S, A))
        self._reward_sums = np.zeros((H, S, A))
        self._next_counts = np.zeros((H, S, A, S))
        self._init_counts = np.zeros(S)
        self._rng_model = np.random.default_rng(self.seed)
        self._env_seeded = False
        self._records: dict[str, list] = {name: [] for name in self._round_arrays}
        self.rounds_done_ = 0
        self.n_episodes_ = 0
        self.policies_ = np.zeros((0, H, S), dtype=np.int64)
        self.regret_ = np.zeros(0)
        for name in self._round_arrays:
            setattr(self, name, np.zeros(0))
        self.optimal_value_ = (robust_value_iteration(self.model).value
                               if self.model is not None else None)

    def initial_distribution(self) -> np.ndarray:
        """``d_1``: exact when the model is known, else the empirical initial states so far."""
        if self.model is not None:
            return self.model.initial_distribution
        return self._init_counts / self._init_counts.sum()

    # ------------------------------------------------------------------ learn
    def _round_q(self, t: int, total_rounds: int) -> np.ndarray:
        """The Q-table whose greedy policy round ``t`` plays (records the round's arrays)."""
        raise NotImplementedError

    def learn(self, total_timesteps: int | None = None, callback=None,
              progress_bar: bool = False, *, total_rounds: int | None = None
              ) -> FiniteClassAgent:
        """Run rounds ``1..T`` from a fresh start (offline data kept); returns ``self``.

        The budget is exactly one of ``total_timesteps`` (env steps, rounded up to whole
        rounds of ``episodes_per_round`` episodes of ``horizon`` steps) and ``total_rounds``.
        A stable-baselines3 ``callback`` gets ``_on_step`` after every round (False stops
        early, keeping the rounds played).
        """
        if self.env is None and self.model is None:
            raise ValueError(f"{type(self).__name__} needs an env or a model to learn; it was "
                             "loaded without one: load(path, env=...) to keep training")
        K = self.episodes_per_round
        T = resolve_budget(total_timesteps, "total_rounds", total_rounds, K * self.horizon)
        training = Training(self, callback, progress_bar, T, "round",
                            desc=f"{type(self).__name__} rounds")
        self._reset_state()
        policies, regret, tables = [], [], []
        training.start(locals())
        for t in range(1, T + 1):
            s_first = self._reset()
            Q = self._round_q(t, T)
            policy = Q.argmax(axis=-1)
            if self.model is not None:
                regret.append(self.optimal_value_ - evaluate_policy(self.model, policy).value)
            for k in range(K):
                self._episode(s_first if k == 0 else self._reset(), policy)
            policies.append(policy)
            tables.append(Q)
            self.rounds_done_ = t
            self.num_timesteps += K * self.horizon
            if training.callback is not None:  # a checkpoint saves the rounds so far
                self._store(policies, regret, tables)
            if not training.step(locals()):
                break
        training.end()
        self._store(policies, regret, tables)
        return self

    def _store(self, policies, regret, tables) -> None:
        self.policies_ = np.asarray(policies, dtype=np.int64)
        self.regret_ = np.asarray(regret, dtype=np.float64)
        for name in self._round_arrays:
            setattr(self, name, np.asarray(self._records[name]))
        self.Q_ = np.array(tables[-1], dtype=np.float64)
        self._fitted = True

    @property
    def mixture_value_(self) -> float | None:
        """Exact value of the uniform mixture of the played policies, if the model is known."""
        if self.model is None or len(self.regret_) == 0:
            return None
        return float(self.optimal_value_ - self.regret_.mean())

    # ----------------------------------------------------------------- acting
    def q_values(self, obs) -> np.ndarray:
        """Q-values of the last round's table (last-iterate convenience)."""
        self._check_fitted()
        s = int(np.ravel(obs)[0])
        if not 0 <= s < self.n_states:
            raise ValueError(f"obs[0] (the state) must lie in [0, {self.n_states - 1}]; got {s}")
        return np.asarray(self.Q_)[self.step_of(obs), s].copy()

    # ------------------------------------------------------------ persistence
    def _offline_arrays(self) -> dict[str, np.ndarray]:
        if self._offline is None:
            return {}
        cols = [np.concatenate([part[i] for part in self._offline]) for i in range(5)]
        steps = np.concatenate([np.full(len(part[0]), h) for h, part in enumerate(self._offline)])
        return {"offline_steps": steps, "offline_states": cols[0], "offline_actions": cols[1],
                "offline_rewards": cols[2], "offline_next_states": cols[3],
                "offline_nonterminal": cols[4]}

    def save(self, path: str | Path) -> Path:
        """Write hyperparameters, the value class, ``Q_``, the per-round arrays and the offline
        tuples (if any) to one ``.npz``, atomically."""
        self._check_fitted()
        arrays = {"value_class": self.value_class, "Q_": self.Q_, "policies_": self.policies_,
                  "regret_": self.regret_, **self._offline_arrays()}
        arrays.update({name: getattr(self, name) for name in self._round_arrays})
        return self._write_npz(path, arrays)

    def _round_specs(self, T: int) -> dict[str, dict[str, Any]]:
        """:func:`loaded_array` checks of the per-round arrays of a file with ``T`` rounds."""
        return {}

    @classmethod
    def load(cls, path: str | Path, env=None, device: str = "auto") -> FiniteClassAgent:
        """Rebuild an agent saved with :meth:`save`, bound to ``env`` (an env or a model; None:
        predict only). ``device`` is accepted for the shared signature (CPU only). Every array
        is checked (shape, dtype, range); a bad file raises ``ValueError`` naming it."""
        names = ("value_class", "Q_", "policies_", "regret_", *cls._round_arrays)
        header, f = cls._read_npz(path, names)
        F = loaded_array(path, "value_class", f["value_class"], kind="f",
                         shape=(None, None, None, None))
        offline = None
        if "offline_steps" in f:
            cols = ("offline_steps", "offline_states", "offline_actions", "offline_rewards",
                    "offline_next_states")
            offline = tuple(loaded_array(path, c, f[c], kind="f" if c == "offline_rewards"
                                         else "i", shape=(None,)) for c in cols)
        args = (env, F, offline) if cls._hybrid else (env, F)
        agent = cls._from_header(path, header, *args)
        if offline is not None and "offline_nonterminal" in f:
            nonterm = loaded_array(path, "offline_nonterminal", f["offline_nonterminal"],
                                   kind="b", shape=(len(offline[0]),))
            steps = offline[0]
            agent._offline = [part[:4] + (nonterm[steps == h],)
                              for h, part in enumerate(agent._offline)]
        H, S, A = agent.horizon, agent.n_states, agent.n_actions
        agent.Q_ = loaded_array(path, "Q_", f["Q_"], kind="f", shape=(H, S, A))
        agent.policies_ = loaded_array(path, "policies_", f["policies_"], kind="i",
                                       shape=(None, H, S), low=0, high=A - 1)
        T = agent.policies_.shape[0]
        if T == 0:
            raise ValueError(f"path {path}: array 'policies_' must not be empty (a fitted "
                             f"{cls.__name__} played at least one round)")
        agent.regret_ = loaded_array(path, "regret_", f["regret_"], kind="f", shape=(None,))
        if agent.regret_.shape[0] not in (0, T):
            raise ValueError(f"path {path}: array 'regret_' must have 0 or {T} entries (one "
                             f"per round); got {agent.regret_.shape[0]}")
        for name, spec in agent._round_specs(T).items():
            setattr(agent, name, loaded_array(path, name, f[name], **spec))
        if not np.array_equal(agent.policies_[-1], agent.Q_.argmax(axis=-1)):
            raise ValueError(f"path {path}: array 'Q_' must be the table of the last round "
                             "(its greedy policy is policies_[-1])")
        agent.rounds_done_ = T
        agent._check_loaded(path)
        agent._fitted = True
        return agent


def warn_offline_exhausted(name: str, needed: int, available: int) -> None:
    """The progressive schedule wants more offline tuples than the data hold: all are used."""
    warnings.warn(f"{name}: the progressive offline schedule needs {needed} offline tuples per "
                  f"step but offline_dataset holds {available}; every offline tuple is used "
                  "from here on (the offline half of the mixture stops growing)",
                  stacklevel=4)
