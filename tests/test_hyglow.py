"""HyGLOW on finite classes (arXiv:2401.09681, Algorithms 2-3: H2O + min-max learner;
docs/algorithms/hyglow.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl.agents.glow import GLOW, density_ratio, occupancy
from robustrl.agents.hyglow import HyGLOW, offline_tuples
from robustrl.data import OfflineDataset
from robustrl.envs.combination_lock import (
    CombinationLockEnv,
    combination_lock_code_index,
    combination_lock_value_class,
)
from robustrl.envs.layered_mdp import LayeredTabularMDPEnv, layered_tabular_mdp
from robustrl.exact import robust_value_iteration


# --------------------------------------------------------------------------------- fixtures
def classes(model, seed: int, n_perturbed: int = 30, sigma: float = 0.5):
    """F = {Q*} + perturbed tables (index 0 is Q*); W = occupancy ratios + point weights + 1."""
    rng = np.random.default_rng(seed)
    H, S, A = model.horizon, model.n_states, model.n_actions
    Q = robust_value_iteration(model).Q
    caps = (H - np.arange(H))[:, None, None]
    F = np.concatenate([Q[None], np.clip(Q[None] + rng.normal(0, sigma, (n_perturbed, H, S, A)),
                                         0.0, caps)])
    uniform = occupancy(model, np.full((H, S, A), 1.0 / A))
    W = [density_ratio(occupancy(model, p), uniform) for p in np.unique(F.argmax(-1), axis=0)]
    for idx in np.ndindex(H, S, A):
        w = np.zeros((H, S, A))
        w[idx] = np.inf
        W.append(w)
    W.append(np.ones((H, S, A)))
    return F, np.array(W)


def sample_tuples(model, policy, n_episodes: int, seed: int):
    """Flat ``(h, s, a, r, s')`` arrays of episodes; ``policy`` None = uniform, else (H, S)."""
    rng = np.random.default_rng(seed)
    H, S, A = model.horizon, model.n_states, model.n_actions
    rows = []
    for _ in range(n_episodes):
        s = int(rng.choice(S, p=model.initial_distribution))
        for h in range(H):
            a = int(rng.integers(A)) if policy is None else int(policy[h, s])
            s2 = int(rng.choice(S, p=model.P[h, s, a]))
            rows.append((h, s, a, model.R[h, s, a], s2))
            s = s2
    cols = np.array(rows).T
    return tuple(cols[i].astype(np.int64) if i != 3 else cols[i] for i in range(5))


def brute_force(F, W, data, alpha, gamma, two_sided):
    """``sum_h max_{w (, sign)} mean_j [sign c (f - r - max f') - alpha c^2]``, literally."""
    steps, states, actions, rewards, nxt = data
    n_f, H = F.shape[:2]
    out = np.zeros(n_f)
    for i in range(n_f):
        for h in range(H):
            m = steps == h
            s, a, r, s2 = states[m], actions[m], rewards[m], nxt[m]
            target = r + (F[i, h + 1, s2].max(axis=-1) if h < H - 1 else 0.0)
            delta = F[i, h, s, a] - target
            best = -np.inf
            for w in W:
                c = np.minimum(w[h, s, a], gamma)
                for sign in ((1.0, -1.0) if two_sided else (1.0,)):
                    best = max(best, np.mean(sign * c * delta - alpha * c * c))
            out[i] += best
    return out


def lock(H=6, S=3, A=2, seed=1):
    env = CombinationLockEnv(horizon=H, n_states=S, n_actions=A, seed=seed)
    F = combination_lock_value_class(H, S, A)
    return env, F, combination_lock_code_index(env.code, A)


# ---------------------------------------------------------------------- the offline learner
@pytest.mark.parametrize("two_sided", [True, False])
def test_offline_learner_is_brute_force_argmin(two_sided):
    model = layered_tabular_mdp(3, 3, 2, seed=4)
    F, W = classes(model, 0)
    data = sample_tuples(model, None, 40, seed=1)
    T = 5
    agent = HyGLOW(model, F, W, data, two_sided=two_sided, alpha0=0.7, gamma0=0.05, seed=0,
                   offline_schedule="pooled")
    assert agent.n_offline_ == 40
    alpha, gamma = agent.hybrid_schedule(1, T)
    # [RECON] effective round 1 + n_off / K with K = 1: alpha0 K / n_off, gamma0 n_off / K.
    assert alpha == pytest.approx(0.7 / 40) and gamma == pytest.approx(0.05 * 40)
    expected = brute_force(F, W, data, alpha, gamma, two_sided)
    np.testing.assert_allclose(agent.offline_objective(1, T), expected, rtol=1e-10, atol=1e-12)
    agent.learn(total_rounds=T)
    assert agent.selected_[0] == int(np.argmin(expected))
    np.testing.assert_allclose(agent.objective_values_[0], expected, rtol=1e-10, atol=1e-12)


def test_tabular_two_sided_inner_max_matches_grid():
    """Full tabular W and its negation: closed form vs a fine grid over c in [0, gamma].

    The class is ``W u -W`` (one sign per step and table), so the sign is maxed per step
    outside the per-(s, a) sum.
    """
    model = layered_tabular_mdp(2, 2, 2, seed=3)
    F, _ = classes(model, 1, n_perturbed=5)
    data = sample_tuples(model, None, 30, seed=2)
    agent = HyGLOW(model, F, "tabular", data, alpha0=2.0, seed=0, offline_schedule="pooled")
    alpha, gamma = agent.hybrid_schedule(1, 3)
    grid = np.linspace(0.0, gamma, 4001)
    steps, states, actions, rewards, nxt = data
    expected = np.zeros(len(F))
    for i in range(len(F)):
        for h in range(2):
            m = steps == h
            n = m.sum()
            target = rewards[m] + (F[i, 1, nxt[m]].max(-1) if h == 0 else 0.0)
            delta = F[i, h, states[m], actions[m]] - target
            per_sign = []
            for sign in (1.0, -1.0):
                total = 0.0
                for s in range(2):
                    for a in range(2):
                        k = (states[m] == s) & (actions[m] == a)
                        u = delta[k].sum()
                        total += (sign * grid * u - alpha * grid**2 * k.sum()).max() / n
                per_sign.append(total)
            expected[i] += max(per_sign)
    got = agent.offline_objective(1, 3)
    assert np.all(got >= expected - 1e-12)  # the grid is a subset of [0, gamma]
    np.testing.assert_allclose(got, expected, atol=1e-5)  # grid spacing gamma / 4000


def test_offline_dataset_and_raw_arrays_agree():
    env, F, true = lock(H=4)
    code = env.code
    ds = OfflineDataset.collect(env, 3, lambda obs: int(code[int(obs[1])]), seed=0)
    steps, s, a, r, s2, nonterm = offline_tuples(ds, 4, 3, 2)
    assert len(steps) == 12 and nonterm[steps < 3].all() and not nonterm[steps == 3].any()
    np.testing.assert_array_equal(a, np.tile(code, 3)[np.argsort(np.tile(np.arange(4), 3),
                                                                 kind="stable")])
    assert r.sum() == 3.0
    raw = (steps, s, a, r, s2)
    x = HyGLOW(env.model, F, "tabular", ds, seed=0).learn(total_rounds=4)
    y = HyGLOW(env.model, F, "tabular", raw, seed=0).learn(total_rounds=4)
    np.testing.assert_array_equal(x.selected_, y.selected_)
    np.testing.assert_array_equal(x.objective_values_, y.objective_values_)


# ------------------------------------------------------------------------- hybrid behaviour
def test_pi_star_data_solves_lock_from_round_one_glow_needs_more():
    env, F, true = lock(H=6)
    assert true != 0  # round 1 without information picks index 0, a wrong code
    code = env.code
    ds = OfflineDataset.collect(env, 5, lambda obs: int(code[int(obs[1])]), seed=0)
    hy = HyGLOW(env.model, F, "tabular", ds, seed=0,
                offline_schedule="pooled").learn(total_rounds=15)
    assert np.all(hy.selected_ == true) and np.all(hy.regret_ == 0.0)
    # Algorithm 3's progressive schedule (the default): no offline data in round 1 (index 0,
    # a wrong code), the first of 14 parts (one pi* episode) in round 2 reads the code off.
    prog = HyGLOW(env.model, F, "tabular", ds, seed=0).learn(total_rounds=15)
    assert prog.selected_[0] == 0 and prog.regret_[0] == 1.0
    assert np.all(prog.selected_[1:] == true) and np.all(prog.regret_[1:] == 0.0)
    glow = GLOW(env.model, F, "tabular", kappa=0.01, seed=0).learn(total_rounds=15)
    first = np.flatnonzero(glow.regret_ < 1e-12)
    assert first.size == 0 or first[0] >= 3  # measured: GLOW solves it at round 10
    # One-sided learner: wrong codes only UNDER-estimate on pi* data, so it cannot tell them
    # apart from the truth at round 1 (the reason two_sided is the default, module docstring).
    one = HyGLOW(env.model, F, "tabular", ds, two_sided=False, seed=0,
                 offline_schedule="pooled").learn(total_rounds=15)
    assert one.regret_[0] == 1.0 and one.regret_[-1] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pi_star_data_on_layered_mdp_gives_optimal_policy_from_round_one(seed):
    model = layered_tabular_mdp(3, 3, 2, seed=seed)
    F, W = classes(model, seed)
    pi_star = robust_value_iteration(model).policy
    data = sample_tuples(model, pi_star, 200, seed=seed)
    agent = HyGLOW(model, F, W, data, seed=seed, offline_schedule="pooled").learn(total_rounds=5)
    np.testing.assert_allclose(agent.regret_, 0.0, atol=1e-12)
    progressive = HyGLOW(model, F, W, data, seed=seed).learn(total_rounds=5)
    assert progressive.selected_[0] == 0  # round 1 sees no offline part
    np.testing.assert_allclose(progressive.regret_[1:], 0.0, atol=1e-12)
    no_data = HyGLOW(model, F, W, seed=seed).learn(total_rounds=5)
    assert no_data.selected_[0] == 0  # no data at all: every objective is 0, lowest index


def test_without_offline_data_runs_and_pools_online_data():
    env, F, true = lock(H=5)
    T, K = 12, 2
    agent = HyGLOW(env, F, "tabular", episodes_per_round=K, seed=3).learn(total_rounds=T)
    assert agent.n_offline_ == 0 and agent.regret_.shape == (T,)
    assert agent.objective_values_.shape == (T, len(F))
    np.testing.assert_array_equal(agent.objective_values_[0], 0.0)
    np.testing.assert_array_equal(agent._counts.sum(axis=(1, 2)), T * K)
    assert agent.selected_[-1] == true and agent.regret_[-1] == 0.0
    assert agent.predict(np.array([0, 0]))[0] == env.code[0]


def test_same_seed_same_numbers_and_save_load(tmp_path):
    model = layered_tabular_mdp(3, 3, 2, seed=5)
    F, W = classes(model, 5)
    data = sample_tuples(model, None, 10, seed=5)
    a = HyGLOW(model, F, W, data, episodes_per_round=2, seed=7).learn(total_rounds=6)
    b = HyGLOW(model, F, W, data, episodes_per_round=2, seed=7).learn(total_rounds=6)
    np.testing.assert_array_equal(a.selected_, b.selected_)
    np.testing.assert_array_equal(a.objective_values_, b.objective_values_)
    np.testing.assert_array_equal(a.regret_, b.regret_)
    np.testing.assert_array_equal(a._counts.sum(axis=(1, 2)), 10 + 12)
    c = HyGLOW.load(a.save(tmp_path / "h.npz"), model)
    assert c.two_sided and c.predict(np.array([0, 1]))[0] == a.predict(np.array([0, 1]))[0]


def test_bad_arguments():
    model = layered_tabular_mdp(3, 3, 2, seed=0)
    F, W = classes(model, 0, n_perturbed=3)
    data = sample_tuples(model, None, 4, seed=0)
    with pytest.raises(ValueError, match="offline_dataset"):
        HyGLOW(model, F, W, [1, 2, 3])
    with pytest.raises(ValueError, match="offline_dataset"):
        HyGLOW(model, F, W, (data[0][:-1], *data[1:]))
    with pytest.raises(ValueError, match="offline_dataset states"):
        HyGLOW(model, F, W, (data[0], data[1] + 3, *data[2:]))
    with pytest.raises(ValueError, match="offline_dataset steps"):
        HyGLOW(model, F, W, (data[0] + 1, *data[1:]))
    with pytest.raises(ValueError, match="offline_dataset rewards"):
        HyGLOW(model, F, W, (*data[:3], data[3] * np.nan, data[4]))
    env = LayeredTabularMDPEnv(horizon=2, n_states=3, n_actions=2, seed=0)
    with pytest.raises(ValueError, match="offline_dataset"):
        HyGLOW(model, F, W, OfflineDataset.collect(env, 2, seed=0))  # horizon 2, not 3
    with pytest.raises(ValueError, match="two_sided"):
        HyGLOW(model, F, W, data, two_sided="yes")
    with pytest.raises(ValueError, match="total_rounds"):
        HyGLOW(model, F, W, data).learn(total_rounds=0)
    with pytest.raises(ValueError, match="value_class"):
        HyGLOW(model, F[:, :2], W, data)


def test_paper_constants_alpha_is_eight_over_gamma_and_pi_star_data_solve_the_lock():
    """constants='paper' (Algorithm 3 line 2): alpha_t = 8 / gamma_t, gamma_t = gamma t at the
    effective round; MABO.CR with the absolute value still reads the code off pi* data."""
    env, F, true = lock(H=6)
    code = env.code
    ds = OfflineDataset.collect(env, 5, lambda obs: int(code[int(obs[1])]), seed=0)
    hy = HyGLOW(env.model, F, "tabular", ds, seed=0, constants="paper",
                offline_schedule="pooled").learn(total_rounds=10)
    alpha, gamma = hy.hybrid_schedule(3, 10)
    assert alpha == pytest.approx(8.0 / gamma)
    _, _, gamma_paper = hy._paper_schedule(1 + (5 + 2), 10)  # n_eff = 5 offline + 2 online
    assert gamma == pytest.approx(gamma_paper)
    assert np.all(hy.selected_ == true) and np.all(hy.regret_ == 0.0)


def test_paper_gamma_is_corollary_4_1_by_hand():
    """Corollary 4.1: gamma = sqrt((C_star + C_cov) / (T H^2 log(|F||W| / delta))), here with a
    finite W (no covering surrogate) so every factor is explicit."""
    model = layered_tabular_mdp(3, 3, 2, seed=0)
    F, W = classes(model, 0, n_perturbed=3)  # |F| = 4, |W| = len(W)
    hy = HyGLOW(model, F, W, None, constants="paper", coverability_guess=5.0,
                concentrability_guess=2.0, delta=0.05, gamma0=1.0)
    T, H = 40, 3
    by_hand = math.sqrt((2.0 + 5.0) / (T * H**2 * math.log(len(F) * len(W) / 0.05)))
    assert hy.paper_gamma(T) == pytest.approx(by_hand, rel=1e-12)
    # GLOW's Theorem 3.1 gamma differs (no C_star, no H^2): HyGLOW does not reuse it
    g = GLOW(model, F, W, constants="paper", coverability_guess=5.0, delta=0.05)
    assert g.paper_gamma(T) == pytest.approx(math.sqrt(5.0 / (T * math.log(len(F) * len(W)
                                                                              / 0.05))))
    # and the schedule uses it: gamma_t = gamma * (effective round), alpha_t = 8 / gamma_t
    _, _, gamma_t = hy._paper_schedule(4.0, T)
    assert gamma_t == pytest.approx(4.0 * by_hand)
    with pytest.raises(ValueError, match="concentrability_guess"):
        HyGLOW(model, F, W, None, concentrability_guess=0.5)


class _RecordingHyGLOW(HyGLOW):
    """HyGLOW that keeps its online tuples (read back from the statistics each episode adds)."""

    def _episode(self, s, policy):
        c0, n0 = self._counts.copy(), self._next_counts.copy()
        super()._episode(s, policy)
        for h in range(self.horizon):
            (s_, a_), = np.argwhere(self._counts[h] > c0[h])
            nxt = np.argwhere(self._next_counts[h] > n0[h])
            s2 = int(nxt[0, 2]) if len(nxt) else 0  # last step: no next-state term
            self.online_.append((h, int(s_), int(a_), float(self.model.R[h, s_, a_]), s2))


@pytest.mark.parametrize(("n_off", "T"), [(40, 5), (7, 5), (3, 8), (10, 1)])
def test_progressive_schedule_round_t_uses_exactly_the_first_t_minus_1_parts(n_off, T):
    """Algorithm 3: each step's offline tuples are split (in order) into T - 1 parts; round t's
    objective equals the brute-force objective on parts 1..t-1 plus the online tuples of rounds
    1..t-1 -- no more, no less."""
    model = layered_tabular_mdp(3, 3, 2, seed=2)
    F, W = classes(model, 2, n_perturbed=5)
    data = sample_tuples(model, None, n_off, seed=3)
    K = 2
    hy = _RecordingHyGLOW(model, F, W, data, episodes_per_round=K, alpha0=0.7, gamma0=0.05,
                          seed=1)
    hy.online_ = []
    hy.learn(total_rounds=T)
    steps = data[0]
    parts = [np.array_split(np.flatnonzero(steps == h), max(T - 1, 1)) for h in range(3)]
    online = np.array(hy.online_, dtype=float).reshape(-1, 5)
    for t in range(1, T + 1):
        idx = np.concatenate([np.zeros(0, int)] + [p for h in range(3) for p in parts[h][:t - 1]])
        np.testing.assert_array_equal(
            hy.offline_revealed(t, T), [sum(len(p) for p in parts[h][:t - 1]) for h in range(3)])
        on = online[: (t - 1) * K * 3]  # 3 tuples (one per step) per online episode
        cols = [np.concatenate([data[i][idx], on[:, i]]) for i in range(5)]
        used = tuple(c.astype(np.int64) if i != 3 else c for i, c in enumerate(cols))
        if len(used[0]) == 0:
            np.testing.assert_array_equal(hy.objective_values_[t - 1], 0.0)
            continue
        alpha, gamma = hy.hybrid_schedule(t, T)
        expected = brute_force(F, W, used, alpha, gamma, True)
        np.testing.assert_allclose(hy.objective_values_[t - 1], expected, rtol=1e-10,
                                   atol=1e-12)
    assert hy.offline_revealed(1, T).sum() == 0
    assert hy.offline_revealed(T, T).sum() == (3 * n_off if T > 1 else 0)
    pooled = HyGLOW(model, F, W, data, offline_schedule="pooled")
    assert pooled.offline_revealed(1, T).sum() == 3 * n_off
    with pytest.raises(ValueError, match="offline_schedule"):
        HyGLOW(model, F, W, data, offline_schedule="all")
