"""The simulated d-rectangular linear MDP of Liu & Xu (2024), used in the R2PVI paper.

Construction of arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md (five states, ``d = 4``, 16
actions, ``H = 3``):

* states ``x1 .. x5`` are indices ``0 .. 4``; ``x1`` is the start, ``x4`` the absorbing *fail*
  state (value 0), ``x5`` the absorbing *goal* state;
* actions are the 16 vectors ``a in {-1, +1}^4`` in ``itertools.product([-1, 1], repeat=4)``
  order (the authors' order): action index ``k`` has ``a_i = +1`` iff bit ``3 - i`` of ``k`` is
  set, so ``0 -> (-1,-1,-1,-1)``, ``1 -> (-1,-1,-1,+1)``, ..., ``15 -> (+1,+1,+1,+1)``
  (:data:`ACTION_VECTORS`);
* ``xi = (xi_norm / 4) * (1, 1, 1, 1)``, so ``xi^T a`` takes the values
  ``{-xi_norm, -xi_norm/2, 0, xi_norm/2, xi_norm}``;
* features ``phi(x_j, a) = (1 - delta - xi^T a) e_j + (delta + xi^T a) e_4`` for ``j = 1, 2, 3``,
  ``phi(x4, .) = e_3`` and ``phi(x5, .) = e_4``;
* rewards ``r_h = phi^T theta_h`` with ``theta_1 = 0`` and ``theta_h = e_4`` afterwards.

The nominal factors are the same at every step:
``mu_1 = 0.999 x2 + 0.001 x4`` (the "fail leak"), ``mu_2 = 0.999 x3 + 0.001 x4``,
``mu_3 = x4`` and ``mu_4 = x5``. They reproduce the authors' transition table on every reachable
(state, step) pair. The perturbed test kernel at level ``q`` changes only the first step:
``mu_1 = x2`` (no leak) and ``mu_4 = q x4 + (1 - q) x5``, which moves the goal factor's mass to
the fail state. Because the perturbation acts on factors, the perturbed kernel stays
d-rectangular. A side effect is that, at step 0 only, ``x5`` (whose features are ``e_4``) is no
longer absorbing. Every episode starts in ``x1``, so no episode ever reaches that case.
"""

from __future__ import annotations

import copy
import functools
from itertools import product
from typing import Any, ClassVar

import numpy as np

from robustrl.envs.linear_mdp_env import LinearMDPEnv
from robustrl.models import LinearMDP
from robustrl.validation import check_int, check_scalar

N_STATES = 5
FEATURE_DIM = 4
FAIL_STATE = 3  # x4
GOAL_STATE = 4  # x5
FAIL_LEAK = 0.001
STATE_NAMES = ("x1", "x2", "x3", "x4", "x5")
ACTION_VECTORS: np.ndarray = np.array(list(product([-1, 1], repeat=4)), dtype=np.float64)
ACTION_VECTORS.setflags(write=False)


def _check_delta_xi(delta: float, xi_norm: float) -> tuple[float, float]:
    delta = check_scalar(delta, "delta", low=0.0, high=1.0)
    xi_norm = check_scalar(xi_norm, "xi_norm", low=0.0, high=1.0)
    # The feature weights delta + xi^T a and 1 - delta - xi^T a must stay in [0, 1].
    if delta - xi_norm < 0.0 or delta + xi_norm > 1.0:
        raise ValueError(
            "delta and xi_norm must satisfy 0 <= delta - xi_norm and delta + xi_norm <= 1 "
            f"(features on the simplex); got delta={delta!r}, xi_norm={xi_norm!r}"
        )
    return delta, xi_norm


def _check_perturbation(perturbation: Any) -> float | None:
    if perturbation is None:
        return None
    return check_scalar(perturbation, "perturbation", low=0.0, high=1.0)


def simulated_features(delta: float = 0.3, xi_norm: float = 0.2) -> np.ndarray:
    """Features ``phi[s, a]`` of arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md, shape
    ``(5, 16, 4)``."""
    delta, xi_norm = _check_delta_xi(delta, xi_norm)
    xi = np.full(FEATURE_DIM, xi_norm / FEATURE_DIM)
    goal_weight = delta + ACTION_VECTORS @ xi  # (16,)
    phi = np.zeros((N_STATES, len(ACTION_VECTORS), FEATURE_DIM))
    for j in range(3):  # x1, x2, x3
        phi[j, :, j] = 1.0 - goal_weight
        phi[j, :, 3] = goal_weight
    phi[FAIL_STATE, :, 2] = 1.0
    phi[GOAL_STATE, :, 3] = 1.0
    return phi


