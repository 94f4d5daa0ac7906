"""OPPO: optimistic proximal policy optimisation (Cai, Jin, Yang, Wang 2020, arXiv:1912.05830).

The non-robust policy-optimisation baseline of DR-RPO (arXiv:2510.14246, docs/drrpo-notes.md).
Per episode ``k`` (Algorithm 1 of arXiv:1912.05830, in the order of :class:`DRRPO` with
``evaluation="current"``):

1. play ``pi^k`` (sampled; ``pi^1`` uniform);
2. optimistic policy evaluation of ``pi^k``, backward in ``h``: ``w_h = Lambda_h^{-1} sum_tau
   phi_tau (r_tau + V_{h+1}(s'_tau))``, ``Q_h = clip(phi^T w_h + Gamma_h, 0, H - h)`` and
   ``V_{h+1}(s') = <pi^k_{h+1}(.|s'), Q_{h+1}(s', .)>``;
3. mirror-descent (KL-proximal) improvement ``pi^{k+1}_h ∝ pi^k_h exp(eta Q_h)``
   (:func:`robustrl.policies.kl_mirror_descent_step` with ``tau = 0``).

**Adaptation.** Cai et al. state OPPO for linear *kernel* MDPs (features ``psi(s, a, s')``)
and prove ``O~(sqrt(d^2 H^3 T))`` regret (``T = H K`` steps) with the step
``eta = sqrt(2 log|A| / (H^2 K))``. Here the evaluation is the least-squares evaluation of the
linear MDP (Jin et al. 2020), as in DR-RPO, so the two agents differ only in the robust
regression and the reference-policy regulariser. The bonus is DR-RPO's ``d_rectangular_l1``
(``beta sum_i |phi_i| sqrt([Lambda^{-1}]_ii)``) by default, not the elliptical bonus of the
paper: the policy is stored through the features and needs a bonus linear in ``|phi|``.
Regret is measured against the exact nominal optimum.

It is :class:`DRRPO` with ``rho = 0`` (ordinary regression), ``tau = 0`` (no reference
regulariser), ``policy_q = "clipped"`` and ``evaluation = "current"``.
"""

from __future__ import annotations

from robustrl.agents._online import OnlineLinearAgent
from robustrl.agents.drrpo import DRRPO
from robustrl.validation import check_nonnegative, check_positive

__all__ = ["OPPO"]


class OPPO(DRRPO):
    """Non-robust optimistic policy optimisation (arXiv:1912.05830 Algorithm 1, adapted to the
    linear MDP; see the module docstring).

    Args:
        env: robustrl linear-feature Gymnasium environment.
        eta: mirror-descent step ``> 0`` (finite; the paper's is
            ``sqrt(2 log|A| / (H^2 K))``).
        policy_q: ``"clipped"`` (default, the paper's bounded Q) or ``"linear"``.
        ridge: ridge ``gamma > 0`` (default 0.1).
        beta: bonus multiplier ``>= 0`` (default 1).
        bonus: ``"d_rectangular_l1"`` (default) or ``"none"``.
        seed: seeds the first ``env.reset`` and the action sampling.
    """

    divergence = None

    def __init__(self, env, *, eta: float = 1.0, policy_q: str = "clipped", ridge: float = 0.1,
                 beta: float = 1.0, bonus: str = "d_rectangular_l1",
                 seed: int | None = None) -> None:
        eta = check_positive(eta, "eta")  # finite: eta = inf would need tau > 0
        super().__init__(env, rho=0.0, divergence="tv", tau=0.0, eta=eta, policy_q=policy_q,
                         evaluation="current", ridge=ridge, beta=beta, bonus=bonus, seed=seed)
        self.divergence = None  # the ordinary least-squares regression of LSVI

    @staticmethod
    def _check_tau(tau) -> float:
        return check_nonnegative(tau, "tau")

    # nominal exact values (divergence None), not DR-RPO's policy-regularised ones
    _exact_episode_value = OnlineLinearAgent._exact_episode_value
    _exact_optimum = OnlineLinearAgent._exact_optimum
