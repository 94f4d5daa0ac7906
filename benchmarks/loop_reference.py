"""Loop-style NumPy/SciPy references of the benchmarked estimators, written the way research
code usually is (and the way the R2PVI / DR-LSVI-UCB authors' code is: docs/performance.md):
per-sample Python loops for the Gram matrix, the next-state values and the regression sums, a
matrix inverse per step, and a one-dimensional SciPy search per dual and per coordinate.

They compute THE SAME estimators as :mod:`robustrl.agents` (``tests/test_benchmarks.py`` checks
the fitted weights agree), so a timing ratio compares implementations, not algorithms:

* :func:`fit_offline` -- PEVI, R2PVI (TV, KL, chi2), DRPVI (TV dual) and DRVI-L (KL dual) on an
  :class:`~robustrl.data.OfflineDataset`, hyperparameters read from an (unfitted) package agent.
  R2PVI-TV and -KL are closed forms (one regression of a transformed target). R2PVI-chi2 runs a
  ``scipy.optimize.minimize_scalar(method="bounded")`` per coordinate on every segment between
  consecutive distinct next-state values (the objective is a quadratic there, so the search
  per segment is global and the estimate is exact; the authors' single Nelder-Mead from ``H/2``
  is a different, local estimate -- see ``experiments/r2pvi_fig2.py`` for that reproduction).
  The DRPVI dual is piecewise linear with kinks at the data values: it is maximised per
  coordinate by evaluating every candidate ``alpha`` in a Python loop. The DRVI-L dual is
  maximised per coordinate by the plain golden-section search in ``log alpha`` of
  :mod:`robustrl.reference.offline` (the bracket the package uses), one Python loop per
  coordinate over the samples' values; PEVI regresses ``V`` itself.
* :class:`LoopLSVIUCB` / :class:`LoopDRRPO` -- the online agents' episode loop with per-sample
  Python loops over all past transitions in every backward pass
  (see :mod:`benchmarks.bench_online`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["LoopDRRPO", "LoopLSVIUCB", "fit_offline"]


# --------------------------------------------------------------------------------------------
# offline: R2PVI and DRPVI


def _bonus(phi, lambda_inv, name):
    if name == "elliptical":
        return math.sqrt(max(float(phi @ lambda_inv @ phi), 0.0))
    total = 0.0
    for i in range(phi.shape[0]):
        if name in ("paper_l1", "d_rectangular_l1"):
            total += abs(phi[i]) * math.sqrt(lambda_inv[i, i])
        else:
            total += phi[i] * phi[i] * lambda_inv[i, i]
    return total if name in ("paper_l1", "d_rectangular_l1") else math.sqrt(total)


def _chi2_coordinate(xi_row, values, lam):
    """max over alpha of z1 - (z2 - z1^2)/(4 lam): every knot, then a bounded search per segment."""

    def objective(alpha):
        clipped = np.minimum(values, alpha)
        z1 = float(xi_row @ clipped)
        z2 = float(xi_row @ (clipped * clipped))
        return z1 - (z2 - z1 * z1) / (4.0 * lam)

    knots = np.unique(values)
    best = max(objective(a) for a in knots)
    for lo, hi in zip(knots[:-1], knots[1:], strict=True):
        res = minimize_scalar(lambda a: -objective(a), bounds=(float(lo), float(hi)),
                              method="bounded", options={"xatol": 1e-12 * max(1.0, hi)})
        best = max(best, -float(res.fun))
    return best


def _tv_dual_coordinate(xi_row, values, rho, v_min):
    best = -np.inf
    for alpha in np.concatenate(([v_min], np.unique(values))):
        val = float(xi_row @ np.minimum(values, alpha)) - rho * (alpha - v_min)
        best = max(best, val)
    return best


def fit_offline(agent, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(H, d)`` and ``Lambda^{-1} (H, d, d)`` of ``agent`` (an R2PVI or DRPVI of the
    package, used for its hyperparameters only) fitted to ``dataset`` with Python loops."""
    kind = type(agent).__name__
    if kind not in ("PEVI", "R2PVI", "DRPVI", "DRVI_L"):
        raise ValueError(f"agent must be a PEVI, R2PVI, DRPVI or DRVI_L; got {kind}")
    if kind == "R2PVI" and agent.variance_aware:
        raise ValueError("the loop reference covers the plain (not variance-aware) R2PVI")
    env = agent.env.unwrapped
    known_fn = getattr(env, "known_action_values", None)
    H, d = agent.horizon, agent.feature_dim
    K = dataset.n_trajectories
    weights = np.zeros((H, d))
    lambda_invs = np.zeros((H, d, d))
    for h in range(H - 1, -1, -1):
        # Gram matrix, one sample at a time
        Lambda = agent.ridge * np.eye(d)
        rows = []
        for k in range(K):
            if dataset.valid[k, h]:
                phi = dataset.features[k, h]
                Lambda += np.outer(phi, phi)
                rows.append(k)
        Lambda_inv = np.linalg.inv(Lambda)
        Lambda_inv = 0.5 * (Lambda_inv + Lambda_inv.T)
        lambda_invs[h] = Lambda_inv
        # next-state values, one sample and one action at a time
        values = np.zeros(len(rows))
        inside = np.zeros(len(rows), dtype=bool)
        if h < H - 1:
            upper = agent.max_reward * (H - h - 1)
            for j, k in enumerate(rows):
                inside[j] = bool(np.any(dataset.features[k, h] != 0.0))
                if dataset.terminal[k, h]:
                    continue
                known = None if known_fn is None else known_fn(dataset.next_observations[k, h])
                best = -np.inf
                for a in range(agent.n_actions):
                    if known is not None and not np.isnan(known[a]):
                        q = float(known[a])
                    else:
                        phi_next = dataset.next_action_features[k, h, a]
                        q = float(phi_next @ weights[h + 1])
                        if agent.beta > 0.0:
                            q -= agent.beta * _bonus(phi_next, lambda_invs[h + 1],
                                                     getattr(agent, "bonus", "elliptical"))
                        q = min(q, upper)
                        if agent.truncate_below:
                            q = max(q, 0.0)
                    best = max(best, q)
                values[j] = best
        else:
            for j, k in enumerate(rows):
                inside[j] = bool(np.any(dataset.features[k, h] != 0.0))
        # reward regression
        if agent.reward == "known":
            reward_w = agent.theta[h]
        else:
            b = np.zeros(d)
            for k in rows:
                b += dataset.features[k, h] * dataset.rewards[k, h]
            reward_w = Lambda_inv @ b
        nu = np.zeros(d)
        if h < H - 1 and rows:
            nu = _estimate(agent, kind, h, dataset, rows, values, inside, Lambda_inv)
        weights[h] = reward_w + nu
    return weights, lambda_invs


