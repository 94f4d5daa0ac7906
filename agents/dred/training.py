"""DRED and its baselines on Cave Escape with stable-baselines3 PPO (reference note B.4-B.7).

:class:`LevelReplayPPO` trains SB3's :class:`~stable_baselines3.PPO` (not a hand-written PPO) on
a level curriculum chosen by name:

========== ============================================================================
method     levels each cycle (note B.5/B.6)
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
========== ============================================================================

Mechanics (the authors' DCD runner, in SB3 terms):

* A *phase* = one SB3 rollout of ``n_steps`` per env. At its start each env is assigned one
  level (:class:`LevelWrapper` re-installs it at every reset, so the env replays the same level
  until the phase ends, like DCD's ``reset_agent``) and every env is reset, so no episode spans
  two phases (DCD's ``reset_to_level_batch``; the cut episode is bootstrapped from V).
* A phase is run by ``PPO.learn(n_envs * n_steps, reset_num_timesteps=False)``: one rollout and
  one PPO update; :class:`_PhasePPO` skips the update in no-gradient phases (new/generated
  levels of robust PLR, ACCEL, DRED and unseen-level visits of PLR/DRED).
* :class:`LevelScoreCallback` records each finished episode's undiscounted return and solved
  flag (``_on_step``), and at ``_on_rollout_end`` reads ``rollout_buffer.returns`` and
  ``.values`` (GAE returns and value predictions, computed by SB3 before the callback) per env:
  the per-env mean of ``|R - V|`` (or ``max(R - V, 0)``) is the score of that env's level
  (all its fragments, step-weighted), merged step-weighted over envs sharing a level.
* The budget is counted in **student gradient updates** (``learn(total_updates)``), so methods
  are compared at equal numbers of PPO updates (note B.9.8); env steps, including those of
  no-gradient phases, are reported as ``env_steps``.

Deviations: the policy is feed-forward (:mod:`robustrl.agents.dred.policy`; sb3-contrib's
RecurrentPPO is not a dependency); SB3 PPO normalises advantages per minibatch (the authors' PPO
does too); new scores replace old ones (alpha = 1), as the authors' configs.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robustrl._artifacts import load_sb3_policy_state, load_state_dict_checked, save_sb3_policy
from robustrl.agents.dred.level_buffer import LevelBuffer, fragment_score, merge_scores
from robustrl.validation import check_int, check_scalar

__all__ = ["METHODS", "LevelReplayPPO", "LevelScoreCallback", "LevelWrapper", "EvalResult",
           "PPO_DEFAULTS", "buffer_config", "empty_room_level", "evaluate_levels"]

METHODS = ("dred", "dr", "uniform", "plr", "robust_plr", "accel")

#: Note B.5 PPO hyperparameters (shared by all methods); n_envs / n_steps are scaled per run.
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
    """:class:`LevelBuffer` keyword arguments of ``method`` (note B.5/B.6 configs), or None."""
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
    if method == "dred":
        if capacity < n_train:
            raise ValueError(f"buffer_capacity must be >= the {n_train} training levels for "
                             f"dred; got {capacity}")
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


def _make_env(size: int, navigation_only: bool) -> gym.Env:
    from robustrl.envs.cave_escape import CaveEscapeEnv

    return LevelWrapper(CaveEscapeEnv(size=size, navigation_only=navigation_only))


def _phase_ppo_class():
    from stable_baselines3 import PPO

    class _PhasePPO(PPO):
        """SB3 PPO whose update can be skipped for no-gradient phases (PLR-perp)."""

        skip_update = False
        n_grad_updates = 0

        def train(self) -> None:
            if self.skip_update:
                return
            self.n_grad_updates += 1
            super().train()

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


class LevelReplayPPO:
    """SB3 PPO on Cave Escape with a level curriculum ``method`` (see the module docstring).

    Args:
        method: one of :data:`METHODS`.
        train_levels: ``(n, size, size)`` int8 training levels (all methods but ``dr`` and
            ``accel`` sample from them; ``dred`` seeds its buffer with them).
        generator: for ``dred``: an object whose ``generate()`` returns ``(levels, parents)``
            (e.g. :class:`robustrl.agents.dred.generator.LevelGenerator`).
        n_envs, n_steps: parallel envs and rollout length (authors: 36 x 256).
        buffer_capacity: level buffer size for dred / robust_plr / accel (authors: 4000).
        navigation_only: 3 movement actions instead of MiniGrid's 7.
        vec_env: ``"dummy"`` (in-process) or ``"subproc"`` (one process per env).
        device: torch device for SB3 (``"auto"``: cuda when available).
        seed: seeds PPO, the envs, the buffer and the level choices.
        ppo_kwargs: overrides of :data:`PPO_DEFAULTS`.
    """

    def __init__(self, method: str, train_levels, *, generator=None, n_envs: int = 8,
                 n_steps: int = 128, buffer_capacity: int = 4000,
                 navigation_only: bool = False, vec_env: str = "dummy", device: str = "auto",
                 seed: int = 0, n_edits: int = 5, **ppo_kwargs) -> None:
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        from robustrl.agents.dred.policy import policy_kwargs
        from robustrl.envs.cave_levels import validate_level

        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        if vec_env not in ("dummy", "subproc"):
            raise ValueError(f"vec_env must be 'dummy' or 'subproc'; got {vec_env!r}")
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
        self.navigation_only = bool(navigation_only)
        self.seed = check_int(seed, "seed", low=0)
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        cfg = buffer_config(method, len(train), check_int(buffer_capacity, "buffer_capacity",
                                                          low=1))
        self.buffer: LevelBuffer | None = None
        if cfg is not None:
            self.buffer = LevelBuffer(**cfg, seed=int(self.rng.integers(2**31)))
            if method in ("plr", "dred"):
                self.buffer.add_dataset_levels(list(self.train_levels))
        self.no_exploratory_grad_updates = method in ("plr", "robust_plr", "accel", "dred")

        hp = dict(PPO_DEFAULTS)
        hp.update(ppo_kwargs)
        for key in ("learning_rate", "gamma", "gae_lambda", "clip_range", "vf_coef",
                    "max_grad_norm", "ent_coef"):
            check_scalar(hp[key], key, low=0)
        self.ppo_hyperparameters = hp
        self.venv = make_vec_env(
            functools.partial(_make_env, self.size, self.navigation_only), n_envs=self.n_envs,
            seed=self.seed, vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv)
        self.model = _phase_ppo_class()(
            "MultiInputPolicy", self.venv, n_steps=self.n_steps,
            batch_size=self.n_envs * self.n_steps,
            policy_kwargs=policy_kwargs(**_POLICY_SHAPE),
            device=device, seed=self.seed, verbose=0, **hp)
        self.venv = self.model.get_env()  # SB3 may have wrapped it (VecTransposeImage)
        self.callback = LevelScoreCallback(self)
        self._phase: _Phase | None = None
        self.last_phase: _Phase | None = None  # the latest phase (levels, slots, returns)
        self.n_updates_total = 1
        self.stats: dict[str, Any] = dict(env_steps=0, grad_updates=0, phases={},
                                          generated_proposed=0, generated_admitted=0,
                                          train_seconds=0.0)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> str:
        return str(self.model.device)

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
        return [random_level(self.rng, self.size) for _ in range(k)]

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
        if self.method in ("plr", "dred"):  # visit unseen dataset levels, no gradient
            slots = []
            for _ in range(self.n_envs):
                s = buf.sample_unseen()
                if s is None:  # ran out mid-batch: any visited level (the authors' fallback)
                    s = int(self.rng.choice(np.flatnonzero(buf.occupied & buf.visited)))
                slots.append(s)
            return _Phase("unseen", False, [buf.levels[s] for s in slots], slots)
        levels = self._new_levels(self.n_envs)
        return _Phase("new", False, levels, None, [buf.observe_new() for _ in levels])

    def _start_phase(self, phase: _Phase) -> None:
        phase.returns = [[] for _ in range(self.n_envs)]
        phase.solved = [[] for _ in range(self.n_envs)]
        for i, level in enumerate(phase.levels):
            self.venv.env_method("set_level", level, indices=[i])
        self.model._last_obs = self.venv.reset()
        self.model._last_episode_starts = np.ones(self.n_envs, dtype=bool)
        self.model.skip_update = not phase.grad
        self._phase = phase
        self.model.learn(self.n_envs * self.n_steps, callback=self.callback,
                         reset_num_timesteps=False)
        self.stats["env_steps"] += self.n_envs * self.n_steps
        self.stats["phases"][phase.kind] = self.stats["phases"].get(phase.kind, 0) + 1
        self._phase = None
        self.last_phase = phase

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

    def _cycle(self) -> None:
        m = self.method
        if m == "uniform":
            self._start_phase(_Phase("plain", True, self._sample_train(self.n_envs)))
            return
        if m == "dr":
            self._start_phase(_Phase("plain", True, self._new_levels(self.n_envs)))
            return
        self.buffer.set_progress(min(self.grad_updates / self.n_updates_total, 1.0))
        phase = self._replay_phase()
        self._start_phase(phase)
        if phase.kind != "replay":
            return
        if m == "dred":
            levels = self._generated_levels()
            self._start_phase(_Phase("generated", False, levels, None,
                                     [self.buffer.observe_new() for _ in levels]))
        elif m == "accel":
            levels = self._accel_edits(phase)
            self._start_phase(_Phase("edited", False, levels, None,
                                     [self.buffer.observe_new() for _ in levels]))

    def _accel_edits(self, phase: _Phase) -> list:
        """ACCEL: 5 random edits of the 4 'easy' replayed levels (highest mean return minus
        score), repeated to fill the envs (note B.5, EL-DRED / ACCEL editing)."""
        from robustrl.envs.cave_levels import edit_level

        easiness = []
        for i, slot in enumerate(phase.slots):
            mean_ret = float(np.mean(phase.returns[i])) if phase.returns[i] else 0.0
            easiness.append(mean_ret - self.buffer.scores[slot])
        order = np.argsort(-np.asarray(easiness), kind="stable")[: min(4, self.n_envs)]
        bases = [phase.levels[i] for i in order]
        return [edit_level(bases[k % len(bases)], self.rng, n_edits=self.n_edits)
                for k in range(self.n_envs)]

    # ------------------------------------------------------------------ public API
    def learn(self, total_updates: int, progress_bar: bool = False) -> LevelReplayPPO:
        """Train until ``total_updates`` PPO (student gradient) updates have been made."""
        total_updates = check_int(total_updates, "total_updates", low=1)
        self.n_updates_total = total_updates
        start = time.perf_counter()
        bar = None
        if progress_bar:
            from robustrl.runner import progress

            bar = progress(total=total_updates, desc=f"{self.method} updates", leave=False)
        while self.grad_updates < total_updates:
            before = self.grad_updates
            self._cycle()
            if bar is not None:
                bar.update(self.grad_updates - before)
        if bar is not None:
            bar.close()
        self.stats["train_seconds"] += time.perf_counter() - start
        self.stats["grad_updates"] = self.grad_updates
        return self

    def predict(self, observation, deterministic: bool = False):
        """SB3 ``predict`` of the underlying PPO policy."""
        return self.model.predict(observation, deterministic=deterministic)

    def evaluate(self, levels, *, deterministic: bool = False, seed: int = 0,
                 batch: int = 64) -> EvalResult:
        """Zero-shot: one episode per level (note B.7)."""
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

    def save(self, path: str | os.PathLike) -> Path:
        """Save the PPO policy (its ``state_dict``, no pickled objects) and the JSON
        configuration that rebuilds it, atomically and with a SHA-256 checksum; returns the
        path. The level buffer and curriculum state are not saved (training cannot be
        resumed from it); load with :meth:`load_policy`."""
        config = {"kind": "LevelReplayPPO", "algo": "ppo", "policy": "MultiInputPolicy",
                  "method": self.method, "size": self.size,
                  "navigation_only": self.navigation_only, "n_steps": self.n_steps,
                  "batch_size": self.n_envs * self.n_steps,
                  "ppo_hyperparameters": dict(self.ppo_hyperparameters),
                  "policy_kwargs": _POLICY_SHAPE}
        return save_sb3_policy(path, self.model, config)

    @staticmethod
    def load_policy(path: str | os.PathLike, device: str = "auto"):
        """Load a policy written by :meth:`save` as an SB3 ``PPO`` (for
        :func:`evaluate_levels` and ``predict``).

        The file is never unpickled (an SB3 ``.zip`` from elsewhere is rejected, not run): the
        checksum is checked, the PPO is rebuilt from the JSON configuration (level size,
        navigation-only flag, PPO hyperparameters, all validated) and the weights are loaded
        with their names and shapes checked and finite. Raises ``ValueError`` naming the file.
        """
        from stable_baselines3.common.vec_env import DummyVecEnv

        from robustrl.agents.dred.policy import policy_kwargs

        config, state = load_sb3_policy_state(path, what="LevelReplayPPO policy")
        if (config.get("kind") != "LevelReplayPPO"
                or config.get("policy_kwargs") != _POLICY_SHAPE):
            raise ValueError(f"path {path} is not a LevelReplayPPO policy (config kind "
                             f"{config.get('kind')!r}, policy {config.get('policy_kwargs')!r})")
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
            venv = DummyVecEnv([functools.partial(_make_env, size, nav)])
            model = _phase_ppo_class()(
                # one environment, for acting: a batch of one rollout (SB3 warns otherwise)
                "MultiInputPolicy", venv, n_steps=n_steps, batch_size=n_steps,
                policy_kwargs=policy_kwargs(**_POLICY_SHAPE), device=device, verbose=0, **hp)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path {path}: the saved configuration does not rebuild the "
                             f"policy: {exc}") from None
        load_state_dict_checked(model.policy, state, path, "state_dict")
        return model

    def close(self) -> None:
        self.venv.close()


def _action_probs(model, batch_obs: dict) -> np.ndarray:
    """Action probabilities of an SB3 policy with a categorical action distribution."""
    import torch

    obs_t, _ = model.policy.obs_to_tensor(batch_obs)
    with torch.no_grad():
        dist = model.policy.get_distribution(obs_t)
    return dist.distribution.probs.cpu().numpy().astype(np.float64)


def evaluate_levels(model, levels, *, navigation_only: bool = False,
                    deterministic: bool = False, seed: int = 0, batch: int = 64) -> EvalResult:
    """One episode of ``model`` (an SB3 actor-critic with a categorical policy) on each level,
    run in batches of envs of the same size; returns the solved rate and mean undiscounted
    return (note B.7). Actions are sampled (``deterministic=False``) from the policy with a
    NumPy generator seeded by ``seed``, or the most likely action."""
    from robustrl.envs.cave_escape import CaveEscapeEnv

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
            envs = [CaveEscapeEnv(levels[i], navigation_only=navigation_only) for i in chunk]
            obs = [env.reset(seed=int(env_seeds[i]))[0] for env, i in zip(envs, chunk,
                                                                        strict=True)]
            active = list(range(len(chunk)))
            while active:
                batch_obs = {k: np.stack([obs[j][k] for j in active]) for k in obs[0]}
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
