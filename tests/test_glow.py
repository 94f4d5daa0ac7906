"""GLOW on finite classes (arXiv:2401.09681, Algorithm 1; docs/algorithms/glow.md)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robustrl._kernels.glow import (
    full_class_objective,
    glow_objective,
    step_objective,
    step_statistics,
)
from robustrl.agents.glow import GLOW, density_ratio, occupancy
from robustrl.envs.combination_lock import combination_lock, combination_lock_value_class
from robustrl.exact import evaluate_policy, robust_value_iteration
from robustrl.models import FiniteMDP
from robustrl.reference.glow import full_class_objective as full_class_objective_ref
from robustrl.reference.glow import glow_objective as glow_objective_ref


# --------------------------------------------------------------------------------- fixtures
def layered_mdp(seed: int, H: int = 3, S: int = 3, A: int = 2) -> FiniteMDP:
    """Random layered tabular MDP: the state at step h is a layer-h state (time-indexed P)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(S, 0.5), size=(H, S, A))
    R = rng.uniform(0.0, 1.0, (H, S, A)) * (rng.uniform(size=(H, S, A)) < 0.5)
    return FiniteMDP(P, R, rng.dirichlet(np.ones(S)))


def glow_classes(model: FiniteMDP, seed: int, n_perturbed: int = 200, sigma: float = 0.5):
    """F = {Q*} + perturbed copies (index 0 is Q*); W = occupancy ratios + point weights.

    W holds ``d^{pi_f} / d^{uniform}`` for every distinct greedy policy of F, the ``+inf``
    indicator of every ``(h, s, a)`` (clipped to gamma it tests each pair on its own) and the
    constant 1.
    """
    rng = np.random.default_rng(seed)
    H, S, A = model.horizon, model.n_states, model.n_actions
    Q = robust_value_iteration(model).Q
    caps = (H - np.arange(H))[:, None, None]
    perturbed = np.clip(Q[None] + rng.normal(0.0, sigma, (n_perturbed, H, S, A)), 0.0, caps)
    F = np.concatenate([Q[None], perturbed])
    uniform = occupancy(model, np.full((H, S, A), 1.0 / A))
    W = [density_ratio(occupancy(model, p), uniform) for p in np.unique(F.argmax(-1), axis=0)]
    for idx in np.ndindex(H, S, A):
        w = np.zeros((H, S, A))
        w[idx] = np.inf
        W.append(w)
    W.append(np.ones((H, S, A)))
    return F, np.array(W)


class FiniteMDPEnv(gym.Env):
    """Minimal Gymnasium env sampling a FiniteMDP; observation ``(state, step)``."""

    def __init__(self, model: FiniteMDP) -> None:
        self.model = model
        self.horizon = model.horizon
        self.observation_space = spaces.MultiDiscrete([model.n_states, model.horizon + 1])
        self.action_space = spaces.Discrete(model.n_actions)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._s = int(self.np_random.choice(self.model.n_states,
                                            p=self.model.initial_distribution))
        self._h = 0
        return np.array([self._s, 0]), {}

    def step(self, action):
        h, s, a = self._h, self._s, int(action)
        r = float(self.model.R[h, s, a])
        self._s = int(self.np_random.choice(self.model.n_states, p=self.model.P[h, s, a]))
        self._h = h + 1
        return np.array([self._s, self._h]), r, self._h == self.horizon, False, {}


# --------------------------------------------------------------------------- the objective
def _random_inputs(rng, n_f=7, n_w=5, H=3, S=4, A=3, n=300):
    F = rng.uniform(0.0, 3.0, (n_f, H, S, A))
    W = rng.exponential(1.0, (n_w, H, S, A))
    W[rng.uniform(size=W.shape) < 0.1] = np.inf
    W[rng.uniform(size=W.shape) < 0.1] = 0.0
    steps = rng.integers(0, H, n)
    return (F, W, steps, rng.integers(0, S, n), rng.integers(0, A, n),
            rng.uniform(0.0, 1.0, n), rng.integers(0, S, n))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("gamma", "alpha"), [(0.5, 0.0), (2.0, 0.3), (1e6, 1.0)])