def _kl_regularized(agent, h, dataset, rows, values, Lambda_inv):
    """R2PVI-KL: ``nu_i = -lam log [Lambda^{-1} sum_k phi_k exp(-V_k / lam)]_i``, each factor's
    sum ``sum_k xi_ik exp(-(V_k - m_i) / lam)`` shifted by the smallest value ``m_i`` among the
    samples its regression row weights (so that no factor underflows because another factor's
    values are far lower), one sample at a time."""
    d, lam = agent.feature_dim, agent.lam
    cap = agent.max_reward * agent.horizon
    nu = np.full(d, cap)
    for i in range(d):
        weights = [float(Lambda_inv[i] @ dataset.features[k, h]) for k in rows]
        loads = [j for j, x in enumerate(weights) if x != 0.0]
        if not loads:  # no sample informs factor i
            continue
        shift = min(float(values[j]) for j in loads)
        s = 0.0
        for j in loads:
            s += weights[j] * math.exp(-(values[j] - shift) / lam)
        if s > 0.0:
            nu[i] = shift - lam * math.log(s)
    nu = np.minimum(nu, cap)
    return np.maximum(nu, 0.0) if agent.truncate_below else nu


def _estimate(agent, kind, h, dataset, rows, values, inside, Lambda_inv):
    d = agent.feature_dim
    sel = values[inside]
    data_min = float(sel.min()) if sel.size else 0.0
    if kind == "PEVI":
        b = np.zeros(d)
        for j, k in enumerate(rows):
            b += dataset.features[k, h] * values[j]
        return Lambda_inv @ b
    if kind == "R2PVI" and agent.divergence in ("tv", "kl"):
        if agent.divergence == "kl":
            return _kl_regularized(agent, h, dataset, rows, values, Lambda_inv)
        v_min = data_min if agent.v_min == "data" else agent.v_min
        target = [min(v, v_min + agent.lam) for v in values]
        b = np.zeros(d)
        for j, k in enumerate(rows):
            b += dataset.features[k, h] * target[j]
        return Lambda_inv @ b
    # per-sample regression weights xi_k = Lambda^{-1} phi_k, one column at a time
    xi = np.zeros((d, len(rows)))
    for j, k in enumerate(rows):
        xi[:, j] = Lambda_inv @ dataset.features[k, h]
    nu = np.zeros(d)
    if kind == "R2PVI":  # chi2
        for i in range(d):
            nu[i] = _chi2_coordinate(xi[i], values, agent.lam)
        return nu
    rho = (np.full(d, float(agent.rho)) if np.ndim(agent.rho) == 0
           else np.asarray(agent.rho)[h])
    if kind == "DRVI_L":
        from robustrl.reference.offline import kl_constrained_rows

        for i in range(d):
            nu[i] = kl_constrained_rows(values, xi[i:i + 1], rho[i:i + 1], agent.z_floor,
                                        agent.centered)[0]
        return nu
    v_min = data_min if agent.v_min == "data" else float(agent.v_min)
    for i in range(d):
        if rho[i] == 0.0:
            nu[i] = float(xi[i] @ values)
        else:
            nu[i] = _tv_dual_coordinate(xi[i], values, rho[i], v_min)
    return nu


