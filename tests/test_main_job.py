"""The README's main job (`make demo`: a small R2PVI Figure 1 through `robustrl run r2pvi_fig1`
with experiments/configs/demo_fig1.yaml), the exact_robust_values experiment and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from robustrl.cli import main as cli_main
from robustrl.runner import load_config_file, load_results

REPO = Path(__file__).resolve().parents[1]
ROBUSTRL = [sys.executable, "-m", "robustrl.cli"]
DEMO_CONFIG = REPO / "experiments" / "configs" / "demo_fig1.yaml"


def test_make_demo_runs_the_small_figure1_config():
    demo = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "robustrl run r2pvi_fig1 --config experiments/configs/demo_fig1.yaml" in demo
    cfg = load_config_file(DEMO_CONFIG)
    grid = cfg["grid"]
    # the paper's Figure 1 settings (arXiv:2411.18612 simulated MDP, docs/r2pvi-results.md), all
    # three divergences and PEVI
    assert {"pevi", "tv:0.1", "kl:0.1", "chi2:0.1"} <= set(grid["method"])
    assert (grid["K"], grid["episodes"], grid["beta"], grid["ridge"]) == (100, 100, 1.0, 0.1)
    # no fixed worker count: a pool does not pay on a job of a few seconds, and the runner's
    # default starts one only for a long sweep (robustrl.runner.backends._run_auto)
    assert cfg["seeds"] == 20 and "workers" not in cfg


def test_main_job_small_figure1_writes_table_results_and_plot(tmp_path):
    # the demo config with an even smaller grid (the full demo runs in well under a minute)
    out = subprocess.run(
        [*ROBUSTRL, "run", "r2pvi_fig1", "--config", str(DEMO_CONFIG), "--out", str(tmp_path),
         "--workers", "1", "--seeds", "2", "--set", "method=[pevi, 'tv:0.1', 'chi2:0.1']",
         "--set", "episodes=20"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    table = out.stdout.splitlines()
    assert any(line.startswith("PEVI") for line in table)
    assert any(line.startswith("R2PVI-TV, lambda=0.1") for line in table)
    assert (tmp_path / "r2pvi_fig1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the paper's figure replaces the per-metric ones (METRIC_FIGURES = False) ...
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())
    # ... and `robustrl plot DIR --metric-figures` draws them from the stored cells
    again = subprocess.run([*ROBUSTRL, "plot", str(tmp_path), "--metric-figures", "--quiet"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "figures" / "exact_return_q1.png").read_bytes()[:4] == b"\x89PNG"
    manifest, records = load_results(tmp_path)
    assert manifest["experiment"] == "r2pvi_fig1" and len(records) == 6
    assert {r["params"]["K"] for r in records} == {100}
    for rec in records:
        exact = rec["metrics"]["exact_return_vs_q"]
        assert len(exact) == 11 and np.all(np.diff(exact) <= 1e-12)


def test_exact_robust_values_through_the_runner_writes_table_results_and_plots(tmp_path):
    out = subprocess.run(
        [*ROBUSTRL, "run", "exact_robust_values", "--out", str(tmp_path), "--workers", "1",
         "--set", "policy=[non-robust, 'tv-ball:0.2', 'tv-ball:0.5', 'kl:0.1', 'chi2:1']"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    table = out.stdout.splitlines()
    assert any(line.startswith("non-robust") for line in table)
    assert any(line.startswith("TV ball, rho=0.5") for line in table)
    for png in ("exact_robust_values.png", "figures/objective_value.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "summary.csv").read_text().startswith("policy,n_seeds,first_action_mean")

    manifest, records = load_results(tmp_path)
    assert manifest["experiment"] == "exact_robust_values" and len(records) == 5
    curves = {r["params"]["policy"]: r["metrics"] for r in records}
    nonrobust = np.array(curves["non-robust"]["return_vs_q"])
    # q moves goal mass to the fail state, so every policy's return falls with q ...
    for c in curves.values():
        assert np.all(np.diff(c["return_vs_q"]) <= 1e-12)
        assert c["return_q1"] == c["return_vs_q"][-1]
    # A TV ball on the goal factor switches the first action once rho exceeds
    # rho* = 1 - 0.999 * V2(x2) / 2 = 1 - 0.999 * 1.24975 / 2 ~ 0.376, where 2(1 - rho) is the
    # goal factor's worst case: rho = 0.5 is better under the largest shift, worse at q = 0.
    cautious = np.array(curves["tv-ball:0.5"]["return_vs_q"])
    assert cautious[-1] > nonrobust[-1] + 0.4
    assert nonrobust[0] > cautious[0] + 0.2
    assert curves["tv-ball:0.5"]["first_action"] != curves["non-robust"]["first_action"]
    assert curves["tv-ball:0.2"]["return_vs_q"] == curves["non-robust"]["return_vs_q"]

    res = json.loads((tmp_path / "curves.json").read_text())
    # the robust value falls with rho, with a kink where the policy switches
    slopes = np.diff(res["robust_value_vs_rho"]) / np.diff(res["rho_curve"])
    assert np.all(slopes < 0) and slopes[0] < 2 * slopes[-1]
    # the optimal regularised robust value increases with lambda towards the non-robust value
    for vals in res["robust_value_vs_lam"].values():
        assert np.all(np.diff(vals) >= -1e-10)
        assert vals[-1] <= res["non_robust_value"] + 1e-10
    assert res["non_robust_value"] == curves["non-robust"]["objective_value"]


def test_experiment_script_delegates_to_the_runner(tmp_path):
    """`python experiments/exact_robust_values.py` still works (it is `robustrl run ...`)."""
    out = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "exact_robust_values.py"), "--out",
         str(tmp_path), "--workers", "1", "--quiet", "--set", "policy=non-robust"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "non-robust" in out.stdout and out.stderr == ""
    assert (tmp_path / "exact_robust_values.png").exists()


def test_exact_robust_values_rejects_a_malformed_policy(tmp_path, capsys):
    assert cli_main(["run", "exact_robust_values", "--out", str(tmp_path / "x"),
                     "--set", "policy=kl:-1"]) == 2
    assert "LAMBDA must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_version_and_envs(capsys):
    assert cli_main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "SimulatedLinearMDPEnv" in out and "AmericanPutEnv" in out
    try:
        cli_main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "robustrl" in capsys.readouterr().out
