import numpy as np
import pytest

from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv
from robustrl.evaluation import evaluate, evaluate_exact
from robustrl.exact import evaluate_policy


def sim(q):
    return SimulatedLinearMDPEnv(perturbation=q)


GRID = [0.0, 0.5, 1.0]


def test_monte_carlo_matches_exact_within_sampling_error():
    policy = np.zeros((3, 5), dtype=np.int64)
    mc = evaluate(policy, sim, GRID, episodes=2000, seed=0)
    ex = evaluate_exact(policy, sim, GRID)
    assert ex.returns.shape == (3, 1) and ex.exact
    z = np.abs(mc.mean - ex.mean) / np.maximum(mc.stderr, 1e-12)
    assert np.all(z < 4.5), (mc.mean, ex.mean, mc.stderr)


def test_exact_evaluation_equals_the_dp_value_of_the_perturbed_model():
    policy = np.random.default_rng(0).integers(16, size=(3, 5))
    ex = evaluate_exact(policy, sim, GRID)
    for j, q in enumerate(GRID):
        assert ex.mean[j] == pytest.approx(evaluate_policy(sim(q).model, policy).value, abs=1e-12)


def test_exact_put_option_uses_the_binomial_tree():
    def hold_then_exercise_below_97(obs):
        return int(obs[0] < 97.0)

    factory = lambda p: AmericanPutEnv(perturbation=p, horizon=6, initial_price=100.0)  # noqa: E731
    ex = evaluate_exact(hold_then_exercise_below_97, factory, [0.2, 0.8])
    mc = evaluate(hold_then_exercise_below_97, factory, [0.2, 0.8], episodes=3000, seed=1)
    assert np.all(np.abs(mc.mean - ex.mean) < 4.5 * mc.stderr + 1e-9)
    # price falls more often when p is small, so the put pays more
    assert ex.mean[0] > ex.mean[1]


def test_reproducible_by_seed_and_policy_forms_agree():
    table = np.full((3, 5), 5, dtype=np.int64)

    class Predictor:
        def predict(self, obs, deterministic=True):
            return np.array(5), None

    a = evaluate(table, sim, GRID, episodes=50, seed=7)
    b = evaluate(Predictor(), sim, GRID, episodes=50, seed=7)
    c = evaluate(lambda obs: 5, sim, GRID, episodes=50, seed=7)
    d = evaluate(table, sim, GRID, episodes=50, seed=8)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.returns, c.returns)
    assert not np.array_equal(a.returns, d.returns)


def test_env_class_as_factory_and_result_export():
    res = evaluate(lambda obs: 0, SimulatedLinearMDPEnv, [0.1, 0.9], episodes=5, seed=0)
    d = res.to_dict()
    assert d["perturbations"] == [0.1, 0.9] and d["episodes"] == 5 and len(d["mean"]) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="episodes"):
        evaluate(lambda obs: 0, sim, GRID, episodes=0)
    with pytest.raises(ValueError, match="perturbations"):
        evaluate(lambda obs: 0, sim, [], episodes=1)
    with pytest.raises(ValueError, match="policy"):
        evaluate("not a policy", sim, GRID, episodes=1)
    with pytest.raises(ValueError, match="seed"):
        evaluate(lambda obs: 0, sim, GRID, episodes=1, seed=-3)
    with pytest.raises(ValueError, match="env_factory"):
        evaluate(lambda obs: 0, 42, GRID, episodes=1)
