"""The combination lock: a layered MDP that uniform exploration solves only in ``A^H`` episodes.

Layout (``S = n_states >= 2`` layer-independent indices, see :mod:`robustrl.envs.layered_mdp`):

* index ``0`` is the **good** state of every layer; every episode starts there at step 0;
* indices ``1 .. S-1`` are **dead** states: absorbing in the sense that no action ever leads
  back to the good state, and they pay nothing.

A secret **code** ``c_0 .. c_{H-1}`` (``rng.integers(A, size=H)`` with
``rng = numpy.random.default_rng(seed)``) opens the lock. Transitions at step ``h``
(deterministic when ``perturbation`` is ``None`` or 0), writing ``o = (a - c_h) mod A``:

* good state, ``a = c_h`` (``o = 0``): to the good state;
* good state, ``a != c_h``: to dead state ``1 + (o - 1) mod (S - 1)``;
* dead state ``d``, any ``a``: to dead state ``1 + (d - 1 + a) mod (S - 1)``.

Reward: 1 for playing ``c_{H-1}`` in the good state at the last step, 0 everywhere else. So
the code policy has value 1, every other deterministic policy value 0, and the uniformly random
policy value ``A^{-H}``.

**Perturbation** ``q in [0, 1]``: the correct action fails with probability ``q`` at every step
before the last -- it then leads to dead state 1 as a wrong action would. The best value is
``(1 - q)^{H-1}`` (the last step's reward is paid before any transition).

**Coverability coefficient** (nominal lock). With deterministic transitions and start,
``max_pi d_h^pi(s, a)`` is 1 if ``s`` is reachable at step ``h`` (take ``a`` there) and 0
otherwise, so by the identity of :func:`robustrl.theory.coverability.coverability_coefficient`
``C_cov = A * max_h r_h`` with ``r_h`` the number of states reachable at step ``h``. Layer 0
holds the good state only (``r_0 = 1``). The dead states reachable at step ``h >= 1`` are
``1 .. min(h (A - 1), S - 1)``: the wrong actions of the good state add offsets
``0 .. A - 2`` and every dead step adds ``0 .. A - 1`` to the offset (mod ``S - 1``), so the
reachable offsets grow from ``0 .. A - 2`` by ``A - 1`` per step until they cover all ``S - 1``.
With the good state, ``r_h = 1 + min(h (A - 1), S - 1)`` and, as ``r_h`` grows with ``h``,

    ``C_cov = A * (1 + min((H - 1)(A - 1), S - 1))``  (at most ``S * A``, the tabular bound on
    coverability)

(:func:`combination_lock_coverability`; tested against the exact DP and the linear program).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from robustrl.envs.layered_mdp import FiniteMDPEnv, _check_model_seed, _check_perturbation
from robustrl.models import FiniteMDP
from robustrl.validation import check_int

__all__ = ["CombinationLockEnv", "combination_lock", "combination_lock_code",
           "combination_lock_code_index", "combination_lock_coverability",
           "combination_lock_value_class"]

#: largest number of codes ``A^H`` that :func:`combination_lock_value_class` enumerates.
MAX_CODES = 2**20


def _check_lock_sizes(horizon, n_states, n_actions) -> tuple[int, int, int]:
    horizon = check_int(horizon, "horizon", low=1)
    n_states = check_int(n_states, "n_states", low=2)
    n_actions = check_int(n_actions, "n_actions", low=2)
    return horizon, n_states, n_actions


def combination_lock_code(horizon: int, n_actions: int, seed: int = 0) -> np.ndarray:
    """The secret code ``c_0 .. c_{H-1}`` of the lock built from ``seed``, shape ``(H,)``."""
    horizon = check_int(horizon, "horizon", low=1)
    n_actions = check_int(n_actions, "n_actions", low=2)
    seed = _check_model_seed(seed)
    return np.random.default_rng(seed).integers(n_actions, size=horizon)


def combination_lock(
    horizon: int = 5,
    n_states: int = 3,
    n_actions: int = 2,
    seed: int = 0,
    perturbation: float | None = None,
) -> FiniteMDP:
    """The exact model of the combination lock of the module docstring."""
    H, S, A = _check_lock_sizes(horizon, n_states, n_actions)
    q = _check_perturbation(perturbation)
    code = combination_lock_code(H, A, seed)
    n_dead = S - 1
    P = np.zeros((H, S, A, S))
    for h in range(H):
        for a in range(A):
            offset = (a - code[h]) % A
            if offset == 0:
                P[h, 0, a, 0] = 1.0
            else:
                P[h, 0, a, 1 + (offset - 1) % n_dead] = 1.0
            for d in range(1, S):
                P[h, d, a, 1 + (d - 1 + a) % n_dead] = 1.0
        if q is not None and q > 0.0 and h < H - 1:
            P[h, 0, code[h], 0] = 1.0 - q
            P[h, 0, code[h], 1] += q
    R = np.zeros((H, S, A))
    R[H - 1, 0, code[H - 1]] = 1.0
    initial = np.zeros(S)
    initial[0] = 1.0
    return FiniteMDP(P, R, initial)


def combination_lock_coverability(horizon: int, n_states: int, n_actions: int) -> int:
    """``C_cov = A * (1 + min((H - 1)(A - 1), S - 1))`` of the nominal lock (module docstring)."""
    H, S, A = _check_lock_sizes(horizon, n_states, n_actions)
    return A * (1 + min((H - 1) * (A - 1), S - 1))


def combination_lock_value_class(
    horizon: int, n_states: int, n_actions: int, perturbation: float | None = None
) -> np.ndarray:
    """``Q*`` of the lock with every possible code: the finite class used by GLOW's tests
    (docs/algorithms/glow.md).

    Shape ``(A^H, H, S, A)``; entry ``i`` is the optimal Q of the lock whose code is the
    ``i``-th of ``itertools.product(range(A), repeat=H)`` (lexicographic, so
    :func:`combination_lock_code_index` gives the true code's row). ``Q_h(good, c_h) =
    (1 - q)^{H-1-h}`` and every other entry is 0 (dead states pay nothing, a wrong action
    kills the episode). Raises ValueError if ``A^H`` exceeds ``MAX_CODES``.
    """
    H, S, A = _check_lock_sizes(horizon, n_states, n_actions)
    q = _check_perturbation(perturbation)
    if A**H > MAX_CODES:
        raise ValueError(f"n_actions ** horizon must be at most {MAX_CODES}; got {A}**{H}")
    q = 0.0 if q is None else q
    codes = np.indices((A,) * H).reshape(H, -1).T  # (A^H, H), lexicographic order
    F = np.zeros((A**H, H, S, A))
    steps = np.arange(H)
    good_value = (1.0 - q) ** (H - 1 - steps)
    for h in range(H):
        F[np.arange(A**H), h, 0, codes[:, h]] = good_value[h]
    return F


def combination_lock_code_index(code, n_actions: int) -> int:
    """Row of ``code`` in :func:`combination_lock_value_class` (base-``A`` number)."""
    n_actions = check_int(n_actions, "n_actions", low=2)
    code = np.asarray(code)
    if code.ndim != 1 or code.size == 0 or not np.issubdtype(code.dtype, np.integer) or (
        code.min() < 0 or code.max() >= n_actions
    ):
        raise ValueError(f"code must be a 1-D integer array with entries in [0, {n_actions - 1}]"
                         f"; got {code!r}")
    index = 0
    for c in code:
        index = index * n_actions + int(c)
    return index


class CombinationLockEnv(FiniteMDPEnv):
    """The combination lock of the module docstring as a Gymnasium environment.

    Observation ``(state, step)`` in ``MultiDiscrete([n_states, H + 1])`` (state 0 = good);
    action in ``[0, n_actions)``; reward 1 only for the right code's last action;
    ``terminated=True`` after ``H`` steps. ``model`` is the exact :class:`FiniteMDP` that
    :meth:`step` samples from, ``code`` the secret code, ``optimal_value`` the best value
    ``(1 - q)^{H-1}`` and ``coverability`` the nominal ``C_cov``. One-hot features of
    dimension ``S * A`` come from :class:`~robustrl.envs.layered_mdp.FiniteMDPEnv`.

    Args:
        horizon: ``H >= 1`` (default 5).
        n_states: states per layer, ``>= 2`` (one good, the rest dead; default 3).
        n_actions: ``>= 2`` (default 2).
        seed: the code's seed (not the sampling seed, which ``reset`` takes).
        perturbation: ``None`` (nominal) or ``q in [0, 1]``, the failure probability of the
            correct action.
        render_mode: ``None`` or ``"ansi"``.
    """

    nominal_perturbation: ClassVar[float | None] = None
    perturbation_grid: ClassVar[np.ndarray] = np.round(np.linspace(0.0, 0.5, 11), 10)

    def __init__(
        self,
        horizon: int = 5,
        n_states: int = 3,
        n_actions: int = 2,
        seed: int = 0,
        perturbation: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.perturbation = _check_perturbation(perturbation)
        self.mdp_seed = _check_model_seed(seed)
        model = combination_lock(horizon, n_states, n_actions, seed, self.perturbation)
        names = ["good"] + [f"dead{i}" for i in range(1, model.n_states)]
        super().__init__(model, render_mode=render_mode, state_names=names)
        self.code = combination_lock_code(horizon, n_actions, seed)
        self.coverability = combination_lock_coverability(horizon, n_states, n_actions)

    @property
    def optimal_value(self) -> float:
        """Value of the code policy, ``(1 - q)^{H-1}`` (1 for the nominal lock)."""
        q = 0.0 if self.perturbation is None else float(self.perturbation)
        return (1.0 - q) ** (self.horizon - 1)

    def _model_for(self, perturbation: Any) -> FiniteMDP:
        return combination_lock(self.horizon, self.n_states, self.n_actions, self.mdp_seed,
                                _check_perturbation(perturbation))
