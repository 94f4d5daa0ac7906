"""Citations in code and docs are self-contained.

They name a paper (arXiv id, section / equation / algorithm where known) or a docs page, never a
private reference note ("note 1.4", "reference note", "pitfall 6"), an issue tracker entry
("issue 9") or a path on a development machine (``/work/...``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = (
    "robustrl",
    "agents",
    "envs",
    "theory",
    "experiments",
    "docs",
    "benchmarks",
    "tests",
    "README.md",
)
SUFFIXES = {".py", ".md", ".cfg", ".toml", ".txt", ".rst", ".yaml", ".yml", ".json", ".ipynb"}
SKIP_PARTS = {
    ".venv",
    "build",
    "dist",
    "__pycache__",
    ".git",
    ".pytest_cache",
    ".ruff_cache",
    "results",
}

FORBIDDEN = re.compile(
    r"pitfall"
    r"|reference note"
    r"|\bnotes? (?:sections? )?[0-9AB]\.[0-9]"
    r"|\bnote sections?\b"
    r"|\bnote [0-9]+\b"
    r"|\bnotes? §"
    r"|\bthe note's\b|\bof the note\b"
    r"|\bissue #?[0-9]"
    r"|glow-hyglow-dred\.md|linear-robust-rl\.md"
    r"|/work/",
    re.IGNORECASE,
)


def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            rel = p.relative_to(ROOT)
            if not p.is_file() or p.suffix not in SUFFIXES or SKIP_PARTS & set(rel.parts):
                continue
            if p.resolve() == Path(__file__).resolve():
                continue
            out.append(p)
    return out


def find_private_citations(text: str) -> list[str]:
    """Return the forbidden citation strings in ``text``."""
    return [m.group(0) for m in FORBIDDEN.finditer(text)]


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("the DRPVI estimator (note 1.7)", True),
        ("see Note B.4 for the buffer", True),
        ("**d-rectangular linear MDP** (note 1)", True),
        ("regret is derived in note 4 from the abstract", True),
        ("reference note sections 1.1 / 1.2", True),
        ("note section 2.2", True),
        ("(`robustrl.agents.r2pvi`, note §1.4–1.6)", True),
        ("clip at 0 (the note's choice)", True),
        ("not Nelder-Mead, pitfall 8", True),
        ("the neural agents (issue 9)", True),
        ("see /work/shared/reference/linear-robust-rl.md", True),
        ("arXiv:2411.18612, docs/algorithms/r2pvi.md", False),
        ("there is an issue with the seed", False),
        ("a note on the bonus: it is elliptical", False),
    ],
)
def test_pattern(text: str, bad: bool) -> None:
    assert bool(find_private_citations(text)) is bad


def test_scanned_tree_is_not_empty() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert "robustrl/_kernels/divergence.py" in files
    assert "docs/algorithms/r2pvi.md" in files
    assert "README.md" in files


def test_no_private_citations() -> None:
    hits = []
    for p in _files():
        text = p.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for bad in find_private_citations(line):
                hits.append(f"{p.relative_to(ROOT)}:{lineno}: {bad!r}: {line.strip()[:120]}")
    message = "cite the paper (arXiv id, section) or a docs page instead:\n"
    assert not hits, message + "\n".join(hits)
