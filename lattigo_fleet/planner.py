"""The planner: (desired SIM, live SIM, last limit we set) -> the minimal list of Lattigo operations.

Pure: no network, no Pulumi. Everything that decides *which* calls an apply makes lives here, so that the
rules can be read in one place and pinned by table tests (tests/unit/test_planner.py).

Operations come out in phases, because some need others finished first: a SIM must be active before its
state, cost center or usage limit can change, and a state change must not race an activation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any, cast

from lattigo_fleet.client.models import LiveDevice, live_note
from lattigo_fleet.fleetfile import NOTE_FIELDS, STATES, UNMANAGED, DesiredSim, UsageLimit
from lattigo_fleet.operations import (
    PHASE_ACTIVATE,
    PHASE_FIELDS,
    PHASE_STATE,
    STATE_OPS,
    Activate,
    Op,
    RemoveUsageLimit,
    SetCostCenter,
    SetNote,
    SetUsageLimit,
    SuspendNoBilling,
)
from lattigo_fleet.vocabulary import (
    ACTIVE,
    PENDING_ACTIVATION,
    PENDING_SUSPEND_NO_BILLING,
    SUSPENDED,
    SUSPENDED_NO_BILLING,
)

__all__ = [
    "ACTIVE",
    "PENDING_ACTIVATION",
    "PENDING_SUSPEND_NO_BILLING",
    "PHASE_ACTIVATE",
    "PHASE_FIELDS",
    "PHASE_STATE",
    "SETTLES_TO",
    "STATE_TRANSITIONS",
    "SUSPENDED",
    "SUSPENDED_NO_BILLING",
    "Op",
    "Plan",
    "limit_suspension",
    "limit_suspension_candidate",
    "observe",
    "plan_sim",
]

# Where a pending state is heading: a planner never issues calls against a SIM in flight.
SETTLES_TO = {PENDING_ACTIVATION: ACTIVE, PENDING_SUSPEND_NO_BILLING: SUSPENDED_NO_BILLING}

# The state transitions the platform offers, as the calls that make them (in order).
# (from live state, to desired state) -> operation kinds. A pair not listed is not possible.
STATE_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (ACTIVE, SUSPENDED): ("suspend",),
    (ACTIVE, SUSPENDED_NO_BILLING): ("suspend_no_billing",),
    (SUSPENDED, ACTIVE): ("restore",),
    (SUSPENDED, SUSPENDED_NO_BILLING): ("suspend_no_billing",),
    (SUSPENDED_NO_BILLING, ACTIVE): ("restore",),
    # No direct call moves a no-billing suspension to a billed one: restore, then suspend.
    (SUSPENDED_NO_BILLING, SUSPENDED): ("restore", "suspend"),
}


# Why a SIM declared active is suspended in the account, as far as the account's own figures tell.
BY_USAGE_LIMIT = "by_usage_limit"  # its declared limit (action suspend) is in force and this month reached it
NOT_BY_USAGE_LIMIT = "not_by_usage_limit"  # this month's usage is under the limit: someone suspended it
CANNOT_TELL = "cannot_tell"  # the limit in force or the month's usage is not known
NOT_READ = object()  # the month's usage was not asked for


def limit_suspension_candidate(desired: DesiredSim, live: LiveDevice | None) -> bool:
    """A SIM declared active that the account shows suspended, whose declared usage limit suspends: the
    platform may have suspended it for that limit, which is not drift. Only then is the month's usage read."""
    limit = desired.usage_limit
    return (
        live is not None
        and live.get("state") == SUSPENDED
        and desired.state == ACTIVE
        and "state" not in desired.ignore_changes
        and isinstance(limit, UsageLimit)
        and limit.action == "suspend"
    )


def limit_suspension(
    desired: DesiredSim, live: LiveDevice | None, last_limit: Any, month_bytes: Any = NOT_READ
) -> str | None:
    """None if the SIM is no candidate (above); else BY_USAGE_LIMIT, NOT_BY_USAGE_LIMIT or CANNOT_TELL, from
    the limit this tool last set (the API cannot read limits back) and this month's bytes in the account."""
    if not limit_suspension_candidate(desired, live):
        return None
    limit = desired.usage_limit
    assert isinstance(limit, UsageLimit)
    if last_limit != limit or month_bytes is NOT_READ or month_bytes is None:
        return CANNOT_TELL
    return BY_USAGE_LIMIT if int(month_bytes) >= limit.kb_limit * 1024 else NOT_BY_USAGE_LIMIT


@dataclass
class Plan:
    ops: list[Op] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what cannot be done, in words
    wait_for_settle: bool = False  # the SIM is mid-transition; wait, then plan again
    limit_suspension: str | None = None  # see limit_suspension(): BY_USAGE_LIMIT leaves the suspension alone

    @property
    def kinds(self) -> list[str]:
        return [op.kind for op in self.ops]


def activated_device(desired: DesiredSim) -> LiveDevice:
    """The SIM right after its activation: active, with the notes sent with it, no cost center and no limit."""
    notes = {name: desired.notes.get(name, "") for name in NOTE_FIELDS}
    return cast(LiveDevice, {"iccid": desired.iccid, "state": ACTIVE, "cost_center": None, **notes})


