"""theory.drrpo: the reconstructed regret bound, the log-log slope fit and the combined check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl.agents._online import run_regret_curve
from robustrl.agents.drrpo import DRRPO
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.theory.drrpo import (
    check_regret,
    fit_loglog_slope,
    informative_episodes,
    log_spaced_episodes,
    regret_bound,
    trivial_bound,
)


def test_regret_bound_hand_value():
    # C d^2 H^2 sqrt(K) log(2 d H K / delta) with d=4, H=3, K=100, delta=0.05
    want = 16 * 9 * 10 * math.log(2 * 4 * 3 * 100 / 0.05)
    assert regret_bound(4, 3, 100, delta=0.05) == pytest.approx(want, rel=1e-14)
    assert regret_bound(4, 3, 100, constant=2.5) == pytest.approx(
        2.5 * regret_bound(4, 3, 100), rel=1e-14)


def test_regret_bound_we_drive_u_form_uses_min_inverse_rho_and_h():
    base = 4 * 3 * math.sqrt(100) * math.log(2 * 4 * 3 * 100 / 0.05)
    assert regret_bound(4, 3, 100, rho=0.5, form="we_drive_u") == pytest.approx(2 * base)
    assert regret_bound(4, 3, 100, rho=0.1, form="we_drive_u") == pytest.approx(3 * base)
    assert regret_bound(4, 3, 100, rho=0.0, form="we_drive_u") == pytest.approx(3 * base)


def test_regret_bound_is_vectorised_and_grows_like_sqrt_k_times_log():
    K = np.array([1, 10, 100, 1000])
    b = regret_bound(8, 5, K, rho=0.2, tau=0.1)
    assert b.shape == (4,) and np.all(np.diff(b) > 0)
    iota = np.log(2 * 8 * 5 * K / 0.05)
    np.testing.assert_allclose(b / (np.sqrt(K) * iota), 64 * 25, rtol=1e-14)
    # rho and tau do not enter the DR-LSVI-UCB-order reconstruction
    np.testing.assert_array_equal(b, regret_bound(8, 5, K))


@pytest.mark.parametrize("kwargs, name", [
    (dict(d=0), "d"), (dict(H=1.5), "H"), (dict(K=0), "K"), (dict(K=[1, -2]), "K"),
    (dict(K=2.5), "K"), (dict(delta=0.0), "delta"), (dict(delta=1.0), "delta"),
    (dict(rho=-0.1), "rho"), (dict(tau=0.0), "tau"), (dict(form="ppo"), "form"),
    (dict(constant=0.0), "constant"), (dict(form="we_drive_u", rho=None), "rho"),
])
def test_regret_bound_rejects_bad_arguments(kwargs, name):
    args = dict(d=4, H=3, K=100)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        regret_bound(**args)


def test_log_spaced_episodes():
    ks = log_spaced_episodes(1000, 10, start=10)
    assert ks[0] == 10 and ks[-1] == 1000 and np.all(np.diff(ks) > 0)
    np.testing.assert_allclose(np.diff(np.log(ks)), np.log(100) / 9, rtol=0.05)
    with pytest.raises(ValueError, match="start"):
        log_spaced_episodes(10, start=20)


def test_slope_of_exact_power_laws():
    K = log_spaced_episodes(2000, 15)
    R = np.array([c * K**0.5 for c in (0.5, 1.0, 3.0)])
    fit = fit_loglog_slope(K, R)
    assert fit.slope == pytest.approx(0.5, abs=1e-12)
    assert fit.pooled_slope == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(fit.per_seed, 0.5, atol=1e-12)
    assert fit.low == pytest.approx(0.5, abs=1e-9) and fit.high == pytest.approx(0.5, abs=1e-9)
    assert fit.below_one and fit.n_seeds == 3
    assert fit.intercept == pytest.approx(np.mean(np.log([0.5, 1.0, 3.0])), abs=1e-12)


def test_slope_interval_from_noisy_seeds_covers_truth_and_linear_regret_fails():
    rng = np.random.default_rng(0)
    K = log_spaced_episodes(5000, 20, start=5)
    noisy = np.array([2.0 * K ** (0.5 + 0.05 * rng.standard_normal()) for _ in range(12)])
    fit = fit_loglog_slope(K, noisy, confidence=0.95)
    assert fit.low < 0.5 < fit.high and fit.below_one
    linear = np.array([c * K for c in rng.uniform(0.5, 2.0, 10)])
    lin_fit = fit_loglog_slope(K, linear)
    assert lin_fit.slope == pytest.approx(1.0, abs=1e-12) and not lin_fit.below_one


def test_slope_interval_is_the_student_t_interval_of_per_seed_slopes():
    from scipy import stats

    K = log_spaced_episodes(1000, 10)
    exponents = np.array([0.3, 0.45, 0.5, 0.7])
    fit = fit_loglog_slope(K, np.array([K**b for b in exponents]), confidence=0.9)
    np.testing.assert_allclose(fit.per_seed, exponents, atol=1e-12)
    half = stats.t.ppf(0.95, 3) * exponents.std(ddof=1) / 2.0
    assert fit.low == pytest.approx(exponents.mean() - half, abs=1e-12)
    assert fit.high == pytest.approx(exponents.mean() + half, abs=1e-12)


def test_single_seed_has_no_interval():
    K = np.array([10, 100, 1000])
    fit = fit_loglog_slope(K, 3.0 * np.sqrt(K))
    assert fit.slope == pytest.approx(0.5) and math.isnan(fit.low) and math.isnan(fit.high)
    assert not fit.below_one


@pytest.mark.parametrize("episodes, regret, name", [
    ([10], [1.0], "episodes"),
    ([10, 5], [1.0, 2.0], "episodes"),
    ([10, 20], [[1.0, 2.0, 3.0]], "cumulative_regret"),
    ([10, 20], [0.0, 2.0], "cumulative_regret"),
    ([10, 20], [1.0, np.nan], "cumulative_regret"),
])
def test_fit_rejects_bad_input(episodes, regret, name):
    with pytest.raises(ValueError, match=name):
        fit_loglog_slope(episodes, regret)


def test_check_regret_verdicts():
    K = log_spaced_episodes(1000, 12, start=2)
    good = np.array([c * np.sqrt(K) for c in (1.0, 1.5, 2.0)])
    ok = check_regret(K, good, d=4, H=3, rho=0.3, tau=0.1)
    assert ok.passed and ok.within_bound and ok.slope_below_one and ok.max_ratio < 1
    np.testing.assert_allclose(ok.bound, regret_bound(4, 3, K))
    too_big = check_regret(K, good, d=4, H=3, constant=1e-4)
    assert not too_big.within_bound and not too_big.passed and too_big.max_ratio > 1
    linear = check_regret(K, np.array([K * 1.0, K * 2.0]), d=4, H=3)
    assert not linear.slope_below_one and not linear.passed


def test_drrpo_regret_on_the_simulated_mdp_passes_the_check():
    n = 300
    curves = [run_regret_curve(DRRPO, SimulatedLinearMDPEnv, n, seed=s,
                               hyperparams=dict(rho=0.3, tau=0.1, eta=2.0)).cumulative_regret
              for s in range(4)]
    K = log_spaced_episodes(n, 12, start=10)
    R = np.array([c[K - 1] for c in curves])
    result = check_regret(K, R, d=4, H=3, rho=0.3, tau=0.1)
    assert result.passed, (result.fit, result.max_ratio)
    assert result.fit.slope < 0.9


def test_oppo_form_trivial_bound_and_informative_size():
    """OPPO form C sqrt(d^2 H^3 T) iota with T = H K: d H^2 sqrt(K) iota. The trivial bound is
    K H (1 + tau log|A|); informative_episodes is the first K where the bound drops below it,
    checked on both sides of the crossing."""
    K = np.array([1, 100, 10_000])
    iota = np.log(2 * 4 * 3 * K / 0.05)
    np.testing.assert_allclose(regret_bound(4, 3, K, form="oppo"), 4 * 9 * np.sqrt(K) * iota,
                               rtol=1e-14)
    assert trivial_bound(10, 3, tau=0.1, n_actions=16) == pytest.approx(
        30 * (1 + 0.1 * np.log(16)), rel=1e-14)
    k = informative_episodes(4, 3, tau=0.1, n_actions=16)
    for k_at, below in ((k, True), (k - 1, False)):
        assert (regret_bound(4, 3, k_at) < trivial_bound(k_at, 3, 0.1, 16)) is below
    assert 1e5 < k < 1e7  # about (d^2 H iota)^2: why the C = 1 bound is vacuous at K <= 10^4
    assert informative_episodes(4, 3, constant=1e-3) < k
    assert informative_episodes(4, 3, k_max=1e3) is None
