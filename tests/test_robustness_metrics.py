import numpy as np
import pytest

from robustrl.agents import R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.evaluation import EvaluationResult, compare, robustness_metrics


def sim(q):
    return SimulatedLinearMDPEnv(perturbation=q)


def test_metrics_worked_by_hand():
    # grid 0, 0.5, 1 with two episodes each
    res = EvaluationResult(np.array([0.0, 0.5, 1.0]),
                           np.array([[2.0, 4.0], [1.0, 3.0], [0.0, 0.0]]))
    m = robustness_metrics(res, cvar_level=0.5)
    assert m["nominal"] == 3.0
    assert m["worst_case"] == 0.0
    # pooled sorted returns 0,0,1,2,3,4: the worst half is 0,0,1
    assert m["cvar"] == pytest.approx(1.0 / 3.0)
    # trapezoid of means (3, 2, 0) over width 1: 0.5*(3+2)/2 + 0.5*(2+0)/2 = 1.75
    assert m["auc"] == pytest.approx(1.75)
    rand = EvaluationResult(res.perturbations, np.zeros((3, 1)), exact=True)
    ref = EvaluationResult(res.perturbations, np.full((3, 1), 3.5), exact=True)
    m = robustness_metrics(res, random_result=rand, reference_result=ref)
    assert m["normalized"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cvar_level"):
        robustness_metrics(res, cvar_level=0.0)
    with pytest.raises(ValueError, match="together"):
        robustness_metrics(res, random_result=rand)
    other_grid = EvaluationResult(np.array([0.0, 0.2, 1.0]), np.zeros((3, 1)), exact=True)
    with pytest.raises(ValueError, match="same perturbation grid"):
        robustness_metrics(res, random_result=other_grid, reference_result=ref)


def test_sb3_and_robustrl_agent_paired_and_order_invariant(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    env = SimulatedLinearMDPEnv()
    ppo = sb3.PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                  device="cpu").learn(128)
    data = OfflineDataset.collect(SimulatedLinearMDPEnv(), 100, seed=0)
    r2pvi = R2PVI(SimulatedLinearMDPEnv(), divergence="tv", lam=0.1).fit(data)
    grid = [0.0, 0.5, 1.0]

    first = compare({"ppo": ppo, "r2pvi": r2pvi}, sim, grid, episodes=30, seed=3)
    second = compare({"r2pvi": r2pvi, "ppo": ppo}, sim, grid, episodes=30, seed=3)
    for name in ("ppo", "r2pvi"):
        np.testing.assert_array_equal(first.results[name].returns,
                                      second.results[name].returns)
        assert first.metrics[name] == second.metrics[name]
    # paired seeds: a policy evaluated alone gets the same numbers as inside a comparison
    alone = compare({"r2pvi": r2pvi}, sim, grid, episodes=30, seed=3)
    np.testing.assert_array_equal(alone.results["r2pvi"].returns,
                                  first.results["r2pvi"].returns)
    first.to_csv(tmp_path / "table.csv")
    first.to_json(tmp_path / "table.json")
    first.plot(tmp_path / "plot.png")
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0] == "policy,perturbation,mean,stderr,episodes" and len(lines) == 1 + 2 * 3
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_rejects_unknown_reference():
    with pytest.raises(ValueError, match="reference_policy"):
        compare({"a": lambda obs: 0}, sim, [0.0], episodes=1, random_policy="a",
                reference_policy="b")
    with pytest.raises(ValueError, match="policies"):
        compare({}, sim, [0.0], episodes=1)
