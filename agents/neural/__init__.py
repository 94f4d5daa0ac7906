"""PyTorch agents: NeuralR2PVI, NeuralFQI and NeuralDRRPO.

torch is imported only inside this subpackage, and only when one of its names is used, so
``import robustrl.agents`` keeps working without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "NeuralR2PVI": "robustrl.agents.neural.r2pvi",
    "NeuralFQI": "robustrl.agents.neural.fqi",
    "NeuralDRRPO": "robustrl.agents.neural.drrpo",
    "EnsembleMLP": "robustrl.agents.neural._torch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
