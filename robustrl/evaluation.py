"""Evaluate a policy across a grid of dynamics perturbations.

:func:`evaluate` runs Monte-Carlo episodes (reproducible by seed); :func:`evaluate_exact` computes
the exact expected return when the environment knows its model (a :class:`~robustrl.models`
model on ``env.unwrapped.model``, or an ``expected_return`` method).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robustrl._policy import as_action_fn
from robustrl.protocols import behind_passive_wrappers, defined_together
from robustrl.validation import check_int, check_seed


@dataclass(frozen=True)
class EvaluationResult:
    """Returns of one policy at each perturbation level.

    ``returns`` has shape ``(P, episodes)`` for Monte-Carlo evaluation and ``(P, 1)`` for exact
    evaluation (where ``stderr`` is zero).
    """

    perturbations: np.ndarray
    returns: np.ndarray
    exact: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.returns.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.returns.std(axis=1, ddof=1) if self.returns.shape[1] > 1 else np.zeros(
            len(self.perturbations)
        )

    @property
    def stderr(self) -> np.ndarray:
        return self.std / np.sqrt(self.returns.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "perturbations": np.asarray(self.perturbations).tolist(),
            "mean": self.mean.tolist(),
            "stderr": self.stderr.tolist(),
            "episodes": int(self.returns.shape[1]),
            "exact": self.exact,
        }

    def plot(self, ax=None, label: str | None = None, **kwargs):
        """Mean return against perturbation, with a 95% band for Monte-Carlo results."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        x = np.asarray(self.perturbations, dtype=float)
        (line,) = ax.plot(x, self.mean, marker="o", label=label, **kwargs)
        if not self.exact:
            ci = 1.96 * self.stderr
            ax.fill_between(x, self.mean - ci, self.mean + ci, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("perturbation")
        ax.set_ylabel("average return")
        return ax


def _env_factory(env_factory) -> Callable[[Any], Any]:
    """Accept a callable ``perturbation -> env``, an environment class, or a registered id."""
    if isinstance(env_factory, str) or isinstance(env_factory, type):
        from robustrl.envs.perturbations import make_env

        return lambda p: make_env(env_factory, perturbation=p)
    if callable(env_factory):
        return env_factory
    raise ValueError(
        "env_factory must be a callable perturbation -> env, an environment class or a "
        f"registered environment id; got {type(env_factory).__name__}"
    )


def _grid(perturbations) -> np.ndarray:
    grid = np.asarray(list(perturbations), dtype=object)
    if grid.size == 0:
        raise ValueError("perturbations must contain at least one perturbation level")
    return grid


def evaluate(
    policy,
    env_factory,
    perturbations: Sequence,
    episodes: int = 100,
    seed: int | None = 0,
    *,
    progress: bool = False,
) -> EvaluationResult:
    """Monte-Carlo average return of ``policy`` at each perturbation level.

    Args:
        policy: a callable ``obs -> action``, an object with SB3-style ``predict``, or an
            ``(H, S)`` / ``(H, S, A)`` table for ``(state, step)`` observations.
        env_factory: callable ``perturbation -> env``, an environment class or a registered id.
        perturbations: the grid of perturbation levels.
        episodes: episodes per level (>= 1).
        seed: the environment at level ``j`` is reset with a seed derived from ``(seed, j)``, so
            the same seed gives the same numbers and levels share no randomness by accident.
    """
    check_int(episodes, "episodes", low=1)
    seed = check_seed(seed)
    make = _env_factory(env_factory)
    grid = _grid(perturbations)
    root = np.random.SeedSequence(seed)
    # spawn(n + 1)'s first n children are spawn(n)'s: the extra one (the declared nominal level,
    # evaluated when the grid lacks it) changes no grid level's numbers
    level_seeds = root.spawn(len(grid) + 1)
    returns = np.zeros((len(grid), int(episodes)))
    bar = tqdm(total=len(grid) * episodes, disable=not progress, desc="evaluating", unit="ep")
    nominal = None
    for j, p in enumerate(grid):
        env = make(p)
        if j == 0:
            nominal = _declared_nominal(env)
        returns[j] = _run_level(policy, env, level_seeds[j], int(episodes), bar)
    bar.close()
    info: dict[str, Any] = {"seed": seed, "episodes": int(episodes)}
    if nominal is not None:
        info["nominal_perturbation"] = _plain(nominal)
        if not any(_same_level(p, nominal) for p in grid):
            nominal_returns = _run_level(policy, make(nominal), level_seeds[-1], int(episodes),
                                         None)
            info["nominal_mean"] = float(nominal_returns.mean())
    return EvaluationResult(np.asarray(grid.tolist()), returns, exact=False, info=info)


def _declared_nominal(env) -> Any:
    """The environment's declared ``nominal_perturbation``, looked up through its wrappers (a
    :class:`~robustrl.envs.PhysicsPerturbation` declares one), or ``None``."""
    getter = getattr(env, "get_wrapper_attr", None)
    if getter is not None:
        try:
            return getter("nominal_perturbation")
        except AttributeError:
            return None
    return getattr(getattr(env, "unwrapped", env), "nominal_perturbation", None)


def _batched_table(policy, env) -> np.ndarray | None:
    """The ``(H, S)`` action table for a batched rollout of ``env``, or ``None`` when the
    episode-by-episode loop must run: the unwrapped environment has no ``rollout_returns``, a
    wrapper may change the episodes, or the policy may be stochastic (a plain callable or an
    ``(H, S, A)`` table; ``predict`` objects are queried with ``deterministic=True``)."""
    base = behind_passive_wrappers(env)
    if base is None or not defined_together(base, "rollout_returns", "reset", "step", "_obs"):
        return None
    deterministic_table = isinstance(policy, np.ndarray) and policy.ndim == 2
    if not (deterministic_table or callable(getattr(policy, "predict", None))):
        return None
    return _policy_table(policy, base)


def _run_level(policy, env, level_seed: np.random.SeedSequence, episodes: int, bar) -> np.ndarray:
    """``episodes`` returns of ``policy`` in ``env``, seeded from one level's seed sequence.

    Deterministic policies on a known-model environment are rolled out for all episodes at once
    (:meth:`~robustrl.envs.FiniteMDPEnv.rollout_returns`), with the same random stream and so
    the same numbers as the loop below.
    """
    env_seed, policy_seed = level_seed.generate_state(2)
    table = _batched_table(policy, env)
    if table is not None:
        out = env.unwrapped.rollout_returns(table, episodes, int(env_seed))
        env.close()
        if bar is not None:
            bar.update(episodes)
        return out
    act = as_action_fn(policy, np.random.default_rng(int(policy_seed)))
    out = np.zeros(episodes)
    for e in range(episodes):
        obs, _ = env.reset(seed=int(env_seed) if e == 0 else None)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        out[e] = total
        if bar is not None:
            bar.update()
    env.close()
    return out


def _same_level(a, b) -> bool:
    try:
        return bool(np.isclose(float(a), float(b), rtol=0.0, atol=1e-12))
    except (TypeError, ValueError):
        return a == b


def evaluate_exact(policy, env_factory, perturbations: Sequence) -> EvaluationResult:
    """Exact expected return of ``policy`` at each perturbation level.

    Works when the unwrapped environment exposes its model as ``model`` (a FiniteMDP or
    LinearMDP with ``(state, step)`` observations; ``policy`` may then be a table or any
    deterministic policy form) or an ``expected_return(policy_fn)`` method.
    """
    make = _env_factory(env_factory)
    grid = _grid(perturbations)
    values = np.zeros((len(grid), 1))
    nominal = None
    for j, p in enumerate(grid):
        base = make(p).unwrapped
        if j == 0:
            nominal = getattr(base, "nominal_perturbation", None)
        values[j, 0] = _exact_return(policy, base)
    info: dict[str, Any] = {}
    if nominal is not None:
        info["nominal_perturbation"] = _plain(nominal)
        if not any(_same_level(p, nominal) for p in grid):
            info["nominal_mean"] = _exact_return(policy, make(nominal).unwrapped)
    return EvaluationResult(np.asarray(grid.tolist()), values, exact=True, info=info)


def _exact_return(policy, base) -> float:
    from robustrl.exact import evaluate_policy

    if hasattr(base, "model"):
        model = base.model
        return float(evaluate_policy(model, _policy_table(policy, model)).value)
    if hasattr(base, "expected_return"):
        act = as_action_fn(policy)
        return float(base.expected_return(
            lambda price, step, _act=act: _act(np.array([price, step], dtype=np.float32))
        ))
    raise ValueError(
        f"env_factory built {type(base).__name__}, which exposes neither `model` nor "
        "`expected_return`; use evaluate() for Monte-Carlo evaluation instead"
    )


def _policy_table(policy, model) -> np.ndarray:
    """A policy table ``(H, S)`` or ``(H, S, A)`` for a finite model with (state, step) obs."""
    if isinstance(policy, np.ndarray) and policy.ndim in (2, 3):
        return policy
    act = as_action_fn(policy)
    H, S = model.horizon, model.n_states
    return np.array(
        [[act(np.array([s, h], dtype=np.int64)) for s in range(S)] for h in range(H)],
        dtype=np.int64,
    )


# ----------------------------------------------------------------------------------------------
# robustness metrics and side-by-side comparison


def robustness_metrics(
    result: EvaluationResult,
    *,
    cvar_level: float = 0.1,
    random_result: EvaluationResult | None = None,
    reference_result: EvaluationResult | None = None,
    nominal: Any = None,
) -> dict[str, float]:
    """Standard robustness scores of one policy's returns across a perturbation grid.

    * ``nominal``: mean return at the nominal (training) dynamics: the grid point ``nominal``
      when given; else the environment's declared ``nominal_perturbation`` (recorded by
      :func:`evaluate`, which also evaluates it when the grid lacks it); else, for an
      environment that declares none, the first grid point;
    * ``worst_case``: the lowest mean return over the grid;
    * ``cvar``: mean of the worst ``cvar_level`` fraction of all episode returns, pooled over the
      grid with equal weight per grid point (for exact results: of the grid-point values);
    * ``auc``: area under the mean-return curve divided by the width of the perturbation range
      (an average return; the plain mean for a non-numeric or one-point grid);
    * ``normalized``: ``(auc - auc_random) / (auc_reference - auc_random)`` when both a random
      and a reference result on the same grid are given (1 = reference, 0 = random).
    """
    from robustrl.validation import check_scalar

    level = check_scalar(cvar_level, "cvar_level", low=0.0, high=1.0, low_inclusive=False)
    mean = result.mean
    pooled = np.sort(result.returns.ravel())
    n_tail = max(1, int(np.ceil(level * pooled.size)))
    metrics = {
        "nominal": _nominal_mean(result, nominal),
        "worst_case": float(mean.min()),
        "cvar": float(pooled[:n_tail].mean()),
        "auc": _normalized_auc(result),
    }
    if (random_result is None) != (reference_result is None):
        raise ValueError("random_result and reference_result must be given together")
    if random_result is not None:
        for name, other in (("random_result", random_result),
                            ("reference_result", reference_result)):
            if not np.array_equal(np.asarray(other.perturbations, dtype=object),
                                  np.asarray(result.perturbations, dtype=object)):
                raise ValueError(f"{name} must be evaluated on the same perturbation grid")
        low, high = _normalized_auc(random_result), _normalized_auc(reference_result)
        if high == low:
            raise ValueError(
                "reference_result and random_result have the same AUC; the normalised score "
                "is undefined"
            )
        metrics["normalized"] = (metrics["auc"] - low) / (high - low)
    return metrics


def _nominal_mean(result: EvaluationResult, nominal: Any) -> float:
    grid = list(np.asarray(result.perturbations, dtype=object))
    if nominal is not None:
        for j, p in enumerate(grid):
            if _same_level(p, nominal):
                return float(result.mean[j])
        raise ValueError(f"nominal {nominal!r} is not a point of the perturbation grid {grid}")
    declared = result.info.get("nominal_perturbation")
    if declared is not None:
        for j, p in enumerate(grid):
            if _same_level(p, declared):
                return float(result.mean[j])
        if "nominal_mean" in result.info:
            return float(result.info["nominal_mean"])
    return float(result.mean[0])


def _normalized_auc(result: EvaluationResult) -> float:
    try:
        x = np.asarray(result.perturbations, dtype=float)
    except (TypeError, ValueError):
        return float(result.mean.mean())
    if x.size < 2 or x.max() == x.min():
        return float(result.mean.mean())
    order = np.argsort(x)
    xs, ys = x[order], result.mean[order]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0) / (xs[-1] - xs[0]))


