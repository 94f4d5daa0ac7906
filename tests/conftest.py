"""Shared test fixtures: small seeded data sets and helpers that several test files use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.exact import robust_value_iteration


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_folder(tmp_path_factory):
    """Stable-baselines3 models that tests build themselves (``PPO("MlpPolicy", env)``) log to
    ``$SB3_LOGDIR``, else to a fresh ``/tmp/SB3-<date>`` folder per model: one folder inside
    pytest's temporary directory instead (robustrl's own models log nowhere)."""
    folder = tmp_path_factory.mktemp("sb3_logs")
    old = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = old


def value_class_of(env, n: int = 20, seed: int = 0) -> np.ndarray:
    """Q* of the env's model and ``n`` perturbed copies, clipped to ``[0, H - h]`` (the finite
    value class GLOW and HyGLOW need)."""
    model = env.unwrapped.model
    Q = robust_value_iteration(model).Q
    caps = (model.horizon - np.arange(model.horizon))[:, None, None]
    noise = np.random.default_rng(seed).normal(0.0, 0.3, (n, *Q.shape))
    return np.concatenate([Q[None], np.clip(Q[None] + noise, 0.0, caps)])


def observations_of(env, n: int = 12, seed: int = 1) -> np.ndarray:
    """``n`` observations met along random episodes of ``env`` (seeded)."""
    rng = np.random.default_rng(seed)
    obs_list = []
    obs, _ = env.reset(seed=seed)
    while len(obs_list) < n:
        obs_list.append(np.array(obs))
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(obs_list)


@pytest.fixture(scope="session")
def sim_data_small() -> OfflineDataset:
    """30 trajectories of the simulated linear MDP (seed 0)."""
    return OfflineDataset.collect(SimulatedLinearMDPEnv(), 30, seed=0)


@pytest.fixture(scope="session")
def value_class():
    """:func:`value_class_of` as a fixture."""
    return value_class_of


@pytest.fixture(scope="session")
def observations():
    """:func:`observations_of` as a fixture."""
    return observations_of


# ------------------------------------------------------------ the CLI in a subprocess
ROBUSTRL = [sys.executable, "-m", "robustrl.cli"]


def cli_env(drop_prefix: str, **extra) -> dict[str, str]:
    """``os.environ`` less the variables starting with ``drop_prefix`` (a test experiment's
    switches), plus ``extra`` as strings; an ``extra`` of None removes that variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        env.pop(k, None)
    return env


def run_cli(*args, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``python -m robustrl.cli ARGS`` with ``env``, output captured as text."""
    return subprocess.run([*ROBUSTRL, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def read_events(log: Path, event: str | None = None) -> list[dict]:
    """The rows of a JSON-lines event log written by a test experiment (all, or those of one
    ``event``); a line being written, or cut by a kill, is skipped."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return [r for r in rows if event is None or r["event"] == event]
