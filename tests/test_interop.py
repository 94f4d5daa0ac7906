"""Dataset interoperability: flat transitions and Minari round trips (robustrl.interop)."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.envs import AMERICAN_PUT_ID, AmericanPutEnv, SimulatedLinearMDPEnv
from robustrl.interop import dataset_from_transitions, dataset_to_transitions

ARRAYS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "features",
    "next_action_features",
    "valid",
    "terminal",
)


def _put_policy(obs):
    # Exercise deep in the money so some episodes terminate early, hold otherwise.
    return int(obs[0] < 97.0)


def _linear():
    env = SimulatedLinearMDPEnv(perturbation=0.2, horizon=4)
    return env, OfflineDataset.collect(env, 12, seed=3)


def _put():
    env = AmericanPutEnv(horizon=8, feature_dim=10, reward_scale=0.01)
    ds = OfflineDataset.collect(env, 15, _put_policy, seed=5)
    return env, ds


@pytest.fixture(params=["linear", "put"])
def env_and_data(request):
    env, ds = _linear() if request.param == "linear" else _put()
    return env, ds


def assert_same(a: OfflineDataset, b: OfflineDataset) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_put_dataset_has_early_terminations():
    _, ds = _put()
    lengths = ds.valid.sum(axis=1)
    assert lengths.min() < ds.horizon, "fixture must exercise early termination"
    assert lengths.max() == ds.horizon


def test_transitions_round_trip(env_and_data):
    env, ds = env_and_data
    flat = dataset_to_transitions(ds)
    assert flat["rewards"].shape == (len(ds),)
    assert flat["terminals"].sum() == ds.n_trajectories  # every collected episode terminates
    assert not flat["truncations"].any()
    back = dataset_from_transitions(**flat, env=env, metadata=ds.metadata)
    assert_same(ds, back)
    assert back.metadata == ds.metadata


def test_transitions_keep_truncated_episodes_nonterminal():
    env, ds = _linear()
    flat = dataset_to_transitions(ds)
    # Cut the first episode after two steps: its data ends but a value follows.
    keep = np.ones(len(flat["rewards"]), dtype=bool)
    keep[2 : ds.horizon] = False
    cut = {k: v[keep] for k, v in flat.items()}
    cut["truncations"][1] = True
    back = dataset_from_transitions(**cut, env=env)
    assert back.valid[0].tolist() == [True, True, False, False]
    assert back.terminal[0].tolist() == [False] * 4
    np.testing.assert_array_equal(back.features[1:], ds.features[1:])
    again = dataset_to_transitions(back)
    np.testing.assert_array_equal(again["truncations"], cut["truncations"])
    np.testing.assert_array_equal(again["terminals"], cut["terminals"])


def test_features_match_the_env_feature_map():
    env, ds = _put()
    flat = dataset_to_transitions(ds)
    back = dataset_from_transitions(**flat, env=env)
    base = env.unwrapped
    k, h = 0, 0
    np.testing.assert_array_equal(
        back.features[k, h], base.features(ds.observations[k, h], int(ds.actions[k, h]))
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f: f.update(rewards=f["rewards"][:-1]), "rewards|observations"),
        (lambda f: f.update(actions=f["actions"][:-1]), "actions"),
        (lambda f: f.update(terminals=f["terminals"][:-1]), "terminals"),
        (lambda f: f.update(next_observations=f["next_observations"][:-1]), "next_observations"),
        (lambda f: f["rewards"].__setitem__(3, np.nan), "rewards must be finite"),
        (lambda f: f["rewards"].__setitem__(3, np.inf), "rewards must be finite"),
        (lambda f: f["actions"].__setitem__(0, 1000), "actions"),
        (lambda f: f["actions"].__setitem__(0, -1), "actions"),
        (lambda f: f.update(actions=f["actions"] + 0.5), "actions must be integers"),
        # index 3 ends the first episode (H=4) with a termination: a truncation there conflicts.
        (lambda f: f["truncations"].__setitem__(3, True), "truncations"),
        (lambda f: f["terminals"].__setitem__(3, False), "horizon"),
        (lambda f: f["next_observations"].__setitem__(0, -5.0), r"next_observations\[0\]"),
        (
            lambda f: [f.update({k: v[:0]}) for k, v in list(f.items())],
            "must not be empty",
        ),
    ],
)
def test_bad_transitions_raise(change, match):
    env, ds = _linear()
    flat = dataset_to_transitions(ds)
    flat = {k: v.copy() for k, v in flat.items()}
    change(flat)
    with pytest.raises(ValueError, match=match):
        dataset_from_transitions(**flat, env=env)


def test_non_robustrl_env_raises():
    env, ds = _linear()
    with pytest.raises(ValueError, match="`horizon`, `feature_dim`, `features`, `action_features`"):
        dataset_from_transitions(**dataset_to_transitions(ds), env=gym.make("CartPole-v1"))


def test_to_transitions_rejects_non_dataset():
    with pytest.raises(ValueError, match="dataset must be an OfflineDataset"):
        dataset_to_transitions({"rewards": np.zeros(3)})


# ---------------------------------------------------------------------------------- Minari
@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    pytest.importorskip("h5py")
    # Never touch ~/.minari or the network: every dataset lives in this test's tmp dir.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return minari


def test_minari_round_trip(minari_home, env_and_data):
    from robustrl.interop import from_minari, to_minari

    env, ds = env_and_data
    md = to_minari(ds, env, "robustrl/roundtrip-v0", algorithm_name="uniform")
    assert md.total_episodes == ds.n_trajectories
    assert md.total_steps == len(ds)
    ep = next(iter(md.iterate_episodes()))
    n = int(ds.valid[0].sum())
    assert len(ep.observations) == n + 1
    np.testing.assert_array_equal(ep.terminations, ds.terminal[0, :n])

    for source in (md, "robustrl/roundtrip-v0"):  # the object and the local id
        back = from_minari(source, env)
        assert_same(ds, back)
        assert back.metadata["minari_dataset_id"] == "robustrl/roundtrip-v0"
        assert back.metadata["seed"] == ds.metadata["seed"]
    # The files were written under MINARI_DATASETS_PATH.
    assert "robustrl/roundtrip-v0" in minari_home.list_local_datasets()


def test_minari_with_registered_env_keeps_spec(minari_home):
    from robustrl.interop import from_minari, to_minari

    env = gym.make(AMERICAN_PUT_ID, horizon=6, feature_dim=8)
    ds = OfflineDataset.collect(env, 6, _put_policy, seed=1)
    md = to_minari(ds, env, "put-v0")
    assert md.spec.env_spec is not None and md.spec.env_spec.id == AMERICAN_PUT_ID
    recovered = md.recover_environment()
    assert recovered.unwrapped.horizon == 6 and recovered.unwrapped.feature_dim == 8
    assert_same(ds, from_minari("put-v0", env))


def test_minari_truncated_episode_round_trip(minari_home):
    from robustrl.interop import from_minari, to_minari

    env, ds = _linear()
    flat = {k: v.copy() for k, v in dataset_to_transitions(ds).items()}
    keep = np.ones(len(flat["rewards"]), dtype=bool)
    keep[2 : ds.horizon] = False
    cut = {k: v[keep] for k, v in flat.items()}
    cut["truncations"][1] = True
    short = dataset_from_transitions(**cut, env=env)
    md = to_minari(short, env, "cut-v0")
    ep = next(iter(md.iterate_episodes()))
    assert ep.truncations.tolist() == [False, True]
    assert ep.terminations.tolist() == [False, False]
    assert_same(short, from_minari(md, env))


def test_minari_bad_inputs(minari_home):
    from robustrl.interop import from_minari, to_minari

    env, ds = _linear()
    with pytest.raises(ValueError, match="not a local Minari dataset"):
        from_minari("missing-v0", env)
    with pytest.raises(ValueError, match="dataset_id"):
        to_minari(ds, env, "")
    if SimulatedLinearMDPEnv().action_space.n != AmericanPutEnv().action_space.n:
        with pytest.raises(ValueError, match="actions"):
            to_minari(ds, AmericanPutEnv(horizon=4, feature_dim=4), "x-v0")
    broken = OfflineDataset(
        **{k: getattr(ds, k).copy() for k in ARRAYS}, metadata=dict(ds.metadata)
    )
    broken.next_observations[0, 0] += 1.0
    with pytest.raises(ValueError, match=r"trajectory 0: next_observations\[0\]"):
        to_minari(broken, env, "z-v0")


def test_minari_dataset_written_by_other_tools_loads(minari_home):
    """A Minari dataset not written by robustrl: raw env rollouts, one episode cut off with no
    flag at all (as a logger that stopped mid-episode writes it)."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    from robustrl.interop import from_minari

    env = SimulatedLinearMDPEnv(perturbation=0.1, horizon=3)
    rng = np.random.default_rng(0)
    buffers, rollouts = [], []
    for k, steps in enumerate((2, 3)):
        obs, _ = env.reset(seed=k)
        seq, acts, rews, terms = [obs], [], [], []
        for _ in range(steps):
            a = int(rng.integers(env.action_space.n))
            obs, r, terminated, _, _ = env.step(a)
            seq.append(obs)
            acts.append(a)
            rews.append(r)
            terms.append(terminated)
        rollouts.append((np.array(seq), acts))
        buffers.append(
            EpisodeBuffer(
                id=k, observations=np.array(seq), actions=np.array(acts), rewards=rews,
                terminations=terms, truncations=[False] * steps, infos={},
            )
        )
    minari_home.create_dataset_from_buffers(
        "foreign-v0", buffers, action_space=env.action_space,
        observation_space=env.observation_space, algorithm_name="random", description="test",
    )
    ds = from_minari("foreign-v0", env)
    assert ds.valid.tolist() == [[True, True, False], [True] * 3]
    assert ds.terminal.tolist() == [[False, False, False], [False, False, True]]
    seq, acts = rollouts[0]
    np.testing.assert_array_equal(ds.next_observations[0, 1], seq[2])
    np.testing.assert_array_equal(
        ds.features[0, :2], [env.features(seq[h], acts[h]) for h in range(2)]
    )
    np.testing.assert_array_equal(ds.next_action_features[0, 1], env.action_features(seq[2]))


