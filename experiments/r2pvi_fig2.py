"""R2PVI paper, Figure 2: fit time against the feature dimension d and the dataset size N.

arXiv:2411.18612 American put, docs/r2pvi-results.md. Each cell collects N trajectories of the
American put option (H = 20,
always-hold behaviour policy as the authors' code, hat features of dimension d) and times
**only the fit** (the backward pass over the dataset) of one learner, after an untimed warm-up
fit on a small dataset so that Numba compilation is not counted; ``fit_seconds`` is the
minimum over ``repeats`` fits of the same data (``fit_seconds_median`` their median).
``setting`` is ``"d=D N=N"``: the paper's Fig. 2(a) varies d in {30, 60, 120} at N = 1000
and Fig. 2(b) varies N in {1000, 5000, 10000} at d = 30, so the default grid holds those five
settings, not the full product.

``method``:

* ``pevi``, ``r2pvi-tv``, ``r2pvi-kl``: PEVI and R2PVI (closed-form TV and KL estimates);
* ``drpvi``: DRPVI with this package's exact dual (sort and cumulative sums, Numba);
* ``drvi-l``: DRVI-L with this package's golden-section dual (Numba);
* ``drpvi-nm``, ``drvi-l-nm``: the same learners with each factor's dual solved by
  ``scipy.optimize.minimize(method="Nelder-Mead")`` started at ``alpha = H/2`` -- an
  explicitly labelled *reproduction of the authors' solver cost* (Nelder-Mead and a matrix inverse
  per Q evaluation; docs/algorithms/r2pvi.md),
  not a recommended solver.

The ratio of each method's time to PEVI's at the same setting and seed is stored per cell
(``ratio_to_pevi``) by the report, which pairs cells; absolute seconds depend on the machine.
Hyperparameters: beta = 0.1, ridge = 1, lambda = rho = 0.025 (the authors' put settings).

Run: OPENBLAS_NUM_THREADS=1 robustrl run r2pvi_fig2 --out results/r2pvi_fig2 --workers 1
(timings: one worker, single-threaded BLAS, nothing else running if possible)
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from robustrl._io import atomic_write
from robustrl.agents.estimators import RowEstimator, data_v_min, radius_row

NAME = "r2pvi_fig2"
DESCRIPTION = ("R2PVI paper Fig. 2: fit time vs d and vs N on the American put "
               "(PEVI, R2PVI-TV/KL, DRPVI, DRVI-L; exact and Nelder-Mead duals)")
METHODS = ("pevi", "r2pvi-tv", "r2pvi-kl", "drpvi", "drvi-l", "drpvi-nm", "drvi-l-nm")
GRID = {
    "method": list(METHODS),
    "setting": ["d=30 N=1000", "d=60 N=1000", "d=120 N=1000", "d=30 N=5000",
                "d=30 N=10000"],
    "lam": [0.025],
    "beta": [0.1],
    "ridge": [1.0],
    "repeats": [3],
}
SEEDS = 3
# PEVI has no lambda/rho: lam is swept only for the robust methods and is None in PEVI's cells,
# so `--set 'lam=[...]'` runs PEVI once per setting and seed, not once per lambda.
CONDITIONS = {"lam": {"method": [m for m in METHODS if m != "pevi"]}}
LABEL = {"pevi": "PEVI", "r2pvi-tv": "R2PVI-TV", "r2pvi-kl": "R2PVI-KL", "drpvi": "DRPVI",
         "drvi-l": "DRVI-L", "drpvi-nm": "DRPVI (Nelder-Mead)",
         "drvi-l-nm": "DRVI-L (Nelder-Mead)"}
# arXiv:2411.18612 American put, docs/r2pvi-results.md, digitised from the paper's Fig. 2 (seconds,
# Intel i5-11300H).
PAPER_SECONDS = {
    "pevi": {"d=30 N=1000": 0.80, "d=60 N=1000": 1.84, "d=120 N=1000": 5.56,
             "d=30 N=5000": 4.07, "d=30 N=10000": 8.15},
    "r2pvi-tv": {"d=30 N=1000": 1.08, "d=60 N=1000": 1.95, "d=120 N=1000": 4.98,
                 "d=30 N=5000": 5.05, "d=30 N=10000": 8.99},
    "r2pvi-kl": {"d=30 N=1000": 1.04, "d=60 N=1000": 1.79, "d=120 N=1000": 6.31,
                 "d=30 N=5000": 5.02, "d=30 N=10000": 9.03},
    "drpvi": {"d=30 N=1000": 1.70, "d=60 N=1000": 3.49, "d=120 N=1000": 16.66,
              "d=30 N=5000": 6.77, "d=30 N=10000": 13.40},
    "drvi-l": {"d=30 N=1000": 1.64, "d=60 N=1000": 4.12, "d=120 N=1000": 16.20,
               "d=30 N=5000": 7.01, "d=30 N=10000": 15.04},
}


def parse_setting(text: str) -> tuple[int, int]:
    """``"d=30 N=1000"`` -> (30, 1000); ValueError names the form."""
    try:
        parts = dict(p.split("=") for p in str(text).split())
        d, n = int(parts["d"]), int(parts["N"])
    except (ValueError, KeyError):
        raise ValueError(f"setting must look like 'd=30 N=1000'; got {text!r}") from None
    if d < 1 or n < 1 or set(parts) != {"d", "N"}:
        raise ValueError(f"setting must look like 'd=30 N=1000' with d, N >= 1; got {text!r}")
    return d, n


def check(params: dict) -> None:
    from robustrl.validation import check_int, check_nonnegative, check_positive

    if params["method"] not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {params['method']!r}")
    parse_setting(params["setting"])
    if params["lam"] is not None:  # None: PEVI's cells (see CONDITIONS)
        check_positive(params["lam"], "lam")
    check_nonnegative(params["beta"], "beta")
    check_positive(params["ridge"], "ridge")
    check_int(params["repeats"], "repeats", low=1)


# ----------------------------------------------------------------- Nelder-Mead reproductions
def _nelder_mead_max(objective, start: float) -> float:
    """``max_alpha objective(alpha)`` by SciPy's Nelder-Mead from ``start`` (as the authors)."""
    from scipy.optimize import minimize

    res = minimize(lambda a: -objective(float(a[0])), x0=np.array([start]),
                   method="Nelder-Mead")
    return float(-res.fun)


