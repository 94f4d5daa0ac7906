"""NeuralR2PVI: R2PVI with networks in place of ridge regression.

See :mod:`robustrl.agents.neural._offline` for the term-by-term mapping and
docs/algorithms/neural.md for usage and limits.
"""

from __future__ import annotations

from typing import ClassVar

from robustrl.agents.neural._offline import NeuralFittedQ


class NeuralR2PVI(NeuralFittedQ):
    """Neural robust regularised pessimistic (fitted) value iteration.

    Args:
        env: optional environment; needed only to turn observations into features
            (``input="features"``) at prediction time and to check the feature dimension.
        divergence: ``"tv"``, ``"kl"`` or ``"chi2"`` (the d-rectangular regulariser).
        lam: regulariser lambda > 0 (smaller is more robust).
        input: ``"observation"`` (network on observations, one output per action) or
            ``"features"`` (network on ``phi(s, a)``, scalar output).
        horizon: ``H`` for finite-horizon backward iteration (one ensemble per step), or None
            for discounted fitted Q-iteration with ``gamma``.
        gamma: discount in ``[0, 1)`` (ignored with a finite horizon).
        ensemble_size: number of networks ``E`` in the ensemble.
        beta: pessimism >= 0: ``Q = mean - beta std`` over the ensemble.
        hidden: hidden layer widths.
        n_iterations: fitted-Q rounds (discounted only).
        gradient_steps: Adam steps per step ``h`` (finite) or per round (discounted).
        batch_size, lr: minibatch size and Adam learning rate.
        v_min: TV only: ``"data"`` or the minimum value over all states.
        n_alpha: chi2 only: size of the alpha grid.
        reward_range: ``(r_min, r_max)`` for the truncation bounds; default from the data.
        bootstrap: train each member on its own Poisson(1) bootstrap weights of the data
            (more diverse members, so a larger ``std`` where data are scarce).
        device: ``"auto"`` (cuda if available), ``"cpu"`` or ``"cuda"``.
        seed: seeds the initialisation and the minibatch order (same seed, same numbers on CPU).
    """

    _robust: ClassVar[bool] = True
