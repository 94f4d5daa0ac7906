"""A larger, seeded d-rectangular linear MDP: "risky or safe" with a perturbation knob.

The simulated linear MDP (``SimulatedLinearMDPEnv``) has 5 states, ``d = 4`` and ``H = 3``, too
small to separate the online agents' regret rates. This environment is a random but structured
d-rectangular linear MDP of any size (defaults ``d = 16``, ``|A| = 8``, ``H = 10``, 30 states),
built from a seed so that the same arguments always give the same MDP.

Construction (``rng = numpy.random.default_rng(seed)``; ``n = n_states - 1`` regular states in
three tiers of nearly equal size, *rich*, *medium* and *poor*):

* state ``n_states - 1`` is the absorbing **fail** state: ``phi(fail, .) = e_{d-1}``, the last
  factor is the point mass on fail (``mu_h[d-1] = delta_fail``) and pays nothing
  (``theta_h[d-1] = 0``), so the fail state has value 0 (the ``v_min`` the TV agents assume);
* the other ``k = d - 1`` factors form three groups: ``max(1, k // 5)`` **payout** factors
  (``theta_h[i] ~ U(0.8, 1)``, next state ``Dirichlet(1)`` over all regular states), then
  ``(k - payout) // 2`` **risky** factors (next state rich with probability 1/2, poor
  otherwise, ``Dirichlet(1)`` within each tier) and the remaining **safe** factors (next state
  ``Dirichlet(1)`` over the medium tier); risky and safe factors pay ``U(0, 0.1)``; every law is
  drawn independently per step;
* a regular state's features put a tier-dependent share on the payout factors (rich 0.9,
  medium 0.35, poor 0) spread by ``Dirichlet(1)``, and the rest on the risky and safe factors
  spread by ``Dirichlet(0.3)`` drawn per action, so actions differ mainly in how much they bet
  on the risky factors; the fail weight of a regular state is 0;
* rewards ``r_h(s, a) = phi(s, a)^T theta_h`` lie in ``[0, 1]`` (deterministic);
* episodes start uniformly over the regular states.

Nominally the risky factors are the better bet (half the time a rich state, whose payout share
is 0.9); the safe factors give a medium state for sure. **Perturbation** ``q in [0, 1]``: at
every step the risky factors' rich branch fails with probability ``q`` -- a fraction ``q`` of
their rich-tier mass moves to the fail state (the simulated MDP's "goal mass to fail",
spread over a group of factors). The perturbed kernel stays d-rectangular; each risky factor
moves by ``q / 2`` in total variation, to the worst corner of that ball (the fail state has the
smallest value). A d-rectangular TV-robust policy (any radius over all factors) discounts the
high-variance risky factors and prefers the safe ones: it gives up a little nominal return and
loses much less as ``q`` grows (tested). ``perturbation_grid`` is ``0, 0.1, ..., 1``.

``model`` is the exact :class:`~robustrl.models.LinearMDP` that :meth:`RandomLinearMDPEnv.step`
samples from, and :func:`random_linear_mdp` builds it without an environment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from robustrl.envs.linear_mdp_env import LinearMDPEnv
from robustrl.models import LinearMDP
from robustrl.validation import check_int, check_scalar, check_seed

__all__ = ["RandomLinearMDPEnv", "random_linear_mdp"]

#: share of the payout factors in a state's features, per tier (rich, medium, poor).
_TIER_PAYOUT = (0.9, 0.35, 0.0)
#: probability that a risky factor leads to a rich state (else a poor one), nominally.
_RISKY_RICH = 0.5
#: Dirichlet concentration of the action-specific mix of risky and safe factors.
_ACTION_CONCENTRATION = 0.3
_PAYOUT_REWARD = (0.8, 1.0)
_OTHER_REWARD = (0.0, 0.1)


def _check_sizes(n_states, feature_dim, n_actions, horizon) -> tuple[int, int, int, int]:
    # one regular state per tier plus fail; one payout, risky, safe and fail factor.
    n_states = check_int(n_states, "n_states", low=4)
    feature_dim = check_int(feature_dim, "feature_dim", low=4)
    n_actions = check_int(n_actions, "n_actions", low=1)
    horizon = check_int(horizon, "horizon", low=1)
    return n_states, feature_dim, n_actions, horizon


def _check_perturbation(perturbation: Any) -> float | None:
    if perturbation is None:
        return None
    return check_scalar(perturbation, "perturbation", low=0.0, high=1.0)


def random_linear_mdp(
    seed: int = 0,
    perturbation: float | None = None,
    *,
    n_states: int = 30,
    feature_dim: int = 16,
    n_actions: int = 8,
    horizon: int = 10,
) -> LinearMDP:
    """The risky-or-safe linear MDP of the module docstring for ``seed``.

    ``perturbation=None`` (or 0) is the nominal kernel; ``q in [0, 1]`` moves a fraction ``q``
    of every risky factor's rich-tier mass to the fail state at every step. The random draws do not
    depend on ``perturbation``, so the levels of one seed share features, rewards and factors.
    """
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("seed must be an integer >= 0 (the MDP is built from it); got None")
    q = _check_perturbation(perturbation)
    S, d, A, H = _check_sizes(n_states, feature_dim, n_actions, horizon)
    rng = np.random.default_rng(seed)
    fail, n_regular, k = S - 1, S - 1, d - 1
    # factor groups among the first d - 1: payout, risky, safe (the last factor is fail's)
    n_payout = max(1, k // 5)
    n_risky = (k - n_payout) // 2
    payout = np.arange(k) < n_payout
    risky = (np.arange(k) >= n_payout) & (np.arange(k) < n_payout + n_risky)
    safe = ~payout & ~risky
    # regular states in three tiers of (nearly) equal size: rich, medium, poor
    tier = np.arange(n_regular) * 3 // n_regular
    rich, medium, poor = (np.flatnonzero(tier == t) for t in range(3))

    theta = np.zeros((H, d))
    theta[:, :k] = np.where(payout, rng.uniform(*_PAYOUT_REWARD, size=(H, k)),
                            rng.uniform(*_OTHER_REWARD, size=(H, k)))

    mu = np.zeros((H, d, S))
    regular = np.arange(n_regular)
    for i in range(k):
        if payout[i]:
            mu[:, i, regular] = rng.dirichlet(np.ones(n_regular), size=H)
        elif safe[i]:
            mu[:, i, medium] = rng.dirichlet(np.ones(medium.size), size=H)
        else:
            mu[:, i, rich] = _RISKY_RICH * rng.dirichlet(np.ones(rich.size), size=H)
            mu[:, i, poor] = (1.0 - _RISKY_RICH) * rng.dirichlet(np.ones(poor.size), size=H)
    mu[:, k, fail] = 1.0

    phi = np.zeros((S, A, d))
    n_other = int((~payout).sum())
    for s in range(n_regular):
        share = _TIER_PAYOUT[tier[s]]
        phi[s, :, :k][:, payout] = share * rng.dirichlet(np.ones(n_payout), size=A)
        phi[s, :, :k][:, ~payout] = (1.0 - share) * rng.dirichlet(
            np.full(n_other, _ACTION_CONCENTRATION), size=A)
    phi[fail, :, k] = 1.0
    # Dirichlet draws with small concentration can underflow to exact zeros and sum to 1 only
    # up to rounding; renormalise so the rows are exact distributions.
    phi /= phi.sum(axis=-1, keepdims=True)

    if q is not None and q > 0.0:
        # the risky factors' rich branch fails with probability q
        ri = np.flatnonzero(risky)[:, None]
        moved = q * mu[:, ri, rich[None, :]]
        mu[:, ri, rich[None, :]] -= moved
        mu[:, ri[:, 0], fail] += moved.sum(axis=-1)

    initial = np.zeros(S)
    initial[:n_regular] = 1.0 / n_regular
    return LinearMDP(phi, mu, theta, initial)


class RandomLinearMDPEnv(LinearMDPEnv):
    """Seeded risky-or-safe d-rectangular linear MDP (module docstring) as a Gymnasium env.

    Observation: ``(state, step)`` as int64 in ``MultiDiscrete([n_states, H + 1])``; ``step`` is
    the 0-indexed step of the next decision, ``H`` after the last one. Action: an index in
    ``[0, n_actions)``. Reward: ``phi(s, a)^T theta_h`` (deterministic, in ``[0, 1]``). The
    episode ends with ``terminated=True`` after ``H`` steps.

    Args:
        perturbation: ``None`` (nominal) or ``q in [0, 1]``, the failure probability of the
            risky factors' rich branch.
        seed: the MDP's construction seed (not the sampling seed, which ``reset`` takes).
        n_states, feature_dim, n_actions, horizon: sizes (defaults 30, 16, 8, 10).
        render_mode: ``None`` or ``"ansi"``.
    """

    nominal_perturbation: ClassVar[float | None] = None
    perturbation_grid: ClassVar[np.ndarray] = np.round(np.linspace(0.0, 1.0, 11), 10)

    def __init__(
        self,
        perturbation: float | None = None,
        seed: int = 0,
        n_states: int = 30,
        feature_dim: int = 16,
        n_actions: int = 8,
        horizon: int = 10,
        render_mode: str | None = None,
    ) -> None:
        self.perturbation = _check_perturbation(perturbation)
        self.mdp_seed = seed
        model = random_linear_mdp(seed, self.perturbation, n_states=n_states,
                                  feature_dim=feature_dim, n_actions=n_actions,
                                  horizon=horizon)
        names = [str(i) for i in range(model.n_states - 1)] + ["fail"]
        super().__init__(model, render_mode=render_mode, state_names=names)

    def _model_for(self, perturbation) -> LinearMDP:
        return random_linear_mdp(self.mdp_seed, _check_perturbation(perturbation),
                                 n_states=self.n_states, feature_dim=self.feature_dim,
                                 n_actions=self.n_actions, horizon=self.horizon)
