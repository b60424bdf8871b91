"""The `lattigo-fleet` command: what Pulumi does not do itself (the emulator, validation, the demo)."""

from __future__ import annotations

import argparse
import sys


def _cmd_emulator(args: argparse.Namespace) -> int:
    from emulator.server import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lattigo-fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from emulator.server import add_arguments as add_emulator_arguments

    emu = sub.add_parser("emulator", help="run the Lattigo + ThingSpace emulator in the foreground")
    add_emulator_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
