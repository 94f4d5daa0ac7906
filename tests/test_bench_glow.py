"""benchmarks/bench_glow.py runs end to end at tiny sizes, prints its table, and detects a
disagreement between kernel and reference. No timing assertions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_glow.py"
TINY = ["--functions", "20", "--weights", "20", "--transitions", "500"]


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_glow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_prints_table_and_outputs_agree(bench, capsys):
    assert bench.main(TINY) == 0
    out = capsys.readouterr().out
    assert "|F|=20 |W|=20 n=500" in out
    header = next(line for line in out.splitlines() if line.startswith("name"))
    for column in ("seconds", "evals/s", "ratio", "max abs diff"):
        assert column in header
    for row in ("reference glow_objective (1 call)", "kernel glow_objective (best of 3)",
                "kernel step_objective, statistics precomputed",
                "reference full_class_objective (1 call)",
                "kernel full_class_objective (best of 3)"):
        assert row in out
    assert "outputs agree" in out
    assert "MISMATCH" not in out


def test_rows_agree_to_rounding(bench):
    rows = bench.run(bench.parse_args(TINY + ["--repeats", "1"]))
    assert len(rows) == 5
    for name, seconds, rate, ratio, diff in rows:
        assert seconds > 0 and rate > 0 and ratio > 0, name
        assert diff <= 1e-10, name


def test_skip_full_class(bench, capsys):
    assert bench.main(TINY + ["--skip-full-class"]) == 0
    assert "full_class" not in capsys.readouterr().out


def test_mismatch_is_reported(bench, capsys, monkeypatch):
    real = bench.glow_kernels.glow_objective

    def off_by_a_bit(*args, **kwargs):
        return real(*args, **kwargs) + 1e-6

    monkeypatch.setattr(bench.glow_kernels, "glow_objective", off_by_a_bit)
    assert bench.main(TINY + ["--skip-full-class"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_problem_is_seeded_and_clip_binds(bench):
    args = bench.parse_args(TINY)
    a, b = bench.make_problem(args), bench.make_problem(args)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert np.isinf(a["W"]).any() and (a["W"][np.isfinite(a["W"])] > args.gamma).any()
    assert np.bincount(a["steps"]).min() == args.transitions // args.horizon


@pytest.mark.parametrize("bad", [["--functions", "0"], ["--transitions", "3"],
                                 ["--gamma", "0"], ["--alpha", "-1"]])
def test_bad_arguments_rejected(bench, bad):
    with pytest.raises(SystemExit):
        bench.parse_args(TINY + bad)
