"""`robustrl verify-bounds r2pvi` can fail: the bound at the expected Gram matrix, the size at
which the theorem's constants become informative, the poor-coverage instance where pessimism is
needed (beta = 0 fails, the default beta passes) and the rate verdict; the functions of
theory/r2pvi.py behind them against values worked out by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from robustrl.cli import main as cli_main
from robustrl.exact import robust_evaluate_policy, robust_value_iteration
from robustrl.theory import r2pvi as th

P_RISKY = 0.0015  # poor_coverage_instance's default behaviour probability of the risky action


# ------------------------------------------------------------------------------------------
# theory functions against hand values
# ------------------------------------------------------------------------------------------
def test_poor_coverage_instance_values_by_hand():
    model, behaviour = th.poor_coverage_instance(goal_probability=0.3)
    assert (model.horizon, model.n_states, model.n_actions, model.feature_dim) == (2, 4, 2, 5)
    # safe: mid (reward 0.5); risky: goal (1) w.p. 0.3 else fail (0); TV with lam = 1 >= the
    # value range leaves E[min(V, V_min + lam)] = E[V]
    star = robust_value_iteration(model, divergence="tv", lam=1.0)
    assert star.value == pytest.approx(0.5, abs=1e-12) and star.policy[0, 0] == 0
    risky = np.zeros((2, 4), dtype=np.int64)
    risky[0, 0] = 1
    value = robust_evaluate_policy(model, risky, divergence="tv", lam=1.0).value
    assert value == pytest.approx(0.3, abs=1e-12)
    assert behaviour[0, 0].tolist() == [1 - P_RISKY, P_RISKY]


def test_behaviour_gram_by_hand():
    model, behaviour = th.poor_coverage_instance(goal_probability=0.3, risky_probability=0.1)
    gram = th.behaviour_gram(model, behaviour)
    # step 1: x1 with certainty, e0 w.p. 0.9 (safe), e1 w.p. 0.1 (risky)
    np.testing.assert_allclose(gram[0], np.diag([0.9, 0.1, 0, 0, 0]), atol=1e-15)
    # step 2: mid (e4) w.p. 0.9, goal (e3) w.p. 0.1 * 0.3, fail (e2) w.p. 0.1 * 0.7
    np.testing.assert_allclose(gram[1], np.diag([0, 0, 0.07, 0.03, 0.9]), atol=1e-15)
    uniform = th.behaviour_gram(model)  # None: uniformly random actions
    np.testing.assert_allclose(uniform[0], np.diag([0.5, 0.5, 0, 0, 0]), atol=1e-15)
    np.testing.assert_allclose(uniform[1], np.diag([0, 0, 0.35, 0.15, 0.5]), atol=1e-15)


def test_population_bound_by_hand():
    model, behaviour = th.poor_coverage_instance()
    K, ridge = 1000, 0.1
    # pi* plays safe: e0 at step 1 (Lambda_00 = K (1 - p) + ridge), then mid's e4 at step 2
    # (Lambda_44 = K (1 - p) + ridge); Lambda is diagonal, so the coverage is 2 / sqrt(that)
    cov = 2.0 / np.sqrt(K * (1 - P_RISKY) + ridge)
    res = th.population_bound(model, "tv", 1.0, K, beta=1.0, ridge=ridge, behaviour=behaviour)
    assert res.coverages == pytest.approx([cov, cov], rel=1e-12)
    assert res.bound == pytest.approx(2 * cov, rel=1e-12)
    assert res.bound == pytest.approx(0.126580, abs=1e-6)  # 4 / sqrt(998.6)
    # theorem's beta, TV: 16 H d sqrt(log(2 d H K / delta)) = 160 sqrt(log(400 K))
    thm = th.population_bound(model, "tv", 1.0, K, ridge=ridge, behaviour=behaviour)
    assert thm.beta == pytest.approx(160 * np.sqrt(np.log(400 * K)), rel=1e-12)
    assert thm.bound == pytest.approx(2 * thm.beta * cov, rel=1e-12)


def test_informative_size_is_the_first_k_below_h_by_hand():
    model, behaviour = th.poor_coverage_instance()

    def bound(k):  # the hand form of test_population_bound_by_hand with the theorem's beta
        return 2 * 160 * np.sqrt(np.log(400 * k)) * 2 / np.sqrt(k * (1 - P_RISKY) + 0.1)

    k_star = th.informative_size(model, "tv", 1.0, behaviour=behaviour)
    assert bound(k_star) < 2.0 <= bound(k_star - 1)
    assert 2.0e6 < k_star < 2.2e6
    # a looser threshold is reached sooner, and an unreachable size limit gives None
    assert th.informative_size(model, "tv", 1.0, behaviour=behaviour, threshold=20.0) < k_star
    assert th.informative_size(model, "tv", 1.0, behaviour=behaviour, max_size=10**6) is None


def test_rate_contradicts_only_from_above():
    def fit(low, high):
        return th.LogLogFit(0.5 * (low + high), low, high, 0.0, np.ones(3, bool))

    assert th.rate_contradicts(fit(-0.4, 0.2))  # decays more slowly than K^-1/2
    assert not th.rate_contradicts(fit(-0.6, 0.2))  # CI holds -1/2
    assert not th.rate_contradicts(fit(-1.5, -0.9))  # faster than the bound: allowed
    assert not th.rate_contradicts(fit(float("nan"), float("nan")))
    assert th.rate_contradicts(fit(-0.9, -0.8), exponent=-1.0)


def test_bad_inputs_name_the_argument():
    model, behaviour = th.poor_coverage_instance()
    with pytest.raises(ValueError, match="goal_probability"):
        th.poor_coverage_instance(goal_probability=0.5)
    with pytest.raises(ValueError, match="risky_probability"):
        th.poor_coverage_instance(risky_probability=0.0)
    with pytest.raises(ValueError, match="behaviour"):
        th.behaviour_gram(model, np.full((2, 4, 2), 0.4))
    with pytest.raises(ValueError, match="instance"):
        th.make_instance("nope")
    with pytest.raises(ValueError, match="threshold"):
        th.informative_size(model, "tv", 1.0, threshold=0.0)


# ------------------------------------------------------------------------------------------
# the command line: fails for beta = 0 where pessimism is needed, passes for the default
# ------------------------------------------------------------------------------------------
def _run(capsys, tmp_path, *args):
    code = cli_main(["verify-bounds", "r2pvi", "--quiet", "--out", str(tmp_path), *args])
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "r2pvi_bounds.json").read_text())
    assert (tmp_path / "r2pvi_bounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return code, out, record


def test_beta_zero_fails_where_pessimism_is_needed(capsys, tmp_path):
    code, out, record = _run(capsys, tmp_path, "--instance", "poor-coverage", "--beta", "0")
    assert code == 1, out
    assert "FAIL: more than delta=0.05 of the seeds exceed the bound (beta=0)" in out
    # the rate fails too: without pessimism the suboptimality grows with K at these sizes
    assert "FAIL: the slope's CI" in out and record["slope"]["contradicts"]
    assert record["slope"]["low"] > -0.5
    sub = np.array(record["suboptimality"])
    assert sub.mean(axis=0)[-1] > sub.mean(axis=0)[0] > 0


def test_beta_zero_exceeds_the_bound_the_default_agent_satisfies(capsys, tmp_path):
    # not only the (zero) bound of beta = 0: beta = 0 also breaks the bound with beta = 1
    code, out, record = _run(capsys, tmp_path, "--instance", "poor-coverage", "--beta", "0",
                             "--bound-beta", "1")
    assert code == 1, out
    assert "exceed the bound (beta=1) at K = 500, 1000, 2000" in out
    assert max(record["fraction_above_bound"]) > 0.05


def test_default_agent_passes_where_pessimism_is_needed(capsys, tmp_path):
    code, out, record = _run(capsys, tmp_path, "--instance", "poor-coverage")
    assert code == 0, out
    assert "OK:" in out and max(record["fraction_above_bound"]) <= 0.05
    model, behaviour = th.poor_coverage_instance()
    assert record["informative_K"] == th.informative_size(model, "tv", 1.0, behaviour=behaviour)
    assert f"falls below the trivial bound H=2 at K = {record['informative_K']:.3g}" in out


def test_simulated_default_prints_the_informative_size(capsys, tmp_path):
    code, out, record = _run(capsys, tmp_path, "--K", "20,50,100,200", "--seeds", "10")
    assert code == 0, out
    # chi2, lambda = 0.1: the theorem's constants need ~1e10 trajectories on this MDP
    assert 1e9 < record["informative_K"] < 1e11
    assert "falls below the trivial bound H=3" in out
    assert np.all(np.array(record["theorem_bound"]) > 3)  # vacuous at every size run
    assert record["sources"]["beta"].startswith("arXiv:2411.18612")


def test_docs_r2pvi_results_python_block_runs(capsys):
    """The ```python block of docs/r2pvi-results.md (Theory section) runs and prints what its
    comments say."""
    page = Path(__file__).resolve().parents[1] / "docs" / "r2pvi-results.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                        flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(page), "exec"), {"__name__": "__docs__"})
    bound, k_star = capsys.readouterr().out.split()
    assert float(bound) == pytest.approx(4 / np.sqrt(1000 * (1 - P_RISKY) + 0.1), abs=1e-4)
    assert 2.0e6 < int(k_star) < 2.2e6


def test_bad_cli_arguments_exit_2(capsys, tmp_path):
    base = ["verify-bounds", "r2pvi", "--quiet", "--out", str(tmp_path), "--K", "20,50"]
    assert cli_main([*base, "--bound-beta", "-1"]) == 2
    assert "--bound-beta must be >= 0" in capsys.readouterr().err
    assert cli_main([*base, "--instance", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r2pvi_bounds.json").exists()
