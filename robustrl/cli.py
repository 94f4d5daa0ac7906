"""The ``robustrl`` command line (the experiment runner subcommands arrive with issue 3)."""

from __future__ import annotations

import argparse
import sys

from robustrl import __version__


def _cmd_envs(_args: argparse.Namespace) -> int:
    import robustrl.envs as envs

    for name in envs.__all__:
        cls = getattr(envs, name)
        grid = getattr(cls, "perturbation_grid", None)
        if grid is None:
            continue
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {doc}\n    perturbation grid: {list(map(float, grid))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robustrl", description="Robust reinforcement learning.")
    parser.add_argument("--version", action="version", version=f"robustrl {__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("envs", help="list the environments and their perturbation grids")
    p.set_defaults(func=_cmd_envs)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
