"""GOLF on finite (enumerated) value classes: optimism over a squared-Bellman-error version space.

GOLF (Jin, Liu, Miryoosefi 2021, arXiv:2102.00815, Algorithm 1; the coverability analysis of
Xie, Foster, Bai, Jiang, Kakade 2023, arXiv:2210.04157, Algorithm 1) is the comparator that
GLOW's Remark 3.2 (arXiv:2401.09681) names: GLOW replaces GOLF's squared-loss version space by a
density-ratio-weighted one. Per round ``t = 1..T``, with ``D_h`` all step-``h`` tuples of rounds
``1..t-1`` and ``ell`` the squared loss of :mod:`robustrl._kernels.squared_bellman`:

1. version space ``B_t = {f in F : ell_h(f_h; f_{h+1}) - min_{g in F_h} ell_h(g; f_{h+1})
   <= beta for every h}`` (``B_1 = F``); the regression class ``G_h`` is ``F_h``, the step-``h``
   slices of ``F`` (Bellman completeness, arXiv:2102.00815 Assumption 14, holds for the
   combination-lock class);
2. optimism: ``f_t = argmax_{f in B_t} E_{s ~ d_1}[max_a f_0(s, a)]`` (ties to the lowest row;
   ``d_1`` exact with a known model, else the empirical initial states, the current round's
   first reset included, as in :class:`~robustrl.agents.GLOW`);
3. ``K`` episodes of the greedy policy of ``f_t``; every tuple is pooled.

**Radius.** ``beta=None`` (default) sets the explicit radius

    beta = 4 B^2 log(H m T / delta),    m = max_h |F_h| (distinct slices),

under which ``Q*`` stays in every ``B_t`` with probability at least ``1 - delta`` whenever
``Q* in F``, all tables and targets ``r + V*_{h+1}(s')`` lie in ``[0, B]`` (``value_range``;
default ``H``, rewards in ``[0, 1]`` per step). This is GOLF's ``beta = c log(K H |F| / delta)``
(arXiv:2102.00815, Theorem 15; arXiv:2210.04157, Theorem 1) with the absolute constant made
explicit by the derivation in docs/algorithms/comparators.md (Freedman's inequality for each
``(h, g, t)``, union bound over the ``H m T`` events). A given ``beta`` overrides it.

If the version space is ever empty (only possible with ``beta`` below the theory's), the
least-violating ``f`` is played, the round is listed in ``empty_rounds_`` and a warning is
raised. Outputs as GLOW: ``selected_``, ``in_set_``, ``policies_``, exact ``regret_``,
``mixture_value_`` (the uniform-mixture PAC output); :meth:`predict` uses the last ``f``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np

from robustrl._kernels.squared_bellman import regression_losses
from robustrl.agents._finite_class import FiniteClassAgent
from robustrl.validation import check_nonnegative, check_positive

__all__ = ["GOLF"]


class GOLF(FiniteClassAgent):
    """GOLF (arXiv:2102.00815, Algorithm 1) on an enumerated value class ``(|F|, H, S, A)``.

    Args:
        env_or_model: Gymnasium env with ``(state, step)`` observations, or a FiniteMDP /
            LinearMDP (exact regret).
        value_class: candidate Q-tables ``(|F|, H, S, A)``.
        beta: version-space radius; None: the explicit theory radius (module docstring).
        value_range: ``B``, the range ``[0, B]`` of tables and targets in the theory radius;
            None means ``H``.
        delta: failure probability of the theory radius, in ``(0, 1)``.
        episodes_per_round: ``K`` (1 gives the regret form).
        seed: seeds the sampler (model) or the first ``env.reset``.
    """

    _round_arrays: ClassVar[tuple[str, ...]] = ("selected_", "in_set_")

    def __init__(self, env_or_model, value_class, *, beta: float | None = None,
                 value_range: float | None = None, delta: float = 0.1,
                 episodes_per_round: int = 1, seed: int | None = None) -> None:
        self.beta = None if beta is None else check_nonnegative(beta, "beta")
        self.value_range = (None if value_range is None
                            else check_positive(value_range, "value_range"))
        self.delta = check_positive(delta, "delta")
        if self.delta >= 1:
            raise ValueError(f"delta must lie in (0, 1); got {delta!r}")
        super().__init__(env_or_model, value_class, episodes_per_round=episodes_per_round,
                         seed=seed)
        B = self.bound
        if self.beta is None and (self.value_class.min() < 0 or self.value_class.max() > B):
            raise ValueError(
                f"value_class entries must lie in [0, value_range] = [0, {B:g}] for the "
                f"theory radius (beta=None); found [{self.value_class.min():g}, "
                f"{self.value_class.max():g}]: pass value_range or beta")
        # next-step values max_a f_{h+1}: distinct rows per step (zeros after the last step)
        F, S = self.value_class, self.n_states
        self._next_values, self._next_of = [], []
        for h in range(self.horizon):
            V = F[:, h + 1].max(axis=-1) if h < self.horizon - 1 else np.zeros((len(F), S))
            uniq, inverse = np.unique(V, axis=0, return_inverse=True)
            self._next_values.append(uniq)
            self._next_of.append(np.ravel(inverse))

    @property
    def bound(self) -> float:
        """``B``: ``value_range``, or ``H`` when None."""
        return float(self.horizon) if self.value_range is None else self.value_range

    def theory_beta(self, total_rounds: int) -> float:
        """``4 B^2 log(H m T / delta)``, ``m = max_h |F_h|`` (docs/algorithms/comparators.md)."""
        m = max(len(s) for s in self._slices)
        return 4.0 * self.bound**2 * math.log(self.horizon * m * total_rounds / self.delta)

    def radius(self, total_rounds: int) -> float:
        """The radius used: ``beta`` if given, else :meth:`theory_beta`."""
        return self.theory_beta(total_rounds) if self.beta is None else self.beta

    def excess_losses(self) -> np.ndarray:
        """``ell_h(f_h; f_{h+1}) - min_g ell_h(g; f_{h+1})`` on the pooled data, ``(H, |F|)``."""
        n_f = self.value_class.shape[0]
        out = np.zeros((self.horizon, n_f))
        rows = np.arange(n_f)
        for h in range(self.horizon):
            losses = regression_losses(self._slices[h], self._next_values[h],
                                       *self.statistics(h))  # (|V unique|, |F_h|)
            v = self._next_of[h]
            out[h] = losses[v, self._slice_of[h][rows]] - losses.min(axis=1)[v]
        return out

    def initial_values(self) -> np.ndarray:
        """``E_{d_1}[max_a f_0(s, a)]`` for every ``f``."""
        return self.value_class[:, 0].max(axis=-1) @ self.initial_distribution()

    def _reset_state(self) -> None:
        super()._reset_state()
        self.empty_rounds_: list[int] = []

    def _round_q(self, t: int, total_rounds: int) -> np.ndarray:
        n_f = self.value_class.shape[0]
        if t == 1:
            mask = np.ones(n_f, dtype=bool)
            worst = np.full(n_f, -np.inf)
        else:
            worst = self.excess_losses().max(axis=0)
            mask = worst <= self.radius(total_rounds)
        if mask.any():
            idx = int(np.argmax(np.where(mask, self.initial_values(), -np.inf)))
        else:
            self.empty_rounds_.append(t)
            warnings.warn(f"GOLF round {t}: the version space is empty at beta = "
                          f"{self.radius(total_rounds):g}; playing the least-violating f",
                          stacklevel=3)
            idx = int(np.argmin(worst))
        self._records["selected_"].append(idx)
        self._records["in_set_"].append(mask)
        return self.value_class[idx]

    def _round_specs(self, T: int) -> dict[str, dict[str, Any]]:
        n_f = self.value_class.shape[0]
        return {"selected_": dict(kind="i", shape=(T,), low=0, high=n_f - 1),
                "in_set_": dict(kind="b", shape=(T, n_f))}

    def _check_loaded(self, path) -> None:
        if not np.array_equal(self.Q_, self.value_class[self.selected_[-1]]):
            raise ValueError(f"path {path}: array 'Q_' must equal value_class[selected_[-1]]")
