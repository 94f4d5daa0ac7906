"""Shared machinery of the offline pessimistic value-iteration agents (note sections 1.4-1.7).

Every agent of this family runs the same backward pass over a fixed dataset: for
``h = H-1 .. 0``

* ``Lambda_h = ridge I + sum_k w_k phi_k phi_k^T`` (sample weights ``w_k``: 1, or ``1/sigma_k^2``
  in the variance-aware variant), factorised once by Cholesky;
* ``Xi = Lambda_h^{-1} Phi^T W`` (d, n): any regression target ``y`` gives the estimate ``Xi y``;
* ``V_k = V_{h+1}(s'_k) = max_a Q_{h+1}(s'_k, a)`` at the observed next states (0 after a
  terminal transition), where actions whose value the environment knows exactly
  (``env.unwrapped.known_action_values``, e.g. the put option's exercise payoff) take that
  value instead of the learned one;
* ``w_h = reward weights + nu_h`` with the agent's estimator ``nu_h = estimate(Xi, V)`` (0 at
  the last step), the reward weights being the known ``theta_h`` or the ridge estimate
  ``Xi r``;
* ``Q_h(s, a) = clip(phi^T w_h - beta Gamma_h(s, a), 0, max_reward (H - h))`` with the agent's
  penalty ``Gamma`` from :mod:`robustrl.bonus`.

Subclasses define the estimator (:meth:`OfflineAgent._estimate`) and the penalty name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from tqdm.auto import tqdm

from robustrl.agents.base import LinearAgent
from robustrl.bonus import bonus as _bonus
from robustrl.data import OfflineDataset
from robustrl.ridge import gram_matrix
from robustrl.validation import check_array, check_int, check_nonnegative, check_positive

REWARD_MODES: tuple[str, ...] = ("auto", "known", "estimated")
D_RECTANGULAR_BONUSES: tuple[str, ...] = ("paper_l1", "code_l2")


# --------------------------------------------------------------------------------------------
# argument checks shared by the agents


def check_bool(value, name: str) -> bool:
    """``value`` as a bool; only real booleans are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_v_min(value, name: str = "v_min") -> str | float:
    """``"data"`` (the smallest next-state value in the step's data) or a finite float."""
    if isinstance(value, str):
        if value != "data":
            raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}") from None
    if not np.isfinite(x):
        raise ValueError(f"{name} must be 'data' or a finite number; got {value!r}")
    return x


def check_radius(value, name: str, horizon: int, dim: int) -> float | np.ndarray:
    """A radius ``>= 0``: a scalar (every step and factor) or an ``(H, d)`` array."""
    if np.ndim(value) == 0:
        return check_nonnegative(value, name)
    arr = check_array(value, name, shape=(horizon, dim), low=0.0)
    return arr


def radius_row(radius: float | np.ndarray, h: int, dim: int) -> np.ndarray:
    """The ``(d,)`` radii of step ``h``."""
    if isinstance(radius, np.ndarray):
        return np.ascontiguousarray(radius[h])
    return np.full(dim, float(radius))


def check_d_rectangular_bonus(value, name: str = "bonus") -> str:
    if value not in D_RECTANGULAR_BONUSES:
        raise ValueError(
            f"{name} must be 'paper_l1' (the paper's sum_i phi_i sqrt([Lambda^-1]_ii)) or "
            f"'code_l2' (the authors' code, sqrt(sum_i phi_i^2 [Lambda^-1]_ii)); got {value!r}"
        )
    return value


# --------------------------------------------------------------------------------------------
# the backward pass


@dataclass
class StepArrays:
    """One step's data as the backward pass uses it."""

    features: np.ndarray  # (n, d)
    rewards: np.ndarray  # (n,)
    next_features: np.ndarray  # (n, A, d)
    next_nonterminal: np.ndarray  # (n,) bool
    known: np.ndarray | None  # (n, A): exact action values, NaN where learned; None if none
    in_regression: np.ndarray  # (n,) bool: the row has nonzero features


@dataclass
class PassResult:
    """Output of one backward pass."""

    weights: np.ndarray  # (H, d)
    lambda_inv: np.ndarray  # (H, d, d)
    next_values: list[np.ndarray]  # per step, V_{h+1} at that step's next states
    n_samples: np.ndarray  # (H,) rows that entered each regression


