"""benchmarks/glow_kappa_sweep.py runs end to end at tiny sizes and shows the trade-off: a small
kappa solves the lock, the paper-equivalent kappa = 288 excludes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "glow_kappa_sweep.py"


def test_quick_sweep_prints_the_trade_off(capsys):
    spec = importlib.util.spec_from_file_location("glow_kappa_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.001")
            or line.startswith("| 288")}
    assert rows["0.001"][0] != "never" and rows["0.001"][1] == "2"  # solved; set shrunk
    assert rows["288"][0] == "never" and rows["288"][1] == "16"  # nothing excluded
    assert rows["288"][4] == "0 of 4"  # Q* never excluded at the wide radius
