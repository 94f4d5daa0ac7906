"""Cave Escape level space, level sets, validity check, repair and ACCEL-style edits (DRED).

A **level** is an ``int8`` array of shape ``(n, n)``: the *interior* of a square MiniGrid grid
(``n = 13`` gives the 15x15 grid of DRED, arXiv:2402.03479, docs/dred-levels.md; the wall border is
added by
:class:`robustrl.envs.cave_escape.CaveEscapeEnv`). ``level[r, c]`` is the cell at MiniGrid
position ``(x, y) = (c + 1, r + 1)``. Cell codes:

* ``EMPTY = 0`` floor, ``WALL = 1``, ``LAVA = 2`` (ends the episode with reward 0),
  ``MOSS = 3`` (walkable floor, a cue placed near the goal), ``START = 4`` (the agent's start;
  walkable floor), ``GOAL = 5``.

A level is *valid* (:func:`is_valid`) when it is a square 2-D integer array of codes 0..5 with
exactly one START and one GOAL. Validity does **not** require a start-goal path: domain
randomisation, ACCEL edits and VAE decodes may be unsolvable, as in the authors' code
(B.3 step 6); :func:`shortest_path_length` / :func:`is_solvable` say whether it is, and
:func:`repair` makes it so.

Level sets (:func:`generate_level_set`) follow the recipe of the reference's dataset (B.2):
a wall/empty layout from one of several *layout families* (our own procedural generators,
not the authors' WFC templates), connectivity enforced (only the largest navigable component
is kept), goal then start on navigable cells, then **lava** replacing a fraction of the walls
within depth 3 of the navigable area, sampled by power-rank of goal distance favouring cells
*far* from the goal, and **moss** replacing a fraction of the empty cells with the inverse
ranking (near the goal).

Labels B.1 .. B.10 (e.g. "B.3 step 6", "B.10 D1") name the DRED topics listed in
docs/algorithms/dred.md, section "Topic labels" (anchors ``#b1`` .. ``#b10``).
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from robustrl._io import atomic_write
from robustrl.validation import check_int, check_scalar

__all__ = [
    "EMPTY", "WALL", "LAVA", "MOSS", "START", "GOAL", "N_CODES", "CODE_NAMES",
    "TRAIN_LAYOUTS", "UNSEEN_LAYOUTS", "LEVEL_SET_KINDS",
    "is_valid", "validate_level", "is_solvable", "shortest_path_length", "goal_distances",
    "repair", "random_level", "edit_level", "make_layout", "decorate_layout",
    "generate_level_set", "save_level_set", "load_level_set", "level_statistics",
    "distribution_distances",
    "default_max_steps", "render_ascii",
]

EMPTY, WALL, LAVA, MOSS, START, GOAL = 0, 1, 2, 3, 4, 5
N_CODES = 6
CODE_NAMES = ("empty", "wall", "lava", "moss", "start", "goal")
_ASCII = ".#~m^G"  # one character per code, for render_ascii

#: layout families of the training distribution (and of the in-distribution "test" set).
TRAIN_LAYOUTS: tuple[str, ...] = ("maze", "rooms", "obstacles", "caves")
#: layout families held out from training ("unseen_layouts", "high_lava").
UNSEEN_LAYOUTS: tuple[str, ...] = ("dungeon", "bars", "rings")
LEVEL_SET_KINDS: tuple[str, ...] = ("train", "test", "unseen_layouts", "high_lava", "large")

#: lava fraction of the walls and moss fraction of the empty cells, drawn per level (B.2 'varp')
VAR_FRACTION = (0.1, 0.25)
#: lava is placed only on walls within this many steps of the navigable area (B.2)
LAVA_DEPTH = 3
_MIN_NAVIGABLE = 12  # a layout with fewer navigable cells is redrawn

_KIND_STREAM = {k: i + 1 for i, k in enumerate(LEVEL_SET_KINDS)}


# --------------------------------------------------------------------------- validity


def _problem(level) -> str | None:
    """The reason ``level`` is not a valid level, or None."""
    arr = np.asarray(level)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        return f"must be a square 2-D array; got shape {arr.shape}"
    if arr.shape[0] < 2:
        return f"must be at least 2x2; got shape {arr.shape}"
    if not np.issubdtype(arr.dtype, np.integer):
        return f"must have an integer dtype (int8 cell codes); got {arr.dtype}"
    if arr.min() < 0 or arr.max() >= N_CODES:
        return (f"cell codes must lie in [0, {N_CODES - 1}] ({', '.join(CODE_NAMES)}); "
                f"got values in [{arr.min()}, {arr.max()}]")
    n_start, n_goal = int(np.sum(arr == START)), int(np.sum(arr == GOAL))
    if n_start != 1:
        return f"must contain exactly one START cell (code {START}); found {n_start}"
    if n_goal != 1:
        return f"must contain exactly one GOAL cell (code {GOAL}); found {n_goal}"
    return None


def is_valid(level) -> bool:
    """True iff ``level`` is a square integer array of codes 0..5 with one START and one GOAL.

    Reachability of the goal is checked separately (:func:`is_solvable`).
    """
    return _problem(level) is None


def validate_level(level, name: str = "level") -> np.ndarray:
    """Return ``level`` as an ``int8`` array, or raise ValueError naming the problem."""
    problem = _problem(level)
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    return np.asarray(level).astype(np.int8, copy=False)


def _walkable(level: np.ndarray) -> np.ndarray:
    return (level != WALL) & (level != LAVA)


def _bfs(walk: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """4-neighbour BFS distances from ``source`` over ``walk`` cells; -1 where unreachable."""
    n_r, n_c = walk.shape
    dist = np.full(walk.shape, -1, dtype=np.int32)
    if not walk[source]:
        return dist
    flat = walk.ravel()
    d = dist.ravel()
    s = source[0] * n_c + source[1]
    d[s] = 0
    queue = deque([s])
    while queue:
        u = queue.popleft()
        r, c = divmod(u, n_c)
        du = d[u] + 1
        for v, ok in ((u - n_c, r > 0), (u + n_c, r < n_r - 1),
                      (u - 1, c > 0), (u + 1, c < n_c - 1)):
            if ok and flat[v] and d[v] < 0:
                d[v] = du
                queue.append(v)
    return dist


def _find(level: np.ndarray, code: int) -> tuple[int, int]:
    r, c = np.argwhere(level == code)[0]
    return int(r), int(c)


def shortest_path_length(level) -> int:
    """Number of moves on the shortest START-GOAL path (4-neighbour BFS over cells that are
    neither WALL nor LAVA), or -1 when the goal is unreachable."""
    level = validate_level(level)
    return int(_bfs(_walkable(level), _find(level, START))[_find(level, GOAL)])


def is_solvable(level) -> bool:
    """True iff the goal is reachable from the start (:func:`shortest_path_length` >= 0)."""
    return shortest_path_length(level) >= 0


def goal_distances(level) -> np.ndarray:
    """Distance-to-goal field (float, ``inf`` where undefined) used for lava/moss placement.

    Walkable cells get their BFS distance to the goal. Obstacle cells (WALL, LAVA) get
    ``1 + min`` over their 4-neighbours, propagated outward through obstacles, i.e. the
    distance to the goal of "stepping onto" the cell from the navigable area.
    """
    level = validate_level(level)
    walk = _walkable(level)
    bfs = _bfs(walk, _find(level, GOAL))
    dist = np.where(bfs >= 0, bfs.astype(np.float64), np.inf)
    obstacle = ~walk
    # Relax obstacle cells from their neighbours until stable (unit weights, at most n*n sweeps).
    for _ in range(level.size):
        pad = np.pad(dist, 1, constant_values=np.inf)
        nb = np.minimum.reduce([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
        new = np.where(obstacle, np.minimum(dist, nb + 1.0), dist)
        if np.array_equal(new, dist):
            break
        dist = new
    return dist


def _depth_from(mask: np.ndarray) -> np.ndarray:
    """4-neighbour distance of every cell from the nearest ``mask`` cell (0 on mask)."""
    depth = np.where(mask, 0.0, np.inf)
    for _ in range(mask.size):
        pad = np.pad(depth, 1, constant_values=np.inf)
        nb = np.minimum.reduce([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
        new = np.minimum(depth, nb + 1.0)
        if np.array_equal(new, depth):
            break
        depth = new
    return depth


def _components(walk: np.ndarray) -> np.ndarray:
    """Label 4-connected components of ``walk`` (0 = not walkable, labels 1..k)."""
    from scipy.ndimage import label

    labels, _ = label(walk)
    return labels


# --------------------------------------------------------------------------- repair


def repair(level, rng: np.random.Generator) -> np.ndarray:
    """Return a solvable copy of ``level``.

    What it changes, in order (each step only when needed):

    1. extra START / GOAL cells: one of each is kept at random, the others become EMPTY;
    2. a missing GOAL, then a missing START, is placed on a random EMPTY/MOSS cell (that cell
       type is lost); with no free walkable cell, on a random WALL/LAVA cell;
    3. goal unreachable from start: start and goal are moved into the largest walkable
       component (the one that stays keeps its cell; a moved marker leaves EMPTY behind and
       lands on a random EMPTY/MOSS cell of the component). If that component has a single
       cell, an L-shaped corridor from start to goal is carved (WALL/LAVA -> EMPTY).

    Cell codes must already lie in 0..5 and the array must be square (else ValueError).
    """
    arr = np.array(level, dtype=np.int64, copy=True)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"level must be a square 2-D array at least 2x2; got shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= N_CODES:
        raise ValueError(f"level cell codes must lie in [0, {N_CODES - 1}]")
    arr = arr.astype(np.int8)
    for code in (GOAL, START):
        cells = np.argwhere(arr == code)
        if len(cells) > 1:
            keep = rng.integers(len(cells))
            for i, (r, c) in enumerate(cells):
                if i != keep:
                    arr[r, c] = EMPTY
    for code in (GOAL, START):
        if not np.any(arr == code):
            free = np.argwhere((arr == EMPTY) | (arr == MOSS))
            if len(free) == 0:
                free = np.argwhere((arr == WALL) | (arr == LAVA))
            r, c = free[rng.integers(len(free))]
            arr[r, c] = code
    if shortest_path_length(arr) >= 0:
        return arr
    labels = _components(_walkable(arr))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    big = int(np.argmax(sizes))
    if sizes[big] >= 2:
        for code in (GOAL, START):
            r, c = _find(arr, code)
            if labels[r, c] == big:
                continue
            free = np.argwhere((labels == big) & ((arr == EMPTY) | (arr == MOSS)))
            arr[r, c] = EMPTY
            nr, nc = free[rng.integers(len(free))]
            arr[nr, nc] = code
        return arr
    # Every walkable cell is isolated: carve an L-shaped corridor.
    (sr, sc), (gr, gc) = _find(arr, START), _find(arr, GOAL)
    for c in range(min(sc, gc), max(sc, gc) + 1):
        if arr[sr, c] in (WALL, LAVA):
            arr[sr, c] = EMPTY
    for r in range(min(sr, gr), max(sr, gr) + 1):
        if arr[r, gc] in (WALL, LAVA):
            arr[r, gc] = EMPTY
    return arr


# --------------------------------------------------------------------------- DR and edits


def random_level(rng: np.random.Generator, size: int = 13, max_blocks: int = 60) -> np.ndarray:
    """Domain randomisation over the level space (the DR baseline, B.6).

    As the authors' ``reset_random`` with resampled clutter: the number of blocks is uniform on
    ``{0, .., max_blocks - 1}``; each block is WALL, LAVA or MOSS with equal probability on a
    distinct uniformly random cell; then the start and, last, the goal go on random free cells.
    The level is **not** repaired, so it may be unsolvable (as in DR).
    """
    size = check_int(size, "size", low=2)
    max_blocks = check_int(max_blocks, "max_blocks", low=1, high=size * size - 2)
    n_blocks = int(rng.integers(max_blocks))
    cells = rng.permutation(size * size)[: n_blocks + 2]
    flat = np.zeros(size * size, dtype=np.int8)
    flat[cells[:n_blocks]] = rng.choice(np.array([WALL, LAVA, MOSS], dtype=np.int8), n_blocks)
    flat[cells[n_blocks]] = START
    flat[cells[n_blocks + 1]] = GOAL
    return flat.reshape(size, size)


_EDIT_CODES = np.array([WALL, EMPTY, LAVA, MOSS, START, GOAL], dtype=np.int8)


def edit_level(level, rng: np.random.Generator, n_edits: int = 5, *,
               repair_level: bool = False) -> np.ndarray:
    """ACCEL-style random edits (B.5 EL-DRED / B.6 ACCEL).

    Each of ``n_edits`` edits picks a uniformly random cell and an editor action uniformly from
    {wall, empty, lava, moss, agent, goal}: the first four overwrite the cell (a START/GOAL
    cell is left untouched so the level keeps one of each), 'agent'/'goal' move the START/GOAL
    there (the old cell becomes EMPTY; a move onto the other marker is skipped). The result is
    always valid (:func:`is_valid`) but may be unsolvable, as in ACCEL; ``repair_level=True``
    passes it through :func:`repair`.
    """
    arr = validate_level(level).copy()
    n_edits = check_int(n_edits, "n_edits", low=0)
    n = arr.shape[0]
    for _ in range(n_edits):
        r, c = divmod(int(rng.integers(n * n)), n)
        code = _EDIT_CODES[rng.integers(len(_EDIT_CODES))]
        if code in (START, GOAL):
            if arr[r, c] in (START, GOAL):
                continue
            orr, occ = _find(arr, code)
            arr[orr, occ] = EMPTY
            arr[r, c] = code
        elif arr[r, c] not in (START, GOAL):
            arr[r, c] = code
    return repair(arr, rng) if repair_level else arr


# --------------------------------------------------------------------------- layouts
# Each generator returns a boolean wall mask of shape (n, n) (True = WALL) for the interior.


def _layout_maze(rng: np.random.Generator, n: int) -> np.ndarray:
    """Depth-first-search maze on the even cells, then a few walls knocked out (loops)."""
    wall = np.ones((n, n), dtype=bool)
    m = (n + 1) // 2
    seen = np.zeros((m, m), dtype=bool)
    start = (int(rng.integers(m)), int(rng.integers(m)))
    stack = [start]
    seen[start] = True
    wall[2 * start[0], 2 * start[1]] = False
    while stack:
        r, c = stack[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                if 0 <= r + dr < m and 0 <= c + dc < m and not seen[r + dr, c + dc]]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = nbrs[rng.integers(len(nbrs))]
        seen[nr, nc] = True
        wall[2 * nr, 2 * nc] = False
        wall[r + nr, c + nc] = False  # the wall cell between (2r, 2c) and (2nr, 2nc)
        stack.append((nr, nc))
    # Braid: remove a random share of the removable inner walls (between two even cells).
    cand = [(r, c) for r in range(n) for c in range(n)
            if wall[r, c] and (r + c) % 2 == 1]
    k = int(rng.uniform(0.0, 0.15) * len(cand))
    for i in rng.permutation(len(cand))[:k]:
        wall[cand[i]] = False
    return wall


def _layout_rooms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Recursive division into rooms joined by one-cell doorways."""
    wall = np.zeros((n, n), dtype=bool)

    def split(r0: int, r1: int, c0: int, c1: int, depth: int) -> None:
        h, w = r1 - r0, c1 - c0
        if depth > 3 or (h < 5 and w < 5) or (depth >= 2 and rng.random() < 0.25):
            return
        horizontal = h > w if h != w else bool(rng.random() < 0.5)
        if horizontal and h >= 5:
            r = int(rng.integers(r0 + 2, r1 - 2))
            wall[r, c0:c1] = True
            for _ in range(1 + int(rng.random() < 0.3)):
                wall[r, int(rng.integers(c0, c1))] = False
            split(r0, r, c0, c1, depth + 1)
            split(r + 1, r1, c0, c1, depth + 1)
        elif w >= 5:
            c = int(rng.integers(c0 + 2, c1 - 2))
            wall[r0:r1, c] = True
            for _ in range(1 + int(rng.random() < 0.3)):
                wall[int(rng.integers(r0, r1)), c] = False
            split(r0, r1, c0, c, depth + 1)
            split(r0, r1, c + 1, c1, depth + 1)

    split(0, n, 0, n, 0)
    return wall


