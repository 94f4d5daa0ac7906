"""Build environments at given perturbation levels: the one family of perturbation helpers.

Two kinds of environment take a perturbation level:

* robustrl's own environments take ``perturbation`` in their constructor and expose
  ``nominal_perturbation`` (the training dynamics) and ``perturbation_grid`` (the paper's test
  grid) as class attributes; pass the class or a registered id such as
  ``"robustrl/AmericanPut-v0"``;
* gymnasium's classic-control tasks (``CartPole-v1``, ``Acrobot-v1``, ``MountainCar-v0``,
  ``Pendulum-v1``) with scaled physics (:mod:`robustrl.envs.perturbed_control`): the level is
  the scale of one physical ``parameter`` (``pole_length=2`` doubles the pole; nominal 1).

The helpers, for both kinds:

* :func:`make_env` -- the environment at one level;
* :func:`perturbation_grid` -- the test grid (the class's, or the default scales);
* :func:`env_factory` -- ``level -> env`` (optionally wrapped, e.g. by a feature wrapper), the
  ``env_factory`` of :func:`robustrl.evaluation.evaluate` and
  :func:`~robustrl.evaluation.compare`, which run the episodes (default 100 per level);
* :func:`perturbed_envs` -- ``(level, env)`` for every level of a grid.

``make_perturbed``, ``physics_grid``, ``perturbed_factory`` and ``evaluate_on_grid`` of
:mod:`robustrl.envs.perturbed_control` are deprecated aliases.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
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


def _physics(env: Any) -> bool:
    from robustrl.envs.perturbed_control import _is_physics_id

    return isinstance(env, str) and _is_physics_id(env)


def perturbation_grid(env_id_or_class: Any, parameter: str | None = None,
                      values: Any = None) -> np.ndarray:
    """The test grid of perturbation levels (a float array).

    robustrl environments: the class's ``perturbation_grid`` (``values`` replaces it; no
    ``parameter``). Classic-control ids: the scales of ``parameter`` (required), ``values`` or
    the default 0.5, 0.75, 1, 1.5, 2, 2.5, 3 (nominal 1), each checked against the parameter's
    accepted range.
    """
    if _physics(env_id_or_class):
        from robustrl.envs.perturbed_control import _scales, perturbable_parameters

        if parameter is None:
            raise ValueError(f"parameter is required for the classic-control task "
                             f"{env_id_or_class!r}; one of "
                             f"{sorted(perturbable_parameters(env_id_or_class))}")
        return np.array(_scales(env_id_or_class, parameter, values), dtype=np.float64)
    if parameter is not None:
        raise ValueError(f"parameter must be None for {env_id_or_class!r} (its constructor "
                         f"takes one perturbation level); got {parameter!r}")
    cls = _env_class(env_id_or_class)
    if values is not None:
        return _levels(values)
    grid = getattr(cls, "perturbation_grid", None)
    if grid is None:
        raise ValueError(
            f"env_id_or_class {cls.__name__} has no perturbation_grid class attribute"
        )
    return np.array(grid, dtype=np.float64)


def _levels(grid: Any) -> np.ndarray:
    try:
        levels = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be a 1-D sequence of numbers; got {grid!r}") from None
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D sequence of levels; got {grid!r}")
    return levels


def _takes_perturbation(cls: type) -> bool:
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return True  # no signature to read: let the constructor decide
    return "perturbation" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_env(env_id_or_class: Any, perturbation: Any = None, *, parameter: str | None = None,
             **kwargs: Any) -> gym.Env:
    """The environment at one perturbation level (``None`` = nominal).

    robustrl environments: a class is instantiated directly; an id goes through
    :func:`gymnasium.make` (with the usual checker wrappers; the feature interface is looked up
    through them). ``kwargs`` go to the constructor.

    Classic-control ids: ``perturbation`` is the scale of ``parameter`` (or a dict
    ``parameter -> scale``); ``kwargs`` are ``action_noise``, ``obs_noise``, ``seed``,
    ``discretize``, ``max_episode_steps`` and :func:`gymnasium.make` arguments (see
    :func:`robustrl.envs.perturbed_control._make_physics`).
    """
    if _physics(env_id_or_class):
        from robustrl.envs.perturbed_control import _make_physics

        return _make_physics(env_id_or_class, perturbation, axis=parameter, **kwargs)
    if parameter is not None:
        raise ValueError(f"parameter must be None for {env_id_or_class!r} (its constructor "
                         f"takes one perturbation level); got {parameter!r}")
    cls = _env_class(env_id_or_class)  # clear ValueError for an unknown id
    if not _takes_perturbation(cls):
        raise ValueError(
            f"env_id_or_class {env_id_or_class!r} is not a supported classic-control task "
            "(CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1) nor an environment whose "
            "constructor takes `perturbation` (as robustrl's do)")
    if isinstance(env_id_or_class, str):
        return gym.make(env_id_or_class, perturbation=perturbation, **kwargs)
    return cls(perturbation=perturbation, **kwargs)


def env_factory(env_id_or_class: Any, parameter: str | None = None, *,
                wrapper: Callable[[gym.Env], gym.Env] | None = None,
                **kwargs: Any) -> Callable[[Any], gym.Env]:
    """``level -> make_env(env_id_or_class, level, parameter=parameter, **kwargs)``, passed
    through ``wrapper`` when given (e.g. ``lambda env: TileCoding(env, horizon=50, ...)``): the
    ``env_factory`` of :func:`robustrl.evaluation.evaluate` and
    :func:`~robustrl.evaluation.compare`. Arguments are checked now (by building the nominal
    environment once), not at the first level; ``seed`` is refused (evaluate seeds every level).
    """
    if "seed" in kwargs:
        raise ValueError("seed is given by evaluate/compare per grid point; do not pass it")
    if wrapper is not None and not callable(wrapper):
        raise ValueError(f"wrapper must be a callable env -> env; got {type(wrapper).__name__}")
    if _physics(env_id_or_class):
        perturbation_grid(env_id_or_class, parameter, [1.0])  # validates the parameter
    make_env(env_id_or_class, None, parameter=parameter, **kwargs).close()

    def make(level: Any) -> gym.Env:
        env = make_env(env_id_or_class, level, parameter=parameter, **kwargs)
        return env if wrapper is None else wrapper(env)

    return make


def perturbed_envs(
    env_id_or_class: Any, grid: Any = None, *, parameter: str | None = None, **kwargs: Any
) -> list[tuple[float, gym.Env]]:
    """``(perturbation, env)`` for every level of ``grid`` (default: :func:`perturbation_grid`)."""
    if grid is None:
        levels = perturbation_grid(env_id_or_class, parameter)
    elif _physics(env_id_or_class):
        levels = perturbation_grid(env_id_or_class, parameter, grid)
    else:
        levels = _levels(grid)
    return [(float(p), make_env(env_id_or_class, float(p), parameter=parameter, **kwargs))
            for p in levels]


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
