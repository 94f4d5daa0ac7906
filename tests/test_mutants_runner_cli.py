"""In-process tests of the runner's loop, worker and backends and of the command line.

Written against the survivors of a seeded mutation sample (tools/mutate.py,
docs/dev/mutation.md): each test names the bug it catches. Everything runs in this process
(``workers=1``) or in a forked child, so that a mutated module is the one exercised (the
subprocess tests of tests/test_runner.py run an unmutated copy).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from robustrl import cli
from robustrl._cli import bounds
from robustrl._cli.install import experiment_requirements, packaged_configs, resolve_config_path
from robustrl.runner import (
    RunnerError,
    backends,
    load_results,
    plot_results,
    run_experiment,
    worker,
)

# A 2 x 2 sweep (x in {1, 2}, two seeds); the cell whose seed is $MUT_FAIL_SEED raises, and a
# cell with x == $MUT_KILL_X kills its own process (only run in a pool).
TINY = textwrap.dedent(
    '''
    """Tiny sweep for the mutation tests."""
    import os
    import numpy as np
    from robustrl.runner import worker

    NAME = "muttiny"
    GRID = {"x": [1.0, 2.0]}
    SEEDS = 2

    def run_one(params, seed):
        if str(seed) == os.environ.get("MUT_FAIL_SEED"):
            raise RuntimeError("planned failure")
        if str(params["x"]) == os.environ.get("MUT_KILL_X"):
            os.kill(os.getpid(), 9)
        return {"y": params["x"] * 10.0 + seed % 7, "pid": os.getpid(),
                "inner": worker.INNER_PROGRESS}
    '''
)


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "muttiny.py"
    path.write_text(TINY)
    return path


@pytest.fixture()
def runner_log(caplog):
    caplog.set_level(logging.INFO, logger="robustrl.runner")
    return caplog


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "robustrl.runner"]


# ------------------------------------------------------------------------------- the loop
def test_in_process_run_counts_and_resume(tiny, tmp_path, runner_log):
    """Catches ``ran`` starting at -1, a resumed run that reruns finished cells (``not in`` ->
    ``in``), ``workers == 1`` not running in this process, pool memory recorded for cells run
    here (pid test flipped), and the explicit worker count in the progress message."""
    out = tmp_path / "out"
    rep = run_experiment(tiny, out, workers=1)
    assert (rep.ran, rep.resumed, rep.complete) == (4, 0, True)
    assert {r["metrics"]["pid"] for r in rep.records} == {os.getpid()}
    assert {r["metrics"]["inner"] for r in rep.records} == {True}  # bars shown in-process
    assert rep.worker_memory_mb == {}
    assert any(m.endswith("running 4 on local with 1 worker(s)") for m in _messages(runner_log))
    again = run_experiment(tiny, out, workers=1)
    assert (again.ran, again.resumed, again.complete) == (0, 4, True)
    assert [r["metrics"] for r in again.records] == [r["metrics"] for r in rep.records]


def test_quiet_logs_nothing_and_loud_logs_progress(tiny, tmp_path, runner_log, capsys):
    """Catches a negated ``quiet`` test in ``_log`` and a progress bar that never advances."""
    run_experiment(tiny, tmp_path / "q", workers=1, quiet=True)
    assert _messages(runner_log) == []
    assert capsys.readouterr().err == ""
    run_experiment(tiny, tmp_path / "loud", workers=1)
    assert _messages(runner_log)
    assert "4/4" in capsys.readouterr().err


def test_dry_run_reports_without_running(tiny, tmp_path):
    """Catches a dry run that reports ``ran = -1``."""
    rep = run_experiment(tiny, tmp_path / "out", dry_run=True)
    assert (rep.ran, rep.resumed, rep.dry_run, len(rep.cells)) == (0, 0, True, 4)
    assert not (tmp_path / "out").exists()


def test_one_pending_cell_is_one_worker_and_the_auto_message_needs_two(tiny, tmp_path,
                                                                        runner_log, monkeypatch):
    """With no ``workers`` the message says 'a pool of up to N' only when ``N > 1`` workers may
    be used, and ``N`` is at least 1 and at most the pending cells. Catches ``n_workers > 1`` ->
    ``>= 1`` / ``> 2`` and ``max(1, ...)`` -> ``max(2, ...)``."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    rep = run_experiment(tiny, tmp_path / "a", sets=["x=[1.0]"], seeds=1)
    assert rep.ran == 1
    assert any(m.endswith("running 1 on local with 1 worker(s)") for m in _messages(runner_log))
    runner_log.clear()
    run_experiment(tiny, tmp_path / "b", sets=["x=[1.0]"], seeds=2)
    assert any(m.endswith("running 2 on local (in this process; a pool of up to 2 worker(s) if "
                          "the sweep takes more than a few seconds)")
               for m in _messages(runner_log))