def _layout_obstacles(rng: np.random.Generator, n: int) -> np.ndarray:
    """An open room scattered with small rectangular blocks (10-30% of the cells)."""
    wall = np.zeros((n, n), dtype=bool)
    target = rng.uniform(0.10, 0.30) * n * n
    while wall.sum() < target:
        h, w = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        if rng.random() < 0.5:
            h, w = w, h
        r, c = int(rng.integers(0, n - h + 1)), int(rng.integers(0, n - w + 1))
        wall[r:r + h, c:c + w] = True
    return wall


def _layout_caves(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cellular-automaton caves (4-5 rule) from 40-48% random walls."""
    wall = rng.random((n, n)) < rng.uniform(0.40, 0.48)
    for _ in range(4):
        pad = np.pad(wall, 1, constant_values=True)
        cnt = sum(np.roll(np.roll(pad, dr, 0), dc, 1)[1:-1, 1:-1]
                  for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
        wall = np.where(wall, cnt >= 4, cnt >= 5)
    return wall


def _layout_dungeon(rng: np.random.Generator, n: int) -> np.ndarray:
    """Solid rock with a few rectangular rooms joined by L-shaped one-cell corridors."""
    wall = np.ones((n, n), dtype=bool)
    centres = []
    for _ in range(int(rng.integers(3, 6)) * max(1, n // 13)):
        h, w = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        r, c = int(rng.integers(0, n - h + 1)), int(rng.integers(0, n - w + 1))
        wall[r:r + h, c:c + w] = False
        centres.append((r + h // 2, c + w // 2))
    for (r0, c0), (r1, c1) in pairwise(centres):
        wall[r0, min(c0, c1):max(c0, c1) + 1] = False
        wall[min(r0, r1):max(r0, r1) + 1, c1] = False
    return wall


def _layout_bars(rng: np.random.Generator, n: int) -> np.ndarray:
    """Parallel full-width walls every 2-3 rows, each with one or two gaps (lava-crossing like)."""
    wall = np.zeros((n, n), dtype=bool)
    r = int(rng.integers(1, 3))
    while r < n - 1:
        wall[r, :] = True
        for _ in range(1 + int(rng.random() < 0.4)):
            wall[r, int(rng.integers(n))] = False
        r += int(rng.integers(2, 4))
    return wall if rng.random() < 0.5 else wall.T.copy()


def _layout_rings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Concentric square walls, each opened by one or two gaps on a random side."""
    wall = np.zeros((n, n), dtype=bool)
    k = int(rng.integers(1, 3))
    while k < n // 2:
        lo, hi = k, n - 1 - k
        ring = [(lo, c) for c in range(lo, hi + 1)] + [(hi, c) for c in range(lo, hi + 1)]
        ring += [(r, lo) for r in range(lo + 1, hi)] + [(r, hi) for r in range(lo + 1, hi)]
        for cell in ring:
            wall[cell] = True
        for _ in range(1 + int(rng.random() < 0.5)):
            wall[ring[int(rng.integers(len(ring)))]] = False
        k += 2
    return wall


_LAYOUTS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "maze": _layout_maze, "rooms": _layout_rooms, "obstacles": _layout_obstacles,
    "caves": _layout_caves, "dungeon": _layout_dungeon, "bars": _layout_bars,
    "rings": _layout_rings,
}


