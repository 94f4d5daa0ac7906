"""Hand-computed checks of the core modules that the mutation rounds had not measured.

Each test names the plausible bug it catches (a mutant of ``tools/mutate.py`` that survived
the default suite's files for the module; docs/dev/mutation.md, "Final round, part C").
"""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.interop import dataset_to_transitions


def _tiny_dataset(valid, terminal=None) -> OfflineDataset:
    """One-action, one-feature dataset of shape (K, H) with observation ``10 k + h``."""
    valid = np.asarray(valid, dtype=bool)
    K, H = valid.shape
    obs = (10.0 * np.arange(K)[:, None] + np.arange(H)[None, :])[..., None]
    feats = valid[..., None].astype(float)
    return OfflineDataset(
        observations=obs, actions=np.zeros((K, H), dtype=np.int64),
        rewards=np.where(valid, 1.0, 0.0), next_observations=obs + 1.0, features=feats,
        next_action_features=np.ones((K, H, 1, 1)), valid=valid,
        terminal=np.zeros((K, H), bool) if terminal is None else np.asarray(terminal, bool))


def test_flattening_refuses_a_single_gap_in_one_row():
    """Bug: the prefix check uses ``all`` instead of ``any``, so a dataset whose ``valid`` has
    one gap (row 1: taken, skipped, taken) is spliced into one episode instead of refused."""
    ds = _tiny_dataset([[True, True, False], [True, False, True]])
    with pytest.raises(ValueError, match="prefix"):
        dataset_to_transitions(ds)
    # the same rows without the gap flatten to 2 + 1 transitions, observations in order
    ok = dataset_to_transitions(_tiny_dataset([[True, True, False], [True, False, False]]))
    np.testing.assert_array_equal(ok["observations"][:, 0], [0.0, 1.0, 10.0])
    np.testing.assert_array_equal(ok["truncations"], [False, True, True])


def _linear_flat():
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv(perturbation=0.2, horizon=4)
    return env, dataset_to_transitions(OfflineDataset.collect(env, 3, seed=3))


def test_a_boundary_missing_in_the_state_column_alone_is_refused():
    """Bug: the inside-episode check ``next_observations[i] == observations[i + 1]`` compares
    rows with ``all`` instead of ``any``, so a next state that differs only in the state
    column (the step column still matches) is spliced into the episode."""
    from robustrl.interop import dataset_from_transitions

    env, flat = _linear_flat()
    flat = {k: v.copy() for k, v in flat.items()}
    assert flat["next_observations"][0, 1] == flat["observations"][1, 1] == 1.0
    flat["next_observations"][0, 0] = (flat["observations"][1, 0] + 1) % 5  # another state
    with pytest.raises(ValueError, match=r"next_observations\[0\] differs from observations\[1\]"):
        dataset_from_transitions(**flat, env=env)


def test_from_minari_keeps_a_one_step_episode():
    """Bug: the skip of empty episodes (``n == 0``) becomes ``n == 1``, dropping every
    one-step episode. Two episodes: one step cut by a time limit, then four steps."""
    from types import SimpleNamespace

    from robustrl.interop import from_minari

    env, flat = _linear_flat()
    o, no = flat["observations"], flat["next_observations"]
    one = SimpleNamespace(id=0, observations=np.stack([o[0], no[0]]), actions=flat["actions"][:1],
                          rewards=flat["rewards"][:1], terminations=np.array([False]),
                          truncations=np.array([True]))
    four = SimpleNamespace(id=1, observations=np.vstack([o[4:8], no[7:8]]),
                           actions=flat["actions"][4:8], rewards=flat["rewards"][4:8],
                           terminations=np.array([False, False, False, True]),
                           truncations=np.zeros(4, bool))
    src = SimpleNamespace(spec=SimpleNamespace(dataset_id="x-v0"),
                          storage=SimpleNamespace(metadata={"dataset_id": "x-v0"}),
                          iterate_episodes=lambda: iter([one, four]))
    ds = from_minari(src, env)
    assert ds.n_trajectories == 2
    assert ds.valid.tolist() == [[True, False, False, False], [True] * 4]
    assert ds.terminal.tolist() == [[False] * 4, [False, False, False, True]]
    np.testing.assert_array_equal(ds.rewards[0], [flat["rewards"][0], 0, 0, 0])