def test_a_failing_cell_is_reported_by_its_last_traceback_line(tiny, tmp_path, monkeypatch):
    """Catches the failure message taken from the traceback's second line instead of its
    last."""
    from robustrl.runner import cell_seed

    seed = cell_seed("muttiny", {"x": 2.0}, 1)
    monkeypatch.setenv("MUT_FAIL_SEED", str(seed))
    rep = run_experiment(tiny, tmp_path / "out", workers=1, quiet=True)
    assert rep.ran == 3 and len(rep.failures) == 1
    assert rep.failures[0].message == "RuntimeError: planned failure"
    assert not rep.complete


def test_a_grown_sweep_rewrites_the_manifest(tiny, tmp_path, runner_log):
    """Catches the manifest's hash test flipped (``!=`` -> ``==``): a grown sweep must store the
    new config hash and say so; an unchanged one keeps its manifest."""
    out = tmp_path / "out"
    run_experiment(tiny, out, workers=1, seeds=1)
    first = json.loads((out / "manifest.json").read_text())
    run_experiment(tiny, out, workers=1, seeds=1)
    assert json.loads((out / "manifest.json").read_text()) == first
    assert not any("growing the sweep" in m for m in _messages(runner_log))
    rep = run_experiment(tiny, out, workers=1, seeds=2)
    grown = json.loads((out / "manifest.json").read_text())
    assert grown["config_hash"] == rep.config.hash != first["config_hash"]
    assert any(f"growing the sweep in {out}: config {first['config_hash']} -> {rep.config.hash}"
               in m for m in _messages(runner_log))


def test_config_mapping_and_file_and_their_backend_and_ray_address(tiny, tmp_path):
    """Catches the config's ``backend``/``ray_address`` ignored when the caller passes none
    (``is not None`` -> ``is None``) and a config file path not read as a file."""
    with pytest.raises(RunnerError, match="ray_address must be a string"):
        run_experiment(tiny, tmp_path / "a", config={"ray_address": 5})
    with pytest.raises(RunnerError, match="optional dependency ray"):
        run_experiment(tiny, tmp_path / "b", config={"backend": "ray"})
    with pytest.raises(RunnerError, match="backend must be one of"):
        run_experiment(tiny, tmp_path / "c", backend="slurm")
    with pytest.raises(RunnerError, match="workers"):
        run_experiment(tiny, tmp_path / "d", workers=0)
    path = tmp_path / "cfg.yaml"
    path.write_text("seeds: 1\ngrid:\n  x: [2.0]\n")
    rep = run_experiment(tiny, tmp_path / "e", config=path, workers=1, quiet=True)
    assert [c.params for c in rep.cells] == [{"x": 2.0}]
    assert rep.records[0]["metrics"]["y"] == 20.0 + rep.records[0]["seed"] % 7