# --------------------------------------------------------------------------------------------
# online: LSVI-UCB and DR-RPO episode loops


class LoopLSVIUCB:
    """LSVI-UCB (elliptical bonus, greedy, ties broken uniformly at random) with per-sample
    Python loops: every episode it recomputes ``V_{h+1}`` at all past next states and the
    regression sums one transition at a time, and inverts each ``Lambda_h`` (the way the
    group's online code and most LSVI-UCB implementations do). Same hyperparameters, episode
    loop and seeding as :class:`robustrl.agents.LSVIUCB`."""

    robust = False

    def __init__(self, env, ridge=0.1, beta=1.0, seed=0, tie_break="random"):
        base = env.unwrapped
        self.env, self.H, self.d = env, base.horizon, base.feature_dim
        self.A = env.action_space.n
        self.ridge, self.beta, self.seed, self.tie_break = ridge, beta, seed, tie_break
        self.Lambda = [ridge * np.eye(self.d) for _ in range(self.H)]
        self.Lambda_inv = [np.eye(self.d) / ridge for _ in range(self.H)]
        self.w = [np.zeros(self.d) for _ in range(self.H)]
        self.data = [[] for _ in range(self.H)]  # (phi, r, next_feats, valid) per step
        self.rng = np.random.default_rng(seed)
        self.seeded = False

    # ---- Q and the policy
    def bonus(self, phi, h):
        return math.sqrt(max(float(phi @ self.Lambda_inv[h] @ phi), 0.0))

    def q(self, phi, h):
        value = float(phi @ self.w[h]) + self.beta * self.bonus(phi, h)
        return min(max(value, 0.0), float(self.H - h))

    def probs(self, feats, h):
        qs = [self.q(feats[a], h) for a in range(self.A)]
        best = max(qs)
        if self.tie_break == "first":
            p = np.zeros(self.A)
            p[qs.index(best)] = 1.0
            return p
        top = np.array([1.0 if x == best else 0.0 for x in qs])
        return top / top.sum()

    def next_value(self, next_feats, h_next):
        return max(self.q(next_feats[a], h_next) for a in range(self.A))

    def after_step(self, h):
        pass

    def regression(self, h, xi, values):
        return xi @ values

    # ---- the loop
    def choose(self, feats, h):
        p = self.probs(feats, h)
        if np.count_nonzero(p) == 1:
            return int(np.argmax(p))
        return int(self.rng.choice(self.A, p=p))

    def episode(self):
        base = self.env.unwrapped
        if not self.seeded:
            obs, _ = self.env.reset(seed=self.seed)
            self.seeded = True
        else:
            obs, _ = self.env.reset()
        total = 0.0
        while True:
            h = int(round(float(np.ravel(obs)[-1])))
            feats = np.asarray(base.action_features(obs), dtype=np.float64)
            a = self.choose(feats, h)
            next_obs, r, terminated, truncated, _ = self.env.step(a)
            total += float(r)
            next_step = int(round(float(np.ravel(next_obs)[-1])))
            valid = (not terminated) and next_step < self.H
            next_feats = (np.asarray(base.action_features(next_obs), dtype=np.float64) if valid
                          else np.zeros((self.A, self.d)))
            phi = feats[a].copy()
            self.data[h].append((phi, float(r), next_feats, valid))
            self.Lambda[h] += np.outer(phi, phi)
            self.Lambda_inv[h] = np.linalg.inv(self.Lambda[h])
            if terminated or truncated or next_step >= self.H:
                return total
            obs = next_obs

    def backward(self):
        for h in range(self.H - 1, -1, -1):
            rows = self.data[h]
            b = np.zeros(self.d)
            for phi, r, _, _ in rows:
                b += phi * r
            w = self.Lambda_inv[h] @ b
            if rows and h < self.H - 1:
                values = np.array([self.next_value(nf, h + 1) if valid else 0.0
                                   for _, _, nf, valid in rows])
                xi = np.zeros((self.d, len(rows)))
                for j, (phi, _, _, _) in enumerate(rows):
                    xi[:, j] = self.Lambda_inv[h] @ phi
                w = w + self.regression(h, xi, values)
            self.w[h] = w
            self.after_step(h)

    def learn(self, episodes):
        for _ in range(episodes):
            self.episode()
            self.backward()
        return self


