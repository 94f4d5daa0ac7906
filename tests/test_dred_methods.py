"""EL-DRED, ACCEL-D, ACCEL's easy-level rule and the LSTM (RecurrentPPO) policy of
LevelReplayPPO (arXiv:2402.03479 App. B): smoke runs and one mechanical property each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustrl.agents.dred.training import (
    AUTHORS_PRESET,
    LevelReplayPPO,
    _Phase,
    buffer_config,
    evaluate_levels,
)
from robustrl.envs.cave_levels import generate_level_set

torch.set_num_threads(1)
SMALL = dict(n_envs=4, n_steps=32, navigation_only=True, device="cpu")


@pytest.fixture(scope="module")
def train_levels():
    return generate_level_set("train", 8, seed=0)


def _record_edits(agent):
    """Wrap ``agent._accel_edits`` to record (replay phase, easy order, edited levels)."""
    calls = []
    real = agent._accel_edits

    def spy(phase):
        order = agent.easy_order(phase)
        out = real(phase)
        calls.append((phase, order, out))
        return out

    agent._accel_edits = spy
    return calls


@pytest.mark.parametrize("method", ["el_dred", "accel_d"])
def test_edit_methods_edit_the_easy_replayed_levels(train_levels, method):
    agent = LevelReplayPPO(method, train_levels, seed=4, buffer_capacity=12, **SMALL)
    calls = _record_edits(agent)
    agent.learn(total_updates=3)
    # dataset levels first visited without gradient, then replay + edit cycles
    assert agent.stats["phases"] == {"unseen": 2, "replay": 3, "edited": 3}
    assert len(calls) == 3
    for phase, order, edited in calls:
        assert phase.kind == "replay"
        bases = [phase.levels[i] for i in order[:4]]
        for k, lv in enumerate(edited):  # 5 edits change at most 10 cells of their base
            assert 0 < np.sum(lv != bases[k % 4]) <= 10 or np.array_equal(lv, bases[k % 4])
    buf = agent.buffer
    # dataset levels are never evicted, although 12 edited levels competed for 4 free slots
    assert buf.is_dataset[:8].all()
    assert all(np.array_equal(buf.levels[i], train_levels[i]) for i in range(8))
    assert buf.n_proposed == 12
    seen = buf.occupied & buf.visited
    if method == "accel_d":  # grounded_value_l1 over the whole buffer: 0 unless ever solved
        assert buf.strategy == "grounded_value_l1" and buf.secondary_strategy is None
        assert buf.occupied.all()  # admitted by score (no solved condition): the buffer is full
        assert np.all(buf.scores[seen & (buf.grounded <= 0)] == 0)
    else:  # EL-DRED: DRED's buffer, generated levels admitted only if solved
        assert buf.secondary_strategy == "grounded_value_l1"
        assert np.all(buf.grounded[buf.occupied & ~buf.is_dataset] > 0)
    agent.close()


def test_easy_rule_lowest_is_the_authors_and_highest_the_former(train_levels):
    lowest = LevelReplayPPO("accel", train_levels, seed=0, **SMALL)
    highest = LevelReplayPPO("accel", train_levels, seed=0, easy_rule="highest", **SMALL)
    for agent in (lowest, highest):
        buf = agent.buffer
        for lv in train_levels[:4]:
            buf.admit(lv, 0.0)
        buf.scores[:4] = [0.5, 0.1, 0.0, 0.3]
    # easiness = mean return - score = [0.5, -0.1, 0.9, -0.3, 0.0 (no episode) - 0.5]
    phase = _Phase("replay", True, [train_levels[i] for i in (0, 1, 2, 3)], [0, 1, 2, 3])
    phase.returns = [[1.0, 0.0], [0.0], [0.9], [0.0]]
    np.testing.assert_array_equal(lowest.easy_order(phase), [3, 1, 0, 2])
    np.testing.assert_array_equal(highest.easy_order(phase), [2, 0, 1, 3])
    with pytest.raises(ValueError, match="easy_rule"):
        LevelReplayPPO("accel", train_levels, easy_rule="easy", **SMALL)
    lowest.close()
    highest.close()


def test_buffer_configs_of_the_new_methods():
    el, dred = buffer_config("el_dred", 512), buffer_config("dred", 512)
    assert el == dred and dred["fill_threshold"] == pytest.approx(512 / 4000)
    ad = buffer_config("accel_d", 512)
    assert (ad["strategy"], ad["temperature"], ad["staleness_coef"], ad["replay_prob"]) == (
        "grounded_value_l1", 0.1, 0.3, 1.0)
    assert ad["dataset_levels_fixed"] and ad["fill_threshold"] == pytest.approx(512 / 4000)
    with pytest.raises(ValueError, match="buffer_capacity"):
        buffer_config("accel_d", 512, capacity=100)
    assert AUTHORS_PRESET["n_envs"] == 36 and AUTHORS_PRESET["policy"] == "lstm"


def test_lstm_policy_trains_evaluates_and_its_value_loss_reaches_the_lstm(train_levels,
                                                                          tmp_path):
    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentMultiInputActorCriticPolicy

    agent = LevelReplayPPO("uniform", train_levels, seed=1, policy="lstm", **SMALL)
    agent.learn(total_updates=2)
    assert isinstance(agent.model, RecurrentPPO) and agent.grad_updates == 2
    policy = agent.model.policy
    assert policy.lstm_actor.hidden_size == 256 and policy.lstm_critic is None
    res = agent.evaluate(train_levels[:3], seed=2)
    assert res.returns.shape == (3,)
    loaded = LevelReplayPPO.load_policy(agent.save(tmp_path / "lstm.pt"), device="cpu")
    again = evaluate_levels(loaded, train_levels[:3], navigation_only=True, seed=2)
    np.testing.assert_array_equal(res.returns, again.returns)

    # the value loss trains the shared LSTM (sb3-contrib's shared_lstm detaches it)
    rb = agent.model.rollout_buffer
    batch = next(rb.get(32))
    args = (batch.observations, batch.actions, batch.lstm_states, batch.episode_starts)
    for cls, reaches in ((type(policy), True), (RecurrentMultiInputActorCriticPolicy, False)):
        policy.zero_grad()
        values, _, _ = cls.evaluate_actions(policy, *args)
        values.sum().backward()
        grad = policy.lstm_actor.weight_hh_l0.grad
        assert (grad is not None and bool(grad.abs().sum() > 0)) == reaches, cls
    agent.close()


def test_n_minibatches_sets_the_ppo_batch_and_is_saved(train_levels, tmp_path):
    agent = LevelReplayPPO("uniform", train_levels, seed=0, n_minibatches=4, **SMALL)
    assert agent.model.batch_size == 4 * 32 // 4  # SMALL: 4 envs x 32 steps
    agent.learn(total_updates=1)
    # 4 minibatches x 5 epochs = 20 gradient steps in the one PPO update
    assert int(agent.model.policy.optimizer.state_dict()["state"][0]["step"]) == 4 * 5
    loaded = LevelReplayPPO.load(agent.save(tmp_path / "a.pt"), device="cpu")
    assert loaded.n_minibatches == 4 and loaded.model.batch_size == 32
    for bad in (0, 3, 4 * 32 + 1):  # 3 does not divide 128
        with pytest.raises(ValueError, match="n_minibatches"):
            LevelReplayPPO("uniform", train_levels, n_minibatches=bad, **SMALL)


def test_ppo_hyperparameters_are_validated_by_name(train_levels):
    for bad in (dict(n_epochs=0), dict(clip_range_vf=-0.1), dict(gamma=float("nan")),
                dict(learning_rate=-1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LevelReplayPPO("uniform", train_levels, **bad, **SMALL)


def test_domain_randomisation_scales_its_blocks_with_the_level_area():
    from robustrl.agents.dred.training import dr_max_blocks
    from robustrl.envs.cave_levels import generate_level_set

    assert dr_max_blocks(13) == 60  # the authors' value
    assert dr_max_blocks(5) == round(60 * 25 / 169) and dr_max_blocks(43) == 656
    assert dr_max_blocks(2) == 1  # at least one block
    small = generate_level_set("train", 4, seed=0, size=5)
    agent = LevelReplayPPO("dr", small, seed=0, **SMALL)  # random_level(5) with 60 would raise
    agent.learn(total_updates=1)
    assert agent.last_phase.levels[0].shape == (5, 5)
    agent.close()
