"""Ahead-of-time compiled kernels: the entry kernels of the offline agents and of the online
linear agents (DRRPO, DR-LSVI-UCB, LSVI-UCB, OPPO), compiled once at install
(``robustrl compile-kernels``) into an extension module next to this file, so that a job
starts without compiling anything and without Numba's JIT set-up.

The JIT compiles the Figure-1 job's kernels in 10-20 s on a fresh machine (and every time
``NUMBA_CACHE_DIR`` is new), and loading them from Numba's cache costs 0.3 s and 65 MB of
LLVM state per process. :func:`build` compiles the same Python functions with the same Numba
(``numba.pycc``) for this machine's CPU and CPU features, as the JIT does, so both give the
same numbers bit for bit (tests/test_aot.py). The LAPACK/BLAS routines the kernels call are
SciPy's, resolved on first use by ``aot_support.c``.

:func:`install` registers each compiled function in its kernel's own Numba dispatcher, for
the exported signature only (C-contiguous, aligned, writeable arrays of the declared dtype and
rank; scalars of the declared kind): Numba's dispatch, which types every call, runs the
compiled function for exactly those types and the JIT for any other (compiling it as
before), so there is one dispatch layer and no second copy of Numba's typing rules. Nothing is
registered when the module is absent, stale or ``ROBUSTRL_AOT=0``. The module's name carries
a fingerprint of everything it was compiled from (the kernel sources, Numba/llvmlite/NumPy/
Python versions, the CPU), so a module built from other sources or for another machine is
never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from robustrl._kernels import divergence as _divergence
from robustrl._kernels import offline as _offline
from robustrl._kernels import offline_pass as _pass
from robustrl._kernels import policy as _policy
from robustrl._kernels import ridge as _ridge
from robustrl._kernels import value_iteration as _vi

__all__ = ["ENV_DIR", "ENV_SWITCH", "EXPORTS", "Export", "build", "fingerprint", "install",
           "installed", "load", "module_dir", "module_name", "uninstall"]

ENV_SWITCH = "ROBUSTRL_AOT"  # "0": never use the compiled module (the JIT only)
ENV_DIR = "ROBUSTRL_AOT_DIR"  # a folder for the module instead of the installed package
_HERE = Path(__file__).resolve().parent
_SHIM = _HERE / "aot_support.c"
_EXT = sysconfig.get_config_var("EXT_SUFFIX") or ".so"

# Type codes of the exported signatures: "f8", "i8", "b1" are float64, int64 and bool
# scalars; "f8[3]" is a C-contiguous float64 array of rank 3; "none" (a return only) is None.
_KINDS = ("f8", "i8", "b1")


@dataclass(frozen=True)
class Export:
    """One exported signature of a kernel: argument and return type codes."""

    kernel: Any  # the Numba dispatcher
    args: tuple[str, ...]
    returns: str | tuple[str, ...]

    @property
    def name(self) -> str:
        # the plain function under NUMBA_DISABLE_JIT=1
        return getattr(self.kernel, "py_func", self.kernel).__name__


_OFFLINE_PASS_ARGS = (
    "f8[3]", "f8[2]", "f8[4]", "b1[2]", "b1[2]",  # features, rewards, next, valid, nonterminal
    "f8[3]", "b1", "f8[2]", "b1",  # known, has_known, sample_weights, use_weights
    "f8[2]", "b1", "f8", "f8", "i8", "f8", "b1",  # theta .. truncate_below
    "i8", "f8", "f8", "b1", "f8", "f8[2]", "f8", "b1", "f8", "b1",  # the estimator (spec)
    "b1")  # keep_values
EXPORTS: tuple[Export, ...] = (
    Export(_pass.offline_pass, _OFFLINE_PASS_ARGS,
           ("f8[2]", "f8[3]", "i8[1]", "f8[2]", "f8[1]", "i8[1]", "i8")),
    Export(_pass.tied_steps,
           ("f8[3]", "f8[4]", "b1[2]", "b1[2]", "f8[2]", "f8[3]", "f8", "i8", "f8", "b1",
            "i8"),
           ("b1[1]", "f8[1]")),
    Export(_offline.clipped_q,
           ("f8[3]", "f8[1]", "f8[2]", "f8", "i8", "f8", "b1", "f8[2]", "b1", "f8[2]", "b1"),
           "f8[2]"),
    # the online linear agents' per-episode kernels (DRRPO, DR-LSVI-UCB, LSVI-UCB, OPPO),
    # as robustrl.ridge, robustrl.policies, robustrl.divergences and the agents call them
    Export(_ridge.sherman_morrison_update, ("f8[2]", "f8[1]", "f8"), "none"),
    Export(_ridge.add_rank_one, ("f8[2]", "f8[1]", "f8"), "none"),
    # Lambda^{-1} anew from the Gram matrix every 256 updates: without it, a run's first
    # refresh starts Numba's JIT (0.3 s from a warm cache; compiling on an empty one)
    Export(_ridge.spd_inverse, ("f8[2]",), "f8[2]"),
    Export(_vi.q_values, ("f8[3]", "f8[1]", "f8[2]", "f8", "i8", "f8"), "f8[2]"),
    Export(_policy.log_softmax_rows, ("f8[2]", "f8"), "f8[2]"),
    Export(_policy.regularized_log_policy, ("f8[2]", "f8[2]", "f8", "f8"), "f8[2]"),
    Export(_divergence.tv_constrained_batch, ("f8[1]", "f8[2]", "f8[1]", "f8"), "f8[1]"),
    Export(_divergence.kl_constrained_batch, ("f8[1]", "f8[2]", "f8[1]"), "f8[1]"),
    Export(_offline.tv_dual_rows_ordered, ("f8[1]", "f8[2]", "f8[1]", "f8", "i8[1]"), "f8[1]"),
)


def _parse(code: str) -> tuple[str, int]:
    """``"f8[3]"`` -> ``("f8", 3)``; ``"f8"`` -> ``("f8", 0)``."""
    kind, _, rank = code.partition("[")
    if kind not in _KINDS or (rank and not rank[:-1].isdigit()):
        raise ValueError(f"unknown type code {code!r}")
    return kind, int(rank[:-1]) if rank else 0


_installed: dict[str, Any] = {}  # name -> the compiled function registered
_alive: dict[str, tuple] = {}  # export name -> its signature's Numba types: see install()


def install(directory: str | os.PathLike | None = None) -> bool:
    """Register the compiled module's functions in their kernels' JIT dispatchers (see the
    module's docstring); returns whether they are registered. Idempotent; ``directory`` as in
    :func:`load`.

    A dispatcher's table holds, per signature, Numba's integer type codes. Numba interns a
    type through a weak cache, so the code of a type nobody references may go to another
    type later: the signature's types are kept alive here. The JIT's own entries for the
    exported signatures are taken out of the table (the compiled function replaces them;
    every other specialisation stays)."""
    from numba.core import config

    if config.DISABLE_JIT:  # the kernels are plain Python functions: no dispatcher to fill
        return False
    module = load(directory)
    if module is None:
        return False
    if all(_installed.get(e.name) is getattr(module, e.name) for e in EXPORTS):
        return True
    for export in EXPORTS:
        types = tuple(_numba_type(c) for c in export.args)
        _alive[export.name] = types
        _fill(export.kernel, types, getattr(module, export.name))
        _installed[export.name] = getattr(module, export.name)
    return True


def uninstall() -> None:
    """Undo :func:`install`: every kernel's dispatcher holds the JIT's entries only (tests)."""
    for export in EXPORTS:
        _fill(export.kernel)
    _installed.clear()
    _reset()


def _fill(dispatcher, types: tuple = (), compiled: Any = None) -> None:
    """Refill ``dispatcher``'s table: ``compiled`` for the signature ``types`` (if given),
    the JIT's own specialisations for every other signature."""
    dispatcher._clear()
    if compiled is not None:
        dispatcher._insert([t._code for t in types], compiled, False)
    for args, cres in dispatcher.overloads.items():
        if compiled is None or tuple(args) != types:
            dispatcher._insert([a._code for a in args], cres.entry_point, cres.objectmode)


def installed(kernel) -> bool:
    """Whether ``kernel`` (a Numba dispatcher) runs ahead-of-time compiled code for its
    exported signature."""
    return any(e.kernel is kernel and e.name in _installed for e in EXPORTS)


def _cpu() -> tuple[str, str]:
    """The CPU name and features the JIT compiles for, and so does :func:`build` (Numba's
    ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` included)."""
    import llvmlite.binding as ll
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    return config.CPU_NAME or ll.get_host_cpu_name(), get_host_cpu_features()


def fingerprint() -> str:
    """16 hex digits naming what the compiled module depends on: the sources of every kernel
    module and of aot_support.c, the exported signatures, the Numba, llvmlite, NumPy and Python
    versions, the platform and the CPU (name and features)."""
    import llvmlite
    import numba

    h = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")) + [_SHIM]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(repr([(e.name, e.args, e.returns) for e in EXPORTS]).encode())
    h.update(repr((numba.__version__, llvmlite.__version__, np.__version__, sys.version,
                   sys.platform, _EXT, _cpu())).encode())
    return h.hexdigest()[:16]


def module_name() -> str:
    """The compiled module's name for this machine and these sources."""
    return f"_aot_{fingerprint()}"


_loaded: dict[str, ModuleType | None] = {}


def module_dir() -> Path | None:
    """Where the module is looked for and built: ``$ROBUSTRL_AOT_DIR`` where set (an install
    whose package folder is read-only), else None, the installed package itself."""
    folder = os.environ.get(ENV_DIR)
    return Path(folder) if folder else None


def load(directory: str | os.PathLike | None = None) -> ModuleType | None:
    """The compiled module for the current sources and machine, or None (absent, stale,
    unloadable or ``ROBUSTRL_AOT=0``; unloadable warns). ``directory``: where :func:`build`
    wrote it (default :func:`module_dir`: ``$ROBUSTRL_AOT_DIR``, else this package, imported
    as ``robustrl._kernels._aot_<fingerprint>``)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    if directory is None:
        directory = module_dir()
    key = str(directory)
    if key in _loaded:
        return _loaded[key]
    module = None
    name = module_name()
    try:
        if directory is None:
            if importlib.util.find_spec(f"{__package__}.{name}") is not None:
                module = importlib.import_module(f"{__package__}.{name}")
        else:
            path = Path(directory) / f"{name}{_EXT}"
            if path.exists():
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
    except ImportError as exc:
        warnings.warn(f"robustrl: the ahead-of-time compiled kernels ({name}) did not load "
                      f"({exc}); the JIT compiles them instead. Rebuild them with `robustrl "
                      f"compile-kernels`.", RuntimeWarning, stacklevel=2)
        module = None
    if module is not None and not all(hasattr(module, e.name) for e in EXPORTS):
        module = None
    _loaded[key] = module
    return module


def _reset() -> None:
    """Forget the loaded modules (after a build, and in tests)."""
    _loaded.clear()


def _numba_type(code: str):
    from numba.core import types

    if code == "none":
        return types.none
    kind, rank = _parse(code)
    scalar = {"f8": types.float64, "i8": types.int64, "b1": types.boolean}[kind]
    return types.Array(scalar, rank, "C") if rank else scalar


def _signature(export: Export):
    from numba.core import types

    returns = (types.Tuple(tuple(_numba_type(c) for c in export.returns))
               if isinstance(export.returns, tuple) else _numba_type(export.returns))
    return returns(*(_numba_type(c) for c in export.args))


@contextlib.contextmanager
def _as_the_jit() -> Iterator[None]:
    """Two differences between ``numba.pycc`` and the JIT, undone for the build: pycc compiles
    for a CPU model's default features, the JIT for the host's actual features (a virtual
    machine may hide some, and others change the vector code); and the generated code
    unpickles an embedded object (the array type, at every array it returns) with a plain
    ``pickle.loads`` where the JIT memoises it (``robustrl_unpickle`` in aot_support.c)."""
    from llvmlite import ir
    from numba.core import codegen, pythonapi

    features = codegen.AOTCPUCodegen._customize_tm_features
    unserialize = pythonapi.PythonAPI.unserialize

    def memoised_unserialize(self, structptr):
        if not isinstance(self.context.codegen(), codegen.AOTCPUCodegen):
            return unserialize(self, structptr)  # a callee the JIT compiles meanwhile
        fnty = ir.FunctionType(self.pyobj, (self.voidptr, ir.IntType(32), self.voidptr))
        fn = self._get_function(fnty, name="robustrl_unpickle")
        struct = self.builder.load(structptr)
        return self.builder.call(fn, tuple(self.builder.extract_value(struct, k)
                                           for k in range(3)))

    codegen.AOTCPUCodegen._customize_tm_features = lambda self: self._get_host_cpu_features()
    pythonapi.PythonAPI.unserialize = memoised_unserialize
    try:
        yield
    finally:
        codegen.AOTCPUCodegen._customize_tm_features = features
        pythonapi.PythonAPI.unserialize = unserialize


def build(directory: str | os.PathLike | None = None, *, verbose: bool = False) -> Path:
    """Compile :data:`EXPORTS` into ``directory`` (default :func:`module_dir`, else this
    package) as ``_aot_<fingerprint>`` and return its path; other ``_aot_*`` modules there are
    removed.
    Needs a C compiler (for Numba's runtime and aot_support.c); 15-30 s. The file appears
    atomically (a failed or interrupted build leaves none).

    The build runs in a fresh process with an empty Numba cache of its own, so that every
    kernel the exports call is compiled from its current source: Numba's cache keys a kernel
    on its own file only, and a cached caller of an edited callee in another file would be
    stale (``make clean-numba``), while the fingerprint says the module is current."""
    if directory is None:
        directory = module_dir() or _HERE
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise ValueError(f"directory must be an existing folder; got {str(directory)!r}")
    with tempfile.TemporaryDirectory(prefix="robustrl_aot_cache_") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cmd = [sys.executable, "-m", __name__, str(directory)] + (["--verbose"] if verbose else [])
        proc = subprocess.run(cmd, env=env, capture_output=not verbose, text=True)
    if proc.returncode != 0:
        tail = "" if verbose else f": {(proc.stderr or '')[-2000:]}"
        raise RuntimeError(f"the ahead-of-time build failed (exit {proc.returncode}){tail}")
    _reset()
    return directory / f"{module_name()}{_EXT}"


def _build_here(directory: Path, verbose: bool) -> Path:
    """:func:`build`'s work, in the process that runs it."""
    with warnings.catch_warnings():  # numba.pycc is deprecated in favour of a successor
        warnings.simplefilter("ignore")  # that does not exist yet
        from numba.pycc import CC

    class _CC(CC):
        def _get_mixin_sources(self) -> list[str]:
            return [*super()._get_mixin_sources(), str(_SHIM)]

    name = module_name()
    with tempfile.TemporaryDirectory(prefix=".aot_build_", dir=directory) as tmp:
        cc = _CC(name, source_module=sys.modules[__name__])
        cc.output_dir = tmp
        cc.target_cpu = "host"
        cc.verbose = verbose
        for export in EXPORTS:
            cc.export(export.name, _signature(export))(export.kernel.py_func)
        with _as_the_jit(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        target = directory / f"{name}{_EXT}"
        os.replace(Path(tmp) / f"{name}{_EXT}", target)
    for stale in directory.glob(f"_aot_*{_EXT}"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


if __name__ == "__main__":  # the fresh process of build()
    _build_here(Path(sys.argv[1]), "--verbose" in sys.argv[2:])
