"""Cells and their storage: keys and seeds, the manifest, atomic cell records and their checks.

Part of :mod:`robustrl.runner` (see its docstring for the runner's contract)."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robustrl import __version__
from robustrl._io import atomic_write, atomic_write_json, clean_stale_temporaries, file_lock

if TYPE_CHECKING:
    from robustrl.runner.config import Experiment, RunConfig


EXPERIMENTS_PACKAGE = "robustrl.experiments"
PATH_ENV = "ROBUSTRL_EXPERIMENTS_PATH"
MANIFEST = "manifest.json"
CELLS_DIR = "cells"
ERRORS_DIR = "errors"
FIGURES_DIR = "figures"
BACKENDS = ("local", "ray")
CONFIG_KEYS = ("experiment", "grid", "seeds", "out", "workers", "backend", "ray_address")
_FORMAT = 1


class RunnerError(ValueError):
    """A usage or configuration error; the CLI prints the message and exits with status 2."""


class CellRecordWarning(UserWarning):
    """A stored cell record is malformed or does not match its cell; the cell runs again."""



# --------------------------------------------------------------------------- values and hashing
_KIND = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str"}


def _kind(value: Any) -> str | None:
    return _KIND.get(type(value))


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _sha256(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()


def cell_key(experiment: str, params: Mapping[str, Any], seed_index: int) -> str:
    """Stable file name of a cell: a hash of (experiment, params, seed index)."""
    return _sha256({"experiment": experiment, "params": dict(params),
                    "seed_index": int(seed_index)})[:24]


def cell_seed(experiment: str, params: Mapping[str, Any], seed_index: int) -> int:
    """The cell's seed: SeedSequence(hash(experiment, params), spawn_key=(seed_index,)).

    32 bits, so that it is accepted everywhere (``np.random.seed`` and libraries built on it
    reject larger seeds).
    """
    entropy = int(_sha256([experiment, dict(params)])[:32], 16)
    seq = np.random.SeedSequence(entropy, spawn_key=(int(seed_index),))
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def _normalize_values(values: Any, where: str) -> list:
    """A grid axis as a list of JSON scalars; ints become floats in an axis holding floats."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    elif isinstance(values, (range, tuple)):
        values = list(values)
    elif not isinstance(values, list):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if _kind(v) is None:
            raise RunnerError(
                f"{where}: grid values must be scalars (None, bool, int, float or str); got "
                f"{v!r} ({type(v).__name__})"
            )
        out.append(v)
    if not out:
        raise RunnerError(f"{where}: a grid axis needs at least one value")
    kinds = {_kind(v) for v in out}
    if "float" in kinds:
        # 1 and 1.0 must be the same grid point, so they must hash the same.
        out = [float(v) if _kind(v) == "int" else v for v in out]
    dupes = sorted({repr(v) for v in out if out.count(v) > 1})
    if dupes:
        raise RunnerError(f"{where}: repeated grid values {', '.join(dupes)}")
    return out



# --------------------------------------------------------------------------- cells and storage
@dataclass(frozen=True)
class Cell:
    """One grid point and one seed index."""

    index: int
    params: dict[str, Any]
    seed_index: int
    seed: int
    key: str


def _condition_holds(params: Mapping[str, Any], when: Mapping[str, list]) -> bool:
    return all(any(_canonical(params[k]) == _canonical(v) for v in values)
               for k, values in when.items())


def expand_points(grid: Mapping[str, list],
                  conditions: Mapping[str, Mapping[str, list]] | None = None
                  ) -> list[dict[str, Any]]:
    """The grid points: the cartesian product of ``grid`` (declared key order, last key
    fastest) where a parameter ``p`` with ``conditions[p] = {q: values}`` keeps its value only
    at points whose ``q`` is one of ``values`` (all listed ``q`` must match) and is ``None``
    elsewhere; the points that become equal this way are kept once (first occurrence)."""
    import itertools

    keys = list(grid)
    conditions = conditions or {}
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        for name, when in conditions.items():
            if not _condition_holds(params, when):
                params[name] = None
        ident = _canonical(params)
        if ident not in seen:
            seen.add(ident)
            points.append(params)
    return points


def expand_cells(config: RunConfig) -> list[Cell]:
    """The grid points of :func:`expand_points` (conditions applied), seed index innermost."""
    cells = []
    for params in expand_points(config.grid, config.conditions):
        for i in range(config.seeds):
            cells.append(Cell(len(cells), params, i, cell_seed(config.experiment, params, i),
                              cell_key(config.experiment, params, i)))
    return cells


