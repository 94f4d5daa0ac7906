"""Cave Escape level space: validity, BFS, repair, DR, edits, level sets, statistics (B.2, B.10).

Labels B.1 .. B.10 (e.g. "B.3 step 6", "B.10 D1") name the DRED topics listed in
docs/algorithms/dred.md, section "Topic labels" (anchors ``#b1`` .. ``#b10``).
"""

import numpy as np
import pytest

from robustrl.envs import cave_levels as cl
from robustrl.envs.cave_levels import EMPTY, GOAL, LAVA, MOSS, START, WALL

E, W, L, M, S, G = EMPTY, WALL, LAVA, MOSS, START, GOAL

SMALL = np.array([
    [S, M, E],
    [W, L, E],
    [E, E, G],
], dtype=np.int8)


@pytest.fixture(scope="module")
def train():
    return cl.generate_level_set("train", 512, seed=0, return_layouts=True)


def test_generation_seeded_valid_solvable_and_balanced(train):
    levels, fams = train
    assert levels.shape == (512, 13, 13) and levels.dtype == np.int8
    again = cl.generate_level_set("train", 512, seed=0)
    np.testing.assert_array_equal(levels, again)
    assert not np.array_equal(levels, cl.generate_level_set("train", 512, seed=1))
    for lv in levels:
        assert cl.is_valid(lv) and cl.shortest_path_length(lv) > 0
    assert {f: int(np.sum(fams == f)) for f in cl.TRAIN_LAYOUTS} == dict.fromkeys(
        cl.TRAIN_LAYOUTS, 128)


@pytest.mark.parametrize("kind", ["test", "unseen_layouts", "high_lava", "large"])
def test_held_out_kinds(kind, train):
    size = 25 if kind == "large" else None
    levels, fams = cl.generate_level_set(kind, 14, seed=0, size=size, return_layouts=True)
    np.testing.assert_array_equal(levels, cl.generate_level_set(kind, 14, seed=0, size=size))
    assert levels.shape[1:] == ((25, 25) if kind == "large" else (13, 13))
    for lv in levels:
        assert cl.is_valid(lv) and cl.is_solvable(lv)
    if kind in ("unseen_layouts", "high_lava"):
        assert not set(fams) & set(cl.TRAIN_LAYOUTS)
    if kind == "test":  # same seed, different stream: no level shared with the training set
        assert not any(np.array_equal(t, lv) for t in train[0] for lv in levels)
    if kind == "high_lava":
        stats = cl.level_statistics(levels)
        # lava = round(0.5 * walls), capped by the walls within depth 3 of the floor
        n_obst = np.sum(np.isin(levels, (W, L)), axis=(1, 2))
        assert np.all(stats["lava_wall_ratio"] * n_obst <= 0.5 * n_obst + 0.5 + 1e-9)
        assert np.mean(stats["lava_wall_ratio"]) > 0.4
        n_floor = np.sum(np.isin(levels, (E, M)), axis=(1, 2))
        assert np.all(np.abs(stats["moss_floor_ratio"] - 0.05) * n_floor <= 0.5 + 1e-9)
    assert cl.generate_level_set("large", 1, seed=0).shape == (1, 43, 43)


def test_generation_rules_lava_far_moss_near(train):
    levels = train[0]
    stats = cl.level_statistics(levels)
    # moss = round(f * #empty), f in [0.1, 0.25]; lava = round(f * #walls), f in [0.1, 0.25],
    # capped by the walls within depth 3 of the floor
    n_floor = np.sum(np.isin(levels, (E, M)), axis=(1, 2))
    n_moss = stats["moss_floor_ratio"] * n_floor
    assert np.all((n_moss >= 0.1 * n_floor - 0.5 - 1e-9) & (n_moss <= 0.25 * n_floor + 0.5 + 1e-9))
    n_obst = np.sum(np.isin(levels, (W, L)), axis=(1, 2))
    assert np.all(stats["lava_wall_ratio"] * n_obst <= 0.25 * n_obst + 0.5 + 1e-9)
    assert np.mean(stats["lava_wall_ratio"]) > 0.15
    assert np.nanmean(stats["moss_goal_corr"]) < -0.2  # moss near the goal
    assert np.nanmean(stats["lava_goal_corr"]) > 0.2  # lava far from the goal


def test_statistics_hand_checked():
    s = cl.level_statistics(SMALL)
    assert s["lava_fraction"][0] == pytest.approx(1 / 9)
    assert s["moss_fraction"][0] == pytest.approx(1 / 9)
    assert s["lava_wall_ratio"][0] == pytest.approx(1 / 2)
    assert s["moss_floor_ratio"][0] == pytest.approx(1 / 5)
    assert s["navigable"][0] == 7
    assert s["shortest_path"][0] == 4
    # goal distances of the walkable cells in row-major order: S=4, M=3, (0,2)=2, (1,2)=1,
    # (2,0)=2, (2,1)=1, G=0; obstacles: wall (1,0) = 1 + min(4, 2) = 3, lava (1,1) = 1 + 1 = 2.
    d = cl.goal_distances(SMALL)
    np.testing.assert_array_equal(d, [[4, 3, 2], [3, 2, 1], [2, 1, 0]])
    moss = np.array([0, 1, 0, 0, 0, 0, 0.0])
    dist = np.array([4, 3, 2, 1, 2, 1, 0.0])
    assert s["moss_goal_corr"][0] == pytest.approx(np.corrcoef(moss, dist)[0, 1])
    assert s["lava_goal_corr"][0] == pytest.approx(-1.0)  # the lava is nearer than the wall
    no_moss = np.where(SMALL == M, E, SMALL)
    assert np.isnan(cl.level_statistics(no_moss)["moss_goal_corr"][0])


