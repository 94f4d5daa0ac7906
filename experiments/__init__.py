"""Experiments run by ``robustrl run NAME`` (installed as ``robustrl.experiments``).

Each public module here is one experiment: it declares ``NAME``, ``DESCRIPTION``, a parameter
``GRID`` (dict of lists of scalars), ``SEEDS`` and ``run_one(params, seed) -> dict`` of
JSON-able metrics, optionally ``X_AXIS``, ``check(params)``, ``plot(results, out_dir)`` and
``report(results) -> str``. See :mod:`robustrl.runner` for the full contract;
``robustrl list`` shows what is here.
"""