def test_kernel_matches_reference(seed, gamma, alpha):
    args = _random_inputs(np.random.default_rng(seed))
    got = glow_objective(*args, gamma, alpha)
    want = glow_objective_ref(*args, gamma, alpha)
    assert got.shape == (3, 7, 5)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kernel_empty_step_is_zero():
    F, W, steps, s, a, r, s2 = _random_inputs(np.random.default_rng(0))
    keep = steps != 1
    got = glow_objective(F, W, steps[keep], s[keep], a[keep], r[keep], s2[keep], 1.0, 0.5)
    want = glow_objective_ref(F, W, steps[keep], s[keep], a[keep], r[keep], s2[keep], 1.0, 0.5)
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_objective_by_hand():
    # H = 2, S = 1, A = 2; f_0 = (2, 1), f_1 = (0.5, 1.5); tuples at step 0: (a=0, r=0.25),
    # (a=1, r=0); at step 1: (a=1, r=1). Weight w_0 = (inf, 0.5), w_1 = (3, 3); gamma=2, alpha=0.1.
    F = np.array([[[[2.0, 1.0]], [[0.5, 1.5]]]])
    W = np.array([[[[np.inf, 0.5]], [[3.0, 3.0]]]])
    steps = np.array([0, 0, 1])
    states = np.zeros(3, dtype=int)
    actions = np.array([0, 1, 1])
    rewards = np.array([0.25, 0.0, 1.0])
    # step 0: residuals 2 - 0.25 - 1.5 = 0.25 and 1 - 0 - 1.5 = -0.5; clipped weights 2 and 0.5
    L0 = ((2 * 0.25 - 0.1 * 4) + (0.5 * -0.5 - 0.1 * 0.25)) / 2
    # step 1 (last, f_2 = 0): residual 1.5 - 1 = 0.5, clipped weight 2
    L1 = 2 * 0.5 - 0.1 * 4
    got = glow_objective(F, W, steps, states, actions, rewards, states, 2.0, 0.1)
    np.testing.assert_allclose(got[:, 0, 0], [L0, L1], rtol=1e-14)


def test_step_statistics_counts():
    counts, rsum, nxt = step_statistics([0, 0, 1], [1, 1, 0], [0.5, 0.25, 1.0], [1, 0, 1], 2, 2)
    np.testing.assert_array_equal(counts, [[0, 2], [1, 0]])
    np.testing.assert_array_equal(rsum, [[0, 0.75], [1.0, 0]])
    np.testing.assert_array_equal(nxt[0, 1], [1, 1])
    assert step_objective(np.zeros((1, 2, 2)), np.zeros((1, 2)), np.ones((1, 2, 2)),
                          np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2, 2)),
                          1.0, 1.0).tolist() == [[0.0]]


def test_qstar_has_zero_mean_objective_without_penalty():
    # E[c * Delta Q* | s, a] = 0 for every c (arXiv:2401.09681, docs/algorithms/glow.md): the exact
    # expected
    # objective of Q* under any data distribution is 0 with alpha = 0.
    model = layered_mdp(3)
    F, W = glow_classes(model, 3, n_perturbed=20)
    H, S, A = model.horizon, model.n_states, model.n_actions
    # exact expectation: counts proportional to a distribution, next counts to counts * P
    rng = np.random.default_rng(0)
    for h in range(H):
        counts = rng.uniform(0.1, 1.0, (S, A))
        V_next = (F[:, h + 1].max(axis=-1) if h < H - 1 else np.zeros((len(F), S)))
        nxt = counts[..., None] * model.P[h] if h < H - 1 else np.zeros((S, A, S))
        L = step_objective(F[:, h], V_next, W[:, h], counts, counts * model.R[h], nxt, 5.0, 0.0)
        np.testing.assert_allclose(L[0], 0.0, atol=1e-12)
        assert np.abs(L[1:]).max() > 1e-3  # perturbed members are not Bellman-consistent