def test_to_minari_refuses_a_two_step_trajectory_with_a_broken_sequence(tmp_path, monkeypatch):
    """Bug: the sequence check of ``to_minari`` runs only for ``n > 2`` steps instead of
    ``n > 1``, so a two-step trajectory whose ``next_observations[0]`` is not
    ``observations[1]`` is written as one (wrong) observation sequence."""
    pytest.importorskip("minari")
    from robustrl.envs import SimulatedLinearMDPEnv
    from robustrl.interop import to_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = SimulatedLinearMDPEnv(perturbation=0.2, horizon=4)
    ds = OfflineDataset.collect(env, 3, seed=3)
    ds.valid[:, 2:] = False  # every trajectory cut after two steps (by a time limit)
    ds.terminal[:] = False
    ds.features[:, 2:] = 0.0
    ds.next_observations[0, 0, 0] = (ds.observations[0, 1, 0] + 1) % 5
    with pytest.raises(ValueError, match=r"trajectory 0: next_observations\[0\] differs"):
        to_minari(ds, env, "cut-two-v0")


def test_an_overlong_episode_is_named_by_its_transition_range():
    """Bug: the error names the transitions ``starts..stops - 2`` instead of ``..stops - 1``.
    Three four-step episodes (H = 4); without the first terminal the first episode runs over
    transitions 0..7, eight steps."""
    from robustrl.interop import dataset_from_transitions

    env, flat = _linear_flat()
    flat = {k: v.copy() for k, v in flat.items()}
    assert flat["terminals"].tolist() == [False, False, False, True] * 3
    flat["terminals"][3] = False
    with pytest.raises(ValueError, match=r"episode 0 \(transitions 0\.\.7\) has 8 steps, more "
                                         r"than the horizon H=4"):
        dataset_from_transitions(**flat, env=env)


def test_integer_arrays_accept_whole_floats_and_refuse_fractions():
    """Bug: the whole-number check of ``check_array`` is negated, refusing ``[1.0, 2.0]`` as
    int64 and truncating ``2.5`` to 2."""
    from robustrl.validation import check_array

    got = check_array([1.0, 2.0], "counts", dtype=np.int64)
    assert got.dtype == np.int64 and got.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"counts must hold whole numbers; found .*2\.5"):
        check_array([1.0, 2.5], "counts", dtype=np.int64)


def test_a_probability_table_is_sampled_with_the_given_generator():
    """Bug: the ``rng is None`` check of ``as_action_fn`` is negated, so an ``(H, S, A)``
    table with a generator is refused and one without fails later. One-hot rows make the
    sampled action known: action ``(h + s) % 2`` at observation ``(s, h)``."""
    from robustrl._policy import as_action_fn

    H, S, A = 2, 3, 2
    probs = np.zeros((H, S, A))
    for h in range(H):
        for s in range(S):
            probs[h, s, (h + s) % 2] = 1.0
    act = as_action_fn(probs, np.random.default_rng(0), name="behaviour")
    assert [act(np.array([s, h])) for h in range(H) for s in range(S)] == [0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="behaviour: a stochastic"):
        as_action_fn(probs, None, name="behaviour")


class _Members:
    """A bare object with the feature protocol (no Gymnasium wrapper methods): H=3, d=2,
    two actions, ``phi(obs, a) = [a, 1 - a]``."""

    horizon, feature_dim = 3, 2

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.action_space = SimpleNamespace(n=2)

    def features(self, obs, a):
        return np.array([a, 1.0 - a])

    def action_features(self, obs):
        return np.array([[0.0, 1.0], [1.0, 0.0]])


