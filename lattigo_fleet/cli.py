"""The `lattigo-fleet` command: what Pulumi does not do itself (GitOps, reports, device operations, the emulator)."""

from __future__ import annotations

import argparse
import sys


def _cmd_emulator(args: argparse.Namespace) -> int:
    from emulator.server import run_from_args

    return run_from_args(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lattigo_fleet.demo import run_demo

    return run_demo(Path(args.project_dir).resolve(), fleet_file=args.fleet_file, keep=args.keep)


def _cmd_validate(args: argparse.Namespace) -> int:
    from lattigo_fleet.spec import main_validate

    return main_validate(args.fleet_file)


def _cmd_import(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.importer import run

    return run(args)


def _cmd_plan(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.plan import main as plan_main

    return plan_main(args)


def _cmd_apply(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.apply import main as apply_main

    return apply_main(args)


def _cmd_drift(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.drift import main as drift_main

    return drift_main(args)


def _cmd_recover(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.recover import main as recover_main

    return recover_main(args)


def _cmd_usage(args: argparse.Namespace) -> int:
    from lattigo_fleet.commands.usage import main as usage_main

    return usage_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lattigo-fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from emulator.server import add_arguments as add_emulator_arguments

    emu = sub.add_parser("emulator", help="run the Lattigo + ThingSpace emulator in the foreground")
    add_emulator_arguments(emu)
    emu.set_defaults(func=_cmd_emulator)

    demo = sub.add_parser("demo", help="emulator + pulumi preview/up on the shipped fleet.yaml, end to end")
    demo.add_argument("--project-dir", default=".", help="directory holding Pulumi.yaml (default: .)")
    demo.add_argument("--fleet-file", default="fleet.yaml", help="fleet file, relative to the project")
    demo.add_argument("--keep", action="store_true", help="keep the temporary backend and emulator database")
    demo.set_defaults(func=_cmd_demo)

    validate = sub.add_parser("validate", help="check a fleet file (schema, references) without any API call")
    validate.add_argument("fleet_file", nargs="?", default="fleet.yaml")
    validate.set_defaults(func=_cmd_validate)

    from lattigo_fleet.commands.importer import add_arguments as add_import_arguments

    imp = sub.add_parser("import", help="write fleet.yaml from the live account (pulumi up on it sends nothing)")
    add_import_arguments(imp)
    imp.set_defaults(func=_cmd_import)

    from lattigo_fleet.commands import drift as drift_command
    from lattigo_fleet.commands import plan as plan_command

    plan = sub.add_parser("plan", help="the pull-request comment (Markdown, or --json) from `pulumi preview --json`")
    plan_command.add_arguments(plan)
    plan.set_defaults(func=_cmd_plan)

    from lattigo_fleet.commands import apply as apply_command

    apply = sub.add_parser(
        "apply",
        help="the merge: apply the approved plan (--plan FILE), or send nothing and list what moved "
        "(exit 0 applied, 3 stale, 1 error)",
    )
    apply_command.add_arguments(apply)
    apply.set_defaults(func=_cmd_apply)

    drift = sub.add_parser(
        "drift",
        help="drift report: fleet.yaml against the live account, and unmanaged SIMs (exit 0 in sync, 2 drift, 1 error)",
    )
    drift_command.add_arguments(drift)
    drift.set_defaults(func=_cmd_drift)

    from lattigo_fleet.commands.recover import add_arguments as add_recover_arguments

    recover = sub.add_parser(
        "recover", help="after a killed pulumi run: check none still runs, unlock the stack, clear pending operations"
    )
    add_recover_arguments(recover)
    recover.set_defaults(func=_cmd_recover)

    from lattigo_fleet.commands.usage import add_arguments as add_usage_arguments

    usage = sub.add_parser(
        "usage",
        help="data usage per SIM, cost center and group; --compare against ThingSpace "
        "(exit 0, 2 something to look at, 1 error)",
    )
    add_usage_arguments(usage)
    usage.set_defaults(func=_cmd_usage)

    # Device operations: sms send|log, locate, reports, calamp messages|events|last, upload-imeis.
    from lattigo_fleet.commands.devices import add_parsers as add_device_parsers

    add_device_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
