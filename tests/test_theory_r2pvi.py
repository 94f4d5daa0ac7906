"""R2PVI theory functions: theoretical beta and rates (values, shapes, monotonicity), the
regularised worst-case factors, the exact coverage term, exact suboptimality and the
instance-dependent bound surrogate against measured suboptimality on the simulated MDP."""

from __future__ import annotations

import numpy as np
import pytest
from test_offline_agents import TableEnv, exact_dataset, one_hot_model

from robustrl.agents.r2pvi import R2PVI
from robustrl.data import OfflineDataset
from robustrl.divergences import regularized_inner
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.exact import robust_value_iteration
from robustrl.theory import r2pvi as th

DIVS = ("tv", "kl", "chi2")


# ------------------------------------------------------------------------------------------
# closed-form functions
# ------------------------------------------------------------------------------------------
def test_theoretical_beta_values():
    d, H, K, delta, lam = 4, 3, 100, 0.05, 0.5
    xi = np.log(2 * d * H * K / delta)
    assert th.log_factor(d, H, K, delta) == pytest.approx(xi, rel=1e-14)
    assert th.theoretical_beta("tv", d, H, K, lam, delta) == pytest.approx(
        16 * H * d * np.sqrt(xi), rel=1e-14)
    assert th.theoretical_beta("kl", d, H, K, lam, delta) == pytest.approx(
        16 * d * lam * np.exp(H / lam) * np.sqrt(H / lam + xi), rel=1e-14)
    assert th.theoretical_beta("chi2", d, H, K, lam, delta) == pytest.approx(
        8 * d * H**2 * (1 + 1 / lam) * np.sqrt(xi), rel=1e-14)


@pytest.mark.parametrize("divergence", DIVS)
def test_rates_and_beta_shapes_and_monotonicity(divergence):
    K = np.array([10, 100, 1_000, 10_000, 100_000])
    rate = th.instance_independent_rate(divergence, 4, 3, K, 0.5)
    beta = th.theoretical_beta(divergence, 4, 3, K, 0.5)
    assert rate.shape == K.shape and beta.shape == K.shape
    assert np.all(np.diff(rate) < 0)  # K^{-1/2} up to the log factor
    assert np.all(np.diff(beta) > 0)  # the log factor grows with K
    slopes = np.diff(np.log(rate)) / np.diff(np.log(K))
    assert np.all((slopes > -0.5) & (slopes < -0.4))  # -1/2 + 1/(2 xi)
    assert np.isscalar(th.instance_independent_rate(divergence, 4, 3, 100, 0.5))
    # more confidence (smaller delta) costs more; larger d and H cost more
    assert th.theoretical_beta(divergence, 4, 3, 100, 0.5, delta=0.01) > th.theoretical_beta(
        divergence, 4, 3, 100, 0.5, delta=0.1)
    assert th.instance_independent_rate(divergence, 8, 3, 100, 0.5) > rate[1]
    assert th.instance_independent_rate(divergence, 4, 6, 100, 0.5) > rate[1]


