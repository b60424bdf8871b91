"""`plan --json` and `drift --json` in the shapes that tools already read, and GitLab's Terraform report.

**Pulumi's summary.** The run-level keys are those of Pulumi's own summary of an operation (the engine's summary
event, as the automation API and `pulumi up --json` give it: ``result``, ``durationSeconds``; and the preview
document of `pulumi preview --json`: ``changeSummary``, ``steps``, ``diagnostics``)::

    {"result": "succeeded" | "failed", "durationSeconds": 3,  # (plan only: see below)
     "changeSummary": {"create": 1, "update": 2, "delete": 0, "same": 5},
     "steps": [{"op", "urn", "type", "name", "diffs", "detailedDiff", ...our per-SIM detail}],
     "diagnostics": [...], ...the command's own keys}

Three choices, said once here:

- Only the SIMs (``lattigo:Sim`` resources) are counted and listed: the stack and the FleetGuard are
  bookkeeping, and Pulumi's own ``changeSummary`` counts them too. ``same`` is the SIMs of the preview that do
  not change; a SIM that does not change has no step (Pulumi's ``--output json`` leaves them out the same way).
- A SIM's operation is its step's in the preview; a SIM that only the plan document names (a preview the guard
  stopped) gets the operation of what happens to it (:data:`ACTION_OPS`).
- `drift --json` has no ``durationSeconds``: the drift report of an account that did not move is the same
  document from one run to the next (a scheduled job compares them; tests/e2e/test_commands_plan_drift.py
  pins it), and a preview's duration is not (1 to 3 s apart on the same 3-SIM stack).

**GitLab's Terraform report** (``artifacts:reports:terraform``): ``{"create": n, "update": n, "delete": n}``,
read by the merge-request widget ("n to add, n to change, n to delete"). GitLab requires the three keys and
caps each count at 999,999. The counts are the SIMs' operations (:data:`GITLAB_COUNTS`): a replacement counts
as a delete and a create, as Terraform's own report counts it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.commands.preview_json import Preview, Step, is_sim, urn_type

SUCCEEDED, FAILED = "succeeded", "failed"
# Always in `changeSummary`, 0 or not (the counts tools look for); any other operation only when it occurs.
SUMMARY_OPS = ("create", "update", "delete", "same")
# Steps that change nothing: not listed, and counted as `same`.
UNCHANGED_OPS = frozenset({"same", "read", "refresh"})
# A SIM with more than one changed step (a replacement: create-replacement, replace, delete-replaced) is one
# `replace`.
REPLACEMENT_OPS = frozenset({"replace", "create-replacement", "delete-replaced"})

# What happens to a SIM in the account (the plan comment's action) -> the Pulumi operation on its Sim resource:
# a SIM that enters the stack is a create (an adoption too, though it sends no call), one that leaves it is a
# delete (whatever policy.on_remove sends: a suspension, or nothing), anything else an update.
ACTION_OPS: Mapping[str, str] = {
    "activate": "create",
    "adopt": "create",
    "suspend": "update",
    "restore": "update",
    "cost_center": "update",
    "notes": "update",
    "usage_limit": "update",
    "other": "update",
    "forget_suspend": "delete",
    "forget": "delete",
    "removed": "delete",
}
# Pulumi operation -> the keys of GitLab's Terraform report that it counts in.
GITLAB_COUNTS: Mapping[str, tuple[str, ...]] = {
    "create": ("create",),
    "import": ("create",),
    "update": ("update",),
    "delete": ("delete",),
    "discard": ("delete",),
    "replace": ("create", "delete"),
}
GITLAB_KEYS = ("create", "update", "delete")
GITLAB_COUNT_LIMIT = 999_999  # GitLab's parser caps each count here


class ReportWriteError(CommandFailure):
    """A report file could not be written; the message is one line."""


def sim_steps(preview: Preview) -> dict[str, Step]:
    """Each SIM that the preview changes (its Sim's name, the ICCID) -> its step; a replacement's steps are one
    step with the op `replace`."""
    found: dict[str, Step] = {}
    for step in preview.steps:
        if not is_sim(step) or step.op in UNCHANGED_OPS:
            continue
        if step.op in REPLACEMENT_OPS:
            step = dataclasses.replace(step, op="replace")
        seen = found.get(step.name)
        if seen is None or (not seen.detailed_diff and step.detailed_diff):
            found[step.name] = step
    return found


def sim_urns(preview: Preview) -> dict[str, str]:
    """Every SIM the preview names, in the stack or declared (its name, the ICCID) -> its URN."""
    return {step.name: step.urn for step in preview.steps if is_sim(step)}


def known_sims(preview: Preview) -> set[str]:
    """The SIMs whose fate the preview tells (their names): every SIM it names; but of a preview that failed
    (it stops planning at its first error), only those it planned, as a SIM with its refresh step alone was
    perhaps not reached."""
    if not preview.errors:
        return set(sim_urns(preview))
    return {step.name for step in preview.steps if is_sim(step) and step.op != "refresh"}


def sim_urn(preview: Preview, name: str) -> str | None:
    """A SIM's URN: the preview's, or made like the other SIMs' (`urn:pulumi:stack::project::type::name`) for a
    SIM the preview did not reach; None if it names no SIM at all."""
    urns = sim_urns(preview)
    if name in urns:
        return urns[name]
    template = next(iter(urns.values()), None)
    return None if template is None else template.rsplit("::", 1)[0] + "::" + name


def change_summary(ops: Iterable[str], sims: int) -> dict[str, int]:
    """The SIMs by Pulumi operation: `ops` one per changed SIM, `sims` every SIM the preview names."""
    counts = dict.fromkeys(SUMMARY_OPS, 0)
    changed = 0
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
        changed += 1
    counts["same"] = max(sims - changed, 0)
    return counts


def step_json(op: str, urn: str | None, step: Step | None, name: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """One changed SIM: Pulumi's keys (`op`, `urn`, `type`, `name`, `diffs`, `detailedDiff`: the preview's
    step), then our `detail` (whose keys are never Pulumi's)."""
    detailed = None
    if step is not None and step.detailed_diff:
        diff, inputs = step.detailed_diff, step.input_diffs
        detailed = {path: {"kind": diff[path], "inputDiff": path in inputs} for path in sorted(diff)}
    doc: dict[str, Any] = {
        "op": op,
        "urn": urn,
        "type": urn_type(urn) if urn else None,
        "name": name,
        "diffs": list(step.diff_reasons) if step is not None else [],
        "detailedDiff": detailed,
    }
    clash = set(doc) & set(detail)
    assert not clash, f"our detail would hide Pulumi's keys: {sorted(clash)}"
    return doc | dict(detail)


def summary(
    *,
    failed: bool,
    duration_seconds: int | None,
    changes: Mapping[str, int],
    steps: Sequence[Mapping[str, Any]],
    diagnostics: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The run-level keys, in Pulumi's order; the command adds its own after them. `duration_seconds` None: no
    `durationSeconds` (a report that must be the same from run to run for the same account)."""
    doc: dict[str, Any] = {"result": FAILED if failed else SUCCEEDED}
    if duration_seconds is not None:
        doc["durationSeconds"] = duration_seconds
    return doc | {"changeSummary": dict(changes), "steps": list(steps), "diagnostics": list(diagnostics)}


def gitlab_report(changes: Mapping[str, int]) -> dict[str, int]:
    """GitLab's Terraform report from a `changeSummary`: `{"create": n, "update": n, "delete": n}`."""
    report = dict.fromkeys(GITLAB_KEYS, 0)
    for op, count in changes.items():
        for key in GITLAB_COUNTS.get(op, ()):
            report[key] += count
    return {key: min(count, GITLAB_COUNT_LIMIT) for key, count in report.items()}


def write_json(path: str | os.PathLike[str], doc: Mapping[str, Any], what: str) -> None:
    """`doc` as JSON to `path` (replaced whole, never half written); ReportWriteError in one line."""
    target = os.fspath(path)
    scratch = f"{target}.tmp-{os.getpid()}"
    try:
        with open(scratch, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        os.replace(scratch, target)
    except OSError as exc:
        try:
            os.unlink(scratch)
        except OSError:
            pass
        raise ReportWriteError(f"cannot write {what} to {target}: {exc.strerror or exc}") from None