def _same(a: Any, b: Any) -> bool:
    return _canonical(a) == _canonical(b)


def grow_config(old: Mapping[str, Any], new: RunConfig) -> RunConfig | None:
    """The union of the recorded config ``old`` (a manifest's ``config``, its grid in
    ``param_order``) and ``new``, or None if ``new`` only grows what ``old`` may grow.

    Growable: the seed count (the union has the larger one) and the values of a parameter
    (old values first, in their order, then the new ones in theirs). Not growable (None): a
    different experiment, parameter set or ``conditions``, or a *fixed* parameter -- one that
    had a single value -- whose value is absent from the new values.
    """
    from robustrl.runner.config import RunConfig

    old_grid = old.get("grid") or {}
    if (old.get("experiment") != new.experiment or set(old_grid) != set(new.grid)
            or not _same(old.get("conditions") or {}, new.conditions)):
        return None
    grid: dict[str, list] = {}
    for key, values in old_grid.items():
        if len(values) == 1 and not any(_same(values[0], v) for v in new.grid[key]):
            return None
        grid[key] = list(values) + [v for v in new.grid[key]
                                    if not any(_same(v, o) for o in values)]
    return RunConfig(new.experiment, grid, max(int(old["seeds"]), new.seeds),
                     dict(new.conditions))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _describe_diff(old: Mapping[str, Any], new: RunConfig) -> str:
    diffs = []
    if old.get("experiment") != new.experiment:
        diffs.append(f"experiment {old.get('experiment')!r} -> {new.experiment!r}")
    if old.get("seeds") != new.seeds:
        diffs.append(f"seeds {old.get('seeds')} -> {new.seeds}")
    old_grid = old.get("grid") or {}
    for key in dict.fromkeys([*old_grid, *new.grid]):
        if old_grid.get(key) != new.grid.get(key):
            diffs.append(f"{key} {old_grid.get(key, '(absent)')} -> "
                         f"{new.grid.get(key, '(absent)')}")
    if not _same(old.get("conditions") or {}, new.conditions):
        diffs.append(f"conditions {old.get('conditions') or {}} -> {new.conditions}")
    return "; ".join(diffs) or "config hash differs"


def _manifest_problem(manifest: Mapping[str, Any]) -> str | None:
    """Why ``manifest`` is not a consistent run manifest (None if it is)."""
    cfg = manifest.get("config")
    if not isinstance(cfg, dict):
        return "has no config object"
    exp, grid, seeds = cfg.get("experiment"), cfg.get("grid"), cfg.get("seeds")
    if not isinstance(exp, str) or not exp:
        return f"config.experiment must be a non-empty string; got {exp!r}"
    if not isinstance(grid, dict) or not grid or not all(
            isinstance(v, list) and v and all(_kind(x) is not None for x in v)
            for v in grid.values()):
        return "config.grid must map parameter names to non-empty lists of scalars"
    if not _is_int(seeds) or seeds < 1:
        return f"config.seeds must be an integer >= 1; got {seeds!r}"
    order = manifest.get("param_order")
    if order is not None and (not isinstance(order, list) or not all(
            isinstance(k, str) for k in order) or sorted(order) != sorted(grid)):
        return f"param_order {order!r} does not list the grid's parameters {sorted(grid)}"
    if manifest.get("experiment", exp) != exp:
        return f"names experiment {manifest.get('experiment')!r} but its config {exp!r}"
    from robustrl.runner.config import RunConfig

    conditions = cfg.get("conditions") or {}
    if not isinstance(conditions, dict) or not all(
            k in grid and isinstance(w, dict) and all(
                q in grid and isinstance(vs, list) for q, vs in w.items())
            for k, w in conditions.items()):
        return "config.conditions must map grid parameters to {grid parameter: [values]}"
    config = RunConfig(exp, grid, seeds, conditions)
    if manifest["config_hash"] != config.hash:
        return (f"its config hashes to {config.hash}, not to the config_hash "
                f"{manifest['config_hash']!r} it records")
    return None


