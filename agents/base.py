"""Shared agent machinery: the one contract every robustrl agent keeps (docs/agent-contract.md).

Every agent is constructed as ``Agent(env, **hyperparams)`` (the constructor signature is where
its hyperparameters are declared), trained with ``fit(dataset, callback=None,
progress_bar=False)`` (offline, d3rlpy's verb) or ``learn(total_timesteps=None, callback=None,
progress_bar=False, *, total_<unit>=None)`` (online, stable-baselines3's verb), acts with
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``, and
persists with ``save(path) -> Path`` and ``classmethod load(path, env=None, device="auto")``.
``callback`` takes stable-baselines3 ``BaseCallback`` objects (``CheckpointCallback``,
``EvalCallback``, a list or ``CallbackList``); an agent exposes what they read
(``num_timesteps``, ``get_env()``, ``logger``, ``save``). Learned attributes end with an
underscore (``weights_``).

Agents over linear features read them from the unwrapped environment (``feature_dim``,
``action_features(obs)``, ``horizon``); robustrl observations end with the 0-indexed step,
which is how an agent knows which step's parameters to use. Subclasses implement
:meth:`LinearAgent.q_values` and declare their learned arrays in ``_param_names``;
:meth:`save` / :meth:`load` then work unchanged.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robustrl._artifacts import loaded_array, read_npz, read_npz_json
from robustrl._io import atomic_write
from robustrl.protocols import feature_interface
from robustrl.validation import check_bool

logger = logging.getLogger("robustrl.agents")


class NotFittedError(RuntimeError):
    """Raised when an agent is asked to act before it has been trained."""


# ------------------------------------------------------------------------------------ callbacks
class _LegacyCallback:
    """A plain ``callback(locals_dict) -> bool`` behind the ``BaseCallback`` interface."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn
        self.locals: dict[str, Any] = {}
        self.n_calls = 0

    def init_callback(self, model) -> None:
        self.model = model

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals = locals_

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals.update(locals_)

    def on_step(self) -> bool:
        self.n_calls += 1
        return self.fn(self.locals) is not False

    def on_training_end(self) -> None:
        pass

    def on_rollout_start(self) -> None:
        pass

    def on_rollout_end(self) -> None:
        pass


def as_callback(callback):
    """``callback`` as an object with stable-baselines3's ``BaseCallback`` interface.

    Accepts None, a ``BaseCallback`` (anything with ``init_callback`` and ``on_step``), a list
    of them (a ``CallbackList``), or a plain ``callable(locals_dict) -> bool`` (deprecated,
    wrapped). Anything else raises ``ValueError``.
    """
    if callback is None:
        return None
    if isinstance(callback, (list, tuple)):
        from stable_baselines3.common.callbacks import CallbackList

        return CallbackList([as_callback(c) for c in callback])
    if hasattr(callback, "init_callback") and hasattr(callback, "on_step"):
        return callback
    if callable(callback):
        warnings.warn("a plain callable(locals) callback is deprecated; pass a "
                      "stable_baselines3 BaseCallback (its _on_step reads self.locals)",
                      DeprecationWarning, stacklevel=3)
        return _LegacyCallback(callback)
    raise ValueError("callback must be None, a stable_baselines3 BaseCallback, a list of them "
                     f"or a callable; got {type(callback).__name__}")


