"""The README's main job and the console entry point."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from robustrl.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_main_job_writes_results_and_plot(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "exact_robust_values.py"),
         "--out", str(tmp_path), "--rhos", "0.2", "0.5", "--lams", "0.1", "1.0"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "non-robust" in out.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    png = tmp_path / "exact_robust_values.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = res["policies"]
    nonrobust = np.array(curves["non-robust"]["return_vs_q"])
    # q moves goal mass to the fail state, so every policy's return falls with q ...
    for c in curves.values():
        assert np.all(np.diff(c["return_vs_q"]) <= 1e-12)
    # A TV ball on the goal factor switches the first action once rho exceeds
    # rho* = 1 - 0.999 * V2(x2) / 2 = 1 - 0.999 * 1.24975 / 2 ~ 0.376, where 2(1 - rho) is the
    # goal factor's worst case: rho = 0.5 is better under the largest shift, worse at q = 0.
    cautious = np.array(curves["TV ball, rho=0.5"]["return_vs_q"])
    assert cautious[-1] > nonrobust[-1] + 0.4
    assert nonrobust[0] > cautious[0] + 0.2
    assert curves["TV ball, rho=0.2"]["return_vs_q"] == curves["non-robust"]["return_vs_q"]
    # the robust value falls with rho, with a kink where the policy switches
    slopes = np.diff(res["robust_value_vs_rho"]) / np.diff(res["rho_curve"])
    assert np.all(slopes < 0) and slopes[0] < 2 * slopes[-1]
    # the optimal regularised robust value increases with lambda towards the non-robust value
    for vals in res["robust_value_vs_lam"].values():
        assert np.all(np.diff(vals) >= -1e-10)
        assert vals[-1] <= res["non_robust_value"] + 1e-10


def test_cli_version_and_envs(capsys):
    assert cli_main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "SimulatedLinearMDPEnv" in out and "AmericanPutEnv" in out
    try:
        cli_main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "robustrl" in capsys.readouterr().out
