"""NumPy twin of :mod:`robustrl._kernels.glow`: the objective straight from its definition.

Per step, build the residual matrix ``R (|F|, n)`` and clipped weight matrix ``C (|W|, n)`` on
the literal tuples and form ``L_h = (R C^T - alpha 1^T (C o C)) / n`` (arXiv:2401.09681,
docs/algorithms/glow.md).
"""

from __future__ import annotations

import numpy as np


def _step_residuals(F, h, steps, states, actions, rewards, next_states):
    """The step-``h`` tuples and Bellman residuals ``f_h(s,a) - r - max_a' f_{h+1}(s',a')``.

    Returns ``(s, a, R (|F|, n))``, or ``None`` when step ``h`` has no data (``f_H = 0``).
    """
    m = np.asarray(steps) == h
    n = int(m.sum())
    if n == 0:
        return None
    s = np.asarray(states)[m]
    a = np.asarray(actions)[m]
    r = np.asarray(rewards, dtype=np.float64)[m]
    if h == F.shape[1] - 1:
        target = np.zeros((F.shape[0], n))
    else:
        target = F[:, h + 1, np.asarray(next_states)[m], :].max(axis=-1)
    return s, a, F[:, h, s, a] - r[None, :] - target


def glow_objective(F, W, steps, states, actions, rewards, next_states,
                   gamma: float, alpha: float) -> np.ndarray:
    """``L_h(f, w)`` for every step and pair, shape ``(H, |F|, |W|)`` (0 on steps without data)."""
    F = np.asarray(F, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    _, H, _, _ = F.shape
    steps = np.asarray(steps)
    out = np.zeros((H, F.shape[0], W.shape[0]))
    for h in range(H):
        step = _step_residuals(F, h, steps, states, actions, rewards, next_states)
        if step is None:
            continue
        s, a, R = step
        n = len(s)
        C = np.minimum(W[:, h, s, a], gamma)
        out[h] = (R @ C.T - alpha * (C * C).sum(axis=1)[None, :]) / n
    return out


def full_class_objective(F, steps, states, actions, rewards, next_states,
                         gamma: float, alpha: float) -> np.ndarray:
    """``max_w L_h(f, w)`` over all ``[0, gamma]``-valued tables, ``(H, |F|)``, per (s, a) loop.

    For each visited pair the concave quadratic ``c u - alpha c^2`` on ``[0, gamma]`` is
    maximised by comparing its endpoints with its stationary point.
    """
    F = np.asarray(F, dtype=np.float64)
    _, H, S, A = F.shape
    steps = np.asarray(steps)
    out = np.zeros((H, F.shape[0]))
    for h in range(H):
        step = _step_residuals(F, h, steps, states, actions, rewards, next_states)
        if step is None:
            continue
        s, a, R = step
        n = len(s)
        for x in range(S):
            for b in range(A):
                sel = (s == x) & (a == b)
                k = int(sel.sum())
                if k == 0:
                    continue
                u = R[:, sel].mean(axis=1)
                cands = [np.zeros_like(u), np.full_like(u, gamma)]
                if alpha > 0:
                    cands.append(np.clip(u / (2 * alpha), 0.0, gamma))
                vals = np.max([c * u - alpha * c * c for c in cands], axis=0)
                out[h] += k / n * vals
    return out
