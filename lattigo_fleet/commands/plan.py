"""`lattigo-fleet plan`: the pull-request comment, from `pulumi preview --json`.

What the reviewer reads first is what happens in the Lattigo account, counted by kind (activations,
adoptions, suspensions, restores, cost-center moves, note and usage-limit changes, SIMs leaving the stack, a
refusal by the blast-radius guard), then the preview's errors and warnings, then one row per SIM with the
account fields that change, old -> new, activations and suspensions first.

The comment always stays under :data:`COMMENT_LIMIT` characters (GitHub refuses a comment of 65,536): rows
that do not fit are cut and counted by kind ("and 4,212 more cost-center moves: see the job log"), and the
job log (standard error) then lists every SIM. `--json` gives bots the same content, uncut.

Over 400 lines: the comment's size budget and its cutting rules are one algorithm with the rendering; the parsing
of the preview is in preview_json.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from lattigo_fleet.commands.preview_json import (
    MISSING,
    Diagnostic,
    Preview,
    PreviewError,
    Step,
    fail,
    is_guard,
    is_sim,
    read_preview_file,
    run_preview,
    value_at,
)

COMMENT_LIMIT = 60_000  # characters; GitHub's own limit is 65,536
FOLD_ROWS = 20  # a table longer than this folds into <details>
SHOWN_DIAGNOSTICS = 30  # of each severity
DIAGNOSTIC_CHARS = 600  # of one message
CELL_CHARS = 160  # of one value
# Rows of one routine kind (cost center, notes, ...) shown before the rest is counted: a reviewer reads the
# first hundred, the job log has them all. Activations and suspensions are shown as far as the size allows.
ROUTINE_ROWS = 100
IMPORTANT = ("activate", "suspend", "forget_suspend")


@dataclass(frozen=True)
class Action:
    key: str
    label: str  # in the counts table and the SIM table
    noun: str  # plural, in "and 12 more <noun>"
    rank: int  # order of rows: activations and suspensions first


ACTIONS: tuple[Action, ...] = (
    Action("activate", "activate", "activations", 0),
    Action("adopt", "adopt (no activation call)", "adoptions", 6),
    Action("suspend", "suspend", "suspensions", 1),
    Action("restore", "restore", "restores", 3),
    Action("cost_center", "cost center", "cost-center moves", 7),
    Action("notes", "notes", "note changes", 8),
    Action("usage_limit", "usage limit", "usage-limit changes", 9),
    Action("forget_suspend", "forget + suspend (policy.on_remove: suspend)", "suspensions of removed SIMs", 2),
    Action("forget", "forget, nothing sent", "removals (nothing sent)", 5),
    Action("removed", "removed", "removals", 4),
    Action("other", "other change", "other changes", 10),
)
BY_KEY = {a.key: a for a in ACTIONS}
# Detailed-diff path (its first part) -> action; `state` is decided by its values.
FIELD_ACTIONS = {"cost_center": "cost_center", "notes": "notes", "usage_limit": "usage_limit"}
SERVING_STATES = ("active", "pending_activation")  # as lattigo_fleet.guard.SERVING
_SUSPENDED_WARNING = re.compile(r"SIM\(s\) removed from fleet\.yaml will be suspended \(policy\.on_remove: suspend\)")
_REFUSED_COUNT = re.compile(r"would take (\d+) SIMs? out of service")


@dataclass(frozen=True)
class Change:
    sim: str
    iccid: str
    field: str | None
    old: Any
    new: Any
    action: str

    def to_json(self) -> dict[str, Any]:
        return {
            "sim": self.sim,
            "iccid": self.iccid,
            "field": self.field,
            "old": _jsonable(self.old),
            "new": _jsonable(self.new),
            "action": self.action,
        }


@dataclass
class SimRow:
    sim: str
    iccid: str
    changes: list[Change]
    note: str = ""  # what the row says beyond its changes (a removal's policy)

    @property
    def actions(self) -> list[str]:
        seen: list[str] = []
        for change in self.changes:
            if change.action not in seen:
                seen.append(change.action)
        return sorted(seen, key=lambda a: BY_KEY[a].rank)

    @property
    def primary(self) -> str:
        return self.actions[0]


@dataclass
class RemovalPolicy:
    on_remove: str | None  # retain | suspend | None (unknown)
    source: str  # "this run" (the guard's diff said so) | "last applied" | ""
    suspended: set[str] = field(default_factory=set)  # ICCIDs the guard named


@dataclass
class PlanReport:
    stack: str
    rows: list[SimRow]
    diagnostics: list[Diagnostic]  # errors and warnings, the refusal excluded
    refusal: str | None = None
    refused_sims: int | None = None
    failed: bool = False  # the preview reported errors
    names: dict[str, str] = field(default_factory=dict)  # ICCID -> SIM name

    @property
    def counts(self) -> dict[str, int]:
        counts = {a.key: 0 for a in ACTIONS}
        for row in self.rows:
            for action in row.actions:
                counts[action] += 1
        return {k: v for k, v in counts.items() if v}

    @property
    def changes(self) -> list[Change]:
        return [c for row in self.rows for c in row.changes]


# --- from the preview to the report ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


def _sim_ids(step: Step) -> tuple[str, str]:
    props = step.new_inputs or step.old_inputs or {}
    iccid = str(props.get("iccid") or step.name)
    return str(props.get("name") or iccid), iccid


def state_action(old: Any, new: Any) -> str:
    """`state: old -> new` in the account's words: a restore or a suspension."""
    if new == "active":
        return "restore"
    if new in ("suspended", "suspended_no_billing"):
        return "suspend"
    return "other"


