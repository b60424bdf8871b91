"""`lattigo-fleet combine plan|drift DIR...`: one comment (one issue) for the stacks of one CI run.

A sharded account runs one CI job per stack (a matrix: docs/ci.md). Each job keeps its report in a directory
of its own (its artifact): `stack.json` (`{"stack", "exit_code", "artifact"}`, and optionally `"full"`: where
its full report is, when not its job's summary and that artifact), and `plan.md` with the plan
document `fleet-plan.json` (plan) or `drift.md` (drift), as `lattigo-fleet plan` and `lattigo-fleet drift
--markdown` printed them. This command reads those directories and prints the one Markdown text a pull
request's comment (a drift issue) shows for all of them:

1. a summary table, one row per stack, never cut: for a plan, the SIMs that change, the Lattigo calls (before
   batching), the blast-radius guard's verdict or the failure, and the plan's short digest; for drift, the
   verdict of each stack;
2. a marker per stack plan, `<!-- lattigo-fleet plan stack=S digest=sha256:... -->`: what the merge of each
   stack reads to find the plan the reviewers approved (the combined comment replaces the one-stack comment,
   whose digest the merge read in the plan's text);
3. each stack's own report as its job printed it: for a plan, failures first, then plans that change the
   account, then the others; for drift, the stacks that drifted or failed (a stack in sync is its row).

Within GitHub's 65,536 characters (plan.COMMENT_LIMIT, with room to spare): when the sections do not all fit,
each gets an equal share of what the summary leaves (a short one gives what it does not use to the others),
and a section longer than its share is cut at a line, saying so and where the full report is: the job summary
of that stack's job and its artifact. `--stacks` names the stacks the run was to report, so that a job that
ended before keeping its report is a row too ("no report") rather than silently missing.

Exit codes: plan: 0 every stack planned, 1 a stack's plan failed or is missing (the text is printed first);
drift: 0 every stack in sync, 2 a stack drifted, 1 none drifted but a stack's report failed or is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure

COMMAND = Command("combine")
STACK_FILE = "stack.json"  # what each stack's job writes beside its report
REPORT_FILES = {"plan": "plan.md", "drift": "drift.md"}
PLAN_DOCUMENT = "fleet-plan.json"
PLAN_MARKER = "<!-- lattigo-fleet plan stack={stack} digest={digest} -->"
PLAN_MARKER_PATTERN = re.compile(r"<!-- lattigo-fleet plan stack=([\w.-]+) digest=(sha256:[0-9a-f]{64}) -->")
RESERVE = 400  # characters kept free below the limit: the separators between sections
MIN_SECTION = 600  # a share smaller than this shows the section's heading and the cut note alone
IN_SYNC, DRIFTED, FAILED = 0, 2, 1


class CombineFailure(CommandFailure):
    """The reports cannot be read: a directory without stack.json, or one that is not this command's shape."""


@dataclass(frozen=True)
class StackReport:
    """One stack's job's report: its exit code, its Markdown, and (a plan) its plan document."""

    stack: str
    exit_code: int | None  # None: no report (the job ended before it kept one)
    text: str = ""
    artifact: str = ""  # the artifact that keeps the report (where the cut note sends the reader)
    full: str = ""  # where the full report is, when the job says (GitLab: its job's log and artifacts)
    document: Mapping[str, Any] | None = None

    @property
    def missing(self) -> bool:
        return self.exit_code is None


def read_report(directory: Path, kind: str) -> StackReport:
    """One stack's directory, as its job wrote it."""
    from lattigo_fleet import plan_document

    meta_path = directory / STACK_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CombineFailure(f"{directory}: no {STACK_FILE}: not the report of a stack's job") from None
    except (OSError, ValueError) as exc:
        raise CombineFailure(f"{meta_path}: cannot read it: {exc}") from None
    stack, code = meta.get("stack") if isinstance(meta, dict) else None, None
    if isinstance(meta, dict) and isinstance(meta.get("exit_code"), int):
        code = meta["exit_code"]
    if not isinstance(stack, str) or not re.fullmatch(r"[\w.-]+", stack) or code is None:
        raise CombineFailure(f"{meta_path}: not a stack's report (it needs a stack name and an exit_code)")
    report = directory / REPORT_FILES[kind]
    text = report.read_text(encoding="utf-8") if report.is_file() else ""
    document = None
    if kind == "plan" and (directory / PLAN_DOCUMENT).is_file():
        try:
            document = plan_document.read(directory / PLAN_DOCUMENT)
        except plan_document.PlanDocumentError as exc:
            raise CombineFailure(f"{directory / PLAN_DOCUMENT}: {exc}") from None
        if document.get("stack") != stack:
            raise CombineFailure(
                f"{directory / PLAN_DOCUMENT}: the plan of stack {document.get('stack')!r}, not of {stack!r}"
            )
    return StackReport(stack, code, text, str(meta.get("artifact") or ""), str(meta.get("full") or ""), document)


