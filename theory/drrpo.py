"""DR-RPO regret: the bound as a function, the log-log slope of measured regret, and a check.

**What the bound is.** The DR-RPO paper (arXiv 2510.14246) could not be read beyond its abstract
(``docs/drrpo-notes.md``): it claims sublinear regret that "matches value-based approaches" but
its order and constants are unknown. :func:`regret_bound` therefore implements a
**reconstruction**, the order of the value-based DR-LSVI-UCB (Liu & Xu 2024; reference note
section 4, derived there from the We-DRIVE-U abstract), with an explicit constant choice:

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

Importing this module registers ``robustrl verify-bounds drrpo`` (:func:`verify_main`): it runs
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
    "verify_main",
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


def _verify_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="robustrl verify-bounds drrpo",
        description="Run an online agent for many seeds on a linear MDP with an exact model, "
                    "print the cumulative regret R(K) against regret_bound and the fitted "
                    "log-log slope; exit 1 unless the slope's CI lies below 1 and no seed "
                    "exceeds the bound.")
    parser.add_argument("--env", choices=("simulated", "random"), default="simulated",
                        help="simulated (d=4, H=3) or the random risky-or-safe MDP "
                             "(d=16, |A|=8, H=10) (default: simulated)")
    parser.add_argument("--agent", choices=_AGENT_NAMES, default="DR-RPO")
    parser.add_argument("--seeds", type=int, default=10, help="agent seeds 0..N-1 (default 10)")
    parser.add_argument("--episodes", type=int, default=1000, help="K (default 1000)")
    parser.add_argument("--start", type=int, default=10,
                        help="first episode count of the slope fit (default 10)")
    parser.add_argument("--points", type=int, default=15,
                        help="log-spaced episode counts in the fit (default 15)")
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--eta", type=float, default=2.0)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--form", choices=_FORMS, default="dr_lsvi_ucb")
    parser.add_argument("--constant", type=float, default=1.0,
                        help="the bound's constant C (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 5 seeds, 200 episodes, fit from K=5 (overrides "
                             "--seeds/--episodes/--start)")
    return parser


def verify_main(argv: list[str]) -> int:
    """``robustrl verify-bounds drrpo [options]``: measured regret against the reconstructed
    bound and the log-log slope test (:func:`check_regret`); ``--help`` lists the options."""
    from robustrl.experiments.drrpo_regret import agent_spec, env_factory

    parser = _verify_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.episodes, args.start = 5, 200, 5
    params = {"agent": args.agent, "rho": args.rho, "tau": args.tau, "eta": args.eta,
              "beta": args.beta}
    try:
        seeds = check_int(args.seeds, "--seeds", low=2)
        episodes = check_int(args.episodes, "--episodes", low=2)
        counts = log_spaced_episodes(episodes, check_int(args.points, "--points", low=2),
                                     start=check_int(args.start, "--start", low=1,
                                                     high=episodes))
        cls, hyper = agent_spec(params)
        # validate every hyperparameter and the bound's arguments before the long run
        cls(env_factory(args.env)(None), seed=0, **hyper)
        regret_bound(4, 3, 1, max(args.rho, 0.0), None, args.delta, form=args.form,
                     constant=args.constant)
        check_scalar(args.confidence, "--confidence", low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    make = env_factory(args.env)
    model = make(None).unwrapped.model
    from robustrl.agents import run_regret_curve

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        def tqdm(x, **_):
            return x
    curves = np.array([
        np.cumsum(run_regret_curve(cls, make, episodes, seed=s, hyperparams=hyper).regret)
        for s in tqdm(range(seeds), desc=f"{args.agent} seeds", unit="seed")
    ])
    R = curves[:, counts - 1]
    keep = np.all(R > 0.0, axis=0)
    if keep.sum() < 2:
        print("error: the cumulative regret is 0 for some seed at all but one episode count; "
              "nothing to fit (use more --episodes)")
        return 1
    counts, R = counts[keep], R[:, keep]
    uses_rho = args.agent != "LSVI-UCB"
    result = check_regret(counts, R, d=model.feature_dim, H=model.horizon,
                          rho=args.rho if uses_rho else 0.0,
                          tau=args.tau if args.agent == "DR-RPO" else None, delta=args.delta,
                          confidence=args.confidence, form=args.form, constant=args.constant)
    print(f"{args.agent} on the {args.env} linear MDP (d={model.feature_dim}, "
          f"H={model.horizon}, |A|={model.n_actions}), {seeds} seeds x {episodes} episodes")
    print(f"bound: form={args.form}, C={args.constant:g}, delta={args.delta:g}")
    print(f"{'K':>7}{'mean R(K)':>12}{'max R(K)':>12}{'bound(K)':>14}{'max ratio':>12}")
    for j, k in enumerate(result.fit.episodes):
        print(f"{k:>7d}{R[:, j].mean():>12.4f}{R[:, j].max():>12.4f}{result.bound[j]:>14.4g}"
              f"{R[:, j].max() / result.bound[j]:>12.3g}")
    fit = result.fit
    print(f"log-log slope {fit.slope:.3f}, {fit.confidence:.0%} CI ({fit.low:.3f}, "
          f"{fit.high:.3f}) over {fit.n_seeds} seeds; slope of the mean curve "
          f"{fit.pooled_slope:.3f}")
    print(f"slope below 1 with confidence: {'yes' if result.slope_below_one else 'NO'}; "
          f"regret within the bound: {'yes' if result.within_bound else 'NO'} "
          f"(max ratio {result.max_ratio:.3g})")
    print("PASS" if result.passed else "FAIL")
    return 0 if result.passed else 1


def _register() -> None:
    from robustrl.runner import register_bound_check

    register_bound_check("drrpo", verify_main,
                         description="DR-RPO regret vs the reconstructed bound and the "
                                     "log-log slope test (--quick for a small run)")


_register()
