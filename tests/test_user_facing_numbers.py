"""Hand-computed values for the numbers users read first.

Every expected value below is worked out by hand (the arithmetic is in the comments) on inputs
chosen so that the plausible bug named in each docstring changes the answer: non-monotone
return curves, sizes where ``level * N`` is not whole, temperatures other than 1, exponents of
H other than 1, three seeds for Student-t intervals. Each docstring records the bug that was
injected by hand into the library code and made the test fail (then reverted).
"""

from __future__ import annotations

import math
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from test_offline_agents import TableEnv

from robustrl.agents import DRPVI, DRVI_L, PEVI, R2PVI
from robustrl.agents.dred.level_buffer import LevelBuffer, rank_weights, staleness_weights
from robustrl.data import OfflineDataset
from robustrl.evaluation import (
    EvaluationResult,
    compare,
    evaluate,
    evaluate_exact,
    robustness_metrics,
)
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.runner.report import mean_ci, summarize
from robustrl.theory import coverability, drrpo, glow, r2pvi

# Student-t quantiles t_{0.975, df} from the standard table (scipy.stats.t.ppf(0.975, df)).
T975 = {1: 12.706204736174707, 2: 4.302652729911275, 3: 3.182446305284263,
        4: 2.7764451051977987, 9: 2.2621571627409915}


# ------------------------------------------------------------------------------------------
# robustness metrics (robustrl/evaluation.py)
# ------------------------------------------------------------------------------------------
def _result(grid, returns):
    return EvaluationResult(np.asarray(grid, dtype=float), np.asarray(returns, dtype=float))


# A non-monotone curve: the worst grid point is in the middle, the last point is not the worst.
# grid 0, 0.25, 0.5, 1 (uneven), 3 episodes per level (N = 12 pooled returns)
NON_MONOTONE = _result([0.0, 0.25, 0.5, 1.0],
                       [[5.0, 7.0, 6.0],    # mean 6
                        [1.0, 3.0, 2.0],    # mean 2  <- worst
                        [4.0, 4.0, 7.0],    # mean 5
                        [3.0, 5.0, 4.0]])   # mean 4  (last point)


def test_worst_case_and_nominal_on_a_non_monotone_curve():
    """worst_case = min over the grid (2.0 at p = 0.25), not the last point (4.0) nor the
    first; nominal = the first grid point's mean (6.0). Fails with ``mean[-1]`` for the worst
    case (gives 4.0) and with ``mean.min()`` for nominal."""
    m = robustness_metrics(NON_MONOTONE)
    assert m["worst_case"] == 2.0
    assert m["nominal"] == 6.0


@pytest.mark.parametrize(("level", "want"), [
    # pooled sorted: 1 2 3 3 4 4 4 5 5 6 7 7 (N = 12)
    (0.1, 1.5),                       # 1.2 episodes -> ceil 2: (1+2)/2
    (0.2, 2.0),                       # 2.4 -> 3 episodes: (1+2+3)/3 = 2
    (0.3, 9.0 / 4.0),                 # 3.6 -> 4: (1+2+3+3)/4 = 9/4
    (0.5, 17.0 / 6.0),                # 6 (whole) -> (1+2+3+3+4+4)/6 = 17/6
    (0.05, 1.0),                      # 0.6 -> 1 episode: 1
    (1.0, 51.0 / 12.0),               # everything: 51/12
])
def test_cvar_tail_size_is_the_ceiling_of_level_times_n(level, want):
    """CVaR = mean of the worst ceil(level * N) pooled returns (N = 12, level * N not whole at
    0.1, 0.2, 0.3, 0.05). Fails with ``floor`` or ``round`` instead of ``ceil`` (a tail one
    episode short at 0.1, 0.2, 0.3) and with an unsorted or descending pool."""
    assert robustness_metrics(NON_MONOTONE, cvar_level=level)["cvar"] == pytest.approx(
        want, rel=1e-12)


def test_cvar_of_exact_results_is_over_grid_point_values():
    """Exact results: CVaR pools the P grid-point values (P = 5, level 0.3: ceil(1.5) = 2
    values). Fails with a tail of 1 (floor) or 3."""
    res = EvaluationResult(np.arange(5.0), np.array([[3.0], [0.5], [2.0], [-1.0], [4.0]]),
                           exact=True)
    assert robustness_metrics(res, cvar_level=0.3)["cvar"] == pytest.approx((-1.0 + 0.5) / 2)


def test_normalised_auc_on_an_uneven_grid():
    """Trapezoid over the uneven grid 0, .25, .5, 1 of means 6, 2, 5, 4, divided by the width 1:
    .25 (6+2)/2 + .25 (2+5)/2 + .5 (5+4)/2 = 1 + .875 + 2.25 = 4.125. Fails with the plain
    mean of the means (4.25), with unit spacing ((4 + 3.5 + 4.5) / 3 = 4.0), or without
    sorting the grid (the shuffled copy)."""
    assert robustness_metrics(NON_MONOTONE)["auc"] == pytest.approx(4.125, rel=1e-12)
    shuffled = _result([0.5, 0.0, 1.0, 0.25], NON_MONOTONE.returns[[2, 0, 3, 1]])
    assert robustness_metrics(shuffled)["auc"] == pytest.approx(4.125, rel=1e-12)
    # one grid point or a non-numeric grid: the plain mean of the means
    single = _result([0.3], [[1.0, 2.0]])
    assert robustness_metrics(single)["auc"] == 1.5
    # grid 1, 2, 4 (width 3, not starting at 0): (1 (4 + 0) / 2 + 2 (0 + 2) / 2) / 3 = 4/3
    wide = _result([1.0, 2.0, 4.0], [[4.0], [0.0], [2.0]])
    assert robustness_metrics(wide)["auc"] == pytest.approx(4.0 / 3.0, rel=1e-12)
    flat = _result([0.3, 0.3], [[1.0], [4.0]])  # zero width: the plain mean, not 0/0
    assert robustness_metrics(flat)["auc"] == 2.5
    named = EvaluationResult(np.array(["a", "b"], dtype=object), np.array([[1.0], [4.0]]))
    assert robustness_metrics(named)["auc"] == 2.5


def test_normalised_score_by_hand():
    """(auc - auc_random) / (auc_reference - auc_random) = (4.125 - 1) / (6 - 1) = 0.625, with
    the random and reference curves themselves non-monotone (auc_random: means 0, 2, 0, 2 ->
    .25 + .25 + .5 = 1; auc_reference: 8, 4, 8, 4 -> 1.5 + 1.5 + 3 = 6). Fails when the two
    are swapped (0.375) or the denominator is auc_reference alone (0.52)."""
    rand = _result(NON_MONOTONE.perturbations, [[0.0], [2.0], [0.0], [2.0]])
    ref = _result(NON_MONOTONE.perturbations, [[8.0], [4.0], [8.0], [4.0]])
    m = robustness_metrics(NON_MONOTONE, random_result=rand, reference_result=ref)
    assert m["normalized"] == pytest.approx(0.625, rel=1e-12)
    same = _result(NON_MONOTONE.perturbations, [[1.0], [1.0], [1.0], [1.0]])
    with pytest.raises(ValueError, match="same AUC"):
        robustness_metrics(NON_MONOTONE, random_result=same, reference_result=same)


