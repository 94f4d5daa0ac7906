"""GLOW's truncated, penalised density-ratio-weighted Bellman residual objective (finite classes).

arXiv:2401.09681 (Algorithm 1; docs/algorithms/glow.md, finite classes): at step ``h``, on the
pooled
transitions ``(s, a, r, s')`` of that step,

    L_h(f, w) = (1/n) sum_j [ c(s_j,a_j) (f_h(s_j,a_j) - r_j - max_a' f_{h+1}(s'_j,a'))
                              - alpha c(s_j,a_j)^2 ],         c = min(w_h, gamma),

with ``f_H = 0``. Value and weight classes are enumerated tables, ``F`` of shape
``(|F|, H, S, A)`` and ``W`` of shape ``(|W|, H, S, A)`` (weights may be ``+inf``; the clip makes
them ``gamma``). Because both are tables, ``L_h`` depends on the data only through the
sufficient statistics ``N(s,a)``, ``sum r`` per ``(s,a)`` and ``N(s,a,s')``; this kernel forms
the summed residual ``(|F|, S*A)`` and the clipped weights ``(|W|, S*A)`` from them and takes
one BLAS matrix product per step: ``O(|F| |W| S A)`` per step whatever the number of tuples.
The literal per-transition twin is :mod:`robustrl.reference.glow`.
"""

from __future__ import annotations

import numpy as np


def step_statistics(states, actions, rewards, next_states, n_states: int, n_actions: int):
    """Sufficient statistics of one step's tuples: ``N (S, A)``, ``sum r (S, A)``, ``N (S, A, S)``.

    ``next_states`` may be None (last step: the target has no next-state term).
    """
    S, A = n_states, n_actions
    sa = np.asarray(states, dtype=np.int64) * A + np.asarray(actions, dtype=np.int64)
    counts = np.bincount(sa, minlength=S * A).astype(np.float64).reshape(S, A)
    reward_sums = np.bincount(sa, weights=np.asarray(rewards, dtype=np.float64),
                              minlength=S * A).reshape(S, A)
    if next_states is None:
        next_counts = np.zeros((S, A, S))
    else:
        idx = sa * S + np.asarray(next_states, dtype=np.int64)
        next_counts = np.bincount(idx, minlength=S * A * S).astype(np.float64).reshape(S, A, S)
    return counts, reward_sums, next_counts


def step_objective(F_h, V_next, W_h, counts, reward_sums, next_counts,
                   gamma: float, alpha: float) -> np.ndarray:
    """``L_h(f, w)`` for every pair, shape ``(|F|, |W|)``, from one step's statistics.

    ``F_h`` ``(|F|, S, A)``; ``V_next`` ``(|F|, S)`` is ``max_a' f_{h+1}`` (zeros at the last
    step); ``W_h`` ``(|W|, S, A)``. With no tuples (``n = 0``) the objective is 0 by convention
    (empty mean), so the unconstrained first round keeps every ``f``.
    """
    n = counts.sum()
    n_f = F_h.shape[0]
    n_w = W_h.shape[0]
    if n == 0:
        return np.zeros((n_f, n_w))
    SA = counts.size
    # summed residual per (s,a): N f - sum r - sum_{s'} N(s,a,s') V_f(s')
    resid = (F_h.reshape(n_f, SA) * counts.reshape(1, SA) - reward_sums.reshape(1, SA)
             - V_next @ next_counts.reshape(SA, -1).T)
    clipped = np.minimum(W_h.reshape(n_w, SA), gamma)
    penalty = (clipped * clipped) @ counts.reshape(SA)
    return (resid @ clipped.T - alpha * penalty[None, :]) / n


def glow_objective(F, W, steps, states, actions, rewards, next_states,
                   gamma: float, alpha: float) -> np.ndarray:
    """``L_h(f, w)`` for every step, ``f`` and ``w``: shape ``(H, |F|, |W|)``.

    The pooled data are flat arrays of tuples ``(h, s, a, r, s')``; ``next_states`` entries of
    last-step tuples are ignored (``f_H = 0``).
    """
    F = np.asarray(F, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    _, H, S, A = F.shape
    steps = np.asarray(steps, dtype=np.int64)
    out = np.empty((H, F.shape[0], W.shape[0]))
    for h in range(H):
        m = steps == h
        last = h == H - 1
        stats = step_statistics(np.asarray(states)[m], np.asarray(actions)[m],
                                np.asarray(rewards)[m],
                                None if last else np.asarray(next_states)[m], S, A)
        V_next = np.zeros((F.shape[0], S)) if last else F[:, h + 1].max(axis=-1)
        out[h] = step_objective(F[:, h], V_next, W[:, h], *stats, gamma, alpha)
    return out


def full_class_step_objective(F_h, V_next, counts, reward_sums, next_counts,
                              gamma: float, alpha: float) -> np.ndarray:
    """``max_w L_h(f, w)`` over ALL tables ``w : S x A -> [0, gamma]`` (arXiv:2401.09681,
    docs/algorithms/glow.md).

    The inner max separates per ``(s, a)``: with the mean residual ``u = Delta_f(s, a)`` the
    maximiser is ``c* = clip(u / (2 alpha), 0, gamma)`` (``gamma 1{u > 0}`` when ``alpha = 0``)
    and the value is ``sum_{s,a} (N(s,a)/n) (c* u - alpha c*^2)``. Returns shape ``(|F|,)``; 0
    without data.
    """
    n = counts.sum()
    n_f = F_h.shape[0]
    if n == 0:
        return np.zeros(n_f)
    SA = counts.size
    flat = counts.reshape(1, SA)
    resid = (F_h.reshape(n_f, SA) * flat - reward_sums.reshape(1, SA)
             - V_next @ next_counts.reshape(SA, -1).T)
    visited = flat > 0
    mean = np.divide(resid, flat, out=np.zeros_like(resid), where=visited)
    if alpha > 0:
        c = np.clip(mean / (2.0 * alpha), 0.0, gamma)
    else:
        c = np.where(mean > 0, gamma, 0.0)
    return ((c * mean - alpha * c * c) * flat).sum(axis=1) / n


def full_class_objective(F, steps, states, actions, rewards, next_states,
                         gamma: float, alpha: float) -> np.ndarray:
    """:func:`full_class_step_objective` for every step: shape ``(H, |F|)``."""
    F = np.asarray(F, dtype=np.float64)
    _, H, S, A = F.shape
    steps = np.asarray(steps, dtype=np.int64)
    out = np.empty((H, F.shape[0]))
    for h in range(H):
        m = steps == h
        last = h == H - 1
        stats = step_statistics(np.asarray(states)[m], np.asarray(actions)[m],
                                np.asarray(rewards)[m],
                                None if last else np.asarray(next_states)[m], S, A)
        V_next = np.zeros((F.shape[0], S)) if last else F[:, h + 1].max(axis=-1)
        out[h] = full_class_step_objective(F[:, h], V_next, *stats, gamma, alpha)
    return out
