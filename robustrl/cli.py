"""The ``robustrl`` command line.

``robustrl list`` the experiments; ``robustrl run EXPERIMENT ...`` runs or resumes a sweep;
``robustrl plot DIR`` re-draws a run's summaries and figures; ``robustrl verify-bounds NAME ...``
runs a theory check registered with :func:`robustrl._cli.bounds.register_bound_check`;
``robustrl envs`` lists the environments.

Exit status: 0 success; 1 some cells (or a plot/report hook) failed; 2 a usage or configuration
error (including a results directory whose manifest does not match its hash), reported before
anything is written; 74 (``EX_IOERR``) a filesystem error of the runner itself -- read-only or
full disk, missing permission -- reported as one ``robustrl: error:`` line naming the path
(finished cells are kept); 130 interrupted by SIGINT or SIGTERM in any phase (finished cells
are kept; rerun to resume).

``robustrl plot DIR`` never imports code named by ``DIR``: the experiment's hooks come from the
experiment registered under the manifest's name, or from ``--experiment FILE.py``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from robustrl import __version__

EXIT_FAILED, EXIT_USAGE, EXIT_IOERR, EXIT_INTERRUPTED = 1, 2, 74, 130


def _error(msg: str) -> int:
    print(f"robustrl: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _io_error(exc: OSError) -> int:
    where = f"{exc.filename}: " if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    print(f"robustrl: error: {where}{what} (finished cells are kept; fix the filesystem "
          "problem and rerun)", file=sys.stderr)
    return EXIT_IOERR


def _closed_pipe() -> int:
    """The reader of stdout went away (``robustrl list -v | head -1``): stop quietly.

    Python would report the failed flush of the dead stdout at exit, so stdout is pointed at
    ``/dev/null`` first. Exit 0: the reader got all it asked for.
    """
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


class _StderrHandler(logging.Handler):
    """Writes each record's message to the *current* ``sys.stderr`` (so that a redirected or
    captured stderr gets it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show the ``robustrl`` loggers' progress and diagnostics (INFO and up) on stderr."""
    log = logging.getLogger("robustrl")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``robustrl: warning:`` line (no source excerpt) on stderr."""
    print(f"robustrl: warning: {message}", file=sys.stderr if file is None else file)


def _cmd_compile_kernels(args: argparse.Namespace) -> int:
    """Compile the linear agents' kernels ahead of time (:mod:`robustrl._kernels.aot`)."""
    import shlex
    import shutil
    import sysconfig
    import time

    from robustrl._kernels import aot

    out = args.out if args.out is not None else aot.module_dir()
    current = aot.load(out) is not None
    where = aot.module_name() if out is None else f"{out}/{aot.module_name()}"
    if args.check:
        print(f"compiled kernels {'present' if current else 'absent or stale'}: {where}")
        return 0 if current else EXIT_FAILED
    if current and not args.force:
        print(f"compiled kernels up to date: {where}")
        return 0
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[:1]
    if not compiler or shutil.which(compiler[0]) is None:
        print(f"robustrl: warning: no C compiler ({' '.join(compiler) or 'cc'}) found: the "
              "kernels are not compiled ahead of time; Numba compiles them on first use "
              "instead (10-20 s once per machine)", file=sys.stderr)
        return EXIT_FAILED if args.strict else 0
    print("compiling the kernels ahead of time (15-30 s) ...", flush=True)
    start = time.perf_counter()
    try:
        path = aot.build(out, verbose=args.verbose)
    except Exception as exc:  # a compiler or Numba failure: the JIT still works
        print(f"robustrl: warning: compiling the kernels ahead of time failed "
              f"({type(exc).__name__}: {exc}); Numba compiles them on first use instead",
              file=sys.stderr)
        return EXIT_FAILED if args.strict else 0
    print(f"wrote {path} ({time.perf_counter() - start:.1f} s)")
    return 0