def test_mean_std_stderr_of_a_result():
    """Sample std (ddof = 1) and stderr = std / sqrt(episodes), by hand: returns 1, 3, 5 ->
    mean 3, std 2, stderr 2 / sqrt 3 (2 levels, 3 episodes, so sqrt(P) would differ). Fails
    with ddof = 0 (std sqrt(8/3)) or stderr over P instead of N; one episode gives std 0."""
    res = _result([0.0, 1.0], [[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(res.mean, [3.0, 2.0])
    np.testing.assert_allclose(res.std, [2.0, 0.0])
    np.testing.assert_allclose(res.stderr, [2.0 / math.sqrt(3.0), 0.0])
    d = res.to_dict()
    assert d["episodes"] == 3 and d["mean"] == [3.0, 2.0]
    assert d["stderr"] == pytest.approx([2.0 / math.sqrt(3.0), 0.0])
    assert d["exact"] is False and d["perturbations"] == [0.0, 1.0]
    two = _result([0.0, 1.0], [[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(two.std, [math.sqrt(2.0), 0.0])
    one = _result([0.0, 1.0], [[1.0], [2.0]])
    np.testing.assert_array_equal(one.std, [0.0, 0.0])


class _CoinEnv(gym.Env):
    """Two steps; each reward is a uniform draw from the env's own random stream (the
    perturbation is ignored), so the returns show which stream each level used."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(1,))
    action_space = spaces.Discrete(2)

    def __init__(self, perturbation=0.0):
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, dtype=np.float32), float(self.np_random.random()), self.t >= 2, \
            False, {}


def _coin_returns(env_seed: int, episodes: int) -> np.ndarray:
    env = _CoinEnv()
    out = []
    for e in range(episodes):
        env.reset(seed=env_seed if e == 0 else None)
        out.append(sum(env.step(0)[1] for _ in range(2)))
    return np.array(out)


def test_evaluate_uses_one_random_stream_per_level():
    """Level j's environment is reset once with ``SeedSequence(seed).spawn(P)[j]``'s first word
    (the documented derivation), episodes continue that stream, and equal levels still get
    different streams. Fails when every level reuses one seed (rows 0 and 1 equal) and when
    every episode is reset with the same seed (equal columns)."""
    grid = [0.0, 0.0, 0.5]
    res = evaluate(lambda obs: 0, _CoinEnv, grid, episodes=4, seed=11)
    seeds = np.random.SeedSequence(11).spawn(3)
    for j in range(3):
        np.testing.assert_array_equal(res.returns[j],
                                      _coin_returns(int(seeds[j].generate_state(2)[0]), 4))
    assert not np.array_equal(res.returns[0], res.returns[1])
    assert len(np.unique(res.returns[0])) == 4
    assert not res.exact and res.info == {"seed": 11, "episodes": 4}
    again = evaluate(lambda obs: 0, _CoinEnv, grid, episodes=4, seed=11)
    np.testing.assert_array_equal(again.returns, res.returns)
    other = evaluate(lambda obs: 0, _CoinEnv, grid, episodes=4, seed=12)
    assert not np.array_equal(other.returns, res.returns)


def test_compare_pairs_policies_per_level_and_levels_differ():
    """compare: every policy sees the same stream at a level (identical returns for policies
    that ignore the observation), levels get different streams, and the metrics are those of
    :func:`robustness_metrics` on each result. Fails with one shared stream for all levels."""
    comp = compare({"a": lambda obs: 0, "b": lambda obs: 1}, _CoinEnv, [0.0, 0.0],
                   episodes=3, seed=5, cvar_level=0.5)
    np.testing.assert_array_equal(comp.results["a"].returns, comp.results["b"].returns)
    assert not np.array_equal(comp.results["a"].returns[0], comp.results["a"].returns[1])
    assert comp.metrics["a"] == robustness_metrics(comp.results["a"], cvar_level=0.5)
    rows = comp.rows()
    assert len(rows) == 4 and rows[0]["episodes"] == 3 and rows[0]["policy"] == "a"
    assert [r["perturbation"] for r in rows] == [0.0, 0.0, 0.0, 0.0]
    assert type(rows[0]["perturbation"]) is float and rows[2]["policy"] == "b"
    assert rows[1]["stderr"] == pytest.approx(comp.results["a"].stderr[1])
    assert rows[1]["mean"] == pytest.approx(comp.results["a"].mean[1])


def test_evaluate_defaults_and_environment_forms(capsys):
    """Defaults: 100 episodes, seed 0, no progress output. A registered id, a class and a
    callable give the same numbers at each level. Fails with another default episode count or
    seed, with the progress bar on by default, or when an id or class is treated as a
    callable (or the reverse)."""
    res = evaluate(lambda obs: 0, _CoinEnv, [0.0])
    assert res.returns.shape == (1, 100) and res.info == {"seed": 0, "episodes": 100}
    np.testing.assert_array_equal(res.returns,
                                  evaluate(lambda obs: 0, _CoinEnv, [0.0], 100, 0).returns)
    assert capsys.readouterr().err == ""
    from robustrl.envs import SIMULATED_LINEAR_MDP_ID, SimulatedLinearMDPEnv

    grid = [0.0, 0.6]
    by_id = evaluate(lambda obs: 1, SIMULATED_LINEAR_MDP_ID, grid, episodes=3, seed=2)
    by_class = evaluate(lambda obs: 1, SimulatedLinearMDPEnv, grid, episodes=3, seed=2)
    by_call = evaluate(lambda obs: 1, lambda q: SimulatedLinearMDPEnv(perturbation=q), grid,
                       episodes=3, seed=2)
    np.testing.assert_array_equal(by_id.returns, by_class.returns)
    np.testing.assert_array_equal(by_call.returns, by_class.returns)
    with pytest.raises(ValueError, match="env_factory"):
        evaluate(lambda obs: 0, 3, grid, episodes=1)


def test_compare_defaults_and_argument_checks(capsys):
    """compare's defaults match evaluate's (100 episodes, seed 0, no progress output) and
    robustness_metrics' (cvar_level .1); a random policy without a reference (or the reverse)
    is an error; results are frozen. Fails with another default or a missing check."""
    comp = compare({"a": lambda obs: 0}, _CoinEnv, [0.0, 0.5])
    res = comp.results["a"]
    np.testing.assert_array_equal(res.returns,
                                  evaluate(lambda obs: 0, _CoinEnv, [0.0, 0.5], 100, 0).returns)
    assert comp.metrics["a"] == robustness_metrics(res, cvar_level=0.1)
    assert comp.metrics["a"]["cvar"] == pytest.approx(np.sort(res.returns.ravel())[:20].mean())
    assert capsys.readouterr().err == ""
    for kw in ({"random_policy": "a"}, {"reference_policy": "a"}):
        with pytest.raises(ValueError, match="together"):
            compare({"a": lambda obs: 0}, _CoinEnv, [0.0], episodes=1, **kw)
    assert "normalized" not in comp.metrics["a"]
    with pytest.raises(ValueError, match="same AUC"):  # both ignore obs: equal curves
        compare({"a": lambda obs: 0, "b": lambda obs: 1}, _CoinEnv, [0.0, 1.0], episodes=2,
                random_policy="a", reference_policy="b")
    with pytest.raises(AttributeError):
        res.returns = None  # frozen dataclasses
    with pytest.raises(AttributeError):
        comp.metrics = {}
    for level in (0.0, 1.01):
        with pytest.raises(ValueError, match="cvar_level"):
            robustness_metrics(res, cvar_level=level)


class _TinyFiniteEnv(gym.Env):
    """Exposes a FiniteMDP as ``model`` (all evaluate_exact needs). H = 2, S = 2, A = 2, start
    in state 0. Step 0 in state 0: action 0 pays 1 and moves to state 1, action 1 pays 0 and
    stays. Step 1: state 0 pays (2, 0), state 1 pays (0, 5)."""

    observation_space = spaces.MultiDiscrete([2, 3])
    action_space = spaces.Discrete(2)

    def __init__(self, perturbation=0.0):
        P = np.zeros((2, 2, 2, 2))
        P[:, :, :, 0] = 1.0
        P[0, 0, 0] = [0.0, 1.0]
        R = np.zeros((2, 2, 2))
        R[0, 0] = [1.0, 0.0]
        R[1, 0] = [2.0, 0.0]
        R[1, 1] = [0.0, 5.0]
        self.model = FiniteMDP(P=P, R=R, initial_distribution=np.array([1.0, 0.0]))


def test_evaluate_exact_with_policy_tables_by_hand():
    """(H, S) table (0, 0 / 0, 1): 1 + 5 = 6; (0, 0 / 0, 0): 1 + 0 = 1. (H, S, A) table:
    step 1 plays (1, 0) in state 0 (value 2) and (.2, .8) in state 1 (value 4); step 0 plays
    (.5, .5): .5 (1 + 4) + .5 (0 + 2) = 3.5. A callable gives its table's value. Fails when a
    table is not passed through as it is."""
    grid = [0.0, 1.0]
    res = evaluate_exact(np.array([[0, 0], [0, 1]]), _TinyFiniteEnv, grid)
    assert res.exact and res.returns.shape == (2, 1)
    np.testing.assert_allclose(res.returns[:, 0], [6.0, 6.0])
    np.testing.assert_allclose(
        evaluate_exact(np.array([[0, 0], [0, 0]]), _TinyFiniteEnv, grid).returns[:, 0], [1, 1])
    probs = np.array([[[0.5, 0.5], [1.0, 0.0]], [[1.0, 0.0], [0.2, 0.8]]])
    np.testing.assert_allclose(evaluate_exact(probs, _TinyFiniteEnv, [0.0]).returns, [[3.5]])
    by_fn = evaluate_exact(lambda obs: int(obs[0] == 1 and obs[1] == 1), _TinyFiniteEnv, [0.0])
    np.testing.assert_allclose(by_fn.returns, [[6.0]])
    np.testing.assert_array_equal(by_fn.stderr, [0.0])


# ------------------------------------------------------------------------------------------
# confidence intervals of the runner's summaries (robustrl/runner/report.py)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "mean", "var", "df"), [
    ([4.0, 8.0], 6.0, 8.0, 1),                  # ((-2)^2 + 2^2) / 1 = 8
    ([1.0, 2.0, 6.0], 3.0, 7.0, 2),             # (4 + 1 + 9) / 2 = 7
    ([2.0, 2.0, 3.0, 5.0], 3.0, 2.0, 3),        # (1 + 1 + 0 + 4) / 3 = 2
    ([0.0, 1.0, 2.0, 3.0, 4.0], 2.0, 2.5, 4),   # (4 + 1 + 0 + 1 + 4) / 4 = 2.5
    (list(range(10)), 4.5, 82.5 / 9.0, 9),      # sum (i - 4.5)^2 = 82.5
])
def test_mean_ci_is_student_t_with_n_minus_one_degrees_of_freedom(values, mean, var, df):
    """half-width = t_{0.975, n-1} s / sqrt(n), t from the table. Fails with df = n (26% too
    narrow at 3 seeds: 3.18 vs 4.30), with the normal 1.96, or with ddof = 0."""
    n = len(values)
    got = mean_ci(values)
    assert got[0] == pytest.approx(mean, rel=1e-12)
    assert got[1] == pytest.approx(math.sqrt(var), rel=1e-12)
    assert got[2] == pytest.approx(T975[df] * math.sqrt(var) / math.sqrt(n), rel=1e-9)


def test_mean_ci_edge_sizes_and_summary_rows():
    """One value: mean, NaN, NaN; none: NaN x 3. summarize() reports n_seeds and the same
    mean/std/ci95 per params group (3 seeds of x = 1: 1, 2, 6)."""
    assert mean_ci([5.0])[0] == 5.0 and all(math.isnan(v) for v in mean_ci([5.0])[1:])
    assert all(math.isnan(v) for v in mean_ci([]))
    recs = [{"params": {"x": 1}, "seed_index": i, "seed": i, "metrics": {"y": y, "flag": True},
             "wall_time_s": 0.0} for i, y in enumerate([1.0, 2.0, 6.0])]
    recs.append({"params": {"x": 2}, "seed_index": 0, "seed": 0,
                 "metrics": {"y": 4.0, "flag": False}, "wall_time_s": 0.0})
    header, rows = summarize(recs, ["x"])
    assert header == ["x", "n_seeds", "flag_mean", "flag_std", "flag_ci95", "y_mean", "y_std",
                      "y_ci95"]
    assert rows[0][:2] == [1, 3] and rows[0][2] == 1.0
    assert rows[0][5:] == pytest.approx([3.0, math.sqrt(7.0), T975[2] * math.sqrt(7.0 / 3.0)],
                                        rel=1e-9)
    assert rows[1][:2] == [2, 1] and rows[1][5] == 4.0 and math.isnan(rows[1][7])


# ------------------------------------------------------------------------------------------
# theory: bounds and rates against values worked out by hand
# ------------------------------------------------------------------------------------------
# d = 2, H = 3, K = 10, delta = 0.05: xi = log(2 * 2 * 3 * 10 / 0.05) = log 2400
XI = math.log(2400.0)  # 7.783224016336037


def test_r2pvi_log_factor_and_beta_by_hand():
    """TV 16 H d sqrt(xi) = 96 sqrt(xi); KL (lam = .5) 16 d lam e^{H/lam} sqrt(H/lam + xi) =
    16 e^6 sqrt(6 + xi); chi2 8 d H^2 (1 + 1/lam) sqrt(xi) = 432 sqrt(xi). Fails with H^1 in
    chi2 or H^2 in TV, or e^{lam/H} in KL."""
    assert r2pvi.log_factor(2, 3, 10, 0.05) == pytest.approx(7.783224016336037, rel=1e-12)
    np.testing.assert_allclose(r2pvi.log_factor(2, 3, np.array([10, 20])),
                               [XI, math.log(4800.0)], rtol=1e-12)
    assert r2pvi.theoretical_beta("tv", 2, 3, 10, 0.5) == pytest.approx(
        96.0 * math.sqrt(XI), rel=1e-12)  # 267.83...
    assert r2pvi.theoretical_beta("kl", 2, 3, 10, 0.5) == pytest.approx(
        16.0 * math.exp(6.0) * math.sqrt(6.0 + XI), rel=1e-12)
    assert r2pvi.theoretical_beta("chi2", 2, 3, 10, 0.5) == pytest.approx(
        432.0 * math.sqrt(XI), rel=1e-12)


def test_r2pvi_instance_independent_rates_by_hand():
    """TV d^2 H^2 = 36, KL sqrt(lam) e^{H/lam} d^2 H^{3/2} = sqrt(.5) e^6 4 3^{1.5},
    chi2 d^2 H^3 (1 + 1/lam) = 4 27 3 = 324, each times sqrt(xi / K). Fails with a wrong
    exponent of H in any of them (e.g. H^3 for TV: 108 instead of 36)."""
    root = math.sqrt(XI / 10.0)  # 0.88223...
    assert r2pvi.instance_independent_rate("tv", 2, 3, 10, 0.5) == pytest.approx(
        36.0 * root, rel=1e-12)
    assert r2pvi.instance_independent_rate("kl", 2, 3, 10, 0.5) == pytest.approx(
        math.sqrt(0.5) * math.exp(6.0) * 4.0 * 3.0**1.5 * root, rel=1e-12)
    assert r2pvi.instance_independent_rate("chi2", 2, 3, 10, 0.5) == pytest.approx(
        324.0 * root, rel=1e-12)
    got = r2pvi.instance_independent_rate("tv", 2, 3, np.array([10, 40]), 0.5)
    np.testing.assert_allclose(got, [36.0 * root, 36.0 * math.sqrt(math.log(9600.0) / 40.0)],
                               rtol=1e-12)


def test_r2pvi_regularized_objective_by_hand():
    """E_mu V + lam D(mu || P) with V = (0, 1), P = (.5, .5): TV mu = (1, 0): 0 + .3 * .5 * 1 =
    .15; KL mu = (.75, .25): .25 + .3 (.75 log 1.5 + .25 log .5); chi2 mu = (.75, .25):
    .25 + .3 (.0625/.5 + .0625/.5) = .25 + .3 * .25 = .325."""
    v, p = [0.0, 1.0], [0.5, 0.5]
    assert r2pvi.regularized_objective(v, p, [1.0, 0.0], "tv", 0.3) == pytest.approx(0.15)
    assert r2pvi.regularized_objective(v, p, [0.75, 0.25], "kl", 0.3) == pytest.approx(
        0.25 + 0.3 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), rel=1e-12)
    assert r2pvi.regularized_objective(v, p, [0.75, 0.25], "chi2", 0.3) == pytest.approx(
        0.325, rel=1e-12)
    # a zero of mu contributes 0 to KL (0 log 0 = 0)
    assert r2pvi.regularized_objective(v, p, [1.0, 0.0], "kl", 0.3) == pytest.approx(
        0.3 * math.log(2.0), rel=1e-12)


def test_glow_bounds_by_hand():
    """Theorem 3.1 regret c H R sqrt(C T log(e T) L) with c = 1.5, H = 3, R = 2, C = 2, T = 10,
    L = 4: 9 sqrt(80 (1 + log 10)); sample complexities (eps = .5 on range 2, so .25):
    mixture 1.5 * 9 * 2 * 4 / .0625 = 1728, pure 1.5 * 81 * 4 * 4 / .25^4 = 497664, HyGLOW
    (C* = 3) 1.5 * 9 * 5 * 4 / .0625 = 4320; H2O risk (T = 8, a = 2, b = 4)
    1.5 * 3 * 2 * sqrt(5 * 8 / 8) = 9 sqrt 5. Fails with H^2 for H in the regret, a squared
    C_cov in the mixture case, or eps not rescaled by the value range."""
    kw = dict(constant=1.5, value_range=2.0)
    assert glow.glow_regret_bound(10, 3, 2.0, 4.0, **kw) == pytest.approx(
        9.0 * math.sqrt(80.0 * (1.0 + math.log(10.0))), rel=1e-12)
    np.testing.assert_allclose(glow.glow_regret_bound(np.array([1, 10]), 3, 2.0, 4.0, **kw),
                               [9.0 * math.sqrt(8.0), 9.0 * math.sqrt(80.0 * (1.0 + math.log(
                                   10.0)))], rtol=1e-12)
    assert glow.glow_sample_complexity(0.5, 3, 2.0, 4.0, **kw) == pytest.approx(1728.0)
    assert glow.glow_sample_complexity(0.5, 3, 2.0, 4.0, realizability="pure",
                                       **kw) == pytest.approx(497664.0)
    assert glow.hyglow_sample_complexity(0.5, 3, 2.0, 3.0, 4.0, **kw) == pytest.approx(4320.0)
    assert glow.h2o_risk_bound(8, 3, 2.0, 3.0, 2.0, 4.0, **kw) == pytest.approx(
        9.0 * math.sqrt(5.0), rel=1e-12)
    np.testing.assert_allclose(glow.h2o_risk_bound(np.array([2, 8]), 3, 2.0, 3.0, 2.0, 4.0,
                                                   **kw), [18.0 * math.sqrt(5.0),
                                                           9.0 * math.sqrt(5.0)], rtol=1e-12)


def test_glow_paper_schedule_by_hand():
    """Algorithm 1: gamma_t = gamma t, beta_t = 36 gamma_t log(6 |F| |W| T H / delta) /
    (K (t - 1)), alpha_t = 8 / gamma_t. t = 3, T = 10, H = 2, K = 4, |F| = 5, |W| = 2,
    delta = .1, gamma = .5: gamma_t = 1.5, beta_t = 54 log(12000) / 8, alpha_t = 16/3.
    Default gamma (C_cov = 4): sqrt(4 / (10 log 100))."""
    alpha, beta, gamma_t = glow.paper_schedule(3, 10, 2, 4, 5, 2.0, 0.1, gamma=0.5)
    assert gamma_t == pytest.approx(1.5)
    assert alpha == pytest.approx(16.0 / 3.0)
    assert beta == pytest.approx(54.0 * math.log(12000.0) / 8.0, rel=1e-12)
    g = math.sqrt(4.0 / (10.0 * math.log(100.0)))
    _, _, gamma_t = glow.paper_schedule(3, 10, 2, 4, 5, 2.0, 0.1, C_cov=4.0)
    assert gamma_t == pytest.approx(3.0 * g, rel=1e-12)


def test_drrpo_regret_bound_by_hand():
    """iota = log(2 d H K / delta) = log(2 * 2 * 3 * 16 / .05) = log 3840; DR-LSVI-UCB form
    C d^2 H^2 sqrt(K) iota = 2 * 36 * 4 iota; WE-DRIVE-U form C d H min(1/rho, H) sqrt(K) iota
    with rho = .5 (min 2): 2 * 12 * 4 iota, rho = .1 (min 3 = H) and rho = 0 (H): 2 * 18 * 4
    iota. Fails with d H^2 or with max(1/rho, H)."""
    iota = math.log(3840.0)
    assert drrpo.regret_bound(2, 3, 16, constant=2.0) == pytest.approx(288.0 * iota, rel=1e-12)
    for rho, scale in ((0.5, 12.0), (0.1, 18.0), (0.0, 18.0)):
        assert drrpo.regret_bound(2, 3, 16, rho=rho, form="we_drive_u",
                                  constant=2.0) == pytest.approx(8.0 * scale * iota, rel=1e-12)
    np.testing.assert_allclose(drrpo.regret_bound(2, 3, np.array([16, 1])),
                               [144.0 * iota, 36.0 * math.log(240.0)], rtol=1e-12)
    np.testing.assert_array_equal(drrpo.log_spaced_episodes(1000, 4), [1, 10, 100, 1000])
    np.testing.assert_array_equal(drrpo.log_spaced_episodes(10, 3), [1, 3, 10])


def test_drrpo_slope_interval_is_student_t_over_three_seeds():
    """Exact power laws R = c K^b with b = .4, .5, .9 (three seeds): slopes exactly b, mean .6,
    sample std sqrt(.07), half-width t_{0.975,2} sqrt(.07) / sqrt 3 = 0.657...; pooled slope
    of the seed-averaged curve; below_one iff .6 + half < 1. Fails with df = n or 1.96."""
    K = np.array([1, 4, 16, 64])
    b = np.array([0.4, 0.5, 0.9])
    R = np.array([[2.0], [1.0], [0.5]]) * K[None, :] ** b[:, None]
    fit = drrpo.fit_loglog_slope(K, R)
    np.testing.assert_allclose(fit.per_seed, b, rtol=1e-12)
    half = T975[2] * math.sqrt(0.07) / math.sqrt(3.0)
    assert fit.slope == pytest.approx(0.6, rel=1e-12)
    assert fit.low == pytest.approx(0.6 - half, rel=1e-9)
    assert fit.high == pytest.approx(0.6 + half, rel=1e-9)
    assert fit.intercept == pytest.approx(math.log(2.0) / 3.0 + 0.0 + math.log(0.5) / 3.0,
                                          abs=1e-12)
    assert not fit.below_one  # 0.6 + 0.657 > 1
    pooled = np.polyfit(np.log(K), np.log(R.mean(axis=0)), 1)[0]
    assert fit.pooled_slope == pytest.approx(pooled, rel=1e-10)
    one = drrpo.fit_loglog_slope(K, 3.0 * K**0.5)
    assert one.slope == pytest.approx(0.5) and math.isnan(one.low) and not one.below_one
    # check_regret: the largest ratio R / bound, by hand at K = 1 (bound 36 log 240 there)
    check = drrpo.check_regret(K, R, d=2, H=3)
    assert check.max_ratio == pytest.approx(
        max((R / drrpo.regret_bound(2, 3, K)).ravel()), rel=1e-12)
    # slopes .4, .5, .9: the interval (-0.06, 1.26) does not lie above 1/2, so the rate test
    # passes (the 0.1.0 criterion, "interval below 1", failed it: not check.slope_below_one)
    assert check.within_bound and check.rate_ok and check.passed and not check.slope_below_one
    steep = drrpo.check_regret(K, np.array([[0.1], [0.2], [0.3]]) * K[None, :] ** 0.9, d=2, H=3)
    assert steep.fit.low > 0.5 and not steep.rate_ok and not steep.passed
    over = R.copy()
    over[0, 0] = 2.0 * 36.0 * math.log(240.0)  # twice the bound at K = 1, below it elsewhere
    assert not drrpo.check_regret(K, over, d=2, H=3).within_bound
    with pytest.raises(AttributeError):
        check.max_ratio = 0.0


def test_r2pvi_mean_loglog_fit_on_an_exact_power_law():
    """Every seed on K^{-1/2} (times 3): slope exactly -1/2, intercept log 3, and every
    bootstrap resample gives the same slope, so the interval collapses onto it. A zero mean
    at one size is left out of the fit (``used``)."""
    K = np.array([10, 100, 1000, 5000])
    V = np.tile(3.0 * K**-0.5, (4, 1))
    V[:, -1] = 0.0
    fit = r2pvi.fit_mean_loglog(K, V, n_boot=50)
    assert fit.slope == pytest.approx(-0.5, rel=1e-10)
    assert fit.intercept == pytest.approx(math.log(3.0), rel=1e-10)
    assert fit.low == pytest.approx(-0.5, rel=1e-10) and fit.high == pytest.approx(-0.5,
                                                                                rel=1e-10)
    np.testing.assert_array_equal(fit.used, [True, True, True, False])


def test_coverability_coefficient_by_hand():
    """S = 2, A = 2, H = 2, start in state 0. Step 0: reach (1, 0), sum over (s, a) = 2.
    Step 1: state 0 reachable w.p. 1 (action 0 stays), state 1 at most .5 (action 1 moves
    there w.p. .5): (1 + .5) * 2 actions = 3. C_cov = 3. Fails with the max over policies
    taken after summing, or the per-step maximum replaced by the last step's value."""
    P = np.zeros((2, 2, 2, 2))
    P[:, 0, 0] = [1.0, 0.0]
    P[:, 0, 1] = [0.5, 0.5]
    P[:, 1, :] = [0.0, 1.0]
    P[1] = P[1, :, :, ::-1]  # the last step's kernel is irrelevant to occupancy up to h = 1
    model = FiniteMDP(P=P, R=np.zeros((2, 2, 2)), initial_distribution=np.array([1.0, 0.0]))
    np.testing.assert_allclose(coverability.coverability_coefficient(model, per_step=True),
                               [2.0, 3.0], rtol=1e-12)
    assert coverability.coverability_coefficient(model) == pytest.approx(3.0)
    assert coverability.coverability_coefficient_lp(model) == pytest.approx(3.0, abs=1e-8)
    np.testing.assert_allclose(coverability.max_occupancy(model)[1], [[1.0, 1.0], [0.5, 0.5]])


# ------------------------------------------------------------------------------------------
# level replay probabilities (agents/dred/level_buffer.py)
# ------------------------------------------------------------------------------------------
def _buffer(**kw) -> LevelBuffer:
    buf = LevelBuffer(3, seed=0, **kw)
    buf.occupied[:] = True
    buf.visited[:] = True
    buf.scores[:] = [0.2, 0.9, 0.5]      # ranks 3, 1, 2
    buf.staleness[:] = [1.0, 4.0, 0.0]
    return buf


@pytest.mark.parametrize(("temperature", "stale_temperature", "rank_w", "stale_w"), [
    # rank^(-1/.5) = rank^-2: 1/9, 1, 1/4; staleness^(1/.5) = c^2: 1, 16, 0
    (0.5, 0.5, [Fraction(1, 9), Fraction(1), Fraction(1, 4)], [1, 16, 0]),
    # rank^(-1/2): 1/sqrt 3, 1, 1/sqrt 2; staleness^(1/2): 1, 2, 0
    (2.0, 2.0, [3**-0.5, 1.0, 2**-0.5], [1, 2, 0]),
])
def test_replay_probabilities_at_temperatures_other_than_one(temperature, stale_temperature,
                                                             rank_w, stale_w):
    """P = (1 - rho_s) P_S + rho_s P_C with rho_s = .4. At T = .5 (exact fractions):
    P_S = (4, 36, 9) / 49, P_C = (1, 16, 0) / 17. Fails when the staleness or rank exponent
    uses T instead of 1/T (at T = 1 both agree), or the mixture weights are swapped."""
    buf = _buffer(temperature=temperature, staleness_coef=0.4,
                  staleness_temperature=stale_temperature)
    ps = np.array([float(x) for x in rank_w])
    ps /= ps.sum()
    pc = np.array(stale_w, dtype=float) / sum(stale_w)
    want = 0.6 * ps + 0.4 * pc
    np.testing.assert_allclose(buf.sample_weights(), want, rtol=1e-12)
    if temperature == 0.5:
        np.testing.assert_allclose(ps, [4 / 49, 36 / 49, 9 / 49], rtol=1e-12)
        np.testing.assert_allclose(buf.sample_weights(),
                                   [0.6 * 4 / 49 + 0.4 / 17, 0.6 * 36 / 49 + 0.4 * 16 / 17,
                                    0.6 * 9 / 49], rtol=1e-12)
    np.testing.assert_allclose(rank_weights([0.2, 0.9, 0.5], temperature),
                               [float(x) for x in rank_w], rtol=1e-12)
    np.testing.assert_allclose(staleness_weights([1.0, 4.0, 0.0], stale_temperature), stale_w,
                               rtol=1e-12)


def test_rank_ties_and_secondary_mixture_by_hand():
    """Ties: the lower slot ranks first (scores 1, 1, 0 -> ranks 1, 2, 3). With a secondary
    score (T2 = .5, kappa = .25) and no staleness: P = .75 P_S + .25 P_S2."""
    np.testing.assert_allclose(rank_weights([1.0, 1.0, 0.0], 1.0), [1.0, 0.5, 1.0 / 3.0])
    buf = _buffer(temperature=0.5, staleness_coef=0.0, secondary_strategy="grounded_value_l1",
                  secondary_temperature=0.5, secondary_coef_start=0.25,
                  secondary_coef_end=0.25)
    buf.secondary_scores[:] = [0.7, 0.1, 0.3]   # ranks 1, 3, 2 -> 1, 1/9, 1/4 (sum 49/36)
    want = 0.75 * np.array([4, 36, 9]) / 49 + 0.25 * np.array([36, 4, 9]) / 49
    np.testing.assert_allclose(buf.sample_weights(), want, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# offline agents: R2PVI-TV's data floor and the pessimism sign on every estimator path
# ------------------------------------------------------------------------------------------
def _one_hot_model(horizon: int) -> LinearMDP:
    """S = 3, A = 2, one-hot phi(s, a) = e_{2s+a}; reward(s, a) = (2s + a + 1) / 8 at every
    step (state values at the last step: V(s) = (2s + 2) / 8 = .25, .5, .75); factors uniform
    over states 1, 2 except factor 0 (state 0, action 0), which stays in state 0."""
    S, A = 3, 2
    d = S * A
    phi = np.zeros((S, A, d))
    for s in range(S):
        for a in range(A):
            phi[s, a, s * A + a] = 1.0
    mu = np.zeros((horizon, d, S))
    mu[:, :, 1:] = 0.5
    mu[:, 0, :] = [1.0, 0.0, 0.0]
    theta = np.tile((np.arange(d) + 1.0) / 8.0, (horizon, 1))
    return LinearMDP(phi, mu, theta, np.array([0.0, 0.5, 0.5]))


def _dataset(model: LinearMDP, transitions, zero_rows: int = 0) -> OfflineDataset:
    """One row per ``(s, a, s')`` of ``transitions`` at every step, plus ``zero_rows`` rows
    whose features are all zero at step 0 and whose next state is 0 (they enter no regression,
    but their next-state value 0 is below every regression row's)."""
    H, A, d = model.horizon, model.n_actions, model.feature_dim
    rows = list(transitions) + [None] * zero_rows
    K = len(rows)
    out = {
        "observations": np.zeros((K, H, 2)), "actions": np.zeros((K, H), dtype=np.int64),
        "rewards": np.zeros((K, H)), "next_observations": np.zeros((K, H, 2)),
        "features": np.zeros((K, H, d)), "next_action_features": np.zeros((K, H, A, d)),
        "valid": np.ones((K, H), dtype=bool), "terminal": np.zeros((K, H), dtype=bool),
    }
    for h in range(H):
        for k, row in enumerate(rows):
            s, a, nxt = row if row is not None else (0, 1, 0)
            out["observations"][k, h] = (s, h)
            out["actions"][k, h] = a
            out["next_observations"][k, h] = (nxt, h + 1)
            out["next_action_features"][k, h] = model.phi[nxt]
            out["terminal"][k, h] = h == H - 1
            if row is not None or h > 0:
                out["rewards"][k, h] = model.phi[s, a] @ model.theta[h]
                out["features"][k, h] = model.phi[s, a]
    return OfflineDataset(**out)


def _q_table(agent, model) -> np.ndarray:
    return np.stack([agent.q_values_from_features(model.phi, h) for h in range(model.horizon)])


FLOOR_AGENTS = {
    # R2PVI-TV's closed form (the moment path), its variance-aware variant (the per-row
    # estimate path) and DRPVI's TV dual, all with the authors' data floor
    "r2pvi-tv": lambda env, v_min: R2PVI(env, divergence="tv", lam=0.1, ridge=1e-9, beta=0.0,
                                         reward="known", v_min=v_min),
    "r2pvi-tv-variance-aware": lambda env, v_min: R2PVI(
        env, divergence="tv", lam=0.1, ridge=1e-9, beta=0.0, reward="known", v_min=v_min,
        variance_aware=True),
    "drpvi": lambda env, v_min: DRPVI(env, rho=0.2, ridge=1e-9, beta=0.0, reward="known",
                                      v_min=v_min),
}


@pytest.mark.parametrize("name", sorted(FLOOR_AGENTS))
def test_tv_data_floor_is_over_regression_rows_only(name):
    """H = 2. At step 0 the regression rows move to states 1 and 2 (last-step values .5 and
    .75, so the floor over them is .5) and 3 zero-feature rows move to state 0 (value .25).
    ``v_min="data"`` must equal ``v_min=.5`` exactly and differ from ``v_min=.25`` (the floor
    over all rows). Fails when the floor is taken over all rows (``data_v_min`` without the
    ``in_regression`` mask, or the running minimum of all rows on the moment path)."""
    model = _one_hot_model(horizon=2)
    env = TableEnv(model)
    transitions = [(s, a, nxt) for s in range(3) for a in range(2) for nxt in (1, 2)]
    data = _dataset(model, transitions, zero_rows=3)
    make = FLOOR_AGENTS[name]
    agent = make(env, "data").fit(data)
    floor_regression = make(env, 0.5).fit(data)
    floor_all = make(env, 0.25).fit(data)
    np.testing.assert_allclose(agent.weights_, floor_regression.weights_, rtol=0, atol=1e-12)
    assert np.abs(agent.weights_ - floor_all.weights_).max() > 0.02
    if name == "r2pvi-tv":
        # step 0 by hand: nu = mean over next states {1, 2} of min(V, .5 + .1) = (.5 + .6) / 2
        q0 = _q_table(agent, model)[0]
        np.testing.assert_allclose(q0, model.phi @ model.theta[0] + 0.55, rtol=0, atol=1e-6)


ESTIMATORS = {
    "pevi": lambda env, beta: PEVI(env, beta=beta, truncate_below=False),
    "r2pvi-tv": lambda env, beta: R2PVI(env, divergence="tv", lam=0.2, beta=beta,
                                        v_min=0.0, truncate_below=False),
    "r2pvi-tv-data": lambda env, beta: R2PVI(env, divergence="tv", lam=0.2, beta=beta,
                                             truncate_below=False),
    "r2pvi-kl": lambda env, beta: R2PVI(env, divergence="kl", lam=0.5, beta=beta,
                                        truncate_below=False),
    "r2pvi-chi2": lambda env, beta: R2PVI(env, divergence="chi2", lam=0.5, beta=beta,
                                          truncate_below=False),
    "r2pvi-chi2-l2": lambda env, beta: R2PVI(env, divergence="chi2", lam=0.5, beta=beta,
                                             bonus="code_l2", truncate_below=False),
    "drpvi": lambda env, beta: DRPVI(env, rho=0.2, beta=beta, truncate_below=False),
    "drvi_l": lambda env, beta: DRVI_L(env, rho=0.2, beta=beta, truncate_below=False),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_larger_bonus_lowers_q_on_every_estimator_path(name):
    """One-hot features make every estimate monotone in the next-state values, so a larger
    beta must lower Q at every (h, s, a): strictly at the last step (where Q is the reward
    estimate minus beta times the bonus) and weakly before. Fails when the sign of the
    penalty is flipped in the greedy Q (``q + beta * bonus``) or in the backward pass's
    next-state values (``+beta``)."""
    model = _one_hot_model(horizon=3)
    env = TableEnv(model)
    transitions = [(s, a, nxt) for s in range(3) for a in range(2) for nxt in (1, 2)]
    transitions += [(0, 0, 0)] * 2 + [(1, 1, 1)]  # uneven counts: uneven bonuses
    data = _dataset(model, transitions)
    q = [_q_table(ESTIMATORS[name](env, beta).fit(data), model) for beta in (0.0, 0.5, 1.0)]
    assert np.all(q[1] <= q[0] + 1e-12) and np.all(q[2] <= q[1] + 1e-12)
    assert np.all(q[1][-1] < q[0][-1] - 1e-3) and np.all(q[2][-1] < q[1][-1] - 1e-3)
    # the earlier steps see the lower next-state values too
    assert np.all(q[2][0] < q[0][0] - 1e-3)


# ------------------------------------------------------------------------------------------
# theory: the smallest valid inputs give the hand values; one step outside is a ValueError
# ------------------------------------------------------------------------------------------
def test_theory_functions_at_their_smallest_valid_inputs():
    """H = 1, C = 1, T = 1, K = 1, d = 1: regret sqrt(1 * 1 * log(e) * 1) = 1; mixture
    sample complexity 1; HyGLOW (1 + 1) = 2; H2O sqrt(2); schedule t = T = 2, H = K = |F| =
    |W| = 1, delta = .5, gamma = 1: gamma_t = 2, alpha = 4, beta = 72 log(24) / 1; DR-RPO
    log(2 / .05) = log 40 (an integral float K = 2. is K = 2); R2PVI's xi = log 40. Fails
    when a lower limit moves up by one (H >= 2, C_cov >= 2, ...)."""
    assert glow.glow_regret_bound(1, 1, 1.0, 1.0) == pytest.approx(1.0)
    assert glow.glow_sample_complexity(1.0, 1, 1.0, 1.0) == pytest.approx(1.0)
    assert glow.glow_sample_complexity(1.0, 1, 1.0, 1.0, realizability="pure") == 1.0
    assert glow.hyglow_sample_complexity(1.0, 1, 1.0, 1.0, 1.0) == pytest.approx(2.0)
    assert glow.h2o_risk_bound(1, 1, 1.0, 1.0, 1.0, 1.0) == pytest.approx(math.sqrt(2.0))
    alpha, beta, gamma_t = glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.5, gamma=1.0)
    assert (alpha, gamma_t) == (4.0, 2.0)
    g1 = glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.5, C_cov=1.0)[2]  # C_cov = 1 is allowed
    assert g1 == pytest.approx(2.0 * math.sqrt(1.0 / (2.0 * math.log(2.0))), rel=1e-12)
    assert beta == pytest.approx(72.0 * math.log(24.0), rel=1e-12)
    assert drrpo.regret_bound(1, 1, 1) == pytest.approx(math.log(40.0), rel=1e-12)
    assert drrpo.regret_bound(1, 1, 2.0) == drrpo.regret_bound(1, 1, 2)
    assert drrpo.regret_bound(1, 1, 1, rho=0.0, form="we_drive_u", tau=0.5) == pytest.approx(
        math.log(40.0), rel=1e-12)
    np.testing.assert_array_equal(drrpo.log_spaced_episodes(1, 2), [1])
    np.testing.assert_array_equal(drrpo.log_spaced_episodes(9, 2, start=9), [9])
    assert r2pvi.log_factor(1, 1, 1) == pytest.approx(math.log(40.0), rel=1e-12)
    assert r2pvi.instance_independent_rate("tv", 1, 1, 1, 1.0) == pytest.approx(
        math.sqrt(math.log(40.0)), rel=1e-12)


BAD_THEORY = [
    (lambda: glow.glow_regret_bound(0, 1, 1.0, 1.0), "T"),
    (lambda: glow.glow_regret_bound(np.array([1, 0]), 1, 1.0, 1.0), "T"),
    (lambda: glow.glow_regret_bound(np.array([], dtype=int), 1, 1.0, 1.0), "T"),
    (lambda: glow.glow_regret_bound(1.5, 1, 1.0, 1.0), "T"),
    (lambda: glow.glow_regret_bound(1, 0, 1.0, 1.0), "H"),
    (lambda: glow.glow_regret_bound(1, 1, 0.99, 1.0), "C_cov"),
    (lambda: glow.glow_regret_bound(1, 1, 1.0, 0.0), "log_term"),
    (lambda: glow.glow_regret_bound(1, 1, 1.0, 1.0, value_range=0.0), "value_range"),
    (lambda: glow.glow_regret_bound(1, 1, 1.0, 1.0, constant=0.0), "constant"),
    (lambda: glow.glow_sample_complexity(0.0, 1, 1.0, 1.0), "epsilon"),
    (lambda: glow.glow_sample_complexity(1.0, 1, 1.0, 1.0, constant=0.0), "constant"),
    (lambda: glow.glow_sample_complexity(1.0, 1, 1.0, 1.0, realizability="x"), "realizability"),
    (lambda: glow.hyglow_sample_complexity(1.0, 1, 1.0, 0.99, 1.0), "C_star"),
    (lambda: glow.hyglow_sample_complexity(0.0, 1, 1.0, 1.0, 1.0), "epsilon"),
    (lambda: glow.hyglow_sample_complexity(1.0, 1, 1.0, 1.0, 1.0, constant=0.0), "constant"),
    (lambda: glow.h2o_risk_bound(np.array([2, 0]), 1, 1.0, 1.0, 1.0, 1.0), "T"),
    (lambda: glow.h2o_risk_bound(np.array([], dtype=int), 1, 1.0, 1.0, 1.0, 1.0), "T"),
    (lambda: glow.h2o_risk_bound(2.5, 1, 1.0, 1.0, 1.0, 1.0), "T"),
    (lambda: glow.h2o_risk_bound(1, 1, 1.0, 0.99, 1.0, 1.0), "C_star"),
    (lambda: glow.h2o_risk_bound(1, 1, 1.0, 1.0, 0.0, 1.0), "a"),
    (lambda: glow.h2o_risk_bound(1, 1, 1.0, 1.0, 1.0, 0.0), "b"),
    (lambda: glow.h2o_risk_bound(1, 1, 1.0, 1.0, 1.0, 1.0, constant=0.0), "constant"),
    (lambda: glow.paper_schedule(1, 2, 1, 1, 1, 1.0, 0.5, gamma=1.0), "t"),
    (lambda: glow.paper_schedule(3, 2, 1, 1, 1, 1.0, 0.5, gamma=1.0), "t"),
    (lambda: glow.paper_schedule(2, 1, 1, 1, 1, 1.0, 0.5, gamma=1.0), "T"),
    (lambda: glow.paper_schedule(2, 2, 0, 1, 1, 1.0, 0.5, gamma=1.0), "H"),
    (lambda: glow.paper_schedule(2, 2, 1, 0, 1, 1.0, 0.5, gamma=1.0), "K"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 0, 1.0, 0.5, gamma=1.0), "n_F"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 0.99, 0.5, gamma=1.0), "n_W"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 1.0, gamma=1.0), "delta"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.0, gamma=1.0), "delta"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.5), "C_cov"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.5, C_cov=0.99), "C_cov"),
    (lambda: glow.paper_schedule(2, 2, 1, 1, 1, 1.0, 0.5, gamma=0.0), "gamma"),
    (lambda: drrpo.regret_bound(0, 1, 1), "d"),
    (lambda: drrpo.regret_bound(1, 0, 1), "H"),
    (lambda: drrpo.regret_bound(1, 1, 0), "K"),
    (lambda: drrpo.regret_bound(1, 1, np.array([1, 0])), "K"),
    (lambda: drrpo.regret_bound(1, 1, np.array([], dtype=int)), "K"),
    (lambda: drrpo.regret_bound(1, 1, 1.5), "K"),
    (lambda: drrpo.regret_bound(1, 1, np.array([2.0, np.inf])), "K"),
    (lambda: drrpo.regret_bound(1, 1, np.array([2.0, 2.5])), "K"),
    (lambda: drrpo.regret_bound(1, 1, 1, delta=1.0), "delta"),
    (lambda: drrpo.regret_bound(1, 1, 1, delta=0.0), "delta"),
    (lambda: drrpo.regret_bound(1, 1, 1, constant=0.0), "constant"),
    (lambda: drrpo.regret_bound(1, 1, 1, tau=0.0), "tau"),
    (lambda: drrpo.regret_bound(1, 1, 1, rho=-0.1, form="we_drive_u"), "rho"),
    (lambda: drrpo.regret_bound(1, 1, 1, form="we_drive_u"), "rho"),
    (lambda: drrpo.regret_bound(1, 1, 1, form="other"), "form"),
    (lambda: drrpo.log_spaced_episodes(0), "n_episodes"),
    (lambda: drrpo.log_spaced_episodes(5, 1), "n_points"),
    (lambda: drrpo.log_spaced_episodes(5, 2, start=6), "start"),
    (lambda: drrpo.log_spaced_episodes(5, 2, start=0), "start"),
    (lambda: drrpo.fit_loglog_slope([1, 1], [1.0, 2.0]), "episodes"),
    (lambda: drrpo.fit_loglog_slope([1, 2, 2], [1.0, 2.0, 3.0]), "episodes"),
    (lambda: drrpo.fit_loglog_slope([2], [1.0]), "episodes"),
    (lambda: drrpo.fit_loglog_slope([[1, 2]], [1.0, 2.0]), "episodes"),
    (lambda: drrpo.fit_loglog_slope([1, 2], [1.0, 2.0, 3.0]), "columns"),
    (lambda: drrpo.fit_loglog_slope([1, 2], [1.0, 0.0]), "cumulative_regret"),
    (lambda: drrpo.fit_loglog_slope([1, 2], [1.0, 2.0], confidence=1.0), "confidence"),
    (lambda: drrpo.fit_loglog_slope([1, 2], [1.0, 2.0], confidence=0.0), "confidence"),
    (lambda: r2pvi.log_factor(0, 1, 1), "dim"),
    (lambda: r2pvi.log_factor(1, 0, 1), "horizon"),
    (lambda: r2pvi.log_factor(1, 1, 0), "n_trajectories"),
    (lambda: r2pvi.log_factor(1, 1, np.array([1, 0])), "n_trajectories"),
    (lambda: r2pvi.log_factor(1, 1, np.array([], dtype=int)), "n_trajectories"),
    (lambda: r2pvi.log_factor(1, 1, np.array([1.0, 2.0])), "n_trajectories"),
    (lambda: r2pvi.log_factor(1, 1, 1, delta=1.0), "delta"),
    (lambda: r2pvi.log_factor(1, 1, 1, delta=0.0), "delta"),
    (lambda: r2pvi.theoretical_beta("tv", 1, 1, 1, 0.0), "lam"),
    (lambda: r2pvi.theoretical_beta("hellinger", 1, 1, 1, 1.0), "divergence"),
    (lambda: r2pvi.instance_independent_rate("tv", 1, 1, 1, 0.0), "lam"),
    (lambda: r2pvi.fit_mean_loglog([1, 2], [[1.0, -1.0]]), "values"),
    (lambda: r2pvi.fit_mean_loglog([1, 2], [[1.0, 1.0]], confidence=1.0), "confidence"),
]


