"""benchmarks/bench_neural.py runs end to end at tiny sizes on CPU and prints its table.
No timing assertions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_neural.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_neural", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_prints_a_row_per_agent_and_size(bench, capsys):
    args = ["--quick", "--device", "cpu", "--sizes", "16", "64", "--hidden", "32", "32",
            "--min-time", "0.05", "--warmup", "1", "--threads", "1"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("agent"))
    for column in ("device", "batch", "steps/s", "samples/s"):
        assert column in header
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("NeuralR2PVI", "NeuralDRRPO"))]
    assert sorted((r[0], int(r[-3])) for r in rows) == [
        ("NeuralDRRPO", 16), ("NeuralDRRPO", 64), ("NeuralR2PVI", 16), ("NeuralR2PVI", 64)]
    for r in rows:
        steps, samples = float(r[-2]), float(r[-1])
        assert steps > 0 and samples > 0
        assert samples == pytest.approx(steps * int(r[-3]), rel=0.01)


def test_cuda_request_without_cuda_is_refused(bench):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(SystemExit, match="CUDA"):
        bench.main(["--device", "cuda"])


def test_loop_comparison_rows(bench, capsys):
    args = ["--device", "cpu", "--sizes", "16", "--hidden", "16", "--min-time", "0.02",
            "--warmup", "1", "--threads", "1", "--loop"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("loop-of-E") for line in out.splitlines()) == 1
