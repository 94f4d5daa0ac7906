"""GLOW / H2O / HyGLOW guarantees as functions; the check behind ``robustrl verify-bounds glow``.

Source: Amortila, Foster, Jiang, Sekhari, Xie, "Harnessing Density Ratios for Online
Reinforcement Learning", ICLR 2024 (arXiv:2401.09681). The statements below were READ in the
paper's full text (a stored copy, found with the package's search tools); theorem numbers are
the paper's. The paper normalises returns, ``sum_h r_h in [0, 1]``; ``value_range`` rescales
for returns in ``[0, V_max]`` (regret and epsilon scale linearly with the return's range).

* **Theorem 3.1** (GLOW, mixture density-ratio realizability, Assumption 2.2'): with ``K = 1``
  and ``gamma = sqrt(C_cov / (T log(|F||W|/delta)))``,
  ``Reg(T) = O~(H sqrt(C_cov T log(|F||W|/delta)))`` and an epsilon-optimal uniform mixture
  after ``N = O~(H^2 C_cov log(|F||W|/delta) / eps^2)`` trajectories.
* **Theorem 3.2** (GLOW, pure-policy realizability, Assumption 2.2):
  ``N = O~(H^4 C_cov^2 log(|F||W|/delta) / eps^4)``.
* **Theorem 4.1** (H2O with a CC-bounded offline learner, ``a_gamma = a / gamma``,
  ``b_gamma = b gamma``, gamma tuned): ``Risk <= O~(H sqrt((C_star + C_cov) a b / T))``.
* **Corollary 4.1** (HyGLOW = H2O + MABO.CR):
  ``N = O~(H^2 (C_cov + C_star) log(|F||W|/delta) / eps^2)``.
* Algorithm 1's schedule: ``gamma_t = gamma t``, ``alpha_t = 8 / gamma_t``,
  ``beta_t = 36 gamma_t log(6 |F||W| T H / delta) / (K (t - 1))`` (:func:`paper_schedule`).

The paper states orders (``O~`` hides constants and polylog factors). To CHECK a run against
Theorem 3.1 this module uses an explicit instance that is OUR choice [RECON], built on the
paper's Eq. (10), ``Reg = O~(H (C_cov / gamma + gamma T log(|F||W|HT/delta)))``, balanced at the
optimal gamma, with the ``log T`` of the coverability potential lemma (Section 3.3) kept:

    Reg(T) <= c H V_max sqrt(C_cov T log(e T) log(|F||W| H T / delta)),     c = 1 by default.

A violation therefore says "this run exceeds the stated ORDER with constant c", not "the
paper's theorem is false": the paper gives no constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustrl.validation import check_int, check_positive, check_scalar

__all__ = [
    "GlowRegretCheck",
    "glow_regret_bound",
    "glow_sample_complexity",
    "h2o_risk_bound",
    "hyglow_sample_complexity",
    "paper_schedule",
    "run_glow_regret",
]


def _check_common(H, C_cov, log_term, value_range) -> tuple[int, float, float, float]:
    H = check_int(H, "H", low=1)
    C_cov = check_scalar(C_cov, "C_cov", low=1.0)  # C_cov >= 1 always (occupancies sum to 1)
    log_term = check_positive(log_term, "log_term")
    value_range = check_positive(value_range, "value_range")
    return H, C_cov, log_term, value_range


def glow_regret_bound(T, H: int, C_cov: float, log_term: float, *, constant: float = 1.0,
                      value_range: float = 1.0) -> np.ndarray | float:
    """Theorem 3.1's regret order in the explicit form of the module docstring.

    ``log_term`` is ``log(|F||W| H T / delta)`` (pass the value for the largest T, or compute
    it per T); ``T`` a positive int or an array of them (result has its shape). Increasing in
    ``T``, ``H``, ``C_cov``, ``log_term``, ``constant`` and ``value_range``.
    """
    H, C_cov, log_term, value_range = _check_common(H, C_cov, log_term, value_range)
    constant = check_positive(constant, "constant")
    T_arr = np.asarray(T)
    if T_arr.size == 0 or not np.issubdtype(T_arr.dtype, np.integer) or np.any(T_arr < 1):
        raise ValueError(f"T must be a positive integer or an array of them; got {T!r}")
    Tf = T_arr.astype(np.float64)
    out = constant * H * value_range * np.sqrt(C_cov * Tf * np.log(math.e * Tf) * log_term)
    return float(out) if out.ndim == 0 else out


def glow_sample_complexity(epsilon: float, H: int, C_cov: float, log_term: float, *,
                           realizability: str = "mixture", constant: float = 1.0,
                           value_range: float = 1.0) -> float:
    """Trajectories to an epsilon-optimal policy: Theorem 3.1 (``"mixture"``,
    ``H^2 C_cov L / eps^2``) or Theorem 3.2 (``"pure"``, ``H^4 C_cov^2 L / eps^4``), with
    ``L = log(|F||W|/delta)`` = ``log_term``, constants and polylogs set to ``constant``.

    Decreasing in ``epsilon``, increasing in the others. ``epsilon`` is on the return scale
    ``[0, value_range]``.
    """
    H, C_cov, log_term, value_range = _check_common(H, C_cov, log_term, value_range)
    epsilon = check_scalar(epsilon, "epsilon", low=0.0, low_inclusive=False)
    constant = check_positive(constant, "constant")
    eps = epsilon / value_range
    if realizability == "mixture":
        return constant * H**2 * C_cov * log_term / eps**2
    if realizability == "pure":
        return constant * H**4 * C_cov**2 * log_term / eps**4
    raise ValueError(f"realizability must be 'mixture' (Thm 3.1) or 'pure' (Thm 3.2); "
                     f"got {realizability!r}")


def hyglow_sample_complexity(epsilon: float, H: int, C_cov: float, C_star: float,
                             log_term: float, *, constant: float = 1.0,
                             value_range: float = 1.0) -> float:
    """Corollary 4.1: ``N = H^2 (C_cov + C_star) L / eps^2`` online trajectories (HyGLOW)."""
    H, C_cov, log_term, value_range = _check_common(H, C_cov, log_term, value_range)
    C_star = check_scalar(C_star, "C_star", low=1.0)
    epsilon = check_scalar(epsilon, "epsilon", low=0.0, low_inclusive=False)
    constant = check_positive(constant, "constant")
    return constant * H**2 * (C_cov + C_star) * log_term / (epsilon / value_range) ** 2


def h2o_risk_bound(T, H: int, C_cov: float, C_star: float, a: float, b: float, *,
                   constant: float = 1.0, value_range: float = 1.0) -> np.ndarray | float:
    """Theorem 4.1 with gamma tuned: ``Risk <= c H sqrt((C_star + C_cov) a b / T)``.

    ``a``, ``b``: the CC-boundedness scalars of the offline learner (Definition 4.3 with
    ``a_gamma = a / gamma``, ``b_gamma = b gamma``). Decreasing in ``T``.
    """
    H, C_cov, _, value_range = _check_common(H, C_cov, 1.0, value_range)
    C_star = check_scalar(C_star, "C_star", low=1.0)
    a = check_positive(a, "a")
    b = check_positive(b, "b")
    constant = check_positive(constant, "constant")
    T_arr = np.asarray(T)
    if T_arr.size == 0 or not np.issubdtype(T_arr.dtype, np.integer) or np.any(T_arr < 1):
        raise ValueError(f"T must be a positive integer or an array of them; got {T!r}")
    out = constant * H * value_range * np.sqrt((C_star + C_cov) * a * b / T_arr)
    return float(out) if out.ndim == 0 else out


def paper_schedule(t: int, T: int, H: int, K: int, n_F: int, n_W: float, delta: float,
                   gamma: float | None = None, C_cov: float | None = None
                   ) -> tuple[float, float, float]:
    """Algorithm 1, line 3: ``(alpha_t, beta_t, gamma_t)`` for round ``t >= 2``.

    ``gamma`` defaults to Theorem 3.1's ``sqrt(C_cov / (T log(|F||W|/delta)))`` (needs
    ``C_cov``). ``n_W`` may be a real covering number.
    """
    T = check_int(T, "T", low=2)
    t = check_int(t, "t", low=2, high=T)
    H = check_int(H, "H", low=1)
    K = check_int(K, "K", low=1)
    n_F = check_int(n_F, "n_F", low=1)
    n_W = check_scalar(n_W, "n_W", low=1.0)
    delta = check_scalar(delta, "delta", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
    if gamma is None:
        if C_cov is None:
            raise ValueError("C_cov is needed when gamma is None (Theorem 3.1's gamma)")
        C_cov = check_scalar(C_cov, "C_cov", low=1.0)
        gamma = math.sqrt(C_cov / (T * math.log(n_F * n_W / delta)))
    gamma = check_positive(gamma, "gamma")
    gamma_t = gamma * t
    beta_t = 36.0 * gamma_t * math.log(6.0 * n_F * n_W * T * H / delta) / (K * (t - 1))
    return 8.0 / gamma_t, beta_t, gamma_t


# ------------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class GlowRegretCheck:
    """Cumulative regret of GLOW over seeds against :func:`glow_regret_bound`."""

    rounds: np.ndarray  # (m,) the horizons T checked (one run of T rounds each)
    regret: np.ndarray  # (seeds, m) cumulative exact regret after T rounds
    bound: np.ndarray  # (m,)
    trivial: np.ndarray  # (m,) V_max * T: no policy sequence can do worse
    C_cov: float
    log_terms: np.ndarray  # (m,) log(|F||W| H T / delta) per T

    @property
    def mean_regret(self) -> np.ndarray:
        return self.regret.mean(axis=0)

    @property
    def passed(self) -> bool:
        """Mean regret over seeds within the bound at every T."""
        return bool(np.all(self.mean_regret <= self.bound))


def run_glow_regret(rounds=(10, 20, 40, 80), *, seeds: int = 5, horizon: int = 4,
                    n_states: int = 2, n_actions: int = 2, kappa: float = 0.01,
                    delta: float = 0.1, constant: float = 1.0, constants: str = "recon",
                    progress: bool = False) -> GlowRegretCheck:
    """GLOW (``F`` = Q* of all ``A^H`` codes, tabular ``W``, ``K = 1``) on the combination lock
    of code seed ``s`` for ``s < seeds``; one fresh run of ``T`` rounds per ``T`` (the
    schedules depend on ``T``). Regret is exact (``robustrl.exact``); ``C_cov`` is computed
    exactly (:func:`robustrl.theory.coverability.coverability_coefficient`). ``constants``:
    GLOW's schedule, ``"recon"`` (with ``kappa``) or ``"paper"`` (Algorithm 1)."""
    from robustrl.agents.glow import GLOW
    from robustrl.envs.combination_lock import combination_lock, combination_lock_value_class
    from robustrl.theory.coverability import coverability_coefficient

    rounds = np.asarray([check_int(T, "rounds", low=1) for T in np.atleast_1d(rounds)])
    seeds = check_int(seeds, "seeds", low=1)
    check_positive(constant, "constant")
    F = combination_lock_value_class(horizon, n_states, n_actions)
    C_cov = float(coverability_coefficient(combination_lock(horizon, n_states, n_actions, 0)))
    regret = np.zeros((seeds, len(rounds)))
    log_terms = np.zeros(len(rounds))
    it = range(seeds)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="GLOW seeds", unit="seed")
    for s in it:
        model = combination_lock(horizon, n_states, n_actions, seed=s)
        for j, T in enumerate(rounds):
            agent = GLOW(model, F, "tabular", kappa=kappa, delta=delta, seed=s,
                         coverability_guess=C_cov, constants=constants).learn(total_rounds=int(T))
            regret[s, j] = agent.regret_.sum()
            log_terms[j] = agent.log_term(int(T))
    bound = np.array([glow_regret_bound(int(T), horizon, C_cov, L, constant=constant)
                      for T, L in zip(rounds, log_terms, strict=True)])
    return GlowRegretCheck(rounds, regret, bound, rounds.astype(float), C_cov, log_terms)
