"""GOLF, Hy-Q and H2O-FQI in the glow_combination_lock experiment: counts checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments import glow_combination_lock as exp


def _params(method: str, horizon: int = 4, budget: int = 300) -> dict:
    return {"horizon": horizon, "method": method, "n_states": 3, "n_actions": 2,
            "budget": budget, "epsilon": 0.1, "offline_episodes": 5}


@pytest.mark.parametrize("seed", [0, 3])
def test_golf_count_and_window_regret_match_the_count_by_hand(seed):
    """GOLF's first optimal round on the lock is popcount(code) (floor(beta) + 1) with
    beta = 4 log(H A T / delta) (tests/test_comparators.py derives it); before that every
    played code is wrong (value 0), after it every round is optimal, so the window regret is
    min(window, episodes) (window = 100)."""
    m = exp.run_one(_params("golf"), seed)
    beta = 4.0 * math.log(4 * 2 * 300 / 0.1)
    ones = m["code"].count("1")
    assert m["episodes"] == ones * (math.floor(beta) + 1) and not m["censored"]
    assert m["regret"] == min(exp.WINDOW, m["episodes"])


@pytest.mark.parametrize("method", ["hyq", "h2o_fqi"])
def test_fqi_hybrids_solve_in_round_two_with_optimal_policy_data(method):
    # Hy-Q plays f^1 = 0 (code 0000) in round 1, H2O fits on no data (row 0 = code 0000)
    m = exp.run_one(_params(method), 3)
    assert m["code"] != "0000"
    assert (m["episodes"], m["regret"], m["offline_episodes"]) == (1, 1.0, 5)


def test_uniform_window_regret_is_exact():
    m = exp.run_one(_params("uniform", horizon=5), 1)
    assert m["regret"] == pytest.approx(exp.WINDOW * (1 - 2.0**-5))
    short = exp.run_one(_params("uniform", horizon=5, budget=30), 1)
    assert short["regret"] == pytest.approx(30 * (1 - 2.0**-5))  # window = min(100, budget)


def test_qlearning_window_regret_is_between_zero_and_window():
    a = exp.run_one(_params("qlearning"), 2)
    assert a == exp.run_one(_params("qlearning"), 2)
    assert 0.0 < a["regret"] <= exp.WINDOW


def test_the_comparators_config_runs_the_documented_grid():
    from robustrl._cli.install import resolve_config_path
    from robustrl.runner.config import load_config_file, load_experiment, resolve_config

    config = load_config_file(resolve_config_path("glow_comparators"))
    run = resolve_config(load_experiment("glow_combination_lock"), config)
    assert run.grid["horizon"] == [4, 6, 8, 10, 12] and run.grid["budget"] == [40000]
    assert run.grid["method"] == list(exp.METHODS) and run.seeds == 10


def test_ci_table_reports_mean_ci_median_and_regret():
    recs = [{"params": _params("golf", horizon=6),
             "metrics": {"episodes": e, "censored": False, "regret": float(e)}}
            for e in (10, 20, 30)]
    text = exp.ci_table(recs)
    # mean 20, t_{0.975, 2} * 10 / sqrt(3) = 24.8
    assert "| 6 | 20.0 ± 24.8 (20) / 20.0 ± 24.8 |" in text
    stats = exp.summary(recs)[(6, "golf")]
    assert stats["censored"] == 0 and stats["n"] == 3 and np.isclose(stats["median"], 20.0)
