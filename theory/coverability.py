"""The coverability coefficient of a finite-horizon tabular MDP, computed exactly.

Coverability (Xie, Foster, Bai, Jiang, Kakade, ICLR 2023; as used by
GLOW, arXiv:2401.09681; docs/algorithms/glow.md), with ``Pi`` all (possibly randomised,
history-dependent)
policies::

    C_cov = inf_{mu_1..mu_H in Delta(S x A)} sup_pi max_h || d_h^pi / mu_h ||_inf
          = max_h  min_{mu_h} max_pi max_{s,a} d_h^pi(s, a) / mu_h(s, a)       (mu_h separate)
          = max_h  sum_{s,a} max_pi d_h^pi(s, a).                                (identity)

Xie et al. (arXiv 2210.04157) prove coverability equal to this *cumulative reachability* (the
lemma number was not checked against their text here). Proof of the identity, per step
with ``m(s, a) = max_pi d_h^pi(s, a)`` and ``M = sum m``: ``mu = m / M`` gives every ratio
``d^pi / mu <= m / mu = M``; conversely any ``mu`` has some ``(s, a)`` with
``mu(s, a) <= m(s, a) / M`` (else ``sum mu > 1``), and the policy attaining ``m(s, a)`` has ratio
``>= M`` there. ``max_pi d_h^pi(s, a)`` is a reachability problem: play to maximise the
probability of being in ``s`` at step ``h``, then play ``a`` -- so it does not depend on ``a``,
and deterministic Markov policies attain it (backward induction, :func:`max_occupancy`).

:func:`coverability_coefficient_lp` computes the same number without the identity, as one
linear program per step over occupancy measures (its docstring); the tests check both agree.
Steps are 0-indexed as everywhere in the package.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from robustrl.models import FiniteMDP, LinearMDP

__all__ = [
    "coverability_coefficient",
    "coverability_coefficient_lp",
    "max_occupancy",
    "max_occupancy_lp",
]


def _check_model(model) -> FiniteMDP:
    if isinstance(model, LinearMDP):
        return model.to_finite()
    if not isinstance(model, FiniteMDP):
        raise ValueError(
            f"model must be a FiniteMDP (or LinearMDP); got {type(model).__name__}"
        )
    return model


def max_occupancy(model: FiniteMDP) -> np.ndarray:
    """``m[h, s, a] = max_pi d_h^pi(s, a)``, shape ``(H, S, A)``, by exact backward induction.

    For every target state ``s`` at once: ``U_h(x) = 1[x = s]``,
    ``U_k(x) = max_a sum_x' P_k(x' | x, a) U_{k+1}(x')`` and ``max_pi d_h^pi(s) = d_1 . U_0``,
    the best probability of standing in ``s`` at step ``h``. Cost ``O(H^2 S^3 A)``.
    """
    model = _check_model(model)
    H, S, A = model.horizon, model.n_states, model.n_actions
    reach = np.zeros((H, S))
    for h in range(H):
        U = np.eye(S)  # U[target, x]
        for k in range(h - 1, -1, -1):
            # (target, x, a) -> max over a
            U = np.einsum("xay,ty->txa", model.P[k], U).max(axis=-1)
        reach[h] = U @ model.initial_distribution
    return np.repeat(reach[:, :, None], A, axis=2)


def coverability_coefficient(model: FiniteMDP, *, per_step: bool = False) -> float | np.ndarray:
    """``C_cov = max_h sum_{s,a} max_pi d_h^pi(s, a)`` (module docstring identity).

    With ``per_step=True`` returns the ``(H,)`` array of per-step coefficients instead.
    """
    per = max_occupancy(model).sum(axis=(1, 2))
    return per if per_step else float(per.max())


def _flow_constraints(model: FiniteMDP, h: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Occupancy-measure flow constraints of steps ``0 .. h`` (variables ``d[k, s, a]``).

    ``sum_a d_0(s, a) = d_1(s)`` and ``sum_a d_{k+1}(s', a) = sum_{s,a} P_k(s'|s,a) d_k(s,a)``;
    with ``d >= 0`` these describe exactly the occupancies of Markov policies.
    """
    S, A = model.n_states, model.n_actions
    blocks = []
    rhs = []
    sum_a = sparse.kron(sparse.eye(S), np.ones((1, A)))  # (S, S*A)
    for k in range(h + 1):
        row = [None] * (h + 1)
        row[k] = sum_a
        if k > 0:
            row[k - 1] = -sparse.csr_matrix(model.P[k - 1].reshape(S * A, S).T)
        for j in range(h + 1):
            if row[j] is None:
                row[j] = sparse.csr_matrix((S, S * A))
        blocks.append(row)
        rhs.append(model.initial_distribution if k == 0 else np.zeros(S))
    A_eq = sparse.bmat(blocks, format="csr")
    return A_eq, np.concatenate(rhs)


def max_occupancy_lp(model: FiniteMDP) -> np.ndarray:
    """:func:`max_occupancy` by linear programs: ``max d_h(s, a)`` over the flow polytope.

    One ``scipy.optimize.linprog`` (HiGHS) per ``(h, s, a)``; for small MDPs only.
    """
    model = _check_model(model)
    H, S, A = model.horizon, model.n_states, model.n_actions
    out = np.zeros((H, S, A))
    for h in range(H):
        A_eq, b_eq = _flow_constraints(model, h)
        n = A_eq.shape[1]
        for s in range(S):
            for a in range(A):
                c = np.zeros(n)
                c[h * S * A + s * A + a] = -1.0
                res = linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
                if res.status != 0:
                    raise RuntimeError(f"occupancy LP failed at (h={h}, s={s}, a={a}): "
                                       f"{res.message}")
                out[h, s, a] = -res.fun
    return out


def coverability_coefficient_lp(model: FiniteMDP, *, per_step: bool = False
                                ) -> float | np.ndarray:
    """``C_cov`` as the min-max over occupancy measures, one LP per step, no identity used.

    Per step ``h`` the definition is ``min_{C, mu in Delta} C`` subject to
    ``d_h^pi(s, a) <= C mu(s, a)`` for every policy and pair. With ``nu = C mu`` the objective is
    ``sum nu`` and the constraint ``nu(s, a) >= max_{d in flow polytope} d_h(s, a)``; the inner
    max is replaced by its LP dual (a value function ``V^{(s,a)}`` for the indicator reward of
    ``(s, a)`` at step ``h``), which turns the min-max into one minimisation::

        min  sum_{s,a} nu(s,a)
        s.t. d_1 . V_0^{(s,a)} <= nu(s,a)
             1[k=h, x=s, b=a] + sum_x' P_k(x'|x,b) V_{k+1}^{(s,a)}(x') <= V_k^{(s,a)}(x)
             for k = 0..h, all x, b   (V_{h+1} = 0),

    solved by ``scipy.optimize.linprog`` (HiGHS). Variables: ``SA (1 + (h+1) S)``; small MDPs.
    """
    model = _check_model(model)
    H, S, A = model.horizon, model.n_states, model.n_actions
    SA = S * A
    per = np.zeros(H)
    for h in range(H):
        nv = (h + 1) * S  # value variables per target
        n = SA + SA * nv
        rows, cols, vals = [], [], []
        b = []
        r = 0
        for t in range(SA):
            base = SA + t * nv
            # d_1 . V_0 - nu_t <= 0
            for x in range(S):
                if model.initial_distribution[x] != 0.0:
                    rows.append(r)
                    cols.append(base + x)
                    vals.append(model.initial_distribution[x])
            rows.append(r)
            cols.append(t)
            vals.append(-1.0)
            b.append(0.0)
            r += 1
            for k in range(h + 1):
                for x in range(S):
                    for bb in range(A):
                        # sum_x' P V_{k+1} - V_k(x) <= -indicator
                        rows.append(r)
                        cols.append(base + k * S + x)
                        vals.append(-1.0)
                        if k < h:
                            nz = np.flatnonzero(model.P[k, x, bb])
                            rows.extend([r] * nz.size)
                            cols.extend((base + (k + 1) * S + nz).tolist())
                            vals.extend(model.P[k, x, bb, nz].tolist())
                        b.append(-1.0 if (k == h and x * A + bb == t) else 0.0)
                        r += 1
        A_ub = sparse.csr_matrix((vals, (rows, cols)), shape=(r, n))
        c = np.zeros(n)
        c[:SA] = 1.0
        bounds = [(0, None)] * SA + [(None, None)] * (SA * nv)
        res = linprog(c, A_ub=A_ub, b_ub=np.array(b), bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"coverability LP failed at step {h}: {res.message}")
        per[h] = res.fun
    return per if per_step else float(per.max())
