"""The plan document's rules, pure: one fleet size for the guard, positions per file, the usage-limit verdict,
the digest, and what makes an approved plan stale (each SIM and field, before at review / now)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet import guard, plan_document
from lattigo_fleet.account_check import AccountCheck
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import DesiredSim, FleetSpec, Policy, UsageLimit, load_fleet
from lattigo_fleet.planner import (
    BY_USAGE_LIMIT,
    CANNOT_TELL,
    NOT_BY_USAGE_LIMIT,
    limit_suspension,
    observe,
    plan_sim,
)
from lattigo_fleet.stack_state import StackState
from providers import runtime as rt
from providers.sim import SimProvider

ICCID = "89010000000000000001"
LIMIT = UsageLimit(100, "suspend")


@pytest.mark.parametrize(
    ("held", "declared", "size"),
    [(0, 12, 12), (100, 50, 100), (50, 100, 100), (20, 20, 20), (0, 0, 0)],
)
def test_the_guard_measures_a_percentage_against_the_larger_of_the_fleet_before_and_after(
    held: int, declared: int, size: int
) -> None:
    assert guard.fleet_size(held, declared) == size


def test_100_held_50_forgotten_and_6_suspended_at_10_percent_is_allowed_on_every_path() -> None:
    # The case: one path counted 10% of 50 (5: refuse), the other 10% of 100 (10: allow).
    verdict = guard.assess(Policy(max_changes_percent=10), held=100, declared=50, suspended=[f"s{i}" for i in range(6)])
    assert (verdict.fleet_size, verdict.limit, verdict.refusal) == (100, 10, None)


@pytest.mark.parametrize(
    ("month_bytes", "last_limit", "verdict"),
    [
        (200 * 1024, LIMIT, BY_USAGE_LIMIT),
        (100 * 1024, LIMIT, BY_USAGE_LIMIT),  # reached
        (99 * 1024, LIMIT, NOT_BY_USAGE_LIMIT),
        (None, LIMIT, CANNOT_TELL),  # the month's usage could not be read
        (200 * 1024, UsageLimit(50, "suspend"), CANNOT_TELL),  # the limit in force is not the declared one
    ],
)
def test_a_suspension_by_the_sims_own_usage_limit_is_told_from_the_accounts_figures(
    month_bytes: int | None, last_limit: UsageLimit, verdict: str
) -> None:
    sim = DesiredSim(ICCID, state="active", usage_limit=LIMIT)
    live: LiveDevice = {"iccid": ICCID, "state": "suspended"}
    assert limit_suspension(sim, live, last_limit, month_bytes) == verdict
    plan = plan_sim(sim, live, last_limit, month_bytes=month_bytes)
    assert plan.limit_suspension == verdict
    assert ("restore" in plan.kinds) == (verdict != BY_USAGE_LIMIT)
    if last_limit == sim.usage_limit:  # a refresh reads the SIM as last applied: its limit is the one set
        assert observe(sim, live, month_bytes).state == ("active" if verdict == BY_USAGE_LIMIT else "suspended")


def test_no_usage_is_read_for_a_sim_that_is_no_candidate() -> None:
    email = DesiredSim(ICCID, state="active", usage_limit=UsageLimit(100, "email", ("ops",)))
    suspended: LiveDevice = {"iccid": ICCID, "state": "suspended"}
    active: LiveDevice = {"iccid": ICCID, "state": "active"}
    assert limit_suspension(email, suspended, email.usage_limit, 10**9) is None
    assert limit_suspension(DesiredSim(ICCID, usage_limit=LIMIT), active, LIMIT, 10**9) is None


def test_a_sim_of_a_fleet_d_file_is_positioned_in_that_file(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "version: 1\nsims:\n" + "".join(f'  - {{iccid: "8901000000000000000{i}"}}\n' for i in range(4))
    )
    (tmp_path / "fleet.d").mkdir()
    (tmp_path / "fleet.d" / "east.yaml").write_text('sims:\n  - {iccid: "89010000000000000099"}\n')
    fleet = load_fleet(tmp_path / "fleet.yaml")
    assert fleet.sim_path("89010000000000000099", "imei") == "sims[0].imei"
    assert fleet.sim_path("89010000000000000003") == "sims[3]"


def _doc(fleet: FleetSpec, live: dict[str, LiveDevice], state: StackState | None = None) -> dict[str, Any]:
    state = state or StackState(held=frozenset(sim.iccid for sim in fleet.sims))
    plans = {sim.name: plan_sim(sim, live.get(sim.iccid), state.last_limit(sim.iccid)) for sim in fleet.sims}
    checked = AccountCheck(plans=plans, live=live)
    checked.blast = guard.assess(fleet.policy, held=len(state.held), declared=len(fleet.sims))
    return plan_document.build(fleet, checked, state, stack="prod")


@pytest.fixture
def fleet(tmp_path: Path) -> FleetSpec:
    (tmp_path / "fleet.yaml").write_text(
        'version: 1\nsims:\n  - {iccid: "89010000000000000001", name: a, cost_center: East}\n'
        '  - {iccid: "89010000000000000002", name: b, cost_center: East}\n'
    )
    return load_fleet(tmp_path / "fleet.yaml")


def live_of(a: str, b: str, b_state: str = "active") -> dict[str, LiveDevice]:
    return {
        "89010000000000000001": {"iccid": "89010000000000000001", "state": "active", "cost_center": a},
        "89010000000000000002": {"iccid": "89010000000000000002", "state": b_state, "cost_center": b},
    }


def test_the_digest_is_of_the_content_and_a_changed_plan_is_refused(fleet: FleetSpec, tmp_path: Path) -> None:
    doc = _doc(fleet, live_of("West", "East"))
    assert doc["digest"] == plan_document.digest(doc)
    path = tmp_path / "plan.json"
    plan_document.write({**doc, "created_at": "2026-12-05T00:00:00+00:00"}, path)
    assert plan_document.read(path)["digest"] == doc["digest"]  # when it was made is not its identity
    edited = json.loads(path.read_text())
    edited["sims"][0]["after"]["cost_center"] = "Elsewhere"
    path.write_text(json.dumps(edited))
    with pytest.raises(plan_document.PlanDocumentError, match="digest does not match"):
        plan_document.read(path)


def test_the_same_account_makes_the_same_plan(fleet: FleetSpec) -> None:
    assert not plan_document.compare(_doc(fleet, live_of("West", "East")), _doc(fleet, live_of("West", "East")))


def test_a_touched_sim_that_moved_is_stale_with_its_before_at_review_and_now(fleet: FleetSpec) -> None:
    stale = plan_document.compare(_doc(fleet, live_of("West", "East")), _doc(fleet, live_of("North", "East")))
    [sim] = stale.sims
    assert (sim.name, [(f.field, f.at_review, f.now) for f in sim.fields]) == ("a", [("cost_center", "West", "North")])
    assert plan_document.stale_lines(stale) == [
        "- SIM a (89010000000000000001): the same calls, computed from other live values",
        "    cost_center: 'West' at review / 'North' now",
    ]


def test_an_untouched_sim_that_moved_is_stale_too(fleet: FleetSpec) -> None:
    stale = plan_document.compare(
        _doc(fleet, live_of("West", "East")), _doc(fleet, live_of("West", "East", b_state="suspended"))
    )
    [sim] = stale.sims
    assert sim.summary == "not in the approved plan; now: update (restore)"
    assert [(f.field, f.at_review, f.now) for f in sim.fields] == [("state", "active", "suspended")]


def test_a_live_change_against_a_plan_is_what_the_drift_report_names(fleet: FleetSpec) -> None:
    doc = _doc(fleet, live_of("West", "East"))
    assert plan_document.stale_against_live(doc, live_of("West", "East")) == []
    [moved] = plan_document.stale_against_live(doc, live_of("North", "East"))
    assert (moved.name, moved.fields[0].field, moved.fields[0].now) == ("a", "cost_center", "North")


class _Live:
    def __init__(self, sims: dict[str, LiveDevice]) -> None:
        self.sims = sims

    def get(self, iccid: str) -> LiveDevice | None:
        return self.sims.get(iccid)


class _Applier:
    def __init__(self, live: _Live) -> None:
        self.live = live
        self.calls: list[tuple[str, str]] = []  # in the order they were made

    def wait_settled(self, iccid: str) -> None:
        self.calls.append(("wait_settled", iccid))
        self.live.sims[iccid]["state"] = "active"

    def suspend(self, iccid: str) -> None:
        self.calls.append(("suspend", iccid))


class _Runtime:
    approved_plan: dict[str, Any] | None = None

    def __init__(self, sims: dict[str, LiveDevice]) -> None:
        self.live = _Live(sims)
        self.applier = _Applier(self.live)

    def fleet(self) -> FleetSpec:
        return FleetSpec([], Policy("suspend"))

    def check_removal(self, iccid: str) -> None:
        pass

    def may_write(self) -> None:
        pass


def test_a_sim_removed_while_activating_is_suspended_once_it_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The guard counted it and the comment said "suspended"; the delete used to send nothing (active, unmanaged).
    fake = _Runtime({ICCID: {"iccid": ICCID, "state": "pending_activation"}})
    monkeypatch.setattr(rt, "_RUNTIME", fake)
    SimProvider().delete(ICCID, {"iccid": ICCID})
    assert fake.applier.calls == [("wait_settled", ICCID), ("suspend", ICCID)]  # the suspension once it landed
