"""GLOW-lin: a practical APPROXIMATION of GLOW with linear value and weight classes.

arXiv:2401.09681; docs/algorithms/glow.md, GLOW-lin: what is approximated; the algorithm it
approximates is
Algorithm 1 of Amortila, Foster, Jiang, Sekhari, Xie, "Harnessing Density Ratios for Online
Reinforcement Learning" (ICLR 2024, arXiv:2401.09681), read for this module: confidence set
Eq. (4) from the clipped, penalised weighted Bellman residual, global optimism, pooled data.

Classes (``phi`` the environment's features, ``d`` their dimension):

* value class ``f_h(s, a) = phi(s, a)^T theta_h`` with ``||theta_h||_2 <= B_h``
  (``value_radius``; default ``(H - h) sqrt(d)``, which contains every ``Q`` in ``[0, H - h]``
  when the features lie on the simplex, as in a d-rectangular linear MDP);
* weight class ``w_h(s, a) = psi(s, a)^T nu`` with ``psi = phi``, **signed and unclipped**.

With signed linear weights the inner max of the paper's objective has a closed form
(docs/algorithms/glow.md,
Option 3). Writing ``b_h(theta) = E_hat[psi Delta_h f_theta]`` and
``Sigma_h = E_hat[psi psi^T] + (ridge / n) I``:

* ``penalty=True``: ``max_nu nu^T b - alpha nu^T Sigma nu = b^T Sigma^{-1} b / (4 alpha)``; with
  GLOW's [RECON] radius ``beta_t = kappa L / (alpha_t n_t)`` the constraint
  ``max_w L_h <= beta_t`` is ``||b_h||^2_{Sigma_h^{-1}} <= 4 kappa L / n_t`` (alpha cancels);
* ``penalty=False``: over a ball ``||nu||_2 <= R`` the max is the dual norm ``R ||b_h||_2``;
  with the Hoeffding radius ``kappa R psi_max H sqrt(2 L / n_t)`` the constraint is
  ``||b_h||_2 <= kappa psi_max H sqrt(2 L / n_t)`` (R cancels).

``L = log(H T / delta) + 2 d log(e + n_T)`` replaces ``log(H |F| |W| T / delta)`` by a covering
surrogate of the two ``d``-dimensional classes [RECON]. With ``max_{a'}`` in ``Delta`` the
constraints are not convex in ``theta``; each round alternates (docs/algorithms/glow.md, GLOW-lin):

1. fix the greedy policies of the current ``theta`` (at every pooled next state and at the
   initial states); ``b_h`` is then affine in ``theta`` and every constraint an ellipsoid;
2. solve the convex program ``max theta_0^T phi_bar_0`` (initial value under the fixed greedy
   first action) subject to the ellipsoids and the balls, with ``scipy.optimize`` (SLSQP,
   analytic gradients), warm-started at the least-squares (LSVI) solution, which is feasible;
3. recompute the greedy policies; stop when they no longer change (``max_policy_iters``).

**What is approximated** (relative to the paper's Algorithm 1):

* signed, unclipped linear weights instead of the nonnegative clipped class ``clip_gamma[w]``
  (no truncation schedule at all: the closed form needs the whole linear span). A signed ``w``
  tests both signs of the Bellman error, which is *stronger* than the paper's one-sided test;
  ``Q*`` still satisfies it in expectation;
* the global optimistic argmax over the confidence set is replaced by the alternation above,
  a local heuristic (it is exact for the fixed greedy policies, not over all of them);
* the schedule constants (``kappa``, ``L``) are [RECON] choices, not the paper's (its constants,
  ``alpha_t = 8 / gamma_t``, ``beta_t = 36 gamma_t L' / (K (t - 1))``, give
  ``4 alpha beta = 1152 L' / n_t``, i.e. ``kappa = 288``);
* ``f`` is not truncated to ``[0, H - h]``; the ridge term regularises ``Sigma_h``;
* :meth:`predict` acts with the last iterate; the PAC output of the paper is the uniform
  mixture over rounds (``theta_history_`` keeps every round's parameters).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize

from robustrl.agents.base import (
    LinearAgent,
    Training,
    deprecated_progress,
    renamed_attribute,
    resolve_budget,
)
from robustrl.exact import evaluate_policy, robust_value_iteration
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.validation import check_array, check_bool, check_int, check_positive, check_seed

__all__ = ["GLOWLin"]


class GLOWLin(LinearAgent):
    """GLOW with linear value / weight classes (module docstring: an approximation).

    Args:
        env: Gymnasium env with the robustrl linear-feature interface (``horizon``,
            ``feature_dim``, ``action_features`` on ``env.unwrapped``), observations ending with
            the step. ``env.unwrapped.model`` (FiniteMDP or LinearMDP) enables exact regret.
        episodes_per_round: ``K``.
        kappa: multiplier of the confidence radius [RECON].
        ridge: ``lambda > 0`` in ``Sigma_h = (Psi^T Psi + lambda I) / n``.
        penalty: True: the ``- alpha c^2`` (Bernstein) form; False: the ball / Hoeffding form.
        value_radius: ``B_h``; a scalar or ``(H,)``; None: ``(H - h) sqrt(d)``.
        delta: failure probability in ``L``.
        max_policy_iters: rounds of "fix greedy -> convex program" per round.
        optimistic_prior: warm-start from ridge LSVI shrunk towards ``(H - h) 1`` (the top
            value on simplex features) instead of 0, so unexplored directions start
            optimistic and the greedy policies that the alternation fixes explore them.
        seed: seeds the first ``env.reset``.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("theta_",)

    def _param_specs(self) -> dict[str, dict]:
        return {"theta_": {"kind": "f", "shape": (self.horizon, self.feature_dim)}}

    def __init__(
        self,
        env,
        *,
        episodes_per_round: int = 1,
        kappa: float = 1.0,
        ridge: float = 1.0,
        penalty: bool = True,
        value_radius=None,
        delta: float = 0.1,
        max_policy_iters: int = 10,
        optimistic_prior: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(env, check_seed(seed))
        H, d = self.horizon, self.feature_dim
        self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        self.kappa = check_positive(kappa, "kappa")
        self.ridge = check_positive(ridge, "ridge")
        self.penalty = check_bool(penalty, "penalty")
        if value_radius is None:
            self.value_radius = None
            self._radius = (H - np.arange(H)) * math.sqrt(d)
        else:
            r = np.asarray(value_radius, dtype=np.float64)
            if r.ndim == 0:
                r = np.full(H, float(r))
            r = check_array(r, "value_radius", shape=(H,))
            if np.any(r <= 0):
                raise ValueError(f"value_radius must be > 0 (scalar or shape ({H},)); got {r}")
            self.value_radius = r.tolist() if np.ndim(value_radius) else float(value_radius)
            self._radius = r
        self.delta = check_positive(delta, "delta")
        if self.delta >= 1:
            raise ValueError(f"delta must lie in (0, 1); got {delta!r}")
        self.max_policy_iters = check_int(max_policy_iters, "max_policy_iters", low=1)
        self.optimistic_prior = check_bool(optimistic_prior, "optimistic_prior")
        self.seed = check_seed(seed)
        base = env.unwrapped
        model = getattr(base, "model", None)
        self.model = model if isinstance(model, (FiniteMDP, LinearMDP)) else None
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        self._phi = [np.zeros((0, d)) for _ in range(H)]
        self._rew = [np.zeros(0) for _ in range(H)]
        self._next = [np.zeros((0, A, d)) for _ in range(H)]
        self._init = np.zeros((0, A, d))
        self._env_seeded = False
        self.theta_ = np.zeros((H, d))
        self.theta_history_ = np.zeros((0, H, d))
        self.radius_sq_ = np.zeros(0)
        self.constraint_values_ = np.zeros((0, H))
        self.policy_iterations_ = np.zeros(0, dtype=np.int64)
        self.solver_failures_: list[int] = []
        self.regret_ = np.zeros(0)
        self.n_episodes_ = 0
        self._table = None
        if self.model is not None:
            self.optimal_value_ = robust_value_iteration(self.model).value
            base = self.env.unwrapped
            # features of every state (the step does not change them in robustrl envs)
            self._table = np.stack([np.asarray(base.action_features(np.array([s, 0])), float)
                                    for s in range(self.model.n_states)])
        else:
            self.optimal_value_ = None

    # -------------------------------------------------------------- schedule
    def log_term(self, total_rounds: int) -> float:
        """``L = log(H T / delta) + 2 d log(e + n_T)`` (covering surrogate) [RECON]."""
        n_last = max(total_rounds - 1, 1) * self.episodes_per_round
        return (math.log(self.horizon * total_rounds / self.delta)
                + 2 * self.feature_dim * math.log(math.e + n_last))

    def radius_sq(self, t: int, total_rounds: int) -> float:
        """Squared constraint radius at round ``t >= 2`` (module docstring)."""
        n_t = (t - 1) * self.episodes_per_round
        L = self.log_term(total_rounds)
        if self.penalty:
            return 4.0 * self.kappa * L / n_t
        psi_max = max(float(np.linalg.norm(p, axis=-1).max()) if len(p) else 0.0
                      for p in self._phi)
        return (self.kappa * psi_max * self.horizon) ** 2 * 2.0 * L / n_t

    # ------------------------------------------------------------ statistics
    def _greedy_next(self, theta: np.ndarray, h: int) -> np.ndarray:
        """``phi(s'_j, pi_theta(s'_j))`` for step ``h``'s tuples (zeros at the last step)."""
        nxt = self._next[h]
        if h == self.horizon - 1 or len(nxt) == 0:
            return np.zeros((len(nxt), self.feature_dim))
        a = np.argmax(nxt @ theta[h + 1], axis=1)
        return nxt[np.arange(len(nxt)), a]

    def _moments(self, theta: np.ndarray, n_tuples: int | None = None):
        """Per step ``(M, N, c, S, n)`` with ``b_h = M theta_h - N theta_{h+1} - c`` and the
        constraint matrix ``S`` (``Sigma^{-1}`` or ``I``), for the greedy policies of theta;
        ``n_tuples``: use only each step's first ``n_tuples`` tuples (an earlier round's data)."""
        out = []
        d = self.feature_dim
        for h in range(self.horizon):
            Phi = self._phi[h][:n_tuples]
            n = len(Phi)
            if n == 0:
                out.append(None)
                continue
            nxt = self._greedy_next(theta, h)[:n_tuples]
            M = Phi.T @ Phi / n
            N = Phi.T @ nxt / n
            c = Phi.T @ self._rew[h][:n_tuples] / n
            S = (np.linalg.inv(M + self.ridge / n * np.eye(d)) if self.penalty else np.eye(d))
            out.append((M, N, c, S, n))
        return out

    def constraint_values(self, theta, n_tuples: int | None = None) -> np.ndarray:
        """``||b_h(theta)||^2_S`` for every step with the greedy (max) target of ``theta``.

        ``n_tuples``: on each step's first ``n_tuples`` pooled tuples only; the data of round
        ``t`` is the first ``(t - 1) K`` (every episode adds one tuple per step).
        """
        theta = check_array(theta, "theta", shape=(self.horizon, self.feature_dim))
        if n_tuples is not None:
            n_tuples = check_int(n_tuples, "n_tuples", low=1)
        vals = np.zeros(self.horizon)
        for h, mom in enumerate(self._moments(theta, n_tuples)):
            if mom is None:
                continue
            M, N, c, S, _ = mom
            nxt = theta[h + 1] if h < self.horizon - 1 else np.zeros(self.feature_dim)
            b = M @ theta[h] - N @ nxt - c
            vals[h] = b @ S @ b
        return vals

    def prior_parameters(self) -> np.ndarray:
        """The ridge prior: ``(H - h) 1`` with ``optimistic_prior`` (the top value ``H - h``
        everywhere on simplex features), else zeros."""
        H, d = self.horizon, self.feature_dim
        if not self.optimistic_prior:
            return np.zeros((H, d))
        return (H - np.arange(H))[:, None] * np.ones((H, d))

    def least_squares_parameters(self, policy_from=None) -> np.ndarray:
        """Least-squares value iteration on the pooled data (ridge ``lambda``), backwards.

        ``theta_h = argmin sum_j (phi_j^T theta - y_j)^2 + lambda ||theta - prior_h||^2`` with
        ``y_j = r_j + max_a' phi(s'_j, a')^T theta_{h+1}``; with ``policy_from`` (an ``(H, d)``
        theta) the next-step targets use that theta's greedy actions (fixed policy) instead.
        """
        H, d = self.horizon, self.feature_dim
        prior = self.prior_parameters()
        theta = prior.copy()
        for h in range(H - 1, -1, -1):
            Phi = self._phi[h]
            if len(Phi) == 0:
                continue
            src = theta if policy_from is None else np.asarray(policy_from)
            nxt = self._greedy_next(src, h)
            target = self._rew[h] + (nxt @ theta[h + 1] if h < H - 1 else 0.0)
            theta[h] = np.linalg.solve(Phi.T @ Phi + self.ridge * np.eye(d),
                                       Phi.T @ target + self.ridge * prior[h])
        return theta

    def _initial_features(self, theta: np.ndarray) -> np.ndarray:
        """``E_{s_1}[phi(s_1, pi_theta(s_1))]``: exact ``d_1`` if the model is known."""
        if self._table is not None:
            a = np.argmax(self._table @ theta[0], axis=1)
            rows = self._table[np.arange(len(a)), a]
            return self.model.initial_distribution @ rows
        a = np.argmax(self._init @ theta[0], axis=1)
        return self._init[np.arange(len(a)), a].mean(axis=0)

    # ---------------------------------------------------------------- solver
    def _solve_fixed_policy(self, theta0: np.ndarray, r_sq: float | None):
        """The convex program of step 2 for the greedy policies of ``theta0``."""
        H, d = self.horizon, self.feature_dim
        moments = self._moments(theta0)
        c0 = self._initial_features(theta0)
        B = self._radius

        def objective(x):
            return -float(c0 @ x[:d])

        def objective_grad(x):
            g = np.zeros(H * d)
            g[:d] = -c0
            return g

        cons = []
        for h in range(H):
            def ball(x, h=h):
                th = x[h * d:(h + 1) * d]
                return B[h] ** 2 - th @ th

            def ball_jac(x, h=h):
                g = np.zeros(H * d)
                g[h * d:(h + 1) * d] = -2.0 * x[h * d:(h + 1) * d]
                return g

            cons.append({"type": "ineq", "fun": ball, "jac": ball_jac})
            if r_sq is None or moments[h] is None:
                continue
            M, N, c, S, _ = moments[h]

            def resid(x, h=h, M=M, N=N, c=c):
                nxt = x[(h + 1) * d:(h + 2) * d] if h < H - 1 else np.zeros(d)
                return M @ x[h * d:(h + 1) * d] - N @ nxt - c

            def ell(x, S=S, resid=resid):
                b = resid(x)
                return r_sq - b @ S @ b

            def ell_jac(x, h=h, M=M, N=N, S=S, resid=resid):
                Sb = S @ resid(x)
                g = np.zeros(H * d)
                g[h * d:(h + 1) * d] = -2.0 * M.T @ Sb
                if h < H - 1:
                    g[(h + 1) * d:(h + 2) * d] = 2.0 * N.T @ Sb
                return g

            cons.append({"type": "ineq", "fun": ell, "jac": ell_jac})
        res = minimize(objective, theta0.ravel(), jac=objective_grad, method="SLSQP",
                       constraints=cons, options={"maxiter": 500, "ftol": 1e-10})
        # SLSQP may stop on "positive directional derivative" at a point that is optimal to
        # rounding; count a run as failed only if its point violates a constraint.
        slack = min(float(con["fun"](res.x)) for con in cons)
        tol = 1e-9 + 1e-6 * (r_sq if r_sq is not None else 0.0)
        return res.x.reshape(H, d), bool(res.success or slack >= -tol)

    def _greedy_signature(self, theta: np.ndarray) -> bytes:
        parts = [np.argmax(self._next[h] @ theta[h + 1], axis=1)
                 for h in range(self.horizon - 1) if len(self._next[h])]
        init = self._table if self._table is not None else self._init
        parts.append(np.argmax(init @ theta[0], axis=1))
        return b"".join(p.astype(np.int64).tobytes() for p in parts)

    def optimistic_parameters(self, r_sq: float | None) -> tuple[np.ndarray, int, bool]:
        """Steps 1-3 of the module docstring on the pooled data; ``r_sq=None``: no data yet.

        Returns ``(theta, policy iterations used, solver success)``.
        """
        start = self.least_squares_parameters()
        # keep the warm start inside the balls (it is feasible for the ellipsoids)
        norms = np.linalg.norm(start, axis=1)
        start = start * np.minimum(1.0, self._radius / np.maximum(norms, 1e-300))[:, None]
        theta, ok = start, True
        sig = self._greedy_signature(theta)
        for it in range(1, self.max_policy_iters + 1):
            theta, ok = self._solve_fixed_policy(theta, r_sq)
            new_sig = self._greedy_signature(theta)
            if new_sig == sig:
                return theta, it, ok
            sig = new_sig
        return theta, self.max_policy_iters, ok

    # -------------------------------------------------------------- sampling
    def _reset(self):
        if not self._env_seeded:
            obs, _ = self.env.reset(seed=self.seed)
            self._env_seeded = True
        else:
            obs, _ = self.env.reset()
        # every initial state counts for the empirical d_1 (the current round's first one too)
        self._init = np.concatenate([self._init, np.asarray(self.action_features(obs))[None]])
        return obs

    def _play(self, theta: np.ndarray, first_obs) -> None:
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        phis = [[] for _ in range(H)]
        rews = [[] for _ in range(H)]
        nxts = [[] for _ in range(H)]
        for k in range(self.episodes_per_round):
            obs = first_obs if k == 0 else self._reset()
            for h in range(H):
                feats = self.action_features(obs)
                a = int(np.argmax(feats @ theta[h]))
                obs, r, terminated, truncated, _ = self.env.step(a)
                self.num_timesteps += 1
                phis[h].append(feats[a])
                rews[h].append(float(r))
                last = h == H - 1 or terminated or truncated
                nxts[h].append(np.zeros((A, d)) if last else self.action_features(obs))
                if terminated or truncated:
                    break
            self.n_episodes_ += 1
        for h in range(H):
            if phis[h]:
                self._phi[h] = np.concatenate([self._phi[h], np.asarray(phis[h])])
                self._rew[h] = np.concatenate([self._rew[h], np.asarray(rews[h])])
                self._next[h] = np.concatenate([self._next[h], np.asarray(nxts[h])])

    def greedy_policy_table(self, theta) -> np.ndarray | None:
        """``(H, S)`` greedy actions of ``theta`` on every state (None without a model)."""
        if self._table is None:
            return None
        return np.argmax(np.einsum("sad,hd->hsa", self._table, np.asarray(theta)), axis=-1)

    # ----------------------------------------------------------------- learn
    n_episodes = renamed_attribute("n_episodes_")

    def learn(self, total_timesteps: int | None = None, callback=None,
              progress_bar: bool = False, *, total_rounds: int | None = None,
              episodes_per_round: int | None = None, progress: bool | None = None) -> GLOWLin:
        """Run rounds ``1..T`` (fresh start; ``T`` enters the radius); returns ``self``.

        Budget, callback and progress bar as in :meth:`robustrl.agents.GLOW.learn`
        (``_on_step`` after every round; ``num_timesteps`` counts the env steps taken).
        """
        if self.env is None:
            raise ValueError("env is required to learn; load(path, env=...) to keep training")
        if episodes_per_round is not None:
            self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        T = resolve_budget(total_timesteps, "total_rounds", total_rounds,
                           self.episodes_per_round * self.horizon)
        training = Training(self, callback, deprecated_progress(progress_bar, progress), T,
                            "round", desc="GLOW-lin rounds")
        self._reset_state()
        history, radii, cvals, iters, regret = [], [], [], [], []
        training.start(locals())
        for t in range(1, T + 1):
            first = self._reset()
            r_sq = None if t == 1 else self.radius_sq(t, T)
            theta, n_it, ok = self.optimistic_parameters(r_sq)
            if not ok:
                self.solver_failures_.append(t)
            history.append(theta)
            radii.append(np.inf if r_sq is None else r_sq)
            cvals.append(self.constraint_values(theta))
            iters.append(n_it)
            if self._table is not None:
                pol = self.greedy_policy_table(theta)
                regret.append(self.optimal_value_ - evaluate_policy(self.model, pol).value)
            self._play(theta, first)
            if training.callback is not None:  # a checkpoint saves the rounds so far
                self._store_rounds(history, radii, cvals, iters, regret)
            if not training.step(locals()):
                break
        training.end()
        self._store_rounds(history, radii, cvals, iters, regret)
        return self

    def _store_rounds(self, history, radii, cvals, iters, regret) -> None:
        self.theta_ = history[-1].copy()
        self.theta_history_ = np.asarray(history)
        self.radius_sq_ = np.asarray(radii)
        self.constraint_values_ = np.asarray(cvals)
        self.policy_iterations_ = np.asarray(iters, dtype=np.int64)
        self.regret_ = np.asarray(regret)
        self._fitted = True

    def parameter_diameter(self, theta=None, r_sq: float | None = None) -> np.ndarray:
        """Per-step bound on ``||theta'_h - theta''_h||_2`` for two points of the confidence set
        that share the greedy policies of ``theta`` (default: the final ``theta_``).

        Both satisfy ``||G x - c||_S <= r`` blockwise, so their difference ``D`` has
        ``||G_h D||_{S_h} <= 2 r`` for every step, hence ``||D||_2 <= 2 r sqrt(H) / s_min``
        with ``s_min`` the smallest singular value of ``blockdiag(S_h^{1/2}) G`` (G the stacked
        affine maps ``b_h``). Returns the bound (the same for every step), shape ``(H,)``.
        """
        theta = self.theta_ if theta is None else np.asarray(theta)
        if r_sq is None:
            r_sq = float(self.radius_sq_[-1])
        H, d = self.horizon, self.feature_dim
        G = np.zeros((H * d, H * d))
        for h, mom in enumerate(self._moments(theta)):
            if mom is None:
                return np.full(H, np.inf)
            M, N, _, S, _ = mom
            w, V = np.linalg.eigh(S)
            root = V @ np.diag(np.sqrt(np.maximum(w, 0.0))) @ V.T
            G[h * d:(h + 1) * d, h * d:(h + 1) * d] = root @ M
            if h < H - 1:
                G[h * d:(h + 1) * d, (h + 1) * d:(h + 2) * d] = -root @ N
        s_min = np.linalg.svd(G, compute_uv=False).min()
        return np.full(H, 2.0 * math.sqrt(r_sq * H) / s_min if s_min > 0 else np.inf)

    # ---------------------------------------------------------------- acting
    def q_values(self, obs) -> np.ndarray:
        """``phi(s, a)^T theta_h`` of the last iterate (not truncated)."""
        self._check_fitted()
        return self.action_features(obs) @ np.asarray(self.theta_)[self.step_of(obs)]
