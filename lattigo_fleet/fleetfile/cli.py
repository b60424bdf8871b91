"""The ``lattigo-fleet validate`` entry point (``lattigo_fleet/cli.py`` dispatches to it)."""

from __future__ import annotations

import sys
from typing import TextIO

from lattigo_fleet.fleetfile.loader import load_fleet
from lattigo_fleet.fleetfile.model import FleetError


def main_validate(path: str = "fleet.yaml", out: TextIO | None = None) -> int:
    """``lattigo-fleet validate [FILE]``: print "FILE: N SIMs OK" and return 0, or print every issue
    (one per line, file:line:column: field: message) and return 1."""
    out = out if out is not None else sys.stdout
    try:
        fleet = load_fleet(path)
    except FleetError as e:
        for issue in e.issues:
            print(issue, file=out)
        return 1
    n = len(fleet.sims)
    print(f"{path}: {n} SIM{'' if n == 1 else 's'} OK", file=out)
    return 0
