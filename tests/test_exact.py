"""Exact robust dynamic programming: hand-worked answers, limits, worst-case kernels, bounds.

Every expected number is derived in the test (comments show the arithmetic) or comes from a
plain backward recursion / an explicitly constructed kernel written here, never from the solver.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from robustrl.exact import (
    PolicyValue,
    RobustSolution,
    evaluate_policy,
    policy_regularized_evaluate,
    policy_regularized_value_iteration,
    robust_evaluate_policy,
    robust_value_iteration,
)
from robustrl.models import FiniteMDP, LinearMDP

DIVERGENCES = ("tv", "kl", "chi2")

# --------------------------------------------------------------------------------------------
# helpers written independently of the solver


def _random_finite(rng, S=4, A=3, H=3):
    P = rng.dirichlet(np.ones(S), size=(H, S, A))
    R = rng.uniform(size=(H, S, A))
    return FiniteMDP(P, R, rng.dirichlet(np.ones(S)))


def _random_linear(rng, S=5, A=3, d=3, H=3):
    phi = rng.dirichlet(np.ones(d), size=(S, A))
    mu = rng.dirichlet(np.ones(S), size=(H, d))
    theta = rng.uniform(size=(H, d))
    return LinearMDP(phi, mu, theta, rng.dirichlet(np.ones(S)))


def _plain_backward(P, R, policy_probs=None):
    """Textbook finite-horizon DP with explicit loops: optimal (or policy) values V (H+1, S)."""
    H, S, A, _ = P.shape
    V = np.zeros((H + 1, S))
    for h in reversed(range(H)):
        for s in range(S):
            q = [R[h, s, a] + sum(P[h, s, a, t] * V[h + 1, t] for t in range(S)) for a in range(A)]
            if policy_probs is None:
                V[h, s] = max(q)
            else:
                V[h, s] = sum(policy_probs[h, s, a] * q[a] for a in range(A))
    return V


def _tv_worst_row(row, v, rho):
    """Worst distribution in the 1/2-TV ball of radius rho: move up to rho mass from the
    highest-valued states to the lowest-valued state of the WHOLE state space."""
    q = row.copy()
    s_min = int(np.argmin(v))
    remaining = rho
    for s in np.argsort(-v, kind="stable"):
        if s == s_min or remaining <= 0:
            continue
        take = min(q[s], remaining)
        q[s] -= take
        q[s_min] += take
        remaining -= take
    return q


def _kl(p, q):
    pos = p > 0
    return float(np.sum(p[pos] * np.log(p[pos] / q[pos])))


def _div(p, q, divergence):
    if divergence == "tv":
        return 0.5 * float(np.abs(p - q).sum())
    if divergence == "kl":
        return _kl(p, q)
    return float(np.sum((p - q) ** 2 / q))


def _switch_mdp():
    """Two states, two actions, H = 2; state 0 = 'good', state 1 = 'bad'.

    Last step (h=1): R = [[1, .5], [.5, .4]] so V_1 = [1, 0.5] whatever the robustness
    (V_2 = 0 and every inner problem of the zero function is 0). Gap V_1(0) - V_1(1) = 0.5.
    First step (h=0), rows over (good, bad):
      (0, a0) 'safe':  R = 0.25, P = [.5, .5]   nominal Q = .25 + .75 = 1.00
      (0, a1) 'risky': R = 0.10, P = [.9, .1]   nominal Q = .10 + .95 = 1.05
      (1, a0):         R = 0.50, P = [0, 1]     Q = .5 + .5 = 1.0 under every perturbation
                                                  (all mass already on the minimiser)
      (1, a1):         R = 0.00, P = [1, 0]     nominal Q = 1.0 (a tie: greedy takes a0)
    Start in state 0, so value = V_0(0).
    """
    P = np.zeros((2, 2, 2, 2))
    P[0, 0, 0] = [0.5, 0.5]
    P[0, 0, 1] = [0.9, 0.1]
    P[0, 1, 0] = [0.0, 1.0]
    P[0, 1, 1] = [1.0, 0.0]
    P[1] = 0.5
    R = np.array([[[0.25, 0.10], [0.5, 0.0]], [[1.0, 0.5], [0.5, 0.4]]])
    return FiniteMDP(P, R, np.array([1.0, 0.0]))


# --------------------------------------------------------------------------------------------
# 1. hand-worked robust values and the policy switch


def test_switch_mdp_nominal_values_and_tie_break():
    sol = robust_value_iteration(_switch_mdp())
    assert isinstance(sol, RobustSolution)
    np.testing.assert_allclose(sol.V[1], [1.0, 0.5])
    np.testing.assert_allclose(sol.Q[0], [[1.0, 1.05], [1.0, 1.0]])
    np.testing.assert_array_equal(sol.policy, [[1, 0], [0, 0]])  # tie at s=1 -> action 0
    assert sol.value == pytest.approx(1.05)
    np.testing.assert_array_equal(sol.V[2], 0.0)
    assert sol.divergence is None and sol.rho is None and sol.lam is None


@pytest.mark.parametrize("rho", [0.3, 0.55, 0.65, 0.95])
def test_switch_mdp_tv_constrained(rho):
    # Moving rho mass good -> bad costs 0.5 per unit (the gap), at most the good mass p0:
    #   safe  Q = 1.00 - 0.5 * min(rho, 0.5);  risky Q = 1.05 - 0.5 * min(rho, 0.9).
    # For rho <= 0.5 both drop equally (risky stays ahead); for rho >= 0.5 safe is stuck at
    # 0.75 and risky < 0.75 iff 0.5 rho > 0.3, i.e. the switch is at rho* = 0.6.
    # (1, a1): the nominal row puts no mass on the bad state, but TV may move mass to any
    # state, so Q = 1 - 0.5 * min(rho, 1) < 1 and a0 is strictly greedy at s = 1.
    sol = robust_value_iteration(_switch_mdp(), divergence="tv", rho=rho)
    safe, risky = 1.0 - 0.5 * min(rho, 0.5), 1.05 - 0.5 * min(rho, 0.9)
    np.testing.assert_allclose(sol.Q[0], [[safe, risky], [1.0, 1.0 - 0.5 * rho]], atol=1e-12)
    assert sol.policy[0, 0] == (1 if rho < 0.6 else 0)
    assert sol.policy[0, 1] == 0
    assert sol.value == pytest.approx(max(safe, risky), abs=1e-12)
    assert sol.divergence == "tv" and sol.rho == rho and sol.lam is None


@pytest.mark.parametrize("lam", [0.25, 0.45, 0.7])
def test_switch_mdp_tv_regularized(lam):
    # I = E_p[min(V, V_min + lam)] with V_1 = [1, .5], V_min = .5 (arXiv:2411.18612,
    # docs/algorithms/r2pvi.md).
    # lam < 0.5 caps the good state at 0.5 + lam:
    #   safe  Q = .25 + .5(.5 + lam) + .5*.5 = 0.75 + 0.5 lam
    #   risky Q = .10 + .9(.5 + lam) + .1*.5 = 0.60 + 0.9 lam
    #   risky wins iff 0.4 lam > 0.15, i.e. the switch is at lam* = 0.375.
    # lam >= 0.5 changes nothing: nominal Q = [1.0, 1.05].
    # (1, a1): Q = min(1, .5 + lam) (mass may go to the bad state though P gives it none).
    sol = robust_value_iteration(_switch_mdp(), divergence="tv", lam=lam)
    if lam < 0.5:
        safe, risky = 0.75 + 0.5 * lam, 0.60 + 0.9 * lam
    else:
        safe, risky = 1.0, 1.05
    np.testing.assert_allclose(sol.Q[0, 0], [safe, risky], atol=1e-12)
    assert sol.Q[0, 1, 1] == pytest.approx(min(1.0, 0.5 + lam), abs=1e-12)
    assert sol.policy[0, 0] == (1 if lam > 0.375 else 0)
    assert sol.value == pytest.approx(max(safe, risky), abs=1e-12)
    assert sol.divergence == "tv" and sol.lam == lam and sol.rho is None


def _kl_reg_inner(p0, lam):
    # Gibbs: I = -lam log E_p exp(-V/lam) with V = [1, .5]
    return -lam * math.log(p0 * math.exp(-1.0 / lam) + (1 - p0) * math.exp(-0.5 / lam))


def test_switch_mdp_kl_regularized_values_and_switch():
    # safe - risky = 0.15 + I(.5) - I(.9); as lam -> 0 both I -> V_min = .5 (support has the bad
    # state) so safe leads by 0.15; as lam -> inf they become the nominal [1.0, 1.05]. Root:
    def gap(lam):
        return 0.15 + _kl_reg_inner(0.5, lam) - _kl_reg_inner(0.9, lam)

    lam_star = brentq(gap, 0.02, 1.0)
    assert 0.05 < lam_star < 0.1  # gap(.05) = .0696 > 0, gap(.1) = -.0057 < 0 (by hand)
    mdp = _switch_mdp()
    for lam, action in [(0.9 * lam_star, 0), (1.1 * lam_star, 1), (0.5, 1), (3.0, 1)]:
        sol = robust_value_iteration(mdp, divergence="kl", lam=lam)
        safe, risky = 0.25 + _kl_reg_inner(0.5, lam), 0.10 + _kl_reg_inner(0.9, lam)
        np.testing.assert_allclose(sol.Q[0, 0], [safe, risky], rtol=0, atol=1e-10)
        # rows with a single support point cannot move under KL
        np.testing.assert_allclose(sol.Q[0, 1], [1.0, 1.0], atol=1e-10)
        assert sol.policy[0, 0] == action
        assert sol.value == pytest.approx(max(safe, risky), abs=1e-10)


def test_switch_mdp_chi2_regularized_values_and_switch():
    # Two states: mu = p + delta (-1, +1); chi2(mu||p) = delta^2 / (p0 p1). Minimise
    # E_p V - 0.5 delta + lam delta^2 / (p0 p1): delta* = 0.5 p0 p1 / (2 lam), so while
    # delta* <= p0:  I = E_p V - 0.25 p0 p1 / (4 lam);  once capped (delta = p0, all mass on
    # the bad state):  I = 0.5 + lam p0 / p1.
    #   safe  (p0 = .5): uncapped iff lam >= .125:  Q = 1.00 - .015625 / lam, else .75 + lam
    #   risky (p0 = .9): uncapped iff lam >= .025:  Q = 1.05 - .005625 / lam, else .60 + 9 lam
    # Uncapped, risky - safe = .05 + .01 / lam > 0; for lam < .025 both capped and safe wins
    # iff .75 + lam > .6 + 9 lam, i.e. the switch is at lam* = .15 / 8 = 0.01875.
    def safe_q(lam):
        return 1.0 - 0.015625 / lam if lam >= 0.125 else 0.75 + lam

    def risky_q(lam):
        return 1.05 - 0.005625 / lam if lam >= 0.025 else 0.60 + 9 * lam

    mdp = _switch_mdp()
    for lam in [0.01, 0.018, 0.0195, 0.05, 0.2, 2.0]:
        sol = robust_value_iteration(mdp, divergence="chi2", lam=lam)
        np.testing.assert_allclose(sol.Q[0, 0], [safe_q(lam), risky_q(lam)], atol=1e-9)
        np.testing.assert_allclose(sol.Q[0, 1], [1.0, 1.0], atol=1e-9)
        assert sol.policy[0, 0] == (0 if lam < 0.01875 else 1)


def test_switch_mdp_chi2_constrained():
    # delta = min(sqrt(rho p0 p1), p0), I = E_p V - 0.5 delta:
    #   safe  Q = 1.00 - 0.5 min(.5 sqrt(rho), .5);  risky Q = 1.05 - 0.5 min(.3 sqrt(rho), .9)
    # safe is capped at .75 for rho >= 1; risky < .75 iff .15 sqrt(rho) > .3 iff rho > 4.
    mdp = _switch_mdp()
    for rho in [0.25, 3.0, 5.0]:
        sol = robust_value_iteration(mdp, divergence="chi2", rho=rho)
        safe = 1.0 - 0.5 * min(0.5 * math.sqrt(rho), 0.5)
        risky = 1.05 - 0.5 * min(0.3 * math.sqrt(rho), 0.9)
        np.testing.assert_allclose(sol.Q[0, 0], [safe, risky], atol=1e-9)
        np.testing.assert_allclose(sol.Q[0, 1], [1.0, 1.0], atol=1e-9)
        assert sol.policy[0, 0] == (0 if rho > 4 else 1)


def test_switch_mdp_kl_constrained():
    # Moving delta good -> bad: KL(p - delta(1,-1) || p) is increasing in delta; the worst case
    # uses the whole budget rho (root found here with brentq) unless even delta = p0
    # (KL = log(1/p1)) fits. I = E_p V - 0.5 delta.
    def delta(p0, rho):
        def kl(d):
            mu = np.array([p0 - d, 1 - p0 + d])
            return _kl(mu, np.array([p0, 1 - p0])) - rho

        return p0 if kl(p0) <= 0 else brentq(kl, 0.0, p0, xtol=1e-14)

    mdp = _switch_mdp()
    for rho in [0.05, 0.3, 1.0, 3.0]:
        sol = robust_value_iteration(mdp, divergence="kl", rho=rho)
        safe = 1.0 - 0.5 * delta(0.5, rho)
        risky = 1.05 - 0.5 * delta(0.9, rho)
        np.testing.assert_allclose(sol.Q[0, 0], [safe, risky], atol=1e-7)
        np.testing.assert_allclose(sol.Q[0, 1], [1.0, 1.0], atol=1e-9)
        assert sol.policy[0, 0] == int(risky > safe)
    # rho = 3 > log(1/.1) = 2.30: the risky row can be moved entirely to the bad state
    assert delta(0.9, 3.0) == 0.9


# --------------------------------------------------------------------------------------------
# 2. limits, monotonicity, and explicit kernels in the uncertainty set


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("linear", [False, True])
def test_no_uncertainty_limits_recover_plain_value_iteration(divergence, linear):
    rng = np.random.default_rng(3)
    model = _random_linear(rng) if linear else _random_finite(rng)
    V_plain = _plain_backward(model.P, model.R)
    np.testing.assert_allclose(robust_value_iteration(model).V, V_plain, atol=1e-12)
    sol0 = robust_value_iteration(model, divergence=divergence, rho=0.0)
    np.testing.assert_allclose(sol0.V, V_plain, atol=1e-12)
    # lam -> inf: the regularised deviation is O(Var/lam) (chi2), O(Var/(2 lam)) (KL), 0 (TV)
    sol_inf = robust_value_iteration(model, divergence=divergence, lam=1e8)
    np.testing.assert_allclose(sol_inf.V, V_plain, atol=1e-6)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_robust_value_monotone_in_rho_and_lam(divergence):
    rng = np.random.default_rng(4)
    for model in (_random_finite(rng), _random_linear(rng)):
        nominal = robust_value_iteration(model).V
        by_rho = [robust_value_iteration(model, divergence=divergence, rho=r).V
                  for r in (0.0, 0.02, 0.1, 0.3, 0.8)]
        by_lam = [robust_value_iteration(model, divergence=divergence, lam=lam).V
                  for lam in (0.02, 0.1, 0.5, 2.0, 50.0)]
        for smaller, larger in zip(by_rho[1:], by_rho[:-1], strict=True):
            assert np.all(smaller <= larger + 1e-10)
        for smaller, larger in zip(by_lam[:-1], by_lam[1:], strict=True):
            assert np.all(smaller <= larger + 1e-10)
        assert np.all(by_lam[-1] <= nominal + 1e-10)
        # something actually changed (the test could fail)
        assert by_rho[-1][0].min() < nominal[0].min() - 1e-3
        assert by_lam[0][0].min() < nominal[0].min() - 1e-3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rho=st.floats(0.01, 0.9), linear=st.booleans())
def test_tv_constrained_worst_kernel_attains_robust_policy_value(seed, rho, linear):
    # For a fixed policy the adversary's best reply at step h is the TV worst row of each
    # (s,a) row / factor against the robust V_{h+1} of that policy; evaluating the policy
    # non-robustly under that explicit kernel must give exactly the robust value.
    rng = np.random.default_rng(seed)
    model = _random_linear(rng) if linear else _random_finite(rng)
    H, S, A = model.horizon, model.n_states, model.n_actions
    policy = rng.integers(0, A, size=(H, S))
    rob = robust_evaluate_policy(model, policy, divergence="tv", rho=rho)
    assert isinstance(rob, PolicyValue)
    if linear:
        mu = np.array([[_tv_worst_row(model.mu[h, i], rob.V[h + 1], rho)
                        for i in range(model.feature_dim)] for h in range(H)])
        worst = model.with_factors(mu)
    else:
        P = np.array([[[_tv_worst_row(model.P[h, s, a], rob.V[h + 1], rho) for a in range(A)]
                       for s in range(S)] for h in range(H)])
        worst = model.with_kernel(P)
    ev = evaluate_policy(worst, policy)
    np.testing.assert_allclose(ev.V, rob.V, atol=1e-10)
    assert ev.value == pytest.approx(rob.value, abs=1e-10)
    assert rob.value < evaluate_policy(model, policy).value  # perturbation hurts


def _regularized_worst_row(row, v, lam, divergence):
    """Minimiser of E_mu[v] + lam D(mu||row), written from the first-order conditions."""
    if divergence == "kl":  # Gibbs tilt
        w = row * np.exp(-(v - v.min()) / lam)
        return w / w.sum()
    if divergence == "tv":  # flatten states above V_min + lam onto the argmin state
        q = row.copy()
        s_min = int(np.argmin(v))
        high = v > v.min() + lam
        moved = q[high].sum()
        q[high] = 0.0
        q[s_min] += moved
        return q
    # chi2: density g = max(0, 1 + (eta - v) / (2 lam)) with eta chosen so E_row g = 1
    def mass(eta):
        return float(row @ np.maximum(0.0, 1.0 + (eta - v) / (2 * lam))) - 1.0

    eta = brentq(mass, v.min() - 2 * lam, v.max() + 2 * lam, xtol=1e-15)
    return row * np.maximum(0.0, 1.0 + (eta - v) / (2 * lam))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("linear", [False, True])
def test_regularized_worst_kernel_plus_penalty_attains_robust_policy_value(divergence, linear):
    # RRMDP value = inf over kernels of E[sum_h r_h + lam * penalty_h] (arXiv:2411.18612,
    # docs/algorithms/r2pvi.md); with the
    # explicit minimising kernel and the penalty folded into the reward, a plain evaluation
    # must give exactly the robust value. The penalty of a d-rectangular kernel is
    # lam * sum_i phi_i(s,a) D(mu_i || mu0_i), of an (s,a)-rectangular one lam * D(row || row0).
    rng = np.random.default_rng(11)
    model = _random_linear(rng) if linear else _random_finite(rng)
    H, S, A = model.horizon, model.n_states, model.n_actions
    lam = 0.15
    policy = rng.dirichlet(np.ones(A), size=(H, S))
    rob = robust_evaluate_policy(model, policy, divergence=divergence, lam=lam)
    P = np.zeros_like(model.P)
    R = model.R.copy()
    for h in range(H):
        v = rob.V[h + 1]
        if linear:
            mu = np.array([_regularized_worst_row(model.mu[h, i], v, lam, divergence)
                           for i in range(model.feature_dim)])
            pen = np.array([_div(mu[i], model.mu[h, i], divergence)
                            for i in range(model.feature_dim)])
            P[h] = np.einsum("sad,dt->sat", model.phi, mu)
            R[h] += lam * model.phi @ pen
        else:
            for s in range(S):
                for a in range(A):
                    P[h, s, a] = _regularized_worst_row(model.P[h, s, a], v, lam, divergence)
                    R[h, s, a] += lam * _div(P[h, s, a], model.P[h, s, a], divergence)
    ev = evaluate_policy(FiniteMDP(P, R, model.initial_distribution), policy)
    np.testing.assert_allclose(ev.V, rob.V, atol=1e-9)


def _random_nearby(row, rng, divergence, radius):
    """A random distribution q with D(q || row) <= radius (checked here)."""
    target = rng.dirichlet(np.ones(row.size))
    t = 1.0
    while True:
        q = (1 - t) * row + t * target
        if _div(q, row, divergence) <= radius:
            return q
        t *= 0.5


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_robust_value_is_below_every_kernel_in_the_set(divergence):
    # Constrained: every kernel whose factors lie in their balls gives at least the robust value.
    # Regularised: every kernel's value plus its penalty is at least the regularised value.
    rng = np.random.default_rng(5)
    model = _random_linear(rng)
    H, S, A, d = model.horizon, model.n_states, model.n_actions, model.feature_dim
    policy = rng.integers(0, A, size=(H, S))
    rho, lam = 0.2, 0.3
    rob_rho = robust_evaluate_policy(model, policy, divergence=divergence, rho=rho).value
    rob_lam = robust_evaluate_policy(model, policy, divergence=divergence, lam=lam).value
    for _ in range(20):
        mu = np.array([[_random_nearby(model.mu[h, i], rng, divergence, rho) for i in range(d)]
                       for h in range(H)])
        assert evaluate_policy(model.with_factors(mu), policy).value >= rob_rho - 1e-12
        pen = np.array([[_div(mu[h, i], model.mu[h, i], divergence) for i in range(d)]
                        for h in range(H)])
        R = model.R + lam * np.einsum("sad,hd->hsa", model.phi, pen)
        perturbed = FiniteMDP(model.with_factors(mu).P, R, model.initial_distribution)
        assert evaluate_policy(perturbed, policy).value >= rob_lam - 1e-12


def test_optimal_robust_policy_values_are_consistent():
    rng = np.random.default_rng(6)
    model = _random_finite(rng)
    for kw in ({"rho": 0.3}, {"lam": 0.2}):
        sol = robust_value_iteration(model, divergence="kl", **kw)
        ev = robust_evaluate_policy(model, sol.policy, divergence="kl", **kw)
        np.testing.assert_allclose(ev.V, sol.V, atol=1e-12)
        np.testing.assert_allclose(ev.Q, sol.Q, atol=1e-12)
        for _ in range(5):  # no policy beats the robust optimum
            other = rng.integers(0, model.n_actions, size=(model.horizon, model.n_states))
            v = robust_evaluate_policy(model, other, divergence="kl", **kw).V
            # KL-constrained inner values are 1e-8-accurate (golden-section dual)
            assert np.all(v <= sol.V + 1e-8)


def test_evaluate_policy_matches_plain_recursion_and_one_hot_equivalence():
    rng = np.random.default_rng(7)
    model = _random_finite(rng)
    H, S, A = model.horizon, model.n_states, model.n_actions
    probs = rng.dirichlet(np.ones(A), size=(H, S))
    ev = evaluate_policy(model, probs)
    np.testing.assert_allclose(ev.V, _plain_backward(model.P, model.R, probs), atol=1e-12)
    assert ev.value == pytest.approx(model.initial_distribution @ ev.V[0])
    det = rng.integers(0, A, size=(H, S))
    one_hot = np.eye(A)[det]
    np.testing.assert_allclose(evaluate_policy(model, det).V, evaluate_policy(model, one_hot).V)
    # the greedy non-robust policy attains the optimal value
    sol = robust_value_iteration(model)
    assert evaluate_policy(model, sol.policy).value == pytest.approx(sol.value, abs=1e-12)


def test_linear_per_step_per_factor_radius():
    # rho of shape (H, d) with only factor k at step 0 uncertain: steps >= 1 are nominal, and
    # at step 0 only z_k = E_{mu_{0,k}}[V_1] is replaced by its TV worst case.
    rng = np.random.default_rng(8)
    model = _random_linear(rng, d=4)
    H, d, k, r = model.horizon, model.feature_dim, 2, 0.4
    rho = np.zeros((H, d))
    rho[0, k] = r
    sol = robust_value_iteration(model, divergence="tv", rho=rho)
    V_nom = _plain_backward(model.P, model.R)
    np.testing.assert_allclose(sol.V[1:], V_nom[1:], atol=1e-12)
    z = model.mu[0] @ V_nom[1]
    z[k] = _tv_worst_row(model.mu[0, k], V_nom[1], r) @ V_nom[1]
    np.testing.assert_allclose(sol.Q[0], model.phi @ (model.theta[0] + z), atol=1e-12)
    np.testing.assert_array_equal(sol.rho, rho)
    assert sol.V[0].min() < V_nom[0].min()  # factor k matters at step 0
    # a (d,) radius is shared by all steps and a scalar by all factors
    per_factor = np.array([0.1, 0.0, 0.3, 0.2])
    a = robust_value_iteration(model, divergence="kl", lam=per_factor + 0.05)
    b = robust_value_iteration(model, divergence="kl", lam=np.tile(per_factor + 0.05, (H, 1)))
    np.testing.assert_array_equal(a.V, b.V)
    c = robust_value_iteration(model, divergence="chi2", rho=0.2)
    e = robust_value_iteration(model, divergence="chi2", rho=np.full(d, 0.2))
    np.testing.assert_array_equal(c.V, e.V)


# --------------------------------------------------------------------------------------------
# 3. d-rectangular vs (s,a)-rectangular


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_sa_rectangular_is_at_least_as_pessimistic_as_d_rectangular(divergence):
    # Joint convexity: D(sum_i phi_i mu_i || sum_i phi_i mu0_i) <= sum_i phi_i D(mu_i||mu0_i).
    # Constrained: per-factor-feasible factors mix into a row inside the row ball, so the
    # (s,a)-rectangular set contains the d-rectangular one and its infimum is no larger.
    # Regularised: the row penalty of the mixture is at most the d-rectangular penalty.
    # Hence V_sa <= V_d at every step and state, for every divergence and both forms.
    rng = np.random.default_rng(9)
    lin = _random_linear(rng)
    tab = lin.to_finite()
    np.testing.assert_allclose(robust_value_iteration(lin).V, robust_value_iteration(tab).V,
                               atol=1e-12)
    gaps = []
    for kw in ({"rho": 0.1}, {"rho": 0.5}, {"lam": 0.1}, {"lam": 1.0}):
        v_d = robust_value_iteration(lin, divergence=divergence, **kw).V
        v_sa = robust_value_iteration(tab, divergence=divergence, **kw).V
        assert np.all(v_sa <= v_d + 1e-10)
        gaps.append(float((v_d - v_sa).max()))
    assert max(gaps) > 1e-4  # the two structures genuinely differ on this model


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_one_hot_features_make_the_two_structures_identical(divergence):
    # With d = S*A and phi(s,a) = e_{(s,a)}, each factor IS a row: the sets coincide.
    rng = np.random.default_rng(10)
    tab = _random_finite(rng, S=3, A=2, H=3)
    H, S, A = tab.horizon, tab.n_states, tab.n_actions
    phi = np.eye(S * A).reshape(S, A, S * A)
    lin = LinearMDP(phi, tab.P.reshape(H, S * A, S), tab.R.reshape(H, S * A),
                    tab.initial_distribution)
    for kw in ({"rho": 0.25}, {"lam": 0.3}):
        v_d = robust_value_iteration(lin, divergence=divergence, **kw).V
        v_sa = robust_value_iteration(tab, divergence=divergence, **kw).V
        np.testing.assert_allclose(v_d, v_sa, atol=1e-10)


# --------------------------------------------------------------------------------------------
# 4. policy-regularised objective (DR-RPO, arXiv:2510.14246, docs/algorithms/drrpo.md)


def _one_state_bandit():
    # H = 1, S = 1, A = 2, rewards [1, 0]
    P = np.ones((1, 1, 2, 1))
    R = np.array([[[1.0, 0.0]]])
    return FiniteMDP(P, R, np.array([1.0]))


def test_policy_regularized_hand_worked_bandit():
    model = _one_state_bandit()
    # uniform reference, tau = 1: V = log((e^1 + e^0) / 2) = log(1.859141) = 0.620115;
    # pi = [e, 1] / (e + 1) = [0.731059, 0.268941]
    sol = policy_regularized_value_iteration(model, tau=1.0)
    assert sol.value == pytest.approx(math.log((math.e + 1) / 2), abs=1e-12)
    np.testing.assert_allclose(sol.probs[0, 0], [math.e / (math.e + 1), 1 / (math.e + 1)])
    assert sol.policy[0, 0] == 0 and sol.tau == 1.0
    # check of <pi, Q> - tau KL(pi || unif): .731059 - (.731059 log 1.462117 + .268941 log .537883)
    #   = .731059 - (.277735 - .166773) = .620097 ... = log((e+1)/2) up to rounding
    ev = policy_regularized_evaluate(model, sol.probs, tau=1.0)
    assert ev.value == pytest.approx(math.log((math.e + 1) / 2), abs=1e-12)
    # reference [.25, .75], tau = .5: V = .5 log(.25 e^2 + .75) = .5 log 2.597264 = 0.477228;
    # pi = [.25 e^2, .75] / 2.597264 = [.711234, .288766]
    ref = np.array([[0.25, 0.75]])
    sol = policy_regularized_value_iteration(model, tau=0.5, reference_policy=ref)
    z = 0.25 * math.exp(2) + 0.75
    assert sol.value == pytest.approx(0.5 * math.log(z), abs=1e-12)
    np.testing.assert_allclose(sol.probs[0, 0], [0.25 * math.exp(2) / z, 0.75 / z])
    # the uniform policy: <u, Q> - .5 KL(u || ref) = .5 - .5 (.5 log 2 + .5 log(2/3))
    ev_u = policy_regularized_evaluate(model, np.full((1, 1, 2), 0.5), tau=0.5,
                                       reference_policy=ref)
    assert ev_u.value == pytest.approx(0.5 - 0.5 * (0.5 * math.log(2) + 0.5 * math.log(2 / 3)))
    assert ev_u.value < sol.value


@pytest.mark.parametrize("kw", [{}, {"divergence": "tv", "rho": 0.3},
                                {"divergence": "kl", "lam": 0.2}])
def test_policy_regularized_limits_and_optimality(kw):
    rng = np.random.default_rng(12)
    model = _random_linear(rng)
    H, S, A = model.horizon, model.n_states, model.n_actions
    base = robust_value_iteration(model, **kw)
    # tau -> 0: V_h lies within (H - h) tau log A of the unregularised optimum (uniform ref)
    tau = 1e-6
    small = policy_regularized_value_iteration(model, tau=tau, **kw)
    for h in range(H + 1):
        assert np.all(small.V[h] <= base.V[h] + 1e-12)
        assert np.all(small.V[h] >= base.V[h] - (H - h) * tau * math.log(A) - 1e-12)
    np.testing.assert_array_equal(small.policy, base.policy)
    assert np.all(small.probs.max(axis=2) > 1 - 1e-6)
    # tau -> inf: the policy is the reference
    ref = rng.dirichlet(np.ones(A), size=(H, S))
    big = policy_regularized_value_iteration(model, tau=1e6, reference_policy=ref, **kw)
    np.testing.assert_allclose(big.probs, ref, atol=1e-5)
    v_ref = evaluate_policy(model, ref) if not kw else robust_evaluate_policy(model, ref, **kw)
    assert big.value == pytest.approx(v_ref.value, abs=1e-5)
    # evaluating the optimal softmax policy gives the optimal value; other policies do worse
    tau = 0.3
    opt = policy_regularized_value_iteration(model, tau=tau, reference_policy=ref, **kw)
    ev = policy_regularized_evaluate(model, opt.probs, tau=tau, reference_policy=ref, **kw)
    np.testing.assert_allclose(ev.V, opt.V, atol=1e-10)
    np.testing.assert_allclose(ev.Q, opt.Q, atol=1e-10)
    for _ in range(5):
        other = rng.dirichlet(np.ones(A), size=(H, S))
        v = policy_regularized_evaluate(model, other, tau=tau, reference_policy=ref, **kw).V
        assert np.all(v <= opt.V + 1e-10)


def test_policy_regularized_is_stable_for_tiny_tau_and_zero_reference_entries():
    model = _one_state_bandit()
    # Q / tau would overflow for tau = 1e-310; the value must still be max Q = 1
    sol = policy_regularized_value_iteration(model, tau=1e-310)
    assert np.isfinite(sol.value) and sol.value == pytest.approx(1.0)
    # best action unsupported by the reference, tiny tau: only the supported action counts
    ref = np.array([[0.0, 1.0]])
    sol = policy_regularized_value_iteration(model, tau=1e-310, reference_policy=ref)
    assert sol.value == 0.0 and sol.policy[0, 0] == 1
    # an action with zero reference probability gets zero probability (even if it is best)
    ref = np.array([[0.0, 1.0]])
    sol = policy_regularized_value_iteration(model, tau=0.1, reference_policy=ref)
    np.testing.assert_array_equal(sol.probs[0, 0], [0.0, 1.0])
    assert sol.value == pytest.approx(0.0) and sol.policy[0, 0] == 1


# --------------------------------------------------------------------------------------------
# 5. bad input


def test_bad_input_raises_value_error_naming_the_argument():
    rng = np.random.default_rng(13)
    tab = _random_finite(rng)
    lin = _random_linear(rng)
    H, S, A = tab.horizon, tab.n_states, tab.n_actions
    with pytest.raises(ValueError, match="rho.*lam"):
        robust_value_iteration(tab, divergence="tv", rho=0.1, lam=0.1)
    with pytest.raises(ValueError, match="rho"):
        robust_value_iteration(tab, divergence="tv", rho=-0.1)
    with pytest.raises(ValueError, match="rho"):
        robust_value_iteration(tab, divergence="tv", rho=float("nan"))
    with pytest.raises(ValueError, match="rho"):
        robust_value_iteration(tab, divergence="tv", rho=np.full(3, 0.1))  # tabular: scalar
    with pytest.raises(ValueError, match="rho"):
        robust_value_iteration(lin, divergence="tv", rho=np.full(lin.feature_dim + 1, 0.1))
    with pytest.raises(ValueError, match="rho"):
        robust_value_iteration(lin, divergence="tv", rho=-np.ones((lin.horizon, lin.feature_dim)))
    for bad_lam in (0.0, -1.0):
        with pytest.raises(ValueError, match="lam"):
            robust_value_iteration(tab, divergence="kl", lam=bad_lam)
    with pytest.raises(ValueError, match="lam"):
        robust_value_iteration(lin, divergence="kl", lam=np.array([0.1, 0.0, 0.2]))
    with pytest.raises(ValueError, match="divergence"):
        robust_value_iteration(tab, divergence="wasserstein", rho=0.1)
    with pytest.raises(ValueError, match="divergence"):
        robust_value_iteration(tab, rho=0.1)  # a radius without a divergence
    with pytest.raises(ValueError, match="model"):
        robust_value_iteration(tab.P)
    with pytest.raises(ValueError, match="rho"):
        robust_evaluate_policy(tab, np.zeros((H, S), dtype=int), divergence="tv")
    bad_policies = [
        np.zeros((H, S + 1), dtype=int),          # wrong shape
        np.full((H, S), A, dtype=int),            # action out of range
        np.full((H, S), -1, dtype=int),           # negative action
        np.zeros((H, S)),                         # float table of "actions"
        np.full((H, S, A), 0.5),                  # rows do not sum to 1
        np.zeros((H, S, A, 1)),                   # wrong number of dimensions
    ]
    for bad in bad_policies:
        with pytest.raises(ValueError, match="policy"):
            evaluate_policy(tab, bad)
        with pytest.raises(ValueError, match="policy"):
            robust_evaluate_policy(tab, bad, divergence="tv", rho=0.1)
    with pytest.raises(ValueError, match="tau"):
        policy_regularized_value_iteration(tab, tau=0.0)
    with pytest.raises(ValueError, match="reference_policy"):
        policy_regularized_value_iteration(tab, tau=1.0, reference_policy=np.full((S, A), 0.4))
    with pytest.raises(ValueError, match="reference_policy"):
        policy_regularized_value_iteration(tab, tau=1.0, reference_policy=np.ones((S + 1, A)))
    ref = np.zeros((S, A))
    ref[:, 0] = 1.0
    with pytest.raises(ValueError, match="policy_probs"):
        policy_regularized_evaluate(tab, np.full((H, S, A), 1.0 / A), tau=1.0,
                                    reference_policy=ref)
