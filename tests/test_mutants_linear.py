"""Hand-computed tests for the linear-MDP agents, the softmax policies and the NumPy twins.

Written against the survivors of a seeded mutation sample (tools/mutate.py, docs/dev/mutation.md):
each test names the bug it catches. Expected values are worked out by hand in the docstrings.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from robustrl.agents import DRPVI, DRRPO, DRVI_L, PEVI, R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv


@pytest.fixture(scope="module")
def env():
    return SimulatedLinearMDPEnv()


# ------------------------------------------------------------------------------ linear agents
DOCUMENTED_DEFAULTS = {
    PEVI: {"ridge": 0.1, "beta": 1.0, "reward": "estimated", "truncate_below": True},
    DRPVI: {"rho": 0.1, "ridge": 0.1, "beta": 1.0, "bonus": "paper_l1", "reward": "estimated",
            "v_min": 0.0, "truncate_below": True},
    DRVI_L: {"rho": 0.1, "z_floor": 1e-6, "centered": False, "ridge": 0.1, "beta": 1.0,
             "bonus": "paper_l1", "reward": "estimated", "truncate_below": True},
    R2PVI: {"divergence": "tv", "lam": 0.1, "ridge": 0.1, "beta": 1.0, "bonus": "paper_l1",
            "reward": "estimated", "v_min": "data", "variance_aware": False,
            "truncate_below": True},
    DRRPO: {"rho": 0.1, "divergence": "tv", "tau": 0.1, "eta": 1.0, "reference_policy": None,
            "policy_q": "clipped", "evaluation": "current", "clip_value": True, "v_min": 0.0,
            "ridge": 0.1, "beta": 1.0, "bonus": "d_rectangular_l1"},
}


@pytest.mark.parametrize("cls", list(DOCUMENTED_DEFAULTS), ids=lambda c: c.__name__)
def test_default_hyperparameters_are_the_documented_ones(env, cls):
    """Catches a changed default (ridge 0.1 -> 1.1, beta 1 -> 0 or 2, truncate_below, centered,
    clip_value flipped, v_min 0 -> -1, ...): the defaults are the simulated-MDP settings of
    arXiv:2411.18612 (docs/r2pvi-results.md) that the class docstrings and docs/algorithms state,
    and a user who passes nothing reads results at them."""
    params = cls(env).get_hyperparams()
    for name, want in DOCUMENTED_DEFAULTS[cls].items():
        assert params[name] == want, (cls.__name__, name, params[name])
        assert type(params[name]) is type(want), (cls.__name__, name)


def test_z_floor_must_lie_strictly_inside_zero_one(env):
    """Catches an inclusive bound on DRVI-L's z_floor: ``z_floor = 0`` would let ``log z`` reach
    ``-inf`` and ``z_floor = 1`` clips every estimate to 1, so both are rejected naming it."""
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="z_floor"):
            DRVI_L(env, z_floor=bad)
    assert DRVI_L(env, z_floor=0.5).z_floor == 0.5


def _variance_problem():
    """Three steps (H = 3), two one-hot factors, max_reward = 0.5 (floor 0.25, cap 1.5),
    ridge 2; step 0 has four rows (two per factor), step 1 none, step 2 (the last) two rows."""
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    steps = [SimpleNamespace(features=np.array([e0, e0, e1, e1])),
             SimpleNamespace(features=np.zeros((0, 2))),
             SimpleNamespace(features=np.array([e0, e1]))]
    first = SimpleNamespace(next_values=[np.array([0.0, 1.5, 0.5, 0.5]), np.zeros(0),
                                         np.array([0.0, 0.0])])
    return steps, first


def test_r2pvi_variance_weights_by_hand():
    """``sigma_k^2 = max(R^2, clip(phi^T z2, 0, (RH)^2) - clip(phi^T z1, 0, RH)^2)`` with
    ``z1, z2`` the ridge regressions of ``V`` and ``V^2`` (arXiv:2411.18612, the variance-aware
    R2PVI). With ridge 2 and two rows per one-hot factor, ``z = sum / (2 + 2)``:

    * factor 0, V = (0, 1.5): z1 = 0.375, z2 = 2.25 / 4 = 0.5625, variance 0.5625 - 0.140625 =
      0.421875 > 0.25, weight 1 / 0.421875 = 64 / 27;
    * factor 1, V = (0.5, 0.5): z1 = 0.25, z2 = 0.125, variance 0.0625 < R^2 = 0.25, weight 4;
    * the empty step and the last step get weight 1.

    Catches ``R**2`` -> ``R*2`` (floor 1: weight 1 for factor 0), the lower clip of ``z2`` at 1
    instead of 0, ``V*V`` -> ``V/V``, the mean read from the ``V^2`` column, ``2 / sigma^2``, and a
    wrong test for the last or an empty step."""
    steps, first = _variance_problem()
    env = SimulatedLinearMDPEnv()
    agent = R2PVI(env, ridge=2.0, max_reward=0.5, variance_aware=True)
    got = agent._variance_weights(steps, first)
    assert [w.shape for w in got] == [(4,), (0,), (2,)]
    np.testing.assert_allclose(got[0], [64 / 27, 64 / 27, 4.0, 4.0], rtol=1e-12)
    np.testing.assert_array_equal(got[2], [1.0, 1.0])


def test_r2pvi_fit_stream_equals_fit_and_refuses_variance_aware(env):
    """Catches a negated ``variance_aware`` test in ``fit_stream`` (the plain agent then refuses
    to stream, or the variance-aware one streams without its weights) and in ``fit`` (the plain
    agent runs the weighted second pass)."""
    data = OfflineDataset.collect(env, 40, seed=0)
    plain = R2PVI(env, reward="known", beta=0.0).fit(data)
    streamed = R2PVI(env, reward="known", beta=0.0).fit_stream([data])
    np.testing.assert_allclose(streamed.weights_, plain.weights_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="variance_aware"):
        R2PVI(env, variance_aware=True).fit_stream([data])