def test_shortest_path_and_validity():
    assert cl.shortest_path_length(SMALL) == 4
    blocked = SMALL.copy()
    blocked[1, 2] = L
    blocked[2, 0:2] = W
    assert cl.shortest_path_length(blocked) == -1 and not cl.is_solvable(blocked)
    assert cl.is_valid(blocked)  # validity is structural only
    assert not cl.is_valid(np.where(SMALL == S, E, SMALL))
    with pytest.raises(ValueError, match="my_level must contain exactly one START"):
        cl.validate_level(np.where(SMALL == S, E, SMALL), name="my_level")


def _repaired(level, seed=0):
    out = cl.repair(level, np.random.default_rng(seed))
    assert out.dtype == np.int8 and cl.is_valid(out) and cl.is_solvable(out)
    return out


def test_repair_each_defect():
    np.testing.assert_array_equal(_repaired(SMALL), SMALL)  # already fine: unchanged
    two_starts = SMALL.copy()
    two_starts[2, 0] = S
    out = _repaired(two_starts)
    assert np.sum(out == S) == 1 and np.sum(out != two_starts) == 1
    no_goal = np.where(SMALL == G, E, SMALL)
    out = _repaired(no_goal)
    assert out[tuple(np.argwhere(out == G)[0])] == G and np.sum(out != no_goal) == 1
    assert no_goal[tuple(np.argwhere(out == G)[0])] in (E, M)  # placed on a walkable cell
    no_start = np.where(SMALL == S, E, SMALL)
    assert no_start[tuple(np.argwhere(_repaired(no_start) == S)[0])] in (E, M)
    # Goal walled off in a 1-cell pocket: moved into the larger component.
    pocket = np.array([[S, E, E, W], [E, E, E, W], [E, E, W, L], [E, E, L, G]], np.int8)
    out = _repaired(pocket)
    assert out[3, 3] == E and np.sum(out == W) == np.sum(pocket == W)
    assert np.sum(out == L) == np.sum(pocket == L)  # no obstacle touched
    # Nothing but isolated cells: a corridor is carved.
    isolated = np.full((4, 4), W, np.int8)
    isolated[0, 0], isolated[3, 3] = S, G
    out = _repaired(isolated)
    assert cl.shortest_path_length(out) == 6
    # No walkable cell at all for a missing goal: goes on an obstacle.
    full = np.full((3, 3), W, np.int8)
    full[0, 0] = S
    _repaired(full)
    with pytest.raises(ValueError, match="cell codes"):
        cl.repair(np.full((3, 3), 9), np.random.default_rng(0))


def test_repair_random_levels_always_solvable():
    rng = np.random.default_rng(0)
    for _ in range(300):
        lv = rng.integers(0, 6, size=(7, 7))
        _repaired(lv, seed=int(rng.integers(1000)))


def test_random_level_domain_randomisation():
    rng = np.random.default_rng(0)
    levels = np.stack([cl.random_level(rng) for _ in range(400)])
    assert all(cl.is_valid(lv) for lv in levels)
    blocks = np.sum(np.isin(levels, (W, L, M)), axis=(1, 2))
    assert blocks.min() >= 0 and blocks.max() <= 59 and blocks.mean() == pytest.approx(29.5, abs=3)
    counts = [np.sum(levels == c) for c in (W, L, M)]
    assert max(counts) / min(counts) < 1.15  # wall / lava / moss equally likely
    solvable = np.mean([cl.is_solvable(lv) for lv in levels])
    assert 0.5 < solvable < 1.0  # DR is not repaired: some levels are unsolvable
    np.testing.assert_array_equal(cl.random_level(np.random.default_rng(3)),
                                  cl.random_level(np.random.default_rng(3)))


def test_edit_level_keeps_validity(train):
    rng = np.random.default_rng(0)
    n_unsolvable = 0
    for lv in train[0][:200]:
        out = cl.edit_level(lv, rng, n_edits=5)
        assert cl.is_valid(out) and np.sum(out != lv) <= 10  # an agent/goal move changes 2
        n_unsolvable += not cl.is_solvable(out)
        assert cl.is_solvable(cl.edit_level(lv, rng, 5, repair_level=True))
    assert np.array_equal(cl.edit_level(train[0][0], rng, 0), train[0][0])
    assert n_unsolvable < 100


def test_save_load_roundtrip(tmp_path, train):
    path = cl.save_level_set(tmp_path / "sub" / "train.npz", train[0][:20],
                             {"kind": "train", "seed": 0})
    levels, meta = cl.load_level_set(path)
    np.testing.assert_array_equal(levels, train[0][:20])
    assert levels.dtype == np.int8 and meta == {"kind": "train", "seed": 0}
    with pytest.raises(ValueError, match=r"levels\[1\]"):
        cl.save_level_set(tmp_path / "bad.npz", np.zeros((2, 3, 3), np.int8) + SMALL * 0
                          + np.stack([SMALL, np.zeros((3, 3), np.int8)]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        cl.generate_level_set("nope", 3, 0)
    with pytest.raises(ValueError, match="n_levels"):
        cl.generate_level_set("train", 0, 0)
    with pytest.raises(ValueError, match="family must be one of"):
        cl.make_layout("hexagons", np.random.default_rng(0))
    with pytest.raises(ValueError, match="lava_fraction"):
        cl.decorate_layout(np.zeros((5, 5), bool), np.random.default_rng(0),
                           lava_fraction=1.5, moss_fraction=0.1)
    assert "^" in cl.render_ascii(SMALL) and cl.render_ascii(SMALL).count("\n") == 2