def test_smaller_lambda_costs_more_for_kl_and_chi2():
    for div in ("kl", "chi2"):
        assert th.theoretical_beta(div, 4, 3, 100, 0.1) > th.theoretical_beta(div, 4, 3, 100, 1.0)
        assert th.instance_independent_rate(div, 4, 3, 100, 0.1) > th.instance_independent_rate(
            div, 4, 3, 100, 1.0)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: th.theoretical_beta("hellinger", 4, 3, 100, 0.5), "divergence"),
        (lambda: th.theoretical_beta("tv", 4, 3, 100, 0.0), "lam"),
        (lambda: th.theoretical_beta("tv", 4, 3, 0, 0.5), "n_trajectories"),
        (lambda: th.theoretical_beta("tv", 4, 3, np.array([10, 0]), 0.5), "n_trajectories"),
        (lambda: th.theoretical_beta("tv", 4, 3, 100, 0.5, delta=1.0), "delta"),
        (lambda: th.instance_independent_rate("tv", 0, 3, 100, 0.5), "dim"),
        (lambda: th.instance_independent_rate("tv", 4, 0, 100, 0.5), "horizon"),
        (lambda: th.suboptimality(object(), SimulatedLinearMDPEnv().model, "tv", 0.5), "agent"),
        (lambda: th.worst_case_factors("model", np.zeros((4, 5)), "tv", 0.5), "model"),
        (lambda: th.worst_case_factors(SimulatedLinearMDPEnv().model, np.zeros((3, 5)), "tv",
                                       0.5), "values"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------------------------------------
# exact quantities
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("divergence", DIVS)
@pytest.mark.parametrize("lam", [0.05, 0.3, 2.0])
@pytest.mark.parametrize("which", ["simulated", "one_hot"])
def test_worst_case_factors_attain_the_regularised_inner_value(divergence, lam, which):
    model = SimulatedLinearMDPEnv().model if which == "simulated" else one_hot_model()
    V = robust_value_iteration(model, divergence=divergence, lam=lam).V
    W = th.worst_case_factors(model, V, divergence, lam)
    assert W.shape == model.mu.shape
    np.testing.assert_allclose(W.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert W.min() >= 0.0
    rng = np.random.default_rng(0)
    for h in range(model.horizon):
        for i, p in enumerate(model.mu[h]):
            best = regularized_inner(V[h + 1], p, lam, divergence)
            got = th.regularized_objective(V[h + 1], p, W[h, i], divergence, lam)
            assert got == pytest.approx(best, abs=1e-10)
            # no other distribution does better (KL and chi2 need mu << p)
            for _ in range(5):
                other = rng.dirichlet(np.ones(model.n_states)) * (p > 0 if divergence != "tv"
                                                                  else 1.0)
                other = other / other.sum()
                assert th.regularized_objective(V[h + 1], p, other, divergence, lam) >= (
                    best - 1e-12)


def test_coverage_on_exact_data_is_h_over_sqrt_atoms():
    """One-hot features, every pair 4 times: [Lambda^-1]_ii = 1/(4 + ridge) for every i, so
    every policy's coverage is H / sqrt(4 + ridge) under every kernel."""
    model = one_hot_model()
    agent = R2PVI(TableEnv(model), ridge=0.5, beta=0.0).fit(exact_dataset(model))
    rng = np.random.default_rng(0)
    for _ in range(3):
        policy = rng.integers(0, model.n_actions, size=(model.horizon, model.n_states))
        cov = th.coverage(agent.lambda_inv_, model, policy)
        assert cov == pytest.approx(model.horizon / np.sqrt(4.5), rel=1e-12)


def test_coverage_shrinks_as_nested_data_grow():
    env = SimulatedLinearMDPEnv()
    model = env.model
    data = OfflineDataset.collect(env, 4_000, seed=1)
    star = robust_value_iteration(model, divergence="tv", lam=0.3)
    covs = []
    for K in (50, 200, 1_000, 4_000):
        agent = R2PVI(env, lam=0.3).fit(data.subset(K))
        covs.append(th.coverage(agent.lambda_inv_, model, star.policy))
    assert np.all(np.diff(covs) < 0), covs


def test_suboptimality_is_zero_for_an_exact_agent_and_nonnegative_otherwise():
    model = one_hot_model()
    env = TableEnv(model)
    for div in DIVS:
        agent = R2PVI(env, divergence=div, lam=0.3, ridge=1e-12, beta=0.0).fit(
            exact_dataset(model))
        assert th.suboptimality(agent, model, div, 0.3) == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_array_equal(
            th.greedy_policy(agent, model),
            robust_value_iteration(model, divergence=div, lam=0.3).policy)


@pytest.fixture(scope="module")
def sim():
    env = SimulatedLinearMDPEnv()
    return env, OfflineDataset.collect(env, 10_000, seed=0)


@pytest.mark.parametrize("divergence", DIVS)
def test_bound_with_theoretical_beta_dominates_measured_suboptimality(sim, divergence):
    env, data = sim
    model, lam = env.model, 0.3
    for K in (30, 100, 1_000, 10_000):
        subset = data.subset(K)
        beta_theory = float(th.theoretical_beta(divergence, 4, 3, K, lam))
        for beta in (beta_theory, 1.0, 0.0):
            agent = R2PVI(env, divergence=divergence, lam=lam, beta=beta).fit(subset)
            gap = th.suboptimality(agent, model, divergence, lam)
            result = th.instance_dependent_bound(agent, model, divergence, lam)
            assert result.beta == pytest.approx(beta_theory)
            assert result.coverages.shape == (2,)
            assert gap >= -1e-12
            assert result.bound >= gap, (K, beta, gap, result.bound)
        # the surrogate scales with beta and vanishes without pessimism
        half = th.instance_dependent_bound(agent, model, divergence, lam,
                                           beta=beta_theory / 2)
        assert half.bound == pytest.approx(result.bound / 2, rel=1e-12)
        assert th.instance_dependent_bound(agent, model, divergence, lam, beta=0.0).bound == 0


def test_bound_accepts_explicit_kernels(sim):
    env, data = sim
    model = env.model
    agent = R2PVI(env, lam=0.3).fit(data.subset(500))
    perturbed = [SimulatedLinearMDPEnv(perturbation=q).model.mu for q in (0.0, 0.5, 1.0)]
    res = th.instance_dependent_bound(agent, model, "tv", 0.3, kernels=[model.mu, *perturbed])
    assert res.coverages.shape == (4,)
    default = th.instance_dependent_bound(agent, model, "tv", 0.3)
    assert res.coverages[0] == pytest.approx(default.coverages[0], rel=1e-12)
