"""`lattigo-fleet drift`: the scheduled drift report, like driftctl's: what in the live account differs from
fleet.yaml, and what the account holds that fleet.yaml does not declare.

It runs `pulumi preview --refresh --expect-no-changes --json` (a refresh, which other runs do not need, so that
each step holds the value last applied beside the live one). For each SIM that the preview would change, each
field of its detailed diff is reported once, with the value fleet.yaml declares and the value the account holds now:

- **drift**: the account changed out of band (the live value differs from the one last applied);
- **pending**: fleet.yaml changed and was not applied yet (the account still holds what was last applied;
  a SIM added to or removed from fleet.yaml is pending too).

Then the SIMs of the account that fleet.yaml does not declare (unmanaged), read with one paged snapshot
through the stack's credentials; and, said once, what cannot be checked: usage limits, which the Lattigo
API cannot read back. What the platform changes by itself (usage, connection times) is never stored in a
Sim, so a day of traffic adds nothing here.

Exit codes: 0 in sync, 2 drift (anything reported), 1 error (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lattigo_fleet.account_snapshot import Snapshot
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.commands import pulumi_summary
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure, add_account_snapshot_argument, load_fleet_file
from lattigo_fleet.commands.credentials import api_failure_line, read_credentials
from lattigo_fleet.commands.preview_json import (
    MISSING,
    SIM_TYPE,
    Diagnostic,
    Preview,
    first_error,
    value_at,
)
from lattigo_fleet.settings import Settings

IN_SYNC, DRIFTED, ERROR = 0, 2, 1
COMMAND = Command("drift")
NOT_READABLE = "usage limits: the Lattigo API cannot read them back, so a limit changed outside fleet.yaml is not seen"


@dataclass(frozen=True)
class DriftItem:
    sim: str
    iccid: str
    field: str | None  # None: the SIM as a whole (added to, removed from, or gone from the account)
    declared: Any
    live: Any
    kind: str  # drift | pending
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sim": self.sim,
            "iccid": self.iccid,
            "field": self.field,
            "declared": _jsonable(self.declared),
            "live": _jsonable(self.live),
            "kind": self.kind,
            "note": self.note or None,
        }


@dataclass(frozen=True)
class UnmanagedSim:
    iccid: str
    device_name: str | None
    state: str | None
    cost_center: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "iccid": self.iccid,
            "device_name": self.device_name,
            "state": self.state,
            "cost_center": self.cost_center,
        }


@dataclass
class DriftReport:
    stack: str
    items: list[DriftItem]
    unmanaged: list[UnmanagedSim]
    not_checked: list[str]
    warnings: list[Diagnostic] = field(default_factory=list)
    # SIMs their own usage limit suspended (not drift: left alone), from the run's plan document.
    left_alone: list[dict[str, Any]] = field(default_factory=list)
    # Open pull requests' plans (--plans): label -> the SIMs whose live values moved since the plan was made.
    # None: no plan was given, so which open plans this drift makes stale cannot be told.
    stale_plans: dict[str, list[str]] | None = None
    preview: Preview | None = None  # the preview it was read from (its steps and duration, for --json)
    # ICCID -> the Lattigo calls that `pulumi up` would send (the run's plan document); None: no document.
    calls: dict[str, list[dict[str, Any]]] | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.items or self.unmanaged)

    @property
    def counts(self) -> dict[str, int]:
        drift = [i for i in self.items if i.kind == "drift"]
        return {
            "drift": len(drift),
            "drifted_sims": len({i.iccid for i in drift}),
            "pending": len([i for i in self.items if i.kind == "pending"]),
            "unmanaged": len(self.unmanaged),
        }


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


# --- from the preview and the account to the report --------------------------------------------------------


def drift_items(preview: Preview) -> list[DriftItem]:
    """Each field that the preview would change, once, as drift (the account moved) or pending (fleet.yaml
    moved). The refresh step holds the state as last applied; the next step's old state is the live one."""
    refreshed = preview.refreshed()
    items: list[DriftItem] = []
    for step in preview.planned(SIM_TYPE):
        props = step.new_inputs or step.old_inputs or {}
        iccid = str(props.get("iccid") or step.name)
        sim = str(props.get("name") or iccid)
        applied_step = refreshed.get(step.urn)
        if step.op == "update":
            for path in step.changed_paths:
                declared, live = value_at(step.new_inputs, path), value_at(step.old_inputs, path)
                applied = value_at(applied_step.old_inputs, path) if applied_step else live
                kind = "pending" if applied == live else "drift"
                items.append(DriftItem(sim, iccid, path, declared, live, kind))
        elif step.op == "create":
            if applied_step is not None:
                items.append(
                    DriftItem(
                        sim,
                        iccid,
                        None,
                        "in the account",
                        "absent",
                        "drift",
                        "gone from the account since the last apply",
                    )
                )
            else:
                items.append(
                    DriftItem(
                        sim,
                        iccid,
                        None,
                        "declared",
                        "not in the stack",
                        "pending",
                        "added to fleet.yaml, not applied yet",
                    )
                )
        elif step.op == "delete":
            items.append(
                DriftItem(
                    sim,
                    iccid,
                    None,
                    "not declared",
                    "in the stack",
                    "pending",
                    "removed from fleet.yaml, not applied yet",
                )
            )
        elif step.op not in ("same", "read"):
            items.append(DriftItem(sim, iccid, None, MISSING, MISSING, "pending", f"Pulumi step: {step.op}"))
    items.sort(key=lambda i: (i.kind != "drift", i.sim, i.iccid, i.field or ""))
    return items


