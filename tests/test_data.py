import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv


@pytest.fixture(scope="module")
def sim_dataset():
    return OfflineDataset.collect(SimulatedLinearMDPEnv(), 40, seed=3)


def test_collect_shapes_and_consistency_with_the_environment(sim_dataset):
    ds = sim_dataset
    env = SimulatedLinearMDPEnv()
    assert (ds.n_trajectories, ds.horizon, ds.feature_dim, ds.n_actions) == (40, 3, 4, 16)
    assert len(ds) == 40 * 3  # no early termination in this MDP
    phi = env.model.phi
    for k in range(5):
        for h in range(3):
            s, step = ds.observations[k, h].astype(int)
            assert step == h
            np.testing.assert_allclose(ds.features[k, h], phi[s, ds.actions[k, h]])
            s_next = int(ds.next_observations[k, h, 0])
            np.testing.assert_allclose(ds.next_action_features[k, h], phi[s_next])
            # reward = phi^T theta_h exactly in this MDP
            assert ds.rewards[k, h] == pytest.approx(phi[s, ds.actions[k, h]] @ env.model.theta[h])
    assert ds.terminal[:, -1].all() and not ds.terminal[:, :-1].any()


def test_same_seed_same_data_and_different_seed_different_data(sim_dataset):
    again = OfflineDataset.collect(SimulatedLinearMDPEnv(), 40, seed=3)
    np.testing.assert_array_equal(sim_dataset.actions, again.actions)
    np.testing.assert_array_equal(sim_dataset.next_observations, again.next_observations)
    other = OfflineDataset.collect(SimulatedLinearMDPEnv(), 40, seed=4)
    assert not np.array_equal(sim_dataset.actions, other.actions)


def test_uniform_behaviour_covers_all_actions_evenly():
    ds = OfflineDataset.collect(SimulatedLinearMDPEnv(), 400, seed=0)
    counts = np.bincount(ds.actions.ravel(), minlength=16)
    n = ds.actions.size
    # binomial(n, 1/16): 5 standard deviations
    assert np.all(np.abs(counts - n / 16) < 5 * np.sqrt(n / 16 * 15 / 16))


def test_behaviour_policy_forms():
    env = SimulatedLinearMDPEnv()
    table = np.full((3, 5), 7, dtype=np.int64)
    ds = OfflineDataset.collect(env, 5, behaviour_policy=table, seed=0)
    assert np.all(ds.actions == 7)
    ds = OfflineDataset.collect(env, 5, behaviour_policy=lambda obs: 2, seed=0)
    assert np.all(ds.actions == 2)


def test_early_termination_is_masked_with_zero_features():
    env = AmericanPutEnv(horizon=6, feature_dim=8)
    ds = OfflineDataset.collect(env, 30, seed=1)  # random behaviour exercises early
    assert (~ds.valid).any()
    assert np.all(ds.features[~ds.valid] == 0)
    # every trajectory ends with exactly one terminal transition
    assert np.all(ds.terminal.sum(axis=1) == 1)
    feats, rewards, naf, next_valid = ds.by_step()
    assert feats.shape == (6, 30, 8) and naf.shape == (6, 30, 2, 8)
    assert not next_valid[-1].any()
    step0 = ds.step(0)
    assert step0.features.shape[0] == 30


def test_save_load_roundtrip(tmp_path, sim_dataset):
    path = sim_dataset.save(tmp_path / "ds.npz")
    loaded = OfflineDataset.load(path)
    for name in ("observations", "actions", "rewards", "features", "next_action_features",
                 "valid", "terminal"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(sim_dataset, name))
    assert loaded.metadata == sim_dataset.metadata
    assert _step_major(loaded.features) and _step_major(loaded.next_action_features)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_subset(sim_dataset):
    sub = sim_dataset.subset(10)
    assert sub.n_trajectories == 10
    np.testing.assert_array_equal(sub.actions, sim_dataset.actions[:10])
    with pytest.raises(ValueError, match="n_trajectories"):
        sim_dataset.subset(0)


def _step_major(a):
    return np.swapaxes(a, 0, 1).flags.c_contiguous


def test_arrays_are_kept_step_major(sim_dataset):
    """Collected, loaded or built from trajectory-major (C-contiguous) arrays, every ``(K, H,
    ...)`` array is step-major in memory (the compiled pass reads a step's samples
    contiguously, without a copy per fit); step-major inputs are taken as they are; the
    values and a fit do not depend on the input's layout."""
    from robustrl.agents import PEVI

    names = ("observations", "actions", "rewards", "next_observations", "features",
             "next_action_features", "valid", "terminal")
    assert all(_step_major(getattr(sim_dataset, k)) for k in names)
    trajectory_major = {k: np.ascontiguousarray(getattr(sim_dataset, k)) for k in names}
    assert not any(_step_major(a) for a in trajectory_major.values())
    rebuilt = OfflineDataset(**trajectory_major)
    for k in names:
        assert _step_major(getattr(rebuilt, k))
        np.testing.assert_array_equal(getattr(rebuilt, k), getattr(sim_dataset, k))
    same = OfflineDataset(**{k: getattr(sim_dataset, k) for k in names})
    assert all(np.shares_memory(getattr(same, k), getattr(sim_dataset, k)) for k in names)
    env = SimulatedLinearMDPEnv()
    np.testing.assert_array_equal(PEVI(env).fit(rebuilt).weights_,
                                  PEVI(env).fit(sim_dataset).weights_)


def _arrays(ds):
    return {k: getattr(ds, k).copy() for k in (
        "observations", "actions", "rewards", "next_observations", "features",
        "next_action_features", "valid", "terminal")}


def test_bad_input_raises_naming_the_argument(sim_dataset, tmp_path):
    a = _arrays(sim_dataset)
    a["rewards"][0, 0] = np.nan
    with pytest.raises(ValueError, match="rewards must be finite"):
        OfflineDataset(**a)
    a = _arrays(sim_dataset)
    a["features"] = a["features"][:, :, :3]
    with pytest.raises(ValueError, match="next_action_features"):
        OfflineDataset(**a)
    a = _arrays(sim_dataset)
    a = {k: v[:0] for k, v in a.items()}
    with pytest.raises(ValueError, match="empty"):
        OfflineDataset(**a)
    a = _arrays(sim_dataset)
    a["valid"][:] = False
    a["terminal"][:] = False
    a["features"][:] = 0
    with pytest.raises(ValueError, match="empty"):
        OfflineDataset(**a)
    a = _arrays(sim_dataset)
    a["actions"][0, 0] = 16
    with pytest.raises(ValueError, match="actions"):
        OfflineDataset(**a)
    with pytest.raises(ValueError, match="n_trajectories"):
        OfflineDataset.collect(SimulatedLinearMDPEnv(), 0)
    with pytest.raises(ValueError, match="seed"):
        OfflineDataset.collect(SimulatedLinearMDPEnv(), 2, seed=-1)
    with pytest.raises(ValueError, match="path"):
        OfflineDataset.load(tmp_path / "missing.npz")
