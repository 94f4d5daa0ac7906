"""LevelReplayPPO (SB3 PPO + level curricula): smoke runs, score updates, grounded admission,
no-gradient phases, zero-shot evaluation. Small sizes: the file runs in well under 40 s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustrl.agents.dred.training import LevelReplayPPO, evaluate_levels
from robustrl.envs.cave_levels import (
    EMPTY,
    GOAL,
    START,
    WALL,
    generate_level_set,
    is_solvable,
)

torch.set_num_threads(1)
SMALL = dict(n_envs=4, n_steps=64, navigation_only=True, device="cpu")


def _trivial(rng: np.random.Generator) -> np.ndarray:
    """Start next to the goal in an open room: a random policy solves it quickly."""
    lv = np.full((13, 13), EMPTY, dtype=np.int8)
    r, c = (int(x) for x in rng.integers(1, 12, size=2))
    lv[r, c], lv[r, c + 1] = START, GOAL
    return lv


def _impossible(rng: np.random.Generator) -> np.ndarray:
    """The goal walled in: never solved, so its grounded value stays 0."""
    lv = np.full((13, 13), EMPTY, dtype=np.int8)
    lv[5:8, 5:8] = WALL
    lv[6, 6] = GOAL
    lv[0, int(rng.integers(13))] = START
    return lv


class _MixedGenerator:
    """Stand-in for the VAE generator (same generate() contract): half trivial levels, half
    unsolvable ones, so grounded admission is checked end to end."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def generate(self):
        levels = [(_trivial if k % 2 == 0 else _impossible)(self.rng) for k in range(4)]
        return np.stack(levels), np.zeros((4, 2), dtype=int)


@pytest.fixture(scope="module")
def train_levels():
    return generate_level_set("train", 8, seed=0)


def test_dred_smoke_scores_and_grounded_admission(train_levels):
    agent = LevelReplayPPO("dred", train_levels, generator=_MixedGenerator(0), seed=0,
                           buffer_capacity=40, **SMALL)
    agent.learn(total_updates=6)
    buf = agent.buffer
    assert agent.grad_updates == 6
    # 8 dataset levels visited first (2 no-gradient phases of 4 envs), then replay + generate
    assert agent.stats["phases"] == {"unseen": 2, "replay": 6, "generated": 6}
    assert agent.stats["env_steps"] == 14 * 4 * 64
    assert buf.visited[:8].all() and np.any(buf.scores[:8] > 0)  # scores were updated
    assert buf.kappa == pytest.approx(5 / 6)  # ramp at the start of the last cycle
    # the generated levels that got in are exactly solvable ones with grounded value > 0
    gen = np.flatnonzero(buf.occupied & ~buf.is_dataset)
    assert agent.stats["generated_proposed"] == 24
    assert agent.stats["generated_admitted"] == gen.size > 0, (
        "no trivial generated level was solved in its 64-step scoring rollout")
    assert all(is_solvable(buf.levels[s]) for s in gen)
    assert np.all(buf.grounded[gen] > 0)
    assert all(np.array_equal(a, b) for a, b in zip(buf.levels[:8], train_levels, strict=True))
    summary = agent.buffer_summary()
    assert summary["buffer_generated"] == gen.size and summary["dataset_mass"] < 1.0
    agent.close()


def test_plr_scores_equal_mean_abs_gae_of_the_rollout(train_levels):
    agent = LevelReplayPPO("plr", train_levels, seed=1, **SMALL)
    agent.learn(total_updates=2)
    phase = agent.last_phase
    assert phase.kind == "replay" and phase.grad
    rb = agent.model.rollout_buffer  # still holds the last (replay) rollout
    adv = np.abs(np.asarray(rb.returns) - np.asarray(rb.values))
    if rb.generator_ready:  # PPO.train flattened it env-major: (n_envs * n_steps, 1)
        adv = adv.reshape(4, 64).T
    for slot in set(phase.slots):
        cols = [i for i, s in enumerate(phase.slots) if s == slot]
        assert agent.buffer.scores[slot] == pytest.approx(adv[:, cols].mean(), rel=1e-6)
    agent.close()


