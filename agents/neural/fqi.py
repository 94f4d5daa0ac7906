"""NeuralFQI: the non-robust baseline, fitted Q-iteration with the same networks."""

from __future__ import annotations

import inspect
from typing import ClassVar

from robustrl.agents.neural._offline import NeuralFittedQ


class NeuralFQI(NeuralFittedQ):
    """(Pessimistic) fitted Q-iteration: :class:`~robustrl.agents.neural.r2pvi.NeuralR2PVI`
    with the plain expectation ``E[V(s') | s, a]`` as target (no robust dual). ``beta > 0`` keeps
    the ensemble lower confidence bound (a PEVI-like baseline); ``beta=0`` is plain FQI.
    Arguments as NeuralR2PVI, without ``divergence`` and ``lam``.
    """

    _robust: ClassVar[bool] = False

    def __init__(self, env=None, **hyperparams) -> None:
        super().__init__(env, divergence=None, lam=1.0, **hyperparams)

    # NeuralR2PVI's keywords less divergence and lam, shown and checked as explicit keywords
    __init__.__signature__ = inspect.signature(NeuralFittedQ.__init__).replace(parameters=[
        q for n, q in inspect.signature(NeuralFittedQ.__init__).parameters.items()
        if n not in ("divergence", "lam")])