# ------------------------------------------------------------------------------------ docs
DOC = Path(__file__).resolve().parents[1] / "docs" / "interop.md"
DOC_BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_doc_has_blocks():
    assert len(DOC_BLOCKS) == 2


@pytest.mark.parametrize("i", range(len(DOC_BLOCKS)))
def test_doc_block_runs(i, tmp_path, monkeypatch):
    code = DOC_BLOCKS[i]
    if "minari" in code:
        pytest.importorskip("minari")
        pytest.importorskip("h5py")
    monkeypatch.chdir(tmp_path)
    # The block points MINARI_DATASETS_PATH at a fresh temp dir itself; restore it afterwards.
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_block"})


def test_agent_fitted_on_minari_import_matches_original(minari_home):
    """What matters downstream: an offline agent fitted on the imported data is the same agent."""
    from robustrl.agents import R2PVI
    from robustrl.interop import from_minari, to_minari

    env, ds = _put()
    back = from_minari(to_minari(ds, env, "put-agent-v0"), env, progress=False)
    a = R2PVI(env, divergence="tv", lam=0.1).fit(ds)
    b = R2PVI(env, divergence="tv", lam=0.1).fit(back)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.lambda_inv_, b.lambda_inv_)
    for o in ds.observations[ds.valid][:20]:
        assert a.predict(o)[0] == b.predict(o)[0]


