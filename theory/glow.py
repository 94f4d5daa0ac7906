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

The paper states orders (``O~`` hides constants and polylog factors). To CHECK a run this
module has two explicit instances of Theorem 3.1:

* :func:`glow_regret_bound_derived`: the theorem with every constant RE-DERIVED step by step
  (docs/algorithms/glow.md, "Theorem 3.1, re-derived": self-normalised ``Q*`` retention,
  Freedman, a ``log2`` coverability potential) for Algorithm 1's shape with any ``gamma``;
  ``GLOW(constants="derived")`` runs the schedule it is proved for. The check uses it.
  :func:`glow_regret_bound_augmented` is Theorem 3.2 (``W-bar``, ``K`` episodes per round)
  through the same derivation;
* :func:`glow_regret_bound_explicit`: the earlier explicit-constant form (looser; kept for
  comparison; neither form's constants are the paper's, whose proof we could not read);
* :func:`glow_regret_bound`, the order form built on the paper's Eq. (10),
  ``Reg = O~(H (C_cov / gamma + gamma T log(|F||W|HT/delta)))``, balanced at the optimal gamma,
  with the ``log T`` of the coverability potential lemma (Section 3.3) kept:
  ``c H V_max sqrt(C_cov T log(e T) log(|F||W| H T / delta))``, ``c = 1`` by default: a
  convention, not a theorem.