def unmanaged_sims(
    snapshot: Mapping[str, Mapping[str, Any]], declared: set[str], reported: set[str]
) -> list[UnmanagedSim]:
    """SIMs of the account that fleet.yaml does not declare (and that no pending removal already names)."""
    found = []
    for iccid in sorted(set(snapshot) - declared - reported):
        device = snapshot[iccid]
        name = device.get("device_name")
        found.append(
            UnmanagedSim(
                iccid, None if name is None else str(name), device.get("state"), device.get("cost_center") or None
            )
        )
    return found


def build_report(
    preview: Preview, snapshot: Mapping[str, Mapping[str, Any]], declared: set[str], ignoring: int = 0, stack: str = ""
) -> DriftReport:
    items = drift_items(preview)
    unmanaged = unmanaged_sims(snapshot, declared, {i.iccid for i in items if i.field is None})
    not_checked = [NOT_READABLE]
    if ignoring:
        not_checked.append(f"fields listed in ignore_changes ({ignoring:,} SIM(s)): left alone by design")
    return DriftReport(stack or preview.stack, items, unmanaged, not_checked, preview.warnings, preview=preview)


# --- output ------------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is MISSING or value is None:
        return "(not set)"
    if value == "none":
        return "no limit"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _who(item: DriftItem) -> str:
    return item.iccid if item.sim == item.iccid else f"{item.sim} ({item.iccid})"


def _summary(report: DriftReport) -> str:
    counts = report.counts
    if not report.drifted:
        return "In sync: the live account matches fleet.yaml."
    parts = []
    if counts["drift"]:
        parts.append(f"{counts['drift']} drifted field(s) on {counts['drifted_sims']} SIM(s)")
    if counts["pending"]:
        parts.append(f"{counts['pending']} change(s) of fleet.yaml not applied yet")
    if counts["unmanaged"]:
        parts.append(f"{counts['unmanaged']} unmanaged SIM(s)")
    return "Drift: " + ", ".join(parts) + "."


def render_text(report: DriftReport) -> str:
    lines = [
        f"Drift report{f' for stack {report.stack}' if report.stack else ''}: fleet.yaml against the live "
        "Lattigo account",
        "",
        _summary(report),
    ]
    for kind, title in (
        ("drift", "Changed in the account (declared -> live):"),
        ("pending", "Changed in fleet.yaml, not applied yet (declared -> live):"),
    ):
        items = [i for i in report.items if i.kind == kind]
        if not items:
            continue
        lines += ["", title]
        width = max(len(_who(i)) for i in items)
        fwidth = max(len(i.field or "") for i in items)
        for item in items:
            if item.field is None:
                lines.append(f"  {_who(item):<{width}}  {'':<{fwidth}}  {item.note}")
            else:
                lines.append(
                    f"  {_who(item):<{width}}  {item.field:<{fwidth}}  declared {_value(item.declared)}, "
                    f"live {_value(item.live)}"
                )
    if report.unmanaged:
        lines += ["", f"In the account, not declared in fleet.yaml (unmanaged): {len(report.unmanaged)}"]
        for sim in report.unmanaged:
            lines.append(
                f"  {sim.iccid}  device {sim.device_name or '-'}  {sim.state or '-'}  "
                f"cost center {sim.cost_center or '-'}"
            )
    lines += [line.replace("- ", "  ", 1) if line.startswith("- ") else line for line in _extra_sections(report, "")]
    if report.warnings:
        lines += ["", "Warnings of the preview:"] + [f"  {w.message.splitlines()[0]}" for w in report.warnings]
    lines += ["", "Not checked: " + "; ".join(report.not_checked) + "."]
    if report.drifted:
        lines.append("`pulumi up` puts the account back to fleet.yaml (and adopts nothing it does not declare).")
    return "\n".join(lines) + "\n"


