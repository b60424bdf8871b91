"""The plan as a document: what a reviewer approves, and what the merge checks before its first write.

As Terraform's saved plans and Atlantis bind an apply to the plan that was shown, a lattigo-fleet plan is a
canonical JSON document with an identity (its digest): the stack, the fleet files' digest, the commit, the
merge mode, the blast-radius guard's verdict, and for each SIM that changes the Lattigo calls, the live values
they were computed from ("before") and the values they set ("after"). We can go further than a saved plan:
we know each SIM's values when the plan was made, so the merge recomputes the plan against the live account
and, in the strict mode, refuses with each stale SIM and field (before at review / now) when anything moved.

Everything here is computed from what `account_check` planned (fleet.yaml x the live account x the stack's
state, with the planner's rules): the program writes it, the PR comment and the drift report read it, and
the apply compares it. Nothing here reads the account or Pulumi itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff

from lattigo_fleet.account_check import AccountCheck
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import NOTE_FIELDS, UNMANAGED, DesiredSim, FleetSpec, UsageLimit
from lattigo_fleet.operations import Op
from lattigo_fleet.planner import BY_USAGE_LIMIT, CANNOT_TELL, NOT_BY_USAGE_LIMIT, SETTLES_TO
from lattigo_fleet.settings import MERGE_MODES
from lattigo_fleet.stack_state import StackState

SCHEMA = "lattigo-fleet/plan/v1"
STRICT, HEAL = MERGE_MODES
# Environment of a `pulumi` run, set by `lattigo-fleet plan`/`drift`/`apply`: where the program writes the
# plan it computed, and the approved plan it must match before anything is registered (apply).
PLAN_OUT_ENV = "LATTIGO_FLEET_PLAN_OUT"
APPROVED_ENV = "LATTIGO_FLEET_APPROVED_PLAN"
# Not part of a plan's identity: when and where it was made says nothing about what it does.
_NOT_DIGESTED = ("digest", "created_at", "source")
NOT_SET = "(not set)"  # a field with no value in the account
NO_LIMIT = "none"  # as DesiredSim.to_inputs writes "no usage limit"
UNKNOWN_LIMIT = "(unknown: never set by lattigo-fleet)"


class PlanDocumentError(Exception):
    """A file is not a plan document of this version, or its digest does not match its content."""


# --- values, in fleet.yaml's terms ---------------------------------------------------------------------


def _limit_value(limit: UsageLimit | None | object) -> Any:
    if limit is UNMANAGED:
        return UNKNOWN_LIMIT
    if limit is None:
        return NO_LIMIT
    assert isinstance(limit, UsageLimit)
    return limit.to_dict()


def live_value(live: LiveDevice | None, field_name: str, last_limit: Any = UNMANAGED) -> Any:
    """A field of a live device as fleet.yaml names it (`state`, `cost_center`, `notes.note1`, `usage_limit`:
    the limit last set, which the API cannot read back)."""
    if field_name == "usage_limit":
        return _limit_value(last_limit)
    if live is None:
        return None
    if field_name == "origin":
        return "in the account"
    if field_name.startswith("notes."):
        return live.get(field_name.split(".", 1)[1]) or ""
    if field_name == "cost_center":
        return live.get("cost_center") or ""
    return live.get(field_name)


def declared_value(sim: DesiredSim, field_name: str) -> Any:
    if field_name == "usage_limit":
        return _limit_value(sim.usage_limit)
    if field_name == "origin":
        return "activated"
    if field_name.startswith("notes."):
        return sim.notes.get(field_name.split(".", 1)[1], "")
    return getattr(sim, field_name)


# --- building ------------------------------------------------------------------------------------------


def _entry(sim: DesiredSim, live: LiveDevice | None, ops: Sequence[Op], action: str, last_limit: Any) -> dict[str, Any]:
    before: dict[str, Any] = {} if live is None else {"state": live.get("state")}
    after: dict[str, Any] = {}
    for op in ops:
        if op.touches == "origin":  # an activation: what the new SIM gets
            after.update({"origin": "activated", "rate_plan": sim.rate_plan, "state": "active"})
            after.update({f"notes.{k}": v for k, v in sim.notes.items() if v})
            continue
        before[op.touches] = live_value(live, op.touches, last_limit)
        after[op.touches] = declared_value(sim, op.touches)
    return {
        "iccid": sim.iccid,
        "name": sim.name,
        "action": action,
        "operations": [op.to_record() for op in ops],
        "before": before,
        "after": after,
    }


def fleet_files(fleet: FleetSpec) -> list[dict[str, str]]:
    """Each file the fleet was read from, relative to the fleet file's directory, with its SHA-256."""
    root = Path(fleet.path).resolve().parent
    rows = []
    for name in fleet.files or [fleet.path]:
        path = Path(name).resolve()
        try:
            shown = path.relative_to(root).as_posix()
        except ValueError:
            shown = path.name
        rows.append({"path": shown, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return sorted(rows, key=lambda r: r["path"])


def files_digest(files: Sequence[Mapping[str, str]]) -> str:
    text = "".join(f"{f['path']}\0{f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
    return hashlib.sha256(text.encode()).hexdigest()


def commit_of(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The commit the plan was made on: what the CI job says (LATTIGO_FLEET_COMMIT: a pull request's head, when
    the job runs the base branch's code on it), else CI's own variable, else `git rev-parse HEAD`."""
    for var in ("LATTIGO_FLEET_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(var):
            return os.environ[var]
    import subprocess

    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def source_of_run() -> dict[str, Any]:
    """Where the plan was made, when CI says: the pull (merge) request and the job. Information only."""
    source: dict[str, Any] = {}
    if os.environ.get("LATTIGO_FLEET_PULL_REQUEST", "").isdigit():  # pull_request_target runs on the base ref
        source["pull_request"] = int(os.environ["LATTIGO_FLEET_PULL_REQUEST"])
    if os.environ.get("CI_MERGE_REQUEST_IID"):
        source["merge_request"] = int(os.environ["CI_MERGE_REQUEST_IID"])
    ref = os.environ.get("GITHUB_REF", "")
    if ref.startswith("refs/pull/") and "pull_request" not in source:
        number = ref.split("/")[2]
        if number.isdigit():
            source["pull_request"] = int(number)
    for var in ("GITHUB_RUN_ID", "CI_JOB_URL"):
        if os.environ.get(var):
            source[var.lower()] = os.environ[var]
    return source


def build(
    fleet: FleetSpec,
    checked: AccountCheck,
    state: StackState,
    *,
    stack: str,
    mode: str = STRICT,
    allow_large_changes: bool = False,
    commit: str | None = None,
    created_at: str | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plan document of one run (see the module's doc), digest included."""
    live = checked.live
    sims: list[dict[str, Any]] = []
    left_alone: list[dict[str, Any]] = []
    for sim in fleet.sims:
        plan = checked.plans.get(sim.name)
        if plan is None:
            continue
        current = live.get(sim.iccid)
        last_limit = state.last_limit(sim.iccid)
        if plan.limit_suspension in (BY_USAGE_LIMIT, CANNOT_TELL, NOT_BY_USAGE_LIMIT):
            limit = sim.usage_limit
            assert isinstance(limit, UsageLimit)
            used = checked.month_bytes.get(sim.iccid)
            verdict = {
                "iccid": sim.iccid,
                "name": sim.name,
                "verdict": plan.limit_suspension,
                "kb_limit": limit.kb_limit,
                "month_kb": None if used is None else used // 1024,
            }
            if plan.limit_suspension == BY_USAGE_LIMIT:
                left_alone.append(verdict)
        if current is None:
            action = "activate"
        elif sim.iccid not in state.held:
            action = "adopt"
        elif plan.ops:
            action = "update"
        else:
            continue
        entry = _entry(sim, current, plan.ops, action, last_limit)
        if plan.limit_suspension in (CANNOT_TELL, NOT_BY_USAGE_LIMIT):
            entry["limit_suspension"] = verdict
        sims.append(entry)
    on_remove = fleet.policy.on_remove
    suspending = set(checked.blast.removed) if checked.blast else set()
    for iccid in checked.removed:
        current = live.get(iccid)
        name = str((state.sims.get(iccid) or {}).get("name") or iccid)  # its name when last applied
        if iccid in suspending:
            entry = {
                "iccid": iccid,
                "name": name,
                "action": "forget_suspend",
                "operations": [{"kind": "suspend"}],
                "before": {"state": current.get("state") if current else None},
                "after": {"state": "suspended"},
            }
        else:
            why = "nothing sent" if on_remove == "retain" else "not serving: nothing sent"
            entry = {
                "iccid": iccid,
                "name": name,
                "action": "forget",
                "operations": [],
                "before": {"state": current.get("state") if current else None},
                "after": {},
                "note": f"removed from fleet.yaml, on_remove: {on_remove}: {why}",
            }
        sims.append(entry)
    sims.sort(key=lambda e: e["iccid"])
    files = fleet_files(fleet)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "stack": stack,
        "mode": mode,
        "commit": commit,
        "fleet": {"digest": files_digest(files), "files": files, "sims": len(fleet.sims)},
        "settings": {"allow_large_changes": allow_large_changes, "on_remove": on_remove},
        "guard": checked.blast.to_json() if checked.blast else None,
        "counts": counts(sims),
        "sims": sims,
        "left_alone": sorted(left_alone, key=lambda e: e["iccid"]),
    }
    if created_at:
        doc["created_at"] = created_at
    if source:
        doc["source"] = dict(source)
    doc["digest"] = digest(doc)
    return doc


def counts(sims: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """SIMs by what happens to them, and Lattigo calls by kind (before batching)."""
    by_action: dict[str, int] = {}
    by_call: dict[str, int] = {}
    for entry in sims:
        by_action[entry["action"]] = by_action.get(entry["action"], 0) + 1
        for op in entry["operations"]:
            by_call[op["kind"]] = by_call.get(op["kind"], 0) + 1
    return {"sims": len(sims), **{f"sims_{k}": v for k, v in sorted(by_action.items())}} | {
        f"calls_{k}": v for k, v in sorted(by_call.items())
    }


# --- identity ------------------------------------------------------------------------------------------


def canonical(doc: Mapping[str, Any]) -> str:
    """The one text of a document: sorted keys, no spaces, UTF-8. What is digested and written."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(doc: Mapping[str, Any]) -> str:
    content = {k: v for k, v in doc.items() if k not in _NOT_DIGESTED}
    return "sha256:" + hashlib.sha256(canonical(content).encode()).hexdigest()


def short(digest_text: str) -> str:
    """What a person reads and compares: the first 12 hex digits."""
    return digest_text.split(":", 1)[-1][:12]


def write(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Written whole or not at all (a reader never sees half a plan)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(canonical(doc) + "\n", encoding="utf-8")
    partial.replace(target)


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A plan document, checked: of this schema, and its digest matches its content (never a hand-edited plan)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanDocumentError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanDocumentError(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PlanDocumentError(f"{path}: not JSON ({exc}): expected a plan written by `lattigo-fleet plan`") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise PlanDocumentError(f"{path}: not a lattigo-fleet plan document (schema {SCHEMA!r})")
    if doc.get("digest") != digest(doc):
        raise PlanDocumentError(
            f"{path}: its digest does not match its content: the plan was changed after `lattigo-fleet plan` "
            "wrote it; plan again"
        )
    return doc


# --- comparing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaleField:
    field: str
    at_review: Any  # the live value the approved plan was computed from (or what it said of the field)
    now: Any  # the live value now (or what the new plan says)


@dataclass(frozen=True)
class StaleSim:
    iccid: str
    name: str
    fields: tuple[StaleField, ...]
    summary: str  # in words: what changed for this SIM between the two plans

    def to_json(self) -> dict[str, Any]:
        return {
            "iccid": self.iccid,
            "name": self.name,
            "summary": self.summary,
            "fields": [{"field": f.field, "at_review": f.at_review, "now": f.now} for f in self.fields],
        }


@dataclass(frozen=True)
class Staleness:
    """Why an approved plan is not the plan now: empty when they are the same."""

    reasons: tuple[str, ...]  # plan-wide: the stack, the fleet files, the mode, the guard
    sims: tuple[StaleSim, ...]

    def __bool__(self) -> bool:
        return bool(self.reasons or self.sims)

    def to_json(self) -> dict[str, Any]:
        return {"reasons": list(self.reasons), "sims": [s.to_json() for s in self.sims]}


def _fields_of(entry: Mapping[str, Any] | None) -> set[str]:
    if not entry:
        return set()
    return set(entry.get("before") or {}) | set(entry.get("after") or {})


def _sim_difference(
    iccid: str, approved: Mapping[str, Any] | None, now: Mapping[str, Any] | None, touched: set[str]
) -> StaleSim:
    """One SIM whose entries differ; `touched` are the fields that DeepDiff found changed under before/after."""
    name = str((now or approved or {}).get("name") or iccid)
    fields: list[StaleField] = []
    if approved is None or now is None:
        entry = now if approved is None else approved
        assert entry is not None
        summary = (
            f"not in the approved plan; now: {entry['action']} ({_calls(entry)})"
            if approved is None
            else f"in the approved plan ({entry['action']}: {_calls(entry)}), not needed now"
        )
        for field_name in sorted(_fields_of(entry)):
            before, after = (
                entry["before"].get(field_name),
                entry["after"].get(field_name, entry["before"].get(field_name)),
            )
            if field_name == "state" and before == after:
                continue
            # A field the other plan has no call for matched fleet.yaml there: its value was the declared one.
            fields.append(
                StaleField(field_name, after, before) if approved is None else StaleField(field_name, before, after)
            )
        return StaleSim(iccid, name, tuple(fields), summary)
    for field_name in sorted(touched):
        fields.append(
            StaleField(
                field_name,
                approved["before"].get(field_name, approved["after"].get(field_name)),
                now["before"].get(field_name, now["after"].get(field_name)),
            )
        )
    summary = (
        f"approved: {approved['action']} ({_calls(approved)}); now: {now['action']} ({_calls(now)})"
        if _calls(approved) != _calls(now) or approved["action"] != now["action"]
        else "the same calls, computed from other live values"
    )
    return StaleSim(iccid, name, tuple(fields), summary)


def _calls(entry: Mapping[str, Any]) -> str:
    return ", ".join(op["kind"] for op in entry["operations"]) or "no call"


def compare(approved: Mapping[str, Any], now: Mapping[str, Any]) -> Staleness:
    """Everything by which `now` differs from `approved`, plan-wide and per SIM and field. The SIMs a usage
    limit suspended are not compared (the merge leaves them alone either way), nor when and where a plan
    was made."""
    reasons = []
    if approved.get("stack") != now.get("stack"):
        reasons.append(f"the plan is for stack {approved.get('stack')!r}, this is stack {now.get('stack')!r}")
    if approved["fleet"]["digest"] != now["fleet"]["digest"]:
        was = {f["path"]: f["sha256"] for f in approved["fleet"]["files"]}
        is_ = {f["path"]: f["sha256"] for f in now["fleet"]["files"]}
        changed = sorted(p for p in set(was) | set(is_) if was.get(p) != is_.get(p))
        reasons.append(
            f"the fleet files differ from the ones the plan was made on ({', '.join(changed)}): the branch moved "
            "since the review (another merge, a new push); plan again on what is merged now"
        )
    if approved.get("mode") != now.get("mode"):
        reasons.append(f"the merge mode was {approved.get('mode')!r} at review and is {now.get('mode')!r} now")
    if approved.get("settings") != now.get("settings"):
        reasons.append(f"the settings were {approved.get('settings')} at review and are {now.get('settings')} now")
    was_guard, now_guard = approved.get("guard") or {}, now.get("guard") or {}
    if bool(was_guard.get("refused")) != bool(now_guard.get("refused")):
        reasons.append(
            "the blast-radius guard "
            + ("refused the approved plan" if was_guard.get("refused") else "refuses the plan now")
            + f" ({now_guard.get('out_of_service')} SIMs out of service, limit {now_guard.get('limit')})"
        )
    by_iccid_then = {e["iccid"]: e for e in approved.get("sims") or []}
    by_iccid_now = {e["iccid"]: e for e in now.get("sims") or []}
    touched: dict[str, set[str]] = {}
    for changes in DeepDiff(by_iccid_then, by_iccid_now, view="tree").values():
        for change in changes:
            path = change.path(output_format="list")
            fields = touched.setdefault(str(path[0]), set())
            if len(path) >= 3 and path[1] in ("before", "after"):
                fields.add(str(path[2]))
            elif len(path) >= 2 and path[1] in ("before", "after", "operations"):
                fields |= _fields_of(by_iccid_then.get(str(path[0]))) ^ _fields_of(by_iccid_now.get(str(path[0])))
    stale = [
        _sim_difference(iccid, by_iccid_then.get(iccid), by_iccid_now.get(iccid), touched[iccid])
        for iccid in sorted(touched)
    ]
    return Staleness(tuple(reasons), tuple(stale))


def stale_against_live(doc: Mapping[str, Any], live: Mapping[str, LiveDevice]) -> list[StaleSim]:
    """The SIMs of a plan whose live values moved since it was made (the drift report's question about an
    open pull request's plan). Usage limits cannot be read back, so they never make a plan stale here."""
    stale = []
    for entry in doc.get("sims") or []:
        current = live.get(entry["iccid"])
        fields = []
        for field_name, was in (entry.get("before") or {}).items():
            if field_name == "usage_limit":
                continue
            now = live_value(current, field_name)
            if field_name == "state" and now in SETTLES_TO and was == SETTLES_TO[now]:
                continue
            if now != was:
                fields.append(StaleField(field_name, was, now))
        if entry.get("action") == "activate" and current is not None:
            fields.append(StaleField("origin", None, "in the account"))
        if fields:
            stale.append(StaleSim(entry["iccid"], entry.get("name") or entry["iccid"], tuple(fields), "moved"))
    return stale


# --- words ---------------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    if value is None:
        return NOT_SET
    if isinstance(value, str):
        return repr(value) if value else "''"
    return json.dumps(value, sort_keys=True)


def stale_lines(staleness: Staleness, limit: int = 50) -> list[str]:
    """One line per plan-wide reason, per stale SIM and per field: `before at review / now`."""
    lines = [f"- {reason}" for reason in staleness.reasons]
    for sim in staleness.sims[:limit]:
        who = sim.iccid if sim.name == sim.iccid else f"{sim.name} ({sim.iccid})"
        lines.append(f"- SIM {who}: {sim.summary}")
        for f in sim.fields:
            lines.append(f"    {f.field}: {shown(f.at_review)} at review / {shown(f.now)} now")
    if len(staleness.sims) > limit:
        lines.append(f"- ... and {len(staleness.sims) - limit} more stale SIM(s)")
    return lines


def mode_sentence(mode: str) -> str:
    if mode == HEAL:
        return (
            "merge mode **heal** (`lattigo-fleet:mergeMode: heal`): the merge applies whatever fleet.yaml needs at "
            "merge time, including changes made in the account after this plan"
        )
    return (
        "merge mode **strict**: the merge applies exactly this plan, or sends nothing and says why if the account "
        "or the fleet files moved since"
    )


__all__ = [
    "APPROVED_ENV",
    "HEAL",
    "MERGE_MODES",
    "NOTE_FIELDS",
    "PLAN_OUT_ENV",
    "SCHEMA",
    "STRICT",
    "PlanDocumentError",
    "StaleField",
    "StaleSim",
    "Staleness",
    "build",
    "canonical",
    "compare",
    "digest",
    "read",
    "stale_against_live",
    "write",
]