# ----------------------------------------------------------------------------------- GLOW
def test_t1_qstar_never_excluded_and_t2_optimism():
    """T1 over 200 seeds: Q* stays in every confidence set; T2: optimism whenever it does."""
    n_seeds, delta = 200, 0.1
    retained = 0
    shrunk = 0
    for seed in range(n_seeds):
        model = layered_mdp(seed)
        F, W = glow_classes(model, seed)
        v_star = robust_value_iteration(model).value
        agent = GLOW(model, F, W, episodes_per_round=5, kappa=0.1, delta=delta, seed=seed)
        agent.learn(total_rounds=30)
        retained += bool(agent.in_set_[:, 0].all())
        shrunk += int(agent.in_set_[-1].sum() < len(F) // 2)
        optimistic = agent.initial_values()[agent.selected_]
        inside = agent.in_set_[:, 0]
        assert np.all(optimistic[inside] >= v_star - 1e-12)
        assert agent.empty_rounds_ == []
    assert retained >= (1 - delta) * n_seeds
    assert retained == n_seeds  # in practice never excluded at this radius
    assert shrunk >= 0.9 * n_seeds  # the set is informative, so retention is not vacuous


@pytest.mark.parametrize("seed", range(6))
def test_glow_reaches_optimal_policy(seed):
    model = layered_mdp(100 + seed)
    F, W = glow_classes(model, seed)
    agent = GLOW(model, F, W, episodes_per_round=5, kappa=0.01, seed=seed).learn(total_rounds=150)
    assert agent.in_set_[:, 0].all()
    assert agent.regret_[-1] == pytest.approx(0.0, abs=1e-12)
    assert agent.regret_[:10].mean() > agent.regret_[-10:].mean()
    v_star = robust_value_iteration(model).value
    assert evaluate_policy(model, agent.policies_[-1]).value == pytest.approx(v_star, abs=1e-12)


def test_env_path_matches_model_path_statistics_and_learns():
    model = layered_mdp(7)
    F, W = glow_classes(model, 7)
    env = FiniteMDPEnv(model)
    agent = GLOW(env, F, W, episodes_per_round=5, kappa=0.01, seed=1).learn(total_rounds=150)
    assert agent.n_episodes_ == 750
    assert agent._counts.sum() == 750 * model.horizon
    assert agent.regret_[-1] == pytest.approx(0.0, abs=1e-12)
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    assert action == int(np.argmax(agent.Q_[0, obs[0]]))
    np.testing.assert_array_equal(agent.q_values(obs), F[agent.selected_[-1], 0, obs[0]])


def test_same_seed_same_numbers_and_save_load(tmp_path):
    model = layered_mdp(11)
    F, W = glow_classes(model, 11, n_perturbed=50)
    a = GLOW(model, F, W, episodes_per_round=3, kappa=0.05, seed=4).learn(total_rounds=25)
    b = GLOW(model, F, W, episodes_per_round=3, kappa=0.05, seed=4).learn(total_rounds=25)
    np.testing.assert_array_equal(a.selected_, b.selected_)
    np.testing.assert_array_equal(a.regret_, b.regret_)
    path = a.save(tmp_path / "glow")
    c = GLOW.load(path, model)
    np.testing.assert_array_equal(c.Q_, a.Q_)
    np.testing.assert_array_equal(c.selected_, a.selected_)
    assert c.kappa == 0.05 and c.episodes_per_round == 3
    obs = np.array([1, 2])
    np.testing.assert_array_equal(c.q_values(obs), a.q_values(obs))


def test_unreachable_states_leave_glow_unchanged():
    """T5 (cheap form): states no policy reaches change neither the data nor the selection."""
    model = layered_mdp(5)
    F, W = glow_classes(model, 5, n_perturbed=60)
    H, S, A = model.horizon, model.n_states, model.n_actions
    extra = 2
    P = np.zeros((H, S + extra, A, S + extra))
    P[:, :S, :, :S] = model.P
    P[:, S:, :, 0] = 1.0  # the unreachable states lead back into the MDP
    R = np.zeros((H, S + extra, A))
    R[:, :S] = model.R
    R[:, S:] = 1.0
    big = FiniteMDP(P, R, np.concatenate([model.initial_distribution, np.zeros(extra)]))
    rng = np.random.default_rng(0)
    F_big = np.concatenate([F, rng.uniform(0, 1, (len(F), H, extra, A))], axis=2)
    W_big = np.concatenate([W, np.full((len(W), H, extra, A), np.inf)], axis=2)
    # the default coverability guess S*A would count the unreachable states: fix it (C_cov is
    # unchanged by them)
    kw = dict(episodes_per_round=4, kappa=0.05, seed=2, coverability_guess=6.0)
    a = GLOW(model, F, W, **kw).learn(total_rounds=40)
    b = GLOW(big, F_big, W_big, **kw).learn(total_rounds=40)
    assert a.n_episodes_ == b.n_episodes_
    np.testing.assert_array_equal(a.selected_, b.selected_)
    np.testing.assert_allclose(a.regret_, b.regret_, atol=1e-12)


def test_schedule_follows_note_defaults():
    model = layered_mdp(0)
    F, W = glow_classes(model, 0, n_perturbed=10)
    agent = GLOW(model, F, W, episodes_per_round=2, kappa=0.5, gamma0=3.0, delta=0.2)
    T = 20
    L = np.log(3 * len(F) * len(W) * T / 0.2)
    alpha0 = np.sqrt(T * L / (2 * 6))
    alpha, beta, gamma = agent.schedule(5, T)
    assert alpha == pytest.approx(alpha0 / 4)
    assert beta == pytest.approx(0.5 * L / (alpha * 4 * 2))
    assert gamma == pytest.approx(12.0)


def test_validation():
    model = layered_mdp(0)
    F, W = glow_classes(model, 0, n_perturbed=5)
    with pytest.raises(ValueError, match="weight_class"):
        GLOW(model, F, -W)
    with pytest.raises(ValueError, match="weight_class"):
        GLOW(model, F, W[:, :, :2])
    bad = F.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="value_class"):
        GLOW(model, bad, W)
    with pytest.raises(ValueError, match="kappa"):
        GLOW(model, F, W, kappa=0.0)
    with pytest.raises(ValueError, match="delta"):
        GLOW(model, F, W, delta=1.5)
    with pytest.raises(ValueError, match="total_rounds"):
        GLOW(model, F, W).learn(total_rounds=0)
    with pytest.raises(ValueError, match="env_or_model"):
        GLOW(object(), F, W)


