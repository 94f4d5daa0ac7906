"""Softmax policies and the KL-regularised (mirror-descent) policy update (arXiv:2510.14246,
docs/algorithms/drrpo.md).

The update ``pi_new ∝ pi_ref^alpha exp(eta q)`` is the policy-optimisation step of DR-RPO
(``pi_ref`` the current policy, ``alpha = 1/(1 + eta tau)`` after folding the reference-policy
term into ``q``; :class:`robustrl.agents.DRRPO` applies it to the coefficients of its
feature-based policy and normalises with this module's log-softmax kernel), plain mirror
descent (``alpha = 1``) and the soft-greedy policy
``pi ∝ pi_ref exp(Q / tau)`` (``alpha = 1``, ``eta = 1 / tau``). Everything runs in log space,
so large ``eta * q`` cannot overflow; actions with ``pi_ref = 0`` keep probability 0.

:func:`kl_mirror_descent_step` is the one mirror-descent step with the reference-policy
regulariser folded in (its unchecked core ``_mirror_descent_log_step`` is what DR-RPO and OPPO
call on their cached log-policies).
"""

from __future__ import annotations

import numpy as np

from robustrl._kernels import policy as _kernels
from robustrl.validation import (
    check_array,
    check_distribution,
    check_int,
    check_nonnegative,
    check_positive,
)

__all__ = [
    "SoftmaxPolicy",
    "kl_regularized_update",
    "kl_mirror_descent_step",
    "log_softmax",
    "sample_actions",
    "softmax",
]


def _check_logits(logits, name: str = "logits") -> np.ndarray:
    """Logits of shape ``(..., A)``: no NaN, no ``+inf``, a finite entry in every row
    (``-inf`` marks an action of probability 0)."""
    arr = check_array(logits, name, ndim=tuple(range(1, 33)), finite=False)
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise ValueError(f"{name} must not contain NaN or +inf (-inf marks a forbidden action)")
    if not np.isfinite(arr).any(axis=-1).all():
        raise ValueError(f"{name} must have at least one finite entry in every row")
    return arr


def _rows(arr: np.ndarray) -> np.ndarray:
    return arr.reshape(-1, arr.shape[-1])


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis (stable: shifted by the max)."""
    arr = _check_logits(logits)
    inverse_temperature = 1.0 / check_positive(temperature, "temperature")
    return _kernels.softmax_rows(_rows(arr), inverse_temperature).reshape(arr.shape)


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(logits / temperature)`` along the last axis (stable: shifted by the max)."""
    arr = _check_logits(logits)
    inverse_temperature = 1.0 / check_positive(temperature, "temperature")
    return _kernels.log_softmax_rows(_rows(arr), inverse_temperature).reshape(arr.shape)


def _log_of_distribution(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(probs)


def _regularized_log_update(log_reference: np.ndarray, q: np.ndarray, eta: float,
                            alpha: float) -> np.ndarray:
    return _kernels.regularized_log_policy(_rows(log_reference), _rows(q), eta, alpha).reshape(
        q.shape
    )


def _mirror_descent_log_step(log_policy: np.ndarray, log_reference: np.ndarray, q: np.ndarray,
                             eta: float, tau: float) -> np.ndarray:
    """Unchecked core of :func:`kl_mirror_descent_step` on ``(N, A)`` log-probabilities (the
    one implementation: the public functions and :class:`robustrl.agents.DRRPO` /
    :class:`robustrl.agents.OPPO` call it). ``log_reference`` may also be one ``(A,)`` row
    shared by every state."""
    if eta == np.inf:  # the soft-greedy policy pi_ref exp(q / tau)
        if log_reference.shape != q.shape:  # one row: the kernel takes one per state
            log_reference = np.broadcast_to(log_reference, q.shape).copy()
        return _kernels.regularized_log_policy(log_reference, q, 1.0 / tau, 1.0)
    if tau == 0.0:  # plain mirror descent (OPPO): the reference does not enter
        return _kernels.regularized_log_policy(log_policy, q, eta, 1.0)
    alpha = 1.0 / (1.0 + eta * tau)
    with np.errstate(invalid="ignore"):
        mixed = alpha * log_policy + (1.0 - alpha) * log_reference
    mixed = np.where((log_reference == -np.inf) | (log_policy == -np.inf), -np.inf, mixed)
    return _kernels.regularized_log_policy(mixed, q, eta * alpha, 1.0)


def kl_mirror_descent_step(policy, q, eta: float, tau: float = 0.0,
                           reference=None) -> np.ndarray:
    """One KL mirror-descent step with a reference-policy regulariser, along the last axis:

    ``pi_new ∝ pi^{1/(1+eta tau)} pi_ref^{eta tau/(1+eta tau)} exp(eta q / (1+eta tau))``,

    the maximiser of ``<pi', q> - tau KL(pi' || pi_ref) - KL(pi' || pi) / eta`` (OPPO's
    policy step, arXiv:1912.05830 Algorithm 1, for ``tau = 0``; DR-RPO's reconstruction,
    arXiv:2510.14246, docs/algorithms/drrpo.md, for ``tau > 0``). ``eta = inf`` (needs
    ``tau > 0``) gives the soft-greedy ``pi_ref exp(q / tau)``.

    Args:
        policy: current policy ``pi``, rows ``(..., A)`` are distributions.
        q: action values, same shape.
        eta: step ``> 0`` or ``inf``.
        tau: regulariser temperature ``>= 0``.
        reference: ``pi_ref`` of the same shape (None: uniform); ignored when ``tau = 0``.
    """
    pol = check_distribution(check_array(policy, "policy", ndim=tuple(range(1, 33))), "policy")
    values = check_array(q, "q", shape=pol.shape)
    eta = float(eta) if eta == np.inf else check_positive(eta, "eta")
    tau = check_nonnegative(tau, "tau")
    if eta == np.inf and tau == 0.0:
        raise ValueError("eta = inf needs tau > 0 (the soft-greedy policy pi_ref exp(q / tau))")
    if reference is None:
        ref = np.full(pol.shape, 1.0 / pol.shape[-1])
    else:
        ref = check_distribution(check_array(reference, "reference", shape=pol.shape),
                                 "reference")
    out = _mirror_descent_log_step(_rows(_log_of_distribution(pol)),
                                   _rows(_log_of_distribution(ref)), _rows(values), eta, tau)
    return np.exp(out).reshape(pol.shape)


def kl_regularized_update(pi_ref, q, eta: float, alpha: float = 1.0) -> np.ndarray:
    """``pi_new ∝ pi_ref^alpha * exp(eta * q)`` along the last axis (arXiv:2510.14246,
    docs/algorithms/drrpo.md).

    ``pi_ref`` and ``q`` have the same shape ``(..., A)`` (typically ``(N, A)``); rows of
    ``pi_ref`` are probability distributions and may contain zeros, which stay zero.
    ``eta >= 0``, ``alpha >= 0``.
    """
    ref = check_distribution(check_array(pi_ref, "pi_ref", ndim=tuple(range(1, 33))), "pi_ref")
    values = check_array(q, "q", shape=ref.shape)
    eta = check_nonnegative(eta, "eta")
    alpha = check_nonnegative(alpha, "alpha")
    return np.exp(_regularized_log_update(_log_of_distribution(ref), values, eta, alpha))


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got "
            f"{type(rng).__name__}"
        )
    return rng