def removal_policy(preview: Preview) -> RemovalPolicy:
    """What a Sim's delete does in this run. The FleetGuard's diff runs in every preview and, under
    `on_remove: suspend`, warns with the SIMs it will suspend: that warning is this run's answer. Without it,
    a guard that returned a detailed diff (our provider host) means nothing is suspended; otherwise the policy
    last applied, kept in the guard's outputs; otherwise unknown."""
    warnings = [d for d in preview.warnings if _SUSPENDED_WARNING.search(d.message)]
    if warnings:
        named = set(re.findall(r"\b\d{19,20}\b", warnings[0].message))
        return RemovalPolicy("suspend", "this run", named)
    guards = [s for s in preview.steps if is_guard(s)]
    stored = None
    for step in guards:
        policy = (step.old_outputs or {}).get("policy")
        if isinstance(policy, Mapping) and policy.get("on_remove"):
            stored = str(policy["on_remove"])
    planned = [s for s in guards if s.op != "refresh"]
    if planned and planned[0].detailed_diff:
        return RemovalPolicy(stored if stored == "retain" else "retain", "this run")
    if stored:
        return RemovalPolicy(stored, "last applied")
    return RemovalPolicy(None, "")


def _removal(step: Step, sim: str, iccid: str, policy: RemovalPolicy) -> SimRow:
    live_state = value_at(step.old_inputs, "state")
    if policy.on_remove is None:
        return SimRow(
            sim,
            iccid,
            [Change(sim, iccid, None, MISSING, MISSING, "removed")],
            "removed from fleet.yaml (policy.on_remove unknown)",
        )
    serving = live_state in SERVING_STATES
    if policy.on_remove == "suspend" and (
        iccid in policy.suspended or (serving and policy.source != "this run") or (serving and not policy.suspended)
    ):
        return SimRow(
            sim,
            iccid,
            [Change(sim, iccid, "state", live_state, "suspended", "forget_suspend")],
            "removed from fleet.yaml: suspended, then forgotten",
        )
    why = "nothing sent" if policy.on_remove == "retain" else "not serving: nothing sent"
    source = " (policy as last applied)" if policy.source == "last applied" else ""
    return SimRow(
        sim,
        iccid,
        [Change(sim, iccid, None, MISSING, MISSING, "forget")],
        f"removed from fleet.yaml, on_remove: {policy.on_remove}: {why}{source}",
    )


