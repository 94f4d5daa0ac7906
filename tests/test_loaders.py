"""Loaders treat files as data: nothing runs from a file, every loaded array is checked against
the agent's (H, d, |A|), damaged files raise a ValueError naming the file (and the array)."""

from __future__ import annotations

import base64
import json
import math
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from robustrl.agents.drrpo import DRRPO
from robustrl.agents.lsvi_ucb import DRLSVIUCB, LSVIUCB
from robustrl.data import DatasetChunks, OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv

# ------------------------------------------------------------------------------- helpers


class _Touch:
    """Unpickling this object creates ``path`` (the stand-in for arbitrary code)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _malicious_sb3_zip(path: pathlib.Path, sentinel: pathlib.Path) -> pathlib.Path:
    """An SB3-style archive whose ``data`` entry holds a pickled payload (SB3 stores
    non-JSON attributes as base64 cloudpickle under ``":serialized:"``): loading it with SB3's
    ``PPO.load`` unpickles the payload, which creates ``sentinel``."""
    payload = base64.b64encode(pickle.dumps(_Touch(sentinel))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": payload},
            "observation_space": {":type:": "<class 'type'>", ":serialized:": payload}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps(data))
        zf.writestr("_stable_baselines3_version", "2.9.2")
        zf.writestr("system_info.txt", "")
    return path


def _rewrite_npz(src: pathlib.Path, dst: pathlib.Path, **changes) -> pathlib.Path:
    """Copy the ``.npz`` ``src`` to ``dst`` with some arrays replaced (None drops one)."""
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(dst, **arrays)
    return dst


def _zip_data_spans(path: pathlib.Path) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` byte spans of the stored (uncompressed) entries' data."""
    spans = []
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            off = info.header_offset
            name_len = int.from_bytes(raw[off + 26: off + 28], "little")
            extra_len = int.from_bytes(raw[off + 28: off + 30], "little")
            start = off + 30 + name_len + extra_len
            spans.append((info.filename, start, start + info.compress_size))
    return spans


def _largest_storage(path: pathlib.Path) -> tuple[int, int]:
    """Byte span of the largest tensor storage (``archive/data/N``) of a ``torch.save`` file."""
    spans = [(a, b) for name, a, b in _zip_data_spans(path) if "/data/" in name]
    return max(spans, key=lambda s: s[1] - s[0])


