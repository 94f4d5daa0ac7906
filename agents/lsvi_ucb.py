"""LSVI-UCB (Jin et al. 2020) and its d-rectangular robust version DR-LSVI-UCB (Liu & Xu 2024).

Both are online, optimistic and greedy (docs/algorithms/lsvi_ucb.md). Per episode: play the greedy
policy of ``Q_h = clip(phi^T w_h + beta Gamma_h, 0, H - h)``, then refit ``w_h`` over all data
with one backward pass (:mod:`agents._online`):

* LSVI-UCB: ``w_h = Lambda_h^{-1} sum_tau phi_tau (r_tau + V_{h+1}(s'_tau))``;
* DR-LSVI-UCB: ``w_h = Lambda_h^{-1} sum_tau phi_tau r_tau + nu_h`` with the exact TV dual
  ``nu_{h,i} = max_alpha [Lambda_h^{-1} sum_tau phi_tau min(V_tau, alpha)]_i - rho (alpha -
  v_min)`` over the data values (sort + cumulative sums), as in the group's online code
  (``panxulab/Deep-Robust-RL``, ``algorithm/linear/LSVI_finite.py``, read for reference only).
  ``divergence="kl"`` swaps in the DRVI-L KL dual (an option, not in that code).

``V_{h+1}(s') = max_a Q_{h+1}(s', a)``. Regret is measured against the exact nominal optimum
(LSVI-UCB) or the exact d-rectangular robust optimum with the same radius (DR-LSVI-UCB).
"""

from __future__ import annotations

from robustrl.agents._online import OnlineLinearAgent, check_robust_setting, check_tie_break

__all__ = ["DRLSVIUCB", "LSVIUCB"]


class LSVIUCB(OnlineLinearAgent):
    """Non-robust optimistic LSVI (LSVI-UCB).

    Args:
        env: robustrl linear-feature Gymnasium environment (see :class:`OnlineLinearAgent`).
        ridge: ridge ``gamma > 0`` (default 0.1, the simulated-MDP setting of arXiv:2411.18612
            simulated MDP, docs/r2pvi-results.md).
        beta: bonus multiplier ``>= 0`` (default 1; the theory value is ``c d H sqrt(log)``).
        bonus: ``"elliptical"`` (default, Jin et al. 2020) or any :mod:`robustrl.bonus` name.
        tie_break: ``"random"`` (default): play uniformly among exact maximisers of ``Q``;
            ``"first"``: the lowest index. ``predict(deterministic=True)`` always returns the
            lowest maximiser.
        seed: seeds the first ``env.reset`` and the tie-breaking.
    """

    def __init__(self, env, *, ridge: float = 0.1, beta: float = 1.0,
                 bonus: str = "elliptical", tie_break: str = "random",
                 seed: int | None = None) -> None:
        super().__init__(env, ridge=ridge, beta=beta, bonus=bonus, seed=seed)
        self.tie_break = check_tie_break(tie_break)


class DRLSVIUCB(OnlineLinearAgent):
    """DR-LSVI-UCB: online optimistic robust LSVI on a d-rectangular TV (or KL) ball.

    Args:
        env: robustrl linear-feature Gymnasium environment.
        rho: radius of every factor's ball (TV: ``[0, 1]``; KL: ``>= 0``; 0 = non-robust).
        divergence: ``"tv"`` (default, exact dual) or ``"kl"`` (golden-section dual).
        v_min: the smallest value the TV adversary can reach (default 0, the value of an
            absorbing failure state, as the authors' code assumes); ``"data"`` uses the
            smallest observed next-step value (as in the R2PVI authors' code;
            docs/algorithms/r2pvi.md).
        ridge, beta, tie_break, seed: as :class:`LSVIUCB`.
        bonus: default ``"d_rectangular_l1"`` (``beta sum_i phi_i sqrt([Lambda^{-1}]_ii)``, the
            column norms of ``L^{-1}`` in the group's online code).
    """

    def __init__(self, env, *, rho: float = 0.1, divergence: str = "tv",
                 v_min: float | str = 0.0, ridge: float = 0.1, beta: float = 1.0,
                 bonus: str = "d_rectangular_l1", tie_break: str = "random",
                 seed: int | None = None) -> None:
        super().__init__(env, ridge=ridge, beta=beta, bonus=bonus, seed=seed)
        self.tie_break = check_tie_break(tie_break)
        self.divergence, self.rho, self.v_min = check_robust_setting(divergence, rho, v_min)
