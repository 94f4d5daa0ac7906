"""Summary tables (CSV) and generic figures (mean and 95% CI over seeds) for runner results.

``records`` are the stored cell records in cell order (grid order, seed index innermost); each
has ``params``, ``seed_index``, ``seed``, ``metrics`` and ``wall_time_s``. A *scalar* metric is
one whose stored value is a number or a bool in every record that has it; only those enter the
CSV files and the generic figures (an experiment's own ``plot`` hook sees everything).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustrl._io import atomic_write


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float))


def scalar_metrics(records: Sequence[dict]) -> list[str]:
    """Names of the scalar metrics, sorted (stored records keep no order, and a resumed run
    must write the same columns as a fresh one)."""
    names: dict[str, bool] = {}
    for rec in records:
        for k, v in rec["metrics"].items():
            names[k] = names.get(k, True) and _is_scalar(v)
    return sorted(k for k, ok in names.items() if ok)


def group_by_params(records: Sequence[dict]) -> list[tuple[dict, list[dict]]]:
    """Records grouped by their params, groups in order of first appearance."""
    groups: dict[str, tuple[dict, list[dict]]] = {}
    for rec in records:
        key = repr(sorted(rec["params"].items()))
        groups.setdefault(key, (rec["params"], []))[1].append(rec)
    return list(groups.values())


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample std and the half-width of the Student-t 95% confidence interval.

    With one value the std and the interval are undefined and returned as NaN.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    from robustrl.stats import student_t_halfwidth

    return mean, float(x.std(ddof=1)), float(student_t_halfwidth(x))


def _fmt(v: Any) -> str:
    if isinstance(v, float) and math.isnan(v):
        return ""
    if isinstance(v, bool):
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_fmt(v) for v in row])
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=False)


def param_keys(records: Sequence[dict], keys: Sequence[str] | None = None) -> list[str]:
    """``keys`` (the grid's declared order) followed by any other parameter in the records."""
    out: dict[str, None] = dict.fromkeys(keys or ())
    for rec in records:
        out.update(dict.fromkeys(sorted(rec["params"])))
    return list(out)


def write_cells_csv(path: Path, records: Sequence[dict],
                    keys: Sequence[str] | None = None) -> Path:
    """One row per cell: params, seed index, seed, scalar metrics and wall time."""
    keys, metrics = param_keys(records, keys), scalar_metrics(records)
    rows = [
        [rec["params"].get(k, "") for k in keys] + [rec["seed_index"], rec["seed"]]
        + [rec["metrics"].get(m, math.nan) for m in metrics] + [rec["wall_time_s"]]
        for rec in records
    ]
    return _write_csv(path, keys + ["seed_index", "seed"] + metrics + ["wall_time_s"], rows)


def summarize(records: Sequence[dict],
              keys: Sequence[str] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the summary: per params, ``n_seeds`` (finished seeds) and
    mean/std/ci95 of every scalar metric."""
    keys, metrics = param_keys(records, keys), scalar_metrics(records)
    header = keys + ["n_seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci95")]
    rows = []
    for params, recs in group_by_params(records):
        row: list[Any] = [params.get(k, "") for k in keys] + [len(recs)]
        for m in metrics:
            row.extend(mean_ci([float(r["metrics"][m]) for r in recs if m in r["metrics"]]))
        rows.append(row)
    return header, rows


def write_summary_csv(path: Path, records: Sequence[dict],
                      keys: Sequence[str] | None = None) -> Path:
    header, rows = summarize(records, keys)
    return _write_csv(path, header, rows)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pick_x(records: Sequence[dict], x_axis: str | None,
            keys: Sequence[str] | None) -> tuple[str | None, list[str]]:
    keys = param_keys(records, keys)
    varying = [k for k in keys
               if len({repr(r["params"].get(k)) for r in records}) > 1]
    if x_axis is not None and x_axis in keys:
        return x_axis, [k for k in varying if k != x_axis]
    for k in varying:
        if all(_is_number(r["params"].get(k)) for r in records):
            return k, [v for v in varying if v != k]
    return None, varying


def _label(params: dict, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={params.get(k)}" for k in keys) or "all"


def generic_figures(out_dir: Path, records: Sequence[dict], title: str,
                    x_axis: str | None = None, keys: Sequence[str] | None = None) -> list[Path]:
    """One PNG per scalar metric: mean against ``x_axis`` (or the first varying numeric
    parameter) with a 95% CI band over seeds, one line per combination of the other varying
    parameters; with no numeric parameter, points with error bars per parameter combination.
    """
    from matplotlib.figure import Figure

    if not records:
        return []
    x_key, series_keys = _pick_x(records, x_axis, keys)
    groups = group_by_params(records)
    paths = []
    for metric in scalar_metrics(records):
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        stats = [(p, *mean_ci([float(r["metrics"][metric]) for r in rs
                                if metric in r["metrics"]]), len(rs)) for p, rs in groups]
        if x_key is not None:
            series: dict[str, list] = {}
            for p, mean, _std, half, _n in stats:
                series.setdefault(_label(p, series_keys), []).append((p[x_key], mean, half))
            for name, pts in series.items():
                pts.sort(key=lambda t: t[0])
                x, m, h = (np.array([t[i] for t in pts], dtype=float) for i in range(3))
                (line,) = ax.plot(x, m, marker="o", ms=3, label=name)
                ok = np.isfinite(h)
                if ok.any():
                    ax.fill_between(x[ok], (m - h)[ok], (m + h)[ok], color=line.get_color(),
                                    alpha=0.2, linewidth=0)
            ax.set_xlabel(x_key)
            if len(series) > 1:
                ax.legend(fontsize=7, title=", ".join(series_keys), title_fontsize=7)
        else:
            pos = np.arange(len(stats))
            means = np.array([s[1] for s in stats])
            halves = np.array([s[3] for s in stats])
            ax.errorbar(pos, means, yerr=np.where(np.isfinite(halves), halves, 0.0), fmt="o",
                        capsize=3)
            ax.set_xticks(pos, [_label(s[0], series_keys) for s in stats], rotation=30,
                          ha="right", fontsize=7)
        n_seeds = sorted({s[4] for s in stats})
        ax.set_ylabel(metric)
        ax.set_title(f"{title}: {metric}\nmean and 95% CI over seeds (n = "
                     f"{', '.join(map(str, n_seeds))})", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric)
        paths.append(atomic_write(out_dir / f"{safe}.png",
                                  lambda fh, f=fig: f.savefig(fh, format="png", dpi=110),
                                  binary=True))
    return paths
