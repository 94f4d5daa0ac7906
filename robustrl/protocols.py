"""What a linear agent needs from an environment: the feature protocol.

A robustrl linear agent (PEVI, R2PVI, DRPVI, DRVI-L, LSVI-UCB, DR-LSVI-UCB, DR-RPO, GLOW-lin, and
:class:`~robustrl.data.OfflineDataset` collection) works on any Gymnasium environment that
provides, on itself or on any wrapper around it:

==================  ===========================================================================
``horizon``         ``H``, the number of decisions per episode (int >= 1)
``feature_dim``     ``d``, the length of a feature vector (int >= 1)
``features``        ``features(obs, a) -> (d,)``: ``phi(s, a)`` of the observation's state
``action_features`` ``action_features(obs) -> (A, d)``: ``phi(s, a)`` for every action
``action_space``    ``gymnasium.spaces.Discrete(A)``
==================  ===========================================================================

**Step-index rule.** The last entry of every observation is the 0-indexed step ``h`` of the next
decision (``0 <= h < H``; ``H`` after the last one): linear agents keep one weight vector per
step and read ``h`` from the observation. robustrl's own environments follow this rule; for any
other environment the wrappers in :mod:`robustrl.envs.features` append the step and provide the
features (one-hot for discrete observations, a user-supplied ``phi``, tile coding or normalised
radial basis features for continuous observations); docs/byo-env.md walks through them.

Members are looked up through wrappers (``env.get_wrapper_attr``), so a
:class:`gymnasium.Wrapper` that defines them is accepted; :func:`feature_interface` reports every
missing member in one error.

**Optional:** ``batch_action_features(observations (n, ...)) -> (n, A, d)``, every row's
``action_features`` in one call, which agents use where they need many states' features at
once (the fit's tie check at the start states). It is used only when the same object defines
it and ``action_features`` in the same class, so a wrapper or subclass that changes the
features without it falls back to one ``action_features`` call per observation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["FEATURE_MEMBERS", "FeatureInterface", "LinearFeatureEnv", "feature_interface"]

FEATURE_MEMBERS: tuple[str, ...] = ("horizon", "feature_dim", "features", "action_features")


@runtime_checkable
class LinearFeatureEnv(Protocol):
    """The members a linear agent reads (see the module docstring for their meaning)."""

    horizon: int
    feature_dim: int
    action_space: Any

    def features(self, obs: Any, action: int) -> np.ndarray: ...

    def action_features(self, obs: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class FeatureInterface:
    """The feature protocol of one environment, resolved once (through its wrappers)."""

    horizon: int
    feature_dim: int
    n_actions: int
    features: Callable[[Any, int], np.ndarray]
    action_features: Callable[[Any], np.ndarray]
    # batch_action_features when it belongs with action_features (module docstring), else None
    batch_action_features: Callable[[Any], np.ndarray] | None = None


def _lookup(env: Any, name: str) -> Any:
    getter = getattr(env, "get_wrapper_attr", None)
    if getter is not None:
        try:
            return getter(name)
        except AttributeError:
            pass
    if hasattr(env, name):
        return getattr(env, name)
    base = getattr(env, "unwrapped", None)
    if base is not None and base is not env and hasattr(base, name):
        return getattr(base, name)
    raise AttributeError(name)


def feature_interface(env: Any, *, who: str = "a linear agent") -> FeatureInterface:
    """Resolve ``env``'s feature protocol, or raise one ``ValueError`` naming every missing or
    malformed member and how to provide them."""
    found: dict[str, Any] = {}
    missing: list[str] = []
    for name in FEATURE_MEMBERS:
        try:
            found[name] = _lookup(env, name)
        except AttributeError:
            missing.append(name)
    space = getattr(env, "action_space", None)
    n_actions = getattr(space, "n", None)
    problems = [f"`{name}`" for name in missing]
    if n_actions is None:
        problems.append("a Discrete `action_space`")
    if problems:
        raise ValueError(
            f"{who} needs an environment with {', '.join(problems)} (looked up through its "
            f"wrappers); {type(env).__name__} lacks them. The protocol: `horizon` (H), "
            "`feature_dim` (d), `features(obs, a) -> (d,)`, `action_features(obs) -> (A, d)`, a "
            "Discrete action space, and observations whose last entry is the 0-indexed step. "
            "Wrap other Gymnasium environments with robustrl.envs.features (OneHotFeatures, "
            "FeatureMap, TileCoding, RBFFeatures)."
        )
    for name in ("features", "action_features"):
        if not callable(found[name]):
            raise ValueError(f"env.{name} must be callable; got {type(found[name]).__name__}")
    horizon, dim = found["horizon"], found["feature_dim"]
    for name, value in (("horizon", horizon), ("feature_dim", dim)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"env.{name} must be an integer >= 1; got {value!r}")
    return FeatureInterface(int(horizon), int(dim), int(n_actions), found["features"],
                            found["action_features"], _batch_of(found["action_features"]))


def _batch_of(action_features: Callable) -> Callable | None:
    """``batch_action_features`` of the object whose ``action_features`` was found, when its
    class defines both together (else None: one call per observation)."""
    owner = getattr(action_features, "__self__", None)
    batch = getattr(owner, "batch_action_features", None)
    if batch is None or not defined_together(owner, "action_features",
                                             "batch_action_features"):
        return None
    return batch


# Wrappers that change neither observations, actions, rewards nor the episode's random stream.
_PASSIVE_WRAPPERS = ("OrderEnforcing", "PassiveEnvChecker", "TimeLimit")


def behind_passive_wrappers(env: Any) -> Any | None:
    """``env.unwrapped`` when every wrapper around it is passive (Gymnasium's
    ``OrderEnforcing``, ``PassiveEnvChecker``, or a ``TimeLimit`` no shorter than the
    environment's ``horizon``), so a batched rollout of the unwrapped environment equals the
    wrapped step loop; ``None`` otherwise."""
    base = getattr(env, "unwrapped", env)
    layer = env
    while layer is not base:
        limit = getattr(layer, "_max_episode_steps", None)
        horizon = getattr(base, "horizon", None)
        if type(layer).__name__ not in _PASSIVE_WRAPPERS or (
                limit is not None and (horizon is None or limit < horizon)):
            return None
        layer = layer.env
    return base


def defined_together(obj: Any, *names: str) -> bool:
    """Whether one class of ``type(obj)``'s MRO defines every attribute in ``names``: a fast
    path (a batched rollout, a feature table) agrees with the methods it stands for only when a
    subclass has not overridden some of them without the others."""
    owners = set()
    for name in names:
        owner = next((c for c in type(obj).__mro__ if name in vars(c)), None)
        if owner is None:
            return False
        owners.add(owner)
    return len(owners) == 1

