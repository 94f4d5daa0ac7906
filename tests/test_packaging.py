"""Install and import checks: the five namespaces, editable and plain installs, no torch needed."""

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TORCH_BLOCKER = textwrap.dedent(
    """
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "stable_baselines3"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, _Block())
    """
)

IMPORT_ALL = (
    "import robustrl, robustrl.envs, robustrl.agents, robustrl.theory, robustrl.experiments; "
    "print(robustrl.__file__)"
)


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


def test_core_imports_and_runs_without_torch():
    code = TORCH_BLOCKER + textwrap.dedent(
        """
        import numpy as np
        import robustrl, robustrl.envs, robustrl.agents, robustrl.theory
        from robustrl.data import OfflineDataset
        from robustrl.exact import robust_value_iteration
        from robustrl.envs import SimulatedLinearMDPEnv
        env = SimulatedLinearMDPEnv()
        sol = robust_value_iteration(env.model, divergence="kl", lam=0.5)
        ds = OfflineDataset.collect(env, 3, seed=0)
        assert ds.n_trajectories == 3 and np.isfinite(sol.value)
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    out = _run([sys.executable, "-c", code], cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def _fresh_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    out = _run([sys.executable, "-m", "venv", str(venv)])
    assert out.returncode == 0, out.stderr
    return venv / "bin" / "python"


@pytest.mark.parametrize("editable", [False, True], ids=["plain", "editable"])
def test_fresh_venv_install_imports_all_namespaces(tmp_path, editable):
    """``pip install .`` and ``pip install -e .`` into a fresh venv both expose the namespaces,
    and the ``robustrl`` command finds the experiments in either.

    Dependencies are taken from this interpreter's site-packages (PYTHONPATH) so the test
    exercises the package layout, not the network; the package itself comes from the new venv.
    """
    py = _fresh_venv(tmp_path)
    target = ["-e", str(REPO)] if editable else [str(REPO)]
    out = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", *target])
    assert out.returncode == 0, out.stderr
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    out = _run([str(py), "-c", IMPORT_ALL], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    location = Path(out.stdout.strip())
    if editable:
        assert location == REPO / "robustrl" / "__init__.py"
    else:
        assert str(location).startswith(str(tmp_path / "venv"))
    out = _run([str(py.parent / "robustrl"), "list"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines()}
    assert {"exact_robust_values", "toy_sweep"} <= names
