"""Hy-Q on finite (enumerated) value classes: fitted Q-iteration on offline plus online data.

Hy-Q (Song, Zhou, Sekhari, Bagnell, Krishnamurthy, Sun, ICLR 2023, arXiv:2210.06718,
Algorithm 1) is the hybrid comparator of HyGLOW (arXiv:2401.09681, Section 4). No optimism, no
confidence set, no weights: per round ``t = 1..T``

1. ``pi_t`` is greedy with respect to ``f^t`` (``f^1 = 0``, so round 1 plays action 0
   everywhere: Algorithm 1 initialises ``f^1_h = 0``);
2. ``K`` episodes of ``pi_t`` (the ``m_on`` online tuples per step of line 4);
3. ``f^{t+1}`` by fitted Q-iteration (line 7): for ``h = H-1..0``,
   ``f^{t+1}_h = argmin_{g in F_h} sum over D_off_h + D_on_h^(1..t) of
   (g(s, a) - r - max_a' f^{t+1}_{h+1}(s', a'))^2`` over the step slices ``F_h`` of the class
   (the product class ``F_0 x ... x F_{H-1}`` of the paper; ties to the lowest row), on the
   WHOLE offline set every round (kernel :mod:`robustrl._kernels.squared_bellman`).

The fit of step 3 is done at the start of round ``t + 1`` (same data, same table). ``selected_``
``(T, H)`` holds the row of ``F`` whose slice each step took (``-1`` for round 1's zero
table); ``Q_`` is the last played table (last iterate; the paper's output is the uniform
mixture of ``policies_``, value ``mixture_value_``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from robustrl.agents._finite_class import FiniteClassAgent

__all__ = ["HyQ"]


class HyQ(FiniteClassAgent):
    """Hy-Q (arXiv:2210.06718, Algorithm 1) on an enumerated value class ``(|F|, H, S, A)``.

    Args:
        env_or_model: Gymnasium env with ``(state, step)`` observations, or a FiniteMDP /
            LinearMDP (exact regret).
        value_class: candidate Q-tables ``(|F|, H, S, A)``; FQI picks one slice per step.
        offline_dataset: None, an OfflineDataset with ``(state, step)`` observations or
            ``(steps, states, actions, rewards, next_states)`` arrays.
        episodes_per_round: ``K`` online episodes per round.
        seed: seeds the sampler (model) or the first ``env.reset``.
    """

    _round_arrays: ClassVar[tuple[str, ...]] = ("selected_",)
    _hybrid: ClassVar[bool] = True

    def __init__(self, env_or_model, value_class, offline_dataset=None, *,
                 episodes_per_round: int = 1, seed: int | None = None) -> None:
        super().__init__(env_or_model, value_class, episodes_per_round=episodes_per_round,
                         seed=seed, offline_dataset=offline_dataset)

    def _round_q(self, t: int, total_rounds: int) -> np.ndarray:
        if t == 1:
            self._records["selected_"].append(np.full(self.horizon, -1, dtype=np.int64))
            return np.zeros(self.value_class.shape[1:])
        Q, rows = self.fitted_q_iteration(n_offline=None)
        self._records["selected_"].append(rows)
        return Q

    def _round_specs(self, T: int) -> dict[str, dict[str, Any]]:
        return {"selected_": dict(kind="i", shape=(T, self.horizon), low=-1,
                                  high=self.value_class.shape[0] - 1)}
