"""Neural robust targets: per-(s, a) regressions that replace R2PVI's per-factor duals.

R2PVI (arXiv:2411.18612, docs/algorithms/r2pvi.md) turns next-state values ``V`` into the
regularised inner value
``I_lam[V; mu] = inf_mu E_mu[V] + lam D(mu || mu0)`` of each factor through ridge regressions of
fixed transforms of ``V``. The neural agents regress the same transforms on ``(s, a)`` with a
network and apply the same outer map to the prediction ``g(s, a) ~ E[y(V(s')) | s, a]``
(``robustrl.agents.r2pvi.R2PVI._estimate`` term by term):

* TV: ``y = min(V, v_min + lam)``; value ``= g`` (``v_min``: the data's smallest value, or given);
* KL: ``y = exp(-(V - m) / lam)`` with ``m = min V`` (the linear agent's underflow shift); value
  ``= m - lam log clip(g, exp(-(v_max - m) / lam), 1)``, so it lies in ``[m, v_max]``. The network
  outputs ``u = log g`` and is trained on ``t = log y = -(V - m) / lam`` with the exponential
  Bregman loss ``exp(t - u) - (t - u) - 1`` (:func:`head_loss`), whose minimiser is still
  ``u = log E[exp(t) | s, a]``, i.e. ``g`` is the regression of ``y``; unlike a squared loss on
  ``y`` itself it is exact in relative terms, so ``y`` values of ``1e-9`` (value ranges much wider
  than ``lam``) are fitted as well as values near 1;
* chi2: ``y = (min(V, alpha_j), min(V, alpha_j)^2)`` on a grid ``alpha_1 < ... < alpha_M`` that
  spans ``[min V, max V]`` (every distinct value when there are at most ``M``); value
  ``= max_alpha z1(alpha) - (z2(alpha) - z1(alpha)^2) / (4 lam)``, maximised over the grid points
  and, inside each grid segment, at the stationary point of the piecewise-quadratic objective
  (``z1`` linear and ``z2`` quadratic with the common slope ``B`` between grid points). When
  the grid holds every distinct value of ``V`` this is the exact sorted-segment maximisation of
  :func:`robustrl._kernels.offline.chi2_regularized_rows`;
* ``None`` (non-robust fitted Q-iteration): ``y = V``, value ``= g``.

With one-hot features the per-(s, a) and per-factor forms coincide; with mixed features the
per-(s, a) dual is the (s, a)-rectangular value, which is at most the d-rectangular one (joint
convexity of f-divergences), see docs/algorithms/neural.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from robustrl.validation import check_array, check_divergence, check_int, check_positive

__all__ = ["DualStats", "fit_stats", "head_loss", "regression_targets", "robust_value"]


@dataclass
class DualStats:
    """The constants that fix one regression problem's targets and outer map.

    ``divergence`` is ``"tv"``, ``"kl"``, ``"chi2"`` or ``None`` (plain expectation).
    """

    divergence: str | None
    lam: float
    v_min: float
    v_max: float
    shift: float
    alphas: list[float] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        """Number of regressed quantities per ``(s, a)``."""
        return 2 * len(self.alphas) if self.divergence == "chi2" else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DualStats:
        return cls(**d)


def fit_stats(values, divergence: str | None, lam: float = 1.0, *, v_min="data",
              n_alpha: int = 32) -> DualStats:
    """The :class:`DualStats` of next-state values ``values (n,)``.

    ``v_min`` (TV): ``"data"`` = ``min(values)`` (the R2PVI authors' code's choice,
    docs/algorithms/r2pvi.md) or a
    number <= min(values) (the minimum over all states). ``n_alpha`` (chi2): grid size M >= 2.
    """
    v = check_array(np.asarray(values, dtype=np.float64), "values", ndim=1)
    if v.size == 0:
        raise ValueError("values must hold at least one next-state value; got none")
    if divergence is not None:
        divergence = check_divergence(divergence)
    lam = check_positive(lam, "lam")
    lo, hi = float(v.min()), float(v.max())
    if isinstance(v_min, str):
        if v_min != "data":
            raise ValueError(f"v_min must be 'data' or a finite number; got {v_min!r}")
        vm = lo
    else:
        vm = float(v_min)
        if not np.isfinite(vm) or vm > lo + 1e-12:
            raise ValueError(
                f"v_min must be a finite number <= the smallest value {lo:g}; got {v_min!r}"
            )
    alphas: list[float] = []
    if divergence == "chi2":
        m = check_int(n_alpha, "n_alpha", low=2)
        uniq = np.unique(v)
        if uniq.size <= m:
            grid = np.concatenate([uniq, np.full(m - uniq.size, hi)])
        else:
            grid = np.quantile(v, np.linspace(0.0, 1.0, m))
            grid[0], grid[-1] = lo, hi
        alphas = [float(a) for a in np.maximum.accumulate(grid)]
    return DualStats(divergence, lam, vm, hi, lo, alphas)


def regression_targets(values: torch.Tensor, stats: DualStats) -> torch.Tensor:
    """The regression targets ``y(V)``, shape ``(n, stats.n_outputs)`` (KL: ``log y``)."""
    v = values.reshape(-1, 1)
    if stats.divergence is None:
        return v.clone()
    if stats.divergence == "tv":
        return torch.clamp(v, max=stats.v_min + stats.lam)
    if stats.divergence == "kl":
        return -(v - stats.shift) / stats.lam
    alphas = torch.as_tensor(stats.alphas, dtype=v.dtype, device=v.device)
    w = torch.minimum(v, alphas)
    return torch.cat([w, w * w], dim=1)


def robust_value(pred: torch.Tensor, stats: DualStats) -> torch.Tensor:
    """The robust target from the regression prediction ``pred (..., n_outputs)``: ``(...)``."""
    if stats.divergence is None or stats.divergence == "tv":
        return pred[..., 0]
    lam = stats.lam
    if stats.divergence == "kl":
        log_floor = -(stats.v_max - stats.shift) / lam
        return stats.shift - lam * torch.clamp(pred[..., 0], min=log_floor, max=0.0)
    return _chi2_value(pred, stats.alphas, lam)


def log_mean_columns(stats: DualStats | None) -> list[bool]:
    """Which of the regressed columns hold a log-mean (the KL head)."""
    if stats is None:
        return []
    return [stats.divergence == "kl"] * stats.n_outputs


def head_loss(out: torch.Tensor, y: torch.Tensor, scale: torch.Tensor,
              log_mask: torch.Tensor | None) -> torch.Tensor:
    """Elementwise loss between normalised outputs and targets (``(..., k)``).

    Squared error, except in the ``log_mask`` columns: there ``2 (exp(d) - d - 1) / scale^2``
    with ``d = scale (y - out)`` the gap in original log units, whose minimiser over ``out`` is
    ``log E[exp(target)]`` (and which is ``~ (y - out)^2`` near the optimum). ``d`` is capped at
    30 so that one far outlier cannot overflow float32.
    """
    err = out - y
    sq = err * err
    if log_mask is None or not bool(log_mask.any()):
        return sq
    d = torch.clamp((y - out) * scale, max=30.0)
    breg = 2.0 * (torch.exp(d) - d - 1.0) / (scale * scale)
    return torch.where(log_mask, breg, sq)


def initial_offset(y: torch.Tensor, log_mask: list[bool]) -> torch.Tensor:
    """Per-column normalisation offset: the mean, or for log-mean columns the log-mean-exp
    (the unconditional answer, so that a fresh network starts near it)."""
    mean = y.mean(dim=0)
    if any(log_mask):
        lme = torch.logsumexp(y, dim=0) - float(np.log(y.shape[0]))
        mask = torch.as_tensor(log_mask, device=y.device)
        mean = torch.where(mask, lme, mean)
    return mean


def _chi2_value(pred: torch.Tensor, alphas: list[float], lam: float) -> torch.Tensor:
    m = len(alphas)
    g = torch.as_tensor(alphas, dtype=pred.dtype, device=pred.device)
    z1, z2 = pred[..., :m], pred[..., m:]
    best = (z1 - (z2 - z1 * z1) / (4.0 * lam)).amax(dim=-1)
    if m < 2:
        return best
    dg = g[1:] - g[:-1]
    seg = dg > 1e-12
    safe_dg = torch.where(seg, dg, torch.ones_like(dg))
    # z1 is linear with slope B = P(V > alpha) inside a segment, z2 = C + alpha^2 B; the
    # objective's stationary point solves alpha - z1(alpha) = 2 lam (arXiv:2411.18612,
    # docs/algorithms/r2pvi.md, alpha = eta + 2lam).
    slope = (z1[..., 1:] - z1[..., :-1]) / safe_dg
    g0 = g[:-1]
    denom = 1.0 - slope
    ok = seg & (denom > 1e-9)
    safe_den = torch.where(ok, denom, torch.ones_like(denom))
    a_star = (2.0 * lam + z1[..., :-1] - slope * g0) / safe_den
    inside = ok & (a_star > g0) & (a_star < g[1:])
    a_star = torch.where(inside, a_star, g0)
    s1 = z1[..., :-1] + slope * (a_star - g0)
    s2 = z2[..., :-1] + slope * (a_star * a_star - g0 * g0)
    f = s1 - (s2 - s1 * s1) / (4.0 * lam)
    f = torch.where(inside, f, torch.full_like(f, -torch.inf))
    return torch.maximum(best, f.amax(dim=-1))
