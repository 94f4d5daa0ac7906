"""Offline datasets of finite-horizon trajectories with linear features.

Arrays are stored trajectory-major, ``(K, H, ...)``: ``K`` trajectories of horizon ``H``.
A step that was never taken (the episode terminated earlier) has ``valid = False`` and zero
features; zero features contribute nothing to a Gram matrix or a regression sum, so the
by-step arrays can be fed to the ridge primitives without masking.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robustrl._artifacts import loaded_array, read_npz, read_npz_json
from robustrl._io import atomic_write
from robustrl._policy import as_action_fn
from robustrl.protocols import behind_passive_wrappers, defined_together, feature_interface
from robustrl.validation import check_array, check_int, check_seed

_ARRAYS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "features",
    "next_action_features",
    "valid",
    "terminal",
)
#: dtype kind and number of dimensions of each array in a saved dataset.
_LOADED = {"observations": ("f", 3), "actions": ("i", 2), "rewards": ("f", 2),
           "next_observations": ("f", 3), "features": ("f", 3),
           "next_action_features": ("f", 4), "valid": ("b", 2), "terminal": ("b", 2)}


def step_major(array: np.ndarray) -> np.ndarray:
    """``array (K, H, ...)`` laid out step-major in memory: ``np.swapaxes(result, 0, 1)`` is
    C-contiguous, so that the samples of one step are contiguous (a backward pass reads the
    dataset step by step; trajectory-major, each sample of a step sits in another page: the
    put fit at K = 10^4 takes 2.8x longer). A copy unless ``array`` is step-major already."""
    if array.ndim < 2 or np.swapaxes(array, 0, 1).flags.c_contiguous:
        return array
    return step_view(array).swapaxes(0, 1)


def step_view(array: np.ndarray) -> np.ndarray:
    """The C-contiguous ``(H, K, ...)`` array of ``array (K, H, ...)``: a view, no copy, when
    ``array`` is step-major (:func:`step_major`), as an :class:`OfflineDataset`'s arrays are."""
    return np.ascontiguousarray(np.swapaxes(array, 0, 1))


@dataclass
class StepData:
    """The transitions taken at one step ``h`` (valid samples only): the one per-step container
    of :meth:`OfflineDataset.step` and of the agents' backward passes (which leave the fields
    they do not read None)."""

    features: np.ndarray  # (n, d)
    rewards: np.ndarray  # (n,)
    next_action_features: np.ndarray  # (n, A, d)
    next_nonterminal: np.ndarray  # (n,) bool: the episode continues after this transition
    actions: np.ndarray | None = None  # (n,)
    observations: np.ndarray | None = None  # (n, obs_dim)
    next_observations: np.ndarray | None = None  # (n, obs_dim)
    known: np.ndarray | None = None  # (n, A): exactly known action values, NaN where learned
    in_regression: np.ndarray | None = None  # (n,) bool: the row has nonzero features
    density: float = 1.0  # fraction of nonzero feature entries


