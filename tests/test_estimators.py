"""Offline estimators as values: the estimator= argument, both pass paths, deprecated names."""

import numpy as np
import pytest
from test_offline_agents import TableEnv, exact_dataset, one_hot_model

from robustrl.agents import DRPVI, PEVI
from robustrl.agents.estimators import Regression, TVDual


def test_row_and_moment_paths_agree_on_the_plain_regression():
    """PEVI's moment path (Regression: Phi^T V accumulated) and the row path (TVDual with
    radius 0: Xi on the distinct values) are the same regression by different sums."""
    model = one_hot_model()
    env, data = TableEnv(model), exact_dataset(model)
    moment = PEVI(env, beta=0.0).fit(data)
    rows = PEVI(env, beta=0.0, estimator=TVDual(rho=0.0)).fit(data)
    assert isinstance(moment._estimator, Regression)
    np.testing.assert_allclose(rows.weights_, moment.weights_, rtol=0, atol=1e-10)
    # a radius that bites moves the weights (the estimator passed in is the one that runs)
    robust = PEVI(env, beta=0.0, estimator=TVDual(rho=0.5)).fit(data)
    assert np.abs(robust.weights_ - moment.weights_).max() > 1e-3
    drpvi = DRPVI(env, rho=0.5, beta=0.0, reward="estimated", bonus="paper_l1").fit(data)
    np.testing.assert_allclose(robust.weights_, drpvi.weights_, rtol=0, atol=1e-12)


def test_bad_estimator_and_deprecated_names():
    model = one_hot_model()
    env, data = TableEnv(model), exact_dataset(model)
    with pytest.raises(ValueError, match="estimator"):
        PEVI(env, estimator="chi2")
    with pytest.raises(ValueError, match="rho"):
        TVDual(rho=-1.0)
    agent = PEVI(env).fit(data)
    for old in ("weights", "lambda_inv", "n_samples"):
        with pytest.warns(DeprecationWarning, match=f"{old}_"):
            assert getattr(agent, old) is getattr(agent, old + "_")
    with pytest.raises(AttributeError):
        agent.nonexistent  # noqa: B018
