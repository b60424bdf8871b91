"""The `lattigo-fleet` command: what Pulumi does not do itself (GitOps, reports, device operations, the emulator)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from lattigo_fleet.commands.base import Command


@dataclass(frozen=True)
class CommandInfo:
    """One subcommand of the table (pip's `commands/__init__.py`): its name, its help line, and the module
    with its `add_arguments(parser)` and its `main(args) -> int` (``main`` names it where it is called
    otherwise)."""

    name: str
    module: str
    help: str
    main: str = "main"


COMMANDS: tuple[CommandInfo, ...] = (
    # The emulator is the one command whose module is not under lattigo_fleet.commands: the product runs its
    # test double only here and in the demo (tests/unit/test_layering.py allows these two).
    CommandInfo(
        "emulator", "emulator.server", "run the Lattigo + ThingSpace emulator in the foreground", "run_from_args"
    ),
    CommandInfo(
        "demo", "lattigo_fleet.commands.demo", "emulator + pulumi preview/up on the shipped fleet.yaml, end to end"
    ),
    CommandInfo(
        "validate", "lattigo_fleet.commands.validate", "check a fleet file (schema, references) without any API call"
    ),
    CommandInfo(
        "import",
        "lattigo_fleet.commands.importer",
        "write fleet.yaml from the live account (pulumi up on it sends nothing)",
        "run",
    ),
    CommandInfo(
        "plan",
        "lattigo_fleet.commands.plan",
        "the pull-request comment (Markdown, or --json) from `pulumi preview --json`",
    ),
    CommandInfo(
        "snapshot",
        "lattigo_fleet.commands.snapshot",
        "read the account once, to a file that the plans and drift checks of many stacks share",
    ),
    CommandInfo(
        "apply",
        "lattigo_fleet.commands.apply",
        "the merge: apply the approved plan (--plan FILE), or send nothing and list what moved "
        "(exit 0 applied, 3 stale, 1 error)",
    ),
    CommandInfo(
        "drift",
        "lattigo_fleet.commands.drift",
        "drift report: fleet.yaml against the live account, and unmanaged SIMs (exit 0 in sync, 2 drift, 1 error)",
    ),
    CommandInfo(
        "stacks",
        "lattigo_fleet.commands.stacks",
        "the stacks of this repository (--changed-from REF: those a change touches)",
    ),
    CommandInfo(
        "combine",
        "lattigo_fleet.commands.combine",
        "one comment (one drift issue) from the reports of a matrix of stacks",
    ),
    CommandInfo(
        "recover",
        "lattigo_fleet.commands.recover",
        "after a killed pulumi run: check none still runs, unlock the stack, clear pending operations",
    ),
    CommandInfo(
        "usage",
        "lattigo_fleet.commands.usage",
        "data usage per SIM, cost center and group; --compare against ThingSpace "
        "(exit 0, 2 something to look at, 1 error)",
    ),
)
# Modules that register a family of subcommands with `add_parsers(subparsers)`: the device operations (sms
# send|log, locate, reports, calamp messages|events|last, upload-imeis), which share one `main`.
COMMAND_FAMILIES = ("lattigo_fleet.commands.devices",)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only` (a name of COMMANDS), the other subcommands are their names and help
    lines alone, their modules not imported: a run imports what its own command needs (`lattigo-fleet stacks`
    in a CI step starts in a fraction of the time that importing every command takes)."""
    parser = argparse.ArgumentParser(prog="lattigo-fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in COMMANDS:
        command = sub.add_parser(info.name, help=info.help)
        if only is None or info.name == only:
            module = importlib.import_module(info.module)
            module.add_arguments(command)
            command.set_defaults(func=getattr(module, info.main))
    if only is None:
        for family in COMMAND_FAMILIES:
            importlib.import_module(family).add_parsers(sub)
    return parser


def command_named(argv: list[str]) -> str | None:
    """The subcommand of a command line when it is one of COMMANDS (it comes first: `lattigo-fleet` has no
    option of its own but --help); None for a device operation, --help, or a typo, which need every parser."""
    first = argv[0] if argv else None
    return first if any(info.name == first for info in COMMANDS) else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(only=command_named(argv)).parse_args(argv)
    func = cast(Callable[[argparse.Namespace], Any], args.func)
    # Each command ends through its own Command edge; this one catches a failure that escapes a command
    # without one (validate, demo, the emulator), so that it too is one line and exit code 1.
    return Command(getattr(args, "label", args.command)).run(lambda: func(args))


if __name__ == "__main__":
    sys.exit(main())