def _md(value: str) -> str:
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _extra_sections(report: DriftReport, bold: str) -> list[str]:
    """SIMs left suspended by their own usage limit, and the open plans this drift makes stale."""
    lines: list[str] = []
    if report.left_alone:
        lines += [
            "",
            f"{bold}Suspended by their own usage limit{bold} (not drift, left alone): {len(report.left_alone)}",
        ]
        for item in report.left_alone:
            used = "?" if item.get("month_kb") is None else f"{item['month_kb']:,}"
            lines.append(
                f"- {_md(str(item['name']))} `{item['iccid']}`: {used} KB this month, limit {item['kb_limit']:,} KB"
            )
    if report.stale_plans is None:
        lines += ["", "Open pull requests whose plan this makes stale: cannot tell (no plan documents were given)."]
    elif any(report.stale_plans.values()):
        lines += ["", f"{bold}Open pull requests whose approved plan is now stale{bold} (their merge will refuse):"]
        for label, sims in report.stale_plans.items():
            if sims:
                lines.append(f"- {_md(label)}: {len(sims)} SIM(s) moved: {_md(', '.join(sims[:10]))}")
    else:
        lines += ["", f"Open pull requests' plans checked ({len(report.stale_plans)}): none is made stale."]
    return lines


def stale_plans(
    plans: list[tuple[str, dict[str, Any]]], report: DriftReport, live: Mapping[str, LiveDevice]
) -> dict[str, list[str]]:
    """For each plan document of an open pull request: the SIMs that moved since it was made. A SIM of the plan
    whose live values moved, and, in the strict mode, any SIM that drifted (its merge would find a new call)."""
    from lattigo_fleet import plan_document

    found: dict[str, list[str]] = {}
    drifted = sorted({i.sim for i in report.items if i.kind == "drift"})
    for path, doc in plans:
        source = doc.get("source") or {}
        number = source.get("pull_request") or source.get("merge_request")
        label = f"#{number}" if number else path
        label += f" (plan {plan_document.short(doc['digest'])})"
        moved = [s.name for s in plan_document.stale_against_live(doc, live)]
        if doc.get("mode") == plan_document.STRICT:
            moved += [name for name in drifted if name not in moved]
        found[label] = moved
    return found


def render_markdown(report: DriftReport) -> str:
    lines = [
        f"## lattigo-fleet drift{f' · stack `{report.stack}`' if report.stack else ''}",
        "",
        f"**{_summary(report)}**",
    ]
    if report.items:
        lines += ["", "| SIM | ICCID | field | declared | live | kind |", "| --- | --- | --- | --- | --- | --- |"]
        for item in report.items:
            declared = _md(_value(item.declared)) if item.field else _md(item.note)
            live = _md(_value(item.live)) if item.field else ""
            lines.append(
                f"| {_md(item.sim)} | `{item.iccid}` | {item.field or '—'} | {declared} | {live} | {item.kind} |"
            )
    if report.unmanaged:
        lines += [
            "",
            f"**Unmanaged** (in the account, not in fleet.yaml): {len(report.unmanaged)}",
            "",
            "| ICCID | device | state | cost center |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{s.iccid}` | {s.device_name or '—'} | {s.state or '—'} | {_md(s.cost_center or '—')} |"
            for s in report.unmanaged
        ]
    lines += _extra_sections(report, "**")
    if report.warnings:
        lines += ["", "Warnings of the preview:", ""] + [f"- {_md(w.message.splitlines()[0])}" for w in report.warnings]
    lines += ["", "_Not checked: " + "; ".join(report.not_checked) + "._"]
    return "\n".join(lines) + "\n"


