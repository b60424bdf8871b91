"""The planner's rules, as a table: (desired, live, last limit) -> the calls, and nothing else."""

from __future__ import annotations

from typing import Any, Unpack

import pytest

from lattigo_fleet.client.models import DeviceFields, LiveDevice
from lattigo_fleet.fleetfile import UNMANAGED, DesiredSim, Unmanaged, UsageLimit
from lattigo_fleet.operations import (
    PHASE_ACTIVATE,
    PHASE_FIELDS,
    PHASE_STATE,
    Activate,
    Restore,
    SetCostCenter,
    SetNote,
    SetUsageLimit,
    Suspend,
    SuspendNoBilling,
)
from lattigo_fleet.planner import observe, plan_sim

ICCID = "89010000000000000001"
IMEI = "353000000000001"
LIMIT = UsageLimit(kb_limit=51200, action="suspend", usernames=("ops-oncall",))


def desired(**overrides: Any) -> DesiredSim:
    fields: dict[str, Any] = dict(
        iccid=ICCID,
        imei=IMEI,
        name=ICCID,
        group=None,
        state="active",
        rate_plan="ACME Co 5mb Rate Plan",
        region_code=None,
        device_sku=None,
        cost_center=None,
        notes={},
        usage_limit=UNMANAGED,
    )
    fields.update(overrides)
    return DesiredSim(**fields)


class LiveOverrides(DeviceFields, total=False):
    """What a case changes of the live device below: any field the API lists, or the ICCID."""

    iccid: str


def live(**overrides: Unpack[LiveOverrides]) -> LiveDevice:
    sim: LiveDevice = {
        "iccid": ICCID,
        "imei": IMEI,
        "device_name": "36524",
        "state": "active",
        "cost_center": "ops",
        "note": "",
        "note1": "",
        "note2": "",
        "note3": "",
    }
    sim.update(overrides)
    return sim


CASES = [
    # (id, desired, live, last_limit, expected kinds, wait)
    ("in sync: nothing", desired(), live(), UNMANAGED, [], False),
    ("unmanaged cost center is left alone", desired(cost_center=None), live(cost_center="x"), UNMANAGED, [], False),
    ("cost center change", desired(cost_center="logistics"), live(), UNMANAGED, ["cost_center"], False),
    ("equal cost center: nothing", desired(cost_center="ops"), live(), UNMANAGED, [], False),
    ("suspend", desired(state="suspended"), live(), UNMANAGED, ["suspend"], False),
    ("restore", desired(), live(state="suspended"), UNMANAGED, ["restore"], False),
    ("restore from no-billing", desired(), live(state="suspended_no_billing"), UNMANAGED, ["restore"], False),
    ("no-billing from active", desired(state="suspended_no_billing"), live(), UNMANAGED, ["suspend_no_billing"], False),
    (
        "no-billing to billed suspension takes two calls",
        desired(state="suspended"),
        live(state="suspended_no_billing"),
        UNMANAGED,
        ["restore", "suspend"],
        False,
    ),
    (
        "pending no-billing heading where we want: nothing",
        desired(state="suspended_no_billing"),
        live(state="pending_suspend_no_billing"),
        UNMANAGED,
        [],
        False,
    ),
    ("pending activation: wait, send nothing yet", desired(), live(state="pending_activation"), UNMANAGED, [], True),
    (
        "pending no-billing with a field to change: wait for it to land first",
        desired(state="suspended_no_billing", cost_center="cc"),
        live(state="pending_suspend_no_billing"),
        UNMANAGED,
        ["cost_center"],
        True,
    ),
    (
        "one changed note is one call",
        desired(notes={"note": "a", "note2": "b"}),
        live(note="a", note2="old"),
        UNMANAGED,
        ["note"],
        False,
    ),
    ("note managed as empty clears it", desired(notes={"note3": ""}), live(note3="stale"), UNMANAGED, ["note"], False),
    ("limit set when different from what we last set", desired(usage_limit=LIMIT), live(), None, ["set_limit"], False),
    ("limit equal to last set: nothing", desired(usage_limit=LIMIT), live(), LIMIT, [], False),
    ("limit removed", desired(usage_limit=None), live(), LIMIT, ["remove_limit"], False),
    ("no limit and none set: nothing", desired(usage_limit=None), live(), None, [], False),
    (
        "adopted SIM with unknown limit: send the declared one",
        desired(usage_limit=LIMIT),
        live(),
        UNMANAGED,
        ["set_limit"],
        False,
    ),
    ("new SIM: activation carries the notes", desired(notes={"note": "hello"}), None, UNMANAGED, ["activate"], False),
    (
        "new SIM to suspend: activate, then suspend",
        desired(state="suspended"),
        None,
        UNMANAGED,
        ["activate", "suspend"],
        False,
    ),
    (
        "new SIM with cost center and limit",
        desired(cost_center="cc", usage_limit=LIMIT),
        None,
        UNMANAGED,
        ["activate", "cost_center", "set_limit"],
        False,
    ),
    (
        "new SIM with no limit declared: nothing to remove",
        desired(usage_limit=None),
        None,
        UNMANAGED,
        ["activate"],
        False,
    ),
    # ignore_changes: a live difference in these fields is left alone once the SIM is in the account...
    (
        "platform suspension expected: not restored",
        desired(ignore_changes=("state",)),
        live(state="suspended"),
        UNMANAGED,
        [],
        False,
    ),
    (
        "ignored cost center and notes: portal edits stay",
        desired(cost_center="cc", notes={"note": "a"}, ignore_changes=("cost_center", "notes")),
        live(cost_center="portal", note="edited"),
        UNMANAGED,
        [],
        False,
    ),
    (
        "ignoring state still applies the other fields",
        desired(cost_center="cc", ignore_changes=("state",)),
        live(state="suspended"),
        UNMANAGED,
        ["cost_center"],
        False,
    ),
    # ...but a SIM being activated gets every declared value, as Terraform applies ignored fields at creation.
    (
        "new SIM ignoring state and cost center still gets them",
        desired(state="suspended", cost_center="cc", ignore_changes=("state", "cost_center")),
        None,
        UNMANAGED,
        ["activate", "suspend", "cost_center"],
        False,
    ),
]


