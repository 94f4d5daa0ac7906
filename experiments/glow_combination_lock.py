"""Episodes to an epsilon-optimal policy on the combination lock: GLOW, HyGLOW, their comparators.

GLOW experiment ``glow_combination_lock``. On the nominal lock of
:mod:`robustrl.envs.combination_lock` (``S = 3``, ``A = 2``, horizon ``H``; the code is drawn
from the cell seed) each method plays episodes until the policy it would output is
epsilon-optimal, ``V* - V^pi <= epsilon`` with ``V^pi`` exact
(:func:`robustrl.exact.evaluate_policy` on ``env.model``; ``V* = 1``), or until the episode
budget is spent. The metric ``episodes`` is the number of online episodes played BEFORE the
first epsilon-optimal output policy (so a method whose first policy is already good scores 0);
``censored`` is True when the budget ran out first, and then ``episodes = budget`` (a lower
bound: medians over cells with censored entries are lower bounds too).

A second metric, ``regret``, is the cumulative exact regret ``sum_t (V* - V^{pi_t})`` of the
policies PLAYED in the first ``window = min(WINDOW, budget)`` episodes (``WINDOW = 100``; the
behaviour policy: the round's greedy policy for the round-based agents, the epsilon-greedy
policy for Q-learning, the uniform policy for uniform exploration). The round-based agents stop
once they are epsilon-optimal AND have played ``window`` rounds (their selections up to then do
not depend on the stop).

Methods (``K = 1`` episode per round for the round-based agents, so rounds = episodes; the
value class of all five is ``F = combination_lock_value_class(H, S, A)``, the ``A^H`` codes'
Q*):

* ``glow``: :class:`robustrl.agents.GLOW` with ``F = combination_lock_value_class(H, S, A)``
  (``A^H`` candidate Q-tables), ``weight_class="tabular"``, ``kappa = 0.01``, run for
  ``budget`` rounds (its schedules depend on the total number of rounds, arXiv:2401.09681,
  docs/algorithms/glow.md); the output
  policy of round ``t`` is the greedy policy of the selected ``f_t`` (``regret_`` is exact).
  Because ``L = log(H |F| |W| T / delta)`` grows with ``T``, GLOW's count moves with the
  budget: on the lock it halves the surviving codes every ``k`` rounds, measured ``k = 3`` at
  ``T = 100``, 4 at ``T = 400`` and 5 at ``T = 4000`` (H = 6), hence counts in multiples of 5.
* ``hyglow``: :class:`robustrl.agents.HyGLOW` (two-sided, tabular W) with offline data of
  ``offline_episodes`` (default 5) episodes of the optimal (code) policy; the offline episodes
  are reported as ``offline_episodes`` and not counted in ``episodes``.
* ``golf``: :class:`robustrl.agents.GOLF` (arXiv:2102.00815, Algorithm 1) with its explicit
  theory radius ``beta = 4 log(H A T / delta)`` (``value_range = 1``, ``delta = 0.1``,
  ``T = budget``; docs/algorithms/comparators.md), no tuning;
* ``hyq``: :class:`robustrl.agents.HyQ` (arXiv:2210.06718, Algorithm 1) with the same
  ``offline_episodes`` episodes of the optimal policy as HyGLOW, all of them every round; round
  1 plays ``f^1 = 0`` (action 0 everywhere);
* ``h2o_fqi``: :class:`robustrl.agents.H2OFQI` (arXiv:2401.09681, Algorithm 2 with an FQI
  learner), same offline data revealed progressively (``(t - 1)`` offline episodes in round
  ``t``); once the ``offline_episodes`` are all revealed it keeps using all of them (the agent's
  warning about it is filtered here: the experiment's data are deliberately few);
* ``qlearning``: tabular epsilon-greedy Q-learning, exploration 0.1, Q initialised to ZERO (no
  optimism), step size ``1 / N(h, s, a)``, greedy ties broken uniformly at random while acting;
  the output policy after each episode is ``argmax_a Q`` (ties to the lowest action).
* ``uniform``: uniformly random actions. Output rule (documented, not learned): before any
  rewarded episode the output is the uniform policy (value ``A^-H``); after the first rewarded
  episode it is that episode's action sequence replayed open-loop (action ``a_h`` in every
  state at step ``h``), which on the deterministic lock is the code.

``budget`` is every method's episode cap and the number of rounds ``T`` of the round-based
agents (GLOW's and GOLF's schedules depend on it). The comparators' table
(docs/glow-results.md) runs the packaged config ``glow_comparators``: ``H = 4..12``, 10 seeds,
``budget = 40000`` (so that ``A^H = 4096`` at ``H = 12`` rarely censors uniform exploration):
``robustrl run glow_combination_lock --config glow_comparators``.

Expected shape (log-scale plot): GLOW/GOLF grow polynomially in ``H``, the hybrid methods with
``pi*`` data ~ 0-1, uniform exploration and zero-initialised epsilon-greedy Q-learning like
``A^H``.

Run: robustrl run glow_combination_lock --out results/glow_combination_lock --workers 2
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write
from robustrl.exact import evaluate_policy
from robustrl.stats import confidence_interval
from robustrl.validation import check_int, check_positive

NAME = "glow_combination_lock"
DESCRIPTION = "episodes to an epsilon-optimal policy on combination locks: GLOW/HyGLOW vs baselines"
METHODS = ("glow", "hyglow", "golf", "hyq", "h2o_fqi", "qlearning", "uniform")
ROUND_METHODS = ("glow", "hyglow", "golf", "hyq", "h2o_fqi")
HYBRID = ("hyglow", "hyq", "h2o_fqi")
GRID = {
    "horizon": [4, 6, 8, 10],
    "method": list(METHODS),
    "n_states": [3],
    "n_actions": [2],
    "budget": [4000],
    "epsilon": [0.1],
    "offline_episodes": [5],
}
SEEDS = 5
X_AXIS = "horizon"
WINDOW = 100  # episodes whose played policies' regret is the metric ``regret``
KAPPA = 0.01  # GLOW confidence multiplier (tests/test_glow.py uses the same on locks)
Q_EXPLORATION = 0.1


def check(params: dict) -> None:
    check_int(params["horizon"], "horizon", low=1)
    check_int(params["n_states"], "n_states", low=2)
    check_int(params["n_actions"], "n_actions", low=2)
    check_int(params["budget"], "budget", low=1)
    check_int(params["offline_episodes"], "offline_episodes", low=1)
    eps = check_positive(params["epsilon"], "epsilon")
    if eps >= 1:
        raise ValueError(f"epsilon must lie in (0, 1); got {eps}")
    if params["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {params['method']!r}")


def _value(model, policy: np.ndarray) -> float:
    return float(evaluate_policy(model, policy).value)


def _window(params: dict) -> int:
    """The regret window: the first ``min(WINDOW, budget)`` episodes."""
    return min(WINDOW, int(params["budget"]))


def _first_good(regret: np.ndarray, epsilon: float) -> int | None:
    hits = np.flatnonzero(np.asarray(regret) <= epsilon)
    return int(hits[0]) if hits.size else None


class _StopWhenSolved:
    """Duck-typed stable-baselines3 callback: stop once the last round is epsilon-optimal and
    at least ``window`` rounds were played (``agent.regret_`` is stored after every round)."""

    def __init__(self, epsilon: float, window: int) -> None:
        self.epsilon, self.window = epsilon, window

    def init_callback(self, model) -> None:
        self.model = model

    def on_training_start(self, locals_, globals_) -> None:
        pass

    def update_locals(self, locals_) -> None:
        pass

    def on_step(self) -> bool:
        regret = self.model.regret_
        return not (len(regret) >= self.window and _first_good(regret, self.epsilon) is not None)

    def on_training_end(self) -> None:
        pass


def _run_rounds(env, params: dict, seed: int, method: str) -> tuple[int | None, float]:
    """First epsilon-optimal round (0-based = online episodes before it) and the regret of the
    first ``window`` rounds of a round-based agent (``K = 1``)."""
    from robustrl.agents import GLOW, GOLF, H2OFQI, HyGLOW, HyQ
    from robustrl.data import OfflineDataset
    from robustrl.envs.combination_lock import combination_lock_value_class

    H, S, A = env.horizon, env.n_states, env.n_actions
    F = combination_lock_value_class(H, S, A)
    budget, eps = int(params["budget"]), float(params["epsilon"])
    window = _window(params)
    ds = None
    if method in HYBRID:
        code = env.code
        ds = OfflineDataset.collect(env, int(params["offline_episodes"]),
                                    lambda obs: int(code[int(obs[1])]), seed=seed)
    agent = {
        "glow": lambda: GLOW(env.model, F, "tabular", kappa=KAPPA, seed=seed),
        "hyglow": lambda: HyGLOW(env.model, F, "tabular", ds, seed=seed),
        "golf": lambda: GOLF(env.model, F, value_range=1.0, seed=seed),
        "hyq": lambda: HyQ(env.model, F, ds, seed=seed),
        "h2o_fqi": lambda: H2OFQI(env.model, F, ds, seed=seed),
    }[method]()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="H2OFQI: the progressive offline schedule")
        agent.learn(total_rounds=budget, callback=_StopWhenSolved(eps, window))
    # round t (0-based) plays its policy after t episodes of online data (K = 1)
    return _first_good(agent.regret_, eps), float(agent.regret_[:window].sum())


def _epsilon_greedy(Q: np.ndarray) -> np.ndarray:
    """The behaviour policy of the Q-learner as an ``(H, S, A)`` probability table."""
    A = Q.shape[-1]
    ties = Q == Q.max(axis=-1, keepdims=True)
    return (1.0 - Q_EXPLORATION) * ties / ties.sum(axis=-1, keepdims=True) + Q_EXPLORATION / A


def _run_qlearning(env, params: dict, seed: int) -> tuple[int | None, float]:
    rng = np.random.default_rng(seed)
    model, H, A = env.model, env.horizon, env.n_actions
    Q = np.zeros((H, env.n_states, A))
    N = np.zeros_like(Q)
    v_star, eps = 1.0, float(params["epsilon"])
    window = _window(params)
    regret, hit = 0.0, None
    for episode in range(int(params["budget"])):
        if hit is None and v_star - _value(model, Q.argmax(axis=-1)) <= eps:
            hit = episode
        if episode < window:
            regret += v_star - _value(model, _epsilon_greedy(Q))
        elif hit is not None:
            return hit, regret
        s = int(rng.choice(env.n_states, p=model.initial_distribution))
        for h in range(H):
            if rng.uniform() < Q_EXPLORATION:
                a = int(rng.integers(A))
            else:
                best = np.flatnonzero(Q[h, s] == Q[h, s].max())
                a = int(rng.choice(best))
            r = float(model.R[h, s, a])
            s2 = int(rng.choice(env.n_states, p=model.P[h, s, a]))
            target = r + (Q[h + 1, s2].max() if h < H - 1 else 0.0)
            N[h, s, a] += 1
            Q[h, s, a] += (target - Q[h, s, a]) / N[h, s, a]
            s = s2
    return hit, regret


def _run_uniform(env, params: dict, seed: int) -> int | None:
    rng = np.random.default_rng(seed)
    model, H, S, A = env.model, env.horizon, env.n_states, env.n_actions
    eps = float(params["epsilon"])
    if 1.0 - A ** (-H) <= eps:  # the uniform policy itself is already good enough
        return 0
    for episode in range(int(params["budget"])):
        s = int(rng.choice(S, p=model.initial_distribution))
        actions, total = [], 0.0
        for h in range(H):
            a = int(rng.integers(A))
            total += float(model.R[h, s, a])
            actions.append(a)
            s = int(rng.choice(S, p=model.P[h, s, a]))
        if total > 0:
            replay = np.repeat(np.asarray(actions)[:, None], S, axis=1)
            if 1.0 - _value(model, replay) <= eps:
                return episode + 1
    return None


def run_one(params: dict, seed: int) -> dict:
    from robustrl.envs.combination_lock import CombinationLockEnv

    check(params)
    code_seed = int(seed) % (2**31)
    env = CombinationLockEnv(horizon=int(params["horizon"]), n_states=int(params["n_states"]),
                             n_actions=int(params["n_actions"]), seed=code_seed)
    method, budget = params["method"], int(params["budget"])
    window = _window(params)
    if method in ROUND_METHODS:
        hit, regret = _run_rounds(env, params, code_seed, method)
    elif method == "qlearning":
        hit, regret = _run_qlearning(env, params, code_seed)
    else:
        hit = _run_uniform(env, params, code_seed)
        uniform = np.full((env.horizon, env.n_states, env.n_actions), 1.0 / env.n_actions)
        regret = window * (1.0 - _value(env.model, uniform))
    return {
        "episodes": budget if hit is None else int(hit),
        "censored": hit is None,
        "regret": float(regret),
        "offline_episodes": int(params["offline_episodes"]) if method in HYBRID else 0,
        "code": "".join(str(int(c)) for c in env.code),
    }


def _table(results: list[dict]) -> dict[tuple[int, str], tuple[float, int, int]]:
    cells: dict[tuple[int, str], list[dict]] = {}
    for rec in results:
        key = (int(rec["params"]["horizon"]), rec["params"]["method"])
        cells.setdefault(key, []).append(rec["metrics"])
    return {k: (float(np.median([m["episodes"] for m in v])),
                sum(bool(m["censored"]) for m in v), len(v)) for k, v in cells.items()}


def summary(results: list[dict]) -> dict[tuple[int, str], dict[str, float]]:
    """Per ``(horizon, method)``: mean episodes and regret with 95% Student-t half-widths
    (:func:`robustrl.stats.confidence_interval`), median, censored count and seeds."""
    cells: dict[tuple[int, str], list[dict]] = {}
    for rec in results:
        key = (int(rec["params"]["horizon"]), rec["params"]["method"])
        cells.setdefault(key, []).append(rec["metrics"])
    out = {}
    for key, ms in cells.items():
        episodes = np.array([m["episodes"] for m in ms], dtype=float)
        mean, hw = confidence_interval(episodes)
        row = {"mean": float(mean), "hw": float(hw), "median": float(np.median(episodes)),
               "censored": sum(bool(m["censored"]) for m in ms), "n": len(ms)}
        if all("regret" in m for m in ms):
            r_mean, r_hw = confidence_interval([m["regret"] for m in ms])
            row.update(regret=float(r_mean), regret_hw=float(r_hw))
        out[key] = row
    return out


def ci_table(results: list[dict]) -> str:
    """Markdown table: mean episodes +- 95% CI (median; censored) and regret over the window."""
    stats = summary(results)
    horizons = sorted({h for h, _ in stats})
    methods = [m for m in METHODS if any(k[1] == m for k in stats)]
    lines = ["| H | " + " | ".join(methods) + " |", "| --- |" + " --- |" * len(methods)]
    for h in horizons:
        cells = []
        for m in methods:
            c = stats.get((h, m))
            if c is None:
                cells.append("-")
                continue
            text = f"{c['mean']:.1f} ± {c['hw']:.1f} ({c['median']:g}"
            text += f"; {c['censored']} cens.)" if c["censored"] else ")"
            if "regret" in c:
                text += f" / {c['regret']:.1f} ± {c['regret_hw']:.1f}"
            cells.append(text)
        lines.append(f"| {h} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: list[dict]) -> str:
    """Median episodes to epsilon-optimality per horizon and method (censored/seeds), then the
    mean +- 95% CI table with the window regret (:func:`ci_table`)."""
    table = _table(results)
    horizons = sorted({h for h, _ in table})
    methods = [m for m in METHODS if any(k[1] == m for k in table)]
    head = f"{'H':>4}" + "".join(f"{m:>20}" for m in methods)
    lines = ["Median episodes to an epsilon-optimal policy (censored/seeds; censored cells count "
             "the budget, so such medians are lower bounds)", head, "-" * len(head)]
    for h in horizons:
        row = f"{h:>4}"
        for m in methods:
            med, cens, n = table.get((h, m), (float("nan"), 0, 0))
            row += f"{f'{med:g} ({cens}/{n})':>20}"
        lines.append(row)
    lines += ["", "Mean episodes ± 95% CI (median; censored) / regret of the first "
              f"min({WINDOW}, budget) episodes ± 95% CI", ci_table(results)]
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``glow_combination_lock.png``: median episodes vs H, log y; hollow = some censored."""
    from matplotlib.figure import Figure

    table = _table(results)
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for i, m in enumerate(METHODS):
        hs = sorted(h for h, mm in table if mm == m)
        if not hs:
            continue
        # log axis: 0 episodes (a hybrid method solves from its offline data) is drawn at 0.5
        ys = [max(table[(h, m)][0], 0.5) for h in hs]
        ax.plot(hs, ys, marker="os^vDP*"[i % 7], color=f"C{i}", label=m)
        cens = [(h, y) for h, y in zip(hs, ys, strict=True) if table[(h, m)][1] > 0]
        if cens:
            ax.scatter(*zip(*cens, strict=True), s=120, facecolors="none", edgecolors="k")
    hs = sorted({h for h, _ in table})
    ax.plot(hs, [2.0**h for h in hs], color="gray", ls=":", label="A^H (A = 2)")
    ax.set_yscale("log")
    ax.set_xlabel("horizon H")
    ax.set_ylabel("median episodes to epsilon-optimal (0 drawn at 0.5)")
    ax.set_title("Combination lock (S=3, A=2): circled = some seeds censored")
    ax.set_ylim(bottom=0.3)
    ax.legend(fontsize=8)
    path = Path(out_dir) / "glow_combination_lock.png"
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120), binary=True)
    return [path]
