"""How the program registers its Sims (program._register_sims): SIMs with planned calls first and all at once
(a bulk request waits for every SIM it expects), the others at most IN_FLIGHT at a time (the SDK holds tens of
kB per registration in flight), and the exported count once all are answered. The engine is played by the
test: a registration is answered when the test says so, and the event loop is stepped, never timed."""

from __future__ import annotations

import asyncio

import pytest

from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import DesiredSim, FleetSpec
from lattigo_fleet.planner import Plan, plan_sim
from providers import program

SIMS = 40
CHANGED = {3, 17, 31}  # their cost center differs from the live account's
BOUND = 4


def iccid(i: int) -> str:
    return f"890100000000000000{i:02d}"


class Engine:
    """Stands in for the engine's monitor: records each registration; it is answered when the test says so."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.unanswered: dict[str, asyncio.Future[str]] = {}

    async def register(self, sim: DesiredSim) -> None:
        self.order.append(sim.name)
        urn = asyncio.get_running_loop().create_future()
        self.unanswered[sim.name] = urn
        await urn

    def answer(self, name: str) -> None:
        self.unanswered.pop(name).set_result(f"urn:{name}")


async def settle() -> None:
    for _ in range(50):  # let every ready task run; no clock involved
        await asyncio.sleep(0)


@pytest.fixture
def fleet_and_plans() -> tuple[FleetSpec, dict[str, Plan]]:
    sims = [DesiredSim(iccid=iccid(i), name=iccid(i), state="active", cost_center="ops") for i in range(SIMS)]
    live: dict[str, LiveDevice] = {s.iccid: {"iccid": s.iccid, "state": "active", "cost_center": "ops"} for s in sims}
    for i in CHANGED:
        live[iccid(i)]["cost_center"] = "finance"
    plans = {s.name: plan_sim(s, live[s.iccid]) for s in sims}
    assert {name for name, plan in plans.items() if plan.ops} == {iccid(i) for i in CHANGED}
    return FleetSpec(sims=sims), plans


def test_sims_with_planned_calls_go_first_and_the_rest_at_most_in_flight_at_once(
    monkeypatch: pytest.MonkeyPatch, fleet_and_plans: tuple[FleetSpec, dict[str, Plan]]
) -> None:
    fleet, plans = fleet_and_plans
    engine = Engine()
    monkeypatch.setattr(program, "IN_FLIGHT", BOUND)

    async def registration(fleet_guard: object, upgrading: bool) -> program.Register:
        return engine.register

    monkeypatch.setattr(program, "_registration", registration)
    changed = {iccid(i) for i in CHANGED}

    async def run() -> list[int]:
        counted: list[int] = []
        # No FleetGuard resource outside a Pulumi program; the stand-in ignores what it would be deleted with.
        program._register_sims(fleet, plans, fleet_guard=None).apply(counted.append)  # type: ignore[arg-type]
        await settle()
        # every SIM with planned calls at once, before any other; then the bound
        assert set(engine.order[: len(CHANGED)]) == changed
        assert len(engine.order) == len(CHANGED) + BOUND
        most_quiet_unanswered = 0
        while True:
            quiet = [name for name in engine.unanswered if name not in changed]
            most_quiet_unanswered = max(most_quiet_unanswered, len(quiet))
            if not quiet:
                break
            engine.answer(quiet[0])  # one answer lets exactly one more in
            await settle()
        assert most_quiet_unanswered == BOUND
        assert counted == []  # the SIMs with planned calls are still unanswered
        for name in list(engine.unanswered):
            engine.answer(name)
        await settle()
        return counted

    counted = asyncio.run(run())
    assert sorted(engine.order) == sorted(s.name for s in fleet.sims)
    assert counted == [SIMS]


def test_activations_register_first_and_members_of_one_bulk_request_together() -> None:
    """The engine works on PULUMI_PARALLEL SIMs at a time: an activated SIM must reach the cost-center requests
    of the others before they go, and a batch whose members arrive together goes out whole."""

    def live_sim(i: int) -> LiveDevice:
        return {"iccid": iccid(i), "state": "active", "cost_center": "ops"}

    moves = ["finance", "logistics", "finance", "logistics"]
    plans = {
        f"move-{i}": plan_sim(DesiredSim(iccid=iccid(i), name=f"move-{i}", cost_center=cc), live_sim(i))
        for i, cc in enumerate(moves)
    }
    plans["new"] = plan_sim(
        DesiredSim(iccid=iccid(9), name="new", imei="356938035643809", rate_plan="ACME Co 5mb Rate Plan"), None
    )
    plans["nothing"] = plan_sim(DesiredSim(iccid=iccid(8), name="nothing", cost_center="ops"), live_sim(8))
    order = sorted(plans, key=lambda name: program._registration_order(plans[name]))
    assert order[0] == "new" and order[-1] == "nothing"
    ccs = [moves[int(name[-1])] for name in order[1:-1]]
    assert ccs in (["finance", "finance", "logistics", "logistics"], ["logistics", "logistics", "finance", "finance"])


def test_the_provider_is_handed_the_sims_this_stack_declares_or_holds_not_the_account() -> None:
    from lattigo_fleet.account_check import AccountCheck
    from lattigo_fleet.stack_state import StackState

    declared, held, elsewhere = iccid(1), iccid(2), iccid(3)
    live: dict[str, LiveDevice] = {i: {"iccid": i, "state": "active"} for i in (declared, held, elsewhere)}
    fleet = FleetSpec(sims=[DesiredSim(iccid=declared, name="one", state="active")])
    state = StackState(held=frozenset({held}))
    handed = program.provider_slice(AccountCheck(live=live), fleet, state)
    assert set(handed) == {declared, held}  # a removal still finds its SIM; another stack's SIM is not handed