:func:`run_glow_regret` measures exact regret and reports, for each, the first ``T`` where it
is below the trivial bound (:func:`informative_from`), the seeds above it, and the log-log
slope with a bootstrap interval (:func:`bootstrap_loglog_slope`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustrl._glow_derived import (  # noqa: F401  (re-exported: the bound's constants)
    DERIVED_ALPHA_SCALE,
    FREEDMAN,
    RHO,
    RHO_SQ,
    _derived_parts,
    glow_derived_gamma,
)
from robustrl.validation import check_array, check_int, check_positive, check_scalar

__all__ = [
    "GlowRegretCheck",
    "bootstrap_loglog_slope",
    "glow_regret_bound",
    "augmented_log_class",
    "glow_derived_gamma",
    "glow_regret_bound_augmented",
    "glow_regret_bound_derived",
    "glow_regret_bound_explicit",
    "glow_sample_complexity",
    "h2o_risk_bound",
    "hyglow_sample_complexity",
    "informative_from",
    "lock_value_class",
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


def glow_regret_bound_explicit(T, H: int, C_cov: float, log_class: float, delta: float, *,
                               value_range: float = 1.0) -> np.ndarray | float:
    """Theorem 3.1 (arXiv:2401.09681) for Algorithm 1 with every constant explicit.

    The paper states the regret only as ``O~(H sqrt(C_cov T log(|F||W|/delta)))``; the
    constants below are DERIVED here (docs/algorithms/glow.md, "Theorem 3.1 with explicit
    constants"), from Algorithm 1's schedule (``alpha_t = 8 / gamma_t``, ``beta_t = 36 gamma_t
    l' / (t - 1)``, ``gamma_t = gamma t``, ``K = 1``) and Theorem 3.1's ``gamma``:

        l' = log(6 |F||W| T H / delta),  l0 = log(|F||W| / delta),  gamma = sqrt(C_cov / (T l0))
        P  = 2 C_cov + 4 C_cov log(1 + T) / gamma         (coverability potential, per step)
        Reg(T) <= V [1 + H ((287 / 6) gamma l' (T + log T) + 19 P)].

    ``log_class`` is ``log(|F||W|)``; ``T`` a positive number or an array (result has its
    shape); returns on ``[0, value_range]``.
    """
    H, C_cov, log_class, value_range = _check_common(H, C_cov, log_class, value_range)
    delta = check_scalar(delta, "delta", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
    T_arr = np.asarray(T, dtype=np.float64)
    if T_arr.size == 0 or np.any(~np.isfinite(T_arr)) or np.any(T_arr < 1):
        raise ValueError(f"T must be a number >= 1 or an array of them; got {T!r}")
    l_prime = log_class + np.log(6.0 * T_arr * H / delta)
    l0 = log_class + math.log(1.0 / delta)
    gamma = np.sqrt(C_cov / (T_arr * l0))
    potential = 2.0 * C_cov + 4.0 * C_cov * np.log1p(T_arr) / gamma
    out = value_range * (1.0 + H * (287.0 / 6.0 * gamma * l_prime * (T_arr + np.log(T_arr))
                                    + 19.0 * potential))
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------- Theorem 3.1, constants re-derived (tighter)
def glow_regret_bound_derived(T, H: int, C_cov: float, log_F: float, log_W: float | None,
                              delta: float, *, gamma: float | None = None,
                              alpha_scale: float = DERIVED_ALPHA_SCALE,
                              beta_scale: float | None = None,
                              tabular_entries: int | None = None,
                              episodes_per_round: int = 1,
                              value_range: float = 1.0) -> np.ndarray | float:
    """Theorem 3.1 of arXiv:2401.09681 with constants RE-DERIVED step by step in
    docs/algorithms/glow.md ("Theorem 3.1, re-derived"), for Algorithm 1 with ``K = 1``,
    ``gamma_t = gamma t``, ``alpha_t = a / gamma_t`` (``a = alpha_scale >= 1/2``) and
    ``beta_t = b gamma_t / (t - 1)`` (``b = beta_scale``, default and minimum ``2 l + s_Q``):

        l   = log(3 |F| |W| T H / delta)          (log_F = log|F|, log_W = log|W| per step)
        k   = a (1 + (e - 2)) + 4 (e - 2) / 3,   u = a + 3
        lin = (b + u l + s_f) (T - 1 + H_{T-1}),  pot = (k + 1) C_cov log2(1 + T / C_cov)
        Reg(T) <= V [1 + H (gamma lin + 2 (k + 1) C_cov + pot / gamma)].

    ``tabular_entries = S A`` (with ``log_W=None``) is the tabular class ``[0, gamma_t]^{S A}``
    per step through a grid of step ``gamma_t / (t - 1)``: ``log_W = S A log T``, slack
    ``s_Q = 1``, ``s_f = 2``; a finite ``W`` has ``s_Q = s_f = 0``. ``episodes_per_round = K``
    (``beta_t = b gamma_t / (K (t - 1))``): the regret over all ``T K`` episodes, with ``pot``,
    the burn-in and round 1 times ``K`` and ``log_W = S A log((T - 1) K + 1)`` for the
    tabular grid (docs/algorithms/glow.md, step 7). ``gamma=None`` takes the
    minimiser :func:`glow_derived_gamma` (the theorem's ``gamma`` up to constants; any fixed
    ``gamma`` the agent ran with gives a valid bound). Returns on ``[0, value_range]``.
    """
    value_range = check_positive(value_range, "value_range")
    T_arr, H, C_cov, lin, pot, k, K = _derived_parts(T, H, C_cov, log_F, log_W, delta,
                                                     alpha_scale, beta_scale, tabular_entries,
                                                     episodes_per_round)
    g = np.sqrt(pot / lin) if gamma is None else check_positive(gamma, "gamma")
    out = value_range * (K + H * (g * lin + 2.0 * K * (k + 1.0) * C_cov + pot / g))
    return float(out) if out.ndim == 0 else out


def augmented_log_class(T: int, n_F: int) -> float:
    """``log |W-bar|`` of Theorem 3.2's augmented class (arXiv:2401.09681): the harmonic means
    ``(t - 1) / sum_{i<t} 1 / w_i`` of ``t - 1 < T`` members of the pure-ratio class
    ``{d^{pi_f} / d^{pi_g}}`` (``n_F^2`` members): at most ``T n_F^{2 (T - 1)}`` functions,
    ``log T + 2 (T - 1) log n_F``."""
    T = check_int(T, "T", low=2)
    n_F = check_int(n_F, "n_F", low=1)
    return math.log(T) + 2.0 * (T - 1) * math.log(n_F)


def glow_regret_bound_augmented(T, K: int, H: int, C_cov: float, n_F: int, delta: float, *,
                                gamma: float | None = None,
                                value_range: float = 1.0) -> np.ndarray | float:
    """Theorem 3.2 (arXiv:2401.09681; pure-policy realizability, Assumption 2.2) through the
    re-derived Theorem 3.1 bound: GLOW run on ``W-bar`` (which realizes the mixture ratios
    exactly when the pure ratios are realized) with ``K`` episodes per round and the
    ``"derived"`` schedule, over all ``T K`` episodes; ``log|W| = augmented_log_class(T,
    n_F)``, ``|F| = n_F``. With ``K`` of order ``T log|W|`` this is the paper's
    ``N = O~(H^4 C_cov^2 log(|F||W|/delta) / eps^4)`` (docs/algorithms/glow.md)."""
    T_arr = np.asarray(T)
    if T_arr.size == 0 or not np.issubdtype(T_arr.dtype, np.integer) or np.any(T_arr < 2):
        raise ValueError(f"T must be an integer >= 2 or an array of them; got {T!r}")
    n_F = check_int(n_F, "n_F", low=1)
    out = np.array([glow_regret_bound_derived(
        int(t), H, C_cov, math.log(n_F), augmented_log_class(int(t), n_F), delta, gamma=gamma,
        episodes_per_round=K, value_range=value_range) for t in T_arr.ravel()])
    return float(out[0]) if T_arr.ndim == 0 else out.reshape(T_arr.shape)


def informative_from(bound, *, value_range: float = 1.0, limit: float = 1e30) -> float:
    """Smallest integer ``T`` with ``bound(T) < value_range * T`` (the trivial regret bound),
    searched by doubling then bisection; ``inf`` if none below ``limit``. ``bound`` maps an
    array of ``T`` to bounds and is assumed to grow slower than ``T`` eventually."""
    value_range = check_positive(value_range, "value_range")

    def below(T: float) -> bool:
        return bool(np.asarray(bound(np.array([T])))[0] < value_range * T)

    hi = 1.0
    while not below(hi):
        hi *= 2.0
        if hi > limit:
            return math.inf
    lo = max(1.0, hi / 2.0)
    if below(lo):
        return lo
    while hi - lo > 1.0:
        mid = math.floor((lo + hi) / 2.0)
        if mid in (lo, hi):  # beyond 2^53 floats no longer resolve integers
            break
        lo, hi = (lo, mid) if below(mid) else (mid, hi)
    return float(hi)


def bootstrap_loglog_slope(rounds, regret, *, confidence: float = 0.95, n_boot: int = 2000,
                           seed: int = 0) -> tuple[float, float, float]:
    """Slope of ``log(mean regret)`` against ``log T`` with a seed-bootstrap interval.

    ``regret``: ``(seeds, m)`` cumulative regret at ``rounds`` (``m >= 2``). Seeds are
    resampled with replacement ``n_boot`` times; a resample whose mean regret is 0 at some
    ``T`` (no regret at all) counts as slope 0. Returns ``(slope, low, high)``: the slope of the
    seed mean and the percentile interval at level ``confidence``.
    """
    x = np.log(np.asarray(rounds, dtype=np.float64))
    R = check_array(regret, "regret", ndim=2, low=0.0)
    if R.shape[1] != x.shape[0] or x.shape[0] < 2:
        raise ValueError(f"regret must have shape (seeds, {x.shape[0]}) with at least 2 "
                         f"rounds; got {R.shape}")
    confidence = check_scalar(confidence, "confidence", low=0.0, high=1.0, low_inclusive=False,
                              high_inclusive=False)
    n_boot = check_int(n_boot, "n_boot", low=10)
    xc = x - x.mean()

    def slopes(means: np.ndarray) -> np.ndarray:
        ok = np.all(means > 0, axis=1)
        y = np.log(np.where(means > 0, means, 1.0))
        return np.where(ok, (y - y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc), 0.0)

    rng = np.random.default_rng(seed)
    idx = rng.integers(R.shape[0], size=(n_boot, R.shape[0]))
    boot = slopes(R[idx].mean(axis=1))
    q = (1.0 - confidence) / 2.0
    return (float(slopes(R.mean(axis=0, keepdims=True))[0]),
            float(np.quantile(boot, q)), float(np.quantile(boot, 1.0 - q)))


# ------------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class GlowRegretCheck:
    """Cumulative regret of GLOW / HyGLOW over seeds against the Theorem 3.1 / Corollary 4.1
    bounds, with the slope test (:func:`run_glow_regret`)."""

    rounds: np.ndarray  # (m,) the horizons T checked (one run of T rounds each)
    regret: np.ndarray  # (seeds, m) cumulative exact regret after T rounds
    bound: np.ndarray  # (m,) explicit-constant bound (GLOW: glow_regret_bound_explicit)
    order_bound: np.ndarray  # (m,) c H sqrt(C T log(eT) L): the stated order with constant c
    trivial: np.ndarray  # (m,) V_max * T: no policy sequence can do worse
    C_cov: float
    log_terms: np.ndarray  # (m,) L = log(|F||W| H T / delta) per T
    delta: float
    C_star: float | None = None  # HyGLOW: single-policy concentrability of the offline data
    informative_T: float = math.inf  # smallest T where `bound` < trivial
    order_informative_T: float = math.inf  # the same for `order_bound`
    slope: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # (slope, low, high)
    exponent: float = 0.5  # the bound's own log-log slope over `rounds` (1/2 plus logs)
    agent: str = "GLOW"
    constants: str = "derived"  # the agent's schedule (the derived bound needs its shape)
    explicit_informative_T: float = math.inf  # the earlier explicit-constant form's T

    @property
    def mean_regret(self) -> np.ndarray:
        return self.regret.mean(axis=0)

    def seeds_over(self, bound: np.ndarray) -> float:
        """Fraction of seeds whose regret exceeds ``bound`` at some T."""
        return float(np.mean(np.any(self.regret > bound[None, :], axis=1)))

    @property
    def bound_ok(self) -> bool:
        """At most ``delta`` of the seeds exceed the explicit bound (and the order bound)."""
        return (self.seeds_over(self.bound) <= self.delta
                and self.seeds_over(self.order_bound) <= self.delta)

    @property
    def rate_ok(self) -> bool:
        """The slope interval does not lie wholly above the bound's exponent (with only one
        T there is no slope and this holds)."""
        return not (self.slope[1] > self.exponent)

    @property
    def passed(self) -> bool:
        return self.bound_ok and self.rate_ok

    def to_dict(self) -> dict:
        """JSON-ready summary (lists and floats)."""
        return {
            "agent": self.agent, "rounds": self.rounds.tolist(), "regret": self.regret.tolist(),
            "mean_regret": self.mean_regret.tolist(), "bound": self.bound.tolist(),
            "order_bound": self.order_bound.tolist(), "trivial": self.trivial.tolist(),
            "C_cov": self.C_cov, "C_star": self.C_star, "log_terms": self.log_terms.tolist(),
            "delta": self.delta, "informative_T": self.informative_T,
            "order_informative_T": self.order_informative_T,
            "explicit_informative_T": self.explicit_informative_T,
            "constants": self.constants,
            "seeds_over_bound": self.seeds_over(self.bound),
            "seeds_over_order_bound": self.seeds_over(self.order_bound),
            "slope": list(self.slope), "exponent": self.exponent,
            "bound_ok": self.bound_ok, "rate_ok": self.rate_ok, "passed": self.passed,
        }


def lock_value_class(horizon: int, n_states: int, n_actions: int) -> np.ndarray:
    """``F`` of the check: ``Q*`` of every lock code plus the all-zero table, which only
    optimism rules out (its initial value 0 is below every code's 1; an agent without
    optimism that keeps it never opens the lock)."""
    from robustrl.envs.combination_lock import combination_lock_value_class

    F = combination_lock_value_class(horizon, n_states, n_actions)
    return np.concatenate([F, np.zeros((1, *F.shape[1:]))])


def _broken(agent_cls):
    """The agent with its selection rule reversed (the deliberate bug the check must catch):
    GLOW picks the LEAST optimistic member of its confidence set (optimism off), HyGLOW the
    f that MAXIMISES its offline objective (sign error)."""
    from robustrl.agents.hyglow import HyGLOW

    if issubclass(agent_cls, HyGLOW):
        class BrokenHyGLOW(agent_cls):
            def offline_objective(self, t, total_rounds):
                return -super().offline_objective(t, total_rounds)
        return BrokenHyGLOW

    class PessimisticGLOW(agent_cls):
        def initial_values(self):
            return -super().initial_values()
    return PessimisticGLOW


def _pi_star_tuples(model, policy: np.ndarray, n_episodes: int, seed: int):
    """``n_episodes`` episodes of a deterministic ``(H, S)`` policy as flat offline arrays."""
    rng = np.random.default_rng(seed)
    H, S = model.horizon, model.n_states
    s = rng.choice(S, size=n_episodes, p=model.initial_distribution)
    cols = [[], [], [], [], []]
    for h in range(H):
        a = policy[h, s]
        cum = np.cumsum(model.P[h, s, a], axis=1)
        s2 = np.minimum((rng.random((n_episodes, 1)) > cum).sum(axis=1), S - 1)
        for c, v in zip(cols, (np.full(n_episodes, h), s, a, model.R[h, s, a], s2),
                        strict=True):
            c.append(v)
        s = s2
    # episode-major order, so that the first parts of D_off are whole early episodes
    out = [np.stack(c, axis=1).reshape(-1) for c in cols]
    return tuple(o.astype(np.int64) if i != 3 else o.astype(float) for i, o in enumerate(out))


def run_glow_regret(rounds=(10, 20, 40, 80), *, seeds: int = 5, horizon: int = 4,
                    n_states: int = 2, n_actions: int = 2, kappa: float = 0.01,
                    delta: float = 0.1, constant: float = 1.0, constants: str | None = None,
                    agent: str = "glow", broken: bool = False, confidence: float = 0.95,
                    progress: bool = False) -> GlowRegretCheck:
    """GLOW (or HyGLOW) with ``F`` = :func:`lock_value_class`, tabular ``W``, ``K = 1`` on the
    combination lock of code seed ``s`` for ``s < seeds``; one fresh run of ``T`` rounds per
    ``T`` (the schedules depend on ``T``). Regret is exact (``robustrl.exact``); ``C_cov`` is
    computed exactly (:func:`robustrl.theory.coverability.coverability_coefficient`).

    ``constants``: the agent's schedule: GLOW ``"derived"`` (default; the schedule
    :func:`glow_regret_bound_derived` is proved for), ``"paper"`` (Algorithm 1; the same bound
    with its ``alpha_t gamma_t = 8`` and radius) or ``"recon"`` (with ``kappa``; no bound
    covers its radius: ``bound`` is ``inf``); HyGLOW ``"recon"`` (default) or ``"paper"``.
    ``agent="hyglow"``: HyGLOW with ``T`` offline episodes of ``pi*`` (Algorithm 3: one per
    round, revealed progressively), ``C_star`` computed exactly; its explicit bound is the
    order form (Corollary 4.1 with ``C_star + C_cov``; no derived constants yet).
    ``broken=True`` reverses the agent's selection rule (:func:`_broken`).
    """
    from robustrl.agents.glow import GLOW, density_ratio, occupancy
    from robustrl.agents.hyglow import HyGLOW
    from robustrl.envs.combination_lock import combination_lock
    from robustrl.exact import robust_value_iteration
    from robustrl.theory.coverability import coverability_coefficient

    rounds = np.asarray([check_int(T, "rounds", low=1) for T in np.atleast_1d(rounds)])
    if np.any(np.diff(rounds) <= 0):
        raise ValueError(f"rounds must be strictly increasing; got {rounds.tolist()}")
    seeds = check_int(seeds, "seeds", low=1)
    check_positive(constant, "constant")
    if agent not in ("glow", "hyglow"):
        raise ValueError(f"agent must be 'glow' or 'hyglow'; got {agent!r}")
    cls = GLOW if agent == "glow" else HyGLOW
    if constants is None:
        constants = "derived" if agent == "glow" else "recon"
    if constants not in (("recon", "paper", "derived") if agent == "glow"
                         else ("recon", "paper")):
        raise ValueError(f"constants must be 'derived', 'paper' or 'recon' (GLOW), 'recon' or "
                         f"'paper' (HyGLOW); got {constants!r}")
    if broken:
        cls = _broken(cls)
    F = lock_value_class(horizon, n_states, n_actions)
    C_cov = float(coverability_coefficient(combination_lock(horizon, n_states, n_actions, 0)))
    regret = np.zeros((seeds, len(rounds)))
    log_terms = np.zeros(len(rounds))
    log_class = np.zeros(len(rounds))
    C_star = None
    it = range(seeds)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"{cls.__name__} seeds", unit="seed")
    for s in it:
        model = combination_lock(horizon, n_states, n_actions, seed=s)
        for j, T in enumerate(rounds):
            if agent == "glow":
                a = cls(model, F, "tabular", kappa=kappa, delta=delta, seed=s,
                        coverability_guess=C_cov, constants=constants)
            else:
                pi_star = robust_value_iteration(model).policy
                data = _pi_star_tuples(model, pi_star, int(T), seed=s)
                ratio = density_ratio(occupancy(model, pi_star), occupancy(model, pi_star))
                C_star = max(1.0, float(ratio.max()))  # behaviour = pi*: exactly 1
                a = cls(model, F, "tabular", data, delta=delta, seed=s,
                        coverability_guess=C_cov, concentrability_guess=C_star,
                        constants=constants)
            a.learn(total_rounds=int(T))
            regret[s, j] = a.regret_.sum()
            log_terms[j] = a.log_term(int(T))
            log_class[j] = a._log_class_sizes(int(T))
    C = C_cov if C_star is None else C_cov + C_star
    order = np.array([glow_regret_bound(int(T), horizon, C, L, constant=constant)
                      for T, L in zip(rounds, log_terms, strict=True)])
    # the log terms grow with T (the covering surrogate of the tabular W): evaluate them at
    # every T searched, on the last agent (its schedules are fixed by its hyperparameters)
    L_of = np.vectorize(lambda T: a.log_term(max(int(round(T)), 2)))
    order_from = informative_from(lambda T: constant * horizon * np.sqrt(
        C * T * np.log(math.e * T) * L_of(T)))
    derived_from = math.inf
    if agent == "glow" and constants in ("derived", "paper"):
        # the re-derived Theorem 3.1 for the schedule the agent ran (docs/algorithms/glow.md,
        # "Theorem 3.1, re-derived"): proved for Algorithm 1's shape with any gamma, alpha_t
        # gamma_t >= 1/2 and beta_t at least the Q*-retention radius
        bound = np.array([_derived_bound_of(a, int(T), C_cov, delta) for T in rounds])
        derived_from = informative_from(lambda T: np.array([
            _derived_bound_of(a, max(int(t), 2), C_cov, delta) for t in np.atleast_1d(T)]))
    elif agent == "glow":  # constants="recon": no proof covers its radius (kappa)
        bound = np.full(len(rounds), np.inf)
    else:
        bound = order
    bound_from = order_from if agent != "glow" else derived_from
    lc_of = np.vectorize(lambda T: a._log_class_sizes(max(int(round(T)), 2)))
    explicit_from = (informative_from(lambda T: np.array([glow_regret_bound_explicit(
        t, horizon, C_cov, float(lc_of(t)), delta) for t in np.atleast_1d(T)]))
        if agent == "glow" else math.inf)
    slope = (bootstrap_loglog_slope(rounds, regret, confidence=confidence)
             if len(rounds) >= 2 else (math.nan, math.nan, math.nan))
    x = np.log(rounds.astype(float))
    own = bound if np.all(np.isfinite(bound)) else order
    exponent = (float(np.polyfit(x, np.log(own), 1)[0]) if len(rounds) >= 2 else 0.5)
    return GlowRegretCheck(rounds, regret, bound, order, rounds.astype(float), C_cov, log_terms,
                           delta=delta, C_star=C_star, informative_T=bound_from,
                           order_informative_T=order_from, slope=slope, exponent=exponent,
                           agent=cls.__name__, constants=constants,
                           explicit_informative_T=explicit_from)


def _derived_bound_of(agent, T: int, C_cov: float, delta: float) -> float:
    """:func:`glow_regret_bound_derived` for the schedule a GLOW ``agent`` runs at ``T``
    (``constants`` ``"derived"`` or ``"paper"``; its own ``gamma``, ``alpha_t gamma_t`` and
    ``beta_t n_t / gamma_t``), with the true ``C_cov``."""
    alpha, beta, gamma_t = agent.schedule(2, T)  # every t has the same alpha_t gamma_t, ...
    tabular, K = agent.tabular_weights, agent.episodes_per_round
    return glow_regret_bound_derived(
        T, agent.horizon, C_cov, math.log(agent.value_class.shape[0]),
        None if tabular else agent._log_finite_W(T), delta,
        gamma=gamma_t / 2.0, alpha_scale=round(alpha * gamma_t, 12),
        beta_scale=beta * K / gamma_t, episodes_per_round=K,
        tabular_entries=agent.n_states * agent.n_actions if tabular else None)
