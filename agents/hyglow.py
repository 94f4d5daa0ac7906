"""HyGLOW on finite classes: the hybrid-to-offline reduction (H2O) with a weight-based learner.

docs/algorithms/hyglow.md, checked against the paper (Amortila et al., ICLR
2024, arXiv:2401.09681, full text read): Algorithm 2 (H2O) and Algorithm 3
(HyGLOW = H2O + MABO.CR, Eq. (13)/(14)). Per round ``t = 1..T``:

1. pool ``D^(t) = D_off^(<t) + D_on^(<t)`` per step (plain union, no reweighting), where
   ``D_off^(<t)`` is the first ``t - 1`` of ``T - 1`` consecutive parts of each step's offline
   tuples (Algorithm 3's progressive schedule, ``offline_schedule="progressive"``, the
   default; ``"pooled"`` uses all of ``D_off`` from round 1);
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

* Algorithm 3 reveals one offline sample per step and round (``n_off = T``); here ``D_off``
  of any size is split into ``T - 1`` parts, so the offline / online ratio stays
  ``n_off / ((T - 1) K)`` in every round; ``K`` episodes per round (the paper: 1);
* **schedules** [RECON]: with ``n_eff = n_off(t) + (t - 1) K`` pooled episodes per step
  (``n_off(t)`` the largest number of offline tuples round ``t`` uses at any step),
  ``alpha_t``, ``gamma_t`` are GLOW's schedules at the "effective round" ``1 + n_eff / K``:
  ``alpha_t = alpha0 K / n_eff``,
  ``gamma_t = gamma0 n_eff / K`` (``constants="paper"``: ``gamma_t = gamma (1 + n_eff / K)``,
  ``alpha_t = 8 / gamma_t`` as in Algorithm 3 line 2, with Corollary 4.1's
  ``gamma = sqrt((C_star + C_cov) / (T H^2 log(|F||W| / delta)))``; ``truncation``/``penalty``
  ablations as in GLOW). Without any data (round 1 under the progressive schedule) every
  objective is 0 and ``f_1`` is index 0;
* output conventions as GLOW: ``selected_``, ``policies_``, exact ``regret_`` (model known),
  ``mixture_value_`` (the paper's uniform-mixture output); :meth:`predict` acts with the last
  ``f`` (non-faithful last iterate).

Offline data: a :class:`robustrl.data.OfflineDataset` whose observations are ``(state, step)``
(``OfflineDataset.step(h)``), or a tuple of flat arrays ``(steps, states, actions, rewards,
next_states)``. Terminal tuples before the last step contribute no next-state term.
"""

from __future__ import annotations

import math

import numpy as np

