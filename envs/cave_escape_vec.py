"""Batched Cave Escape: ``n`` copies of :class:`~robustrl.envs.cave_escape.CaveEscapeEnv` as one
Stable-Baselines3 ``VecEnv`` whose state lives in arrays (DRED, arXiv:2402.03479).

Every environment's grid, agent position and direction, step counter and observation is a row
of an array, and :meth:`CaveEscapeVecEnv.step_wait` is one Numba call
(:func:`robustrl._kernels.cave_escape.step_batch`) that steps all environments and resets the
finished ones. Observations, rewards, terminations and truncations are bit-identical to
``DummyVecEnv`` over ``CaveEscapeEnv`` with the same levels, options and seeds (tested), so SB3's
``PPO`` uses it unchanged:

* observation ``Dict(image=Box(0, 255, (v, v, 3), uint8), direction=Discrete(4))``, action
  space ``Discrete(7)`` (MiniGrid's set) or ``Discrete(3)`` with ``navigation_only=True``;
* SB3 auto-reset: a finished environment's ``infos[i]`` holds ``terminal_observation``,
  ``TimeLimit.truncated`` (truncated and not terminated), ``solved``, ``level_size``,
  ``episode_return`` (as ``LevelWrapper`` of the DRED trainer) and Monitor's ``episode``
  (``r``, ``l``, ``t``); the other environments get an empty ``dict`` (the reference's
  per-step ``solved``/``level_size`` are not repeated on every step);
* levels: ``levels`` at construction, :meth:`~CaveEscapeVecEnv.set_levels`, the ``set_level``
  ``env_method`` or ``set_options({"level": ...})`` install a level that persists over later
  resets of that environment (as ``CaveEscapeEnv``'s ``options["level"]``); an environment
  without a level draws a fresh domain-randomisation level
  (:func:`~robustrl.envs.cave_levels.random_level`) from its own generator at every reset;
* seeding: :meth:`seed` (SB3's: environment ``i`` gets ``seed + i`` at the next ``reset``) gives
  every environment the generator ``gymnasium`` would give it; the start direction (and a DR
  level) of the next episode is drawn from it as soon as an episode starts, in the order the
  reference draws them;
* ``torch_device``: observations come back as torch tensors on that device, copied from
  pinned host buffers that the kernel writes into when the device is CUDA (one asynchronous
  copy per step). Not for SB3's ``PPO``, which stores numpy observations: for custom loops.

Only see-through walls (the authors' setting) are batched; ``see_through_walls=False`` raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv

from robustrl._kernels import cave_escape as _k
from robustrl.envs.cave_escape import _ENC
from robustrl.envs.cave_levels import (
    START,
    WALL,
    default_max_steps,
    random_level,
    validate_level,
)
from robustrl.validation import check_int

__all__ = ["CaveEscapeVecEnv"]

_ATTRS = ("render_mode", "level", "size", "max_steps", "agent_view_size", "see_through_walls",
          "navigation_only", "step_count", "agent_pos", "agent_dir", "np_random")


class CaveEscapeVecEnv(VecEnv):
    """``n_envs`` Cave Escape environments stepped by one compiled call.

    Args:
        levels: ``None`` (every environment draws a domain-randomisation level at each reset),
            one ``(size, size)`` level for all environments, or ``(n_envs, size, size)`` levels,
            one per environment.
        n_envs: number of environments (default: ``len(levels)`` for 3-D ``levels``, else 1).
        size: interior side when ``levels`` is ``None``.
        max_steps, agent_view_size, see_through_walls, navigation_only: as
            :class:`~robustrl.envs.cave_escape.CaveEscapeEnv` (``see_through_walls`` must be
            True).
        torch_device: return observations as torch tensors on this device (see module doc).
    """

    def __init__(self, levels=None, n_envs: int | None = None, *, size: int = 13,
                 max_steps: int | None = None, agent_view_size: int = 5,
                 see_through_walls: bool = True, navigation_only: bool = False,
                 torch_device: Any = None) -> None:
        if not see_through_walls:
            raise ValueError("see_through_walls must be True for CaveEscapeVecEnv (occluded "
                             "views are only in CaveEscapeEnv); got False")
        init_levels: list[np.ndarray | None]
        if levels is None:
            n = check_int(1 if n_envs is None else n_envs, "n_envs", low=1)
            size = check_int(size, "size", low=2)
            if size * size - 2 < 60:
                raise ValueError("size must be >= 8 when levels is None: domain-randomisation "
                                 "levels (random_level) hold up to 59 blocks; got size "
                                 f"{size}")
            init_levels = [None] * n
        else:
            arr = np.asarray(levels)
            if arr.ndim == 2:
                lv = validate_level(arr, "levels")
                n = check_int(1 if n_envs is None else n_envs, "n_envs", low=1)
                init_levels = [lv] * n
            elif arr.ndim == 3:
                n = len(arr) if n_envs is None else check_int(n_envs, "n_envs", low=1)
                if len(arr) != n or n < 1:
                    raise ValueError(f"levels must hold one level per environment (n_envs={n})"
                                     f"; got {len(arr)} levels")
                init_levels = [validate_level(lv, f"levels[{i}]") for i, lv in enumerate(arr)]
            else:
                raise ValueError("levels must be None, one (size, size) level or an (n_envs, "
                                 f"size, size) array; got shape {arr.shape}")
            size = init_levels[0].shape[0]
        if max_steps is None:
            max_steps = default_max_steps(size)
        self.max_steps = check_int(max_steps, "max_steps", low=1)
        v = check_int(agent_view_size, "agent_view_size", low=3)
        if v % 2 == 0:
            raise ValueError(f"agent_view_size must be odd and >= 3; got {v}")
        self.size = size
        self.agent_view_size = v
        self.see_through_walls = True
        self.navigation_only = bool(navigation_only)
        self.render_mode = None
        self.n_envs = self.num_envs = n
        side = size + 2 + 2 * v
        self._cells = np.full((n, side, side), WALL, dtype=np.int8)
        self._pos = np.zeros((n, 2), dtype=np.int64)
        self._dirs = np.zeros(n, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._returns = np.zeros(n, dtype=np.float64)
        self._next_levels = np.zeros((n, size, size), dtype=np.int8)
        self._next_start = np.zeros((n, 2), dtype=np.int64)
        self._next_dir = np.zeros(n, dtype=np.int64)
        self._dirty = np.zeros(n, dtype=np.bool_)
        self._fixed = np.zeros(n, dtype=np.bool_)  # a level was assigned (else DR)
        self._pending = np.zeros(n, dtype=np.bool_)  # next episode's draws are made
        self._snapshot: list[dict | None] = [None] * n  # generator state before a DR draw
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._rewards = np.zeros(n, dtype=np.float32)
        self._terminated = np.zeros(n, dtype=np.bool_)
        self._truncated = np.zeros(n, dtype=np.bool_)
        self._term_image = np.zeros((n, v, v, 3), dtype=np.uint8)
        self._term_dir = np.zeros(n, dtype=np.int64)
        self._term_return = np.zeros(n, dtype=np.float64)
        self._term_length = np.zeros(n, dtype=np.int64)
        self._actions: np.ndarray | None = None
        self._started = False
        self._t_start = time.time()
        self._torch = None
        self._copy_event = None
        if torch_device is None:
            self._image = np.zeros((n, v, v, 3), dtype=np.uint8)
            self._direction = np.zeros(n, dtype=np.int64)
        else:
            import torch

            dev = torch.device(torch_device)
            pin = dev.type == "cuda"
            self._torch = (torch, dev, torch.zeros((n, v, v, 3), dtype=torch.uint8,
                                                   pin_memory=pin),
                           torch.zeros(n, dtype=torch.int64, pin_memory=pin))
            self._image = self._torch[2].numpy()
            self._direction = self._torch[3].numpy()
        for i, lv in enumerate(init_levels):
            if lv is not None:
                self._fixed[i] = True
                self._stage(i, lv)
        obs_space = spaces.Dict({
            "image": spaces.Box(low=0, high=255, shape=(v, v, 3), dtype="uint8"),
            "direction": spaces.Discrete(4),
        })
        super().__init__(n, obs_space, spaces.Discrete(3 if self.navigation_only else 7))

    # ------------------------------------------------------------------ levels and draws

    def _stage(self, i: int, level: np.ndarray) -> None:
        """Make ``level`` environment ``i``'s level from its next reset on."""
        self._next_levels[i] = level
        r, c = np.argwhere(level == START)[0]
        self._next_start[i] = (c + 1, r + 1)
        self._dirty[i] = True

    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i] = seeding.np_random(None)[0]
        return self._rngs[i]

    def _prepare(self, i: int) -> None:
        """Draw environment ``i``'s next episode (DR level, start direction) in the reference's
        order (``CaveEscapeEnv._gen_grid``)."""
        rng = self._rng(i)
        if not self._fixed[i]:
            self._snapshot[i] = rng.bit_generator.state
            self._stage(i, random_level(rng, self.size))
        self._next_dir[i] = rng.integers(0, 4)
        self._pending[i] = True

    def _assign(self, i: int, level: np.ndarray) -> None:
        if not self._fixed[i] and self._pending[i]:
            # the pending DR level was drawn before the reference would draw anything:
            # rewind the generator and draw only the direction
            self._rngs[i].bit_generator.state = self._snapshot[i]
            self._next_dir[i] = self._rngs[i].integers(0, 4)
        self._fixed[i] = True
        self._snapshot[i] = None
        self._stage(i, level)

    def _check_level(self, level, name: str) -> np.ndarray:
        lv = validate_level(level, name)
        if lv.shape[0] != self.size:
            raise ValueError(f"{name} must be {self.size}x{self.size} like this env's levels; "
                             f"got shape {lv.shape}")
        return lv

    def set_levels(self, env_indices: Iterable[int] | int | None, levels) -> None:
        """Install ``levels`` (one per index, or one level for all) in the environments
        ``env_indices`` (None: all) from their next reset on; the running episodes keep their
        level. The levels persist over later resets."""
        idx = list(self._get_indices(env_indices))
        for i in idx:
            if not 0 <= i < self.num_envs:
                raise ValueError(f"env_indices must lie in [0, {self.num_envs - 1}]; got {i}")
        arr = np.asarray(levels)
        if arr.ndim == 2:
            lvs = [self._check_level(arr, "levels")] * len(idx)
        elif arr.ndim == 3 and len(arr) == len(idx):
            lvs = [self._check_level(lv, f"levels[{t}]") for t, lv in enumerate(arr)]
        else:
            raise ValueError(f"levels must be one (size, size) level or {len(idx)} levels (one "
                             f"per index); got shape {arr.shape}")
        for i, lv in zip(idx, lvs, strict=True):
            self._assign(i, lv)

    # ------------------------------------------------------------------ VecEnv API

    def reset(self) -> dict[str, Any]:
        """Reset every environment (with the seeds of :meth:`seed` and the options of
        ``set_options``, used once) and return the first observations."""
        self._sync()
        for i in range(self.num_envs):
            opts = self._options[i] or {}
            seed = self._seeds[i]
            if seed is not None:
                self._rngs[i] = seeding.np_random(seed)[0]
                self._pending[i] = False
            if opts.get("level") is not None:
                self._assign(i, self._check_level(opts["level"], 'options["level"]'))
            if not self._pending[i]:
                self._prepare(i)
        _k.reset_batch(np.arange(self.num_envs), self._cells, self._pos, self._dirs,
                       self._steps, self._returns, self._next_levels, self._next_start,
                       self._next_dir, self._dirty, _ENC, self._image, self._direction)
        self._pending[:] = False
        for i in range(self.num_envs):
            self._prepare(i)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{"solved": False, "level_size": self.size}
                            for _ in range(self.num_envs)]
        self._started = True
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        """Store one action per environment (integers in ``[0, n_actions - 1]``)."""
        a = np.asarray(actions)
        if a.size != self.num_envs or not (np.issubdtype(a.dtype, np.integer)
                                           or np.all(np.mod(a, 1) == 0)):
            raise ValueError(f"actions must be {self.num_envs} integers (one per environment); "
                             f"got shape {a.shape}, dtype {a.dtype}")
        a = a.reshape(self.num_envs).astype(np.int64)
        n_act = int(self.action_space.n)
        if a.size and (a.min() < 0 or a.max() >= n_act):
            raise ValueError(f"actions must lie in [0, {n_act - 1}]; got values in "
                             f"[{a.min()}, {a.max()}]")
        self._actions = a

    def step_wait(self) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[dict]]:
        """Step every environment (one compiled call) and auto-reset the finished ones;
        ``(observations, rewards float32, dones, infos)`` as SB3's ``DummyVecEnv``."""
        if not self._started:
            raise RuntimeError("CaveEscapeVecEnv.reset() must be called before step()")
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        self._sync()
        n_done = _k.step_batch(
            self._actions, self._cells, self._pos, self._dirs, self._steps, self._returns,
            self._next_levels, self._next_start, self._next_dir, self._dirty, self.max_steps,
            _ENC, self._rewards, self._terminated, self._truncated, self._image,
            self._direction, self._term_image, self._term_dir, self._term_return,
            self._term_length)
        self._actions = None
        dones = self._terminated | self._truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if n_done:
            now = round(time.time() - self._t_start, 6)
            for i in np.flatnonzero(dones).tolist():
                term = bool(self._terminated[i])
                ret = float(self._term_return[i])
                infos[i] = {
                    "TimeLimit.truncated": bool(self._truncated[i]) and not term,
                    "terminal_observation": {"image": self._term_image[i].copy(),
                                             "direction": int(self._term_dir[i])},
                    "solved": term and ret > 0,
                    "level_size": self.size,
                    "episode_return": ret,
                    "episode": {"r": round(ret, 6), "l": int(self._term_length[i]), "t": now},
                }
                self.reset_infos[i] = {"solved": False, "level_size": self.size}
                self._pending[i] = False
                self._prepare(i)
        return self._obs(), self._rewards.copy(), dones, infos

    def _sync(self) -> None:
        """Wait for the last asynchronous copy out of the pinned buffers before rewriting them."""
        if self._copy_event is not None:
            self._copy_event.synchronize()
            self._copy_event = None

    def _obs(self) -> dict[str, Any]:
        if self._torch is None:
            return {"image": self._image.copy(), "direction": self._direction.copy()}
        torch, dev, image, direction = self._torch
        if dev.type == "cpu":
            return {"image": image.clone(), "direction": direction.clone()}
        out = {"image": image.to(dev, non_blocking=True),
               "direction": direction.to(dev, non_blocking=True)}
        if dev.type == "cuda":
            self._copy_event = torch.cuda.Event()
            self._copy_event.record()
        return out

    def close(self) -> None:
        """Nothing to release (no subprocesses); waits for a pending device copy."""
        self._sync()

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("CaveEscapeVecEnv does not render; render a CaveEscapeEnv "
                                  "with the same level (get_attr('level'))")

    def _level_of(self, i: int) -> np.ndarray:
        v, s = self.agent_view_size, self.size
        return self._cells[i, v + 1:v + 1 + s, v + 1:v + 1 + s].T.copy()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """Per-environment attributes of the reference env: ``level`` (the running episode's),
        ``step_count``, ``agent_pos``, ``agent_dir``, ``np_random`` and the settings."""
        if attr_name not in _ATTRS:
            raise AttributeError(f"CaveEscapeVecEnv has no per-environment attribute "
                                 f"{attr_name!r}; available: {', '.join(_ATTRS)}")
        out = []
        for i in self._get_indices(indices):
            if attr_name == "level":
                out.append(self._level_of(i))
            elif attr_name == "step_count":
                out.append(int(self._steps[i]))
            elif attr_name == "agent_pos":
                out.append((int(self._pos[i, 0]), int(self._pos[i, 1])))
            elif attr_name == "agent_dir":
                out.append(int(self._dirs[i]))
            elif attr_name == "np_random":
                out.append(self._rng(i))
            else:
                out.append(getattr(self, attr_name))
        return out

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        """Only ``level`` can be set (as :meth:`set_levels`, from the next reset on)."""
        if attr_name != "level":
            raise AttributeError(f"CaveEscapeVecEnv can only set 'level' per environment (its "
                                 f"state lives in arrays); got {attr_name!r}")
        self.set_levels(indices, value)

    def env_method(self, method_name: str, *method_args, indices=None,
                   **method_kwargs) -> list[None]:
        """Supports ``set_level(level)`` (the DRED trainer's ``LevelWrapper`` method)."""
        if method_name != "set_level":
            raise AttributeError(f"CaveEscapeVecEnv supports only env_method('set_level', "
                                 f"level); got {method_name!r}")
        level = method_args[0] if method_args else method_kwargs.get("level")
        idx = list(self._get_indices(indices))
        self.set_levels(idx, level)
        return [None] * len(idx)

    _STATE_ARRAYS = ("_cells", "_pos", "_dirs", "_steps", "_returns", "_next_levels",
                     "_next_start", "_next_dir", "_dirty", "_fixed", "_pending", "_image",
                     "_direction")

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Every environment's state for a checkpoint, as ``(arrays, plain)``: the grids,
        agents, staged next episodes and observations (NumPy arrays) and each environment's
        generator state (JSON-able). :meth:`set_state` on an env of the same shape restores it,
        so that the next steps and resets draw the same numbers."""
        self._sync()
        arrays = {name.lstrip("_"): np.array(getattr(self, name)) for name in self._STATE_ARRAYS}
        plain = dict(rngs=[None if r is None else r.bit_generator.state for r in self._rngs],
                     snapshots=list(self._snapshot), started=bool(self._started),
                     seeds=list(self._seeds))
        return arrays, plain

    def set_state(self, arrays: dict[str, np.ndarray], plain: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot (raises ``ValueError`` naming an array whose
        shape differs from this env's)."""
        self._sync()
        for name in self._STATE_ARRAYS:
            mine = getattr(self, name)
            arr = np.asarray(arrays[name.lstrip("_")])
            if arr.shape != mine.shape:
                raise ValueError(f"CaveEscapeVecEnv state: array {name.lstrip('_')!r} must have "
                                 f"shape {mine.shape}; got {arr.shape}")
            mine[...] = arr  # in place: the image/direction may be pinned torch memory
        rngs = plain["rngs"]
        if len(rngs) != self.num_envs:
            raise ValueError(f"CaveEscapeVecEnv state: 'rngs' must hold {self.num_envs} "
                             f"states; got {len(rngs)}")
        self._rngs = []
        for state in rngs:
            if state is None:
                self._rngs.append(None)
            else:
                rng = seeding.np_random(0)[0]
                rng.bit_generator.state = state
                self._rngs.append(rng)
        self._snapshot = list(plain["snapshots"])
        self._started = bool(plain["started"])
        self._seeds = list(plain["seeds"])

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        """Always False: there are no gymnasium wrappers inside."""
        return [False] * len(list(self._get_indices(indices)))