def _clean_temporaries(out: Path, locked: bool = False) -> None:
    """Remove temporaries that killed writers left in DIR and its runner subfolders.

    ``locked``: the caller holds DIR's run lock and no worker of its own is writing, so every
    temporary there belongs to a dead writer (or to a live one that holds its file lock, which
    :func:`robustrl._io.clean_stale_temporaries` leaves alone), however young: one left by a run
    killed a moment ago is removed too. Otherwise only those at least a second old go (the
    instant between a writer creating its temporary and locking it)."""
    for sub in (out, out / CELLS_DIR, out / ERRORS_DIR, out / FIGURES_DIR):
        clean_stale_temporaries(sub, min_age_s=0.0 if locked else 1.0)


class ResultStore:
    """The files of one output DIR: manifest, one JSON per finished cell, error tracebacks."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.manifest_path = self.out / MANIFEST
        self.cells_dir = self.out / CELLS_DIR
        self.errors_dir = self.out / ERRORS_DIR

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise RunnerError(f"{self.manifest_path} is unreadable ({exc}); not touching "
                              f"{self.out}") from None
        if not isinstance(manifest, dict) or "config_hash" not in manifest:
            raise RunnerError(f"{self.manifest_path} is not a robustrl run manifest; not "
                              f"touching {self.out}")
        problem = _manifest_problem(manifest)
        if problem is not None:
            raise RunnerError(f"{self.manifest_path}: {problem}; not touching {self.out} (was "
                              "the manifest edited? restore it or start over in a new --out)")
        return manifest

    def check_compatible(self, config: RunConfig
                         ) -> tuple[dict[str, Any] | None, RunConfig]:
        """``(manifest or None, config to run)``: DIR is new, holds a run of this config, or
        holds one that ``config`` grows (more seeds or grid values, see :func:`grow_config`;
        the config to run is then the union). Raise RunnerError for anything else."""
        if self.out.exists() and not self.out.is_dir():
            raise RunnerError(f"--out {self.out} exists and is not a directory")
        manifest = self.read_manifest()
        if manifest is None:
            if self.cells_dir.is_dir() and any(self.cells_dir.iterdir()):
                raise RunnerError(f"{self.out} holds cell results but no {MANIFEST}; not "
                                  "touching it: choose another --out")
            return None, config
        if manifest["config_hash"] == config.hash:
            return manifest, config
        cfg = manifest["config"]
        order = manifest.get("param_order") or list(cfg["grid"])
        grown = grow_config({**cfg, "grid": {k: cfg["grid"][k] for k in order}}, config)
        if grown is None:
            raise RunnerError(
                f"{self.out} holds results of a different config (experiment "
                f"{manifest.get('experiment')!r}, config {manifest['config_hash']}) than this "
                f"run ({config.experiment!r}, config {config.hash}): "
                f"{_describe_diff(manifest.get('config', {}), config)}. Only more seeds or "
                "more values of a swept parameter can be added to a results directory. "
                f"Nothing was written; choose another --out, or delete {self.out} to start "
                "over."
            )
        return manifest, grown

    def write_manifest(self, exp: Experiment, config: RunConfig, n_cells: int,
                       created: str | None = None) -> None:
        """Write (or, for a grown sweep, rewrite) the manifest and its config hash in one
        atomic write."""
        extra = {"grown": _now()} if created is not None else {}
        atomic_write_json(self.manifest_path, {**extra,
            "format": _FORMAT, "experiment": exp.name, "module": list(exp.ref),
            "config": config.as_dict(), "config_hash": config.hash, "n_cells": n_cells,
            # JSON files are written with sorted keys; the grid's order fixes the cell order
            "param_order": list(config.grid),
            "robustrl_version": __version__, "created": created or _now(),
        })

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive advisory lock, so two runs never write the same DIR at once."""
        busy = RunnerError(f"another robustrl run is writing {self.out}")
        with file_lock(self.out / ".lock", if_held=busy):
            yield

    def finished(self, cells: Sequence[Cell], experiment: str | None = None
                 ) -> dict[str, dict]:
        """Stored records of ``cells`` by key. A record that cannot be read, is malformed or
        does not match its cell (see :func:`record_problem`) counts as unfinished, with a
        :class:`CellRecordWarning` naming the file."""
        by_key = {c.key: c for c in cells}
        done: dict[str, dict] = {}
        if not self.cells_dir.is_dir():
            return done
        for path in sorted(self.cells_dir.glob("*.json")):
            cell = by_key.get(path.stem)
            if path.name.startswith(".") or cell is None:
                continue
            try:
                rec = json.loads(path.read_text())
            except UnicodeDecodeError as exc:
                problem = f"is not UTF-8 text ({exc.reason})"
            except ValueError as exc:
                problem = f"is not valid JSON ({exc})"
            except PermissionError:
                raise
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror})"
            else:
                problem = record_problem(rec, cell, experiment)
            if problem is not None:
                warnings.warn(f"{path} {problem}; its cell will run again", CellRecordWarning,
                              stacklevel=2)
                continue
            done[path.stem] = rec
        return done

    def write_record(self, record: dict) -> Path:
        path = atomic_write_json(self.cells_dir / f"{record['key']}.json", record)
        with contextlib.suppress(FileNotFoundError):
            (self.errors_dir / f"{record['key']}.txt").unlink()
        return path

    def write_error(self, cell: Cell, text: str) -> Path:
        head = (f"params: {_canonical(cell.params)}\nseed_index: {cell.seed_index}\n"
                f"seed: {cell.seed}\n\n")
        return atomic_write(self.errors_dir / f"{cell.key}.txt",
                            lambda fh: fh.write(head + text), binary=False)


