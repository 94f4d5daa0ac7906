"""CaveEscapeVecEnv: the batched Cave Escape against DummyVecEnv over CaveEscapeEnv (bit-identical
observations, rewards, terminations, truncations, terminal observations), its kernels against
their NumPy twins, SB3 PPO on it, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.vec_env import DummyVecEnv

from robustrl._kernels import cave_escape as kernels
from robustrl.agents.dred.training import LevelWrapper
from robustrl.envs.cave_escape import _ENC, CaveEscapeEnv
from robustrl.envs.cave_escape_vec import CaveEscapeVecEnv
from robustrl.envs.cave_levels import generate_level_set, random_level
from robustrl.reference import cave_escape as twin


def _small_levels(seed: int, k: int, size: int) -> np.ndarray:
    """Levels with few blocks, so that random actions reach goals and lava often."""
    rng = np.random.default_rng(seed)
    return np.stack([random_level(rng, size, max_blocks=size) for _ in range(k)])


def _assert_same_step(out_ref, out_vec, t):
    (o1, r1, d1, i1), (o2, r2, d2, i2) = out_ref, out_vec
    for key in ("image", "direction"):
        assert o1[key].dtype == o2[key].dtype and np.array_equal(o1[key], o2[key]), (t, key)
    assert r1.dtype == r2.dtype and np.array_equal(r1, r2), (t, r1, r2)
    assert np.array_equal(d1, d2), t
    for i in np.flatnonzero(d1):
        for key in ("TimeLimit.truncated", "solved", "level_size"):
            assert i1[i][key] == i2[i][key], (t, i, key)
        t1, t2 = i1[i]["terminal_observation"], i2[i]["terminal_observation"]
        assert np.array_equal(t1["image"], t2["image"]) and t1["direction"] == t2["direction"]
        if "episode_return" in i1[i]:  # LevelWrapper's
            assert i1[i]["episode_return"] == i2[i]["episode_return"]


def _compare(ref, vec, rng, n_steps, levels, switch, n_actions):
    """Random rollout of both; every 37 steps ``switch`` assigns new levels to a few
    environments, every 151 steps both are reseeded and reset. Returns event counts."""
    n = vec.num_envs
    counts = dict(goal=0, lava=0, truncated=0, switches=0)
    o1, o2 = ref.reset(), vec.reset()
    assert all(np.array_equal(o1[k], o2[k]) for k in o1)
    for t in range(n_steps):
        if t % 37 == 20:
            idx = rng.choice(n, size=max(1, n // 2), replace=False).tolist()
            switch(idx, levels[rng.integers(len(levels), size=len(idx))])
            counts["switches"] += 1
        if t % 151 == 100:
            ref.seed(t)
            vec.seed(t)
            o1, o2 = ref.reset(), vec.reset()
            assert all(np.array_equal(o1[k], o2[k]) for k in o1), t
        actions = rng.integers(n_actions, size=n)
        out_ref, out_vec = ref.step(actions), vec.step(actions)
        _assert_same_step(out_ref, out_vec, t)
        for i in np.flatnonzero(out_ref[2]):
            info = out_ref[3][i]
            if info["TimeLimit.truncated"]:
                counts["truncated"] += 1
            elif out_ref[1][i] > 0:
                counts["goal"] += 1
            else:
                counts["lava"] += 1
    return counts


@pytest.mark.parametrize("navigation_only,size,view,max_steps", [
    (False, 8, 5, 40), (True, 9, 3, 25), (False, 13, 7, 90)])
def test_matches_dred_pipeline_with_level_switches(navigation_only, size, view, max_steps):
    """Against today's pipeline (DummyVecEnv of LevelWrapper(CaveEscapeEnv), levels set through
    env_method('set_level')): domain-randomisation levels until a level is set, then switches
    (DR levels need ``size >= 8``: ``random_level``'s default 60 blocks)."""
    n, rng = 6, np.random.default_rng(size)
    levels = (_small_levels(1, 12, size) if size < 13
              else generate_level_set("train", 6, seed=1))

    def make(i):
        return lambda: LevelWrapper(CaveEscapeEnv(size=size, max_steps=max_steps,
                                                  agent_view_size=view,
                                                  navigation_only=navigation_only))

    ref = DummyVecEnv([make(i) for i in range(n)])
    vec = CaveEscapeVecEnv(None, n, size=size, max_steps=max_steps, agent_view_size=view,
                           navigation_only=navigation_only)
    assert vec.observation_space == ref.observation_space
    assert vec.action_space == ref.action_space
    ref.seed(3)
    vec.seed(3)

    def switch(idx, lvs):
        for i, lv in zip(idx, lvs, strict=True):
            ref.env_method("set_level", lv, indices=[i])
            vec.env_method("set_level", lv, indices=[i])

    counts = _compare(ref, vec, rng, 400, levels, switch, vec.action_space.n)
    assert counts["switches"] > 5 and counts["truncated"] > 0
    assert counts["lava"] > 0
    if size < 13:  # random actions reach the goal of small levels
        assert counts["goal"] > 0
    for i in range(n):
        assert np.array_equal(vec.get_attr("level", [i])[0], ref.get_attr("level", [i])[0])
        assert vec.get_attr("agent_pos", [i])[0] == tuple(ref.get_attr("agent_pos", [i])[0])
        assert vec.get_attr("agent_dir", [i]) == ref.get_attr("agent_dir", [i])
        assert vec.get_attr("step_count", [i]) == ref.get_attr("step_count", [i])


def test_matches_bare_env_with_options_and_set_levels():
    """Against DummyVecEnv of bare CaveEscapeEnv: levels at construction, ``set_options`` and
    ``set_levels``/``set_attr`` switches (persisting over resets as ``options["level"]``)."""
    n, size, rng = 5, 5, np.random.default_rng(7)
    levels = _small_levels(2, 10, size)
    ref = DummyVecEnv([lambda i=i: CaveEscapeEnv(levels[i], max_steps=30) for i in range(n)])
    vec = CaveEscapeVecEnv(levels[:n], max_steps=30)
    ref.seed(11)
    vec.seed(11)

    def switch(idx, lvs):
        opts = [{} for _ in range(n)]
        for i, lv in zip(idx, lvs, strict=True):
            opts[i] = {"level": lv}
        ref.set_options(opts)  # used at the next reset(), as CaveEscapeEnv's options["level"]
        if len(idx) % 2:
            vec.set_levels(idx, lvs)
        else:
            vec.set_attr("level", lvs[0], indices=idx)
            ref.set_options([{"level": lvs[0]} if i in idx else {} for i in range(n)])
        o1, o2 = ref.reset(), vec.reset()
        assert all(np.array_equal(o1[k], o2[k]) for k in o1)

    counts = _compare(ref, vec, rng, 300, levels, switch, 7)
    assert counts["goal"] > 0 and counts["lava"] > 0 and counts["truncated"] > 0


def test_goal_on_the_last_step_is_terminal_not_truncated():
    """Goal reached on step ``max_steps``: terminated with reward 0.1 and
    ``TimeLimit.truncated`` False, as DummyVecEnv reports it; the others are truncated."""
    level = np.zeros((4, 4), dtype=np.int8)
    level[0, 0], level[0, 1] = 4, 5  # START, GOAL to its right (direction 0)
    n = 16
    ref = DummyVecEnv([lambda: CaveEscapeEnv(level, max_steps=1)] * n)
    vec = CaveEscapeVecEnv(level, n, max_steps=1)
    ref.seed(0)
    vec.seed(0)
    assert np.array_equal(ref.reset()["image"], vec.reset()["image"])
    out_ref, out_vec = ref.step(np.full(n, 2)), vec.step(np.full(n, 2))
    _assert_same_step(out_ref, out_vec, 0)
    rewards, dones, infos = out_vec[1], out_vec[2], out_vec[3]
    goal = rewards > 0
    assert dones.all() and 0 < goal.sum() < n
    assert np.all(rewards[goal] == np.float32(1 - 0.9 * (1 / 1)))
    assert [info["TimeLimit.truncated"] for info in infos] == (~goal).tolist()
    assert [info["solved"] for info in infos] == goal.tolist()


def _random_state(seed: int, size: int, view: int, n: int, max_steps: int):
    """A CaveEscapeVecEnv after a few random steps (varied positions, directions, counters)."""
    rng = np.random.default_rng(seed)
    vec = CaveEscapeVecEnv(_small_levels(seed, n, size), agent_view_size=view,
                           max_steps=max_steps)
    vec.seed(seed)
    vec.reset()
    for _ in range(int(rng.integers(0, 3 * max_steps))):
        vec.step(rng.integers(7, size=n))
    vec.set_levels(np.flatnonzero(rng.random(n) < 0.5), _small_levels(seed + 1, 1, size)[0])
    return vec, rng


_STATE = ("_cells", "_pos", "_dirs", "_steps", "_returns", "_next_levels", "_next_start",
          "_next_dir", "_dirty")
_OUT = ("_rewards", "_terminated", "_truncated", "_image", "_direction", "_term_image",
        "_term_dir", "_term_return", "_term_length")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), size=st.integers(3, 9), view=st.sampled_from([3, 5, 7]),
       n=st.integers(1, 9), max_steps=st.integers(1, 12))
