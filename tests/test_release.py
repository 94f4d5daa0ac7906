"""Release hygiene: a wheel and an sdist build, carry LICENSE and py.typed, pass ``twine check``,
and the sdist holds every file its own test suite reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


def _clean_copy(dest: Path) -> Path:
    """The files a clean checkout has (tracked, plus untracked ones git does not ignore), copied
    out of the working tree, so that no build/ or *.egg-info left by an earlier build (setuptools
    reuses an existing SOURCES.txt) can hide a missing MANIFEST.in entry."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in listed.stdout.splitlines():
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """Build both distributions once, offline (``--no-isolation`` uses this environment's
    setuptools and wheel rather than downloading a build environment)."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                "--outdir", str(out), str(_clean_copy(tmp_path_factory.mktemp("src")))])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _wheel_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _sdist_names(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        # drop the leading "robustrl-X.Y.Z/" folder
        return [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]


def test_wheel_carries_license_and_py_typed(dists):
    names = _wheel_names(dists["wheel"])
    assert "robustrl/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names), [n for n in names if "dist-info" in n]
    # the installed namespaces of setup.cfg's package_dir mapping
    for pkg in ("robustrl/envs/", "robustrl/agents/", "robustrl/theory/", "robustrl/experiments/"):
        assert any(n.startswith(pkg) for n in names), pkg
    assert any(n.startswith("robustrl/experiments/configs/") and n.endswith(".yaml") for n in names)


def test_wheel_metadata_has_project_urls(dists):
    with zipfile.ZipFile(dists["wheel"]) as zf:
        meta = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    urls = dict(line.split(": ", 1)[1].split(", ", 1) for line in meta.splitlines()
                if line.startswith("Project-URL: "))
    assert {"Documentation", "Source", "Changelog"} <= set(urls), urls
    assert all(u.startswith("https://") for u in urls.values()), urls


def test_sdist_carries_what_its_tests_read(dists):
    names = set(_sdist_names(dists["sdist"]))
    for required in ("LICENSE", "CHANGELOG.md", "README.md", "constraints.txt", "setup.cfg",
                     "pyproject.toml", "robustrl/py.typed", "benchmarks/__init__.py",
                     "benchmarks/__main__.py", "mkdocs.yml", "tools/griffe_robustrl.py",
                     "docs/javascripts/mathjax.js"):
        assert required in names, required
    tracked = _run(["git", "ls-files", "tests", "docs", "benchmarks"], cwd=REPO)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    wanted = [p for p in tracked.stdout.split() if p.endswith((".py", ".md", ".png"))]
    missing = [p for p in wanted if p not in names]
    assert not missing, f"files the test suite reads are missing from the sdist: {missing}"


def test_twine_check_passes(dists):
    pytest.importorskip("twine")
    res = _run([sys.executable, "-m", "twine", "check", "--strict",
                str(dists["wheel"]), str(dists["sdist"])])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("PASSED") == 2, res.stdout


@pytest.mark.slow
def test_sdist_runs_its_own_docs_and_benchmark_tests(dists, tmp_path):
    """Extract the sdist and run the tests that read docs/ and benchmarks/ from there."""
    with tarfile.open(dists["sdist"]) as tf:
        tf.extractall(tmp_path, filter="data")
    root = next(tmp_path.iterdir())
    res = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "tests/test_docs.py", "tests/test_benchmarks.py"], cwd=root)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