class Training:
    """One ``learn`` / ``fit`` call's callback and progress bar (SB3's call order).

    ``start(locals())`` once, ``step(locals(), n)`` after every unit of training (``n`` units
    for the bar; returns False when a callback asks to stop), ``end()`` in a ``finally``.
    """

    def __init__(self, agent, callback, progress_bar: bool, total: int | None, unit: str,
                 desc: str | None = None) -> None:
        check_bool(progress_bar, "progress_bar")
        self.callback = as_callback(callback)
        self.bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc or type(agent).__name__)
        if self.callback is not None:
            self.callback.init_callback(agent)

    def start(self, locals_: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback.on_training_start(locals_, globals())

    def step(self, locals_: dict[str, Any], n: int = 1) -> bool:
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is None:
            return True
        self.callback.update_locals(locals_)
        return bool(self.callback.on_step())

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.callback is not None:
            self.callback.on_training_end()


def resolve_budget(total_timesteps, unit_name: str, unit_value, steps_per_unit: int,
                   *, low: int = 1) -> int:
    """Exactly one of ``total_timesteps`` (env steps, SB3's unit) and the family's own unit.

    Returns the number of units: ``ceil(total_timesteps / steps_per_unit)`` (whole units, as
    SB3 finishes its rollouts) or ``unit_value``; ``ValueError`` naming the argument otherwise.
    """
    from robustrl.validation import check_int

    if (total_timesteps is None) == (unit_value is None):
        raise ValueError(f"pass exactly one of total_timesteps (env steps) and {unit_name}; "
                         f"got total_timesteps={total_timesteps!r}, {unit_name}={unit_value!r}")
    if unit_value is not None:
        return check_int(unit_value, unit_name, low=low)
    steps = check_int(total_timesteps, "total_timesteps", low=max(low, 1))
    return max(low, math.ceil(steps / steps_per_unit))


def deprecated_progress(progress_bar: bool, progress) -> bool:
    """``progress=`` is the old name of ``progress_bar=``."""
    if progress is None:
        return progress_bar
    warnings.warn("progress= is deprecated; use progress_bar=", DeprecationWarning, stacklevel=3)
    return progress


class BaseAgent:
    """What every agent declares and what stable-baselines3 callbacks read from it.

    Attributes: ``env`` (None when loaded without one), ``seed``, ``num_timesteps`` (env steps
    taken by ``learn``; transitions in the dataset for ``fit``) and the fitted flag.
    """

    _param_names: ClassVar[tuple[str, ...]] = ()
    #: constructor arguments that are not hyperparameters: the environment or model, data,
    #: objects passed in (estimators, function classes), where to run, deprecated aliases
    _not_hyperparameters: ClassVar[frozenset[str]] = frozenset({
        "env", "env_or_model", "offline_dataset", "estimator", "value_class", "weight_class",
        "ratio_class", "device", "n_envs", "needs_features"})

    def __init__(self, env, seed: int | None = None) -> None:
        self.env = env
        self.seed = seed
        self.num_timesteps = 0
        self._fitted = False
        self._logger = None

    def get_env(self):
        """The environment the agent trains in (SB3's name; None when loaded without one)."""
        return self.env

    def get_vec_normalize_env(self):
        """No observation normalisation wrapper (read by SB3's ``CheckpointCallback``)."""
        return None

    @property
    def logger(self):
        """An SB3 ``Logger`` with no outputs (callbacks such as ``EvalCallback`` record to it)."""
        if self._logger is None:
            from stable_baselines3.common.logger import Logger

            self._logger = Logger(folder=None, output_formats=[])
        return self._logger

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} must be trained before it can act")

    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        """The constructor's plain-value arguments in signature order, the one place they are
        declared: what :meth:`get_hyperparams` returns, ``save`` stores and ``load`` passes
        back."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # not self
        return tuple(p.name for p in params if p.name not in cls._not_hyperparameters
                     and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_hyperparams(self) -> dict[str, Any]:
        """The hyperparameters as validated and stored by the constructor."""
        return {name: getattr(self, name) for name in self.hyperparameter_names()}


class FeatureTable:
    """The features of a finite-state robustrl environment, ``phi(s, a)`` of shape ``(S, A, d)``.

    :meth:`LinearAgent.save` stores it when the environment has finitely many states, so that
    ``load(path)`` without an env can still predict (observations are ``(state, ..., step)``).
    It cannot be stepped: ``learn`` needs ``load(path, env=...)``.
    """

    def __init__(self, table: np.ndarray, horizon: int) -> None:
        self.table = np.asarray(table, dtype=np.float64)
        self.n_states, self.n_actions, self.feature_dim = self.table.shape
        self.horizon = int(horizon)
        import gymnasium as gym

        self.action_space = gym.spaces.Discrete(self.n_actions)

    @property
    def unwrapped(self) -> FeatureTable:
        return self

    @classmethod
    def of(cls, env, max_entries: int = 50_000_000) -> FeatureTable | None:
        """The table of ``env`` (None when its states are not finite, or it is too large)."""
        base = getattr(env, "unwrapped", env)
        if isinstance(base, cls):
            return base
        n_states = getattr(base, "n_states", None)
        if not isinstance(n_states, (int, np.integer)):
            return None
        n_actions, d = int(env.action_space.n), int(base.feature_dim)
        if int(n_states) * n_actions * d > max_entries:
            warnings.warn(f"the feature table ({n_states} x {n_actions} x {d}) is not saved: "
                          "it is over 5e7 entries; load(path, env=...) to predict",
                          stacklevel=3)
            return None
        table = np.stack([np.asarray(base.action_features(np.array([s, 0.0])), dtype=np.float64)
                          for s in range(int(n_states))])
        return cls(table, base.horizon)

    def action_features(self, obs) -> np.ndarray:
        s = int(np.ravel(obs)[0])
        if not 0 <= s < self.n_states:
            raise ValueError(f"obs[0] (the state) must lie in [0, {self.n_states - 1}]; got {s}")
        return self.table[s].copy()

    def features(self, obs, action: int) -> np.ndarray:
        return self.action_features(obs)[int(action)]

    def reset(self, *args, **kwargs):
        raise ValueError("this agent was loaded without an env: it can predict, not learn; "
                         "pass env= to load to keep training")

    step = reset


class LinearAgent(BaseAgent):
    """Base class for agents on linear features with a finite action set.

    ``needs_features=False`` (tabular agents such as GLOW) skips the feature checks and allows
    ``env=None``.
    """

    def __init__(self, env, seed: int | None = None, *, needs_features: bool = True) -> None:
        super().__init__(env, seed)
        if not needs_features:
            return
        iface = feature_interface(env, who=type(self).__name__)
        self._features = iface
        # what save() tabulates for load(path) without an env (a FeatureTable when loaded so)
        self._feature_source = getattr(env, "unwrapped", env)
        self.horizon = iface.horizon
        self.feature_dim = iface.feature_dim
        self.n_actions = iface.n_actions

    # ----------------------------------------------------------------- acting
    def step_of(self, obs) -> int:
        """The 0-indexed step carried as the last entry of a robustrl observation."""
        h = int(round(float(np.ravel(obs)[-1])))
        if not 0 <= h < self.horizon:
            raise ValueError(f"obs must end with a step in [0, {self.horizon - 1}]; got {h}")
        return h

    def action_features(self, obs) -> np.ndarray:
        """Features of ``obs`` paired with every action, shape ``(A, d)``."""
        return np.asarray(self._features.action_features(obs), dtype=np.float64)

    def batch_action_features(self, observations) -> np.ndarray:
        """:meth:`action_features` of every observation (rows of ``observations``), shape
        ``(n, A, d)``: one environment call where it offers ``batch_action_features``
        (:mod:`robustrl.protocols`), else one call per observation."""
        batch = getattr(self._features, "batch_action_features", None)
        if batch is not None:
            return np.asarray(batch(observations), dtype=np.float64)
        return np.stack([self.action_features(o) for o in observations])

    def q_values(self, obs) -> np.ndarray:
        """Q-values of every action at ``obs`` (its step is read from the observation)."""
        raise NotImplementedError

    def action_probabilities(self, obs) -> np.ndarray:
        """Action distribution at ``obs``; greedy (first maximiser) unless overridden."""
        probs = np.zeros(self.n_actions)
        probs[int(np.argmax(self.q_values(obs)))] = 1.0
        return probs

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style: ``(action, state)``. ``obs`` may be one observation or a batch ``(N, ...)``.

        Deterministic prediction takes the most probable action (ties to the lowest index);
        otherwise an action is sampled from :meth:`action_probabilities`.
        """
        self._check_fitted()
        arr = np.asarray(obs)
        batched = arr.ndim == 2
        rows = arr if batched else arr[None]
        actions = np.empty(len(rows), dtype=np.int64)
        for i, o in enumerate(rows):
            if deterministic:
                actions[i] = int(np.argmax(self.action_probabilities(o)))
            else:
                actions[i] = int(self._rng().choice(self.n_actions, p=self.action_probabilities(o)))
        return (actions if batched else actions[0]), state

    def _rng(self) -> np.random.Generator:
        if not hasattr(self, "_predict_rng"):
            self._predict_rng = np.random.default_rng(self.seed)
        return self._predict_rng

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write hyperparameters and learned arrays to one ``.npz`` file, atomically."""
        self._check_fitted()
        arrays = {f"param_{n}": np.asarray(getattr(self, n)) for n in self._param_names}
        return self._write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path, env=None, device: str = "auto"):
        """Rebuild an agent saved with :meth:`save`, bound to ``env`` (None: predict only, from
        the saved :class:`FeatureTable`). ``device`` is accepted for the shared signature (these
        agents run on the CPU).

        Every learned array is checked against the rebuilt agent's ``(H, d, |A|)`` (shape,
        dtype, finiteness, index ranges: :meth:`_param_specs`); a file that fails raises
        ``ValueError`` naming the file and the array."""
        header, arrays = cls._read_npz(path, [f"param_{n}" for n in cls._param_names])
        agent = cls._from_header(path, header, cls._env_or_table(path, header, arrays, env))
        specs = agent._param_specs()
        for name in cls._param_names:
            setattr(agent, name, loaded_array(path, name, arrays[f"param_{name}"],
                                              **specs[name]))
        agent._check_loaded(path)
        agent._fitted = True
        return agent

    @staticmethod
    def _env_or_table(path, header: dict[str, Any], arrays: dict[str, np.ndarray], env):
        """``env``, or the saved feature table standing in for it (``ValueError`` if none)."""
        if env is not None:
            return env
        table = arrays.get("feature_table")
        if table is None:
            raise ValueError(f"path {path}: saved without a feature table (its env has no "
                             "finite state set); pass env= to load")
        table = loaded_array(path, "feature_table", table, kind="f", shape=(None, None, None))
        horizon = header.get("horizon")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"path {path}: header 'horizon' must be an integer >= 1; got "
                             f"{horizon!r}")
        return FeatureTable(table, horizon)

    def _param_specs(self) -> dict[str, dict[str, Any]]:
        """Per learned array: the :func:`robustrl._artifacts.loaded_array` checks of a file
        (``kind``, ``shape`` and optionally ``finite``, ``low``, ``high``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no checks for its arrays")

    def _check_loaded(self, path: str | Path) -> None:
        """Cross-array checks after :meth:`load` set the arrays (none by default)."""

    @classmethod
    def _from_header(cls, path: str | Path, header: dict[str, Any], *args):
        """``cls(*args, **hyperparams)``; a bad hyperparameter raises ``ValueError`` naming the
        file. A :class:`FeatureTable` first argument leaves the agent with ``env = None``."""
        hyper = header.get("hyperparams")
        if not isinstance(hyper, dict):
            raise ValueError(f"path {path}: header 'hyperparams' must be a JSON object")
        try:
            agent = cls(*args, **hyper)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path {path}: the saved hyperparameters do not rebuild a "
                             f"{cls.__name__}: {exc}") from None
        if args and isinstance(args[0], FeatureTable):
            agent.env = None
        return agent

    def _write_npz(self, path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``arrays``, the feature table (when finite) and a JSON header (class,
        hyperparameters, horizon) atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        header = {"class": type(self).__name__, "hyperparams": _jsonable(self.get_hyperparams()),
                  "horizon": int(self.horizon)}
        source = getattr(self, "_feature_source", None)
        table = None if source is None else FeatureTable.of(source if self.env is None
                                                            else self.env)
        if table is not None:
            arrays = {**arrays, "feature_table": table.table}
        arrays = {**arrays, "header_json": np.array(json.dumps(header))}
        return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True,
                            clean_stale=True)

    @classmethod
    def _read_npz(cls, path: str | Path, required=()) -> tuple[dict[str, Any],
                                                               dict[str, np.ndarray]]:
        """The header and arrays written by :meth:`_write_npz`; checks the class name and that
        the ``required`` arrays are present. Any failure is a ``ValueError`` naming the file."""
        what = f"a saved {cls.__name__}"
        arrays = read_npz(path, ["header_json", *required], what=what)
        header = read_npz_json(path, arrays, "header_json")
        if not isinstance(header, dict) or header.get("class") != cls.__name__:
            found = header.get("class") if isinstance(header, dict) else header
            raise ValueError(f"path holds a {found}, not a {cls.__name__}: {path}")
        arrays.pop("header_json")
        return header, arrays


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class renamed_attribute:  # noqa: N801 (used like ``property``)
    """A deprecated alias of the learned attribute ``new`` (learned names end with ``_``)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def __set_name__(self, owner, name: str) -> None:
        self.old = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        warnings.warn(f"{self.old} is deprecated; use {self.new}", DeprecationWarning,
                      stacklevel=2)
        return getattr(obj, self.new)


class TiedQWarning(RuntimeWarning):
    """After a fit, every action's Q ties at a clip bound at every data state of some step."""


