"""Squared Bellman regression losses on finite (enumerated) classes, from sufficient statistics.

The least-squares step shared by GOLF's version space (arXiv:2102.00815, Algorithm 1, the loss
``L_D(xi_h, zeta_{h+1})``) and fitted Q-iteration (Hy-Q, arXiv:2210.06718, Algorithm 1, line 7):
at step ``h``, on the tuples ``(s_j, a_j, r_j, s'_j)`` of that step and a next-step value
``V = max_a' zeta_{h+1}(., a')``,

    ell(g; V) = sum_j [ (g(s_j, a_j) - y_j)^2 - y_j^2 ] = sum_j [ g(s_j,a_j)^2 - 2 g(s_j,a_j) y_j ],
    y_j = r_j + V(s'_j)   (V = 0 after the last step).

The dropped ``sum_j y_j^2`` does not depend on ``g``, so differences and argmins over ``g`` are
those of the plain squared loss. Because ``g`` is a table, ``ell`` depends on the data only
through GLOW's sufficient statistics (:func:`robustrl._kernels.glow.step_statistics`):
``ell = sum_{s,a} [N(s,a) g(s,a)^2 - 2 g(s,a) Y(s,a)]`` with
``Y(s,a) = sum r + sum_{s'} N(s,a,s') V(s')``; one BLAS product gives every ``(V, g)`` pair,
``O(|V| |G| S A)`` per step whatever the number of tuples. The literal per-tuple twin is
:mod:`robustrl.reference.squared_bellman`.
"""

from __future__ import annotations

import numpy as np


def regression_losses(G_h, V_next, counts, reward_sums, next_counts) -> np.ndarray:
    """``ell(g; V)`` for every next-step value ``V`` (rows) and candidate ``g`` (columns).

    ``G_h`` ``(|G|, S, A)`` candidate step-``h`` tables; ``V_next`` ``(|V|, S)`` next-step
    values (zeros at the last step); ``counts`` ``(S, A)``, ``reward_sums`` ``(S, A)`` and
    ``next_counts`` ``(S, A, S)`` the step's statistics. Returns ``(|V|, |G|)``; all zeros
    without tuples (empty sum).
    """
    G_h = np.asarray(G_h, dtype=np.float64)
    V_next = np.asarray(V_next, dtype=np.float64)
    n_g, n_v = G_h.shape[0], V_next.shape[0]
    SA = counts.size
    G = G_h.reshape(n_g, SA)
    targets = reward_sums.reshape(1, SA) + V_next @ next_counts.reshape(SA, -1).T  # (|V|, SA)
    squares = (G * G) @ counts.reshape(SA)  # (|G|,)
    return np.broadcast_to(squares[None, :], (n_v, n_g)) - 2.0 * (targets @ G.T)
