"""NumPy twins of :mod:`robustrl._kernels.cave_escape`, vectorised over the environments.

Same arguments and in-place effects as the kernels (arrays as documented there); the view is
taken with ``np.rot90`` on the ``(x, y)`` axes as MiniGrid's ``Grid.rotate_left`` does.
"""

from __future__ import annotations

import numpy as np

_EMPTY, _WALL, _LAVA, _GOAL = 0, 1, 2, 5
_DIR_VEC = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


def _top_left(pos: np.ndarray, dirs: np.ndarray, v: int) -> np.ndarray:
    """MiniGrid ``get_view_exts``: the view's top-left ``(x, y)`` for each environment."""
    half = v // 2
    offset = np.array([[0, -half], [-half, 0], [-v + 1, -half], [-half, -v + 1]],
                      dtype=np.int64)
    return pos + offset[dirs]


def observe(cells: np.ndarray, pos: np.ndarray, dirs: np.ndarray, enc: np.ndarray,
            v: int) -> np.ndarray:
    """Egocentric views ``(n, v, v, 3)`` of all environments."""
    n = len(dirs)
    top = _top_left(pos, dirs, v) + v
    a = np.arange(v)
    xs = top[:, 0, None, None] + a[None, :, None]
    ys = top[:, 1, None, None] + a[None, None, :]
    view = cells[np.arange(n)[:, None, None], xs, ys]  # (n, v, v) codes, axes (x, y)
    out = np.empty((n, v, v, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = enc[np.rot90(view[i], k=-(int(dirs[i]) + 1))]
    out[:, v // 2, v - 1] = enc[_EMPTY]
    return out


def install_level(cells: np.ndarray, level: np.ndarray, v: int) -> None:
    """In place: ``level (size, size)`` into the interior of ``cells (P, P)`` (``(x, y)`` order)."""
    size = level.shape[0]
    cells[v + 1:v + 1 + size, v + 1:v + 1 + size] = level.T


def move(cells: np.ndarray, pos: np.ndarray, dirs: np.ndarray, steps: np.ndarray,
         actions: np.ndarray, max_steps: int, v: int):
    """One MiniGrid step of every environment in place; ``(reward, terminated, truncated)``."""
    n = len(dirs)
    steps += 1
    fwd = pos + _DIR_VEC[dirs]
    cell = cells[np.arange(n), fwd[:, 0] + v, fwd[:, 1] + v]
    forward = actions == 2
    dirs[:] = np.where(actions == 0, (dirs + 3) % 4, np.where(actions == 1, (dirs + 1) % 4, dirs))
    go = forward & (cell != _WALL)
    pos[go] = fwd[go]
    goal = forward & (cell == _GOAL)
    terminated = goal | (forward & (cell == _LAVA))
    reward = np.where(goal, 1.0 - 0.9 * (steps / max_steps), 0.0)
    return reward, terminated, steps >= max_steps


def reset_batch(indices, cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
                dirty, enc, image, direction) -> None:
    """Reset the environments ``indices`` from their pending level/start/direction and write
    their observations."""
    v = image.shape[1]
    for i in indices:
        if dirty[i]:
            install_level(cells[i], next_levels[i], v)
            dirty[i] = False
    pos[indices] = next_start[indices]
    dirs[indices] = next_dir[indices]
    steps[indices] = 0
    returns[indices] = 0.0
    image[indices] = observe(cells[indices], pos[indices], dirs[indices], enc, v)
    direction[indices] = dirs[indices]


def step_batch(actions, cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
               dirty, max_steps, enc, rewards, terminated, truncated, image, direction,
               term_image, term_direction, term_return, term_length) -> int:
    """Step all environments, reset the finished ones; returns how many finished."""
    v = image.shape[1]
    reward, term, trunc = move(cells, pos, dirs, steps, actions, max_steps, v)
    rewards[:] = reward
    terminated[:] = term
    truncated[:] = trunc
    returns += reward
    done = np.flatnonzero(term | trunc)
    if done.size:
        term_image[done] = observe(cells[done], pos[done], dirs[done], enc, v)
        term_direction[done] = dirs[done]
        term_return[done] = returns[done]
        term_length[done] = steps[done]
    rest = np.flatnonzero(~(term | trunc))
    image[rest] = observe(cells[rest], pos[rest], dirs[rest], enc, v)
    direction[rest] = dirs[rest]
    if done.size:
        reset_batch(done, cells, pos, dirs, steps, returns, next_levels, next_start, next_dir,
                    dirty, enc, image, direction)
    return int(done.size)
