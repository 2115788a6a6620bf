"""``python -m batchup COMMAND``: the demo and the data set tools.

Commands: ``demo`` (train a small network on the shipped digits, offline),
``sources``, ``fetch``, ``info`` and ``delete`` (the data set cache; see
``python -m batchup COMMAND --help``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit code."""
    from batchup import demo
    from batchup.datasets import cli as dataset_cli

    parser = argparse.ArgumentParser(prog="python -m batchup", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo_parser = sub.add_parser("demo", help="train a NumPy MLP on the shipped 8x8 digits")
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo.run_from_args)
    dataset_cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