def simulated_linear_mdp(
    perturbation: float | None = None,
    delta: float = 0.3,
    xi_norm: float = 0.2,
    horizon: int = 3,
) -> LinearMDP:
    """The simulated linear MDP of arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md as a
    :class:`~robustrl.models.LinearMDP`.

    ``perturbation=None`` gives the nominal kernel (with the 0.001 fail leak). A level
    ``q in [0, 1]`` gives the perturbed test kernel, which differs only at the first step.
    ``horizon=3`` is the paper's setting. Longer horizons repeat the nominal factors.
    """
    # a copy: callers own their arrays; the copy skips LinearMDP's validation, which the
    # cached model passed once
    return copy.deepcopy(_simulated_linear_mdp(_check_perturbation(perturbation), float(delta),
                                               float(xi_norm),
                                               check_int(horizon, "horizon", low=1)))


@functools.lru_cache(maxsize=64)
def _simulated_linear_mdp(q: float | None, delta: float, xi_norm: float,
                          horizon: int) -> LinearMDP:
    """The model of :func:`simulated_linear_mdp`, built and validated once per setting (an
    experiment makes an environment per perturbation level and cell: thousands for Figure 1).
    Never handed out: :func:`simulated_linear_mdp` returns copies."""
    phi = simulated_features(delta, xi_norm)
    mu_step = np.zeros((FEATURE_DIM, N_STATES))
    mu_step[0, 1], mu_step[0, FAIL_STATE] = 1.0 - FAIL_LEAK, FAIL_LEAK  # x1 -> x2 (leak to x4)
    mu_step[1, 2], mu_step[1, FAIL_STATE] = 1.0 - FAIL_LEAK, FAIL_LEAK  # x2 -> x3 (leak to x4)
    mu_step[2, FAIL_STATE] = 1.0  # x3 fails; x4 stays
    mu_step[3, GOAL_STATE] = 1.0  # goal factor
    mu = np.repeat(mu_step[None], horizon, axis=0)
    if q is not None:
        mu[0, 0] = 0.0
        mu[0, 0, 1] = 1.0
        mu[0, 3] = 0.0
        mu[0, 3, FAIL_STATE] = q
        mu[0, 3, GOAL_STATE] = 1.0 - q
    theta = np.zeros((horizon, FEATURE_DIM))
    theta[1:, 3] = 1.0
    initial = np.zeros(N_STATES)
    initial[0] = 1.0
    return LinearMDP(phi, mu, theta, initial)


class SimulatedLinearMDPEnv(LinearMDPEnv):
    """Simulated d-rectangular linear MDP (Liu & Xu 2024; R2PVI paper, arXiv:2411.18612 simulated
    MDP, docs/r2pvi-results.md).

    Observation: ``(state, step)`` as int64 in ``MultiDiscrete([5, H + 1])``. ``step`` is the
    0-indexed step of the next decision, and ``H`` after the last one. Action: index into
    :data:`ACTION_VECTORS`. Reward: ``phi(s, a)^T theta_h``, which is deterministic. The episode
    ends with ``terminated=True`` after ``H`` steps.

    Args:
        perturbation: ``None`` for the nominal kernel, or the perturbation level ``q in [0, 1]``
            of the test kernels (the goal-factor mass moved to the fail state at step 0).
        delta, xi_norm: feature parameters; need ``0 <= delta - xi_norm`` and
            ``delta + xi_norm <= 1``.
        horizon: ``H`` (3 in the paper).
        render_mode: ``None`` or ``"ansi"``.

    ``model`` is the exact :class:`~robustrl.models.LinearMDP` that :meth:`step` samples from.
    """

    nominal_perturbation: ClassVar[float | None] = None
    perturbation_grid: ClassVar[np.ndarray] = np.round(np.linspace(0.0, 1.0, 11), 10)
    action_vectors: ClassVar[np.ndarray] = ACTION_VECTORS

    def __init__(
        self,
        perturbation: float | None = None,
        delta: float = 0.3,
        xi_norm: float = 0.2,
        horizon: int = 3,
        render_mode: str | None = None,
    ) -> None:
        self.perturbation = _check_perturbation(perturbation)
        self.delta, self.xi_norm = _check_delta_xi(delta, xi_norm)
        model = simulated_linear_mdp(
            self.perturbation, self.delta, self.xi_norm, check_int(horizon, "horizon", low=1)
        )
        super().__init__(model, render_mode=render_mode, state_names=STATE_NAMES)

    def _model_for(self, perturbation) -> LinearMDP:
        q = _check_perturbation(perturbation)
        return simulated_linear_mdp(q, self.delta, self.xi_norm, self.horizon)

    @classmethod
    def nominal_model(cls, delta: float = 0.3, xi_norm: float = 0.2,
                      horizon: int = 3) -> LinearMDP:
        """The nominal model (``perturbation=None``) with the given parameters."""
        return simulated_linear_mdp(None, delta, xi_norm, horizon)
