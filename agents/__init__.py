"""Agents: offline, online and hybrid robust RL algorithms, one file each.

Offline (fit on an :class:`~robustrl.data.OfflineDataset`): :class:`R2PVI` and its baselines
:class:`PEVI`, :class:`DRPVI`, :class:`DRVI_L`. Online (``learn`` in an environment, exact regret
when the environment exposes its model): :class:`DRRPO` and its baselines :class:`DRLSVIUCB`,
:class:`LSVIUCB` and the non-robust policy optimiser :class:`OPPO`. Density-ratio online and
hybrid RL: :class:`GLOW` and :class:`HyGLOW` on finite
value and weight classes (or the full tabular weight class), and :class:`GLOWLin`, an
approximation of GLOW on linear value and weight classes; their squared-loss comparators on the
same finite value classes: :class:`GOLF` (online, optimistic), :class:`HyQ` and :class:`H2OFQI`
(hybrid, fitted Q-iteration). PyTorch variants on the same
interfaces: :class:`NeuralR2PVI`, :class:`NeuralFQI` and :class:`NeuralDRRPO`
(:mod:`robustrl.agents.neural`); DRED and its baselines: :class:`LevelReplayPPO`
(:mod:`robustrl.agents.dred`). Every name is imported on first use, so torch, stable-baselines3
and minigrid are needed only by whoever uses them, and a job pays only for the agents it uses.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as static tools (type checkers, the API docs) see them
    from robustrl.agents._online import RegretCurve, run_regret_curve
    from robustrl.agents.base import LinearAgent, NotFittedError
    from robustrl.agents.dred import LevelReplayPPO
    from robustrl.agents.drpvi import DRPVI
    from robustrl.agents.drrpo import DRRPO
    from robustrl.agents.drvi_l import DRVI_L
    from robustrl.agents.glow import GLOW
    from robustrl.agents.glow_lin import GLOWLin
    from robustrl.agents.golf import GOLF
    from robustrl.agents.h2o import H2OFQI
    from robustrl.agents.hyglow import HyGLOW
    from robustrl.agents.hyq import HyQ
    from robustrl.agents.lsvi_ucb import DRLSVIUCB, LSVIUCB
    from robustrl.agents.neural import NeuralDRRPO, NeuralFQI, NeuralR2PVI
    from robustrl.agents.oppo import OPPO
    from robustrl.agents.pevi import PEVI
    from robustrl.agents.r2pvi import R2PVI

    OFFLINE_AGENTS: dict[str, type]
    ONLINE_AGENTS: dict[str, type]


# Every name loads on first use (PEP 562): a job that fits PEVI and R2PVI does not pay for the
# online agents, GLOW's SciPy optimisers or DR-RPO. name -> module under robustrl.agents
_MODULE_OF = {
    "RegretCurve": "_online", "run_regret_curve": "_online", "LinearAgent": "base",
    "NotFittedError": "base", "DRPVI": "drpvi", "DRRPO": "drrpo", "DRVI_L": "drvi_l",
    "GLOW": "glow", "GLOWLin": "glow_lin", "HyGLOW": "hyglow", "DRLSVIUCB": "lsvi_ucb",
    "LSVIUCB": "lsvi_ucb", "PEVI": "pevi", "R2PVI": "r2pvi", "GOLF": "golf",
    "H2OFQI": "h2o", "HyQ": "hyq", "OPPO": "oppo",
}
# registry name -> class name
_REGISTRIES = {
    "OFFLINE_AGENTS": ("R2PVI", "PEVI", "DRPVI", "DRVI_L"),
    "ONLINE_AGENTS": ("DRRPO", "DRLSVIUCB", "LSVIUCB", "OPPO"),
}

_NEURAL = {"torch": "neural", "stable_baselines3": "neural"}
# name -> (module, third-party modules it needs -> the extra that installs them)
_LAZY = {
    "NeuralR2PVI": ("robustrl.agents.neural", _NEURAL),
    "NeuralFQI": ("robustrl.agents.neural", _NEURAL),
    "NeuralDRRPO": ("robustrl.agents.neural", _NEURAL),
    "LevelReplayPPO": ("robustrl.agents.dred", {**_NEURAL, "minigrid": "dred"}),
}


def __getattr__(name: str):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    if name in _REGISTRIES:
        value = {cls: __getattr__(cls) for cls in _REGISTRIES[name]}
        globals()[name] = value
        return value
    if name in _LAZY:
        from robustrl._extras import extras_message, missing_extras

        module, requires = _LAZY[name]
        missing = missing_extras(requires)
        if missing:
            raise ImportError(extras_message(name, missing), name=name)
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LevelReplayPPO",
    "NeuralDRRPO",
    "NeuralFQI",
    "NeuralR2PVI",
    "DRLSVIUCB",
    "DRPVI",
    "DRRPO",
    "DRVI_L",
    "GLOW",
    "GLOWLin",
    "GOLF",
    "H2OFQI",
    "HyGLOW",
    "HyQ",
    "LSVIUCB",
    "OFFLINE_AGENTS",
    "ONLINE_AGENTS",
    "OPPO",
    "PEVI",
    "R2PVI",
    "LinearAgent",
    "NotFittedError",
    "RegretCurve",
    "run_regret_curve",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