def test_plot_of_an_incomplete_run_warns(tiny, tmp_path, monkeypatch, runner_log):
    """Catches ``if not report.complete`` -> ``if report.complete`` in ``plot_results``."""
    from robustrl.runner import cell_seed

    out = tmp_path / "out"
    run_experiment(tiny, out, workers=1, quiet=True)
    runner_log.clear()
    plot_results(out, experiment=tiny)
    assert not any("cells are finished" in m for m in _messages(runner_log))
    monkeypatch.setenv("MUT_FAIL_SEED", str(cell_seed("muttiny", {"x": 1.0}, 0)))
    out2 = tmp_path / "out2"
    run_experiment(tiny, out2, workers=1, quiet=True)
    runner_log.clear()
    rep = plot_results(out2, experiment=tiny)
    assert len(rep.records) == 3
    assert any("only 3 of 4 cells are finished; plotting those" in m
               for m in _messages(runner_log))
    manifest, records = load_results(out2)
    assert len(records) == 3 and manifest["config"]["experiment"] == "muttiny"


def test_plot_finds_a_packaged_experiment_by_its_manifest_name(tmp_path, runner_log):
    """Catches ``exp.name == name`` negated in the lookup of the registered experiment: the
    plot of a packaged experiment's results must not warn that none is registered."""
    out = tmp_path / "out"
    run_experiment("toy_sweep", out, workers=1, quiet=True, seeds=1)
    runner_log.clear()
    plot_results(out)
    assert not any("no registered experiment" in m for m in _messages(runner_log))


# ------------------------------------------------------------------------------ the worker
def test_to_jsonable_types():
    """Catches NumPy scalars returned as None or unconverted, and None/bool/str passed through
    as None."""
    got = worker.to_jsonable({"a": np.float64(1.5), "b": np.int64(3), "c": None, "d": True,
                              "e": "s", "f": (1, np.arange(2)), "g": np.bool_(False)})
    assert got == {"a": 1.5, "b": 3, "c": None, "d": True, "e": "s", "f": [1, [0, 1]],
                   "g": False}
    assert type(got["a"]) is float and type(got["b"]) is int and type(got["g"]) is bool

    class S(str):
        pass

    assert type(worker.to_jsonable(S("x"))) is str
    with pytest.raises(TypeError, match=r"metrics\['k'\]"):
        worker.to_jsonable({"k": object()})
    with pytest.raises(TypeError, match="keys must be strings; got 1"):
        worker.to_jsonable({1: 2.0})


def test_load_module_is_cached_and_returned(tiny):
    """Catches the module cache test negated (the file is executed again) and ``return
    module`` -> ``return None``."""
    ref = ("file", str(tiny))
    first = worker.load_module(ref)
    assert first is not None and first.NAME == "muttiny"
    assert worker.load_module(ref) is first


def test_execute_outcomes(tiny):
    """Catches ``ok`` flipped in either outcome, ``perf_counter() + t0`` (a wall time of about
    twice the process age), the dict check negated and the memory figure in bytes-to-MB
    scaled wrongly (``kb * 1024`` instead of ``kb / 1024``)."""
    import resource

    ref = ("file", str(tiny))
    t0 = time.perf_counter()
    good = worker.execute(ref, {"x": 1.0}, 3)
    elapsed = time.perf_counter() - t0
    assert good["ok"] is True and good["metrics"]["y"] == 13.0
    assert 0.0 <= good["wall_time_s"] <= elapsed
    assert good["pid"] == os.getpid()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    assert 0.5 * rss_mb <= good["max_rss_mb"] <= rss_mb
    os.environ["MUT_FAIL_SEED"] = "5"
    try:
        bad = worker.execute(ref, {"x": 1.0}, 5)
    finally:
        del os.environ["MUT_FAIL_SEED"]
    assert bad["ok"] is False and "RuntimeError: planned failure" in bad["error"]
    assert 0.0 <= bad["wall_time_s"] <= time.perf_counter() - t0


