"""Growing sweeps (more seeds / grid values into an existing DIR) and conditional grids."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from robustrl.cli import main as cli_main
from robustrl.runner import (
    RunConfig,
    RunnerError,
    cell_key,
    cell_seed,
    expand_cells,
    load_experiment,
    load_results,
    plot_results,
    resolve_config,
    run_experiment,
)


def _cells(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_more_seeds_run_only_the_new_cells(tmp_path):
    out = tmp_path / "toy"
    base = ["run", "toy_sweep", "--out", str(out), "--workers", "1", "--quiet"]
    assert cli_main([*base, "--seeds", "3"]) == 0
    first = _cells(out)
    assert len(first) == 6 * 3  # 3 perturbations x 2 episode counts x 3 seeds
    assert cli_main([*base, "--seeds", "5"]) == 0
    second = _cells(out)
    assert len(second) == 6 * 5
    # the 18 old cells were not rewritten: only the 2 x 6 new ones ran
    assert {k: second[k] for k in first} == first
    rows = _summary(out)
    assert len(rows) == 6 and {r["n_seeds"] for r in rows} == {"5"}
    manifest, records = load_results(out)  # the rewritten manifest passes the hash check
    assert manifest["config"]["seeds"] == 5 and len(records) == 30
    # fewer seeds than recorded: nothing runs, the manifest keeps 5
    report = run_experiment("toy_sweep", out, seeds=2, workers=1, quiet=True)
    assert report.ran == 0 and len(report.cells) == 30 and _cells(out) == second
    assert load_results(out)[0]["config"]["seeds"] == 5


def test_one_more_grid_value_runs_only_its_cells(tmp_path):
    out = tmp_path / "toy"
    run_experiment("toy_sweep", out, seeds=2, workers=1, quiet=True)
    before = _cells(out)
    report = run_experiment("toy_sweep", out, sets=["perturbation=[0.0, 0.25]"], seeds=2,
                            workers=1, quiet=True)
    assert report.resumed == 12 and report.ran == 2 * 2  # 2 episode counts x 2 seeds
    new = {k: v for k, v in _cells(out).items() if k not in before}
    assert {json.loads((out / "cells" / k).read_text())["params"]["perturbation"]
            for k in new} == {0.25}
    manifest = json.loads((out / "manifest.json").read_text())
    # union in a stable order: the recorded values first, then the new one
    assert manifest["config"]["grid"]["perturbation"] == [0.0, 0.5, 1.0, 0.25]
    assert manifest["created"] and manifest["grown"]
    assert len(_summary(out)) == 8


def test_a_grown_manifest_edited_by_hand_is_still_refused(tmp_path):
    out = tmp_path / "toy"
    run_experiment("toy_sweep", out, seeds=1, workers=1, quiet=True)
    run_experiment("toy_sweep", out, seeds=2, workers=1, quiet=True)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["seeds"] = 7
    path.write_text(json.dumps(manifest))
    with pytest.raises(RunnerError, match="was the manifest edited"):
        run_experiment("toy_sweep", out, seeds=8, workers=1, quiet=True)


COND = textwrap.dedent(
    '''
    NAME = "cond"
    GRID = {"method": ["base", "robust", "other"], "lam": [0.1, 0.2], "n": [3]}
    SEEDS = 2
    CONDITIONS = {"lam": {"method": ["robust", "other"]}}

    def check(params):
        if params["method"] == "base" and params["lam"] is not None:
            raise ValueError("base takes no lam")

    def run_one(params, seed):
        return {"lam": -1.0 if params["lam"] is None else params["lam"], "seed": seed}
    '''
)


def _cond(tmp_path: Path, conditions: bool = True) -> Path:
    text = COND if conditions else COND.replace("CONDITIONS", "_UNUSED").replace(
        'and params["lam"] is not None', "and False")
    path = tmp_path / ("cond.py" if conditions else "cond_plain.py")
    path.write_text(text)
    return path


def test_conditional_parameter_has_no_redundant_cells(tmp_path):
    with_cond = load_experiment(_cond(tmp_path))
    plain = load_experiment(_cond(tmp_path, conditions=False))
    assert with_cond.n_points == 1 + 2 * 2 and plain.n_points == 3 * 2
    report = run_experiment(with_cond, tmp_path / "out", workers=1, quiet=True)
    assert report.complete and len(report.cells) == 5 * 2
    params = [r["params"] for r in report.records[::2]]
    assert params[0] == {"method": "base", "lam": None, "n": 3}
    assert [p["lam"] for p in params[1:]] == [0.1, 0.2, 0.1, 0.2]
    # the cells that still exist keep the keys and seeds they have without the condition
    kept = {(c.key, c.seed) for c in report.cells if c.params["method"] != "base"}
    old = {(c.key, c.seed) for c in expand_cells(resolve_config(plain))
           if c.params["method"] != "base"}
    assert kept == old
    # growing a conditional sweep: one more lam value adds no "base" cell
    grown = run_experiment(with_cond, tmp_path / "out", sets=["lam=0.3"], workers=1,
                           quiet=True)
    assert grown.ran == 2 * 2 and len(grown.cells) == 7 * 2
    assert len(load_results(tmp_path / "out")[1]) == 14


@pytest.mark.parametrize(("conditions", "message"), [
    ('{"mu": {"method": ["robust"]}}', "CONDITIONS key 'mu' is not a GRID key"),
    ('{"lam": {"nope": ["robust"]}}', "names 'nope'"),
    ('{"lam": {"lam": [0.1]}}', "names 'lam'"),
    ('{"lam": ["robust"]}', "must be a non-empty dict"),
])
def test_bad_conditions_are_refused(tmp_path, conditions, message):
    path = tmp_path / "bad.py"
    path.write_text(COND.replace('{"lam": {"method": ["robust", "other"]}}', conditions))
    with pytest.raises(RunnerError, match=message):
        load_experiment(path)


def test_r2pvi_fig2_sweeps_lam_only_for_the_robust_methods():
    exp = load_experiment("r2pvi_fig2")
    sweep = resolve_config(exp, sets=["lam=[0.025, 0.1]"])
    plain = RunConfig(sweep.experiment, sweep.grid, sweep.seeds)
    assert len(expand_cells(plain)) == 7 * 5 * 2 * 3
    cells = expand_cells(sweep)
    assert len(cells) == (1 + 6 * 2) * 5 * 3  # PEVI once per setting, not once per lam
    # every robust-method cell keeps its key and seed; PEVI's carry lam None
    robust = {(c.key, c.seed) for c in expand_cells(plain) if c.params["method"] != "pevi"}
    assert {(c.key, c.seed) for c in cells if c.params["method"] != "pevi"} == robust
    assert {c.params["lam"] for c in cells if c.params["method"] == "pevi"} == {None}
    # and the default grid's robust cells are the ones earlier versions ran
    default = resolve_config(exp)
    for c in expand_cells(default):
        if c.params["method"] != "pevi":
            assert c.key == cell_key(exp.name, c.params, c.seed_index)
            assert c.seed == cell_seed(exp.name, c.params, c.seed_index)
            assert c.params["lam"] == 0.025


def test_metric_figures_false_skips_the_per_metric_figures_until_plot_asks(tmp_path):
    path = tmp_path / "own_figures.py"
    path.write_text(COND.replace("CONDITIONS", "_UNUSED").replace(
        'and params["lam"] is not None', "and False") + "\nMETRIC_FIGURES = False\n")
    exp = load_experiment(path)
    assert exp.metric_figures is False and load_experiment(_cond(tmp_path)).metric_figures
    out = tmp_path / "out"
    report = run_experiment(exp, out, workers=1, quiet=True)
    assert report.complete and (out / "summary.csv").exists()
    assert not list((out / "figures").glob("*.png"))
    plot_results(out, quiet=True, experiment=exp)  # the declaration holds on re-drawing
    assert not list((out / "figures").glob("*.png"))
    plot_results(out, quiet=True, experiment=exp, metric_figures=True)
    assert list((out / "figures").glob("*.png"))


def test_metric_figures_must_be_a_bool(tmp_path):
    path = tmp_path / "bad_figures.py"
    path.write_text(COND + "\nMETRIC_FIGURES = 'no'\n")
    with pytest.raises(RunnerError, match="METRIC_FIGURES must be True or False; got 'no'"):
        load_experiment(path)
