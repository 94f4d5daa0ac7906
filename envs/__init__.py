"""Gymnasium environments with a dynamics-perturbation knob.

Each environment takes ``perturbation`` in its constructor, and has ``nominal_perturbation``
and ``perturbation_grid`` class attributes. On the unwrapped environment it exposes
``horizon``, ``feature_dim``, ``n_actions``, ``features(obs, action)`` and
``action_features(obs)``. :class:`LinearMDPEnv` turns any known
:class:`~robustrl.models.LinearMDP` into such an environment.
Importing this package registers the gymnasium ids
``robustrl/SimulatedLinearMDP-v0``, ``robustrl/AmericanPut-v0`` and
``robustrl/RandomLinearMDP-v0``, ``robustrl/CombinationLock-v0`` and
``robustrl/LayeredTabularMDP-v0`` and ``robustrl/CaveEscape-v0`` (DRED's MiniGrid levels; the
``minigrid`` package, extra ``[dred]``, is imported only when :class:`CaveEscapeEnv` is used).
"""

from __future__ import annotations

import gymnasium as gym

from robustrl.envs.american_put import AmericanPutEnv
from robustrl.envs.cave_levels import (
    EMPTY,
    GOAL,
    LAVA,
    MOSS,
    START,
    WALL,
    edit_level,
    generate_level_set,
    is_solvable,
    is_valid,
    level_statistics,
    load_level_set,
    random_level,
    repair,
    save_level_set,
    shortest_path_length,
    validate_level,
)
from robustrl.envs.combination_lock import (
    CombinationLockEnv,
    combination_lock,
    combination_lock_code,
    combination_lock_code_index,
    combination_lock_coverability,
    combination_lock_value_class,
)
from robustrl.envs.features import (
    FeatureMap,
    OneHotFeatures,
    RBFFeatures,
    StepFeatureWrapper,
    TileCoding,
    finite_mdp_from_toy_text,
)
from robustrl.envs.layered_mdp import (
    FiniteMDPEnv,
    LayeredTabularMDPEnv,
    layered_tabular_mdp,
    with_unreachable_states,
)
from robustrl.envs.linear_mdp_env import LinearMDPEnv
from robustrl.envs.perturbations import (
    env_factory,
    make_env,
    perturbation_grid,
    perturbed_envs,
)
from robustrl.envs.perturbed_control import (
    ActionNoise,
    DiscreteActions,
    ObservationNoise,
    PhysicsPerturbation,
    evaluate_on_grid,
    make_perturbed,
    nominal_parameters,
    perturbable_parameters,
    perturbed_factory,
    physics_grid,
)
from robustrl.envs.random_linear_mdp import RandomLinearMDPEnv, random_linear_mdp
from robustrl.envs.simulated_linear_mdp import (
    ACTION_VECTORS,
    SimulatedLinearMDPEnv,
    simulated_linear_mdp,
)

SIMULATED_LINEAR_MDP_ID = "robustrl/SimulatedLinearMDP-v0"
AMERICAN_PUT_ID = "robustrl/AmericanPut-v0"
RANDOM_LINEAR_MDP_ID = "robustrl/RandomLinearMDP-v0"
COMBINATION_LOCK_ID = "robustrl/CombinationLock-v0"
LAYERED_TABULAR_MDP_ID = "robustrl/LayeredTabularMDP-v0"
CAVE_ESCAPE_ID = "robustrl/CaveEscape-v0"

_REGISTRATIONS = {
    SIMULATED_LINEAR_MDP_ID: "robustrl.envs.simulated_linear_mdp:SimulatedLinearMDPEnv",
    AMERICAN_PUT_ID: "robustrl.envs.american_put:AmericanPutEnv",
    RANDOM_LINEAR_MDP_ID: "robustrl.envs.random_linear_mdp:RandomLinearMDPEnv",
    COMBINATION_LOCK_ID: "robustrl.envs.combination_lock:CombinationLockEnv",
    LAYERED_TABULAR_MDP_ID: "robustrl.envs.layered_mdp:LayeredTabularMDPEnv",
    CAVE_ESCAPE_ID: "robustrl.envs.cave_escape:CaveEscapeEnv",
}

for _env_id, _entry_point in _REGISTRATIONS.items():
    # Registering twice only warns in gymnasium. A re-import (e.g. importlib.reload) skips it.
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)



def __getattr__(name: str):
    # CaveEscapeEnv(VecEnv) needs minigrid (extra [dred]); import it on first use only.
    if name == "CaveEscapeEnv":
        from robustrl.envs.cave_escape import CaveEscapeEnv

        return CaveEscapeEnv
    if name == "CaveEscapeVecEnv":
        from robustrl.envs.cave_escape_vec import CaveEscapeVecEnv

        return CaveEscapeVecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FeatureMap",
    "OneHotFeatures",
    "RBFFeatures",
    "TileCoding",
    "StepFeatureWrapper",
    "finite_mdp_from_toy_text",
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
    "CAVE_ESCAPE_ID",
    "CaveEscapeEnv",
    "CaveEscapeVecEnv",
    "EMPTY",
    "GOAL",
    "LAVA",
    "MOSS",
    "START",
    "WALL",
    "edit_level",
    "generate_level_set",
    "is_solvable",
    "is_valid",
    "level_statistics",
    "load_level_set",
    "random_level",
    "repair",
    "save_level_set",
    "shortest_path_length",
    "validate_level",
    "COMBINATION_LOCK_ID",
    "LAYERED_TABULAR_MDP_ID",
    "CombinationLockEnv",
    "FiniteMDPEnv",
    "LayeredTabularMDPEnv",
    "combination_lock",
    "combination_lock_code",
    "combination_lock_code_index",
    "combination_lock_coverability",
    "combination_lock_value_class",
    "layered_tabular_mdp",
    "with_unreachable_states",
    "ACTION_VECTORS",
    "AMERICAN_PUT_ID",
    "SIMULATED_LINEAR_MDP_ID",
    "RANDOM_LINEAR_MDP_ID",
    "AmericanPutEnv",
    "LinearMDPEnv",
    "RandomLinearMDPEnv",
    "SimulatedLinearMDPEnv",
    "env_factory",
    "make_env",
    "perturbation_grid",
    "perturbed_envs",
    "random_linear_mdp",
    "simulated_linear_mdp",
]