def test_kernels_match_numpy_twin(seed, size, view, n, max_steps):
    vec, rng = _random_state(seed, size, view, n, max_steps)
    actions = rng.integers(7, size=n)
    a = {k: getattr(vec, k).copy() for k in _STATE + _OUT}
    b = {k: getattr(vec, k).copy() for k in _STATE + _OUT}
    n_a = kernels.step_batch(actions, *(a[k] for k in _STATE), max_steps, _ENC,
                             *(a[k] for k in _OUT))
    n_b = twin.step_batch(actions, *(b[k] for k in _STATE), max_steps, _ENC,
                          *(b[k] for k in _OUT))
    assert n_a == n_b
    done = a["_terminated"] | a["_truncated"]
    for k in _STATE + _OUT:
        if k.startswith("_term_"):  # written for finished environments only
            assert np.array_equal(a[k][done], b[k][done]), k
        else:
            assert np.array_equal(a[k], b[k]), k
    idx = np.flatnonzero(rng.random(n) < 0.5)
    kernels.reset_batch(idx, *(a[k] for k in _STATE), _ENC, a["_image"], a["_direction"])
    twin.reset_batch(idx, *(b[k] for k in _STATE), _ENC, b["_image"], b["_direction"])
    for k in _STATE + ("_image", "_direction"):
        assert np.array_equal(a[k], b[k]), k


