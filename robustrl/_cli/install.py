"""Install-time helpers for the command line: packaged configs and optional extras."""

from __future__ import annotations

import importlib
import importlib.util
from importlib import resources
from pathlib import Path

from robustrl._extras import extras_message, missing_extras

__all__ = [
    "experiment_requirements",
    "extras_message",
    "missing_extras",
    "packaged_configs",
    "resolve_config_path",
]

CONFIG_PACKAGE = "robustrl.experiments"


def packaged_configs() -> list[str]:
    """The names (without ``.yaml``) of the run configs shipped in ``robustrl.experiments``."""
    folder = resources.files(CONFIG_PACKAGE) / "configs"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(config: str) -> str:
    """Map ``--config`` to a file: an existing path wins; else a bare name (``demo_fig1`` or
    ``demo_fig1.yaml``) is looked up among the packaged configs; else ``config`` unchanged
    (the runner then reports the unreadable file)."""
    if Path(config).exists():
        return config
    name = config[: -len(".yaml")] if config.endswith(".yaml") else config
    if "/" in name or "\\" in name or not name:
        return config
    candidate = resources.files(CONFIG_PACKAGE) / "configs" / f"{name}.yaml"
    if candidate.is_file():
        return str(candidate)
    return config


def experiment_requirements(experiment: str) -> dict[str, str]:
    """``REQUIRES`` (module -> extra) declared by the packaged experiment ``experiment``; an
    empty mapping for a ``.py`` file or an unknown name (the runner reports those)."""
    if not experiment.isidentifier():
        return {}
    name = f"{CONFIG_PACKAGE}.{experiment}"
    try:
        if importlib.util.find_spec(name) is None:
            return {}
        module = importlib.import_module(name)
    except ImportError:
        return {}
    return dict(getattr(module, "REQUIRES", {}) or {})
