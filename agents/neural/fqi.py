"""NeuralFQI: the non-robust baseline, fitted Q-iteration with the same networks (issue 9)."""

from __future__ import annotations

from typing import ClassVar

from robustrl.agents.neural._offline import NeuralFittedQ


class NeuralFQI(NeuralFittedQ):
    """(Pessimistic) fitted Q-iteration: :class:`~robustrl.agents.neural.r2pvi.NeuralR2PVI`
    with the plain expectation ``E[V(s') | s, a]`` as target (no robust dual). ``beta > 0`` keeps
    the ensemble lower confidence bound (a PEVI-like baseline); ``beta=0`` is plain FQI.
    Arguments as NeuralR2PVI, without ``divergence`` and ``lam``.
    """

    _robust: ClassVar[bool] = False

    def __init__(self, env=None, **kwargs) -> None:
        for bad in ("divergence", "lam"):
            if bad in kwargs:
                raise ValueError(f"{bad} is not an argument of NeuralFQI (it is not robust)")
        super().__init__(env, divergence=None, lam=1.0, **kwargs)
