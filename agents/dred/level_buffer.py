"""Prioritised level replay buffer of PLR / robust PLR / ACCEL / DRED (arXiv:2402.03479;
docs/algorithms/dred.md, Level buffer).

Pure NumPy. A :class:`LevelBuffer` holds up to ``capacity`` levels in slots. Each slot stores the
level (any object, typically an int8 level array), whether it comes from the training dataset,
whether it has been visited (sampled or admitted), its primary and secondary scores, its grounded
value ``G(l)`` (best undiscounted episodic return seen on it) and its staleness ``c_i``.

Replay distribution over the occupied, visited slots (arXiv:2402.03479, docs/algorithms/dred.md)::

    P(l) = (1 - rho_s) [ (1 - kappa) P_S(l) + kappa P_S2(l) ] + rho_s P_C(l)

* ``P_S`` (primary) and ``P_S2`` (secondary, optional) are rank transforms with temperatures
  ``beta`` and ``beta2``: ``rank(S_i)^(-1/beta) / sum_j rank(S_j)^(-1/beta)``, rank 1 = highest
  score, ties broken by the lower slot index first;
* ``P_C`` is the staleness term ``c_i^(1/beta_c) / sum_j c_j^(1/beta_c)``;
* each term lives on its own *support*: ``"buffer"`` (all levels), ``"dataset"`` (dataset levels
  only) or ``"generated"`` (generated levels only); it is zero outside the support and normalised
  inside it. A term with no mass (empty support, or all-zero staleness) falls back to uniform over
  its support, or over all visited levels when the support has none (the authors' fallback);
* ``kappa`` ramps linearly from ``secondary_coef_start`` to ``secondary_coef_end`` between the
  training fractions ``secondary_fraction_start`` and ``secondary_fraction_end``
  (:meth:`set_progress`).

Scores (per episode fragment, merged by step-weighted averaging, see :func:`fragment_score`):
``value_l1`` = mean |R_t - V_t| (mean absolute GAE), ``positive_value_loss`` = mean
max(R_t - V_t, 0), ``gae`` = mean (R_t - V_t), ``grounded_value_l1`` = value_l1 if G(l) > 0 else 0.
New scores replace old ones (the authors' EWA factor alpha = 1).

Admission of a new (non-buffer) level, after its scoring rollout (:meth:`admit`): the candidate
slot is an empty slot if there is one, else the occupied slot of lowest replay weight, where
dataset levels count as +inf under ``dataset_levels_fixed=True`` (they are never evicted). The
level is admitted if its admission score exceeds the threshold and is at least the candidate
slot's score (or the slot is empty). The admission score is the *secondary* score with threshold
0 when the primary support is not the whole buffer and the secondary support is (DRED: so a
generated level enters only if it was solved at least once, grounded value > 0); otherwise the
primary score with threshold -inf (robust PLR, ACCEL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robustrl.validation import check_int, check_scalar

STRATEGIES = ("value_l1", "positive_value_loss", "gae", "grounded_value_l1")
SUPPORTS = ("buffer", "dataset", "generated")

__all__ = ["LevelBuffer", "STRATEGIES", "SUPPORTS", "fragment_score", "merge_scores",
           "rank_weights", "staleness_weights"]


def fragment_score(strategy: str, returns: np.ndarray, values: np.ndarray,
                   grounded_value: float = 0.0) -> float:
    """Score of one episode fragment from its GAE returns ``R_t`` and values ``V_t``
    (arXiv:2402.03479, docs/algorithms/dred.md).

    ``returns - values`` is the GAE advantage. ``grounded_value`` is ``G(l)`` (used only by
    ``grounded_value_l1``, which is 0 unless ``G(l) > 0``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
    adv = np.asarray(returns, dtype=np.float64) - np.asarray(values, dtype=np.float64)
    if adv.size == 0:
        raise ValueError("returns must hold at least one step")
    if strategy == "value_l1":
        return float(np.abs(adv).mean())
    if strategy == "positive_value_loss":
        return float(np.clip(adv, 0.0, None).mean())
    if strategy == "gae":
        return float(adv.mean())
    return float(np.abs(adv).mean()) if grounded_value > 0 else 0.0


def merge_scores(scores, steps) -> float:
    """Step-weighted average of fragment scores (the authors' partial-score merge)."""
    s = np.asarray(scores, dtype=np.float64)
    n = np.asarray(steps, dtype=np.float64)
    if s.shape != n.shape or s.size == 0 or np.any(n <= 0):
        raise ValueError("scores and steps must be non-empty, of equal length, steps > 0")
    return float((s * n).sum() / n.sum())


def rank_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Unnormalised rank weights ``rank^(-1/temperature)`` (rank 1 = highest; ties: lower index
    first)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.arange(1, scores.size + 1)
    return ranks ** (-1.0 / temperature)


def staleness_weights(staleness: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Unnormalised power-transformed staleness ``c^(1/temperature)``."""
    return np.asarray(staleness, dtype=np.float64) ** (1.0 / temperature)


@dataclass
class Admission:
    """Outcome of :meth:`LevelBuffer.admit`: ``slot`` is None when rejected."""

    slot: int | None
    score: float
    evicted: Any = None


class LevelBuffer:
    """Prioritised level buffer (arXiv:2402.03479, docs/algorithms/dred.md); see the module
    docstring for the formulas.

    Args:
        capacity: number of slots (DRED: 4000; PLR over the dataset: the dataset size).
        strategy / secondary_strategy: score names in :data:`STRATEGIES` (secondary None: off).
        temperature / secondary_temperature: rank temperatures beta (> 0).
        strategy_support / secondary_support / staleness_support: one of :data:`SUPPORTS`.
        secondary_coef_start, secondary_coef_end: the kappa ramp end points, in [0, 1].
        secondary_fraction_start, secondary_fraction_end: training fractions of the ramp.
        staleness_coef: rho_s in [0, 1]; staleness_temperature: beta_c (> 0).
        replay_prob: probability of a replay decision once warm.
        fill_threshold: rho_fill; replay is possible once visited / capacity >= it.
        dataset_levels_fixed: dataset levels are never evicted (``fixed_dataset_support``).
        seed: seed of the buffer's own generator (sampling and replay decisions).
    """

    def __init__(self, capacity: int, *, strategy: str = "value_l1", temperature: float = 0.1,
                 strategy_support: str = "buffer", secondary_strategy: str | None = None,
                 secondary_temperature: float = 1.0, secondary_support: str = "buffer",
                 secondary_coef_start: float = 0.0, secondary_coef_end: float = 0.0,
                 secondary_fraction_start: float = 0.0, secondary_fraction_end: float = 1.0,
                 staleness_coef: float = 0.3, staleness_temperature: float = 1.0,
                 staleness_support: str = "buffer", replay_prob: float = 1.0,
                 fill_threshold: float = 1.0, dataset_levels_fixed: bool = True,
                 seed: int | None = None) -> None:
        self.capacity = check_int(capacity, "capacity", low=1)
        for name, val in (("strategy", strategy), ("secondary_strategy", secondary_strategy)):
            if val is not None and val not in STRATEGIES:
                raise ValueError(f"{name} must be one of {STRATEGIES}; got {val!r}")
        if strategy is None:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got None")
        for name, val in (("strategy_support", strategy_support),
                          ("secondary_support", secondary_support),
                          ("staleness_support", staleness_support)):
            if val not in SUPPORTS:
                raise ValueError(f"{name} must be one of {SUPPORTS}; got {val!r}")
        self.strategy = strategy
        self.secondary_strategy = secondary_strategy
        self.temperature = check_scalar(temperature, "temperature", low=0, low_inclusive=False)
        self.secondary_temperature = check_scalar(secondary_temperature, "secondary_temperature",
                                                  low=0, low_inclusive=False)
        self.strategy_support = strategy_support
        self.secondary_support = secondary_support
        self.staleness_support = staleness_support
        self.secondary_coef_start = check_scalar(secondary_coef_start, "secondary_coef_start",
                                                 low=0, high=1)
        self.secondary_coef_end = check_scalar(secondary_coef_end, "secondary_coef_end",
                                               low=0, high=1)
        self.secondary_fraction_start = check_scalar(
            secondary_fraction_start, "secondary_fraction_start", low=0, high=1)
        self.secondary_fraction_end = check_scalar(
            secondary_fraction_end, "secondary_fraction_end", low=0, high=1)
        if self.secondary_fraction_end <= self.secondary_fraction_start:
            raise ValueError("secondary_fraction_end must be > secondary_fraction_start; got "
                             f"{secondary_fraction_end} <= {secondary_fraction_start}")
        self.staleness_coef = check_scalar(staleness_coef, "staleness_coef", low=0, high=1)
        self.staleness_temperature = check_scalar(staleness_temperature, "staleness_temperature",
                                                  low=0, low_inclusive=False)
        self.replay_prob = check_scalar(replay_prob, "replay_prob", low=0, high=1)
        self.fill_threshold = check_scalar(fill_threshold, "fill_threshold", low=0, high=1)
        self.dataset_levels_fixed = bool(dataset_levels_fixed)
        self.rng = np.random.default_rng(seed)

        n = self.capacity
        self.levels: list[Any] = [None] * n
        self.occupied = np.zeros(n, dtype=bool)
        self.visited = np.zeros(n, dtype=bool)
        self.is_dataset = np.zeros(n, dtype=bool)
        self.scores = np.zeros(n)
        self.secondary_scores = np.zeros(n)
        self.grounded = np.full(n, -np.inf)
        self.staleness = np.zeros(n)
        self.sample_count = 0
        self.kappa = self.secondary_coef_start
        self.n_proposed = 0
        self.n_admitted = 0

    # ------------------------------------------------------------------ contents
    def add_dataset_levels(self, levels) -> np.ndarray:
        """Put dataset levels into empty slots (unvisited, score 0); returns their slots."""
        levels = list(levels)
        free = np.flatnonzero(~self.occupied)
        if len(levels) > free.size:
            raise ValueError(f"levels: {len(levels)} dataset levels do not fit the {free.size} "
                             f"free slots of a capacity-{self.capacity} buffer")
        slots = free[: len(levels)]
        for slot, level in zip(slots, levels, strict=True):
            self.levels[slot] = level
        self.occupied[slots] = True
        self.is_dataset[slots] = True
        return slots

    @property
    def size(self) -> int:
        """Number of occupied slots."""
        return int(self.occupied.sum())

    @property
    def proportion_filled(self) -> float:
        """Visited occupied slots / capacity (compared with ``fill_threshold``)."""
        return float((self.occupied & self.visited).sum()) / self.capacity

    @property
    def is_warm(self) -> bool:
        return self.proportion_filled >= self.fill_threshold - 1e-12

    @property
    def dataset_mass(self) -> float:
        """Replay probability mass on dataset levels (``plr_dataset_mass`` in the authors' logs)."""
        return float(self.sample_weights()[self.is_dataset].sum())

    @property
    def n_generated(self) -> int:
        return int((self.occupied & ~self.is_dataset).sum())

    # ------------------------------------------------------------------ schedule
    def set_progress(self, fraction: float) -> float:
        """Set kappa from the training progress ``fraction`` in [0, 1] (linear ramp)."""
        f = check_scalar(fraction, "fraction", low=0, high=1)
        lo, hi = self.secondary_fraction_start, self.secondary_fraction_end
        t = min(max((f - lo) / (hi - lo), 0.0), 1.0)
        self.kappa = self.secondary_coef_start + t * (self.secondary_coef_end
                                                      - self.secondary_coef_start)
        return self.kappa

    # ------------------------------------------------------------------ distribution
    def _support(self, support: str) -> np.ndarray:
        base = self.occupied & self.visited
        if support == "dataset":
            return base & self.is_dataset
        if support == "generated":
            return base & ~self.is_dataset
        return base

    def _term(self, raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Normalise ``raw`` weights within ``mask``; uniform fallbacks when there is no mass."""
        out = np.zeros(self.capacity)
        if mask.any():
            out[mask] = raw
            z = out.sum()
            if z > 0:
                return out / z
            out[mask] = 1.0
            return out / out.sum()
        seen = self.occupied & self.visited
        if seen.any():
            out[seen] = 1.0 / seen.sum()
        return out

    def _rank_term(self, scores: np.ndarray, support: str, temperature: float) -> np.ndarray:
        mask = self._support(support)
        return self._term(rank_weights(scores[mask], temperature), mask)

    def sample_weights(self) -> np.ndarray:
        """Replay distribution ``P`` over the slots (zero on empty or unvisited slots)."""
        seen = self.occupied & self.visited
        if not seen.any():
            return np.zeros(self.capacity)
        p = self._rank_term(self.scores, self.strategy_support, self.temperature)
        if self.secondary_strategy is not None:
            p2 = self._rank_term(self.secondary_scores, self.secondary_support,
                                 self.secondary_temperature)
            p = (1.0 - self.kappa) * p + self.kappa * p2
        if self.staleness_coef > 0:
            mask = self._support(self.staleness_support)
            pc = self._term(staleness_weights(self.staleness[mask], self.staleness_temperature),
                            mask)
            p = (1.0 - self.staleness_coef) * p + self.staleness_coef * pc
        return p / p.sum()

    # ------------------------------------------------------------------ sampling
    def _touch(self, slot: int) -> None:
        """One sampling event: every staleness grows by 1, the drawn slot's resets to 0."""
        self.sample_count += 1
        self.staleness += 1.0
        self.staleness[slot] = 0.0
        self.staleness[~self.occupied] = 0.0

    def sample_replay_decision(self) -> bool:
        """Replay iff warm (visited / capacity >= fill_threshold) and U < replay_prob."""
        return bool(self.is_warm and self.rng.random() < self.replay_prob)

    def sample_replay(self) -> int:
        """Draw a slot from :meth:`sample_weights` and update staleness."""
        p = self.sample_weights()
        if p.sum() <= 0:
            raise ValueError("the buffer holds no visited level to replay")
        slot = int(self.rng.choice(self.capacity, p=p))
        self._touch(slot)
        return slot

    def sample_unseen(self) -> int | None:
        """An occupied, never visited slot uniformly at random (marked visited), or None."""
        cand = np.flatnonzero(self.occupied & ~self.visited)
        if cand.size == 0:
            return None
        slot = int(self.rng.choice(cand))
        self.visited[slot] = True
        self._touch(slot)
        return slot

    def observe_new(self) -> int:
        """Record one sampling event of a new (non-buffer) level; returns its timestamp."""
        self.sample_count += 1
        return self.sample_count

    # ------------------------------------------------------------------ scores
    def update_scores(self, slot: int, score: float, secondary_score: float | None = None,
                      grounded_value: float | None = None) -> None:
        """Replace the slot's scores (alpha = 1) and raise its grounded value to the max seen."""
        slot = check_int(slot, "slot", low=0, high=self.capacity - 1)
        if not self.occupied[slot]:
            raise ValueError(f"slot {slot} is empty")
        self.visited[slot] = True
        self.scores[slot] = float(score)
        if secondary_score is not None:
            self.secondary_scores[slot] = float(secondary_score)
        if grounded_value is not None:
            self.grounded[slot] = max(self.grounded[slot], float(grounded_value))

    def _admission_uses_secondary(self) -> bool:
        return (self.strategy_support != "buffer" and self.secondary_strategy is not None
                and self.secondary_support == "buffer")

    def next_slot(self) -> int:
        """The slot a new level would take: first empty slot, else the lowest replay weight
        (dataset levels +inf when ``dataset_levels_fixed``)."""
        free = np.flatnonzero(~self.occupied)
        if free.size:
            return int(free[0])
        w = self.sample_weights()
        if self.dataset_levels_fixed:
            w[self.is_dataset] = np.inf
        return int(np.argmin(w))

    def admit(self, level, score: float, secondary_score: float | None = None,
              grounded_value: float = -np.inf, timestamp: int | None = None) -> Admission:
        """Try to admit a new generated level after its scoring rollout (arXiv:2402.03479,
        docs/algorithms/dred.md)."""
        self.n_proposed += 1
        if self._admission_uses_secondary():
            if secondary_score is None:
                raise ValueError("secondary_score is required: this buffer admits by its "
                                 "secondary score")
            new, buffer_scores, threshold = float(secondary_score), self.secondary_scores, 0.0
        else:
            new, buffer_scores, threshold = float(score), self.scores, -np.inf
        slot = self.next_slot()
        if self.dataset_levels_fixed and self.occupied[slot] and self.is_dataset[slot]:
            return Admission(None, new)  # only dataset levels left: never evicted
        empty = not self.occupied[slot]
        if not (new > threshold and (empty or buffer_scores[slot] <= new)):
            return Admission(None, new)
        evicted = None if empty else self.levels[slot]
        self.levels[slot] = level
        self.occupied[slot] = True
        self.visited[slot] = True
        self.is_dataset[slot] = False
        self.scores[slot] = float(score)
        self.secondary_scores[slot] = float(secondary_score or 0.0)
        self.grounded[slot] = float(grounded_value)
        self.staleness[slot] = float(self.sample_count - timestamp) if timestamp else 0.0
        self.n_admitted += 1
        return Admission(slot, new, evicted)

    # ------------------------------------------------------------------ state (checkpoints)
    _ARRAYS = ("occupied", "visited", "is_dataset", "scores", "secondary_scores", "grounded",
               "staleness")

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything that changes during training, as ``(arrays, plain)``: NumPy arrays
        (slot flags, scores, staleness, the levels stacked with a ``has_level`` mask) and
        JSON-able values (counters, kappa, the generator state). Restored by
        :meth:`set_state` on a buffer built with the same arguments."""
        has = np.array([lv is not None for lv in self.levels], dtype=bool)
        first = next((np.asarray(lv) for lv in self.levels if lv is not None), None)
        shape = (0, 0) if first is None else first.shape
        stacked = np.zeros((self.capacity, *shape), dtype=np.int8)
        for i in np.flatnonzero(has):
            stacked[i] = self.levels[i]
        arrays = {name: getattr(self, name).copy() for name in self._ARRAYS}
        arrays.update(levels=stacked, has_level=has)
        plain = dict(sample_count=int(self.sample_count), kappa=float(self.kappa),
                     n_proposed=int(self.n_proposed), n_admitted=int(self.n_admitted),
                     rng=self.rng.bit_generator.state)
        return arrays, plain

    def set_state(self, arrays: dict[str, np.ndarray], plain: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot; raises ``ValueError`` naming the array whose
        shape does not fit this buffer's capacity."""
        n = self.capacity
        for name in (*self._ARRAYS, "has_level", "levels"):
            arr = np.asarray(arrays[name])
            if arr.shape[:1] != (n,):
                raise ValueError(f"buffer state array {name!r} must have {n} rows (the "
                                 f"capacity); got shape {arr.shape}")
        for name in self._ARRAYS:
            setattr(self, name, np.asarray(arrays[name], dtype=getattr(self, name).dtype).copy())
        levels = np.asarray(arrays["levels"], dtype=np.int8)
        self.levels = [levels[i].copy() if has else None
                       for i, has in enumerate(np.asarray(arrays["has_level"], dtype=bool))]
        self.sample_count = int(plain["sample_count"])
        self.kappa = float(plain["kappa"])
        self.n_proposed = int(plain["n_proposed"])
        self.n_admitted = int(plain["n_admitted"])
        self.rng.bit_generator.state = plain["rng"]