def make_layout(family: str, rng: np.random.Generator, size: int = 13) -> np.ndarray:
    """A connected wall mask (True = WALL) of one layout family.

    Only the largest 4-connected navigable component is kept (the rest becomes wall), as the
    reference's ``ensure_connected``; layouts with fewer than 12 navigable cells are redrawn.
    """
    if family not in _LAYOUTS:
        raise ValueError(f"family must be one of {sorted(_LAYOUTS)}; got {family!r}")
    size = check_int(size, "size", low=5)
    while True:
        wall = _LAYOUTS[family](rng, size)
        labels = _components(~wall)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        if sizes.max() >= _MIN_NAVIGABLE:
            return labels != int(np.argmax(sizes))


def _power_rank_sample(rng, scores: np.ndarray, k: int) -> np.ndarray:
    """``k`` indices without replacement, P(i) ∝ rank(score_i)^-1 (rank 1 = highest score;
    temperature 1, B.2). Ties are ranked in random order."""
    order = np.lexsort((rng.random(len(scores)), -scores))
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    w = 1.0 / ranks
    return rng.choice(len(scores), size=k, replace=False, p=w / w.sum())


def decorate_layout(wall: np.ndarray, rng: np.random.Generator, *,
                    lava_fraction: float, moss_fraction: float) -> np.ndarray:
    """Turn a connected wall mask into a level (B.2 steps 2-4).

    Goal, then start, uniformly on distinct navigable cells; ``round(lava_fraction * #walls)``
    walls within depth 3 of the navigable area become LAVA, drawn by power rank of goal
    distance (far first); ``round(moss_fraction * #empty)`` empty cells become MOSS, drawn by
    power rank of inverse goal distance (near first).
    """
    wall = np.asarray(wall, dtype=bool)
    lava_fraction = check_scalar(lava_fraction, "lava_fraction", low=0.0, high=1.0)
    moss_fraction = check_scalar(moss_fraction, "moss_fraction", low=0.0, high=1.0)
    level = np.where(wall, WALL, EMPTY).astype(np.int8)
    free = np.argwhere(~wall)
    if len(free) < 2:
        raise ValueError("wall must leave at least two navigable cells")
    pick = rng.choice(len(free), size=2, replace=False)
    level[tuple(free[pick[0]])] = GOAL
    level[tuple(free[pick[1]])] = START
    dist = goal_distances(level)
    walls = np.argwhere(wall)
    n_lava = int(round(lava_fraction * len(walls)))
    if n_lava:
        depth = _depth_from(~wall)
        eligible = walls[(depth[wall] <= LAVA_DEPTH) & np.isfinite(dist[wall])]
        n_lava = min(n_lava, len(eligible))
        chosen = _power_rank_sample(rng, dist[tuple(eligible.T)], n_lava)
        level[tuple(eligible[chosen].T)] = LAVA
    empties = np.argwhere(level == EMPTY)
    n_moss = int(round(moss_fraction * len(empties)))
    if n_moss:
        chosen = _power_rank_sample(rng, -dist[tuple(empties.T)], n_moss)
        level[tuple(empties[chosen].T)] = MOSS
    return level


