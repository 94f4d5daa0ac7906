"""experiments/gpu/dred_h200.sh, the H200 plan of the DRED comparison, runs end to end on CPU
at the tiny scale (``--smoke``): machine facts, the throughput probe, the device choice, the
resumable sweep of two methods and the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robustrl.runner import load_results

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "gpu" / "dred_h200.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(args, out: Path, timeout: int = 600):
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=SCRIPT.parents[2], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_smoke_runs_the_plan_on_cpu(tmp_path):
    res = _run(["--smoke"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    probe = json.loads((tmp_path / "throughput_cpu.json").read_text())
    assert probe["steps_per_second"] > 0 and probe["scale"] == "tiny"
    assert not (tmp_path / "throughput_cuda.json").exists()  # --smoke probes the CPU only
    assert (tmp_path / "device.txt").read_text().startswith("device for the sweep: cpu")
    assert "cpus:" in (tmp_path / "machine.txt").read_text()
    _, records = load_results(tmp_path / "dred")
    assert sorted(r["params"]["method"] for r in records) == ["dred", "uniform"]
    report = (tmp_path / "report.txt").read_text()
    assert "DRED (VAE)" in report and "Uniform" in report and "total seconds" in report


def test_unknown_argument_is_refused(tmp_path):
    res = _run(["--fast"], tmp_path, timeout=60)
    assert res.returncode == 2 and "usage" in res.stderr
