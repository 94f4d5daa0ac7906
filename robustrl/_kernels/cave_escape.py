"""Batched Cave Escape dynamics (the level space of DRED, arXiv:2402.03479, on MiniGrid).

MiniGrid's ``step`` and egocentric ``gen_obs`` (see-through walls) for ``n`` environments
at once, used by :class:`robustrl.envs.cave_escape_vec.CaveEscapeVecEnv`. State layout:

* ``cells (n, P, P) int8``: cell codes of :mod:`robustrl.envs.cave_levels` in MiniGrid's
  ``(x, y)`` order, the level's interior at ``[v + 1 + c, v + 1 + r]`` for ``level[r, c]``,
  the wall border and ``v`` (view size) further wall cells of padding on every side, so that a
  view never leaves the array (``P = size + 2 + 2 v``);
* ``pos (n, 2) int64`` agent ``(x, y)`` in grid coordinates, ``dirs (n,) int64`` in
  ``0..3`` (right, down, left, up), ``steps (n,) int64`` the step counter,
  ``returns (n,) float64`` the episode's undiscounted return so far;
* the pending reset of every environment: ``next_levels (n, size, size)`` (installed into
  ``cells`` only when ``dirty``), ``next_start (n, 2)`` and ``next_dir (n,)``, drawn before
  the episode ends so that a step with automatic resets is one compiled call.

``enc (6, 3) uint8`` maps a cell code to MiniGrid's ``(type, colour, state)`` encoding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# cell codes (robustrl.envs.cave_levels) and MiniGrid's action numbers
EMPTY, WALL, LAVA, GOAL = 0, 1, 2, 5
LEFT, RIGHT, FORWARD = 0, 1, 2
DIR_DX = np.array([1, 0, -1, 0], dtype=np.int64)
DIR_DY = np.array([0, 1, 0, -1], dtype=np.int64)
TURN = np.array([3, 1, 0, 0, 0, 0, 0], dtype=np.int64)  # direction change of each action


@njit(cache=True)
def observe(cells, x, y, d, enc, image):
    """In place: ``image (v, v, 3)``, the egocentric view of an agent at ``(x, y)`` facing
    ``d`` (MiniGrid ``get_view_exts`` + ``Grid.slice`` + ``rotate_left`` ``d + 1`` times +
    ``encode``, the agent's own cell shown empty).

    ``image[i, j]`` shows ``cells[cx0 + i cxi + j cxj, cy0 + i cyi + j cyj]``: the view's
    top-left corner and the rotation folded into one origin and two strides per direction.
    """
    v = image.shape[0]
    half = v // 2
    px = x + v
    py = y + v
    if d == 0:
        cx0, cxi, cxj, cy0, cyi, cyj = px + v - 1, 0, -1, py - half, 1, 0
    elif d == 1:
        cx0, cxi, cxj, cy0, cyi, cyj = px - half + v - 1, -1, 0, py + v - 1, 0, -1
    elif d == 2:
        cx0, cxi, cxj, cy0, cyi, cyj = px - v + 1, 0, 1, py - half + v - 1, -1, 0
    else:
        cx0, cxi, cxj, cy0, cyi, cyj = px - half, 1, 0, py - v + 1, 0, 1
    for i in range(v):
        cx = cx0 + i * cxi
        cy = cy0 + i * cyi
        for j in range(v):
            code = cells[cx, cy]
            image[i, j, 0] = enc[code, 0]
            image[i, j, 1] = enc[code, 1]
            image[i, j, 2] = enc[code, 2]
            cx += cxj
            cy += cyj
    image[half, v - 1, 0] = enc[EMPTY, 0]
    image[half, v - 1, 1] = enc[EMPTY, 1]
    image[half, v - 1, 2] = enc[EMPTY, 2]


@njit(cache=True)
def install_level(cells, level, v):
    """In place: write ``level (size, size)`` into the interior of ``cells (P, P)``."""
    size = level.shape[0]
    for r in range(size):
        for c in range(size):
            cells[v + 1 + c, v + 1 + r] = level[r, c]


@njit(cache=True)
def move(cells, pos, dirs, steps, i, action, max_steps, v):
    """One MiniGrid step of environment ``i`` in place; returns ``(reward, terminated,
    truncated, changed)`` with MiniGrid's goal reward ``1 - 0.9 * step_count / max_steps``;
    ``changed`` is False when the agent neither turned nor moved (its view is unchanged).

    Left/right turn, forward moves unless a wall is ahead and ends the episode on the goal or
    lava; pickup, drop, toggle and done are no-ops in Cave Escape (nothing to carry or toggle).
    """
    steps[i] += 1
    d = dirs[i]
    dirs[i] = (d + TURN[action]) % 4
    forward = action == FORWARD
    fx = pos[i, 0] + DIR_DX[d]
    fy = pos[i, 1] + DIR_DY[d]
    cell = cells[i, fx + v, fy + v]
    moved = forward and cell != WALL
    if moved:
        pos[i, 0] = fx
        pos[i, 1] = fy
    goal = forward and cell == GOAL
    terminated = goal or (forward and cell == LAVA)
    reward = 1.0 - 0.9 * (steps[i] / max_steps) if goal else 0.0
    return reward, terminated, steps[i] >= max_steps, moved or action < FORWARD


@njit(cache=True)
def reset_env(cells, pos, dirs, steps, returns, next_levels, next_start, next_dir, dirty, i, v):
    """Start environment ``i``'s next episode from its pending level, start and direction."""
    if dirty[i]:
        install_level(cells[i], next_levels[i], v)
        dirty[i] = False
    pos[i, 0] = next_start[i, 0]
    pos[i, 1] = next_start[i, 1]
    dirs[i] = next_dir[i]
    steps[i] = 0
    returns[i] = 0.0


@njit(cache=True)
def reset_batch(indices, cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
                dirty, enc, image, direction):
    """Reset the environments ``indices`` and write their observations."""
    v = image.shape[1]
    for t in range(indices.shape[0]):
        i = indices[t]
        reset_env(cells, pos, dirs, steps, returns, next_levels, next_start, next_dir, dirty,
                  i, v)
        observe(cells[i], pos[i, 0], pos[i, 1], dirs[i], enc, image[i])
        direction[i] = dirs[i]


@njit(cache=True)
def step_batch(actions, cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
               dirty, max_steps, enc, rewards, terminated, truncated, image, direction,
               term_image, term_direction, term_return, term_length):
    """Step every environment with ``actions`` and reset the finished ones (SB3 auto-reset).

    Writes ``rewards`` (float32), ``terminated``/``truncated`` and the observations; for a
    finished environment the last observation goes to ``term_image``/``term_direction``, its
    return and length to ``term_return``/``term_length``, and ``image``/``direction`` hold the
    first observation of the next episode. ``image``/``direction`` must hold the current
    observations on entry (a view that did not change is not rewritten). Returns the number of
    finished environments.
    """
    v = image.shape[1]
    n_done = 0
    for i in range(actions.shape[0]):
        reward, term, trunc, changed = move(cells, pos, dirs, steps, i, actions[i], max_steps,
                                            v)
        rewards[i] = reward
        terminated[i] = term
        truncated[i] = trunc
        returns[i] += reward
        if term or trunc:
            n_done += 1
            observe(cells[i], pos[i, 0], pos[i, 1], dirs[i], enc, term_image[i])
            term_direction[i] = dirs[i]
            term_return[i] = returns[i]
            term_length[i] = steps[i]
            reset_env(cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
                      dirty, i, v)
            changed = True
        if changed:  # otherwise image[i] / direction[i] already hold this view
            observe(cells[i], pos[i, 0], pos[i, 1], dirs[i], enc, image[i])
            direction[i] = dirs[i]
    return n_done
