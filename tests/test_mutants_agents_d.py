"""Hand-computed checks of the agents that no earlier mutation round measured.

GOLF (arXiv:2102.00815 Algorithm 1), Hy-Q (arXiv:2210.06718 Algorithm 1) and H2O-FQI
(arXiv:2401.09681 Algorithm 2) on their shared finite-class base, OPPO (arXiv:1912.05830
Algorithm 1), GLOW-lin and the agent base (callbacks, files, the tied-Q warning). Each test
names the bug it catches; every expected number is worked out in the test.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import pytest

from robustrl.agents import GOLF, H2OFQI, OPPO, HyQ
from robustrl.envs.combination_lock import CombinationLockEnv, combination_lock_value_class


def _lock(H: int = 2, seed: int = 0):
    """Deterministic combination lock, S = 3, A = 2; ``F`` holds the Q* of all A^H codes."""
    env = CombinationLockEnv(horizon=H, n_states=3, n_actions=2, seed=seed)
    return env, combination_lock_value_class(H, 3, 2)


def _tuples(rewards_0: list[float], n_1: int = 1):
    """Offline tuples as arrays: at step 0 one tuple per reward (s=0, a=0 -> s'=0), then
    ``n_1`` tuples at step 1 (s=0, a=1, r=0 -> s'=0)."""
    n0 = len(rewards_0)
    steps = np.array([0] * n0 + [1] * n_1)
    zeros = np.zeros(n0 + n_1, dtype=np.int64)
    actions = np.array([0] * n0 + [1] * n_1)
    rewards = np.array(list(rewards_0) + [0.0] * n_1)
    return steps, zeros, actions, rewards, zeros.copy()


# ------------------------------------------------------------ the finite-class base
def test_statistics_use_exactly_the_first_n_offline_tuples():
    """Bug: ``statistics(h, n)`` pooling every offline tuple whatever ``n`` (H2O's progressive
    schedule then reveals all the data from round 1). Step-0 rewards 1, 2, 4: the first n
    tuples sum to 1, 3, 7; n = 0 gives the (empty) online statistics only."""
    env, F = _lock()
    agent = H2OFQI(env.model, F, _tuples([1.0, 2.0, 4.0]), seed=0)
    for n, total in ((0, 0.0), (1, 1.0), (2, 3.0), (3, 7.0), (None, 7.0)):
        counts, rsum, nxt = agent.statistics(0, n)
        assert counts.sum() == (3 if n is None else n)
        assert rsum.sum() == total
        assert counts[0, 0] == counts.sum() and nxt[0, 0, 0] == counts.sum()


def test_n_offline_is_zero_without_data_and_the_largest_step_count_with_data():
    """Bug: ``n_offline_`` returning None (not 0) without offline data. With 3 step-0 tuples
    and 2 step-1 tuples it is max(3, 2) = 3."""
    env, F = _lock()
    assert HyQ(env.model, F, seed=0).n_offline_ == 0
    assert H2OFQI(env.model, F, seed=0).n_offline_ == 0
    assert HyQ(env.model, F, _tuples([1.0, 2.0, 4.0], n_1=2), seed=0).n_offline_ == 3


def _rewrite(path, tmp_path, **changes):
    with np.load(path) as f:
        arrays = dict(f)
    arrays.update(changes)
    out = tmp_path / "edited.npz"
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("cls", [HyQ, H2OFQI])
def test_load_restores_the_offline_tuples_and_their_terminal_flags(cls, tmp_path):
    """Bugs: ``load`` ignoring ``offline_nonterminal``, or rebuilding a hybrid agent without
    its offline data (the class not marked hybrid). A file whose offline tuples are all
    terminal loads with no next-state counts at step 0 (N(s, a, s') = 0) while the step still
    counts its 2 tuples (rewards 1 + 2)."""
    env, F = _lock()
    agent = cls(env.model, F, _tuples([1.0, 2.0]), seed=0).learn(total_rounds=1)
    path = agent.save(tmp_path / "agent")
    with np.load(path) as f:
        n = len(f["offline_steps"])
    edited = _rewrite(path, tmp_path, offline_nonterminal=np.zeros(n, dtype=bool))
    loaded = cls.load(edited, env.model)
    assert loaded.n_offline_ == 2
    counts, rsum, nxt = loaded.statistics(0, None)
    assert counts.sum() == 2 and rsum.sum() == 3.0 and nxt.sum() == 0
    # the file as saved (all non-terminal) keeps them: N(0, 0, 0) = 2
    assert cls.load(path, env.model).statistics(0, None)[2][0, 0, 0] == 2


def test_load_accepts_a_file_without_regret(tmp_path):
    """Bug: ``load`` refusing ``regret_`` with 0 entries (an agent without a known model
    records no regret: the format allows 0 or T entries)."""
    env, F = _lock()
    path = HyQ(env.model, F, seed=0).learn(total_rounds=2).save(tmp_path / "hyq")
    loaded = HyQ.load(_rewrite(path, tmp_path, regret_=np.zeros(0)), env.model)
    assert loaded.regret_.shape == (0,) and loaded.mixture_value_ is None
    with pytest.raises(ValueError, match="regret_"):
        HyQ.load(_rewrite(path, tmp_path, regret_=np.zeros(1)), env.model)


def test_fqi_stops_at_step_zero():
    """Bug: the backward FQI loop running one step too far (``h = -1`` refits the last step
    with step 0's values as targets). Two rows: step 1 slices 0 and 1, step 0 slices 0 and 5;
    one step-1 tuple (r = 0) picks row 0 there (loss 0 vs 1), so V_1 = 0; one step-0 tuple
    (r = 5) has target 5 and picks row 1 (loss 0 vs 25). Refitting step 1 with V_0(0) = 5
    as target would pick row 1 (loss 16 vs 25)."""
    env, _ = _lock()
    F = np.zeros((2, 2, 3, 2))
    F[1, 0], F[1, 1] = 5.0, 1.0
    Q, rows = H2OFQI(env.model, F, _tuples([5.0]), seed=0).fitted_q_iteration(None)
    assert rows.tolist() == [1, 0]
    np.testing.assert_array_equal(Q[0], 5.0)
    np.testing.assert_array_equal(Q[1], 0.0)


# ---------------------------------------------------------------------------- GOLF
def test_golf_range_error_reports_the_found_range():
    """Bug: the message printing min twice. Lock entries lie in [0, 1]; times 3 they lie in
    [0, 3], above B = H = 2."""
    env, F = _lock()
    with pytest.raises(ValueError, match=r"\[0, 2\].*found \[0, 3\]"):
        GOLF(env.model, F * 3.0)


# ----------------------------------------------------------------------- Hy-Q, H2O
@pytest.mark.parametrize("cls", [HyQ, H2OFQI])
def test_default_is_one_episode_per_round(cls):
    """Bug: another default ``episodes_per_round`` (documented K = 1): 3 rounds play 3
    episodes of H = 2 steps."""
    env, F = _lock()
    agent = cls(env.model, F, seed=0).learn(total_rounds=3)
    assert agent.episodes_per_round == 1
    assert agent.n_episodes_ == 3 and agent.num_timesteps == 6


def test_h2o_offline_budget_without_data_is_zero():
    """Bug: ``offline_budget`` returning None ("all of them") without offline data; the
    documented answer is 0 tuples. With 3 tuples per step and K = 1 it is (t - 1) K."""
    env, F = _lock()
    assert [H2OFQI(env.model, F, seed=0).offline_budget(t) for t in (1, 3)] == [0, 0]
    with_data = H2OFQI(env.model, F, _tuples([1.0, 2.0, 4.0], n_1=3), seed=0)
    assert [with_data.offline_budget(t) for t in (1, 2, 4)] == [0, 1, 3]
    assert H2OFQI(env.model, F, _tuples([1.0]), offline_schedule="pooled",
                  seed=0).offline_budget(1) is None


@pytest.mark.parametrize("cls, low", [(HyQ, -1), (H2OFQI, 0)])
def test_load_checks_the_range_of_selected_rows(cls, low, tmp_path):
    """Bug: the ``selected_`` range check of ``load`` shifted by one at either end. Rows run
    over [low, |F| - 1] = [low, 3] (Hy-Q's round 1 is -1): both ends load, one beyond is
    refused naming the array."""
    env, F = _lock()
    path = cls(env.model, F, seed=0).learn(total_rounds=2).save(tmp_path / "agent")
    with np.load(path) as f:
        shape = f["selected_"].shape
    for ok in (low, len(F) - 1):
        loaded = cls.load(_rewrite(path, tmp_path, selected_=np.full(shape, ok)), env.model)
        assert np.all(loaded.selected_ == ok)
    for bad in (low - 1, len(F)):
        with pytest.raises(ValueError, match="selected_"):
            cls.load(_rewrite(path, tmp_path, selected_=np.full(shape, bad)), env.model)


# ---------------------------------------------------------------------------- OPPO
def test_oppo_defaults_are_the_documented_ones():
    """Bug: another default eta, ridge or beta (documented 1, 0.1 and 1)."""
    from robustrl.envs import SimulatedLinearMDPEnv

    hp = OPPO(SimulatedLinearMDPEnv()).get_hyperparams()
    assert (hp["eta"], hp["ridge"], hp["beta"]) == (1.0, 0.1, 1.0)
    assert (hp["policy_q"], hp["bonus"]) == ("clipped", "d_rectangular_l1")


def test_oppo_is_drrpo_with_radius_and_regulariser_zero():
    """Bug: OPPO built on a nonzero radius or regulariser (documented: DR-RPO with rho = 0 and
    tau = 0). Its regression ignores rho once the divergence is None, so the attributes are
    what a user (and the exact-value helpers of DR-RPO) read."""
    from robustrl.envs import SimulatedLinearMDPEnv

    agent = OPPO(SimulatedLinearMDPEnv(), eta=2.0, seed=0)
    assert (agent.rho, agent.tau, agent.divergence) == (0.0, 0.0, None)


# ------------------------------------------------------------------------ the base
def test_tied_q_warning_names_the_action_count_and_points_at_the_caller(caplog):
    """Bugs: the warning counting states instead of actions, the debug log counting actions
    instead of states, and the warning attributed to library code (stacklevel). R2PVI on the
    simulated MDP with 20 trajectories ties all 16 actions at Q = 0 at the 20 step-0 states
    (:func:`warn_if_q_ties_at_bounds`, the plain twin of the fit's own check)."""
    import warnings

    from robustrl.agents import R2PVI
    from robustrl.agents.base import TiedQWarning, warn_if_q_ties_at_bounds
    from robustrl.data import OfflineDataset
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv()
    data = OfflineDataset.collect(env, 20, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TiedQWarning)
        agent = R2PVI(env).fit(data)

    def fit():  # stands in for an agent's fit: the warning must point at fit's caller
        return warn_if_q_ties_at_bounds(agent, data)

    with caplog.at_level(logging.DEBUG, logger="robustrl.agents"):
        with pytest.warns(TiedQWarning, match=r"Q = 0 for all 16 actions at step 0") as rec:
            tied, line = fit(), inspect.currentframe().f_lineno
    assert tied[0] == 0
    assert (rec[0].filename, rec[0].lineno) == (__file__, line)
    assert "R2PVI step 0: every action's Q at a clip bound at 20 of 20 data states" in (
        caplog.messages)


# ------------------------------------------------------------------------ GLOW-lin
def test_glow_lin_counts_policy_iterations_from_one():
    """Bug: the policy-iteration loop counting from 2 (one solve fewer, one iteration more
    reported). With a single action every theta has the same greedy policy, so the first
    solve already repeats the warm start's signature: 1 iteration in every round."""
    from test_glow_lin import small_linear_mdp

    from robustrl.agents.glow_lin import GLOWLin
    from robustrl.envs import LinearMDPEnv

    agent = GLOWLin(LinearMDPEnv(small_linear_mdp(A=1)), seed=0).learn(total_rounds=3)
    assert agent.policy_iterations_.tolist() == [1, 1, 1]


def test_glow_lin_parameter_diameter_is_the_ellipsoids_diameter():
    """Bug: another constant than 2 in ``parameter_diameter`` (a larger one still passes every
    'distance below the bound' check). With H = 1 and one action the confidence set
    ``{theta: ||M theta - c||^2_S <= r^2}`` is an ellipsoid whose diameter is exactly
    ``2 r / sqrt(lambda_min(G^T G))``, ``G^T G`` half the Hessian of the public
    ``constraint_values``, read here from exact second differences of that quadratic."""
    from test_glow_lin import small_linear_mdp

    from robustrl.agents.glow_lin import GLOWLin
    from robustrl.envs import LinearMDPEnv

    agent = GLOWLin(LinearMDPEnv(small_linear_mdp(H=1, A=1)), episodes_per_round=5,
                    seed=0).learn(total_rounds=3)
    x = agent.theta_[0]
    E = np.eye(len(x))

    def f(v):
        return float(agent.constraint_values(v[None])[0])

    hess = np.array([[f(x + E[i] + E[j]) - f(x + E[i]) - f(x + E[j]) + f(x)
                      for j in range(len(x))] for i in range(len(x))])
    lam_min = np.linalg.eigvalsh(hess / 2.0).min()
    for r_sq in (1.0, 0.25):
        np.testing.assert_allclose(agent.parameter_diameter(agent.theta_, r_sq),
                                   [2.0 * np.sqrt(r_sq / lam_min)], rtol=1e-6)


def test_glow_lin_first_round_maximises_over_the_balls():
    """Bug: the ball constraint ``||theta_h|| <= B_h`` reading an empty slice (no constraint:
    round 1, which has no data, is then unbounded). With one action, round 1 maximises
    ``c0^T theta_0`` with ``c0 = E_{d_1} phi(s, 0)`` over the ball of the documented default
    radius ``B_0 = H sqrt(d) = 3 sqrt(3)``: ``theta_0 = B_0 c0 / ||c0||``; every step stays in
    its ball ``B_h = (H - h) sqrt(3)``."""
    from test_glow_lin import small_linear_mdp

    from robustrl.agents.glow_lin import GLOWLin
    from robustrl.envs import LinearMDPEnv

    model = small_linear_mdp(A=1)
    agent = GLOWLin(LinearMDPEnv(model), seed=0).learn(total_rounds=1)
    c0 = model.initial_distribution @ model.phi[:, 0]
    theta = agent.theta_history_[0]
    np.testing.assert_allclose(theta[0], 3.0 * np.sqrt(3.0) * c0 / np.linalg.norm(c0),
                               rtol=1e-6)
    assert np.all(np.linalg.norm(theta, axis=1) <= np.sqrt(3.0) * np.array([3, 2, 1]) + 1e-9)
