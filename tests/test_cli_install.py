"""A plain ``pip install .`` (no extras): the CLI works from outside the repository, a missing
extra is named in one message, ``--version``, and a closed stdout pipe ends quietly."""

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from robustrl import __version__
from robustrl._cli.install import packaged_configs, resolve_config_path

REPO = Path(__file__).resolve().parents[1]

# Hides the optional extras' modules, as in an environment installed without them.
EXTRAS_BLOCKER = textwrap.dedent(
    """
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "stable_baselines3", "sb3_contrib", "minigrid"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, _Block())
    """
)


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


def test_lazy_agent_names_its_extra():
    code = EXTRAS_BLOCKER + textwrap.dedent(
        """
        try:
            from robustrl.agents import NeuralR2PVI
        except ImportError as exc:
            print(exc)
        """
    )
    out = _run([sys.executable, "-c", code], cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert 'NeuralR2PVI needs the neural extra' in out.stdout
    assert 'pip install "robustrl[neural]"' in out.stdout


def test_run_without_extra_fails_before_any_cell(tmp_path):
    code = EXTRAS_BLOCKER + textwrap.dedent(
        f"""
        from robustrl.cli import main
        sys.exit(main(["run", "neural_perturbed_control", "--out", {str(tmp_path / "o")!r}]))
        """
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robustrl: error:"), out.stderr
    assert "neural extra" in lines[0] and "torch" in lines[0]
    assert not (tmp_path / "o").exists()


def test_version(capsys):
    from robustrl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"robustrl {__version__}"


def test_closed_pipe_no_traceback():
    """``robustrl list -v | head -1``: the reader is gone; no traceback, exit 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        out = subprocess.run([sys.executable, "-m", "robustrl", "list", "-v"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=600, cwd=REPO)
    finally:
        os.close(write_end)
    assert out.returncode in (0, 141), out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def test_config_resolution(tmp_path):
    assert "demo_fig1" in packaged_configs()
    found = Path(resolve_config_path("demo_fig1"))
    assert found.name == "demo_fig1.yaml" and found.is_file()
    assert resolve_config_path("demo_fig1.yaml") == str(found) or Path("demo_fig1.yaml").exists()
    own = tmp_path / "demo_fig1.yaml"
    own.write_text("seeds: 1\n")
    assert resolve_config_path(str(own)) == str(own)  # a path wins over the packaged name
    assert resolve_config_path("no_such_config") == "no_such_config"


def test_plain_install_cli_outside_repo(tmp_path):
    """``pip install .`` into a fresh venv, extras hidden: envs, list and a packaged config run
    from a directory outside the repository."""
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    out = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                str(REPO)])
    assert out.returncode == 0, out.stderr
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(EXTRAS_BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(blocker), sysconfig.get_paths()["purelib"]]))
    work = tmp_path / "elsewhere"
    work.mkdir()
    cli = str(venv / "bin" / "robustrl")

    out = _run([cli, "envs"], cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    assert "robustrl/SimulatedLinearMDP-v0" in out.stdout and "nominal" in out.stdout
    assert "robustrl/CaveEscape-v0" in out.stdout and "dred extra" in out.stdout

    out = _run([cli, "list"], cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    assert "r2pvi_fig1" in out.stdout

    out = _run([cli, "run", "r2pvi_fig1", "--config", "demo_fig1", "--out", str(work / "r"),
                "--workers", "1", "--seeds", "1", "--set", "method=[pevi, 'kl:0.1']",
                "--set", "K=20", "--set", "episodes=5", "--quiet"], cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    assert (work / "r" / "summary.csv").is_file()
    assert "torch" not in out.stderr


def _console(tmp_path, prelude: str, *argv: str) -> subprocess.CompletedProcess:
    """The ``robustrl`` program (:func:`robustrl.cli.run_console`) after ``prelude``."""
    code = (f"import sys\n{prelude}\nsys.argv = ['robustrl', *{list(argv)!r}]\n"
            "from robustrl.cli import run_console\nrun_console()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)


# records the quick exit: os._exit writes the status into a file before it ends the process
_SPY_EXIT = ("import os\n_exit = os._exit\n"
             "os._exit = lambda code: (open({path!r}, 'w').write(str(code)), _exit(code))")


def test_console_quick_exit_runs_exit_handlers_and_keeps_output_and_status(tmp_path):
    """The program skips the interpreter's teardown (``os._exit``), not its exit handlers or
    buffered output, and exits with main's status."""
    mark, quick = tmp_path / "atexit.txt", tmp_path / "quick.txt"
    out = _console(tmp_path, f"import atexit\natexit.register(lambda: open({str(mark)!r}, "
                             "'w').write('ran'))\nprint('buffered', end='')\n"
                             f"{_SPY_EXIT.format(path=str(quick))}", "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("buffered") and "r2pvi_fig1" in out.stdout
    assert mark.read_text() == "ran"
    assert quick.read_text() == "0"
    from robustrl.cli import main

    bad = _console(tmp_path, _SPY_EXIT.format(path=str(quick)), "run", "no_such_experiment")
    assert bad.returncode == main(["run", "no_such_experiment"]) != 0
    assert quick.read_text() == str(bad.returncode)
    assert "no_such_experiment" in bad.stderr


def test_console_exits_normally_after_foreign_code(tmp_path):
    """Code from outside the installation (a user's experiment file, here a module that leaves
    a file open with data in its buffer) gets the normal exit, whose teardown flushes it."""
    left_open, quick = tmp_path / "left_open.txt", tmp_path / "quick.txt"
    (tmp_path / "user_module.py").write_text(
        f"log = open({str(left_open)!r}, 'w')\nlog.write('unflushed')\n")
    prelude = (f"sys.path.insert(0, {str(tmp_path)!r})\nimport user_module\n"
               f"{_SPY_EXIT.format(path=str(quick))}")
    out = _console(tmp_path, prelude, "list")
    assert out.returncode == 0, out.stderr
    assert not quick.exists()
    assert left_open.read_text() == "unflushed"


def test_console_waits_for_a_running_thread(tmp_path):
    """A live non-daemon thread gets the normal exit, which waits for it."""
    mark = tmp_path / "thread.txt"
    prelude = ("import threading, time\n"
               f"threading.Thread(target=lambda: (time.sleep(1.0), open({str(mark)!r}, 'w')"
               ".write('done'))).start()")
    out = _console(tmp_path, prelude, "list")
    assert out.returncode == 0, out.stderr
    assert mark.read_text() == "done"


def test_an_interrupt_wrapped_by_an_import_is_still_an_interrupt(monkeypatch, capsys):
    """A SIGINT/SIGTERM that lands while a class body runs (an import, e.g. Matplotlib's) can
    surface as a RuntimeError raised from the KeyboardInterrupt: still exit 130 with the
    interrupt message; any other error still propagates."""
    from robustrl import cli

    def wrapped(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__") from exc

    def plain(args):
        raise RuntimeError("a real error")

    for func, expected in ((wrapped, cli.EXIT_INTERRUPTED), (plain, None)):
        monkeypatch.setattr(cli, "_cmd_envs", func)
        if expected is None:
            with pytest.raises(RuntimeError, match="a real error"):
                cli.main(["envs"])
        else:
            assert cli.main(["envs"]) == expected
            assert "robustrl: interrupted" in capsys.readouterr().err