def _cmd_envs(_args: argparse.Namespace) -> int:
    """Every registered ``robustrl/...`` gymnasium id with its perturbation knob; an id whose
    class needs a missing extra is listed with that extra instead of crashing."""
    import importlib

    import gymnasium as gym

    import robustrl.envs  # noqa: F401  (registers the ids)
    from robustrl._cli.install import extras_message, missing_extras

    extra_of = {"robustrl/CaveEscape-v0": {"minigrid": "dred"}}
    for env_id in sorted(i for i in gym.registry if i.startswith("robustrl/")):
        entry = gym.registry[env_id].entry_point
        missing = missing_extras(extra_of.get(env_id, {}))
        if missing or not isinstance(entry, str):
            why = extras_message(env_id, missing) if missing else "no importable entry point"
            print(f"{env_id}: ({why})")
            continue
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        doc = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        grid = getattr(cls, "perturbation_grid", None)
        nominal = getattr(cls, "nominal_perturbation", None)
        print(f"{env_id} ({cls.__name__}): {doc}")
        if grid is not None:
            print(f"    perturbation: grid {[float(g) for g in grid]}, nominal {nominal}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from robustrl.runner import discover_experiments

    found, errors = discover_experiments()
    width = max([len(n) for n in found] + [10]) + 2
    for name in sorted(found):
        exp = found[name]
        cells = exp.n_points * exp.seeds
        print(f"{name:<{width}}{exp.description}  [{exp.n_points} points x {exp.seeds} seeds "
              f"= {cells} cells]")
        if args.verbose:
            for key, values in exp.grid.items():
                print(f"{'':<{width}}  {key}: {values}")
            print(f"{'':<{width}}  module: {exp.ref[1]}")
    for module, msg in errors.items():
        print(f"warning: {module}: {msg}", file=sys.stderr)
    if not found:
        print("no experiments found", file=sys.stderr)
        return EXIT_FAILED
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a batch scheduler) stops a run like Ctrl-C: cleanly, cells kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _print_outputs(report, quiet: bool) -> None:
    """The experiment's report table (stdout), then the files written (stderr, unless quiet)."""
    if report.report_text:
        print(report.report_text, flush=True)
    if not quiet:
        for path in report.outputs:
            print(f"wrote {path}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    from robustrl._cli.install import (
        experiment_requirements,
        extras_message,
        missing_extras,
        resolve_config_path,
    )
    from robustrl.runner import RunInterrupted, RunnerError, run_experiment

    missing = missing_extras(experiment_requirements(args.experiment))
    if missing:  # pre-flight: before any cell runs or anything is written
        return _error(extras_message(f"experiment {args.experiment}", missing))
    if args.config is not None:
        args.config = resolve_config_path(args.config)
    try:
        with _sigterm_as_interrupt():
            report = run_experiment(
                args.experiment, args.out, config=args.config, sets=args.set or (),
                seeds=args.seeds, workers=args.workers, backend=args.backend,
                ray_address=args.ray_address, quiet=args.quiet, fail_fast=args.fail_fast,
                dry_run=args.dry_run,
            )
    except RunnerError as exc:
        return _error(str(exc))
    except RunInterrupted as exc:
        _ignore_signals()
        print(f"robustrl: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.dry_run:
        done = {r["key"] for r in report.records}
        print(f"{report.config.experiment} -> {report.out} (config {report.config.hash}): "
              f"{len(report.cells)} cells, {len(done)} finished")
        for cell in report.cells:
            state = "done" if cell.key in done else "todo"
            print(f"  {state}  {cell.key}  seed_index={cell.seed_index}  seed={cell.seed}  "
                  f"{cell.params}")
        return 0
    _print_outputs(report, args.quiet)
    status = 0
    if report.failures:
        print(f"robustrl: {len(report.failures)} of {len(report.cells)} cells failed (rerun "
              "the same command to retry them; finished cells are kept):", file=sys.stderr)
        for f in report.failures:
            print(f"  {f.cell.params} seed_index={f.cell.seed_index}: {f.message}\n"
                  f"    traceback: {f.error_file}", file=sys.stderr)
        status = EXIT_FAILED
    for msg in report.hook_errors:
        print(f"robustrl: {msg}", file=sys.stderr)
        status = EXIT_FAILED
    return status


def _cmd_plot(args: argparse.Namespace) -> int:
    from robustrl.runner import RunnerError, plot_results

    try:
        with _sigterm_as_interrupt():
            report = plot_results(args.dir, quiet=args.quiet, experiment=args.experiment,
                                  metric_figures=args.metric_figures or None)
    except RunnerError as exc:
        return _error(str(exc))
    _print_outputs(report, args.quiet)
    for msg in report.hook_errors:
        print(f"robustrl: {msg}", file=sys.stderr)
    return EXIT_FAILED if report.hook_errors else 0


def _cmd_verify_bounds(argv: list[str]) -> int:
    from robustrl._cli.bounds import bound_checks, load_bound_checks

    import_errors = load_bound_checks()
    checks = bound_checks()
    argv = list(argv)
    name = argv[0] if argv and not argv[0].startswith("-") else None
    asked = bool(argv) and argv[0] in ("--list", "-l", "--help", "-h")
    if name is None or name not in checks:
        out = sys.stdout if asked else sys.stderr
        if checks:
            print("registered bound checks (robustrl verify-bounds NAME [ARGS...]):", file=out)
            for check in sorted(checks.values(), key=lambda c: c.name):
                print(f"  {check.name:<20}{check.description}", file=out)
        else:
            print("no bound checks are registered yet (register them with "
                  "robustrl._cli.bounds.register_bound_check)", file=out)
        for module, msg in import_errors.items():
            print(f"warning: could not import {module}: {msg}", file=sys.stderr)
        if asked:
            return 0 if checks else EXIT_FAILED
        if name is not None:
            return _error(f"unknown bound check {name!r}")
        return _error("name a bound check: robustrl verify-bounds NAME [ARGS...]")
    result = checks[name].func(argv[1:])
    return 0 if result is None else int(result)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustrl", description="Robust reinforcement learning: experiments and checks.")
    parser.add_argument("--version", action="version", version=f"robustrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compile-kernels",
        help="compile the linear agents' kernels ahead of time (needs a C compiler)",
        description="Compile the offline and online linear agents' Numba kernels into an "
                    "extension module for this machine, so that no job compiles them (10-20 s "
                    "on a fresh Numba "
                    "cache) or loads Numba's JIT. Without a C compiler (or when the build "
                    "fails) it warns and exits 0: the kernels then compile on first use.")
    p.add_argument("--out", metavar="DIR",
                   help="write the module to DIR (default: $ROBUSTRL_AOT_DIR, where jobs "
                        "look for it when set, else the installed package)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--check", action="store_true",
                   help="only report whether an up-to-date module is present (exit 1 if not)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when no module could be built (no compiler, a failed build)")
    p.add_argument("--verbose", action="store_true", help="show the compiler's commands")
    p.set_defaults(func=_cmd_compile_kernels)

    p = sub.add_parser("envs", help="list the environments and their perturbation grids")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("list", help="list the experiments, one line each")
    p.add_argument("-v", "--verbose", action="store_true", help="also show grids and modules")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "run", help="run or resume an experiment's sweep",
        description="Run every (grid point, seed) cell of EXPERIMENT that is not yet finished "
                    "in --out, then write summary.csv, cells.csv and figures. Rerun the same "
                    "command after a crash or Ctrl-C to resume.")
    p.add_argument("experiment", help="experiment name (see `robustrl list`) or a .py file")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="a packaged config's name (e.g. demo_fig1) or a YAML with any of: grid "
                        "(param: value or list), seeds, out, workers, "
                        "backend, ray_address")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a grid parameter (YAML value or list: --set lam=0.1, --set "
                        "'perturbation=[0, 0.5]'); repeatable; type-checked against defaults")
    p.add_argument("--seeds", type=int, metavar="N", help="seed indices per grid point")
    p.add_argument("--out", metavar="DIR", help="output directory (default results/EXPERIMENT)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="parallel processes (local; default: this process, then a pool of up "
                        "to all usable CPUs once the sweep is seen to need more than ~10 s; 1 = "
                        "in this process) or tasks in flight (ray; default: unlimited)")
    p.add_argument("--backend", choices=["local", "ray"],
                   help="local process pool (default) or Ray tasks")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join (e.g. auto or ray://host:10001); default "
                        "$RAY_ADDRESS, else a local Ray instance")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress messages")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells and which are finished; run nothing")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "plot", help="re-draw summaries and figures from a run's stored results",
        description="Re-draw summary.csv, cells.csv and the figures of DIR. The plot and "
                    "report hooks come from the experiment registered under the name DIR's "
                    "manifest records, or from --experiment; nothing named by DIR is imported.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--experiment", metavar="NAME_OR_FILE",
                   help="the experiment (registered name or .py file) whose hooks to use; it "
                        "must be the experiment DIR holds")
    p.add_argument("--metric-figures", action="store_true",
                   help="also draw figures/<metric>.png for an experiment that declares "
                        "METRIC_FIGURES = False (its own figure and table replace them)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "verify-bounds", help="run a registered theory check (NAME [ARGS...]; --list)",
        description="Check an empirical quantity against a theoretical bound. Checks are "
                    "registered by robustrl.theory modules; with no NAME, list them.",
        add_help=False)
    # Listed for --help only: main() hands everything after `verify-bounds` to the check
    # untouched (argparse would try to parse options meant for the check).
    p.add_argument("check_args", nargs="*", metavar="NAME [ARGS...]")
    return parser