def test_from_minari_rejects_malformed_robustrl_metadata(minari_home, env_and_data):
    """Minari metadata is data read from disk: a robustrl entry that is not a JSON object
    (formerly an AttributeError) raises ValueError naming the dataset."""
    from robustrl.interop import _ROBUSTRL_METADATA_KEY, from_minari, to_minari

    env, ds = env_and_data
    md = to_minari(ds, env, "meta-v0")
    md.storage.update_metadata({_ROBUSTRL_METADATA_KEY: "[1, 2]"})
    with pytest.raises(ValueError, match="meta-v0.*JSON object"):
        from_minari(md, env)
    md.storage.update_metadata({_ROBUSTRL_METADATA_KEY: "{not json"})
    with pytest.raises(ValueError, match="meta-v0.*not valid JSON"):
        from_minari(md, env)


# ------------------------------------------------------ data checked against the environment
class _MinariLike:
    """The part of a ``MinariDataset`` that ``from_minari`` reads, built by hand (no minari)."""

    def __init__(self, episodes, dataset_id="FrozenLake/random-v0"):
        from types import SimpleNamespace

        self._episodes = episodes
        self.spec = SimpleNamespace(dataset_id=dataset_id)
        self.storage = SimpleNamespace(metadata={"dataset_id": dataset_id})

    def iterate_episodes(self):
        return iter(self._episodes)


