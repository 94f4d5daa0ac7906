"""DRED and its baselines on Cave Escape with stable-baselines3 PPO (arXiv:2402.03479, Sec. 4
and App. B).

:class:`LevelReplayPPO` trains SB3's :class:`~stable_baselines3.PPO` (not a hand-written PPO),
or sb3-contrib's ``RecurrentPPO`` with the authors' LSTM(256) network (``policy="lstm"``), on
a level curriculum chosen by name:

========== ============================================================================
method     levels each cycle (arXiv:2402.03479 App. B)
========== ============================================================================
uniform    uniform over the training set
dr         domain randomisation: :func:`robustrl.envs.cave_levels.random_level`
plr        PLR over the training set: value_l1, rank beta 0.1, staleness 0.3, replay
           probability 1 once every level was seen; no gradient updates on the first
           visits (``no_exploratory_grad_updates``, as the authors' config)
robust_plr PLR-perp over DR levels: positive value loss, rank beta 0.3, staleness 0.3,
           replay probability 0.5, fill threshold 0.5; new DR levels are rolled out and
           scored with **no gradient update** and admitted by score
accel      ACCEL from empty rooms: replay probability 0.8 (else new empty rooms, no
           gradient); after each replay cycle the 4 "easy" replayed levels get 5 random
           edits each (:func:`robustrl.envs.cave_levels.edit_level`), are rolled out with no
           gradient update, scored (positive value loss) and admitted
dred       VAE-DRED: buffer seeded with the training set (never evicted); replay from
           value_l1 (rank beta 0.1, dataset levels) mixed with grounded value_l1 (rank
           beta 1, whole buffer) by kappa ramping 0 -> 1 over training, staleness 0.3 on the
           dataset; after each replay cycle a generation phase: ``generator.generate()``
           levels (VAE latent interpolation between training levels), rolled out with no
           gradient update, scored, admitted only if solved at least once (grounded > 0)
el_dred    EL-DRED: DRED's buffer and replay; the generation phase is replaced by ACCEL's
           5 random edits of the 4 "easy" replayed levels (grounded admission as DRED)
accel_d    ACCEL-D: buffer seeded with the training set (never evicted), replay
           probability 1 by grounded value_l1 over the whole buffer (rank beta 0.1,
           staleness 0.3), then ACCEL's edit phase, admitted by score
========== ============================================================================

"Easy" levels (``easy_rule``): ``"lowest"`` (default) takes the 4 replayed levels of lowest
``mean return - score``, as the authors' code sorts them; ``"highest"`` the 4 of highest.

Mechanics (the authors' DCD runner, in SB3 terms):

* A *phase* = one SB3 rollout of ``n_steps`` per env. At its start each env is assigned one
  level (``vec_env="batched"``, the default: :meth:`CaveEscapeVecEnv.set_levels
  <robustrl.envs.cave_escape_vec.CaveEscapeVecEnv.set_levels>`; ``"dummy"``/``"subproc"``:
  :class:`LevelWrapper` around ``CaveEscapeEnv``; either way the env replays the same level at
  every reset until the phase ends, like DCD's ``reset_agent``) and every env is reset, so no
  episode spans two phases (DCD's ``reset_to_level_batch``; the cut episode is bootstrapped
  from V).
* A phase is run by ``PPO.learn(n_envs * n_steps, reset_num_timesteps=False)``: one rollout and
  one PPO update; :class:`_PhasePPO` skips the update in no-gradient phases (new/generated
  levels of robust PLR, ACCEL, DRED and unseen-level visits of PLR/DRED).
* :class:`LevelScoreCallback` records each finished episode's undiscounted return and solved
  flag (``_on_step``), and at ``_on_rollout_end`` reads ``rollout_buffer.returns`` and
  ``.values`` (GAE returns and value predictions, computed by SB3 before the callback) per env:
  the per-env mean of ``|R - V|`` (or ``max(R - V, 0)``) is the score of that env's level
  (all its fragments, step-weighted), merged step-weighted over envs sharing a level.
* The budget is counted in **student gradient updates** (``learn(total_updates=N)``), so
  methods are compared at equal numbers of PPO updates, as the authors' checkpoints; env steps,
  including those of no-gradient phases, are reported as ``env_steps``.
* Checkpoints (``learn(checkpoint_dir=..., checkpoint_every=...)``, :meth:`LevelReplayPPO.save`)
  hold the whole training state, so a killed run resumes bit-for-bit.

Deviations: the default policy is feed-forward (:mod:`robustrl.agents.dred.policy`;
``policy="lstm"`` is the authors' LSTM); SB3 PPO normalises advantages per minibatch (the
authors' PPO does too); new scores replace old ones (alpha = 1), as the authors' configs.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl.agents.dred.level_buffer import LevelBuffer, fragment_score, merge_scores
from robustrl.validation import check_int, check_scalar

__all__ = ["METHODS", "LevelReplayPPO", "LevelScoreCallback", "LevelWrapper", "EvalResult",
           "PPO_DEFAULTS", "buffer_config", "dr_max_blocks", "empty_room_level",
           "evaluate_levels"]

METHODS = ("dred", "el_dred", "dr", "uniform", "plr", "robust_plr", "accel", "accel_d")
#: methods whose buffer is seeded with the training set (never evicted) and that visit the
#: unseen dataset levels first (no gradient) before replaying
_DATASET_BUFFER = ("plr", "dred", "el_dred", "accel_d")
#: ACCEL's "easy" base levels for edits (``base_levels="easy"`` in the authors' configs):
#: ``"lowest"`` takes the 4 replayed levels of lowest ``mean return - score``, as the authors'
#: code runs it; ``"highest"`` the 4 of highest (this package's former rule).
EASY_RULES = ("lowest", "highest")
VEC_ENVS = ("batched", "dummy", "subproc")
POLICIES = ("mlp", "lstm")

#: PPO hyperparameters of DRED's authors' code (arXiv:2402.03479; docs/algorithms/dred.md), shared
#: by all
#: methods; n_envs / n_steps are scaled per run.
#: The authors' value loss is ``0.5 * max((V - R)^2, (V_clip - R)^2)`` times coefficient 0.5
#: with ``V_clip`` clipped to +-0.2 around the old value (``algos/ppo.py``); SB3's is
#: ``vf_coef * mean((V_clip - R)^2)``, so ``vf_coef = 0.25`` gives the same weight on the
#: squared error and ``clip_range_vf = 0.2`` the same clipping (SB3 uses the clipped term alone,
#: not the max with the unclipped one). Adam eps is 1e-5 in both.
PPO_DEFAULTS: dict[str, Any] = dict(learning_rate=1e-4, gamma=0.995, gae_lambda=0.95,
                                    clip_range=0.2, clip_range_vf=0.2, vf_coef=0.25,
                                    max_grad_norm=0.5, ent_coef=0.0, n_epochs=5)

#: Sizes of the shared policy network (:func:`robustrl.agents.dred.policy.policy_kwargs`).
_POLICY_SHAPE: dict[str, int] = {"features_dim": 256, "head_dim": 32}


def buffer_config(method: str, n_train: int, capacity: int = 4000) -> dict | None:
    """:class:`LevelBuffer` keyword arguments of ``method`` (the configurations of
    arXiv:2402.03479 App. B), or None."""
    if method in ("uniform", "dr"):
        return None
    if method == "plr":
        return dict(capacity=n_train, strategy="value_l1", temperature=0.1,
                    staleness_coef=0.3, replay_prob=1.0, fill_threshold=1.0)
    if method == "robust_plr":
        return dict(capacity=capacity, strategy="positive_value_loss", temperature=0.3,
                    staleness_coef=0.3, replay_prob=0.5, fill_threshold=0.5)
    if method == "accel":
        return dict(capacity=capacity, strategy="positive_value_loss", temperature=0.3,
                    staleness_coef=0.3, replay_prob=0.8, fill_threshold=0.5)
    if method in ("dred", "el_dred", "accel_d") and capacity < n_train:
        raise ValueError(f"buffer_capacity must be >= the {n_train} training levels for "
                         f"{method}; got {capacity}")
    if method == "accel_d":  # ACCEL-D: grounded_value_l1 over the whole buffer
        return dict(capacity=capacity, strategy="grounded_value_l1", temperature=0.1,
                    staleness_coef=0.3, replay_prob=1.0, fill_threshold=n_train / capacity,
                    dataset_levels_fixed=True)
    if method in ("dred", "el_dred"):
        return dict(capacity=capacity, strategy="value_l1", temperature=0.1,
                    strategy_support="dataset", secondary_strategy="grounded_value_l1",
                    secondary_temperature=1.0, secondary_support="buffer",
                    secondary_coef_start=0.0, secondary_coef_end=1.0, staleness_coef=0.3,
                    staleness_support="dataset", replay_prob=1.0,
                    fill_threshold=n_train / capacity, dataset_levels_fixed=True)
    raise ValueError(f"method must be one of {METHODS}; got {method!r}")


def empty_room_level(rng: np.random.Generator, size: int = 13) -> np.ndarray:
    """ACCEL's starting point: an empty room with a random start and goal."""
    from robustrl.envs.cave_levels import EMPTY, GOAL, START

    level = np.full((size, size), EMPTY, dtype=np.int8)
    a, b = rng.choice(size * size, size=2, replace=False)
    level.flat[a], level.flat[b] = START, GOAL
    return level