@dataclass(frozen=True)
class Comparison:
    """Several policies scored on one perturbation grid with paired seeds."""

    results: dict[str, EvaluationResult]
    metrics: dict[str, dict[str, float]]

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per (policy, perturbation)."""
        out = []
        for name, res in self.results.items():
            for p, m, se in zip(res.perturbations, res.mean, res.stderr, strict=True):
                out.append({"policy": name, "perturbation": _plain(p), "mean": float(m),
                            "stderr": float(se), "episodes": int(res.returns.shape[1])})
        return out

    def to_csv(self, path) -> None:
        import csv
        import io

        from robustrl._io import atomic_write

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["policy", "perturbation", "mean", "stderr",
                                                 "episodes"])
        writer.writeheader()
        writer.writerows(self.rows())
        atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=False, clean_stale=True)

    def to_json(self, path) -> None:
        from robustrl._io import atomic_write_json

        atomic_write_json(path, {"rows": self.rows(), "metrics": self.metrics})

    def plot(self, path=None, ax=None):
        """Return against perturbation, one line per policy, 95% bands for Monte-Carlo."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        for name, res in self.results.items():
            res.plot(ax, label=name)
        ax.legend(fontsize=8)
        if path is not None:
            from robustrl._io import atomic_write

            atomic_write(path, lambda fh: ax.figure.savefig(fh, format="png", dpi=120),
                         binary=True, clean_stale=True)
            if fig is not None:
                plt.close(fig)
        return ax


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


