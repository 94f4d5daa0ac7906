"""Griffe extensions for the documentation site (``mkdocs.yml``, mkdocstrings handler option
``extensions``); part of the documentation build only, not of the package.

:class:`MappedSubpackages` loads the subpackages that setup.cfg's ``package_dir`` maps to other
folders (``robustrl.agents`` -> ``agents/``, ...), which Griffe's static analysis cannot find
by walking ``robustrl/``.

:class:`SphinxRoles`: robustrl's docstrings are Google-style with Sphinx roles
(``:func:`evaluate```, ``:class:`~robustrl.data.OfflineDataset```,
``:meth:`LevelVAE.decode_levels```), which Markdown would show literally. The extension
rewrites each role, once the object tree is built,
into an *optional* mkdocs-autorefs cross-reference: the name is resolved in the scope of the
object that holds the docstring (as Python would), the link goes to the object's API entry when
the site renders one, and otherwise the name stays as inline code without a warning. The source
docstrings are not changed.
"""

from __future__ import annotations

import configparser
import re
from html import escape
from pathlib import Path
from typing import Any

import griffe

REPO = Path(__file__).resolve().parents[1]
ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|meth|mod|attr|data|obj|exc|const|type):"
    r"`(?P<body>[^`]+)`"
)
# ``:func:`title <target>``` (explicit title), as in Sphinx
TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")


def _resolve(obj: griffe.Object | griffe.Alias, target: str) -> str:
    """Full path of ``target`` as seen from ``obj``'s scope; the dotted name itself if unknown."""
    head, _, rest = target.partition(".")
    scope: Any = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, griffe.AliasResolutionError, KeyError,
                ValueError, AttributeError):
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return target


def _render(obj: griffe.Object | griffe.Alias, match: re.Match[str]) -> str:
    role, body = match["role"], match["body"].strip()
    body = body.lstrip("!")  # Sphinx's "no link" marker
    titled = TITLED.match(body)
    if titled:
        title, target = titled["title"], titled["target"]
    else:
        target = body
        title = target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") else target
    target = target.lstrip("~.")
    if role in ("func", "meth") and not title.endswith("()"):
        title += "()"
    identifier = _resolve(obj, target) if not target.startswith("robustrl.") else target
    return (f'<autoref optional identifier="{escape(identifier)}">'
            f"<code>{escape(title)}</code></autoref>")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring into optional autorefs cross-references."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None or ":" not in docstring.value:
            return
        docstring.value = ROLE.sub(lambda m: _render(obj, m), docstring.value)


def mapped_subpackages(setup_cfg: Path = REPO / "setup.cfg") -> dict[str, Path]:
    """``{"agents": REPO / "agents", ...}``: the direct subpackages of ``robustrl`` that
    setup.cfg's ``[options] package_dir`` maps outside ``robustrl/``."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding="utf-8")
    out = {}
    for line in parser.get("options", "package_dir", fallback="").splitlines():
        name, sep, folder = (part.strip() for part in line.partition("="))
        if sep and name.startswith("robustrl.") and name.count(".") == 1:
            out[name.split(".", 1)[1]] = setup_cfg.parent / folder
    return out


class MappedSubpackages(griffe.Extension):
    """Attach the ``package_dir``-mapped subpackages to the loaded ``robustrl`` package.

    Uses ``GriffeLoader._load_module`` (the loader's own recursive loading of a package folder;
    Griffe has no public call for "this folder is that subpackage"); Griffe is pinned in
    constraints.txt, and tests/test_docs_site.py fails if an agent, environment or theory page
    goes missing.
    """

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "robustrl":
            return
        for name, folder in mapped_subpackages().items():
            if name in pkg.members:
                continue
            module = loader._load_module(name, folder / "__init__.py", submodules=True,
                                         parent=pkg)
            pkg.set_member(name, module)
            loader.expand_exports(module)
