"""DR-RPO regret: the bound as a function, the log-log slope of measured regret, and a check.

**What the bound is.** The DR-RPO paper (arXiv 2510.14246) could not be read beyond its abstract
(``docs/drrpo-notes.md``): it claims sublinear regret that "matches value-based approaches" but
its order and constants are unknown. :func:`regret_bound` therefore implements a
**reconstruction**, the order of the value-based DR-LSVI-UCB (Liu & Xu 2024;
docs/algorithms/lsvi_ucb.md, derived from the We-DRIVE-U abstract), with an explicit constant
choice:

    form="dr_lsvi_ucb" (default):  R(K) = C d^2 H^2 sqrt(K) iota,
    form="we_drive_u":             R(K) = C d H min(1/rho, H) sqrt(K) iota,
    iota = log(2 d H K / delta),   C = ``constant`` (default 1).

``iota`` follows the log factor of LSVI-UCB's regret bound (Jin et al. 2020, ``log(2dT/p)``
with ``T = HK`` steps). ``rho`` enters only the We-DRIVE-U form (the improved value-based
order, listed for comparison); ``tau`` does not enter either form (the reconstruction adds the
policy regulariser without changing the order). Both are accepted and validated so the
signature is the one the paper's bound would need.

What the experiments can check without the constants is the **rate**: cumulative regret grows
like ``sqrt(K)``, so the log-log slope of regret against episodes should be about 0.5 and in
any case below 1 (:func:`fit_loglog_slope`, :func:`check_regret`).

``robustrl verify-bounds drrpo`` (:mod:`robustrl._cli.verify_drrpo`, the CLI layer) runs
an online agent for many seeds on the simulated or the random linear MDP, prints ``R(K)``
against the bound and the fitted slope, and exits 1 unless the slope's interval lies below 1
and no seed exceeds the bound (``--quick`` for a small run, ``--constant`` scales the bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from robustrl.validation import check_array, check_int, check_scalar

__all__ = [
    "RegretCheck",
    "SlopeFit",
    "check_regret",
    "fit_loglog_slope",
    "log_spaced_episodes",
    "regret_bound",
]

_FORMS = ("dr_lsvi_ucb", "we_drive_u")


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
        form: ``"dr_lsvi_ucb"`` (default, ``d^2 H^2``) or ``"we_drive_u"``
            (``d H min(1/rho, H)``).
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
    else:
        if rho is None:
            raise ValueError("rho is required for form='we_drive_u' (its bound has min(1/rho, H))")
        scale = d * H * (H if rho == 0.0 else min(1.0 / rho, H))
    out = constant * scale * np.sqrt(k) * iota
    return float(out) if np.ndim(K) == 0 else out


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
        low, high: two-sided ``confidence`` interval of the mean slope (Student t over seeds;
            NaN with a single seed, since one curve's residuals are autocorrelated).
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


def fit_loglog_slope(episodes, cumulative_regret, *, confidence: float = 0.95) -> SlopeFit:
    """Fit ``log R(K) = a + b log K`` per seed and give ``b`` with a confidence interval.

    Args:
        episodes: ``(n,)`` increasing positive episode counts ``K`` (e.g. from
            :func:`log_spaced_episodes`), ``n >= 2``.
        cumulative_regret: ``(n_seeds, n)`` cumulative regret at those counts, or ``(n,)`` for
            one seed; every entry must be > 0 (drop the early counts where it is still 0).
        confidence: level of the interval, in (0, 1).
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
    x, Y = np.log(k), np.log(R)
    slopes, intercepts = _ols(x, Y)
    pooled, _ = _ols(x, np.log(R.mean(axis=0, keepdims=True)))
    mean = float(slopes.mean())
    n = slopes.shape[0]
    if n >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * slopes.std(ddof=1)
                     / np.sqrt(n))
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
        within_bound: no seed's regret exceeds the bound at any count.
    """

    fit: SlopeFit
    bound: np.ndarray
    max_ratio: float
    slope_below_one: bool
    within_bound: bool

    @property
    def passed(self) -> bool:
        return self.slope_below_one and self.within_bound


def check_regret(episodes, cumulative_regret, *, d: int, H: int, rho: float | None = None,
                 tau: float | None = None, delta: float = 0.05, confidence: float = 0.95,
                 form: str = "dr_lsvi_ucb", constant: float = 1.0) -> RegretCheck:
    """Measured regret against :func:`regret_bound` and the slope test (``verify-bounds``).

    Passes when the ``confidence`` interval of the log-log slope lies below 1 and no seed's
    cumulative regret exceeds the bound at any of the ``episodes`` counts.
    """
    fit = fit_loglog_slope(episodes, cumulative_regret, confidence=confidence)
    bound = np.asarray(regret_bound(d, H, fit.episodes, rho, tau, delta, form=form,
                                    constant=constant))
    R = np.atleast_2d(np.asarray(cumulative_regret, dtype=np.float64))
    ratio = R / bound[None, :]
    return RegretCheck(fit=fit, bound=bound, max_ratio=float(ratio.max()),
                       slope_below_one=fit.below_one, within_bound=bool(np.all(ratio <= 1.0)))


# --------------------------------------------------------------------------------------------
# robustrl verify-bounds drrpo

_AGENT_NAMES = ("DR-RPO", "DR-LSVI-UCB", "LSVI-UCB")
