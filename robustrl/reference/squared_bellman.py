"""NumPy twin of :mod:`robustrl._kernels.squared_bellman`: the centred squared loss tuple by tuple.

For each next-step value ``V`` and candidate ``g``: ``sum_j (g(s_j,a_j) - y_j)^2 - y_j^2`` with
``y_j = r_j + V(s'_j)`` (arXiv:2102.00815, Algorithm 1; arXiv:2210.06718, Algorithm 1).
"""

from __future__ import annotations

import numpy as np


def regression_losses(G_h, V_next, states, actions, rewards, next_states,
                      last: bool = False) -> np.ndarray:
    """``(|V|, |G|)`` losses on the literal tuples of one step (``last``: no next-state term)."""
    G_h = np.asarray(G_h, dtype=np.float64)
    V_next = np.asarray(V_next, dtype=np.float64)
    s = np.asarray(states, dtype=np.int64)
    a = np.asarray(actions, dtype=np.int64)
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros((V_next.shape[0], G_h.shape[0]))
    for i, V in enumerate(V_next):
        y = r if last else r + V[np.asarray(next_states, dtype=np.int64)]
        for k, g in enumerate(G_h):
            pred = g[s, a]
            out[i, k] = np.sum((pred - y) ** 2 - y**2)
    return out
