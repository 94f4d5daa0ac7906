"""Exact (robust) dynamic programming on known finite-horizon models: the ground truth.

Every robust value in the package is checked against these solvers. Two uncertainty structures:

* :class:`~robustrl.models.FiniteMDP` -- (s,a)-rectangular: each row ``P_h(.|s,a)`` is perturbed
  on its own, ``Q_h(s,a) = R_h(s,a) + I[V_{h+1}; P_h(.|s,a)]``.
* :class:`~robustrl.models.LinearMDP` -- d-rectangular (arXiv:2411.18612, docs/algorithms/drpvi.md):
  each
  factor ``mu_{h,i}`` is perturbed on its own,
  ``Q_h(s,a) = phi(s,a)^T theta_h + sum_i phi_i(s,a) I[V_{h+1}; mu_{h,i}]``.

``I`` is the constrained inner problem ``inf_{D(mu||nominal) <= rho} E_mu[V]`` (DRMDP, ``rho``)
or the regularised one ``inf_mu E_mu[V] + lam D(mu||nominal)`` (RRMDP, ``lam``), both from
:mod:`robustrl.divergences`. With neither, the recursion is ordinary (non-robust) dynamic
programming. Steps are 0-indexed; the terminal value ``V_H`` is 0.

The policy-regularised solvers implement the DR-RPO objective of arXiv:2510.14246,
docs/algorithms/drrpo.md:
``V_h(s) = <pi_h(.|s), Q_h(s,.)> - tau KL(pi_h(.|s) || pi_ref(.|s))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustrl.divergences import constrained_inner, regularized_inner
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.validation import check_array, check_divergence, check_positive, check_scalar

Model = FiniteMDP | LinearMDP

# Tolerance for "policy rows are probability distributions" (matches check_distribution).
_PROB_ATOL = 1e-8


@dataclass(frozen=True, eq=False)
class RobustSolution:
    """Optimal (robust) solution of a finite-horizon model.

    Attributes:
        Q: optimal action values, shape ``(H, S, A)``.
        V: optimal state values, shape ``(H + 1, S)``; ``V[H] = 0``.
        policy: greedy deterministic policy, shape ``(H, S)`` int (ties go to the lowest action).
        value: ``initial_distribution @ V[0]``.
        divergence: canonical divergence name, or None for the non-robust solution.
        rho: radius used (float, or ``(H, d)`` array for a LinearMDP given per-factor radii).
        lam: regulariser used (same forms as ``rho``).
        tau: temperature of the policy regulariser (policy-regularised solver only).
        probs: optimal softmax policy ``(H, S, A)`` (policy-regularised solver only).
    """

    Q: np.ndarray
    V: np.ndarray
    policy: np.ndarray
    value: float
    divergence: str | None = None
    rho: float | np.ndarray | None = None
    lam: float | np.ndarray | None = None
    tau: float | None = None
    probs: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class PolicyValue:
    """Value of a given policy: ``Q`` ``(H, S, A)``, ``V`` ``(H + 1, S)``, ``value`` scalar."""

    Q: np.ndarray
    V: np.ndarray
    value: float


@dataclass(frozen=True)
class _Uncertainty:
    """Validated robustness settings. ``param`` is None (non-robust), a float, or ``(H, d)``."""

    divergence: str | None
    kind: str | None  # "rho", "lam" or None
    param: float | np.ndarray | None

    @property
    def rho(self) -> float | np.ndarray | None:
        return self.param if self.kind == "rho" else None

    @property
    def lam(self) -> float | np.ndarray | None:
        return self.param if self.kind == "lam" else None


# --------------------------------------------------------------------------------------------
# validation


def _check_model(model) -> Model:
    if not isinstance(model, (FiniteMDP, LinearMDP)):
        raise ValueError(
            f"model must be a robustrl.models.FiniteMDP or LinearMDP; got {type(model).__name__}"
        )
    return model


def _check_radius(value, name: str, model: Model, *, positive: bool) -> float | np.ndarray:
    """A scalar for either model; additionally ``(d,)`` or ``(H, d)`` for a LinearMDP."""
    bound = "> 0" if positive else ">= 0"
    if np.ndim(value) == 0:
        return check_scalar(value, name, low=0.0, low_inclusive=not positive)
    if isinstance(model, FiniteMDP):
        raise ValueError(
            f"{name} must be a scalar for a FiniteMDP ((s,a)-rectangular set); "
            f"got shape {np.shape(value)}"
        )
    H, d = model.horizon, model.feature_dim
    arr = check_array(value, name, ndim=(1, 2))
    if arr.ndim == 1:
        arr = check_array(arr, name, shape=(d,))
        arr = np.ascontiguousarray(np.broadcast_to(arr, (H, d)))
    else:
        arr = check_array(arr, name, shape=(H, d))
    bad = arr <= 0.0 if positive else arr < 0.0
    if np.any(bad):
        raise ValueError(
            f"{name} entries must be {bound}; found {float(arr[bad].min()):g}"
        )
    return arr


def _check_uncertainty(model: Model, divergence, rho, lam, *, require: bool) -> _Uncertainty:
    if rho is not None and lam is not None:
        raise ValueError(
            "give at most one of rho (constrained / DRMDP) and lam (regularised / RRMDP); "
            "got both"
        )
    if divergence is None:
        if require:
            raise ValueError(
                f"divergence must be one of 'tv', 'kl', 'chi2' for a robust evaluation; "
                f"got {divergence!r}"
            )
        if rho is not None or lam is not None:
            which = "rho" if rho is not None else "lam"
            raise ValueError(
                f"{which} was given but divergence is None; name a divergence "
                "('tv', 'kl', 'chi2') or drop the radius"
            )
        return _Uncertainty(None, None, None)
    div = check_divergence(divergence)
    if rho is None and lam is None:
        if require:
            raise ValueError("give one of rho (>= 0) or lam (> 0) for a robust evaluation")
        return _Uncertainty(div, None, None)
    if rho is not None:
        r = _check_radius(rho, "rho", model, positive=False)
        return _Uncertainty(div, "rho", r)
    lm = _check_radius(lam, "lam", model, positive=True)
    return _Uncertainty(div, "lam", lm)


def _check_policy(policy, model: Model, name: str = "policy") -> np.ndarray:
    """Return a policy as an ``(H, S, A)`` probability table.

    Accepts a deterministic ``(H, S)`` integer table of actions in ``[0, A)`` or a stochastic
    ``(H, S, A)`` table whose rows are distributions.
    """
    H, S, A = model.horizon, model.n_states, model.n_actions
    arr = np.asarray(policy)
    if arr.ndim == 2:
        if not (np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_)):
            raise ValueError(
                f"{name} as an (H, S) table must hold integer action indices; got dtype {arr.dtype}"
            )
        if arr.shape != (H, S):
            raise ValueError(f"{name} must have shape (H, S) = ({H}, {S}); got {arr.shape}")
        if arr.min() < 0 or arr.max() >= A:
            raise ValueError(
                f"{name} actions must lie in [0, {A - 1}]; found range [{arr.min()}, {arr.max()}]"
            )
        probs = np.zeros((H, S, A))
        np.put_along_axis(probs, arr[..., None].astype(np.intp), 1.0, axis=-1)
        return probs
    if arr.ndim == 3:
        probs = check_array(arr, name, shape=(H, S, A), low=0.0)
        sums = probs.sum(axis=-1)
        if not np.allclose(sums, 1.0, atol=_PROB_ATOL, rtol=0.0):
            raise ValueError(
                f"{name} rows must be probability distributions over the {A} actions; "
                f"largest deviation of a row sum from 1 is {np.max(np.abs(sums - 1.0)):.3g}"
            )
        return probs
    raise ValueError(
        f"{name} must be an (H, S) = ({H}, {S}) integer table or an (H, S, A) = ({H}, {S}, {A}) "
        f"probability table; got shape {arr.shape}"
    )


def _check_reference_policy(reference_policy, model: Model) -> np.ndarray:
    """``(H, S, A)`` reference policy; None means uniform, ``(S, A)`` is shared by all steps."""
    H, S, A = model.horizon, model.n_states, model.n_actions
    if reference_policy is None:
        return np.full((H, S, A), 1.0 / A)
    arr = check_array(reference_policy, "reference_policy", ndim=(2, 3), low=0.0)
    if arr.ndim == 2:
        arr = check_array(arr, "reference_policy", shape=(S, A))
        arr = np.ascontiguousarray(np.broadcast_to(arr, (H, S, A)))
    else:
        arr = check_array(arr, "reference_policy", shape=(H, S, A))
    sums = arr.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=_PROB_ATOL, rtol=0.0):
        raise ValueError(
            "reference_policy rows must be probability distributions over actions; largest "
            f"deviation of a row sum from 1 is {np.max(np.abs(sums - 1.0)):.3g}"
        )
    return arr


# --------------------------------------------------------------------------------------------
# the (robust) continuation value, vectorised over (s,a) rows or factors


class _Backup:
    """Computes ``Q_h = R_h + (robust) expectation of V_{h+1}`` for one model and setting."""

    def __init__(self, model: Model, unc: _Uncertainty) -> None:
        self.model = model
        self.unc = unc
        self.R = np.ascontiguousarray(model.R, dtype=np.float64)
        if isinstance(model, FiniteMDP):
            H, S, A = model.horizon, model.n_states, model.n_actions
            self.rows = model.P.reshape(H, S * A, S)  # one nominal row per (s,a)
        else:
            self.rows = model.mu  # (H, d, S): one nominal row per factor

    def _params(self, h: int) -> np.ndarray:
        m = self.rows.shape[1]
        p = self.unc.param
        if isinstance(p, np.ndarray):
            return p[h]
        return np.full(m, p)

    def _continuation_rows(self, h: int, v_next: np.ndarray) -> np.ndarray:
        """(Robust) expectation of ``v_next`` under each nominal row at step ``h``."""
        nominal = self.rows[h]
        out = nominal @ v_next
        unc = self.unc
        if unc.kind is None:
            return out
        params = self._params(h)
        if unc.kind == "rho":
            # rho = 0 means that row is not uncertain: keep the nominal expectation exactly.
            active = params > 0.0
            if not np.any(active):
                return out
            out[active] = np.asarray(
                constrained_inner(v_next, nominal[active], params[active], unc.divergence),
                dtype=np.float64,
            )
            return out
        return np.asarray(
            regularized_inner(v_next, nominal, params, unc.divergence), dtype=np.float64
        )

    def q(self, h: int, v_next: np.ndarray) -> np.ndarray:
        cont = self._continuation_rows(h, v_next)
        model = self.model
        if isinstance(model, FiniteMDP):
            return self.R[h] + cont.reshape(model.n_states, model.n_actions)
        return self.R[h] + model.phi @ cont


# --------------------------------------------------------------------------------------------
# public solvers


def _soft_max_rows(Q: np.ndarray, log_ref: np.ndarray, tau: float):
    """Stable ``tau log sum_a pi_ref(a) exp(Q(a)/tau)`` per row, with softmax and argmax.

    Shifting by the largest Q among actions the reference supports keeps every exponent <= 0,
    so neither ``Q / tau`` (tiny tau) nor an all-underflowing row can occur.
    """
    supported = np.isfinite(log_ref)
    top = np.where(supported, Q, -np.inf).max(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):  # (Q - top)/tau -> -inf: intended limit
        logits = np.where(supported, log_ref + (Q - top) / tau, -np.inf)
    log_norm = np.log(np.exp(logits).sum(axis=-1, keepdims=True))  # in [log pi_ref(a*), 0]
    value = (top + tau * log_norm)[..., 0]
    probs = np.exp(logits - log_norm)
    return value, probs, logits.argmax(axis=-1)


def robust_value_iteration(
    model: Model,
    *,
    divergence: str | None = None,
    rho: float | np.ndarray | None = None,
    lam: float | np.ndarray | None = None,
) -> RobustSolution:
    """Optimal robust values by backward induction (arXiv:2411.18612, docs/algorithms/drpvi.md and
    docs/algorithms/r2pvi.md).

    Exactly one of ``rho`` (constrained ball, ``rho >= 0``) or ``lam`` (regularised, ``lam > 0``)
    makes the solution robust; with neither (or ``divergence=None``) it is ordinary value
    iteration. A FiniteMDP is (s,a)-rectangular and takes a scalar; a LinearMDP is
    d-rectangular and takes a scalar, a per-factor ``(d,)`` or a per-step ``(H, d)`` array
    (``rho`` entries of 0 leave that factor unperturbed).
    """
    model = _check_model(model)
    unc = _check_uncertainty(model, divergence, rho, lam, require=False)
    Q, V = _backward(model, unc, lambda h, q: q.max(axis=1))
    # argmax returns the first maximiser: ties to the lowest action
    return _solution(model, unc, Q, V, Q.argmax(axis=2))


def _backward(model: Model, unc: _Uncertainty, state_values) -> tuple[np.ndarray, np.ndarray]:
    """Backward induction: ``Q_h = backup(V_{h+1})``, ``V_h = state_values(h, Q_h)``,
    ``V_H = 0``. Returns ``Q (H, S, A)`` and ``V (H + 1, S)``."""
    H, S, A = model.horizon, model.n_states, model.n_actions
    backup = _Backup(model, unc)
    Q = np.zeros((H, S, A))
    V = np.zeros((H + 1, S))
    for h in range(H - 1, -1, -1):
        Q[h] = backup.q(h, V[h + 1])
        V[h] = state_values(h, Q[h])
    return Q, V


def _solution(model: Model, unc: _Uncertainty, Q, V, policy, **extra) -> RobustSolution:
    return RobustSolution(Q=Q, V=V, policy=policy,
                          value=float(model.initial_distribution @ V[0]),
                          divergence=unc.divergence if unc.kind else None, rho=unc.rho,
                          lam=unc.lam, **extra)


def _evaluate(model: Model, probs: np.ndarray, unc: _Uncertainty,
              log_ref: np.ndarray | None = None, tau: float = 0.0) -> PolicyValue:
    """Backward induction for a fixed policy; with ``log_ref`` subtract ``tau * KL``."""
    kl = np.zeros(probs.shape[:2])
    if log_ref is not None:
        # pi * (log pi - log pi_ref), with 0 log 0 = 0 (where pi = 0 the term is 0 whatever pi_ref)
        pos = probs > 0.0
        log_ratio = np.zeros_like(probs)
        log_ratio[pos] = np.log(probs[pos]) - log_ref[pos]
        kl = (probs * log_ratio).sum(axis=-1)  # (H, S)
    Q, V = _backward(model, unc, lambda h, q: (probs[h] * q).sum(axis=1) - tau * kl[h])
    return PolicyValue(Q=Q, V=V, value=float(model.initial_distribution @ V[0]))


def evaluate_policy(model: Model, policy: np.ndarray) -> PolicyValue:
    """Expected return of ``policy`` under the model's own (nominal) kernel.

    Evaluate on ``model.with_kernel(P)`` / ``model.with_factors(mu)`` to get the value under a
    perturbed kernel. ``policy`` is an ``(H, S)`` integer table or an ``(H, S, A)`` table of
    action probabilities.
    """
    model = _check_model(model)
    probs = _check_policy(policy, model)
    return _evaluate(model, probs, _Uncertainty(None, None, None))


def robust_evaluate_policy(
    model: Model,
    policy: np.ndarray,
    *,
    divergence: str,
    rho: float | np.ndarray | None = None,
    lam: float | np.ndarray | None = None,
) -> PolicyValue:
    """Worst-case (``rho``) or regularised (``lam``) robust value of a given policy.

    Same uncertainty sets as :func:`robust_value_iteration`; exactly one of ``rho``/``lam`` is
    required. ``V*_lam - robust_evaluate_policy(...).value`` is the suboptimality of
    arXiv:2411.18612 theory, docs/r2pvi-results.md.
    """
    model = _check_model(model)
    unc = _check_uncertainty(model, divergence, rho, lam, require=True)
    probs = _check_policy(policy, model)
    return _evaluate(model, probs, unc)


def policy_regularized_value_iteration(
    model: Model,
    *,
    tau: float,
    reference_policy: np.ndarray | None = None,
    divergence: str | None = None,
    rho: float | np.ndarray | None = None,
    lam: float | np.ndarray | None = None,
) -> RobustSolution:
    """Optimal value of the policy-regularised (DR-RPO) objective, arXiv:2510.14246,
    docs/algorithms/drrpo.md.

    ``V_h(s) = tau * log sum_a pi_ref(a|s) exp(Q_h(s,a) / tau)`` with the (robust) backup of
    :func:`robust_value_iteration`; the optimal policy ``pi_h(a|s) ∝ pi_ref(a|s) exp(Q_h/tau)`` is
    returned in ``probs`` and its argmax in ``policy``. ``reference_policy`` is ``(H, S, A)``,
    ``(S, A)`` (all steps) or None (uniform).
    """
    model = _check_model(model)
    tau = check_positive(tau, "tau")
    ref = _check_reference_policy(reference_policy, model)
    unc = _check_uncertainty(model, divergence, rho, lam, require=False)
    H, S, A = model.horizon, model.n_states, model.n_actions
    with np.errstate(divide="ignore"):
        log_ref = np.log(ref)  # -inf where pi_ref = 0: those actions get probability 0
    probs = np.zeros((H, S, A))
    policy = np.zeros((H, S), dtype=np.intp)

    def soft_max(h: int, q: np.ndarray) -> np.ndarray:
        value, probs[h], policy[h] = _soft_max_rows(q, log_ref[h], tau)
        return value

    Q, V = _backward(model, unc, soft_max)
    return _solution(model, unc, Q, V, policy, tau=tau, probs=probs)


def policy_regularized_evaluate(
    model: Model,
    policy_probs: np.ndarray,
    *,
    tau: float,
    reference_policy: np.ndarray | None = None,
    divergence: str | None = None,
    rho: float | np.ndarray | None = None,
    lam: float | np.ndarray | None = None,
) -> PolicyValue:
    """Policy-regularised (robust when ``rho``/``lam`` given) value of a given policy.

    ``V_h(s) = <pi_h(.|s), Q_h(s,.)> - tau KL(pi_h(.|s) || pi_ref(.|s))`` (arXiv:2510.14246,
    docs/algorithms/drrpo.md).
    The policy must put no mass where ``pi_ref`` is 0 (the KL would be infinite).
    """
    model = _check_model(model)
    tau = check_positive(tau, "tau")
    ref = _check_reference_policy(reference_policy, model)
    unc = _check_uncertainty(model, divergence, rho, lam, require=False)
    probs = _check_policy(policy_probs, model, "policy_probs")
    if np.any((probs > 0.0) & (ref == 0.0)):
        raise ValueError(
            "policy_probs puts mass on actions where reference_policy is 0; "
            "KL(policy || reference) would be infinite"
        )
    with np.errstate(divide="ignore"):
        log_ref = np.log(ref)
    return _evaluate(model, probs, unc, log_ref=log_ref, tau=tau)