# ----------------------------------------------------------- tabular weight class (Option 2)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("gamma", "alpha"), [(0.7, 0.0), (2.0, 0.3), (50.0, 0.05)])
def test_full_class_kernel_matches_reference(seed, gamma, alpha):
    F, _, steps, s, a, r, s2 = _random_inputs(np.random.default_rng(seed), S=3, A=2)
    got = full_class_objective(F, steps, s, a, r, s2, gamma, alpha)
    want = full_class_objective_ref(F, steps, s, a, r, s2, gamma, alpha)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_full_class_dominates_and_attains_finite_class():
    rng = np.random.default_rng(3)
    F, _, steps, s, a, r, s2 = _random_inputs(rng, S=3, A=2)
    gamma, alpha = 1.5, 0.2
    W = rng.uniform(0.0, gamma, (50, 3, 3, 2))  # tables inside the full class
    finite = glow_objective(F, W, steps, s, a, r, s2, gamma, alpha).max(axis=2)
    full = full_class_objective(F, steps, s, a, r, s2, gamma, alpha)
    assert np.all(full >= finite - 1e-12)
    # the closed-form maximiser c* = clip(mean residual / (2 alpha), 0, gamma), as a table
    H = F.shape[1]
    for f in range(3):
        w_star = np.zeros((1, H, 3, 2))
        for h in range(H):
            m = steps == h
            V = F[f, h + 1, s2[m]].max(axis=-1) if h < H - 1 else 0.0
            res = F[f, h, s[m], a[m]] - r[m] - V
            for x, b in np.ndindex(3, 2):
                sel = (s[m] == x) & (a[m] == b)
                if sel.any():
                    w_star[0, h, x, b] = np.clip(res[sel].mean() / (2 * alpha), 0, gamma)
        at_star = glow_objective(F[f:f + 1], w_star, steps, s, a, r, s2, gamma, alpha)[:, 0, 0]
        np.testing.assert_allclose(at_star, full[:, f], rtol=1e-12, atol=1e-12)


def test_glow_tabular_weights_retains_qstar_and_learns():
    retained = 0
    for seed in range(40):
        model = layered_mdp(seed)
        F, _ = glow_classes(model, seed)
        agent = GLOW(model, F, "tabular", episodes_per_round=5, kappa=0.01, seed=seed)
        agent.learn(total_rounds=60)
        retained += bool(agent.in_set_[:, 0].all())
        inside = agent.in_set_[:, 0]
        v_star = robust_value_iteration(model).value
        assert np.all(agent.initial_values()[agent.selected_][inside] >= v_star - 1e-12)
    assert retained == 40
    model = layered_mdp(101)
    F, _ = glow_classes(model, 1)
    agent = GLOW(model, F, "tabular", episodes_per_round=5, kappa=0.01, seed=1).learn(
        total_rounds=150)
    assert agent.regret_[-1] == pytest.approx(0.0, abs=1e-12)
    assert agent.in_set_[-1].sum() < len(F) // 4