def _frozen_lake_episodes(n_episodes=3, steps=4):
    """Rollouts of gymnasium's FrozenLake as a logger records them: bare state indices."""
    from types import SimpleNamespace

    env = gym.make("FrozenLake-v1", is_slippery=False)
    out = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=k)
        seq, acts, rews, terms = [obs], [], [], []
        for _ in range(steps):
            obs, r, terminated, _, _ = env.step(1)  # "down": the left column has no hole
            seq.append(obs)
            acts.append(1)
            rews.append(r)
            terms.append(terminated)
            if terminated:
                break
        out.append(SimpleNamespace(id=k, observations=np.array(seq), actions=np.array(acts),
                                   rewards=np.array(rews), terminations=np.array(terms),
                                   truncations=np.zeros(len(acts), bool)))
    return out


def test_frozen_lake_minari_dataset_is_refused_by_a_state_step_environment():
    """FrozenLake observations have no step column: a (state, step) environment used to accept
    them and predict read the state index as the step."""
    from robustrl.interop import from_minari

    env = SimulatedLinearMDPEnv(horizon=4)
    with pytest.raises(ValueError, match=r"observations have 1 entries per transition.*"
                                         r"without the step column"):
        from_minari(_MinariLike(_frozen_lake_episodes()), env)
    # padded to two columns (state, state) the size fits, but the step index does not
    eps = _frozen_lake_episodes()
    for ep in eps:
        ep.observations = np.stack([ep.observations, ep.observations], axis=1) % 6
    with pytest.raises(ValueError, match=r"last entry must be the step index 1 .*got 4"):
        from_minari(_MinariLike(eps), env)


def test_flat_transitions_are_checked_against_the_environment():
    env, ds = _linear()
    flat = dataset_to_transitions(ds)
    with pytest.raises(ValueError, match="observations have 1 entries per transition"):
        dataset_from_transitions(**{**flat, "observations": flat["observations"][:, 0],
                                    "next_observations": flat["next_observations"][:, 0]},
                                 env=env)
    bad = {k: v.copy() for k, v in flat.items()}
    bad["observations"][:, 0] = 99  # a state the environment does not have
    bad["next_observations"][:, 0] = 99
    with pytest.raises(ValueError, match=r"observations\[0\] = \[99.0, 0.0\] is not in "
                                         r"env.observation_space"):
        dataset_from_transitions(**bad, env=env)


def test_timeouts_is_accepted_as_the_d3rlpy_name_of_truncations():
    env, ds = _linear()
    flat = dataset_to_transitions(ds)
    keep = np.ones(len(flat["rewards"]), dtype=bool)
    keep[2 : ds.horizon] = False  # the first episode is cut after two steps
    cut = {k: v[keep] for k, v in flat.items()}
    cut["truncations"][1] = True
    timeouts = cut.pop("truncations")
    want = dataset_from_transitions(**cut, truncations=timeouts, env=env)
    got = dataset_from_transitions(**cut, timeouts=timeouts, env=env)
    assert_same(want, got)
    assert got.valid[0].tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="truncations or its d3rlpy alias timeouts, not both"):
        dataset_from_transitions(**cut, truncations=timeouts, timeouts=timeouts, env=env)
