"""The run loop: run the pending cells, record failures, write the summaries and figures.

Part of :mod:`robustrl.runner` (see its docstring for the runner's contract)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from robustrl import __version__
from robustrl.runner.backends import (
    _run_auto,
    _run_in_process,
    _run_pool,
    _run_ray,
    default_workers,
)
from robustrl.runner.config import (
    Experiment,
    RunConfig,
    _check_int,
    _load_ref,
    _package_has,
    discover_experiments,
    load_config_file,
    load_experiment,
    resolve_config,
)
from robustrl.runner.store import (
    BACKENDS,
    CONFIG_KEYS,
    EXPERIMENTS_PACKAGE,
    FIGURES_DIR,
    MANIFEST,
    Cell,
    ResultStore,
    RunnerError,
    _clean_temporaries,
    _record,
    expand_cells,
    expand_points,
)


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
    #: peak resident memory (MB) of each pool worker that ran cells, by process id
    worker_memory_mb: dict[int, float] = field(default_factory=dict)

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


logger = logging.getLogger("robustrl.runner")


def _log(quiet: bool, msg: str) -> None:
    """Progress (INFO) and diagnostics (WARNING, the messages starting with ``warning:``) go
    to the ``robustrl.runner`` logger; the command line shows them on stderr, a library caller
    configures :mod:`logging` as it likes. ``quiet`` drops them."""
    if quiet:
        return
    logger.log(logging.WARNING if msg.startswith("warning: ") else logging.INFO, msg)


def _check_points(exp: Experiment, config: RunConfig) -> None:
    check = exp.hook("check")
    if check is None:
        return
    for params in expand_points(config.grid, config.conditions):
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
        workers: processes (local) or tasks in flight (ray); ``workers=1`` runs in this
            process. Default for local: this process, handing the remaining cells to a pool of
            up to all usable CPUs once they are estimated to take more than
            :data:`~robustrl.runner.backends.POOL_MIN_SECONDS` (a pool's start costs more than
            it saves on a job of a few seconds); unlimited for ray. The peak memory of each
            pool worker is logged and kept in :attr:`RunReport.worker_memory_mb`.
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
    store = ResultStore(out)
    # before anything is created or written; a grown sweep runs the union's cells
    _manifest, run_cfg = store.check_compatible(run_cfg)
    cells = expand_cells(run_cfg)
    if dry_run:
        done = store.finished(cells, run_cfg.experiment)
        return RunReport(exp, run_cfg, out, cells, [done[c.key] for c in cells if c.key in done],
                         resumed=len(done), ran=0, dry_run=True)

    with store.lock():
        manifest, grown = store.check_compatible(run_cfg)
        if grown != run_cfg:  # the manifest changed under us (another run grew it)
            run_cfg, cells = grown, expand_cells(grown)
        if manifest is None:
            store.write_manifest(exp, run_cfg, len(cells))
        elif manifest["config_hash"] != run_cfg.hash:
            store.write_manifest(exp, run_cfg, len(cells), created=manifest.get("created"))
            _log(quiet, f"growing the sweep in {out}: config {manifest['config_hash']} -> "
                        f"{run_cfg.hash}")
        if manifest is not None and manifest.get("robustrl_version") != __version__:
            _log(quiet, f"warning: {out} was started with robustrl "
                        f"{manifest.get('robustrl_version')}; this is {__version__} (each cell "
                        "record stores the version that produced it)")
        _clean_temporaries(out, locked=True)
        done = store.finished(cells, run_cfg.experiment)
        pending = [c for c in cells if c.key not in done]
        # no --workers on the local backend: in this process, with a pool only once the
        # sweep is seen to be long enough to pay for one (backends._run_auto)
        auto = workers is None and backend == "local"
        n_workers = workers if workers is not None else (
            None if backend == "ray" else default_workers())
        if n_workers is not None:
            n_workers = max(1, min(n_workers, len(pending) or 1))
        head = (f"{exp.name}: {len(cells)} cells ({run_cfg.n_points} grid points x "
                f"{run_cfg.seeds} seeds)")
        if pending:
            how = (f" (in this process; a pool of up to {n_workers} worker(s) if the sweep "
                   "takes more than a few seconds)" if auto and n_workers > 1
                   else f" with {n_workers} worker(s)" if n_workers else "")
            _log(quiet, f"{head}, {len(done)} already finished in {out}; running "
                        f"{len(pending)} on {backend}{how}")
        else:
            _log(quiet, f"{head}, all finished in {out}; rewriting summary and figures")
        report = RunReport(exp, run_cfg, out, cells, [], resumed=len(done), ran=0)
        if pending:
            _run_pending(report, store, pending, done, backend, n_workers, ray_address, quiet,
                         fail_fast, auto=auto)
        report.records = [done[c.key] for c in cells if c.key in done]
        if report.complete:
            try:
                _write_outputs(report)
            except KeyboardInterrupt:
                raise RunInterrupted(len(done), len(cells), out, "writing the summary and "
                                     "figures") from None
            _clean_temporaries(out, locked=True)
        else:
            _log(quiet, f"{len(report.records)} of {len(cells)} cells finished; summary and "
                        "figures are written once every cell has finished")
    return report


def _run_pending(report: RunReport, store: ResultStore, pending: list[Cell],
                 done: dict[str, dict], backend: str, workers: int | None,
                 ray_address: str | None, quiet: bool, fail_fast: bool,
                 auto: bool = False) -> None:
    from tqdm import tqdm

    ref = report.experiment.ref
    if backend == "ray":
        outcomes = _run_ray(ref, pending, workers, ray_address, quiet)
    elif auto:
        outcomes = _run_auto(ref, pending, int(workers or 1), inner_progress=not quiet)
    elif workers == 1:
        outcomes = _run_in_process(ref, pending, inner_progress=not quiet)
    else:
        outcomes = _run_pool(ref, pending, int(workers or 1))
    bar = tqdm(total=len(pending), desc=report.experiment.name, unit="cell", disable=quiet,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for cell, outcome in outcomes:
            if outcome.get("pid", os.getpid()) != os.getpid():  # a pool worker
                memory = report.worker_memory_mb
                memory[outcome["pid"]] = max(memory.get(outcome["pid"], 0.0),
                                             outcome["max_rss_mb"])
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
        if report.worker_memory_mb:
            mbs = sorted(report.worker_memory_mb.values())
            _log(quiet, f"{len(mbs)} worker process(es), peak memory per worker "
                        f"{mbs[0]:.0f}-{mbs[-1]:.0f} MB")


def _write_outputs(report: RunReport, metric_figures: bool | None = None) -> None:
    from robustrl.runner.report import generic_figures, write_cells_csv, write_summary_csv

    exp, out, records = report.experiment, report.out, report.records
    keys = list(report.config.grid)
    report.outputs += [write_summary_csv(out / "summary.csv", records, keys),
                       write_cells_csv(out / "cells.csv", records, keys)]
    if exp.metric_figures if metric_figures is None else metric_figures:
        report.outputs += generic_figures(out / FIGURES_DIR, records, exp.name, exp.x_axis,
                                          keys)
    _run_hooks(report)


def _run_hooks(report: RunReport) -> None:
    import traceback

    for name in ("plot", "report"):
        hook = report.experiment.hook(name)
        if hook is None:
            continue
        try:
            if name == "plot":
                report.outputs += [Path(p) for p in (hook(report.records, report.out) or [])]
            else:
                report.report_text = hook(report.records)
        except Exception:
            report.hook_errors.append(f"{report.experiment.name}.{name} failed:\n"
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
    return RunConfig(cfg["experiment"], {k: cfg["grid"][k] for k in order}, cfg["seeds"],
                     cfg.get("conditions") or {})


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
                 experiment: str | os.PathLike | Experiment | None = None,
                 metric_figures: bool | None = None) -> RunReport:
    """Re-draw the summaries and figures of an output DIR from its stored records.

    ``metric_figures``: draw the generic ``figures/<metric>.png`` (None: as the experiment's
    ``METRIC_FIGURES`` declares, True without a registered experiment).

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
    _write_outputs(report, metric_figures)
    return report
