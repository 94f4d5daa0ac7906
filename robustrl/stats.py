"""Confidence intervals over seeds: the one Student-t helper every report, experiment and theory
check uses (``robustrl.stats.confidence_interval`` / ``robustrl.stats.student_t_halfwidth``).

The half-width of the ``confidence`` interval of a mean of ``n`` independent samples is
``t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample standard deviation
(``ddof=1``); with fewer than two samples it is undefined and ``single`` is returned instead.
"""

from __future__ import annotations

import numpy as np
from scipy.special import stdtrit

from robustrl.validation import check_scalar


def student_t_halfwidth(samples, axis: int = 0, confidence: float = 0.95,
                        single: float = np.nan) -> float | np.ndarray:
    """Half-width of the Student-t ``confidence`` interval of the mean of ``samples`` along
    ``axis`` (a float for 1-D samples, else an array); ``single`` where ``n < 2``."""
    confidence = check_scalar(confidence, "confidence", low=0.0, high=1.0,
                              low_inclusive=False, high_inclusive=False)
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis] if x.ndim else 1
    shape = np.delete(x.shape, axis) if x.ndim else ()
    if n < 2:
        out = np.full(tuple(shape), float(single))
    else:
        # the t quantile by scipy.special.stdtrit, which scipy.stats.t.ppf calls: the same
        # number without importing scipy.stats (seconds on a busy machine)
        out = stdtrit(n - 1, 0.5 + confidence / 2.0) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return float(out) if np.ndim(out) == 0 else out


def confidence_interval(samples, axis: int = 0, confidence: float = 0.95,
                        single: float = np.nan) -> tuple[float | np.ndarray, float | np.ndarray]:
    """``(mean, half_width)`` of ``samples`` along ``axis`` (see :func:`student_t_halfwidth`)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("samples must hold at least one value; got an empty array")
    mean = x.mean(axis=axis)
    mean = float(mean) if np.ndim(mean) == 0 else mean
    return mean, student_t_halfwidth(x, axis, confidence, single)