def compare(
    policies: dict[str, Any],
    env_factory,
    perturbations: Sequence,
    episodes: int = 100,
    seed: int | None = 0,
    *,
    cvar_level: float = 0.1,
    random_policy: str | None = None,
    reference_policy: str | None = None,
    nominal: Any = None,
    progress: bool = False,
) -> Comparison:
    """Evaluate every policy on the same grid with paired seeds and score its robustness.

    Every policy sees, at each grid point, an environment reset with the same seed (so the same
    initial states and the same random stream), whatever the order of ``policies``: swapping
    the order changes no number. ``random_policy`` / ``reference_policy`` name entries of
    ``policies`` used for the normalised score; ``nominal`` overrides the environment's
    declared nominal level (see :func:`robustness_metrics`).
    """
    if not policies:
        raise ValueError("policies must name at least one policy")
    for name, key in (("random_policy", random_policy), ("reference_policy", reference_policy)):
        if key is not None and key not in policies:
            raise ValueError(f"{name} {key!r} is not one of the policies {list(policies)}")
    results = {
        name: evaluate(policy, env_factory, perturbations, episodes, seed, progress=progress)
        for name, policy in policies.items()
    }
    extra = {}
    if random_policy is not None and reference_policy is not None:
        extra = {"random_result": results[random_policy],
                 "reference_result": results[reference_policy]}
    elif (random_policy is None) != (reference_policy is None):
        raise ValueError("random_policy and reference_policy must be given together")
    metrics = {name: robustness_metrics(res, cvar_level=cvar_level, nominal=nominal, **extra)
               for name, res in results.items()}
    return Comparison(results, metrics)
