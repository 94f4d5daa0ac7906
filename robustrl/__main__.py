"""``python -m robustrl``: the command-line interface (:func:`robustrl.cli.main`)."""

from robustrl.cli import main

if __name__ == "__main__":  # importing the module (e.g. by a documentation tool) runs nothing
    raise SystemExit(main())
