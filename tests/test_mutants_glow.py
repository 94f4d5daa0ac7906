"""Hand-computed checks that kill the mutants `tools/mutate.py` found surviving in GLOW and
HyGLOW on finite classes (agents/glow.py, agents/hyglow.py; arXiv:2401.09681, Algorithms 1
and 3). docs/dev/mutation.md lists the mutants (third round). Each test's docstring names the
bug it catches; expected numbers are worked out by hand in the test.

The instances are one-state, one-action MDPs, small enough that every statistic is known:
``H = 1``, reward ``r = 0.5``, so a value table is one number ``f`` and its residual on every
tuple is ``Delta = f - r``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl.agents.glow import GLOW
from robustrl.agents.hyglow import HyGLOW
from robustrl.models import FiniteMDP


def _one_state_mdp(H: int = 1, reward: float = 0.5) -> FiniteMDP:
    return FiniteMDP(np.ones((H, 1, 1, 1)), np.full((H, 1, 1), reward), np.ones(1))


def _two_tables(f0: float = 0.8, f1: float = 1.0) -> np.ndarray:
    """``F = {f0, f1}``, shape ``(2, H=1, S=1, A=1)``."""
    return np.array([f0, f1]).reshape(2, 1, 1, 1)


# ------------------------------------------------------------------------------------------
# agents/glow.py
# ------------------------------------------------------------------------------------------
def test_glow_empty_confidence_set_takes_the_least_violating_table_by_hand():
    """Bugs: the fallback on an empty confidence set taking the MOST violating table (`argmin`
    -> `argmax`), the plain-residual radius dividing by the weight bound instead of
    multiplying, or the episode counter not counting.

    ``F = {0.8, 1.0}``, ``r = 0.5``, ``W = {1}``, ``penalty=False`` (``alpha = 0``),
    ``gamma0 = 0.5``, ``kappa = 1e-3``, ``K = 3``, ``T = 2``, ``delta = 0.1``. Round 1: every f
    is in ``F_1``; optimism picks ``f = 1.0`` (index 1). Round 2: ``n_2 = 3`` tuples,
    ``gamma_2 = 0.5``, so ``c = min(1, 0.5) = 0.5`` and ``L(f) = c Delta = (0.15, 0.25)``;
    ``L = log(H |F| |W| T / delta) = log 40``,
    ``beta_2 = kappa min(gamma_2, max W) H sqrt(2 L / n_2) = 1e-3 * 0.5 * sqrt(2 log 40 / 3)``.
    Both violate, so the set is empty and the least violating (index 0) is taken."""
    model = _one_state_mdp()
    agent = GLOW(model, _two_tables(), np.ones((1, 1, 1, 1)), penalty=False, gamma0=0.5,
                 kappa=1e-3, episodes_per_round=3, seed=0).learn(total_rounds=2)
    beta = 1e-3 * 0.5 * math.sqrt(2 * math.log(40.0) / 3)
    np.testing.assert_array_equal(agent.selected_, [1, 0])
    assert agent.empty_rounds_ == [2]
    assert agent.betas_[1] == pytest.approx(beta, rel=1e-12)
    np.testing.assert_allclose(agent.max_violation_[1], [0.15 - beta, 0.25 - beta], rtol=1e-12)
    assert agent.n_episodes_ == 6 and agent.num_timesteps == 6
    assert agent._counts.sum() == 6
    assert agent.mixture_value_ == pytest.approx(0.5)  # every policy is optimal: regret 0
    assert agent.Q_.item() == 0.8  # the last selected table, index 0 (not index 1)
    assert agent._init_counts.sum() == 6  # one reset per episode, the round's first reused


def test_glow_save_load_keeps_a_selection_beyond_the_number_of_actions(tmp_path):
    """Bugs: the loader's bound on `selected_` read from the wrong axis of `value_class`
    (``A - 1 = 0`` instead of ``|F| - 1 = 1``: the saved selection ``[1, 0]`` is rejected) or
    widened to ``|F| + 1`` (an index past the class accepted, an IndexError instead of a
    ValueError naming the array)."""
    model = _one_state_mdp()
    agent = GLOW(model, _two_tables(), np.ones((1, 1, 1, 1)), penalty=False, gamma0=0.5,
                 kappa=1e-3, seed=0).learn(total_rounds=2)
    np.testing.assert_array_equal(agent.selected_, [1, 0])
    path = agent.save(tmp_path / "glow.npz")
    back = GLOW.load(path, model)
    np.testing.assert_array_equal(back.selected_, [1, 0])
    assert back.Q_.item() == 0.8
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    arrays["selected_"] = np.array([1, 2])
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="selected_"):
        GLOW.load(bad, model)


def test_glow_plain_residual_radius_and_tabular_log_term_by_hand():
    """Bugs: the plain-residual radius ``beta_t = kappa B H sqrt(2 L / n_t)`` dividing by
    ``H`` (invisible at ``H = 1``), or the tabular class's covering term using
    ``n_T = (T - 2) K`` instead of ``(T - 1) K``.

    ``H = 2``, ``S = A = 1``, ``|F| = 2``, ``|W| = 1``, ``delta = 0.1``, ``K = 3``, ``T = 5``,
    ``gamma0 = 0.5``, ``kappa = 2``: at ``t = 3``, ``gamma_3 = 0.5 * 2 = 1``, ``B = min(1, 1) = 1``,
    ``n_3 = 6``, ``L = log(2 * 2 * 1 * 5 / 0.1) = log 200``, so
    ``beta_3 = 2 * 1 * 2 * sqrt(2 log 200 / 6)``. Tabular ``W``: ``L = log(2 * 2 * 5 / 0.1)
    + S A log(e + gamma_T n_T)`` with ``gamma_5 = 0.5 * 4 = 2`` and ``n_5 = 4 * 3 = 12``."""
    model = _one_state_mdp(H=2)
    F = np.ones((2, 2, 1, 1))
    plain = GLOW(model, F, np.ones((1, 2, 1, 1)), penalty=False, gamma0=0.5, kappa=2.0,
                 episodes_per_round=3)
    alpha, beta, gamma = plain.schedule(3, 5)
    assert (alpha, gamma) == (0.0, 1.0)
    assert beta == pytest.approx(4.0 * math.sqrt(2 * math.log(200.0) / 6), rel=1e-12)
    tab = GLOW(model, F, "tabular", gamma0=0.5, episodes_per_round=3)
    assert tab.log_term(5) == pytest.approx(math.log(200.0) + math.log(math.e + 24.0), rel=1e-12)


def test_occupancy_rejects_negative_probabilities():
    """Bug: a probability table with negative entries accepted (`low=0.0` -> `-1.0`). The
    occupancy of the one-state MDP under the uniform table is 1 at every step."""
    from robustrl.agents.glow import occupancy

    model = _one_state_mdp(H=2)
    np.testing.assert_allclose(occupancy(model, np.ones((2, 1, 1))), np.ones((2, 1, 1)))
    with pytest.raises(ValueError, match="policy entries must be >= 0"):
        occupancy(model, np.full((2, 1, 1), -0.5))


def test_glow_unfitted_state_shapes_and_no_mixture_value():
    """Bugs: the empty histories of an unfitted agent with the wrong shapes (`(1, |F|)`,
    `(0, H)`, `(0, A)` instead of `(0, |F|)`), or `mixture_value_` computed from an empty
    regret history (`len(regret_) == 0` -> `== -1`, a NaN mean) instead of None. ``|F| = 2``,
    ``H = A = S = 1`` tell the axes apart."""
    agent = GLOW(_one_state_mdp(), _two_tables(), np.ones((1, 1, 1, 1)))
    assert agent.selected_.shape == (0,) and agent.betas_.shape == (0,)
    assert agent.in_set_.shape == (0, 2) and agent.max_violation_.shape == (0, 2)
    assert agent.policies_.shape == (0, 1, 1)
    assert agent.mixture_value_ is None


def test_glow_rejects_a_nan_weight_anywhere():
    """Bug: a weight class with one NaN entry accepted (`np.isnan(W).any()` -> `.all()`): NaN
    passes the ``>= 0`` check and would poison the objective of one step."""
    W = np.ones((2, 1, 1, 1))
    W[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="weight_class must not contain NaN"):
        GLOW(_one_state_mdp(), _two_tables(), W)


def test_glow_callback_sees_the_rounds_played_so_far():
    """Bug: the per-round store (for checkpoints) run only when there is NO callback
    (`callback is not None` -> `is None`): a callback would then see no selection until the
    end. With ``T = 3`` the callback sees 1, 2 and 3 selections."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Seen(BaseCallback):
        def __init__(self):
            super().__init__()
            self.lengths = []

        def _on_step(self) -> bool:
            self.lengths.append(len(self.model.selected_))
            return True

    seen = Seen()
    GLOW(_one_state_mdp(), _two_tables(), np.ones((1, 1, 1, 1)), seed=0).learn(
        total_rounds=3, callback=seen)
    assert seen.lengths == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# agents/hyglow.py
