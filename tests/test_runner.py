"""The experiment runner: resumable sweeps through the CLI, worker-count independence, errors."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROBUSTRL, cli_env, read_events, run_cli

from robustrl import runner
from robustrl._cli import bounds
from robustrl._cli.bounds import register_bound_check
from robustrl.cli import main as cli_main
from robustrl.runner import (
    RunnerError,
    cell_key,
    cell_seed,
    load_experiment,
    load_results,
    run_experiment,
)

# A 2 x 2 sweep (x in {1, 2}, two seeds) whose cells log to $TINY_LOG, fail on the cell whose
# seed is $TINY_FAIL_SEED and hang (until killed) on cells with x == $TINY_BLOCK_X.
TINY = textwrap.dedent(
    '''
    """Tiny test sweep."""
    import json, os, time
    import numpy as np

    NAME = "tiny"
    GRID = {"x": [1.0, 2.0], "mode": ["a"], "n": [3]}
    SEEDS = 2

    def _log(event, params, seed):
        path = os.environ.get("TINY_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps({"event": event, "x": params["x"], "seed": seed}) + "\\n")

    def run_one(params, seed):
        _log("start", params, seed)
        if str(seed) == os.environ.get("TINY_FAIL_SEED"):
            raise RuntimeError("planned failure")
        if str(params["x"]) == os.environ.get("TINY_BLOCK_X"):
            time.sleep(120)
        rng = np.random.default_rng(seed)
        y = params["x"] * rng.normal(size=params["n"])
        _log("done", params, seed)
        return {"y_mean": y.mean(), "y": y, "global_draw": float(np.random.random())}

    def report(results):
        return f"tiny report: {len(results)} cells"

    def plot(results, out_dir):
        if os.environ.get("TINY_PLOT_FAIL"):
            raise ZeroDivisionError("planned plot failure")
        path = out_dir / "hook.txt"
        path.write_text(str(len(results)))
        return [path]
    '''
)
TINY_PARAMS = [{"x": 1.0, "mode": "a", "n": 3}, {"x": 2.0, "mode": "a", "n": 3}]


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return path


def _env(**extra):
    return cli_env("TINY_", **extra)


def _cli(*args, timeout=120, **env):
    return run_cli(*args, env=_env(**env), timeout=timeout)


def _events(log: Path, event: str) -> list[tuple[float, int]]:
    return [(r["x"], r["seed"]) for r in read_events(log, event)]


def _still_running(proc: subprocess.Popen, deadline: float) -> None:
    if proc.poll() is not None:
        out, err = proc.communicate()
        pytest.fail(f"the runner exited early ({proc.returncode}):\n{out}\n{err}")
    assert time.monotonic() < deadline, "timed out waiting for the runner"


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _all_cells():
    return {(p["x"], cell_seed("tiny", p, i)): cell_key("tiny", p, i)
            for p in TINY_PARAMS for i in range(2)}


# --------------------------------------------------------------------------- resumability
def test_failed_cell_is_retried_on_rerun_and_finished_cells_are_kept(tmp_path, tiny):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    cells = _all_cells()
    fail = cell_seed("tiny", TINY_PARAMS[1], 1)
    first = _cli("run", tiny, "--out", out, "--workers", "1", TINY_LOG=log, TINY_FAIL_SEED=fail)
    assert first.returncode == 1
    assert "1 of 4 cells failed" in first.stderr and "planned failure" in first.stderr
    failed_key = cells[(2.0, fail)]
    assert "RuntimeError: planned failure" in (out / "errors" / f"{failed_key}.txt").read_text()
    assert sorted(p.stem for p in (out / "cells").glob("*.json")) == sorted(
        k for k in cells.values() if k != failed_key)
    assert not (out / "summary.csv").exists()  # written only once every cell has finished
    before = _snapshot(out / "cells")

    second = _cli("run", tiny, "--out", out, "--workers", "1", "--quiet", TINY_LOG=log)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""  # --quiet: no bar, no messages
    for name, content in before.items():  # finished cells were neither rerun nor rewritten
        assert _snapshot(out / "cells")[name] == content
    assert sorted(p.stem for p in (out / "cells").glob("*.json")) == sorted(cells.values())
    assert not (out / "errors" / f"{failed_key}.txt").exists()
    # every cell finished exactly once over both runs; only the failed one started twice
    assert sorted(_events(log, "done")) == sorted(cells)
    assert _events(log, "start").count((2.0, fail)) == 2 and len(_events(log, "start")) == 5
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == ("x,mode,n,n_seeds,global_draw_mean,global_draw_std,global_draw_ci95,"
                          "y_mean_mean,y_mean_std,y_mean_ci95")
    assert len(summary) == 3 and all(row.split(",")[3] == "2" for row in summary[1:])
    assert (out / "figures" / "y_mean.png").read_bytes()[:4] == b"\x89PNG"


def test_killed_run_resumes_and_runs_every_cell_exactly_once(tmp_path, tiny):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    cells = _all_cells()
    proc = subprocess.Popen([*ROBUSTRL, "run", str(tiny), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(TINY_LOG=log, TINY_BLOCK_X=2.0))
    try:
        deadline = time.monotonic() + 60
        # cells run in grid order with one worker: both x=1 cells finish, then x=2 hangs
        while not any(x == 2.0 for x, _ in _events(log, "start")):
            _still_running(proc, deadline)
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(timeout=30)
    stored = sorted((out / "cells").glob("*.json"))
    assert [p.stem for p in stored] == sorted(k for (x, _), k in cells.items() if x == 1.0)
    before = {p.name: p.read_bytes() for p in stored}
    values = {p.name: json.loads(p.read_bytes())["metrics"] for p in stored}

    dry = _cli("run", tiny, "--out", out, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("  done  ") == 2
    assert dry.stdout.count("  todo  ") == 2

    rerun = _cli("run", tiny, "--out", out, "--workers", "1", TINY_LOG=log)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 already finished" in rerun.stderr
    assert {p.name: p.read_bytes() for p in stored} == before
    assert sorted(_events(log, "done")) == sorted(cells)
    manifest, records = load_results(out)
    assert [r["key"] for r in records] == [cell_key("tiny", p, i)
                                          for p in TINY_PARAMS for i in range(2)]
    assert {f"{r['key']}.json": r["metrics"] for r in records if r["params"]["x"] == 1.0} == \
        values
    rec = records[0]
    assert rec["seed"] == cell_seed("tiny", TINY_PARAMS[0], 0) and rec["seed_index"] == 0
    assert rec["robustrl_version"] and rec["wall_time_s"] >= 0 and rec["params"] == \
        TINY_PARAMS[0]
    # the runner seeds the global generators with the cell seed too
    assert rec["metrics"]["global_draw"] == np.random.RandomState(rec["seed"]).random_sample()
    assert manifest["config"] == {"experiment": "tiny", "grid": {
        "x": [1.0, 2.0], "mode": ["a"], "n": [3]}, "seeds": 2}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_the_pool_promptly_and_keeps_finished_cells(tmp_path, tiny, sig):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    proc = subprocess.Popen([*ROBUSTRL, "run", str(tiny), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(TINY_LOG=log, TINY_BLOCK_X=2.0))
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "cells").glob("*.json"))) < 2 or len(
                [x for x, _ in _events(log, "start") if x == 2.0]) < 2:
            _still_running(proc, deadline)
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)  # the hanging workers are stopped, not awaited
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted with 2 of 4 cells finished" in err and "rerun" in err
    assert len(list((out / "cells").glob("*.json"))) == 2


# --------------------------------------------------------------------------- reproducibility
TOY = ["--set", "perturbation=[0, 1]", "--set", "episodes=30", "--seeds", "2", "--quiet"]


@pytest.fixture(scope="module")
def toy_in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "w1"
    res = _cli("run", "toy_sweep", "--out", out, "--workers", "1", *TOY)
    assert res.returncode == 0, res.stderr
    return out


def _metrics_by_key(out: Path) -> dict:
    return {r["key"]: (r["seed"], r["metrics"]) for r in load_results(out)[1]}


def test_two_workers_give_the_same_results_as_one(tmp_path, toy_in_process):
    out = tmp_path / "w2"
    res = _cli("run", "toy_sweep", "--out", out, "--workers", "2", *TOY)
    assert res.returncode == 0, res.stderr
    one, two = _metrics_by_key(toy_in_process), _metrics_by_key(out)
    assert len(one) == 4 and one == two
    assert len({m["mc_return"] for _, m in one.values()}) == 4  # seeds do differ
    for name in ("summary.csv", "manifest.json"):
        a, b = (toy_in_process / name).read_text(), (out / name).read_text()
        if name == "manifest.json":
            a, b = ({k: v for k, v in json.loads(t).items() if k != "created"} for t in (a, b))
        assert a == b


def test_ray_backend_gives_the_same_results(tmp_path, toy_in_process):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    res = _cli("run", "toy_sweep", "--out", out, "--backend", "ray", "--workers", "2", *TOY,
               timeout=300, RAY_ADDRESS=None)
    assert res.returncode == 0, res.stderr
    assert _metrics_by_key(out) == _metrics_by_key(toy_in_process)


def test_cell_seeds_and_keys_are_stable_and_distinct():
    p = {"x": 1.0, "mode": "a"}
    # golden values: changing the hashing would orphan every stored result
    assert cell_key("tiny", p, 0) == "fc299e3beb0440aa1ba1b9c2"
    assert cell_seed("tiny", p, 0) == cell_seed("tiny", dict(reversed(p.items())), 0)
    seeds = {cell_seed(e, {"x": x}, i) for e in ("a", "b") for x in (1.0, 2.0) for i in range(3)}
    assert len(seeds) == 12 and all(0 <= s < 2**32 for s in seeds)
    expected = np.random.SeedSequence(
        int(runner._sha256(["tiny", p])[:32], 16), spawn_key=(1,)).generate_state(1)[0]
    assert cell_seed("tiny", p, 1) == int(expected)


# --------------------------------------------------------------------------- configuration
def test_config_file_and_set_overrides_are_type_checked(tmp_path, tiny):
    exp = load_experiment(tiny)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("grid:\n  x: [1, 1e-3]\n  n: 2\nseeds: 1\nworkers: 1\n"
                   f"out: {tmp_path / 'fromfile'}\n")
    report = run_experiment(exp, config=cfg, sets=["mode=on"], quiet=True)
    assert report.out == tmp_path / "fromfile" and report.complete
    assert report.config.grid == {"x": [1.0, 0.001], "mode": ["on"], "n": [2]}
    assert [len(r["metrics"]["y"]) for r in report.records] == [2, 2]
    # an int where the default is a float is the same grid point as the float
    assert runner.resolve_config(exp, sets=["x=[1, 2]"]).hash == \
        runner.resolve_config(exp).hash


@pytest.mark.parametrize(("args", "message"), [
    (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'; available:"),
    (["run", "TINY", "--set", "y=1"], "unknown parameter 'y' for experiment tiny; known"),
    (["run", "TINY", "--set", "n=2.5"], "n takes int values"),
    (["run", "TINY", "--set", "x=abc"], "x takes float values"),
    (["run", "TINY", "--set", "n=true"], "got True of type bool"),
    (["run", "TINY", "--set", "x=[]"], "at least one value"),
    (["run", "TINY", "--set", "x=[1, 1.0]"], "repeated grid values 1.0"),
    (["run", "TINY", "--set", "x"], "expected KEY=VALUE"),
    (["run", "TINY", "--seeds", "0"], "--seeds must be an integer >= 1"),
    (["run", "TINY", "--workers", "0"], "workers must be an integer >= 1"),
    (["run", "TINY", "--config", "CFG"], "unknown keys grid_size"),
    (["run", "toy_sweep", "--set", "perturbation=2"], "perturbation must lie in [0, 1]"),
    (["run", "/no/such/file.py"], "does not exist"),
])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, tiny, capsys, args, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("grid_size: 3\n")
    out = tmp_path / "out"
    args = [str(tiny) if a == "TINY" else str(cfg) if a == "CFG" else a for a in args]
    assert cli_main([*args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustrl: error: ") and message in err
    assert not out.exists()


def test_a_dir_holding_another_config_is_refused_untouched(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    assert cli_main(["run", str(tiny), "--out", str(out), "--workers", "1", "--quiet",
                     "--set", "x=1"]) == 0
    before = _snapshot(out)
    # x and n are fixed (one value each) in that DIR: changing them is refused (more seeds or
    # more values of a swept parameter grow the sweep instead, see tests/test_sweeps.py)
    for extra in (["--set", "x=2"], ["--set", "n=4"]):
        assert cli_main(["run", str(tiny), "--out", str(out), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert "holds results of a different config" in err and "Nothing was written" in err
    assert "n [3] -> [4]" in err
    assert _snapshot(out) == before
    (out / "manifest.json").unlink()
    assert cli_main(["run", str(tiny), "--out", str(out), "--quiet", "--set", "x=1"]) == 2
    assert "holds cell results but no manifest.json" in capsys.readouterr().err


def test_ray_backend_without_ray_is_a_usage_error(tmp_path, tiny, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else find_spec(name, *a))
    out = tmp_path / "out"
    assert cli_main(["run", str(tiny), "--out", str(out), "--backend", "ray"]) == 2
    assert "pip install 'robustrl[ray]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_dir_in_use_by_another_run_is_refused(tmp_path, tiny):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(RunnerError, match="another robustrl run is writing"):
            run_experiment(tiny, out, workers=1, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


# --------------------------------------------------------------------------- list, plot, hooks
def test_list_shows_package_and_path_experiments(tmp_path, tiny, capsys, monkeypatch):
    monkeypatch.setenv(runner.PATH_ENV, str(tmp_path))
    assert cli_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert {"exact_robust_values", "toy_sweep", "tiny"} <= set(names)
    assert any(line.startswith("toy_sweep") and "[6 points x 3 seeds = 18 cells]" in line
               for line in lines)


def test_plot_redraws_from_stored_results(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    assert cli_main(["run", str(tiny), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    summary = (out / "summary.csv").read_text()
    for p in [out / "summary.csv", *(out / "figures").iterdir()]:
        p.unlink()
    assert cli_main(["plot", str(out), "--quiet"]) == 0
    assert (out / "summary.csv").read_text() == summary
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["global_draw.png",
                                                                   "y_mean.png"]
    assert cli_main(["plot", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err


def test_report_and_plot_hooks_and_a_failing_plot_hook(tmp_path, tiny, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("TINY_PLOT_FAIL", "1")
    assert cli_main(["run", str(tiny), "--out", str(out), "--workers", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "tiny report: 4 cells" in captured.out
    assert "tiny.plot failed" in captured.err and "planned plot failure" in captured.err
    assert (out / "summary.csv").exists() and not (out / "hook.txt").exists()
    monkeypatch.delenv("TINY_PLOT_FAIL")
    # the hooks of an experiment given by file come only from the command line ...
    assert cli_main(["plot", str(out), "--experiment", str(tiny)]) == 0
    assert (out / "hook.txt").read_text() == "4"
    assert f"wrote {out / 'hook.txt'}" in capsys.readouterr().err
    # ... or from the experiment registered under the manifest's name
    (out / "hook.txt").unlink()
    monkeypatch.setenv(runner.PATH_ENV, str(tiny.parent))
    assert cli_main(["plot", str(out)]) == 0
    assert (out / "hook.txt").read_text() == "4"


def test_fail_fast_stops_at_the_first_failing_cell(tmp_path, tiny, capsys, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("TINY_LOG", str(log))
    monkeypatch.setenv("TINY_FAIL_SEED", str(cell_seed("tiny", TINY_PARAMS[0], 0)))
    out = tmp_path / "out"
    assert cli_main(["run", str(tiny), "--out", str(out), "--workers", "1", "--quiet",
                     "--fail-fast"]) == 1
    assert "1 of 4 cells failed" in capsys.readouterr().err
    assert len(_events(log, "start")) == 1 and not list((out / "cells").glob("*.json"))


def test_inner_progress_is_silent_outside_the_runner():
    assert runner.progress(range(3)).disable


# --------------------------------------------------------------------------- verify-bounds
def test_verify_bounds_without_checks_lists_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(bounds, "_BOUND_CHECKS", {})
    monkeypatch.setattr(bounds, "load_bound_checks", lambda: {})
    assert cli_main(["verify-bounds"]) == 2
    assert "no bound checks are registered yet" in capsys.readouterr().err
    assert cli_main(["verify-bounds", "r2pvi"]) == 2
    assert "unknown bound check 'r2pvi'" in capsys.readouterr().err
    assert cli_main(["verify-bounds", "--list"]) == 1


def test_verify_bounds_runs_a_registered_check(monkeypatch, capsys):
    monkeypatch.setattr(bounds, "_BOUND_CHECKS", {})
    monkeypatch.setattr(bounds, "load_bound_checks", lambda: {})
    seen = []

    @register_bound_check("demo", description="a demo check")
    def demo(argv):
        seen.append(argv)
        return 3

    assert cli_main(["verify-bounds", "demo", "--episodes", "5", "x"]) == 3
    assert seen == [["--episodes", "5", "x"]]
    assert cli_main(["verify-bounds", "--list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "a demo check" in out
    register_bound_check("demo", demo)  # re-registering the same function is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_bound_check("demo", lambda argv: 0)


def test_load_bound_checks_registers_the_built_in_checks():
    errors = bounds.load_bound_checks()
    assert errors == {}
    assert set(bounds.BUILTIN_CHECKS) <= set(bounds.bound_checks())
    assert "robustrl.theory" in sys.modules


def test_numpy_scalar_metrics_are_stored_and_tabulated_as_plain_numbers():
    from robustrl.runner.worker import to_jsonable

    out = to_jsonable({"a": np.float64(0.1), "b": np.int64(3), "c": [np.float32(0.5)],
                       "d": np.bool_(True)})
    assert out == {"a": 0.1, "b": 3, "c": [0.5], "d": True}
    assert [type(v) for v in (out["a"], out["b"], out["c"][0], out["d"])] == \
        [float, int, float, bool]  # np.float64 subclasses float: repr gave "np.float64(0.1)"
