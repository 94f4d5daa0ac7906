"""theory/glow.py: the GLOW / H2O / HyGLOW guarantees as functions and `verify-bounds glow`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robustrl._cli.verify_glow import verify_main
from robustrl.cli import main as cli_main
from robustrl.theory.glow import (
    bootstrap_loglog_slope,
    glow_derived_gamma,
    glow_regret_bound,
    glow_regret_bound_derived,
    glow_regret_bound_explicit,
    glow_sample_complexity,
    h2o_risk_bound,
    hyglow_sample_complexity,
    informative_from,
    paper_schedule,
    run_glow_regret,
)


def test_verify_bounds_glow_small_run_passes_and_writes_figure_and_json(capsys, tmp_path):
    """The reconstructed agent (kappa = 0.01) finds the code within these T; no proved bound
    covers its radius, so the check rests on the order form and the slope."""
    argv = ["--rounds", "10,20,40,80", "--quiet", "--out", str(tmp_path), "--constants", "recon"]
    assert cli_main(["verify-bounds", "glow", *argv]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "C_cov=4" in out and "first below T at T = " in out
    for T in (10, 20, 40, 80):
        assert f"\n{T:>8d}" in out
    assert (tmp_path / "verify_glow.png").stat().st_size > 0
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    assert res["passed"] and res["rounds"] == [10, 20, 40, 80] and res["C_cov"] == 4.0


def test_broken_optimism_glow_fails_the_same_check_at_small_T(capsys, tmp_path):
    """Optimism off (the least optimistic member of the confidence set: the zero table, which
    never opens the lock): regret T, slope 1, whose CI lies above the bound's exponent. The
    bounds themselves are above T here, so it is the rate test that must catch it."""
    argv = ["--rounds", "10,20,40,80", "--quiet", "--out", str(tmp_path)]
    recon = [*argv, "--constants", "recon"]
    assert verify_main([*recon, "--broken"]) == 1
    out = capsys.readouterr().out
    assert "PessimisticGLOW" in out and "FAIL: the slope's CI lies above" in out
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    assert res["mean_regret"] == [10, 20, 40, 80] and res["slope"][1] > res["exponent"]
    assert not res["rate_ok"] and res["bound_ok"]
    # HyGLOW with its selection reversed (argmax of its objective) fails the hyglow check
    assert cli_main(["verify-bounds", "hyglow", *argv, "--broken"]) == 1
    assert cli_main(["verify-bounds", "hyglow", *argv]) == 0


@pytest.mark.slow
def test_default_glow_run_is_informative_and_broken_optimism_exceeds_the_bound(capsys,
                                                                               tmp_path):
    """The default run (H = 2 lock, constants=derived, 3 seeds) reaches T = 1.5e6, past the
    T = 1,407,441 from which the re-derived Theorem 3.1 bound is below T; there every seed's
    regret is below the bound. The broken-optimism agent's regret (= T) exceeds the bound at
    the same T, so the same check fails (about 10 minutes of CPU in all)."""
    assert verify_main(["--quiet", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    T, bound = np.array(res["rounds"]), np.array(res["bound"])
    informative = bound < T
    assert informative.any() and T[informative].max() == 1_500_000
    assert np.all(np.array(res["regret"])[:, informative] < bound[informative])
    assert res["bound_ok"]
    assert verify_main(["--quiet", "--out", str(tmp_path), "--broken", "--rounds",
                        "1000,1500000", "--seeds", "1"]) == 1
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    assert res["regret"][0][-1] == 1_500_000 > res["bound"][-1]
    assert res["seeds_over_bound"] == 1.0 and not res["bound_ok"]


def test_a_tiny_bound_makes_the_check_fail(capsys, tmp_path):
    out = ["--out", str(tmp_path), "--quiet"]
    assert verify_main(["--constant", "1e-3", "--rounds", "10,20", "--seeds", "2", *out]) == 1
    assert "FAIL: regret above a bound" in capsys.readouterr().out
    assert cli_main(["verify-bounds", "glow", "--constant", "1e-3", "--rounds", "10",
                     "--seeds", "2", *out]) == 1


def test_bad_cli_arguments_exit_with_usage_error():
    for argv in (["--rounds", "0,10"], ["--constant", "-1"], ["--seeds", "0"],
                 ["--rounds", "x"]):
        with pytest.raises(SystemExit) as exc:
            verify_main(argv)
        assert exc.value.code == 2


def test_regret_check_numbers():
    res = run_glow_regret((5, 30), seeds=3)
    assert res.regret.shape == (3, 2) and np.all(res.regret >= 0)
    assert np.all(res.regret <= res.trivial)  # returns in [0, 1]: at most one per round
    # the run of T = 30 includes rounds of regret 1 before the code is found
    assert np.all(res.regret[:, 1] >= 1)
    want = 4 * np.sqrt(4 * 30 * math.log(math.e * 30) * res.log_terms[1])
    assert res.order_bound[1] == pytest.approx(want)
    assert res.C_cov == 4.0


def test_explicit_theorem_3_1_bound_by_hand():
    """glow_regret_bound_explicit against the formula of docs/algorithms/glow.md, by hand:
    T = 1000, H = 4, C_cov = 4, log(|F||W|) = log(17 * 100), delta = 0.1."""
    T, H, C, lc, d = 1000, 4, 4.0, math.log(1700.0), 0.1
    l_prime = math.log(6 * 1700 * T * H / d)  # log(6 |F||W| T H / delta)
    l0 = math.log(1700 / d)
    g = math.sqrt(C / (T * l0))
    P = 2 * C + 4 * C * math.log(1 + T) / g
    want = 1 + H * (287 / 6 * g * l_prime * (T + math.log(T)) + 19 * P)
    assert glow_regret_bound_explicit(T, H, C, lc, d) == pytest.approx(want, rel=1e-12)
    assert glow_regret_bound_explicit(T, H, C, lc, d, value_range=2.0) == pytest.approx(
        2 * want, rel=1e-12)
    vals = glow_regret_bound_explicit(np.array([10, 100, 1000]), H, C, lc, d)
    assert vals.shape == (3,) and np.all(np.diff(vals) > 0)
    # informative only at T ~ 1e10 (the 19 x 4 C log(T) / gamma term): found by search
    T0 = informative_from(lambda t: glow_regret_bound_explicit(t, H, C, lc, d))
    assert 1e9 < T0 < 1e12
    assert glow_regret_bound_explicit(T0, H, C, lc, d) < T0
    assert glow_regret_bound_explicit(T0 - 1, H, C, lc, d) >= T0 - 1
    with pytest.raises(ValueError, match="delta"):
        glow_regret_bound_explicit(T, H, C, lc, 1.5)


def test_bootstrap_slope_recovers_known_exponents():
    T = np.array([10, 100, 1000, 10000])
    rng = np.random.default_rng(0)
    sqrt_curves = np.sqrt(T)[None, :] * rng.uniform(0.8, 1.2, size=(8, 1))
    s, lo, hi = bootstrap_loglog_slope(T, sqrt_curves)
    assert s == pytest.approx(0.5) and lo <= 0.5 <= hi
    s, lo, hi = bootstrap_loglog_slope(T, np.tile(T, (3, 1)).astype(float))
    assert (s, lo, hi) == pytest.approx((1.0, 1.0, 1.0))
    assert bootstrap_loglog_slope(T, np.zeros((3, 4)))[0] == 0.0  # no regret: flat
    with pytest.raises(ValueError, match="regret"):
        bootstrap_loglog_slope(T, np.ones((3, 2)))


def test_regret_bound_formula_and_monotonicity():
    b = glow_regret_bound(10, 3, 4.0, 2.0)
    assert b == pytest.approx(3 * math.sqrt(4 * 10 * math.log(10 * math.e) * 2))
    T = np.array([1, 2, 10, 100, 1000])
    vals = glow_regret_bound(T, 3, 4.0, 2.0)
    assert vals.shape == T.shape and np.all(np.diff(vals) > 0)
    base = glow_regret_bound(50, 3, 4.0, 2.0)
    assert glow_regret_bound(50, 4, 4.0, 2.0) > base
    assert glow_regret_bound(50, 3, 8.0, 2.0) > base
    assert glow_regret_bound(50, 3, 4.0, 3.0) > base
    assert glow_regret_bound(50, 3, 4.0, 2.0, constant=2.0) == pytest.approx(2 * base)
    assert glow_regret_bound(50, 3, 4.0, 2.0, value_range=3.0) == pytest.approx(3 * base)
    # sqrt(T log(eT)) order: quadrupling T doubles the bound times the log-factor ratio
    ratio = glow_regret_bound(4000, 3, 4.0, 2.0) / glow_regret_bound(1000, 3, 4.0, 2.0)
    assert ratio == pytest.approx(2 * math.sqrt(math.log(4000 * math.e) / math.log(1000 * math.e)))


def test_sample_complexities_follow_the_theorems():
    n1 = glow_sample_complexity(0.1, 2, 4.0, 3.0)
    assert n1 == pytest.approx(4 * 4 * 3 / 0.01)  # Thm 3.1: H^2 C L / eps^2
    n2 = glow_sample_complexity(0.1, 2, 4.0, 3.0, realizability="pure")
    assert n2 == pytest.approx(16 * 16 * 3 / 1e-4)  # Thm 3.2: H^4 C^2 L / eps^4
    assert glow_sample_complexity(0.05, 2, 4.0, 3.0) > n1
    assert glow_sample_complexity(0.1, 3, 4.0, 3.0) > n1
    assert glow_sample_complexity(0.1, 2, 5.0, 3.0) > n1
    assert glow_sample_complexity(0.2, 2, 4.0, 3.0, value_range=2.0) == pytest.approx(n1)
    nh = hyglow_sample_complexity(0.1, 2, 4.0, 2.0, 3.0)  # Cor 4.1
    assert nh == pytest.approx(4 * 6 * 3 / 0.01)
    assert hyglow_sample_complexity(0.1, 2, 4.0, 5.0, 3.0) > nh
    r = h2o_risk_bound(np.array([10, 40]), 2, 4.0, 2.0, 1.0, 1.0)
    assert r[0] == pytest.approx(2 * math.sqrt(6 / 10)) and r[1] == pytest.approx(r[0] / 2)


def test_paper_schedule_algorithm_1_line_3():
    alpha, beta, gamma_t = paper_schedule(5, 100, 3, 2, 16, 10.0, 0.1, gamma=0.2)
    assert gamma_t == pytest.approx(1.0) and alpha == pytest.approx(8.0)
    assert beta == pytest.approx(36 * 1.0 * math.log(6 * 16 * 10 * 100 * 3 / 0.1) / (2 * 4))
    _, _, g = paper_schedule(2, 100, 3, 1, 16, 10.0, 0.1, C_cov=4.0)
    assert g == pytest.approx(2 * math.sqrt(4 / (100 * math.log(160 / 0.1))))


@pytest.mark.parametrize(("func", "kwargs", "name"), [
    (glow_regret_bound, dict(T=0, H=3, C_cov=4.0, log_term=1.0), "T"),
    (glow_regret_bound, dict(T=2.5, H=3, C_cov=4.0, log_term=1.0), "T"),
    (glow_regret_bound, dict(T=5, H=0, C_cov=4.0, log_term=1.0), "H"),
    (glow_regret_bound, dict(T=5, H=3, C_cov=0.5, log_term=1.0), "C_cov"),
    (glow_regret_bound, dict(T=5, H=3, C_cov=4.0, log_term=-1.0), "log_term"),
    (glow_regret_bound, dict(T=5, H=3, C_cov=4.0, log_term=1.0, constant=0.0), "constant"),
    (glow_sample_complexity, dict(epsilon=0.0, H=3, C_cov=4.0, log_term=1.0), "epsilon"),
    (glow_sample_complexity, dict(epsilon=0.1, H=3, C_cov=4.0, log_term=1.0,
                                  realizability="both"), "realizability"),
    (hyglow_sample_complexity, dict(epsilon=0.1, H=3, C_cov=4.0, C_star=0.0, log_term=1.0),
     "C_star"),
    (h2o_risk_bound, dict(T=5, H=3, C_cov=4.0, C_star=2.0, a=-1.0, b=1.0), "a"),
    (paper_schedule, dict(t=1, T=10, H=3, K=1, n_F=4, n_W=4, delta=0.1, gamma=0.5), "t"),
    (paper_schedule, dict(t=2, T=10, H=3, K=1, n_F=4, n_W=4, delta=1.0, gamma=0.5), "delta"),
    (paper_schedule, dict(t=2, T=10, H=3, K=1, n_F=4, n_W=4, delta=0.1), "C_cov"),
])
def test_bad_input_raises_naming_the_argument(func, kwargs, name):
    with pytest.raises(ValueError, match=name):
        func(**kwargs)


def test_paper_constants_run_stays_at_the_trivial_regret(capsys, tmp_path):
    """Algorithm 1's constants exclude no code at this size: regret T in every seed whose code
    is not the lowest-index one (measured), still below the bound."""
    res = run_glow_regret((20,), seeds=3, constants="paper")
    assert np.all((res.regret == 20) | (res.regret == 0)) and res.passed
    assert verify_main(["--constants", "paper", "--rounds", "10", "--seeds", "2", "--quiet",
                        "--out", str(tmp_path)]) == 0
    assert "constants=paper" in capsys.readouterr().out


# ------------------------------------------------- Theorem 3.1 with re-derived constants
def test_derived_bound_by_hand():
    """glow_regret_bound_derived against docs/algorithms/glow.md ("Theorem 3.1, re-derived"),
    term by term, for the tabular class (grid slack 1 and 2) and a finite W."""
    T, H, C, d = 10, 2, 4.0, 0.1
    e2 = math.e - 2
    k = 0.5 * (1 + e2) + 4 * e2 / 3  # alpha_t gamma_t = 1/2, rho = 1/3, rho' = 1
    assert k == pytest.approx(1.81685, abs=1e-5)
    ell = math.log(3 * T * H / d) + math.log(5) + 4 * math.log(T)
    lin = ((2 * ell + 1) + 3.5 * ell + 2) * (T - 1 + sum(1 / i for i in range(1, T)))
    pot = (k + 1) * C * math.log2(1 + T / C)
    for g in (0.05, 0.3):
        want = 1 + H * (g * lin + 2 * (k + 1) * C + pot / g)
        got = glow_regret_bound_derived(T, H, C, math.log(5), None, d, gamma=g,
                                        tabular_entries=4)
        assert got == pytest.approx(want, rel=1e-12)
    g_star = glow_derived_gamma(T, H, C, math.log(5), None, d, tabular_entries=4)
    assert g_star == pytest.approx(math.sqrt(pot / lin), rel=1e-12)
    best = glow_regret_bound_derived(T, H, C, math.log(5), None, d, tabular_entries=4)
    assert best == pytest.approx(1 + H * (2 * math.sqrt(pot * lin) + 2 * (k + 1) * C))
    # a finite W of 7 members: no grid, log|W| = log 7; the paper's alpha_t gamma_t = 8, radius
    ell_f = math.log(3 * T * H / d) + math.log(5) + math.log(7)
    k8 = 8 * (1 + e2) + 4 * e2 / 3
    lin_f = (40 * ell_f + 11 * ell_f) * (T - 1 + sum(1 / i for i in range(1, T)))
    want = 2 * (1 + H * (0.2 * lin_f + 2 * (k8 + 1) * C
                         + (k8 + 1) * C * math.log2(1 + T / C) / 0.2))
    got = glow_regret_bound_derived(T, H, C, math.log(5), math.log(7), d, gamma=0.2,
                                    alpha_scale=8.0, beta_scale=40 * ell_f, value_range=2.0)
    assert got == pytest.approx(want, rel=1e-12)


def test_derived_bound_is_informative_where_the_docs_say_and_far_earlier_than_before():
    """The T printed by the check and quoted in docs/algorithms/glow.md (H = 4 and H = 2 locks,
    C_cov = 4 exact, tabular W, delta = 0.1) and the earlier explicit form's 4.8e10."""
    def derived(H):
        return lambda T: glow_regret_bound_derived(np.maximum(T, 2), H, 4.0,
                                                   math.log(2**H + 1), None, 0.1,
                                                   tabular_entries=4)
    T4, T2 = informative_from(derived(4)), informative_from(derived(2))
    assert (T4, T2) == (7_176_701, 1_407_441)
    assert derived(4)(np.array([T4]))[0] < T4 <= derived(4)(np.array([T4 - 1]))[0] + 1
    assert informative_from(derived(3)) == 3_658_395
    # the bound for the earlier explicit form at the same sizes was informative from ~4.8e10
    assert T4 < 4.8e10 / 6000