def test_tabular_save_load(tmp_path):
    model = layered_mdp(2)
    F, _ = glow_classes(model, 2, n_perturbed=20)
    a = GLOW(model, F, "tabular", kappa=0.05, seed=0).learn(total_rounds=10)
    b = GLOW.load(a.save(tmp_path / "g.npz"), model)
    assert b.weight_class == "tabular"
    np.testing.assert_array_equal(b.Q_, a.Q_)
    with pytest.raises(ValueError, match="weight_class"):
        GLOW(model, F, "all")


def test_glow_opens_combination_lock_far_below_uniform_exploration():
    """T3 (short form): H = 8, A = 2 lock, F = Q* of all 256 codes, tabular W."""
    from robustrl.envs.combination_lock import (
        CombinationLockEnv,
        combination_lock_code_index,
        combination_lock_coverability,
        combination_lock_value_class,
    )

    H, S, A = 8, 3, 2
    env = CombinationLockEnv(horizon=H, n_states=S, n_actions=A, seed=1)
    F = combination_lock_value_class(H, S, A)
    true = combination_lock_code_index(env.unwrapped.code, A)
    agent = GLOW(env, F, "tabular", kappa=0.01, seed=1,
                 coverability_guess=combination_lock_coverability(H, S, A)).learn(total_rounds=60)
    assert agent.in_set_[:, true].all()
    solved = np.flatnonzero(agent.regret_ < 1e-12)
    assert solved.size and solved[0] + 1 <= 40  # uniform exploration: ~A^H = 256 episodes
    assert agent.selected_[-1] == true


def test_ablation_schedules():
    model = layered_mdp(0)
    F, W = glow_classes(model, 0, n_perturbed=10)
    T, K = 20, 2
    L = np.log(3 * len(F) * len(W) * T / 0.1)
    plain = GLOW(model, F, W, episodes_per_round=K, penalty=False, truncation="constant",
                 gamma0=0.5)
    alpha, beta, gamma = plain.schedule(5, T)
    assert (alpha, gamma) == (0.0, 0.5)
    assert beta == pytest.approx(0.5 * 3 * np.sqrt(2 * L / (4 * K)))
    finite_W = np.where(np.isinf(W), 7.0, W)
    none = GLOW(model, F, finite_W, episodes_per_round=K, truncation="none", penalty=False)
    alpha, beta, gamma = none.schedule(3, T)
    assert gamma == np.inf and beta == pytest.approx(7.0 * 3 * np.sqrt(2 * L / (2 * K)))
    with pytest.raises(ValueError, match="truncation"):
        GLOW(model, F, W, truncation="none")  # +inf weights cannot go unclipped
    with pytest.raises(ValueError, match="truncation"):
        GLOW(model, F, W, truncation="log")
    with pytest.raises(ValueError, match="penalty"):
        GLOW(model, F, W, penalty=1)
    none.learn(total_rounds=5)
    assert np.all(np.isfinite(none.max_violation_[1:]))


def test_penalty_keeps_qstar_where_plain_residual_loses_it():
    """At a small radius the Bernstein-type ``- alpha c^2`` term (arXiv:2401.09681,
    docs/algorithms/glow.md) keeps Q* in the set;
    the plain weighted residual with its Hoeffding radius does not (ablation, 10 seeds)."""
    kept = {True: 0, False: 0}
    for seed in range(10):
        model = layered_mdp(seed)
        F, W = glow_classes(model, seed)
        for penalty in (True, False):
            agent = GLOW(model, F, W, episodes_per_round=5, kappa=0.01, seed=seed,
                         penalty=penalty).learn(total_rounds=60)
            kept[penalty] += bool(agent.in_set_[:, 0].all())
    assert kept[True] == 10
    assert kept[False] <= 5


def _perturbed_class(model: FiniteMDP, seed: int, n: int = 100, sigma: float = 0.3):
    rng = np.random.default_rng(seed)
    H = model.horizon
    Q = robust_value_iteration(model).Q
    caps = (H - np.arange(H))[:, None, None]
    return np.concatenate(
        [Q[None], np.clip(Q[None] + rng.normal(0.0, sigma, (n, *Q.shape)), 0.0, caps)]
    )


