"""DRED on Cave Escape: zero-shot solved rate and return per held-out set, per method.

arXiv:2402.03479 (Sec. 5, App. B). Each cell trains one method with stable-baselines3 PPO
(:class:`robustrl.agents.dred.training.LevelReplayPPO`) for a fixed number of **student
gradient updates** (the same for every method), then evaluates it zero-shot with one
episode per level on:

* ``train``: (a subset of) the training levels;
* ``test``: held-out levels of the training layout families (in distribution);
* ``unseen_layouts``: held-out layout families, same lava/moss rule;
* ``high_lava``: unseen families, lava fraction 0.5, moss 0.05 (edge case);
* ``large``: 43x43 interiors (the reference's 45x45 grids).

Methods (``method``, all 8 in the default grid): ``dred`` (VAE-DRED), ``el_dred`` (EL-DRED:
ACCEL edits of easy replayed levels in place of the VAE), ``dr`` (domain randomisation),
``uniform`` (uniform over the training set), ``plr`` (PLR over the training set), ``robust_plr``
(PLR-perp over DR levels), ``accel`` (ACCEL from empty rooms), ``accel_d`` (ACCEL with the
training set in its buffer).

Training runs on the batched :class:`~robustrl.envs.cave_escape_vec.CaveEscapeVecEnv` and is
checkpointed every ``checkpoint_every`` updates (per scale) under
``<cache_dir>/checkpoints/<method>-<scale>-<hash of params and seed>``; a cell that is run again
after an interruption resumes from there (``resumed_at_update`` in its metrics) and removes the
folder when it finishes.

Level sets come from :func:`robustrl.envs.cave_levels.generate_level_set` with ``data_seed``
(shared by all cells: one dataset, as in the paper; seeds vary the agent). The VAE (for
``dred``) is trained once per (data_seed, scale) on the training set and cached in
``cache_dir`` (``""``: ``results/dred_cave_escape/cache``, or ``$ROBUSTRL_DRED_CACHE``), written
atomically under a file lock so parallel cells train it once; the level sets are saved there too.

``scale`` presets (:data:`SCALES`):

* ``tiny``: seconds; for tests only.
* ``small`` (default): CPU, minutes: 64 training levels, 8 envs x 128 steps, 60 updates (about
  60k env steps for one-phase methods, 120k for DRED), navigation-only actions (3 instead of 7,
  an easier exploration problem at this budget), a few levels per eval set. At this budget no
  method learns beyond the untrained policy (docs/dred-results.md).
* ``cpu``: the CPU preset where uniform learns (docs/dred-results.md): 5x5 caves (horizon 54
  steps; "large" = 9x9), 64 training levels, 16 envs x 64 steps, 4 PPO minibatches, 100
  updates, learning rate 1e-3 (the scale's default), navigation actions, feed-forward policy,
  evaluation with sampled actions (the authors' evaluator's default).
* ``cpu_lstm``: ``cpu`` with the authors' recurrent policy (sb3-contrib ``RecurrentPPO``) at
  a CPU width, LSTM(64): uniform solved 0.83 of the training levels after 100 updates in a
  3-seed probe (0.88 with LSTM(256) at 3x the CPU time), above the 0.8 that ``cpu`` does not
  reach (docs/dred-results.md); about 3x the CPU time per update of ``cpu``.
* ``h200``: the ``cpu`` problem with 64 envs x 64 steps and 8 minibatches (4x the samples per
  update) and larger eval sets, for ``experiments/gpu/dred_h200.sh`` (docs/gpu/dred.md).
* ``medium``: ``small`` with 600 updates (600k env steps for one-phase methods, 1.2M for
  DRED); about 3 minutes per DRED cell on a free core. Learning shows from about 400 updates.
* ``gpu``: one H200/H100 machine (16 cores) for ~5 minutes: 256 training levels, 16 envs x 128
  steps, 250 updates, buffer 1000, a 1024-d VAE trained 100 epochs, full action set; run with
  ``--seeds 3 --workers 15`` (one process per cell; env stepping is CPU-bound, the GPU runs
  PPO and the VAE).
* ``full``: the authors' configuration (App. B): 512 training levels, 36 envs x 256 steps on
  the batched env, 7 actions, LSTM(256) policy (sb3-contrib ``RecurrentPPO``), buffer 4000,
  14400 updates (DRED's 265M env steps), 2048 test levels, 112 per edge-case set, 108 large
  levels. Days on a GPU machine; not run here.

Metrics per cell: ``solved_<set>`` and ``return_<set>`` for each set, ``steps_per_second``
(env steps incl. no-gradient phases / training wall time), ``env_steps``, ``grad_updates``,
``train_seconds``, ``eval_seconds``, ``vae_seconds``, ``device``, and for buffer methods
``buffer_generated``, ``dataset_mass``, ``admitted_rate`` (generated or new levels admitted /
proposed). ``plot`` draws ``dred_cave_escape.png``: solved rate and return per method per set.

Run: robustrl run dred_cave_escape --out results/dred_cave_escape --workers 2
GPU machine (16 cores), about 5 minutes; the sweep's cells run on CPU (see ``_device``):
     python -c "from robustrl.experiments.dred_cave_escape import measure_throughput as m;
     print(m('dred', 'full', 2, out='$OUT/throughput_full_dred.json'))";
     ROBUSTRL_DRED_DEVICE=cpu ROBUSTRL_DRED_CACHE=/tmp/dred_cache timeout 270 robustrl run \\
     dred_cave_escape --set scale=gpu --seeds 3 --workers 15 --quiet --out $OUT/dred;
     robustrl plot $OUT/dred
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write, atomic_write_json, file_lock

NAME = "dred_cave_escape"
DESCRIPTION = ("DRED vs DR / uniform / PLR / robust PLR on Cave Escape: zero-shot solved rate "
               "and return per held-out set (SB3 PPO, equal gradient updates)")
METHODS = ("dred", "el_dred", "dr", "uniform", "plr", "robust_plr", "accel", "accel_d")
EVAL_SETS = ("train", "test", "unseen_layouts", "high_lava", "large")
GRID = {
    "method": list(METHODS),
    "scale": ["small"],
    "data_seed": [0],
    "updates": [0],  # 0: the scale's preset
    # 0: the scale's preset (SCALES[scale]["learning_rate"]; the authors' 1e-4,
    # docs/algorithms/dred.md#b5, except ``cpu`` / ``h200``: 1e-3, the informative deviation
    # at these budgets)
    "learning_rate": [0.0],
    "cache_dir": [""],
}
SEEDS = 3
# Third-party modules the cells import -> the extra that installs them (checked before any cell).
REQUIRES = {"torch": "neural", "stable_baselines3": "neural", "minigrid": "dred"}

_VAE_FULL = dict(vae_epochs=200, latent_dim=1024, n_pairs=6, per_pair=6)
_EVAL_SMALL = dict(train=32, test=48, unseen_layouts=24, high_lava=24, large=4)
SCALES: dict[str, dict] = {
    "tiny": dict(n_train=12, n_envs=2, n_steps=32, updates=2, capacity=24,
                 vae_epochs=2, latent_dim=16, n_pairs=1, per_pair=2, navigation_only=True,
                 vec_env="batched", policy="mlp", checkpoint_every=1,
                 eval_sizes=dict(train=2, test=2, unseen_layouts=2, high_lava=2, large=1),
                 large_size=15),
    "small": dict(n_train=64, n_envs=8, n_steps=128, updates=60, capacity=256,
                  vae_epochs=60, latent_dim=64, n_pairs=2, per_pair=4, navigation_only=True,
                  vec_env="batched", policy="mlp", checkpoint_every=20,
                  eval_sizes=_EVAL_SMALL, large_size=43),
    "gpu": dict(n_train=256, n_envs=16, n_steps=128, updates=250, capacity=1000,
                **dict(_VAE_FULL, vae_epochs=100, n_pairs=2, per_pair=8), navigation_only=False,
                vec_env="batched", policy="mlp", checkpoint_every=50,
                eval_sizes=dict(train=128, test=256, unseen_layouts=112, high_lava=112,
                                large=16), large_size=43),
    # CPU preset where uniform learns (docs/dred-results.md): 5x5 caves (horizon 54), 16 envs x
    # 64 steps, 4 minibatches per PPO epoch, 100 updates, learning rate 1e-3 (the default here)
    "cpu": dict(n_train=64, level_size=5, n_envs=16, n_steps=64, n_minibatches=4, updates=100,
                capacity=256, vae_epochs=60, latent_dim=32, n_pairs=2, per_pair=8,
                navigation_only=True, vec_env="batched", policy="mlp", checkpoint_every=25,
                learning_rate=1e-3,
                eval_sizes=dict(train=64, test=64, unseen_layouts=48, high_lava=48, large=12),
                large_size=9),
    # the "cpu" preset with the authors' recurrent policy at a CPU width, LSTM(64): the memory
    # the feed-forward policy lacks on the winding 5x5 routes; uniform solved 0.83 of the
    # training levels after 100 updates in a 3-seed probe (0.88 with the authors' LSTM(256),
    # at 3x the CPU time; docs/dred-results.md)
    "cpu_lstm": dict(n_train=64, level_size=5, n_envs=16, n_steps=64, n_minibatches=4,
                     updates=100, capacity=256, vae_epochs=60, latent_dim=32, n_pairs=2,
                     per_pair=8, navigation_only=True, vec_env="batched", policy="lstm",
                     features_dim=64,
                     checkpoint_every=25, learning_rate=1e-3,
                     eval_sizes=dict(train=64, test=64, unseen_layouts=48, high_lava=48,
                                     large=12), large_size=9),
    # experiments/gpu/dred_h200.sh (docs/gpu/dred.md): the "cpu" problem with 4x the samples
    # per update (64 envs x 64 steps, 8 minibatches of 512), 100 updates, larger eval sets
    "h200": dict(n_train=64, level_size=5, n_envs=64, n_steps=64, n_minibatches=8, updates=100,
                 capacity=1024, vae_epochs=60, latent_dim=32, n_pairs=4, per_pair=16,
                 navigation_only=True, vec_env="batched", policy="mlp", checkpoint_every=25,
                 learning_rate=1e-3,
                 eval_sizes=dict(train=64, test=256, unseen_layouts=112, high_lava=112,
                                 large=48), large_size=9),
    "medium": dict(n_train=64, n_envs=8, n_steps=128, updates=600, capacity=256,
                   vae_epochs=60, latent_dim=64, n_pairs=2, per_pair=4, navigation_only=True,
                   vec_env="batched", policy="mlp", checkpoint_every=100,
                   eval_sizes=_EVAL_SMALL, large_size=43),
    # the authors' configuration (arXiv:2402.03479 App. B): 512 levels, 36 x 256, 7 actions,
    # LSTM(256) via RecurrentPPO, 14400 updates
    "full": dict(n_train=512, n_envs=36, n_steps=256, updates=14400, capacity=4000,
                 **_VAE_FULL, navigation_only=False, vec_env="batched", policy="lstm",
                 checkpoint_every=1000,
                 eval_sizes=dict(train=512, test=2048, unseen_layouts=112, high_lava=112,
                                 large=108), large_size=43),
}


def check(params: dict) -> None:
    from robustrl.validation import check_int

    if params["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {params['method']!r}")
    if params["scale"] not in SCALES:
        raise ValueError(f"scale must be one of {tuple(SCALES)}; got {params['scale']!r}")
    check_int(params["data_seed"], "data_seed", low=0)
    check_int(params["updates"], "updates", low=0)
    lr = params["learning_rate"]
    if (isinstance(lr, bool) or not isinstance(lr, (int, float))
            or not 0 <= lr < float("inf")):
        raise ValueError(f"learning_rate must be a number >= 0 (0: the scale's preset); got "
                         f"{lr!r}")
    if not isinstance(params["cache_dir"], str):
        raise ValueError(f"cache_dir must be a path string ('' = default); got "
                         f"{params['cache_dir']!r}")


def learning_rate(params: dict) -> float:
    """The PPO learning rate of a cell: ``params["learning_rate"]``, or when it is 0 the
    scale's preset (``SCALES[scale]["learning_rate"]``, default the authors' 1e-4)."""
    from robustrl.agents.dred.training import PPO_DEFAULTS

    return float(params.get("learning_rate") or SCALES[params["scale"]].get(
        "learning_rate", PPO_DEFAULTS["learning_rate"]))


def _device() -> str:
    """Torch device of the agents: ``$ROBUSTRL_DRED_DEVICE`` or ``"auto"`` (cuda if present).

    An environment variable, not a grid parameter, so it does not change the cells' seeds. On
    a GPU machine running many cells in parallel, ``cpu`` is much faster: the network is tiny
    and 15 processes time-slicing one GPU ran at about 880 env steps/s each (H200), against
    about 9k on a CPU core (docs/dred-results.md)."""
    device = os.environ.get("ROBUSTRL_DRED_DEVICE", "auto") or "auto"
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"ROBUSTRL_DRED_DEVICE must be auto, cpu, cuda or cuda:N; got "
                         f"{device!r}")
    return device


def _cache_dir(params: dict) -> Path:
    text = params["cache_dir"] or os.environ.get("ROBUSTRL_DRED_CACHE", "")
    path = Path(text) if text else Path("results") / NAME / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def level_sets(scale: str, data_seed: int, cache: Path | None = None) -> dict[str, np.ndarray]:
    """The training set and the evaluation sets of ``scale`` (saved to ``cache`` if given)."""
    from robustrl.envs.cave_levels import generate_level_set, save_level_set

    cfg = SCALES[scale]
    small = cfg.get("level_size")  # None: 13, the authors' size
    sets = {"train_full": generate_level_set("train", cfg["n_train"], data_seed, small)}
    for kind in EVAL_SETS[1:]:
        size = cfg["large_size"] if kind == "large" else small
        sets[kind] = generate_level_set(kind, cfg["eval_sizes"][kind], data_seed, size)
    sets["train"] = sets["train_full"][: cfg["eval_sizes"]["train"]]
    if cache is not None:
        for name, levels in sets.items():
            path = cache / f"levels-{scale}-{data_seed}-{name}.npz"
            if not path.exists():
                save_level_set(path, levels, {"kind": name, "scale": scale,
                                              "data_seed": data_seed})
    return sets


def trained_vae(train: np.ndarray, scale: str, data_seed: int, cache: Path, device: str = "auto"):
    """The VAE of (data_seed, scale): loaded from ``cache`` or trained once and saved
    atomically (under a lock, so concurrent cells do not train it twice). Returns
    ``(vae, seconds spent training, 0 when loaded)``."""
    from robustrl.agents.dred.vae import LevelVAE, train_vae

    cfg = SCALES[scale]
    spec = dict(n_train=len(train), data_seed=data_seed, epochs=cfg["vae_epochs"],
                latent_dim=cfg["latent_dim"], train_hash=hashlib.sha256(
                    np.ascontiguousarray(train).tobytes()).hexdigest()[:16])
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"vae-{scale}-{key}.pt"
    with file_lock(cache / f"vae-{scale}-{key}.lock"):
        if path.exists():
            return LevelVAE.load(path, device="cpu"), 0.0
        start = time.perf_counter()
        vae = train_vae(train, epochs=cfg["vae_epochs"], latent_dim=cfg["latent_dim"],
                        device=device, progress=False)
        seconds = time.perf_counter() - start
        vae = vae.cpu()
        vae.save(path)
        atomic_write_json(cache / f"vae-{scale}-{key}.json", dict(spec, seconds=seconds))
        return vae.eval(), seconds


def run_one(params: dict, seed: int) -> dict:
    import torch

    from robustrl.agents.dred.training import LevelReplayPPO

    torch.set_num_threads(1)
    scale, data_seed = params["scale"], int(params["data_seed"])
    cfg = SCALES[scale]
    updates = int(params["updates"]) or cfg["updates"]
    cache = _cache_dir(params)
    sets = level_sets(scale, data_seed, cache)
    train = sets["train_full"]
    metrics: dict = {"vae_seconds": 0.0, "learning_rate": learning_rate(params)}
    generator = None
    if params["method"] == "dred":
        from robustrl.agents.dred.generator import LevelGenerator

        vae, metrics["vae_seconds"] = trained_vae(train, scale, data_seed, cache)
        generator = LevelGenerator(vae, train, n_pairs=cfg["n_pairs"], per_pair=cfg["per_pair"],
                                   seed=int(seed % 2**31))
    agent = LevelReplayPPO(params["method"], train, generator=generator, n_envs=cfg["n_envs"],
                           n_steps=cfg["n_steps"], buffer_capacity=cfg["capacity"],
                           navigation_only=cfg["navigation_only"], vec_env=cfg["vec_env"],
                           policy=cfg["policy"], device=_device(), seed=int(seed % 2**31),
                           n_minibatches=cfg.get("n_minibatches", 1),
                           learning_rate=learning_rate(params),
                           agent_view_size=cfg.get("agent_view_size", 5),
                           features_dim=cfg.get("features_dim", 256))
    ckpt_dir = checkpoint_dir(params, seed, cache)
    try:
        agent.learn(total_updates=updates, progress_bar=True, checkpoint_dir=ckpt_dir,
                    checkpoint_every=cfg["checkpoint_every"])
        metrics["resumed_at_update"] = int(agent.resumed_at or 0)  # 0: not resumed
        stats = agent.stats
        metrics.update(env_steps=int(stats["env_steps"]), grad_updates=int(agent.grad_updates),
                       train_seconds=float(stats["train_seconds"]),
                       steps_per_second=float(stats["env_steps"] / stats["train_seconds"]),
                       device=agent.device, phases=dict(stats["phases"]))
        summary = agent.buffer_summary()
        if summary:
            metrics.update(buffer_size=summary["buffer_size"],
                           buffer_generated=summary["buffer_generated"],
                           dataset_mass=float(summary["dataset_mass"]),
                           admitted_rate=(summary["admitted"] / summary["proposed"]
                                          if summary["proposed"] else 0.0))
        metrics.update(shift_metrics(agent, train, seed))
        start = time.perf_counter()
        for i, name in enumerate(EVAL_SETS):
            res = agent.evaluate(sets[name], seed=int((seed + i) % 2**31))
            metrics[f"solved_{name}"] = res.solved_rate
            metrics[f"return_{name}"] = res.mean_return
        metrics["eval_seconds"] = time.perf_counter() - start
    finally:
        agent.close()
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the cell is done; the runner keeps its result
    return metrics


#: statistics of :func:`robustrl.envs.cave_levels.level_statistics` averaged in ``shift_tv``
SHIFT_STATS = ("lava_wall_ratio", "moss_floor_ratio", "navigable", "shortest_path",
               "moss_goal_corr", "lava_goal_corr")


def shift_metrics(agent, train: np.ndarray, seed: int) -> dict:
    """Distribution-shift diagnostics (arXiv:2402.03479 Sec. 5, B.10 D3): the levels the
    method trains on beyond the training set -- the non-dataset levels in its buffer at the end
    (generated, edited or new levels), or for ``dr`` 64 fresh random levels -- against the
    training set: ``shift_tv`` (mean total-variation distance over :data:`SHIFT_STATS`),
    ``shift_path_w1`` (1-D Wasserstein distance of shortest-path lengths), ``shift_solvable``
    (solvable fraction) and ``shift_n`` (levels compared). Empty for ``uniform`` (no levels
    beyond the training set)."""
    from robustrl.agents.dred.training import dr_max_blocks
    from robustrl.envs.cave_levels import distribution_distances, is_solvable, random_level

    if agent.method == "dr":
        rng = np.random.default_rng(np.random.SeedSequence([int(seed % 2**31), 29]))
        levels = [random_level(rng, agent.size, max_blocks=dr_max_blocks(agent.size))
                  for _ in range(64)]
    elif agent.buffer is not None:
        b = agent.buffer
        levels = [b.levels[i] for i in np.flatnonzero(b.occupied & ~b.is_dataset)]
    else:
        return {}
    if not levels:
        return {"shift_n": 0}
    d = distribution_distances(np.stack(levels), train)
    return {"shift_n": len(levels),
            "shift_tv": float(np.mean([d[k]["tv"] for k in SHIFT_STATS])),
            "shift_path_w1": d["shortest_path"]["w1"],
            "shift_solvable": float(np.mean([is_solvable(lv) for lv in levels]))}


def checkpoint_dir(params: dict, seed: int, cache: Path) -> Path:
    """Where the cell ``(params, seed)`` checkpoints its training (under the cache directory,
    keyed by a hash of the parameters and the seed): an interrupted cell that is run again
    resumes from the last checkpoint there; the folder is removed when the cell finishes."""
    key = hashlib.sha256(json.dumps([params, int(seed)], sort_keys=True,
                                    default=str).encode()).hexdigest()[:16]
    return cache / "checkpoints" / f"{params['method']}-{params['scale']}-{key}"


def measure_throughput(method: str = "dred", scale: str = "full", updates: int = 2,
                       vec_env: str | None = None, out: str | None = None,
                       vae_epochs: int = 2, policy: str | None = None) -> dict:
    """Training env steps per second of ``method`` at ``scale``'s agent settings (envs, steps,
    buffer, vectorisation), for ``updates`` PPO updates; no evaluation. For ``dred`` the VAE is
    trained only ``vae_epochs`` epochs (throughput does not depend on its quality). Writes
    ``out`` (JSON) if given."""
    import torch

    from robustrl.agents.dred.training import LevelReplayPPO

    torch.set_num_threads(1)
    cfg = SCALES[scale]
    from robustrl.envs.cave_levels import generate_level_set

    train = generate_level_set("train", cfg["n_train"], 0, cfg.get("level_size"))
    generator = None
    if method == "dred":
        from robustrl.agents.dred.generator import LevelGenerator
        from robustrl.agents.dred.vae import train_vae

        vae = train_vae(train, epochs=vae_epochs, latent_dim=cfg["latent_dim"], progress=False)
        generator = LevelGenerator(vae, train, n_pairs=cfg["n_pairs"], per_pair=cfg["per_pair"])
    agent = LevelReplayPPO(method, train, generator=generator, n_envs=cfg["n_envs"],
                           n_steps=cfg["n_steps"], buffer_capacity=cfg["capacity"],
                           navigation_only=cfg["navigation_only"],
                           vec_env=vec_env or cfg["vec_env"], policy=policy or cfg["policy"],
                           n_minibatches=cfg.get("n_minibatches", 1), device=_device(),
                           learning_rate=cfg.get("learning_rate", 1e-4),
                           agent_view_size=cfg.get("agent_view_size", 5),
                           features_dim=cfg.get("features_dim", 256))
    try:
        agent.learn(total_updates=updates)
        res = dict(method=method, scale=scale, n_envs=cfg["n_envs"], n_steps=cfg["n_steps"],
                   vec_env=vec_env or cfg["vec_env"], policy=policy or cfg["policy"],
                   device=agent.device,
                   cpu_count=os.cpu_count(), grad_updates=agent.grad_updates,
                   env_steps=int(agent.stats["env_steps"]),
                   seconds=float(agent.stats["train_seconds"]),
                   phases=dict(agent.stats["phases"]))
        res["steps_per_second"] = res["env_steps"] / res["seconds"]
    finally:
        agent.close()
    if out is not None:
        atomic_write_json(out, res)
    return res


# ------------------------------------------------------------------------------ aggregation
LABEL = {"dred": "DRED (VAE)", "el_dred": "EL-DRED", "dr": "DR", "uniform": "Uniform",
         "plr": "PLR", "robust_plr": "Robust PLR", "accel": "ACCEL", "accel_d": "ACCEL-D"}


def _table(results: list[dict]) -> dict:
    """``{(method, scale, learning_rate): {metric: (mean, ci95 half-width, n)}}`` over
    seeds."""
    from robustrl.stats import student_t_halfwidth

    groups: dict = {}
    for rec in results:
        p = rec["params"]
        lr = learning_rate(p) if p["scale"] in SCALES else p.get("learning_rate") or 1e-4
        groups.setdefault((p["method"], p["scale"], lr), []).append(rec["metrics"])
    out = {}
    for key, recs in groups.items():
        row = {}
        for name in [f"{k}_{s}" for k in ("solved", "return") for s in EVAL_SETS] + [
                "steps_per_second", "env_steps", "grad_updates", "shift_tv", "shift_path_w1",
                "shift_solvable", "shift_n"]:
            vals = np.array([r[name] for r in recs if name in r], dtype=float)
            if vals.size == 0:
                continue
            row[name] = (float(vals.mean()), student_t_halfwidth(vals, single=0.0), vals.size)
        row["device"] = recs[0].get("device", "?")
        out[key] = row
    return out


def report(results: list[dict]) -> str:
    """Solved rate (mean +- 95% CI over seeds) per method and set, with steps/s."""
    table = _table(results)
    head = (f"{'method':<12}{'scale':<7}{'lr':>7}{'n':>3}" + "".join(f"{s:>17}"
                                                             for s in EVAL_SETS)
            + f"{'steps/s':>10}{'updates':>9}  device")
    lines = ["DRED Cave Escape: zero-shot solved rate per held-out set (mean +- 95% CI over "
             "seeds)", head, "-" * len(head)]
    for (method, scale, lr), row in sorted(table.items(), key=lambda kv: (
            kv[0][1], kv[0][2], METHODS.index(kv[0][0]))):
        n = row["solved_test"][2] if "solved_test" in row else 0
        cells = "".join(f"{row[f'solved_{s}'][0]:>10.3f}+-{row[f'solved_{s}'][1]:<5.3f}"
                        if f"solved_{s}" in row else f"{'-':>17}" for s in EVAL_SETS)
        sps = row.get("steps_per_second", (float("nan"),))[0]
        upd = row.get("grad_updates", (float("nan"),))[0]
        lines.append(f"{LABEL.get(method, method):<12}{scale:<7}{lr:>7.0e}{n:>3}{cells}{sps:>10.0f}"
                     f"{upd:>9.0f}  {row['device']}")
    lines += ["", "zero-shot mean return per held-out set (mean +- 95% CI over seeds)",
              f"{'method':<12}{'scale':<7}" + "".join(f"{s:>17}" for s in EVAL_SETS)]
    for (method, scale, _lr), row in sorted(table.items(), key=lambda kv: (
            kv[0][1], kv[0][2], METHODS.index(kv[0][0]))):
        lines.append(f"{LABEL.get(method, method):<12}{scale:<7}" + "".join(
            f"{row[f'return_{s}'][0]:>10.3f}+-{row[f'return_{s}'][1]:<5.3f}"
            if f"return_{s}" in row else f"{'-':>17}" for s in EVAL_SETS))
    lines += ["", "distribution shift of the levels trained on beyond the training set "
              "(vs the training set; mean over seeds)",
              f"{'method':<12}{'scale':<7}{'levels':>8}{'TV':>8}{'path W1':>9}{'solvable':>9}"]
    for (method, scale, _lr), row in sorted(table.items(), key=lambda kv: (
            kv[0][1], kv[0][2], METHODS.index(kv[0][0]))):
        if "shift_tv" in row:
            lines.append(f"{LABEL.get(method, method):<12}{scale:<7}{row['shift_n'][0]:>8.0f}"
                         f"{row['shift_tv'][0]:>8.3f}{row['shift_path_w1'][0]:>9.2f}"
                         f"{row['shift_solvable'][0]:>9.2f}")
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``dred_cave_escape.png``: bars of solved rate and mean return per method per set."""
    from matplotlib.figure import Figure

    table = _table(results)
    keys = sorted(table, key=lambda k: (k[1], k[2], METHODS.index(k[0])))
    tags = {k: ", ".join(t for t, vary in ((k[1], len({q[1] for q in table}) > 1),
                                           (f"lr {k[2]:g}", len({q[2] for q in table}) > 1))
                         if vary) for k in keys}
    fig = Figure(figsize=(13, 4.4))
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(EVAL_SETS))
    for ax, metric, title in ((axes[0], "solved", "zero-shot solved rate"),
                              (axes[1], "return", "zero-shot mean return")):
        for k, key in enumerate(keys):
            row = table[key]
            m = [row.get(f"{metric}_{s}", (np.nan, 0, 0))[0] for s in EVAL_SETS]
            h = [row.get(f"{metric}_{s}", (np.nan, 0, 0))[1] for s in EVAL_SETS]
            label = LABEL.get(key[0], key[0]) + (f" ({tags[key]})" if tags[key] else "")
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, m, width, yerr=h, capsize=2,
                   label=label)
        ax.set_xticks(x, EVAL_SETS, fontsize=8)
        ax.set_title(title + " (mean, 95% CI over seeds)")
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "dred_cave_escape.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=90), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
