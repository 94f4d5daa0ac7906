"""Offline datasets in the ecosystem's formats: flat transition arrays and Minari.

An :class:`~robustrl.data.OfflineDataset` is trajectory-major ``(K, H, ...)`` with linear
features. The rest of the ecosystem stores flat transitions (D4RL/d3rlpy style: one row per
transition, episode boundaries marked by ``terminals``/``truncations``) or Minari episodes
(``T + 1`` observations per episode of ``T`` steps). Features are not part of either format: on
import they are recomputed from the environment's feature map
(``env.unwrapped.features(obs, a)`` and ``env.unwrapped.action_features(next_obs)``), exactly
as :meth:`OfflineDataset.collect` computes them, so an export followed by an import reproduces
every array.

Terminal convention (the robustrl environments end every episode with ``terminated=True``,
early or at the horizon): ``terminals`` marks a transition after which no value follows; a
``truncation`` ends an episode whose last next state still has a value (the data stops, the
process does not). On import the transition at the horizon step ``H - 1`` is terminal either
way, as in :meth:`OfflineDataset.collect`.

Minari is optional (``pip install "robustrl[interop]"``); it is imported only inside
:func:`to_minari` and :func:`from_minari`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robustrl.data import OfflineDataset
from robustrl.protocols import feature_interface
from robustrl.validation import check_array

_ROBUSTRL_METADATA_KEY = "robustrl_metadata"


def _feature_env(env):
    iface = feature_interface(env, who="robustrl.interop")
    return iface, iface.horizon, iface.feature_dim, iface.n_actions


def _obs_shape(env, obs_dim: int) -> tuple[int, ...]:
    """The environment's observation shape if it matches the flat rows, else the flat shape."""
    shape = tuple(getattr(getattr(env, "observation_space", None), "shape", None) or ())
    return shape if shape and int(np.prod(shape)) == obs_dim else (obs_dim,)


