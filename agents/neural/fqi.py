"""NeuralFQI: the non-robust baseline, fitted Q-iteration with the same networks."""

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

    def __init__(
        self,
        env=None,
        *,
        input: str = "observation",
        horizon: int | None = None,
        gamma: float = 0.99,
        ensemble_size: int = 5,
        beta: float = 1.0,
        hidden=(256, 256),
        n_iterations: int = 50,
        gradient_steps: int = 500,
        batch_size: int = 256,
        lr: float = 1e-3,
        v_min: str | float = "data",
        n_alpha: int = 32,
        reward_range=None,
        bootstrap: bool = False,
        device="auto",
        seed: int | None = None,
    ) -> None:
        super().__init__(
            env, divergence=None, lam=1.0, input=input, horizon=horizon, gamma=gamma,
            ensemble_size=ensemble_size, beta=beta, hidden=hidden, n_iterations=n_iterations,
            gradient_steps=gradient_steps, batch_size=batch_size, lr=lr, v_min=v_min,
            n_alpha=n_alpha, reward_range=reward_range, bootstrap=bootstrap, device=device,
            seed=seed)