def test_glow_on_package_envs_tabular_and_linear():
    from robustrl.envs import LinearMDPEnv, random_linear_mdp
    from robustrl.envs.layered_mdp import FiniteMDPEnv as PackageFiniteMDPEnv
    from robustrl.envs.layered_mdp import layered_tabular_mdp

    model = layered_tabular_mdp(horizon=3, n_states=3, n_actions=2, seed=4)
    env = PackageFiniteMDPEnv(model)
    F = _perturbed_class(model, 0)
    agent = GLOW(env, F, "tabular", episodes_per_round=5, kappa=0.01, seed=0).learn(
        total_rounds=100)
    assert agent.in_set_[:, 0].all() and agent.regret_[-1] == pytest.approx(0.0, abs=1e-12)

    linear = random_linear_mdp(0, n_states=5, feature_dim=4, n_actions=2, horizon=3)
    env = LinearMDPEnv(linear)
    F = _perturbed_class(linear.to_finite(), 1)
    agent = GLOW(env, F, "tabular", episodes_per_round=5, kappa=0.01, seed=0).learn(total_rounds=40)
    assert agent.optimal_value_ == pytest.approx(robust_value_iteration(linear).value)
    assert agent.in_set_[:, 0].all()
    assert agent.regret_.shape == (40,) and np.all(agent.regret_ >= -1e-12)


class _HiddenModelEnv(FiniteMDPEnv):
    """The same env without a public ``model``: GLOW must estimate d_1 and skip regret."""

    def __init__(self, model: FiniteMDP) -> None:
        super().__init__(model)
        self._hidden = model
        del self.model

    def reset(self, *, seed=None, options=None):
        self.model = self._hidden
        try:
            return super().reset(seed=seed, options=options)
        finally:
            del self.model

    def step(self, action):
        self.model = self._hidden
        try:
            return super().step(action)
        finally:
            del self.model


def test_unknown_model_uses_empirical_initial_distribution():
    model = layered_mdp(7)
    F, W = glow_classes(model, 7)
    env = _HiddenModelEnv(model)
    agent = GLOW(env, F, W, episodes_per_round=5, kappa=0.01, seed=1).learn(total_rounds=150)
    assert agent.model is None and agent.regret_.size == 0 and agent.mixture_value_ is None
    assert agent._init_counts.sum() == 750
    d1 = agent._init_counts / 750
    np.testing.assert_allclose(agent.initial_values(), F[:, 0].max(axis=-1) @ d1)
    assert agent.in_set_[:, 0].all()
    v_star = robust_value_iteration(model).value
    assert evaluate_policy(model, agent.policies_[-1]).value == pytest.approx(v_star, abs=1e-12)


@pytest.mark.parametrize("n_extra", [3, 30])
def test_t5_unreachable_states_leave_the_lock_sample_count_unchanged(n_extra):
    """T5 on the combination lock: appending states no policy reaches (|X| 2 -> 2 + n_extra)
    leaves C_cov and the number of episodes GLOW needs to open the lock unchanged."""
    from robustrl.envs.combination_lock import (
        combination_lock,
        combination_lock_code,
        combination_lock_code_index,
        combination_lock_value_class,
    )
    from robustrl.envs.layered_mdp import with_unreachable_states
    from robustrl.theory.coverability import coverability_coefficient

    H, S, A = 5, 2, 2
    small = combination_lock(H, S, A, seed=3)
    big = with_unreachable_states(small, n_extra, seed=1)
    assert coverability_coefficient(big) == coverability_coefficient(small)
    F = combination_lock_value_class(H, S, A)
    true = combination_lock_code_index(combination_lock_code(H, A, 3), A)
    rng = np.random.default_rng(0)
    F_big = np.concatenate([F, rng.uniform(0, H, (len(F), H, n_extra, A))], axis=2)
    F_big[true] = robust_value_iteration(big).Q  # Q* of the bigger MDP stays realizable
    # W: occupancy ratios of every candidate policy against uniform play (finite class)
    def ratios(model, F_):
        uniform = occupancy(model, np.full((H, model.n_states, A), 1.0 / A))
        return np.array([density_ratio(occupancy(model, p), uniform)
                         for p in np.unique(F_.argmax(-1), axis=0)])
    counts = []
    for model, F_ in ((small, F), (big, F_big)):
        agent = GLOW(model, F_, ratios(model, F_), kappa=0.01, seed=0,
                     coverability_guess=float(coverability_coefficient(small))).learn(
                         total_rounds=40)
        solved = np.flatnonzero(agent.regret_ < 1e-12)
        assert solved.size and agent.selected_[-1] == true
        counts.append(int(solved[0]))
    assert counts[0] >= 3  # not solved by luck in the first rounds
    assert counts[0] == counts[1]


