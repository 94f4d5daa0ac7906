"""GLOW on finite (enumerated) value and weight classes: the faithful reference instantiation.

arXiv:2401.09681 (Algorithm 1, confidence set Eq. (3)-(4)); docs/algorithms/glow.md, finite classes;
checked against Algorithm 1 of the paper (Amortila, Foster, Jiang, Sekhari, Xie, ICLR 2024,
arXiv:2401.09681), whose full text was read: the confidence set (its Eq. (4): per
step, ``sup_w E_hat[Delta f clip_gamma[w] - alpha clip_gamma[w]^2] <= beta``, the ``- alpha c^2``
penalty included), global optimism over the empirical initial states, ``K`` trajectories per
round pooled into every later round, and the uniform-mixture output all follow the paper.
Per round ``t = 1..T`` (``n_t = (t-1) K`` tuples per step):

1. confidence set ``F_t = {f : max_w L_h(f, w) <= beta_t for every step h}`` with the truncated,
   penalised objective of :mod:`robustrl._kernels.glow` on ALL tuples of rounds ``1..t-1``
   (``F_1 = F``); one constraint per step (the paper's Eq. (4));
2. global optimism: ``f_t = argmax_{f in F_t} E_{s_1 ~ d_1}[max_a f_0(s_1, a)]`` over the whole set
   (ties to the lowest index; ``d_1`` exact when the model is known, else the empirical
   distribution of the initial states seen so far, including the current round's first reset,
   which is what the paper uses);
3. ``K`` episodes of the greedy policy ``pi_{f_t}`` (ties to the lowest action); every step's
   tuple is pooled, never dropped or reweighted.

``constants="paper"`` uses Algorithm 1's schedule exactly: ``gamma_t = gamma t``,
``alpha_t = 8 / gamma_t``, ``beta_t = 36 gamma_t log(6 |F||W| T H / delta) / (K (t - 1))`` with
Theorem 3.1's ``gamma = sqrt(C_cov / (T log(|F||W|/delta)))``. Its worst-case radius excludes
nothing on small problems (measured: no lock code excluded up to ``T = 4000``, H = 4), so the
default ``constants="recon"`` keeps the reconstructed schedules below: the same shapes
(``beta ~ L / (alpha n_t)``, ``alpha ~ 1 / t``, ``gamma ~ t``) with tunable constants
(the paper's correspond to ``kappa = 288``).

Schedules [RECON, docs/algorithms/glow.md, Hyperparameters], with
``L = log(H |F| |W| T / delta)``:

* ``alpha_t = alpha0 / (t - 1)``, ``alpha0 = sqrt(T L / (K C))`` unless given, ``C`` the
  coverability guess (default ``S A``, the tabular upper bound of coverability);
* ``beta_t = kappa L / (alpha_t n_t)``;
* ``gamma_t = gamma0 (t - 1)`` (truncation relative to the cumulative sum of past occupancies).

Ablations (docs/algorithms/glow.md, Practical choices), both [RECON]: ``truncation="constant"``
(``gamma_t = gamma0``) or
``"none"`` (no clipping; needs a finite weight class), and ``penalty=False`` (``alpha_t = 0``,
the plain weighted residual, with the Hoeffding radius
``beta_t = kappa B H sqrt(2 L / n_t)``, ``B = min(gamma_t, max W)`` the largest clipped weight).

Non-faithful conveniences (flagged): :meth:`predict` / :meth:`q_values` act with the LAST
selected ``f`` (the PAC output of the reconstruction is the uniform mixture over rounds, available
as
``policies_`` and ``mixture_value_``); if the confidence set is ever empty (beta too small), the
least-violating ``f`` is taken and the round is recorded in ``empty_rounds_``.

Interface: ``GLOW(env_or_model, value_class, weight_class, ...)``. ``env_or_model`` is a
Gymnasium environment with ``(state, step)`` observations (e.g. ``robustrl.envs.LinearMDPEnv``;
``env.unwrapped.model``, a FiniteMDP or LinearMDP, enables exact regret) or a
:class:`~robustrl.models.FiniteMDP`, from whose kernel episodes are sampled directly. The class
reuses :class:`~robustrl.agents.base.LinearAgent` for ``predict`` / ``save`` but has no linear
features: its Q-values are table lookups ``value_class[selected_, h, s]``.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from robustrl._artifacts import loaded_array
from robustrl._glow_derived import DERIVED_ALPHA_SCALE, glow_derived_gamma
from robustrl._kernels.glow import full_class_step_objective, step_objective
from robustrl.agents.base import (
    LinearAgent,
    Training,
    deprecated_progress,
    renamed_attribute,
    resolve_budget,
)
from robustrl.exact import evaluate_policy, robust_value_iteration
from robustrl.models import FiniteMDP, LinearMDP
from robustrl.validation import check_array, check_int, check_positive, check_seed


def occupancy(model: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """State-action occupancy ``d_h^pi(s, a)`` of a policy, shape ``(H, S, A)``.

    ``policy`` is an ``(H, S)`` integer table or an ``(H, S, A)`` probability table.
    """
    H, S, A = model.horizon, model.n_states, model.n_actions
    pol = np.asarray(policy)
    if pol.ndim == 2:
        probs = np.zeros((H, S, A))
        np.put_along_axis(probs, pol[..., None].astype(np.intp), 1.0, axis=-1)
    else:
        probs = check_array(pol, "policy", shape=(H, S, A), low=0.0)
    d = np.zeros((H, S, A))
    state = model.initial_distribution.copy()
    for h in range(H):
        d[h] = state[:, None] * probs[h]
        state = np.einsum("sa,sat->t", d[h], model.P[h])
    return d


def density_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with ``0/0 = 0`` and ``x/0 = +inf`` (weights may be infinite)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    pos = den > 0
    out = np.divide(num, den, out=out, where=pos)
    return np.where(~pos & (num > 0), np.inf, out)


def _finite_model(obj) -> FiniteMDP | None:
    if isinstance(obj, FiniteMDP):
        return obj
    if isinstance(obj, LinearMDP):
        return obj.to_finite()
    return None


def shares_glow_signature(init):
    """Decorator for a subclass ``__init__(self, ..., **glow_hyperparams)``: its signature
    becomes its own parameters followed by GLOW's keyword-only hyperparameters, so these are
    declared once (in :class:`GLOW`) yet shown, documented and saved as explicit keywords;
    an unknown keyword still raises ``TypeError`` (from ``GLOW.__init__``)."""
    own = inspect.signature(init).parameters
    params = [p for p in own.values() if p.kind is not p.VAR_KEYWORD]
    params += [p for n, p in inspect.signature(GLOW.__init__).parameters.items()
               if p.kind is p.KEYWORD_ONLY and n not in own]
    init.__signature__ = inspect.Signature(params)
    return init


class _TabularSampler:
    """Episodes on a finite MDP, drawn from ``model`` or stepped in ``env`` (the state is the
    observation's first entry), counted into the agent's sufficient statistics. Shared by GLOW
    and the finite-class comparators (GOLF, Hy-Q, H2O-FQI), which read the same statistics."""

    def _reset(self) -> int:
        if self.env is None:
            s = int(self._rng_model.choice(self.n_states, p=self.model.initial_distribution))
        else:
            if not self._env_seeded:
                obs, _ = self.env.reset(seed=self.seed)
                self._env_seeded = True
            else:
                obs, _ = self.env.reset()
            s = int(np.ravel(obs)[0])
        self._init_counts[s] += 1
        return s

    def _episode(self, s: int, policy: np.ndarray) -> None:
        for h in range(self.horizon):
            a = int(policy[h, s])
            if self.env is None:
                r = float(self.model.R[h, s, a])
                s2 = int(self._rng_model.choice(self.n_states, p=self.model.P[h, s, a]))
            else:
                obs, r, _, _, _ = self.env.step(a)
                s2 = int(np.ravel(obs)[0])
            self._counts[h, s, a] += 1
            self._reward_sums[h, s, a] += r
            if h < self.horizon - 1:
                self._next_counts[h, s, a, s2] += 1
            s = s2
        self.n_episodes_ += 1

    rounds_done = renamed_attribute("rounds_done_")
    n_episodes = renamed_attribute("n_episodes_")


class GLOW(_TabularSampler, LinearAgent):
    """GLOW (arXiv:2401.09681, docs/algorithms/glow.md) with enumerated classes ``F (|F|, H, S, A)``
    and ``W (|W|, H, S, A)``.

    Args:
        env_or_model: Gymnasium env with ``(state, step)`` observations, or a FiniteMDP.
        value_class: candidate Q-tables, ``(|F|, H, S, A)``, finite.
        weight_class: candidate weight tables, ``(|W|, H, S, A)``, nonnegative, ``+inf`` allowed;
            or ``"tabular"``: every table ``S x A -> [0, gamma_t]`` per step, with the inner max
            in closed form (arXiv:2401.09681, docs/algorithms/glow.md; ``log |W|`` in ``L`` becomes
            the covering
            surrogate ``S A log(e + gamma_T n_T)`` [RECON]).
        episodes_per_round: ``K`` (1 gives the regret form).
        kappa: multiplier of the confidence radius ``beta_t`` [RECON].
        alpha0: penalty scale; None sets it from the reconstructed formula (docs/algorithms/glow.md)
            at :meth:`learn` time.
        gamma0: truncation slope, ``gamma_t = gamma0 (t - 1)``.
        truncation: ``"schedule"`` (default), ``"constant"`` or ``"none"`` (ablations).
        penalty: keep the ``- alpha c^2`` term (default); False is the plain-residual ablation.
        constants: ``"recon"`` (default: the reconstructed schedules, module docstring) or
            ``"paper"``: Algorithm 1's ``gamma_t = gamma t``, ``alpha_t = 8 / gamma_t``,
            ``beta_t = 36 gamma_t log(6|F||W|TH/delta) / (K (t-1))`` with Theorem 3.1's
            ``gamma`` (times ``gamma0``); ``kappa`` and ``alpha0`` are then unused.
        delta: failure probability in ``L``.
        coverability_guess: ``C`` in the default ``alpha0``; None means ``S A``.
        seed: seeds the sampler (model) or the first ``env.reset``.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("selected_", "Q_")

    def __init__(
        self,
        env_or_model,
        value_class,
        weight_class,
        *,
        episodes_per_round: int = 1,
        kappa: float = 1.0,
        alpha0: float | None = None,
        gamma0: float = 1.0,
        delta: float = 0.1,
        coverability_guess: float | None = None,
        seed: int | None = None,
        truncation: str = "schedule",
        penalty: bool = True,
        constants: str = "recon",
        ratio_class=None,
    ) -> None:
        # GLOW is tabular: it needs no linear features (and predicts without env or model).
        super().__init__(None if isinstance(env_or_model, (FiniteMDP, LinearMDP))
                         else env_or_model, check_seed(seed), needs_features=False)
        if env_or_model is None:
            self.model = None
        elif isinstance(env_or_model, (FiniteMDP, LinearMDP)):
            self.model = _finite_model(env_or_model)
        else:
            self.env = env_or_model
            base = getattr(env_or_model, "unwrapped", env_or_model)
            if not hasattr(env_or_model, "action_space") or not hasattr(base, "horizon"):
                raise ValueError(
                    "env_or_model must be a FiniteMDP/LinearMDP or a Gymnasium env exposing "
                    f"`horizon` on env.unwrapped; got {type(env_or_model).__name__}"
                )
            self.model = _finite_model(getattr(base, "model", None))
        F = check_array(value_class, "value_class", ndim=4)
        _, H, S, A = F.shape
        self.ratio_class = None
        if ratio_class is not None and not (isinstance(weight_class, str)
                                            and weight_class == "augmented"):
            raise ValueError("ratio_class is used only with weight_class='augmented'")
        if isinstance(weight_class, str):
            if weight_class not in ("tabular", "augmented"):
                raise ValueError(
                    "weight_class must be an (|W|, H, S, A) array, 'tabular' or 'augmented'; "
                    f"got {weight_class!r}"
                )
            W = weight_class
            if W == "augmented":
                if ratio_class is None:
                    raise ValueError("weight_class='augmented' needs ratio_class: the pure "
                                     "density ratios d^{pi_f} / d^{pi_g}, (|F|, |F|, H, S, A)")
                R = check_array(ratio_class, "ratio_class", ndim=5, finite=False, low=0.0)
                if np.isnan(R).any():
                    raise ValueError("ratio_class must not contain NaN")
                if R.shape != (F.shape[0], *F.shape):
                    raise ValueError(f"ratio_class must have shape {(F.shape[0], *F.shape)} "
                                     f"(|F|, |F|, H, S, A); got {R.shape}")
                self.ratio_class = R
        else:
            W = check_array(weight_class, "weight_class", ndim=4, finite=False, low=0.0)
            if np.isnan(W).any():
                raise ValueError("weight_class must not contain NaN")
        if not isinstance(W, str) and W.shape[1:] != (H, S, A):
            raise ValueError(
                f"weight_class must have shape (|W|, {H}, {S}, {A}) like value_class; "
                f"got {W.shape}"
            )
        if self.model is not None and (self.model.horizon, self.model.n_states,
                                       self.model.n_actions) != (H, S, A):
            raise ValueError(
                f"value_class (H, S, A) = {(H, S, A)} does not match the model's "
                f"{(self.model.horizon, self.model.n_states, self.model.n_actions)}"
            )
        if self.env is not None:
            base = self.env.unwrapped
            if int(base.horizon) != H or int(self.env.action_space.n) != A:
                raise ValueError(
                    f"value_class (H, A) = {(H, A)} does not match the env's "
                    f"{(int(base.horizon), int(self.env.action_space.n))}"
                )
        self.value_class = F
        self.weight_class = W
        self.horizon, self.n_states, self.n_actions = H, S, A
        self.feature_dim = None
        self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        self.kappa = check_positive(kappa, "kappa")
        self.alpha0 = None if alpha0 is None else check_positive(alpha0, "alpha0")
        self.gamma0 = check_positive(gamma0, "gamma0")
        if truncation not in ("schedule", "constant", "none"):
            raise ValueError(
                f"truncation must be 'schedule', 'constant' or 'none'; got {truncation!r}"
            )
        if truncation == "none" and (isinstance(W, str) or not np.isfinite(W).all()):
            raise ValueError(
                "truncation='none' needs a weight_class array with finite entries (no clipping "
                "of +inf weights and no bounded tabular class)"
            )
        self.truncation = truncation
        if constants not in ("recon", "paper", "derived"):
            raise ValueError(f"constants must be 'recon', 'paper' or 'derived'; got "
                             f"{constants!r}")
        if constants in ("paper", "derived") and (truncation != "schedule" or not penalty):
            raise ValueError(f"constants={constants!r} is Algorithm 1's schedule: it needs "
                             "truncation='schedule' and penalty=True")
        self.constants = constants
        if not isinstance(penalty, (bool, np.bool_)):
            raise ValueError(f"penalty must be a bool; got {penalty!r}")
        self.penalty = bool(penalty)
        self.delta = check_positive(delta, "delta")
        if self.delta >= 1:
            raise ValueError(f"delta must lie in (0, 1); got {delta!r}")
        self.coverability_guess = (None if coverability_guess is None
                                   else check_positive(coverability_guess, "coverability_guess"))
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        H, S, A = self.horizon, self.n_states, self.n_actions
        self._counts = np.zeros((H, S, A))
        self._reward_sums = np.zeros((H, S, A))
        self._next_counts = np.zeros((H, S, A, S))
        self._init_counts = np.zeros(S)
        # V_next[h] = max_a' f_{h+1}: fixed because the class is a fixed list (arXiv:2401.09681,
        # docs/algorithms/glow.md).
        F = self.value_class
        self._V_next = np.zeros((H, F.shape[0], S))
        self._V_next[:-1] = np.moveaxis(F[:, 1:].max(axis=-1), 1, 0)
        self._rng_model = np.random.default_rng(self.seed)
        self._env_seeded = False
        self.rounds_done_ = 0
        self.selected_ = np.zeros(0, dtype=np.int64)
        self.in_set_ = np.zeros((0, F.shape[0]), dtype=bool)
        self.betas_ = np.zeros(0)
        self.max_violation_ = np.zeros((0, F.shape[0]))
        self.empty_rounds_: list[int] = []
        self.policies_ = np.zeros((0, H, S), dtype=np.int64)
        self.regret_ = np.zeros(0)
        self.n_episodes_ = 0
        self._regret_of: dict[int, float] = {}
        # weight_class="augmented": sum over played rounds i of 1 / ratio_class[k, f_i]
        self._inv_sum = (None if self.ratio_class is None
                         else np.zeros(self.value_class.shape))
        self._augment_rounds = 0
        if self.model is not None:
            self.optimal_value_ = robust_value_iteration(self.model).value
        else:
            self.optimal_value_ = None

    # -------------------------------------------------------------- schedules
    def log_term(self, total_rounds: int) -> float:
        """``L = log(H |F| |W| T / delta)`` (arXiv:2401.09681, docs/algorithms/glow.md)."""
        base = math.log(self.horizon * self.value_class.shape[0] * total_rounds / self.delta)
        if self.tabular_weights:
            n_last = (total_rounds - 1) * self.episodes_per_round
            gamma_last = self._gamma(total_rounds)
            return base + self.n_states * self.n_actions * math.log(math.e + gamma_last * n_last)
        return base + self._log_finite_W(total_rounds)

    @property
    def tabular_weights(self) -> bool:
        """Whether W is the full tabular class (closed-form inner max)."""
        return isinstance(self.weight_class, str) and self.weight_class == "tabular"

    @property
    def augmented_weights(self) -> bool:
        """Whether W is Theorem 3.2's augmented class ``W-bar`` built on ``ratio_class``."""
        return self.ratio_class is not None

    def _log_finite_W(self, total_rounds: int) -> float:
        """``log |W|`` of a finite class; for ``W-bar`` (harmonic means of ``t - 1 < T``
        members of the ``|F|^2`` pure ratios) ``log T + (T - 1) log(|F|^2)``."""
        if self.augmented_weights:
            n_base = self.value_class.shape[0] ** 2
            return math.log(total_rounds) + (total_rounds - 1) * math.log(n_base)
        return math.log(self.weight_class.shape[0])

    def augmented_class(self) -> np.ndarray:
        """``W-bar``'s members for the rounds played so far, ``(|F|, H, S, A)``: for every
        ``f``, ``(t - 1) / sum_{i<t} 1 / ratio_class[f, f_i]`` (the harmonic mean over the
        played ``f_i``), which equals ``d^{pi_f} / d-bar^{(t)}`` when ``ratio_class`` holds the
        exact pure ratios (arXiv:2401.09681, Theorem 3.2; docs/algorithms/glow.md)."""
        if not self.augmented_weights:
            raise ValueError("augmented_class needs weight_class='augmented'")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._inv_sum == 0, np.inf,
                            self._augment_rounds / self._inv_sum)

    def schedule(self, t: int, total_rounds: int) -> tuple[float, float, float]:
        """``(alpha_t, beta_t, gamma_t)`` for round ``t >= 2``: the reconstructed defaults [RECON],
        or with ``constants="paper"`` Algorithm 1 line 3 of arXiv:2401.09681 (read)."""
        K = self.episodes_per_round
        if self.constants == "paper":
            return self._paper_schedule(t, total_rounds)
        if self.constants == "derived":
            return self._derived_schedule(t, total_rounds)
        L = self.log_term(total_rounds)
        if self.alpha0 is None:
            C = (self.coverability_guess if self.coverability_guess is not None
                 else self.n_states * self.n_actions)
            alpha0 = math.sqrt(total_rounds * L / (K * C))
        else:
            alpha0 = self.alpha0
        gamma = self._gamma(t)
        n_t = (t - 1) * K
        if not self.penalty:
            bound = (gamma if self.tabular_weights or self.augmented_weights
                     else min(gamma, float(self.weight_class.max())))
            return 0.0, self.kappa * bound * self.horizon * math.sqrt(2 * L / n_t), gamma
        alpha = alpha0 / (t - 1)
        beta = self.kappa * L / (alpha * n_t)
        return alpha, beta, gamma

    def _log_class_sizes(self, total_rounds: int) -> float:
        """``log(|F| |W|)`` (``log |W|`` the covering surrogate for the tabular class)."""
        return self.log_term(total_rounds) - math.log(self.horizon * total_rounds / self.delta)

    def paper_gamma(self, total_rounds: int) -> float:
        """Theorem 3.1 of arXiv:2401.09681: ``gamma = sqrt(C / (T log(|F||W| / delta)))`` times
        ``gamma0`` (``C`` the coverability guess, default ``S A``)."""
        T = check_int(total_rounds, "total_rounds", low=1)
        C = (self.coverability_guess if self.coverability_guess is not None
             else self.n_states * self.n_actions)
        return self.gamma0 * math.sqrt(C / (T * (self._log_class_sizes(T)
                                                 + math.log(1.0 / self.delta))))

    def _paper_schedule(self, t: float, total_rounds: int) -> tuple[float, float, float]:
        """Algorithm 1, line 3: ``gamma_t = gamma t``, ``alpha_t = 8 / gamma_t``,
        ``beta_t = 36 gamma_t log(6 |F||W| T H / delta) / (K (t - 1))``, ``gamma`` from
        :meth:`paper_gamma`."""
        T, K = total_rounds, self.episodes_per_round
        gamma_t = self.paper_gamma(T) * t
        beta = (36.0 * gamma_t * (self._log_class_sizes(T)
                                  + math.log(6.0 * T * self.horizon / self.delta))
                / (K * (t - 1)))
        return 8.0 / gamma_t, beta, gamma_t

    def derived_log_term(self, total_rounds: int) -> float:
        """``l = log(3 |F| |W| T H / delta)`` of the re-derived Theorem 3.1
        (:func:`robustrl.theory.glow.glow_regret_bound_derived`); for the tabular class
        ``log |W| = S A log(n_T + 1)``, the grid of step ``gamma_t / n_t`` (docs/algorithms/
        glow.md, "Theorem 3.1, re-derived")."""
        T = check_int(total_rounds, "total_rounds", low=2)
        base = math.log(3.0 * self.value_class.shape[0] * T * self.horizon / self.delta)
        if self.tabular_weights:
            n_last = (T - 1) * self.episodes_per_round
            return base + self.n_states * self.n_actions * math.log(n_last + 1)
        return base + self._log_finite_W(T)

    def derived_gamma(self, total_rounds: int) -> float:
        """``gamma`` (``gamma_t = gamma t``) minimising the re-derived bound at ``T`` for
        ``C = coverability_guess`` (default ``S A``), times ``gamma0``."""
        T = check_int(total_rounds, "total_rounds", low=2)
        key = (T, self.episodes_per_round, self.coverability_guess, self.gamma0, self.delta)
        if getattr(self, "_derived_gamma_key", None) == key:  # once per run, not per round
            return self._derived_gamma_value
        C = (self.coverability_guess if self.coverability_guess is not None
             else self.n_states * self.n_actions)
        log_F = math.log(self.value_class.shape[0])
        if self.tabular_weights:
            g = glow_derived_gamma(T, self.horizon, max(C, 1.0), log_F, None, self.delta,
                                   tabular_entries=self.n_states * self.n_actions)
        else:
            g = glow_derived_gamma(T, self.horizon, max(C, 1.0), log_F,
                                   self._log_finite_W(T), self.delta,
                                   episodes_per_round=self.episodes_per_round)
        self._derived_gamma_key, self._derived_gamma_value = key, self.gamma0 * g
        return self._derived_gamma_value

    def _derived_schedule(self, t: int, total_rounds: int) -> tuple[float, float, float]:
        """The re-derived schedule: ``gamma_t = gamma t``, ``alpha_t = 1 / (2 gamma_t)`` and the
        smallest radius that provably keeps ``Q*``, ``beta_t = (2 l + s) gamma_t / n_t``
        (``s = 1`` for the tabular class's grid, else 0; docs/algorithms/glow.md)."""
        gamma_t = self.derived_gamma(total_rounds) * t
        n_t = (t - 1) * self.episodes_per_round
        slack = 1.0 if self.tabular_weights else 0.0
        beta = (2.0 * self.derived_log_term(total_rounds) + slack) * gamma_t / n_t
        return DERIVED_ALPHA_SCALE / gamma_t, beta, gamma_t

    def _gamma(self, t: int) -> float:
        if self.truncation == "none":
            return math.inf
        if self.truncation == "constant":
            return self.gamma0
        return self.gamma0 * max(t - 1, 1)

    # ------------------------------------------------------------- objective
    def objective(self, alpha: float, gamma: float) -> np.ndarray:
        """``L_h(f, w)`` on the pooled data for all ``h, f, w``: ``(H, |F|, |W|)``.

        With the tabular weight class the last axis has length 1 and holds ``max_w L_h(f, w)``.
        """
        F, W = self.value_class, self.weight_class
        if self.augmented_weights:
            W = self.augmented_class()
        if self.tabular_weights:
            out = np.empty((self.horizon, F.shape[0], 1))
            for h in range(self.horizon):
                out[h, :, 0] = full_class_step_objective(
                    F[:, h], self._V_next[h], self._counts[h], self._reward_sums[h],
                    self._next_counts[h], gamma, alpha)
            return out
        out = np.empty((self.horizon, F.shape[0], W.shape[0]))
        for h in range(self.horizon):
            out[h] = step_objective(F[:, h], self._V_next[h], W[:, h], self._counts[h],
                                    self._reward_sums[h], self._next_counts[h], gamma, alpha)
        return out

    def confidence_set(self, t: int, total_rounds: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Membership mask of ``F_t``, the per-f violation ``max_h max_w L - beta``, and beta."""
        n_f = self.value_class.shape[0]
        if t == 1:
            return np.ones(n_f, dtype=bool), np.full(n_f, -np.inf), np.inf
        alpha, beta, gamma = self.schedule(t, total_rounds)
        worst = self.objective(alpha, gamma).max(axis=2).max(axis=0)  # (|F|,)
        return worst <= beta, worst - beta, beta

    def initial_values(self) -> np.ndarray:
        """``E_{d_1}[max_a f_0(s, a)]`` for every f (exact ``d_1`` when the model is known)."""
        if self.model is not None:
            d1 = self.model.initial_distribution
        else:
            d1 = self._init_counts / self._init_counts.sum()
        return self.value_class[:, 0].max(axis=-1) @ d1

    def _require_sampler(self) -> None:
        if self.env is None and self.model is None:
            raise ValueError("GLOW needs an env or a model to learn; it was loaded without "
                             "one: load(path, env=...) to keep training")

    # ----------------------------------------------------------------- learn
    def learn(self, total_timesteps: int | None = None, callback=None,
              progress_bar: bool = False, *, total_rounds: int | None = None,
              episodes_per_round: int | None = None, progress: bool | None = None) -> GLOW:
        """Run rounds ``1..T`` (fresh start; ``T`` enters the schedules); returns ``self``.

        The budget is exactly one of ``total_timesteps`` (env steps; ``T`` rounds of
        ``episodes_per_round`` episodes of ``horizon`` steps, rounded up) and ``total_rounds``.
        A stable-baselines3 ``callback`` gets ``_on_step`` after every round (False stops
        early, keeping the rounds played). ``progress=`` is the deprecated ``progress_bar``.
        """
        self._require_sampler()
        if episodes_per_round is not None:
            self.episodes_per_round = check_int(episodes_per_round, "episodes_per_round", low=1)
        T = resolve_budget(total_timesteps, "total_rounds", total_rounds,
                           self.episodes_per_round * self.horizon)
        training = Training(self, callback, deprecated_progress(progress_bar, progress), T,
                            "round", desc="GLOW rounds")
        self._reset_state()
        selected, in_set, betas, viol, policies, regret = [], [], [], [], [], []
        rounds = range(1, T + 1)
        training.start(locals())
        for t in rounds:
            s_first = self._reset()
            mask, violation, beta = self.confidence_set(t, T)
            if not mask.any():
                self.empty_rounds_.append(t)
                idx = int(np.argmin(violation))
            else:
                values = np.where(mask, self.initial_values(), -np.inf)
                idx = int(np.argmax(values))
            policy = self._play_round(idx, s_first, regret)
            selected.append(idx)
            in_set.append(mask)
            betas.append(beta)
            viol.append(violation)
            policies.append(policy)
            self.rounds_done_ = t
            self.num_timesteps += self.episodes_per_round * self.horizon
            if training.callback is not None:  # a checkpoint saves the rounds so far
                self._store_rounds(selected, in_set, betas, viol, policies, regret)
            if not training.step(locals()):
                break
        training.end()
        self._store_rounds(selected, in_set, betas, viol, policies, regret)
        return self

    def _store_rounds(self, selected, in_set, betas, viol, policies, regret) -> None:
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.in_set_ = np.asarray(in_set)
        self.betas_ = np.asarray(betas)
        self.max_violation_ = np.asarray(viol)
        self.policies_ = np.asarray(policies, dtype=np.int64)
        self.regret_ = np.asarray(regret)
        self.Q_ = self.value_class[self.selected_[-1]].copy()
        self._fitted = True

    @property
    def mixture_value_(self) -> float | None:
        """Exact value of the uniform mixture of ``pi_1..pi_T`` (the PAC output), if model known."""
        if self.model is None or len(self.regret_) == 0:
            return None
        return float(self.optimal_value_ - self.regret_.mean())

    def _play_round(self, idx: int, s_first: int, regret: list[float]) -> np.ndarray:
        """Play the greedy policy of ``value_class[idx]`` for one round of episodes.

        Appends its exact regret to ``regret`` when the model is known; returns the policy.
        ``s_first`` is the already-reset first state of the round.
        """
        policy = self.value_class[idx].argmax(axis=-1)
        if self.model is not None:
            if idx not in self._regret_of:  # the class is a fixed list: one evaluation per f
                self._regret_of[idx] = (self.optimal_value_
                                        - evaluate_policy(self.model, policy).value)
            regret.append(self._regret_of[idx])
        if self.augmented_weights:
            with np.errstate(divide="ignore"):
                self._inv_sum += 1.0 / self.ratio_class[:, idx]
            self._augment_rounds += 1
        for k in range(self.episodes_per_round):
            self._episode(s_first if k == 0 else self._reset(), policy)
        return policy

    # ---------------------------------------------------------------- acting
    def q_values(self, obs) -> np.ndarray:
        """Q-values of the last selected ``f`` (non-faithful last-iterate output)."""
        self._check_fitted()
        s = int(np.ravel(obs)[0])
        if not 0 <= s < self.n_states:
            raise ValueError(f"obs[0] (the state) must lie in [0, {self.n_states - 1}]; got {s}")
        return np.asarray(self.Q_)[self.step_of(obs), s].copy()

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write hyperparameters, both classes and the selection to one ``.npz``, atomically."""
        self._check_fitted()
        if self.augmented_weights:
            raise ValueError("saving a GLOW with weight_class='augmented' is not supported "
                             "(its ratio_class is not part of the file format)")
        return self._write_npz(path, {
            "value_class": self.value_class, "weight_class": np.asarray(self.weight_class),
            "selected_": self.selected_, "Q_": self.Q_, "policies_": self.policies_,
            "regret_": self.regret_,
        })

    @classmethod
    def load(cls, path: str | Path, env=None, device: str = "auto") -> GLOW:
        """Rebuild a GLOW agent saved with :meth:`save`, bound to ``env`` (an env or a model;
        None: predict only). ``device`` is accepted for the shared signature (CPU only).

        The classes are validated by the constructor; ``selected_`` must index ``value_class``,
        ``Q_`` must be the last selected table, ``policies_`` must hold actions in
        ``[0, A)`` and ``regret_`` one finite entry per round (or none without a model).
        """
        names = ("value_class", "weight_class", "selected_", "Q_", "policies_", "regret_")
        header, f = cls._read_npz(path, names)
        W = f["weight_class"]
        if W.dtype.kind == "U":
            W = str(W)
        elif W.dtype.kind not in "fiu":
            raise ValueError(f"path {path}: array 'weight_class' must hold real numbers or "
                             f"'tabular'; got dtype {W.dtype}")
        if f["value_class"].dtype.kind not in "fiu":
            raise ValueError(f"path {path}: array 'value_class' must hold real numbers; got "
                             f"dtype {f['value_class'].dtype}")
        agent = cls._from_header(path, header, env, f["value_class"], W)
        n_f = agent.value_class.shape[0]
        H, S, A = agent.horizon, agent.n_states, agent.n_actions
        agent.selected_ = loaded_array(path, "selected_", f["selected_"], kind="i",
                                       shape=(None,), low=0, high=n_f - 1)
        T = agent.selected_.shape[0]
        if T == 0:
            raise ValueError(f"path {path}: array 'selected_' must not be empty (a fitted GLOW "
                             "selected at least one value table)")
        agent.Q_ = loaded_array(path, "Q_", f["Q_"], kind="f", shape=(H, S, A))
        if not np.array_equal(agent.Q_, agent.value_class[agent.selected_[-1]]):
            raise ValueError(f"path {path}: array 'Q_' must equal value_class[selected_[-1]]")
        agent.policies_ = loaded_array(path, "policies_", f["policies_"], kind="i",
                                       shape=(T, H, S), low=0, high=A - 1)
        agent.regret_ = loaded_array(path, "regret_", f["regret_"], kind="f", shape=(None,))
        if agent.regret_.shape[0] not in (0, T):
            raise ValueError(f"path {path}: array 'regret_' must have 0 or {T} entries (one "
                             f"per round); got {agent.regret_.shape[0]}")
        agent._fitted = True
        return agent