# --------------------------------------------------------------------------- level sets


def _kind_spec(kind: str) -> tuple[tuple[str, ...], Any, Any, int]:
    """(families, lava spec, moss spec, default size); a spec is a float or a (lo, hi) range."""
    if kind in ("train", "test"):
        return TRAIN_LAYOUTS, VAR_FRACTION, VAR_FRACTION, 13
    if kind == "unseen_layouts":
        return UNSEEN_LAYOUTS, VAR_FRACTION, VAR_FRACTION, 13
    if kind == "high_lava":
        return UNSEEN_LAYOUTS, 0.5, 0.05, 13
    if kind == "large":
        return TRAIN_LAYOUTS + UNSEEN_LAYOUTS, VAR_FRACTION, VAR_FRACTION, 43
    raise ValueError(f"kind must be one of {', '.join(LEVEL_SET_KINDS)}; got {kind!r}")


def generate_level_set(kind: str, n_levels: int, seed: int, size: int | None = None, *,
                       return_layouts: bool = False):
    """A seeded level set of ``n_levels`` levels, ``int8`` array ``(n_levels, n, n)``.

    Kinds (B.2's datasets, with our layout families):

    * ``"train"``: families :data:`TRAIN_LAYOUTS`, lava and moss fractions each drawn from
      [0.1, 0.25] per level;
    * ``"test"``: the same distribution on an independent random stream (held-out levels);
    * ``"unseen_layouts"``: families :data:`UNSEEN_LAYOUTS`, same lava/moss rule;
    * ``"high_lava"``: unseen families, lava fraction 0.5 and moss fraction 0.05 (edge case);
    * ``"large"``: all seven families on ``size`` x ``size`` interiors (default 43, the
      reference's 45x45 grids).

    Level ``i`` uses family ``i mod len(families)`` (balanced). Every level is solvable.
    ``size`` defaults to 13 (43 for "large"). With ``return_layouts=True`` also returns the
    per-level family names. The stream is ``SeedSequence([seed, kind index])``, so the same
    ``(kind, seed)`` always gives identical arrays and different kinds never share a stream.
    """
    families, lava_spec, moss_spec, default_size = _kind_spec(kind)
    n_levels = check_int(n_levels, "n_levels", low=1)
    seed = check_int(seed, "seed", low=0)
    size = default_size if size is None else check_int(size, "size", low=5)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _KIND_STREAM[kind]]))

    def draw(spec) -> float:
        return float(rng.uniform(*spec)) if isinstance(spec, tuple) else float(spec)

    levels = np.empty((n_levels, size, size), dtype=np.int8)
    names = []
    for i in range(n_levels):
        family = families[i % len(families)]
        wall = make_layout(family, rng, size)
        levels[i] = decorate_layout(wall, rng, lava_fraction=draw(lava_spec),
                                    moss_fraction=draw(moss_spec))
        names.append(family)
    return (levels, np.array(names)) if return_layouts else levels


