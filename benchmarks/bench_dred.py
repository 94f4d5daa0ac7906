"""Cave Escape throughput (DRED, arXiv:2402.03479): today's pipeline against the batched env.

* **env steps/s**: ``DummyVecEnv`` of ``LevelWrapper(CaveEscapeEnv)`` built as
  :class:`~robustrl.agents.dred.training.LevelReplayPPO` builds it (``make_vec_env``, so with
  SB3's ``Monitor``) against :class:`~robustrl.envs.cave_escape_vec.CaveEscapeVecEnv`, both on
  the same training levels (assigned round-robin) and the same uniformly random actions
  (drawn before the clock starts), 7 actions; best of ``repeats`` timed blocks of steps. The
  ratio divides by the ``DummyVecEnv`` row with the same number of environments when one was
  measured, else by the largest one measured (its per-environment cost is flat in ``n``).
* **PPO steps/s** (``ppo``; ``ppo_lstm`` for sb3-contrib ``RecurrentPPO`` with the authors'
  LSTM(256) network): end-to-end SB3 ``PPO`` (``MultiInputPolicy``, the feed-forward
  DRED policy of :func:`robustrl.agents.dred.policy.policy_kwargs`, ``PPO_DEFAULTS``, one
  minibatch of ``n_envs x n_steps``), env steps per second of ``learn`` over whole updates
  after one untimed warm-up update, on CPU, with each env; ``rollout share`` is the part of
  that time spent collecting rollouts (env steps and policy calls), the rest is the update.

    python -m benchmarks --only dred
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from benchmarks.common import format_table


def _levels(n_levels: int, size: int) -> np.ndarray:
    from robustrl.envs.cave_levels import generate_level_set

    return generate_level_set("train", n_levels, seed=0, size=size)


def make_dummy(levels: np.ndarray, n_envs: int, seed: int = 0):
    """Today's pipeline: DummyVecEnv of LevelWrapper(CaveEscapeEnv) with Monitor, levels set
    through ``env_method('set_level')`` as the DRED trainer does."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from robustrl.agents.dred.training import _make_env

    venv = make_vec_env(functools.partial(_make_env, levels.shape[1], False), n_envs=n_envs,
                        seed=seed, vec_env_cls=DummyVecEnv)
    for i in range(n_envs):
        venv.env_method("set_level", levels[i % len(levels)], indices=[i])
    return venv


def make_batched(levels: np.ndarray, n_envs: int, seed: int = 0):
    from robustrl.envs.cave_escape_vec import CaveEscapeVecEnv

    venv = CaveEscapeVecEnv(levels[np.arange(n_envs) % len(levels)])
    venv.seed(seed)
    return venv


