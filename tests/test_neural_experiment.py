"""The neural_perturbed_control experiment through the CLI, at the tiny scale."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import neural_perturbed_control as exp
from robustrl.cli import main
from robustrl.runner import load_results


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("ROBUSTRL_CACHE", str(tmp_path / "cache"))


def test_tiny_run_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "neural_perturbed_control", "--set", "scale=tiny",
            "--set", "agent=[behaviour, fqi, 'kl:5', 'tv:30']", "--set", "data_seed=[0]",
            "--workers", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "NeuralR2PVI-KL, lambda=5" in text and "kl:5 - fqi, return_max_shift" in text
    _, records = load_results(out)
    assert len(records) == 4
    by_agent = {r["params"]["agent"]: r["metrics"] for r in records}
    for m in by_agent.values():
        assert m["perturbations"] == [0.5, 1.0, 2.0]
        assert len(m["return_vs_perturbation"]) == 3
        # CartPole: reward 1 per step, episodes cut at H = 40
        assert all(1.0 <= r <= 40.0 for r in m["return_vs_perturbation"])
        assert m["return_nominal"] == m["return_vs_perturbation"][1]
        assert m["max_shift"] == 2.0 and m["return_max_shift"] == m["return_vs_perturbation"][2]
    # one dataset for all agents of a data seed: same size, same behaviour return
    assert len({(m["transitions"], m["behaviour_data_return"]) for m in by_agent.values()}) == 1
    assert (out / "neural_perturbed_control.png").exists()
    assert (out / "summary.csv").exists()
    # the behaviour policy and dataset were cached once and reused by every cell
    cache = tmp_path / "cache" / "control"
    assert len(list(cache.glob("behaviour-*.zip"))) == 1
    assert len(list(cache.glob("dataset-*.npz"))) == 1
    # rerun: nothing left to do, same records
    assert main(argv) == 0
    _, again = load_results(out)
    assert sorted(json.dumps(r["metrics"], sort_keys=True) for r in again) == sorted(
        json.dumps(r["metrics"], sort_keys=True) for r in records)


def test_same_data_seed_same_numbers():
    params = {"agent": "fqi", "data_seed": 1, "scale": "tiny", "parameter": "force_mag",
              "values": "0.5, 1, 3", "epsilon": 0.3, "data_action_noise": 0.0, "beta": 1.0,
              "gamma": 0.99}
    a, b = exp.run_one(params, 0), exp.run_one(params, 12345)  # the cell seed is unused
    a.pop("fit_time_s"), b.pop("fit_time_s")
    assert a == b and a["perturbations"] == [0.5, 1.0, 3.0]


def test_degradation_summaries():
    d = exp.degradation([0.5, 1.0, 2.0, 4.0], [80.0, 100.0, 60.0, 20.0])
    assert d["return_nominal"] == 100.0 and d["worst_return"] == 20.0
    assert d["max_shift"] == 4.0 and d["relative_max_shift"] == pytest.approx(0.2)
    # least squares over |log2 x| = 0, 1, 2 (the up side): (0, 100), (1, 60), (2, 20) -> -40
    assert d["slope_per_doubling"] == pytest.approx(-40.0)
    # the largest shift is taken in ratio: 0.2 is further from 1 than 3; the slope then uses
    # the down side, (0, 2) and (log2 5, 1)
    d = exp.degradation([0.2, 1.0, 3.0], [1.0, 2.0, 3.0])
    assert d["max_shift"] == 0.2 and d["slope_per_doubling"] == pytest.approx(-1 / np.log2(5))
    # ties in ratio go to the larger scale
    assert exp.degradation([0.5, 1.0, 2.0], [1.0, 2.0, 3.0])["max_shift"] == 2.0


def test_paired_differences_and_report():
    def rec(agent, seed, curve):
        return {"params": {"agent": agent, "data_seed": seed, "scale": "tiny",
                           "parameter": "pole_length"},
                "metrics": {"perturbations": [1.0, 2.0], "return_vs_perturbation": curve,
                            **exp.degradation([1.0, 2.0], curve), "auc": float(np.mean(curve))}}

    recs = [rec("fqi", 0, [100.0, 50.0]), rec("kl:5", 0, [100.0, 80.0]),
            rec("fqi", 1, [100.0, 90.0]), rec("kl:5", 1, [100.0, 70.0])]
    diffs = exp.paired_differences(recs, "return_max_shift")
    setting = (("parameter", "pole_length"), ("scale", "tiny"))
    assert diffs[("kl:5", setting)] == (5.0, -20.0, 30.0, 1, 2)
    text = exp.report(recs)
    assert "robust higher on 1/2 datasets" in text and "NeuralFQI" in text


def test_bad_params():
    base = {"agent": "fqi", "data_seed": 0, "scale": "small", "parameter": "pole_length",
            "values": "", "epsilon": 0.3, "data_action_noise": 0.0, "beta": 1.0, "gamma": 0.99}
    exp.check(base)
    for key, val, match in [("agent", "kl", "agent"), ("agent", "kl:-1", "agent"),
                            ("agent", "cql", "agent"), ("scale", "huge", "scale"),
                            ("parameter", "mass", "perturbable"),
                            ("values", "0.5,2", "nominal"), ("values", "a,b", "values"),
                            ("values", "1,20", "scale factor"), ("epsilon", 2.0, "epsilon"),
                            ("gamma", 1.0, "gamma"),
                            ("data_action_noise", 1.5, "data_action_noise"),
                            ("data_seed", -1, "data_seed")]:
        with pytest.raises(ValueError, match=match):
            exp.check({**base, key: val})
