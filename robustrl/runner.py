"""Experiment runner: parameter grid x seeds -> resumable cells, run locally or on Ray, summarised.

An *experiment* is a module -- one of the ``robustrl.experiments`` package (``experiments/`` in
the repository), any ``.py`` file given by path, or a file in a folder listed in the environment
variable ``ROBUSTRL_EXPERIMENTS_PATH`` -- that declares::

    NAME = "toy_sweep"                      # optional; defaults to the module name
    DESCRIPTION = "one line for `robustrl list`"   # optional; defaults to the docstring
    GRID = {"perturbation": [0.0, 0.5, 1.0], "episodes": [50]}   # dict of lists of scalars
    SEEDS = 3                               # seed indices per grid point (optional; 1)

    def run_one(params: dict, seed: int) -> dict: ...   # JSON-able metrics of one cell

and optionally ``X_AXIS`` (the parameter on the x-axis of the generic figures), a
``check(params)`` hook that raises ``ValueError`` on a bad grid point (called for every point
before anything runs), ``plot(results, out_dir)`` for experiment-specific figures and
``report(results) -> str`` for a table printed at the end; ``results`` is the list of stored
records in grid order.

A *cell* is one grid point and one seed index. Its key is a stable hash of (experiment, params,
seed index) and its seed comes from ``numpy.random.SeedSequence`` over (a stable hash of
experiment and params, seed index), so a cell's numbers do not depend on the order, the worker
or the backend that runs it. Each finished cell is written atomically to
``DIR/cells/<key>.json`` by the driver; a rerun skips finished cells. ``DIR/manifest.json``
records the experiment and the resolved config (grid and seed count); a run with another config
into the same DIR stops before writing anything, and so does a manifest whose config no longer
matches its recorded hash. A stored cell record is checked against its cell (key, params,
seed, seed index, metric types, checksum); a malformed one is reported with a
:class:`CellRecordWarning` naming the file, and its cell runs again. ``plot`` never imports
the module a manifest names (see :func:`plot_results`). When every cell is done the runner writes
``summary.csv`` (mean, std and Student-t 95% CI half-width over seeds per grid point),
``cells.csv``, ``figures/<metric>.png`` and whatever the experiment's ``plot`` hook draws.

Command line: ``robustrl list | run | plot | verify-bounds`` (see :mod:`robustrl.cli`).
Python::

    from robustrl.runner import run_experiment, load_results
    report = run_experiment("toy_sweep", "results/toy", sets=["perturbation=[0, 1]"], seeds=2)
    manifest, records = load_results("results/toy")
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.util
import json
import os
import pkgutil
import platform
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from robustrl import __version__
from robustrl import _runner_exec as _exec
from robustrl._io import atomic_write, atomic_write_json, clean_stale_temporaries
from robustrl._runner_exec import ModuleRef, execute, load_module

__all__ = [
    "Cell",
    "CellRecordWarning",
    "Experiment",
    "Failure",
    "RunConfig",
    "RunInterrupted",
    "RunReport",
    "RunnerError",
    "cell_key",
    "cell_seed",
    "discover_experiments",
    "expand_cells",
    "load_experiment",
    "load_results",
    "plot_results",
    "progress",
    "resolve_config",
    "run_experiment",
]

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


# --------------------------------------------------------------------------- experiments
@dataclass(frozen=True)
class Experiment:
    """An experiment module's declarations (see the module docstring)."""

    name: str
    description: str
    grid: dict[str, list]
    seeds: int
    ref: ModuleRef
    module: ModuleType = field(repr=False, compare=False)
    x_axis: str | None = None

    def hook(self, name: str) -> Callable | None:
        func = getattr(self.module, name, None)
        return func if callable(func) else None

    @property
    def n_points(self) -> int:
        return int(np.prod([len(v) for v in self.grid.values()]))


