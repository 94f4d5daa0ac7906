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
from scipy.linalg.lapack import dpotrf, dpotri, dpotrs
from tqdm.auto import tqdm

from robustrl import ridge as ridge_module
from robustrl._kernels import offline as _kernels
from robustrl._kernels import ridge as _ridge_kernels
from robustrl.agents.base import LinearAgent, Training, deprecated_progress
from robustrl.bonus import BONUS_CODES, check_bonus_name
from robustrl.bonus import bonus as _bonus
from robustrl.data import OfflineDataset
from robustrl.ridge import blas_threads
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
    density: float = 1.0  # fraction of nonzero feature entries (sparse Gram below 1/4)


@dataclass
class _FitContext:
    """What :meth:`OfflineAgent._dataset_pass` computes once per fit instead of per step."""

    all_valid: bool  # every trajectory reaches every step
    nonterminal: np.ndarray  # (K, H) bool: not a terminal transition


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
    def fit(self, dataset: OfflineDataset, callback=None, progress_bar: bool = False, *,
            progress: bool | None = None):
        """Learn from an :class:`~robustrl.data.OfflineDataset`; returns ``self``.

        One fit is one update (the backward pass over ``h = H-1..0``): a stable-baselines3
        ``callback`` gets ``_on_step`` once, after the weights are stored, with
        ``num_timesteps`` the number of transitions that entered the regressions.
        ``progress_bar=True`` shows a bar over the steps; ``progress=`` is its deprecated name.
        """
        return self._with_callback(self._fit, dataset, callback,
                                   deprecated_progress(progress_bar, progress))

    def fit_stream(self, chunks, callback=None, progress_bar: bool = False, *,
                   progress: bool | None = None):
        """Learn from a dataset given in chunks (see :meth:`_fit_stream`), with ``callback``
        and ``progress_bar`` as in :meth:`fit`; returns ``self``."""
        return self._with_callback(self._fit_stream, chunks, callback,
                                   deprecated_progress(progress_bar, progress))

    def _with_callback(self, fit, data, callback, progress_bar: bool):
        # the pass draws its own per-step bar; the callback sees one update
        training = Training(self, callback, False, 1, "pass")
        training.start(locals())
        try:
            fit(data, progress_bar)
            self.num_timesteps = int(np.sum(self.n_samples))
            training.step(locals())
        finally:
            training.end()
        return self

    def _fit(self, dataset: OfflineDataset, progress: bool) -> None:
        self._store(self._dataset_pass(dataset, progress))

    def _dataset_pass(self, dataset: OfflineDataset, progress: bool) -> PassResult:
        """The backward pass on an in-memory dataset, gathering each step's rows only when the
        pass reaches that step, into one buffer reused by every step. Gathering all steps up
        front (:meth:`_step_arrays`) allocates fresh memory for every step, and at large N the
        first-touch page faults of those arrays cost more than the gather itself."""
        self._check_dataset(dataset)
        known_all = self._known_all(dataset)
        K = dataset.valid.shape[0]
        buffer = np.empty((K, self.feature_dim))
        current: list = [None, None]  # (h, StepArrays): the pass reads a step up to twice
        fast = _FitContext(bool(dataset.valid.all()), ~dataset.terminal)

        def step_chunks(h: int):
            if current[0] != h:
                current[1] = None  # drop the previous step before gathering the next
                current[:] = [h, self._dataset_step(dataset, h, checked=True,
                                                    known_all=known_all, buffer=buffer,
                                                    fast=fast)]
            return (current[1],)

        d = self.feature_dim
        largest = int(dataset.valid.sum(axis=0).max(initial=0)) * d * d
        with blas_threads(1 if largest < ridge_module.PARALLEL_BLAS_MIN_FLOPS else 1024):
            return self._chunked_pass(step_chunks, None, progress, keep_values=True)

    def _fit_stream(self, chunks, progress: bool) -> None:
        """Learn from a dataset given in chunks, never holding more than one chunk at a time.

        ``chunks``: a re-iterable collection of :class:`~robustrl.data.OfflineDataset` chunks
        (e.g. a list, or an object whose ``__iter__`` loads or generates them afresh) or a
        zero-argument callable returning a fresh iterator of chunks; the trajectories of all
        chunks together form the dataset. The backward pass needs ``V_{h+1}`` from the already
        fitted step ``h + 1``, so the chunks are read once per step (twice for R2PVI-TV with
        ``v_min="data"`` and R2PVI-KL, which need the smallest next-state value first).
        Per step only sums are kept (the Gram matrix, ``Phi^T W y`` for every target): the
        result equals :meth:`fit` on the concatenated data up to rounding, in memory that does
        not grow with the data. The estimators that need each factor's regression weights per
        sample (R2PVI-chi2, DRPVI, DRVI-L) keep them per *distinct* next-state value, so their
        memory is flat when the values take finitely many values (finite state spaces) and
        grows with the number of distinct values otherwise.
        """
        source = _chunk_source(chunks)
        # chunks are meant to be moderate: single-threaded BLAS (see robustrl.ridge)
        with blas_threads(1):
            result = self._chunked_pass(lambda h: (self._dataset_step(c, h) for c in source()),
                                        None, progress, keep_values=False)
        self._store(result)

    def _store(self, result: PassResult) -> None:
        self.weights = result.weights
        self.lambda_inv = result.lambda_inv
        self.n_samples = result.n_samples
        self._fitted = True

    def _param_specs(self) -> dict[str, dict]:
        H, d = self.horizon, self.feature_dim
        return {"weights": {"kind": "f", "shape": (H, d)},
                "lambda_inv": {"kind": "f", "shape": (H, d, d)},
                "n_samples": {"kind": "i", "shape": (H,), "low": 0}}

    def _check_dataset(self, dataset) -> None:
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

    def _step_arrays(self, dataset) -> list[StepArrays]:
        self._check_dataset(dataset)
        known_all = self._known_all(dataset)
        return [self._dataset_step(dataset, h, checked=True, known_all=known_all)
                for h in range(self.horizon)]

    def _known_all(self, dataset) -> np.ndarray | None:
        """The known action values of every (trajectory, step), ``(K, H, A)``, or None.

        One call for every (trajectory, step) instead of one per step: the environment's
        function has a fixed cost per call. Rows of steps not taken are computed too (their
        observations are zeros) and never read."""
        if self._known_fn is None:
            return None
        K, H = dataset.valid.shape
        obs = dataset.next_observations.reshape(K * H, -1)
        return self._checked_known(self._known_fn(obs), K * H).reshape(K, H, self.n_actions)

    def _checked_known(self, known, n: int) -> np.ndarray:
        known = np.asarray(known, dtype=np.float64)
        if known.shape != (n, self.n_actions):
            raise ValueError(
                "env.unwrapped.known_action_values must return shape (n, A) for a batch "
                f"of n observations; got {known.shape}"
            )
        return known

    def _dataset_step(self, dataset, h: int, checked: bool = False,
                      known_all: np.ndarray | None = None,
                      buffer: np.ndarray | None = None,
                      fast: _FitContext | None = None) -> StepArrays:
        """Step ``h`` of ``dataset``. Only what the pass reads is gathered (not observations or
        actions), and the next-state features stay a strided view of the dataset when every
        trajectory reaches step ``h``: they are the largest array and are read once.
        ``known_all (K, H, A)``: the known action values of the whole dataset, if computed.
        ``buffer (>= n, d)``: C-contiguous memory to gather the features into (its first n
        rows; it is overwritten by the next step gathered into it)."""
        if not checked:
            self._check_dataset(dataset)
        if fast is not None and fast.all_valid:
            return self._full_step(dataset, h, known_all, buffer, fast)
        m = dataset.valid[:, h]
        rows = slice(None) if m.all() else np.flatnonzero(m)
        source = dataset.features[rows, h]
        features = (np.empty(source.shape) if buffer is None
                    else buffer[:source.shape[0]])
        in_regression = np.empty(source.shape[0], dtype=bool)
        nnz = _kernels.gather_features(source, features, in_regression)
        known = None
        if self._known_fn is not None and features.shape[0]:
            if known_all is not None:
                known = np.ascontiguousarray(known_all[rows, h])
            else:
                known = self._checked_known(
                    self._known_fn(dataset.next_observations[rows, h]), features.shape[0])
        return StepArrays(
            features=features,
            rewards=np.ascontiguousarray(dataset.rewards[rows, h]),
            next_features=dataset.next_action_features[rows, h],
            next_nonterminal=~dataset.terminal[rows, h],
            known=known,
            in_regression=in_regression,
            density=nnz / max(features.size, 1),
        )

    def _full_step(self, dataset, h: int, known_all, buffer, fast: _FitContext) -> StepArrays:
        """:meth:`_dataset_step` when every trajectory reaches every step: views of the
        dataset for everything but the features (the kernels read any layout), so that the
        per-step cost at small N is a handful of calls."""
        features = buffer
        in_regression = np.empty(buffer.shape[0], dtype=bool)
        nnz = _kernels.gather_features(dataset.features[:, h], features, in_regression)
        return StepArrays(
            features=features,
            rewards=dataset.rewards[:, h],
            next_features=dataset.next_action_features[:, h],
            next_nonterminal=fast.nonterminal[:, h],
            known=None if known_all is None else known_all[:, h],
            in_regression=in_regression,
            density=nnz / max(features.size, 1),
        )

    def _next_state_values(self, st: StepArrays, h_next: int, weights: np.ndarray,
                           lambda_inv: np.ndarray,
                           value_min: _ValueMin | None = None) -> np.ndarray:
        """``V_{h+1}(s'_k) = max_a Q_{h+1}(s'_k, a)``, known action values included (one fused
        Numba pass over the next-state features, :func:`robustrl._kernels.offline.
        next_state_values`); ``value_min`` (optional) is updated with their minima in the same
        kernel call."""
        n = st.features.shape[0]
        if n == 0:
            return np.zeros(0)
        has_known = st.known is not None
        known = st.known if has_known else _NO_KNOWN
        name = self._bonus_name
        code = (_BONUS_CODE_OF[name] if name in _BONUS_CODE_OF
                else BONUS_CODES[check_bonus_name(name)])
        bonus = _NO_KNOWN
        # sparse rows (the step's features as the proxy): the fused kernel skips zero
        # entries, O(nnz d) per row, cheaper than BLAS's O(d^2) and one read of the rows
        if code == BONUS_CODES["elliptical"] and self.beta > 0.0 and \
                self.feature_dim >= _BLAS_BONUS_MIN_DIM and \
                st.density >= _SPARSE_GRAM_DENSITY:
            bonus = _elliptical_by_blas(st.next_features, lambda_inv)
        if value_min is None:
            return _kernels.next_state_values(
                st.next_features, weights, lambda_inv, -self.beta, code, self._upper(h_next),
                self.truncate_below, known, has_known, st.next_nonterminal, bonus,
                bonus.size > 0,
            )
        values, lo, lo_regression = _kernels.next_state_values_minima(
            st.next_features, weights, lambda_inv, -self.beta, code, self._upper(h_next),
            self.truncate_below, known, has_known, st.next_nonterminal, bonus, bonus.size > 0,
            st.in_regression,
        )
        value_min.merge(lo, lo_regression, n)
        return values

    # ------------------------------------------------------- estimator plumbing
    def _uses_moments(self) -> bool:
        """True for moment estimators (PEVI, R2PVI-TV/KL): ``nu_h`` is a function of the ridge
        estimate ``Xi f(V)`` of one target (:meth:`_moment_target`, :meth:`_moment_estimate`),
        so only ``Phi^T W f(V)`` is accumulated. False (the default) selects the general
        path: :meth:`_estimate` on the regression matrix of the distinct next-state values."""
        return False

    def _moment_target(self, h: int, values: np.ndarray, value_min: _ValueMin) -> np.ndarray:
        """The regression target ``f(V) (n,)`` of a moment estimator."""
        raise NotImplementedError

    def _needs_value_min(self) -> bool:
        """Whether :meth:`_moment_target` needs the smallest next-state value of the step."""
        return False

    def _moment_estimate(self, h: int, z: np.ndarray, value_min: _ValueMin,
                         moment: np.ndarray, lambda_inv: np.ndarray) -> np.ndarray:
        """``nu_h`` from ``z = Lambda^{-1} moment``, ``moment = Phi^T W f(V)`` (d,)."""
        return z

    def _first_read(self, st: StepArrays, values: np.ndarray, value_min: _ValueMin) -> None:
        """Per chunk of the first read (:meth:`_needs_value_min`): extra per-step statistics."""

    def _accumulate(self, st: StepArrays, values: np.ndarray, sample_weights: np.ndarray | None,
                    value_min: _ValueMin) -> None:
        """Per chunk of a moment estimator's second read: extra per-step sums."""

    def _backward_pass(self, steps: list[StepArrays], sample_weights: list[np.ndarray] | None,
                       progress: bool) -> PassResult:
        """The pass on in-memory steps (one chunk per step). BLAS and LAPACK run
        single-threaded unless a step's Gram update reaches
        :data:`robustrl.ridge.PARALLEL_BLAS_MIN_FLOPS` (threads cost more than they give on
        small products, and far more on a busy machine)."""
        d = self.feature_dim
        largest = max((st.features.shape[0] for st in steps), default=0) * d * d
        with blas_threads(1 if largest < ridge_module.PARALLEL_BLAS_MIN_FLOPS else 1024):
            return self._chunked_pass(lambda h: (steps[h],), sample_weights, progress,
                                      keep_values=True)

    def _chunked_pass(self, step_chunks, sample_weights, progress: bool,
                      keep_values: bool) -> PassResult:
        """Backward pass over ``step_chunks(h)``, an iterable of :class:`StepArrays` whose rows
        together are the step-``h`` data. Per step: ``Lambda_h`` (BLAS ``syrk``, one Cholesky
        factor), ``Phi^T W [r, f(V)]`` for all targets at once (one triangular solve for all
        of them), or per distinct value ``v`` the weighted feature sum ``G_v`` for the general
        estimators (then ``Xi = Lambda^{-1} G^T`` is ``(d, m)`` for ``m`` distinct values)."""
        H, d = self.horizon, self.feature_dim
        weights = np.zeros((H, d))
        lambda_inv = np.zeros((H, d, d))
        next_values: list[np.ndarray] = [np.zeros(0)] * H
        n_samples = np.zeros(H, dtype=np.int64)
        eye = np.eye(d)
        steps = range(H - 1, -1, -1)
        if progress:  # a disabled bar still costs more than a small step
            steps = tqdm(steps, desc=type(self).__name__, unit="step")
        for h in steps:
            last = h == H - 1
            moment_path = last or self._uses_moments()
            value_min = _ValueMin()
            cached: list[np.ndarray] = []
            if not last and moment_path and self._needs_value_min():
                # First read: the smallest next-state values, before any target is formed.
                for st in step_chunks(h):
                    v = self._next_state_values(st, h + 1, weights[h + 1], lambda_inv[h + 1],
                                                value_min)
                    self._first_read(st, v, value_min)
                    if keep_values:
                        cached.append(v)
            gram = self.ridge * eye  # a fresh array: the updates are in place
            moment = np.zeros((d, 2))
            groups = None if moment_path else _Groups(d)
            all_values = []
            count = 0
            for c, st in enumerate(step_chunks(h)):
                n = st.features.shape[0]
                phi = st.features
                sw = None if sample_weights is None else sample_weights[h]
                if n == 0:
                    continue
                if last:
                    v = np.zeros(n)
                elif cached:
                    v = cached[c]
                else:
                    v = self._next_state_values(st, h + 1, weights[h + 1], lambda_inv[h + 1],
                                                value_min if moment_path else None)
                if keep_values:
                    all_values.append(v)
                count += int(st.in_regression.sum())
                target = (self._moment_target(h, v, value_min) if moment_path and not last
                          else _NO_WEIGHTS)
                if target.size:
                    self._accumulate(st, v, sw, value_min)
                if st.density < _SPARSE_GRAM_DENSITY:
                    # sparse rows: the Gram update and the moments in one pass over nonzeros
                    _kernels.sparse_gram_moment_into(
                        gram, moment, phi, st.rewards, target, target.size > 0,
                        _NO_WEIGHTS if sw is None else sw, sw is not None)
                    if not moment_path:
                        groups.add(v, phi, np.ones(n) if sw is None else sw, st.in_regression)
                    continue
                _gram_into(gram, phi, sw, st.density)
                if n * d <= _SMALL_MOMENT:
                    # one Numba pass (skipping zeros) instead of forming [r, f(V)] for BLAS
                    _kernels.moment_into(moment, phi, st.rewards, target, target.size > 0,
                                         _NO_WEIGHTS if sw is None else sw, sw is not None)
                else:
                    wphi = phi if sw is None else phi * sw[:, None]
                    moment[:, 0] += wphi.T @ st.rewards
                    if target.size:
                        moment[:, 1] += wphi.T @ target
                if not moment_path:
                    groups.add(v, phi, np.ones(n) if sw is None else sw, st.in_regression)
            chol = _cholesky(gram)
            solved = _cho_solve(chol, moment)  # (d, 2): reward weights, nu's regression
            # Lambda^{-1} from the factor (potri fills the lower triangle), exactly symmetric
            # for the bonus checks
            _kernels.symmetric_from_lower(_cho_inverse(chol), lambda_inv[h])
            if last:
                nu = np.zeros(d)
            elif moment_path:
                nu = self._moment_estimate(h, solved[:, 1], value_min, moment[:, 1],
                                           lambda_inv[h])
            else:
                u, g, inside = groups.result()
                xi = (np.ascontiguousarray(_cho_solve(chol, g.T)) if u.size
                      else np.zeros((d, 0)))
                nu = self._estimate(h, xi, u, inside)
            reward_w = self.theta[h] if self.reward == "known" else solved[:, 0]
            weights[h] = reward_w + nu
            if keep_values:
                next_values[h] = (all_values[0] if len(all_values) == 1 else
                                  np.concatenate(all_values) if all_values else np.zeros(0))
            n_samples[h] = count
        return PassResult(weights, lambda_inv, next_values, n_samples)


