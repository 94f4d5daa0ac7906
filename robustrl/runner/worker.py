"""Worker side of the experiment runner: load an experiment module and run one cell.

Kept free of heavy imports because every pool worker (spawned) and every Ray worker imports it.
A module is referred to by a ``ModuleRef`` -- ``("module", "robustrl.experiments.toy_sweep")``
or ``("file", "/abs/path/exp.py")`` -- rather than by the function object, so that the same
reference works in-process, in a spawned process and on a remote Ray node.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import random
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ModuleRef = tuple[str, str]

_MODULES: dict[ModuleRef, ModuleType] = {}

# Whether robustrl.runner.progress() bars inside a single run are shown. Only the in-process
# backend (workers=1) turns this on: bars from several processes would garble the terminal.
INNER_PROGRESS = False


def load_module(ref: ModuleRef) -> ModuleType:
    """Import the experiment module ``ref`` (cached per process)."""
    ref = (str(ref[0]), str(ref[1]))
    if ref in _MODULES:
        return _MODULES[ref]
    kind, target = ref
    if kind == "module":
        module = importlib.import_module(target)
    elif kind == "file":
        path = Path(target)
        # A name derived from the path: two files called exp.py in different folders must not
        # share a sys.modules entry. Registering it lets pickle find its classes in-process.
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        name = f"robustrl_user_experiment_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import an experiment module from {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        raise ValueError(f"module reference kind must be 'module' or 'file'; got {kind!r}")
    _MODULES[ref] = module
    return module


def to_jsonable(value: Any, where: str = "metrics") -> Any:
    """``value`` with NumPy scalars/arrays and tuples turned into JSON types; TypeError if not."""
    if isinstance(value, np.generic):
        # before the int/float test: np.float64 subclasses float, and a record kept in memory
        # must format like one read back from JSON (repr would give "np.float64(...)")
        return value.item()
    if value is None or isinstance(value, (bool, str)):
        return value if type(value) in (type(None), bool, str) else (
            bool(value) if isinstance(value, bool) else str(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} keys must be strings; got {k!r}")
            out[k] = to_jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} must hold JSON-able values (numbers, strings, bools, None, lists, dicts, "
        f"NumPy scalars/arrays); got {type(value).__name__}"
    )


def _seed_global_rngs(seed: int) -> None:
    # Experiments that (against advice) draw from global generators still get the same numbers
    # in-process and in any worker, because every cell starts from its own seed.
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- seeding the legacy global state is the point
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def execute(ref: ModuleRef, params: dict[str, Any], seed: int,
            inner_progress: bool = False) -> dict[str, Any]:
    """Run one cell and return an outcome dict (never raises for an experiment's error).

    ``{"ok": True, "metrics": {...}, "wall_time_s": t}`` or
    ``{"ok": False, "error": "<traceback>", "wall_time_s": t}``. KeyboardInterrupt propagates.
    """
    global INNER_PROGRESS
    previous, INNER_PROGRESS = INNER_PROGRESS, inner_progress
    t0 = time.perf_counter()
    try:
        module = load_module(ref)
        _seed_global_rngs(seed)
        metrics = module.run_one(dict(params), seed)
        if not isinstance(metrics, dict):
            raise TypeError(
                f"run_one must return a dict of metrics; got {type(metrics).__name__}"
            )
        metrics = to_jsonable(metrics)
    except (Exception, SystemExit):  # a cell's failure, not the runner's; Ctrl-C propagates
        return {"ok": False, "error": traceback.format_exc(),
                "wall_time_s": time.perf_counter() - t0, **process_memory()}
    finally:
        INNER_PROGRESS = previous
    return {"ok": True, "metrics": metrics, "wall_time_s": time.perf_counter() - t0,
            **process_memory()}


def process_memory() -> dict[str, Any]:
    """``{"pid": ..., "max_rss_mb": ...}``: this process and its peak resident memory so far
    (MB; NaN where the platform does not say), which the driver reports per pool worker."""
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        mb = kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0
    except (ImportError, OSError):  # not POSIX
        mb = float("nan")
    return {"pid": os.getpid(), "max_rss_mb": mb}


def ignore_sigint() -> None:
    """Ctrl-C is handled by the driver, which then stops the workers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


_PR_SET_PDEATHSIG = 1


def _exit_with_parent_linux() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(70)  # the driver is gone: nobody will collect our result
        time.sleep(interval_s)


def worker_init(parent_pid: int, interval_s: float = 0.5) -> None:
    """Pool initializer: ignore Ctrl-C (the driver handles it) and exit when the driver dies.

    Linux kills the worker at once through ``PR_SET_PDEATHSIG``; a daemon thread polling the
    parent pid also covers other POSIX systems (it runs whenever the cell releases the GIL).
    """
    import threading

    ignore_sigint()
    _exit_with_parent_linux()
    if os.getppid() != parent_pid:  # the driver died before the line above took effect
        os._exit(70)
    threading.Thread(target=_watch_parent, args=(parent_pid, interval_s), daemon=True,
                     name="robustrl-parent-watchdog").start()