def test_paper_constants_follow_algorithm_1():
    """constants='paper': Algorithm 1 line 3 (read in arXiv:2401.09681), equal to
    theory.glow.paper_schedule; at small T its worst-case radius keeps every lock code."""
    from robustrl.envs.combination_lock import combination_lock, combination_lock_value_class
    from robustrl.theory.glow import paper_schedule

    H, S, A = 4, 2, 2
    F = combination_lock_value_class(H, S, A)
    model = combination_lock(H, S, A, seed=1)
    W = np.ones((3, H, S, A))
    W[1] = np.inf
    agent = GLOW(model, F, W, constants="paper", coverability_guess=4.0)
    np.testing.assert_allclose(agent.schedule(5, 100),
                               paper_schedule(5, 100, H, 1, len(F), len(W), 0.1, C_cov=4.0))
    lock = GLOW(model, F, "tabular", constants="paper", coverability_guess=4.0).learn(
        total_rounds=200)
    assert lock.in_set_.all()  # measured: nothing excluded up to T = 4000 (docs/glow-results)
    with pytest.raises(ValueError, match="constants"):
        GLOW(model, F, W, constants="theory")
    with pytest.raises(ValueError, match="constants"):
        GLOW(model, F, W, constants="paper", penalty=False)


# ------------------------------------------------ the schedule of the re-derived Theorem 3.1
def test_derived_schedule_is_the_one_the_bound_is_proved_for():
    """constants="derived": gamma_t = gamma t with gamma the bound's minimiser, alpha_t gamma_t
    = 1/2, beta_t = (2 l + 1) gamma_t / (t - 1) (tabular grid slack 1), l = log(3|F||W|TH/delta)
    with log|W| = S A log T (docs/algorithms/glow.md, "Theorem 3.1, re-derived")."""
    from robustrl.theory.glow import glow_derived_gamma

    model = combination_lock(3, 2, 2, seed=1)
    F = combination_lock_value_class(3, 2, 2)
    T = 500
    agent = GLOW(model, F, "tabular", constants="derived", coverability_guess=4.0, delta=0.1)
    ell = math.log(3 * len(F) * T * 3 / 0.1) + 4 * math.log(T)
    assert agent.derived_log_term(T) == pytest.approx(ell)
    g = glow_derived_gamma(T, 3, 4.0, math.log(len(F)), None, 0.1, tabular_entries=4)
    for t in (2, 17, T):
        alpha, beta, gamma_t = agent.schedule(t, T)
        assert gamma_t == pytest.approx(g * t)
        assert alpha * gamma_t == pytest.approx(0.5)
        assert beta == pytest.approx((2 * ell + 1) * g * t / (t - 1))
    # a finite W: no grid slack, log|W| = log(number of tables)
    W = np.ones((3, 3, 2, 2))
    finite = GLOW(model, F, W, constants="derived", coverability_guess=4.0, delta=0.1)
    ell_f = math.log(3 * len(F) * T * 3 / 0.1) + math.log(3)
    _, beta_f, gamma_f = finite.schedule(5, T)
    assert beta_f == pytest.approx(2 * ell_f * gamma_f / 4)
    with pytest.raises(ValueError, match="constants"):
        GLOW(model, F, "tabular", constants="derived", truncation="constant")


def test_derived_radius_retains_qstar_on_noisy_mdps():
    """T1 for the derived schedule on random layered MDPs with returns scaled into [0, 1] (the
    normalisation the derivation assumes): Q* is never excluded, with a wide margin (measured:
    its largest objective is 1.6e-4 beta_t; a radius 100 times smaller would still keep it),
    while the set still shrinks."""
    worst_ratio, shrunk = 0.0, 0
    for seed in range(20):
        base = layered_mdp(seed)
        H = base.horizon
        model = FiniteMDP(base.P, base.R / H, base.initial_distribution)
        F, W = glow_classes(model, seed)  # index 0 is Q* of the scaled model
        Q = robust_value_iteration(model).Q
        np.testing.assert_allclose(F[0], Q, atol=1e-12)
        agent = GLOW(model, F, W, episodes_per_round=5, constants="derived",
                     coverability_guess=9.0, delta=0.1, seed=seed)
        agent.learn(total_rounds=30)
        assert agent.in_set_[:, 0].all()
        ratio = agent.max_violation_[1:, 0] + agent.betas_[1:]  # = max_h max_w L(Q*)
        worst_ratio = max(worst_ratio, float(np.max(ratio / agent.betas_[1:])))
        shrunk += int(agent.in_set_[-1].sum() < len(F))
    assert worst_ratio < 1e-2
    assert shrunk >= 15


