"""Neural robust targets: the regressed duals equal the exact regularised duals."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from robustrl.agents.neural._offline import train_regression  # noqa: E402
from robustrl.agents.neural._torch import EnsembleMLP  # noqa: E402
from robustrl.agents.neural.targets import (  # noqa: E402
    fit_stats,
    initial_offset,
    log_mean_columns,
    regression_targets,
    robust_value,
)
from robustrl.divergences import regularized_inner  # noqa: E402

torch.set_num_threads(1)
DIVERGENCES = ("tv", "kl", "chi2")


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_outer_map_of_exact_expectations_is_the_exact_dual(divergence):
    """With the exact conditional means as 'prediction', the outer map is the dual exactly,
    ties and many-valued V included (the chi2 grid then holds every distinct value)."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        n_states = int(rng.integers(2, 9))
        v = rng.uniform(0.0, 3.0, n_states)
        if trial % 3 == 0:
            v = np.round(v)  # ties
        p = rng.dirichlet(np.full(n_states, 0.5), size=4)
        lam = float(rng.choice([0.05, 0.3, 1.0, 5.0]))
        stats = fit_stats(v, divergence, lam, n_alpha=12)
        y = regression_targets(torch.tensor(v, dtype=torch.float64), stats)
        pred = torch.log(torch.tensor(p) @ torch.exp(y)) if divergence == "kl" else (
            torch.tensor(p) @ y)
        got = robust_value(pred, stats).numpy()
        np.testing.assert_allclose(got, regularized_inner(v, p, lam, divergence), atol=1e-9)


def test_chi2_grid_is_a_lower_bound_when_coarse():
    """Fewer grid points than distinct values: still a feasible alpha per point, so <= exact."""
    rng = np.random.default_rng(1)
    v = rng.uniform(0.0, 2.0, 50)
    p = rng.dirichlet(np.ones(50), size=5)
    stats = fit_stats(v, "chi2", 0.2, n_alpha=8)
    y = regression_targets(torch.tensor(v, dtype=torch.float64), stats)
    got = robust_value(torch.tensor(p) @ y, stats).numpy()
    exact = regularized_inner(v, p, 0.2, "chi2")
    assert np.all(got <= exact + 1e-12)
    assert np.max(exact - got) < 0.05


@pytest.mark.parametrize(("divergence", "spread"),
                         [("tv", 1.0), ("kl", 1.0), ("chi2", 1.0), ("kl", 10.0)])
def test_fitted_network_target_matches_exact_dual(divergence, spread):
    """A network regressed on (input, s') pairs weighted by p(s'|input) recovers
    -lam log E[exp(-V/lam)] (and the TV/chi2 analogues) to 1e-3. ``spread=10``: values up to
    25 with lam = 0.5, so exp(-V/lam) spans 1 .. 1e-22 (the log-space KL head's case)."""
    rng = np.random.default_rng(2)
    n_inputs, n_states, lam = 4, 5, 0.5
    x = rng.normal(size=(n_inputs, 3))
    v = spread * np.array([0.0, 0.4, 1.1, 1.7, 2.5])
    p = rng.dirichlet(np.ones(n_states), size=n_inputs)
    exact = regularized_inner(v, p, lam, divergence)

    stats = fit_stats(v, divergence, lam, n_alpha=8)
    inputs = torch.tensor(np.repeat(x, n_states, axis=0), dtype=torch.float64)
    values = torch.tensor(np.tile(v, n_inputs), dtype=torch.float64)
    weights = torch.tensor(p.ravel(), dtype=torch.float64)
    y = regression_targets(values, stats)
    log_cols = log_mean_columns(stats)
    mean, scale = initial_offset(y, log_cols), y.std(0).clamp(min=1e-6)
    gen = torch.Generator().manual_seed(0)
    net = EnsembleMLP(2, 3, y.shape[1], (64, 64), gen).double()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    train_regression(net, inputs, (y - mean) / scale, actions=None, n_actions=1,
                     weights=weights, steps=2000, batch_size=10_000, optimizer=opt,
                     rng=np.random.default_rng(0), scale=scale,
                     log_mask=torch.tensor(log_cols))
    with torch.no_grad():
        pred = net(torch.tensor(x, dtype=torch.float64)) * scale + mean  # (E, n, k)
        got = robust_value(pred, stats).numpy()
    for member in got:
        np.testing.assert_allclose(member, exact, atol=1e-3)
    # and the robust value is not just the plain mean (the test can fail)
    assert np.max(np.abs(p @ v - exact)) > 0.05


def test_fit_stats_rejects_bad_input():
    with pytest.raises(ValueError, match="divergence"):
        fit_stats([0.0, 1.0], "hellinger", 1.0)
    with pytest.raises(ValueError, match="lam"):
        fit_stats([0.0, 1.0], "kl", 0.0)
    with pytest.raises(ValueError, match="values"):
        fit_stats([], "kl", 1.0)
    with pytest.raises(ValueError, match="v_min"):
        fit_stats([0.5, 1.0], "tv", 1.0, v_min=0.7)
    with pytest.raises(ValueError, match="n_alpha"):
        fit_stats([0.5, 1.0], "chi2", 1.0, n_alpha=1)
