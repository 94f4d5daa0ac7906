import numpy as np
import pytest

from robustrl.models import FiniteMDP, LinearMDP


def _random_linear(rng, S=4, A=3, d=3, H=2):
    phi = rng.dirichlet(np.ones(d), size=(S, A))
    mu = rng.dirichlet(np.ones(S), size=(H, d))
    theta = rng.uniform(size=(H, d))
    return LinearMDP(phi, mu, theta, np.full(S, 1.0 / S))


def test_linear_mdp_kernel_and_rewards_are_the_factor_mixtures():
    rng = np.random.default_rng(0)
    m = _random_linear(rng)
    h, s, a = 1, 2, 1
    expected_row = sum(m.phi[s, a, i] * m.mu[h, i] for i in range(m.feature_dim))
    np.testing.assert_allclose(m.P[h, s, a], expected_row)
    assert m.R[h, s, a] == pytest.approx(m.phi[s, a] @ m.theta[h])
    f = m.to_finite()
    assert isinstance(f, FiniteMDP)
    assert (f.horizon, f.n_states, f.n_actions) == (2, 4, 3)


def test_models_reject_bad_input_naming_the_argument():
    rng = np.random.default_rng(1)
    m = _random_linear(rng)
    bad_phi = m.phi.copy()
    bad_phi[0, 0] = 0.0
    with pytest.raises(ValueError, match="phi"):
        LinearMDP(bad_phi, m.mu, m.theta, m.initial_distribution)
    with pytest.raises(ValueError, match="theta"):
        LinearMDP(m.phi, m.mu, m.theta[:, :2], m.initial_distribution)
    with pytest.raises(ValueError, match="mu"):
        LinearMDP(m.phi, m.mu[:, :2], m.theta, m.initial_distribution)
    R = m.R.copy()
    R[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="R must be finite"):
        FiniteMDP(m.P, R, m.initial_distribution)
    with pytest.raises(ValueError, match="initial_distribution"):
        FiniteMDP(m.P, m.R, np.ones(4))
    with pytest.raises(ValueError, match="P"):
        FiniteMDP(m.P[..., :3], m.R, m.initial_distribution)
