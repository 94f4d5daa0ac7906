"""CaveEscapeEnv (DRED's level space on MiniGrid, arXiv:2402.03479, docs/dred-levels.md)."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from minigrid.minigrid_env import MiniGridEnv

from robustrl.envs.cave_escape import CaveEscapeEnv
from robustrl.envs.cave_levels import (
    EMPTY,
    GOAL,
    LAVA,
    MOSS,
    START,
    WALL,
    generate_level_set,
    goal_distances,
)

E, W, L, M, S, G = EMPTY, WALL, LAVA, MOSS, START, GOAL

# 5x5 interior; shortest start-goal path: 8 moves; the lava cell (2, 0) is next to the start's
# column, a wrong turn away.
HAND = np.array([
    [S, E, E, W, E],
    [W, W, M, W, E],
    [L, E, M, E, E],
    [E, W, W, W, M],
    [E, E, E, E, G],
], dtype=np.int8)

# MiniGrid directions: 0 = +x (right), 1 = +y (down), 2 = -x (left), 3 = -y (up).
_DIR_OF_MOVE = {(0, 1): 0, (1, 0): 1, (0, -1): 2, (-1, 0): 3}
LEFT, RIGHT, FORWARD = 0, 1, 2


def shortest_path(level):
    """Cells of one shortest start->goal path (row, col), following the goal-distance field."""
    dist = goal_distances(level)
    r, c = map(int, np.argwhere(level == START)[0])
    path = [(r, c)]
    while level[r, c] != GOAL:
        r, c = min(((r + dr, c + dc) for dr, dc in _DIR_OF_MOVE
                    if 0 <= r + dr < len(level) and 0 <= c + dc < len(level)
                    and level[r + dr, c + dc] not in (WALL, LAVA)),
                   key=lambda rc: dist[rc])
        path.append((r, c))
    return path


def walk(env, path):
    """Turn right until facing each next cell, then step forward; return the last transition."""
    out = None
    for (r0, c0), (r1, c1) in zip(path[:-1], path[1:], strict=True):
        want = _DIR_OF_MOVE[(r1 - r0, c1 - c0)]
        while env.unwrapped.agent_dir != want:
            out = env.step(RIGHT)
            assert not (out[2] or out[3])
        out = env.step(FORWARD)
    return out


def test_check_env_fixed_level_and_domain_randomisation():
    check_env(CaveEscapeEnv(HAND), skip_render_check=True)
    check_env(CaveEscapeEnv(), skip_render_check=True)  # a DR level per reset
    check_env(CaveEscapeEnv(HAND, navigation_only=True), skip_render_check=True)


def test_spaces_and_level_geometry():
    env = CaveEscapeEnv(HAND)
    assert env.action_space.n == 7 and CaveEscapeEnv(HAND, navigation_only=True).action_space.n == 3
    assert set(env.observation_space.spaces) == {"image", "direction"}
    assert env.observation_space["image"].shape == (5, 5, 3)
    assert env.max_steps == 54  # round(250 * (7 / 15) ** 2): 250 scaled by the grid area
    obs, info = env.reset(seed=0)
    assert info == {"solved": False, "level_size": 5}
    assert env.width == env.height == 7
    np.testing.assert_array_equal(env.level, HAND)
    assert env.agent_pos == (1, 1)  # level[0, 0] -> MiniGrid (x, y) = (1, 1)
    assert env.grid.get(5, 5).type == "goal" and env.grid.get(1, 3).type == "lava"
    assert env.grid.get(3, 2).type == "floor" and env.grid.get(4, 1).type == "wall"
    assert env.grid.get(0, 3).type == "wall"  # border
    assert CaveEscapeEnv(_markers(13)).max_steps == 250
    assert CaveEscapeEnv(_markers(43)).max_steps == 2250


def _markers(n):
    lv = np.zeros((n, n), np.int8)
    lv[0, 0], lv[-1, -1] = START, GOAL
    return lv


def test_start_direction_random_and_seeded():
    env = CaveEscapeEnv(HAND)
    dirs = [env.reset(seed=s)[0]["direction"] for s in range(40)]
    assert set(dirs) == {0, 1, 2, 3}
    assert dirs == [env.reset(seed=s)[0]["direction"] for s in range(40)]


def test_walking_the_shortest_path_solves_with_minigrid_reward():
    path = shortest_path(HAND)
    assert len(path) - 1 == 8
    for seed in range(4):
        env = CaveEscapeEnv(HAND)
        env.reset(seed=seed)
        obs, reward, terminated, truncated, info = walk(env, path)
        assert terminated and not truncated and info["solved"]
        steps = env.step_count
        assert steps >= 8
        assert reward == pytest.approx(1 - 0.9 * steps / env.max_steps)


def test_generated_levels_solved_by_shortest_path():
    levels = generate_level_set("train", 8, seed=3)
    for lv in levels:
        env = CaveEscapeEnv(lv)
        env.reset(seed=0)
        *_, terminated, _, info = walk(env, shortest_path(lv))
        assert terminated and info["solved"]


def test_lava_ends_episode_with_zero():
    env = CaveEscapeEnv(HAND)
    env.reset(seed=0)
    # start (0,0) -> (0,1) -> (0,2) -> (1,2) -> (2,2) -> (2,1), then lava at (2,0) on the left.
    walk(env, [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1)])
    while env.agent_dir != 2:
        env.step(RIGHT)
    obs, reward, terminated, truncated, info = env.step(FORWARD)
    assert terminated and reward == 0 and not info["solved"]


def test_time_limit_truncates_unsolved():
    env = CaveEscapeEnv(HAND, max_steps=6)
    env.reset(seed=0)
    for _ in range(6):
        obs, reward, terminated, truncated, info = env.step(LEFT)
    assert truncated and not terminated and reward == 0 and info["solved"] is False


def test_noop_actions_do_not_change_the_level():
    env = CaveEscapeEnv(HAND)
    env.reset(seed=1)
    before = env.grid.encode().copy()
    pos = env.agent_pos
    for a in (3, 4, 5, 6):  # pickup, drop, toggle, done
        env.step(a)
    np.testing.assert_array_equal(env.grid.encode(), before)
    assert env.agent_pos == pos


def test_fast_observation_matches_minigrid():
    levels = generate_level_set("train", 6, seed=1)
    rng = np.random.default_rng(0)
    env = CaveEscapeEnv(levels[0])
    for k, lv in enumerate(levels):
        obs, _ = env.reset(seed=k, options={"level": lv})
        for _ in range(60):
            ref = MiniGridEnv.gen_obs(env)
            np.testing.assert_array_equal(obs["image"], ref["image"])
            assert obs["direction"] == ref["direction"]
            obs, _, term, trunc, _ = env.step(int(rng.integers(3)))
            if term or trunc:
                break
    opaque = CaveEscapeEnv(levels[0], see_through_walls=False)
    obs, _ = opaque.reset(seed=0)
    assert obs["image"].shape == (5, 5, 3) and set(obs) == {"image", "direction"}


def test_reset_option_installs_level_and_it_persists():
    levels = generate_level_set("test", 2, seed=0)
    env = CaveEscapeEnv(levels[0])
    env.reset(seed=0, options={"level": levels[1]})
    np.testing.assert_array_equal(env.level, levels[1])
    env.reset()
    np.testing.assert_array_equal(env.level, levels[1])


def test_domain_randomisation_resamples_and_is_seeded():
    env = CaveEscapeEnv()
    env.reset(seed=5)
    a = env.level.copy()
    env.reset()
    assert not np.array_equal(a, env.level)
    env.reset(seed=5)
    np.testing.assert_array_equal(a, env.level)


@pytest.mark.parametrize(("level", "match"), [
    (np.zeros((5, 5), np.int8), "exactly one START"),
    (np.where(HAND == GOAL, EMPTY, HAND), "exactly one GOAL"),
    (np.where(HAND == MOSS, GOAL, HAND), "exactly one GOAL"),
    (np.where(HAND == MOSS, 7, HAND), r"codes must lie in \[0, 5\]"),
    (HAND[:4], "square"),
    (HAND.astype(float), "integer dtype"),
])
def test_invalid_levels_raise(level, match):
    with pytest.raises(ValueError, match=match):
        CaveEscapeEnv(level)
    env = CaveEscapeEnv(HAND)
    with pytest.raises(ValueError, match=match):
        env.reset(options={"level": level})


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="must be 5x5"):
        CaveEscapeEnv(HAND).reset(options={"level": _markers(6)})
    with pytest.raises(ValueError, match="agent_view_size"):
        CaveEscapeEnv(HAND, agent_view_size=4)
    with pytest.raises(ValueError, match="max_steps"):
        CaveEscapeEnv(HAND, max_steps=0)
