"""``python -m robustrl``: the command-line interface (:func:`robustrl.cli.run_console`)."""

from robustrl.cli import run_console

if __name__ == "__main__":  # importing the module (e.g. by a documentation tool) runs nothing
    run_console()