from robustrl._kernels.glow import full_class_step_objective
from robustrl.agents.base import Training, deprecated_progress, renamed_attribute, resolve_budget
from robustrl.agents.glow import GLOW, shares_glow_signature
from robustrl.data import OfflineDataset
from robustrl.validation import check_array, check_int, check_scalar

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
        offline_schedule: ``"progressive"`` (default, Algorithm 3: round ``t`` uses the first
            ``t - 1`` of ``T - 1`` parts of ``D_off``, :meth:`offline_revealed`) or
            ``"pooled"`` (all of ``D_off`` from round 1).
        concentrability_guess: ``C_star`` in Corollary 4.1's ``gamma`` (``constants="paper"``);
            None means 1 (data from ``pi*``).
        glow_hyperparams: GLOW's keyword-only hyperparameters (``episodes_per_round``,
            ``alpha0``, ``gamma0``, ``truncation``, ``penalty``, ``delta``,
            ``coverability_guess``, ``seed``, ``constants``; ``kappa`` is unused: no confidence
            set), declared once in :class:`GLOW` and shown in this signature.
    """

    @shares_glow_signature
    def __init__(self, env_or_model, value_class, weight_class, offline_dataset=None, *,
                 two_sided: bool = True, offline_schedule: str = "progressive",
                 concentrability_guess: float | None = None, **glow_hyperparams) -> None:
        if not isinstance(two_sided, (bool, np.bool_)):
            raise ValueError(f"two_sided must be a bool; got {two_sided!r}")
        if offline_schedule not in ("progressive", "pooled"):
            raise ValueError("offline_schedule must be 'progressive' (Algorithm 3: round t sees "
                             "the first t - 1 parts of D_off) or 'pooled' (all of D_off from "
                             f"round 1); got {offline_schedule!r}")
        self.two_sided = bool(two_sided)
        self.offline_schedule = offline_schedule
        self.concentrability_guess = (None if concentrability_guess is None else check_scalar(
            concentrability_guess, "concentrability_guess", low=1.0))
        self._offline = None  # _reset_state (called by GLOW.__init__) reads it
        self.n_offline_ = 0
        if isinstance(weight_class, str) and weight_class == "augmented":
            raise ValueError("weight_class='augmented' (Theorem 3.2's W-bar) is GLOW's online "
                             "class; HyGLOW takes an (|W|, H, S, A) array or 'tabular'")
        if glow_hyperparams.get("constants") == "derived":
            raise ValueError("constants='derived' is GLOW's re-derived Theorem 3.1 schedule; "
                             "HyGLOW takes 'recon' or 'paper'")
        super().__init__(env_or_model, value_class, weight_class, **glow_hyperparams)
        H, S, A = self.horizon, self.n_states, self.n_actions
        per_step = []
        if offline_dataset is not None:
            steps, s, a, r, s2, nonterm = offline_tuples(offline_dataset, H, S, A)
            for h in range(H):
                m = steps == h
                nxt = np.where(nonterm[m], s2[m], -1) if h < H - 1 else np.full(m.sum(), -1)
                per_step.append((s[m], a[m], r[m], nxt))
        else:
            per_step = [(np.zeros(0, np.int64),) * 2 + (np.zeros(0), np.zeros(0, np.int64))] * H
        self._offline = per_step
        self.n_offline_ = max(len(p[0]) for p in per_step)
        self._reset_state()

    def _reset_state(self) -> None:
        super()._reset_state()
        self._revealed = np.zeros(self.horizon, dtype=np.int64)
        if self._offline is not None and self.offline_schedule == "pooled":
            self._reveal(np.array([len(p[0]) for p in self._offline]))
        self.objective_values_ = np.zeros((0, self.value_class.shape[0]))

    def _reveal(self, upto: np.ndarray) -> None:
        """Add offline tuples ``[revealed_h, upto_h)`` of every step to the pooled statistics
        (GLOW's sampler adds the online tuples on top of them)."""
        for h, (s, a, r, nxt) in enumerate(self._offline):
            sl = slice(self._revealed[h], upto[h])
            np.add.at(self._counts[h], (s[sl], a[sl]), 1.0)
            np.add.at(self._reward_sums[h], (s[sl], a[sl]), r[sl])
            keep = nxt[sl] >= 0
            np.add.at(self._next_counts[h], (s[sl][keep], a[sl][keep], nxt[sl][keep]), 1.0)
        self._revealed = np.maximum(self._revealed, upto)

    def offline_revealed(self, t: int, total_rounds: int) -> np.ndarray:
        """Offline tuples per step that round ``t`` uses, shape ``(H,)``.

        ``"progressive"`` (Algorithm 3 of arXiv:2401.09681): each step's tuples, in dataset
        order, are split into ``T - 1`` consecutive parts of sizes differing by at most one
        (``numpy.array_split``); round ``t`` uses parts ``1..t-1`` (none in round 1, all in
        round ``T``), so offline and online data grow together. ``"pooled"``: all, every round.
        """
        T = check_int(total_rounds, "total_rounds", low=1)
        t = check_int(t, "t", low=1, high=T)
        n = np.array([len(p[0]) for p in self._offline], dtype=np.int64)
        if self.offline_schedule == "pooled":
            return n
        k = T - 1
        if k == 0:
            return np.zeros_like(n)
        j = t - 1  # parts revealed
        return j * (n // k) + np.minimum(j, n % k)

    def hybrid_schedule(self, t: int, total_rounds: int) -> tuple[float, float] | None:
        """``(alpha_t, gamma_t)`` at effective round ``1 + n_eff / K`` [RECON]; None if no data.

        ``n_eff`` = offline tuples round ``t`` uses (largest over steps) + ``(t - 1) K``.
        """
        K = self.episodes_per_round
        n_eff = int(self.offline_revealed(t, total_rounds).max()) + (t - 1) * K
        if n_eff == 0:
            return None
        alpha, _, gamma = self.schedule(1 + n_eff / K, total_rounds)
        return alpha, gamma

    def paper_gamma(self, total_rounds: int) -> float:
        """Corollary 4.1 of arXiv:2401.09681 (HyGLOW):
        ``gamma = sqrt((C_star + C_cov) / (T H^2 log(|F||W| / delta)))`` times ``gamma0``;
        ``C_star`` = ``concentrability_guess`` (None: 1, the value for data from ``pi*``),
        ``C_cov`` = ``coverability_guess`` (None: ``S A``)."""
        T = check_int(total_rounds, "total_rounds", low=1)
        C_cov = (self.coverability_guess if self.coverability_guess is not None
                 else self.n_states * self.n_actions)
        C_star = 1.0 if self.concentrability_guess is None else self.concentrability_guess
        log_fw = self._log_class_sizes(T) + math.log(1.0 / self.delta)
        return self.gamma0 * math.sqrt((C_star + C_cov) / (T * self.horizon**2 * log_fw))

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
            self._reveal(self.offline_revealed(t, T))
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
