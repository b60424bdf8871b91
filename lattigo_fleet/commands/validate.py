"""`lattigo-fleet validate [FILE]`: check a fleet file (schema, references) without any API call; every issue
is listed, one per line (:func:`lattigo_fleet.fleetfile.main_validate`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fleet_file", nargs="?", default="fleet.yaml")


def main(args: argparse.Namespace) -> int:
    from lattigo_fleet.fleetfile import main_validate

    return main_validate(args.fleet_file)