def pulumi_steps(report: DriftReport) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The SIMs the preview would change as Pulumi's steps, drift first, each with `kind` (drift if any of its
    fields drifted, else pending), each field's `before` (the account now) and `after` (fleet.yaml) with its
    kind, and the calls `pulumi up` would send (`calls`; null without the plan document); and their
    `changeSummary`."""
    preview = report.preview or Preview([], [])
    changed = pulumi_summary.sim_steps(preview)
    by_sim: dict[str, list[DriftItem]] = {}
    for item in report.items:
        by_sim.setdefault(item.iccid, []).append(item)
    order = list(by_sim) + [name for name in changed if name not in by_sim]
    steps = []
    for iccid in order:
        items = by_sim.get(iccid, [])
        step = changed.get(iccid)
        detail = {
            "sim": items[0].sim if items else iccid,
            "iccid": iccid,
            "kind": "drift" if any(i.kind == "drift" for i in items) else "pending",
            "fields": {
                i.field: {"before": _jsonable(i.live), "after": _jsonable(i.declared), "kind": i.kind}
                for i in items
                if i.field
            },
            "calls": None if report.calls is None else report.calls.get(iccid, []),
            "note": "; ".join(i.note for i in items if i.note) or None,
        }
        op = step.op if step is not None else "update"
        urn = step.urn if step is not None else pulumi_summary.sim_urn(preview, iccid)
        steps.append(pulumi_summary.step_json(op, urn, step, iccid, detail))
    ops = [s["op"] for s in steps]
    return steps, pulumi_summary.change_summary(ops, len(pulumi_summary.known_sims(preview) | set(order)))


def render_json(report: DriftReport) -> dict[str, Any]:
    """Pulumi's summary (pulumi_summary.py: the SIMs that `pulumi up` would change; `result` is the check's, so
    "succeeded" with drift found too, which `in_sync` and the exit code say), then the report's own keys (the
    keys that `drift --json` had before Pulumi's)."""
    steps, changes = pulumi_steps(report)
    names = {str(s["iccid"]): str(s["sim"]) for s in steps}
    diagnostics = [
        {
            "severity": w.severity,
            "message": w.message,
            "sim": names.get(w.resource) if w.resource else None,
            "urn": w.urn or None,
        }
        for w in report.warnings
    ]
    # No durationSeconds: the same account gives the same report, run after run (pulumi_summary.py).
    return pulumi_summary.summary(
        failed=False, duration_seconds=None, changes=changes, steps=steps, diagnostics=diagnostics
    ) | {
        "stack": report.stack,
        "in_sync": not report.drifted,
        "counts": report.counts,
        "drift": [i.to_json() for i in report.items],
        "unmanaged": [s.to_json() for s in report.unmanaged],
        "not_checked": report.not_checked,
        "warnings": [w.message for w in report.warnings],
        "left_alone": report.left_alone,
        "stale_plans": report.stale_plans,
    }


# --- the command -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="the stack to check (default: the selected stack)")
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print JSON for machines (Pulumi's summary shape: docs/json-outputs.md)"
    )
    output.add_argument("--markdown", action="store_true", help="print Markdown (an issue or a chat message)")
    parser.add_argument(
        "--plans",
        nargs="*",
        default=None,
        metavar="FILE",
        help="plan documents of open pull requests (their CI artifacts): name those this drift makes stale",
    )
    add_account_snapshot_argument(parser)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return COMMAND.run(lambda: _drift(args, out or sys.stdout))


def _account(settings: Settings, shared: str | None, keep: Callable[[str], bool], stack: str | None) -> Snapshot:
    """The account, for what it holds that fleet.yaml does not declare: the shared snapshot when given (the
    preview planned from it too, and it says what the sibling stacks held), with only the SIMs `keep` wants
    and those `stack` held; else one paged read."""
    from lattigo_fleet import account_snapshot
    from lattigo_fleet.client import LattigoClient, LattigoError

    if shared:
        try:
            return account_snapshot.read(shared, _account_name(settings), keep=keep, keep_held_by=stack)
        except account_snapshot.AccountSnapshotError as exc:
            raise CommandFailure(str(exc)) from None
    try:
        return Snapshot(LattigoClient(settings.endpoint, settings.key_name, settings.api_key, max_retries=2).snapshot())
    except LattigoError as exc:
        raise CommandFailure(api_failure_line(exc, settings.endpoint)) from None


