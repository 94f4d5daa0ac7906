"""experiments/r2pvi_fig1.py: the penalty form (paper's l1 or the authors' code's l2) as the
method spec's third field, without changing the cells (hence seeds and numbers) of the default
form."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.experiments import r2pvi_fig1 as fig1
from robustrl.runner import run_experiment


def test_method_spec_names_the_penalty_form():
    assert fig1.parse_method("tv:0.1:code_l2") == ("tv", 0.1)
    assert fig1.parse_bonus("tv:0.1:code_l2") == "code_l2"
    assert fig1.parse_bonus("tv:0.1:paper_l1") == "paper_l1"
    assert fig1.parse_bonus("tv:0.1") == "paper_l1"  # omitted: the paper's form
    assert fig1.parse_bonus("drpvi:0.5:code_l2") == "code_l2"
    assert fig1.method_label("tv:0.1:code_l2") == "R2PVI-TV-l2, lambda=0.1"
    assert fig1.method_label("tv:0.1") == "R2PVI-TV, lambda=0.1"
    with pytest.raises(ValueError, match="BONUS must be one of paper_l1, code_l2"):
        fig1.parse_method("tv:0.1:l3")
    with pytest.raises(ValueError, match="method must be one of"):
        fig1.parse_bonus("pevi:code_l2")


def test_make_agent_passes_the_penalty_form():
    env = SimulatedLinearMDPEnv()
    for spec, bonus in (("tv:0.1", "paper_l1"), ("tv:0.1:code_l2", "code_l2"),
                        ("kl:0.1:code_l2", "code_l2"), ("drpvi:0.1:code_l2", "code_l2"),
                        ("chi2-code:0.1:code_l2", "code_l2")):
        assert fig1.make_agent(spec, env, 1.0, 0.1).bonus == bonus


def test_default_grid_keys_unchanged_so_default_cells_keep_their_seeds():
    # a new grid key would enter every cell's params, hence its hash and seed, and change the
    # demo's numbers; the penalty form lives in the method spec instead
    assert list(fig1.GRID) == ["method", "K", "episodes", "beta", "ridge", "v_min"]
    assert all(fig1.parse_bonus(m) == "paper_l1" for m in fig1.GRID["method"])


def test_both_tv_curves_run_and_the_l2_penalty_is_less_cautious(tmp_path):
    report = run_experiment(
        "r2pvi_fig1", tmp_path, seeds=4, workers=1, quiet=True,
        overrides={"method": ["tv:0.1", "tv:0.1:code_l2"], "episodes": [10]})
    assert report.complete and not report.failures and not report.hook_errors
    assert "R2PVI-TV-l2, lambda=0.1" in report.report_text
    runs: dict = {}
    for rec in report.records:
        runs.setdefault(rec["params"]["method"], []).append(rec["metrics"])
    # the paper's l1 penalty takes the most cautious first action (xi^T a = -0.2) on every
    # seed; the smaller l2 penalty does not, so its worst-case (q = 1) return is lower
    assert all(m["first_action_xi_a"] == pytest.approx(-0.2) for m in runs["tv:0.1"])
    l1 = np.mean([m["exact_return_q1"] for m in runs["tv:0.1"]])
    l2 = np.mean([m["exact_return_q1"] for m in runs["tv:0.1:code_l2"]])
    assert l2 < l1
