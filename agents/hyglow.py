"""HyGLOW on finite classes: the hybrid-to-offline reduction (H2O) with a weight-based learner.

docs/algorithms/hyglow.md, checked against the paper (Amortila et al., ICLR
2024, arXiv:2401.09681, full text read): Algorithm 2 (H2O) and Algorithm 3
(HyGLOW = H2O + MABO.CR, Eq. (13)/(14)). Per round ``t = 1..T``:

1. pool ``D^(t) = D_off + D_on^(<t)`` per step (plain union, no rebalancing, no reweighting);
2. offline learner MABO.CR (no confidence set, no optimism):
   ``f_t = argmin_{f in F} sum_h max_{w in W} |E_hat[c Delta_f]| - alpha E_hat[c^2]``,
   ``c = clip_gamma[w]``, with the same kernel as GLOW (:mod:`robustrl._kernels.glow`, through
   :meth:`GLOW.objective`); ties go to the lowest index;
3. ``K`` episodes of the greedy policy ``pi_{f_t}``; their tuples join ``D_on``.

Follows the paper: the absolute value in the objective (``two_sided=True``, the default: the
max runs over ``w`` and the sign, i.e. ``W u -W``, one sign per step and table, for
``"tabular"`` too); the one-sided ``two_sided=False`` is an ablation, which never penalises an f
that *under*-estimates on the data, so with data from ``pi*`` alone it cannot tell the true Q
from a wrong one that is only pessimistic off the optimal path (tested).

Practical choices (differences from Algorithm 3):

* the WHOLE offline set is pooled from round 1 (Algorithm 3 uses the first ``t`` offline
  samples per step in round ``t``, ``D_off|_{1:t}``, so that offline and online halves stay
  balanced, ``mu^(t) = (nu + d_bar^(t)) / 2``); ``K`` episodes per round (the paper: 1);
* **schedules** [RECON]: with ``n_eff = n_off + (t - 1) K`` pooled episodes per step (``n_off``
  the largest number of offline tuples at any step), ``alpha_t``, ``gamma_t`` are GLOW's
  schedules at the "effective round" ``1 + n_eff / K``: ``alpha_t = alpha0 K / n_eff``,
  ``gamma_t = gamma0 n_eff / K`` (``constants="paper"``: ``gamma_t = gamma (1 + n_eff / K)``,
  ``alpha_t = 8 / gamma_t`` as in Algorithm 3 line 2; ``truncation``/``penalty`` ablations as
  in GLOW). Without any data (round 1, no offline set) every objective is 0 and ``f_1`` is
  index 0;
* output conventions as GLOW: ``selected_``, ``policies_``, exact ``regret_`` (model known),
  ``mixture_value_`` (the paper's uniform-mixture output); :meth:`predict` acts with the last
  ``f`` (non-faithful last iterate).

Offline data: a :class:`robustrl.data.OfflineDataset` whose observations are ``(state, step)``
(``OfflineDataset.step(h)``), or a tuple of flat arrays ``(steps, states, actions, rewards,
next_states)``. Terminal tuples before the last step contribute no next-state term.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from robustrl._kernels.glow import full_class_step_objective, step_statistics
from robustrl.agents.base import Training, deprecated_progress, renamed_attribute, resolve_budget
from robustrl.agents.glow import GLOW
from robustrl.data import OfflineDataset
from robustrl.validation import check_array, check_int

__all__ = ["HyGLOW", "offline_tuples"]


def offline_tuples(data, horizon: int, n_states: int, n_actions: int):
    """Flat ``(steps, states, actions, rewards, next_states, nonterminal)`` of offline data.

    ``data``: an OfflineDataset with ``(state, step)`` observations or a 5-tuple of arrays
    ``(steps, states, actions, rewards, next_states)`` (all tuples non-terminal).
    """
    H, S, A = horizon, n_states, n_actions
    if isinstance(data, OfflineDataset):
        if data.horizon != H or data.n_actions != A:
            raise ValueError(f"offline_dataset must have horizon {H} and {A} actions; got "
                             f"{data.horizon} and {data.n_actions}")
        if data.observations.shape[-1] < 2:
            raise ValueError("offline_dataset observations must be (state, step) pairs")
        parts = []
        for h in range(H):
            sd = data.step(h)
            if not np.all(sd.observations[:, -1] == h):
                raise ValueError(f"offline_dataset observations at step {h} carry another step")
            n = len(sd.actions)
            parts.append((np.full(n, h), sd.observations[:, 0], sd.actions, sd.rewards,
                          sd.next_observations[:, 0], sd.next_nonterminal))
        cols = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    else:
        if not isinstance(data, (tuple, list)) or len(data) != 5:
            raise ValueError("offline_dataset must be an OfflineDataset or a tuple (steps, "
                             f"states, actions, rewards, next_states); got {type(data).__name__}")
        names = ("steps", "states", "actions", "rewards", "next_states")
        cols = [check_array(c, f"offline_dataset {nm}", ndim=1)
                for nm, c in zip(names, data, strict=True)]
        if len({len(c) for c in cols}) != 1:
            raise ValueError("offline_dataset arrays must all have the same length; got "
                             f"{[len(c) for c in cols]}")
        cols.append(np.ones(len(cols[0]), dtype=bool))
    steps, states, actions, rewards, nxt, nonterm = cols
    for name, arr, hi in (("steps", steps, H), ("states", states, S), ("actions", actions, A),
                          ("next_states", nxt, S)):
        if arr.size and (np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() >= hi):
            raise ValueError(f"offline_dataset {name} must be integers in [0, {hi - 1}]")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("offline_dataset rewards must be finite")
    as_int = lambda x: np.asarray(x).astype(np.int64)  # noqa: E731
    return (as_int(steps), as_int(states), as_int(actions), np.asarray(rewards, float),
            as_int(nxt), np.asarray(nonterm, bool))


class HyGLOW(GLOW):
    """H2O + weight-based min-max offline learner (arXiv:2401.09681, docs/algorithms/hyglow.md) on
    finite classes.

    Args:
        env_or_model, value_class, weight_class: as :class:`~agents.glow.GLOW` (``weight_class``
            may be ``"tabular"``: closed-form inner max).
        offline_dataset: None, an OfflineDataset or ``(steps, states, actions, rewards,
            next_states)`` arrays.
        two_sided: max over the sign of the weight too (default, [RECON], module docstring).
        **kwargs: GLOW's ``episodes_per_round``, ``alpha0``, ``gamma0``, ``truncation``,
            ``penalty``, ``delta``, ``coverability_guess``, ``seed`` (``kappa`` is unused:
            no confidence set).
    """

    _hyperparam_names: ClassVar[tuple[str, ...]] = (*GLOW._hyperparam_names, "two_sided")

    def __init__(
        self,
        env_or_model,
        value_class,
        weight_class,
        offline_dataset=None,
        *,
        two_sided: bool = True,
        episodes_per_round: int = 1,
        kappa: float = 1.0,
        alpha0: float | None = None,
        gamma0: float = 1.0,
        delta: float = 0.1,
        coverability_guess: float | None = None,
        seed: int | None = None,
        truncation: str = "schedule",
        penalty: bool = True,
        constants: str = "recon",
    ) -> None:
        if not isinstance(two_sided, (bool, np.bool_)):
            raise ValueError(f"two_sided must be a bool; got {two_sided!r}")
        self.two_sided = bool(two_sided)
        self._offline = None  # _reset_state (called by GLOW.__init__) reads it
        self.n_offline_ = 0
        super().__init__(env_or_model, value_class, weight_class,
                         episodes_per_round=episodes_per_round, kappa=kappa, alpha0=alpha0,
                         gamma0=gamma0, delta=delta, coverability_guess=coverability_guess,
                         seed=seed, truncation=truncation, penalty=penalty, constants=constants)
        H, S, A = self.horizon, self.n_states, self.n_actions
        off_counts = np.zeros((H, S, A))
        off_rewards = np.zeros((H, S, A))
        off_next = np.zeros((H, S, A, S))
        if offline_dataset is not None:
            steps, s, a, r, s2, nonterm = offline_tuples(offline_dataset, H, S, A)
            for h in range(H):
                m = steps == h
                keep = m & nonterm if h < H - 1 else None
                c, rs, _ = step_statistics(s[m], a[m], r[m], None, S, A)
                off_counts[h], off_rewards[h] = c, rs
                if keep is not None:
                    off_next[h] = step_statistics(s[keep], a[keep], r[keep], s2[keep], S, A)[2]
        self._offline = (off_counts, off_rewards, off_next)
        self.n_offline_ = int(off_counts.sum(axis=(1, 2)).max())
        self._reset_state()

    def _reset_state(self) -> None:
        super()._reset_state()
        if self._offline is not None:
            # Pool: GLOW's sampler adds online tuples on top of these statistics.
            self._counts += self._offline[0]
            self._reward_sums += self._offline[1]
            self._next_counts += self._offline[2]
        self.objective_values_ = np.zeros((0, self.value_class.shape[0]))

    def hybrid_schedule(self, t: int, total_rounds: int) -> tuple[float, float] | None:
        """``(alpha_t, gamma_t)`` at effective round ``1 + n_eff / K`` [RECON]; None if no data."""
        K = self.episodes_per_round
        n_eff = self.n_offline_ + (t - 1) * K
        if n_eff == 0:
            return None
        alpha, _, gamma = self.schedule(1 + n_eff / K, total_rounds)
        return alpha, gamma

    def offline_objective(self, t: int, total_rounds: int) -> np.ndarray:
        """``sum_h max_w L_h(f, w)`` on the current pooled data for every f, shape ``(|F|,)``."""
        sched = self.hybrid_schedule(t, total_rounds)
        n_f = self.value_class.shape[0]
        if sched is None:
            return np.zeros(n_f)
        alpha, gamma = sched
        if self.tabular_weights:
            total = np.zeros(n_f)
            F = self.value_class
            for h in range(self.horizon):
                stats = (self._counts[h], self._reward_sums[h], self._next_counts[h])
                best = full_class_step_objective(F[:, h], self._V_next[h], stats[0], stats[1],
                                                 stats[2], gamma, alpha)
                if self.two_sided:
                    # Negating f, V_next and the rewards negates the residual.
                    neg = full_class_step_objective(-F[:, h], -self._V_next[h], stats[0],
                                                    -stats[1], stats[2], gamma, alpha)
                    best = np.maximum(best, neg)
                total += best
            return total
        L = self.objective(alpha, gamma)  # (H, |F|, |W|)
        if self.two_sided:
            # -E[c Delta] - alpha E[c^2] = L - 2 E[c Delta], with E[c Delta] the alpha = 0 value.
            L = np.maximum(L, L - 2.0 * self.objective(0.0, gamma))
        return L.max(axis=2).sum(axis=0)

    n_offline = renamed_attribute("n_offline_")

    def learn(self, total_timesteps: int | None = None, callback=None,
              progress_bar: bool = False, *, total_rounds: int | None = None,
              episodes_per_round: int | None = None, progress: bool | None = None) -> HyGLOW:
        """Run rounds ``1..T`` (fresh start; offline data kept); returns ``self``.

        Budget, callback and progress bar as in :meth:`robustrl.agents.GLOW.learn`.
        """
        self._require_sampler()
        if episodes_per_round is not None:
            self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        T = resolve_budget(total_timesteps, "total_rounds", total_rounds,
                           self.episodes_per_round * self.horizon)
        training = Training(self, callback, deprecated_progress(progress_bar, progress), T,
                            "round", desc="HyGLOW rounds")
        self._reset_state()
        selected, objs, policies, regret = [], [], [], []
        training.start(locals())
        for t in range(1, T + 1):
            s_first = self._reset()
            obj = self.offline_objective(t, T)
            idx = int(np.argmin(obj))
            policy = self._play_round(idx, s_first, regret)
            selected.append(idx)
            objs.append(obj)
            policies.append(policy)
            self.rounds_done_ = t
            self.num_timesteps += self.episodes_per_round * self.horizon
            if training.callback is not None:  # a checkpoint saves the rounds so far
                self._store_hybrid(selected, objs, policies, regret)
            if not training.step(locals()):
                break
        training.end()
        self._store_hybrid(selected, objs, policies, regret)
        return self

    def _store_hybrid(self, selected, objs, policies, regret) -> None:
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.objective_values_ = np.asarray(objs)
        self.policies_ = np.asarray(policies, dtype=np.int64)
        self.regret_ = np.asarray(regret)
        self.Q_ = self.value_class[self.selected_[-1]].copy()
        self._fitted = True
