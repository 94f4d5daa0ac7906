"""Shared agent machinery, in the style of stable-baselines3.

Every robustrl agent is constructed as ``Agent(env, **hyperparams)``, trained with ``fit`` (offline)
or ``learn`` (online), and acts with ``predict(obs) -> (action, state)``. Agents over linear
features read them from the unwrapped environment (``feature_dim``, ``action_features(obs)``,
``horizon``); robustrl observations end with the 0-indexed step, which is how an agent knows
which step's parameters to use.

Subclasses implement :meth:`q_values` and declare their learned arrays in ``_param_names`` and
their hyperparameters in ``_hyperparam_names``; :meth:`save` / :meth:`load` then work unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robustrl._artifacts import loaded_array, read_npz, read_npz_json
from robustrl._io import atomic_write
from robustrl.protocols import feature_interface


class NotFittedError(RuntimeError):
    """Raised when an agent is asked to act before it has been trained."""


class LinearAgent:
    """Base class for agents on linear features with a finite action set."""

    _param_names: ClassVar[tuple[str, ...]] = ()
    _hyperparam_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env) -> None:
        iface = feature_interface(env, who=type(self).__name__)
        self.env = env
        self._features = iface
        self.horizon = iface.horizon
        self.feature_dim = iface.feature_dim
        self.n_actions = iface.n_actions
        self._fitted = False

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
            self._predict_rng = np.random.default_rng(getattr(self, "seed", None))
        return self._predict_rng

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} must be trained before it can act")

    # ------------------------------------------------------------ persistence
    def get_hyperparams(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._hyperparam_names}

    def save(self, path: str | Path) -> Path:
        """Write hyperparameters and learned arrays to one ``.npz`` file, atomically."""
        self._check_fitted()
        arrays = {f"param_{n}": np.asarray(getattr(self, n)) for n in self._param_names}
        return self._write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path, env):
        """Rebuild an agent saved with :meth:`save`, bound to ``env``.

        Every learned array is checked against the rebuilt agent's ``(H, d, |A|)`` (shape,
        dtype, finiteness, index ranges: :meth:`_param_specs`); a file that fails raises
        ``ValueError`` naming the file and the array."""
        header, arrays = cls._read_npz(path, [f"param_{n}" for n in cls._param_names])
        agent = cls._from_header(path, header, env)
        specs = agent._param_specs()
        for name in cls._param_names:
            setattr(agent, name, loaded_array(path, name, arrays[f"param_{name}"],
                                              **specs[name]))
        agent._check_loaded(path)
        agent._fitted = True
        return agent

    def _param_specs(self) -> dict[str, dict[str, Any]]:
        """Per learned array: the :func:`robustrl._artifacts.loaded_array` checks of a file
        (``kind``, ``shape`` and optionally ``finite``, ``low``, ``high``)."""
        raise NotImplementedError(f"{type(self).__name__} declares no checks for its arrays")

    def _check_loaded(self, path: str | Path) -> None:
        """Cross-array checks after :meth:`load` set the arrays (none by default)."""

    @classmethod
    def _from_header(cls, path: str | Path, header: dict[str, Any], *args):
        """``cls(*args, **hyperparams)``; a bad hyperparameter raises ``ValueError`` naming the
        file."""
        hyper = header.get("hyperparams")
        if not isinstance(hyper, dict):
            raise ValueError(f"path {path}: header 'hyperparams' must be a JSON object")
        try:
            return cls(*args, **hyper)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path {path}: the saved hyperparameters do not rebuild a "
                             f"{cls.__name__}: {exc}") from None

    def _write_npz(self, path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``arrays`` and a JSON header (class, hyperparameters) atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        header = {"class": type(self).__name__, "hyperparams": _jsonable(self.get_hyperparams())}
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
