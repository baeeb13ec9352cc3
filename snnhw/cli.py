"""Command-line interface: ``snnhw <command> ...``. User errors print one line, never a traceback."""

from __future__ import annotations

import argparse
import sys

from .errors import SnnhwError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snnhw",
        description="Compile compressed spiking neural networks into FPGA cores that are "
                    "co-simulated bit for bit against a golden model. Start with "
                    "'snnhw flow -o out'.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import commands
    for register in commands._registry():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SnnhwError as error:
        print(f"snnhw: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snnhw: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
