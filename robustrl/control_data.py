"""Offline datasets on classic-control tasks, from a stable-baselines3 behaviour policy.

The recipe is the usual one for offline deep RL benchmarks: train a behaviour policy
with stable-baselines3 on the nominal task for a small budget (:func:`train_behaviour_policy`),
add epsilon noise to its greedy action (:class:`EpsilonGreedy`), and roll out ``K`` episodes
into the package's :class:`~robustrl.data.OfflineDataset` (:func:`collect_control_dataset`).
:func:`offline_control_dataset` does all three and caches the trained policy and the dataset
on disk (atomic writes, a file lock against two workers training the same policy), keyed by
environment, algorithm, budget, seed and collection settings, so reruns reuse them.

Dataset layout (see :class:`~robustrl.data.OfflineDataset`): ``observations`` and
``next_observations`` are the raw observations; the horizon ``H`` is the task's time limit cut
to ``horizon``; ``valid`` marks steps that were taken and ``terminal`` the last transition of
each episode (the task terminated, or step ``H - 1`` was reached). ``metadata["timeouts"]``
lists the trajectories whose last transition is a time-limit cut rather than a true
termination, for learners that bootstrap through truncation (discounted fitted Q-iteration).

Features: ``phi(s, a) = onehot(a) kron [1, s]`` (:func:`control_features`, dimension
``A * (obs_dim + 1)``): a separate affine function of the observation per action, the simplest
map under which a linear agent is well defined; ``next_action_features[k, h, b]`` is
``phi(s_{h+1}, b)`` for every action ``b``. Neural agents read the raw observations instead.

torch and stable-baselines3 are imported inside the functions that need them, so importing
this module costs nothing beyond NumPy and gymnasium.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robustrl._artifacts import load_sb3_policy_state, load_state_dict_checked, save_sb3_policy
from robustrl._io import atomic_write, file_lock
from robustrl._policy import as_action_fn
from robustrl.data import OfflineDataset, roll_out
from robustrl.validation import check_int, check_scalar, check_seed

__all__ = [
    "ALGORITHMS",
    "EpsilonGreedy",
    "cache_dir",
    "collect_control_dataset",
    "control_action_features",
    "control_features",
    "offline_control_dataset",
    "train_behaviour_policy",
]

ALGORITHMS = ("ppo", "dqn")

# Small-budget settings that learn CartPole in ~2e4 steps on one CPU thread (PPO: the
# rl-zoo's short-rollout recipe; DQN: frequent updates, fast epsilon decay).
_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 256, "batch_size": 64, "n_epochs": 10, "gae_lambda": 0.8,
            "gamma": 0.98, "learning_rate": 1e-3, "ent_coef": 0.0},
    "dqn": {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 50_000,
            "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10,
            "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
            "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]}},
}


# ----------------------------------------------------------------------------------- features
def control_features(obs, action: int, n_actions: int) -> np.ndarray:
    """``onehot(action) kron [1, obs]``: shape ``(n_actions * (obs_dim + 1),)``."""
    x = np.concatenate(([1.0], np.ravel(np.asarray(obs, dtype=np.float64))))
    out = np.zeros(n_actions * x.size)
    out[int(action) * x.size:(int(action) + 1) * x.size] = x
    return out


def control_action_features(obs, n_actions: int) -> np.ndarray:
    """``phi(obs, b)`` for every action ``b``: shape ``(n_actions, n_actions * (obs_dim + 1))``."""
    x = np.concatenate(([1.0], np.ravel(np.asarray(obs, dtype=np.float64))))
    return np.kron(np.eye(n_actions), x)


# -------------------------------------------------------------------------------------- cache
def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$ROBUSTRL_CACHE``, else
    ``~/.cache/robustrl``; created if missing."""
    if path is None:
        path = os.environ.get("ROBUSTRL_CACHE") or Path.home() / ".cache" / "robustrl"
    out = Path(path) / "control"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _key(prefix: str, config: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


def _locked(path: Path):
    """Lock ``path.lock``: two runner workers asking for the same cached file build it once."""
    return file_lock(path.with_name(path.name + ".lock"))


def _resolve_cache(cache) -> Path | None:
    if cache is False:
        return None
    return cache_dir(None if cache is True or cache is None else cache)


# ---------------------------------------------------------------------------------- behaviour
def _check_algo(algo: str) -> str:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {ALGORITHMS}; got {algo!r}")
    return algo


def _make(env_id: str, env_kwargs: dict[str, Any] | None, perturbation=None):
    from robustrl.envs.perturbations import make_env

    kwargs = dict(env_kwargs or {})
    parameter = kwargs.pop("axis", None)  # make_perturbed's name of make_env's parameter
    return make_env(env_id, perturbation, parameter=parameter, **kwargs)


def train_behaviour_policy(
    env_id: str = "CartPole-v1",
    *,
    algo: str = "ppo",
    timesteps: int = 20_000,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    cache: bool | str | os.PathLike | None = None,
    progress: bool = False,
):
    """A stable-baselines3 policy trained on the nominal task (``algo`` ``"ppo"`` or ``"dqn"``,
    ``timesteps`` environment steps, one CPU thread, seeded).

    ``env_kwargs`` go to :func:`~robustrl.envs.perturbations.make_env` (e.g.
    ``{"discretize": 5}`` for Pendulum). With ``cache`` (default: :func:`cache_dir`; a path;
    ``False`` to disable) the model is stored as ``behaviour-<hash>.zip`` and loaded on reuse.
    """
    _check_algo(algo)
    check_int(timesteps, "timesteps", low=1)
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("seed must be a nonnegative integer (the cache is keyed by it)")
    import stable_baselines3 as sb3
    import torch

    cls = {"ppo": sb3.PPO, "dqn": sb3.DQN}[algo]
    config = {"env_id": env_id, "algo": algo, "timesteps": int(timesteps), "seed": seed,
              "env_kwargs": env_kwargs or {}, "hyperparams": _HYPERPARAMS[algo],
              "sb3": sb3.__version__}
    folder = _resolve_cache(cache)

    def make_model():
        torch.set_num_threads(1)
        env = _make(env_id, env_kwargs)
        kwargs = dict(_HYPERPARAMS[algo])
        if algo == "dqn":
            kwargs["learning_starts"] = min(kwargs["learning_starts"], max(1, timesteps // 10))
        return cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)

    def build():
        from stable_baselines3.common.logger import Logger

        model = make_model()
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<time> temp folder
        model.learn(total_timesteps=int(timesteps), progress_bar=False)
        return model

    if folder is None:
        return build()
    path = folder / (_key("behaviour", config) + ".zip")
    with _locked(path):
        if not path.exists():
            model = build()
            entry = {"cache_config": config,
                     "exploration_rate": float(getattr(model, "exploration_rate", 0.0))}
            save_sb3_policy(path, model, entry)
            atomic_write(path.with_suffix(".json"),
                         lambda fh: json.dump(config, fh, indent=2), binary=False, clean_stale=True)
            return model
    return _load_behaviour(path, config, make_model)


def _load_behaviour(path: Path, config: dict[str, Any], make_model):
    """The cached behaviour policy at ``path``: the file's checksum is checked, its recorded
    configuration must be the one its name was derived from, and the weights (names, shapes,
    finite) are loaded into a freshly built untrained model; nothing is unpickled (an SB3
    ``.zip`` placed there is rejected, not run). Raises ``ValueError`` naming the file."""
    try:
        entry, state = load_sb3_policy_state(path, what="behaviour-policy cache entry")
    except ValueError as exc:
        raise ValueError(f"{exc} (delete the entry to retrain)") from None
    if entry.get("cache_config") != json.loads(json.dumps(config)):
        raise ValueError(f"path {path}: the cache entry's configuration does not match its "
                         "name (a renamed or tampered entry); delete it to retrain")
    rate = entry.get("exploration_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"path {path}: 'exploration_rate' must be a number in [0, 1]; got "
                         f"{rate!r}")
    model = make_model()
    load_state_dict_checked(model.policy, state, path, "state_dict")
    if config["algo"] == "dqn":
        model.exploration_rate = float(rate)
    return model


class EpsilonGreedy:
    """Behaviour policy: the greedy action of ``policy`` (any form
    :func:`robustrl._policy.as_action_fn` accepts, e.g. an SB3 model), replaced by a uniformly
    random action with probability ``epsilon``. Calling it (or ``predict``) draws from its own
    generator seeded by ``seed``; ``predict`` is stochastic whatever ``deterministic`` says,
    since the noise is the point of a behaviour policy."""

    def __init__(self, policy, n_actions: int, epsilon: float, seed: int | None = 0) -> None:
        self.n_actions = check_int(n_actions, "n_actions", low=1)
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        self.policy = policy
        self._act = as_action_fn(policy, name="policy")
        self._rng = np.random.default_rng(check_seed(seed))

    def __call__(self, obs) -> int:
        # both draws every step, so the noise stream does not depend on the greedy actions
        explore, random_action = self._rng.random() < self.epsilon, int(
            self._rng.integers(self.n_actions))
        return random_action if explore else int(self._act(obs))

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        return self(obs), state

    def __repr__(self) -> str:
        return f"EpsilonGreedy({type(self.policy).__name__}, epsilon={self.epsilon:g})"


# --------------------------------------------------------------------------------- collection
def collect_control_dataset(
    env_id: str,
    behaviour_policy,
    n_trajectories: int,
    *,
    horizon: int | None = None,
    seed: int | None = 0,
    perturbation: dict[str, float] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> OfflineDataset:
    """Roll out ``n_trajectories`` episodes of ``behaviour_policy`` into an OfflineDataset.

    Args:
        env_id: a classic-control task :func:`~robustrl.envs.perturbations.make_env` accepts.
        behaviour_policy: any policy form (``None``: uniformly random actions).
        n_trajectories: K >= 1.
        horizon: cut episodes at this many steps (default: the task's time limit); ``H`` is
            the smaller of the two.
        seed: seeds the first reset and the uniform behaviour; same seed, same dataset.
        perturbation: scales of the physical parameters (default: nominal).
        env_kwargs: further ``make_env`` arguments (``discretize``, noise levels).
    """
    K = check_int(n_trajectories, "n_trajectories", low=1)
    seed = check_seed(seed)
    env = _make(env_id, env_kwargs, perturbation)
    from gymnasium import spaces

    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(
            f"env_id {env_id!r} has action space {env.action_space}; datasets need Discrete "
            "actions (pass env_kwargs={'discretize': N} for Pendulum)"
        )
    limit = env.spec.max_episode_steps if env.spec is not None else None
    H = limit or horizon
    if horizon is not None:
        H = min(check_int(horizon, "horizon", low=1), H) if H else horizon
    if H is None:
        raise ValueError(f"env_id {env_id!r} has no time limit; pass horizon")
    A = int(env.action_space.n)
    obs_dim = int(np.prod(env.observation_space.shape))
    d = A * (obs_dim + 1)
    rng = np.random.default_rng(seed)
    policy = (None if behaviour_policy is None
              else as_action_fn(behaviour_policy, rng, name="behaviour_policy"))
    act = None if policy is None else (lambda o: int(policy(o)))  # Discrete action indices
    out, timeouts, returns = roll_out(
        env, OfflineDataset.empty_arrays(K, H, obs_dim, d, A), act, rng, seed,
        lambda o, a: control_features(o, a, A), lambda o: control_action_features(o, A), progress)
    env.close()
    metadata = {
        "env": env_id,
        "perturbation": perturbation or {},
        "env_kwargs": env_kwargs or {},
        "behaviour_policy": ("uniform" if behaviour_policy is None
                             else repr(behaviour_policy)[:200]),
        "seed": seed,
        "horizon": int(H),
        "feature_map": "onehot(a) kron [1, obs]",
        "timeouts": timeouts,
        "behaviour_return_mean": float(returns.mean()),
        "behaviour_return_std": float(returns.std()),
    }
    return OfflineDataset(**out, metadata=metadata)


def offline_control_dataset(
    env_id: str = "CartPole-v1",
    *,
    n_trajectories: int = 100,
    horizon: int | None = 200,
    epsilon: float = 0.3,
    algo: str = "ppo",
    timesteps: int = 20_000,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    action_noise: float = 0.0,
    cache: bool | str | os.PathLike | None = None,
    progress: bool = False,
    behaviour_hook: Callable[[Any], None] | None = None,
) -> OfflineDataset:
    """Train (or load) the behaviour policy, wrap it epsilon-greedy and collect (or load) the
    dataset. ``seed`` seeds the behaviour training, the epsilon noise and the rollouts; the
    cache key is every argument that changes the data. ``behaviour_hook(model)`` is called
    with the SB3 model when the dataset has to be collected (e.g. to evaluate it).

    ``action_noise`` (collection only; the behaviour policy is trained without it): the
    probability that the environment executes a uniformly random action instead of the one
    recorded in the dataset (:class:`~robustrl.envs.perturbed_control.ActionNoise`), which
    makes the recorded transitions ``P(s' | s, a)`` stochastic.

    Returns the dataset; its metadata names the behaviour (algorithm, budget, epsilon) and
    the behaviour's mean return on the collected episodes.
    """
    _check_algo(algo)
    check_int(n_trajectories, "n_trajectories", low=1)
    epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
    action_noise = check_scalar(action_noise, "action_noise", low=0.0, high=1.0)
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("seed must be a nonnegative integer (the cache is keyed by it)")
    config = {"env_id": env_id, "n_trajectories": int(n_trajectories), "horizon": horizon,
              "epsilon": epsilon, "algo": algo, "timesteps": int(timesteps), "seed": seed,
              "env_kwargs": env_kwargs or {}}
    collect_kwargs = dict(env_kwargs or {})
    if action_noise > 0.0:  # keeps the cache key of noiseless datasets unchanged
        config["action_noise"] = action_noise
        collect_kwargs["action_noise"] = action_noise
    folder = _resolve_cache(cache)

    def build() -> OfflineDataset:
        model = train_behaviour_policy(env_id, algo=algo, timesteps=timesteps, seed=seed,
                                       env_kwargs=env_kwargs, cache=cache, progress=progress)
        if behaviour_hook is not None:
            behaviour_hook(model)
        env = _make(env_id, env_kwargs)
        behaviour = EpsilonGreedy(model, int(env.action_space.n), epsilon, seed=seed + 1)
        data = collect_control_dataset(env_id, behaviour, n_trajectories, horizon=horizon,
                                       seed=seed + 2, env_kwargs=collect_kwargs,
                                       progress=progress)
        data.metadata.update({"algo": algo, "timesteps": int(timesteps), "epsilon": epsilon,
                              "behaviour_seed": seed, "action_noise": action_noise})
        return data

    if folder is None:
        return build()
    path = folder / (_key("dataset", config) + ".npz")
    with _locked(path):
        if path.exists():
            return OfflineDataset.load(path)
        data = build()
        data.save(path)
    return data