def test_derived_bound_refuses_a_radius_that_does_not_retain_qstar():
    ell = math.log(3 * 100 * 2 / 0.1) + math.log(5) + 4 * math.log(100)
    glow_regret_bound_derived(100, 2, 4.0, math.log(5), None, 0.1, beta_scale=2 * ell + 1,
                              tabular_entries=4)
    with pytest.raises(ValueError, match="beta_scale"):
        glow_regret_bound_derived(100, 2, 4.0, math.log(5), None, 0.1, beta_scale=2 * ell,
                                  tabular_entries=4)
    with pytest.raises(ValueError, match="alpha_scale"):
        glow_regret_bound_derived(100, 2, 4.0, math.log(5), None, 0.1, alpha_scale=0.4,
                                  tabular_entries=4)
    with pytest.raises(ValueError, match="exactly one"):
        glow_regret_bound_derived(100, 2, 4.0, math.log(5), 1.0, 0.1, tabular_entries=4)
    with pytest.raises(ValueError, match="T must be"):
        glow_regret_bound_derived(1, 2, 4.0, math.log(5), 1.0, 0.1)


def test_derived_check_reports_the_informative_T_and_broken_optimism_fails(capsys, tmp_path):
    """The default schedule (constants=derived) against its own bound on an H = 2 lock: the
    regret is below the bound and the output names the T where the bound drops below T; the
    broken agent's regret is T at every T (so above the bound wherever it is informative) and
    its slope fails the rate test here."""
    argv = ["--horizon", "2", "--rounds", "300,3000", "--seeds", "2", "--quiet",
            "--out", str(tmp_path)]
    assert verify_main(argv) == 0
    out = capsys.readouterr().out
    assert "constants=derived" in out and "first below T at T = 1,407,441" in out
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    assert res["bound_ok"] and np.all(np.array(res["regret"]) < np.array(res["bound"]))
    assert res["informative_T"] == 1_407_441
    assert verify_main([*argv, "--broken"]) == 1
    res = json.loads((tmp_path / "verify_glow.json").read_text())
    assert res["mean_regret"] == [300, 3000] and not res["rate_ok"]


