"""The python blocks of docs/algorithms/glow.md and docs/algorithms/hyglow.md run, and their
hyperparameter tables list every constructor default (same rules as tests/test_docs.py, which
will take these pages over once they are listed there)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["algorithms/glow.md", "algorithms/hyglow.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
ROW = re.compile(r"^\| `(\w+)` \| `([^`]*)` \|", flags=re.MULTILINE)
BLOCKS = [(f"{p}#{i}", code) for p in PAGES
          for i, code in enumerate(FENCE.findall((DOCS / p).read_text(encoding="utf-8")))]


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[i for i, _ in BLOCKS])
def test_glow_docs_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs_block"})


def test_every_page_has_a_block_and_links_resolve():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in [*PAGES, "glow-results.md"]:
        path = DOCS / page
        text = path.read_text(encoding="utf-8")
        assert page == "glow-results.md" or FENCE.search(text)
        for target in link.findall(text):
            if "://" not in target:
                assert (path.parent / target).resolve().exists(), f"{page} links to {target}"


@pytest.mark.parametrize(("page", "cls_path"), [
    ("algorithms/glow.md", "robustrl.agents.glow.GLOW"),
    ("algorithms/glow.md", "robustrl.agents.glow_lin.GLOWLin"),
    ("algorithms/hyglow.md", "robustrl.agents.hyglow.HyGLOW"),
])
def test_hyperparameter_tables_match_the_constructors(page, cls_path):
    import importlib

    module, name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    documented: dict[str, list] = {}
    for arg, default in ROW.findall((DOCS / page).read_text(encoding="utf-8")):
        documented.setdefault(arg, []).append(ast.literal_eval(default))
    text = (DOCS / page).read_text(encoding="utf-8")
    for arg, param in inspect.signature(cls.__init__).parameters.items():
        if arg in ("self", "env") or param.kind is param.VAR_KEYWORD:
            continue
        if param.default is param.empty:  # required: named in the "Required:" line
            assert f"`{arg}`" in text, f"{page}: required {name}({arg}) is not documented"
            continue
        assert arg in documented, f"{page}: {name}({arg}=...) is not documented"
        assert param.default in documented[arg], (
            f"{page}: {name} default {arg}={param.default!r}, documented {documented[arg]}")
