"""The glow_regret experiment through the runner, on a tiny grid."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import glow_regret as exp
from robustrl.runner import run_experiment


def _params(method: str, horizon: int = 3, rounds: int = 20) -> dict:
    return {"horizon": horizon, "method": method, "rounds": rounds, "n_states": 2,
            "n_actions": 2, "kappa": 0.01, "delta": 0.1}


def test_tiny_grid_through_runner(tmp_path):
    report = run_experiment("glow_regret", tmp_path / "r", seeds=1, workers=1, quiet=True,
                            overrides={"horizon": [3], "rounds": [20]})
    assert report.complete and not report.failures and not report.hook_errors
    assert len(report.records) == len(exp.METHODS)
    for rec in report.records:
        m = rec["metrics"]
        cum = np.asarray(m["cumulative_regret"])
        ks = np.asarray(m["checkpoints"])
        assert ks[-1] == 20 and np.all(np.diff(cum) >= -1e-12)  # cumulative: nondecreasing
        assert np.all(cum <= ks + 1e-12)  # returns in [0, 1]: at most 1 per round
        assert np.all(cum <= np.asarray(m["bound"]))
        assert m["C_cov"] == 4.0
    assert (tmp_path / "r" / "glow_regret.png").exists()
    assert "glow_paper" in report.report_text


def test_same_seed_same_numbers_and_paper_constants_never_shrink():
    assert exp.run_one(_params("glow"), 2) == exp.run_one(_params("glow"), 2)
    paper = exp.run_one(_params("glow_paper", rounds=30), 1)
    recon = exp.run_one(_params("glow", rounds=30), 1)
    assert recon["final_regret"] < paper["final_regret"]


def test_bad_params():
    with pytest.raises(ValueError, match="method"):
        exp.check(_params("ppo"))
    with pytest.raises(ValueError, match="rounds"):
        exp.check(_params("glow", rounds=1))
    with pytest.raises(ValueError, match="delta"):
        exp.check({**_params("glow"), "delta": 1.0})