def read_reports(directories: Sequence[Path], kind: str, expected: Sequence[str]) -> list[StackReport]:
    """The reports found, plus a missing one for each expected stack that has none."""
    reports: dict[str, StackReport] = {}
    for directory in directories:
        report = read_report(directory, kind)
        if report.stack in reports:
            raise CombineFailure(f"two reports of stack {report.stack!r}: {directory} and another")
        reports[report.stack] = report
    for stack in expected:
        reports.setdefault(stack, StackReport(stack, None))
    return list(reports.values())


# --- plan --------------------------------------------------------------------------------------------------


def calls_of(document: Mapping[str, Any]) -> int:
    counts = document.get("counts") or {}
    return sum(int(v) for k, v in counts.items() if k.startswith("calls_"))


def guard_verdict(report: StackReport) -> str:
    """The blast-radius guard's verdict, or why there is none (the preview failed, no report)."""
    if report.missing:
        return "**no plan**: the job ended before it kept one (see its log)"
    guard = (report.document or {}).get("guard")
    if isinstance(guard, Mapping):
        out = f"{guard.get('out_of_service', 0):,} out of service, limit {guard.get('limit', 0):,}"
        if guard.get("refused"):
            return f"**refused** ({out})"
        if report.exit_code:
            return f"**the preview failed** (guard: {out})"
        if guard.get("allowed_by_setting"):
            return f"allowed by allowLargeChanges ({out})"
        return f"passes ({out})"
    if report.exit_code:
        return "**the preview failed**: see its plan below"
    return "—"


def plan_rank(report: StackReport) -> int:
    """Failures first, then plans that change the account, then the rest."""
    if report.missing or report.exit_code:
        return 0
    return 1 if (report.document or {}).get("counts", {}).get("sims") else 2