# ------------------------------------------------------------------------------------------
def test_hyglow_schedule_with_several_episodes_per_round_by_hand():
    """Bug: the effective round ``1 + n_eff / K`` computed as ``1 + n_eff K`` (equal for
    ``K = 1``, which is all the other tests use). ``pooled`` schedule, 4 offline tuples,
    ``K = 2``, round ``t = 3``: ``n_eff = 4 + 2 * 2 = 8``, effective round ``1 + 8/2 = 5``, so
    ``alpha = alpha0 / (5 - 1) = 0.7 / 4`` and ``gamma = gamma0 (5 - 1) = 0.4``."""
    model = _one_state_mdp()
    data = (np.zeros(4, int), np.zeros(4, int), np.zeros(4, int), np.full(4, 0.5),
            np.zeros(4, int))
    agent = HyGLOW(model, _two_tables(), np.ones((1, 1, 1, 1)), data, alpha0=0.7, gamma0=0.1,
                   episodes_per_round=2, offline_schedule="pooled")
    alpha, gamma = agent.hybrid_schedule(3, 10)
    assert alpha == pytest.approx(0.7 / 4, rel=1e-12)
    assert gamma == pytest.approx(0.4, rel=1e-12)


def test_hyglow_offline_size_is_the_largest_step_and_states_must_be_nonnegative():
    """Bugs: `n_offline_` the SMALLEST number of offline tuples over the steps (`max` ->
    `min`), or a negative state accepted (`arr.min() < 0` -> `arr.max() < 0`). ``H = 2``: 3
    tuples at step 0 and 1 at step 1, so ``n_offline_ = 3``."""
    model = _one_state_mdp(H=2)
    F = np.ones((2, 2, 1, 1))
    data = (np.array([0, 0, 0, 1]), np.zeros(4, int), np.zeros(4, int), np.full(4, 0.5),
            np.zeros(4, int))
    agent = HyGLOW(model, F, np.ones((1, 2, 1, 1)), data)
    assert agent.n_offline_ == 3
    bad = (data[0], np.array([0, -1, 0, 0]), *data[2:])
    with pytest.raises(ValueError, match=r"offline_dataset states must be integers in \[0, 0\]"):
        HyGLOW(model, F, np.ones((1, 2, 1, 1)), bad)


