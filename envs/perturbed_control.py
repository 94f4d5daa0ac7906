"""Classic-control tasks with perturbed physics, action noise and observation noise.

Robust-RL benchmarks train on the nominal dynamics and test on a grid of shifted ones. These
wrappers shift the physical constants of gymnasium's classic-control tasks without forking them:

* :class:`PhysicsPerturbation` multiplies named physical parameters of ``env.unwrapped`` by
  *scale factors* (``pole_length=2.0`` doubles the pole) and recomputes the quantities the
  environment caches from them (CartPole's ``total_mass`` and ``polemass_length``; Acrobot's
  centre-of-mass positions follow the link lengths). Scales are relative to the values the
  environment had when it was wrapped (gymnasium's defaults for a fresh ``gym.make``), so
  ``1.0`` is always the nominal task and one grid can be shared by every parameter.
* :class:`DiscreteActions` turns a one-dimensional ``Box`` action space (Pendulum's torque) into
  ``Discrete(n)`` evenly spaced values, so that discrete-action agents run on Pendulum.
* :class:`ActionNoise`: with probability ``p`` the agent's discrete action is replaced by a
  uniformly random one; for ``Box`` actions Gaussian noise of standard deviation ``std`` (in
  units of half the action range) is added and the result clipped to the action bounds.
* :class:`ObservationNoise`: i.i.d. Gaussian noise of standard deviation ``std`` on every
  observation entry.

The noise wrappers draw from their own generator, seeded from ``reset(seed=...)`` (or, before
the first seeded reset, from the environment's ``np_random``): the same seed gives the same
episodes, and the noise never consumes the environment's own random stream, so two policies
evaluated with the same seed start from the same initial states.

Parameters (scale factors, accepted range ``(0, 10]``, gravity ``[0, 10]``):

=============  ==============================================================================
CartPole       ``gravity``, ``cart_mass``, ``pole_mass``, ``pole_length``, ``force_mag``
Acrobot        ``link_mass_1``, ``link_mass_2``, ``link_length_1``, ``link_length_2``,
               ``link_moi`` (gravity is a hard-coded local in gymnasium's Acrobot)
MountainCar    ``force``, ``gravity``
Pendulum       ``gravity``, ``mass``, ``length``
=============  ==============================================================================

Typical use, through the helpers of :mod:`robustrl.envs.perturbations` (one family for these
tasks and robustrl's own environments)::

    env = make_env("CartPole-v1", {"pole_length": 2.0}, action_noise=0.1, seed=0)
    make = env_factory("CartPole-v1", "pole_length")     # q -> env, for evaluate/compare
    table = compare({"policy": policy}, make, perturbation_grid("CartPole-v1", "pole_length"))

``make_perturbed``, ``physics_grid``, ``perturbed_factory`` and ``evaluate_on_grid`` are
deprecated aliases (``DeprecationWarning``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from robustrl.validation import check_int, check_scalar, check_seed

__all__ = [
    "ActionNoise",
    "DiscreteActions",
    "ObservationNoise",
    "PhysicsPerturbation",
    "evaluate_on_grid",
    "make_perturbed",
    "nominal_parameters",
    "perturbable_parameters",
    "perturbed_factory",
    "physics_grid",
]

MAX_SCALE = 10.0


@dataclass(frozen=True)
class _Parameter:
    attributes: tuple[str, ...]  # attributes of env.unwrapped scaled together
    low: float  # smallest accepted scale
    low_inclusive: bool
    doc: str


def _p(*attributes: str, zero_ok: bool = False, doc: str = "") -> _Parameter:
    return _Parameter(tuple(attributes), 0.0, zero_ok, doc)


def _cartpole_derived(base) -> None:
    # CartPoleEnv caches these in __init__ and uses them in step(); without this, a pole-mass
    # or cart-mass change would only partly reach the dynamics.
    base.total_mass = base.masspole + base.masscart
    base.polemass_length = base.masspole * base.length


# family -> (environment class, parameters, derived-quantity hook)
_FAMILIES: dict[str, tuple[type, dict[str, _Parameter], Callable | None]] = {
    "CartPole": (CartPoleEnv, {
        "gravity": _p("gravity", zero_ok=True, doc="gravitational acceleration"),
        "cart_mass": _p("masscart", doc="cart mass"),
        "pole_mass": _p("masspole", doc="pole mass"),
        "pole_length": _p("length", doc="pole length (gymnasium stores the half-length)"),
        "force_mag": _p("force_mag", doc="magnitude of the push"),
    }, _cartpole_derived),
    "Acrobot": (AcrobotEnv, {
        "link_mass_1": _p("LINK_MASS_1", doc="mass of the first link"),
        "link_mass_2": _p("LINK_MASS_2", doc="mass of the second link"),
        # the centre of mass stays at mid-link, as in the nominal task
        "link_length_1": _p("LINK_LENGTH_1", "LINK_COM_POS_1", doc="length of the first link"),
        "link_length_2": _p("LINK_LENGTH_2", "LINK_COM_POS_2", doc="length of the second link"),
        "link_moi": _p("LINK_MOI", doc="moment of inertia of both links"),
    }, None),
    "MountainCar": (MountainCarEnv, {
        "force": _p("force", doc="engine force"),
        "gravity": _p("gravity", zero_ok=True, doc="gravity along the slope"),
    }, None),
    "Pendulum": (PendulumEnv, {
        "gravity": _p("g", zero_ok=True, doc="gravitational acceleration"),
        "mass": _p("m", doc="pendulum mass"),
        "length": _p("l", doc="pendulum length"),
    }, None),
}


def _family(base) -> str:
    for name, (cls, _, _) in _FAMILIES.items():
        if isinstance(base, cls):
            return name
    supported = ", ".join(f"{n} ({c.__name__})" for n, (c, _, _) in _FAMILIES.items())
    raise ValueError(
        f"env must wrap one of the classic-control tasks {supported}; got {type(base).__name__}"
    )


def _family_of_id(env_id: str) -> str:
    if not isinstance(env_id, str):
        raise ValueError(f"env_id must be a gymnasium id string; got {env_id!r}")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id {env_id!r} is not a registered environment id: {exc}") from None
    entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
    for name, (cls, _, _) in _FAMILIES.items():
        if entry.endswith(f":{cls.__name__}") or spec.entry_point is cls:
            return name
    raise ValueError(
        f"env_id {env_id!r} is not a supported classic-control task; supported: "
        + ", ".join(f"{n}-v*" for n in _FAMILIES)
    )


def perturbable_parameters(env_id: str) -> dict[str, str]:
    """``{parameter: description}`` of the physical parameters of ``env_id`` that can be scaled."""
    return {k: v.doc for k, v in _FAMILIES[_family_of_id(env_id)][1].items()}


def nominal_parameters(env_id: str) -> dict[str, float]:
    """Absolute nominal values (gymnasium's defaults) of the perturbable parameters."""
    cls, params, _ = _FAMILIES[_family_of_id(env_id)]
    base = cls()
    return {k: float(getattr(base, p.attributes[0])) for k, p in params.items()}


def _check_scales(family: str, scales: dict[str, Any], name: str) -> dict[str, float]:
    params = _FAMILIES[family][1]
    if not isinstance(scales, dict):
        raise ValueError(f"{name} must be a dict parameter -> scale; got {type(scales).__name__}")
    out = {}
    for key, value in scales.items():
        if key not in params:
            raise ValueError(
                f"{name}: {key!r} is not a perturbable parameter of {family}; accepted: "
                f"{sorted(params)}"
            )
        p = params[key]
        out[key] = check_scalar(value, f"{name}[{key!r}] (scale factor)", low=p.low,
                                high=MAX_SCALE, low_inclusive=p.low_inclusive)
    return out


class PhysicsPerturbation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Scale physical parameters of a classic-control task (see the module docstring).

    Args:
        env: a CartPole, Acrobot, MountainCar or Pendulum environment (wrapped or not).
        axis: the parameter a *scalar* perturbation ``q`` scales, so that
            ``reset(options={"perturbation": q})`` and :func:`robustrl.evaluation.evaluate`
            grids of numbers work; ``None`` allows dict perturbations only.
        **scales: initial scale factors, e.g. ``pole_length=2.0``; unnamed parameters stay
            nominal.

    ``reset(options={"perturbation": p})`` switches the dynamics from this episode on: ``p`` is
    a dict of scales (the parameters it does not name return to nominal), a number (the scale
    of ``axis``) or ``None`` (nominal). Other option keys are passed to the environment.
    """

    def __init__(self, env: gym.Env, axis: str | None = None, **scales: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, axis=axis, **scales)
        gym.Wrapper.__init__(self, env)
        self.family = _family(env.unwrapped)
        params = _FAMILIES[self.family][1]
        if axis is not None and axis not in params:
            raise ValueError(
                f"axis must be None or one of the {self.family} parameters {sorted(params)}; "
                f"got {axis!r}"
            )
        self.axis = axis
        base = env.unwrapped
        # nominal = the values at wrap time, so a wrapper never compounds with itself
        self.nominal = {
            attr: float(getattr(base, attr)) for p in params.values() for attr in p.attributes
        }
        self.perturbation: dict[str, float] = {}
        self.set_perturbation(scales)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(_FAMILIES[self.family][1])

    @property
    def nominal_perturbation(self) -> float | None:
        """The nominal scalar perturbation, ``1.0`` (unscaled physics) when the wrapper has an
        ``axis``, else ``None``; :func:`robustrl.evaluation.evaluate` reads it (through any
        wrappers) to report the nominal return."""
        return None if self.axis is None else 1.0

    def _as_scales(self, perturbation) -> dict[str, float]:
        if perturbation is None:
            return {}
        if isinstance(perturbation, dict):
            return _check_scales(self.family, perturbation, "perturbation")
        if self.axis is None:
            raise ValueError(
                "perturbation must be a dict parameter -> scale (or None) when the wrapper has "
                f"no axis; got {perturbation!r}. Pass axis=NAME to accept a scalar scale."
            )
        return _check_scales(self.family, {self.axis: perturbation}, "perturbation")

    def set_perturbation(self, perturbation) -> None:
        """Apply ``perturbation`` (dict of scales, scalar for ``axis``, or None) right away."""
        scales = self._as_scales(perturbation)
        base = self.env.unwrapped
        params, derive = _FAMILIES[self.family][1], _FAMILIES[self.family][2]
        for key, p in params.items():
            for attr in p.attributes:
                setattr(base, attr, self.nominal[attr] * scales.get(key, 1.0))
        if derive is not None:
            derive(base)
        self.perturbation = {k: scales.get(k, 1.0) for k in params}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options is not None:
            if not isinstance(options, dict):
                raise ValueError(f"options must be a dict or None; got {type(options).__name__}")
            if "perturbation" in options:
                options = dict(options)
                self.set_perturbation(options.pop("perturbation"))
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["perturbation"] = dict(self.perturbation)
        return obs, info


class DiscreteActions(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Discrete(n_actions)`` over evenly spaced values of a one-dimensional ``Box`` action
    (e.g. Pendulum's torque in ``[-2, 2]``; ``n_actions`` odd includes zero)."""

    def __init__(self, env: gym.Env, n_actions: int = 5) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, n_actions=n_actions)
        gym.ActionWrapper.__init__(self, env)
        box = env.action_space
        if not isinstance(box, spaces.Box) or box.shape != (1,):
            raise ValueError(
                f"env must have a one-dimensional Box action space; got {env.action_space}"
            )
        self.n_actions = check_int(n_actions, "n_actions", low=2)
        self.values = np.linspace(float(box.low[0]), float(box.high[0]), self.n_actions,
                                  dtype=box.dtype)
        self.action_space = spaces.Discrete(self.n_actions)

    def action(self, action) -> np.ndarray:
        return self.values[int(action)].reshape(1)