def _space_bounds(space) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """Flat ``(low, high, integral)`` of a Box or MultiDiscrete space, else None."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return (np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64)
                .ravel(), False)
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(getattr(space, "start", 0), np.float64)
        nvec = np.asarray(space.nvec, np.float64)
        low = np.broadcast_to(start, nvec.shape).ravel()
        return low, low + nvec.ravel() - 1, True
    return None


def _check_against_space(env, obs, next_obs, starts, lengths, terms) -> None:
    """Refuse observations that do not fit ``env.observation_space`` or break the step rule."""
    space = getattr(env, "observation_space", None)
    shape = tuple(getattr(space, "shape", None) or ())
    obs_dim = obs.shape[1]
    hint = ("data recorded on an environment without the step column (e.g. FrozenLake's bare "
            "state index) must be recorded through the feature wrapper that appends it "
            "(robustrl.envs.OneHotFeatures, TileCoding, FeatureMap)")
    if shape and int(np.prod(shape)) != obs_dim:
        raise ValueError(
            f"observations have {obs_dim} entries per transition, but env.observation_space "
            f"{space} holds {int(np.prod(shape))} (the state and the 0-indexed step last); {hint}"
        )
    if shape:
        bounds = _space_bounds(space)
        if bounds is not None:
            low, high, integral = bounds
            for name, arr in (("observations", obs), ("next_observations", next_obs)):
                bad = np.any((arr < low) | (arr > high), axis=1)
                if integral:
                    bad |= np.any(arr != np.round(arr), axis=1)
                if np.any(bad):
                    i = int(np.flatnonzero(bad)[0])
                    raise ValueError(f"{name}[{i}] = {arr[i].tolist()} is not in "
                                     f"env.observation_space {space}")
    for s, n in zip(starts, lengths, strict=True):
        steps = np.arange(n, dtype=np.float64)
        for name, arr, want in (("observations", obs, steps),
                                ("next_observations", next_obs, steps + 1)):
            got = arr[s:s + n, -1]
            if np.any(got != want):
                j = int(np.flatnonzero(got != want)[0])
                raise ValueError(
                    f"{name}[{s + j}]'s last entry must be the step index {int(want[j])} (its "
                    f"position in the episode starting at transition {s}); got {got[j]:g}. "
                    f"Linear agents read the step from the observation's last entry; {hint}"
                )


def dataset_from_transitions(
    observations,
    actions,
    rewards,
    next_observations,
    terminals,
    env,
    *,
    truncations=None,
    timeouts=None,
    metadata: dict[str, Any] | None = None,
    progress: bool = False,
) -> OfflineDataset:
    """Build an :class:`OfflineDataset` from flat transitions of consecutive episodes.

    Args:
        observations, next_observations: ``(N, ...)``, one row per transition (flattened to
            ``(N, obs_dim)``). Inside an episode ``next_observations[i]`` must equal
            ``observations[i + 1]``; a mismatch means a boundary is missing.
        actions: ``(N,)`` integers in ``[0, A)``.
        rewards: ``(N,)`` finite.
        terminals: ``(N,)`` bool; the episode ends and no value follows.
        env: a robustrl environment; gives the horizon ``H`` and the feature map.
        truncations: optional ``(N,)`` bool; the episode's data ends here but a value follows.
            The end of the arrays also ends the last episode.
        timeouts: d3rlpy's name of ``truncations`` (give one of the two).
        metadata: stored on the dataset (JSON-serialisable).
        progress: show a tqdm bar over episodes (feature computation).

    Every episode starts at step 0 and must have at most ``H`` transitions. The observations
    are checked against ``env.observation_space`` (size, bounds) and the step-index rule of
    :mod:`robustrl.protocols` (the last entry of the observation at step ``h`` of an episode is
    ``h``): data recorded on an environment without the step column, such as FrozenLake's bare
    state index, is refused instead of being read with the state as the step.
    """
    if timeouts is not None:
        if truncations is not None:
            raise ValueError("give truncations or its d3rlpy alias timeouts, not both")
        truncations = timeouts
    base, H, d, A = _feature_env(env)
    rewards = check_array(rewards, "rewards", ndim=1)
    N = rewards.shape[0]
    obs = check_array(observations, "observations", ndim=(1, 2, 3, 4))
    if obs.shape[0] != N:
        raise ValueError(
            f"observations must have one row per transition ({N} rewards); got {obs.shape[0]}"
        )
    obs = obs.reshape(N, -1)
    next_obs = check_array(next_observations, "next_observations", ndim=(1, 2, 3, 4))
    if next_obs.shape[0] != N or next_obs.reshape(N, -1).shape != obs.shape:
        raise ValueError(
            f"next_observations must have the shape of observations {tuple(obs.shape)} "
            f"(flattened); got {next_obs.shape}"
        )
    next_obs = next_obs.reshape(N, -1)
    raw_actions = np.asarray(actions)
    if raw_actions.size and not np.issubdtype(raw_actions.dtype, np.integer):
        if not np.all(np.isfinite(raw_actions)) or np.any(raw_actions != np.round(raw_actions)):
            raise ValueError("actions must be integers (Discrete action indices)")
    acts = check_array(raw_actions, "actions", shape=(N,), dtype=np.int64, low=0, high=A - 1)
    terms = check_array(terminals, "terminals", shape=(N,), dtype=bool)
    truncs = (
        np.zeros(N, dtype=bool)
        if truncations is None
        else check_array(truncations, "truncations", shape=(N,), dtype=bool)
    )
    if np.any(terms & truncs):
        bad = int(np.flatnonzero(terms & truncs)[0])
        raise ValueError(
            f"terminals and truncations must not both be True (transition {bad}); a "
            "terminated episode has no value after it, a truncated one does"
        )

    ends = terms | truncs
    ends[-1] = True
    stops = np.flatnonzero(ends) + 1
    starts = np.concatenate(([0], stops[:-1]))
    lengths = stops - starts
    if lengths.max() > H:
        k = int(np.argmax(lengths))
        raise ValueError(
            f"episode {k} (transitions {starts[k]}..{stops[k] - 1}) has {lengths[k]} steps, more "
            f"than the horizon H={H}; mark episode ends with terminals/truncations"
        )
    inside = ~ends[:-1]
    mismatch = inside & np.any(next_obs[:-1] != obs[1:], axis=1)
    if np.any(mismatch):
        i = int(np.flatnonzero(mismatch)[0])
        raise ValueError(
            f"next_observations[{i}] differs from observations[{i + 1}] inside an episode; "
            "mark the episode boundary with terminals or truncations"
        )

    _check_against_space(env, obs, next_obs, starts, lengths, terms)

    K = len(starts)
    obs_dim = obs.shape[1]
    shape = _obs_shape(env, obs_dim)
    out = OfflineDataset.empty_arrays(K, H, obs_dim, d, A)
    pairs = zip(starts, lengths, strict=True)
    for k, (s, n) in enumerate(tqdm(pairs, total=K, disable=not progress, desc="features")):
        rows = slice(s, s + n)
        out["observations"][k, :n] = obs[rows]
        out["actions"][k, :n] = acts[rows]
        out["rewards"][k, :n] = rewards[rows]
        out["next_observations"][k, :n] = next_obs[rows]
        out["valid"][k, :n] = True
        out["terminal"][k, :n] = terms[rows]
        if n == H:
            out["terminal"][k, H - 1] = True  # the finite horizon ends every episode
        for h in range(n):
            out["features"][k, h] = base.features(obs[s + h].reshape(shape), int(acts[s + h]))
            out["next_action_features"][k, h] = base.action_features(
                next_obs[s + h].reshape(shape)
            )
    return OfflineDataset(**out, metadata=dict(metadata or {}))


def dataset_to_transitions(dataset: OfflineDataset) -> dict[str, np.ndarray]:
    """Flatten ``dataset`` into consecutive-episode transition arrays.

    Returns a dict with ``observations``, ``next_observations`` ``(N, obs_dim)``, ``actions``
    ``(N,)``, ``rewards`` ``(N,)``, ``terminals`` and ``truncations`` ``(N,)`` bool, where
    ``truncations`` marks the last step of an episode that did not terminate (its data ends but a
    value follows). :func:`dataset_from_transitions` inverts it given the same environment.
    """
    if not isinstance(dataset, OfflineDataset):
        raise ValueError(f"dataset must be an OfflineDataset; got {type(dataset).__name__}")
    valid = dataset.valid
    lengths = valid.sum(axis=1)
    if np.any(lengths == 0):
        raise ValueError(
            f"dataset has trajectories with no valid step (indices "
            f"{np.flatnonzero(lengths == 0)[:5].tolist()}); they cannot be flattened"
        )
    # valid must be a prefix of each row: a gap would silently splice two pieces together.
    prefix = np.arange(dataset.horizon)[None, :] < lengths[:, None]
    if np.any(valid != prefix):
        raise ValueError("dataset.valid must be True on a prefix of each trajectory (no gaps)")
    last = np.zeros_like(valid)
    last[np.arange(dataset.n_trajectories), lengths - 1] = True
    terminal = dataset.terminal
    if np.any(terminal & ~last):
        raise ValueError("dataset.terminal must only be True at the last valid step of a row")
    return {
        "observations": dataset.observations[valid],
        "actions": dataset.actions[valid],
        "rewards": dataset.rewards[valid],
        "next_observations": dataset.next_observations[valid],
        "terminals": terminal[valid],
        "truncations": (last & ~terminal)[valid],
    }


# -------------------------------------------------------------------------------------- Minari
def _import_minari():
    try:
        import minari
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            'Minari is not installed; install it with `pip install "robustrl[interop]"`'
        ) from exc
    return minari


def _lossless_cast(arr: np.ndarray, dtype, name: str) -> np.ndarray:
    cast = arr.astype(dtype)
    if not np.array_equal(cast.astype(arr.dtype), arr):
        raise ValueError(
            f"{name} cannot be stored as the observation space's dtype {np.dtype(dtype)} "
            "without loss; pass observation_space explicitly"
        )
    return cast


def to_minari(
    dataset: OfflineDataset,
    env,
    dataset_id: str,
    *,
    algorithm_name: str | None = None,
    author: str | None = None,
    description: str | None = None,
    observation_space=None,
    data_format: str | None = None,
):
    """Write ``dataset`` as a local Minari dataset and return the ``MinariDataset``.

    The dataset is created under ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``);
    nothing is uploaded. Each trajectory becomes one Minari episode with ``T + 1`` observations
    (the ``T`` observations then the last next observation), ``terminations = terminal`` and
    ``truncations`` on the last step of a trajectory that did not terminate. ``dataset.metadata``
    is stored under the metadata key ``robustrl_metadata``.

    Args:
        dataset: the OfflineDataset.
        env: the environment it came from: gives the observation and action spaces (and the
            environment spec when it was made with ``gymnasium.make``).
        dataset_id: Minari id, ``(namespace/)(env_name/)dataset_name-v<version>``; it must not
            exist yet.
        algorithm_name, author, description: Minari metadata.
        observation_space: overrides ``env.observation_space``.
        data_format: Minari storage format (``"hdf5"`` by default, ``"arrow"`` needs pyarrow).
    """
    minari = _import_minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"dataset_id must be a non-empty string; got {dataset_id!r}")
    dataset_to_transitions(dataset)  # rejects gaps and terminals before the last valid step
    _, H, _, A = _feature_env(env)
    if A != dataset.n_actions:
        raise ValueError(
            f"env has {A} actions but the dataset has {dataset.n_actions} (next_action_features)"
        )
    obs_space = observation_space if observation_space is not None else env.observation_space
    obs_dim = dataset.observations.shape[2]
    shape = tuple(obs_space.shape or ())
    if int(np.prod(shape)) != obs_dim:
        raise ValueError(
            f"observation_space has shape {shape} but the dataset's observations have "
            f"{obs_dim} entries"
        )
    dtype = obs_space.dtype if obs_space.dtype is not None else np.float64

    episodes = []
    lengths = dataset.valid.sum(axis=1)
    for k in range(dataset.n_trajectories):
        n = int(lengths[k])
        obs = dataset.observations[k, :n]
        nxt = dataset.next_observations[k, :n]
        if n > 1 and np.any(nxt[:-1] != obs[1:]):
            h = int(np.flatnonzero(np.any(nxt[:-1] != obs[1:], axis=1))[0])
            raise ValueError(
                f"trajectory {k}: next_observations[{h}] differs from observations[{h + 1}]; "
                "Minari stores one observation sequence per episode"
            )
        seq = np.concatenate([obs, nxt[-1:]]).reshape((n + 1, *shape))
        terminal = dataset.terminal[k, :n].copy()
        episodes.append(
            EpisodeBuffer(
                id=k,
                observations=_lossless_cast(seq, dtype, "observations"),
                actions=dataset.actions[k, :n].copy(),
                rewards=dataset.rewards[k, :n].copy(),
                terminations=terminal,
                truncations=np.arange(n) == n - 1 if not terminal[-1] else np.zeros(n, bool),
                infos={},
            )
        )
    spec = getattr(env, "spec", None)
    created = minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=episodes,
        env=env if spec is not None else None,
        algorithm_name=algorithm_name or str(dataset.metadata.get("behaviour_policy", "unknown")),
        author=author,
        description=description or f"robustrl {dataset!r}, metadata {dataset.metadata}",
        action_space=env.action_space,
        observation_space=obs_space,
        data_format=data_format,
    )
    created.storage.update_metadata(
        {_ROBUSTRL_METADATA_KEY: json.dumps({**dataset.metadata, "horizon": H})}
    )
    return created


def from_minari(dataset, env, *, progress: bool = False) -> OfflineDataset:
    """Load a Minari dataset (an id of a *local* dataset, or a ``MinariDataset``).

    Episodes become trajectories; features are recomputed with ``env``'s feature map. Nothing
    is downloaded: an id that is not found locally raises ValueError. The observations are
    checked against ``env`` as in :func:`dataset_from_transitions` (space and step index), so a
    dataset recorded without the step column is refused. Minari itself is imported only to
    load an id; any object with Minari's ``iterate_episodes()`` and ``storage.metadata`` is read.
    """
    if isinstance(dataset, str):
        minari = _import_minari()
        try:
            dataset = minari.load_dataset(dataset, download=False)
        except FileNotFoundError as exc:
            raise ValueError(f"dataset {dataset!r} is not a local Minari dataset: {exc}") from None
    if not hasattr(dataset, "iterate_episodes"):
        raise ValueError(
            f"dataset must be a Minari dataset id or a MinariDataset; got {type(dataset).__name__}"
        )
    parts: dict[str, list] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
    name = f"Minari dataset {getattr(getattr(dataset, 'spec', None), 'dataset_id', None)!r}"
    for ep in dataset.iterate_episodes():
        obs = np.asarray(ep.observations)
        if not isinstance(ep.observations, np.ndarray) or obs.dtype == object:
            raise ValueError("from_minari supports array observations (Box/MultiDiscrete) only")
        n = len(ep.rewards)
        if n == 0:
            continue
        where = f"{name}, episode {getattr(ep, 'id', '?')}"
        if obs.shape[0] != n + 1:
            raise ValueError(f"{where}: 'observations' must have {n + 1} rows (one more than "
                             f"the {n} rewards); got shape {obs.shape}")
        for field in ("actions", "terminations", "truncations"):
            length = len(np.asarray(getattr(ep, field)))
            if length != n:
                raise ValueError(f"{where}: {field!r} must have {n} entries like the rewards; "
                                 f"got {length}")
        flat = obs.reshape(n + 1, -1).astype(np.float64)
        parts["obs"].append(flat[:-1])
        parts["next"].append(flat[1:])
        parts["act"].append(np.asarray(ep.actions).reshape(n))
        parts["rew"].append(np.asarray(ep.rewards, dtype=np.float64))
        term = np.asarray(ep.terminations, dtype=bool)
        trunc = np.asarray(ep.truncations, dtype=bool) & ~term
        trunc[-1] = not term[-1]  # the episode's data ends here
        parts["term"].append(term)
        parts["trunc"].append(trunc)
    if not parts["rew"]:
        raise ValueError("the Minari dataset is empty: no transitions")
    raw = dataset.storage.metadata
    metadata: Any = {}
    if _ROBUSTRL_METADATA_KEY in raw:
        try:
            metadata = json.loads(raw[_ROBUSTRL_METADATA_KEY])
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: metadata {_ROBUSTRL_METADATA_KEY!r} is not valid JSON: "
                             f"{exc}") from None
        if not isinstance(metadata, dict):
            raise ValueError(f"{name}: metadata {_ROBUSTRL_METADATA_KEY!r} must be a JSON "
                             "object")
    metadata.pop("horizon", None)
    metadata["minari_dataset_id"] = raw.get("dataset_id")
    return dataset_from_transitions(
        np.concatenate(parts["obs"]),
        np.concatenate(parts["act"]),
        np.concatenate(parts["rew"]),
        np.concatenate(parts["next"]),
        np.concatenate(parts["term"]),
        env,
        truncations=np.concatenate(parts["trunc"]),
        metadata=metadata,
        progress=progress,
    )


__all__ = ["dataset_from_transitions", "dataset_to_transitions", "from_minari", "to_minari"]
