"""dred_cave_escape through the runner at the tiny scale: cells, metrics, cache, plot, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robustrl.runner import load_experiment, load_results, run_experiment


def test_experiment_contract_and_bad_points():
    exp = load_experiment("dred_cave_escape")
    mod = exp.module
    assert set(exp.grid["method"]) == {"dred", "el_dred", "dr", "uniform", "plr", "robust_plr",
                                       "accel", "accel_d"}
    good = dict(method="dr", scale="tiny", data_seed=0, updates=0, learning_rate=1e-4,
                cache_dir="")
    assert set(good) == set(exp.grid)
    mod.check(good)
    for bad in (dict(method="paired"), dict(scale="huge"), dict(updates=-1),
                dict(cache_dir=3), dict(learning_rate=-1e-4), dict(learning_rate=float("nan")),
                dict(learning_rate="1e-3")):
        params = dict(good)
        params.update(bad)
        with pytest.raises(ValueError):
            mod.check(params)


def test_throughput_probe_tiny(tmp_path):
    from robustrl.experiments.dred_cave_escape import measure_throughput

    res = measure_throughput("dred", "tiny", 1, out=str(tmp_path / "tp.json"))
    assert res["grad_updates"] == 1 and res["steps_per_second"] > 0
    # 12 training levels / 2 envs = 6 unseen phases, then replay + generation, 2 x 32 steps
    assert res["env_steps"] == 8 * 64 and res["phases"]["generated"] == 1
    assert json.loads((tmp_path / "tp.json").read_text())["env_steps"] == res["env_steps"]


def test_tiny_run_through_runner(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    rep = run_experiment("dred_cave_escape", out, sets=[
        "method=[dred, uniform]", "scale=tiny", f"cache_dir={cache}"], seeds=1, workers=1,
        quiet=True)
    assert rep.complete and not rep.failures and not rep.hook_errors
    _, records = load_results(out)
    by = {r["params"]["method"]: r["metrics"] for r in records}
    for m in by.values():
        for s in ("train", "test", "unseen_layouts", "high_lava", "large"):
            assert 0.0 <= m[f"solved_{s}"] <= 1.0 and m[f"return_{s}"] >= 0.0
        assert m["grad_updates"] == 2 and m["steps_per_second"] > 0 and m["device"] == "cpu"
    # tiny: 2 envs x 32 steps; uniform = 2 phases; dred = 6 unseen visits (12 levels / 2 envs)
    # with no gradient, then 2 x (replay + generation)
    assert by["uniform"]["env_steps"] == 2 * 64
    assert by["dred"]["env_steps"] == (6 + 4) * 64
    assert by["dred"]["vae_seconds"] > 0 and 0 <= by["dred"]["dataset_mass"] <= 1 + 1e-9
    vae_files = list(cache.glob("vae-tiny-*.pt"))
    assert len(vae_files) == 1
    spec = json.loads(vae_files[0].with_suffix(".json").read_text())
    assert spec["epochs"] == 2 and spec["n_train"] == 12
    assert (out / "dred_cave_escape.png").stat().st_size > 0
    assert "DRED (VAE)" in rep.report_text and "Uniform" in rep.report_text
    # the cached VAE is reused by a second run (no training time)
    rep2 = run_experiment("dred_cave_escape", tmp_path / "out2", sets=[
        "method=[dred]", "scale=tiny", f"cache_dir={cache}", "updates=1"], seeds=1,
        workers=1, quiet=True)
    assert rep2.complete
    _, rec2 = load_results(tmp_path / "out2")
    assert rec2[0]["metrics"]["vae_seconds"] == 0.0 and rec2[0]["metrics"]["grad_updates"] == 1


def test_level_sets_are_seeded_and_sized():
    from robustrl.experiments.dred_cave_escape import SCALES, level_sets

    a = level_sets("tiny", 0)
    b = level_sets("tiny", 0)
    for name, levels in a.items():
        np.testing.assert_array_equal(levels, b[name])
    cfg = SCALES["tiny"]
    assert a["train_full"].shape == (cfg["n_train"], 13, 13)
    assert a["large"].shape[1] == cfg["large_size"]
    assert len(a["test"]) == cfg["eval_sizes"]["test"]
    assert not np.array_equal(level_sets("tiny", 1)["test"], a["test"])


def test_report_table():
    from robustrl.experiments.dred_cave_escape import EVAL_SETS, report

    recs = []
    for method, rate in (("dred", 0.5), ("dr", 0.25)):
        for seed in range(2):
            metrics = {f"solved_{s}": rate for s in EVAL_SETS}
            metrics.update({f"return_{s}": rate / 2 for s in EVAL_SETS},
                           steps_per_second=1000.0, grad_updates=5, env_steps=10,
                           device="cpu")
            recs.append({"params": {"method": method, "scale": "tiny"}, "metrics": metrics,
                         "seed": seed})
    text = report(recs)
    assert "DRED (VAE)" in text and "DR " in text and "0.500+-0.000" in text


def test_device_from_environment(monkeypatch):
    from robustrl.experiments.dred_cave_escape import _device

    monkeypatch.delenv("ROBUSTRL_DRED_DEVICE", raising=False)
    assert _device() == "auto"
    monkeypatch.setenv("ROBUSTRL_DRED_DEVICE", "cpu")
    assert _device() == "cpu"
    monkeypatch.setenv("ROBUSTRL_DRED_DEVICE", "tpu")
    with pytest.raises(ValueError, match="ROBUSTRL_DRED_DEVICE"):
        _device()


def test_interrupted_cell_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """A cell killed after its first checkpoint and run again resumes from it and gives the
    metrics of an uninterrupted run; the checkpoint folder is removed when the cell ends."""
    from robustrl.agents.dred.training import LevelReplayPPO
    from robustrl.envs.cave_escape_vec import CaveEscapeVecEnv

    mod = load_experiment("dred_cave_escape").module
    params = dict(method="plr", scale="tiny", data_seed=0, updates=0, learning_rate=1e-4,
                  cache_dir=str(tmp_path))
    fresh = mod.run_one(params, 5)

    class Killed(Exception):
        pass

    real_step, calls = CaveEscapeVecEnv.step_wait, [0]

    def dying_step(self):
        # tiny: 6 unseen phases (12 levels / 2 envs) + 1 replay phase = update 1 and its
        # checkpoint, then 10 steps into the next phase
        calls[0] += 1
        if calls[0] >= 7 * 32 + 10:
            raise Killed
        return real_step(self)

    monkeypatch.setattr(CaveEscapeVecEnv, "step_wait", dying_step)
    with pytest.raises(Killed):
        mod.run_one(params, 5)
    monkeypatch.undo()
    ckpt = mod.checkpoint_dir(params, 5, tmp_path) / "checkpoint.pt"
    assert ckpt.exists()
    assert LevelReplayPPO.load(ckpt, device="cpu").grad_updates == 1
    again = mod.run_one(params, 5)
    assert again["resumed_at_update"] == 1 and fresh["resumed_at_update"] == 0
    for key in [k for k in fresh if k.startswith(("solved_", "return_"))] + ["env_steps",
                                                                             "phases"]:
        assert again[key] == fresh[key], key
    assert not ckpt.parent.exists()


def test_cpu_preset_sizes_and_shift_diagnostics():
    """The CPU preset trains on 5x5 caves and tests "large" on 9x9; the shift diagnostics
    compare the levels a method adds beyond the training set with the training set."""
    from robustrl.agents.dred.training import LevelReplayPPO

    mod = load_experiment("dred_cave_escape").module
    sets = mod.level_sets("cpu", 0)
    cfg = mod.SCALES["cpu"]
    assert sets["train_full"].shape == (cfg["n_train"], 5, 5)
    assert sets["test"].shape[1:] == (5, 5) and sets["large"].shape[1:] == (9, 9)
    train = sets["train_full"][:8]
    kw = dict(n_envs=2, n_steps=16, navigation_only=True, device="cpu", buffer_capacity=16)
    uniform = LevelReplayPPO("uniform", train, **kw)
    assert mod.shift_metrics(uniform, train, 0) == {}
    dr = mod.shift_metrics(LevelReplayPPO("dr", train, **kw), train, 0)
    assert dr["shift_n"] == 64 and 0 < dr["shift_tv"] <= 1 and 0 <= dr["shift_solvable"] <= 1
    robust = LevelReplayPPO("robust_plr", train, **kw)
    assert mod.shift_metrics(robust, train, 0) == {"shift_n": 0}  # nothing admitted yet
    robust.buffer.admit(train[0], 1.0, None, grounded_value=0.5)
    # one admitted level against a training set of that level alone: no shift
    one = mod.shift_metrics(robust, train[:1], 0)
    assert one["shift_n"] == 1 and one["shift_tv"] == 0.0 and one["shift_solvable"] == 1.0
    assert mod.shift_metrics(robust, train[1:2], 0)["shift_tv"] > 0


def test_learning_rate_zero_means_the_scales_preset():
    """``learning_rate=0`` (the grid default) is the scale's value: 1e-3 for the CPU presets,
    the authors' 1e-4 elsewhere; an explicit value wins. ``cpu_lstm`` is ``cpu`` with the
    LSTM(64) policy and nothing else changed."""
    mod = load_experiment("dred_cave_escape").module
    assert mod.GRID["learning_rate"] == [0.0]
    for scale, lr in (("cpu", 1e-3), ("cpu_lstm", 1e-3), ("h200", 1e-3), ("small", 1e-4),
                      ("full", 1e-4)):
        assert mod.learning_rate(dict(scale=scale, learning_rate=0.0)) == lr
    assert mod.learning_rate(dict(scale="cpu", learning_rate=3e-4)) == 3e-4
    cpu, lstm = mod.SCALES["cpu"], mod.SCALES["cpu_lstm"]
    assert lstm["policy"] == "lstm" and cpu["policy"] == "mlp"
    assert lstm["features_dim"] == 64 and "features_dim" not in cpu  # cpu: the default 256
    assert {k: v for k, v in lstm.items() if k not in ("policy", "features_dim")} == {
        k: v for k, v in cpu.items() if k != "policy"}