def warn_if_q_ties_at_bounds(agent, dataset, max_states: int = 256) -> list[int]:
    """Warn when, after an offline fit, every action's Q ties at a clip bound (0 from below,
    ``max_reward (H - h)`` from above) at every state of some step that the data visit.

    The states of step 0 are the data's first observations; those of step ``h >= 1`` the
    next states of step ``h - 1`` (their stored ``next_action_features``), at most
    ``max_states`` of each. Such a step has no learned choice: the greedy policy there takes the
    first action. Returns the tied steps (the warning is a :class:`TiedQWarning`).
    """
    tied, example = [], None
    H = agent.horizon
    for h in range(H):
        if h == 0:
            rows = np.flatnonzero(dataset.valid[:, 0])[:max_states]
            if rows.size == 0:
                continue
            feats = np.stack([agent.action_features(dataset.observations[k, 0]) for k in rows])
        else:
            keep = dataset.valid[:, h - 1] & ~dataset.terminal[:, h - 1]
            feats = dataset.next_action_features[np.flatnonzero(keep)[:max_states], h - 1]
            if feats.shape[0] == 0:
                continue
        q = agent.q_values_from_features(feats, h)
        bounds = [float(agent._upper(h))] + ([0.0] if agent.truncate_below else [])
        at_bound = np.zeros(q.shape[0], dtype=bool)
        for b in bounds:
            at_bound |= np.all(q == b, axis=1)
        logger.debug("%s step %d: every action's Q at a clip bound at %d of %d data states",
                     type(agent).__name__, h, int(at_bound.sum()), q.shape[0])
        if at_bound.all():
            tied.append(h)
            example = example or (h, float(q[0, 0]), q.shape[1])
    if tied:
        h, value, n_actions = example
        warnings.warn(
            f"{type(agent).__name__}: after fit, every action's Q ties at a clip bound at every "
            f"data state of steps {tied} (e.g. Q = {value:g} for all {n_actions} actions at "
            f"step {h}), so the greedy policy there is the first action, not a learned choice. "
            "Usual causes: too little data for the pessimism penalty beta (Q is pushed below 0 "
            "and clipped), rewards that are all zero, or a max_reward bound too small; more "
            "data or a smaller beta helps.", TiedQWarning, stacklevel=3)
    return tied
