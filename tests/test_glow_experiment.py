"""The glow_combination_lock experiment through the runner, on a tiny grid."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import glow_combination_lock as exp
from robustrl.runner import load_results, run_experiment


def _params(method: str, horizon: int = 4, budget: int = 300) -> dict:
    return {"horizon": horizon, "method": method, "n_states": 3, "n_actions": 2,
            "budget": budget, "epsilon": 0.1, "offline_episodes": 5}


def test_tiny_grid_through_runner(tmp_path):
    out = tmp_path / "lock"
    report = run_experiment("glow_combination_lock", out, seeds=1, workers=1, quiet=True,
                            overrides={"horizon": [4], "budget": [300]})
    assert report.complete and not report.failures and not report.hook_errors
    assert len(report.records) == len(exp.METHODS)
    by_method = {}
    for rec in report.records:
        m = rec["metrics"]
        assert set(m) == {"episodes", "censored", "regret", "offline_episodes", "code"}
        assert isinstance(m["censored"], bool)
        assert isinstance(m["episodes"], int) and 0 <= m["episodes"] <= 300
        assert not m["censored"] or m["episodes"] == 300
        assert len(m["code"]) == 4 and set(m["code"]) <= {"0", "1"}
        by_method[rec["params"]["method"]] = m
    assert set(by_method) == set(exp.METHODS)
    assert not by_method["glow"]["censored"] and not by_method["hyglow"]["censored"]
    # Algorithm 3's progressive data: round 1 has no offline part (index 0, a wrong code here),
    # round 2 reads the code off the first optimal-policy episode (0 was the pooled artefact)
    assert by_method["hyglow"]["episodes"] == 1
    assert by_method["hyglow"]["offline_episodes"] == 5
    assert by_method["glow"]["offline_episodes"] == 0
    assert (out / "glow_combination_lock.png").exists()
    assert "glow" in report.report_text and "censored" in report.report_text
    _, loaded = load_results(out)
    assert len(loaded) == len(exp.METHODS)


@pytest.mark.parametrize("method", ["glow", "qlearning", "uniform"])
def test_reported_episode_count_is_exact_hit(method):
    """The episode count is the first epsilon-optimal output: same seed, same number."""
    a = exp.run_one(_params(method), 3)
    b = exp.run_one(_params(method), 3)
    assert a == b and not a["censored"]
    assert a["episodes"] >= 1  # the code 0000... is not guessed for free at seed 3


def test_censoring_is_reported():
    # 2 episodes of uniform play cannot find a length-10 code except by luck (2^-10 per try)
    m = exp.run_one(_params("uniform", horizon=10, budget=2), 0)
    assert m["censored"] and m["episodes"] == 2


def test_uniform_replay_rule_solves_the_lock():
    # the first rewarded uniform episode's actions are the code, whose exact value is 1
    m = exp.run_one(_params("uniform", horizon=5, budget=2000), 1)
    assert not m["censored"] and m["episodes"] >= 1


def test_bad_params():
    with pytest.raises(ValueError, match="method"):
        exp.check(_params("ppo"))
    with pytest.raises(ValueError, match="epsilon"):
        exp.check({**_params("glow"), "epsilon": 1.5})
    with pytest.raises(ValueError, match="budget"):
        exp.check(_params("glow", budget=0))


def test_report_table_medians_and_censor_counts():
    recs = [{"params": _params("uniform", horizon=6), "metrics": {"episodes": e, "censored": c}}
            for e, c in [(10, False), (30, False), (300, True)]]
    text = exp.report(recs)
    assert "30 (1/3)" in text
    assert np.isclose(exp._table(recs)[(6, "uniform")][0], 30.0)
