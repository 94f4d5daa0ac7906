"""The documentation site builds with ``mkdocs build --strict`` and documents the public API.

``--strict`` turns every warning into a failure: a broken link or anchor between pages, a page
missing from the nav, an API identifier mkdocstrings cannot collect, a docstring warning. On the
built HTML, every public agent (``robustrl.agents.__all__``), environment class and theory
function (``robustrl.theory.__all__``) must have an API entry; the lists come from the package,
so a new agent, environment or bound without an API entry fails here.
"""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = re.compile(r'\bid="(robustrl\.[\w.]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "mkdocstrings_handlers.python", "material", "pymdownx"):
        pytest.importorskip(module, reason="the docs extra is not installed (.[docs])")
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    return out


def _api_anchors(site: Path, page: str) -> set[str]:
    return set(ANCHOR.findall((site / "api" / page / "index.html").read_text(encoding="utf-8")))


def _documented(anchors: set[str], name: str) -> bool:
    """An API entry whose last path component is ``name`` (any module path in robustrl)."""
    return any(a.rsplit(".", 1)[-1] == name for a in anchors)


def test_every_public_agent_has_an_api_entry(site):
    import robustrl.agents as agents

    anchors = _api_anchors(site, "agents")
    missing = [n for n in agents.__all__ if not _documented(anchors, n)]
    assert not missing, f"docs/api/agents.md has no entry for robustrl.agents.{missing}"


def test_every_environment_class_has_an_api_entry(site):
    import robustrl.envs as envs

    anchors = _api_anchors(site, "envs")
    classes = [n for n in envs.__all__ if inspect.isclass(getattr(envs, n))]
    assert {"SimulatedLinearMDPEnv", "CaveEscapeEnv", "LinearMDPEnv"} <= set(classes)
    missing = [n for n in classes if not _documented(anchors, n)]
    assert not missing, f"docs/api/envs.md has no entry for robustrl.envs.{missing}"


def test_every_theory_function_has_an_api_entry(site):
    import robustrl.theory as theory

    anchors = _api_anchors(site, "theory")
    assert len(theory.__all__) >= 10
    missing = [n for n in theory.__all__ if not _documented(anchors, n)]
    assert not missing, f"docs/api/theory.md has no entry for robustrl.theory.{missing}"


def test_sphinx_roles_are_rendered(site):
    """No raw ``:func:`` / ``:class:`` role survives in the API pages' text, and roles to
    documented objects became links."""
    for page in sorted((site / "api").glob("*/index.html")):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        raw = re.findall(r":(?:func|class|meth|mod|attr|data|exc):`", text)
        assert not raw, f"{page.parent.name}: {len(raw)} raw Sphinx roles"
    agents = (site / "api" / "agents" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'class="autorefs autorefs-internal"[^>]*href="[^"]*#robustrl\.', agents)


def test_math_is_rendered_by_arithmatex(site):
    """Every algorithm page with an "Equations" section writes them in LaTeX, which the site
    turns into MathJax markup (pymdownx.arithmatex), and loads MathJax."""
    pages = sorted(p for p in (ROOT / "docs" / "algorithms").glob("*.md")
                   if re.search(r"^## Equations", p.read_text(encoding="utf-8"), re.MULTILINE))
    assert len(pages) >= 8
    for page in pages:
        html_page = (site / "algorithms" / page.stem / "index.html").read_text(encoding="utf-8")
        assert 'class="arithmatex"' in html_page, f"{page.name}: no rendered math"
        assert "javascripts/mathjax.js" in html_page and "tex-mml-chtml.js" in html_page


def test_figures_and_changelog_are_on_the_site(site):
    for fig in sorted((ROOT / "docs" / "figures").glob("*.png")):
        assert (site / "figures" / fig.name).is_file(), fig.name
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    version = re.search(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(),
                        flags=re.MULTILINE)
    assert version and version.group(1) in changelog


def test_every_docs_page_is_in_the_nav():
    """mkdocs reports pages missing from the nav only at INFO level; the site must list all."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use !!python/name tags (material's emoji); none are needed to read the nav
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)["nav"]

    def pages(item):
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            for x in item:
                yield from pages(x)
        elif isinstance(item, dict):
            for x in item.values():
                yield from pages(x)

    listed = set(pages(nav))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert not on_disk - listed, f"pages missing from mkdocs.yml's nav: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"nav entries without a page: {sorted(listed - on_disk)}"


def test_readme_links_are_absolute():
    """The README is the package index's project page, where relative links break."""
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert not relative, f"README.md links that break on an index page: {relative}"


DRED_LABEL = re.compile(r"(?<![\w#\[.])B\.(\d+)(?:\.\d+)?(?![\w\]])")
DRED_PAGE = ROOT / "docs" / "algorithms" / "dred.md"


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def test_dred_topic_labels_can_be_followed():
    """The DRED topic labels (B.1 .. B.10) are links to docs/algorithms/dred.md's topic list in
    the docs, a pointer to it in every code file that uses them, and each one used is defined."""
    defined = set(re.findall(r"^\{: #b(\d+) \}$", DRED_PAGE.read_text(encoding="utf-8"),
                             flags=re.MULTILINE))
    used: set[str] = set()
    unlinked = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for line in _prose(page.read_text(encoding="utf-8")).splitlines():
            plain = re.sub(r"\[B\.\d+(?:\.\d+)?\]\((?:[\w./-]*dred\.md)?#b(\d+)\)", "", line)
            used |= set(re.findall(r"\[B\.\d+(?:\.\d+)?\]\((?:[\w./-]*dred\.md)?#b(\d+)\)", line))
            if page == DRED_PAGE and (line.startswith(("- **B.", "The labels B.", "or B."))
                                      or "cite these topics as B." in line):
                continue  # the topic list itself
            unlinked += [f"{page.relative_to(ROOT)}: {line.strip()[:80]}"
                         for _ in DRED_LABEL.finditer(plain)]
    assert not unlinked, "DRED labels without a link to docs/algorithms/dred.md#bN:\n" + \
        "\n".join(unlinked)
    skip = {Path(__file__).resolve(), ROOT / "tests" / "test_citations.py"}
    for folder in ("robustrl", "agents", "envs", "theory", "experiments", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() in skip:
                continue
            text = path.read_text(encoding="utf-8")
            labels = set(DRED_LABEL.findall(text))
            if labels:
                used |= labels
                assert "docs/algorithms/dred.md" in text, (
                    f"{path.relative_to(ROOT)} cites DRED topics {sorted(labels)} without "
                    "pointing at docs/algorithms/dred.md")
    assert used and used <= defined, f"labels used but not defined: {sorted(used - defined)}"


def test_importing_robustrl_main_runs_nothing():
    """Documentation tools import every module; ``robustrl.__main__`` must not start the CLI
    then (it did: SystemExit with pytest's arguments), while ``python -m robustrl`` still does."""
    import importlib

    sys.modules.pop("robustrl.__main__", None)
    importlib.import_module("robustrl.__main__")
    res = subprocess.run([sys.executable, "-m", "robustrl", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("robustrl "), res.stdout + res.stderr
