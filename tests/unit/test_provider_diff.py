"""The Sim provider's rules: a diff names only the account fields that change; check records how a SIM came
under management and never records an activation field that was not applied."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from lattigo_fleet.client.models import LiveDevice
from providers import runtime as rt
from providers.sim import ACTIVATED, ADOPTED, SimProvider, declared_changes

ICCID = "89010000000000000001"
BASE: dict[str, Any] = {
    "iccid": ICCID,
    "imei": "353000000000001",
    "name": "truck-1",
    "state": "active",
    "cost_center": "ops",
    "notes": {"note": "a"},
    "usage_limit": "none",
    "origin": "adopted",
}
LIMIT = {"kb_limit": 5, "action": "suspend", "usernames": ["ops"]}


@pytest.mark.parametrize(
    ("stored", "declared", "expected"),
    [
        (BASE, BASE, {}),
        (BASE, {**BASE, "name": "renamed"}, {}),  # a rename is no change in the account
        (BASE, {**BASE, "cost_center": "logistics"}, {"cost_center": "update"}),
        (BASE, {**BASE, "state": "suspended"}, {"state": "update"}),
        (BASE, {**BASE, "notes": {"note": "b", "note2": "c"}}, {"notes.note": "update", "notes.note2": "add"}),
        (BASE, {**BASE, "usage_limit": LIMIT}, {"usage_limit": "update"}),
        ({k: v for k, v in BASE.items() if k != "usage_limit"}, {**BASE, "usage_limit": LIMIT}, {"usage_limit": "add"}),
        (BASE, {k: v for k, v in BASE.items() if k != "cost_center"}, {}),  # no longer declared: left alone
        ({**BASE, "cost_center": "rogue"}, {**BASE, "ignore_changes": ["cost_center"]}, {}),
        ({**BASE, "state": "suspended"}, {**BASE, "ignore_changes": ["state"]}, {}),
        # State written by earlier versions: live telemetry and a `managed` list are not account changes.
        (
            {
                **BASE,
                "device_name": "36500",
                "bytes_used": 5,
                "usage_limit": None,
                "managed": ["cost_center", "imei", "notes.note", "state", "usage_limit"],
            },
            BASE,
            {},
        ),
    ],
)
def test_declared_changes(stored: dict[str, Any], declared: dict[str, Any], expected: dict[str, str]) -> None:
    assert declared_changes(stored, declared) == expected


Sims = dict[str, LiveDevice]


class FakeLive:
    def __init__(self, sims: Sims) -> None:
        self.sims = sims

    def get(self, iccid: str) -> LiveDevice | None:
        return self.sims.get(iccid)


class FakeRuntime:
    def __init__(self, sims: Sims) -> None:
        self.live = FakeLive(sims)
        self.warned: set[str] = set()


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Callable[[Sims], FakeRuntime]:
    def make(sims: Sims) -> FakeRuntime:
        fake = FakeRuntime(sims)
        monkeypatch.setattr(rt, "_RUNTIME", fake)
        return fake

    return make


def test_an_adopted_sim_records_no_rate_plan_and_a_later_correction_is_not_refused(
    account: Callable[[Sims], FakeRuntime],
) -> None:
    account({ICCID: {"iccid": ICCID, "state": "active"}})
    declared = {**BASE, "rate_plan": "ACME Co 1GB Pooled Plan"}
    declared.pop("origin")
    created = SimProvider().check({}, declared)
    assert created.failures == []
    assert created.inputs["origin"] == ADOPTED and "rate_plan" not in created.inputs
    corrected = SimProvider().check(created.inputs, {**declared, "rate_plan": "ACME Co 5mb Rate Plan"})
    assert corrected.failures == [] and "rate_plan" not in corrected.inputs


def test_an_activated_sim_keeps_its_rate_plan_and_refuses_to_change_it(account: Callable[[Sims], FakeRuntime]) -> None:
    account({})
    declared = {k: v for k, v in BASE.items() if k != "origin"} | {"rate_plan": "ACME Co 5mb Rate Plan"}
    created = SimProvider().check({}, declared)
    assert created.inputs["origin"] == ACTIVATED and created.inputs["rate_plan"] == "ACME Co 5mb Rate Plan"
    changed = SimProvider().check(created.inputs, {**declared, "rate_plan": "ACME Co 10MB Plan"})
    [failure] = changed.failures
    assert failure.property == "rate_plan" and "cannot change" in failure.reason
    assert SimProvider().check(created.inputs, declared).failures == []


def test_the_unapplied_rate_plan_is_said_once_per_run(
    account: Callable[[Sims], FakeRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr("providers.sim.warn", said.append)
    account(
        {
            ICCID: {"iccid": ICCID, "state": "active"},
            "89010000000000000002": {"iccid": "89010000000000000002", "state": "active"},
        }
    )
    for iccid in (ICCID, "89010000000000000002"):
        SimProvider().check({}, {"iccid": iccid, "state": "active", "rate_plan": "P"})
    [message] = said
    assert "rate_plan" in message and "not applied" in message and ICCID in message


def test_a_stack_written_by_an_earlier_version_is_stopped_until_the_upgrade_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Earlier versions named Sims by `name`: without the aliases of the upgrade run, every named SIM would
    look removed and added again, so FleetGuard stops the run and says what to do."""
    from lattigo_fleet.fleetfile import DesiredSim, FleetSpec
    from lattigo_fleet.provider_host import ProviderError
    from providers.guard import FleetGuardProvider, fleet_digest

    fleet = FleetSpec(sims=[DesiredSim(iccid=ICCID, name="truck-1")])

    class Runtime:
        settings = type("S", (), {"allow_large_changes": False})()
        live = FakeLive({ICCID: {"iccid": ICCID, "state": "active"}})

        def fleet(self) -> FleetSpec:
            return fleet

        def approve_removals(self, iccids: Iterable[str]) -> None:
            pass

    monkeypatch.setattr(rt, "_RUNTIME", Runtime())
    monkeypatch.delenv("LATTIGO_FLEET_UPGRADE", raising=False)
    legacy = {"iccids": [ICCID], "on_remove": "retain", "limit": 1}
    news = {"sims": 1, "fleet_digest": fleet_digest(fleet)}
    with pytest.raises(ProviderError, match="LATTIGO_FLEET_UPGRADE=1 pulumi up"):
        FleetGuardProvider().diff("fleet", legacy, news)
    monkeypatch.setenv("LATTIGO_FLEET_UPGRADE", "1")
    assert FleetGuardProvider().diff("fleet", legacy, news).changes  # the upgrade run records the digest
    monkeypatch.delenv("LATTIGO_FLEET_UPGRADE")
    assert not FleetGuardProvider().diff("fleet", {**legacy, **news}, news).changes  # and later runs are plain