def sample_actions(probs, rng: np.random.Generator) -> np.ndarray:
    """One action index per row of ``probs (N, A)`` (int64, shape ``(N,)``)."""
    p = check_distribution(check_array(probs, "probs", ndim=2), "probs")
    uniforms = _check_rng(rng).random(p.shape[0])
    return _kernels.sample_rows(p, uniforms)


class SoftmaxPolicy:
    """A softmax policy over finitely many ``(step, state)`` pairs with logits ``(H, S, A)``.

    ``logits=None`` gives the uniform policy. After :meth:`update` the logits are normalised
    log-probabilities (``-inf`` for actions of probability 0).
    """

    def __init__(self, horizon: int, n_states: int, n_actions: int, logits=None) -> None:
        shape = (
            check_int(horizon, "horizon", low=1),
            check_int(n_states, "n_states", low=1),
            check_int(n_actions, "n_actions", low=1),
        )
        if logits is None:
            self._logits = np.zeros(shape)
        else:
            arr = _check_logits(logits)
            if arr.shape != shape:
                raise ValueError(f"logits must have shape {shape}; got {arr.shape}")
            self._logits = arr.copy()

    @classmethod
    def from_probabilities(cls, probs) -> SoftmaxPolicy:
        """The policy with the given table ``probs (H, S, A)`` (rows are distributions)."""
        p = check_distribution(check_array(probs, "probs", ndim=3), "probs")
        return cls(*p.shape, logits=_log_of_distribution(p))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, S, A)``."""
        return self._logits.shape

    @property
    def logits(self) -> np.ndarray:
        """The logits ``(H, S, A)`` (a copy)."""
        return self._logits.copy()

    @property
    def probabilities(self) -> np.ndarray:
        """The whole table ``pi_h(a | s)`` of shape ``(H, S, A)``."""
        return softmax(self._logits)

    def probs(self, step: int, state: int) -> np.ndarray:
        """``pi_step(. | state)``, shape ``(A,)``."""
        h = check_int(step, "step", low=0, high=self.shape[0] - 1)
        s = check_int(state, "state", low=0, high=self.shape[1] - 1)
        return softmax(self._logits[h, s])

    def act(self, step: int, state: int, rng: np.random.Generator) -> int:
        """Sample an action from ``pi_step(. | state)``."""
        p = self.probs(step, state)
        return int(_kernels.sample_rows(p[None, :], _check_rng(rng).random(1))[0])

    def update(self, q, eta: float, pi_ref=None, alpha: float = 1.0) -> None:
        """``pi <- pi_ref^alpha exp(eta q)`` normalised per ``(step, state)``.

        ``pi_ref=None`` uses the current policy (mirror descent: ``pi <- pi exp(eta q)``),
        computed from the logits so that small probabilities are not lost to underflow.
        """
        values = check_array(q, "q", shape=self.shape)
        eta = check_nonnegative(eta, "eta")
        alpha = check_nonnegative(alpha, "alpha")
        if pi_ref is None:
            log_reference = log_softmax(self._logits)
        else:
            ref = check_distribution(check_array(pi_ref, "pi_ref", shape=self.shape), "pi_ref")
            log_reference = _log_of_distribution(ref)
        self._logits = _regularized_log_update(log_reference, values, eta, alpha)
