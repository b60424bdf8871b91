"""``python -m emulator --port 0 --seed demo ...``: the same as ``lattigo-fleet emulator``."""

from __future__ import annotations

import argparse
import sys

from emulator.server import add_arguments, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Lattigo + ThingSpace emulator")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
