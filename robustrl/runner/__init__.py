"""Experiment runner (a package: :mod:`~robustrl.runner.store`, :mod:`~robustrl.runner.config`,
:mod:`~robustrl.runner.backends`, :mod:`~robustrl.runner.loop`, :mod:`~robustrl.runner.report`,
:mod:`~robustrl.runner.worker`): parameter grid x seeds -> resumable cells, run locally or on
Ray, summarised.

An *experiment* is a module -- one of the ``robustrl.experiments`` package (``experiments/`` in
the repository), any ``.py`` file given by path, or a file in a folder listed in the environment
variable ``ROBUSTRL_EXPERIMENTS_PATH`` -- that declares::

    NAME = "toy_sweep"                      # optional; defaults to the module name
    DESCRIPTION = "one line for `robustrl list`"   # optional; defaults to the docstring
    GRID = {"perturbation": [0.0, 0.5, 1.0], "episodes": [50]}   # dict of lists of scalars
    SEEDS = 3                               # seed indices per grid point (optional; 1)

    def run_one(params: dict, seed: int) -> dict: ...   # JSON-able metrics of one cell

and optionally ``CONDITIONS`` (below), ``X_AXIS`` (the parameter on the x-axis of the generic
figures), ``METRIC_FIGURES = False`` (no generic per-metric figures after a run, for an
experiment whose own ``plot`` and ``report`` replace them; ``robustrl plot DIR
--metric-figures`` still draws them), a ``check(params)`` hook that raises ``ValueError`` on a
bad grid point (called for every point before anything runs), ``plot(results, out_dir)`` for
experiment-specific figures and ``report(results) -> str`` for a table printed at the end;
``results`` is the list of stored records in grid order.

*Conditional grids*: ``CONDITIONS = {"lam": {"method": ["tv", "kl"]}}`` sweeps ``lam`` only at
grid points whose ``method`` is one of the listed values; at the others ``lam`` is ``None`` in the
cell's params and those points are kept once, so a parameter that applies to some methods
creates no redundant cells (see :func:`~robustrl.runner.store.expand_points`). Cells whose
condition holds keep the params -- hence the keys and seeds -- they have without it.

A *cell* is one grid point and one seed index. Its key is a stable hash of (experiment, params,
seed index) and its seed comes from ``numpy.random.SeedSequence`` over (a stable hash of
experiment and params, seed index), so a cell's numbers do not depend on the order, the worker
or the backend that runs it. Each finished cell is written atomically to
``DIR/cells/<key>.json`` by the driver; a rerun skips finished cells. ``DIR/manifest.json``
records the experiment and the resolved config (grid, seed count, conditions). A run that adds
seeds or values of a parameter to DIR *grows* the sweep: the manifest is rewritten (config and
hash in one atomic write) with the union -- the larger seed count, each parameter's recorded
values followed by the new ones -- and only the new cells run. Any other change (another
experiment, parameter set or conditions, or a new value for a *fixed* parameter, one recorded
with a single value, that drops that value) stops before writing anything, and so does a
manifest whose config no longer matches its recorded hash. A stored cell record is checked
against its cell (key, params, seed, seed index, metric types, checksum); a malformed one is
reported with a :class:`CellRecordWarning` naming the file, and its cell runs again. ``plot``
never imports the module a manifest names (see :func:`plot_results`). When every cell is done
the runner writes ``summary.csv`` (mean, std and Student-t 95% CI half-width over seeds per grid
point), ``cells.csv``, ``figures/<metric>.png`` (unless the experiment sets
``METRIC_FIGURES = False``) and whatever the experiment's ``plot`` hook draws.

Command line: ``robustrl list | run | plot | verify-bounds`` (see :mod:`robustrl.cli`).
Python::

    from robustrl.runner import run_experiment, load_results
    report = run_experiment("toy_sweep", "results/toy", sets=["perturbation=[0, 1]"], seeds=2)
    manifest, records = load_results("results/toy")
"""

from __future__ import annotations

# Names load on first use (PEP 562), so that a pool worker importing robustrl.runner.worker does
# not pay for the whole package.
_LAZY = {name: module for module, names in {
    "backends": ("default_workers", "progress"),
    "config": ("Experiment", "RunConfig", "discover_experiments", "load_config_file",
               "load_experiment", "parse_set", "resolve_config"),
    "loop": ("Failure", "RunInterrupted", "RunReport", "load_results", "plot_results",
             "run_experiment"),
    "store": ("BACKENDS", "CELLS_DIR", "CONFIG_KEYS", "Cell", "CellRecordWarning", "ERRORS_DIR",
              "EXPERIMENTS_PACKAGE", "FIGURES_DIR", "MANIFEST", "PATH_ENV", "ResultStore",
              "RunnerError", "_sha256", "cell_key", "cell_seed", "expand_cells", "expand_points",
              "grow_config", "record_problem"),
}.items() for name in names}

__all__ = [
    "BACKENDS",
    "Cell",
    "cell_key",
    "cell_seed",
    "CellRecordWarning",
    "CELLS_DIR",
    "CONFIG_KEYS",
    "default_workers",
    "discover_experiments",
    "ERRORS_DIR",
    "expand_cells",
    "expand_points",
    "Experiment",
    "EXPERIMENTS_PACKAGE",
    "Failure",
    "FIGURES_DIR",
    "grow_config",
    "load_config_file",
    "load_experiment",
    "load_results",
    "MANIFEST",
    "parse_set",
    "PATH_ENV",
    "plot_results",
    "progress",
    "record_problem",
    "resolve_config",
    "ResultStore",
    "run_experiment",
    "RunConfig",
    "RunInterrupted",
    "RunnerError",
    "RunReport",
]

_MOVED_TO_CLI = ("BoundCheck", "register_bound_check", "bound_checks", "load_bound_checks")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    # the verify-bounds registry lives in the CLI layer (robustrl._cli.bounds)
    if name in _MOVED_TO_CLI:
        import warnings

        warnings.warn(f"robustrl.runner.{name} moved to robustrl._cli.bounds", DeprecationWarning,
                      stacklevel=2)
        from robustrl._cli import bounds

        return getattr(bounds, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