@pytest.mark.parametrize(("call", "name"), BAD_THEORY)
def test_theory_rejects_inputs_one_step_outside_their_range(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_runner_csv_files_by_hand(tmp_path):
    """cells.csv: declared keys first, then other params sorted, seed index, seed, the scalar
    metrics sorted (a metric that is a list in some record is not scalar), wall time; NaN and a
    missing metric are empty cells, bools 1/0, floats in repr. summary.csv: n_seeds and
    mean/std/ci95 per params group, groups in order of first appearance."""
    from robustrl.runner.report import (
        group_by_params,
        param_keys,
        scalar_metrics,
        write_cells_csv,
        write_summary_csv,
    )

    recs = [
        {"params": {"x": 2, "mode": "a"}, "seed_index": 0, "seed": 10,
         "metrics": {"y": 0.1, "ok": True, "curve": [1, 2]}, "wall_time_s": 1.5},
        {"params": {"x": 2, "mode": "a"}, "seed_index": 1, "seed": 11,
         "metrics": {"y": 0.3, "ok": False, "curve": 3.0}, "wall_time_s": 2.0},
        {"params": {"x": 1, "mode": "b"}, "seed_index": 0, "seed": 12,
         "metrics": {"y": math.nan}, "wall_time_s": 0.5},
    ]
    assert scalar_metrics(recs) == ["ok", "y"]
    assert param_keys(recs, ["x"]) == ["x", "mode"] and param_keys(recs) == ["mode", "x"]
    groups = group_by_params(recs)
    assert [len(g) for _, g in groups] == [2, 1] and groups[0][0] == {"x": 2, "mode": "a"}
    cells = write_cells_csv(tmp_path / "cells.csv", recs, ["x"]).read_text().splitlines()
    assert cells == ["x,mode,seed_index,seed,ok,y,wall_time_s",
                     "2,a,0,10,1,0.1,1.5", "2,a,1,11,0,0.3,2.0", "1,b,0,12,,,0.5"]
    summary = write_summary_csv(tmp_path / "summary.csv", recs, ["x"]).read_text().splitlines()
    half = T975[1] * math.sqrt(0.02) / math.sqrt(2.0)  # y: 0.1, 0.3 -> mean .2, std sqrt(.02)
    head, first, second = summary
    assert head == "x,mode,n_seeds,ok_mean,ok_std,ok_ci95,y_mean,y_std,y_ci95"
    f = first.split(",")
    assert f[:4] == ["2", "a", "2", "0.5"]
    assert float(f[6]) == pytest.approx(0.2) and float(f[7]) == pytest.approx(math.sqrt(0.02))
    assert float(f[8]) == pytest.approx(half, rel=1e-9)
    assert float(f[5]) == pytest.approx(T975[1] * math.sqrt(0.5) / math.sqrt(2.0), rel=1e-9)
    assert second.split(",")[:3] == ["1", "b", "1"] and second.endswith(",,,,,")


def test_level_buffer_scores_and_bookkeeping_by_hand():
    """fragment_score: grounded_value_l1 is 0 unless G(l) > 0 (default G = 0); merge_scores is
    the step-weighted mean ((1 * 1 + 4 * 3) / 4 = 3.25) and rejects mismatched, empty or
    non-positive steps; staleness_weights defaults to temperature 1; add_dataset_levels returns
    the slots it filled and ``size`` counts them."""
    from robustrl.agents.dred.level_buffer import fragment_score, merge_scores

    assert fragment_score("grounded_value_l1", [1.0, 2.0], [0.0, 0.0]) == 0.0
    assert fragment_score("grounded_value_l1", [1.0, -2.0], [0.0, 0.0], 0.5) == 1.5
    assert merge_scores([1.0, 4.0], [1, 3]) == pytest.approx(3.25)
    for scores, steps in (([1.0], [1, 2]), ([], []), ([1.0, 2.0], [1, 0])):
        with pytest.raises(ValueError, match="steps"):
            merge_scores(scores, steps)
    np.testing.assert_array_equal(staleness_weights([1.0, 4.0]), [1.0, 4.0])
    buf = LevelBuffer(4, seed=0)
    np.testing.assert_array_equal(buf.add_dataset_levels(["a", "b"]), [0, 1])
    assert buf.size == 2 and buf.n_generated == 0
    np.testing.assert_array_equal(buf.add_dataset_levels(["c"]), [2])
    assert buf.size == 3


def test_glow_regret_check_numbers_and_scalar_outputs():
    """GlowRegretCheck: mean regret over seeds ((1 + 3) / 2, (3 + 5) / 2) = (2, 4). Against
    the bound (2.5, 3.9) seed 1 exceeds it at T = 10 (3 > 2.5): 1 of 2 seeds = 0.5 > delta =
    0.1, so not passed (the criterion is per seed since the explicit-constant bounds: at most
    delta of the seeds above the bound); against (3, 5) no seed exceeds it. The record is
    frozen. A scalar T gives a Python float."""
    kw = dict(rounds=np.array([10, 20]), regret=np.array([[1.0, 3.0], [3.0, 5.0]]),
              trivial=np.array([10.0, 20.0]), C_cov=1.0, log_terms=np.array([1.0, 1.0]),
              delta=0.1)
    check = glow.GlowRegretCheck(bound=np.array([2.5, 3.9]), order_bound=np.array([9.0, 9.0]),
                                 **kw)
    np.testing.assert_allclose(check.mean_regret, [2.0, 4.0])
    assert check.seeds_over(check.bound) == 0.5 and not check.passed
    ok = glow.GlowRegretCheck(bound=np.array([3.0, 5.0]), order_bound=np.array([3.0, 5.0]),
                              **kw)
    assert ok.seeds_over(ok.bound) == 0.0 and ok.passed
    with pytest.raises(AttributeError):
        check.C_cov = 2.0
    assert type(glow.glow_regret_bound(10, 3, 2.0, 4.0)) is float
    assert type(glow.h2o_risk_bound(10, 3, 2.0, 2.0, 1.0, 1.0)) is float
    assert type(drrpo.regret_bound(1, 1, 4)) is float


def test_level_buffer_defaults_and_fallbacks_by_hand():
    """Defaults (the authors'): temperature .1, staleness coefficient .3 at temperature 1, no
    secondary score. Scores (.2, .9, .5) -> ranks (3, 1, 2) -> rank^-10; staleness (1, 4, 0):
    P = .7 (3^-10, 1, 2^-10) / Z + .3 (1, 4, 0) / 5. All-zero staleness falls back to uniform
    over the support: P_C = 1/3 each. dataset_mass is P summed over dataset slots."""
    buf = _buffer()
    assert (buf.temperature, buf.staleness_coef, buf.staleness_temperature) == (0.1, 0.3, 1.0)
    assert (buf.secondary_temperature, buf.secondary_coef_start, buf.secondary_coef_end,
            buf.secondary_fraction_start, buf.secondary_fraction_end) == (1.0, 0.0, 0.0, 0.0,
                                                                          1.0)
    assert (buf.replay_prob, buf.fill_threshold, buf.dataset_levels_fixed) == (1.0, 1.0, True)
    ps = np.array([3.0**-10, 1.0, 2.0**-10])
    want = 0.7 * ps / ps.sum() + 0.3 * np.array([1.0, 4.0, 0.0]) / 5.0
    np.testing.assert_allclose(buf.sample_weights(), want, rtol=1e-12)
    buf.staleness[:] = 0.0
    np.testing.assert_allclose(buf.sample_weights(), 0.7 * ps / ps.sum() + 0.1, rtol=1e-12)
    buf.is_dataset[:2] = True
    assert buf.dataset_mass == pytest.approx(0.7 * ps[:2].sum() / ps.sum() + 0.2, rel=1e-12)


def test_level_buffer_timestamps_and_kappa_ramp_by_hand():
    """observe_new counts sampling events (1, 2, 3); a level admitted with timestamp 1 after 3
    events has staleness 3 - 1 = 2. kappa ramps linearly: start .2, end .6 over fractions
    .25 to .75, so progress .5 gives .4, and it is clamped outside the ramp."""
    buf = LevelBuffer(2, staleness_coef=0.5, seed=0)
    assert [buf.observe_new() for _ in range(3)] == [1, 2, 3]
    adm = buf.admit("lvl", 0.7, timestamp=1)
    assert adm.slot == 0 and adm.evicted is None and buf.staleness[0] == 2.0
    assert buf.grounded[0] == -np.inf  # no grounded value given: never solved
    assert buf.admit("other", 0.1).slot == 1 and buf.staleness[1] == 0.0
    assert (buf.n_proposed, buf.n_admitted) == (2, 2)
    assert buf.admit("low", 0.05).slot is None  # below every occupant's score: rejected
    assert (buf.n_proposed, buf.n_admitted) == (3, 2)
    ramp = LevelBuffer(2, secondary_strategy="gae", secondary_coef_start=0.2,
                       secondary_coef_end=0.6, secondary_fraction_start=0.25,
                       secondary_fraction_end=0.75)
    assert ramp.set_progress(0.5) == pytest.approx(0.4)
    assert ramp.set_progress(0.1) == pytest.approx(0.2)
    assert ramp.set_progress(1.0) == pytest.approx(0.6)


def test_drrpo_two_seed_interval_and_defaults():
    """Two seeds (slopes .4 and .8): half-width t_{0.975,1} * std / sqrt 2 with std = .4 /
    sqrt 2, i.e. 12.706 * .2 = 2.54; log_spaced_episodes defaults to 20 points from K = 1;
    the fit record is frozen. Fails with ``n > 2`` for the interval or other defaults."""
    K = np.array([1, 10, 100])
    R = np.stack([K**0.4, 2.0 * K**0.8]).astype(float)
    fit = drrpo.fit_loglog_slope(K, R)
    assert fit.slope == pytest.approx(0.6)
    assert fit.high - fit.slope == pytest.approx(T975[1] * 0.2, rel=1e-9)
    assert fit.n_seeds == 2 and fit.confidence == 0.95
    with pytest.raises(AttributeError):
        fit.slope = 0.0
    grid = drrpo.log_spaced_episodes(10**4)
    assert grid.size == 20 and grid[0] == 1 and grid[-1] == 10**4
    np.testing.assert_array_equal(grid, drrpo.log_spaced_episodes(10**4, 20, 1))


@pytest.mark.parametrize("fixed", [True, False])
def test_level_buffer_eviction_slot_by_hand(fixed):
    """A full buffer: slot 0 a dataset level with the lowest replay weight (score .1, rank 2),
    slot 1 a generated level (score .9). The next slot is the lowest weight one, with dataset
    levels counting as +inf when fixed: slot 1 when fixed, slot 0 otherwise. One-step and
    empty fragments: a one-step gae is the advantage itself; no step is an error."""
    from robustrl.agents.dred.level_buffer import fragment_score

    buf = LevelBuffer(2, staleness_coef=0.0, dataset_levels_fixed=fixed, seed=0)
    buf.add_dataset_levels(["data"])
    buf.update_scores(0, 0.1)
    assert buf.admit("gen", 0.9).slot == 1
    assert buf.next_slot() == (1 if fixed else 0)
    assert fragment_score("gae", [2.0], [0.5]) == 1.5
    with pytest.raises(ValueError, match="returns"):
        fragment_score("gae", [], [])


def test_coverability_of_a_linear_mdp_by_hand():
    """The one-hot linear MDP (start uniform on states 1, 2; from there every factor is
    uniform on states 1, 2): each step has max occupancy .5 on states 1 and 2 for both
    actions, so the per-step coefficient is (.5 + .5) * 2 = 2. A LinearMDP is converted to its
    finite model; anything else is a ValueError naming ``model``."""
    lin = _one_hot_model(horizon=2)
    np.testing.assert_allclose(coverability.coverability_coefficient(lin, per_step=True),
                               [2.0, 2.0], rtol=1e-12)
    assert coverability.coverability_coefficient_lp(lin) == pytest.approx(2.0, abs=1e-8)
    with pytest.raises(ValueError, match="model"):
        coverability.coverability_coefficient(np.zeros((2, 2)))


def test_level_buffer_partial_support_and_empty_replay():
    """Capacity 4 with 3 visited levels (scores .2, .9, .5, T = .5, no staleness): the rank
    term is normalised over the visited slots only, (4, 36, 9, 0) / 49; with staleness .4 on
    an all-zero staleness the fallback is uniform over the visited slots (1/3 each, 0 for the
    empty slot). Replaying from a buffer with no visited level is a ValueError."""
    buf = LevelBuffer(4, temperature=0.5, staleness_coef=0.0, seed=0)
    with pytest.raises(ValueError, match="no visited level"):
        buf.sample_replay()
    buf.occupied[:3] = True
    buf.visited[:3] = True
    buf.scores[:3] = [0.2, 0.9, 0.5]
    np.testing.assert_allclose(buf.sample_weights(), np.array([4, 36, 9, 0]) / 49, rtol=1e-12)
    buf.staleness_coef = 0.4
    np.testing.assert_allclose(buf.sample_weights(),
                               0.6 * np.array([4, 36, 9, 0]) / 49 + 0.4 * np.array(
                                   [1, 1, 1, 0]) / 3, rtol=1e-12)


def test_level_buffer_grounded_values_and_empty_support_fallback():
    """Grounded values start at -inf and keep the largest value seen (.5 then .2 -> .5). A
    staleness term on the "dataset" support with no dataset level falls back to uniform over
    the visited levels: P = .6 (4, 36, 9) / 49 + .4 (1, 1, 1) / 3."""
    buf = _buffer(temperature=0.5, staleness_coef=0.4, staleness_support="dataset")
    assert np.all(buf.grounded == -np.inf)
    buf.update_scores(1, 0.9, grounded_value=0.5)
    buf.update_scores(1, 0.9, grounded_value=0.2)
    assert buf.grounded[1] == 0.5 and buf.grounded[0] == -np.inf
    part = LevelBuffer(4, temperature=0.5, staleness_coef=0.4, staleness_support="dataset",
                       seed=0)
    part.occupied[:3] = part.visited[:3] = True
    part.scores[:3] = [0.2, 0.9, 0.5]  # slot 3 empty: uniform over the 3 visited slots
    np.testing.assert_allclose(part.sample_weights(), 0.6 * np.array([4, 36, 9, 0]) / 49
                               + 0.4 * np.array([1, 1, 1, 0]) / 3, rtol=1e-12)
    one = LevelBuffer(1, seed=0)  # the smallest buffer: one slot, always replayed
    one.admit("only", 0.3)
    assert one.sample_replay() == 0 and one.sample_weights().tolist() == [1.0]
    np.testing.assert_allclose(buf.sample_weights(),
                               0.6 * np.array([4, 36, 9]) / 49 + 0.4 / 3, rtol=1e-12)


UNIT_INTERVAL = ("secondary_coef_start", "secondary_coef_end", "staleness_coef", "replay_prob",
                 "fill_threshold")


@pytest.mark.parametrize("name", UNIT_INTERVAL)
def test_level_buffer_unit_interval_arguments_at_both_ends(name):
    """Coefficients and probabilities accept 0 and 1 and reject -.01 and 1.01 with a
    ValueError naming the argument; temperatures must be > 0."""
    for ok in (0.0, 1.0):
        assert getattr(LevelBuffer(2, **{name: ok}), name) == ok
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match=name):
            LevelBuffer(2, **{name: bad})
    assert LevelBuffer(2, secondary_fraction_start=0.0,
                       secondary_fraction_end=1.0).secondary_fraction_end == 1.0
    for frac in ("secondary_fraction_start", "secondary_fraction_end"):
        with pytest.raises(ValueError, match=frac):
            LevelBuffer(2, **{frac: 1.01 if frac.endswith("end") else -0.01})
    for temp in ("temperature", "secondary_temperature", "staleness_temperature"):
        with pytest.raises(ValueError, match=temp):
            LevelBuffer(2, **{temp: 0.0})