def sim_row(step: Step, policy: RemovalPolicy) -> SimRow | None:
    """One SIM's row, or None if nothing happens to it in the account."""
    sim, iccid = _sim_ids(step)
    if step.op == "create":
        origin = value_at(step.new_inputs, "origin")
        if origin == "adopted":
            return SimRow(sim, iccid, [Change(sim, iccid, "origin", MISSING, "adopted", "adopt")])
        changes = [Change(sim, iccid, "origin", MISSING, origin if origin is not MISSING else "activated", "activate")]
        rate_plan = value_at(step.new_inputs, "rate_plan")
        if rate_plan is not MISSING:
            changes.append(Change(sim, iccid, "rate_plan", MISSING, rate_plan, "activate"))
        state = value_at(step.new_inputs, "state")
        if state not in (MISSING, "active"):
            changes.append(Change(sim, iccid, "state", MISSING, state, "suspend"))
        return SimRow(sim, iccid, changes)
    if step.op == "delete":
        return _removal(step, sim, iccid, policy)
    if step.op in ("update", "replace", "create-replacement"):
        changes = []
        for path in step.changed_paths:
            old, new = value_at(step.old_inputs, path), value_at(step.new_inputs, path)
            head = path.split(".", 1)[0].split("[", 1)[0]
            action = state_action(old, new) if head == "state" else FIELD_ACTIONS.get(head, "other")
            changes.append(Change(sim, iccid, path, old, new, action))
        if step.op != "update":
            changes.append(Change(sim, iccid, None, MISSING, MISSING, "other"))
        return (
            SimRow(sim, iccid, changes, "" if step.op == "update" else f"Pulumi step: {step.op}") if changes else None
        )
    return None  # same, read, refresh, delete-replaced, ...


def build_report(preview: Preview) -> PlanReport:
    policy = removal_policy(preview)
    rows = [row for step in preview.planned() if is_sim(step) if (row := sim_row(step, policy)) is not None]
    rows.sort(key=lambda r: (BY_KEY[r.primary].rank, r.sim, r.iccid))
    names = {}
    for step in preview.steps:
        if is_sim(step):
            sim, iccid = _sim_ids(step)
            names[step.name] = sim
            names[iccid] = sim
    refusal = preview.refusal
    refused = _REFUSED_COUNT.search(refusal.message) if refusal else None
    shown = [d for d in preview.diagnostics if d.severity in ("error", "warning") and d is not refusal]
    return PlanReport(
        stack=preview.stack,
        rows=rows,
        diagnostics=shown,
        refusal=refusal.message if refusal else None,
        refused_sims=int(refused.group(1)) if refused else None,
        failed=bool(preview.errors),
        names=names,
    )


# --- Markdown ----------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    """Plain text in a table cell: no HTML, no line break, no column break."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    text = " ".join(_clip(text, CELL_CHARS).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_value(field_name: str | None, value: Any) -> str:
    if value is MISSING or value is None:
        return "—"
    if field_name == "usage_limit":
        if value == "none":
            return "no limit"
        if isinstance(value, Mapping) and "kb_limit" in value:
            kb = value.get("kb_limit")
            kb_text = f"{int(kb):,} KB" if isinstance(kb, int | float) else f"{kb} KB"
            users = value.get("usernames") or []
            alert = f", alert {', '.join(map(str, users))}" if users else ""
            return _code(f"{kb_text}, then {value.get('action')}{alert}")
    if isinstance(value, str):
        return _code(value)
    return _code(json.dumps(value, sort_keys=True))


def describe_change(change: Change) -> str:
    if change.field is None:
        return ""
    if change.field == "origin" or change.old is MISSING and change.action == "activate":
        return f"{change.field}: {format_value(change.field, change.new)}"
    return f"{change.field}: {format_value(change.field, change.old)} → {format_value(change.field, change.new)}"


def table_row(row: SimRow) -> str:
    what = ", ".join(BY_KEY[a].label for a in row.actions)
    parts = [p for p in (describe_change(c) for c in row.changes) if p]
    if row.note:
        parts.append(_cell(row.note))
    return f"| {_cell(_clip(row.sim, CELL_CHARS))} | `{row.iccid}` | {what} | {'; '.join(parts) or '—'} |"