def test_feature_interface_reads_members_without_and_behind_wrapper_lookup():
    """Bugs: ``_lookup`` negating the ``hasattr(env, name)`` fallback or the ``env.unwrapped``
    fallback (or returning None), and ``feature_interface`` losing H, d or A."""
    from types import SimpleNamespace

    from robustrl.protocols import feature_interface

    fi = feature_interface(_Members())
    assert (fi.horizon, fi.feature_dim, fi.n_actions) == (3, 2, 2)
    assert fi.features(None, 1).tolist() == [1.0, 0.0]
    assert fi.action_features(None).tolist() == [[0.0, 1.0], [1.0, 0.0]]

    def refuse(name):
        raise AttributeError(name)

    # a wrapper whose own lookup fails: the members are found on ``unwrapped``
    inner = _Members()
    outer = SimpleNamespace(get_wrapper_attr=refuse, unwrapped=inner,
                            action_space=SimpleNamespace(n=2))
    fi = feature_interface(outer)
    assert (fi.horizon, fi.feature_dim, fi.n_actions) == (3, 2, 2)
    assert fi.features(None, 0).tolist() == [0.0, 1.0]
    # nothing anywhere: every member is reported in one error
    with pytest.raises(ValueError, match=r"`horizon`, `feature_dim`, `features`, "
                                         r"`action_features`, a Discrete `action_space`"):
        feature_interface(SimpleNamespace(get_wrapper_attr=refuse), who="PEVI")


@pytest.mark.parametrize("name, value, ok", [
    ("horizon", 1, True), ("horizon", np.int64(4), True), ("horizon", 0, False),
    ("horizon", True, False), ("horizon", 2.0, False), ("feature_dim", 0, False),
    ("feature_dim", np.int32(1), True)])
def test_feature_interface_checks_horizon_and_dimension(name, value, ok):
    """Bug: the ``int >= 1`` check of ``horizon`` / ``feature_dim`` negated or with ``and`` for
    ``or`` (booleans, floats and 0 accepted, or 1 refused)."""
    from robustrl.protocols import feature_interface

    env = _Members()
    setattr(env, name, value)
    if ok:
        assert getattr(feature_interface(env), name) == int(value)
    else:
        with pytest.raises(ValueError, match=f"env.{name} must be an integer >= 1"):
            feature_interface(env)


def test_feature_interface_refuses_members_that_are_not_callable():
    """Bug: the callable check of ``features`` / ``action_features`` negated or dropped."""
    from robustrl.protocols import feature_interface

    env = _Members()
    env.action_features = np.zeros((2, 2))
    with pytest.raises(ValueError, match="env.action_features must be callable; got ndarray"):
        feature_interface(env)


def test_a_boolean_array_error_names_the_first_offending_entry():
    """Bug: the message names the last entry that is neither 0 nor 1 (``[-1]``) instead of the
    first; in ``[0, 2, 1, 3]`` that is 2, not 3. Exact 0/1 numbers are still accepted."""
    from robustrl.validation import check_array

    with pytest.raises(ValueError, match=r"mask must be boolean \(True/False or 0/1\); found "
                                         r"(np\.int64\()?2\)?$"):
        check_array([0, 2, 1, 3], "mask", dtype=bool)
    assert check_array([0, 1, 1.0], "mask", dtype=bool).tolist() == [False, True, True]


def test_a_distribution_error_reports_the_largest_deviation_from_one():
    """Bug: the reported deviation is ``max |sum|`` instead of ``max |sum - 1|``: rows summing
    to 0.7 and 1.0 deviate by at most 0.3, not 1."""
    from robustrl.validation import check_distribution

    with pytest.raises(ValueError, match=r"p must sum to 1 along axis -1 \(probability "
                                         r"distributions\); largest deviation 0\.3$"):
        check_distribution([[0.5, 0.2], [0.25, 0.75]], "p")


