"""The default local backend (no ``--workers``): a short sweep runs in the driver's process, a
long one hands its remaining cells to a pool, and the pool workers' peak memory is reported."""

from __future__ import annotations

import os
import textwrap

from robustrl.runner import backends, run_experiment
from robustrl.runner.config import RunConfig, load_experiment
from robustrl.runner.store import expand_cells

PIDS = textwrap.dedent(
    """
    import os
    NAME = "pids"
    GRID = {"x": [1, 2, 3, 4]}
    SEEDS = 2

    def run_one(params, seed):
        return {"pid": os.getpid()}
    """
)


def _write(tmp_path):
    path = tmp_path / "pids.py"
    path.write_text(PIDS)
    return path


def test_a_short_sweep_runs_in_the_driver_process(tmp_path):
    report = run_experiment(_write(tmp_path), tmp_path / "out", quiet=True)
    assert report.complete and report.ran == 8
    assert {r["metrics"]["pid"] for r in report.records} == {os.getpid()}
    assert report.worker_memory_mb == {}


def test_a_long_sweep_hands_the_rest_to_a_pool(tmp_path):
    """With the threshold at 0 s every cell after the two timed ones goes to the pool; the
    outcomes carry the worker's pid and peak memory."""
    exp = load_experiment(_write(tmp_path))
    cells = expand_cells(RunConfig(exp.name, {"x": [1, 2, 3, 4]}, 2, {}))
    outcomes = list(backends._run_auto(exp.ref, cells, 2, False, min_seconds=0.0))
    assert sorted(c.index for c, _ in outcomes) == [c.index for c in cells]
    pids = [o["metrics"]["pid"] for _, o in outcomes]
    assert pids[:2] == [os.getpid()] * 2
    assert os.getpid() not in pids[2:] and 1 <= len(set(pids[2:])) <= 2
    assert all(o["pid"] == o["metrics"]["pid"] and o["max_rss_mb"] > 10 for _, o in outcomes)


def test_one_cpu_never_starts_a_pool(tmp_path):
    exp = load_experiment(_write(tmp_path))
    cells = expand_cells(RunConfig(exp.name, {"x": [1, 2]}, 2, {}))
    outcomes = list(backends._run_auto(exp.ref, cells, 1, False, min_seconds=0.0))
    assert {o["metrics"]["pid"] for _, o in outcomes} == {os.getpid()}
