"""Command-line interface: ``snnhw <command> ...``. User errors print one line, never a traceback.

One module per command, each with ``add_parser(sub)`` (its flags) and ``run(args)`` (one call into
the library, then the printed summary). Flags are checked by ``type=`` functions from
:mod:`.args` while parsing; errors from the library are :class:`~snnhw.errors.SnnhwError` and
are printed here. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError, SnnhwError
from . import build, compile, cosim, explore, flow, nir_export, nir_import, simulate, train
from .args import FLAGS, Parser

__all__ = ["build_parser", "main"]

#: The commands, in the order ``snnhw --help`` lists them.
COMMANDS = (flow, explore, train, nir_import, nir_export, compile, simulate, cosim, build)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``snnhw`` and all its commands."""
    parser = Parser(
        prog="snnhw",
        description="Compile compressed spiking neural networks into FPGA cores that are "
                    "co-simulated bit for bit against a golden model. Start with "
                    "'snnhw flow -o out'.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``snnhw`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0), or a usage error already printed by Parser (2)
        return int(stop.code or 0)
    try:
        return int(args.run(args) or 0)
    except SnnhwError as error:
        message = str(error)
        if isinstance(error, ParameterError) and error.parameter in FLAGS:
            # The library names its parameter; the user set it with a flag.
            message = FLAGS[error.parameter] + message[len(error.parameter):]
        print(f"snnhw: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snnhw: interrupted", file=sys.stderr)
        return 130