class NelderMeadTV(RowEstimator):
    """DRPVI's per-factor TV dual solved by Nelder-Mead from ``start`` (timing reproduction of
    the authors' solver)."""

    def __init__(self, rho, v_min, start: float) -> None:
        self.rho, self.v_min, self.start = rho, v_min, start

    def estimate(self, h, xi, values, in_regression):
        v_min = data_v_min(values, in_regression) if self.v_min == "data" else float(self.v_min)
        rho = radius_row(self.rho, h, xi.shape[0])
        out = np.empty(xi.shape[0])
        for i, row in enumerate(xi):
            out[i] = _nelder_mead_max(
                lambda a, row=row, r=rho[i]: float(row @ np.minimum(values, a))
                - r * (a - v_min), self.start)
        return out


class NelderMeadKL(RowEstimator):
    """DRVI-L's per-factor KL dual solved by Nelder-Mead from ``start`` (timing reproduction
    of the authors' solver)."""

    def __init__(self, rho, z_floor: float, start: float) -> None:
        self.rho, self.z_floor, self.start = rho, z_floor, start

    def estimate(self, h, xi, values, in_regression):
        rho = radius_row(self.rho, h, xi.shape[0])
        out = np.empty(xi.shape[0])
        shift = float(values.min()) if values.size else 0.0

        def dual(a, row, r):
            if a <= 0.0:
                return -1e10
            z = max(float(row @ np.exp(-(values - shift) / a)), self.z_floor)
            return shift - a * np.log(z) - a * r

        for i, row in enumerate(xi):
            out[i] = _nelder_mead_max(lambda a, row=row, r=rho[i]: dual(a, row, r), self.start)
        return out


def make_agent(method: str, env, lam: float | None, beta: float, ridge: float):
    from robustrl.agents import DRPVI, DRVI_L, PEVI, R2PVI

    if method == "pevi":
        return PEVI(env, beta=beta, ridge=ridge)
    if method in ("r2pvi-tv", "r2pvi-kl"):
        return R2PVI(env, divergence=method[-2:], lam=lam, beta=beta, ridge=ridge)
    if method == "drpvi":
        return DRPVI(env, rho=lam, beta=beta, ridge=ridge)
    if method == "drvi-l":
        return DRVI_L(env, rho=lam, beta=beta, ridge=ridge)
    start = env.unwrapped.horizon / 2.0  # the authors' starting point H/2
    if method == "drpvi-nm":
        return DRPVI(env, rho=lam, beta=beta, ridge=ridge,
                     estimator=NelderMeadTV(lam, 0.0, start))
    return DRVI_L(env, rho=lam, beta=beta, ridge=ridge,
                  estimator=NelderMeadKL(lam, 1e-6, start))


def run_one(params: dict, seed: int) -> dict:
    from robustrl.data import OfflineDataset
    from robustrl.envs import AmericanPutEnv

    d, n = parse_setting(params["setting"])
    env = AmericanPutEnv(feature_dim=d)
    env.reset(seed=seed)
    lam = None if params["lam"] is None else float(params["lam"])
    args = (params["method"], env, lam, float(params["beta"]),
            float(params["ridge"]))
    make_agent(*args).fit(OfflineDataset.collect(env, 20, behaviour_policy=lambda o: 0,
                                                 seed=seed))  # warm-up: JIT, imports
    data = OfflineDataset.collect(env, n, behaviour_policy=lambda o: 0, seed=seed)
    times = []
    for _ in range(int(params["repeats"])):
        agent = make_agent(*args)
        start = time.perf_counter()
        agent.fit(data)
        times.append(time.perf_counter() - start)
    # the minimum is the least disturbed by other processes on a shared machine
    return {"fit_seconds": float(min(times)), "fit_seconds_median": float(np.median(times)),
            "d": d, "N": n}