def test_augmented_bound_by_hand():
    """glow_regret_bound_augmented = the derived bound with log|W-bar| = log T + 2 (T-1) log|F|
    and K episodes per round (pot, burn-in and round 1 times K; docs/algorithms/glow.md)."""
    from robustrl.theory.glow import augmented_log_class, glow_regret_bound_augmented

    T, K, H, C, nF, d = 40, 200, 2, 4.0, 5, 0.1
    assert augmented_log_class(T, nF) == pytest.approx(math.log(40) + 78 * math.log(5))
    e2 = math.e - 2
    k = 0.5 * (1 + e2) + 4 * e2 / 3
    ell = math.log(3 * T * H / d) + math.log(nF) + augmented_log_class(T, nF)
    lin = (2 * ell + 3.5 * ell) * (T - 1 + sum(1 / i for i in range(1, T)))
    pot = K * (k + 1) * C * math.log2(1 + T / C)
    want = K + H * (2 * math.sqrt(lin * pot) + 2 * K * (k + 1) * C)
    assert glow_regret_bound_augmented(T, K, H, C, nF, d) == pytest.approx(want, rel=1e-12)
    assert glow_regret_bound_augmented(np.array([T]), K, H, C, nF, d)[0] == pytest.approx(want)
    # K = 1 reduces to the derived bound on the same finite class
    assert glow_regret_bound_augmented(T, 1, H, C, nF, d) == pytest.approx(
        glow_regret_bound_derived(T, H, C, math.log(nF), augmented_log_class(T, nF), d))
    with pytest.raises(ValueError, match="T must be"):
        glow_regret_bound_augmented(1, K, H, C, nF, d)
