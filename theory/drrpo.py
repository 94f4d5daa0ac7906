"""DR-RPO regret: the bound as a function, the log-log slope of measured regret, and a check.

**What the bound is.** The DR-RPO paper (arXiv 2510.14246) could not be read beyond its abstract
(``docs/drrpo-notes.md``): it claims sublinear regret that "matches value-based approaches",
but its theorem (order and constants) is not available. :func:`regret_bound` therefore gives
clearly named **reconstructions**, each the order of a published theorem whose abstract we read,
with the absolute constant ``C`` left explicit because none of those sources states it:

    form="dr_lsvi_ucb" (default):  R(K) = C d^2 H^2 sqrt(K) iota
        the value-based DR-LSVI-UCB (Liu & Xu 2024, arXiv:2402.03479; its order as restated
        by the We-DRIVE-U abstract, docs/algorithms/lsvi_ucb.md): the order DR-RPO's abstract
        says it matches;
    form="we_drive_u":             R(K) = C d H min(1/rho, H) sqrt(K) iota
        the improved value-based order of We-DRIVE-U (listed for comparison);
    form="oppo":                   R(K) = C sqrt(d^2 H^3 T) iota = C d H^2 sqrt(K) iota
        OPPO's regret as the abstract of Cai et al. 2020 (arXiv:1912.05830) states it
        (``T = H K`` steps): the non-robust policy optimiser the reconstruction extends;
    iota = log(2 d H K / delta),   C = ``constant`` (default 1, **not sourced**).

``iota`` follows the log factor of LSVI-UCB's regret bound (Jin et al. 2020, ``log(2dT/p)``
with ``T = HK`` steps). ``tau`` does not enter (the reconstruction adds the policy regulariser
without changing the order). With ``C = 1`` every form lies above the **trivial bound**
:func:`trivial_bound` ``K H (1 + tau log|A|)`` (per-episode regret of a regularised objective
with values in ``[-tau H log|A|, H]``, uniform ``pi_ref``) until ``K`` is very large
(:func:`informative_episodes`: 5.3e5 episodes for the simulated MDP, ``d = 4, H = 3, |A| = 16,
tau = 0.1``, and 4.3e9 for the random one, ``d = 16, H = 10``), so the bound test cannot fail in
a run this package can afford on 2 cores (the DR-LSVI-UCB baseline takes about 90 s per 5000
episodes on the random MDP): ``robustrl verify-bounds drrpo`` prints that
size and makes the **rate** the informative part.

**The rate check.** Every form is ``O~(sqrt(K))``, so on the late part of a run (default
``K >= K_max / 10``: the bound constrains the growth, not the burn-in) the log-log slope of the
cumulative regret should not exceed 1/2. :func:`fit_loglog_slope` fits it per seed and gives a
confidence interval of the mean slope over seeds (Student t, or a seeded percentile bootstrap,
``scipy.stats.bootstrap``); :func:`check_regret` fails when that interval lies entirely above
the exponent (the side that contradicts the theorem; a slope below 1/2 only means the run
converged faster) or when more than a fraction ``delta`` of the seeds exceeds the bound.
A learner without optimism that locks onto a wrong action has slope about 1 and fails.

``robustrl verify-bounds drrpo`` (:mod:`robustrl._cli.verify_drrpo`, the CLI layer) runs the
check and writes a table, a log-log figure and a JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from robustrl.stats import student_t_halfwidth
from robustrl.validation import check_array, check_int, check_scalar

__all__ = [
    "RegretCheck",
    "SlopeFit",
    "check_regret",
    "fit_loglog_slope",
    "informative_episodes",
    "log_spaced_episodes",
    "regret_bound",
    "trivial_bound",
]

_FORMS = ("dr_lsvi_ucb", "we_drive_u", "oppo")
_INTERVALS = ("t", "bootstrap")


def _check_episodes(K, name: str = "K") -> np.ndarray:
    arr = np.asarray(K)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold positive integers (episode counts); got {K!r}")
    if arr.size == 0 or np.any(arr < 1):
        raise ValueError(f"{name} must hold positive integers (episode counts); got {K!r}")
    return arr.astype(np.float64)


def regret_bound(d: int, H: int, K, rho: float | None = None, tau: float | None = None,
                 delta: float = 0.05, *, form: str = "dr_lsvi_ucb",
                 constant: float = 1.0) -> float | np.ndarray:
    """Reconstructed high-probability regret bound after ``K`` episodes (module docstring).

    Args:
        d: feature dimension (>= 1). H: horizon (>= 1).
        K: number of episodes, an integer or an array of them (the result has its shape).
        rho: uncertainty radius (>= 0); required by ``form="we_drive_u"`` (``rho = 0`` gives
            ``min(1/rho, H) = H``), ignored by ``"dr_lsvi_ucb"``.
        tau: policy-regulariser temperature (> 0) or None; does not enter (see above).
        delta: failure probability in (0, 1).
        form: ``"dr_lsvi_ucb"`` (default, ``d^2 H^2``), ``"we_drive_u"``
            (``d H min(1/rho, H)``) or ``"oppo"`` (``d H^2``).
        constant: the constant ``C > 0``.
    """
    d = check_int(d, "d", low=1)
    H = check_int(H, "H", low=1)
    k = _check_episodes(K)
    delta = check_scalar(delta, "delta", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
    constant = check_scalar(constant, "constant", low=0.0, low_inclusive=False)
    if tau is not None:
        check_scalar(tau, "tau", low=0.0, low_inclusive=False)
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}; got {form!r}")
    if rho is not None:
        rho = check_scalar(rho, "rho", low=0.0)
    iota = np.log(2.0 * d * H * k / delta)
    if form == "dr_lsvi_ucb":
        scale = d**2 * H**2
    elif form == "oppo":
        scale = d * H**2  # sqrt(d^2 H^3 T) with T = H K
    else:
        if rho is None:
            raise ValueError("rho is required for form='we_drive_u' (its bound has min(1/rho, H))")
        scale = d * H * (H if rho == 0.0 else min(1.0 / rho, H))
    out = constant * scale * np.sqrt(k) * iota
    return float(out) if np.ndim(K) == 0 else out


def trivial_bound(K, H: int, tau: float = 0.0, n_actions: int = 1) -> float | np.ndarray:
    """``K H (1 + tau log|A|)``: no policy's regret can exceed it (rewards in ``[0, 1]``, the
    reference-policy KL at most ``log|A|`` per step for a uniform ``pi_ref``)."""
    H = check_int(H, "H", low=1)
    tau = check_scalar(tau, "tau", low=0.0)
    n_actions = check_int(n_actions, "n_actions", low=1)
    out = _check_episodes(K) * H * (1.0 + tau * np.log(n_actions))
    return float(out) if np.ndim(K) == 0 else out


def informative_episodes(d: int, H: int, rho: float | None = None, tau: float = 0.0,
                         n_actions: int = 1, delta: float = 0.05, *, form: str = "dr_lsvi_ucb",
                         constant: float = 1.0, k_max: float = 1e18) -> int | None:
    """Smallest ``K`` with ``regret_bound(K) < trivial_bound(K)`` (the bound says something),
    or None beyond ``k_max``. ``bound / trivial`` falls like ``iota / sqrt(K)`` for large
    ``K``, so doubling then bisection finds the crossing."""
    def below(k: int) -> bool:
        return regret_bound(d, H, k, rho, None, delta, form=form, constant=constant) < (
            trivial_bound(k, H, tau, n_actions))

    lo, hi = 1, 1
    while not below(hi):
        lo, hi = hi, 2 * hi
        if hi > k_max:
            return None
    if hi == 1:
        return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if below(mid) else (mid, hi)
    return hi


def log_spaced_episodes(n_episodes: int, n_points: int = 20, start: int = 1) -> np.ndarray:
    """Up to ``n_points`` distinct episode counts in ``[start, n_episodes]``, evenly spaced in
    ``log K`` (so a log-log fit weighs every decade alike), always including both ends."""
    n_episodes = check_int(n_episodes, "n_episodes", low=1)
    n_points = check_int(n_points, "n_points", low=2)
    start = check_int(start, "start", low=1, high=n_episodes)
    grid = np.geomspace(start, n_episodes, n_points)
    return np.unique(np.round(grid).astype(np.int64))


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares slope of ``log R(K)`` against ``log K``.

    Attributes:
        slope: mean of the per-seed slopes.
        low, high: two-sided ``confidence`` interval of the mean slope over seeds (Student t,
            or percentile bootstrap; NaN with a single seed, since one curve's residuals are
            autocorrelated).
        confidence: the interval's level.
        per_seed: slope of every seed's curve.
        pooled_slope: slope of the seed-averaged curve.
        intercept: mean per-seed intercept (``log R ~ intercept + slope log K``).
        episodes: the episode counts used.
    """

    slope: float
    low: float
    high: float
    confidence: float
    per_seed: np.ndarray
    pooled_slope: float
    intercept: float
    episodes: np.ndarray

    @property
    def n_seeds(self) -> int:
        return int(self.per_seed.shape[0])

    @property
    def below_one(self) -> bool:
        """True when the whole confidence interval lies below 1 (sublinear with confidence)."""
        return bool(np.isfinite(self.high) and self.high < 1.0)


