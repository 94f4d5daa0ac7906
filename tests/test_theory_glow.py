"""theory/glow.py: the GLOW / H2O / HyGLOW guarantees as functions and `verify-bounds glow`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustrl._cli.verify_glow import verify_main
from robustrl.cli import main as cli_main
from robustrl.theory.glow import (
    glow_regret_bound,
    glow_sample_complexity,
    h2o_risk_bound,
    hyglow_sample_complexity,
    paper_schedule,
    run_glow_regret,
)


def test_verify_bounds_glow_passes_on_the_default_setting(capsys):
    assert cli_main(["verify-bounds", "glow"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "C_cov=4" in out
    for T in (10, 20, 40, 80):
        assert f"\n{T:>6d}" in out


def test_a_tiny_bound_makes_the_check_fail(capsys):
    assert verify_main(["--constant", "1e-3", "--rounds", "10,20", "--seeds", "2"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli_main(["verify-bounds", "glow", "--constant", "1e-3", "--rounds", "10",
                     "--seeds", "2"]) == 1


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
    assert res.bound[1] == pytest.approx(want)
    assert res.C_cov == 4.0


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


def test_paper_constants_run_stays_at_the_trivial_regret(capsys):
    """Algorithm 1's constants exclude no code at this size: regret T in every seed whose code
    is not the lowest-index one (measured), still below the bound."""
    res = run_glow_regret((20,), seeds=3, constants="paper")
    assert np.all((res.regret == 20) | (res.regret == 0)) and res.passed
    assert verify_main(["--constants", "paper", "--rounds", "10", "--seeds", "2"]) == 0
    assert "constants=paper" in capsys.readouterr().out
