"""The ``robustrl verify-bounds`` registry (the CLI layer).

The built-in checks live in ``robustrl._cli.verify_*`` modules, each a command line around the
pure functions of a :mod:`robustrl.theory` module; :func:`load_bound_checks` registers them.
Other packages add a check with :func:`register_bound_check`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BoundCheck:
    """A ``robustrl verify-bounds NAME ARGS...`` checker: ``func(argv) -> exit code``."""

    name: str
    func: Callable[[list[str]], int | None]
    description: str


#: name -> (module, function, description) of the built-in checks
BUILTIN_CHECKS: dict[str, tuple[str, str, str]] = {
    "drrpo": ("robustrl._cli.verify_drrpo", "verify_main",
              "DR-RPO regret vs the reconstructed bound and the log-log slope test (--quick "
              "for a small run)"),
    "glow": ("robustrl._cli.verify_glow", "verify_main",
             "GLOW regret on combination locks vs Theorem 3.1 (explicit derived constants), "
             "its order form and the log-log slope (--broken must fail)"),
    "hyglow": ("robustrl._cli.verify_glow", "verify_hyglow_main",
               "HyGLOW regret on combination locks (pi* data, progressive) vs Corollary 4.1's "
               "order form and the log-log slope"),
    "r2pvi": ("robustrl._cli.verify_r2pvi", "verify_bounds_main",
              "R2PVI exact suboptimality vs K on the simulated MDP against the "
              "instance-dependent bound"),
}

_BOUND_CHECKS: dict[str, BoundCheck] = {}


def register_bound_check(name: str, func: Callable[[list[str]], int | None] | None = None, *,
                         description: str | None = None):
    """Register ``func(argv: list[str]) -> int | None`` as ``robustrl verify-bounds NAME``.

    ``argv`` is everything after NAME on the command line; the return value is the exit
    status (``None`` means 0). Use as a call or as a decorator::

        @register_bound_check("r2pvi", description="R2PVI suboptimality vs Theorem 5.1")
        def main(argv): ...

    Registering the same name again with a different function raises ValueError.
    """
    def decorate(f: Callable[[list[str]], int | None]):
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"name must be a non-empty string without spaces; got {name!r}")
        if not callable(f):
            raise ValueError(f"func must be callable argv -> exit code; got {f!r}")
        old = _BOUND_CHECKS.get(name)
        if old is not None and (getattr(old.func, "__module__", None),
                                getattr(old.func, "__qualname__", None)) != (
                getattr(f, "__module__", None), getattr(f, "__qualname__", None)):
            raise ValueError(f"bound check {name!r} is already registered by "
                             f"{old.func.__module__}.{old.func.__qualname__}")
        doc = (f.__doc__ or "").strip().splitlines()
        _BOUND_CHECKS[name] = BoundCheck(name, f, description or (doc[0] if doc else ""))
        return f

    return decorate if func is None else decorate(func)


def bound_checks() -> dict[str, BoundCheck]:
    """The registered bound checks by name (a copy)."""
    return dict(_BOUND_CHECKS)


def load_bound_checks() -> dict[str, str]:
    """Register the built-in checks (:data:`BUILTIN_CHECKS`); returns ``{module: error}`` for
    the modules that failed to import."""
    errors: dict[str, str] = {}
    for name, (module, func, description) in sorted(BUILTIN_CHECKS.items()):
        try:
            f = getattr(importlib.import_module(module), func)
        except Exception as exc:
            errors[module] = f"{type(exc).__name__}: {exc}"
            continue
        register_bound_check(name, f, description=description)
    return errors