def test_run_one_must_return_a_dict(tmp_path):
    path = tmp_path / "notdict.py"
    path.write_text('NAME = "notdict"\nGRID = {"x": [1]}\ndef run_one(params, seed):\n'
                    '    return [1]\n')
    out = worker.execute(("file", str(path)), {"x": 1}, 0)
    assert out["ok"] is False and "run_one must return a dict of metrics; got list" in out["error"]
    good = tmp_path / "isdict.py"
    good.write_text('NAME = "isdict"\nGRID = {"x": [1]}\ndef run_one(params, seed):\n'
                    '    return {"v": 1}\n')
    ok = worker.execute(("file", str(good)), {"x": 1}, 0)
    assert ok["ok"] is True and ok["metrics"] == {"v": 1}


def test_inner_progress_is_off_outside_an_in_process_run():
    """Catches ``INNER_PROGRESS = True`` at import: a bar inside ``run_one`` of a pool worker
    would then draw over the driver's."""
    assert worker.INNER_PROGRESS is False
    assert backends.progress(range(2)).disable is True


def _in_child(fn, timeout: float = 20.0) -> int:
    """Run ``fn()`` in a forked child; its exit status (or -9 if it had to be killed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            code = int(fn() or 0)
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_worker_init_in_a_child():
    """Pool-worker start-up (in a forked child): it must keep running while its parent lives
    (catches the parent test flipped, which exits 70 at once), ignore SIGINT, ask Linux for
    SIGKILL on the parent's death (``prctl(PR_GET_PDEATHSIG)`` reads 9; catches ``return False``
    -> ``True`` and a lost request) and start the watchdog as a daemon thread (a non-daemon one
    would keep a finished worker alive)."""
    import ctypes
    import threading

    def child() -> int:
        worker.worker_init(os.getppid(), 0.01)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            return 11
        sig = ctypes.c_int(0)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(2, ctypes.byref(sig), 0, 0, 0) != 0 or sig.value != signal.SIGKILL:
            return 12
        watch = [t for t in threading.enumerate() if t.name == "robustrl-parent-watchdog"]
        if len(watch) != 1 or not watch[0].daemon:
            return 13
        time.sleep(0.1)  # the watchdog has polled several times and not exited
        return 0

    assert _in_child(child) == 0


def test_the_watchdog_exits_when_the_parent_is_gone():
    """Catches ``while True`` -> ``while False`` (the watchdog returns without checking) and
    the parent test flipped (it never exits): a watchdog told that its parent is another pid
    exits with status 70."""
    def child() -> int:
        worker._watch_parent(os.getppid() + 10**6, 0.01)
        return 5  # not reached

    assert _in_child(child, timeout=10.0) == 70


# ---------------------------------------------------------------------------- the backends
def test_failed_outcome_and_exit_descriptions():
    """Catches ``_failed``'s ``ok`` flipped or its dict dropped, and the signal test ``code < 0``
    -> ``code < -1`` (exit -1 is SIGHUP)."""
    out = backends._failed("boom\n")
    assert out["ok"] is False and out["error"] == "boom\n" and np.isnan(out["wall_time_s"])
    assert backends._exit_description(None) == "exit status unknown"
    assert backends._exit_description(0) == "exit status 0"
    assert backends._exit_description(3) == "exit status 3"
    assert backends._exit_description(-1) == "killed by SIGHUP"
    assert backends._exit_description(-9) == "killed by SIGKILL"
    assert backends._exit_description(-200) == "killed by signal 200"
    assert backends.default_workers() == len(os.sched_getaffinity(0)) >= 1


def _auto_run(monkeypatch, n_cells: int, max_workers: int, min_seconds: float):
    """``_run_auto`` with every cell taking exactly 1 s (a fake clock) and a recording pool."""
    from robustrl.runner.store import Cell

    clock = iter(np.arange(0.0, 1000.0, 1.0))  # two readings per cell, 1 s apart
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    pooled: list[tuple[list[int], int]] = []

    def fake_pool(ref, cells, workers):
        pooled.append(([c.index for c in cells], workers))
        for c in cells:
            yield c, {"ok": True, "metrics": {}, "pool": True}

    monkeypatch.setattr(backends, "_run_pool", fake_pool)
    monkeypatch.setattr(backends, "execute", lambda ref, params, seed, inner: {"ok": True})
    cells = [Cell(i, f"k{i}", {"x": i}, 0, i) for i in range(n_cells)]
    got = list(backends._run_auto(("module", "none"), cells, max_workers, False, min_seconds))
    return [c.index for c, _ in got], pooled


def test_auto_backend_switches_to_a_pool_on_the_estimated_rest(monkeypatch):
    """The rest's estimate is ``median(cell time, from the second cell) * cells left``, compared
    strictly with ``min_seconds``, from the third cell on and only with more than one cell left.
    With 1 s per cell and five cells the estimate at the third cell is 3 s: a pool of
    ``min(max_workers, 3)`` at ``min_seconds = 2.5``, none at exactly 3 (catches ``>`` ->
    ``>=``, ``*`` -> ``/`` and the negated test); with three cells the last one never goes to a
    pool (catches ``rest > 1`` -> ``rest > 0``)."""
    order, pooled = _auto_run(monkeypatch, 5, 4, 2.5)
    assert order == [0, 1, 2, 3, 4] and pooled == [([2, 3, 4], 3)]
    monkeypatch.undo()
    order, pooled = _auto_run(monkeypatch, 5, 4, 3.0)
    assert order == [0, 1, 2, 3, 4] and pooled == []
    monkeypatch.undo()
    order, pooled = _auto_run(monkeypatch, 3, 4, 0.5)
    assert order == [0, 1, 2] and pooled == []


def test_pool_default_threshold_is_ten_seconds():
    """Pins the documented switch point (run_experiment's docstring: a pool only once the
    sweep is estimated to take more than ``POOL_MIN_SECONDS``; docs/runner.md: 10 s)."""
    import inspect

    assert backends.POOL_MIN_SECONDS == 10.0
    assert inspect.signature(backends._run_auto).parameters["min_seconds"].default == 10.0


def test_progress_bars_do_not_stay_on_screen():
    """Catches ``leave=False`` -> ``True`` for the inner bars."""
    assert backends.progress(range(2)).leave is False
    assert backends.progress(range(2), leave=True).leave is True


def test_a_cell_that_kills_its_pool_worker_fails_alone(tiny, tmp_path, monkeypatch):
    """A pool worker killed by its own cell (``x == 2``: SIGKILL) breaks the pool; every cell in
    flight becomes a suspect and runs again alone, so only the two killing cells fail, each
    with 'killed by SIGKILL', and the two others finish. Catches the broken-pool handling
    (``any`` -> ``all``, the suspect limit 1 -> 0 or 2, the negated tests of the future's
    exception) in the driver, which runs in this process."""
    monkeypatch.setenv("MUT_KILL_X", "2.0")
    rep = run_experiment(tiny, tmp_path / "out", workers=2, quiet=True)
    assert rep.ran == 2 and len(rep.failures) == 2
    assert sorted(f.cell.params["x"] for f in rep.failures) == [2.0, 2.0]
    for f in rep.failures:
        assert "worker process died while running this cell alone (killed by SIGKILL)" in (
            f.error_file.read_text())
    assert sorted(r["params"]["x"] for r in rep.records) == [1.0, 1.0]
    # pool workers never draw inner bars (catches the submitted inner_progress False -> True)
    assert {r["metrics"]["inner"] for r in rep.records} == {False}
    assert {r["metrics"]["pid"] for r in rep.records}.isdisjoint({os.getpid()})


# ----------------------------------------------------------------------------- the CLI
def test_io_error_line(capsys):
    """Catches ``strerror or str(exc)`` -> ``and`` and a lost exit status."""
    code = cli._io_error(OSError(28, "No space left on device", "/x/cells/a.json"))
    assert code == cli.EXIT_IOERR == 74
    assert capsys.readouterr().err == (
        "robustrl: error: /x/cells/a.json: No space left on device (finished cells are kept; "
        "fix the filesystem problem and rerun)\n")
    assert cli._io_error(OSError("plain")) == 74
    assert "robustrl: error: plain (finished" in capsys.readouterr().err


def test_an_os_error_during_a_run_is_exit_74(monkeypatch, capsys):
    """Catches ``return _io_error(exc)`` -> ``return None`` in ``main``."""
    import robustrl.runner

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "/x/summary.csv")

    monkeypatch.setattr(robustrl.runner, "run_experiment", full)
    assert cli.main(["run", "toy_sweep", "--quiet"]) == 74
    assert "/x/summary.csv: No space left on device" in capsys.readouterr().err


def test_run_dry_run_plot_and_outputs(tiny, tmp_path, capsys):
    """Catches the dry run's and the plot's exit 0 -> 1 / -1, the command's status lost in
    ``_dispatch``, and ``if not quiet`` negated for the 'wrote' lines."""
    out = tmp_path / "out"
    assert cli.main(["run", str(tiny), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "muttiny -> " in text and "4 cells, 0 finished" in text and text.count("  todo  ") == 4
    assert cli.main(["run", str(tiny), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "wrote" not in capsys.readouterr().err
    assert cli.main(["plot", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out / 'summary.csv'}" in err
    assert cli.main(["plot", str(out), "--quiet"]) == 0
    assert "wrote" not in capsys.readouterr().err


def test_no_command_prints_help_and_exits_0(capsys):
    assert cli.main([]) == 0
    assert "usage:" in capsys.readouterr().out


def test_main_reads_sys_argv_when_called_as_the_program(monkeypatch, capsys):
    """Catches ``argv is None`` -> ``is not None`` (then ``list(None)`` fails)."""
    import warnings

    monkeypatch.setattr(sys, "argv", ["robustrl", "list"])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    show = warnings.showwarning
    try:
        assert cli.main() == 0
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        warnings.showwarning = show
    assert "toy_sweep" in capsys.readouterr().out


def test_list_columns_and_cell_counts(capsys):
    """``robustrl list``: names padded to ``max(len(name), 10) + 2`` columns, then the
    description and ``points x seeds = cells``. Catches the width's ``+ 2`` / ``10`` and
    ``n_points * seeds`` -> ``/``."""
    from robustrl.runner import discover_experiments

    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    found, _ = discover_experiments()
    width = max([len(n) for n in found] + [10]) + 2
    exp = found["toy_sweep"]
    line = next(x for x in lines if x.startswith("toy_sweep "))
    cells = exp.n_points * exp.seeds
    assert line == (f"{'toy_sweep':<{width}}{exp.description}  [{exp.n_points} points x "
                    f"{exp.seeds} seeds = {cells} cells]")
    assert line[width - 1] == " " and line[width] != " "
    assert isinstance(cells, int) and f"= {cells} cells]" in line


def test_list_width_by_hand(capsys, monkeypatch):
    """Hand-computed: two experiments named 'a' and 'bb' -> width max(1, 2, 10) + 2 = 12, and
    3 points x 2 seeds = 6 cells."""
    from types import SimpleNamespace

    import robustrl.runner

    exp = SimpleNamespace(description="D", n_points=3, seeds=2, grid={}, ref=("module", "m"))
    monkeypatch.setattr(robustrl.runner, "discover_experiments",
                        lambda: ({"a": exp, "bb": exp}, {}))
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "a" + " " * 11 + "D  [3 points x 2 seeds = 6 cells]",
        "bb" + " " * 10 + "D  [3 points x 2 seeds = 6 cells]"]
    # -v adds the grid and the module under each line (catches the verbose test negated)
    exp.grid = {"x": [1, 2]}
    assert cli.main(["list", "-v"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "a" + " " * 11 + "D  [3 points x 2 seeds = 6 cells]",
        " " * 12 + "  x: [1, 2]", " " * 12 + "  module: m"]
    # nothing found: exit 1 with a message (catches ``if not found`` negated)
    monkeypatch.setattr(robustrl.runner, "discover_experiments", lambda: ({}, {}))
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == "no experiments found\n"


def test_envs_lists_classes_docs_and_grids(capsys, monkeypatch):
    """``robustrl envs``: ``id (Class): first doc line`` and the perturbation grid; an id whose
    extra is missing is listed with that extra. Catches the status lost (``return 0`` ->
    ``None``), the grid test flipped, ``__doc__ or ''`` -> ``and`` and the missing-extra test
    negated."""
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "robustrl/SimulatedLinearMDP-v0 (SimulatedLinearMDPEnv): " in out
    line = next(x for x in out.splitlines()
                if x.startswith("robustrl/SimulatedLinearMDP-v0 ("))
    from robustrl.envs import SimulatedLinearMDPEnv

    assert line.endswith(SimulatedLinearMDPEnv.__doc__.strip().splitlines()[0])
    assert "    perturbation: grid [" in out
    import robustrl._cli.install as install

    monkeypatch.setattr(install, "missing_extras",
                        lambda extras: {"minigrid": "dred"} if extras else {})
    assert cli.main(["envs"]) == 0
    cave = [x for x in capsys.readouterr().out.splitlines() if "CaveEscape" in x]
    why = install.extras_message("robustrl/CaveEscape-v0", {"minigrid": "dred"})
    assert cave == [f"robustrl/CaveEscape-v0: ({why})"]


def test_verify_bounds_dispatches_to_the_named_check(monkeypatch, capsys):
    """``robustrl verify-bounds NAME ARGS...`` calls the check with ``ARGS`` and exits with its
    status (``None`` is 0). Catches the leading-dash test dropped (the name is then never
    read) and the name read from the last argument."""
    monkeypatch.setattr(bounds, "_BOUND_CHECKS", {})
    seen = []
    bounds.register_bound_check("mutcheck", lambda argv: seen.append(argv) or 3,
                                description="test")
    bounds.register_bound_check("mutnone", lambda argv: None, description="test")
    assert cli.main(["verify-bounds", "mutcheck", "--a", "b"]) == 3
    assert seen == [["--a", "b"]]
    assert cli.main(["verify-bounds", "mutnone"]) == 0
    assert cli.main(["verify-bounds", "nosuch"]) == 2
    assert "unknown bound check 'nosuch'" in capsys.readouterr().err


def test_a_library_call_keeps_the_signal_handlers():
    """``main(argv)`` from a library (argv given) restores SIGINT/SIGTERM handlers; only the
    program (argv None) leaves them ignored. Catches ``console = argv is None`` flipped."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert cli.main(["list"]) == 0
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_an_interrupt_exits_130_and_a_library_call_gets_its_handlers_back(monkeypatch,
                                                                         capsys):
    """An interrupted run exits 130; the interrupt path ignores SIGINT/SIGTERM, and ``main``
    called from a library puts the caller's handlers back (catches the main-thread test
    flipped, which then saves none)."""
    import robustrl.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(robustrl.runner, "run_experiment", interrupted)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert cli.main(["run", "toy_sweep", "--quiet"]) == cli.EXIT_INTERRUPTED == 130
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, h in before.items():
            signal.signal(s, h)
    assert "robustrl: interrupted" in capsys.readouterr().err


