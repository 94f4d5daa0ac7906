"""Experiments (discovery, loading) and the resolved run configuration (grid x seeds).

Part of :mod:`robustrl.runner` (see its docstring for the runner's contract)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from robustrl.runner.store import (
    CONFIG_KEYS,
    EXPERIMENTS_PACKAGE,
    PATH_ENV,
    RunnerError,
    _kind,
    _normalize_values,
    _sha256,
    expand_points,
)
from robustrl.runner.worker import ModuleRef, load_module


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
    metric_figures: bool = True
    conditions: dict[str, dict[str, list]] = field(default_factory=dict)

    def hook(self, name: str) -> Callable | None:
        func = getattr(self.module, name, None)
        return func if callable(func) else None

    @property
    def n_points(self) -> int:
        return len(expand_points(self.grid, self.conditions))


def _conditions(module: ModuleType, grid: dict[str, list], where: str) -> dict:
    raw = getattr(module, "CONDITIONS", None) or {}
    if not isinstance(raw, Mapping):
        raise RunnerError(f"{where}: CONDITIONS must be a dict of parameter -> "
                          "{other parameter: [values]}")
    out: dict[str, dict[str, list]] = {}
    for name, when in raw.items():
        if name not in grid:
            raise RunnerError(f"{where}: CONDITIONS key {name!r} is not a GRID key "
                              f"({', '.join(grid)})")
        if not isinstance(when, Mapping) or not when:
            raise RunnerError(f"{where}: CONDITIONS[{name!r}] must be a non-empty dict of "
                              "other parameter -> list of values")
        out[name] = {}
        for other, values in when.items():
            if other not in grid or other == name or other in raw:
                raise RunnerError(
                    f"{where}: CONDITIONS[{name!r}] names {other!r}, which must be another "
                    f"GRID key that is not itself conditional ({', '.join(grid)})")
            out[name][other] = _normalize_values(values, f"{where}: CONDITIONS[{name!r}]"
                                                         f"[{other!r}]")
    return out


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
    metric_figures = getattr(module, "METRIC_FIGURES", True)
    if not isinstance(metric_figures, bool):
        raise RunnerError(f"{where}: METRIC_FIGURES must be True or False; got "
                          f"{metric_figures!r}")
    return Experiment(name=name, description=str(description), grid=norm, seeds=seeds, ref=ref,
                      module=module, x_axis=x_axis, metric_figures=metric_figures,
                      conditions=_conditions(module, norm, where))


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
    """What determines the cells of a run: experiment name, resolved grid, seed count and the
    experiment's ``CONDITIONS`` (recorded only when there are some, so that the hashes of
    configs without conditions are those of earlier versions)."""

    experiment: str
    grid: dict[str, list]
    seeds: int
    conditions: dict[str, dict[str, list]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {"experiment": self.experiment, "grid": self.grid, "seeds": self.seeds}
        if self.conditions:
            out["conditions"] = self.conditions
        return out

    @property
    def hash(self) -> str:
        return _sha256(self.as_dict())[:16]

    @property
    def n_points(self) -> int:
        return len(expand_points(self.grid, self.conditions))


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
    return RunConfig(exp.name, grid, n_seeds,
                     {k: dict(v) for k, v in exp.conditions.items()})
