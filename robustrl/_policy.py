"""Turn the policy forms users pass around into one ``obs -> action`` function.

Accepted forms:
* an object with an SB3-style ``predict(obs, deterministic=True) -> (action, state)``
  (robustrl agents and stable-baselines3 models alike; one observation in, one action out);
* a callable ``obs -> action``;
* for environments whose observation is ``(state, step)``: a deterministic table ``(H, S)`` of
  action indices, or a stochastic table ``(H, S, A)`` of probabilities (sampled with ``rng``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ActionFn = Callable[[np.ndarray], int | np.ndarray]


def _to_action(action) -> int | np.ndarray:
    """A discrete action as ``int``; a floating-point *array* (a continuous action such as an
    SB3 model's on Pendulum) is kept as a float array, since ``int()`` would silently truncate
    the torque. Python/NumPy float scalars stay discrete indices, as before."""
    if isinstance(action, np.ndarray) and action.ndim >= 1 and np.issubdtype(
        action.dtype, np.floating
    ):
        return action.copy()
    return int(np.asarray(action).reshape(-1)[0])


def as_action_fn(
    policy, rng: np.random.Generator | None = None, *, name: str = "policy"
) -> ActionFn:
    if hasattr(policy, "predict") and callable(policy.predict):

        def act(obs):
            action, _ = policy.predict(obs, deterministic=True)
            return _to_action(action)

        return act
    if isinstance(policy, np.ndarray):
        if policy.ndim == 2 and np.issubdtype(policy.dtype, np.integer):
            table = policy
            return lambda obs: int(table[int(obs[1]), int(obs[0])])
        if policy.ndim == 3:
            if rng is None:
                raise ValueError(f"{name}: a stochastic (H, S, A) table needs a random generator")
            probs = policy
            return lambda obs: int(rng.choice(probs.shape[2], p=probs[int(obs[1]), int(obs[0])]))
        raise ValueError(
            f"{name} as an array must be an (H, S) integer table or an (H, S, A) probability "
            f"table; got dtype {policy.dtype} and shape {policy.shape}"
        )
    if callable(policy):
        return lambda obs: _to_action(policy(obs))
    raise ValueError(
        f"{name} must have a predict(obs) method, be a callable obs -> action, or be an "
        f"(H, S) / (H, S, A) policy table; got {type(policy).__name__}"
    )