def _params(agent) -> list[np.ndarray]:
    return [p.detach().clone().numpy() for p in agent.model.policy.parameters()]


def test_robust_plr_no_gradient_on_new_levels(train_levels):
    agent = LevelReplayPPO("robust_plr", train_levels, seed=2, buffer_capacity=16, **SMALL)
    before = _params(agent)
    agent._cycle()  # cold buffer: a phase of new DR levels, scored and admitted, no update
    assert agent.last_phase.kind == "new" and not agent.last_phase.grad
    assert agent.grad_updates == 0 and agent.buffer.size == 4
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(agent), strict=True))
    agent.learn(total_updates=1)
    assert agent.grad_updates == 1 and agent.stats["phases"]["new"] >= 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, _params(agent), strict=True))
    agent.close()


def test_uniform_baseline_and_zero_shot_evaluation(train_levels, tmp_path):
    agent = LevelReplayPPO("uniform", train_levels, seed=3, **SMALL)
    agent.learn(total_updates=3)
    assert agent.grad_updates == 3 and agent.buffer is None
    assert agent.stats["env_steps"] == 3 * 4 * 64
    rng = np.random.default_rng(0)
    levels = [_trivial(rng) for _ in range(3)] + [_impossible(rng) for _ in range(3)]
    res = agent.evaluate(levels, seed=5)
    assert res.returns.shape == (6,) and not res.solved[3:].any()
    assert res.solved_rate == pytest.approx(res.solved.mean())
    assert np.all(res.returns[res.solved] > 0) and np.all(res.returns[~res.solved] == 0)
    again = evaluate_levels(agent.model, levels, navigation_only=True, seed=5)
    np.testing.assert_array_equal(res.returns, again.returns)  # same seed, same numbers
    agent.save(tmp_path / "uniform.zip")
    loaded = LevelReplayPPO.load_policy(tmp_path / "uniform.zip", device="cpu")
    from_file = evaluate_levels(loaded, levels, navigation_only=True, seed=5)
    np.testing.assert_array_equal(res.returns, from_file.returns)
    # a policy-only file of the former save() still loads
    from robustrl._artifacts import save_sb3_policy
    from robustrl.agents.dred.training import _POLICY_SHAPE

    old = {"kind": "LevelReplayPPO", "algo": "ppo", "policy": "MultiInputPolicy",
           "method": "uniform", "size": 13, "navigation_only": True, "n_steps": 64,
           "batch_size": 256, "ppo_hyperparameters": agent.ppo_hyperparameters,
           "policy_kwargs": _POLICY_SHAPE}
    old_file = save_sb3_policy(tmp_path / "old.pt", agent.model, old)
    from_old = evaluate_levels(LevelReplayPPO.load_policy(old_file, device="cpu"), levels,
                               navigation_only=True, seed=5)
    np.testing.assert_array_equal(res.returns, from_old.returns)
    agent.close()


def test_bad_arguments(train_levels):
    with pytest.raises(ValueError, match="method"):
        LevelReplayPPO("paired", train_levels, **SMALL)
    with pytest.raises(ValueError, match="generator"):
        LevelReplayPPO("dred", train_levels, **SMALL)
    with pytest.raises(ValueError, match="train_levels"):
        LevelReplayPPO("uniform", train_levels[0], **SMALL)
    with pytest.raises(ValueError, match="buffer_capacity"):
        LevelReplayPPO("dred", train_levels, generator=_MixedGenerator(), buffer_capacity=4,
                       **SMALL)