def save_level_set(path: str | os.PathLike, levels, metadata: dict[str, Any] | None = None
                   ) -> Path:
    """Write ``levels`` (N, n, n) and JSON-able ``metadata`` atomically to an ``.npz`` file."""
    import json

    levels = np.asarray(levels)
    if levels.ndim != 3:
        raise ValueError(f"levels must have shape (N, n, n); got {levels.shape}")
    for i, lv in enumerate(levels):
        validate_level(lv, name=f"levels[{i}]")
    meta = json.dumps(metadata or {}, sort_keys=True)

    def write(fh) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, levels=levels.astype(np.int8), metadata=np.array(meta))
        fh.write(buf.getvalue())

    return atomic_write(path, write, binary=True, clean_stale=True)


def load_level_set(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a level set written by :func:`save_level_set`: ``(levels, metadata)``.

    ``levels`` must be an integer ``(N, n, n)`` array of valid levels (:func:`validate_level`)
    and ``metadata`` a JSON object; any failure raises ``ValueError`` naming the file."""
    from robustrl._artifacts import loaded_array, read_npz, read_npz_json

    arrays = read_npz(path, ["levels", "metadata"], what="a level set")
    levels = loaded_array(path, "levels", arrays["levels"], kind="i", shape=(None, None, None))
    if levels.shape[1] != levels.shape[2]:
        raise ValueError(f"path {path}: array 'levels' must have shape (N, n, n); got "
                         f"{levels.shape}")
    for i, lv in enumerate(levels):
        try:
            validate_level(lv, name=f"levels[{i}]")
        except ValueError as exc:
            raise ValueError(f"path {path}: array 'levels': {exc}") from None
    meta = read_npz_json(path, arrays, "metadata")
    if not isinstance(meta, dict):
        raise ValueError(f"path {path}: array 'metadata' must hold a JSON object")
    return levels.astype(np.int8), meta


# --------------------------------------------------------------------------- statistics


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def level_statistics(levels) -> dict[str, np.ndarray]:
    """Per-level statistics of a level set (B.10 D3), each an array of length N:

    * ``lava_fraction`` / ``moss_fraction``: LAVA / MOSS cells over all ``n*n`` cells;
    * ``lava_wall_ratio``: LAVA / (LAVA + WALL) (the generation parameter; nan without
      obstacles); ``moss_floor_ratio``: MOSS / (MOSS + EMPTY) (nan without floor);
    * ``navigable``: cells that are neither WALL nor LAVA (start and goal included);
    * ``shortest_path``: :func:`shortest_path_length` (-1 if unsolvable);
    * ``moss_goal_corr``: Pearson correlation, over walkable cells at finite goal distance,
      between "is MOSS" and goal distance (negative when moss sits near the goal);
    * ``lava_goal_corr``: the same over obstacle cells within depth 3 of the navigable area,
      between "is LAVA" and :func:`goal_distances` (positive when lava sits far from the goal).
      Correlations are nan when undefined (e.g. no moss at all).
    """
    levels = np.asarray(levels)
    if levels.ndim == 2:
        levels = levels[None]
    n = len(levels)
    out = {k: np.full(n, np.nan) for k in (
        "lava_fraction", "moss_fraction", "lava_wall_ratio", "moss_floor_ratio", "navigable",
        "shortest_path", "moss_goal_corr", "lava_goal_corr")}
    for i, lv in enumerate(levels):
        lv = validate_level(lv, name=f"levels[{i}]")
        cells = lv.size
        n_lava, n_wall = int(np.sum(lv == LAVA)), int(np.sum(lv == WALL))
        n_moss, n_empty = int(np.sum(lv == MOSS)), int(np.sum(lv == EMPTY))
        out["lava_fraction"][i] = n_lava / cells
        out["moss_fraction"][i] = n_moss / cells
        if n_lava + n_wall:
            out["lava_wall_ratio"][i] = n_lava / (n_lava + n_wall)
        if n_moss + n_empty:
            out["moss_floor_ratio"][i] = n_moss / (n_moss + n_empty)
        walk = _walkable(lv)
        out["navigable"][i] = int(walk.sum())
        out["shortest_path"][i] = shortest_path_length(lv)
        dist = goal_distances(lv)
        sel = walk & np.isfinite(dist)
        out["moss_goal_corr"][i] = _corr((lv[sel] == MOSS).astype(float), dist[sel])
        obst = ~walk & np.isfinite(dist) & (_depth_from(walk) <= LAVA_DEPTH)
        out["lava_goal_corr"][i] = _corr((lv[obst] == LAVA).astype(float), dist[obst])
    return out


#: statistics compared by :func:`distribution_distances`, with their histogram bin edges
#: (integer-valued statistics get one bin per integer; nan values get a bin of their own).
_STAT_BINS = {
    "lava_fraction": np.linspace(0.0, 1.0, 51),
    "lava_wall_ratio": np.linspace(0.0, 1.0, 51),
    "moss_fraction": np.linspace(0.0, 1.0, 51),
    "moss_floor_ratio": np.linspace(0.0, 1.0, 51),
    "navigable": None,
    "shortest_path": None,
    "moss_goal_corr": np.linspace(-1.0, 1.0, 21),
    "lava_goal_corr": np.linspace(-1.0, 1.0, 21),
}


def _hist(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    h, _ = np.histogram(np.clip(x[finite], edges[0], edges[-1]), bins=edges)
    return np.append(h, np.sum(~finite)).astype(float) / max(len(x), 1)


def distribution_distances(levels_a, levels_b, *, stats_a=None, stats_b=None
                           ) -> dict[str, dict[str, float]]:
    """Distances between two level sets' distributions of each statistic (B.10 D3).

    For each statistic of :func:`level_statistics`: ``tv``, the total-variation distance
    between the two histograms (bins of width 0.02 for fractions and ratios, 0.1 for
    correlations, one per integer for counts and path lengths, where -1 = unsolvable is its own
    bin; nan values share one extra bin), and ``w1``, the 1-D Wasserstein distance between the
    finite values (nan if either set has none); for ``shortest_path`` W1 compares the path
    lengths of the solvable levels only, while TV also compares the unsolvable mass (-1).
    Precomputed statistics may be passed as ``stats_a`` / ``stats_b``.
    """
    from scipy.stats import wasserstein_distance

    sa = stats_a if stats_a is not None else level_statistics(levels_a)
    sb = stats_b if stats_b is not None else level_statistics(levels_b)
    out = {}
    for name, edges in _STAT_BINS.items():
        a, b = np.asarray(sa[name], float), np.asarray(sb[name], float)
        if edges is None:
            fin = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)], [0.0]])
            edges = np.arange(np.floor(fin.min()) - 0.5, np.ceil(fin.max()) + 1.5)
        tv = 0.5 * float(np.abs(_hist(a, edges) - _hist(b, edges)).sum())
        fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
        if name == "shortest_path":  # W1 of the path length among solvable levels
            fa, fb = fa[fa >= 0], fb[fb >= 0]
        w1 = float(wasserstein_distance(fa, fb)) if len(fa) and len(fb) else float("nan")
        out[name] = {"tv": tv, "w1": w1}
    return out


# --------------------------------------------------------------------------- misc


def default_max_steps(size: int) -> int:
    """Episode step limit for an ``size`` x ``size`` interior: 250 for 13 (15x15 grid), scaled
    with the grid area, ``round(250 * ((size + 2) / 15)^2)`` (2250 for the 45x45 grid, B.2)."""
    size = check_int(size, "size", low=2)
    return int(round(250 * ((size + 2) / 15) ** 2))


def render_ascii(level) -> str:
    """One line per row: ``.`` empty, ``#`` wall, ``~`` lava, ``m`` moss, ``^`` start, ``G``."""
    level = validate_level(level)
    return "\n".join("".join(_ASCII[v] for v in row) for row in level)
