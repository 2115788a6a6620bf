"""``python -m batchup COMMAND``: the demo and the data set tools.

Commands: ``demo`` (train a small network on the shipped digits, offline),
``sources``, ``fetch``, ``info`` and ``delete`` (the data set cache; see
``python -m batchup COMMAND --help``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DESCRIPTION = "batchup's offline demo and its dataset cache tools."

EPILOG = """\
Run `python -m batchup COMMAND --help` for a command's options.

environment:
  BATCHUP_HOME=DIR       base directory (default ~/.batchup, or [paths] data_dir
                         in ~/.batchup.cfg); datasets go in DIR/data
  BATCHUP_DOWNLOADS=DIR  a read-only folder of source files placed by hand
  BATCHUP_OFFLINE=1      never use the network
  BATCHUP_DEBUG=1        print full download errors and tracebacks
  BATCHUP_PROGRESS=0|1   progress bars off or on (default: on a terminal)
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m batchup``, with every command registered.

    Examples
    --------
    >>> build_parser().parse_args(["demo", "--epochs", "3"]).epochs
    3
    """
    from batchup import demo
    from batchup.datasets import cli as dataset_cli

    parser = argparse.ArgumentParser(prog="python -m batchup", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo_parser = sub.add_parser("demo", help="train a NumPy MLP on the shipped 8x8 digits",
                                 description=demo.DESCRIPTION, epilog=demo.EPILOG)
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo.run_from_args)
    dataset_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