@pytest.mark.parametrize("method", ["plr", "accel"])
def test_batched_env_trains_exactly_as_the_dummy_vec_env(train_levels, method):
    """The default CaveEscapeVecEnv (levels assigned per env through set_levels) and the former
    DummyVecEnv of CaveEscapeEnv give the same episodes, hence the same per-level scores, buffer
    and parameters after a few updates."""
    agents = {vec: LevelReplayPPO(method, train_levels, seed=3, vec_env=vec, buffer_capacity=16,
                                  **dict(SMALL, n_steps=32)).learn(total_updates=3)
              for vec in ("dummy", "batched")}
    a, b = agents["dummy"], agents["batched"]
    assert type(b.venv.unwrapped).__name__ == "CaveEscapeVecEnv"
    assert a.last_phase.returns == b.last_phase.returns
    np.testing.assert_array_equal(a.buffer.scores, b.buffer.scores)
    assert np.any(a.buffer.scores > 0)
    sa, sb = a.model.policy.state_dict(), b.model.policy.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    a.close()
    b.close()


def test_agent_view_size_reaches_training_evaluation_and_saved_files(train_levels, tmp_path):
    """A non-default egocentric view is used by the training env, by ``evaluate`` and by the
    policy and agent rebuilt from a saved file (the file records it); bad views are refused."""
    agent = LevelReplayPPO("uniform", train_levels, seed=2, agent_view_size=7, **SMALL)
    assert agent.venv.unwrapped.agent_view_size == 7
    assert 7 in agent.model.observation_space["image"].shape
    agent.learn(total_updates=1)
    res = agent.evaluate(train_levels[:3], seed=1)  # a 5x5 view would not fit the policy
    agent.save(tmp_path / "view7.pt")
    loaded = LevelReplayPPO.load_policy(tmp_path / "view7.pt", device="cpu")
    assert 7 in loaded.observation_space["image"].shape
    again = evaluate_levels(loaded, train_levels[:3], navigation_only=True, seed=1)
    np.testing.assert_array_equal(res.returns, again.returns)
    full = LevelReplayPPO.load(tmp_path / "view7.pt", device="cpu")
    assert full.agent_view_size == 7
    agent.close()
    for bad in (4, 1):
        with pytest.raises(ValueError, match="agent_view_size"):
            LevelReplayPPO("uniform", train_levels, agent_view_size=bad, **SMALL)


@pytest.mark.parametrize("policy", ["mlp", "lstm"])
def test_features_dim_sets_the_shared_width_and_is_saved(train_levels, tmp_path, policy):
    """``features_dim`` is the width of the shared base (the LSTM's hidden size for
    ``policy="lstm"``); the saved file records it, so the policy and the agent rebuilt from it
    have that width and act the same; a width below 1 is refused."""
    agent = LevelReplayPPO("uniform", train_levels, seed=4, policy=policy, features_dim=16,
                           **SMALL)
    shapes = {k: tuple(v.shape) for k, v in agent.model.policy.state_dict().items()}
    assert any(16 in shape for shape in shapes.values())
    assert not any(256 in shape for shape in shapes.values())
    agent.learn(total_updates=1)
    res = agent.evaluate(train_levels[:3], seed=1)
    agent.save(tmp_path / "w16.pt")
    loaded = LevelReplayPPO.load_policy(tmp_path / "w16.pt", device="cpu")
    assert {k: tuple(v.shape) for k, v in loaded.policy.state_dict().items()} == shapes
    again = evaluate_levels(loaded, train_levels[:3], navigation_only=True, seed=1)
    np.testing.assert_array_equal(res.returns, again.returns)
    assert LevelReplayPPO.load(tmp_path / "w16.pt", device="cpu").features_dim == 16
    agent.close()
    with pytest.raises(ValueError, match="features_dim"):
        LevelReplayPPO("uniform", train_levels, features_dim=0, **SMALL)


def test_learn_leaves_no_sb3_folders_in_the_temp_directory(train_levels, tmp_path, monkeypatch):
    """SB3 configures a logger per ``learn`` call unless the model has its own, and that
    logger creates an empty ``SB3-<time>`` folder in the temp directory: one per phase, tens of
    thousands over a long run. The agent sets an output-free logger once."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    agent = LevelReplayPPO("plr", train_levels, seed=5, **SMALL)
    agent.learn(total_updates=2)
    agent.close()
    assert not list(tmp_path.glob("SB3-*"))
