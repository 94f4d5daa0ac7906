"""Small AST mutation tester for robustrl (developer tool, not part of the test suite).

Each mutant changes one node of one module's syntax tree (operator swap, comparison flip,
number +/- 1, boolean negation, ``min``/``max``-style call swap, return value -> ``None``...)
and runs the test files that cover the module against it. A mutant is *killed* when the tests
fail (or time out), *survived* when they pass. The mutated module is never written to disk: a
forked worker (heavy third-party imports done once, before forking) installs an import hook
that compiles the mutated tree under the module's real file name, so the working tree, the
editable install and Numba's cache are untouched, and several checkouts can run at once.

    python tools/mutate.py robustrl/evaluation.py                  # tests from MODULE_TESTS
    python tools/mutate.py theory/glow.py --tests tests/test_theory_glow.py
    python tools/mutate.py robustrl/evaluation.py --exclude-tests tests/test_user_facing_numbers.py

Results go to ``results/mutation/<module>.json`` and a summary (with every survivor) is
printed. See docs/dev/mutation.md for the scores and the survivors argued equivalent.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.util
import io
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# setup.cfg's package_dir: top-level folders installed under robustrl.
PACKAGE_DIRS = {"envs": "robustrl.envs", "agents": "robustrl.agents",
                "theory": "robustrl.theory", "experiments": "robustrl.experiments"}

_T = "tests/"
_NEW = [_T + "test_user_facing_numbers.py", _T + "test_twins_fixed_examples.py"]
_CORE, _AGENTS = _T + "test_mutants_core.py", _T + "test_mutants_agents.py"
_GLOW, _OFFLINE = _T + "test_mutants_glow.py", _T + "test_mutants_offline.py"
_RUNCLI, _LINEAR = _T + "test_mutants_runner_cli.py", _T + "test_mutants_linear.py"
_CORE_C = _T + "test_mutants_core_c.py"
_AGENTS_D = _T + "test_mutants_agents_d.py"
_RUNNER = [_CORE, _T + "test_runner.py", _T + "test_sweeps.py"] + [
    "--deselect=" + _T + "test_runner.py::" + name for name in (
        "test_killed_run_resumes_and_runs_every_cell_exactly_once",
        "test_interrupt_stops_the_pool_promptly_and_keeps_finished_cells")]
# The test files that cover each module (the ones run against its mutants).
MODULE_TESTS: dict[str, list[str]] = {
    "robustrl/evaluation.py": [_T + "test_robustness_metrics.py", _T + "test_evaluation.py"],
    # the runner tests that write and check summary.csv (not the signal-timing tests, whose
    # 60 s limits do not hold on a loaded machine)
    "robustrl/runner/report.py": [
        _T + "test_runner.py::" + name for name in (
            "test_failed_cell_is_retried_on_rerun_and_finished_cells_are_kept",
            "test_two_workers_give_the_same_results_as_one",
            "test_plot_redraws_from_stored_results",
            "test_report_and_plot_hooks_and_a_failing_plot_hook")],
    "agents/dred/level_buffer.py": [_T + "test_level_buffer.py"],
    "theory/r2pvi.py": [_CORE, _T + "test_theory_r2pvi.py"] + [
        # the by-hand tests of the verify-bounds functions (not the CLI runs: minutes each)
        _T + "test_verify_bounds_r2pvi.py::" + name for name in (
            "test_poor_coverage_instance_values_by_hand", "test_behaviour_gram_by_hand",
            "test_population_bound_by_hand", "test_informative_size_is_the_first_k_below_h_by_hand",
            "test_rate_contradicts_only_from_above", "test_bad_inputs_name_the_argument")],
    "theory/glow.py": [_T + "test_theory_glow.py",
                       _T + "test_glow.py::test_paper_constants_follow_algorithm_1"],
    "theory/drrpo.py": [_T + "test_theory_drrpo.py"],
    "theory/coverability.py": [_T + "test_coverability.py"],
    # the second mutation round's hand-computed files first (files not yet written are
    # left out, so a 'before' run works on a tree without them)
    "robustrl/exact.py": [_CORE, _T + "test_exact.py"],
    "robustrl/ridge.py": [_CORE, _T + "test_ridge.py"],
    "robustrl/divergences.py": [_CORE, _T + "test_divergences.py",
                                _T + "test_divergence_extremes.py"],
    "robustrl/stats.py": [_CORE, _T + "test_stats.py"],
    # not test_temporaries_of_killed_writers_are_cleaned_and_live_ones_kept: it needs a file
    # to be younger than a second, which a loaded machine does not give
    "robustrl/_io.py": [_CORE] + [_T + "test_io.py::" + name for name in (
        "test_file_lock_excludes_a_second_holder",
        "test_atomic_write_gives_the_mode_open_would_give",
        "test_an_error_without_a_path_is_reraised_naming_the_file",
        "test_a_dataset_save_removes_the_temporaries_of_a_killed_earlier_save")],
    "robustrl/_artifacts.py": [_CORE, _T + "test_loaders.py"],
    "agents/estimators.py": [_AGENTS, _T + "test_estimators.py", _T + "test_r2pvi_kl_numerics.py",
                             _T + "test_offline_agents.py", _T + "test_online_agents.py"],
    "agents/lsvi_ucb.py": [_AGENTS, _T + "test_online_agents.py"],
    "agents/_online.py": [_AGENTS, _T + "test_online_agents.py"],
    # the runner files without the two signal-timing tests (their limits need an idle machine)
    "robustrl/runner/store.py": _RUNNER,
    "robustrl/runner/config.py": _RUNNER,
    # third round, part A (GLOW, the offline agents, bonus, value iteration, data)
    "agents/glow.py": [_GLOW, _T + "test_glow.py", _T + "test_hyglow.py"],
    "agents/hyglow.py": [_GLOW, _T + "test_hyglow.py"],
    "agents/_offline.py": [_OFFLINE, _T + "test_offline_agents.py", _T + "test_estimators.py",
                           _T + "test_r2pvi_kl_numerics.py", _T + "test_streaming.py",
                           _T + "test_feature_protocol.py::"
                           "test_rewards_outside_the_truncation_range_raise_naming_the_range"],
    "robustrl/bonus.py": [_OFFLINE, _T + "test_bonus.py", _T + "test_value_iteration.py"],
    "robustrl/value_iteration.py": [_OFFLINE, _T + "test_value_iteration.py"],
    "robustrl/data.py": [_OFFLINE, _T + "test_data.py", _T + "test_streaming.py"],
    # third round, part B (runner loop/worker/backends, CLI, twins, policies, linear agents):
    # the round's hand-computed files first, then the files that exercise each module
    **{m: [_RUNCLI, *_RUNNER] for m in (
        "robustrl/runner/loop.py", "robustrl/runner/worker.py", "robustrl/runner/backends.py")},
    **{m: [_RUNCLI, _T + "test_cli_install.py", *_RUNNER] for m in (
        "robustrl/cli.py", "robustrl/_cli/bounds.py", "robustrl/_cli/install.py")},
    "robustrl/policies.py": [_LINEAR, _T + "test_policies.py", _T + "test_online_agents.py"],
    **{m: [_LINEAR, _T + "test_offline_agents.py"] for m in (
        "agents/pevi.py", "agents/r2pvi.py", "agents/drpvi.py", "agents/drvi_l.py")},
    "agents/drrpo.py": [_LINEAR, _AGENTS, _T + "test_online_agents.py"] + [
        _T + "test_loaders.py::" + name for name in (
            "test_drrpo_load_rejects_arrays_that_do_not_fit",
            "test_loaded_agent_matches_and_keeps_learning")],
    # the NumPy twins (one pooled, stratified sample): their fixed examples and the
    # twin-agreement tests of the kernels they check
    **{"robustrl/reference/" + m + ".py": [_LINEAR, *(_T + "test_" + t + ".py" for t in ts)]
       for m, ts in (("bonus", ["bonus"]), ("cave_escape", ["cave_escape_vec"]),
                     ("divergence", ["divergences", "divergence_extremes"]),
                     ("glow", ["glow"]), ("offline", ["offline_agents", "streaming"]),
                     ("policy", ["policies"]), ("ridge", ["ridge"]),
                     ("squared_bellman", ["comparators"]),
                     ("value_iteration", ["value_iteration"]))},
    # final round, part C (the core modules not measured before): the round's hand-computed
    # file first, then the files that exercise each module (the protocol file without its
    # minute-long learning runs)
    "robustrl/models.py": [_CORE_C, _T + "test_models.py", _T + "test_exact.py"],
    "robustrl/validation.py": [_CORE_C, _T + "test_data.py", _T + "test_models.py",
                               _T + "test_interop.py", _T + "test_divergences.py"],
    "robustrl/protocols.py": [_CORE_C, _T + "test_feature_protocol.py",
                              "--deselect=" + _T + "test_feature_protocol.py::test_drrpo_"
                              "learns_cartpole_with_tile_coding_and_is_evaluated_on_a_pole_"
                              "length_grid"],
    "robustrl/_policy.py": [_CORE_C, _T + "test_perturbed_control.py", _T + "test_evaluation.py",
                            _T + "test_data.py"],
    "robustrl/control_data.py": [_CORE_C, _T + "test_control_data.py"],
    "robustrl/interop.py": [_CORE_C, _T + "test_interop.py"],
    # final round, part D (the agents not measured before): the round's hand-computed file
    # first, then the files that exercise each module
    "agents/base.py": [_AGENTS_D, _T + "test_agent_contract.py", _T + "test_loaders.py"],
    "agents/glow_lin.py": [_AGENTS_D, _T + "test_glow_lin.py"],
    "agents/oppo.py": [_AGENTS_D, _T + "test_online_agents.py"],
    **{m: [_AGENTS_D, _T + "test_comparators.py"] for m in (
        "agents/_finite_class.py", "agents/golf.py", "agents/hyq.py", "agents/h2o.py")},
}

_CLI = ["verify_main", "_verify_parser", "verify_bounds_main", "_register", "_parse_ks"]
# Functions left unmutated by default (figures, argument parsers, experiment drivers; the
# scores in docs/dev/mutation.md say so): pass --skip-func to override.
DEFAULT_SKIP: dict[str, list[str]] = {
    "robustrl/evaluation.py": ["plot"],
    "robustrl/runner/report.py": ["generic_figures", "_pick_x", "_label"],
    "theory/glow.py": _CLI + ["run_glow_regret"],
    "theory/drrpo.py": _CLI,
    "theory/r2pvi.py": _CLI + ["suboptimality_curve"],
    "robustrl/cli.py": ["build_parser"],
}

# Heavy imports done once in the parent so each forked mutant run starts fast. Only
# third-party modules: a robustrl module imported here could not be mutated in the children.
PRELOAD = ("numpy", "scipy.stats", "scipy.optimize", "scipy.sparse", "numba", "gymnasium",
           "matplotlib", "matplotlib.figure", "hypothesis", "pytest", "yaml", "tqdm.auto")

_SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
               ast.MatMult: ast.Mult}
_SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
             ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
             ast.In: ast.NotIn, ast.NotIn: ast.In}
# Calls whose function name is swapped for its mirror image (np.min <-> np.max, ...).
_SWAP_NAME = {"min": "max", "max": "min", "argmin": "argmax", "argmax": "argmin",
              "ceil": "floor", "floor": "ceil", "any": "all", "all": "any",
              "minimum": "maximum", "maximum": "minimum", "sqrt": "abs", "log": "log1p",
              "exp": "expm1", "mean": "sum", "sum": "mean"}


@dataclass
class Mutant:
    index: int
    line: int
    kind: str
    before: str
    after: str
    status: str = "pending"  # killed / survived / timeout / error
    seconds: float = 0.0


def _in_annotation_or_docstring(tree: ast.AST) -> set[int]:
    """ids of nodes that are never mutated: docstrings, annotations, strings."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.update(id(n) for n in ast.walk(body[0]))
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if a is not None:
                    annotations.append(a.annotation)
        if isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for ann in annotations:
            if ann is not None:
                skip.update(id(n) for n in ast.walk(ann))
    return skip


