"""`lattigo-fleet plan`: the pull-request comment, from `pulumi preview --json`.

What the reviewer reads first is what happens in the Lattigo account, counted by kind (activations,
adoptions, suspensions, restores, cost-center moves, note and usage-limit changes, SIMs leaving the stack, a
refusal by the blast-radius guard), then the preview's errors and warnings, then one row per SIM with the
account fields that change, old -> new, activations and suspensions first.

The comment always stays under :data:`COMMENT_LIMIT` characters (GitHub refuses a comment of 65,536): rows
that do not fit are cut and counted by kind ("and 4,212 more cost-center moves: see the job log"), and the
job log (standard error) then lists every SIM; on GitHub Actions ($GITHUB_STEP_SUMMARY set) the full plan is
appended to the job summary too, and the cut note says so. `--json` gives bots the same content, uncut, in the
shape of Pulumi's own summary (pulumi_summary.py); `--gitlab-report FILE` writes GitLab's Terraform report for
the merge-request widget.

Over 400 lines: the comment's size budget and its cutting rules are one algorithm with the rendering; the parsing
of the preview is in preview_json.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from lattigo_fleet.commands import pulumi_summary
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import add_account_snapshot_argument
from lattigo_fleet.commands.preview_json import (
    MISSING,
    Diagnostic,
    Preview,
    PreviewError,
    Step,
    is_guard,
    is_sim,
    read_preview_file,
    run_preview,
    value_at,
)
from lattigo_fleet.planner import CANNOT_TELL
from lattigo_fleet.vocabulary import OUT_OF_SERVICE_STATES

COMMAND = Command("plan")

DEFAULT_PLAN_FILE = "fleet-plan.json"
COMMENT_LIMIT = 60_000  # characters; GitHub's own limit is 65,536
FOLD_ROWS = 20  # a table longer than this folds into <details>
SHOWN_DIAGNOSTICS = 30  # of each severity
DIAGNOSTIC_CHARS = 600  # of one message
CELL_CHARS = 160  # of one value
# Rows of one routine kind (cost center, notes, ...) shown before the rest is counted: a reviewer reads the
# first hundred, the job log has them all. Activations and suspensions are shown as far as the size allows.
ROUTINE_ROWS = 100
IMPORTANT = ("activate", "suspend", "forget_suspend")
# Where a cut comment sends the reader: the job log always lists every SIM; on GitHub Actions the job summary
# ($GITHUB_STEP_SUMMARY) has the full plan too.
SEE_JOB_LOG = "see the job log"
SEE_JOB_SUMMARY = "the full plan is in the job summary"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
# GitHub refuses a step's summary over 1 MiB (bytes, of everything the step appended): the full plan stays under,
# leaving room for what the step appends after it (ci/github/merge.yml appends its report, a comment's size).
STEP_SUMMARY_BYTES = 1024 * 1024 - 128 * 1024


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
# Lattigo call (planner operation kind) -> what happens in the account, as the comment counts it.
CALL_ACTIONS = {
    "suspend": "suspend",
    "suspend_no_billing": "suspend",
    "restore": "restore",
    "cost_center": "cost_center",
    "note": "notes",
    "set_limit": "usage_limit",
    "remove_limit": "usage_limit",
}


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
    document: Mapping[str, Any] | None = None  # the plan document the rows were read from (plan_document.py)
    preview: Preview | None = None  # the preview it was built from (its steps and duration, for --json)

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
    if new in OUT_OF_SERVICE_STATES:
        return "suspend"
    return "other"


def removal_policy(preview: Preview) -> RemovalPolicy:
    """What a Sim's delete does, for a saved preview without its plan document (`--from`): the policy last
    applied, kept in the FleetGuard's outputs; otherwise unknown. With the plan document, its removal entries
    say it (`rows_from_document`)."""
    stored = None
    for step in preview.steps:
        if is_guard(step):
            policy = (step.old_outputs or {}).get("policy")
            if isinstance(policy, Mapping) and policy.get("on_remove"):
                stored = str(policy["on_remove"])
    return RemovalPolicy(stored, "last applied") if stored else RemovalPolicy(None, "")


def _removal(step: Step, sim: str, iccid: str, policy: RemovalPolicy) -> SimRow:
    live_state = value_at(step.old_inputs, "state")
    if policy.on_remove is None:
        return SimRow(
            sim,
            iccid,
            [Change(sim, iccid, None, MISSING, MISSING, "removed")],
            "removed from fleet.yaml (policy.on_remove unknown)",
        )
    if policy.on_remove == "suspend" and serving(live_state):
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


def serving(state: Any) -> bool:
    from lattigo_fleet.guard import SERVING

    return state in SERVING


def _entry_changes(entry: Mapping[str, Any]) -> list[Change]:
    """One SIM of the plan document as the comment's changes, old -> new."""
    from lattigo_fleet.plan_document import NO_LIMIT, UNKNOWN_LIMIT

    sim, iccid = str(entry.get("name") or entry["iccid"]), str(entry["iccid"])
    before, after = entry.get("before") or {}, entry.get("after") or {}
    action = str(entry["action"])

    def value(v: Any, field_name: str) -> Any:
        if (field_name == "usage_limit" and v == UNKNOWN_LIMIT) or v in ("", None):
            return MISSING  # not set in the account (an empty note or cost center), or not known
        return "none" if field_name == "usage_limit" and v == NO_LIMIT else v

    if action == "activate":
        changes = [Change(sim, iccid, "origin", MISSING, "activated", "activate")]
        if after.get("rate_plan"):
            changes.append(Change(sim, iccid, "rate_plan", MISSING, after["rate_plan"], "activate"))
    elif action == "adopt":
        changes = [Change(sim, iccid, "origin", MISSING, "adopted", "adopt")]
    elif action == "forget_suspend":
        return [Change(sim, iccid, "state", before.get("state"), "suspended", "forget_suspend")]
    elif action == "forget":
        return [Change(sim, iccid, None, MISSING, MISSING, "forget")]
    else:
        changes = []
    seen: set[str] = set()
    for op in entry.get("operations") or []:
        kind = str(op["kind"])
        field_name = {"cost_center": "cost_center", "set_limit": "usage_limit", "remove_limit": "usage_limit"}.get(
            kind, f"notes.{op.get('field')}" if kind == "note" else "state"
        )
        if kind == "activate" or field_name in seen:
            continue
        seen.add(field_name)
        changes.append(
            Change(
                sim,
                iccid,
                field_name,
                value(before.get(field_name, MISSING), field_name),
                value(after.get(field_name, MISSING), field_name),
                CALL_ACTIONS.get(kind, "other"),
            )
        )
    return changes