@dataclass
class OfflineDataset:
    """Trajectories ``(phi(s_h, a_h), a_h, r_h, phi(s_{h+1}, .))`` collected by a behaviour policy.

    Attributes:
        observations, next_observations: ``(K, H, obs_dim)``.
        actions: ``(K, H)`` int.
        rewards: ``(K, H)``; must be finite.
        features: ``(K, H, d)`` features of the taken state-action pair.
        next_action_features: ``(K, H, A, d)`` features of the next state paired with every action,
            so that ``V(s') = max_a Q(s', a)`` can be evaluated without the environment.
        valid: ``(K, H)`` bool, the step was taken.
        terminal: ``(K, H)`` bool, the episode ended with this transition (the horizon was
            reached or the environment terminated); no value follows a terminal transition.
        metadata: free-form JSON-serialisable description (environment, behaviour, seed).

    The arrays are indexed ``(K, H, ...)`` and kept step-major in memory
    (:func:`step_major`: the samples of one step are contiguous, as the backward passes read
    them); the constructor copies an array given in another layout, and
    :meth:`empty_arrays` allocates them so for builders that fill them in place.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    features: np.ndarray
    next_action_features: np.ndarray
    valid: np.ndarray
    terminal: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        actions = check_array(self.actions, "actions", ndim=2, dtype=np.int64, contiguous=False)
        K, H = actions.shape
        rewards = check_array(self.rewards, "rewards", shape=(K, H), contiguous=False)
        features = check_array(self.features, "features", shape=(K, H, None), contiguous=False)
        d = features.shape[2]
        naf = check_array(
            self.next_action_features, "next_action_features", shape=(K, H, None, d),
            contiguous=False)
        obs = check_array(self.observations, "observations", ndim=3, contiguous=False)
        if obs.shape[:2] != (K, H):
            raise ValueError(f"observations must have shape ({K}, {H}, obs_dim); got {obs.shape}")
        next_obs = check_array(self.next_observations, "next_observations", shape=obs.shape,
                               contiguous=False)
        valid = check_array(self.valid, "valid", shape=(K, H), dtype=bool, contiguous=False)
        terminal = check_array(self.terminal, "terminal", shape=(K, H), dtype=bool,
                               contiguous=False)
        if np.any(terminal & ~valid):
            raise ValueError("terminal must be False wherever valid is False")
        taken = actions[valid]
        if taken.size and (taken.min() < 0 or taken.max() >= naf.shape[2]):
            raise ValueError(
                f"actions must lie in [0, {naf.shape[2] - 1}] (next_action_features has "
                f"{naf.shape[2]} actions)"
            )
        if np.any(features[~valid] != 0.0):
            raise ValueError("features must be zero at steps that were not taken (valid False)")
        if not valid.any():
            raise ValueError("the dataset is empty: no valid transitions")
        for name, arr in zip(
            _ARRAYS, (obs, actions, rewards, next_obs, features, naf, valid, terminal), strict=True
        ):
            setattr(self, name, step_major(arr))
        json.dumps(self.metadata)  # fail early, not at save time

    # ----------------------------------------------------------------- shape
    @property
    def n_trajectories(self) -> int:
        return self.actions.shape[0]

    @property
    def horizon(self) -> int:
        return self.actions.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.features.shape[2]

    @property
    def n_actions(self) -> int:
        return self.next_action_features.shape[2]

    def __len__(self) -> int:
        """Number of valid transitions."""
        return int(self.valid.sum())

    def __repr__(self) -> str:
        return (
            f"OfflineDataset(K={self.n_trajectories}, H={self.horizon}, d={self.feature_dim}, "
            f"A={self.n_actions}, transitions={len(self)})"
        )

    # ----------------------------------------------------------------- views
    def step(self, h: int) -> StepData:
        """The valid transitions at 0-indexed step ``h``."""
        check_int(h, "h", low=0, high=self.horizon - 1)
        m = self.valid[:, h]
        return StepData(
            features=self.features[m, h],
            actions=self.actions[m, h],
            rewards=self.rewards[m, h],
            next_action_features=self.next_action_features[m, h],
            next_nonterminal=~self.terminal[m, h],
            observations=self.observations[m, h],
            next_observations=self.next_observations[m, h],
        )

    def by_step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step-major arrays for backward passes.

        Returns ``features (H, K, d)``, ``rewards (H, K)`` (0 where not valid),
        ``next_action_features (H, K, A, d)`` and ``next_valid (H, K)`` (True where a value
        follows the transition).
        """
        rewards = np.where(self.valid, self.rewards, 0.0)
        next_valid = self.valid & ~self.terminal
        return (step_view(self.features), step_view(rewards),
                step_view(self.next_action_features), step_view(next_valid))

    def subset(self, n_trajectories: int) -> OfflineDataset:
        """The first ``n_trajectories`` trajectories (for learning curves in K)."""
        check_int(n_trajectories, "n_trajectories", low=1, high=self.n_trajectories)
        arrays = {k: getattr(self, k)[:n_trajectories] for k in _ARRAYS}
        return OfflineDataset(**arrays, metadata=dict(self.metadata))

    @staticmethod
    def empty_arrays(K: int, H: int, obs_dim: int, d: int, A: int) -> dict[str, np.ndarray]:
        """Zero-filled constructor arrays for ``K`` trajectories (filled in by the builders),
        step-major in memory as the dataset keeps them (:func:`step_major`), so that the
        constructor copies none."""
        def zeros(*shape, dtype=np.float64):
            return np.zeros((H, K, *shape), dtype=dtype).swapaxes(0, 1)

        return {
            "observations": zeros(obs_dim),
            "actions": zeros(dtype=np.int64),
            "rewards": zeros(),
            "next_observations": zeros(obs_dim),
            "features": zeros(d),
            "next_action_features": zeros(A, d),
            "valid": zeros(dtype=bool),
            "terminal": zeros(dtype=bool),
        }

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the dataset to one ``.npz`` file, atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays["metadata_json"] = np.array(json.dumps(self.metadata))
        return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True,
                            clean_stale=True)

    @classmethod
    def load(cls, path: str | Path) -> OfflineDataset:
        """Read a dataset written by :meth:`save` (``allow_pickle=False``).

        Each array must have the dtype kind (real / integer / boolean) and number of
        dimensions of its field, then the constructor's checks apply (shapes consistent,
        finite, actions in ``[0, A)``, ``terminal`` only where ``valid``, zero features where
        not valid); ``metadata_json`` must be a JSON object. Any failure raises ``ValueError``
        naming the file (and the array)."""
        arrays = read_npz(path, [*_ARRAYS, "metadata_json"], what="an OfflineDataset file")
        metadata = read_npz_json(path, arrays, "metadata_json")
        if not isinstance(metadata, dict):
            raise ValueError(f"path {path}: array 'metadata_json' must hold a JSON object")
        checked = {}
        for name in _ARRAYS:
            kind, ndim = _LOADED[name]
            # finiteness and the exact shapes are the constructor's checks below
            # step-major as the constructor keeps it, one array at a time: loading holds
            # the file's (trajectory-major) copy of one array, not of all, beside the dataset
            checked[name] = step_major(loaded_array(path, name, arrays.pop(name), kind=kind,
                                                    shape=(None,) * ndim, finite=False))
        try:
            return cls(**checked, metadata=metadata)
        except ValueError as exc:
            raise ValueError(f"path {path} (OfflineDataset): {exc}") from None

    # ---------------------------------------------------------- collection
    @classmethod
    def collect(
        cls,
        env,
        n_trajectories: int,
        behaviour_policy=None,
        *,
        seed: int | None = None,
        progress: bool = False,
    ) -> OfflineDataset:
        """Roll out ``n_trajectories`` episodes of ``behaviour_policy`` in ``env``.

        Args:
            env: an environment with the feature protocol of :mod:`robustrl.protocols` (on it or
                on a wrapper, e.g. :class:`robustrl.envs.OneHotFeatures`).
            n_trajectories: K >= 1.
            behaviour_policy: ``None`` for uniformly random actions, or any policy form accepted
                by :func:`robustrl.evaluation.evaluate` (callable, ``predict`` object, table).
            seed: seeds the environment (first reset) and the behaviour randomness; the same
                seed gives the same dataset; ``None`` (the default, as for the agents) draws
                fresh randomness, so two calls give two different datasets.
            progress: show a tqdm bar.
        """
        check_int(n_trajectories, "n_trajectories", low=1)
        seed = check_seed(seed)
        base = env.unwrapped
        iface = feature_interface(env, who="OfflineDataset.collect")
        H, d, A = iface.horizon, iface.feature_dim, iface.n_actions
        K = int(n_trajectories)
        obs_dim = int(np.prod(env.observation_space.shape))
        rng = np.random.default_rng(seed)
        act = None if behaviour_policy is None else as_action_fn(
            behaviour_policy, rng, name="behaviour_policy"
        )

        env.action_space.seed(None if seed is None else seed + 1)
        out, _, _ = roll_out(env, cls.empty_arrays(K, H, obs_dim, d, A), act, rng, seed,
                             iface.features, iface.action_features, progress)
        spec = getattr(env, "spec", None)
        metadata = {
            "env": spec.id if spec is not None else type(base).__name__,
            "perturbation": _jsonable(getattr(base, "perturbation", None)),
            "behaviour_policy": (
                "uniform" if behaviour_policy is None else repr(behaviour_policy)[:200]
            ),
            "seed": seed,
        }
        return cls(**out, metadata=metadata)