TABLE_HEAD = "| SIM | ICCID | what happens | change (old → new) |\n| --- | --- | --- | --- |"


def _diagnostic_line(diag: Diagnostic, names: Mapping[str, str]) -> str:
    icon = ":x:" if diag.severity == "error" else ":warning:"
    where = names.get(diag.resource, diag.resource)
    prefix = f"`{_clip(where, 80)}`: " if where and diag.resource not in ("fleet-guard",) and where != "" else ""
    return f"- {icon} {prefix}{_cell(_clip(diag.message, DIAGNOSTIC_CHARS))}"


def _fold(summary: str, body: list[str], fold: bool, open_: bool = False) -> list[str]:
    if not fold:
        return body
    return [f"<details{' open' if open_ else ''}><summary>{summary}</summary>", "", *body, "", "</details>"]


def diagnostics_section(report: PlanReport) -> list[str]:
    if not report.diagnostics:
        return []
    lines: list[str] = []
    for severity, noun in (("error", "errors"), ("warning", "warnings")):
        found = [d for d in report.diagnostics if d.severity == severity]
        shown = [_diagnostic_line(d, report.names) for d in found[:SHOWN_DIAGNOSTICS]]
        if len(found) > SHOWN_DIAGNOSTICS:
            shown.append(f"- … and {len(found) - SHOWN_DIAGNOSTICS:,} more {noun}: see the job log")
        lines += shown
    title = f"Errors and warnings of the preview ({len(report.diagnostics)})"
    return ["", f"### {title}", "", *_fold(title, lines, len(lines) > 10, open_=True)]


def _cut_note(cut: list[SimRow]) -> str:
    by_action: dict[str, int] = {}
    for row in cut:
        by_action[row.primary] = by_action.get(row.primary, 0) + 1
    kinds = [f"{n:,} more {BY_KEY[a].noun}" for a, n in sorted(by_action.items(), key=lambda i: BY_KEY[i[0]].rank)]
    if len(kinds) > 1:
        return f"_… and {len(cut):,} more SIMs not shown here ({', '.join(kinds)}): see the job log._"
    return f"_… and {kinds[0]}: see the job log._"


def render_markdown(report: PlanReport, limit: int = COMMENT_LIMIT) -> tuple[str, list[SimRow]]:
    """The comment, and the rows cut from it to keep it under `limit` characters."""
    head = [f"## lattigo-fleet plan{f' · stack `{report.stack}`' if report.stack else ''}", ""]
    if report.refusal:
        sims = f" ({report.refused_sims:,} SIMs out of service)" if report.refused_sims else ""
        head += [
            "> [!CAUTION]",
            f"> **Refused by the blast-radius guard{sims}: nothing will be applied.**",
            f"> {_cell(_clip(report.refusal, 2000))}",
            "",
        ]
    elif report.failed:
        head += ["> [!CAUTION]", "> **The preview failed: nothing will be applied.** The errors are listed below.", ""]
    counts = report.counts
    if report.rows:
        stopped = " (the preview stopped early: the list may be incomplete)" if report.failed else ""
        head += [f"**{len(report.rows):,} SIM(s) change in the Lattigo account{stopped}.**", ""]
    elif not report.failed:
        head += ["**No change in the Lattigo account.**", ""]
    if counts or report.refusal:
        head += ["| what happens in the account | SIMs |", "| --- | ---: |"]
        head += [f"| {BY_KEY[a.key].label} | {counts[a.key]:,} |" for a in ACTIONS if a.key in counts]
        if report.refusal:
            refused = f"{report.refused_sims:,}" if report.refused_sims is not None else "yes"
            head.append(f"| **refused by the guard** (policy.max_changes) | **{refused}** |")
    while head and head[-1] == "":
        head.pop()
    head += diagnostics_section(report)
    text = "\n".join(head) + "\n"
    if not report.rows:
        return text, []

    fold = len(report.rows) > FOLD_ROWS
    opening = ["", "### SIMs", ""]
    summary = f"{len(report.rows):,} SIMs, activations and suspensions first"
    if fold:
        opening += [f"<details><summary>{summary}</summary>", ""]
    closing = ["", "</details>"] if fold else []
    reserve = 600  # the cut note and the closing tags
    budget = limit - 1 - len(text) - len("\n".join(opening + [TABLE_HEAD] + closing)) - reserve
    shown: list[str] = []
    used = 0
    cut: list[SimRow] = []
    per_kind: dict[str, int] = {}
    for index, row in enumerate(report.rows):
        line = table_row(row)
        if used + len(line) + 1 > budget:
            cut += report.rows[index:]
            break
        if row.primary not in IMPORTANT and per_kind.get(row.primary, 0) >= ROUTINE_ROWS:
            cut.append(row)
            continue
        per_kind[row.primary] = per_kind.get(row.primary, 0) + 1
        shown.append(line)
        used += len(line) + 1
    body = [TABLE_HEAD, *shown]
    if cut:
        body += ["", _cut_note(cut)]
    text += "\n".join(opening + body + closing) + "\n"
    if len(text) >= limit:  # only if the fixed part alone is too long: never post more than the limit
        text = text[: limit - 200] + "\n\n_… the comment was cut here to stay under the size limit: see the job log._\n"
    return text, cut