_NO_KNOWN = np.zeros((0, 0))
_BONUS_CODE_OF = {name: BONUS_CODES[check_bonus_name(name)]
                  for name in ("elliptical", "paper_l1", "code_l2", "d_rectangular_l1",
                               "d_rectangular_l2", "none")}


def _cholesky(gram: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor by LAPACK ``potrf`` directly (scipy.linalg's wrappers cost more
    than a 30 x 30 factorisation)."""
    lower, info = dpotrf(gram, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix not positive definite (potrf info {info})")
    return lower


def _cho_solve(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``Lambda^{-1} rhs`` from the factor of :func:`_cholesky` (LAPACK ``potrs``)."""
    out, info = dpotrs(lower, rhs, lower=1)
    if info != 0:
        raise ValueError(f"potrs failed (info {info})")
    return out


def _cho_inverse(lower: np.ndarray) -> np.ndarray:
    """``Lambda^{-1}`` from the factor of :func:`_cholesky`: LAPACK ``potri``, whose result
    holds the lower triangle only."""
    out, info = dpotri(lower, lower=1)
    if info != 0:
        raise ValueError(f"potri failed (info {info})")
    return out


# Up to this many feature entries in a chunk the moments Phi^T W [r, f(V)] are one Numba pass
# (BLAS's call overhead dominates); above it BLAS, unless the features are sparse.
_SMALL_MOMENT = 1 << 14

# Below this fraction of nonzero feature entries the Gram update skips zeros (Numba, O(nnz^2)
# per row); above it BLAS syrk on the dense rows is faster.
_SPARSE_GRAM_DENSITY = 0.25


def _gram_into(gram: np.ndarray, phi: np.ndarray, sample_weights: np.ndarray | None,
               density: float) -> None:
    """In place ``gram += Phi^T W Phi``: exactly symmetric either way (the caller sets the BLAS
    threads). Dense rows: ``X^T X`` of one buffer, a BLAS ``syrk``, ``X = sqrt(W) Phi``."""
    if density < _SPARSE_GRAM_DENSITY:
        w = _NO_WEIGHTS if sample_weights is None else sample_weights
        _ridge_kernels.sparse_gram_into(gram, phi, w, sample_weights is not None)
        return
    x = phi if sample_weights is None else phi * np.sqrt(sample_weights)[:, None]
    gram += x.T @ x


_NO_WEIGHTS = np.zeros(0)

# From this feature dimension on, the elliptical bonus phi^T Lambda^{-1} phi (O(d^2) per row)
# is formed by BLAS (Phi Lambda^{-1}, then row-wise dots) instead of the scalar Numba loop.
_BLAS_BONUS_MIN_DIM = 16
_BLAS_BONUS_ROWS = 8192


def _elliptical_by_blas(next_features: np.ndarray, lambda_inv: np.ndarray) -> np.ndarray:
    """``sqrt(phi^T Lambda^{-1} phi)`` for ``next_features (n, A, d)``, ``(n, A)``, in blocks
    of rows so that the temporary stays small."""
    n, n_actions, d = next_features.shape
    out = np.empty((n, n_actions))
    for start in range(0, n, _BLAS_BONUS_ROWS):
        x = np.ascontiguousarray(next_features[start:start + _BLAS_BONUS_ROWS])
        x = x.reshape(-1, d)
        quad = np.einsum("ij,ij->i", x @ lambda_inv, x)
        out[start:start + _BLAS_BONUS_ROWS] = np.sqrt(np.maximum(quad, 0.0)).reshape(
            -1, n_actions)
    return out


class _ValueMin:
    """Running minima of the next-state values: over all rows and over regression rows."""

    def __init__(self) -> None:
        self.all = np.inf
        self.regression = np.inf
        self.count = 0
        self.top = -np.inf  # largest value (estimators that ask, in their first read)
        self.skipped = False  # an estimator's per-chunk scan was skipped for some chunk
        self.columns: np.ndarray | None = None  # per feature column (estimators that ask)
        self.extra: np.ndarray | None = None  # an estimator's per-step sums

    def update(self, values: np.ndarray, in_regression: np.ndarray) -> None:
        if values.size:
            lo, lo_regression = _kernels.value_minima(values, in_regression)
            self.merge(lo, lo_regression, values.size)

    def merge(self, lo: float, lo_regression: float, count: int) -> None:
        """Fold in the minima (all rows, regression rows) of ``count > 0`` more values."""
        self.all = min(self.all, lo)
        self.count += count
        self.regression = min(self.regression, lo_regression)

    @property
    def data_v_min(self) -> float:
        """:func:`data_v_min` of the whole step (0 when no row enters the regression)."""
        return self.regression if np.isfinite(self.regression) else 0.0


class _Groups:
    """Per distinct next-state value: the weighted feature sum and whether any of its rows
    enters the regression. ``sum_v Xi_v f(v)`` with ``Xi = Lambda^{-1} G^T`` equals the
    per-sample ``sum_k Xi_k f(V_k)`` for every ``f``, so the estimators see the same
    (weight, value) sums with ``m`` columns instead of ``n``. Chunks merge exactly."""

    def __init__(self, dim: int) -> None:
        self.values = np.zeros(0)
        self.sums = np.zeros((0, dim))
        self.inside = np.zeros(0, dtype=bool)

    def add(self, values, features, weights, in_regression) -> None:
        u, g, inside = _kernels.group_by_value(values, features, weights, in_regression)
        if self.values.size:  # merge with the chunks seen so far: group the group sums
            u, g, inside = _kernels.group_by_value(
                np.concatenate([self.values, u]), np.concatenate([self.sums, g]),
                np.ones(self.values.size + u.size), np.concatenate([self.inside, inside]))
        self.values, self.sums, self.inside = u, g, inside

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.values, self.sums, self.inside


def _chunk_source(chunks):
    """A zero-argument callable giving a fresh iterator over the chunks (see ``fit_stream``)."""
    if callable(chunks):
        return lambda: iter(chunks())
    try:
        it = iter(chunks)
    except TypeError:
        raise ValueError("chunks must be a re-iterable collection of OfflineDataset chunks or "
                         "a callable returning a fresh iterator of them") from None
    if it is chunks:
        raise ValueError("chunks must be re-iterable (a list, or a callable returning a fresh "
                         "iterator): the backward pass reads the data once per step")
    return lambda: iter(chunks)


def data_v_min(values: np.ndarray, in_regression: np.ndarray) -> float:
    """Smallest next-state value among the rows that enter the regression (0 if none): the
    authors' TV ``V_min`` (note 1.4, pitfall 4)."""
    sel = values[in_regression]
    return float(sel.min()) if sel.size else 0.0