def rows_from_document(doc: Mapping[str, Any]) -> list[SimRow]:
    rows = []
    for entry in doc.get("sims") or []:
        changes = _entry_changes(entry)
        note = str(entry.get("note") or "")
        if entry["action"] == "forget_suspend":
            note = "removed from fleet.yaml: suspended, then forgotten"
        if changes:
            rows.append(SimRow(changes[0].sim, changes[0].iccid, changes, note))
    return rows


def build_report(preview: Preview, doc: Mapping[str, Any] | None = None) -> PlanReport:
    """The comment's content: with the run's plan document, its rows and the guard's verdict come from it (the
    planner's own data); without (a saved preview read with `--from`), from the preview's steps."""
    if doc is not None:
        rows = rows_from_document(doc)
    else:
        policy = removal_policy(preview)
        rows = [row for step in preview.planned() if is_sim(step) if (row := sim_row(step, policy)) is not None]
    rows.sort(key=lambda r: (BY_KEY[r.primary].rank, r.sim, r.iccid))
    names = {}
    for step in preview.steps:
        if is_sim(step):
            sim, iccid = _sim_ids(step)
            names[step.name] = sim
            names[iccid] = sim
    for entry in (doc or {}).get("sims") or []:
        names.setdefault(str(entry["iccid"]), str(entry.get("name") or entry["iccid"]))
    refusal = preview.refusal
    verdict = (doc or {}).get("guard") or {}
    shown = [d for d in preview.diagnostics if d.severity in ("error", "warning") and d is not refusal]
    return PlanReport(
        stack=preview.stack or str((doc or {}).get("stack") or ""),
        rows=rows,
        diagnostics=shown,
        refusal=verdict.get("message") if verdict.get("refused") else (refusal.message if refusal else None),
        refused_sims=verdict.get("out_of_service") if verdict.get("refused") else None,
        failed=bool(preview.errors),
        names=names,
        document=doc,
        preview=preview,
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


def document_section(report: PlanReport) -> list[str]:
    """The plan's identity and what the merge will do with it, and the SIMs left alone on purpose."""
    from lattigo_fleet import plan_document

    doc = report.document
    if doc is None:
        return []
    lines = [
        "",
        f"Plan `{plan_document.short(doc['digest'])}` (`{doc['digest']}`) · "
        f"{plan_document.mode_sentence(str(doc.get('mode')))}.",
    ]
    alone = doc.get("left_alone") or []
    if alone:
        lines += ["", f"**Left suspended: {len(alone)} SIM(s) suspended by their own usage limit** (not drift):", ""]
        for item in alone[:SHOWN_DIAGNOSTICS]:
            used = "?" if item.get("month_kb") is None else f"{item['month_kb']:,}"
            lines.append(
                f"- {_cell(str(item['name']))} `{item['iccid']}`: {used} KB used this month, limit "
                f"{item['kb_limit']:,} KB (action suspend)"
            )
        if len(alone) > SHOWN_DIAGNOSTICS:
            lines.append(f"- … and {len(alone) - SHOWN_DIAGNOSTICS:,} more: see the plan document")
    unsure = [e for e in doc.get("sims") or [] if e.get("limit_suspension")]
    for entry in unsure[:SHOWN_DIAGNOSTICS]:
        verdict = entry["limit_suspension"]
        why = (
            "cannot tell whether its usage limit suspended it (the limit in force or this month's usage is not "
            "known): it is restored as declared"
            if verdict["verdict"] == CANNOT_TELL
            else f"suspended under its usage limit ({verdict['month_kb']:,} of {verdict['kb_limit']:,} KB): restored"
        )
        lines.append(f"- :warning: {_cell(str(entry['name']))} `{entry['iccid']}`: {why}")
    return lines


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


def _cut_note(cut: list[SimRow], see: str = SEE_JOB_LOG) -> str:
    by_action: dict[str, int] = {}
    for row in cut:
        by_action[row.primary] = by_action.get(row.primary, 0) + 1
    kinds = [f"{n:,} more {BY_KEY[a].noun}" for a, n in sorted(by_action.items(), key=lambda i: BY_KEY[i[0]].rank)]
    if len(kinds) > 1:
        return f"_… and {len(cut):,} more SIMs not shown here ({', '.join(kinds)}): {see}._"
    return f"_… and {kinds[0]}: {see}._"


def render_markdown(
    report: PlanReport, limit: int = COMMENT_LIMIT, *, routine_rows: int | None = ROUTINE_ROWS, see: str = SEE_JOB_LOG
) -> tuple[str, list[SimRow]]:
    """The comment, and the rows cut from it to keep it under `limit` characters. `routine_rows`: how many rows
    of one routine kind are shown before the rest is counted (None: all that fit, as in the full plan); `see`:
    where the cut note sends the reader for the rest."""
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
    if report.rows and report.refusal and report.document is not None:
        head += [f"**{len(report.rows):,} SIM(s) would change in the Lattigo account if the guard allowed it.**", ""]
    elif report.rows:
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
    head += document_section(report)
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
        if row.primary not in IMPORTANT and routine_rows is not None and per_kind.get(row.primary, 0) >= routine_rows:
            cut.append(row)
            continue
        per_kind[row.primary] = per_kind.get(row.primary, 0) + 1
        shown.append(line)
        used += len(line) + 1
    body = [TABLE_HEAD, *shown]
    if cut:
        body += ["", _cut_note(cut, see)]
    text += "\n".join(opening + body + closing) + "\n"
    if len(text) >= limit:  # only if the fixed part alone is too long: never post more than the limit
        text = text[: limit - 200] + f"\n\n_… the comment was cut here to stay under the size limit: {see}._\n"
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


def _fields(row: SimRow | None, step: Step | None) -> dict[str, dict[str, Any]]:
    """Each field that changes, before and after: the row's; without one (a Pulumi update that sends nothing),
    the step's own inputs."""
    if row is not None:
        return {c.field: {"before": _jsonable(c.old), "after": _jsonable(c.new)} for c in row.changes if c.field}
    if step is None:
        return {}
    return {
        path: {
            "before": _jsonable(value_at(step.old_inputs, path)),
            "after": _jsonable(value_at(step.new_inputs, path)),
        }
        for path in step.changed_paths
    }


def pulumi_steps(report: PlanReport) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The changed SIMs as Pulumi's steps, each with what happens in the account (`actions`), each field before
    and after (`fields`) and the Lattigo calls of the plan document (`calls`; null without one), in the order
    of the comment; and their `changeSummary`."""
    preview = report.preview or Preview([], [])
    changed = pulumi_summary.sim_steps(preview)
    entries = {str(e["iccid"]): e for e in (report.document or {}).get("sims") or []}
    steps, ops = [], []

    def add(name: str, step: Step | None, row: SimRow | None) -> None:
        op = step.op if step is not None else pulumi_summary.ACTION_OPS[row.primary if row else "other"]
        entry = entries.get(name)
        sim = row.sim if row else report.names.get(name, name)
        detail = {
            "sim": sim,
            "iccid": row.iccid if row else name,
            "actions": row.actions if row else [],
            "fields": _fields(row, step),
            "calls": list(entry.get("operations") or []) if entry else ([] if report.document is not None else None),
            "note": (row.note if row else "") or None,
        }
        urn = step.urn if step is not None else pulumi_summary.sim_urn(preview, name)
        steps.append(pulumi_summary.step_json(op, urn, step, name, detail))
        ops.append(op)

    for row in report.rows:
        add(row.iccid, changed.pop(row.iccid, None), row)
    for name, step in changed.items():  # a Pulumi change that sends nothing (the stack's record alone)
        add(name, step, None)
    seen = pulumi_summary.known_sims(preview) | {r.iccid for r in report.rows}
    # A failed preview counts nothing it did not reach (pulumi_summary.known_sims).
    planned = 0 if preview.errors else _sims_in_plan(report.document)
    return steps, pulumi_summary.change_summary(ops, max(len(seen), planned))


def _sims_in_plan(doc: Mapping[str, Any] | None) -> int:
    """Every SIM the plan is about: those fleet.yaml declares and those the stack holds that it no longer
    declares. A preview without --refresh lists no step for a SIM that does not change (Pulumi leaves `same`
    steps out of its JSON), so the document counts them."""
    if doc is None:
        return 0
    removed = sum(1 for e in doc.get("sims") or [] if str(e.get("action", "")).startswith("forget"))
    return int((doc.get("fleet") or {}).get("sims") or 0) + removed


def render_json(report: PlanReport) -> dict[str, Any]:
    """Pulumi's summary (pulumi_summary.py), then the comment's content: `counts` by what happens in the account,
    `changes` one per field (the keys that `plan --json` had before Pulumi's)."""
    doc = report.document
    steps, changes = pulumi_steps(report)
    diagnostics = [
        {
            "severity": d.severity,
            "message": d.message,
            "sim": report.names.get(d.resource) if d.resource else None,
            "urn": d.urn or None,
        }
        for d in report.diagnostics
    ]
    ours = {
        "stack": report.stack,
        "plan": {"digest": doc["digest"], "mode": doc.get("mode"), "left_alone": doc.get("left_alone")}
        if doc
        else None,
        "failed": report.failed,
        "refused": {"message": report.refusal, "sims": report.refused_sims} if report.refusal else None,
        "sims_changing": len(report.rows),
        "counts": report.counts,
        "changes": [c.to_json() for c in report.changes],
    }
    duration = report.preview.duration_seconds if report.preview else 0
    return (
        pulumi_summary.summary(
            failed=report.failed, duration_seconds=duration, changes=changes, steps=steps, diagnostics=diagnostics
        )
        | ours
    )


def gitlab_report(report: PlanReport) -> dict[str, int]:
    """GitLab's Terraform report for the merge-request widget: the SIMs created, updated and deleted
    (pulumi_summary.ACTION_OPS: an adoption is a create, a removal a delete whatever on_remove sends)."""
    return pulumi_summary.gitlab_report(pulumi_steps(report)[1])


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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON for bots instead of Markdown (Pulumi's summary shape: docs/json-outputs.md)",
    )
    parser.add_argument(
        "--gitlab-report",
        metavar="FILE",
        help="also write GitLab's Terraform report {create, update, delete} to FILE "
        "(artifacts:reports:terraform: the merge-request widget shows the counts)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=DEFAULT_PLAN_FILE,
        help=f"write the plan document (canonical JSON: what the merge applies) to FILE (default: {DEFAULT_PLAN_FILE})",
    )
    parser.add_argument(
        "--plan-file",
        metavar="FILE",
        help="with --from: the plan document of that preview (as --out wrote it)",
    )
    add_account_snapshot_argument(parser)


def load(args: argparse.Namespace, stdin: TextIO | None = None) -> tuple[Preview, dict[str, Any] | None]:
    """The preview and its plan document: `--from` a saved preview (and `--plan-file`), or a preview run now
    that writes the document (the program writes it where LATTIGO_FLEET_PLAN_OUT says)."""
    from lattigo_fleet import plan_document

    if args.from_file:
        doc = None
        if getattr(args, "plan_file", None):
            try:
                doc = plan_document.read(args.plan_file)
            except plan_document.PlanDocumentError as exc:
                raise PreviewError(str(exc)) from None
        return read_preview_file(args.from_file, stdin), doc
    return preview_with_document(stack=args.stack, cwd=args.cwd, account_snapshot=args.account_snapshot)


def preview_with_document(
    extra: tuple[str, ...] = (),
    *,
    stack: str | None = None,
    cwd: str | None = None,
    account_snapshot: str | None = None,
) -> tuple[Preview, dict[str, Any] | None]:
    """`pulumi preview --json` with the program writing its plan document: both, or the preview alone when the
    program stopped before it had a plan (a fleet file or settings error). With `account_snapshot`, the program
    and the provider plan from that file instead of reading the account (lattigo_fleet/account_snapshot.py)."""
    import os
    import tempfile

    from lattigo_fleet import plan_document
    from lattigo_fleet.account_snapshot import SNAPSHOT_ENV

    with tempfile.TemporaryDirectory(prefix="lattigo-fleet-plan-") as scratch:
        out = os.path.join(scratch, "plan.json")
        env = {**os.environ, plan_document.PLAN_OUT_ENV: out}
        env.pop(plan_document.APPROVED_ENV, None)
        if account_snapshot:
            env[SNAPSHOT_ENV] = os.path.abspath(account_snapshot)
        preview, _code = run_preview(extra, stack=stack, cwd=cwd, env=env)
        doc = None
        if os.path.exists(out):
            try:
                doc = plan_document.read(out)
            except plan_document.PlanDocumentError as exc:
                raise PreviewError(f"the program's plan document: {exc}") from None
        return preview, doc


def full_plan(report: PlanReport, budget: int = STEP_SUMMARY_BYTES) -> str:
    """The plan uncut (every row, no routine kind counted away), for the job summary, in at most `budget` bytes
    of UTF-8; a plan too long even for that is cut there, and says the job log has every SIM."""
    limit = budget
    for _ in range(8):
        text, _cut = render_markdown(report, limit, routine_rows=None)
        size = len(text.encode("utf-8"))
        if size <= budget:
            return text
        limit = max(int(limit * budget / size * 0.98), 1000)  # the non-ASCII characters, in proportion
    return text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")


def write_step_summary(path: str, report: PlanReport) -> None:
    """Append the full plan to the job summary (GitHub's $GITHUB_STEP_SUMMARY file, the runner's; only written,
    never read). OSError if it cannot be written, or if what the step appended already leaves no room."""
    import os

    try:
        used = os.path.getsize(path)
    except FileNotFoundError:
        used = 0
    budget = STEP_SUMMARY_BYTES - used
    if budget < 10_000:
        raise OSError(f"the job summary already holds {used:,} bytes of GitHub's 1 MiB")
    text = full_plan(report, budget - 1)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(("\n" if used else "") + text)


def main(
    args: argparse.Namespace,
    out: TextIO | None = None,
    log: TextIO | None = None,
    stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Exit 0 with the comment; 1 with the comment if the preview itself failed (a refusal, a program error),
    or with a one-line error alone if there is no preview to read. `environ` (default: the process's) is read
    for GITHUB_STEP_SUMMARY alone."""
    import os

    env = os.environ if environ is None else environ
    return COMMAND.run(lambda: _plan(args, out or sys.stdout, log or sys.stderr, stdin, env))


def _plan(args: argparse.Namespace, out: TextIO, log: TextIO, stdin: TextIO | None, environ: Mapping[str, str]) -> int:
    preview, doc = load(args, stdin)
    report = build_report(preview, doc)
    if doc is not None and not args.from_file and getattr(args, "out", None):
        from lattigo_fleet import plan_document

        try:
            plan_document.write(doc, args.out)
        except OSError as exc:
            raise PreviewError(f"cannot write the plan document to {args.out}: {exc.strerror or exc}") from None
        print(
            f"lattigo-fleet plan: wrote the plan document {args.out} ({plan_document.short(doc['digest'])})", file=log
        )
    gitlab = getattr(args, "gitlab_report", None)
    if gitlab and report.failed and not report.refusal:
        print(f"lattigo-fleet plan: no GitLab report written to {gitlab}: the preview failed", file=log)
    elif gitlab:
        counts = gitlab_report(report)
        pulumi_summary.write_json(gitlab, counts, "the GitLab report")
        print(
            f"lattigo-fleet plan: wrote the GitLab report {gitlab} ({counts['create']:,} to add, "
            f"{counts['update']:,} to change, {counts['delete']:,} to delete)",
            file=log,
        )
    if args.json:
        out.write(json.dumps(render_json(report), indent=2, ensure_ascii=False) + "\n")
    else:
        summary_path = environ.get(STEP_SUMMARY_ENV) or None
        text, cut = render_markdown(report, see=SEE_JOB_SUMMARY if summary_path else SEE_JOB_LOG)
        if cut and summary_path:
            try:
                write_step_summary(summary_path, report)
            except OSError as exc:
                print(
                    f"lattigo-fleet plan: cannot add the full plan to the job summary: {exc.strerror or exc}",
                    file=log,
                )
                text, cut = render_markdown(report)  # the cut note then points at the job log alone
            else:
                print(f"lattigo-fleet plan: the full plan is in the job summary (${STEP_SUMMARY_ENV})", file=log)
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