def _account_name(settings: Settings) -> str:
    from lattigo_fleet.account_snapshot import account_of

    return account_of(settings.endpoint, settings.key_name)


def _held_by_stacks(settings: Settings, shared: str | None) -> Mapping[str, frozenset[str]] | None:
    """What each stack held, as the shared snapshot recorded it (None: no snapshot, read their states)."""
    from lattigo_fleet import account_snapshot

    if not shared:
        return None
    try:
        return account_snapshot.read_header(shared, _account_name(settings)).held or None
    except account_snapshot.AccountSnapshotError as exc:
        raise CommandFailure(str(exc)) from None


def _plan_documents(paths: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """The plan documents of open pull requests (--plans), each with its path: the report says which of their
    SIMs moved."""
    from lattigo_fleet import plan_document
    from lattigo_fleet.plan_document import PlanDocumentError

    try:
        return [(path, plan_document.read(path)) for path in paths or ()]
    except PlanDocumentError as exc:
        raise CommandFailure(str(exc)) from None


def _drift(args: argparse.Namespace, out: TextIO) -> int:
    import os
    import tempfile

    from lattigo_fleet import account_snapshot
    from lattigo_fleet.commands.plan import preview_with_document
    from lattigo_fleet.sharding import SiblingError, owned_by_siblings

    # The stack's config even without --stack: the preview runs on the selected stack anyway.
    settings = read_credentials(args.stack, cwd=args.cwd, selected_stack=True).settings
    fleet = load_fleet_file(Path(args.cwd or ".") / settings.fleet_file)
    shared = getattr(args, "account_snapshot", None)
    stack = args.stack or os.environ.get("PULUMI_STACK") or None
    ignoring = sum(1 for sim in fleet.sims if sim.ignore_changes)
    # A SIM that a sibling stack manages (a slice of the same account) is not unmanaged.
    try:
        owned = (
            owned_by_siblings(
                settings.sibling_stacks, this_stack=args.stack, cwd=args.cwd, held=_held_by_stacks(settings, shared)
            )
            if settings.sibling_stacks
            else {}
        )
    except SiblingError as exc:
        raise CommandFailure(str(exc)) from None
    managed = set(fleet.by_iccid) | set(owned)
    # Of a shared snapshot: this stack's SIMs (declared; the held ones come with keep_held_by), the account's
    # unmanaged ones (the report lists them) and those of open plans. A stack of 5,000 in an account of 100,000
    # keeps about 5,000, not the account.
    plans = _plan_documents(getattr(args, "plans", None))
    planned = {str(entry["iccid"]) for _path, plan in plans for entry in plan.get("sims") or []}

    def keep(iccid: str) -> bool:
        return iccid in fleet.by_iccid or iccid not in managed or iccid in planned

    account = _account(settings, shared, keep, stack) if shared else None
    with tempfile.TemporaryDirectory(prefix="lattigo-fleet-drift-") as scratch:
        preview_snapshot = shared
        if account is not None and stack:
            # The preview's provider refreshes from the snapshot before the program can hand it anything: give
            # it this stack's slice of the account, not the account.
            preview_snapshot = os.path.join(scratch, "account-slice.jsonl")
            account_snapshot.write_slice(preview_snapshot, _account_name(settings), account, stack, fleet.by_iccid)
        preview, doc = preview_with_document(
            ("--refresh", "--expect-no-changes"), stack=args.stack, cwd=args.cwd, account_snapshot=preview_snapshot
        )
    if preview.errors:
        raise CommandFailure(f"the preview failed: {first_error(preview)}")
    snapshot = (account or _account(settings, None, keep, stack)).sims  # no snapshot: the account after the preview
    report = build_report(preview, snapshot, managed, ignoring, args.stack or "")
    report.left_alone = list((doc or {}).get("left_alone") or [])
    if doc is not None:
        report.calls = {str(e["iccid"]): list(e.get("operations") or []) for e in doc.get("sims") or []}
    if getattr(args, "plans", None) is not None:
        report.stale_plans = stale_plans(plans, report, snapshot)
    if args.json:
        out.write(json.dumps(render_json(report), indent=2, ensure_ascii=False) + "\n")
    elif args.markdown:
        out.write(render_markdown(report))
    else:
        out.write(render_text(report))
    return DRIFTED if report.drifted else IN_SYNC