def _record(config: RunConfig, cell: Cell, outcome: dict) -> dict[str, Any]:
    rec = {
        "experiment": config.experiment, "key": cell.key, "params": cell.params,
        "seed_index": cell.seed_index, "seed": cell.seed, "metrics": outcome["metrics"],
        "wall_time_s": outcome["wall_time_s"], "robustrl_version": __version__,
        "python": platform.python_version(), "finished": _now(),
    }
    rec["checksum"] = _record_checksum(rec)
    return rec


def _record_checksum(rec: Mapping[str, Any]) -> str:
    return _sha256({k: v for k, v in rec.items() if k != "checksum"})


def _json_value_problem(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if not isinstance(value, (list, dict)):  # pragma: no cover - not from JSON
        return f"has {where} of type {type(value).__name__}"
    for k, v in value.items() if isinstance(value, dict) else enumerate(value):
        problem = _json_value_problem(v, f"{where}[{k!r}]")  # [0] for a list, ['a'] for a dict
        if problem is not None:
            return problem
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def record_problem(rec: Any, cell: Cell, experiment: str | None = None) -> str | None:
    """Why the stored record ``rec`` is not a valid record of ``cell`` (None if it is).

    Checked: a JSON object whose ``key``, ``params`` (same values and types), ``seed_index``,
    ``seed`` and (if given) ``experiment`` are those of the cell; ``metrics`` a non-empty-keyed
    object of JSON values (what :func:`robustrl.runner.worker.to_jsonable` writes);
    ``wall_time_s`` a number; and, in records that carry one, a ``checksum`` equal to the
    SHA-256 of the rest (records written before checksums existed have none).
    """
    if not isinstance(rec, dict):
        return f"holds a JSON {type(rec).__name__}, not a cell record object"
    missing = [k for k in ("key", "params", "seed_index", "seed", "metrics", "wall_time_s")
               if k not in rec]
    if missing:
        return f"lacks {', '.join(missing)}"
    if rec["key"] != cell.key:
        return f"has key {rec['key']!r}, not its file name's {cell.key!r}"
    if experiment is not None and rec.get("experiment", experiment) != experiment:
        return f"belongs to experiment {rec.get('experiment')!r}, not {experiment!r}"
    if not isinstance(rec["params"], dict) or _canonical(rec["params"]) != _canonical(cell.params):
        return f"has params {rec['params']!r}, not its cell's {cell.params!r}"
    if not _is_int(rec["seed_index"]) or rec["seed_index"] != cell.seed_index:
        return f"has seed_index {rec['seed_index']!r}, not its cell's {cell.seed_index}"
    if not _is_int(rec["seed"]) or rec["seed"] != cell.seed:
        return f"has seed {rec['seed']!r}, not its cell's {cell.seed}"
    metrics = rec["metrics"]
    if not isinstance(metrics, dict):
        return f"has metrics of type {type(metrics).__name__}, not an object"
    if not all(isinstance(k, str) and k for k in metrics):
        return "has an empty metric name"
    problem = _json_value_problem(metrics, "metrics")
    if problem is not None:
        return problem
    wall = rec["wall_time_s"]
    if isinstance(wall, bool) or not isinstance(wall, (int, float)):
        return f"has wall_time_s {wall!r}, not a number"
    if "checksum" in rec and rec["checksum"] != _record_checksum(rec):
        return "does not match its checksum (edited or corrupted)"
    return None
