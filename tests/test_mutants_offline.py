"""Hand-computed checks that kill the mutants `tools/mutate.py` found surviving in the offline
side of the package: robustrl/bonus.py, robustrl/value_iteration.py, robustrl/data.py,
agents/_offline.py and agents/estimators.py (docs/dev/mutation.md lists them, third round).
Each test's docstring names the bug it catches; the expected numbers are worked out by hand in
the test, never read back from the code under test."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl import bonus


# ------------------------------------------------------------------------------------------
# robustrl/bonus.py
# ------------------------------------------------------------------------------------------
def test_bonus_none_keeps_the_batch_shape():
    """Bug: `bonus(..., "none")` returning zeros of the wrong shape (`phi.shape[:-0]`, i.e.
    `()`): a 0-d zero broadcasts in `assert_array_equal`, so the shape is checked itself."""
    phi = np.full((4, 3, 2), 0.5)
    got = bonus.bonus(phi, None, "none")
    assert got.shape == (4, 3)
    assert not got.any()


def test_bonus_of_a_single_feature_vector_is_a_scalar_for_every_name():
    """Bug: `bonus(..., "none")` rejecting a single 1-d feature vector (`ndim` range starting
    at 2) while the other names accept it. ``phi = (0.6, 0.8)``, ``Lambda^{-1} = I``:
    elliptical ``||phi||_2 = 1``, paper form ``||phi||_1 = 1.4``, none ``0``; all 0-d."""
    phi = np.array([0.6, 0.8])
    for name, want in (("elliptical", 1.0), ("d_rectangular_l1", 1.4), ("none", 0.0)):
        got = bonus.bonus(phi, np.eye(2), name)
        assert got.shape == ()
        assert float(got) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("name", ["elliptical", "d_rectangular_l1", "none"])
def test_bonus_accepts_32_dimensional_features_and_rejects_33(name):
    """Bug: the accepted number of feature dimensions (1..32, the error message's range)
    shrunk to 1..31 or grown to 1..33. With ``Lambda^{-1} = 4 I`` and ``phi = (1, 0)`` every
    bonus is ``sqrt(4) = 2`` (``"none"``: 0)."""
    phi = np.zeros((1,) * 31 + (2,))
    phi[..., 0] = 1.0
    got = bonus.bonus(phi, 4.0 * np.eye(2), name)
    assert got.shape == (1,) * 31
    np.testing.assert_allclose(got, 0.0 if name == "none" else 2.0, rtol=1e-15)
    with pytest.raises(ValueError, match=r"features must have 1 or .* or 32 dimensions"):
        bonus.bonus(phi[None], 4.0 * np.eye(2), name)


# ------------------------------------------------------------------------------------------
# robustrl/value_iteration.py
# ------------------------------------------------------------------------------------------
def _two_state_features():
    """``N = 2`` states, ``A = 2`` actions, ``d = 2``: ``phi(s, a) = e_a`` scaled by
    ``(1, 0.5)`` in state 1, so ``phi^T w`` is ``w_a`` in state 0 and ``w_a / 2`` in state 1."""
    phi = np.zeros((2, 2, 2))
    phi[0] = np.eye(2)
    phi[1] = 0.5 * np.eye(2)
    return phi


def test_greedy_q_values_defaults_are_no_bonus_one_step_horizon_one():
    """Bugs: the defaults of `greedy_q_values` (`beta=0`, `step=0`, `horizon=1`) changed, or
    the bonus switched on at `beta = 0` (`beta > 0` -> `beta >= 0`, which then demands
    `lambda_inv`). By hand, ``Q = clip(phi^T w, 0, horizon - step = 1)`` with
    ``w = (0.4, 3)``: state 0 ``(0.4, 1)`` (3 clipped to 1), state 1 ``(0.2, 1)``."""
    from robustrl import value_iteration as vi

    q = vi.greedy_q_values(_two_state_features(), np.array([0.4, 3.0]))
    np.testing.assert_allclose(q, [[0.4, 1.0], [0.2, 1.0]], rtol=1e-15)


def test_value_iteration_sign_must_be_plus_or_minus_one_not_a_bool():
    """Bug: `sign=True` / `sign=False` accepted (`isinstance(...) or` -> `and`): True would
    silently mean optimism (+1) and False a bonus of weight 0."""
    from robustrl import value_iteration as vi

    phi, w = _two_state_features(), np.array([0.4, 0.2])
    for sign in (True, False, 0, 2):
        with pytest.raises(ValueError, match=r"sign must be -1 \(pessimism\) or \+1"):
            vi.greedy_q_values(phi, w, np.eye(2), 0.1, sign=sign)
        with pytest.raises(ValueError, match=r"sign must be -1"):
            vi.backward_value_iteration(w[None], phi, np.eye(2)[None], 0.1, sign=sign)


def test_backward_value_iteration_default_is_pessimistic_and_beta_zero():
    """Bugs: `backward_value_iteration`'s default `sign=-1` (pessimism) flipped to +1, or its
    default `beta=0` moved. ``H = 1``, ``w = (0.5, 0.2)``, ``Lambda^{-1} = 0.04 I``: the
    elliptical bonus of ``e_a`` is ``0.2`` and of ``e_a / 2`` is ``0.1``; with ``beta = 1`` and
    the default sign, ``Q = clip(phi^T w - Gamma, 0, 1)``: state 0 ``(0.3, 0)``, state 1
    ``(0.15, 0)``. Without ``beta`` (default 0): ``phi^T w`` itself."""
    from robustrl import value_iteration as vi

    phi, w, inv = _two_state_features(), np.array([[0.5, 0.2]]), 0.04 * np.eye(2)[None]
    q, v, policy = vi.backward_value_iteration(w, phi, inv, 1.0)
    np.testing.assert_allclose(q[0], [[0.3, 0.0], [0.15, 0.0]], atol=1e-15)
    np.testing.assert_allclose(v, [[0.3, 0.15], [0.0, 0.0]], atol=1e-15)
    np.testing.assert_array_equal(policy, [[0, 0]])
    q0, _, _ = vi.backward_value_iteration(w, phi)
    np.testing.assert_allclose(q0[0], [[0.5, 0.2], [0.25, 0.1]], rtol=1e-15)


def test_bonus_none_with_positive_beta_needs_no_lambda_inv():
    """Bug: the bonus counted as active when only one of `bonus != "none"` and `beta > 0`
    holds (`and` -> `or`): `bonus="none"` with `beta = 2` would then demand `lambda_inv`."""
    from robustrl import value_iteration as vi

    q = vi.greedy_q_values(_two_state_features(), np.array([0.4, 0.2]), None, 2.0, 0, 3,
                           "none")
    np.testing.assert_allclose(q, [[0.4, 0.2], [0.2, 0.1]], rtol=1e-15)


# ------------------------------------------------------------------------------------------
# robustrl/data.py
# ------------------------------------------------------------------------------------------
def _tiny_dataset(K: int = 3, H: int = 2, A: int = 4, d: int = 2):
    """``K`` full trajectories of horizon ``H``: action ``a_{k,h} = (k + h) % A``, reward
    ``0.1 k + 0.01 h``, features ``(1, h)``, observations ``(k, h)``; terminal at the last step."""
    from robustrl.data import OfflineDataset

    arrays = OfflineDataset.empty_arrays(K, H, 2, d, A)
    for k in range(K):
        for h in range(H):
            arrays["observations"][k, h] = (k, h)
            arrays["next_observations"][k, h] = (k, h + 1)
            arrays["actions"][k, h] = (k + h) % A
            arrays["rewards"][k, h] = 0.1 * k + 0.01 * h
            arrays["features"][k, h] = (1.0, h)
            arrays["next_action_features"][k, h] = 1.0
            arrays["valid"][k, h] = True
    arrays["terminal"][:, -1] = True
    return OfflineDataset(**arrays, metadata={"name": "tiny"})


def test_dataset_repr_and_sizes_with_k_unequal_h():
    """Bugs: `__repr__` returning None (repr raises TypeError), `n_trajectories` / `horizon`
    reading the other axis of `actions (K, H)`, or `len` counting something else than the
    valid transitions. ``K = 3``, ``H = 2``, ``A = 4``, ``d = 2``: 6 transitions."""
    ds = _tiny_dataset()
    assert (ds.n_trajectories, ds.horizon, ds.n_actions, ds.feature_dim, len(ds)) == (3, 2, 4, 2, 6)
    assert repr(ds) == "OfflineDataset(K=3, H=2, d=2, A=4, transitions=6)"


def test_dataset_step_and_subset_bounds():
    """Bugs: `step(h)` accepting ``h = -1`` (which would silently return the last step) or
    ``h = H`` (an IndexError instead of a ValueError), or `subset` refusing one trajectory.
    By hand, step 1 of the tiny dataset has rewards ``0.01 + 0.1 k`` and actions ``(k+1) % 4``."""
    ds = _tiny_dataset()
    st = ds.step(1)
    np.testing.assert_allclose(st.rewards, [0.01, 0.11, 0.21], rtol=1e-15)
    np.testing.assert_array_equal(st.actions, [1, 2, 3])
    for h in (-1, 2):
        with pytest.raises(ValueError, match=r"h must lie in \[0, 1\]"):
            ds.step(h)
    one = ds.subset(1)
    assert one.n_trajectories == 1
    np.testing.assert_array_equal(one.actions, [[0, 1]])


def test_dataset_action_range_error_names_the_range_and_the_number_of_actions():
    """Bug: the error message's range or count (``[0, A - 1]``, ``A`` actions) off by one or
    reading the feature dimension; a negative action must be rejected too."""
    from robustrl.data import OfflineDataset

    ds = _tiny_dataset()
    for bad in (4, -1):
        arrays = {k: getattr(ds, k).copy() for k in (
            "observations", "actions", "rewards", "next_observations", "features",
            "next_action_features", "valid", "terminal")}
        arrays["actions"][1, 1] = bad
        with pytest.raises(ValueError, match=r"^actions must lie in \[0, 3\] "
                                             r"\(next_action_features has 4 actions\)$"):
            OfflineDataset(**arrays)


def test_collect_without_progress_writes_nothing(capsys):
    """Bug: the progress bar's switch inverted (`disable=not progress` -> `disable=progress`):
    a default collection would print a tqdm bar on stderr."""
    from robustrl.data import OfflineDataset
    from robustrl.envs import SimulatedLinearMDPEnv

    OfflineDataset.collect(SimulatedLinearMDPEnv(), 3, seed=0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_dataset_chunks_save_into_an_existing_folder_and_size_checks(tmp_path):
    """Bugs: `DatasetChunks.save` failing on a folder that already exists (`exist_ok=False`),
    or accepting ``trajectories_per_chunk = 0``. Three trajectories in chunks of two: files of
    2 and 1 trajectories, in order."""
    from robustrl.data import DatasetChunks

    ds = _tiny_dataset()
    chunks = DatasetChunks.save(ds, tmp_path, trajectories_per_chunk=2)
    assert [p.name for p in chunks.paths] == ["chunk_00000.npz", "chunk_00001.npz"]
    parts = list(chunks)
    assert [p.n_trajectories for p in parts] == [2, 1]
    np.testing.assert_allclose(parts[1].rewards, [[0.2, 0.21]], rtol=1e-15)
    assert parts[1].metadata == {"name": "tiny", "chunk": 1}
    with pytest.raises(ValueError, match="trajectories_per_chunk"):
        DatasetChunks.save(ds, tmp_path / "other", trajectories_per_chunk=0)


# ------------------------------------------------------------------------------------------
# agents/_offline.py
# ------------------------------------------------------------------------------------------
def _one_hot_dataset(K: int, H: int = 3, d: int = 4, A: int = 16):
    """``K`` trajectories on SimulatedLinearMDPEnv's spaces (``H = 3``, ``d = 4``, ``A = 16``):
    trajectory ``k`` has features ``e_{k mod 4}`` at every step and reward
    ``0.1 (k mod 4 + 1) + 0.05 h``; next-state features are zero, so every next-state value
    is ``clip(0 - beta * 0, 0, .) = 0`` and each step's weights are the ridge reward fit."""
    from robustrl.data import OfflineDataset

    arrays = OfflineDataset.empty_arrays(K, H, 2, d, A)
    i = np.arange(K) % d
    for h in range(H):
        arrays["observations"][:, h] = np.stack([i, np.full(K, h)], axis=1)
        arrays["next_observations"][:, h] = np.stack([i, np.full(K, h + 1)], axis=1)
        arrays["features"][np.arange(K), h, i] = 1.0
        arrays["rewards"][:, h] = 0.1 * (i + 1) + 0.05 * h
    arrays["valid"][:] = True
    arrays["terminal"][:, -1] = True
    return OfflineDataset(**arrays)


@pytest.mark.filterwarnings("ignore:PEVI. after fit, every action's Q ties")  # V_next = 0
@pytest.mark.parametrize("K", [40, 4400])
def test_pevi_weights_on_one_hot_data_are_per_feature_ridge_means(K):
    """Bugs in the moment sums ``Phi^T r`` (e.g. `moment[:, 0] += ...` -> `-=` on the BLAS path
    that large chunks take: ``K d = 17,600 > 2^14`` entries). One-hot features make the ridge
    fit per feature: ``w_h[i] = sum_{k: k mod 4 = i} r_k / (n_i + ridge)`` with ``n_i = K / 4``
    rows, i.e. ``(0.1 (i + 1) + 0.05 h) n_i / (n_i + 0.1)``."""
    from robustrl.agents import PEVI
    from robustrl.envs import SimulatedLinearMDPEnv

    agent = PEVI(SimulatedLinearMDPEnv(), ridge=0.1, beta=1.0).fit(_one_hot_dataset(K))
    n_i = K / 4
    want = np.array([[(0.1 * (i + 1) + 0.05 * h) * n_i / (n_i + 0.1) for i in range(4)]
                     for h in range(3)])
    np.testing.assert_allclose(agent.weights_, want, rtol=1e-12)
    np.testing.assert_array_equal(agent.n_samples_, [K, K, K])
    np.testing.assert_allclose(agent.lambda_inv_[0], np.eye(4) / (n_i + 0.1), rtol=1e-12)


def test_pevi_with_sixteen_dense_features_matches_the_lsvi_twin():
    """Bugs on the BLAS path of the elliptical bonus, which only dense features with
    ``d >= 16`` take (`_elliptical_by_blas`: a wrong floor `np.maximum(quad, 1.0)`, a wrong
    reshape, a missing return): the fit must equal the plain NumPy least-squares pass
    (`robustrl.reference.value_iteration.lsvi_backward_pass`, PEVI of Jin, Yang & Wang 2021,
    docs/algorithms/pevi.md) on RandomLinearMDPEnv's 16 dense features."""
    from robustrl.agents import PEVI
    from robustrl.data import OfflineDataset
    from robustrl.envs.random_linear_mdp import RandomLinearMDPEnv
    from robustrl.reference.value_iteration import lsvi_backward_pass

    env = RandomLinearMDPEnv(horizon=3)
    data = OfflineDataset.collect(env, 200, seed=0)
    assert env.unwrapped.model.feature_dim == 16 and np.mean(data.features != 0) > 0.5
    agent = PEVI(env, ridge=0.1, beta=0.5).fit(data)
    feats, rewards, next_feats, next_valid = data.by_step()
    weights, lambda_inv, _ = lsvi_backward_pass(feats, rewards, next_feats, next_valid, 0.1,
                                                0.5, "elliptical", -1)
    np.testing.assert_allclose(agent.weights_, weights, rtol=0, atol=1e-10)
    np.testing.assert_allclose(agent.lambda_inv_, lambda_inv, rtol=0, atol=1e-12)