def _func_ranges(tree: ast.AST) -> list[tuple[str, int, int]]:
    return [(n.name, n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _sites(tree: ast.AST, source_lines: list[str], skip_funcs: set[str]):
    """Yield ``(node_position, kind, apply)`` for every mutation of ``tree``.

    ``apply(node)`` mutates a *copy's* matching node in place (or returns a replacement).
    Traversal order is deterministic (ast.walk on a fresh parse), so a site is identified by
    its index in this sequence.
    """
    skip = _in_annotation_or_docstring(tree)
    ranges = [(a, b) for name, a, b in _func_ranges(tree) if name in skip_funcs]

    def skipped(node) -> bool:
        line = getattr(node, "lineno", None)
        if id(node) in skip or line is None:
            return True
        if "pragma: no mutate" in source_lines[line - 1]:
            return True
        return any(a <= line <= b for a, b in ranges)

    for node in ast.walk(tree):
        if skipped(node):
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAP_BINOP:
            new = _SWAP_BINOP[type(node.op)]
            yield node, f"binop {type(node.op).__name__}->{new.__name__}", ("op", new)
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAP_CMP:
                    new = _SWAP_CMP[type(op)]
                    yield node, f"compare {type(op).__name__}->{new.__name__}", ("cmp", i, new)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield node, f"bool {node.value}->{not node.value}", ("const", not node.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            for delta in (1, -1):
                yield node, f"number {node.value!r}{delta:+d}", ("const", node.value + delta)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop not", ("unwrap",)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            yield node, "drop unary minus", ("unwrap",)
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield node, f"boolop ->{new.__name__}", ("op", new)
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            yield node, "negate condition", ("negate",)
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            yield node, "return None", ("return_none",)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(
                f, ast.Name) else None
            if name in _SWAP_NAME:
                yield node, f"call {name}->{_SWAP_NAME[name]}", ("rename", _SWAP_NAME[name])


def _apply(node: ast.AST, action: tuple) -> ast.AST | None:
    """Apply ``action`` to ``node``; return a replacement node or None (mutated in place)."""
    kind = action[0]
    if kind == "op":
        node.op = action[1]()
    elif kind == "cmp":
        node.ops[action[1]] = action[2]()
    elif kind == "const":
        node.value = action[1]
    elif kind == "unwrap":
        return node.operand
    elif kind == "negate":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif kind == "return_none":
        node.value = ast.Constant(value=None)
    elif kind == "rename":
        if isinstance(node.func, ast.Attribute):
            node.func.attr = action[1]
        else:
            node.func.id = action[1]
    return None


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST):
        self.target, self.replacement = target, replacement

    def generic_visit(self, node):
        if node is self.target:
            return self.replacement
        return super().generic_visit(node)


def mutated_tree(source: str, index: int, skip_funcs: set[str]) -> tuple[ast.AST, str]:
    tree = ast.parse(source)
    for i, (node, kind, action) in enumerate(_sites(tree, source.splitlines(), skip_funcs)):
        if i == index:
            replacement = _apply(node, action)
            if replacement is not None:
                tree = _Replace(node, replacement).visit(tree)
            return ast.fix_missing_locations(tree), kind
    raise IndexError(index)


def list_mutants(source: str, skip_funcs: set[str]) -> list[Mutant]:
    tree = ast.parse(source)
    lines = source.splitlines()
    out = []
    for i, (node, kind, _action) in enumerate(_sites(tree, lines, skip_funcs)):
        new_tree, _ = mutated_tree(source, i, skip_funcs)
        # the smallest statement-level context: the source line before, the unparsed node after
        target = _find_same(new_tree, node)
        after = ast.unparse(target) if target is not None else "?"
        out.append(Mutant(i, node.lineno, kind, lines[node.lineno - 1].strip(),
                          after.splitlines()[0][:160] if after else after))
    return out


def _find_same(tree: ast.AST, node: ast.AST) -> ast.AST | None:
    """The statement of ``tree`` at ``node``'s line (for the report)."""
    best = None
    for n in ast.walk(tree):
        if isinstance(n, ast.stmt) and n.lineno <= node.lineno <= (n.end_lineno or n.lineno):
            if best is None or n.lineno >= best.lineno:
                best = n
    if isinstance(best, (ast.If, ast.While, ast.For, ast.FunctionDef, ast.With, ast.Try)):
        return best.test if isinstance(best, (ast.If, ast.While)) else None
    return best


def module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[0] in PACKAGE_DIRS:
        parts = PACKAGE_DIRS[parts[0]].split(".") + parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, name: str, filename: str, code):
        self.name, self.filename, self.code = name, filename, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.filename)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.filename
        exec(self.code, module.__dict__)


