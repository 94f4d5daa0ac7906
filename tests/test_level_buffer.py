"""LevelBuffer (arXiv:2402.03479, docs/algorithms/dred.md): sampling probabilities worked by hand,
staleness, supports, admission.

DRED's level-replay sampling rule (arXiv:2402.03479; docs/algorithms/dred.md). The expected
probabilities are written out as fractions derived
by hand in the comments, not recomputed with the buffer's own helpers.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.agents.dred.level_buffer import LevelBuffer, fragment_score, merge_scores


def _five_level_buffer(**kw) -> LevelBuffer:
    """Slots 0-2: dataset levels, 3-4: generated levels, 5: empty."""
    args = dict(strategy="value_l1", temperature=0.5, strategy_support="dataset",
                secondary_strategy="grounded_value_l1", secondary_temperature=1.0,
                secondary_support="buffer", secondary_coef_start=0.0, secondary_coef_end=1.0,
                staleness_coef=0.3, staleness_support="dataset", seed=0)
    args.update(kw)
    buf = LevelBuffer(6, **args)
    buf.add_dataset_levels(["d0", "d1", "d2"])
    for slot, s, s2 in ((0, 0.5, 0.0), (1, 0.1, 0.4), (2, 0.3, 0.2)):
        buf.update_scores(slot, s, s2, grounded_value=1.0)
    assert buf.admit("g3", 0.9, 0.6, grounded_value=1.0).slot == 3
    assert buf.admit("g4", 0.2, 0.1, grounded_value=1.0).slot == 4
    buf.staleness[:] = [2, 0, 6, 5, 1, 0]
    return buf


def test_hand_worked_five_level_mixture():
    buf = _five_level_buffer()
    assert buf.set_progress(0.5) == pytest.approx(0.5)  # kappa ramps 0 -> 1 linearly
    # Primary: dataset support, beta = 0.5 -> weight rank^-2. Scores 0.5, 0.1, 0.3 have ranks
    # 1, 3, 2 -> weights 1, 1/9, 1/4; total 49/36 -> P1 = (36, 4, 9) / 49 on slots (0, 1, 2).
    p1 = np.array([36 / 49, 4 / 49, 9 / 49, 0, 0, 0])
    # Secondary: whole buffer, beta = 1 -> weight 1/rank. Scores 0.0, 0.4, 0.2, 0.6, 0.1 have
    # ranks 5, 2, 3, 1, 4 -> 1/5, 1/2, 1/3, 1, 1/4; total 137/60 -> (12, 30, 20, 60, 15) / 137.
    p2 = np.array([12, 30, 20, 60, 15, 0]) / 137
    # Staleness: dataset support, c = 2, 0, 6 -> (2, 0, 6) / 8.
    pc = np.array([0.25, 0.0, 0.75, 0, 0, 0])
    expected = 0.7 * (0.5 * p1 + 0.5 * p2) + 0.3 * pc
    # e.g. slot 0: 0.7 * (0.5 * 36/49 + 0.5 * 12/137) + 0.3 * 0.25 = 0.3628 (by hand:
    # 0.7 * 0.41114 + 0.075)
    assert expected[0] == pytest.approx(0.36280, abs=5e-5)
    np.testing.assert_allclose(buf.sample_weights(), expected, rtol=1e-12, atol=1e-15)
    assert buf.sample_weights().sum() == pytest.approx(1.0)


def test_kappa_endpoints_and_supports_respected():
    buf = _five_level_buffer()
    buf.set_progress(0.0)  # kappa = 0: primary and staleness both dataset-only
    p = buf.sample_weights()
    assert p[3] == 0 and p[4] == 0 and p[5] == 0
    np.testing.assert_allclose(p[:3], 0.7 * np.array([36, 4, 9]) / 49 + 0.3 * np.array(
        [0.25, 0, 0.75]), rtol=1e-12)
    buf.set_progress(1.0)  # kappa = 1: only the secondary (whole buffer) and staleness
    np.testing.assert_allclose(buf.sample_weights()[3:5], 0.7 * np.array([60, 15]) / 137)
    # a generated-only primary support puts no primary mass on dataset levels
    gen = _five_level_buffer(strategy_support="generated", secondary_strategy=None,
                             staleness_coef=0.0)
    # generated scores 0.9, 0.2 -> ranks 1, 2 -> weights 1, 1/4 -> (4/5, 1/5)
    np.testing.assert_allclose(gen.sample_weights(), [0, 0, 0, 0.8, 0.2, 0], atol=1e-15)


def test_rank_ties_and_unvisited_get_no_mass():
    buf = LevelBuffer(4, temperature=1.0, staleness_coef=0.0, seed=0)
    buf.add_dataset_levels("abcd")
    buf.update_scores(0, 0.2)
    buf.update_scores(2, 0.2)
    buf.update_scores(3, 0.7)
    # slot 1 unvisited -> 0; ranks: slot 3 -> 1, tie slots 0 and 2 -> 2 and 3 (lower index first)
    np.testing.assert_allclose(buf.sample_weights(), np.array([1 / 2, 0, 1 / 3, 1]) / (11 / 6))


def test_staleness_increments_and_resets():
    buf = LevelBuffer(4, staleness_coef=0.3, fill_threshold=0.0, seed=1)
    buf.add_dataset_levels("abc")
    for slot in range(3):
        buf.update_scores(slot, 0.1 * slot)
    before = buf.staleness.copy()
    drawn = buf.sample_replay()
    expected = before[:3] + 1
    expected[drawn] = 0
    np.testing.assert_array_equal(buf.staleness[:3], expected)
    assert buf.staleness[3] == 0  # the empty slot does not age
    for _ in range(20):
        prev = buf.staleness.copy()
        d = buf.sample_replay()
        assert buf.staleness[d] == 0
        others = [i for i in range(3) if i != d]
        np.testing.assert_array_equal(buf.staleness[others], prev[others] + 1)
    assert buf.sample_count == 21


def test_unseen_levels_first_then_replay_after_fill_threshold():
    buf = LevelBuffer(8, fill_threshold=0.5, replay_prob=1.0, seed=2)
    buf.add_dataset_levels(range(4))
    assert not buf.sample_replay_decision()  # nothing visited
    seen = {buf.sample_unseen() for _ in range(4)}
    assert seen == {0, 1, 2, 3} and buf.sample_unseen() is None
    assert buf.proportion_filled == 0.5 and buf.sample_replay_decision()
    never = LevelBuffer(8, fill_threshold=0.5, replay_prob=0.0, seed=2)
    never.add_dataset_levels(range(4))
    for _ in range(4):
        never.sample_unseen()
    assert not any(never.sample_replay_decision() for _ in range(50))


def test_dataset_levels_never_evicted():
    buf = LevelBuffer(5, strategy="value_l1", strategy_support="dataset",
                      secondary_strategy="grounded_value_l1", secondary_support="buffer",
                      secondary_coef_end=1.0, seed=3)
    buf.add_dataset_levels(["d0", "d1", "d2"])
    for slot in range(3):
        buf.update_scores(slot, 0.0, 0.0, grounded_value=0.0)  # lowest possible scores
    rng = np.random.default_rng(0)
    admitted = 0
    for i in range(40):
        s2 = float(rng.uniform(0.01, 1.0))
        admitted += buf.admit(f"g{i}", s2, s2, grounded_value=0.5).slot is not None
    assert buf.levels[:3] == ["d0", "d1", "d2"] and buf.is_dataset[:3].all()
    assert admitted >= 2 and buf.n_generated == 2
    # a buffer holding only dataset levels rejects every new level
    full = LevelBuffer(2, secondary_strategy="grounded_value_l1", strategy_support="dataset",
                       seed=0)
    full.add_dataset_levels(["a", "b"])
    assert full.admit("g", 9.0, 9.0, grounded_value=1.0).slot is None
    assert full.levels == ["a", "b"]


def test_replacement_takes_lowest_weight_slot_only_if_score_high_enough():
    buf = LevelBuffer(3, strategy="positive_value_loss", temperature=1.0, staleness_coef=0.0,
                      dataset_levels_fixed=True, seed=0)
    for name, score in (("a", 0.5), ("b", 0.2), ("c", 0.8)):
        assert buf.admit(name, score).slot is not None  # empty slots are always filled
    # lowest replay weight = lowest score = slot 1 ("b", 0.2)
    assert buf.next_slot() == 1
    assert buf.admit("low", 0.1).slot is None  # 0.1 < 0.2
    res = buf.admit("eq", 0.2)  # >= its score: replaces
    assert res.slot == 1 and res.evicted == "b" and buf.levels[1] == "eq"


def test_grounded_zero_generated_level_rejected():
    buf = LevelBuffer(10, strategy_support="dataset", secondary_strategy="grounded_value_l1",
                      secondary_support="buffer", seed=0)
    buf.add_dataset_levels(["d"])
    returns, values = np.array([0.5, 0.2, 0.9]), np.array([0.1, 0.4, 0.3])
    # never solved: G = 0 -> grounded_value_l1 = 0 -> rejected although value_l1 > 0
    s = fragment_score("value_l1", returns, values)
    s2 = fragment_score("grounded_value_l1", returns, values, grounded_value=0.0)
    assert s > 0 and s2 == 0.0
    assert buf.admit("unsolved", s, s2, grounded_value=0.0).slot is None
    assert buf.n_generated == 0
    s2 = fragment_score("grounded_value_l1", returns, values, grounded_value=0.7)
    assert buf.admit("solved", s, s2, grounded_value=0.7).slot == 1


def test_fragment_scores_by_hand():
    r, v = np.array([1.0, 0.0, 0.5, 0.0]), np.array([0.5, 0.5, 0.5, -0.5])
    # advantages 0.5, -0.5, 0, 0.5
    assert fragment_score("value_l1", r, v) == pytest.approx(1.5 / 4)
    assert fragment_score("positive_value_loss", r, v) == pytest.approx(1.0 / 4)
    assert fragment_score("gae", r, v) == pytest.approx(0.5 / 4)
    assert fragment_score("grounded_value_l1", r, v, grounded_value=0.3) == pytest.approx(
        1.5 / 4)
    # 10 steps at 0.2 and 30 at 0.6: (2 + 18) / 40
    assert merge_scores([0.2, 0.6], [10, 30]) == pytest.approx(0.5)


@pytest.mark.parametrize("kw", [dict(capacity=0), dict(temperature=0.0),
                                dict(strategy="bogus"), dict(strategy_support="all"),
                                dict(staleness_coef=1.5), dict(replay_prob=-0.1),
                                dict(secondary_fraction_start=0.5, secondary_fraction_end=0.5)])
def test_bad_arguments(kw):
    args = dict(capacity=4)
    args.update(kw)
    with pytest.raises(ValueError):
        LevelBuffer(**args)