def test_observe_matches_minigrid_for_every_direction():
    """The view kernel against MiniGrid's own gen_obs (Grid.slice/rotate_left/encode)."""
    level = generate_level_set("train", 1, seed=4)[0]
    env = CaveEscapeEnv(level)
    env.reset(seed=0)
    image = np.zeros((5, 5, 3), dtype=np.uint8)
    vec = CaveEscapeVecEnv(level)
    cells = vec._cells[0]
    from robustrl._kernels.cave_escape import install_level

    install_level(cells, level, 5)
    for x, y in [(1, 1), (7, 7), (13, 2), (6, 13)]:
        for d in range(4):
            env.agent_pos, env.agent_dir = (x, y), d
            expected = super(CaveEscapeEnv, env).gen_obs()["image"]
            kernels.observe(cells, x, y, d, _ENC, image)
            assert np.array_equal(image, expected), (x, y, d)


def test_sb3_ppo_learns_on_it():
    from stable_baselines3 import PPO

    from robustrl.agents.dred.policy import policy_kwargs

    vec = CaveEscapeVecEnv(_small_levels(0, 8, 5), max_steps=10)
    model = PPO("MultiInputPolicy", vec, n_steps=16, batch_size=64, n_epochs=1, seed=0,
                policy_kwargs=policy_kwargs(features_dim=16, head_dim=8), device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256
    assert len(model.ep_info_buffer) > 0  # the infos' "episode" entries reached SB3's logger
    assert all(0 < ep["l"] <= 10 for ep in model.ep_info_buffer)


def test_seeded_runs_repeat_and_torch_observations():
    torch = pytest.importorskip("torch")
    levels = _small_levels(5, 4, 6)
    a = CaveEscapeVecEnv(levels, max_steps=20)
    b = CaveEscapeVecEnv(levels, max_steps=20, torch_device="cpu")
    c = CaveEscapeVecEnv(levels, max_steps=20)
    a.seed(1)
    b.seed(1)
    c.seed(2)
    oa, ob, oc = a.reset(), b.reset(), c.reset()
    assert isinstance(ob["image"], torch.Tensor)
    rng = np.random.default_rng(0)
    differs = not np.array_equal(oa["direction"], oc["direction"])
    for _ in range(60):
        act = rng.integers(7, size=4)
        (oa, ra, da, _), (ob, rb, db, _), (oc, *_) = a.step(act), b.step(act), c.step(act)
        for key in oa:
            assert np.array_equal(oa[key], ob[key].numpy())
        assert np.array_equal(ra, rb) and np.array_equal(da, db)
        differs |= not np.array_equal(oa["image"], oc["image"])
    assert differs  # another seed gives other start directions


def test_bad_input_raises():
    level = _small_levels(0, 1, 5)[0]
    with pytest.raises(ValueError, match="see_through_walls"):
        CaveEscapeVecEnv(level, see_through_walls=False)
    with pytest.raises(ValueError, match="one level per environment"):
        CaveEscapeVecEnv(np.stack([level, level]), n_envs=3)
    with pytest.raises(ValueError, match=r"levels\[1\]"):
        CaveEscapeVecEnv(np.stack([level, np.zeros_like(level)]))
    with pytest.raises(ValueError, match="size must be >= 8 when levels is None"):
        CaveEscapeVecEnv(None, 2, size=7)
    with pytest.raises(ValueError, match="agent_view_size"):
        CaveEscapeVecEnv(level, agent_view_size=4)
    vec = CaveEscapeVecEnv(level, n_envs=2, navigation_only=True)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(2, dtype=int))
    vec.reset()
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 2\]"):
        vec.step(np.array([0, 3]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        vec.step(np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="5x5"):
        vec.set_levels([0], _small_levels(0, 1, 6)[0])
    with pytest.raises(ValueError, match="env_indices"):
        vec.set_levels([2], level)
    with pytest.raises(AttributeError, match="available"):
        vec.get_attr("grid")
    with pytest.raises(AttributeError, match="only set 'level'"):
        vec.set_attr("max_steps", 3)
    with pytest.raises(AttributeError, match="set_level"):
        vec.env_method("render")
    assert vec.env_is_wrapped(DummyVecEnv) == [False, False]
    assert vec.get_attr("render_mode") == [None, None]
