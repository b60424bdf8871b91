"""The shared snapshot: one bulk read serves everyone, and it never forgets our own recent writes."""

from __future__ import annotations

import threading

from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.live import LiveFleet
from tests.unit.fakes import UnusedApi


class SlowClient(UnusedApi):
    """A snapshot() that can be held open, to record a write while a bulk read is in flight."""

    def __init__(self, data: dict[str, LiveDevice]) -> None:
        self.data = data
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]:
        assert state is None, "this account serves whole reads only"
        self.calls += 1
        taken = {k: v.copy() for k, v in self.data.items()}  # what the platform said when the read began
        self.entered.set()
        self.release.wait(5)
        return taken


def state_of(live: LiveFleet, iccid: str) -> str:
    sim = live.get(iccid)
    assert sim is not None, f"{iccid} is not in the snapshot"
    return sim["state"]


def test_first_reader_loads_once_and_everyone_shares_it() -> None:
    client = SlowClient({"a": {"iccid": "a", "state": "active"}})
    live = LiveFleet(client)
    threads = [threading.Thread(target=live.get, args=("a",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.calls == 1
    assert state_of(live, "a") == "active"


def test_a_write_recorded_during_a_reload_survives_it() -> None:
    client = SlowClient({"a": {"iccid": "a", "state": "active", "cost_center": "ops"}})
    live = LiveFleet(client)
    live.get("a")

    client.entered.clear()
    client.release.clear()
    reloader = threading.Thread(target=live.reload)
    reloader.start()
    assert client.entered.wait(5)
    live.record("a", state="suspended")  # we suspended it while the read was in flight
    client.release.set()
    reloader.join(5)

    assert state_of(live, "a") == "suspended"

    # Once a read starts after the write, the platform's answer is the truth again.
    client.data["a"]["state"] = "active"
    live.reload()
    assert state_of(live, "a") == "active"


class PendingClient(UnusedApi):
    """An account where SIMs land one by one; it counts what each poll reads."""

    per_page = 1000

    def __init__(self, data: dict[str, LiveDevice]) -> None:
        self.data = data
        self.reads: list[str] = []

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]:
        self.reads.append(f"list:{state or 'all'}")
        return {k: v.copy() for k, v in self.data.items() if state is None or v["state"] == state}

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> LiveDevice:
        self.reads.append(f"get:{iccid_or_name}")
        return self.data[iccid_or_name].copy()


def test_a_poll_reads_what_is_pending_not_the_whole_fleet() -> None:
    data: dict[str, LiveDevice] = {f"s{i}": {"iccid": f"s{i}", "state": "active"} for i in range(50)}
    data["new1"] = {"iccid": "new1", "state": "pending_activation"}
    data["new2"] = {"iccid": "new2", "state": "pending_activation"}
    client = PendingClient(data)
    client.per_page = 10  # the fleet is 6 pages: more than the pending lists
    live = LiveFleet(client, poll_interval=0.001, max_poll_interval=0.001)
    assert state_of(live, "new1") == "pending_activation"
    client.reads.clear()

    data["new1"]["state"] = "active"  # lands; new2 still pending
    live.reload_pending()
    assert client.reads == ["list:pending_activation", "list:pending_suspend_no_billing", "get:new1"]
    assert (state_of(live, "new1"), state_of(live, "new2")) == ("active", "pending_activation")

    data["new2"]["state"] = "active"
    assert live.wait_settled(["new1", "new2"], timeout=5) == {"new1": "active", "new2": "active"}
    assert "list:all" not in client.reads


def test_a_fleet_of_fewer_pages_than_pending_lists_is_polled_with_one_full_read() -> None:
    """1,000 SIMs are one page: reading it whole costs one request, the pending lists two (plus the landed SIMs).
    The issue's 1,000-SIM change read 7 times against a floor of 3."""
    data: dict[str, LiveDevice] = {f"s{i}": {"iccid": f"s{i}", "state": "active"} for i in range(50)}
    data["new1"] = {"iccid": "new1", "state": "pending_activation"}
    client = PendingClient(data)
    live = LiveFleet(client, poll_interval=0.001, max_poll_interval=0.001)
    assert state_of(live, "new1") == "pending_activation"
    client.reads.clear()
    data["new1"]["state"] = "active"
    live.reload_pending()
    assert client.reads == ["list:all"]
    assert state_of(live, "new1") == "active"


def test_a_read_handed_over_is_the_first_load_and_later_loads_read_the_account() -> None:
    client = SlowClient({"a": {"iccid": "a", "state": "suspended"}})
    handed: dict[str, LiveDevice] = {"a": {"iccid": "a", "state": "active"}}
    live = LiveFleet(client, first_read=lambda: (handed, {"a": 1234}))
    assert state_of(live, "a") == "active" and client.calls == 0  # the program's read, no listing
    assert live.month_bytes("a") == 1234  # its month usage too
    live.reload()
    assert state_of(live, "a") == "suspended" and client.calls == 1  # a reload reads the account


def test_without_a_read_to_take_the_first_load_lists_the_account() -> None:
    client = SlowClient({"a": {"iccid": "a", "state": "active"}})
    live = LiveFleet(client, first_read=lambda: None)
    assert state_of(live, "a") == "active" and client.calls == 1