# ----------------------------------------------------------------------------- reporting
def mean_seconds(results: list[dict]) -> dict:
    """``{(method, setting): (mean seconds, mean ratio to PEVI or None)}`` over seeds; the
    ratio pairs each cell with PEVI's cell of the same setting and seed."""
    times: dict = defaultdict(dict)
    for rec in results:
        p = rec["params"]
        times[(p["method"], p["setting"])][rec["seed_index"] if "seed_index" in rec
                                           else rec["seed"]] = rec["metrics"]["fit_seconds"]
    out = {}
    for (method, setting), by_seed in times.items():
        base = times.get(("pevi", setting), {})
        ratios = [t / base[s] for s, t in by_seed.items() if s in base and base[s] > 0]
        out[(method, setting)] = (float(np.mean(list(by_seed.values()))),
                                  float(np.mean(ratios)) if ratios else None)
    return out


def _settings(results: list[dict]) -> list[str]:
    seen = []
    for rec in results:
        s = rec["params"]["setting"]
        if s not in seen:
            seen.append(s)
    return sorted(seen, key=lambda s: (parse_setting(s)[1], parse_setting(s)[0]))


def report(results: list[dict]) -> str:
    """Seconds and ratio to PEVI per method and setting, the paper's beside."""
    table = mean_seconds(results)
    settings = _settings(results)
    methods = [m for m in METHODS if any((m, s) in table for s in settings)]
    lines = ["R2PVI Fig. 2 reproduction: fit time in seconds (mean over seeds), "
             "[ratio to PEVI], (paper: seconds / ratio)"]
    head = f"{'method':<22}" + "".join(f"{s:>30}" for s in settings)
    lines += [head, "-" * len(head)]
    for m in methods:
        row = f"{LABEL[m]:<22}"
        for s in settings:
            secs, ratio = table.get((m, s), (None, None))
            paper = PAPER_SECONDS.get(m, {}).get(s)
            ppevi = PAPER_SECONDS["pevi"].get(s)
            cell = "-" if secs is None else f"{secs:.3f}"
            cell += "" if ratio is None else f" [{ratio:.2f}x]"
            if paper is not None:
                cell += f" ({paper:.2f}/{paper / ppevi:.2f}x)"
            row += f"{cell:>30}"
        lines.append(row)
    return "\n".join(lines)


def plot(results: list[dict], out_dir: Path) -> list[Path]:
    """``r2pvi_fig2.png``: ratio to PEVI against d (N = 1000) and against N (d = 30), seconds
    on a log axis in the lower panels."""
    from matplotlib.figure import Figure

    table = mean_seconds(results)
    settings = _settings(results)
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    for col, (axis, fixed) in enumerate((("d", ("N", 1000)), ("N", ("d", 30)))):
        pts = []
        for s in settings:
            d, n = parse_setting(s)
            vals = {"d": d, "N": n}
            if vals[fixed[0]] == fixed[1]:
                pts.append((vals[axis], s))
        pts.sort()
        if not pts:
            continue
        xs = [x for x, _ in pts]
        for m in METHODS:
            if not all((m, s) in table for _, s in pts):
                continue
            style = {"ls": "--"} if m.endswith("-nm") else {}
            secs = [table[(m, s)][0] for _, s in pts]
            axes[1, col].plot(xs, secs, marker="o", label=LABEL[m], **style)
            ratios = [table[(m, s)][1] for _, s in pts]
            if None not in ratios:
                axes[0, col].plot(xs, ratios, marker="o", label=LABEL[m], **style)
            if m in PAPER_SECONDS and all(s in PAPER_SECONDS[m] for _, s in pts):
                axes[0, col].plot(xs, [PAPER_SECONDS[m][s] / PAPER_SECONDS["pevi"][s]
                                       for _, s in pts], ls=":", color="gray", alpha=0.5)
        axes[0, col].set_title(f"fit time / PEVI's vs {axis} ({fixed[0]}={fixed[1]}); "
                               "dotted gray: paper")
        axes[1, col].set_title(f"fit seconds vs {axis} ({fixed[0]}={fixed[1]})")
        axes[0, col].set_yscale("log")
        axes[1, col].set_yscale("log")
        for ax in axes[:, col]:
            ax.set_xlabel(axis)
            ax.set_xticks(xs)
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    return [atomic_write(Path(out_dir) / "r2pvi_fig2.png",
                         lambda fh: fig.savefig(fh, format="png", dpi=80), binary=True)]


if __name__ == "__main__":
    from robustrl.cli import main

    sys.exit(main(["run", NAME, *sys.argv[1:]]))
