"""H2O with a fitted-Q-iteration learner on finite (enumerated) value classes.

H2O (arXiv:2401.09681, Algorithm 2) reduces hybrid RL to offline RL: in round ``t`` it runs an
offline algorithm on the hybrid data ``D_off^(t) + D_on^(t)`` and plays the output's policy;
HyGLOW is H2O with the weight-based learner MABO.CR, and the paper's Appendix F.1 instantiates
the reduction with fitted Q-iteration (FQI) as the offline learner, the setting in which Hy-Q
(arXiv:2210.06718) was analysed. Per round ``t = 1..T``:

1. hybrid data: every online tuple of rounds ``1..t-1`` plus, with
   ``offline_schedule="progressive"`` (default), the first ``(t-1) K`` offline tuples of every
   step, so the two halves grow together and the training distribution is the balanced mixture
   ``(nu + d_bar^(t)) / 2`` of Algorithm 2; ``"pooled"`` uses the whole offline set from
   round 1;
2. offline learner: FQI over the step slices of ``F`` (the same least-squares step as
   :class:`~robustrl.agents.HyQ`, kernel :mod:`robustrl._kernels.squared_bellman`; ties to the
   lowest row; a step without data keeps row 0's slice);
3. ``K`` episodes of its greedy policy.

Differences from Hy-Q (both named, both tested): H2O fits before round 1's play (Hy-Q plays
``f^1 = 0``), and by default it reveals the offline data progressively (Hy-Q uses all of it
every round). When the progressive schedule needs more offline tuples than the data hold, all
are used from then on and a warning says so. ``selected_`` ``(T, H)``: the row of ``F`` per
step; ``n_offline_used_`` ``(T,)``: offline tuples per step the round's fit used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from robustrl.agents._finite_class import FiniteClassAgent, warn_offline_exhausted

__all__ = ["H2OFQI"]

SCHEDULES = ("progressive", "pooled")


class H2OFQI(FiniteClassAgent):
    """H2O (arXiv:2401.09681, Algorithm 2) with an FQI offline learner on ``(|F|, H, S, A)``.

    Args:
        env_or_model: Gymnasium env with ``(state, step)`` observations, or a FiniteMDP /
            LinearMDP (exact regret).
        value_class: candidate Q-tables ``(|F|, H, S, A)``; FQI picks one slice per step.
        offline_dataset: None, an OfflineDataset with ``(state, step)`` observations or
            ``(steps, states, actions, rewards, next_states)`` arrays.
        offline_schedule: ``"progressive"`` (Algorithm 2: ``(t-1) K`` offline tuples per step
            in round ``t``) or ``"pooled"`` (all of them from round 1).
        episodes_per_round: ``K`` online episodes per round.
        seed: seeds the sampler (model) or the first ``env.reset``.
    """

    _round_arrays: ClassVar[tuple[str, ...]] = ("selected_", "n_offline_used_")
    _hybrid: ClassVar[bool] = True

    def __init__(self, env_or_model, value_class, offline_dataset=None, *,
                 offline_schedule: str = "progressive", episodes_per_round: int = 1,
                 seed: int | None = None) -> None:
        if offline_schedule not in SCHEDULES:
            raise ValueError(f"offline_schedule must be one of {SCHEDULES}; got "
                             f"{offline_schedule!r}")
        self.offline_schedule = offline_schedule
        super().__init__(env_or_model, value_class, episodes_per_round=episodes_per_round,
                         seed=seed, offline_dataset=offline_dataset)

    def _reset_state(self) -> None:
        super()._reset_state()
        self._warned = False

    def offline_budget(self, t: int) -> int | None:
        """Offline tuples per step that round ``t`` uses (None: all of them)."""
        if self._offline is None:
            return 0
        if self.offline_schedule == "pooled":
            return None
        need = (t - 1) * self.episodes_per_round
        if need > self.n_offline_:
            if not self._warned:
                warn_offline_exhausted("H2OFQI", need, self.n_offline_)
                self._warned = True
            return None
        return need

    def _round_q(self, t: int, total_rounds: int) -> np.ndarray:
        n = self.offline_budget(t)
        Q, rows = self.fitted_q_iteration(n_offline=n)
        self._records["selected_"].append(rows)
        self._records["n_offline_used_"].append(self.n_offline_ if n is None else n)
        return Q

    def _round_specs(self, T: int) -> dict[str, dict[str, Any]]:
        return {"selected_": dict(kind="i", shape=(T, self.horizon), low=0,
                                  high=self.value_class.shape[0] - 1),
                "n_offline_used_": dict(kind="i", shape=(T,), low=0)}