def test_offline_control_dataset_defaults_and_seeds(monkeypatch):
    """Bugs: the default ``n_trajectories`` (100) or ``epsilon`` (0.3) changed, or the seeds of
    the behaviour noise (``seed + 1``) and the rollouts (``seed + 2``) moved. Training and
    collection are replaced by recorders, so only the wiring is checked."""
    from robustrl import control_data as cd

    calls: dict = {}

    def train(env_id, **kw):
        calls["train"] = (env_id, kw)
        return lambda obs: 1

    def collect(env_id, behaviour, n_trajectories, **kw):
        calls["collect"] = (env_id, behaviour, n_trajectories, kw)
        return _tiny_dataset([[True]])

    monkeypatch.setattr(cd, "train_behaviour_policy", train)
    monkeypatch.setattr(cd, "collect_control_dataset", collect)
    data = cd.offline_control_dataset(seed=5, cache=False)
    env_id, kw = calls["train"]
    assert env_id == "CartPole-v1"
    assert (kw["algo"], kw["timesteps"], kw["seed"]) == ("ppo", 20_000, 5)
    env_id, behaviour, n, kw = calls["collect"]
    assert (env_id, n, kw["horizon"], kw["seed"]) == ("CartPole-v1", 100, 200, 7)
    assert isinstance(behaviour, cd.EpsilonGreedy)
    assert (behaviour.n_actions, behaviour.epsilon) == (2, 0.3)
    # the noise stream is seed + 1 = 6: two draws per step, as EpsilonGreedy documents

    def stream(noise_seed: int) -> list[int]:
        rng, out = np.random.default_rng(noise_seed), []
        for _ in range(20):
            explore, random_action = rng.random() < 0.3, int(rng.integers(2))
            out.append(random_action if explore else 1)
        return out

    assert stream(6) != stream(5) and stream(6) != stream(7)  # the check can tell them apart
    assert [behaviour(None) for _ in range(20)] == stream(6)
    assert data.metadata == {"algo": "ppo", "timesteps": 20_000, "epsilon": 0.3,
                             "behaviour_seed": 5, "action_noise": 0.0}
    # the default seed is 0: training seed 0, rollouts seed 2
    cd.offline_control_dataset(cache=False)
    assert calls["train"][1]["seed"] == 0 and calls["collect"][3]["seed"] == 2


def test_cache_true_means_the_default_cache_folder(tmp_path, monkeypatch):
    """Bug: ``cache=True`` is not mapped to the default folder (``$ROBUSTRL_CACHE/control``)
    but passed on as a path. The dataset is written there under ``dataset-<hash>.npz``."""
    from robustrl import control_data as cd

    monkeypatch.setenv("ROBUSTRL_CACHE", str(tmp_path))
    monkeypatch.setattr(cd, "train_behaviour_policy", lambda env_id, **kw: (lambda obs: 0))
    monkeypatch.setattr(cd, "collect_control_dataset",
                        lambda env_id, behaviour, n, **kw: _tiny_dataset([[True, False]]))
    cd.offline_control_dataset(n_trajectories=3, seed=1, cache=True)
    assert len(list((tmp_path / "control").glob("dataset-*.npz"))) == 1


def test_dqn_behaviour_ends_training_at_the_final_exploration_rate():
    """Bug: DQN's ``exploration_final_eps`` (0.04) changed. The schedule decays epsilon
    linearly from 1 to 0.04 over the first 16% of the budget and keeps it there, so after 300
    steps the rate is exactly 0.04."""
    from robustrl import control_data as cd

    model = cd.train_behaviour_policy("CartPole-v1", algo="dqn", timesteps=300, seed=0,
                                      cache=False)
    assert model.exploration_rate == pytest.approx(0.04, abs=1e-12)
    assert model.learning_starts == 30  # min(1000, max(1, 300 // 10))