# ---------------------------------------------- Theorem 3.2: the augmented weight class W-bar
def _pure_ratios(model, F):
    occ = np.array([occupancy(model, p) for p in F.argmax(-1)])
    return occ, np.array([[density_ratio(occ[k], occ[j]) for j in range(len(F))]
                          for k in range(len(F))])


def test_augmented_class_is_the_exact_mixture_ratio():
    """W-bar's member for f after rounds f_1..f_{t-1} is the harmonic mean of the pure ratios
    d^{pi_f} / d^{pi_{f_i}}, which is d^{pi_f} / d-bar (d-bar the mixture of the played
    occupancies) -- the ratio Assumption 2.2' asks for, built from Assumption 2.2's class."""
    model = combination_lock(3, 2, 2, seed=4)
    F = combination_lock_value_class(3, 2, 2)
    occ, R = _pure_ratios(model, F)
    agent = GLOW(model, F, "augmented", ratio_class=R, episodes_per_round=3, kappa=0.01,
                 seed=0)
    agent.learn(total_rounds=12)
    mix = occ[agent.selected_].mean(axis=0)
    want = np.array([density_ratio(occ[k], mix) for k in range(len(F))])
    np.testing.assert_allclose(agent.augmented_class(), want, rtol=1e-12)
    assert np.isinf(agent.augmented_class()).any()  # unvisited pairs: ratio +inf, clipped


def test_augmented_glow_with_batches_finds_the_optimum_below_its_bound():
    """Theorem 3.2's option on a small lock (H = 2, C_cov = 4 exact): W-bar, K = 200 episodes
    per round (of order T log|W|), the derived schedule. Q* stays in the set, the last policy
    is optimal (exact DP), and the regret over all T K episodes is below
    glow_regret_bound_augmented. With K = 20 the radius (log|W-bar| ~ 2 T log|F|) excludes
    nothing in 40 rounds -- why the theorem batches."""
    from robustrl.theory.coverability import coverability_coefficient
    from robustrl.theory.glow import glow_regret_bound_augmented

    T, K, H = 40, 200, 2
    C = float(coverability_coefficient(combination_lock(H, 2, 2, 0)))
    assert C == 4.0
    for seed in (1, 3):
        model = combination_lock(H, 2, 2, seed=seed)
        F = np.concatenate([combination_lock_value_class(H, 2, 2), np.zeros((1, H, 2, 2))])
        _, R = _pure_ratios(model, F)
        agent = GLOW(model, F, "augmented", ratio_class=R, episodes_per_round=K,
                     constants="derived", coverability_guess=C, seed=seed)
        agent.learn(total_rounds=T)
        best = robust_value_iteration(model)
        q_star = int(np.flatnonzero(np.all(np.isclose(F, best.Q), axis=(1, 2, 3)))[0])
        assert agent.in_set_[:, q_star].all()
        last = evaluate_policy(model, agent.policies_[-1]).value
        assert last == pytest.approx(best.value)
        regret = K * agent.regret_.sum()
        bound = glow_regret_bound_augmented(T, K, H, C, len(F), 0.1)
        assert 0 < regret < bound
        few = GLOW(model, F, "augmented", ratio_class=R, episodes_per_round=20,
                   constants="derived", coverability_guess=C, seed=seed).learn(total_rounds=T)
        assert few.in_set_[-1].all()


def test_augmented_class_bad_input():
    model = combination_lock(2, 2, 2, seed=0)
    F = combination_lock_value_class(2, 2, 2)
    _, R = _pure_ratios(model, F)
    with pytest.raises(ValueError, match="ratio_class"):
        GLOW(model, F, "augmented")
    with pytest.raises(ValueError, match="ratio_class"):
        GLOW(model, F, "augmented", ratio_class=R[:, :2])
    with pytest.raises(ValueError, match="ratio_class"):
        GLOW(model, F, "tabular", ratio_class=R)
    with pytest.raises(ValueError, match="weight_class"):
        GLOW(model, F, "augmentd")