def plan_sim(
    desired: DesiredSim,
    live: LiveDevice | None,
    last_limit: UsageLimit | None | object = UNMANAGED,
    *,
    ignore: Collection[str] | None = None,
    month_bytes: Any = NOT_READ,
) -> Plan:
    """The minimal operations that take `live` to `desired`.

    `live` is the device object from the API (None: the ICCID is not in the account, so it must be activated).
    `last_limit` is the usage limit this tool last set (UNMANAGED: unknown, e.g. a SIM being adopted). Usage
    limits are write-only in the API, so they are compared against what we last set, never against live.
    `ignore` names the fields whose live value is left alone (default: the SIM's `ignore_changes`, which
    apply once the SIM is in the account; an apply that has just activated the SIM passes `()`).
    `month_bytes` is this month's usage in the account, asked for a `limit_suspension_candidate` only: a SIM that
    its own declared usage limit suspended is left suspended (BY_USAGE_LIMIT), whatever fleet.yaml's state says.
    """
    plan = Plan()
    iccid = desired.iccid
    ignored = set(desired.ignore_changes if ignore is None else ignore)

    if live is None:
        problems = desired.activation_problems()
        if problems:
            plan.problems += [f"{iccid} is not in the account and cannot be activated: {p}" for p in problems]
            return plan
        notes = tuple((k, desired.notes[k]) for k in NOTE_FIELDS if desired.notes.get(k))
        plan.ops.append(
            Activate(iccid, str(desired.rate_plan), desired.imei, desired.region_code, desired.device_sku, notes)
        )
        live = activated_device(desired)
        last_limit = None
        ignored = set()  # a SIM being activated gets every declared value

    state = str(live.get("state") or "")
    in_flight = state in SETTLES_TO
    if in_flight:
        state = SETTLES_TO[state]  # plan from where it lands
    plan.limit_suspension = limit_suspension(desired, live, last_limit, month_bytes)
    if plan.limit_suspension == BY_USAGE_LIMIT:
        ignored.add("state")  # the platform did what the declared limit asks: not drift, never restored

    if state != desired.state and "state" not in ignored:
        steps = STATE_TRANSITIONS.get((state, desired.state))
        if steps is None:
            plan.problems.append(f"{iccid}: the platform has no way from state {state!r} to {desired.state!r}")
        else:
            for kind in steps:
                if kind == "suspend_no_billing":  # asked by ICCID and the account's IMEI
                    plan.ops.append(SuspendNoBilling(iccid, live.get("imei") or desired.imei))
                else:
                    plan.ops.append(STATE_OPS[kind](iccid))

    if (
        desired.cost_center is not None
        and "cost_center" not in ignored
        and (live.get("cost_center") or "") != desired.cost_center
    ):
        plan.ops.append(SetCostCenter(iccid, desired.cost_center))

    for name in NOTE_FIELDS:
        if name in desired.notes and "notes" not in ignored and live_note(live, name) != desired.notes[name]:
            plan.ops.append(SetNote(iccid, name, desired.notes[name]))

    if desired.usage_limit is not UNMANAGED and desired.usage_limit != last_limit:
        if desired.usage_limit is None:
            plan.ops.append(RemoveUsageLimit(iccid))
        else:
            plan.ops.append(SetUsageLimit(iccid, desired.usage_limit))

    if in_flight and (plan.ops or live.get("state") == PENDING_ACTIVATION):
        # Never send calls against a SIM in flight: wait for it to land, then plan again.
        plan.wait_for_settle = True
    return plan


def observe(declared: DesiredSim, live: LiveDevice, month_bytes: Any = NOT_READ) -> DesiredSim:
    """The SIM as the live account shows it, in fleet.yaml's terms: what a refresh records, so that drift
    shows as a difference from fleet.yaml in exactly the declared fields.

    Only declared fields are read back. The API cannot read usage limits, rate plans, region codes or SKUs,
    so those keep their declared values; so do the fields of `ignore_changes` (a difference there is not
    drift), a state on its way to exactly what was declared (a pending activation is not drift), and a
    suspension by the SIM's own usage limit (`declared` is the SIM as last applied: its limit is the one set)."""
    ignored = set(declared.ignore_changes)
    if limit_suspension(declared, live, declared.usage_limit, month_bytes) == BY_USAGE_LIMIT:
        ignored.add("state")
    state = live.get("state") or declared.state
    state = SETTLES_TO.get(state, state)  # in flight: shown where it lands (not drift if that is declared)
    if "state" in ignored:
        state = declared.state
    cost_center = declared.cost_center
    if cost_center is not None and "cost_center" not in ignored:
        cost_center = live.get("cost_center") or ""
    notes = dict(declared.notes)
    if "notes" not in ignored:
        notes = {name: live_note(live, name) for name in declared.notes}
    return replace(
        declared,
        imei=(live.get("imei") or declared.imei) if declared.imei is not None else None,
        state=state if state in STATES else declared.state,
        cost_center=cost_center,
        notes=notes,
    )
