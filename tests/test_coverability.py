"""Exact coverability (theory/coverability.py): DP identity vs LP vs hand derivation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robustrl.envs.combination_lock import combination_lock, combination_lock_coverability
from robustrl.envs.layered_mdp import layered_tabular_mdp
from robustrl.models import FiniteMDP
from robustrl.theory.coverability import (
    coverability_coefficient,
    coverability_coefficient_lp,
    max_occupancy,
    max_occupancy_lp,
)


def _occupancy(model: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """d_h^pi(s, a) of a deterministic Markov policy (H, S) by a forward pass."""
    H, S, A = model.horizon, model.n_states, model.n_actions
    d = np.zeros((H, S, A))
    state = model.initial_distribution.copy()
    for h in range(H):
        d[h, np.arange(S), policy[h]] = state
        state = np.einsum("sa,sat->t", d[h], model.P[h])
    return d


@pytest.mark.parametrize("H,S,A", [(1, 2, 2), (2, 3, 2), (4, 3, 2), (3, 5, 3), (5, 6, 2),
                                   (2, 4, 4), (6, 2, 3)])
def test_lock_coverability_matches_derivation_and_lp(H, S, A):
    model = combination_lock(H, S, A, seed=H + S + A)
    expected = A * (1 + min((H - 1) * (A - 1), S - 1))
    assert combination_lock_coverability(H, S, A) == expected
    assert coverability_coefficient(model) == expected
    assert coverability_coefficient_lp(model) == pytest.approx(expected, abs=1e-9)
    assert expected <= S * A  # the tabular bound on coverability


def test_lock_per_step_reachability():
    # H=5, S=4, A=2: r_h = 1 + min(h, 3) reachable states
    per = coverability_coefficient(combination_lock(5, 4, 2, seed=0), per_step=True)
    np.testing.assert_array_equal(per, 2 * np.array([1, 2, 3, 4, 4]))


def test_perturbed_lock_identity_equals_lp():
    model = combination_lock(4, 3, 3, seed=1, perturbation=0.3)
    per = coverability_coefficient(model, per_step=True)
    np.testing.assert_allclose(coverability_coefficient_lp(model, per_step=True), per,
                               atol=1e-9)
    # step 1: dead states 1, 2 reached surely, the good state with probability 0.7
    assert per[1] == pytest.approx(3 * (1 + 1 + 0.7))


@pytest.mark.parametrize("seed", range(4))
def test_random_layered_identity_equals_lp(seed):
    model = layered_tabular_mdp(4, 3, 2, seed, concentration=0.3)
    np.testing.assert_allclose(max_occupancy_lp(model), max_occupancy(model), atol=1e-9)
    np.testing.assert_allclose(coverability_coefficient_lp(model, per_step=True),
                               coverability_coefficient(model, per_step=True), atol=1e-9)
    c = coverability_coefficient(model)
    assert model.n_actions <= c <= model.n_states * model.n_actions + 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_max_occupancy_matches_brute_force_over_deterministic_policies(seed):
    model = layered_tabular_mdp(3, 2, 2, seed, concentration=0.5)
    H, S, A = model.horizon, model.n_states, model.n_actions
    best = np.zeros((H, S, A))
    for flat in itertools.product(range(A), repeat=H * S):
        d = _occupancy(model, np.array(flat).reshape(H, S))
        # any action can be played at the reached state: max over a of d_h(s, .) row sums
        best = np.maximum(best, d.sum(axis=2, keepdims=True))
    np.testing.assert_allclose(max_occupancy(model), best, atol=1e-12)


def test_min_max_definition_attained_by_normalised_reachability():
    # mu = m / M makes every policy's ratio <= M, and some policy reaches M (the identity).
    model = layered_tabular_mdp(3, 3, 2, 5, concentration=0.5)
    m = max_occupancy(model)
    per = coverability_coefficient(model, per_step=True)
    rng = np.random.default_rng(0)
    worst = np.zeros(model.horizon)
    for _ in range(200):
        policy = rng.integers(model.n_actions, size=(model.horizon, model.n_states))
        d = _occupancy(model, policy)
        for h in range(model.horizon):
            mu = m[h] / m[h].sum()
            ratio = np.where(mu > 0, d[h] / np.where(mu > 0, mu, 1.0), 0.0)
            assert ratio.max() <= per[h] + 1e-9
            worst[h] = max(worst[h], ratio.max())
    np.testing.assert_allclose(worst, per, rtol=1e-9)


def test_unreachable_states_leave_coverability_unchanged():
    model = layered_tabular_mdp(3, 3, 2, 7)
    H, S, A = model.horizon, model.n_states, model.n_actions
    P = np.zeros((H, S + 2, A, S + 2))
    P[:, :S, :, :S] = model.P
    P[:, S:, :, 0] = 1.0  # the extra states lead back in, but nothing leads to them
    R = np.zeros((H, S + 2, A))
    R[:, :S] = model.R
    bigger = FiniteMDP(P, R, np.concatenate([model.initial_distribution, [0.0, 0.0]]))
    assert coverability_coefficient(bigger) == pytest.approx(coverability_coefficient(model))
    assert coverability_coefficient_lp(bigger) == pytest.approx(coverability_coefficient(model))


def test_bad_model_rejected():
    with pytest.raises(ValueError, match="model"):
        coverability_coefficient(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="model"):
        coverability_coefficient_lp("lock")
    with pytest.raises(ValueError, match="model"):
        max_occupancy(None)


@pytest.mark.parametrize("n_extra", [0, 1, 5])
def test_with_unreachable_states_keeps_values_and_coverability(n_extra):
    from robustrl.envs.layered_mdp import with_unreachable_states
    from robustrl.exact import robust_value_iteration

    for model in (layered_tabular_mdp(3, 3, 2, 2), combination_lock(4, 3, 2, seed=1)):
        bigger = with_unreachable_states(model, n_extra, seed=3)
        assert bigger.n_states == model.n_states + n_extra
        assert coverability_coefficient(bigger) == pytest.approx(
            coverability_coefficient(model), abs=1e-12)
        assert robust_value_iteration(bigger).value == pytest.approx(
            robust_value_iteration(model).value, abs=1e-12)
        np.testing.assert_allclose(max_occupancy(bigger)[:, model.n_states:], 0.0)
    with pytest.raises(ValueError, match="n_extra"):
        with_unreachable_states(model, -1)
    with pytest.raises(ValueError, match="model"):
        with_unreachable_states("lock", 1)
