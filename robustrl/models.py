"""Known models: finite-horizon tabular MDPs and d-rectangular linear MDPs.

These are the objects the exact robust DP solver (:mod:`robustrl.exact`) works on and that
environments with a known model expose (``env.unwrapped.model``). Steps are 0-indexed in code:
``h = 0 .. H-1`` corresponds to the papers' ``h = 1 .. H``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustrl.validation import check_array, check_distribution


@dataclass(frozen=True)
class FiniteMDP:
    """Finite-horizon MDP with time-dependent kernel and rewards.

    Attributes:
        P: transition kernel, shape ``(H, S, A, S)``; ``P[h, s, a]`` is a distribution over s'.
        R: expected rewards, shape ``(H, S, A)``.
        initial_distribution: distribution of the first state, shape ``(S,)``.
    """

    P: np.ndarray
    R: np.ndarray
    initial_distribution: np.ndarray

    def __post_init__(self) -> None:
        P = check_distribution(check_array(self.P, "P", ndim=4), "P", axis=-1)
        H, S, A, S2 = P.shape
        if S2 != S:
            raise ValueError(f"P must have shape (H, S, A, S); got {P.shape}")
        R = check_array(self.R, "R", shape=(H, S, A))
        mu0 = check_distribution(check_array(self.initial_distribution,
                                             "initial_distribution", shape=(S,)),
                                 "initial_distribution")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "initial_distribution", mu0)

    @property
    def horizon(self) -> int:
        return self.P.shape[0]

    @property
    def n_states(self) -> int:
        return self.P.shape[1]

    @property
    def n_actions(self) -> int:
        return self.P.shape[2]

    def with_kernel(self, P: np.ndarray) -> FiniteMDP:
        """The same rewards and initial distribution under another kernel ``P``."""
        return FiniteMDP(P, self.R, self.initial_distribution)


@dataclass(frozen=True)
class LinearMDP:
    """d-rectangular linear MDP with known factors.

    ``P_h(s'|s,a) = sum_i phi[s,a,i] * mu[h,i,s']`` and ``r_h(s,a) = phi[s,a] @ theta[h]``.
    Features lie on the probability simplex (``phi >= 0``, rows sum to 1) and each factor
    ``mu[h, i]`` is a distribution over states, as the d-rectangular setting requires.

    Attributes:
        phi: features, shape ``(S, A, d)``.
        mu: factor distributions, shape ``(H, d, S)``.
        theta: reward weights, shape ``(H, d)``.
        initial_distribution: shape ``(S,)``.
    """

    phi: np.ndarray
    mu: np.ndarray
    theta: np.ndarray
    initial_distribution: np.ndarray

    def __post_init__(self) -> None:
        phi = check_distribution(check_array(self.phi, "phi", ndim=3), "phi", axis=-1)
        S, A, d = phi.shape
        mu = check_array(self.mu, "mu", shape=(None, d, S))
        mu = check_distribution(mu, "mu", axis=-1)
        H = mu.shape[0]
        theta = check_array(self.theta, "theta", shape=(H, d))
        init = check_distribution(
            check_array(self.initial_distribution, "initial_distribution", shape=(S,)),
            "initial_distribution",
        )
        object.__setattr__(self, "phi", phi)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "initial_distribution", init)

    @property
    def horizon(self) -> int:
        return self.mu.shape[0]

    @property
    def n_states(self) -> int:
        return self.phi.shape[0]

    @property
    def n_actions(self) -> int:
        return self.phi.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.phi.shape[2]

    @property
    def R(self) -> np.ndarray:
        """Expected rewards, shape ``(H, S, A)``."""
        return np.einsum("sad,hd->hsa", self.phi, self.theta)

    @property
    def P(self) -> np.ndarray:
        """Transition kernel, shape ``(H, S, A, S)``."""
        return np.einsum("sad,hdt->hsat", self.phi, self.mu)

    def to_finite(self) -> FiniteMDP:
        """The same MDP as a tabular :class:`FiniteMDP` (loses the factor structure)."""
        return FiniteMDP(self.P, self.R, self.initial_distribution)

    def with_factors(self, mu: np.ndarray) -> LinearMDP:
        """The same features and rewards with other factor distributions ``mu``."""
        return LinearMDP(self.phi, mu, self.theta, self.initial_distribution)
