"""Every ```python block of the documentation pages runs.

The pages are listed explicitly (pages written by others, e.g. results notes, hold no runnable
blocks and are not collected). Illustrative snippets use ```text or ```bash fences, so every
```python block is a real, runnable example. Each block runs in a fresh namespace inside a
temporary working directory, except on the tutorial pages of ``SEQUENTIAL``, whose blocks build
on each other and run in order in one namespace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = [
    "index.md",
    "getting-started.md",
    "evaluation.md",
    "algorithms/r2pvi.md",
    "algorithms/pevi.md",
    "algorithms/drpvi.md",
    "algorithms/drvi_l.md",
    "algorithms/drrpo.md",
    "algorithms/lsvi_ucb.md",
    "algorithms/dred.md",
    "agent-contract.md",
    "installation.md",
    "tutorials/offline-own-environment.md",
    "tutorials/online-drrpo-regret.md",
    "tutorials/neural-cpu-gpu.md",
    "byo-env.md",
]
# Tutorials whose blocks build on each other: they run in order, in one namespace.
SEQUENTIAL = {"tutorials/offline-own-environment.md"}
# Pages owned elsewhere whose python blocks another test file executes.
EXECUTED_ELSEWHERE = {
    "interop.md": "test_interop.py",
    "algorithms/glow.md": "test_glow_docs.py",
    "algorithms/hyglow.md": "test_glow_docs.py",
    "algorithms/comparators.md": "test_comparators_docs.py",
    "algorithms/neural.md": "test_neural_agents.py",
    "r2pvi-results.md": "test_verify_bounds_r2pvi.py",
}
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        if not (DOCS / page).exists():  # reported by test_every_page_exists
            continue
        text = (DOCS / page).read_text(encoding="utf-8")
        if page in SEQUENTIAL:
            out.append((f"{page}#all", "\n".join(FENCE.findall(text))))
            continue
        for i, code in enumerate(FENCE.findall(text)):
            out.append((f"{page}#{i}", code))
    return out


BLOCKS = _blocks()


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[i for i, _ in BLOCKS])
def test_docs_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs_block"})


@pytest.mark.parametrize("page", PAGES)
def test_every_page_exists(page):
    assert (DOCS / page).is_file(), f"docs/{page} is missing"


@pytest.mark.parametrize("page", [p for p in PAGES if p != "index.md"])
def test_every_page_has_a_runnable_example(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    assert FENCE.search(text), f"docs/{page} has no ```python block"


def test_index_links_resolve():
    """Every relative link of the docs pages points at an existing file."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in PAGES:
        path = DOCS / page
        if not path.exists():
            continue
        for target in link.findall(path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).resolve().exists(), f"docs/{page} links to {target}"


def test_every_python_block_in_docs_is_executed_by_some_test():
    """A new page with a ```python block must be listed here or run by its own test file."""
    tests_dir = Path(__file__).resolve().parent
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        if not FENCE.search(path.read_text(encoding="utf-8")) or page in PAGES:
            continue
        runner = EXECUTED_ELSEWHERE.get(page)
        assert runner is not None, f"docs/{page} has python blocks that no test executes"
        assert page in (tests_dir / runner).read_text(encoding="utf-8"), (
            f"tests/{runner} does not mention docs/{page}"
        )


ALGORITHM_PAGES = {
    "algorithms/r2pvi.md": ["R2PVI"],
    "algorithms/pevi.md": ["PEVI"],
    "algorithms/drpvi.md": ["DRPVI"],
    "algorithms/drvi_l.md": ["DRVI_L"],
    "algorithms/drrpo.md": ["DRRPO", "OPPO"],
    "algorithms/lsvi_ucb.md": ["LSVIUCB", "DRLSVIUCB"],
}
ROW = re.compile(r"^\| `(\w+)` \| `([^`]*)` \|", flags=re.MULTILINE)


@pytest.mark.parametrize("page", sorted(ALGORITHM_PAGES))
def test_hyperparameter_tables_match_the_constructors(page):
    """Every constructor argument is documented with its actual default."""
    import ast
    import inspect

    import robustrl.agents as agents

    documented: dict[str, list] = {}
    for name, default in ROW.findall((DOCS / page).read_text(encoding="utf-8")):
        documented.setdefault(name, []).append(ast.literal_eval(default))
    for cls_name in ALGORITHM_PAGES[page]:
        params = inspect.signature(getattr(agents, cls_name).__init__).parameters
        for name, param in params.items():
            if name in ("self", "env"):
                continue
            assert name in documented, f"docs/{page}: {cls_name}({name}=...) is not documented"
            assert param.default in documented[name], (
                f"docs/{page}: {cls_name} default {name}={param.default!r}, "
                f"documented {documented[name]}"
            )