def log_line(row: SimRow) -> str:
    parts = []
    for change in row.changes:
        if change.field:
            old = "-" if change.old is MISSING else json.dumps(change.old, sort_keys=True)
            new = "-" if change.new is MISSING else json.dumps(change.new, sort_keys=True)
            parts.append(f"{change.field}: {old} -> {new}")
    what = ", ".join(BY_KEY[a].label for a in row.actions)
    return f"{row.sim} {row.iccid} {what}: {'; '.join(parts) or row.note}"


# --- JSON --------------------------------------------------------------------------------------------------


def render_json(report: PlanReport) -> dict[str, Any]:
    return {
        "stack": report.stack,
        "failed": report.failed,
        "refused": {"message": report.refusal, "sims": report.refused_sims} if report.refusal else None,
        "sims_changing": len(report.rows),
        "counts": report.counts,
        "changes": [c.to_json() for c in report.changes],
        "diagnostics": [
            {
                "severity": d.severity,
                "message": d.message,
                "sim": report.names.get(d.resource) if d.resource else None,
                "urn": d.urn or None,
            }
            for d in report.diagnostics
        ],
    }


# --- the command -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="the stack to preview (default: the selected stack)")
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read the output of `pulumi preview --json` from FILE (`-`: standard input) instead of running it",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for bots instead of Markdown")


def load(args: argparse.Namespace, stdin: TextIO | None = None) -> Preview:
    if args.from_file:
        return read_preview_file(args.from_file, stdin)
    preview, _code = run_preview(stack=args.stack, cwd=args.cwd)
    return preview


def main(
    args: argparse.Namespace, out: TextIO | None = None, log: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Exit 0 with the comment; 1 with the comment if the preview itself failed (a refusal, a program error),
    or with a one-line error alone if there is no preview to read."""
    out, log = out or sys.stdout, log or sys.stderr
    try:
        report = build_report(load(args, stdin))
    except PreviewError as exc:
        return fail("plan", str(exc))
    if args.json:
        out.write(json.dumps(render_json(report), indent=2, ensure_ascii=False) + "\n")
    else:
        text, cut = render_markdown(report)
        out.write(text)
        if cut:
            print(
                f"lattigo-fleet plan: the comment shows {len(report.rows) - len(cut):,} of {len(report.rows):,} "
                "SIMs; every SIM that changes:",
                file=log,
            )
            for row in report.rows:
                print(f"  {log_line(row)}", file=log)
    if report.failed:
        reason = (
            f"refused by the blast-radius guard: {report.refusal}"
            if report.refusal
            else next((d.message for d in report.diagnostics if d.severity == "error"), "errors")
        )
        print(f"lattigo-fleet plan: the preview failed: {reason.splitlines()[0]}", file=log)
        return 1
    return 0