def _ignore_signals() -> None:
    """After the first interrupt, a second Ctrl-C/SIGTERM must not break the clean exit
    (``main`` restores the handlers when it returns)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    _forget_unhandled_interrupt()


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's "unhandled KeyboardInterrupt" flag.

    When the interrupt lands in code that an extension runs through ``PyRun_String`` (some
    compiled modules do during import), CPython sets a flag that makes the interpreter kill
    itself with SIGINT at exit, although we handled the interrupt: exit -2 instead of 130.
    Every ``PyRun_*`` evaluation resets that flag first, so one empty evaluation clears it.
    """
    if sys.implementation.name != "cpython":
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.pythonapi.PyRun_SimpleString(b"")


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "verify-bounds":
        return _cmd_verify_bounds(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Called as the program (``argv`` None), warnings are printed as ``robustrl: warning:``
    lines, and SIGINT and SIGTERM are left ignored when it returns: the work is done and its
    status decided, and a signal during the interpreter's teardown would otherwise kill the
    process and replace that status (with -2/-15).
    """
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    old_show = warnings.showwarning
    if console:  # a library caller (tests, notebooks) keeps its own warning handling
        warnings.showwarning = _show_warning
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if main_thread else {}
    try:
        with _sigterm_as_interrupt(), _log_to_stderr():
            status = _dispatch(argv)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's teardown
            return status
    except KeyboardInterrupt:  # any phase: loading, cells, summary, figures, hooks
        return _interrupted()
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as exc:
        if _caused_by_interrupt(exc):
            return _interrupted()
        return _io_error(exc)
    except Exception as exc:
        # an interrupt that lands inside an import can come back wrapped (a KeyboardInterrupt
        # raised in a class body's __set_name__ is re-raised as a RuntimeError from it)
        if _caused_by_interrupt(exc):
            return _interrupted()
        raise
    finally:
        if console:
            _ignore_signals()
        else:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        warnings.showwarning = old_show


def _interrupted() -> int:
    _ignore_signals()
    print("robustrl: interrupted (finished cells are kept; rerun the same command to "
          "resume)", file=sys.stderr)
    return EXIT_INTERRUPTED


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because of a KeyboardInterrupt (its cause or context)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def run_console() -> None:
    """The ``robustrl`` program (and ``python -m robustrl``): :func:`main`, then a quick exit.

    When ``main`` returns, every result is written (atomically) and the exit status decided,
    so the interpreter's teardown, which frees every module, Numba's LLVM state and
    Matplotlib's objects one by one (0.3 s of the 1.8 s Figure-1 job), is skipped: the exit
    handlers run and the standard streams are flushed as in a normal exit, then the process
    ends with ``os._exit``. The normal exit runs instead where the teardown may matter: after
    code from outside this Python installation and robustrl's own packages was loaded (a
    user's experiment file may leave a file open whose buffer only the teardown flushes), or
    while a non-daemon thread is alive (a normal exit waits for it).
    """
    status = main()
    waiting = [t for t in threading.enumerate()
               if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if waiting or not isinstance(status, int) or not _only_known_code():
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # a closed pipe: main
            stream.flush()  # reported it; a None stream (pythonw) has nothing to flush
    os._exit(status)


def _only_known_code() -> bool:
    """Whether every loaded module with a file comes from this Python's installation
    (standard library, site-packages) or from robustrl's own packages."""
    roots = set()
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.update({os.path.abspath(path), os.path.realpath(path)})
    for name in ("robustrl", "robustrl.agents", "robustrl.envs", "robustrl.theory",
                 "robustrl.experiments"):
        for path in getattr(sys.modules.get(name), "__path__", ()):
            roots.update({os.path.abspath(path), os.path.realpath(path)})
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and not os.path.abspath(file).startswith(prefixes):
            return False
    return True


if __name__ == "__main__":
    run_console()
