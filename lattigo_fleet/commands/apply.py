"""`lattigo-fleet apply --plan FILE`: the merge applies the approved plan, or sends nothing and says why.

The approved plan is the document `lattigo-fleet plan` wrote for the pull request (plan_document.py). This
runs `pulumi up` with it, and the program, before it registers a single resource, recomputes the plan against
the live account (and the fleet files of this checkout) and compares: in the strict mode (the default) any
SIM or field that moved stops the run with nothing sent, and this command lists each stale SIM and field
(before at review / now), prints the new plan as a comment to review, and exits 3. When they are equal, the
run applies exactly that plan, and each bulk request is checked once more, right before it goes, against a
fresh read of the account (providers/runtime.py `still_as_approved`).

In the heal mode (`lattigo-fleet:mergeMode: heal`) the merge is level-based: it applies whatever fleet.yaml
needs at merge time and says what it healed beyond the approved plan; `--plan` is then optional. `--heal`
asks for that one run without a plan, on purpose (a person who read the drift report, never a merge).

Standard output carries only the report (the stale SIMs and the new plan, Markdown, for the job summary);
pulumi's own output goes to standard error. `--out FILE` keeps the plan at merge time (stale or not): the
document a person reviews and approves when the merge refused (`apply --plan FILE --expect-digest D`).

Exit codes: 0 applied; 3 the approved plan is stale (nothing sent); 1 any other failure (one line).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, TextIO

from lattigo_fleet import plan_document
from lattigo_fleet.commands import pulumi_cli
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.commands.preview_json import Preview

APPLIED, FAILED, STALE = 0, 1, 3
UP_ARGS = ("up", "--yes", "--skip-preview", "--continue-on-error")  # and --non-interactive, as every run
COMMAND = Command("apply")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", metavar="FILE", help="the approved plan document (what `lattigo-fleet plan --out` wrote)"
    )
    parser.add_argument(
        "--expect-digest",
        metavar="DIGEST",
        help="refuse unless the plan's digest is this one (or starts with it): the digest the reviewer read in the "
        "pull request's comment",
    )
    parser.add_argument(
        "--heal",
        action="store_true",
        help="without --plan: apply whatever fleet.yaml needs now, unreviewed, for this run only (strict mode)",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the plan at merge time here (to review and approve when it refused)"
    )
    parser.add_argument("--stack", help="the stack (default: the plan's stack)")
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")


def _mode_of(stack: str | None, cwd: str | None) -> str:
    """The stack's merge mode, as the program will read it (stack config, else the default)."""
    try:
        config = pulumi_cli.run_json(["config"], stack=stack, cwd=cwd)
    except CommandFailure:
        return plan_document.STRICT
    value = config.get("lattigo-fleet:mergeMode") if isinstance(config, dict) else None
    mode = value.get("value") if isinstance(value, dict) else value
    return str(mode) if mode in plan_document.MERGE_MODES else plan_document.STRICT


def stale_report(approved: dict[str, Any], now: dict[str, Any], staleness: plan_document.Staleness) -> str:
    """What the merge job prints when it refuses: each stale SIM and field, then the new plan to review."""
    from lattigo_fleet.commands.plan import build_report, render_markdown

    lines = [
        f"lattigo-fleet apply: the approved plan {plan_document.short(approved['digest'])} is stale, and nothing was "
        f"sent. The plan now is {plan_document.short(now['digest'])}. What moved since the review "
        "(before at review / now):",
        *plan_document.stale_lines(staleness, limit=200),
        "",
        "The plan now, for a new review (run the pull request's plan again to approve it):",
        "",
    ]
    text, _cut = render_markdown(build_report(Preview([], []), now))
    return "\n".join(lines) + "\n" + text


def _has_fd(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def main(args: argparse.Namespace, out: TextIO | None = None, log: TextIO | None = None) -> int:
    return COMMAND.run(lambda: _apply(args, out or sys.stdout, log or sys.stderr))


def _apply(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    approved: dict[str, Any] | None = None
    if args.plan:
        try:
            approved = plan_document.read(args.plan)
        except plan_document.PlanDocumentError as exc:
            raise CommandFailure(str(exc)) from None
        expected = (args.expect_digest or "").strip()
        if expected and not (
            approved["digest"].startswith(expected) or plan_document.short(approved["digest"]).startswith(expected)
        ):
            raise CommandFailure(
                f"{args.plan} is plan {plan_document.short(approved['digest'])}, not the plan {expected} that the "
                "reviewer read: nothing was sent",
            )
        if args.stack and args.stack != approved["stack"]:
            raise CommandFailure(f"{args.plan} is a plan for stack {approved['stack']!r}, not {args.stack!r}")
    if approved is not None and args.heal:
        raise CommandFailure("--heal applies fleet.yaml without a plan: give it or --plan, not both")
    stack = args.stack or (approved or {}).get("stack")
    if approved is None and not args.heal and _mode_of(stack, args.cwd) != plan_document.HEAL:
        raise CommandFailure(
            "no approved plan: in the strict merge mode the merge applies only a reviewed plan (`--plan FILE`, the "
            "pull request's plan document); `--heal` applies whatever fleet.yaml needs for one run, and "
            "lattigo-fleet:mergeMode heal for every run",
        )
    with tempfile.TemporaryDirectory(prefix="lattigo-fleet-apply-") as scratch:
        now_path = os.path.join(scratch, "plan-now.json")
        env = {**os.environ, plan_document.PLAN_OUT_ENV: now_path}
        env.pop(plan_document.APPROVED_ENV, None)
        if args.plan:
            env[plan_document.APPROVED_ENV] = os.path.abspath(args.plan)
        out.flush()
        log.flush()
        # pulumi's progress goes to our standard error: standard output is the report alone.
        code = pulumi_cli.run(
            UP_ARGS, stack=stack, cwd=args.cwd, env=env, capture=False, output_to=log.fileno() if _has_fd(log) else None
        ).returncode
        now = None
        if os.path.exists(now_path):
            try:
                now = plan_document.read(now_path)
            except plan_document.PlanDocumentError:
                now = None
        if now is not None and args.out:
            try:
                plan_document.write(now, args.out)
            except OSError as exc:
                raise CommandFailure(
                    f"cannot write the plan at merge time to {args.out}: {exc.strerror or exc}"
                ) from None
    staleness = plan_document.compare(approved, now) if approved and now else None
    if code != 0 and staleness and now is not None and now.get("mode") == plan_document.STRICT:
        assert approved is not None
        print(stale_report(approved, now, staleness), file=out)
        return STALE
    if code != 0:
        raise CommandFailure(f"pulumi up failed (exit code {code}): see its output above")
    if approved:
        what = f"the approved plan {plan_document.short(approved['digest'])}"
    else:
        what = "fleet.yaml, unreviewed (--heal)" if args.heal else "fleet.yaml (heal mode)"
    if staleness and now is not None:
        what += f", and healed what moved since (the plan at merge time was {plan_document.short(now['digest'])})"
    print(f"lattigo-fleet apply: applied {what}", file=log)
    return APPLIED
