"""The offline agents' whole backward pass as one compiled call (arXiv:2411.18612, Algorithm 1;
docs/algorithms/r2pvi.md, docs/algorithms/drpvi.md, docs/algorithms/drvi_l.md).

Per step ``h = H-1 .. 0``, top to bottom: gather the step's rows, the next-state values
``V_{h+1}`` (the clipped Q of step ``h + 1``, :func:`robustrl._kernels.offline.clipped_q_rows`),
the estimator's target, ``Lambda_h`` and ``Phi^T W [r, target]``, one Cholesky factor and solve
(LAPACK through :mod:`robustrl._kernels.lapack`), ``Lambda_h^{-1}``, the estimate ``nu_h`` and
``w_h``. Every piece is the kernel the chunked (streaming) pass of
:class:`robustrl.agents._offline.OfflineAgent` calls, in the same order, so both give the same
numbers; only the Python between them is gone. NumPy twin:
:func:`robustrl.reference.offline.offline_pass`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from robustrl._kernels import offline as _k
from robustrl._kernels.bonus import BONUS_ELLIPTICAL
from robustrl._kernels.lapack import cho_inverse_into, cho_solve_inplace, cholesky_into, gram_add

#: estimator codes of :func:`offline_pass`
REGRESSION, TV_REGULARIZED, KL_REGULARIZED, CHI2_REGULARIZED, TV_DUAL, KL_DUAL = range(6)
# below this fraction of nonzero feature entries the Gram update skips zeros
SPARSE_DENSITY = 0.25
# from this feature dimension on, the elliptical bonus of dense rows is formed by BLAS
# (Phi Lambda^{-1}, then row-wise dots) in blocks of this many rows, not by the scalar loop
BLAS_BONUS_MIN_DIM = 16
BLAS_BONUS_ROWS = 4096


@njit(cache=True)
def elliptical_rows(next_features, rows, lambda_inv):
    """``sqrt(phi^T Lambda^{-1} phi)`` ``(K, A)`` at the rows ``rows`` of ``next_features
    (K, A, d)`` (any layout; the other rows 0), by BLAS on blocks of rows."""
    n = rows.shape[0]
    n_actions, dim = next_features.shape[1], next_features.shape[2]
    out = np.zeros((next_features.shape[0], n_actions))
    for start in range(0, n, BLAS_BONUS_ROWS):
        stop = min(start + BLAS_BONUS_ROWS, n)
        x = np.empty(((stop - start) * n_actions, dim))
        for j in range(start, stop):
            for a in range(n_actions):
                for i in range(dim):
                    x[(j - start) * n_actions + a, i] = next_features[rows[j], a, i]
        t = np.dot(x, lambda_inv)
        for j in range(start, stop):
            for a in range(n_actions):
                row = (j - start) * n_actions + a
                quad = 0.0
                for i in range(dim):
                    quad += t[row, i] * x[row, i]
                out[rows[j], a] = np.sqrt(max(quad, 0.0))
    return out


@njit(cache=True)
def stable_argsort(v):
    """Stable ascending order of ``v`` (the permutation of ``np.argsort(v, kind="stable")``), by
    a bottom-up merge sort: a few lines that compile in milliseconds, unlike Numba's sorts."""
    n = v.shape[0]
    a = np.arange(n)
    b = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if v[a[j]] < v[a[i]]:
                    b[k] = a[j]
                    j += 1
                else:
                    b[k] = a[i]
                    i += 1
                k += 1
            while i < mid:
                b[k] = a[i]
                i += 1
                k += 1
            while j < hi:
                b[k] = a[j]
                j += 1
                k += 1
        a, b = b, a
        width *= 2
    return a


@njit(cache=True)
def _group(values, features, weights, in_regression):
    """:func:`robustrl._kernels.offline.group_by_value` inside a kernel."""
    u, g, inside, ok = _k._group_few_values(values, features, weights, in_regression)
    if ok:
        return u, g, inside
    return _k.group_sorted(values, features, weights, in_regression, stable_argsort(values))