def test_verify_bounds_list_and_help_go_to_stdout(capsys):
    """Catches ``argv[0] in (...)`` -> ``not in`` / ``argv[1]``: ``--list`` and ``-h`` print the
    registered checks on stdout and exit 0."""
    for flag in ("--list", "-l", "-h", "--help"):
        assert cli.main(["verify-bounds", flag]) == 0
        got = capsys.readouterr()
        assert got.out.startswith("registered bound checks") and "  r2pvi" in got.out


# --------------------------------------------------------------- bound-check registry
def test_register_bound_check_call_decorator_and_conflicts(monkeypatch):
    """Catches ``func is None`` flipped (call vs decorator form), the callable test dropped,
    and the re-registration test negated or flipped (same function again is fine, another one
    is refused)."""
    monkeypatch.setattr(bounds, "_BOUND_CHECKS", {})

    def first(argv):
        """First line of the doc.

        More."""
        return 0

    assert bounds.register_bound_check("mut1", first) is first
    assert bounds.bound_checks()["mut1"].description == "First line of the doc."

    @bounds.register_bound_check("mut2", description="D2")
    def second(argv):
        return None

    assert callable(second) and bounds.bound_checks()["mut2"].func is second
    assert bounds.bound_checks()["mut2"].description == "D2"  # given: not the (empty) doc
    assert bounds.register_bound_check("mut1", first) is first  # the same function again
    with pytest.raises(ValueError, match="already registered"):
        bounds.register_bound_check("mut1", second)
    with pytest.raises(ValueError, match="func must be callable"):
        bounds.register_bound_check("mut3", 5)
    with pytest.raises(ValueError, match="name must be"):
        bounds.register_bound_check("a b", first)


