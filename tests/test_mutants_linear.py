"""Hand-computed tests for the linear-MDP agents, the softmax policies and the NumPy twins.

Written against the survivors of a seeded mutation sample (tools/mutate.py, docs/dev/mutation.md):
each test names the bug it catches. Expected values are worked out by hand in the docstrings.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from robustrl.agents import DRPVI, DRRPO, DRVI_L, PEVI, R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv


@pytest.fixture(scope="module")
def env():
    return SimulatedLinearMDPEnv()


# ------------------------------------------------------------------------------ linear agents
DOCUMENTED_DEFAULTS = {
    PEVI: {"ridge": 0.1, "beta": 1.0, "reward": "estimated", "truncate_below": True},
    DRPVI: {"rho": 0.1, "ridge": 0.1, "beta": 1.0, "bonus": "paper_l1", "reward": "estimated",
            "v_min": 0.0, "truncate_below": True},
    DRVI_L: {"rho": 0.1, "z_floor": 1e-6, "centered": False, "ridge": 0.1, "beta": 1.0,
             "bonus": "paper_l1", "reward": "estimated", "truncate_below": True},
    R2PVI: {"divergence": "tv", "lam": 0.1, "ridge": 0.1, "beta": 1.0, "bonus": "paper_l1",
            "reward": "estimated", "v_min": "data", "variance_aware": False,
            "truncate_below": True},
    DRRPO: {"rho": 0.1, "divergence": "tv", "tau": 0.1, "eta": 1.0, "reference_policy": None,
            "policy_q": "clipped", "evaluation": "current", "clip_value": True, "v_min": 0.0,
            "ridge": 0.1, "beta": 1.0, "bonus": "d_rectangular_l1"},
}


@pytest.mark.parametrize("cls", list(DOCUMENTED_DEFAULTS), ids=lambda c: c.__name__)
def test_default_hyperparameters_are_the_documented_ones(env, cls):
    """Catches a changed default (ridge 0.1 -> 1.1, beta 1 -> 0 or 2, truncate_below, centered,
    clip_value flipped, v_min 0 -> -1, ...): the defaults are the simulated-MDP settings of
    arXiv:2411.18612 (docs/r2pvi-results.md) that the class docstrings and docs/algorithms state,
    and a user who passes nothing reads results at them."""
    params = cls(env).get_hyperparams()
    for name, want in DOCUMENTED_DEFAULTS[cls].items():
        assert params[name] == want, (cls.__name__, name, params[name])
        assert type(params[name]) is type(want), (cls.__name__, name)


def test_z_floor_must_lie_strictly_inside_zero_one(env):
    """Catches an inclusive bound on DRVI-L's z_floor: ``z_floor = 0`` would let ``log z`` reach
    ``-inf`` and ``z_floor = 1`` clips every estimate to 1, so both are rejected naming it."""
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="z_floor"):
            DRVI_L(env, z_floor=bad)
    assert DRVI_L(env, z_floor=0.5).z_floor == 0.5


def _variance_problem():
    """Three steps (H = 3), two one-hot factors, max_reward = 0.5 (floor 0.25, cap 1.5),
    ridge 2; step 0 has four rows (two per factor), step 1 none, step 2 (the last) two rows."""
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    steps = [SimpleNamespace(features=np.array([e0, e0, e1, e1])),
             SimpleNamespace(features=np.zeros((0, 2))),
             SimpleNamespace(features=np.array([e0, e1]))]
    first = SimpleNamespace(next_values=[np.array([0.0, 1.5, 0.5, 0.5]), np.zeros(0),
                                         np.array([0.0, 0.0])])
    return steps, first


def test_r2pvi_variance_weights_by_hand():
    """``sigma_k^2 = max(R^2, clip(phi^T z2, 0, (RH)^2) - clip(phi^T z1, 0, RH)^2)`` with
    ``z1, z2`` the ridge regressions of ``V`` and ``V^2`` (arXiv:2411.18612, the variance-aware
    R2PVI). With ridge 2 and two rows per one-hot factor, ``z = sum / (2 + 2)``:

    * factor 0, V = (0, 1.5): z1 = 0.375, z2 = 2.25 / 4 = 0.5625, variance 0.5625 - 0.140625 =
      0.421875 > 0.25, weight 1 / 0.421875 = 64 / 27;
    * factor 1, V = (0.5, 0.5): z1 = 0.25, z2 = 0.125, variance 0.0625 < R^2 = 0.25, weight 4;
    * the empty step and the last step get weight 1.

    Catches ``R**2`` -> ``R*2`` (floor 1: weight 1 for factor 0), the lower clip of ``z2`` at 1
    instead of 0, ``V*V`` -> ``V/V``, the mean read from the ``V^2`` column, ``2 / sigma^2``, and a
    wrong test for the last or an empty step."""
    steps, first = _variance_problem()
    env = SimulatedLinearMDPEnv()
    agent = R2PVI(env, ridge=2.0, max_reward=0.5, variance_aware=True)
    got = agent._variance_weights(steps, first)
    assert [w.shape for w in got] == [(4,), (0,), (2,)]
    np.testing.assert_allclose(got[0], [64 / 27, 64 / 27, 4.0, 4.0], rtol=1e-12)
    np.testing.assert_array_equal(got[2], [1.0, 1.0])


def test_r2pvi_fit_stream_equals_fit_and_refuses_variance_aware(env):
    """Catches a negated ``variance_aware`` test in ``fit_stream`` (the plain agent then refuses
    to stream, or the variance-aware one streams without its weights) and in ``fit`` (the plain
    agent runs the weighted second pass)."""
    data = OfflineDataset.collect(env, 40, seed=0)
    plain = R2PVI(env, reward="known", beta=0.0).fit(data)
    streamed = R2PVI(env, reward="known", beta=0.0).fit_stream([data])
    np.testing.assert_allclose(streamed.weights_, plain.weights_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="variance_aware"):
        R2PVI(env, variance_aware=True).fit_stream([data])


def test_r2pvi_variance_floor_weights_every_gram_by_one_over_r_squared(env):
    """With ``max_reward = 2`` the floor ``sigma^2 >= R^2 = 4`` binds for every row (next-state
    values lie in ``[0, 2]``, variance <= 1), so the variance-aware pass weights every row of
    steps ``h < H - 1`` by exactly 1/4: ``Lambda_h^{-1} = (Phi_h^T Phi_h / 4 + gamma I)^{-1}``,
    and the last step keeps weight 1. The plain agent is one unweighted pass and equals its
    streamed fit (catches ``if not self.variance_aware`` negated in ``fit``: the plain agent
    would then run the weighted pass)."""
    data = OfflineDataset.collect(env, 30, seed=1)
    kw = {"reward": "known", "beta": 0.0, "max_reward": 2.0, "ridge": 0.1}
    plain = R2PVI(env, **kw).fit(data)
    weighted = R2PVI(env, variance_aware=True, **kw).fit(data)
    streamed = R2PVI(env, **kw).fit_stream([data])
    np.testing.assert_allclose(plain.lambda_inv_, streamed.lambda_inv_, rtol=1e-10, atol=1e-12)
    H, d = env.unwrapped.horizon, env.unwrapped.feature_dim
    for h in range(H):
        F = data.features[:, h][data.valid[:, h]]
        w = 1.0 if h == H - 1 else 0.25
        np.testing.assert_allclose(weighted.lambda_inv_[h],
                                   np.linalg.inv(w * F.T @ F + 0.1 * np.eye(d)), rtol=1e-9)
        np.testing.assert_allclose(plain.lambda_inv_[h],
                                   np.linalg.inv(F.T @ F + 0.1 * np.eye(d)), rtol=1e-9)



# --------------------------------------------------------------------- softmax policies
def test_mirror_descent_step_by_hand():
    """``pi_new ∝ pi^alpha pi_ref^(1 - alpha) exp(eta alpha q)``, ``alpha = 1 / (1 + eta tau)``
    (arXiv:1912.05830 Algorithm 1 with the reference-policy KL of arXiv:2510.14246).

    * ``pi = (0.8, 0.2)``, uniform ``pi_ref``, ``q = (0, 1)``, ``eta = 2``, ``tau = 0.5``: alpha =
      1/2, ``pi_new ∝ (sqrt 0.8, sqrt 0.2 e) ∝ (2, e)``; catches ``eta * tau`` -> ``eta / tau``
      (alpha 1/5), ``alpha * log pi`` -> ``alpha / log pi`` and a lost ``return``;
    * ``tau = 0`` (plain mirror descent, reference ignored even with a zero): ``eta = ln 4``
      gives ``(0.8, 0.2 * 4) ∝ (1, 1)``; catches the exponent 1 -> 2 on ``pi`` and the
      ``tau == 0`` test moved to ``tau == 1`` (which would ignore the reference at tau = 1:
      ``pi = pi_ref = (0.5, 0.5)``, ``q = (0, 2 ln 3)``, ``eta = 1`` gives ``(1, 3)/4``);
    * ``eta = inf``: ``pi_ref exp(q / tau)``; ``q = (0, ln 3 / 2)``, ``tau = 1/2`` gives
      ``(1, 3) / 4``; catches ``1 / tau`` -> ``0 / tau``;
    * an action of probability 0 stays 0 (catches ``-inf`` -> ``+inf`` in the mixture)."""
    from robustrl.policies import kl_mirror_descent_step

    e = np.e
    got = kl_mirror_descent_step([0.8, 0.2], [0.0, 1.0], eta=2.0, tau=0.5)
    np.testing.assert_allclose(got, [2 / (2 + e), e / (2 + e)], rtol=1e-12)
    got = kl_mirror_descent_step([0.8, 0.2], [0.0, 1.0], eta=np.log(4.0), tau=0.0,
                                 reference=[1.0, 0.0])
    np.testing.assert_allclose(got, [0.5, 0.5], rtol=1e-12)
    got = kl_mirror_descent_step([0.5, 0.5], [0.0, 2 * np.log(3.0)], eta=1.0, tau=1.0)
    # alpha = 1/2: (0.5, 0.5)^(1/2) (0.5, 0.5)^(1/2) exp((0, ln 3)) ∝ (1, 3)
    np.testing.assert_allclose(got, [0.25, 0.75], rtol=1e-12)
    got = kl_mirror_descent_step([0.9, 0.1], [0.0, np.log(3.0) / 2], eta=np.inf, tau=0.5)
    np.testing.assert_allclose(got, [0.25, 0.75], rtol=1e-12)
    got = kl_mirror_descent_step([1.0, 0.0, 0.0], [0.0, 5.0, 1.0], eta=1.0, tau=0.5,
                                 reference=[0.5, 0.5, 0.0])
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0])


def test_softmax_helpers_by_hand():
    """``log_softmax`` at its default temperature 1: ``(0, ln 3) -> log (1/4, 3/4)`` (catches
    the default 1 -> 2); a 3-D table is normalised along its last axis only (catches
    ``shape[-1]`` -> ``shape[1]`` / ``shape[-2]`` in the row reshape); 32-D logits are accepted
    (the ``ndim`` range 1..32)."""
    from robustrl.policies import log_softmax, softmax

    np.testing.assert_allclose(log_softmax([0.0, np.log(3.0)]), np.log([0.25, 0.75]),
                               rtol=1e-12)
    logits = np.zeros((2, 3, 4))
    logits[1, 2] = [0.0, np.log(3.0), 0.0, 0.0]
    p = softmax(logits)
    np.testing.assert_allclose(p[0, 0], [0.25] * 4, rtol=1e-12)
    np.testing.assert_allclose(p[1, 2], [1 / 6, 3 / 6, 1 / 6, 1 / 6], rtol=1e-12)
    assert softmax(np.zeros((1,) * 31 + (2,))).shape == (1,) * 31 + (2,)


def test_policy_index_and_shape_checks():
    """Catches ``low=0`` -> ``-1`` for step and state, ``high = S - 1`` -> ``S``, ``low=1`` -> 0 for
    horizon and n_actions, ``ndim=2`` -> 3 in ``sample_actions`` and the ``pi_ref`` ndim range
    (1..32) shifted."""
    from robustrl.policies import SoftmaxPolicy, kl_regularized_update, sample_actions

    pol = SoftmaxPolicy(2, 3, 2)
    for step, state, name in ((-1, 0, "step"), (2, 0, "step"), (0, -1, "state"),
                              (0, 3, "state")):
        with pytest.raises(ValueError, match=name):
            pol.probs(step, state)
    for args, name in (((0, 3, 2), "horizon"), ((2, 0, 2), "n_states"),
                       ((2, 3, 0), "n_actions")):
        with pytest.raises(ValueError, match=name):
            SoftmaxPolicy(*args)
    rng = np.random.default_rng(0)
    assert sample_actions(np.array([[0.0, 1.0]]), rng).tolist() == [1]
    with pytest.raises(ValueError, match="probs"):
        sample_actions(np.full((1, 1, 2), 0.5), rng)
    np.testing.assert_allclose(kl_regularized_update([0.5, 0.5], [0.0, np.log(3.0)], 1.0),
                               [0.25, 0.75], rtol=1e-12)
    with pytest.raises(ValueError, match="pi_ref"):
        kl_regularized_update(np.full((1,) * 33, 1.0), np.zeros((1,) * 33), 1.0)


def test_act_draws_exactly_one_uniform():
    """``act`` samples by inverse CDF from one ``rng.random()`` draw: with ``pi = (1/4, 3/4)`` the
    action is 0 iff ``u < 1/4``, and the generator advances by one draw (catches
    ``random(1)`` -> ``random(2)`` / ``random(0)``)."""
    from robustrl.policies import SoftmaxPolicy

    pol = SoftmaxPolicy(1, 1, 2, logits=np.array([[[0.0, np.log(3.0)]]]))
    rng = np.random.default_rng(7)
    twin = np.random.default_rng(7).random(6)
    actions = [pol.act(0, 0, rng) for _ in range(5)]
    assert actions == [int(u >= 0.25) for u in twin[:5]]
    assert rng.random() == twin[5]


# ------------------------------------------------------------------------------- DR-RPO
def test_drrpo_policy_terms_bonus_and_step_range():
    """After ``k`` episodes with ``policy_q="clipped"`` every step holds ``k`` terms (the term
    buffer grows by doubling past its first 64 rows; catches ``max(2 (m + 1), 64)`` ->
    ``min``), the newest term's bonus vector is ``beta sqrt(diag Lambda_h^{-1})`` and its
    weight is ``u = w_h`` (arXiv:2510.14246 reconstruction, docs/algorithms/drrpo.md); the
    coefficients follow ``c <- (alpha c, kappa)`` with ``alpha = 1/(1 + eta tau)`` and
    ``kappa = eta / (1 + eta tau)``. ``policy_terms`` takes steps ``0..H-1`` (catches
    ``high=H-1`` -> ``H-2`` / ``H`` / ``H+1``)."""
    env = SimulatedLinearMDPEnv()
    agent = DRRPO(env, beta=0.5, eta=1.0, tau=0.25, seed=0).learn(total_episodes=70)
    H = agent.horizon
    for h in range(H):
        coefs, W, B = agent.policy_terms(h)
        assert coefs.shape == (70,) and W.shape == B.shape == (70, agent.feature_dim)
        np.testing.assert_allclose(B[-1], 0.5 * np.sqrt(np.diag(agent.lambda_inv_[h])),
                                   rtol=1e-12)
        np.testing.assert_array_equal(W[-1], agent.weights_[h])
        # kappa = 1 / 1.25 = 0.8 for the newest term, 0.8 * 0.8 = 0.64 for the one before
        np.testing.assert_allclose(coefs[-2:], [0.64, 0.8], rtol=1e-12)
    with pytest.raises(ValueError, match="step"):
        agent.policy_terms(H)
    with pytest.raises(ValueError, match="step"):
        agent.policy_terms(-1)
    none = DRRPO(env, bonus="none", seed=0).learn(total_episodes=3)
    assert not none.policy_terms(0)[2].any()  # no bonus: b = 0 (catches the test negated)
    zero = DRRPO(env, beta=0.0, seed=0).learn(total_episodes=3)
    assert not zero.policy_terms(0)[2].any()


def test_drrpo_policy_q_values_are_clipped_at_zero():
    """``policy_q_values`` with ``policy_q="clipped"`` is ``clip(phi^T w + |phi|^T b, 0, H - h)``:
    with negative weights it is 0, not negative (catches the lower clip 0 -> -1)."""
    env = SimulatedLinearMDPEnv()
    agent = DRRPO(env, beta=0.0, seed=0).learn(total_episodes=2)
    agent.weights_[0] = -5.0
    obs = np.array([0, 0])
    np.testing.assert_array_equal(agent.policy_q_values(obs), np.zeros(agent.n_actions))
    agent.weights_[0] = 10.0
    np.testing.assert_array_equal(agent.policy_q_values(obs),
                                  np.full(agent.n_actions, float(agent.horizon)))


# -------------------------------------------------------------------------- NumPy twins
def test_squared_bellman_twin_by_hand():
    """The centred loss ``sum_j (g(s_j, a_j) - y_j)^2 - y_j^2`` (arXiv:2102.00815 Algorithm 1):
    one tuple ``(s, a, r, s') = (0, 0, 1, 1)``, ``V = (0, 2)`` so ``y = 3``, and ``g(0, 0) = 1``:
    ``(1 - 3)^2 - 9 = -5``; with ``last=True`` ``y = r = 1``: ``0 - 1 = -1``. Catches ``** 2``
    -> ``* 2`` (-13) and -> ``** 3`` (-17)."""
    from robustrl.reference.squared_bellman import regression_losses

    g = np.zeros((1, 2, 1))
    g[0, 0, 0] = 1.0
    args = (g, np.array([[0.0, 2.0]]), [0], [0], [1.0], [1])
    np.testing.assert_array_equal(regression_losses(*args), [[-5.0]])
    np.testing.assert_array_equal(regression_losses(*args, last=True), [[-1.0]])


def test_cave_escape_twin_view_corner_and_turns_by_hand():
    """MiniGrid's ``get_view_exts`` for view size ``v = 3`` (half 1) at ``(x, y) = (5, 5)``:
    facing right (0) the view's top-left is ``(x, y - 1)``, down (1) ``(x - 1, y)``, left (2)
    ``(x - 2, y - 1)``, up (3) ``(x - 1, y - 2)`` (catches a dropped minus in the offsets).
    Turning left from directions 0..3 gives 3, 0, 1, 2 and right gives 1, 2, 3, 0 (catches
    ``% 4`` -> ``// 4`` / ``% 5``); a step that reaches ``max_steps`` is truncated (catches
    ``>=`` -> ``>``)."""
    from robustrl.reference import cave_escape as twin

    pos = np.full((4, 2), 5, dtype=np.int64)
    dirs = np.arange(4, dtype=np.int64)
    np.testing.assert_array_equal(twin._top_left(pos, dirs, 3),
                                  [[5, 4], [4, 5], [3, 4], [4, 3]])
    v = 3
    cells = np.zeros((4, 12, 12), dtype=np.int64)
    for action, want in ((0, [3, 0, 1, 2]), (1, [1, 2, 3, 0])):
        d = np.arange(4, dtype=np.int64)
        steps = np.array([0, 1, 2, 3], dtype=np.int64)
        _, term, trunc = twin.move(cells, pos.copy(), d, steps, np.full(4, action), 3, v)
        np.testing.assert_array_equal(d, want)
        np.testing.assert_array_equal(steps, [1, 2, 3, 4])
        np.testing.assert_array_equal(trunc, [False, False, True, True])
        assert not term.any()