@njit(cache=True)
def _regression_matrix(g, factor, lambda_inv):
    """``Xi = Lambda^{-1} G^T`` (d, m) of the grouped feature sums ``g (m, d)`` (overwritten):
    for sparse sums (hat, one-hot features: fewer than a quarter nonzero) from ``Lambda^{-1}``
    over the nonzeros, O(nnz d) instead of the O(m d^2) of a triangular solve per column (with
    a distinct next-state value per row, m ~ n); dense sums by ``dpotrs`` on the factor."""
    m, dim = g.shape
    nnz = 0
    for j in range(m):
        for c in range(dim):
            if g[j, c] != 0.0:
                nnz += 1
    if nnz >= SPARSE_DENSITY * m * dim:
        cho_solve_inplace(factor, g)
        return np.ascontiguousarray(g.T)
    xi_t = np.zeros((m, dim))
    for j in range(m):
        for c in range(dim):
            x = g[j, c]
            if x != 0.0:
                for i in range(dim):
                    xi_t[j, i] += lambda_inv[c, i] * x
    return np.ascontiguousarray(xi_t.T)


@njit(cache=True)
def offline_pass(features, rewards, next_features, valid, nonterminal, known, has_known,
                 sample_weights, use_weights, theta, known_reward, ridge, signed_beta, code,
                 max_reward, truncate_below, est, lam, v_min, v_min_data, cap, rho, z_floor,
                 centered, far_shift, kl_truncate, keep_values):
    """The backward pass over a step-major dataset (C-contiguous, step ``h``'s samples
    contiguous, as :class:`robustrl.data.OfflineDataset` keeps them): ``features (H, K, d)``,
    ``rewards (H, K)``, ``next_features (H, K, A, d)``, ``valid``/``nonterminal (H, K)``,
    ``known (H, K, A)`` (NaN: learned; read where ``has_known``), ``sample_weights (H, K)`` (the
    ``j``-th valid row of step ``h`` at ``[h, j]``; read where ``use_weights``), ``theta (H, d)``
    (the reward weights where ``known_reward``, else the ridge estimate), ``rho (H, d)``.
    ``est``: one of the estimator codes of this module, with ``lam`` (TV/KL/chi2 regulariser),
    ``v_min`` / ``v_min_data`` (TV's smallest value, or the data's), ``cap`` (KL), ``z_floor``,
    ``centered`` (KL dual), ``far_shift`` (KL: columns beyond ``far_shift * lam`` get their
    own shift), ``kl_truncate`` (KL: ``nu >= 0``). Q at step ``h`` is clipped above at
    ``max_reward (H - h)``. ``est`` is a runtime value, so one compiled specialisation serves
    every estimator: a job that fits several (the Figure-1 job fits four) compiles and loads the
    pass once (a fresh cache: 15 s of compilation for the job instead of 19 s with one
    specialisation per estimator; a first PEVI fit alone 0.7 s more).

    Returns ``weights (H, d)``, ``lambda_inv (H, d, d)``, ``n_samples (H,)``, the next-state
    values ``(H, K)`` (step ``h``'s in its first ``n_h`` entries; ``(0, K)`` unless
    ``keep_values``), per step R2PVI-KL's worst cancellation factor and its factor ``(H,)``, and
    the step whose Gram matrix was not positive definite (-1: none)."""
    horizon, n_traj, dim = features.shape
    weights = np.zeros((horizon, dim))
    lambda_inv = np.zeros((horizon, dim, dim))
    n_samples = np.zeros(horizon, dtype=np.int64)
    values_out = np.zeros((horizon if keep_values else 0, n_traj))
    worst = np.zeros(horizon)
    worst_at = np.zeros(horizon, dtype=np.int64)
    rows = np.empty(n_traj, dtype=np.int64)
    x = np.empty((n_traj, dim))
    in_reg = np.empty(n_traj, dtype=np.bool_)
    r = np.empty(n_traj)
    v = np.zeros(n_traj)
    target = np.empty(n_traj)
    factor = np.empty((dim, dim))
    no_bonus = np.zeros((0, 0))
    live = np.empty(n_traj, dtype=np.int64)
    where = np.empty(n_traj, dtype=np.int64)
    only_maxima = np.empty((0, next_features.shape[2]))  # clipped_q_rows keeps no (K, A) Q
    best = np.empty(n_traj)
    for h in range(horizon - 1, -1, -1):
        last = h == horizon - 1
        n = 0
        for k in range(n_traj):
            if valid[h, k]:
                rows[n] = k
                n += 1
        nnz = 0
        for j in range(n):  # gather the step's rows (as gather_features)
            k = rows[j]
            inside = False
            for i in range(dim):
                f = features[h, k, i]
                x[j, i] = f
                if f != 0.0:
                    inside = True
                    nnz += 1
            in_reg[j] = inside
            r[j] = rewards[h, k]
        xs, regs = x[:n], in_reg[:n]
        sw = sample_weights[h, :n] if use_weights else sample_weights[0, :0]
        # the next-state values V_{h+1} and their minima
        lo, lo_reg = np.inf, np.inf
        if not last and n > 0:
            upper = max_reward * (horizon - h - 1)
            nf = next_features[h]
            w_next, l_next = weights[h + 1], lambda_inv[h + 1]
            kn = known[h]
            scale = _k._bonus_scale(lambda_inv[h + 1], code)
            bonus = no_bonus
            # dense rows (the step's features as the proxy): BLAS; sparse ones: the loop of
            # clipped_q_rows skips zero entries, O(nnz d) per row
            dense_bonus = code == BONUS_ELLIPTICAL and signed_beta != 0.0 and \
                dim >= BLAS_BONUS_MIN_DIM and nnz / (n * dim) >= SPARSE_DENSITY
            if dense_bonus:
                bonus = elliptical_rows(nf, rows[:n], lambda_inv[h + 1])
            m = np.int64(0)  # not the literal 0: a second clipped_q_rows specialisation
            for j in range(n):
                v[j] = 0.0
                if nonterminal[h, rows[j]]:
                    live[m] = rows[j]
                    where[m] = j
                    m += 1
            _k.clipped_q_rows(nf, live, m, w_next, l_next, scale, signed_beta, code, upper,
                              truncate_below, kn, has_known, bonus, dense_bonus, only_maxima,
                              best)
            for t in range(m):
                v[where[t]] = best[t]
            lo, lo_reg = _k.value_minima(v[:n], regs)
        else:
            v[:n] = 0.0
        vs = v[:n]
        if keep_values:
            for j in range(n):  # loops, not slice assignments: those compile a shape check
                values_out[h, j] = vs[j]
        n_samples[h] = regs.sum()
        # the estimator's target and the sums
        moments = est <= KL_REGULARIZED
        has_target = moments and not last and n > 0
        ts = target[:n]
        columns = np.full(dim, -np.inf)
        far = np.zeros(dim)
        if has_target:
            if est == KL_REGULARIZED:
                for j in range(n):
                    ts[j] = np.exp(-(vs[j] - lo) / lam)
                # as KLRegularized.first_read / accumulate on one chunk: columns that may lie
                # beyond far_shift * lam above the minimum get their own shift
                columns[:] = np.inf
                _, hi, scanned = _k.value_range_column_minima(xs, vs, columns, far_shift * lam)
                cutoff = lo + far_shift * lam
                if hi <= cutoff:  # narrow: every factor takes the global shift
                    columns[:] = -np.inf
                elif scanned:
                    _k.shifted_column_moment_into(far, xs, vs, sw, use_weights, columns, lam,
                                                  cutoff)
                else:
                    columns[:] = np.inf
                    _k.column_shifted_sums_into(columns, far, xs, vs, sw, use_weights, lam)
            elif est == TV_REGULARIZED:
                base = v_min
                if v_min_data:
                    base = lo_reg if np.isfinite(lo_reg) else 0.0
                for j in range(n):
                    ts[j] = min(vs[j], base + lam)
            else:
                for j in range(n):
                    ts[j] = vs[j]
        gram = ridge * np.eye(dim)
        moment = np.zeros((dim, 2))
        if n > 0 and nnz / (n * dim) < SPARSE_DENSITY:
            _k.sparse_gram_moment_into(gram, moment, xs, r[:n], ts, has_target, sw, use_weights)
        elif n > 0:
            if use_weights:
                scaled = np.empty((n, dim))
                for j in range(n):
                    s = np.sqrt(sw[j])
                    for i in range(dim):
                        scaled[j, i] = xs[j, i] * s
                gram_add(scaled, gram)
            else:
                gram_add(xs, gram)
            _k.moment_into(moment, xs, r[:n], ts, has_target, sw, use_weights)
        # solve
        if cholesky_into(gram, factor) != 0:
            return weights, lambda_inv, n_samples, values_out, worst, worst_at, h
        solved = np.ascontiguousarray(moment.T)  # (2, d): reward weights, the target's
        cho_solve_inplace(factor, solved)
        cho_inverse_into(factor, lambda_inv[h])
        # estimate
        nu = np.zeros(dim)
        if last:
            pass
        elif est == KL_REGULARIZED:
            if n == 0:
                nu = _k.kl_from_sum(solved[1].copy(), np.inf, lam, cap, True, kl_truncate)
            else:
                nu, worst[h], worst_at[h] = _k.kl_factor_estimate(
                    lambda_inv[h], moment[:, 1], solved[1], columns, far, lo, lam, far_shift,
                    cap, kl_truncate)
        elif est >= CHI2_REGULARIZED:
            if n > 0:
                u, g, inside = _group(vs, xs, sw if use_weights else np.ones(n), regs)
                xi = _regression_matrix(g, factor, lambda_inv[h])
                order = np.arange(u.shape[0])
                if est == KL_DUAL:
                    nu = _k.kl_constrained_rows(u, xi, rho[h], z_floor, centered)
                elif est == CHI2_REGULARIZED:
                    nu = _k.chi2_regularized_rows_ordered(u, xi, lam, order)
                else:
                    base = v_min
                    if v_min_data:
                        base = 0.0
                        sel = u[inside]
                        if sel.size:
                            base = sel.min()
                    nu = _k.tv_dual_rows_ordered(u, xi, rho[h], base, order)
        else:
            nu = solved[1].copy()
        for i in range(dim):
            weights[h, i] = (theta[h, i] if known_reward else solved[0, i]) + nu[i]
    return weights, lambda_inv, n_samples, values_out, worst, worst_at, -1