# -------------------------------------------------------------------------- install helpers
def test_install_helpers():
    """Catches ``packaged_configs``/``experiment_requirements``/``resolve_config_path``
    returning None, ``files / 'configs'`` -> ``*``, and the path-separator test of
    ``resolve_config_path`` weakened (``or`` -> ``and``, ``in`` -> ``not in``)."""
    names = packaged_configs()
    assert isinstance(names, list) and names == sorted(names) and names
    name = names[0]
    got = resolve_config_path(name)
    assert Path(got).name == f"{name}.yaml" and Path(got).is_file()
    assert resolve_config_path(f"{name}.yaml") == got
    for raw in (f"sub/{name}", f"sub\\{name}", "", "no_such_config_xyz"):
        assert resolve_config_path(raw) == raw
    assert experiment_requirements("no such") == {}
    assert experiment_requirements("toy_sweep") == {}
    assert experiment_requirements("neural_perturbed_control") == {
        "torch": "neural", "stable_baselines3": "neural"}


def test_load_results_reads_the_conditions_back(tmp_path):
    """A conditional sweep (``lam`` only for the methods that take it): 3 methods x 2 lam with
    ``lam`` conditional on two of them is 1 + 2 x 2 = 5 points, 10 cells with two seeds;
    ``load_results`` rebuilds the cells from the manifest's conditions (catches ``conditions or
    {}`` -> ``and``, which drops them and expands 6 unconditional points)."""
    path = tmp_path / "cond.py"
    path.write_text(textwrap.dedent('''
        NAME = "mutcond"
        GRID = {"method": ["base", "robust", "other"], "lam": [0.1, 0.2]}
        SEEDS = 2
        CONDITIONS = {"lam": {"method": ["robust", "other"]}}

        def run_one(params, seed):
            return {"lam": -1.0 if params["lam"] is None else params["lam"]}
    '''))
    out = tmp_path / "out"
    rep = run_experiment(path, out, workers=1, quiet=True)
    assert len(rep.cells) == 10 and rep.complete
    manifest, records = load_results(out)
    assert manifest["config"]["conditions"] == {"lam": {"method": ["robust", "other"]}}
    assert len(records) == 10
    assert sorted({(r["params"]["method"], r["params"]["lam"]) for r in records},
                  key=str) == sorted({("base", None), ("robust", 0.1), ("robust", 0.2),
                                      ("other", 0.1), ("other", 0.2)}, key=str)
