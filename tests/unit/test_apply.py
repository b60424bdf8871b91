"""The Applier below end to end: a fake account that records every call, concurrent SIMs converging."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable

from lattigo_fleet.apply import Applier, SimOperationError
from lattigo_fleet.client import ActivationResult, ActivationRow, BulkResult
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import UNMANAGED, DesiredSim
from lattigo_fleet.live import LiveFleet
from lattigo_fleet.planner import plan_sim
from tests.unit.fakes import UnusedApi

PLAN = "ACME Co 5mb Rate Plan"


def iccid(i: int) -> str:
    return f"890100000000000000{i:02d}"


class FakeAccount(UnusedApi):
    chunk_size = 500
    per_page = 1000

    def __init__(
        self,
        sims: dict[str, LiveDevice],
        broken: Collection[str] = frozenset(),
        locked: Collection[str] = frozenset(),
    ) -> None:
        self.sims = sims
        self.broken = broken  # device names whose cost-center change the platform refuses
        self.locked = locked  # ICCIDs whose state change the platform refuses
        self.calls: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]:
        with self.lock:
            return {k: v.copy() for k, v in self.sims.items() if state is None or v["state"] == state}

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> LiveDevice:
        with self.lock:
            return self.sims[iccid_or_name].copy()

    def activate(self, rows: Iterable[ActivationRow], rate_plan_name: str) -> ActivationResult:
        rows = list(rows)
        with self.lock:
            self.calls.append(("activate", [r.iccid for r in rows]))
            for n, row in enumerate(rows):  # lands at once: the next poll sees it active
                self.sims[row.iccid] = {
                    "iccid": row.iccid,
                    "state": "active",
                    "device_name": f"9{n:04d}",
                    "cost_center": None,
                }
        return ActivationResult(accepted=[r.iccid for r in rows])

    def change_simstate(self, iccids: Iterable[str], state: str, id_type: str = "iccid") -> BulkResult:
        iccids = list(iccids)
        with self.lock:
            self.calls.append((state, iccids))
            failed = {i: "Error: refused" for i in iccids if i in self.locked}
            for i in iccids:
                if i not in failed:
                    self.sims[i]["state"] = "suspended" if state == "suspend" else "active"
        return BulkResult(succeeded=[i for i in iccids if i not in failed], failed=failed)

    def change_cost_center(self, device_names: Iterable[str], cost_center: str) -> BulkResult:
        names = list(device_names)
        with self.lock:
            self.calls.append((f"cost_center {cost_center}", names))
            failed = {n: "Error: refused" for n in names if n in self.broken}
            for sim in self.sims.values():
                if sim.get("device_name") in names and sim["device_name"] not in failed:
                    sim["cost_center"] = cost_center
        return BulkResult(succeeded=[n for n in names if n not in failed], failed=failed)


def account(n: int, broken: Collection[str] = frozenset(), locked: Collection[str] = frozenset()) -> FakeAccount:
    return FakeAccount(
        {
            iccid(i): {"iccid": iccid(i), "state": "active", "device_name": f"365{i:02d}", "cost_center": "ops"}
            for i in range(n)
        },
        broken=broken,
        locked=locked,
    )


def converge_all(applier: Applier, sims: list[DesiredSim]) -> dict[str, str | None]:
    outcomes: dict[str, str | None] = {}

    def one(sim: DesiredSim) -> None:
        try:
            applier.converge(sim, UNMANAGED)
            outcomes[sim.iccid] = None
        except SimOperationError as exc:
            outcomes[sim.iccid] = str(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_concurrent_sims_share_one_request_per_call_as_planned() -> None:
    fake = account(40)
    live = LiveFleet(fake, poll_interval=0.001)
    applier = Applier(fake, live, window=60.0)  # the window never decides here: the plan does
    sims = [
        DesiredSim(
            iccid=iccid(i), cost_center="logistics" if i % 2 else "ops", state="suspended" if i < 4 else "active"
        )
        for i in range(40)
    ]
    applier.expect(plan_sim(s, live.get(s.iccid)) for s in sims)
    assert set(converge_all(applier, sims).values()) == {None}
    by_call = {name: sorted(devices) for name, devices in fake.calls}
    assert len(fake.calls) == 2  # one suspend request, one cost-center request
    assert by_call["suspend"] == [iccid(i) for i in range(4)]
    assert by_call["cost_center logistics"] == sorted(f"365{i:02d}" for i in range(40) if i % 2)


def test_a_new_sim_is_activated_then_given_its_fields() -> None:
    fake = account(0)
    live = LiveFleet(fake, poll_interval=0.001)
    applier = Applier(fake, live, window=60.0)
    new = DesiredSim(iccid=iccid(1), imei="353000000000001", rate_plan=PLAN, cost_center="logistics")
    applier.expect([plan_sim(new, None)])
    assert converge_all(applier, [new]) == {iccid(1): None}
    assert fake.calls == [("activate", [iccid(1)]), ("cost_center logistics", ["90000"])]


def test_a_device_the_platform_refuses_fails_only_its_own_sim() -> None:
    fake = account(6, broken={"36503"})
    live = LiveFleet(fake, poll_interval=0.001)
    applier = Applier(fake, live, window=60.0)
    sims = [DesiredSim(iccid=iccid(i), cost_center="logistics") for i in range(6)]
    applier.expect(plan_sim(s, live.get(s.iccid)) for s in sims)
    outcomes = converge_all(applier, sims)
    assert {i for i, error in outcomes.items() if error} == {iccid(3)}
    error = outcomes[iccid(3)]
    assert error is not None and "refused" in error
    assert len(fake.calls) == 1


def test_destroy_suspends_in_chunks_and_names_failures() -> None:
    fake = account(7, locked={iccid(1), iccid(6)})  # one refused in the first chunk, one in the last
    fake.chunk_size = 3
    applier = Applier(fake, LiveFleet(fake), window=60.0)
    failures = applier.suspend_all([iccid(i) for i in range(7)])
    assert [len(devices) for _, devices in fake.calls] == [3, 3, 1]
    assert failures == {iccid(1): f"{iccid(1)}: Error: refused", iccid(6): f"{iccid(6)}: Error: refused"}
    suspended = {i for i, sim in fake.sims.items() if sim["state"] == "suspended"}
    assert suspended == {iccid(i) for i in (0, 2, 3, 4, 5)}  # every other SIM, whatever its chunk