@njit(cache=True)
def tied_steps(features, next_features, valid, nonterminal, weights, lambda_inv, signed_beta,
               code, max_reward, truncate_below, max_states):
    """Per step ``h``: whether every action's learned Q ties at a clip bound (``max_reward (H -
    h)``, or 0 with ``truncate_below``) at each of the first ``max_states`` data states of the
    step, and that Q at the first of them. The states of step ``h >= 1`` are the next states
    of step ``h - 1`` (every action); for step 0 only the taken action's features are stored,
    so its flag is the necessary condition that the taken action's Q is at a bound (the caller
    checks every action where it holds). Q by :func:`robustrl._kernels.offline.clipped_q_rows`
    on the first state, then (still tied) on the next 7, 56, ... states. Arrays step-major as
    :func:`offline_pass`'s."""
    horizon, n_traj, dim = features.shape
    tied = np.zeros(horizon, dtype=np.bool_)
    example = np.zeros(horizon)
    # the argument types of the pass's own call, so that both share one compiled
    # clipped_q_rows: features, known and bonus contiguous
    no_known = np.zeros((0, 0))
    no_bonus = np.zeros((0, 0))
    n_states = min(n_traj, max_states)
    live = np.empty(n_states, dtype=np.int64)
    q = np.empty((n_states, max(next_features.shape[2], 1)))
    best = np.empty(n_states)
    for h in range(horizon):
        upper = max_reward * (horizon - h)
        scale = _k._bonus_scale(lambda_inv[h], code)
        # step 0: the taken action's features as one "action"
        feats = features[0].reshape((n_traj, 1, dim)) if h == 0 else next_features[h - 1]
        m = 0
        for k in range(n_traj):
            if m == n_states:
                break
            if valid[max(h - 1, 0), k] and (h == 0 or nonterminal[h - 1, k]):
                live[m] = k
                m += 1
        all_tied = m > 0
        done = 0
        while all_tied and done < m:
            # 1, 8, 64, ... states: an untied step stops early, a tied one in few calls
            stop = min(m, max(1, 8 * done))
            _k.clipped_q_rows(feats, live[done:], stop - done, weights[h], lambda_inv[h], scale,
                              signed_beta, code, upper, truncate_below, no_known,
                              no_known.size > 0, no_bonus, no_bonus.size > 0, q, best)
            if done == 0:
                example[h] = q[0, 0]
            for t in range(stop - done):
                q0 = q[t, 0]
                at_bound = q0 == upper or (truncate_below and q0 == 0.0)
                for a in range(1, feats.shape[1]):
                    if q[t, a] != q0:
                        at_bound = False
                if not at_bound:
                    all_tied = False
                    break
            done = stop
        tied[h] = all_tied
    return tied, example
