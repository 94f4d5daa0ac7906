"""The benchmark entry point runs and prints its table; the loop-style references compute the
same estimators as the package (offline fits on a small put and simulated-MDP dataset, online
weights after a few episodes with the same seed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_offline, bench_online
from benchmarks.loop_reference import LoopDRRPO, LoopLSVIUCB, fit_offline
from robustrl.agents import DRRPO, LSVIUCB, R2PVI
from robustrl.envs import SimulatedLinearMDPEnv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def datasets():
    return {env: bench_offline.make_env_data(env, n)
            for env, n in (("put", 40), ("put-distinct", 40), ("sim", 60))}


@pytest.mark.parametrize("env_name", ["put", "put-distinct", "sim"])
@pytest.mark.parametrize("method", bench_offline.ALL_METHODS)
def test_loop_reference_is_the_package_estimator(datasets, env_name, method):
    env, data, settings = datasets[env_name]
    agent = bench_offline.make_agent(method, env, settings).fit(data)
    weights, lambda_inv = fit_offline(agent, data)
    scale = max(1.0, float(np.abs(agent.weights_).max()))
    np.testing.assert_allclose(weights, agent.weights_, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(lambda_inv, agent.lambda_inv_, rtol=0, atol=1e-10)
    # the comparison can fail: a different lambda (PEVI: beta) gives different weights
    other = (dict(settings, beta=settings["beta"] * 3) if method == "PEVI"
             else dict(settings, lam=settings["lam"] * 3))
    moved = bench_offline.make_agent(method, env, other).fit(data)
    assert np.abs(moved.weights_ - agent.weights_).max() > 1e-6


def test_loop_reference_rejects_other_agents(datasets):
    env, data, settings = datasets["sim"]
    with pytest.raises(ValueError, match="PEVI, R2PVI, DRPVI or DRVI_L"):
        fit_offline(LSVIUCB(env), data)
    with pytest.raises(ValueError, match="variance-aware"):
        fit_offline(R2PVI(env, variance_aware=True), data)


@pytest.mark.parametrize("cls,ref_cls", [(LSVIUCB, LoopLSVIUCB), (DRRPO, LoopDRRPO)])
def test_online_loop_reference_plays_the_same_episodes(cls, ref_cls):
    agent = cls(SimulatedLinearMDPEnv(), seed=3,
                **bench_online.LOOP_SETTINGS.get(cls.__name__, {}))
    agent.track_regret = False
    agent.learn(total_episodes=12)
    assert agent.regret_.size == 0  # no exact bookkeeping when switched off
    ref = ref_cls(SimulatedLinearMDPEnv(), seed=3).learn(12)
    np.testing.assert_allclose(np.array(ref.w), agent.weights_, rtol=0, atol=1e-9)


def test_quick_benchmark_runs_and_prints_the_table(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for section in ("== fig1 ==", "== compile ==", "== put ==", "== offline ==", "== online ==",
                    "== scaling ==", "== memory ==", "== primitives ==", "== dred ==",
                    "== summary =="):
        assert section in text
    assert "R2PVI-chi2" in text and "DRPVI" in text and "loop reference (NumPy)" in text
    assert "log-log slope vs K" in text and "of peak" in text and "max RSS MB" in text
    assert "measured" in text
    assert "CaveEscapeVecEnv" in text and "PPO (CPU)" in text and "LSTM(256)" in text
    results = json.loads(out.read_text())
    fig1 = {r["job"]: r for r in results["fig1"]["rows"]}
    assert set(fig1) == {"robustrl, warm Numba cache", "robustrl, cold Numba cache"}
    assert all(r["seconds"] > 0 and r["peak_mb"] > 30 for r in fig1.values())
    assert "official code: not given" in text
    compiled = results["compile"]  # the cold job's compile time, kernel by kernel
    assert compiled["total_s"] > 0 and compiled["compilations"] >= len(compiled["rows"]) > 5
    assert "offline_pass" in {r["kernel"] for r in compiled["rows"]}
    assert {r["env"] for r in results["put"]["rows"]} == {"put", "put-distinct"}
    assert {r["method"] for r in results["put"]["rows"]} == set(bench_offline.ALL_METHODS)
    assert set(results) >= {"machine", "fig1", "compile", "put", "offline", "online", "scaling",
                            "memory", "primitives", "dred", "summary"}
    dred = results["dred"]
    assert [r["n_envs"] for r in dred["rows"] if r["env"] == "CaveEscapeVecEnv"] == [4, 64]
    assert all(r["steps_per_s"] > 0 for r in dred["rows"] + dred["ppo_rows"])
    assert {r["policy"] for r in dred["ppo_rows"]} == {"feed-forward", "LSTM(256)"}
    ratios = [r["ratio"] for r in results["offline"]["rows"]]
    assert all(np.isfinite(ratios)) and all(r > 0 for r in ratios)
    # where the reference ran in full, it agreed with the package
    diffs = [r["max_abs_weight_diff"] for r in results["offline"]["rows"]
             + results["put"]["rows"] if r["reference"] == "measured"]
    assert diffs and max(diffs) < 1e-8


def test_bad_arguments_are_rejected():
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--only", "gpu"])
    with pytest.raises(SystemExit):
        parse_args(["--repeats", "0"])
    assert parse_args(["--only", "offline,memory"]).sections == ["offline", "memory"]


def test_best_time_takes_its_repeats_and_a_minimum_of_calls(monkeypatch):
    """``best_time``: the warm-up, then at least ``repeats`` calls and at least ``min_total``
    seconds of calls (``--quick`` sets the module default to 0: the repeats only). A fake clock
    makes every call last exactly 1/64 s (a binary fraction: the sums are exact)."""
    from benchmarks import common

    clock, calls = [0.0], []

    def work():
        calls.append(1)
        clock[0] += 1 / 64

    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
    assert common.best_time(work, 3, min_total=0.0) == 1 / 64
    assert len(calls) == 1 + 3
    calls.clear()
    common.best_time(work, 3, min_total=5 / 64)
    assert len(calls) == 1 + 5
    calls.clear()
    common.best_time(work, 3, warmup=False)  # the module default, 0.1 s outside --quick
    assert len(calls) == 7  # 7 / 64 >= 0.1 > 6 / 64
