"""What every `lattigo-fleet` subcommand shares at its edge, stated once: the failure that stops it (one line,
exit code 1, never a traceback), the last error line of a pulumi run, and the fleet file loaded or refused with
its first problem and how many more. (Running a command and ending it: base.py; credentials: credentials.py.)"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from lattigo_fleet.fleetfile import FleetError, FleetSpec


class CommandFailure(Exception):
    """What stops a subcommand, in words the user can act on (its message); `fail` prints it. Each command's
    own failure (DeviceFailure, UsageFailure, ImportFailure, RecoverError, PreviewError) is one of these."""

    exit_code = 1


def fail(command: str, message: str, stream: TextIO | None = None) -> int:
    """A subcommand's one-line error on ``stream`` (None: standard error), never a traceback; exit code 1."""
    first = (message.strip().splitlines() or ["failed"])[0]
    print(f"lattigo-fleet {command}: {first}", file=stream or sys.stderr)
    return 1


def pulumi_error_line(output: str) -> str:
    """The line of a pulumi run's output that says why it failed: its last `error:` line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]
    line = (errors or lines or ["(no output)"])[-1]
    return line[len("error:") :].strip() if line.lower().startswith("error:") else line


def fleet_error_line(exc: FleetError, path: str | os.PathLike[str]) -> str:
    """A fleet file's problems as one line: the first, and how many more `lattigo-fleet validate` lists."""
    issues = exc.issues
    more = f" (and {len(issues) - 1} more: run `lattigo-fleet validate {path}`)" if len(issues) > 1 else ""
    return f"{issues[0] if issues else exc}{more}"


def load_fleet_file(path: str | os.PathLike[str], failure: type[CommandFailure] = CommandFailure) -> FleetSpec:
    """The fleet file, or `failure` with its problems in one line (a bad file, or one that cannot be read)."""
    from lattigo_fleet.fleetfile import FleetError, load_fleet

    try:
        return load_fleet(str(path))
    except FleetError as exc:
        raise failure(fleet_error_line(exc, path)) from None
    except OSError as exc:
        raise failure(f"{path}: cannot read it: {exc.strerror or exc}") from None


def add_account_snapshot_argument(parser: argparse.ArgumentParser) -> None:
    """`--account-snapshot FILE`: plan from `lattigo-fleet snapshot`'s file instead of listing the account."""
    parser.add_argument(
        "--account-snapshot",
        metavar="FILE",
        help="plan from this account snapshot (lattigo-fleet snapshot) instead of reading the account: one read "
        "for many stacks; refused when older than LATTIGO_FLEET_SNAPSHOT_MAX_AGE seconds (default 3600)",
    )
