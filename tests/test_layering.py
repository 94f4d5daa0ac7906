"""Layering runs one way: core <- agents / envs <- theory <- experiments <- CLI.

Checked on the import statements (module level and inside functions) of every source file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THEORY = ("robustrl.runner", "robustrl.experiments", "robustrl.cli", "robustrl._cli",
                "robustrl._runner_exec", "robustrl._runner_report")  # (the old runner)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def _upward(files, banned) -> dict[str, list[str]]:
    found = {}
    for f in files:
        bad = sorted(m for m in _imports(f) if m.startswith(banned))
        if bad:
            found[str(f.relative_to(ROOT))] = bad
    return found


def test_theory_imports_nothing_from_the_runner_experiments_or_cli():
    assert _upward(sorted((ROOT / "theory").glob("*.py")), ABOVE_THEORY) == {}


def test_agents_and_envs_import_nothing_from_theory_or_above():
    files = [f for f in sorted((ROOT / "agents").rglob("*.py")) if "dred" not in f.parts]
    files += sorted((ROOT / "envs").glob("*.py"))
    assert _upward(files, (*ABOVE_THEORY, "robustrl.theory")) == {}


def test_dred_agents_import_nothing_from_the_runner():
    files = sorted((ROOT / "agents" / "dred").glob("*.py"))
    assert _upward(files, (*ABOVE_THEORY, "robustrl.theory")) == {}


def test_the_layering_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from robustrl.runner import progress\n")
    assert _imports(bad) == {"robustrl.runner"}
