"""Shared machinery of the offline pessimistic value-iteration agents (arXiv:2411.18612,
docs/algorithms/r2pvi.md, docs/algorithms/drpvi.md).

Every agent of this family runs the same backward pass over a fixed dataset: for
``h = H-1 .. 0``

* ``Lambda_h = ridge I + sum_k w_k phi_k phi_k^T`` (sample weights ``w_k``: 1, or ``1/sigma_k^2``
  in the variance-aware variant), factorised once by Cholesky;
* ``Xi = Lambda_h^{-1} Phi^T W`` (d, n): any regression target ``y`` gives the estimate ``Xi y``;
* ``V_k = V_{h+1}(s'_k) = max_a Q_{h+1}(s'_k, a)`` at the observed next states (0 after a
  terminal transition), where actions whose value the environment knows exactly
  (``env.unwrapped.known_action_values``, e.g. the put option's exercise payoff) take that
  value instead of the learned one;
* ``w_h = reward weights + nu_h`` with the agent's estimator (a value from
  :mod:`robustrl.agents.estimators`, 0 at the last step), the reward weights being the known
  ``theta_h`` or the ridge estimate ``Xi r``;
* ``Q_h(s, a) = clip(phi^T w_h - beta Gamma_h(s, a), 0, max_reward (H - h))`` with the agent's
  penalty ``Gamma`` from :mod:`robustrl.bonus`.

Each agent declares its estimator and penalty in ``__init__`` (``self._estimator``,
``self._penalty``); ``estimator=`` replaces the estimator.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from robustrl import ridge as ridge_module
from robustrl._kernels import announce_compile, aot
from robustrl._kernels import lapack as _lapack
from robustrl._kernels import offline as _kernels
from robustrl._kernels import offline_pass as _pass
from robustrl.agents.base import (
    LinearAgent,
    TiedQWarning,
    Training,
    deprecated_progress,
)
from robustrl.agents.estimators import (
    KL_FAR_SHIFT,
    Chi2Regularized,
    KLDual,
    KLRegularized,
    MomentEstimator,
    Regression,
    RowEstimator,
    StepStats,
    TVDual,
    TVRegularized,
)
from robustrl.bonus import BONUS_CODES, check_bonus_name
from robustrl.data import OfflineDataset, StepData, step_view
from robustrl.ridge import blas_threads
from robustrl.validation import (  # check_bool re-exported for the agents' modules
    check_array,
    check_bool,
    check_int,
    check_nonnegative,
    check_positive,
)

# the kernels compiled ahead of time (robustrl compile-kernels), where present and current,
# registered in their Numba dispatchers: the JIT then compiles nothing for a fit
aot.install()

#: learned attributes under their pre-1.0 names (read-only, deprecated)
_DEPRECATED_NAMES = {"weights": "weights_", "lambda_inv": "lambda_inv_",
                     "n_samples": "n_samples_"}

REWARD_MODES: tuple[str, ...] = ("auto", "known", "estimated")
D_RECTANGULAR_BONUSES: tuple[str, ...] = ("paper_l1", "code_l2")


# --------------------------------------------------------------------------------------------
# argument checks shared by the agents


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
        reward: ``"estimated"`` (the default of every offline agent) regresses the observed
            rewards on the features; ``"known"`` uses the reward weights ``theta`` instead (the
            R2PVI authors' simulated-MDP setting: opt in by name); ``"auto"`` picks
            ``"known"`` when ``theta`` is available (given, or ``env.unwrapped.model.theta``).
        theta: known reward weights ``(H, d)``; default ``env.unwrapped.model.theta`` if any.
        truncate_below: clip Q at 0 from below (the paper) or only from above (the code).
        max_reward: rewards lie in ``[0, max_reward]``, so Q at step h is truncated above at
            ``max_reward (H - h)`` (1 = the papers' ``H - h + 1`` one-indexed). ``None`` (the
            default) means 1 and ``fit`` raises ``ValueError`` naming the observed range when
            the data's rewards leave ``[0, 1]``; an explicit value is a deliberate bound, and
            ``fit`` warns (rather than raises) when the data exceed it.
        estimator: ``None`` (the agent's own) or a :class:`~robustrl.agents.estimators.
            MomentEstimator` / :class:`~robustrl.agents.estimators.RowEstimator` that the
            backward pass runs instead (e.g. a reproduction of another solver); it is not
            saved by :meth:`save` (a loaded agent predicts from the saved weights).

    Learned attributes: ``weights_ (H, d)``, ``lambda_inv_ (H, d, d)``, ``n_samples_ (H,)``
    (rows in each step's regression); the names without the underscore are deprecated.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("weights_", "lambda_inv_", "n_samples_")
    _default_reward: ClassVar[str] = "estimated"

    def __init__(
        self,
        env,
        *,
        ridge: float,
        beta: float,
        reward: str,
        theta,
        truncate_below: bool,
        max_reward: float | None,
        estimator: MomentEstimator | RowEstimator | None = None,
    ) -> None:
        super().__init__(env)
        if estimator is not None and not isinstance(estimator, (MomentEstimator, RowEstimator)):
            raise ValueError("estimator must be None or a robustrl.agents.estimators."
                             f"MomentEstimator or RowEstimator; got {type(estimator).__name__}")
        self.estimator = estimator
        self.ridge = check_positive(ridge, "ridge")
        self.beta = check_nonnegative(beta, "beta")
        self.truncate_below = check_bool(truncate_below, "truncate_below")
        # None: rewards must lie in [0, 1] (fit raises otherwise); a value given explicitly is
        # a deliberate truncation bound (the R2PVI authors' put setting), fit warns when the
        # data exceed it
        self._max_reward_given = max_reward is not None
        self.max_reward = 1.0 if max_reward is None else check_positive(max_reward, "max_reward")
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

    # ----------------------------------------------------------------- Q-values
    def _upper(self, step: int) -> float:
        return self.max_reward * (self.horizon - step)

    def _bonus_code(self) -> int:
        name = self._penalty
        return (_BONUS_CODE_OF[name] if name in _BONUS_CODE_OF
                else BONUS_CODES[check_bonus_name(name)])

    def _clipped_q(self, features: np.ndarray, step: int, weights: np.ndarray,
                   lambda_inv: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        """``Q (..., A)`` at ``features (..., A, d)`` by the kernel the backward pass uses for
        the next-state values (:func:`robustrl._kernels.offline.clipped_q`): one
        implementation of the clipped, penalised Q; ``known (..., A)`` replaces the entries
        where it is not NaN."""
        shape = features.shape[:-1]
        flat = np.ascontiguousarray(features, dtype=np.float64).reshape(-1, *features.shape[-2:])
        has_known = known is not None
        known_flat = (np.ascontiguousarray(known, dtype=np.float64).reshape(flat.shape[:2])
                      if has_known else _NO_KNOWN)
        q = _kernels.clipped_q(flat, weights, lambda_inv, -self.beta, self._bonus_code(),
                               self._upper(step), self.truncate_below, known_flat, has_known,
                               _NO_KNOWN, False)
        return q.reshape(shape)

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
        known = None if known_values is None else check_array(
            known_values, "known_values", shape=phi.shape[:-1], finite=False)
        return self._clipped_q(phi, step, self.weights_[step], self.lambda_inv_[step], known)

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
        self._with_callback(self._fit, dataset, callback,
                            deprecated_progress(progress_bar, progress))
        self._warn_if_tied(dataset)  # a fit with no learned choice is not silent
        return self

    def _warn_if_tied(self, dataset: OfflineDataset, max_states: int = 256) -> list[int]:
        """:func:`robustrl.agents.base.warn_if_q_ties_at_bounds` by one kernel call
        (:func:`robustrl._kernels.offline_pass.tied_steps`): the environment's action features
        are asked for (step 0's states) only where the taken actions' Q is at a bound."""
        tied, example = _pass.tied_steps(
            step_view(dataset.features), step_view(dataset.next_action_features),
            step_view(dataset.valid), step_view(~dataset.terminal), self.weights_,
            self.lambda_inv_, -self.beta, self._bonus_code(), self.max_reward,
            self.truncate_below, max_states)
        steps = [int(h) for h in np.flatnonzero(tied)]
        if steps and steps[0] == 0:  # every action at step 0's states
            obs = dataset.observations[np.flatnonzero(dataset.valid[:, 0])[:max_states], 0]
            # one Q where every trajectory starts in the same state (often), else one batched
            # environment call for all start states
            starts = obs[:1] if (obs == obs[0]).all() else obs
            q = self.q_values_from_features(self.batch_action_features(starts), 0)
            at_bound = np.all(q == self._upper(0), axis=1)  # per state, as the kernel
            if self.truncate_below:
                at_bound |= np.all(q == 0.0, axis=1)
            if at_bound.all():
                example[0] = q[0, 0]  # the first data state's, as at the other steps
            else:
                steps = steps[1:]
        if steps:
            h = steps[0]
            warnings.warn(
                f"{type(self).__name__}: after fit, every action's Q ties at a clip bound at "
                f"every data state of steps {steps} (e.g. Q = {example[h]:g} for all "
                f"{self.n_actions} actions at step {h}), so the greedy policy there is the "
                "first action, not a learned choice. Usual causes: too little data for the "
                "pessimism penalty beta (Q is pushed below 0 and clipped), rewards that are all "
                "zero, or a max_reward bound too small; more data or a smaller beta helps.",
                TiedQWarning, stacklevel=3)
        return steps

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
            self.num_timesteps = int(np.sum(self.n_samples_))
            training.step(locals())
        finally:
            training.end()
        return self

    def _fit(self, dataset: OfflineDataset, progress: bool) -> None:
        self._store(self._dataset_pass(dataset, progress))

    def _dataset_pass(self, dataset: OfflineDataset, progress: bool,
                      sample_weights: list[np.ndarray] | None = None,
                      keep_values: bool = False) -> PassResult:
        """The backward pass on an in-memory dataset: with a built-in estimator the whole pass
        is one compiled call (:func:`robustrl._kernels.offline_pass.offline_pass`), otherwise
        the chunked pass over the dataset as one chunk. ``sample_weights``: per step, the
        weights of its valid rows in order. BLAS and LAPACK run single-threaded unless a step's
        Gram update reaches :data:`robustrl.ridge.PARALLEL_BLAS_MIN_FLOPS`."""
        self._check_dataset(dataset)
        known_all = self._known_all(dataset)
        H, d = self.horizon, self.feature_dim
        threaded = False
        if dataset.valid.shape[0] * d * d >= ridge_module.PARALLEL_BLAS_MIN_FLOPS:
            # counting the rows per step costs 0.1 ms at K = 10^4: only where it can matter
            threaded = dataset.valid.sum(axis=0).max(initial=0) * d * d >= \
                ridge_module.PARALLEL_BLAS_MIN_FLOPS
        spec = _compiled_spec(self._estimator, H, d)
        with blas_threads(1024 if threaded else 1):
            if spec is None:
                return self._chunked_pass(
                    lambda h: (self._dataset_step(dataset, h, checked=True,
                                                  known_all=known_all),),
                    sample_weights, progress, keep_values=keep_values)
            announce_compile((_pass.offline_pass,), f"the {type(self).__name__} fit")
            bar = _progress(progress, type(self).__name__, H)
            K = dataset.valid.shape[0]
            sw = np.zeros((1, 0))
            if sample_weights is not None:
                sw = np.zeros((H, K))
                for h, w in enumerate(sample_weights):
                    sw[h, :w.shape[0]] = w
            weights, lambda_inv, n_samples, values, worst, at, failed = _pass.offline_pass(
                step_view(dataset.features), step_view(dataset.rewards),
                step_view(dataset.next_action_features), step_view(dataset.valid),
                step_view(~dataset.terminal),
                np.zeros((H, 0, self.n_actions)) if known_all is None else step_view(known_all),
                known_all is not None, sw, sample_weights is not None,
                np.zeros((H, d)) if self.theta is None else self.theta,
                self.reward == "known", self.ridge, -self.beta, self._bonus_code(),
                self.max_reward, self.truncate_below, *spec, keep_values)
            if bar is not None:
                bar.update(H)
                bar.close()
        if failed >= 0:
            raise np.linalg.LinAlgError(f"Gram matrix of step {failed} not positive definite")
        if spec[0] == _pass.KL_REGULARIZED:
            for h in range(H - 1, -1, -1):
                self._estimator.check_cancellation(h, worst[h], int(at[h]))
        next_values = [np.zeros(0)] * H
        if keep_values:
            counts = dataset.valid.sum(axis=0)
            next_values = [values[h, :counts[h]] for h in range(H)]
        return PassResult(weights, lambda_inv, next_values, n_samples)

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
        self.weights_ = result.weights
        self.lambda_inv_ = result.lambda_inv
        self.n_samples_ = result.n_samples
        self._fitted = True

    def __getattr__(self, name: str):
        # only reached when normal lookup fails: the deprecated names of learned attributes
        new = _DEPRECATED_NAMES.get(name)
        if new is None or new not in self.__dict__:
            raise AttributeError(f"{self.__class__.__name__!r} object has no attribute {name!r}")
        warnings.warn(f"{self.__class__.__name__}.{name} is deprecated; use {new}",
                      DeprecationWarning, stacklevel=2)
        return self.__dict__[new]

    def _param_specs(self) -> dict[str, dict]:
        H, d = self.horizon, self.feature_dim
        return {"weights_": {"kind": "f", "shape": (H, d)},
                "lambda_inv_": {"kind": "f", "shape": (H, d, d)},
                "n_samples_": {"kind": "i", "shape": (H,), "low": 0}}

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
        valid = dataset.valid
        space = getattr(self.env, "observation_space", None)
        shape = getattr(space, "shape", None)
        if shape and int(np.prod(shape)) != dataset.observations.shape[-1]:
            raise ValueError(
                f"dataset observations have {dataset.observations.shape[-1]} entries but the "
                f"environment's observation space {space} has {int(np.prod(shape))} (the state "
                "and, last, the step index): the data come from another environment")
        steps = dataset.observations[..., -1]
        wrong = (steps != np.arange(self.horizon)) & valid
        if wrong.any():
            k, h = np.argwhere(wrong)[0]
            raise ValueError(
                "dataset observations must end with the 0-indexed step (the step-index rule of "
                f"robustrl.protocols); trajectory {k} step {h} carries {steps[k, h]!r}. Data "
                "recorded without the step (e.g. a Minari dataset of FrozenLake) must be "
                "collected through a feature wrapper (robustrl.envs.OneHotFeatures)")
        self._check_rewards(dataset.rewards[valid])

    def _check_rewards(self, rewards: np.ndarray) -> None:
        """Q is truncated to ``[0, max_reward (H - h)]`` (``[-inf, ...]`` without
        ``truncate_below``), which is right only for rewards inside ``[0, max_reward]``;
        outside it every Q-value would be clipped silently (CliffWalking's -1/-100 gave Q = 0
        everywhere)."""
        if rewards.size == 0:
            return
        low, high = float(rewards.min()), float(rewards.max())
        if high > self.max_reward or (self.truncate_below and low < 0.0):
            floor = "0" if self.truncate_below else "-inf"
            msg = (f"dataset rewards lie in [{low:g}, {high:g}], outside the range "
                   f"[{floor}, max_reward={self.max_reward:g}] that the Q-values are truncated to")
            if self._max_reward_given:
                warnings.warn(f"{type(self).__name__}: {msg}; Q is truncated at max_reward "
                              "(H - h) as requested", RuntimeWarning, stacklevel=4)
                return
            raise ValueError(
                f"{msg}; rescale them into [0, max_reward] (e.g. "
                "gymnasium.wrappers.TransformReward) or pass max_reward (and "
                "truncate_below=False for negative rewards)")

    def _step_arrays(self, dataset) -> list[StepData]:
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
        # asked in step-major order, the dataset's own (no copy), and kept so
        obs = step_view(dataset.next_observations).reshape(H * K, -1)
        known = self._checked_known(self._known_fn(obs), K * H)
        return known.reshape(H, K, self.n_actions).swapaxes(0, 1)

    def _checked_known(self, known, n: int) -> np.ndarray:
        known = np.asarray(known, dtype=np.float64)
        if known.shape != (n, self.n_actions):
            raise ValueError(
                "env.unwrapped.known_action_values must return shape (n, A) for a batch "
                f"of n observations; got {known.shape}"
            )
        return known

    def _dataset_step(self, dataset, h: int, checked: bool = False,
                      known_all: np.ndarray | None = None) -> StepData:
        """Step ``h`` of ``dataset``. Only what the pass reads is gathered (not observations or
        actions), and the next-state features stay a strided view of the dataset when every
        trajectory reaches step ``h``: they are the largest array and are read once.
        ``known_all (K, H, A)``: the known action values of the whole dataset, if computed."""
        if not checked:
            self._check_dataset(dataset)
        m = dataset.valid[:, h]
        rows = slice(None) if m.all() else np.flatnonzero(m)
        source = dataset.features[rows, h]
        features = np.empty(source.shape)
        in_regression = np.empty(source.shape[0], dtype=bool)
        nnz = _kernels.gather_features(source, features, in_regression)
        known = None
        if self._known_fn is not None and features.shape[0]:
            if known_all is not None:
                known = np.ascontiguousarray(known_all[rows, h])
            else:
                known = self._checked_known(
                    self._known_fn(dataset.next_observations[rows, h]), features.shape[0])
        return StepData(
            features=features,
            rewards=np.ascontiguousarray(dataset.rewards[rows, h]),
            next_action_features=dataset.next_action_features[rows, h],
            next_nonterminal=~dataset.terminal[rows, h],
            known=known,
            in_regression=in_regression,
            density=nnz / max(features.size, 1),
        )

    def _next_state_values(self, st: StepData, h_next: int, weights: np.ndarray,
                           lambda_inv: np.ndarray,
                           value_min: StepStats | None = None) -> np.ndarray:
        """``V_{h+1}(s'_k) = max_a Q_{h+1}(s'_k, a)``, known action values included (one fused
        Numba pass over the next-state features, :func:`robustrl._kernels.offline.
        next_state_values`); ``value_min`` (optional) is updated with their minima in the same
        kernel call."""
        n = st.features.shape[0]
        if n == 0:
            return np.zeros(0)
        has_known = st.known is not None
        known = st.known if has_known else _NO_KNOWN
        code = self._bonus_code()
        bonus = _NO_KNOWN
        # sparse rows (the step's features as the proxy): the fused kernel skips zero
        # entries, O(nnz d) per row, cheaper than BLAS's O(d^2) and one read of the rows
        if code == BONUS_CODES["elliptical"] and self.beta > 0.0 and \
                self.feature_dim >= _pass.BLAS_BONUS_MIN_DIM and \
                st.density >= _SPARSE_GRAM_DENSITY:
            bonus = _pass.elliptical_rows(st.next_action_features, np.arange(n), lambda_inv)
        if value_min is None:
            return _kernels.next_state_values(
                st.next_action_features, weights, lambda_inv, -self.beta, code, self._upper(h_next),
                self.truncate_below, known, has_known, st.next_nonterminal, bonus,
                bonus.size > 0,
            )
        values, lo, lo_regression = _kernels.next_state_values_minima(
            st.next_action_features, weights, lambda_inv, -self.beta, code, self._upper(h_next),
            self.truncate_below, known, has_known, st.next_nonterminal, bonus, bonus.size > 0,
            st.in_regression,
        )
        value_min.merge(lo, lo_regression, n)
        return values

    def _backward_pass(self, steps: list[StepData], sample_weights: list[np.ndarray] | None,
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
        """Backward pass over ``step_chunks(h)``, an iterable of :class:`StepData` whose rows
        together are the step-``h`` data. Per step, top to bottom: the values ``V_{h+1}`` at
        the next states (the clipped Q of step ``h + 1``), the estimator's target, the sums
        ``Lambda_h`` and ``Phi^T W [r, target]`` (or per distinct value ``v`` the weighted
        feature sum ``G_v`` for a row estimator), one Cholesky solve, the estimate ``nu_h``."""
        H, d = self.horizon, self.feature_dim
        est = self._estimator
        moments = isinstance(est, MomentEstimator)
        announce_compile(_PASS_KERNELS, f"the {type(self).__name__} fit (chunked pass)",
                         ahead_of_time=False)
        weights = np.zeros((H, d))
        lambda_inv = np.zeros((H, d, d))
        next_values: list[np.ndarray] = [np.zeros(0)] * H
        n_samples = np.zeros(H, dtype=np.int64)
        steps = range(H - 1, -1, -1)
        if progress:  # a disabled bar still costs more than a small step
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=self.__class__.__name__, unit="step")
        for h in steps:
            last = h == H - 1
            sw = None if sample_weights is None else sample_weights[h]
            stats = StepStats()
            cached: list[np.ndarray] = []
            if not last and moments and est.needs_value_min:
                # a first read: the step's smallest values, before any target is formed
                for st in step_chunks(h):
                    v = self._next_state_values(st, h + 1, weights[h + 1], lambda_inv[h + 1],
                                                stats)
                    est.first_read(st.features, v, stats)
                    if keep_values:
                        cached.append(v)
            gram = self.ridge * np.eye(d)  # a fresh array: the updates are in place
            moment = np.zeros((d, 2))
            groups = None if moments or last else _Groups(d)
            all_values = []
            for c, st in enumerate(step_chunks(h)):
                n = st.features.shape[0]
                if n == 0:
                    continue
                if last:  # values
                    v = np.zeros(n)
                elif cached:
                    v = cached[c]
                else:
                    v = self._next_state_values(st, h + 1, weights[h + 1], lambda_inv[h + 1],
                                                stats if moments else None)
                if keep_values:
                    all_values.append(v)
                n_samples[h] += int(st.in_regression.sum())
                target = est.target(v, stats) if moments and not last else _NO_WEIGHTS
                if target.size:
                    est.accumulate(st.features, v, sw, stats)
                _accumulate(gram, moment, st, target, sw)
                if groups is not None:
                    groups.add(v, st.features, np.ones(n) if sw is None else sw,
                               st.in_regression)
            # solve: the LAPACK kernels of the compiled pass (robustrl._kernels.lapack)
            factor = np.empty((d, d))
            if _lapack.cholesky_into(gram, factor) != 0:
                raise np.linalg.LinAlgError(f"Gram matrix of step {h} not positive definite")
            solved = np.ascontiguousarray(moment.T)  # (2, d): reward weights, the target's
            _lapack.cho_solve_inplace(factor, solved)
            _lapack.cho_inverse_into(factor, lambda_inv[h])  # exactly symmetric
            if last:  # estimate
                nu = np.zeros(d)
            elif moments:
                nu = est.finish(h, solved[1], stats, moment[:, 1], lambda_inv[h])
            else:
                u, g, inside = groups.result()
                xi = (_pass._regression_matrix(np.array(g), factor, lambda_inv[h]) if u.size
                      else np.zeros((d, 0)))
                nu = est.estimate(h, xi, u, inside)
            weights[h] = (self.theta[h] if self.reward == "known" else solved[0]) + nu
            if keep_values:
                next_values[h] = (all_values[0] if len(all_values) == 1 else
                                  np.concatenate(all_values) if all_values else np.zeros(0))
        return PassResult(weights, lambda_inv, next_values, n_samples)


_NO_KNOWN = np.zeros((0, 0))
# what every backward pass calls (the estimators add their own)
_PASS_KERNELS = (_kernels.next_state_values, _kernels.next_state_values_minima,
                 _kernels.gather_features, _kernels.moment_into, _lapack.cholesky_into)
_BONUS_CODE_OF = {name: BONUS_CODES[check_bonus_name(name)]
                  for name in ("elliptical", "paper_l1", "code_l2", "d_rectangular_l1",
                               "d_rectangular_l2", "none")}


def _compiled_spec(est, horizon: int, dim: int) -> tuple | None:
    """The estimator arguments of :func:`robustrl._kernels.offline_pass.offline_pass` for a
    built-in estimator (code, lam, v_min, v_min_data, cap, rho (H, d), z_floor, centered,
    far_shift, KL's truncate_below); None for any other estimator (subclasses included: the
    chunked pass runs their Python methods)."""
    kind = type(est)
    lam, v_min, cap, z_floor, centered, kl_truncate = 1.0, 0.0, 0.0, 0.5, False, True
    rho = np.zeros((horizon, dim))
    if kind is Regression:
        code = _pass.REGRESSION
    elif kind is TVRegularized:
        code, lam, v_min = _pass.TV_REGULARIZED, est.lam, est.v_min
    elif kind is KLRegularized:
        code, lam, cap = _pass.KL_REGULARIZED, est.lam, est.cap
        kl_truncate = est.truncate_below
    elif kind is Chi2Regularized:
        code, lam = _pass.CHI2_REGULARIZED, est.lam
    elif kind is TVDual:
        code, v_min = _pass.TV_DUAL, est.v_min
        rho[:] = est.rho
    elif kind is KLDual:
        code, z_floor, centered = _pass.KL_DUAL, est.z_floor, est.centered
        rho[:] = est.rho
    else:
        return None
    data = isinstance(v_min, str)
    return (code, float(lam), 0.0 if data else float(v_min), data, float(cap), rho,
            float(z_floor), bool(centered), KL_FAR_SHIFT, bool(kl_truncate))


def _progress(show: bool, name: str, total: int):
    """A tqdm bar over the steps of a pass, or None."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="step")


# Below this fraction of nonzero feature entries the Gram update skips zeros (Numba, O(nnz^2)
# per row); above it BLAS syrk on the dense rows is faster.
_SPARSE_GRAM_DENSITY = _pass.SPARSE_DENSITY


def _accumulate(gram: np.ndarray, moment: np.ndarray, st: StepData, target: np.ndarray,
                sw: np.ndarray | None) -> None:
    """In place ``gram += Phi^T W Phi`` (exactly symmetric) and ``moment += Phi^T W [r, target]``
    for one chunk (the caller sets the BLAS threads), as the compiled pass does: sparse rows in
    one Numba pass over the nonzeros; dense rows by BLAS ``syrk`` (``X^T X``, ``X = sqrt(W)
    Phi``), then the moments by one Numba pass."""
    phi = st.features
    w = _NO_WEIGHTS if sw is None else sw
    if st.density < _SPARSE_GRAM_DENSITY:
        _kernels.sparse_gram_moment_into(gram, moment, phi, st.rewards, target, target.size > 0,
                                         w, sw is not None)
        return
    x = phi if sw is None else phi * np.sqrt(sw)[:, None]
    gram += x.T @ x
    _kernels.moment_into(moment, phi, st.rewards, target, target.size > 0, w, sw is not None)


_NO_WEIGHTS = np.zeros(0)

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
