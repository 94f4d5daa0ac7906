"""Turn the policy forms users pass around into one ``obs -> action`` function.

Accepted forms:
* an object with an SB3-style ``predict(obs, deterministic=True) -> (action, state)``;
* a callable ``obs -> action``;
* for environments whose observation is ``(state, step)``: a deterministic table ``(H, S)`` of
  action indices, or a stochastic table ``(H, S, A)`` of probabilities (sampled with ``rng``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ActionFn = Callable[[np.ndarray], int]


def as_action_fn(
    policy, rng: np.random.Generator | None = None, *, name: str = "policy"
) -> ActionFn:
    if hasattr(policy, "predict") and callable(policy.predict):

        def act(obs):
            action, _ = policy.predict(obs, deterministic=True)
            return int(np.asarray(action).reshape(-1)[0])

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
        return lambda obs: int(policy(obs))
    raise ValueError(
        f"{name} must have a predict(obs) method, be a callable obs -> action, or be an "
        f"(H, S) / (H, S, A) policy table; got {type(policy).__name__}"
    )