class _NoiseWrapper:
    """Mixin: a private generator seeded by reset(seed) (else once from env.np_random)."""

    _noise_rng: np.random.Generator | None = None
    _noise_tag = 0

    def _reseed(self, seed: int | None) -> None:
        if seed is not None:
            self._noise_rng = np.random.default_rng([int(seed), self._noise_tag])
        elif self._noise_rng is None:
            self._noise_rng = np.random.default_rng(
                [int(self.env.np_random.integers(2**63 - 1)), self._noise_tag]
            )


class ActionNoise(_NoiseWrapper, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Perturb the agent's actions.

    Args:
        p: ``Discrete`` actions only: probability in ``[0, 1]`` of replacing the action by a
            uniformly random one.
        std: ``Box`` actions only: standard deviation (>= 0) of Gaussian noise in units of half
            the action range; the noisy action is clipped to the bounds.
    """

    _noise_tag = 1

    def __init__(self, env: gym.Env, p: float = 0.0, std: float = 0.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, p=p, std=std)
        gym.Wrapper.__init__(self, env)
        if isinstance(env.action_space, spaces.Discrete):
            if std != 0.0:
                raise ValueError("std applies to Box action spaces; use p for Discrete actions")
            self.p = check_scalar(p, "p", low=0.0, high=1.0)
            self.std = 0.0
        elif isinstance(env.action_space, spaces.Box):
            if p != 0.0:
                raise ValueError("p applies to Discrete action spaces; use std for Box actions")
            self.std = check_scalar(std, "std", low=0.0)
            self.p = 0.0
        else:
            raise ValueError(
                f"env must have a Discrete or Box action space; got {env.action_space}"
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reseed(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        rng = self._noise_rng
        if rng is None:
            self._reseed(None)
            rng = self._noise_rng
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            # both draws happen every step so the noise stream does not depend on the policy
            replace, random_action = rng.random() < self.p, int(rng.integers(space.n))
            if replace:
                action = space.start + random_action
        else:
            half = (space.high - space.low) / 2.0
            noise = rng.normal(size=space.shape) * self.std * half
            action = np.clip(np.asarray(action, dtype=space.dtype) + noise.astype(space.dtype),
                             space.low, space.high)
        return self.env.step(action)


class ObservationNoise(_NoiseWrapper, gym.ObservationWrapper,
                       gym.utils.RecordConstructorArgs):
    """Add i.i.d. Gaussian noise of standard deviation ``std`` (>= 0) to every observation
    entry. The observation space becomes unbounded (same shape and dtype): Gaussian noise can
    leave any finite box."""

    _noise_tag = 2

    def __init__(self, env: gym.Env, std: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, std=std)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.observation_space, spaces.Box):
            raise ValueError(f"env must have a Box observation space; got {env.observation_space}")
        self.std = check_scalar(std, "std", low=0.0)
        box = env.observation_space
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=box.shape, dtype=box.dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reseed(seed)
        return super().reset(seed=seed, options=options)

    def observation(self, observation):
        if self._noise_rng is None:
            self._reseed(None)
        obs = np.asarray(observation)
        noise = self._noise_rng.normal(size=obs.shape) * self.std
        return (obs + noise).astype(self.observation_space.dtype)


def _make_physics(
    env_id: str,
    perturbation: dict[str, float] | float | None = None,
    action_noise: float = 0.0,
    obs_noise: float = 0.0,
    seed: int | None = None,
    *,
    axis: str | None = None,
    discretize: int | None = None,
    max_episode_steps: int | None = None,
    **make_kwargs: Any,
) -> gym.Env:
    """A classic-control task with scaled physics and optional action/observation noise (the
    physics branch of :func:`robustrl.envs.perturbations.make_env`).

    Args:
        env_id: ``CartPole-v1``, ``Acrobot-v1``, ``MountainCar-v0`` or ``Pendulum-v1``.
        perturbation: dict ``parameter -> scale`` (see :func:`perturbable_parameters`), a scalar
            scale of ``axis``, or ``None`` for the nominal task.
        action_noise: replacement probability (Discrete actions) or Gaussian std in units of
            half the action range (Box actions); 0 disables the wrapper.
        obs_noise: Gaussian observation-noise std; 0 disables the wrapper.
        seed: if given, the environment is reset with it (and its action space seeded), so the
            next ``reset()`` continues a reproducible stream.
        axis: the parameter a scalar ``perturbation`` scales.
        discretize: number of evenly spaced actions for a one-dimensional Box action space
            (Pendulum); ``None`` keeps the native action space.
        max_episode_steps: time limit (default: the registered one).

    Wrapper order (inside out): time limit, :class:`PhysicsPerturbation`,
    :class:`DiscreteActions`, :class:`ActionNoise`, :class:`ObservationNoise`.
    """
    family = _family_of_id(env_id)
    if max_episode_steps is not None:
        check_int(max_episode_steps, "max_episode_steps", low=1)
        make_kwargs["max_episode_steps"] = max_episode_steps
    seed = check_seed(seed)
    action_noise = check_scalar(action_noise, "action_noise", low=0.0)
    obs_noise = check_scalar(obs_noise, "obs_noise", low=0.0)
    params = _FAMILIES[family][1]
    if axis is not None and axis not in params:
        raise ValueError(f"axis must be None or one of {sorted(params)}; got {axis!r}")
    if perturbation is None:
        scales = {}
    elif isinstance(perturbation, dict):
        scales = _check_scales(family, perturbation, "perturbation")
    elif axis is None:
        raise ValueError(f"perturbation must be a dict parameter -> scale or None when no axis "
                         f"is given; got {perturbation!r}")
    else:
        scales = _check_scales(family, {axis: perturbation}, "perturbation")
    env = PhysicsPerturbation(gym.make(env_id, **make_kwargs), axis=axis, **scales)
    if discretize is not None:
        env = DiscreteActions(env, discretize)
    if action_noise > 0.0:
        if isinstance(env.action_space, spaces.Discrete):
            env = ActionNoise(env, p=check_scalar(action_noise, "action_noise", low=0.0,
                                                  high=1.0))
        else:
            env = ActionNoise(env, std=action_noise)
    if obs_noise > 0.0:
        env = ObservationNoise(env, obs_noise)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"robustrl.envs.{old} is deprecated; use {new} (one family of perturbation "
                  "helpers: make_env, perturbation_grid, env_factory, perturbed_envs, and "
                  "robustrl.evaluation.evaluate/compare)", DeprecationWarning, stacklevel=3)


def make_perturbed(
    env_id: str,
    perturbation: dict[str, float] | float | None = None,
    action_noise: float = 0.0,
    obs_noise: float = 0.0,
    seed: int | None = None,
    *,
    axis: str | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Deprecated: ``make_env(env_id, perturbation, parameter=axis, ...)``."""
    _deprecated("make_perturbed", "make_env(env_id, perturbation, parameter=...)")
    return _make_physics(env_id, perturbation, action_noise, obs_noise, seed, axis=axis,
                         **kwargs)


def _is_physics_id(env_id: Any) -> bool:
    """Whether ``env_id`` names a supported classic-control task."""
    try:
        _family_of_id(env_id)
    except ValueError:
        return False
    return True


def _scales(env_id: str, parameter: str, values: Sequence[float] | None) -> list[float]:
    """The validated scales of ``parameter`` (default 0.5, 0.75, 1, 1.5, 2, 2.5, 3)."""
    family = _family_of_id(env_id)
    values = DEFAULT_SCALES if values is None else values
    try:
        scales = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"values must be a sequence of numbers; got {values!r}") from None
    if not scales:
        raise ValueError("values must contain at least one scale")
    return [_check_scales(family, {parameter: v}, "values")[parameter] for v in scales]


