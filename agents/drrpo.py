"""DR-RPO: distributionally robust regularised policy optimisation (Gu, He, Liu, Xu 2025).

**Reconstruction.** Only the abstract of arXiv 2510.14246 could be read and no code of its
authors was found (see ``docs/drrpo-notes.md``). What the abstract fixes is followed: online,
model-free policy optimisation over the softmax class, a reference-policy (KL) regulariser, a
d-rectangular linear MDP and an upper-confidence bonus. Everything else is the reconstruction of
this package's reconstruction, docs/algorithms/drrpo.md (OPPO of Cai et al. 2020 combined with the
d-rectangular robust
regression of DR-LSVI-UCB), and every choice below is a flag.

Objective (arXiv:2510.14246, docs/algorithms/drrpo.md):
``V^pi_h(s) = inf_{P in U^rho} E^{pi,P}[sum_t r_t - tau KL(pi_t(.|s_t) ||
pi_ref)]`` over the d-rectangular ball ``U^rho`` (TV by default, ``divergence="kl"`` optional).

Per episode ``k``:

1. play ``pi^k`` (sampled) in the training environment;
2. optimistic robust evaluation, backward in ``h`` (:mod:`robustrl.agents._online`):
   ``w_h = Lambda_h^{-1} sum phi r + nu_h`` with ``nu_h`` the exact TV dual of the next-step
   values ``V_{h+1}(s'_tau)``, ``Q_h = clip(phi^T w_h + beta sum_i |phi_i|
   sqrt([Lambda_h^{-1}]_ii), 0, H - h)`` and
   ``V_{h+1}(s') = <pi_{h+1}(.|s'), Q_{h+1}(s',.)> - tau KL(pi_{h+1}(.|s') || pi_ref)``,
   clipped at 0 (``clip_value``);
3. mirror-descent step (KL-regularised, step ``eta``)
   ``pi^{k+1}_h ∝ (pi^k_h)^{1/(1+eta tau)} pi_ref^{eta tau/(1+eta tau)}
   exp(eta Q^k_h / (1+eta tau))``; ``eta = inf`` gives the soft-greedy ``pi ∝ pi_ref exp(Q/tau)``.

The policy is stored so that ``pi^k(.|s)`` is computable from the features at any observation:
``log pi^k_h = log pi_ref + sum_j c_j Qhat^j_h + const`` with ``Qhat^j_h(s,a) = phi^T u_j +
|phi|^T b_j`` (``u_j = w^j_h``, ``b_j = beta sqrt(diag Lambda^{-1})``), clipped to ``[0, H - h]``
with ``policy_q="clipped"`` (the default, OPPO's bounded Q, arXiv:1912.05830 Algorithm 1: all
past pairs are kept, ``O(k |A| d)`` per fresh state after ``k`` episodes) and unclipped with
``policy_q="linear"`` (the sum collapses into one pair of ``d``-vectors per step). At every
feature matrix ``phi(s, .)`` seen so far (the data's next states, the states acted in and the
model's states) the agent caches ``log pi^k_h(.|s)`` and advances it with
:func:`robustrl.policies.kl_mirror_descent_step`'s core after each evaluation, so the cost per
episode does not grow with ``k`` on finite state spaces; a state not cached yet starts from the
closed form above (the unrolled recursion; they agree to rounding, tests/test_online_agents.py).

Flags of the reconstruction (paper choice unknown for all of them):

* ``divergence``/``rho``: d-rectangular TV ball (default), or KL;
* ``policy_q``: ``"clipped"`` (default: the bounded Q in ``[0, H - h]`` that
  policy-optimisation analyses need) | ``"linear"`` (the unclipped optimistic Q, whose bonus
  can reach several units per coordinate at ridge 0.1; the default in 0.1.0);
* ``evaluation``: ``"current"`` (default, policy optimisation in OPPO's order) evaluates
  ``V_{h+1}`` under the played ``pi^k`` and updates all steps after the pass; ``"updated"``
  evaluates under ``pi^{k+1}_{h+1}``, updated inside the backward pass as soon as ``Q^k_{h+1}``
  is known (the default in 0.1.0): with ``eta = inf`` this is soft value iteration, and
  ``tau -> 0`` recovers (DR-)LSVI-UCB exactly, a value-based method, not policy optimisation;
* ``clip_value``: clip ``V_{h+1}`` at 0 (the reconstruction's default) or not;
* ``bonus``: ``"d_rectangular_l1"`` (paper form, linear in ``|phi|``) or ``"none"``; the
  elliptical and l2 forms are not linear in the features and cannot be stored this way;
* ``v_min``: the TV adversary's floor, 0 (absorbing failure state, authors' DR-LSVI-UCB code) or
  ``"data"``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from robustrl._kernels.policy import log_softmax_rows as _log_softmax_rows
from robustrl.agents._online import (
    OnlineLinearAgent,
    _check_eta,
    check_reference_vector,
    check_robust_setting,
)
from robustrl.bonus import check_bonus_name
from robustrl.exact import policy_regularized_evaluate, policy_regularized_value_iteration
from robustrl.models import LinearMDP
from robustrl.policies import _mirror_descent_log_step
from robustrl.validation import check_bool, check_int, check_positive

__all__ = ["DRRPO"]

_POLICY_Q = ("linear", "clipped")
#: saved since 0.2.0; a 0.1.0 file without them loads with an empty cache (closed form).
_CACHE_PARAMS = ("policy_cache_counts_", "policy_cache_features_", "policy_cache_logp_")
_EVALUATION = ("updated", "current")


def _append_row(buffers: list[np.ndarray], h: int, used: np.ndarray, m: int,
                row: np.ndarray) -> np.ndarray:
    """``used (m, d)`` with ``row`` appended, as a view of ``buffers[h]`` (grown by doubling,
    so appending is O(d) amortised instead of a copy of all ``m`` rows)."""
    buf = buffers[h]
    if buf.shape[0] <= m or not np.may_share_memory(buf, used):
        grown = np.zeros((max(2 * (m + 1), 64), row.shape[0]))
        grown[:m] = used
        buffers[h] = buf = grown
    buf[m] = row
    return buf[: m + 1]


class DRRPO(OnlineLinearAgent):
    """DR-RPO (reconstruction, see the module docstring): optimistic robust policy optimisation.

    Args:
        env: robustrl linear-feature Gymnasium environment (``horizon``, ``feature_dim``,
            ``action_features``; observations end with the step).
        rho: radius of each factor's ball (TV: ``[0, 1]``, KL: ``>= 0``; 0 = non-robust).
        divergence: ``"tv"`` (default) or ``"kl"``.
        tau: temperature ``> 0`` of the reference-policy KL regulariser.
        eta: mirror-descent step ``> 0``, or ``inf`` for the soft-greedy policy.
        reference_policy: None (uniform) or an ``(A,)`` probability vector used at every state.
        policy_q: ``"clipped"`` (default) or ``"linear"``.
        evaluation: ``"current"`` (default) or ``"updated"``.
        clip_value: clip the evaluated ``V_{h+1}`` at 0 (default True).
        v_min: TV floor, a number ``>= 0`` (default 0) or ``"data"``.
        ridge: ridge ``gamma > 0`` (default 0.1, the simulated-MDP setting of arXiv:2411.18612,
            docs/r2pvi-results.md).
        beta: bonus multiplier ``>= 0`` (default 1).
        bonus: ``"d_rectangular_l1"`` (default; alias ``"paper_l1"``) or ``"none"``.
        seed: seeds the first ``env.reset`` and the action sampling.
    """

    _param_names: ClassVar[tuple[str, ...]] = OnlineLinearAgent._base_param_names + (
        "policy_counts_", "policy_coefs_", "policy_w_", "policy_b_",
        "policy_cache_counts_", "policy_cache_features_", "policy_cache_logp_",
    )

    def __init__(self, env, *, rho: float = 0.1, divergence: str = "tv", tau: float = 0.1,
                 eta: float = 1.0, reference_policy=None, policy_q: str = "clipped",
                 evaluation: str = "current", clip_value: bool = True,
                 v_min: float | str = 0.0, ridge: float = 0.1, beta: float = 1.0,
                 bonus: str = "d_rectangular_l1", seed: int | None = None) -> None:
        name = check_bonus_name(bonus)
        if name not in ("d_rectangular_l1", "none"):
            raise ValueError(
                "bonus must be 'd_rectangular_l1' (alias 'paper_l1') or 'none' for DRRPO: the "
                "policy is stored through features and needs a bonus linear in |phi|; "
                f"got {bonus!r}"
            )
        super().__init__(env, ridge=ridge, beta=beta, bonus=name, seed=seed)
        self.divergence, self.rho, self.v_min = check_robust_setting(divergence, rho, v_min)
        self.tau = self._check_tau(tau)
        self.eta = _check_eta(eta)
        self._ref = check_reference_vector(reference_policy, self.n_actions)
        self.reference_policy = None if reference_policy is None else self._ref.copy()
        with np.errstate(divide="ignore"):
            self._log_ref = np.log(self._ref)
        if policy_q not in _POLICY_Q:
            raise ValueError(f"policy_q must be one of {_POLICY_Q}; got {policy_q!r}")
        self.policy_q = policy_q
        if evaluation not in _EVALUATION:
            raise ValueError(f"evaluation must be one of {_EVALUATION}; got {evaluation!r}")
        self.evaluation = evaluation
        self.clip_value = check_bool(clip_value, "clip_value")
        H, d = self.horizon, self.feature_dim
        # pi^1 = pi_ref: no terms yet. Per step: coefficients (m,), u_j (m, d), b_j (m, d).
        self._coefs = [np.zeros(0) for _ in range(H)]
        self._terms_w = [np.zeros((0, d)) for _ in range(H)]
        self._terms_b = [np.zeros((0, d)) for _ in range(H)]
        # capacity-doubling storage behind _terms_w / _terms_b (policy_q="clipped")
        self._w_buf = [np.zeros((0, d)) for _ in range(H)]
        self._b_buf = [np.zeros((0, d)) for _ in range(H)]
        self._reset_cache()

    @staticmethod
    def _check_tau(tau) -> float:
        return check_positive(tau, "tau")

    # ------------------------------------------------------------- the policy
    @property
    def _alpha(self) -> float:
        """Weight ``1/(1 + eta tau)`` of the previous policy in the mirror-descent step."""
        return 0.0 if self.eta == math.inf else 1.0 / (1.0 + self.eta * self.tau)

    def _policy_terms(self, features: np.ndarray, h: int) -> np.ndarray:
        """``Qhat^j_h`` at ``features (N, A, d)`` for every stored term: ``(N, A, m)``."""
        terms = features @ self._terms_w[h].T + np.abs(features) @ self._terms_b[h].T
        if self.policy_q == "clipped":
            np.clip(terms, 0.0, float(self.horizon - h), out=terms)
        return terms

    def _closed_form_log_probs(self, features: np.ndarray, h: int) -> np.ndarray:
        """``log pi_h(. | s)`` at ``features (N, A, d)`` from the stored terms: ``(N, A)``."""
        logits = np.broadcast_to(self._log_ref, features.shape[:2]).copy()
        if self._coefs[h].shape[0]:
            logits += self._policy_terms(features, h) @ self._coefs[h]
        return _log_softmax_rows(logits, 1.0)  # robustrl.policies.log_softmax, unchecked

    # ----------------------------------------------------- the log-policy cache
    def _reset_cache(self) -> None:
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        self._cache_keys: list[dict[bytes, int]] = [{} for _ in range(H)]
        self._cache_feats = [np.zeros((0, A, d)) for _ in range(H)]
        self._cache_logp = [np.zeros((0, A)) for _ in range(H)]
        self._next_rows = [np.zeros(0, dtype=np.int64) for _ in range(H)]

    def _cache_rows(self, features: np.ndarray, h: int) -> np.ndarray:
        """Cache rows of ``features (N, A, d)`` at step ``h``; new ones start from the closed
        form."""
        keys = self._cache_keys[h]
        feats = np.ascontiguousarray(features, dtype=np.float64)
        rows = np.empty(feats.shape[0], dtype=np.int64)
        fresh: list[int] = []
        for n in range(feats.shape[0]):
            key = feats[n].tobytes()
            row = keys.get(key)
            if row is None:
                row = keys[key] = len(keys)
                fresh.append(n)
            rows[n] = row
        if fresh:
            new = feats[fresh]
            self._cache_feats[h] = np.concatenate([self._cache_feats[h], new])
            self._cache_logp[h] = np.concatenate(
                [self._cache_logp[h], self._closed_form_log_probs(new, h)])
        return rows

    def _log_probs_rows(self, features: np.ndarray, h: int) -> np.ndarray:
        """``log pi_h(. | s)`` at ``features (N, A, d)``: ``(N, A)``."""
        rows = self._cache_rows(features, h)  # first: it may grow the cache
        return self._cache_logp[h][rows]

    def _probs_rows(self, features: np.ndarray, h: int) -> np.ndarray:
        return np.exp(self._log_probs_rows(features, h))

    def _choose(self, features: np.ndarray, h: int) -> int:
        return self._sample(self._probs_rows(features[None], h)[0])

    def policy_q_values(self, obs) -> np.ndarray:
        """The ``Qhat_h(s, .)`` that the next mirror-descent step would use (current weights):
        unclipped with ``policy_q="linear"``, clipped with ``"clipped"``."""
        h = self.step_of(obs)
        feats = self.action_features(obs)
        q = feats @ self.weights_[h] + np.abs(feats) @ self._bonus_vector(h)
        if self.policy_q == "clipped":
            q = np.clip(q, 0.0, float(self.horizon - h))
        return q

    def _bonus_vector(self, h: int) -> np.ndarray:
        if self.bonus == "none" or self.beta == 0.0:
            return np.zeros(self.feature_dim)
        return self.beta * np.sqrt(self.lambda_inv_[h].diagonal())

    def _policy_update(self, h: int) -> None:
        """Mirror-descent step at step ``h`` with ``Q^k_h`` from the current weights."""
        u, b = self.weights_[h].copy(), self._bonus_vector(h)
        if self.eta == math.inf:
            coefs, W, B = np.full(1, 1.0 / self.tau), u[None], b[None]
        else:
            kappa = self.eta / (1.0 + self.eta * self.tau)
            alpha = self._alpha
            old_c, old_w, old_b = self._coefs[h], self._terms_w[h], self._terms_b[h]
            if self.policy_q == "linear":
                # Unclipped Q is linear in (phi, |phi|): fold every term into one.
                W = (alpha * old_c @ old_w + kappa * u)[None]
                B = (alpha * old_c @ old_b + kappa * b)[None]
                coefs = np.ones(1)
            else:
                m = old_c.shape[0]
                coefs = np.append(alpha * old_c, kappa)
                W = _append_row(self._w_buf, h, old_w, m, u)
                B = _append_row(self._b_buf, h, old_b, m, b)
        self._coefs[h], self._terms_w[h], self._terms_b[h] = coefs, W, B
        feats = self._cache_feats[h]
        if feats.shape[0]:
            q = feats @ u + np.abs(feats) @ b
            if self.policy_q == "clipped":
                np.clip(q, 0.0, float(self.horizon - h), out=q)
            self._cache_logp[h] = _mirror_descent_log_step(self._cache_logp[h], self._log_ref,
                                                           q, self.eta, self.tau)

    def policy_terms(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the stored policy at ``step``: ``coefs (m,)``, ``w (m, d)``, ``b (m, d)``
        with ``log pi_step(a|s) = log pi_ref(a) + sum_j coefs_j Qhat_j(s, a) + const``."""
        h = check_int(step, "step", low=0, high=self.horizon - 1)
        return self._coefs[h].copy(), self._terms_w[h].copy(), self._terms_b[h].copy()

    # ------------------------------------------------------ the evaluation
    def _next_values(self, h: int) -> np.ndarray:
        blocks, index = self._buffers.distinct_next(h)
        done = self._next_rows[h].shape[0]
        if blocks.shape[0] > done:  # the cache rows of next states not seen before
            new = self._cache_rows(blocks[done:], h + 1)
            self._next_rows[h] = np.concatenate([self._next_rows[h], new])
        # V once per cached state, then gathered
        q = self._q_rows(self._cache_feats[h + 1], h + 1)
        logp = self._cache_logp[h + 1]
        p = np.exp(logp)
        with np.errstate(invalid="ignore"):
            # pi (log pi - log pi_ref), 0 where pi = 0 (pi_ref = 0 implies pi = 0)
            kl_terms = np.where(p > 0.0, p * (logp - self._log_ref), 0.0)
        values = (p * q).sum(axis=1) - self.tau * kl_terms.sum(axis=1)
        if self.clip_value:
            values = np.maximum(values, 0.0)
        values = values[self._next_rows[h][index]]
        return np.where(self._buffers.step(h, next_features=False).next_nonterminal, values, 0.0)

    def _after_step(self, h: int) -> None:
        if self.evaluation == "updated":
            self._policy_update(h)

    def _after_pass(self) -> None:
        if self.evaluation == "current":
            for h in range(self.horizon):
                self._policy_update(h)

    # ---------------------------------------------------------- exact values
    def _reference_table(self, model: LinearMDP) -> np.ndarray:
        return np.broadcast_to(self._ref, (model.n_states, model.n_actions)).copy()

    def _exact_episode_value(self, model: LinearMDP) -> float:
        return policy_regularized_evaluate(
            model, self.policy_table(model), tau=self.tau,
            reference_policy=self._reference_table(model),
            divergence=self.divergence, rho=self.rho,
        ).value

    def _exact_optimum(self, model: LinearMDP) -> float:
        return policy_regularized_value_iteration(
            model, tau=self.tau, reference_policy=self._reference_table(model),
            divergence=self.divergence, rho=self.rho,
        ).value

    def _export_state(self) -> dict[str, np.ndarray]:
        state = super()._export_state()
        H, d = self.horizon, self.feature_dim
        counts = np.array([c.shape[0] for c in self._coefs], dtype=np.int64)
        m = int(counts.max(initial=0))
        coefs, W, B = np.zeros((H, m)), np.zeros((H, m, d)), np.zeros((H, m, d))
        for h in range(H):
            k = counts[h]
            coefs[h, :k], W[h, :k], B[h, :k] = self._coefs[h], self._terms_w[h], self._terms_b[h]
        state.update(policy_counts_=counts, policy_coefs_=coefs, policy_w_=W, policy_b_=B)
        A = self.n_actions
        n_cached = np.array([f.shape[0] for f in self._cache_feats], dtype=np.int64)
        m = int(n_cached.max(initial=0))
        feats, logp = np.zeros((H, m, A, d)), np.zeros((H, m, A))
        for h in range(H):
            feats[h, : n_cached[h]], logp[h, : n_cached[h]] = (self._cache_feats[h],
                                                               self._cache_logp[h])
        state.update(policy_cache_counts_=n_cached, policy_cache_features_=feats,
                     policy_cache_logp_=logp)
        return state

    def _param_specs(self) -> dict[str, dict]:
        H, d, A = self.horizon, self.feature_dim, self.n_actions
        return {**super()._param_specs(),
                "policy_counts_": {"kind": "i", "shape": (H,), "low": 0},
                "policy_coefs_": {"kind": "f", "shape": (H, None)},
                "policy_w_": {"kind": "f", "shape": (H, None, d)},
                "policy_b_": {"kind": "f", "shape": (H, None, d)},
                "policy_cache_counts_": {"kind": "i", "shape": (H,), "low": 0},
                "policy_cache_features_": {"kind": "f", "shape": (H, None, A, d)},
                # -inf where pi_ref = 0
                "policy_cache_logp_": {"kind": "f", "shape": (H, None, A), "finite": False}}

    def _check_loaded(self, path) -> None:
        """Besides the base checks: the policy arrays hold ``max(policy_counts_)`` terms."""
        super()._check_loaded(path)
        m = int(self.policy_counts_.max(initial=0))
        for name in ("policy_coefs_", "policy_w_", "policy_b_"):
            if getattr(self, name).shape[1] != m:
                raise ValueError(f"path {path}: array {name!r} must hold max(policy_counts_) "
                                 f"= {m} terms per step; got shape {getattr(self, name).shape}")
        m_cache = int(self.policy_cache_counts_.max(initial=0))
        for name in ("policy_cache_features_", "policy_cache_logp_"):
            if getattr(self, name).shape[1] != m_cache:
                raise ValueError(f"path {path}: array {name!r} must hold "
                                 f"max(policy_cache_counts_) = {m_cache} rows per step; got "
                                 f"shape {getattr(self, name).shape}")
        logp = self.policy_cache_logp_
        if np.isnan(logp).any() or np.isposinf(logp).any():
            raise ValueError(f"path {path}: array 'policy_cache_logp_' must hold "
                             "log-probabilities (no NaN or +inf)")
        if self.policy_q == "linear" and m > 1:
            raise ValueError(f"path {path}: array 'policy_counts_' must be <= 1 with "
                             f"policy_q='linear' (terms are folded); got {m}")

    @classmethod
    def _read_npz(cls, path, required=()):
        """As the base, but the policy-cache arrays are optional (0.1.0 files lack them: the
        cache then starts empty and every state starts from the closed form)."""
        optional = {f"param_{n}" for n in _CACHE_PARAMS}
        header, arrays = super()._read_npz(path, [r for r in required if r not in optional])
        if optional - set(arrays) and "param_policy_w_" in arrays:
            W = np.asarray(arrays["param_policy_w_"])
            nxt = np.asarray(arrays.get("param_data_next_features_", np.zeros((0, 1, 1))))
            if W.ndim == 3 and nxt.ndim == 3:
                H, d, A = W.shape[0], W.shape[2], nxt.shape[1]
                arrays = {**arrays, "param_policy_cache_counts_": np.zeros(H, dtype=np.int64),
                          "param_policy_cache_features_": np.zeros((H, 0, A, d)),
                          "param_policy_cache_logp_": np.zeros((H, 0, A))}
        return header, arrays

    def _import_state(self) -> None:
        super()._import_state()
        H, d = self.horizon, self.feature_dim
        counts = np.asarray(self.policy_counts_, dtype=np.int64).reshape(H)
        m = int(counts.max(initial=0))
        coefs = np.asarray(self.policy_coefs_, dtype=np.float64).reshape(H, m)
        W = np.asarray(self.policy_w_, dtype=np.float64).reshape(H, m, d)
        B = np.asarray(self.policy_b_, dtype=np.float64).reshape(H, m, d)
        self._coefs = [coefs[h, : counts[h]].copy() for h in range(H)]
        self._terms_w = [W[h, : counts[h]].copy() for h in range(H)]
        self._terms_b = [B[h, : counts[h]].copy() for h in range(H)]
        self._reset_cache()
        n_cached = np.asarray(self.policy_cache_counts_, dtype=np.int64).reshape(H)
        for h in range(H):
            feats = np.ascontiguousarray(self.policy_cache_features_[h, : n_cached[h]],
                                         dtype=np.float64)
            self._cache_feats[h] = feats
            self._cache_logp[h] = np.asarray(self.policy_cache_logp_[h, : n_cached[h]],
                                             dtype=np.float64).copy()
            self._cache_keys[h] = {feats[n].tobytes(): n for n in range(feats.shape[0])}
        for name in ("policy_counts_", "policy_coefs_", "policy_w_", "policy_b_",
                     "policy_cache_counts_", "policy_cache_features_", "policy_cache_logp_"):
            delattr(self, name)