@pytest.mark.parametrize(
    ("desired_sim", "live_sim", "last_limit", "kinds", "wait"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan(
    desired_sim: DesiredSim,
    live_sim: LiveDevice | None,
    last_limit: UsageLimit | Unmanaged | None,
    kinds: list[str],
    wait: bool,
) -> None:
    plan = plan_sim(desired_sim, live_sim, last_limit)
    assert plan.problems == []
    assert plan.kinds == kinds
    assert plan.wait_for_settle is wait


def test_each_operation_carries_its_own_parameters() -> None:
    """Kinds are not enough: a note sent to the wrong field must fail here, not only end to end."""
    plan = plan_sim(
        desired(cost_center="cc", notes={"note2": "east", "note3": ""}, usage_limit=LIMIT),
        live(note2="west", note3="old"),
        None,
    )
    assert plan.ops == [
        SetCostCenter(ICCID, "cc"),
        SetNote(ICCID, "note2", "east"),
        SetNote(ICCID, "note3", ""),
        SetUsageLimit(ICCID, LIMIT),
    ]
    assert plan_sim(desired(notes={"note1": "x"}, region_code="02134"), None).ops == [
        Activate(ICCID, "ACME Co 5mb Rate Plan", IMEI, "02134", None, (("note1", "x"),))
    ]
    # Suspension without billing is asked with the account's IMEI, as the API requires.
    assert plan_sim(desired(state="suspended_no_billing"), live(imei="353000000000009")).ops == [
        SuspendNoBilling(ICCID, "353000000000009")
    ]
    assert plan_sim(desired(state="suspended"), live(state="suspended_no_billing")).ops == [
        Restore(ICCID),
        Suspend(ICCID),
    ]


def test_activation_needs_imei_and_rate_plan() -> None:
    plan = plan_sim(desired(imei=None, rate_plan=None), None)
    assert plan.ops == []
    assert any("imei" in p for p in plan.problems)
    assert any("rate" in p for p in plan.problems)


def test_phases_order_activation_before_state_before_fields() -> None:
    plan = plan_sim(desired(state="suspended", cost_center="cc"), None)
    assert [op.phase for op in plan.ops] == sorted(op.phase for op in plan.ops)
    # one op of each phase, in that order: the activation, then the state, then the fields
    assert plan.kinds == ["activate", "suspend", "cost_center"]
    assert [op.phase for op in plan.ops] == [PHASE_ACTIVATE, PHASE_STATE, PHASE_FIELDS]
    assert PHASE_ACTIVATE < PHASE_STATE < PHASE_FIELDS


def test_compatible_ops_share_a_batch_key_and_notes_never_do() -> None:
    a = plan_sim(desired(cost_center="cc"), live())
    b = plan_sim(desired(iccid="89010000000000000002", cost_center="cc"), live(iccid="89010000000000000002"))
    assert a.ops[0].batch_key == b.ops[0].batch_key
    other = plan_sim(desired(cost_center="other"), live())
    assert other.ops[0].batch_key != a.ops[0].batch_key
    n1 = plan_sim(desired(notes={"note": "x"}), live())
    n2 = plan_sim(desired(iccid="89010000000000000002", notes={"note": "x"}), live(iccid="89010000000000000002"))
    assert n1.ops[0].batch_key != n2.ops[0].batch_key


def test_activations_of_different_sims_on_one_plan_share_a_request() -> None:
    a = plan_sim(desired(notes={"note": "a"}), None).ops[0]
    b = plan_sim(desired(iccid="89010000000000000002", imei="353000000000002"), None).ops[0]
    assert a.batch_key == b.batch_key
    other_plan = plan_sim(desired(rate_plan="ACME Co 10MB Plan"), None).ops[0]
    assert other_plan.batch_key != a.batch_key


def test_plan_summary_groups_sims_by_call_and_leaves_limits_to_the_diff() -> None:
    from lattigo_fleet.account_check import plan_summary

    plans = {
        "truck-1": plan_sim(desired(cost_center="cc"), live()),
        "truck-2": plan_sim(
            desired(iccid="89010000000000000002", cost_center="cc", usage_limit=LIMIT),
            live(iccid="89010000000000000002"),
        ),
        "truck-3": plan_sim(
            desired(iccid="89010000000000000003", state="suspended"), live(iccid="89010000000000000003")
        ),
    }
    summary = plan_summary(plans)
    assert "cost center -> 'cc': 2 SIM(s): truck-1, truck-2" in summary
    assert "suspend: 1 SIM(s): truck-3" in summary
    assert "set limit" not in summary
    assert "already matches" in plan_summary({"truck-1": plan_sim(desired(), live())})


OBSERVE = [
    # (id, declared, live, what a refresh records: the declared fields as the account shows them)
    ("in sync", desired(cost_center="ops"), live(), desired(cost_center="ops")),
    (
        "drift in state, cost center and a declared note",
        desired(cost_center="ops", notes={"note": "a"}),
        live(state="suspended", cost_center="rogue", note="edited", note1="not declared"),
        desired(state="suspended", cost_center="rogue", notes={"note": "edited"}),
    ),
    ("undeclared fields are not read back", desired(), live(cost_center="x", note="y"), desired()),
    (
        "write-only fields keep their declared value",
        desired(usage_limit=LIMIT, region_code="02134"),
        live(),
        desired(usage_limit=LIMIT, region_code="02134"),
    ),
    (
        "in flight to the declared state: not drift",
        desired(state="suspended_no_billing"),
        live(state="pending_suspend_no_billing"),
        desired(state="suspended_no_billing"),
    ),
    (
        "in flight elsewhere: shown where it lands",
        desired(),
        live(state="pending_suspend_no_billing"),
        desired(state="suspended_no_billing"),
    ),
    ("pending activation: not drift", desired(), live(state="pending_activation"), desired()),
    (
        "ignored fields: never drift",
        desired(cost_center="ops", notes={"note": "a"}, ignore_changes=("state", "cost_center", "notes")),
        live(state="suspended", cost_center="portal", note="edited"),
        desired(cost_center="ops", notes={"note": "a"}, ignore_changes=("state", "cost_center", "notes")),
    ),
    ("IMEI read back only if declared", desired(imei=None), live(imei="353000000000009"), desired(imei=None)),
]


@pytest.mark.parametrize(("declared", "live_sim", "expected"), [c[1:] for c in OBSERVE], ids=[c[0] for c in OBSERVE])
def test_observe(declared: DesiredSim, live_sim: LiveDevice, expected: DesiredSim) -> None:
    assert observe(declared, live_sim) == expected