def _run_child(name: str, filename: str, tree, tests: list[str]) -> int:
    """In a forked child: hook the mutant in, run pytest quietly, return its exit code."""
    if tree is not None:
        code = compile(tree, filename, "exec")
        sys.meta_path.insert(0, _MutantFinder(name, filename, code))
    import pytest

    if not os.environ.get("MUTATE_VERBOSE"):
        sink = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        sys.stdout = sys.stderr = io.TextIOWrapper(open(os.devnull, "wb"))
    return int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "-W", "ignore", *tests]))


def run_one(name: str, filename: str, tree, tests: list[str], timeout: float) -> tuple[str, float]:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        os.setpgid(0, 0)
        try:
            rc = _run_child(name, filename, tree, tests)
        except BaseException:  # noqa: BLE001 - any crash of the mutant counts as killed
            rc = 3
        os._exit(rc)
    deadline = t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - t0
        time.sleep(0.05)
    rc = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    if rc == 0:
        return "survived", seconds
    if rc in (1, 2, 3) or rc < 0:
        return "killed", seconds
    return f"error(rc={rc})", seconds


def markdown_report(folder: Path) -> str:
    """Markdown table of the ``*_before.json`` / ``*_after.json`` reports in ``folder`` and the
    list of the survivors of each 'after' report."""
    rows, survivors = [], []
    for after_path in sorted(folder.glob("*_after.json")):
        after = json.loads(after_path.read_text())
        before_path = after_path.with_name(after_path.name.replace("_after", "_before"))
        before = json.loads(before_path.read_text()) if before_path.exists() else None
        b = (f"{before['killed']}/{before['total']} ({100 * before['score']:.1f}%)"
             if before else "not measured")
        rows.append(f"| `{after['module']}` | {after['total']} | {b} | {after['killed']}/"
                    f"{after['total']} ({100 * after['score']:.1f}%) |")
        for m in after["mutants"]:
            if m["status"] not in ("killed", "timeout", "identical"):
                survivors.append(f"* `{after['module']}` #{m['index']} line {m['line']}, "
                                 f"{m['kind']}: `{m['before']}` -> `{m['after']}`")
    head = ["| module | mutants | killed before | killed after |", "| --- | --- | --- | --- |"]
    return "\n".join(head + rows + ["", "Survivors after:", ""] + survivors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", nargs="?",
                        help="file to mutate, e.g. robustrl/evaluation.py")
    parser.add_argument("--all", action="store_true",
                        help="every module of MODULE_TESTS in turn (make mutate)")
    parser.add_argument("--tests", nargs="+", help="test files (default: MODULE_TESTS + new)")
    parser.add_argument("--exclude-tests", nargs="*", default=[],
                        help="test files to leave out (a 'before' score)")
    parser.add_argument("--skip-func", nargs="*", default=None,
                        help="functions not mutated (say so in the report)")
    parser.add_argument("--only", type=int, nargs="*", help="run only these mutant indices")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run a uniform random sample of N mutants (seeded by --seed): an "
                             "estimate of the score when the full run is too slow")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--survivors-of", metavar="JSON",
                        help="rerun only the survivors of an earlier report (an 'after' score "
                             "with more tests: a killed mutant stays killed); others keep their "
                             "earlier status")
    parser.add_argument("--replace", nargs=2, metavar=("OLD", "NEW"),
                        help="run the tests once against the module with the text OLD (which "
                             "must occur exactly once) replaced by NEW: does a test catch a "
                             "hand-injected bug?")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="per-mutant limit in seconds, skipping the clean run: only right "
                             "after a clean run of the same tests (e.g. another module with "
                             "the same MODULE_TESTS) on a machine too loaded to repeat it")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--report", action="store_true",
                        help="print the Markdown summary of the reports in --out and exit")
    parser.add_argument("--out", default="results/mutation", help="folder for the JSON report")
    parser.add_argument("--tag", default="", help="suffix of the JSON report's name")
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    if args.report:
        print(markdown_report(Path(args.out)))
        return 0
    if args.all:
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--all"]
        return max(main([path, *rest]) for path in MODULE_TESTS)
    if args.module is None:
        parser.error("give a module or --all")
    path = args.module
    source = Path(path).read_text()
    filename = str((ROOT / path).resolve())
    skip_funcs = set(DEFAULT_SKIP.get(path, []) if args.skip_func is None else args.skip_func)
    mutants = list_mutants(source, skip_funcs)
    if args.list:
        for m in mutants:
            print(f"{m.index:4d} L{m.line:<4d} {m.kind:32s} {m.after}")
        return 0
    # the new hand-computed files first: they are fast, so most kills cost a second or two
    tests = args.tests or ([t for t in _NEW if Path(t).exists()] + MODULE_TESTS.get(path, []))
    tests = [t for t in tests if t not in set(args.exclude_tests)
             and (t.startswith("-") or Path(t.split("::")[0]).exists())]
    if not tests:
        parser.error(f"no tests known for {path}; pass --tests")
    name = module_name(path)
    for mod in PRELOAD:
        try:
            __import__(mod)
        except ImportError:
            pass
    leaked = sorted(m for m in sys.modules if m == name)
    if leaked:
        raise SystemExit(f"{name} was imported before forking; it cannot be mutated")

    if args.replace:
        old, new = args.replace
        if source.count(old) != 1:
            raise SystemExit(f"--replace: {old!r} occurs {source.count(old)} times in {path}")
        tree = ast.parse(source.replace(old, new))
        status, seconds = run_one(name, filename, tree, tests, timeout=1800)
        print(f"{path}: {old!r} -> {new!r}: {status} ({seconds:.1f}s) by {' '.join(tests)}")
        return 0 if status == "killed" else 1

    if args.timeout is None:
        status, base = run_one(name, filename, None, tests, timeout=1800)
        if status != "survived":
            raise SystemExit(f"the unmutated tests do not pass ({status}): {' '.join(tests)}")
        # generous: the machine is shared, and a timeout must mean a hang, not a slow run
        timeout = max(60.0, 5 * base)
    else:  # the caller has just seen the same tests pass unmutated
        base, timeout = float("nan"), args.timeout
    print(f"{path} ({name}): {len(mutants)} mutants, tests {' '.join(tests)}; "
          f"clean run {base:.1f}s, timeout {timeout:.0f}s", flush=True)
    chosen = [m for m in mutants if args.only is None or m.index in set(args.only)]
    if args.sample is not None and args.sample < len(chosen):
        pick = np.random.default_rng(args.seed).choice(len(chosen), args.sample, replace=False)
        chosen = [chosen[i] for i in sorted(pick)]
    earlier: dict[int, dict] = {}
    if args.survivors_of:
        old = json.loads(Path(args.survivors_of).read_text())
        earlier = {m["index"]: m for m in old["mutants"]}
        chosen = [m for m in chosen if m.index in earlier]
        if len(chosen) != len(earlier) or any(
                earlier[m.index]["kind"] != m.kind or earlier[m.index]["line"] != m.line
                for m in chosen):
            raise SystemExit(f"{args.survivors_of} lists other mutants (the module changed)")
    for m in chosen:
        tree, _ = mutated_tree(source, m.index, skip_funcs)
        if ast.unparse(tree) == ast.unparse(ast.parse(source)):
            m.status = "identical"
            continue
        if m.index in earlier and earlier[m.index]["status"] in ("killed", "timeout"):
            m.status, m.seconds = earlier[m.index]["status"], earlier[m.index]["seconds"]
            continue
        m.status, m.seconds = run_one(name, filename, copy.deepcopy(tree), tests, timeout)
        flag = "" if m.status in ("killed", "timeout") else "   <-- " + m.status
        print(f"{m.index:4d} L{m.line:<4d} {m.kind:30s} {m.status:8s} {m.seconds:5.1f}s{flag}",
              flush=True)
    for m in chosen:  # a timeout must reproduce with twice the limit to count as killed
        if m.status == "timeout":
            tree, _ = mutated_tree(source, m.index, skip_funcs)
            m.status, m.seconds = run_one(name, filename, tree, tests, 2 * timeout)
            print(f"{m.index:4d} rerun of a timeout: {m.status} {m.seconds:5.1f}s", flush=True)
    counted = [m for m in chosen if m.status != "identical"]
    killed = sum(m.status in ("killed", "timeout") for m in counted)
    survivors = [m for m in counted if m.status not in ("killed", "timeout")]
    score = killed / len(counted) if counted else float("nan")
    print(f"\n{path}: {killed}/{len(counted)} killed ({100 * score:.1f}%), "
          f"{len(survivors)} survived")
    for m in survivors:
        print(f"  SURVIVED #{m.index} L{m.line} {m.kind}: {m.before!r} -> {m.after!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"module": path, "tests": tests, "skip_funcs": sorted(skip_funcs),
              "sampled": args.sample, "of": len(mutants),
              "killed": killed, "total": len(counted), "score": score,
              "mutants": [asdict(m) for m in chosen]}
    stem = path.replace("/", "_").removesuffix(".py") + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