def dr_max_blocks(size: int) -> int:
    """Domain randomisation's block limit on a ``size`` x ``size`` interior: the authors' 60
    on 13 x 13 (arXiv:2402.03479 App. B), scaled with the area for other sizes (at least 1)."""
    return 60 if size == 13 else max(1, min(round(60 * size * size / 169), size * size - 2))


class LevelWrapper(gym.Wrapper):
    """Holds the env's current level and re-installs it at every reset (DCD's ``reset_agent``);
    adds ``info["episode_return"]`` (undiscounted) at the end of every episode."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._level: np.ndarray | None = None
        self._return = 0.0

    def set_level(self, level: np.ndarray) -> None:
        self._level = np.asarray(level, dtype=np.int8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        if self._level is not None:
            options.setdefault("level", self._level)
        self._return = 0.0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            info = dict(info, episode_return=self._return)
        return obs, reward, terminated, truncated, info


def _make_env(size: int, navigation_only: bool, agent_view_size: int = 5) -> gym.Env:
    from robustrl.envs.cave_escape import CaveEscapeEnv

    return LevelWrapper(CaveEscapeEnv(size=size, navigation_only=navigation_only,
                                      agent_view_size=agent_view_size))


@functools.cache
def _phase_ppo_class(recurrent: bool = False):
    """SB3 ``PPO`` (or sb3-contrib ``RecurrentPPO``) whose update can be skipped for
    no-gradient phases (PLR-perp)."""
    if recurrent:
        from sb3_contrib import RecurrentPPO as base
    else:
        from stable_baselines3 import PPO as base

    class _PhasePPO(base):
        skip_update = False
        n_grad_updates = 0

        def train(self) -> None:
            if self.skip_update:
                return
            self.n_grad_updates += 1
            super().train()

    _PhasePPO.__name__ = _PhasePPO.__qualname__ = f"_Phase{base.__name__}"
    return _PhasePPO


def _callback_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class _Callback(BaseCallback):
        def __init__(self, trainer: LevelReplayPPO) -> None:
            super().__init__(verbose=0)
            self.trainer = trainer

        def _on_step(self) -> bool:
            infos, dones = self.locals["infos"], self.locals["dones"]
            for i in np.flatnonzero(dones):
                info = infos[i]
                self.trainer._episode_end(int(i), float(info.get("episode_return", 0.0)),
                                          bool(info.get("solved", False)))
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.rollout_buffer
            self.trainer._rollout_end(np.asarray(buf.returns), np.asarray(buf.values))

    return _Callback


def LevelScoreCallback(trainer: LevelReplayPPO):  # noqa: N802 (a class factory, SB3 lazily)
    """The SB3 callback that feeds episode ends and rollout scores to ``trainer``."""
    return _callback_class()(trainer)


@dataclass
class _Phase:
    kind: str  # "replay", "unseen", "new", "generated", "edited", "plain"
    grad: bool
    levels: list  # one level array per env
    slots: list | None = None  # buffer slots (replay/unseen) else None
    timestamps: list | None = None
    returns: list = field(default_factory=list)  # per env: completed episode returns
    solved: list = field(default_factory=list)


@dataclass
class EvalResult:
    """Zero-shot result on one level set: one episode per level."""

    solved_rate: float
    mean_return: float
    returns: np.ndarray
    solved: np.ndarray


#: the authors' configuration (arXiv:2402.03479, App. B; their DCD-based code): 36 envs x 256
#: steps, 1 minibatch, 7 MiniGrid actions, LSTM(256) policy, buffer 4000 (use it with their 512
#: training levels); PPO hyperparameters are :data:`PPO_DEFAULTS`.
AUTHORS_PRESET: dict[str, Any] = dict(n_envs=36, n_steps=256, buffer_capacity=4000,
                                      navigation_only=False, policy="lstm", vec_env="batched",
                                      easy_rule="lowest")

CHECKPOINT_FORMAT = "robustrl.level-replay/1"
CHECKPOINT_NAME = "checkpoint.pt"


def _np_to_t(arrays: dict[str, np.ndarray]) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def _t_to_np(tensors: dict, path, name: str) -> dict[str, np.ndarray]:
    import torch

    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor)
                                                for v in tensors.values()):
        raise ValueError(f"path {path}: {name!r} must map names to tensors")
    return {k: v.numpy() for k, v in tensors.items()}


def _rng_states() -> dict[str, Any]:
    """numpy's and Python's global generator states (JSON-able)."""
    import random

    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (SB3 draws from it)
    version, internal, py_gauss = random.getstate()
    return dict(numpy=[kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
                python=[version, list(internal), py_gauss])


def _set_rng_states(state: dict[str, Any]) -> None:
    import random

    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss,  # noqa: NPY002
                         gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))


class LevelReplayPPO:
    """SB3 PPO on Cave Escape with a level curriculum ``method`` (see the module docstring).

    Args:
        method: one of :data:`METHODS`.
        train_levels: ``(n, size, size)`` int8 training levels (all methods but ``dr`` and
            ``accel`` sample from them; ``dred``, ``el_dred``, ``accel_d`` and ``plr`` seed
            their buffer with them).
        generator: for ``dred``: an object whose ``generate()`` returns ``(levels, parents)``
            (e.g. :class:`robustrl.agents.dred.generator.LevelGenerator`); checkpoints need
            its ``get_state()`` / ``set_state()``.
        n_envs, n_steps: parallel envs and rollout length (authors: 36 x 256).
        n_minibatches: PPO minibatches per epoch (authors: 1, the whole rollout); must divide
            ``n_envs * n_steps``.
        buffer_capacity: level buffer size for the buffer methods (authors: 4000).
        navigation_only: 3 movement actions instead of MiniGrid's 7.
        agent_view_size: side of the egocentric view (odd, >= 3; the authors' 5).
        vec_env: ``"batched"`` (default: :class:`~robustrl.envs.cave_escape_vec.CaveEscapeVecEnv`,
            all envs in one compiled step), ``"dummy"`` (``DummyVecEnv`` of ``CaveEscapeEnv``,
            in-process) or ``"subproc"`` (one process per env).
        policy: ``"mlp"`` (feed-forward shared base, SB3 ``PPO``) or ``"lstm"`` (the authors'
            LSTM(256) shared base, sb3-contrib ``RecurrentPPO``).
        features_dim: width of the shared base, the LSTM's hidden size or the feed-forward
            layer's (the authors' 256; the ``cpu_lstm`` preset of the experiment uses 64).
        easy_rule: ACCEL / ACCEL-D / EL-DRED base levels for edits, one of
            :data:`EASY_RULES`.
        device: torch device for SB3 (``"auto"``: cuda when available).
        seed: seeds PPO, the envs, the buffer and the level choices.
        learning_rate: SB3 PPO hyperparameter; so are ``gamma``, ``gae_lambda``,
            ``clip_range``, ``clip_range_vf``, ``vf_coef``, ``max_grad_norm``, ``ent_coef`` and
            ``n_epochs`` (defaults: :data:`PPO_DEFAULTS`, the authors' values).

    :data:`AUTHORS_PRESET` holds the authors' settings: ``LevelReplayPPO(method, levels,
    **AUTHORS_PRESET)``.
    """

    def __init__(self, method: str, train_levels, *, generator=None, n_envs: int = 8,
                 n_steps: int = 128, buffer_capacity: int = 4000,
                 navigation_only: bool = False, vec_env: str = "batched",
                 policy: str = "mlp", easy_rule: str = "lowest", device: str = "auto",
                 seed: int = 0, n_edits: int = 5, n_minibatches: int = 1,
                 learning_rate: float = PPO_DEFAULTS["learning_rate"],
                 gamma: float = PPO_DEFAULTS["gamma"],
                 gae_lambda: float = PPO_DEFAULTS["gae_lambda"],
                 clip_range: float = PPO_DEFAULTS["clip_range"],
                 clip_range_vf: float | None = PPO_DEFAULTS["clip_range_vf"],
                 vf_coef: float = PPO_DEFAULTS["vf_coef"],
                 max_grad_norm: float = PPO_DEFAULTS["max_grad_norm"],
                 ent_coef: float = PPO_DEFAULTS["ent_coef"],
                 n_epochs: int = PPO_DEFAULTS["n_epochs"], agent_view_size: int = 5,
                 features_dim: int = _POLICY_SHAPE["features_dim"]) -> None:

        from robustrl.envs.cave_levels import validate_level

        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        if vec_env not in VEC_ENVS:
            raise ValueError(f"vec_env must be one of {VEC_ENVS}; got {vec_env!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}; got {policy!r}")
        if easy_rule not in EASY_RULES:
            raise ValueError(f"easy_rule must be one of {EASY_RULES}; got {easy_rule!r}")
        train = np.asarray(train_levels)
        if train.ndim != 3 or train.shape[0] < 1 or train.shape[1] != train.shape[2]:
            raise ValueError("train_levels must be an (n, size, size) array with n >= 1; got "
                             f"shape {train.shape}")
        for i, lv in enumerate(train):
            validate_level(lv, f"train_levels[{i}]")
        if method == "dred" and (generator is None or not hasattr(generator, "generate")):
            raise ValueError("generator must be an object with generate() -> (levels, parents)"
                             " for method 'dred'")
        self.method = method
        self.train_levels = train.astype(np.int8)
        self.size = int(train.shape[1])
        self.generator = generator
        self.n_envs = check_int(n_envs, "n_envs", low=1)
        self.n_steps = check_int(n_steps, "n_steps", low=2)
        self.n_edits = check_int(n_edits, "n_edits", low=1)
        self.n_minibatches = check_int(n_minibatches, "n_minibatches", low=1,
                                       high=self.n_envs * self.n_steps)
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise ValueError(f"n_minibatches must divide n_envs * n_steps = "
                             f"{self.n_envs * self.n_steps}; got {n_minibatches}")
        self.navigation_only = bool(navigation_only)
        self.agent_view_size = check_int(agent_view_size, "agent_view_size", low=3)
        if self.agent_view_size % 2 == 0:
            raise ValueError(f"agent_view_size must be odd and >= 3; got {agent_view_size}")
        self.vec_env = vec_env
        self.policy = policy
        self.features_dim = check_int(features_dim, "features_dim", low=1)
        self.easy_rule = easy_rule
        self.buffer_capacity = check_int(buffer_capacity, "buffer_capacity", low=1)
        self.seed = check_int(seed, "seed", low=0)
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        cfg = buffer_config(method, len(train), self.buffer_capacity)
        self.buffer: LevelBuffer | None = None
        if cfg is not None:
            self.buffer = LevelBuffer(**cfg, seed=int(self.rng.integers(2**31)))
            if method in _DATASET_BUFFER:
                self.buffer.add_dataset_levels(list(self.train_levels))
        self.no_exploratory_grad_updates = method not in ("uniform", "dr")

        hp = dict(learning_rate=learning_rate, gamma=gamma, gae_lambda=gae_lambda,
                  clip_range=clip_range, clip_range_vf=clip_range_vf, vf_coef=vf_coef,
                  max_grad_norm=max_grad_norm, ent_coef=ent_coef, n_epochs=n_epochs)
        for key in ("learning_rate", "gamma", "gae_lambda", "clip_range", "vf_coef",
                    "max_grad_norm", "ent_coef"):
            check_scalar(hp[key], key, low=0)
        if clip_range_vf is not None:
            check_scalar(clip_range_vf, "clip_range_vf", low=0)
        hp["n_epochs"] = check_int(n_epochs, "n_epochs", low=1)
        self.ppo_hyperparameters = hp
        policy_name, kwargs = _policy_spec(policy, self.features_dim)
        self.model = _phase_ppo_class(policy == "lstm")(
            policy_name, self._build_venv(), n_steps=self.n_steps,
            batch_size=self.n_envs * self.n_steps // self.n_minibatches,
            policy_kwargs=kwargs, device=device,
            seed=self.seed, verbose=0, **hp)
        self.venv = self.model.get_env()  # SB3 may have wrapped it (VecTransposeImage)
        # env state of an agent loaded without its env (load): applied when learn rebuilds it
        self._pending_venv_state: tuple[dict, dict] | None = None
        self._logger = None
        # without a logger of its own, SB3 configures one per learn() call, which creates an
        # empty SB3-<time> folder in the temp directory: one per phase
        self.model.set_logger(self.logger)
        self.callback = LevelScoreCallback(self)
        self._phase: _Phase | None = None
        self.last_phase: _Phase | None = None  # the latest phase (levels, slots, returns)
        self.n_updates_total = 1
        self._last_checkpoint = -1
        self.resumed_at: int | None = None  # update count of the checkpoint learn resumed from
        self.stats: dict[str, Any] = dict(env_steps=0, grad_updates=0, phases={},
                                          generated_proposed=0, generated_admitted=0,
                                          train_seconds=0.0)

    def _build_venv(self):
        """The training VecEnv of this agent's settings (seeded: env i gets seed + i at its
        first reset, as ``make_vec_env``)."""
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        if self.vec_env == "batched":
            from robustrl.envs.cave_escape_vec import CaveEscapeVecEnv

            venv = CaveEscapeVecEnv(np.repeat(self.train_levels[:1], self.n_envs, axis=0),
                                    navigation_only=self.navigation_only,
                                    agent_view_size=self.agent_view_size)
            venv.seed(self.seed)
            return venv
        return make_vec_env(
            functools.partial(_make_env, self.size, self.navigation_only,
                              self.agent_view_size),
            n_envs=self.n_envs, seed=self.seed,
            vec_env_cls=SubprocVecEnv if self.vec_env == "subproc" else DummyVecEnv)

    def _detach_env(self) -> None:
        """Close the training env, keeping its state for :meth:`_attach_env` (an agent loaded
        without ``env`` has none: ``get_env()`` is None until ``learn`` rebuilds it)."""
        if self.venv is None:
            return
        self._pending_venv_state = self._venv_state()
        self.venv.close()
        self.venv = None
        self.model.env = None

    def _attach_env(self) -> None:
        """Rebuild the training env from the saved settings and restore its state."""
        if self.venv is not None:
            return
        self.model.set_env(self._build_venv())
        self.venv = self.model.get_env()
        if self._pending_venv_state is not None:
            self._set_venv_state(*self._pending_venv_state)
            self._pending_venv_state = None

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def num_timesteps(self) -> int:
        """Env steps taken by ``learn`` so far, including no-gradient phases (SB3's name)."""
        return int(self.model.num_timesteps)

    @property
    def logger(self):
        """An SB3 ``Logger`` with no outputs (callbacks such as ``EvalCallback`` record to it)."""
        if self._logger is None:
            from stable_baselines3.common.logger import Logger

            self._logger = Logger(folder=None, output_formats=[])
        return self._logger

    def get_vec_normalize_env(self) -> None:
        """No observation normalisation wrapper (read by SB3's ``CheckpointCallback``)."""
        return None

    @property
    def grad_updates(self) -> int:
        return int(self.model.n_grad_updates)

    # ------------------------------------------------------------------ phases
    def _sample_train(self, k: int) -> list:
        return list(self.train_levels[self.rng.integers(len(self.train_levels), size=k)])

    def _new_levels(self, k: int) -> list:
        from robustrl.envs.cave_levels import random_level

        if self.method == "accel":
            return [empty_room_level(self.rng, self.size) for _ in range(k)]
        blocks = dr_max_blocks(self.size)
        return [random_level(self.rng, self.size, max_blocks=blocks) for _ in range(k)]

    def _generated_levels(self) -> list:
        out: list = []
        while len(out) < self.n_envs:
            levels, _ = self.generator.generate()
            levels = list(np.asarray(levels, dtype=np.int8))
            if not levels:
                raise ValueError("generator.generate() returned no levels")
            out.extend(levels)
        return out[: self.n_envs]

    def _replay_phase(self) -> _Phase:
        buf = self.buffer
        if buf.sample_replay_decision():
            slots = [buf.sample_replay() for _ in range(self.n_envs)]
            return _Phase("replay", True, [buf.levels[s] for s in slots], slots)
        if self.method in _DATASET_BUFFER:  # visit unseen dataset levels, no gradient
            slots = []
            for _ in range(self.n_envs):
                s = buf.sample_unseen()
                if s is None:  # ran out mid-batch: any visited level (the authors' fallback)
                    s = int(self.rng.choice(np.flatnonzero(buf.occupied & buf.visited)))
                slots.append(s)
            return _Phase("unseen", False, [buf.levels[s] for s in slots], slots)
        levels = self._new_levels(self.n_envs)
        return _Phase("new", False, levels, None, [buf.observe_new() for _ in levels])

    def _start_phase(self, phase: _Phase) -> bool:
        """Run one phase (one SB3 rollout + update, skipped for no-gradient phases)."""
        phase.returns = [[] for _ in range(self.n_envs)]
        phase.solved = [[] for _ in range(self.n_envs)]
        if self.vec_env == "batched":
            self.venv.unwrapped.set_levels(None, np.stack(phase.levels))
        else:
            for i, level in enumerate(phase.levels):
                self.venv.env_method("set_level", level, indices=[i])
        self.model._last_obs = self.venv.reset()
        self.model._last_episode_starts = np.ones(self.n_envs, dtype=bool)
        self.model.skip_update = not phase.grad
        self._phase = phase
        self.model.learn(self.n_envs * self.n_steps, callback=self.callback,
                         reset_num_timesteps=False)
        self._phase = None
        self.stats["env_steps"] += self.n_envs * self.n_steps
        self.stats["phases"][phase.kind] = self.stats["phases"].get(phase.kind, 0) + 1
        self.last_phase = phase
        return True

    def _episode_end(self, env_index: int, episode_return: float, solved: bool) -> None:
        if self._phase is not None:
            self._phase.returns[env_index].append(episode_return)
            self._phase.solved[env_index].append(solved)

    def _rollout_end(self, returns: np.ndarray, values: np.ndarray) -> None:
        """Score the phase's levels from the rollout buffer (per env column) and update or
        admit them."""
        phase, buf = self._phase, self.buffer
        if phase is None or buf is None:
            return
        strategy, secondary = buf.strategy, buf.secondary_strategy
        # group env columns by level: buffer slot, or the env index for new levels
        groups: dict = {}
        for i in range(self.n_envs):
            key = ("slot", phase.slots[i]) if phase.slots is not None else ("env", i)
            groups.setdefault(key, []).append(i)
        for key, cols in groups.items():
            best = max((r for i in cols for r in phase.returns[i]), default=-np.inf)
            if key[0] == "slot":
                g = max(buf.grounded[key[1]], best)
            else:
                g = best
            g_score = g if np.isfinite(g) else 0.0
            s = merge_scores([fragment_score(strategy, returns[:, i], values[:, i], g_score)
                              for i in cols], [returns.shape[0]] * len(cols))
            s2 = None
            if secondary is not None:
                s2 = merge_scores([fragment_score(secondary, returns[:, i], values[:, i],
                                                  g_score) for i in cols],
                                  [returns.shape[0]] * len(cols))
            if key[0] == "slot":
                buf.update_scores(key[1], s, s2, grounded_value=g if np.isfinite(g) else None)
            else:
                i = cols[0]
                ts = phase.timestamps[i] if phase.timestamps else None
                res = buf.admit(phase.levels[i], s, s2, grounded_value=g, timestamp=ts)
                if phase.kind == "generated":
                    self.stats["generated_proposed"] += 1
                    self.stats["generated_admitted"] += res.slot is not None

    def _cycle(self) -> bool:
        """One curriculum cycle (a phase, then for the buffer methods possibly a no-gradient
        phase of generated or edited levels)."""
        m = self.method
        if m == "uniform":
            return self._start_phase(_Phase("plain", True, self._sample_train(self.n_envs)))
        if m == "dr":
            return self._start_phase(_Phase("plain", True, self._new_levels(self.n_envs)))
        self.buffer.set_progress(min(self.grad_updates / self.n_updates_total, 1.0))
        phase = self._replay_phase()
        if not self._start_phase(phase):
            return False
        if phase.kind != "replay":
            return True
        if m == "dred":
            levels = self._generated_levels()
            kind = "generated"
        elif m in ("accel", "accel_d", "el_dred"):
            levels = self._accel_edits(phase)
            kind = "edited"
        else:
            return True
        return self._start_phase(_Phase(kind, False, levels, None,
                                        [self.buffer.observe_new() for _ in levels]))

    def easy_order(self, phase: _Phase) -> np.ndarray:
        """Env indices of ``phase`` (a replay phase) ordered by ``easy_rule``: the
        ``easiness = mean episode return - level score`` ascending (``"lowest"``, the authors'
        code) or descending (``"highest"``); ties keep the env order."""
        easiness = []
        for i, slot in enumerate(phase.slots):
            mean_ret = float(np.mean(phase.returns[i])) if phase.returns[i] else 0.0
            easiness.append(mean_ret - self.buffer.scores[slot])
        key = np.asarray(easiness) if self.easy_rule == "lowest" else -np.asarray(easiness)
        return np.argsort(key, kind="stable")

    def _accel_edits(self, phase: _Phase) -> list:
        """ACCEL: ``n_edits`` random edits of 4 'easy' replayed levels (:meth:`easy_order`),
        repeated to fill the envs (arXiv:2402.03479 App. B, EL-DRED / ACCEL editing)."""
        from robustrl.envs.cave_levels import edit_level

        order = self.easy_order(phase)[: min(4, self.n_envs)]
        bases = [phase.levels[i] for i in order]
        return [edit_level(bases[k % len(bases)], self.rng, n_edits=self.n_edits)
                for k in range(self.n_envs)]

    # ------------------------------------------------------------------ public API
    def learn(self, total_timesteps: int | None = None, *, total_updates: int | None = None,
              callback=None, progress_bar: bool = False,
              checkpoint_dir: str | os.PathLike | None = None,
              checkpoint_every: int | None = None,
              resume_from: str | os.PathLike | None = None) -> LevelReplayPPO:
        """Train until a budget of **student gradient updates** (PPO updates) is reached.

        The unit is the PPO update: give ``total_updates``, or ``total_timesteps`` (SB3's
        argument), the env steps *of gradient phases*, which is converted to
        ``ceil(total_timesteps / (n_envs * n_steps))`` updates (no-gradient phases -- scoring
        of new, generated or edited levels -- add env steps beyond it, counted in
        ``stats["env_steps"]``). The budget is the total since construction, so a resumed run
        is given the same number as the uninterrupted one.

        ``callback``: an SB3 ``BaseCallback`` (``CheckpointCallback``, ``EvalCallback``,
        ``CallbackList``, a list, or a deprecated plain callable), initialised with this agent
        as its model and called in SB3's order: ``on_training_start`` once, per curriculum
        cycle ``on_rollout_start`` / ``on_rollout_end``, and ``on_step`` **once per PPO
        update** (the unit of the budget, docs/agent-contract.md), between cycles, so a
        ``CheckpointCallback`` saves a resumable state; ``self.locals`` holds this method's
        variables (``self`` is the agent). If ``on_step`` returns False, training stops there.

        Checkpoints: with ``checkpoint_dir``, the full training state (:meth:`save`) is
        written atomically to ``checkpoint_dir/checkpoint.pt`` every ``checkpoint_every``
        updates (default: only at the end), at a cycle boundary; if that file exists when
        ``learn`` starts, training resumes from it. ``resume_from`` names a checkpoint to
        resume from explicitly. A resumed run continues bit-for-bit as the uninterrupted run.
        An agent loaded without its env (:meth:`load`) rebuilds it here.
        """
        if (total_timesteps is None) == (total_updates is None):
            raise ValueError("give exactly one of total_timesteps and total_updates; got "
                             f"{total_timesteps!r} and {total_updates!r}")
        if total_updates is None:
            steps = check_int(total_timesteps, "total_timesteps", low=1)
            total_updates = -(-steps // (self.n_envs * self.n_steps))
        total_updates = check_int(total_updates, "total_updates", low=1)
        every = None if checkpoint_every is None else check_int(checkpoint_every,
                                                                "checkpoint_every", low=1)
        if every is not None and checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir")
        from robustrl.agents.base import Training

        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
        self._attach_env()
        if resume_from is not None:
            self.restore(resume_from)
            self.resumed_at = self.grad_updates
        elif ckpt is not None and ckpt.exists():
            self.restore(ckpt)
            self.resumed_at = self.grad_updates
        self.n_updates_total = total_updates
        self._last_checkpoint = self.grad_updates
        start = time.perf_counter()
        training = Training(self, callback, progress_bar, total_updates, "update",
                            desc=f"{self.method} updates")
        if training.bar is not None:
            training.bar.update(self.grad_updates)
        inner = training.callback
        try:
            training.start(locals())
            while self.grad_updates < total_updates:
                before = self.grad_updates
                if inner is not None:
                    inner.on_rollout_start()
                self._cycle()
                if inner is not None:
                    inner.on_rollout_end()
                if (every is not None and self.grad_updates < total_updates
                        and self.grad_updates - self._last_checkpoint >= every):
                    self.stats["train_seconds"] += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save(ckpt)
                    self._last_checkpoint = self.grad_updates
                if self.grad_updates > before and not training.step(
                        locals(), self.grad_updates - before):
                    break
        finally:
            training.end()
            self.stats["train_seconds"] += time.perf_counter() - start
            self.stats["grad_updates"] = self.grad_updates
        if ckpt is not None:
            self.save(ckpt)
        return self

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3 ``predict`` of the underlying policy (``state``/``episode_start``: LSTM); greedy
        by default, as every robustrl agent."""
        return self.model.predict(obs, state=state, episode_start=episode_start,
                                  deterministic=deterministic)

    def get_env(self):
        """The training VecEnv (SB3's name); None for an agent loaded without one."""
        return getattr(self, "venv", None)

    def evaluate(self, levels, *, deterministic: bool = False, seed: int = 0,
                 batch: int = 64) -> EvalResult:
        """Zero-shot: one episode per level (arXiv:2402.03479 App. B)."""
        return evaluate_levels(self.model, levels, navigation_only=self.navigation_only,
                               deterministic=deterministic, seed=seed, batch=batch)

    def buffer_summary(self) -> dict:
        """Buffer occupancy and replay mass (dataset mass < 1 once generated levels are in)."""
        if self.buffer is None:
            return {}
        b = self.buffer
        return dict(buffer_size=b.size, buffer_generated=b.n_generated,
                    dataset_mass=b.dataset_mass if b.is_dataset.any() else 0.0,
                    kappa=b.kappa, proposed=b.n_proposed, admitted=b.n_admitted)

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {"kind": "LevelReplayPPO", "method": self.method, "size": self.size,
                "navigation_only": self.navigation_only, "n_envs": self.n_envs,
                "n_steps": self.n_steps, "n_edits": self.n_edits,
                "buffer_capacity": self.buffer_capacity, "vec_env": self.vec_env,
                "policy": self.policy, "easy_rule": self.easy_rule, "seed": self.seed,
                "ppo_hyperparameters": dict(self.ppo_hyperparameters),
                "policy_kwargs": {**_POLICY_SHAPE, "features_dim": self.features_dim},
                # written only when not the authors' 1 / 5, so older checkpoints still match
                **({"n_minibatches": self.n_minibatches} if self.n_minibatches != 1 else {}),
                **({"agent_view_size": self.agent_view_size}
                   if self.agent_view_size != 5 else {})}

    def _venv_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        base = self.venv.unwrapped
        if self.vec_env == "batched":
            return base.get_state()
        rngs = [g.bit_generator.state for g in self.venv.get_attr("np_random")]
        return {}, dict(rngs=rngs, seeds=list(base._seeds))

    def _set_venv_state(self, arrays: dict, plain: dict) -> None:
        base = self.venv.unwrapped
        if self.vec_env == "batched":
            base.set_state(arrays, plain)
            return
        for i, state in enumerate(plain["rngs"]):
            rng = np.random.default_rng()
            rng.bit_generator.state = state
            self.venv.set_attr("np_random", rng, indices=[i])
        base._seeds = list(plain["seeds"])

    def state_payload(self) -> dict[str, Any]:
        """The full training state as a payload of tensors and plain values (what
        :meth:`save` writes): policy and optimizer state, the update and step counters, every
        generator (torch, numpy, Python, the trainer's, the buffer's, the generator's, each
        env's), the level buffer, the curriculum statistics, the training levels and, for a
        :class:`~robustrl.agents.dred.generator.LevelGenerator`, the VAE."""
        import torch

        from robustrl.agents.dred.generator import LevelGenerator

        if self._phase is not None:
            raise RuntimeError("save() cannot run inside a phase (call it between cycles)")
        model = self.model
        plain: dict[str, Any] = dict(
            rng=self.rng.bit_generator.state, global_rngs=_rng_states(),
            num_timesteps=int(model.num_timesteps), n_updates=int(model._n_updates),
            n_grad_updates=int(model.n_grad_updates), stats=self.stats)
        venv_arrays, plain["venv"] = (self._venv_state() if self.venv is not None
                                      else self._pending_venv_state)
        payload: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "config_json": json.dumps(self._config(), sort_keys=True),
            "train_levels": torch.from_numpy(self.train_levels.copy()),
            "policy": {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()},
            "optimizer": model.policy.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available()
                         else []),
            "venv": _np_to_t(venv_arrays),
        }
        if self.buffer is not None:
            arrays, plain["buffer"] = self.buffer.get_state()
            payload["buffer"] = _np_to_t(arrays)
        if self.generator is not None:
            if not hasattr(self.generator, "get_state"):
                raise ValueError("generator must have get_state() / set_state() to be saved")
            plain["generator"] = self.generator.get_state()
            if isinstance(self.generator, LevelGenerator):
                vae = self.generator.vae
                payload["vae"] = {"config_json": json.dumps(vae.config, sort_keys=True),
                                  "state_dict": {k: v.detach().cpu().clone()
                                                 for k, v in vae.state_dict().items()}}
        payload["state_json"] = json.dumps(plain, sort_keys=True)
        return payload

    def save(self, path: str | os.PathLike) -> Path:
        """Write the full training state (:meth:`state_payload`) atomically, in the safe
        format (``torch.save`` of tensors and plain values read back with
        ``weights_only=True``, JSON for everything else, a SHA-256 checksum); returns the path.
        :meth:`load` rebuilds the agent, :meth:`restore` resumes an existing one,
        :meth:`load_policy` reads only the policy."""
        from robustrl._artifacts import save_torch

        return save_torch(path, self.state_payload())

    @staticmethod
    def _read(path: str | os.PathLike) -> tuple[dict, dict, dict]:
        from robustrl._artifacts import load_torch

        blob = load_torch(path, what="LevelReplayPPO checkpoint", fmt=CHECKPOINT_FORMAT)
        try:
            config = json.loads(blob["config_json"])
            plain = json.loads(blob["state_json"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"path {path} (LevelReplayPPO checkpoint): bad JSON entry: "
                             f"{exc}") from None
        if not isinstance(config, dict) or not isinstance(plain, dict):
            raise ValueError(f"path {path}: 'config_json' and 'state_json' must be JSON objects")
        return blob, config, plain

    def restore(self, path: str | os.PathLike) -> LevelReplayPPO:
        """Continue from the checkpoint ``path`` (written by :meth:`save` from an agent built
        with the same arguments): every state listed in :meth:`state_payload` is restored.
        Raises ``ValueError`` naming the file when it does not match this agent."""
        import torch

        from robustrl._artifacts import load_state_dict_checked

        blob, config, plain = self._read(path)
        mine = json.loads(json.dumps(self._config(), sort_keys=True))
        diff = sorted(k for k in set(mine) | set(config) if mine.get(k) != config.get(k))
        if diff:
            what = ", ".join(f"{k}: {config.get(k)!r} != {mine.get(k)!r}" for k in diff)
            raise ValueError(f"path {path}: the checkpoint was written by an agent with other "
                             f"settings ({what})")
        levels = blob.get("train_levels")
        if (not isinstance(levels, torch.Tensor)
                or not np.array_equal(levels.numpy(), self.train_levels)):
            raise ValueError(f"path {path}: the checkpoint's train_levels differ from this "
                             "agent's")
        if (self.buffer is None) != ("buffer" not in plain) or (
                (self.generator is None) != ("generator" not in plain)):
            raise ValueError(f"path {path}: buffer/generator presence differs from this agent")
        model = self.model
        load_state_dict_checked(model.policy, blob.get("policy"), path, "policy")
        try:
            model.policy.optimizer.load_state_dict(blob["optimizer"])
            torch.set_rng_state(blob["torch_rng"])
            if blob["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(blob["cuda_rng"])
            self.rng.bit_generator.state = plain["rng"]
            _set_rng_states(plain["global_rngs"])
            model.num_timesteps = int(plain["num_timesteps"])
            model._n_updates = int(plain["n_updates"])
            model.n_grad_updates = int(plain["n_grad_updates"])
            self.stats = plain["stats"]
            venv_state = (_t_to_np(blob["venv"], path, "venv"), plain["venv"])
            if self.venv is None:  # loaded without its env: applied when learn rebuilds it
                self._pending_venv_state = venv_state
            else:
                self._set_venv_state(*venv_state)
            if self.buffer is not None:
                self.buffer.set_state(_t_to_np(blob["buffer"], path, "buffer"), plain["buffer"])
            if self.generator is not None:
                self.generator.set_state(plain["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"path {path}: cannot restore the training state: "
                             f"{type(exc).__name__}: {str(exc)[:300]}") from None
        return self

    @classmethod
    def load(cls, path: str | os.PathLike, env=None, device: str = "auto", *,
             generator=None) -> LevelReplayPPO:
        """Rebuild the full agent saved by :meth:`save` (policy, optimizer, buffer, generator,
        every generator state): it predicts at once, and ``learn`` on it continues the saved
        run. ``env`` must be None: the loaded agent holds no env (``get_env()`` is None)
        until ``learn`` rebuilds its Cave Escape VecEnv from the saved settings and state.
        For ``dred`` the generator is rebuilt from the saved VAE (a
        :class:`~robustrl.agents.dred.generator.LevelGenerator`), or pass ``generator``.
        Nothing is unpickled; raises ``ValueError`` naming the file."""
        if env is not None:
            raise ValueError("env must be None: LevelReplayPPO builds its Cave Escape VecEnv "
                             "from the saved settings")
        blob, config, plain = cls._read(path)
        if config.get("kind") != "LevelReplayPPO":
            raise ValueError(f"path {path} is not a LevelReplayPPO checkpoint")
        levels = blob.get("train_levels")
        if generator is None and "generator" in plain:
            generator = _generator_from(blob, plain["generator"], levels.numpy(), path)
        keys = ("n_envs", "n_steps", "n_edits", "buffer_capacity", "navigation_only",
                "vec_env", "policy", "easy_rule", "seed")
        try:
            agent = cls(config["method"], levels.numpy(), generator=generator, device=device,
                        n_minibatches=config.get("n_minibatches", 1),
                        agent_view_size=config.get("agent_view_size", 5),
                        features_dim=_features_dim(config),
                        **{k: config[k] for k in keys}, **config["ppo_hyperparameters"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"path {path}: the saved configuration does not rebuild the "
                             f"agent: {exc}") from None
        agent.restore(path)
        agent._detach_env()
        return agent

    @staticmethod
    def load_policy(path: str | os.PathLike, device: str = "auto"):
        """Load the policy of a file written by :meth:`save` (or a policy-only file of the
        former ``save``) as an SB3 ``PPO`` (or ``RecurrentPPO``) on one environment, for
        :func:`evaluate_levels` and ``predict``.

        The file is never unpickled (an SB3 ``.zip`` from elsewhere is rejected, not run): the
        checksum is checked, the model is rebuilt from the JSON configuration (level size,
        navigation-only flag, PPO hyperparameters, all validated) and the weights are loaded
        with their names and shapes checked and finite. Raises ``ValueError`` naming the file.
        """
        from stable_baselines3.common.vec_env import DummyVecEnv

        from robustrl._artifacts import (
            SB3_POLICY_FORMAT,
            load_sb3_policy_state,
            load_state_dict_checked,
        )

        try:
            blob, config, _ = LevelReplayPPO._read(path)
            state = blob.get("policy")
        except ValueError as exc:  # a policy-only file of the former save()
            if repr(SB3_POLICY_FORMAT) not in str(exc):
                raise
            config, state = load_sb3_policy_state(path, what="LevelReplayPPO policy")
            config = {**config, "policy": "mlp"}  # it held "MultiInputPolicy"
        if (config.get("kind") != "LevelReplayPPO"
                or not isinstance(config.get("policy_kwargs"), dict)
                or set(config["policy_kwargs"]) != set(_POLICY_SHAPE)
                or config["policy_kwargs"]["head_dim"] != _POLICY_SHAPE["head_dim"]
                or config.get("policy") not in POLICIES):
            raise ValueError(f"path {path} is not a LevelReplayPPO policy (config kind "
                             f"{config.get('kind')!r}, policy {config.get('policy')!r})")
        try:
            size = check_int(config.get("size"), "size", low=2)
            nav = config.get("navigation_only")
            if not isinstance(nav, bool):
                raise ValueError(f"navigation_only must be true or false; got {nav!r}")
            n_steps = check_int(config.get("n_steps"), "n_steps", low=2)
            hp = config.get("ppo_hyperparameters")
            if not isinstance(hp, dict) or set(hp) - set(PPO_DEFAULTS):
                raise ValueError(f"ppo_hyperparameters must be a dict with keys among "
                                 f"{sorted(PPO_DEFAULTS)}")
            for key, value in hp.items():
                if key == "n_epochs":
                    check_int(value, key, low=1)
                elif value is not None:
                    check_scalar(value, key, low=0)
            view = check_int(config.get("agent_view_size", 5), "agent_view_size", low=3)
            venv = DummyVecEnv([functools.partial(_make_env, size, nav, view)])
            policy_name, kwargs = _policy_spec(config["policy"], _features_dim(config))
            model = _phase_ppo_class(config["policy"] == "lstm")(
                # one environment, for acting: a batch of one rollout (SB3 warns otherwise)
                policy_name, venv, n_steps=n_steps, batch_size=n_steps, policy_kwargs=kwargs,
                device=device, verbose=0, **hp)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path {path}: the saved configuration does not rebuild the "
                             f"policy: {exc}") from None
        load_state_dict_checked(model.policy, state, path, "policy")
        return model

    def close(self) -> None:
        """Close the training env (if any)."""
        if self.venv is not None:
            self.venv.close()


def _policy_spec(policy: str, features_dim: int) -> tuple[str, dict]:
    """SB3 policy name and ``policy_kwargs`` of ``policy`` (``"mlp"`` or ``"lstm"``) whose
    shared base (the LSTM, or the feed-forward layer) has width ``features_dim``."""
    from robustrl.agents.dred.policy import policy_kwargs

    head = _POLICY_SHAPE["head_dim"]
    if policy == "lstm":
        from robustrl.agents.dred.policy import SharedLstmPolicy, lstm_policy_kwargs

        return SharedLstmPolicy, lstm_policy_kwargs(hidden=features_dim, head_dim=head)
    return "MultiInputPolicy", policy_kwargs(features_dim=features_dim, head_dim=head)


def _features_dim(config: dict) -> int:
    """The saved width of the policy's shared base (256 in files written before it varied)."""
    return check_int(config.get("policy_kwargs", {}).get("features_dim"), "features_dim", low=1)


def _generator_from(blob: dict, state: dict, train_levels: np.ndarray, path):
    """The :class:`~robustrl.agents.dred.generator.LevelGenerator` saved in a checkpoint."""
    from robustrl._artifacts import load_state_dict_checked
    from robustrl.agents.dred.generator import LevelGenerator
    from robustrl.agents.dred.vae import LevelVAE

    vae_blob = blob.get("vae")
    if not isinstance(vae_blob, dict):
        raise ValueError(f"path {path}: the generator's VAE is not in the file; pass "
                         "generator=")
    try:
        cfg = dict(json.loads(vae_blob["config_json"]))
        vae = LevelVAE(cfg.pop("size"), cfg.pop("latent_dim"), **cfg)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"path {path}: the saved VAE configuration does not rebuild a "
                         f"LevelVAE: {exc}") from None
    load_state_dict_checked(vae, vae_blob.get("state_dict"), path, "vae.state_dict")
    vae.eval()
    try:
        gen = LevelGenerator(vae, train_levels, n_pairs=state["n_pairs"],
                             per_pair=state["per_pair"], std_scale=state["std_scale"],
                             sample=state["sample"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"path {path}: bad generator state: {exc}") from None
    return gen


def _action_probs(model, batch_obs: dict, lstm=None) -> np.ndarray:
    """Action probabilities of an SB3 policy with a categorical action distribution. For a
    recurrent policy ``lstm = (states, episode_starts)`` and the states are updated in place:
    ``states`` is a ``[h, c]`` pair of ``(layers, batch, hidden)`` tensors."""
    import torch

    obs_t, _ = model.policy.obs_to_tensor(batch_obs)
    with torch.no_grad():
        if lstm is None:
            dist = model.policy.get_distribution(obs_t)
        else:
            states, starts = lstm
            dev = model.policy.device
            dist, new = model.policy.get_distribution(
                obs_t, (states[0].to(dev), states[1].to(dev)),
                torch.as_tensor(starts, dtype=torch.float32, device=dev))
            states[0], states[1] = new[0].cpu(), new[1].cpu()
    return dist.distribution.probs.cpu().numpy().astype(np.float64)


def evaluate_levels(model, levels, *, navigation_only: bool = False,
                    deterministic: bool = False, seed: int = 0, batch: int = 64) -> EvalResult:
    """One episode of ``model`` (an SB3 actor-critic with a categorical policy, feed-forward or
    recurrent) on each level, run in batches of envs of the same size; returns the solved rate
    and mean undiscounted return (arXiv:2402.03479 App. B). Actions are sampled
    (``deterministic=False``, the default of the authors' DCD-based evaluator, ``eval.py``
    ``--deterministic False``) from the policy with a NumPy generator seeded by ``seed``, or
    the most likely action. The envs use the egocentric view the policy was built for."""
    import torch

    from robustrl.envs.cave_escape import CaveEscapeEnv

    recurrent = hasattr(model.policy, "lstm_hidden_state_shape")
    # the view the policy was built for: image (v, v, 3), or (3, v, v) after VecTransposeImage
    shape = model.observation_space["image"].shape
    view = int(shape[0] if shape[-1] == 3 and shape[0] != 3 else shape[1])

    levels = [np.asarray(lv, dtype=np.int8) for lv in levels]
    if not levels:
        raise ValueError("levels must hold at least one level")
    batch = check_int(batch, "batch", low=1)
    returns = np.zeros(len(levels))
    solved = np.zeros(len(levels), dtype=bool)
    ss = np.random.SeedSequence([check_int(seed, "seed", low=0), 11])
    env_seeds = ss.generate_state(len(levels))
    rng = np.random.default_rng(ss.spawn(1)[0])
    by_size: dict = {}
    for i, lv in enumerate(levels):
        by_size.setdefault(lv.shape[0], []).append(i)
    for size, idx in by_size.items():
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            envs = [CaveEscapeEnv(levels[i], navigation_only=navigation_only,
                                  agent_view_size=view) for i in chunk]
            obs = [env.reset(seed=int(env_seeds[i]))[0] for env, i in zip(envs, chunk,
                                                                        strict=True)]
            active = list(range(len(chunk)))
            lstm = None
            if recurrent:
                layers, _, hidden = model.policy.lstm_hidden_state_shape
                h = torch.zeros(layers, len(chunk), hidden)
                lstm = ([h, h.clone()], np.ones(len(chunk), dtype=np.float32))
            while active:
                batch_obs = {k: np.stack([obs[j][k] for j in active]) for k in obs[0]}
                if lstm is not None:
                    states = [lstm[0][0][:, active], lstm[0][1][:, active]]
                    probs = _action_probs(model, batch_obs, (states, lstm[1][active]))
                    lstm[0][0][:, active], lstm[0][1][:, active] = states[0], states[1]
                    lstm[1][active] = 0.0
                else:
                    probs = _action_probs(model, batch_obs)
                if deterministic:
                    actions = probs.argmax(axis=1)
                else:  # sampled with our own generator: same seed, same numbers on any device
                    u = rng.random((len(active), 1))
                    actions = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1),
                                         probs.shape[1] - 1)
                still = []
                for a, j in zip(actions, active, strict=True):
                    o, r, term, trunc, info = envs[j].step(int(a))
                    returns[chunk[j]] += float(r)
                    obs[j] = o
                    if term or trunc:
                        solved[chunk[j]] = bool(info.get("solved", False))
                    else:
                        still.append(j)
                active = still
            for env in envs:
                env.close()
        del size
    return EvalResult(float(solved.mean()), float(returns.mean()), returns, solved)
