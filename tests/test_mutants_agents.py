"""Hand-computed checks that kill the mutants `tools/mutate.py` found surviving in agents/
(docs/dev/mutation.md lists them). Each test's docstring names the bug it catches."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.agents import estimators as est
from robustrl.divergences import kl_dual_rows


# ------------------------------------------------------------------------------------------
# agents/estimators.py
# ------------------------------------------------------------------------------------------
def test_kl_dual_default_floor_is_drvi_l_one_in_a_million():
    """Bug: `KLDual`'s default `z_floor` not 1e-6 (DRVI-L's floor, Ma et al. 2022). On a
    signed row whose estimate z goes negative the floor binds, so the default estimator must
    equal `kl_dual_rows(..., clip="floor", z_floor=1e-6)`."""
    kl = est.KLDual(0.1)
    assert kl.z_floor == 1e-6
    v, xi = np.array([0.0, 10.0]), np.array([[-0.5, 1.5]])
    want = kl_dual_rows(v, xi, 0.1, clip="floor", z_floor=1e-6)
    np.testing.assert_allclose(kl.estimate(0, xi, v, None), want, rtol=1e-12)


def test_cancellation_warning_names_step_zero():
    """Bug: the step shown only for `h > 0` (`>=` -> `>`), so a cancellation at the first step
    is reported without its step; a negative step (none known) names the factor only."""
    kl = est.KLRegularized(0.1, cap=1.0)
    with pytest.warns(RuntimeWarning, match=r"at step 0, factor 2 the signed sum"):
        kl.check_cancellation(0, 1e9, 2)
    with pytest.warns(RuntimeWarning, match=r"at factor 2 the signed sum"):
        kl.check_cancellation(-1, 1e9, 2)


# ------------------------------------------------------------------------------------------
# agents/lsvi_ucb.py, agents/_online.py
# ------------------------------------------------------------------------------------------
def test_online_agents_documented_defaults():
    """Bug: a default hyperparameter changed (`beta = 1.0` -> 2.0 in `LSVIUCB` or
    `DRLSVIUCB`); the documented defaults are ridge 0.1, beta 1, the elliptical bonus (LSVI-UCB)
    or the d-rectangular l1 bonus (DR-LSVI-UCB), random tie-breaking, TV with rho 0.1."""
    from robustrl.agents import DRLSVIUCB, LSVIUCB
    from robustrl.envs import SimulatedLinearMDPEnv

    got = LSVIUCB(SimulatedLinearMDPEnv()).get_hyperparams()
    assert got == {"ridge": 0.1, "beta": 1.0, "bonus": "elliptical", "tie_break": "random",
                   "seed": None}
    got = DRLSVIUCB(SimulatedLinearMDPEnv()).get_hyperparams()
    assert got == {"rho": 0.1, "divergence": "tv", "v_min": 0.0, "ridge": 0.1, "beta": 1.0,
                   "bonus": "d_rectangular_l1", "tie_break": "random", "seed": None}


@pytest.mark.parametrize("tie_break", ["random", "first"])
def test_exact_ties_are_spread_or_go_to_the_first_action(tie_break):
    """Bug: the tie-break test inverted (`== "random"` -> `!=`). Before any data a large beta
    clips every optimistic Q at H - h, so every action ties: "random" spreads the mass evenly,
    "first" puts it all on action 0."""
    from robustrl.agents import LSVIUCB
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv()
    agent = LSVIUCB(env, beta=1e6, tie_break=tie_break)
    probs = agent.action_probabilities(np.array([0, 0], dtype=np.int64))
    A = probs.shape[0]
    want = np.full(A, 1.0 / A) if tie_break == "random" else np.eye(A)[0]
    np.testing.assert_array_equal(probs, want)


def test_a_fresh_agent_uses_its_seed_as_given():
    """Bug: the fresh-agent test of `_session_seed` inverted (`n_episodes_ == 0` -> `!= 0`): a
    fresh agent must seed its first reset with `seed` itself (documented), and only a trained
    (e.g. loaded) one derives a new seed from (seed, episodes so far)."""
    from robustrl.agents import LSVIUCB
    from robustrl.envs import SimulatedLinearMDPEnv

    agent = LSVIUCB(SimulatedLinearMDPEnv(), seed=3)
    assert agent._session_seed() == 3
    agent.learn(total_episodes=2)
    want = int(np.random.SeedSequence([3, 2]).generate_state(1)[0])
    assert agent.n_episodes_ == 2 and agent._session_seed() == want


def test_a_regret_curve_of_one_episode():
    """Bug: `run_regret_curve`'s lower bound on `n_episodes` moved from 1 to 2. One episode
    gives one regret value, optimal value minus the exact value of the episode's policy."""
    from robustrl.agents import LSVIUCB
    from robustrl.agents._online import run_regret_curve
    from robustrl.envs import SimulatedLinearMDPEnv

    curve = run_regret_curve(LSVIUCB, SimulatedLinearMDPEnv, 1, seed=0)
    assert curve.regret.shape == (1,)
    assert curve.regret[0] == pytest.approx(curve.optimal_value - curve.episode_values[0],
                                            abs=1e-12)
    with pytest.raises(ValueError, match="n_episodes"):
        run_regret_curve(LSVIUCB, SimulatedLinearMDPEnv, 0)


def test_transitions_of_a_negative_step_are_refused():
    """Bug: `transitions`' lower bound on `step` moved from 0 to -1, so step -1 silently reads
    the last step's data through negative indexing."""
    from robustrl.agents import LSVIUCB
    from robustrl.envs import SimulatedLinearMDPEnv

    agent = LSVIUCB(SimulatedLinearMDPEnv(), seed=0).learn(total_episodes=1)
    assert agent.transitions(0)["features"].shape[0] == 1
    for step in (-1, agent.horizon):  # bug too: the upper bound H - 1 moved to H + 1
        with pytest.raises(ValueError, match="step"):
            agent.transitions(step)
