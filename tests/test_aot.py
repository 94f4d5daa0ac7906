"""The ahead-of-time compiled kernels (robustrl._kernels.aot): the JIT's numbers bit for bit,
the JIT for every other argument type, and never a module built from other sources."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import warnings

import numpy as np
import pytest
from numba.core import types

from robustrl._kernels import aot
from robustrl.agents import DRLSVIUCB, DRPVI, DRRPO, DRVI_L, LSVIUCB, OPPO, PEVI, R2PVI
from robustrl.agents.base import TiedQWarning
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv


def _have_compiler() -> bool:
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")[:1]
    return bool(cc) and shutil.which(cc[0]) is not None


needs_cc = pytest.mark.skipif(not _have_compiler(), reason="no C compiler")


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    """One build (20-25 s) into a temporary folder, loaded from there; afterwards the
    dispatchers hold what the installed package gives them again."""
    folder = tmp_path_factory.mktemp("aot")
    path = aot.build(folder)
    assert path.parent == folder and path.name.startswith(aot.module_name())
    loaded = aot.load(folder)
    assert loaded is not None
    loaded.built_path = path
    yield loaded
    aot.uninstall()
    aot.install()


def _no_jit(monkeypatch):
    """Make every exported kernel's JIT refuse to compile: a call that the compiled function
    does not serve raises."""
    def refuse(*args, **kwargs):
        raise AssertionError("the JIT was asked to compile")

    for export in aot.EXPORTS:
        monkeypatch.setattr(export.kernel, "_compile_for_args", refuse)


def _assert_bit_identical(module, monkeypatch, run, label) -> None:
    """``run()`` (a tuple of arrays) on the JIT alone, then with the compiled functions
    registered and the JIT refusing to compile (they must serve every call): equal bit for
    bit."""
    results = []
    for route in ("jit", "aot"):
        if route == "jit":
            aot.uninstall()
        else:
            assert aot.install(module.built_path.parent)
            assert all(aot.installed(e.kernel) for e in aot.EXPORTS)
            _no_jit(monkeypatch)
        results.append(run())
        monkeypatch.undo()
    for a, b in zip(*results, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b), label


def _datasets():
    sim = SimulatedLinearMDPEnv()
    put = AmericanPutEnv(feature_dim=12, horizon=6)
    put.reset(seed=3)
    return [
        (sim, OfflineDataset.collect(sim, 60, seed=1), dict(beta=1.0, ridge=0.1)),
        (put, OfflineDataset.collect(put, 40, behaviour_policy=lambda obs: 0, seed=2),
         dict(beta=0.1, ridge=1.0)),
    ]


AGENTS = {
    "PEVI": lambda env, kw: PEVI(env, **kw),
    "R2PVI-TV": lambda env, kw: R2PVI(env, divergence="tv", lam=0.1, **kw),
    "R2PVI-KL": lambda env, kw: R2PVI(env, divergence="kl", lam=0.1, **kw),
    "R2PVI-chi2": lambda env, kw: R2PVI(env, divergence="chi2", lam=0.1, **kw),
    "DRPVI": lambda env, kw: DRPVI(env, rho=0.2, **kw),
    "DRVI-L": lambda env, kw: DRVI_L(env, rho=0.2, **kw),
}


@needs_cc
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_fits_are_bit_identical_to_the_jit(module, name, monkeypatch):
    for env, data, kw in _datasets():
        def fit(env=env, data=data, kw=kw):
            agent = AGENTS[name](env, kw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TiedQWarning)
                agent.fit(data)
            obs = data.observations[:, 0]
            q = agent.q_values_from_features(agent.batch_action_features(obs), 0)
            return agent.weights_, agent.lambda_inv_, q

        _assert_bit_identical(module, monkeypatch, fit, (name, type(env).__name__))


ONLINE = {
    "DRRPO-TV": lambda env: DRRPO(env, divergence="tv", seed=0),
    "DRRPO-KL": lambda env: DRRPO(env, divergence="kl", seed=1),
    "DRLSVIUCB-TV": lambda env: DRLSVIUCB(env, divergence="tv", seed=2),
    "DRLSVIUCB-KL": lambda env: DRLSVIUCB(env, divergence="kl", seed=3),
    "LSVIUCB": lambda env: LSVIUCB(env, seed=4),
    "OPPO": lambda env: OPPO(env, seed=5),
}


@needs_cc
@pytest.mark.parametrize("name", sorted(ONLINE))
def test_online_learning_is_bit_identical_to_the_jit(module, name, monkeypatch):
    """The online linear agents' per-episode kernels (ridge updates, Q, policy update, the
    robust duals, the exact evaluation's duals, and the periodic refresh of Lambda^{-1}, made
    to fall within the 4 episodes): the same regret curve and weights with the JIT refusing to
    compile as with the JIT alone."""
    from unittest import mock

    from robustrl.agents import _online

    def learn():
        with mock.patch.object(_online, "_REFRESH_EVERY", 3):
            agent = ONLINE[name](SimulatedLinearMDPEnv())
            agent.learn(total_episodes=4)
        return np.asarray(agent.weights_), np.asarray(agent.regret_)

    _assert_bit_identical(module, monkeypatch, learn, name)


def _clipped_q_args():
    rng = np.random.default_rng(0)
    n, A, d = 5, 3, 4
    return [rng.normal(size=(n, A, d)), rng.normal(size=d), np.eye(d), -0.5, 1, 2.0, True,
            np.zeros((0, 0)), False, np.zeros((0, 0)), False]


@needs_cc
@pytest.mark.parametrize("change", [
    lambda a: a.__setitem__(0, a[0].astype(np.float32)),  # dtype
    lambda a: a.__setitem__(0, np.asfortranarray(a[0])),  # layout
    lambda a: a.__setitem__(1, np.repeat(a[1], 2)[::2]),  # strided
    lambda a: a[2].setflags(write=False),  # read-only
    lambda a: a.__setitem__(3, np.float32(-0.5)),  # scalar kind
    lambda a: a.__setitem__(4, 1.0),  # float for an int
    lambda a: a.__setitem__(6, 1),  # int for a bool
], ids=["dtype", "fortran", "strided", "readonly", "float32", "float-int", "int-bool"])
def test_other_argument_types_take_the_jit(module, change, monkeypatch):
    """A compiled module reads whatever memory it is given: any argument that Numba types
    differently from the exported signature must go to the JIT, which compiles a
    specialisation for it, never to the module."""
    assert aot.install(module.built_path.parent)
    kernel = aot.EXPORTS[2].kernel  # clipped_q
    args = _clipped_q_args()
    _no_jit(monkeypatch)
    exact = kernel(*args)  # the compiled function: the refusing JIT would have raised
    monkeypatch.undo()
    change(args)
    got = kernel(*args)
    assert tuple(kernel.typeof_pyval(a) for a in args) in kernel.overloads  # the JIT's
    np.testing.assert_allclose(got, exact, rtol=1e-6)


@needs_cc
def test_a_wrong_arity_is_the_jits_error(module):
    assert aot.install(module.built_path.parent)
    with pytest.raises(TypeError):
        aot.EXPORTS[2].kernel(*_clipped_q_args()[:-1])


@needs_cc
def test_returned_arrays_are_fresh_ndarrays(module):
    """The build memoises unpickled constants (the array type boxed with every returned array,
    ``robustrl_unpickle``), never the arrays: two calls give two independent arrays."""
    args = _clipped_q_args()
    first, second = module.clipped_q(*args), module.clipped_q(*args)
    assert type(first) is np.ndarray and first.flags.owndata is False  # NRT memory
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)
    expected = second.copy()
    first[:] = -1.0
    np.testing.assert_array_equal(second, expected)


def test_unknown_type_codes_are_refused():
    assert aot._parse("f8[3]") == ("f8", 3) and aot._parse("b1") == ("b1", 0)
    assert aot._numba_type("none") is types.none  # a return only
    for code in ("f4[2]", "f8[x]", "c16"):
        with pytest.raises(ValueError, match="unknown type code"):
            aot._parse(code)


def test_fingerprint_follows_the_sources(tmp_path, monkeypatch):
    """A module is named by a hash of the kernel sources (and versions, CPU): editing any
    kernel module gives another name, so a module built before the edit is never loaded."""
    for path in sorted(aot._HERE.glob("*.py")) + [aot._SHIM]:
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(aot, "_HERE", tmp_path)
    monkeypatch.setattr(aot, "_SHIM", tmp_path / aot._SHIM.name)
    before = aot.fingerprint()
    assert before == aot.fingerprint() and len(before) == 16
    bonus = tmp_path / "bonus.py"
    bonus.write_text(bonus.read_text() + "\n# an edit\n")
    assert aot.fingerprint() != before
    bonus.write_text(bonus.read_text().replace("\n# an edit\n", ""))
    assert aot.fingerprint() == before
    (tmp_path / "aot_support.c").write_text("/* edited */")
    assert aot.fingerprint() != before


def test_a_stale_or_disabled_module_is_not_loaded(tmp_path, monkeypatch):
    stale = tmp_path / f"_aot_0123456789abcdef{aot._EXT}"
    stale.write_bytes(b"not a module")
    aot._reset()
    assert aot.module_name() != stale.name.split(".")[0]
    assert aot.load(tmp_path) is None  # the stale file is not even opened
    monkeypatch.setenv(aot.ENV_SWITCH, "0")
    aot._reset()
    assert aot.load() is None and not aot.install()
    aot._reset()


def test_an_unloadable_module_warns_and_falls_back(tmp_path):
    broken = tmp_path / f"{aot.module_name()}{aot._EXT}"
    broken.write_bytes(b"not a shared object")
    aot._reset()
    with pytest.warns(RuntimeWarning, match="did not load .* compile-kernels"):
        assert aot.load(tmp_path) is None
    aot._reset()


@needs_cc
def test_cli_compile_kernels(module, tmp_path, capsys, monkeypatch):
    """The command's checks and messages (the build itself is the fixture's, copied)."""
    from robustrl.cli import main

    def build(out, verbose=False):
        aot._reset()
        return shutil.copy(module.built_path, out)

    monkeypatch.setattr(aot, "build", build)
    assert main(["compile-kernels", "--out", str(tmp_path), "--check"]) == 1
    assert "absent or stale" in capsys.readouterr().out
    assert main(["compile-kernels", "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["compile-kernels", "--out", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["compile-kernels", "--out", str(tmp_path), "--check"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"{aot.module_name()}{aot._EXT}"]
    aot._reset()


def test_cli_compile_kernels_without_a_compiler(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: "no-such-compiler-xyz" if name == "CC" else None)
    from robustrl.cli import main

    assert main(["compile-kernels", "--out", str(tmp_path)]) == 0
    assert "no C compiler (no-such-compiler-xyz)" in capsys.readouterr().err
    assert main(["compile-kernels", "--out", str(tmp_path), "--strict"]) == 1
    assert not list(tmp_path.iterdir())
    aot._reset()


def test_a_failed_build_raises_with_the_reason(tmp_path, monkeypatch):
    """A folder that is not there is named; a build that fails in its own process (here: an
    interpreter that exits 1 at once) comes back as an error with its exit status."""
    with pytest.raises(ValueError, match="directory must be an existing folder"):
        aot.build(tmp_path / "missing")
    monkeypatch.setattr(aot.sys, "executable", shutil.which("false") or "/bin/false")
    with pytest.raises(RuntimeError, match=r"ahead-of-time build failed \(exit 1\)"):
        aot.build(tmp_path)
    assert not list(tmp_path.iterdir())


@needs_cc
def test_a_job_compiles_nothing_with_the_compiled_kernels(module, tmp_path):
    """The README's main job, in a fresh process with an empty Numba cache and the module in
    ``$ROBUSTRL_AOT_DIR``: no kernel is compiled (the cache stays empty) and the numbers are
    the JIT's (the same summary as a run with ``ROBUSTRL_AOT=0`` on the suite's own cache)."""
    cache = tmp_path / "cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache),
           aot.ENV_DIR: str(module.built_path.parent)}
    env.pop(aot.ENV_SWITCH, None)
    summaries = []
    jit_env = {k: v for k, v in env.items() if k != "NUMBA_CACHE_DIR"}  # the suite's cache
    for label, run_env in (("aot", env), ("jit", {**jit_env, aot.ENV_SWITCH: "0"})):
        out = tmp_path / label
        proc = subprocess.run(
            [sys.executable, "-m", "robustrl", "run", "r2pvi_fig1", "--config", "demo_fig1",
             "--seeds", "2", "--set", "method=[pevi, 'tv:0.1']", "--out", str(out),
             "--quiet"], env=run_env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if label == "aot":
            assert not list(cache.rglob("*.nbi")), "a kernel was compiled"
        summaries.append((out / "summary.csv").read_text())
    assert summaries[0] == summaries[1]


_ONLINE_SCRIPT = """
from robustrl.agents import _online, DRLSVIUCB, DRRPO, LSVIUCB, OPPO
from robustrl.envs import SimulatedLinearMDPEnv
_online._REFRESH_EVERY = 3  # the periodic refresh of Lambda^-1 within the 4 episodes
for make in (lambda e: DRRPO(e, divergence="tv"), lambda e: DRRPO(e, divergence="kl"),
             lambda e: DRLSVIUCB(e, divergence="tv"), lambda e: DRLSVIUCB(e, divergence="kl"),
             LSVIUCB, OPPO):
    make(SimulatedLinearMDPEnv()).learn(total_episodes=4)
"""


@needs_cc
def test_online_agents_compile_nothing_with_the_compiled_kernels(module, tmp_path):
    """The online linear agents, exact regret and the periodic refresh of Lambda^{-1}
    included, in a fresh process with an empty Numba cache and the module in
    ``$ROBUSTRL_AOT_DIR``: no kernel is compiled (the refresh's ``spd_inverse`` was missing
    from the exports and started the JIT at a run's 256th update)."""
    cache = tmp_path / "cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache),
           aot.ENV_DIR: str(module.built_path.parent)}
    env.pop(aot.ENV_SWITCH, None)
    proc = subprocess.run([sys.executable, "-c", _ONLINE_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(cache.rglob("*.nbi")), [p.name for p in cache.rglob("*.nbi")]