def env_steps_per_second(venv, n_steps: int, repeats: int, seed: int = 0) -> float:
    """Best env steps/s over ``repeats`` blocks of ``n_steps`` random-action steps."""
    n = venv.num_envs
    rng = np.random.default_rng(seed)
    actions = rng.integers(7, size=(repeats + 1, n_steps, n))
    venv.reset()
    for a in actions[0][: max(1, n_steps // 4)]:  # warm-up (compilation, caches)
        venv.step(a)
    best = np.inf
    for block in actions[1:]:
        start = time.perf_counter()
        for a in block:
            venv.step(a)
        best = min(best, time.perf_counter() - start)
    return n * n_steps / best


def ppo_steps_per_second(venv, n_steps: int, updates: int, seed: int = 0,
                         policy: str = "mlp") -> tuple[float, float]:
    """Env steps/s of SB3 PPO ``learn`` (``policy="lstm"``: sb3-contrib ``RecurrentPPO`` with
    the authors' LSTM(256) network) over ``updates`` updates after one warm-up update, and
    the fraction of that time spent collecting rollouts (env steps plus policy calls; the rest
    is the gradient update)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from robustrl.agents.dred.training import (
        _POLICY_SHAPE,
        PPO_DEFAULTS,
        _phase_ppo_class,
        _policy_spec,
    )

    class RolloutClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds = 0.0
            self._start = 0.0

        def _on_rollout_start(self) -> None:
            self._start = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.seconds += time.perf_counter() - self._start

        def _on_step(self) -> bool:
            return True

    n = venv.num_envs
    name, kwargs = _policy_spec(policy, _POLICY_SHAPE["features_dim"])
    model = _phase_ppo_class(policy == "lstm")(
        name, venv, n_steps=n_steps, batch_size=n * n_steps, policy_kwargs=kwargs,
        device="cpu", seed=seed, verbose=0, **PPO_DEFAULTS)
    model.learn(n * n_steps)
    clock = RolloutClock()
    start = time.perf_counter()
    model.learn(n * n_steps * updates, reset_num_timesteps=False, callback=clock)
    total = time.perf_counter() - start
    return n * n_steps * updates / total, clock.seconds / total


def run(cfg: dict[str, Any], repeats: int = 3) -> dict[str, Any]:
    """Env rows for ``cfg["dummy_envs"]`` / ``cfg["batched_envs"]``; PPO rows for
    ``cfg["ppo"]`` = list of ``(n_envs, n_steps)`` (both envs each), ``cfg["ppo_updates"]``."""
    import torch

    levels = _levels(cfg["n_levels"], cfg["size"])
    rows: list[dict[str, Any]] = []
    dummy: dict[int, float] = {}
    for n in cfg["dummy_envs"]:
        n_steps = max(4, cfg["dummy_env_steps"] // n)
        dummy[n] = env_steps_per_second(make_dummy(levels, n), n_steps, repeats)
        rows.append(dict(env="DummyVecEnv(CaveEscapeEnv)", n_envs=n, steps_per_s=dummy[n],
                         ratio=1.0, vs=n))
    for n in cfg["batched_envs"]:
        n_steps = max(4, cfg["batched_env_steps"] // n)
        sps = env_steps_per_second(make_batched(levels, n), n_steps, repeats)
        ref = n if n in dummy else max(dummy)
        rows.append(dict(env="CaveEscapeVecEnv", n_envs=n, steps_per_s=sps,
                         ratio=sps / dummy[ref], vs=ref))
    table = format_table(
        ["env", "n_envs", "env steps/s", "x DummyVecEnv", "(DummyVecEnv n_envs)"],
        [[r["env"], r["n_envs"], r["steps_per_s"], f"{r['ratio']:.1f}x", r["vs"]]
         for r in rows])
    ppo_rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    jobs = [(n, s, "mlp") for n, s in cfg["ppo"]] + [(n, s, "lstm")
                                                     for n, s in cfg.get("ppo_lstm", [])]
    for n, n_steps, policy in jobs:
        base = None
        for name, make in (("DummyVecEnv(CaveEscapeEnv)", make_dummy),
                           ("CaveEscapeVecEnv", make_batched)):
            sps, share = ppo_steps_per_second(make(levels, n), n_steps, cfg["ppo_updates"],
                                              policy=policy)
            base = sps if base is None else base
            ppo_rows.append(dict(env=name, n_envs=n, n_steps=n_steps,
                                 policy="LSTM(256)" if policy == "lstm" else "feed-forward",
                                 steps_per_s=sps, ratio=sps / base, rollout_share=share))
    if ppo_rows:
        table += "\n\n" + format_table(
            ["PPO (CPU)", "policy", "n_envs", "n_steps", "env steps/s", "x DummyVecEnv",
             "rollout share"],
            [[r["env"], r["policy"], r["n_envs"], r["n_steps"], r["steps_per_s"],
              f"{r['ratio']:.2f}x", f"{100 * r['rollout_share']:.0f}%"] for r in ppo_rows])
        table += f"\n(torch threads {threads})"
    return {"rows": rows, "ppo_rows": ppo_rows, "table": table}