class LoopDRRPO(LoopLSVIUCB):
    """DR-RPO (TV ball, d-rectangular bonus, softmax mirror-descent policy with the
    ``policy_q="linear"``, ``evaluation="updated"`` settings of :class:`robustrl.agents.DRRPO`,
    its 0.1.0 defaults) in the loop style:
    per-sample values, per-coordinate TV dual by a loop over the candidate ``alpha``."""

    robust = True

    def __init__(self, env, rho=0.1, tau=0.1, eta=1.0, v_min=0.0, ridge=0.1, beta=1.0, seed=0):
        super().__init__(env, ridge=ridge, beta=beta, seed=seed)
        self.rho, self.tau, self.eta, self.v_min = rho, tau, eta, v_min
        self.log_ref = np.full(self.A, -math.log(self.A))
        self.pol_w = [np.zeros(self.d) for _ in range(self.H)]
        self.pol_b = [np.zeros(self.d) for _ in range(self.H)]

    def bonus(self, phi, h):
        total = 0.0
        for i in range(self.d):
            total += abs(phi[i]) * math.sqrt(self.Lambda_inv[h][i, i])
        return total

    def log_probs(self, feats, h):
        logits = [self.log_ref[a] + float(feats[a] @ self.pol_w[h])
                  + float(np.abs(feats[a]) @ self.pol_b[h]) for a in range(self.A)]
        top = max(logits)
        shifted = [x - top for x in logits]
        log_total = math.log(sum(math.exp(x) for x in shifted))
        return np.array([x - log_total for x in shifted])

    def probs(self, feats, h):
        return np.exp(self.log_probs(feats, h))

    def next_value(self, next_feats, h_next):
        logp = self.log_probs(next_feats, h_next)
        value = 0.0
        for a in range(self.A):
            p = math.exp(logp[a])
            value += p * self.q(next_feats[a], h_next)
            if p > 0.0:
                value -= self.tau * p * (logp[a] - self.log_ref[a])
        return max(value, 0.0)

    def regression(self, h, xi, values):
        nu = np.zeros(self.d)
        for i in range(self.d):
            nu[i] = _tv_dual_coordinate(xi[i], values, self.rho, self.v_min)
        return nu

    def after_step(self, h):
        kappa = self.eta / (1.0 + self.eta * self.tau)
        alpha = 1.0 / (1.0 + self.eta * self.tau)
        b = self.beta * np.sqrt(np.diag(self.Lambda_inv[h]))
        self.pol_w[h] = alpha * self.pol_w[h] + kappa * self.w[h]
        self.pol_b[h] = alpha * self.pol_b[h] + kappa * b