def plan_summary(reports: Sequence[StackReport]) -> str:
    from lattigo_fleet import plan_document

    failed = sum(1 for r in reports if r.missing or r.exit_code)
    changing = sum(1 for r in reports if plan_rank(r) == 1)
    title = f"## lattigo-fleet plan · {len(reports)} stack{'s' if len(reports) != 1 else ''}"
    if not reports:
        return f"{title}\n\n**No stack changed**: nothing to plan.\n"
    verdict = f"**{changing} of {len(reports)} change the Lattigo account**"
    if failed:
        verdict += f"; **{failed} failed: nothing will be applied for {'it' if failed == 1 else 'them'}**"
    lines = [
        title,
        "",
        verdict + ".",
        "",
        "| stack | SIMs changed | calls | guard | plan |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    markers = []
    for report in reports:
        doc = report.document
        sims = f"{int(doc.get('counts', {}).get('sims', 0)):,}" if doc else "—"
        calls = f"{calls_of(doc):,}" if doc else "—"
        digest = f"`{plan_document.short(str(doc['digest']))}`" if doc else "—"
        lines.append(f"| `{report.stack}` | {sims} | {calls} | {guard_verdict(report)} | {digest} |")
        if doc and not report.exit_code:
            markers.append(PLAN_MARKER.format(stack=report.stack, digest=doc["digest"]))
    return "\n".join([*lines, "", *markers]).rstrip("\n") + "\n"


# --- drift -------------------------------------------------------------------------------------------------


def drift_line(report: StackReport) -> str:
    """The report's own verdict sentence (its first bold line), else what its exit code says."""
    if report.missing:
        return "**no report**: the job ended before it kept one (see its log)"
    found = re.search(r"^\*\*(.+)\*\*$", report.text, re.M)
    said = found.group(1) if found else ""
    if report.exit_code == DRIFTED:
        return f"**drift**{f': {said}' if said else ''}"
    if report.exit_code == IN_SYNC:
        return "in sync"
    return "**the report failed**: see its job's log"


def drift_rank(report: StackReport) -> int:
    return 1 if report.exit_code == DRIFTED else 0 if report.missing or report.exit_code != IN_SYNC else 2


def drift_summary(reports: Sequence[StackReport]) -> str:
    drifted = sum(1 for r in reports if r.exit_code == DRIFTED)
    failed = sum(1 for r in reports if r.missing or r.exit_code not in (IN_SYNC, DRIFTED))
    title = f"## lattigo-fleet drift · {len(reports)} stack{'s' if len(reports) != 1 else ''}"
    if drifted:
        verdict = f"**{drifted} of {len(reports)} drifted from their fleet files**"
    elif reports and not failed:
        verdict = "**In sync: the live account matches every stack's fleet file**"
    else:
        verdict = "**No drift found**"
    if failed:
        verdict += f"; **{failed} could not be checked**"
    lines = [title, "", verdict + ".", "", "| stack | verdict |", "| --- | --- |"]
    lines += [f"| `{r.stack}` | {drift_line(r)} |" for r in reports]
    return "\n".join(lines) + "\n"


# --- the one text ------------------------------------------------------------------------------------------


def cut_section(report: StackReport, text: str, share: int, kind: str, see: str) -> str:
    """`text` cut at a line to fit `share` characters with its note; a fold it opened is closed."""
    where = report.full or (
        f"the job summary of its {kind} job" + (f" and its artifact `{report.artifact}`" if report.artifact else "")
    )
    note = (
        f"\n\n_… the {kind} of stack `{report.stack}` is cut here to keep this text under the size limit: "
        f"the full {kind} is in {where}{see}._\n"
    )
    room = share - len(note) - 40  # the closing tags
    if room < MIN_SECTION:
        heading = text.splitlines()[0] if text else f"## lattigo-fleet {kind} · stack `{report.stack}`"
        return (
            f"{heading}\n\n_The {kind} of stack `{report.stack}` is not shown here (too long for this text): "
            f"it is in {where}{see}._\n"
        )
    kept = text[:room]
    if "\n" in kept:
        kept = kept[: kept.rindex("\n")]
    opened = kept.count("<details") - kept.count("</details>")
    return kept.rstrip("\n") + "\n" + "\n</details>" * max(opened, 0) + note


def shares(lengths: Sequence[int], budget: int) -> list[int]:
    """Each section's room: all it needs when everything fits; else equal shares of `budget`, a short section
    giving what it does not need to the longer ones (water-filling)."""
    room = [0] * len(lengths)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left = max(budget, 0)
    for done, index in enumerate(order):
        share = left // (len(order) - done)
        room[index] = min(lengths[index], share)
        left -= room[index]
    return room


def combine(
    reports: Sequence[StackReport], kind: str, limit: int | None = None, see: str = ""
) -> tuple[str, list[str]]:
    """The one text, and the stacks whose section was cut."""
    from lattigo_fleet.commands.plan import COMMENT_LIMIT

    limit = COMMENT_LIMIT if limit is None else limit
    if kind == "plan":
        ordered = sorted(reports, key=lambda r: (plan_rank(r), r.stack))
        head = plan_summary(ordered)
        shown = [r for r in ordered if r.text]
    else:
        ordered = sorted(reports, key=lambda r: (drift_rank(r), r.stack))
        head = drift_summary(ordered)
        shown = [r for r in ordered if r.text and r.exit_code != IN_SYNC]
    separator = "\n---\n\n"
    texts = [r.text.rstrip("\n") + "\n" for r in shown]
    budget = limit - len(head) - RESERVE - len(separator) * len(texts)
    room = shares([len(t) for t in texts], budget)
    sections, cut = [], []
    for report, text, share in zip(shown, texts, room, strict=True):
        if len(text) <= share:
            sections.append(text)
        else:
            sections.append(cut_section(report, text, share, kind, see))
            cut.append(report.stack)
    return head + "".join(separator + s for s in sections), cut


def exit_code(reports: Sequence[StackReport], kind: str) -> int:
    failed = any(r.missing or r.exit_code not in ((0,) if kind == "plan" else (IN_SYNC, DRIFTED)) for r in reports)
    if kind == "plan":
        return FAILED if failed else 0
    if any(r.exit_code == DRIFTED for r in reports):
        return DRIFTED
    return FAILED if failed else IN_SYNC


def digests(text: str) -> dict[str, str]:
    """Stack -> the digest of its approved plan, from a combined comment (what the merge of each stack reads)."""
    return dict(PLAN_MARKER_PATTERN.findall(text))


# --- the command -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(REPORT_FILES), help="what the stacks' jobs reported")
    parser.add_argument(
        "directories",
        nargs="*",
        metavar="DIR",
        type=Path,
        help="one directory per stack, as its job kept it (stack.json, and plan.md + fleet-plan.json or drift.md)",
    )
    parser.add_argument(
        "--stacks",
        metavar="LIST",
        help="the stacks the run was to report (a JSON list or commas): one without a directory is shown as such",
    )
    parser.add_argument("--out", metavar="FILE", help="write the text to FILE (default: standard output)")
    parser.add_argument(
        "--see",
        default="",
        metavar="TEXT",
        help="appended to each cut note after where the full report is (e.g. `: <the run's URL>`)",
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return COMMAND.run(lambda: _combine(args, out or sys.stdout))


def _combine(args: argparse.Namespace, out: TextIO) -> int:
    from lattigo_fleet.sharding import invalid_stack_names, parse_stacks

    expected = parse_stacks(args.stacks)
    bad = invalid_stack_names(expected)
    if bad:
        raise CombineFailure(f"--stacks: {', '.join(map(repr, bad[:3]))} is not a stack name")
    reports = read_reports(args.directories, args.kind, expected)
    text, cut = combine(reports, args.kind, see=args.see)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CombineFailure(f"cannot write {args.out}: {exc.strerror or exc}") from None
    else:
        out.write(text)
    if cut:
        print(f"lattigo-fleet combine: cut to fit the size limit: stack(s) {', '.join(cut)}", file=sys.stderr)
    return exit_code(reports, args.kind)