def test_hyglow_unfitted_objective_history_has_one_column_per_table():
    """Bug: the empty objective history of an unfitted HyGLOW shaped ``(0, A)`` instead of
    ``(0, |F|)`` (``|F| = 2``, ``A = 1``)."""
    agent = HyGLOW(_one_state_mdp(), _two_tables(), np.ones((1, 1, 1, 1)))
    assert agent.objective_values_.shape == (0, 2)


def test_hyglow_acts_with_the_last_selected_table():
    """Bug: `Q_` taken from the second round's table (`selected_[-1]` -> `selected_[1]`).
    ``F = {1.0, 0.8}`` (``|Delta| = 0.5, 0.3``), ``W = {1, 0}``, no offline data, ``K = 1``,
    ``alpha0 = 0.8``, ``gamma0 = 1``: round ``t`` has ``n_eff = t - 1`` online tuples,
    ``alpha_t = 0.8 / n_eff``, ``c = min(1, gamma0 n_eff) = 1``, and the two-sided objective is
    ``max(0, |Delta| - alpha_t)`` (``w = 0`` gives 0). Round 1: no data, index 0. Round 2
    (``alpha = 0.8``): both 0, the tie goes to index 0. Round 3 (``alpha = 0.4``):
    ``(0.1, 0)``, index 1. So ``selected_ = [0, 0, 1]`` and ``Q_ = 0.8``."""
    W = np.stack([np.ones((1, 1, 1)), np.zeros((1, 1, 1))])
    agent = HyGLOW(_one_state_mdp(), _two_tables(1.0, 0.8), W, alpha0=0.8, gamma0=1.0, seed=0,
                   offline_schedule="pooled").learn(total_rounds=3)
    np.testing.assert_array_equal(agent.selected_, [0, 0, 1])
    np.testing.assert_allclose(agent.objective_values_, [[0, 0], [0, 0], [0.1, 0]], atol=1e-15)
    assert agent.Q_.item() == 0.8
    assert agent.predict(np.array([0, 0]))[0] == 0
