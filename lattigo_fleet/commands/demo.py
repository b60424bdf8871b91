"""`lattigo-fleet demo`: the emulator, then `pulumi preview` and `up` on the shipped fleet.yaml, end to end
(:func:`lattigo_fleet.demo.run_demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", default=".", help="directory holding Pulumi.yaml (default: .)")
    parser.add_argument("--fleet-file", default="fleet.yaml", help="fleet file, relative to the project")
    parser.add_argument("--keep", action="store_true", help="keep the temporary backend and emulator database")


def main(args: argparse.Namespace) -> int:
    from lattigo_fleet.demo import run_demo

    return run_demo(Path(args.project_dir).resolve(), fleet_file=args.fleet_file, keep=args.keep)
