"""DR-RPO experiments through the runner (tiny grids) and ``robustrl verify-bounds drrpo``."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl._cli import bounds
from robustrl._cli.verify_drrpo import verify_main
from robustrl.agents import DRLSVIUCB, DRRPO, LSVIUCB, run_regret_curve
from robustrl.envs import RandomLinearMDPEnv, SimulatedLinearMDPEnv
from robustrl.evaluation import evaluate_exact
from robustrl.exact import robust_value_iteration
from robustrl.experiments import drrpo_regret
from robustrl.runner import RunnerError, load_results, run_experiment


def _small(env: str, episodes: int, agents: str) -> list[str]:
    return [f"env=[{env}]", f"episodes={episodes}", f"agent={agents}"]


def test_regret_experiment_cells_are_exact_regret_curves(tmp_path):
    out = tmp_path / "regret"
    report = run_experiment(
        "drrpo_regret", out, sets=_small("simulated", 25, "[DR-RPO, DR-LSVI-UCB, LSVI-UCB]"),
        seeds=2, workers=1, quiet=True)
    assert report.complete and len(report.records) == 6 and not report.failures
    classes = {"DR-RPO": DRRPO, "DR-LSVI-UCB": DRLSVIUCB, "LSVI-UCB": LSVIUCB}
    for rec in report.records:
        m, p = rec["metrics"], rec["params"]
        cls, hyper = drrpo_regret.agent_spec(p)
        assert cls is classes[p["agent"]]
        # the cell's numbers are run_regret_curve's with the cell's seed
        curve = run_regret_curve(cls, SimulatedLinearMDPEnv, 25, seed=rec["seed"],
                                 hyperparams=hyper)
        ks = np.asarray(m["checkpoints"])
        assert ks[0] == 1 and ks[-1] == 25 and np.all(np.diff(ks) > 0)
        np.testing.assert_allclose(m["cumulative_regret"], curve.cumulative_regret[ks - 1],
                                   rtol=0, atol=1e-12)
        assert m["final_regret"] == pytest.approx(curve.cumulative_regret[-1], abs=1e-12)
        assert m["optimal_value"] == pytest.approx(curve.optimal_value, abs=1e-12)
    text = report.report_text
    assert "slope" in text and text.count("simulated") == 3
    assert (out / "drrpo_regret.png").stat().st_size > 0
    # rerunning reuses every cell
    again = run_experiment("drrpo_regret", out,
                           sets=_small("simulated", 25, "[DR-RPO, DR-LSVI-UCB, LSVI-UCB]"),
                           seeds=2, workers=1, quiet=True)
    assert again.ran == 0 and again.resumed == 6


def test_regret_experiment_on_the_random_mdp_and_slope_fits(tmp_path):
    report = run_experiment("drrpo_regret", tmp_path / "r",
                            sets=_small("random", 12, "[DR-LSVI-UCB]"), seeds=3, workers=1,
                            quiet=True)
    recs = report.records
    assert len(recs) == 3
    assert recs[0]["metrics"]["optimal_value"] == pytest.approx(
        robust_value_iteration(RandomLinearMDPEnv().model, divergence="tv", rho=0.3).value)
    fit = drrpo_regret.slope_fits(recs, start=2)
    assert fit is not None and fit.n_seeds == 3
    assert fit.episodes[0] >= 2 and fit.episodes[-1] == 12
    assert "random" in report.report_text


def test_robustness_experiment_evaluates_final_policies_exactly(tmp_path):
    report = run_experiment(
        "drrpo_robustness", tmp_path / "rob",
        sets=["env=[random]", "episodes=8", "agent=[DR-RPO, LSVI-UCB, optimal-nominal, "
              "optimal-robust]"], seeds=2, workers=1, quiet=True)
    assert report.complete and len(report.records) == 8
    grid = [float(q) for q in RandomLinearMDPEnv.perturbation_grid]

    def make(q=None):
        return RandomLinearMDPEnv(perturbation=q, seed=0)

    for rec in report.records:
        m, p = rec["metrics"], rec["params"]
        assert m["perturbations"] == grid
        if p["agent"] == "DR-RPO":
            agent = DRRPO(make(), seed=rec["seed"], rho=0.3, tau=0.1, eta=2.0, beta=1.0)
            agent.learn(total_episodes=8)
            want = evaluate_exact(agent.policy_table(make().model), make, grid).mean
            np.testing.assert_allclose(m["return_vs_q"], want, atol=1e-12)
        if p["agent"] == "optimal-nominal":
            assert m["return_q0"] == pytest.approx(robust_value_iteration(make().model).value)
        assert m["loss"] == pytest.approx(m["return_vs_q"][0] - m["return_vs_q"][-1])
    text = report.report_text
    assert "env = random" in text and "loss" in text and "LSVI-UCB" in text
    assert (tmp_path / "rob" / "drrpo_robustness.png").stat().st_size > 0
    _, records = load_results(tmp_path / "rob")
    assert len(records) == 8


@pytest.mark.parametrize("experiment, bad", [
    ("drrpo_regret", "env=[gridworld]"),
    ("drrpo_regret", "agent=[PPO]"),
    ("drrpo_regret", "rho=1.5"),
    ("drrpo_robustness", "agent=[PPO]"),
    ("drrpo_robustness", "tau=0.0"),
])
def test_bad_grid_points_are_refused_before_anything_is_written(tmp_path, experiment, bad):
    out = tmp_path / "bad"
    with pytest.raises(RunnerError):
        run_experiment(experiment, out, sets=[bad, "episodes=5"], seeds=1, workers=1,
                       quiet=True)
    assert not (out / "cells").exists()


def test_verify_bounds_is_registered():
    bounds.load_bound_checks()
    assert "drrpo" in bounds.bound_checks()
    assert bounds.bound_checks()["drrpo"].func is verify_main


def test_verify_bounds_quick_run_passes(capsys, tmp_path):
    assert verify_main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "log-log slope" in out and "PASS" in out and "bound(K)" in out
    assert "informative) only for K >= 528,925" in out and "bootstrap CI" in out
    import json

    blob = json.loads((tmp_path / "verify_drrpo.json").read_text())
    assert blob["passed"] and blob["informative_from"] == 528925 and len(blob["regret"]) == 5
    assert blob["slope_ci"][0] <= 0.5 and (tmp_path / "verify_drrpo.png").stat().st_size > 0


def test_verify_bounds_fails_with_a_tiny_bound_scale(capsys, tmp_path):
    assert verify_main(["--quick", "--constant", "1e-6", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "100% of the seeds exceed it" in out and "FAIL" in out


class _WrongSignDRRPO(DRRPO):
    """A deliberately broken DR-RPO: the bonus is subtracted (pessimism instead of optimism)."""

    def __init__(self, env, **kwargs):
        super().__init__(env, **kwargs)
        self.beta = -self.beta


def _wrong_sign_spec(params):
    cls, hyper = drrpo_regret.agent_spec(params)
    return _WrongSignDRRPO, hyper


@pytest.mark.parametrize("argv, spec", [
    # DR-RPO with the bonus's sign flipped (beta = 3): regret grows like K^0.6 late on
    (["--beta", "3"], _wrong_sign_spec),
    # optimism off in the greedy baseline: it locks onto a wrong action, slope about 1
    (["--agent", "LSVI-UCB", "--beta", "0"], None),
])
def test_verify_bounds_fails_for_a_broken_agent(capsys, tmp_path, argv, spec):
    base = ["--seeds", "4", "--episodes", "600", "--out", str(tmp_path)]
    assert verify_main(base + argv, agent_spec=spec) == 1
    out = capsys.readouterr().out
    assert "rate: CI LIES above the exponent 0.5" in out and "FAIL" in out
    # the same agents with the bonus as intended pass the same check
    fixed = [a for a in argv if a not in ("0", "--beta")] if spec is None else ["--beta", "3"]
    assert verify_main(base + fixed) == 0


@pytest.mark.parametrize("argv", [["--seeds", "1"], ["--rho", "2"], ["--episodes", "0"],
                                  ["--constant", "0"], ["--agent", "PPO"]])
def test_verify_bounds_bad_options_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        verify_main(argv)
    assert exc.value.code == 2
