"""Backward value iteration for linear MDPs: clipped greedy Q-values and least-squares VI.

Conventions (arXiv:2411.18612, docs/algorithms/r2pvi.md): steps are 0-indexed, so the Q-value at
step ``h`` of a
horizon-``H`` problem is truncated to ``[0, H - h]`` (the papers' ``[0, H - h + 1]``);
``sign=-1`` subtracts ``beta * Gamma`` (pessimism: PEVI, R2PVI), ``sign=+1`` adds it
(optimism: LSVI-UCB, DR-LSVI-UCB). Bonus names are those of :mod:`robustrl.bonus`.

The least-squares backward pass itself is the agents' (:class:`robustrl.agents.PEVI` offline,
:class:`robustrl.agents.LSVIUCB` online); its plain NumPy form
:func:`robustrl.reference.value_iteration.lsvi_backward_pass` is the test oracle both are
checked against.
"""

from __future__ import annotations

import numpy as np

from robustrl._kernels import value_iteration as _kernels
from robustrl.bonus import BONUS_CODES, check_bonus_name
from robustrl.ridge import check_lambda_inv
from robustrl.validation import check_array, check_int, check_nonnegative

__all__ = ["backward_value_iteration", "greedy_q_values"]


def _check_sign(sign) -> int:
    if isinstance(sign, (bool, np.bool_)) or sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (pessimism) or +1 (optimism); got {sign!r}")
    return int(sign)


def _check_state_features(features, dim: int | None = None) -> np.ndarray:
    phi = check_array(features, "features", shape=(None, None, dim))
    return phi


def _bonus_setup(bonus: str, beta: float, sign, lambda_inv, dim: int,
                 leading: tuple[int, ...]) -> tuple[str, float, int, np.ndarray, int]:
    """Validate the bonus arguments; returns the canonical name, beta, sign, a lambda_inv
    array for the kernel (zeros when the bonus is off) and the kernel's bonus code."""
    name = check_bonus_name(bonus)
    beta = check_nonnegative(beta, "beta")
    sign = _check_sign(sign)
    active = name != "none" and beta > 0.0
    if lambda_inv is None:
        if active:
            raise ValueError(
                f"lambda_inv is required for bonus={name!r} with beta > 0 "
                "(pass bonus='none' or beta=0 to run without a bonus)"
            )
        inv = np.zeros((*leading, dim, dim))
    else:
        inv = check_lambda_inv(lambda_inv, dim, leading=leading)
    code = BONUS_CODES[name] if active else BONUS_CODES["none"]
    return name, beta, sign, inv, code


def greedy_q_values(
    features,
    weights,
    lambda_inv=None,
    beta: float = 0.0,
    step: int = 0,
    horizon: int = 1,
    bonus: str = "elliptical",
    sign: int = -1,
) -> np.ndarray:
    """``Q = clip(phi^T w + sign * beta * Gamma(phi), 0, horizon - step)`` of shape ``(N, A)``.

    ``features (N, A, d)``, ``weights (d,)``, ``lambda_inv (d, d)`` (needed when the bonus is
    on). Truncation and bonus as in arXiv:2411.18612 (docs/algorithms/r2pvi.md,
    docs/algorithms/pevi.md).
    """
    phi = _check_state_features(features)
    dim = phi.shape[2]
    w = check_array(weights, "weights", shape=(dim,))
    horizon = check_int(horizon, "horizon", low=1)
    step = check_int(step, "step", low=0, high=horizon - 1)
    _, beta, sign, inv, code = _bonus_setup(bonus, beta, sign, lambda_inv, dim, ())
    return _kernels.q_values(phi, w, inv, sign * beta, code, float(horizon - step))


def backward_value_iteration(
    weights,
    features,
    lambda_inv=None,
    beta: float = 0.0,
    bonus: str = "elliptical",
    sign: int = -1,
    factors=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward value iteration over ``H = len(weights)`` steps on ``N`` states.

    ``Q_h(s, a) = clip(phi(s, a)^T w_h + sign * beta * Gamma_h(s, a), 0, H - h)`` with
    ``V_h = max_a Q_h`` and ``V_H = 0``. ``w_h = weights[h]``, or, for a known linear MDP
    (``factors = mu``, shape ``(H, d, N)``), ``w_h = weights[h] + mu_h V_{h+1}`` (the linear
    Bellman equation with ``weights = theta``).

    Args:
        weights: ``(H, d)``.
        features: ``phi(s, a)`` of shape ``(N, A, d)``.
        lambda_inv: ``(H, d, d)``, needed when the bonus is on.
    Returns:
        ``Q (H, N, A)``, ``V (H + 1, N)`` and the greedy ``policy (H, N)`` (int64, first
        maximiser on ties).
    """
    w = check_array(weights, "weights", ndim=2)
    horizon, dim = w.shape
    phi = _check_state_features(features, dim)
    _, beta, sign, inv, code = _bonus_setup(bonus, beta, sign, lambda_inv, dim, (horizon,))
    if factors is None:
        mu = np.zeros((0, 0, 0))
    else:
        mu = check_array(factors, "factors", shape=(horizon, dim, phi.shape[0]))
    return _kernels.backward_value_iteration(
        w, phi, inv, sign * beta, code, mu, factors is not None
    )