def _flip(path: pathlib.Path, offset: int, bit: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1 << bit
    path.write_bytes(bytes(raw))


# ----------------------------------------------------- code execution from policy files


@pytest.fixture(scope="module")
def cave_levels():
    from robustrl.envs.cave_levels import generate_level_set

    return generate_level_set("train", 4, seed=0)


def _small_level_replay(levels):
    import torch

    from robustrl.agents.dred.training import LevelReplayPPO

    torch.set_num_threads(1)
    return LevelReplayPPO("uniform", levels, n_envs=2, n_steps=16, navigation_only=True,
                          device="cpu", seed=0)


def test_level_replay_policy_file_never_runs_code(tmp_path):
    from robustrl.agents.dred.training import LevelReplayPPO

    sentinel = tmp_path / "code_ran"
    evil = _malicious_sb3_zip(tmp_path / "policy.zip", sentinel)
    # SB3's PPO.load (the former implementation) unpickles the payload: the file appears.
    with pytest.raises(ValueError, match="policy.zip"):
        LevelReplayPPO.load_policy(evil, device="cpu")
    assert not sentinel.exists()


def test_behaviour_cache_entry_never_runs_code(tmp_path):
    import stable_baselines3 as sb3

    from robustrl import control_data as cd

    sentinel = tmp_path / "code_ran"
    config = {"env_id": "CartPole-v1", "algo": "ppo", "timesteps": 256, "seed": 0,
              "env_kwargs": {}, "hyperparams": cd._HYPERPARAMS["ppo"], "sb3": sb3.__version__}
    folder = cd.cache_dir(tmp_path)
    entry = folder / (cd._key("behaviour", config) + ".zip")  # the predictable cache path
    _malicious_sb3_zip(entry, sentinel)
    with pytest.raises(ValueError, match=entry.name):
        cd.train_behaviour_policy("CartPole-v1", algo="ppo", timesteps=256, seed=0,
                                  cache=tmp_path)
    assert not sentinel.exists()


def test_behaviour_cache_entry_checked(tmp_path):
    """A valid entry moved under another configuration's name, or a bit-flipped entry, is
    rejected with the file named; a good entry loads with identical predictions."""
    from robustrl import control_data as cd

    kw = dict(algo="ppo", timesteps=256, cache=tmp_path)
    first = cd.train_behaviour_policy("CartPole-v1", seed=0, **kw)
    (a,) = (tmp_path / "control").glob("behaviour-*.zip")  # seed 0's entry
    cd.train_behaviour_policy("CartPole-v1", seed=1, **kw)
    (b,) = set((tmp_path / "control").glob("behaviour-*.zip")) - {a}
    again = cd.train_behaviour_policy("CartPole-v1", seed=0, **kw)  # from the cache
    obs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(first.predict(obs, deterministic=True)[0],
                                  again.predict(obs, deterministic=True)[0])
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())  # entry of the other seed under this seed's name
    with pytest.raises(ValueError, match="configuration does not match"):
        cd.train_behaviour_policy("CartPole-v1", seed=0, **kw)
    a.write_bytes(a_bytes)
    start, end = _largest_storage(a)
    _flip(a, (start + end) // 2, 3)
    with pytest.raises(ValueError, match=a.name):
        cd.train_behaviour_policy("CartPole-v1", seed=0, **kw)


# ------------------------------------------------------------- LevelReplayPPO.save


def test_level_replay_save_is_atomic_and_returns_the_path(tmp_path, cave_levels, monkeypatch):
    import torch

    from robustrl.agents.dred.training import LevelReplayPPO, evaluate_levels

    agent = _small_level_replay(cave_levels)
    try:
        path = agent.save(tmp_path / "policy.zip")
        assert path == tmp_path / "policy.zip"
        before = path.read_bytes()
        real_save = torch.save

        def failing_save(obj, f, *args, **kwargs):  # dies part-way through writing
            if hasattr(f, "write"):
                f.write(b"partial")
            raise OSError("no space left on device")

        monkeypatch.setattr(torch, "save", failing_save)
        with pytest.raises(OSError, match="no space"):
            agent.save(path)
        monkeypatch.setattr(torch, "save", real_save)
        # the former direct SB3 save left a truncated, unloadable archive here
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.zip"]  # no temp files
        loaded = LevelReplayPPO.load_policy(path, device="cpu")
        want = evaluate_levels(agent.model, cave_levels, navigation_only=True, seed=1)
        got = evaluate_levels(loaded, cave_levels, navigation_only=True, seed=1)
        np.testing.assert_array_equal(got.returns, want.returns)
        # a bit flip inside the weights is caught by the checksum
        start, end = _largest_storage(path)
        _flip(path, (start + end) // 2, 5)
        with pytest.raises(ValueError, match="policy.zip.*sha256"):
            LevelReplayPPO.load_policy(path, device="cpu")
    finally:
        agent.close()


# ------------------------------------------- online agents: arrays checked against (H, d, A)


def _env():
    return SimulatedLinearMDPEnv()


@pytest.fixture(scope="module")
def drrpo_file(tmp_path_factory):
    agent = DRRPO(_env(), policy_q="clipped", eta=1.5, tau=0.2, seed=0).learn(total_episodes=6)
    return agent.save(tmp_path_factory.mktemp("drrpo") / "agent")


def _shrunk(a: np.ndarray, axis: int) -> np.ndarray:
    return np.take(a, range(a.shape[axis] - 1), axis=axis)


# (array, how to damage it, what the message names). With the former loader all of these were
# accepted: a short weights_/lambda_inv_ made the Numba kernels read past the array in predict
# (heap garbage: NaN in one run, 10.0 in the next) and a short data or policy array made learn
# write past it (SIGSEGV in 1 of 3 runs); data_steps_ = -1 was silently filed under the last
# step. Only the ValueError is asserted here: the old code is not run into a crash.
_DAMAGE = [
    ("param_weights_", lambda a: _shrunk(a, 0), "weights_"),
    ("param_weights_", lambda a: _shrunk(a, 1), "weights_"),
    ("param_lambda_inv_", lambda a: _shrunk(_shrunk(a, 1), 2), "lambda_inv_"),
    ("param_lambda_inv_", lambda a: a[:, :, :1], "lambda_inv_"),
    ("param_gram_", lambda a: _shrunk(a, 0), "gram_"),
    ("param_reward_moment_", lambda a: a.ravel(), "reward_moment_"),
    ("param_weights_", lambda a: np.where(a == a.flat[0], np.nan, a), "weights_"),
    ("param_lambda_inv_", lambda a: a.astype(str), "lambda_inv_"),
    ("param_n_updates_", lambda a: _shrunk(a, 0), "n_updates_"),
    ("param_data_steps_", lambda a: np.where(np.arange(a.size) == 0, -1, a), "data_steps_"),
    ("param_data_steps_", lambda a: np.where(np.arange(a.size) == 0, 99, a), "data_steps_"),
    ("param_data_steps_", lambda a: a.astype(np.float64) + 0.5, "data_steps_"),
    ("param_data_features_", lambda a: _shrunk(a, 1), "data_features_"),
    ("param_data_features_", lambda a: _shrunk(a, 0), "data_features_"),
    ("param_data_next_features_", lambda a: _shrunk(a, 1), "data_next_features_"),
    ("param_data_next_features_", lambda a: _shrunk(a, 2), "data_next_features_"),
    ("param_data_rewards_", lambda a: a + np.inf, "data_rewards_"),
    ("param_data_next_valid_", lambda a: a.astype(np.float64), "data_next_valid_"),
    ("param_regret_", lambda a: _shrunk(a, 0), "regret_"),
    ("param_gram_", lambda a: a * 1.01, "gram_"),
    ("param_reward_moment_", lambda a: a + 1.0, "reward_moment_"),
    ("param_policy_counts_", lambda a: a + 5, "policy_"),
    ("param_policy_counts_", lambda a: a - 5, "policy_counts_"),
    ("param_policy_w_", lambda a: _shrunk(a, 2), "policy_w_"),
    ("param_policy_b_", lambda a: _shrunk(a, 0), "policy_b_"),
    ("param_policy_coefs_", lambda a: a[:, None], "policy_coefs_"),
]


@pytest.mark.parametrize(("key", "damage", "named"), _DAMAGE,
                         ids=[f"{k[6:]}-{i}" for i, (k, _, _) in enumerate(_DAMAGE)])
def test_drrpo_load_rejects_arrays_that_do_not_fit(drrpo_file, tmp_path, key, damage, named):
    with np.load(drrpo_file) as f:
        bad = damage(f[key])
    path = _rewrite_npz(drrpo_file, tmp_path / "bad.npz", **{key: bad})
    with pytest.raises(ValueError, match=rf"bad\.npz.*{named}"):
        DRRPO.load(path, _env())


@pytest.mark.parametrize("cls", [LSVIUCB, DRLSVIUCB])
def test_lsvi_ucb_loads_check_arrays_too(tmp_path, cls):
    path = cls(_env(), seed=0).learn(total_episodes=4).save(tmp_path / "agent")
    with np.load(path) as f:
        lam = f["param_lambda_inv_"]
    bad = _rewrite_npz(path, tmp_path / "bad.npz", param_lambda_inv_=lam[:-1])
    with pytest.raises(ValueError, match=r"bad\.npz.*lambda_inv_"):
        cls.load(bad, _env())
    steps = _rewrite_npz(path, tmp_path / "steps.npz",
                         param_data_steps_=np.full_like(np.load(path)["param_data_steps_"], -1))
    with pytest.raises(ValueError, match=r"steps\.npz.*data_steps_"):
        cls.load(steps, _env())
    cls.load(path, _env()).learn(total_episodes=1)  # the untouched file still loads and trains


def test_loaded_agent_matches_and_keeps_learning(drrpo_file):
    agent = DRRPO.load(drrpo_file, _env())
    assert agent.n_episodes_ == 6
    agent.learn(total_episodes=2)
    assert agent.n_episodes_ == 8 and np.isfinite(agent.weights_).all()


# --------------------------------------------- npz read failures become ValueError + file


def _npz_damages(path: pathlib.Path, tmp_path: pathlib.Path):
    """(label, damaged copy) pairs: truncated, corrupted compressed bytes, not a zip,
    a missing array."""
    raw = path.read_bytes()
    out = []
    trunc = tmp_path / "truncated.npz"
    trunc.write_bytes(raw[: len(raw) // 2])
    out.append(("truncated", trunc))
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(raw)
    name, start, end = max(_zip_data_spans(flipped), key=lambda s: s[2] - s[1])
    _flip(flipped, start + (end - start) // 3, 6)
    out.append(("flipped", flipped))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x93NUMPY" + bytes(range(256)) * 4)
    out.append(("junk", junk))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    out.append(("empty", empty))
    return out


def test_agent_npz_read_failures_name_the_file(drrpo_file, tmp_path):
    for label, bad in _npz_damages(drrpo_file, tmp_path):
        with pytest.raises(ValueError, match=bad.name):
            DRRPO.load(bad, _env())
        assert label
    missing = _rewrite_npz(drrpo_file, tmp_path / "missing.npz", param_gram_=None)
    with pytest.raises(ValueError, match=r"missing\.npz.*param_gram_"):
        DRRPO.load(missing, _env())
    header = _rewrite_npz(drrpo_file, tmp_path / "header.npz",
                          header_json=np.array("{not json"))
    with pytest.raises(ValueError, match=r"header\.npz.*header_json"):
        DRRPO.load(header, _env())
    hyper = json.loads(str(np.load(drrpo_file)["header_json"]))
    hyper["hyperparams"]["no_such_option"] = 1
    extra = _rewrite_npz(drrpo_file, tmp_path / "extra.npz",
                         header_json=np.array(json.dumps(hyper)))
    with pytest.raises(ValueError, match=r"extra\.npz.*no_such_option"):
        DRRPO.load(extra, _env())


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    env = _env()
    return OfflineDataset.collect(env, 6, seed=0).save(tmp_path_factory.mktemp("ds") / "d")


def test_dataset_read_failures_name_the_file(dataset_file, tmp_path):
    for _, bad in _npz_damages(dataset_file, tmp_path):
        with pytest.raises(ValueError, match=bad.name):
            OfflineDataset.load(bad)
        with pytest.raises(ValueError, match=bad.name):
            list(DatasetChunks([dataset_file, bad]))
    missing = _rewrite_npz(dataset_file, tmp_path / "missing.npz", rewards=None)
    with pytest.raises(ValueError, match=r"missing\.npz.*rewards"):
        OfflineDataset.load(missing)


@pytest.mark.parametrize(("key", "damage", "named"), [
    ("actions", lambda a: a.astype(np.float64) + 0.5, "actions"),
    ("actions", lambda a: a + 100, "actions"),
    ("actions", lambda a: a - 100, "actions"),
    ("features", lambda a: a[:, :-1], "features"),
    ("next_action_features", lambda a: a[..., :-1], "next_action_features"),
    ("rewards", lambda a: np.full_like(a, np.nan), "rewards"),
    ("valid", lambda a: a.astype(np.int64) * 2, "valid"),
    ("observations", lambda a: a[..., 0], "observations"),
    ("metadata_json", lambda a: np.array("[1, 2]"), "metadata_json"),
])
def test_dataset_load_validates_arrays(dataset_file, tmp_path, key, damage, named):
    with np.load(dataset_file) as f:
        bad = damage(f[key])
    path = _rewrite_npz(dataset_file, tmp_path / "bad.npz", **{key: bad})
    with pytest.raises(ValueError, match=rf"bad\.npz.*{named}"):
        OfflineDataset.load(path)


# --------------------------------------------------------- offline and tabular agents


def test_offline_agent_load_checks_arrays(dataset_file, tmp_path):
    from robustrl.agents import PEVI

    env = _env()
    path = PEVI(env, beta=0.1).fit(OfflineDataset.load(dataset_file)).save(tmp_path / "pevi")
    with np.load(path) as f:
        lam, n = f["param_lambda_inv_"], f["param_n_samples_"]
    for key, bad, named in [("param_lambda_inv_", lam[:, :-1, :-1], "lambda_inv_"),
                            ("param_weights_", np.zeros((1, 1)), "weights_"),
                            ("param_n_samples_", n - 10**6, "n_samples_")]:
        damaged = _rewrite_npz(path, tmp_path / "bad.npz", **{key: bad})
        with pytest.raises(ValueError, match=rf"bad\.npz.*{named}"):
            PEVI.load(damaged, env)
    PEVI.load(path, env)


def test_glow_load_checks_indices(tmp_path):
    from robustrl.agents.glow import GLOW
    from robustrl.models import FiniteMDP

    rng = np.random.default_rng(11)
    H, S, A = 3, 3, 2
    model = FiniteMDP(rng.dirichlet(np.full(S, 0.5), size=(H, S, A)),
                      rng.uniform(size=(H, S, A)), rng.dirichlet(np.ones(S)))
    F = rng.uniform(0.0, 1.0, (6, H, S, A))
    W = "tabular"
    path = GLOW(model, F, W, episodes_per_round=2, kappa=0.05, seed=4).learn(total_rounds=5).save(
        tmp_path / "glow")
    with np.load(path) as f:
        sel, pol = f["selected_"], f["policies_"]
    for key, bad, named in [("selected_", sel + len(F), "selected_"),
                            ("selected_", sel[:0], "selected_"),
                            ("policies_", pol + model.n_actions, "policies_"),
                            ("policies_", pol[:, :-1], "policies_"),
                            ("Q_", np.zeros((1, 2, 3)), "Q_"),
                            ("regret_", np.zeros(1), "regret_")]:
        damaged = _rewrite_npz(path, tmp_path / "bad.npz", **{key: bad})
        with pytest.raises(ValueError, match=rf"bad\.npz.*{named}"):
            GLOW.load(damaged, model)
    GLOW.load(path, model)


def test_level_set_load_names_the_file(tmp_path, cave_levels):
    from robustrl.envs.cave_levels import load_level_set, save_level_set

    path = save_level_set(tmp_path / "levels.npz", cave_levels, {"k": 1})
    for _, bad in _npz_damages(path, tmp_path):
        with pytest.raises(ValueError, match=bad.name):
            load_level_set(bad)
    out_of_range = _rewrite_npz(path, tmp_path / "codes.npz",
                                levels=cave_levels.astype(np.int64) + 300)
    with pytest.raises(ValueError, match=r"codes\.npz.*levels"):
        load_level_set(out_of_range)
    levels, meta = load_level_set(path)
    np.testing.assert_array_equal(levels, cave_levels)
    assert meta == {"k": 1}


# ------------------------------------------------------------- torch artefact checksums


def _torch_flip_outcomes(path: pathlib.Path, load, reference: dict, n_flips: int, seed: int):
    """Flip one random bit of a copy of ``path`` ``n_flips`` times: every load either raises
    ValueError naming the file or returns the reference state exactly. Returns how many
    flips raised."""
    import torch

    rng = np.random.default_rng(seed)
    raw = path.read_bytes()
    raised = 0
    for i in range(n_flips):
        copy = path.with_name(f"flip{i}_{path.name}")
        copy.write_bytes(raw)
        _flip(copy, int(rng.integers(len(raw))), int(rng.integers(8)))
        try:
            state = load(copy)
        except ValueError as exc:
            assert copy.name in str(exc)
            raised += 1
            continue
        assert state.keys() == reference.keys()
        for key, value in reference.items():
            assert torch.equal(state[key], value), (i, key)
    return raised


def test_level_vae_checksum(tmp_path):
    import torch

    from robustrl.agents.dred.vae import LevelVAE

    torch.manual_seed(0)
    vae = LevelVAE(size=7, latent_dim=8)
    path = vae.save(tmp_path / "vae.pt")
    ref = {k: v.clone() for k, v in vae.state_dict().items()}
    # a flip in the stored weights: the former loader returned the altered weights silently
    start, end = _largest_storage(path)
    weights = tmp_path / "weights_flipped.pt"
    weights.write_bytes(path.read_bytes())
    _flip(weights, (start + end) // 2, 2)
    with pytest.raises(ValueError, match=r"weights_flipped\.pt.*sha256"):
        LevelVAE.load(weights)
    raised = _torch_flip_outcomes(path, lambda p: LevelVAE.load(p).state_dict(), ref, 25, 0)
    assert raised >= 20  # almost every byte of the file is content


def test_neural_agent_checksums(tmp_path):
    import torch

    from robustrl.agents.neural.fqi import NeuralFQI

    torch.set_num_threads(1)
    env = _env()
    ds = OfflineDataset.collect(env, 20, seed=0)
    agent = NeuralFQI(input="observation", horizon=None, gamma=0.9, ensemble_size=2,
                      hidden=(8,), n_iterations=2, gradient_steps=5, batch_size=16,
                      seed=0).fit(ds)
    path = agent.save(tmp_path / "fqi.pt")
    start, end = _largest_storage(path)
    _flip(path, (start + end) // 2, 1)
    with pytest.raises(ValueError, match=r"fqi\.pt.*sha256"):
        NeuralFQI.load(path, device="cpu")
    # a re-saved payload with a consistent checksum but a wrong-sized network is rejected too
    from robustrl._artifacts import load_torch, save_torch

    good = agent.save(tmp_path / "good.pt")
    blob = load_torch(good, what="test")
    blob["heads"][0]["state"] = {k: v[..., :-1] for k, v in blob["heads"][0]["state"].items()}
    save_torch(tmp_path / "shapes.pt", blob)
    with pytest.raises(ValueError, match=r"shapes\.pt.*heads\[0\]"):
        NeuralFQI.load(tmp_path / "shapes.pt", device="cpu")
    blob = load_torch(good, what="test")
    blob["heads"][0]["y_scale"] = blob["heads"][0]["y_scale"] * math.inf
    save_torch(tmp_path / "inf.pt", blob)
    with pytest.raises(ValueError, match=r"inf\.pt.*y_scale"):
        NeuralFQI.load(tmp_path / "inf.pt", device="cpu")
    back = NeuralFQI.load(good, device="cpu")
    obs = ds.observations[:5, 0]
    np.testing.assert_array_equal(back.q_values(obs), agent.q_values(obs))


def test_neural_drrpo_checksum(tmp_path):
    import gymnasium as gym
    import torch

    from robustrl.agents.neural.drrpo import NeuralDRRPO
    from robustrl.envs import LayeredTabularMDPEnv

    torch.set_num_threads(1)

    def make():
        return LayeredTabularMDPEnv(horizon=3, n_states=3, n_actions=2, seed=0)

    venv = gym.vector.SyncVectorEnv([make, make])
    agent = NeuralDRRPO(venv, divergence="kl", lam=1.0, hidden=(8,), ensemble_size=2,
                        learning_starts=10, batch_size=8, target_update_interval=5,
                        n_alpha=4, seed=0).learn(30)
    path = agent.save(tmp_path / "drrpo.pt")
    ref = NeuralDRRPO.load(path, device="cpu")
    obs = np.array([[0, 0], [2, 1]])
    np.testing.assert_array_equal(ref.q_values(obs), agent.q_values(obs))
    start, end = _largest_storage(path)
    _flip(path, (start + end) // 2, 7)
    with pytest.raises(ValueError, match=r"drrpo\.pt.*sha256"):
        NeuralDRRPO.load(path, device="cpu")


def test_torch_file_without_checksum_or_foreign(tmp_path):
    import torch

    from robustrl.agents.dred.vae import LevelVAE

    torch.save({"format": "robustrl.LevelVAE/1", "config": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt.*checksum"):
        LevelVAE.load(tmp_path / "old.pt")
    sentinel = tmp_path / "code_ran"
    evil = _malicious_sb3_zip(tmp_path / "evil.pt", sentinel)
    with pytest.raises(ValueError, match=r"evil\.pt"):
        LevelVAE.load(evil)
    with open(tmp_path / "pickle.pt", "wb") as fh:
        pickle.dump(_Touch(sentinel), fh, protocol=2)
    with pytest.raises(ValueError, match=r"pickle\.pt"):
        LevelVAE.load(tmp_path / "pickle.pt")
    assert not sentinel.exists()


def test_glow_lin_load_checks_theta(tmp_path):
    from robustrl.agents.glow_lin import GLOWLin

    path = GLOWLin(_env(), episodes_per_round=1, kappa=0.1, seed=0).learn(total_rounds=2).save(
        tmp_path / "gl")
    with np.load(path) as f:
        theta = f["param_theta_"]
    for bad in (theta[:-1], theta[:, :-1], np.full_like(theta, np.nan)):
        damaged = _rewrite_npz(path, tmp_path / "bad.npz", param_theta_=bad)
        with pytest.raises(ValueError, match=r"bad\.npz.*theta_"):
            GLOWLin.load(damaged, _env())
    np.testing.assert_array_equal(GLOWLin.load(path, _env()).theta_, theta)
