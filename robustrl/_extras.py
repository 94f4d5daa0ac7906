"""Optional extras: which are missing, and the one message that names them."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping


def missing_extras(requires: Mapping[str, str]) -> dict[str, list[str]]:
    """``{extra: [missing modules]}`` for the modules of ``requires`` (module -> extra) that
    :func:`importlib.util.find_spec` cannot find."""
    missing: dict[str, list[str]] = {}
    for module, extra in requires.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.setdefault(extra, []).append(module)
    return missing


def extras_message(what: str, missing: Mapping[str, list[str]]) -> str:
    """One line naming the extras ``what`` needs and how to install them."""
    extras = sorted(missing)
    modules = sorted(m for mods in missing.values() for m in mods)
    names = " and ".join(f"the {e} extra" for e in extras)
    spec = ",".join(extras)
    return (f"{what} needs {names} (missing: {', '.join(modules)}): "
            f'pip install "robustrl[{spec}]"')