def roll_out(env, out: dict[str, np.ndarray], act, rng: np.random.Generator, seed: int | None,
             features: Callable, action_features: Callable, progress: bool
             ) -> tuple[dict[str, np.ndarray], list[int], np.ndarray]:
    """Fill the ``(K, H, ...)`` arrays of :meth:`OfflineDataset.empty_arrays` with ``K``
    episodes of ``act`` (uniform actions from ``rng`` when None), each cut at ``H`` steps; the
    first reset takes ``seed``. Returns the arrays, the episodes that ended by truncation (not
    termination) and the episodes' returns."""
    K, H, A = out["next_action_features"].shape[:3]
    if act is None:
        batched = _uniform_rollout(env, out, rng, seed, features, action_features)
        if batched is not None:
            return out, [], batched
    timeouts, returns = [], np.zeros(K)
    for k in tqdm(range(K), disable=not progress, desc="collecting", unit="traj"):
        obs, _ = env.reset(seed=seed if k == 0 else None)
        for h in range(H):
            a = int(rng.integers(A)) if act is None else act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(a)
            out["observations"][k, h] = np.ravel(obs)
            out["actions"][k, h] = a
            out["rewards"][k, h] = reward
            out["next_observations"][k, h] = np.ravel(next_obs)
            out["features"][k, h] = features(obs, a)
            out["next_action_features"][k, h] = action_features(next_obs)
            out["valid"][k, h] = True
            returns[k] += float(reward)
            done = terminated or truncated or h == H - 1
            out["terminal"][k, h] = done
            obs = next_obs
            if done:
                if not terminated:
                    timeouts.append(k)
                break
    return out, timeouts, returns