class OfflineAgent(LinearAgent):
    """Base of PEVI, R2PVI, DRPVI and DRVI_L: validated common hyperparameters, the backward
    pass, clipped Q-values, known action values and persistence (see the module docstring).

    Common hyperparameters:
        ridge: ridge parameter gamma > 0 of every Gram matrix (the authors' ``gamma``).
        beta: pessimism coefficient >= 0.
        reward: ``"known"`` uses ``theta`` (the authors' simulated-MDP setting), ``"estimated"``
            regresses the observed rewards on the features, ``"auto"`` picks ``"known"`` when
            ``theta`` is available (given, or ``env.unwrapped.model.theta``) and
            ``"estimated"`` otherwise.
        theta: known reward weights ``(H, d)``; default ``env.unwrapped.model.theta`` if any.
        truncate_below: clip Q at 0 from below (the paper) or only from above (the code).
        max_reward: rewards lie in ``[0, max_reward]``, so Q at step h is truncated above at
            ``max_reward (H - h)`` (1 = the papers' ``H - h + 1`` one-indexed).
    """

    _param_names: ClassVar[tuple[str, ...]] = ("weights", "lambda_inv", "n_samples")
    _default_reward: ClassVar[str] = "auto"

    def __init__(
        self,
        env,
        *,
        ridge: float,
        beta: float,
        reward: str,
        theta,
        truncate_below: bool,
        max_reward: float,
    ) -> None:
        super().__init__(env)
        self.ridge = check_positive(ridge, "ridge")
        self.beta = check_nonnegative(beta, "beta")
        self.truncate_below = check_bool(truncate_below, "truncate_below")
        self.max_reward = check_positive(max_reward, "max_reward")
        if reward not in REWARD_MODES:
            raise ValueError(
                f"reward must be one of {', '.join(repr(m) for m in REWARD_MODES)}; got {reward!r}"
            )
        H, d = self.horizon, self.feature_dim
        if theta is None:
            model = getattr(env.unwrapped, "model", None)
            model_theta = getattr(model, "theta", None)
            if model_theta is not None and np.shape(model_theta) == (H, d):
                theta = np.array(model_theta, dtype=np.float64)
        else:
            theta = check_array(theta, "theta", shape=(H, d))
        if reward == "auto":
            reward = "known" if theta is not None else "estimated"
        if reward == "known" and theta is None:
            raise ValueError(
                "theta (known reward weights, shape (H, d)) is required for reward='known': "
                "the environment has no model with theta; pass theta or reward='estimated'"
            )
        self.reward = reward
        self.theta = theta
        self._known_fn = getattr(env.unwrapped, "known_action_values", None)

    # ------------------------------------------------------------- subclass API
    @property
    def _bonus_name(self) -> str:
        """Canonical :mod:`robustrl.bonus` name of the penalty."""
        raise NotImplementedError

    def _estimate(self, h: int, xi: np.ndarray, values: np.ndarray,
                  in_regression: np.ndarray) -> np.ndarray:
        """``nu_h (d,)`` from ``Xi (d, n)`` and next-state values ``V (n,)`` (steps h < H-1)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- Q-values
    def _upper(self, step: int) -> float:
        return self.max_reward * (self.horizon - step)

    def _clipped_q(self, features: np.ndarray, step: int, weights: np.ndarray,
                   lambda_inv: np.ndarray) -> np.ndarray:
        q = features @ weights
        if self.beta > 0.0:
            q = q - self.beta * _bonus(features, lambda_inv, self._bonus_name)
        q = np.minimum(q, self._upper(step))
        if self.truncate_below:
            q = np.maximum(q, 0.0)
        return q

    def q_values_from_features(self, features, step: int, known_values=None) -> np.ndarray:
        """Learned, truncated Q at ``features (..., A, d)`` and 0-indexed ``step``: ``(..., A)``.

        ``known_values (..., A)`` (optional) replaces the entries where it is not NaN (actions
        whose value the environment knows exactly).
        """
        self._check_fitted()
        phi = check_array(features, "features", ndim=tuple(range(2, 33)))
        if phi.shape[-2:] != (self.n_actions, self.feature_dim):
            raise ValueError(
                f"features must have shape (..., {self.n_actions}, {self.feature_dim}) "
                f"(actions, feature_dim); got {phi.shape}"
            )
        step = check_int(step, "step", low=0, high=self.horizon - 1)
        q = self._clipped_q(phi, step, self.weights[step], self.lambda_inv[step])
        if known_values is not None:
            known = check_array(known_values, "known_values", shape=q.shape, finite=False)
            q = np.where(np.isnan(known), q, known)
        return q

    def q_values(self, obs) -> np.ndarray:
        """Q-values of every action at ``obs``, shape ``(A,)``; the step is read from ``obs``."""
        self._check_fitted()
        step = self.step_of(obs)
        known = None if self._known_fn is None else self._known_fn(obs)
        return self.q_values_from_features(self.action_features(obs), step, known)

    # ---------------------------------------------------------------------- fit
    def fit(self, dataset: OfflineDataset, progress: bool = False):
        """Learn from an :class:`~robustrl.data.OfflineDataset`; returns ``self``."""
        steps = self._step_arrays(dataset)
        result = self._backward_pass(steps, None, progress)
        self._store(result)
        return self

    def _store(self, result: PassResult) -> None:
        self.weights = result.weights
        self.lambda_inv = result.lambda_inv
        self.n_samples = result.n_samples
        self._fitted = True

    def _step_arrays(self, dataset) -> list[StepArrays]:
        if not isinstance(dataset, OfflineDataset):
            raise ValueError(
                f"dataset must be a robustrl.data.OfflineDataset; got {type(dataset).__name__}"
            )
        want = (self.horizon, self.feature_dim, self.n_actions)
        got = (dataset.horizon, dataset.feature_dim, dataset.n_actions)
        if got != want:
            raise ValueError(
                f"dataset must match the environment's (horizon, feature_dim, n_actions) = "
                f"{want}; got {got}"
            )
        steps = []
        for h in range(self.horizon):
            sd = dataset.step(h)
            known = None
            if self._known_fn is not None and len(sd.actions):
                known = np.asarray(self._known_fn(sd.next_observations), dtype=np.float64)
                if known.shape != (len(sd.actions), self.n_actions):
                    raise ValueError(
                        "env.unwrapped.known_action_values must return shape (n, A) for a batch "
                        f"of n observations; got {known.shape}"
                    )
            steps.append(
                StepArrays(
                    features=np.ascontiguousarray(sd.features),
                    rewards=np.ascontiguousarray(sd.rewards),
                    next_features=np.ascontiguousarray(sd.next_action_features),
                    next_nonterminal=sd.next_nonterminal,
                    known=known,
                    in_regression=np.any(sd.features != 0.0, axis=1),
                )
            )
        return steps

    def _next_state_values(self, st: StepArrays, h_next: int, weights: np.ndarray,
                           lambda_inv: np.ndarray) -> np.ndarray:
        """``V_{h+1}(s'_k) = max_a Q_{h+1}(s'_k, a)``, known action values included."""
        n = st.features.shape[0]
        if n == 0:
            return np.zeros(0)
        q = self._clipped_q(st.next_features, h_next, weights, lambda_inv)
        if st.known is not None:
            q = np.where(np.isnan(st.known), q, st.known)
        values = q.max(axis=1)
        return np.where(st.next_nonterminal, values, 0.0)

    def _backward_pass(self, steps: list[StepArrays], sample_weights: list[np.ndarray] | None,
                       progress: bool) -> PassResult:
        H, d = self.horizon, self.feature_dim
        weights = np.zeros((H, d))
        lambda_inv = np.zeros((H, d, d))
        next_values: list[np.ndarray] = [np.zeros(0)] * H
        n_samples = np.zeros(H, dtype=np.int64)
        eye = np.eye(d)
        for h in tqdm(range(H - 1, -1, -1), disable=not progress,
                      desc=type(self).__name__, unit="step"):
            st = steps[h]
            phi = st.features
            n = phi.shape[0]
            sw = np.ones(n) if sample_weights is None else sample_weights[h]
            gram = gram_matrix(phi, self.ridge, sw) if n else self.ridge * eye
            chol = cho_factor(gram, lower=True)
            inv = cho_solve(chol, eye)
            lambda_inv[h] = 0.5 * (inv + inv.T)  # exactly symmetric for the bonus checks
            if n:
                xi = np.ascontiguousarray(cho_solve(chol, (phi * sw[:, None]).T))  # (d, n)
            else:
                xi = np.zeros((d, 0))
            if h == H - 1:
                values = np.zeros(n)
                nu = np.zeros(d)
            else:
                values = self._next_state_values(st, h + 1, weights[h + 1], lambda_inv[h + 1])
                nu = self._estimate(h, xi, values, st.in_regression)
            reward_w = self.theta[h] if self.reward == "known" else xi @ st.rewards
            weights[h] = reward_w + nu
            next_values[h] = values
            n_samples[h] = int(st.in_regression.sum())
        return PassResult(weights, lambda_inv, next_values, n_samples)


def data_v_min(values: np.ndarray, in_regression: np.ndarray) -> float:
    """Smallest next-state value among the rows that enter the regression (0 if none): the
    authors' TV ``V_min`` (note 1.4, pitfall 4)."""
    sel = values[in_regression]
    return float(sel.min()) if sel.size else 0.0