def physics_grid(
    env_id: str, parameter: str, values: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """Deprecated: ``[{parameter: scale}, ...]``; use ``perturbation_grid(env_id, parameter,
    values)`` (the scales as an array)."""
    _deprecated("physics_grid", "perturbation_grid(env_id, parameter, values)")
    return [{parameter: v} for v in _scales(env_id, parameter, values)]


DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)


def perturbed_factory(env_id: str, parameter: str, **kwargs: Any) -> Callable[[float], gym.Env]:
    """Deprecated: use ``env_factory(env_id, parameter, **kwargs)``."""
    _deprecated("perturbed_factory", "env_factory(env_id, parameter, ...)")
    from robustrl.envs.perturbations import env_factory

    return env_factory(env_id, parameter, **kwargs)


def evaluate_on_grid(
    policy,
    env_id: str,
    parameter: str,
    values: Sequence[float] | None = None,
    episodes: int = 100,
    seed: int | None = 0,
    *,
    name: str = "policy",
    progress: bool = False,
    **make_kwargs: Any,
) -> list[dict[str, Any]]:
    """Deprecated: ``compare({name: policy}, env_factory(env_id, parameter, **make_kwargs),
    perturbation_grid(env_id, parameter, values), episodes, seed).rows()``, each row with
    ``"parameter"`` added. ``episodes`` defaults to 100 like :func:`~robustrl.evaluation.
    evaluate` and :func:`~robustrl.evaluation.compare` (it was 20)."""
    _deprecated("evaluate_on_grid", "robustrl.evaluation.compare(..., env_factory(env_id, "
                "parameter), perturbation_grid(env_id, parameter, values))")
    from robustrl.envs.perturbations import env_factory, perturbation_grid
    from robustrl.evaluation import compare

    scales = perturbation_grid(env_id, parameter, values).tolist()
    table = compare({name: policy}, env_factory(env_id, parameter, **make_kwargs), scales,
                    episodes=episodes, seed=seed, progress=progress)
    rows = table.rows()
    for row in rows:
        row["parameter"] = parameter
    return rows
