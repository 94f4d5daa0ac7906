"""Build robustrl environments at given perturbation levels.

Every robustrl environment takes its dynamics perturbation as the constructor argument
``perturbation``. It exposes ``nominal_perturbation`` (the training dynamics) and
``perturbation_grid`` (the paper's test grid) as class attributes. The helpers below accept
either the class or a registered gymnasium id such as ``"robustrl/AmericanPut-v0"``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator


def _env_class(env_id_or_class: Any) -> type:
    """The environment class behind a class or a registered id."""
    if isinstance(env_id_or_class, type) and issubclass(env_id_or_class, gym.Env):
        return env_id_or_class
    if isinstance(env_id_or_class, str):
        try:
            spec = gym.spec(env_id_or_class)
        except gym.error.Error as exc:
            raise ValueError(
                f"env_id_or_class {env_id_or_class!r} is not a registered environment id: {exc}"
            ) from None
        creator = (
            load_env_creator(spec.entry_point)
            if isinstance(spec.entry_point, str)
            else spec.entry_point
        )
        if isinstance(creator, type) and issubclass(creator, gym.Env):
            return creator
        raise ValueError(
            f"env_id_or_class {env_id_or_class!r} is registered with entry point "
            f"{spec.entry_point!r}, which is not a gymnasium.Env class"
        )
    raise ValueError(
        "env_id_or_class must be a gymnasium.Env subclass or a registered environment id; "
        f"got {env_id_or_class!r}"
    )


def perturbation_grid(env_id_or_class: Any) -> np.ndarray:
    """The paper's test grid of perturbation levels for this environment (a float array)."""
    cls = _env_class(env_id_or_class)
    grid = getattr(cls, "perturbation_grid", None)
    if grid is None:
        raise ValueError(
            f"env_id_or_class {cls.__name__} has no perturbation_grid class attribute"
        )
    return np.array(grid, dtype=np.float64)


def make_env(env_id_or_class: Any, perturbation: Any = None, **kwargs: Any) -> gym.Env:
    """The environment at one perturbation level (``None`` = nominal).

    A class is instantiated directly. An id goes through :func:`gymnasium.make` (with the
    usual checker wrappers), so use ``env.unwrapped`` for the feature interface.
    """
    if isinstance(env_id_or_class, str):
        _env_class(env_id_or_class)  # clear ValueError for an unknown id
        return gym.make(env_id_or_class, perturbation=perturbation, **kwargs)
    return _env_class(env_id_or_class)(perturbation=perturbation, **kwargs)


def perturbed_envs(
    env_id_or_class: Any, grid: Any = None, **kwargs: Any
) -> list[tuple[float, gym.Env]]:
    """``(perturbation, env)`` for every level of ``grid`` (default: the class's test grid)."""
    if grid is None:
        levels = perturbation_grid(env_id_or_class)
    else:
        try:
            levels = np.asarray(grid, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"grid must be a 1-D sequence of numbers; got {grid!r}") from None
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D sequence of levels; got {grid!r}")
    return [(float(p), make_env(env_id_or_class, float(p), **kwargs)) for p in levels]


def perturbation_from_options(options: dict[str, Any] | None) -> tuple[bool, Any]:
    """Read ``reset(options=...)``: returns ``(given, perturbation)``.

    The only option robustrl environments accept is ``{"perturbation": level}``; it switches the
    environment to that level from this episode on (``None`` means the nominal dynamics).
    Any other key is an error, not silently ignored.
    """
    if options is None:
        return False, None
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict or None; got {type(options).__name__}")
    unknown = sorted(set(options) - {"perturbation"})
    if unknown:
        raise ValueError(f"options accepts only the key 'perturbation'; got unknown {unknown}")
    return ("perturbation" in options), options.get("perturbation")