def _experiment_from_module(module: ModuleType, ref: ModuleRef) -> Experiment:
    where = f"experiment module {ref[1]}"
    if not callable(getattr(module, "run_one", None)):
        raise RunnerError(f"{where} defines no run_one(params, seed) function")
    name = getattr(module, "NAME", None) or module.__name__.rsplit(".", 1)[-1]
    if ref[0] == "file" and not hasattr(module, "NAME"):
        name = Path(ref[1]).stem
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise RunnerError(f"{where}: NAME must be a non-empty string without spaces; got {name!r}")
    doc = (module.__doc__ or "").strip().splitlines()
    description = getattr(module, "DESCRIPTION", None) or (doc[0] if doc else "")
    grid = getattr(module, "GRID", None)
    if not isinstance(grid, Mapping) or not grid:
        raise RunnerError(f"{where}: GRID must be a non-empty dict of parameter -> values")
    norm = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise RunnerError(f"{where}: GRID keys must be non-empty strings without '='; "
                              f"got {key!r}")
        norm[key] = _normalize_values(values, f"{where}: GRID[{key!r}]")
    seeds = getattr(module, "SEEDS", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise RunnerError(f"{where}: SEEDS must be an integer >= 1; got {seeds!r}")
    x_axis = getattr(module, "X_AXIS", None)
    if x_axis is not None and x_axis not in norm:
        raise RunnerError(f"{where}: X_AXIS {x_axis!r} is not a GRID key ({', '.join(norm)})")
    return Experiment(name=name, description=str(description), grid=norm, seeds=seeds, ref=ref,
                      module=module, x_axis=x_axis)


def _import_error(ref: ModuleRef, exc: BaseException) -> RunnerError:
    return RunnerError(f"cannot import experiment module {ref[1]}: "
                       f"{type(exc).__name__}: {exc}")


def _load_ref(ref: ModuleRef) -> Experiment:
    try:
        module = load_module(ref)
    except RunnerError:
        raise
    except Exception as exc:
        raise _import_error(ref, exc) from exc
    return _experiment_from_module(module, ref)


def _candidate_refs() -> list[ModuleRef]:
    refs: list[ModuleRef] = []
    try:
        import robustrl.experiments as pkg
    except ImportError:  # an install without the experiments package
        pkg = None
    if pkg is not None:
        refs += [("module", f"{EXPERIMENTS_PACKAGE}.{m.name}")
                 for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
                 if not m.name.startswith("_")]
    for entry in filter(None, os.environ.get(PATH_ENV, "").split(os.pathsep)):
        path = Path(entry).expanduser().resolve()
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        refs += [("file", str(f)) for f in files if not f.name.startswith("_")]
    return refs


def discover_experiments() -> tuple[dict[str, Experiment], dict[str, str]]:
    """All experiments found (package, then ``ROBUSTRL_EXPERIMENTS_PATH``) and the modules that
    failed to load, as ``(experiments by name, {module: error message})``."""
    found: dict[str, Experiment] = {}
    errors: dict[str, str] = {}
    for ref in _candidate_refs():
        try:
            exp = _load_ref(ref)
        except RunnerError as exc:
            errors[ref[1]] = str(exc)
            continue
        if exp.name in found:
            errors[ref[1]] = (f"experiment name {exp.name!r} already taken by "
                              f"{found[exp.name].ref[1]}; ignored")
            continue
        found[exp.name] = exp
    return found, errors


def _package_has(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{EXPERIMENTS_PACKAGE}.{module_name}") is not None
    except ImportError:
        return False


def load_experiment(name_or_path: str | os.PathLike) -> Experiment:
    """An experiment by registered name, or from a ``.py`` file path."""
    text = os.fspath(name_or_path)
    if text.endswith(".py") or os.sep in text:
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise RunnerError(f"experiment file {text} does not exist")
        return _load_ref(("file", str(path)))
    if text.isidentifier() and _package_has(text):
        # Fast path: the package module of that name (its import errors are reported as is).
        exp = _load_ref(("module", f"{EXPERIMENTS_PACKAGE}.{text}"))
        if exp.name == text:
            return exp
    found, errors = discover_experiments()
    if text in found:
        return found[text]
    hint = f"; modules that failed to load: {', '.join(errors)}" if errors else ""
    raise RunnerError(
        f"unknown experiment {text!r}; available: {', '.join(sorted(found)) or 'none'} "
        f"(or give the path of a .py experiment module){hint}"
    )


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class RunConfig:
    """What determines the cells of a run: experiment name, resolved grid and seed count."""

    experiment: str
    grid: dict[str, list]
    seeds: int

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "grid": self.grid, "seeds": self.seeds}

    @property
    def hash(self) -> str:
        return _sha256(self.as_dict())[:16]

    @property
    def n_points(self) -> int:
        return int(np.prod([len(v) for v in self.grid.values()]))


def _numeric_from_str(text: str) -> int | float | None:
    for conv in (int, float):
        with contextlib.suppress(ValueError):
            return conv(text)
    return None


def _coerce(value: Any, allowed: set[str], raw: str | None) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    kind = _kind(value)
    if kind == "int" and "float" in allowed:
        return float(value)
    if kind in allowed:
        return value
    if kind == "str" and allowed & {"int", "float"}:
        # YAML 1.1 reads 1e-3 (no dot) as a string.
        num = _numeric_from_str(value.strip())
        if num is not None:
            return _coerce(num, allowed, None)
    if raw is not None and allowed == {"str"} and kind in ("bool", "null", "int", "float"):
        return raw  # `--set name=on` means the string "on" for a string parameter
    raise TypeError(kind or type(value).__name__)


def _override(exp: Experiment, grid: dict[str, list], key: str, value: Any, source: str,
              raw: str | None = None) -> None:
    if key not in exp.grid:
        hint = " (use --seeds for the number of seeds)" if key == "seeds" else ""
        raise RunnerError(f"{source}: unknown parameter {key!r} for experiment {exp.name}; "
                          f"known parameters: {', '.join(exp.grid)}{hint}")
    allowed = {_kind(v) for v in exp.grid[key]}
    values = value.tolist() if isinstance(value, np.ndarray) else value
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    raws = [raw] if raw is not None and len(values) == 1 and not isinstance(value, list) else \
        [None] * len(values)
    out = []
    for v, r in zip(values, raws, strict=True):
        try:
            out.append(_coerce(v, allowed, r))
        except TypeError as exc:
            expected = " or ".join(sorted(allowed))
            raise RunnerError(
                f"{source}: {key} takes {expected} values (like its default "
                f"{exp.grid[key]}); got {v!r} of type {exc}"
            ) from None
    grid[key] = _normalize_values(out, f"{source}: {key}")


def parse_set(text: str) -> tuple[str, Any, str]:
    """``"key=value"`` -> (key, YAML-parsed value, raw value text)."""
    import yaml

    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise RunnerError(f"--set {text!r}: expected KEY=VALUE, e.g. --set lam=0.1 or "
                          "--set 'perturbation=[0, 0.5, 1]'")
    if not raw:
        raise RunnerError(f"--set {text!r}: {key} needs a value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RunnerError(f"--set {text!r}: cannot parse the value: {exc}") from None
    return key, value, raw


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML run config (keys: experiment, grid, seeds, out, workers, backend,
    ray_address)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RunnerError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RunnerError(f"config file {path} is not valid YAML: {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise RunnerError(f"config file {path} must hold a mapping with keys "
                          f"{', '.join(CONFIG_KEYS)}")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise RunnerError(f"config file {path}: unknown keys {', '.join(map(str, unknown))}; "
                          f"allowed: {', '.join(CONFIG_KEYS)}")
    return data


def _check_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise RunnerError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def resolve_config(
    exp: Experiment,
    config: Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    seeds: int | None = None,
    source: str = "config",
) -> RunConfig:
    """Defaults <- config file ``grid``/``seeds`` <- ``overrides`` <- ``--set`` <- ``seeds``.

    Every value is type-checked against the experiment's declared defaults: ints are accepted
    where the default is a float, nothing else changes type.
    """
    config = dict(config or {})
    if config.get("experiment") not in (None, exp.name):
        raise RunnerError(f"{source} is for experiment {config['experiment']!r}, not {exp.name}")
    grid = {k: list(v) for k, v in exp.grid.items()}
    file_grid = config.get("grid") or {}
    if not isinstance(file_grid, Mapping):
        raise RunnerError(f"{source}: grid must map parameter names to a value or a list")
    for key, value in file_grid.items():
        _override(exp, grid, str(key), value, f"{source}: grid")
    for key, value in (overrides or {}).items():
        _override(exp, grid, key, value, "overrides")
    for text in sets:
        key, value, raw = parse_set(text)
        _override(exp, grid, key, value, f"--set {text}", raw)
    n_seeds = seeds if seeds is not None else config.get("seeds", exp.seeds)
    n_seeds = _check_int(n_seeds, "seeds" if seeds is None else "--seeds")
    return RunConfig(exp.name, grid, n_seeds)


# --------------------------------------------------------------------------- cells and storage
@dataclass(frozen=True)
class Cell:
    """One grid point and one seed index."""

    index: int
    params: dict[str, Any]
    seed_index: int
    seed: int
    key: str


def expand_cells(config: RunConfig) -> list[Cell]:
    """The grid's cartesian product (declared key order, last key fastest), seed index
    innermost."""
    import itertools

    keys = list(config.grid)
    cells = []
    for values in itertools.product(*(config.grid[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        for i in range(config.seeds):
            cells.append(Cell(len(cells), params, i, cell_seed(config.experiment, params, i),
                              cell_key(config.experiment, params, i)))
    return cells


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
    config = RunConfig(exp, grid, seeds)
    if manifest["config_hash"] != config.hash:
        return (f"its config hashes to {config.hash}, not to the config_hash "
                f"{manifest['config_hash']!r} it records")
    return None


def _clean_temporaries(out: Path) -> None:
    """Remove temporaries that killed writers left in DIR and its runner subfolders."""
    for sub in (out, out / CELLS_DIR, out / ERRORS_DIR, out / FIGURES_DIR):
        clean_stale_temporaries(sub)


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

    def check_compatible(self, config: RunConfig) -> dict[str, Any] | None:
        """Raise RunnerError unless DIR is new, or holds a run of exactly this config."""
        if self.out.exists() and not self.out.is_dir():
            raise RunnerError(f"--out {self.out} exists and is not a directory")
        manifest = self.read_manifest()
        if manifest is None:
            if self.cells_dir.is_dir() and any(self.cells_dir.iterdir()):
                raise RunnerError(f"{self.out} holds cell results but no {MANIFEST}; not "
                                  "touching it: choose another --out")
            return None
        if manifest["config_hash"] != config.hash:
            raise RunnerError(
                f"{self.out} holds results of a different config (experiment "
                f"{manifest.get('experiment')!r}, config {manifest['config_hash']}) than this "
                f"run ({config.experiment!r}, config {config.hash}): "
                f"{_describe_diff(manifest.get('config', {}), config)}. Nothing was written; "
                f"choose another --out, or delete {self.out} to start over."
            )
        return manifest

    def write_manifest(self, exp: Experiment, config: RunConfig, n_cells: int) -> None:
        atomic_write_json(self.manifest_path, {
            "format": _FORMAT, "experiment": exp.name, "module": list(exp.ref),
            "config": config.as_dict(), "config_hash": config.hash, "n_cells": n_cells,
            # JSON files are written with sorted keys; the grid's order fixes the cell order
            "param_order": list(config.grid),
            "robustrl_version": __version__, "created": _now(),
        })

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive advisory lock, so two runs never write the same DIR at once."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunnerError(f"another robustrl run is writing {self.out}") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

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
    if isinstance(value, list):
        for i, v in enumerate(value):
            problem = _json_value_problem(v, f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            problem = _json_value_problem(v, f"{where}[{k!r}]")
            if problem is not None:
                return problem
        return None
    return f"has {where} of type {type(value).__name__}"  # pragma: no cover - not from JSON


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def record_problem(rec: Any, cell: Cell, experiment: str | None = None) -> str | None:
    """Why the stored record ``rec`` is not a valid record of ``cell`` (None if it is).

    Checked: a JSON object whose ``key``, ``params`` (same values and types), ``seed_index``,
    ``seed`` and (if given) ``experiment`` are those of the cell; ``metrics`` a non-empty-keyed
    object of JSON values (what :func:`robustrl._runner_exec.to_jsonable` writes);
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


# --------------------------------------------------------------------------- backends
Outcomes = Iterator[tuple[Cell, dict]]


def _failed(text: str) -> dict:
    return {"ok": False, "error": text, "wall_time_s": float("nan")}


def _run_in_process(ref: ModuleRef, cells: Sequence[Cell], inner_progress: bool) -> Outcomes:
    for cell in cells:
        yield cell, execute(ref, cell.params, cell.seed, inner_progress)


def _exit_description(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        import signal

        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _run_pool(ref: ModuleRef, cells: Sequence[Cell], workers: int) -> Outcomes:
    """Run ``cells`` in a spawn process pool with at most ``workers`` cells in flight.

    A worker that dies (killed, out of memory, segfault) breaks a ``ProcessPoolExecutor`` and
    every cell in flight gets ``BrokenProcessPool``, whichever worker ran it. Those cells become
    suspects: the pool is restarted and each suspect runs again alone, so that only a cell that
    kills its worker while running alone is reported failed; the others are resubmitted.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: forking a driver that already runs numba/tqdm threads is unsafe, and
    # spawn behaves the same on every OS.
    ctx = multiprocessing.get_context("spawn")
    queue, suspects = deque(cells), deque()
    inflight: dict[Any, Cell] = {}
    pool: ProcessPoolExecutor | None = None
    procs: dict[int, Any] = {}
    finished = False
    try:
        while queue or suspects or inflight:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                           initializer=_exec.worker_init,
                                           initargs=(os.getpid(),))
                procs = {}
            isolating = bool(suspects)  # then exactly one cell is in flight
            source, limit = (suspects, 1) if suspects else (queue, workers)
            while source and len(inflight) < limit:
                cell = source.popleft()
                try:
                    fut = pool.submit(execute, ref, cell.params, cell.seed, False)
                except BrokenProcessPool:  # a worker died since the last wait
                    source.appendleft(cell)
                    break
                inflight[fut] = cell
                procs.update(getattr(pool, "_processes", None) or {})
            if not inflight:  # broken with nothing in flight: nobody to blame
                pool.shutdown(wait=True)
                pool = None
                continue
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken: list[Cell] = []
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                # every other future in flight fails at the same moment
                done, _ = wait(inflight)
            for fut in sorted(done, key=lambda f: inflight[f].index):
                cell = inflight.pop(fut)
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):
                    broken.append(cell)
                    continue
                outcome = fut.result() if exc is None else _failed(
                    f"worker process failed: {type(exc).__name__}: {exc}\n")
                yield cell, outcome
            if not broken:
                continue
            pool.shutdown(wait=True)
            pool = None
            dead = sorted({_exit_description(p.exitcode) for p in procs.values()
                           if p.exitcode not in (None, 0, -15)})
            how = "; ".join(dead) or "exit status unknown"
            if isolating:
                (cell,) = broken
                yield cell, _failed(
                    f"the worker process died while running this cell alone ({how}); the "
                    "other cells were resubmitted\n")
            else:
                suspects.extend(broken)
        finished = True
    finally:
        if pool is not None:
            _stop_pool(pool, wait_for_cells=finished)


def _stop_pool(pool: Any, wait_for_cells: bool) -> None:
    if wait_for_cells:
        pool.shutdown(wait=True)
        return
    # Interrupted or stopped early: cancel the queue and stop cells in progress now rather
    # than waiting for them (their results would not be written anyway), then join the
    # executor so that its queues and semaphores are released (no leaked-semaphore warnings).
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(timeout=10)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=True)


def _run_ray(ref: ModuleRef, cells: Sequence[Cell], workers: int | None,
             address: str | None, quiet: bool) -> Outcomes:
    try:
        import ray
    except ImportError:
        raise RunnerError("--backend ray needs the optional dependency ray: "
                          "pip install 'robustrl[ray]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                  "log_to_driver": not quiet}
        if address:
            kwargs["address"] = address
        elif workers and not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = workers  # a local instance sized like the local pool
        ray.init(**kwargs)
    task = ray.remote(execute)
    queue = deque(cells)
    inflight: dict[Any, Cell] = {}
    limit = workers or len(cells)  # with no --workers, the cluster's scheduler decides
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                cell = queue.popleft()
                inflight[task.remote(ref, cell.params, cell.seed, False)] = cell
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for obj in ready:
                cell = inflight.pop(obj)
                try:
                    outcome = ray.get(obj)
                except Exception as exc:  # worker crash, node loss, ...
                    outcome = _failed(f"ray task failed: {type(exc).__name__}: {exc}\n")
                yield cell, outcome
    finally:
        for obj in inflight:
            with contextlib.suppress(Exception):
                ray.cancel(obj, force=True)
        if started:
            ray.shutdown()


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- running
@dataclass
class Failure:
    """A cell whose ``run_one`` raised; its traceback is in ``error_file``."""

    cell: Cell
    error_file: Path
    message: str  # the traceback's last line


@dataclass
class RunReport:
    """What :func:`run_experiment` did."""

    experiment: Experiment
    config: RunConfig
    out: Path
    cells: list[Cell]
    records: list[dict]  # finished records in cell order
    resumed: int  # cells already finished in DIR before this run
    ran: int  # cells finished by this run
    failures: list[Failure] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    hook_errors: list[str] = field(default_factory=list)
    report_text: str | None = None
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        return len(self.records) == len(self.cells)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM during a run; finished cells are stored and a rerun resumes."""

    def __init__(self, finished: int, total: int, out: Path, phase: str | None = None) -> None:
        during = f" while {phase}" if phase else ""
        super().__init__(f"interrupted{during} with {finished} of {total} cells finished in "
                         f"{out}; rerun the same command to resume")
        self.finished, self.total, self.out = finished, total, out


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _check_points(exp: Experiment, config: RunConfig) -> None:
    check = exp.hook("check")
    if check is None:
        return
    import itertools

    keys = list(config.grid)
    for values in itertools.product(*(config.grid[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        try:
            check(dict(params))
        except (ValueError, TypeError) as exc:
            raise RunnerError(f"invalid parameters for {exp.name} {params}: {exc}") from None


def run_experiment(
    experiment: str | os.PathLike | Experiment,
    out: str | os.PathLike | None = None,
    *,
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    seeds: int | None = None,
    workers: int | None = None,
    backend: str | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    fail_fast: bool = False,
    dry_run: bool = False,
) -> RunReport:
    """Run (or resume) every cell of ``experiment`` into ``out`` and write the summaries.

    Args:
        experiment: a registered name, a ``.py`` path or an :class:`Experiment`.
        out: output DIR (default ``results/<experiment>``, or the config file's ``out``).
        config: a YAML file path or an already-parsed mapping (see :func:`load_config_file`).
        overrides: ``{param: value or list}`` applied after the config file.
        sets: ``"key=value"`` strings (YAML values) applied after ``overrides``.
        seeds: number of seed indices per grid point (default: config, then ``SEEDS``).
        workers: processes (local) or tasks in flight (ray); default: all usable CPUs for
            local, unlimited for ray. ``workers=1`` runs in this process.
        backend: ``"local"`` (default) or ``"ray"`` (``ray.init(address=ray_address)``; no
            address and no ``RAY_ADDRESS`` starts a local Ray instance).
        quiet: no progress bar and no progress messages.
        fail_fast: stop at the first failing cell (default: run the others, report failures).
        dry_run: resolve and check everything, report finished/pending cells, run nothing.

    Raises:
        RunnerError: unknown experiment or parameter, wrong value type, bad setting, or an
            output DIR that holds another config -- raised before anything is written.
        RunInterrupted: on KeyboardInterrupt; finished cells stay stored.
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    source = "config"
    if config is not None and not isinstance(config, Mapping):
        source = f"config file {config}"
        config = load_config_file(config)
    config = dict(config or {})
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise RunnerError(f"{source}: unknown keys {', '.join(unknown)}")
    run_cfg = resolve_config(exp, config, overrides=overrides, sets=sets, seeds=seeds,
                             source=source)
    backend = backend if backend is not None else config.get("backend", "local")
    if backend not in BACKENDS:
        raise RunnerError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    workers = workers if workers is not None else config.get("workers")
    if workers is not None:
        workers = _check_int(workers, "workers")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise RunnerError("--backend ray needs the optional dependency ray: "
                          "pip install 'robustrl[ray]'")
    ray_address = ray_address if ray_address is not None else config.get("ray_address")
    if ray_address is not None and not isinstance(ray_address, str):
        raise RunnerError(f"ray_address must be a string; got {ray_address!r}")
    if out is None:
        out = config.get("out", Path("results") / exp.name)
        if not isinstance(out, (str, Path)):
            raise RunnerError(f"{source}: out must be a directory path; got {out!r}")
    out = Path(out)
    _check_points(exp, run_cfg)
    cells = expand_cells(run_cfg)
    store = ResultStore(out)
    store.check_compatible(run_cfg)  # before anything is created or written
    if dry_run:
        done = store.finished(cells, run_cfg.experiment)
        return RunReport(exp, run_cfg, out, cells, [done[c.key] for c in cells if c.key in done],
                         resumed=len(done), ran=0, dry_run=True)

    with store.lock():
        manifest = store.check_compatible(run_cfg)
        if manifest is None:
            store.write_manifest(exp, run_cfg, len(cells))
        elif manifest.get("robustrl_version") != __version__:
            _log(quiet, f"warning: {out} was started with robustrl "
                        f"{manifest.get('robustrl_version')}; this is {__version__} (each cell "
                        "record stores the version that produced it)")
        _clean_temporaries(out)
        done = store.finished(cells, run_cfg.experiment)
        pending = [c for c in cells if c.key not in done]
        n_workers = workers if workers is not None else (
            None if backend == "ray" else default_workers())
        if n_workers is not None:
            n_workers = max(1, min(n_workers, len(pending) or 1))
        head = (f"{exp.name}: {len(cells)} cells ({run_cfg.n_points} grid points x "
                f"{run_cfg.seeds} seeds)")
        if pending:
            _log(quiet, f"{head}, {len(done)} already finished in {out}; running "
                        f"{len(pending)} on {backend}"
                        + (f" with {n_workers} worker(s)" if n_workers else ""))
        else:
            _log(quiet, f"{head}, all finished in {out}; rewriting summary and figures")
        report = RunReport(exp, run_cfg, out, cells, [], resumed=len(done), ran=0)
        if pending:
            _run_pending(report, store, pending, done, backend, n_workers, ray_address, quiet,
                         fail_fast)
        report.records = [done[c.key] for c in cells if c.key in done]
        if report.complete:
            try:
                _write_outputs(report)
            except KeyboardInterrupt:
                raise RunInterrupted(len(done), len(cells), out, "writing the summary and "
                                     "figures") from None
            _clean_temporaries(out)
        else:
            _log(quiet, f"{len(report.records)} of {len(cells)} cells finished; summary and "
                        "figures are written once every cell has finished")
    return report


def _run_pending(report: RunReport, store: ResultStore, pending: list[Cell],
                 done: dict[str, dict], backend: str, workers: int | None,
                 ray_address: str | None, quiet: bool, fail_fast: bool) -> None:
    from tqdm import tqdm

    ref = report.experiment.ref
    if backend == "ray":
        outcomes = _run_ray(ref, pending, workers, ray_address, quiet)
    elif workers == 1:
        outcomes = _run_in_process(ref, pending, inner_progress=not quiet)
    else:
        outcomes = _run_pool(ref, pending, int(workers or 1))
    bar = tqdm(total=len(pending), desc=report.experiment.name, unit="cell", disable=quiet,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for cell, outcome in outcomes:
            if outcome["ok"]:
                rec = _record(report.config, cell, outcome)
                store.write_record(rec)
                done[cell.key] = rec
                report.ran += 1
            else:
                path = store.write_error(cell, outcome["error"])
                lines = outcome["error"].strip().splitlines() or ["unknown error"]
                report.failures.append(Failure(cell, path, lines[-1]))
                bar.set_postfix(failed=len(report.failures))
                if fail_fast:
                    break
            bar.update(1)
    except KeyboardInterrupt:
        raise RunInterrupted(len(done), len(report.cells), report.out) from None
    finally:
        # Closing the generator stops the pool / cancels Ray tasks when we leave early.
        outcomes.close()
        bar.close()


def _write_outputs(report: RunReport) -> None:
    from robustrl._runner_report import generic_figures, write_cells_csv, write_summary_csv

    exp, out, records = report.experiment, report.out, report.records
    keys = list(report.config.grid)
    report.outputs += [write_summary_csv(out / "summary.csv", records, keys),
                       write_cells_csv(out / "cells.csv", records, keys)]
    report.outputs += generic_figures(out / FIGURES_DIR, records, exp.name, exp.x_axis, keys)
    _run_hooks(report)


def _run_hooks(report: RunReport) -> None:
    import traceback

    plot = report.experiment.hook("plot")
    if plot is not None:
        try:
            extra = plot(report.records, report.out)
            report.outputs += [Path(p) for p in (extra or [])]
        except Exception:
            report.hook_errors.append(f"{report.experiment.name}.plot failed:\n"
                                      + traceback.format_exc())
    text = report.experiment.hook("report")
    if text is not None:
        try:
            report.report_text = text(report.records)
        except Exception:
            report.hook_errors.append(f"{report.experiment.name}.report failed:\n"
                                      + traceback.format_exc())


def load_results(out: str | os.PathLike) -> tuple[dict[str, Any], list[dict]]:
    """``(manifest, records)`` of an output DIR, records in cell order (finished cells only)."""
    store = ResultStore(out)
    manifest = store.read_manifest()
    if manifest is None:
        raise RunnerError(f"{out} holds no {MANIFEST}: not a robustrl run directory")
    config = _manifest_config(manifest)
    cells = expand_cells(config)
    done = store.finished(cells, config.experiment)
    return manifest, [done[c.key] for c in cells if c.key in done]


def _manifest_config(manifest: Mapping[str, Any]) -> RunConfig:
    cfg = manifest["config"]
    order = manifest.get("param_order") or list(cfg["grid"])
    return RunConfig(cfg["experiment"], {k: cfg["grid"][k] for k in order}, cfg["seeds"])


def _registered_experiment(name: str) -> Experiment | None:
    """The experiment registered under ``name`` (package or ``ROBUSTRL_EXPERIMENTS_PATH``), or
    None. ``name`` is only ever compared with the names found, never imported as a path."""
    if name.isidentifier() and _package_has(name):
        with contextlib.suppress(RunnerError):
            exp = _load_ref(("module", f"{EXPERIMENTS_PACKAGE}.{name}"))
            if exp.name == name:
                return exp
    found, _errors = discover_experiments()
    return found.get(name)


def plot_results(out: str | os.PathLike, quiet: bool = False,
                 experiment: str | os.PathLike | Experiment | None = None) -> RunReport:
    """Re-draw the summaries and figures of an output DIR from its stored records.

    The experiment's ``plot`` and ``report`` hooks come from ``experiment`` (a registered name,
    a ``.py`` path or an :class:`Experiment`, chosen by the caller) or else from the experiment
    registered under the name the manifest records. The module the manifest names is never
    imported: a results directory is data, and importing a module from it would run its code.
    """
    manifest, records = load_results(out)
    config = _manifest_config(manifest)
    if experiment is not None:
        exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
        if exp.name != config.experiment:
            raise RunnerError(f"experiment {exp.name!r} ({exp.ref[1]}) is not the experiment "
                              f"{config.experiment!r} whose results {out} holds")
    else:
        found = _registered_experiment(config.experiment)
        if found is None:
            _log(quiet, f"warning: no registered experiment is named {config.experiment!r} "
                        "(see `robustrl list`); drawing only the generic figures (pass "
                        "--experiment FILE.py to use its plot and report hooks)")
            exp = Experiment(config.experiment, "", config.grid, config.seeds,
                             ("module", ""), ModuleType("missing"))
        else:
            exp = found
    cells = expand_cells(config)
    report = RunReport(exp, config, Path(out), cells, records, resumed=len(records), ran=0)
    if not records:
        raise RunnerError(f"{out} holds no finished cells yet")
    if not report.complete:
        _log(quiet, f"warning: only {len(records)} of {len(cells)} cells are finished; "
                    "plotting those")
    _clean_temporaries(Path(out))
    _write_outputs(report)
    return report


# --------------------------------------------------------------------------- inner progress
def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar for loops inside ``run_one``: shown when the cell runs in the runner's own
    process (``--workers 1``, not ``--quiet``), silent in pool and Ray workers."""
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not _exec.INNER_PROGRESS, **kwargs)


_MOVED_TO_CLI = ("BoundCheck", "register_bound_check", "bound_checks", "load_bound_checks")


def __getattr__(name: str):
    # the verify-bounds registry lives in the CLI layer (robustrl._cli.bounds)
    if name in _MOVED_TO_CLI:
        import warnings

        warnings.warn(f"robustrl.runner.{name} moved to robustrl._cli.bounds", DeprecationWarning,
                      stacklevel=2)
        from robustrl._cli import bounds

        return getattr(bounds, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
