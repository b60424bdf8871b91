"""`lattigo-fleet snapshot --out FILE`: read the account once, for every stack of a sharded run.

The first job of a matrix run (docs/ci.md) lists the account once and keeps the file as an artifact; each stack's
`lattigo-fleet plan --account-snapshot FILE` or `drift --account-snapshot FILE` then plans from it instead of
listing the account again (lattigo_fleet/account_snapshot.py: what it holds, its bound, why only previews use
it). The credentials are the stack's (config, then environment), as for `drift`. With `--stack`, it also
records what that stack and each of its `lattigo-fleet:siblingStacks` hold (their states), so that the stack jobs
need not read every sibling's state to check that no SIM is declared by two stacks (sharding.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.commands.credentials import api_failure_line, read_credentials

COMMAND = Command("snapshot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="a stack of the account, for its credentials (default: the environment's)")
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")
    parser.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="where to write the snapshot (JSON lines: a header, then one SIM per line)",
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return COMMAND.run(lambda: _snapshot(args, out or sys.stdout))


def _snapshot(args: argparse.Namespace, out: TextIO) -> int:
    from lattigo_fleet import account_snapshot
    from lattigo_fleet.client import LattigoClient, LattigoError

    settings = read_credentials(args.stack, cwd=args.cwd).settings
    read_at = time.time()
    try:
        sims = LattigoClient(settings.endpoint, settings.key_name, settings.api_key).snapshot()
    except LattigoError as exc:
        raise CommandFailure(api_failure_line(exc, settings.endpoint)) from None
    stacks = list(dict.fromkeys([args.stack, *settings.sibling_stacks])) if args.stack else []
    held = _held(stacks, args.cwd)
    account = account_snapshot.account_of(settings.endpoint, settings.key_name)
    try:
        account_snapshot.write(args.out, account, sims, read_at, held)
    except OSError as exc:
        raise CommandFailure(f"cannot write {args.out}: {exc.strerror or exc}") from None
    of_stacks = f", and what {len(held)} stack(s) hold," if held else ""
    out.write(f"{len(sims):,} SIMs of {settings.endpoint} (key {settings.key_name}){of_stacks} written to {args.out}\n")
    return 0


def _held(stacks: list[str], cwd: str | None) -> dict[str, frozenset[str]]:
    """What each stack's state holds, read in parallel (as the program reads its siblings')."""
    from concurrent.futures import ThreadPoolExecutor

    from lattigo_fleet.sharding import SiblingError, held_iccids

    if not stacks:
        return {}
    with ThreadPoolExecutor(max_workers=min(4, len(stacks))) as pool:
        futures = {stack: pool.submit(held_iccids, stack, cwd=cwd) for stack in stacks}
    try:
        return {stack: future.result() for stack, future in futures.items()}
    except SiblingError as exc:
        raise CommandFailure(str(exc)) from None
