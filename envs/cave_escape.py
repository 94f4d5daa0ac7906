"""Cave Escape: the DRED level space (arXiv:2402.03479, docs/dred-levels.md) as a Gymnasium MiniGrid
environment.

The level (an ``int8`` array of cell codes, see :mod:`robustrl.envs.cave_levels`) is the
interior of the grid; the environment adds the wall border, so a 13x13 level gives the
reference's 15x15 grid. ``level[r, c]`` sits at MiniGrid position ``(x, y) = (c + 1, r + 1)``.

* WALL -> ``minigrid`` ``Wall``, LAVA -> ``Lava`` (stepping in ends the episode with reward
  0), MOSS -> ``Floor("green")`` (walkable, no reward), GOAL -> ``Goal`` (reward
  ``1 - 0.9 * step_count / max_steps``, MiniGrid's ``_reward``), START -> the agent's start
  cell (empty floor), with a uniformly random start direction drawn from ``np_random``.
* Observation: ``Dict(image=Box(0, 255, (view, view, 3), uint8), direction=Discrete(4))``:
  MiniGrid's egocentric encoding without the (constant) mission string, so that SB3's
  ``MultiInputPolicy`` accepts it. Walls are see-through by default (the authors' setting).
* Actions: by default MiniGrid's full 7-action set (left, right, forward, pickup, drop,
  toggle, done), as the authors' agent acts over the MiniGrid action set; pickup/drop/toggle/
  done are no-ops here (nothing to pick up or toggle) and only cost a step.
  ``navigation_only=True`` keeps the 3 movement actions (faster learning at small budgets;
  then it is no longer the authors' action space).
* ``info["solved"]`` is True from the step on which the goal is reached (so its value at the
  last step of an episode is the episode's outcome); ``info["level_size"]`` is ``n``.

Levels: ``CaveEscapeEnv(level)`` fixes a level; ``reset(options={"level": array})`` installs
a new one (validated, ValueError if invalid) which then persists over later resets. Without
any level (``level=None`` and no option) every reset draws a fresh domain-randomisation level
(:func:`robustrl.envs.cave_levels.random_level`, which may be unsolvable) from ``np_random``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Floor, Goal, Lava, Wall
from minigrid.minigrid_env import MiniGridEnv

from robustrl.envs.cave_levels import (
    EMPTY,
    GOAL,
    LAVA,
    MOSS,
    START,
    WALL,
    default_max_steps,
    random_level,
    validate_level,
)
from robustrl.validation import check_int

__all__ = ["CaveEscapeEnv", "MOSS_COLOR"]

MOSS_COLOR = "green"
_MISSION = "get to the green goal square"

# MiniGrid encodings (type, colour, state) of each cell code, for the fast observation path.
_ENC = np.zeros((6, 3), dtype=np.uint8)
_ENC[EMPTY] = (OBJECT_TO_IDX["empty"], 0, 0)
_ENC[START] = (OBJECT_TO_IDX["empty"], 0, 0)
_ENC[WALL] = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
_ENC[LAVA] = (OBJECT_TO_IDX["lava"], COLOR_TO_IDX["red"], 0)
_ENC[MOSS] = (OBJECT_TO_IDX["floor"], COLOR_TO_IDX[MOSS_COLOR], 0)
_ENC[GOAL] = (OBJECT_TO_IDX["goal"], COLOR_TO_IDX["green"], 0)


class CaveEscapeEnv(MiniGridEnv):
    """Cave Escape level ``level`` (interior ``size`` x ``size``) as a MiniGrid environment.

    ``size`` is taken from ``level`` when one is given; every later level must have that size.
    ``max_steps`` defaults to :func:`~robustrl.envs.cave_levels.default_max_steps` (250 for
    13x13 interiors, 2250 for 43x43).
    """

    def __init__(
        self,
        level: np.ndarray | None = None,
        *,
        size: int = 13,
        max_steps: int | None = None,
        agent_view_size: int = 5,
        see_through_walls: bool = True,
        navigation_only: bool = False,
        render_mode: str | None = None,
    ):
        size = check_int(size, "size", low=2)
        if level is not None:
            level = validate_level(level, "level").copy()
            size = level.shape[0]
        if max_steps is None:
            max_steps = default_max_steps(size)
        max_steps = check_int(max_steps, "max_steps", low=1)
        agent_view_size = check_int(agent_view_size, "agent_view_size", low=3)
        if agent_view_size % 2 == 0:
            raise ValueError(f"agent_view_size must be odd and >= 3; got {agent_view_size}")
        self.size = size
        self._fixed_level = level
        self.level: np.ndarray | None = level
        self.navigation_only = bool(navigation_only)
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: _MISSION),
            grid_size=size + 2,
            max_steps=max_steps,
            see_through_walls=see_through_walls,
            agent_view_size=agent_view_size,
            render_mode=render_mode,
        )
        self.observation_space = spaces.Dict({
            "image": self.observation_space["image"],
            "direction": spaces.Discrete(4),
        })
        if self.navigation_only:
            self.action_space = spaces.Discrete(3)
        self._solved = False
        self._padded_enc: np.ndarray | None = None

    # ------------------------------------------------------------------ level handling

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset; ``options={"level": array}`` installs (and keeps) a new level."""
        if options and options.get("level") is not None:
            lv = validate_level(options["level"], 'options["level"]')
            if lv.shape[0] != self.size:
                raise ValueError(f'options["level"] must be {self.size}x{self.size} like this '
                                 f"env's levels; got shape {lv.shape}")
            self._fixed_level = lv.copy()
        self._solved = False
        obs, info = super().reset(seed=seed)
        info = dict(info, solved=False, level_size=self.size)
        return obs, info

    def _gen_grid(self, width: int, height: int) -> None:
        if self._fixed_level is not None:
            level = self._fixed_level
        else:
            level = random_level(self.np_random, self.size)
        self.level = level
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        objects = {WALL: Wall, LAVA: Lava, GOAL: Goal, MOSS: lambda: Floor(MOSS_COLOR)}
        for code, make in objects.items():
            for r, c in np.argwhere(level == code):
                self.grid.set(int(c) + 1, int(r) + 1, make())
        r, c = np.argwhere(level == START)[0]
        self.agent_pos = (int(c) + 1, int(r) + 1)
        self.agent_dir = int(self._rand_int(0, 4))
        self.mission = _MISSION
        # Full-grid encoding (x, y, 3) padded with walls by the view size, for gen_obs.
        full = np.empty((width, height, 3), dtype=np.uint8)
        full[:] = _ENC[WALL]
        full[1:-1, 1:-1] = _ENC[level.T]
        v = self.agent_view_size
        pad = np.empty((width + 2 * v, height + 2 * v, 3), dtype=np.uint8)
        pad[:] = _ENC[WALL]
        pad[v:v + width, v:v + height] = full
        self._padded_enc = pad

    # ------------------------------------------------------------------ stepping

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if terminated and reward > 0:
            self._solved = True
        info = dict(info, solved=self._solved, level_size=self.size)
        return obs, reward, terminated, truncated, info

    def gen_obs(self) -> dict[str, Any]:
        """MiniGrid's egocentric view without the mission string.

        With see-through walls the view is cut from a cached encoding of the (static) grid:
        same array as MiniGrid's ``Grid.slice``/``rotate_left``/``encode`` path (tested), about
        an order of magnitude faster. Otherwise MiniGrid's own path (occlusion) is used.
        """
        if not self.see_through_walls or self._padded_enc is None:
            obs = super().gen_obs()
            return {"image": obs["image"], "direction": obs["direction"]}
        v = self.agent_view_size
        top_x, top_y, _, _ = self.get_view_exts()
        view = self._padded_enc[top_x + v:top_x + 2 * v, top_y + v:top_y + 2 * v]
        # Grid.rotate_left maps (i, j) -> (j, H-1-i), i.e. np.rot90(k=-1) on the (x, y) axes.
        image = np.rot90(view, k=-(self.agent_dir + 1), axes=(0, 1)).copy()
        image[v // 2, v - 1] = _ENC[EMPTY]  # the agent's own cell (nothing carried)
        return {"image": image, "direction": self.agent_dir}