def _uniform_rollout(env, out: dict[str, np.ndarray], rng: np.random.Generator,
                     seed: int | None, features: Callable, action_features: Callable
                     ) -> np.ndarray | None:
    """:func:`roll_out` with uniform actions, all episodes stepped together, for an environment
    with a known model behind passive wrappers
    (:meth:`~robustrl.envs.FiniteMDPEnv.rollout_uniform`): the same random streams, so the same
    arrays as the loop; the features by one ``batch_action_features`` call, used only where
    ``features`` and ``action_features`` are the environment's own and one class defines all
    three. Fills ``out`` and returns the episodes' returns, or ``None`` (nothing touched) when
    the loop must run."""
    base = behind_passive_wrappers(env)
    if base is None or not defined_together(base, "rollout_uniform", "reset", "step", "_obs"):
        return None
    if not defined_together(base, "batch_action_features", "features", "action_features") or (
            features != base.features or action_features != base.action_features):
        return None
    K, H = out["actions"].shape
    states, actions, rewards = base.rollout_uniform(K, rng, seed)
    steps = np.broadcast_to(np.arange(H + 1), states.shape)
    # every visited state's features, then the taken actions' rows and the next states'
    every = base.batch_action_features(
        np.stack([states, steps], axis=-1).reshape(-1, 2)).reshape(K, H + 1, *out[
            "next_action_features"].shape[2:])
    out["observations"][..., 0], out["observations"][..., 1] = states[:, :H], steps[:, :H]
    out["next_observations"][..., 0] = states[:, 1:]
    out["next_observations"][..., 1] = steps[:, 1:]
    out["actions"][:] = actions
    out["rewards"][:] = rewards
    out["features"][:] = np.take_along_axis(every[:, :H], actions[:, :, None, None],
                                            axis=2)[:, :, 0]
    out["next_action_features"][:] = every[:, 1:]
    out["valid"][:] = True
    out["terminal"][:, H - 1] = True  # every episode of such an environment lasts H steps
    returns = np.zeros(K)
    for h in range(H):  # step by step, the loop's order of additions
        returns += rewards[:, h]
    return returns


class DatasetChunks:
    """A dataset stored as several :class:`OfflineDataset` files, read one file at a time.

    Re-iterable: every iteration loads the files afresh, in order, so an offline agent's
    ``fit_stream(DatasetChunks(paths))`` reads the data once per backward step while holding
    one chunk in memory (the trajectories of all files together form the dataset).
    """

    def __init__(self, paths) -> None:
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise ValueError("paths must name at least one OfflineDataset .npz file")
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise ValueError(f"paths do not exist: {missing}")

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        for path in self.paths:
            yield OfflineDataset.load(path)

    @classmethod
    def save(cls, dataset: OfflineDataset, directory: str | Path,
             trajectories_per_chunk: int) -> DatasetChunks:
        """Write ``dataset`` as files of ``trajectories_per_chunk`` trajectories each
        (``chunk_00000.npz``, ...) in ``directory``; returns the chunks."""
        size = check_int(trajectories_per_chunk, "trajectories_per_chunk", low=1)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, start in enumerate(range(0, dataset.n_trajectories, size)):
            arrays = {k: getattr(dataset, k)[start:start + size] for k in _ARRAYS}
            part = OfflineDataset(**arrays, metadata=dict(dataset.metadata, chunk=i))
            paths.append(part.save(directory / f"chunk_{i:05d}.npz"))
        return cls(paths)


def _jsonable(x):
    if x is None or isinstance(x, (int, float, str, bool)):
        return x
    return np.asarray(x).tolist()