def _ols(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of each row of ``Y`` regressed on ``x``."""
    xc = x - x.mean()
    slopes = (Y - Y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    return slopes, Y.mean(axis=1) - slopes * x.mean()


def fit_loglog_slope(episodes, cumulative_regret, *, confidence: float = 0.95,
                     interval: str = "t", n_resamples: int = 9999, seed: int = 0) -> SlopeFit:
    """Fit ``log R(K) = a + b log K`` per seed and give ``b`` with a confidence interval.

    Args:
        episodes: ``(n,)`` increasing positive episode counts ``K`` (e.g. from
            :func:`log_spaced_episodes`), ``n >= 2``.
        cumulative_regret: ``(n_seeds, n)`` cumulative regret at those counts, or ``(n,)`` for
            one seed; every entry must be > 0 (drop the early counts where it is still 0).
        confidence: level of the interval, in (0, 1).
        interval: ``"t"`` (Student t over seeds) or ``"bootstrap"`` (percentile bootstrap of the
            mean over seeds, ``n_resamples`` resamples, seeded by ``seed``).
    """
    k = _check_episodes(episodes, "episodes")
    if k.ndim != 1 or k.shape[0] < 2 or np.any(np.diff(k) <= 0):
        raise ValueError("episodes must be a 1-D strictly increasing array of at least 2 "
                         f"episode counts; got {episodes!r}")
    R = check_array(cumulative_regret, "cumulative_regret", ndim=(1, 2))
    R = R.reshape(1, -1) if R.ndim == 1 else R
    if R.shape[1] != k.shape[0]:
        raise ValueError(f"cumulative_regret must have {k.shape[0]} columns (one per episode "
                         f"count); got shape {R.shape}")
    if np.any(R <= 0.0):
        raise ValueError("cumulative_regret must be > 0 at every episode count used (log "
                         f"scale); found minimum {R.min():g}: start the episode counts later")
    confidence = check_scalar(confidence, "confidence", low=0.0, high=1.0,
                              low_inclusive=False, high_inclusive=False)
    if interval not in _INTERVALS:
        raise ValueError(f"interval must be one of {_INTERVALS}; got {interval!r}")
    n_resamples = check_int(n_resamples, "n_resamples", low=100)
    x, Y = np.log(k), np.log(R)
    slopes, intercepts = _ols(x, Y)
    pooled, _ = _ols(x, np.log(R.mean(axis=0, keepdims=True)))
    mean = float(slopes.mean())
    n = slopes.shape[0]
    if n >= 2 and interval == "bootstrap":
        if np.ptp(slopes) == 0.0:  # every resample has the same mean
            low = high = mean
        else:
            res = stats.bootstrap((slopes,), np.mean, confidence_level=confidence,
                                  n_resamples=n_resamples, method="percentile",
                                  random_state=np.random.default_rng(seed))
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    elif n >= 2:
        half = student_t_halfwidth(slopes, confidence=confidence)
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    return SlopeFit(slope=mean, low=low, high=high, confidence=confidence, per_seed=slopes,
                    pooled_slope=float(pooled[0]), intercept=float(intercepts.mean()),
                    episodes=k.astype(np.int64))


@dataclass(frozen=True)
class RegretCheck:
    """Outcome of :func:`check_regret`.

    Attributes:
        fit: the log-log slope fit.
        bound: the bound at each episode count, ``(n,)``.
        max_ratio: largest ``R(K) / bound(K)`` over seeds and counts.
        slope_below_one: the slope's confidence interval lies below 1.
        exceed_fraction: fraction of seeds whose regret exceeds the bound at some count.
        within_bound: ``exceed_fraction <= delta``.
        exponent: the theorem's exponent of ``K`` (1/2).
        rate_ok: the slope's interval does not lie entirely above ``exponent``.
    """

    fit: SlopeFit
    bound: np.ndarray
    max_ratio: float
    slope_below_one: bool
    within_bound: bool
    exceed_fraction: float = 0.0
    exponent: float = 0.5
    rate_ok: bool = True

    @property
    def passed(self) -> bool:
        """The regret respects the bound (up to ``delta`` of the seeds) and its rate is not
        shown to exceed ``K^exponent``."""
        return self.within_bound and self.rate_ok


def check_regret(episodes, cumulative_regret, *, d: int, H: int, rho: float | None = None,
                 tau: float | None = None, delta: float = 0.05, confidence: float = 0.95,
                 form: str = "dr_lsvi_ucb", constant: float = 1.0, exponent: float = 0.5,
                 interval: str = "t", n_resamples: int = 9999, seed: int = 0) -> RegretCheck:
    """Measured regret against :func:`regret_bound` and the rate test (``verify-bounds``).

    Fails when more than a fraction ``delta`` of the seeds exceeds the bound at some count
    (the bound holds with probability ``1 - delta``), or when the ``confidence`` interval of the
    log-log slope (``interval``, see :func:`fit_loglog_slope`) lies entirely above
    ``exponent``: regret growing faster than ``K^exponent`` contradicts every form.
    """
    exponent = check_scalar(exponent, "exponent", low=0.0, high=1.0)
    fit = fit_loglog_slope(episodes, cumulative_regret, confidence=confidence,
                           interval=interval, n_resamples=n_resamples, seed=seed)
    bound = np.asarray(regret_bound(d, H, fit.episodes, rho, tau, delta, form=form,
                                    constant=constant))
    R = np.atleast_2d(np.asarray(cumulative_regret, dtype=np.float64))
    ratio = R / bound[None, :]
    exceed = float(np.mean(np.any(ratio > 1.0, axis=1)))
    rate_ok = not (np.isfinite(fit.low) and fit.low > exponent)
    return RegretCheck(fit=fit, bound=bound, max_ratio=float(ratio.max()),
                       slope_below_one=fit.below_one, within_bound=exceed <= delta,
                       exceed_fraction=exceed, exponent=exponent, rate_ok=bool(rate_ok))


# --------------------------------------------------------------------------------------------
# robustrl verify-bounds drrpo

_AGENT_NAMES = ("DR-RPO", "DR-RPO-old", "DR-LSVI-UCB", "LSVI-UCB", "OPPO")
