"""docs/algorithms/comparators.md: its python blocks run, its links resolve and its
hyperparameter tables list every constructor default of GOLF, HyQ and H2OFQI (the rules of
tests/test_docs.py and tests/test_glow_docs.py)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "algorithms" / "comparators.md"
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
ROW = re.compile(r"^\| `(\w+)` \| `([^`]*)` \|", flags=re.MULTILINE)
TEXT = PAGE.read_text(encoding="utf-8")
BLOCKS = FENCE.findall(TEXT)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"comparators.md#{i}" for i in range(len(BLOCKS))])
def test_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs_block"})


def test_page_has_a_block_and_links_resolve():
    assert BLOCKS
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT):
        if "://" not in target:
            assert (PAGE.parent / target).resolve().exists(), f"links to {target}"


@pytest.mark.parametrize("name", ["GOLF", "HyQ", "H2OFQI"])
def test_hyperparameter_table_matches_the_constructor(name):
    import robustrl.agents as agents

    heading = f"`{name}`:\n"
    section = TEXT[TEXT.index(heading):]
    section = section[:section.index("\n\n", section.index("| argument"))]
    documented = {arg: ast.literal_eval(default) for arg, default in ROW.findall(section)}
    for arg, param in inspect.signature(getattr(agents, name).__init__).parameters.items():
        if arg == "self":
            continue
        if param.default is param.empty:
            assert f"`{arg}`" in TEXT, f"required {name}({arg}) is not documented"
            continue
        assert arg in documented, f"{name}({arg}=...) is not documented"
        assert documented[arg] == param.default, (
            f"{name} default {arg}={param.default!r}, documented {documented[arg]!r}")
