"""Contract tests of LattigoClient over real HTTP against the emulator: every method, happy and failing."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.seeds import CALAMP_EVENT_CODES, demo_account
from emulator.server import EmulatorServer
from lattigo_fleet.client import (
    ActivationRow,
    AuthenticationError,
    BadRequest,
    DeadlineExceeded,
    LattigoClient,
    LattigoError,
    NotFound,
    RateLimitBudgetExceeded,
    RateLimited,
)
from tests.client.conftest import PLAN, Clock, add_active, add_inventory, api_requests, iccid, imei
from tests.client.stub import Reply, StubRequest, start_stub
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME, OTHER_ACCOUNT_SIMS

# --- listing and paging --------------------------------------------------------------------------------


def test_devices_follows_pagination_headers_over_several_pages(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 23)
    client.per_page = 5
    devices = list(client.devices())
    assert sorted(d["iccid"] for d in devices) == [iccid(n) for n in range(23)]
    pages = api_requests(emu, "/v2/devices")
    assert [(r["query"]["page"], r["query"]["per_page"]) for r in pages] == [(str(p), "5") for p in range(1, 6)]
    assert all(r["query"]["details"] == "true" for r in pages)
    assert client.stats.requests["GET v2/devices"] == 5


def test_devices_names_and_state_filter(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 3)
    add_active(emu, 3, 2, state="suspended")
    add_inventory(emu, 5, 2)  # not listed: never activated
    names = list(client.devices(details=False))
    listed = {iccid(n) for n in range(5)}
    assert sorted(names) == sorted(s["device_name"] for s in emu.sims() if s["iccid"] in listed)
    assert all(isinstance(n, str) for n in names)
    suspended = list(client.devices(state="suspended"))
    assert sorted(d["iccid"] for d in suspended) == [iccid(3), iccid(4)]


def test_devices_page_exposes_the_headers(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 7)
    page = client.devices_page(page=2, per_page=3)
    assert (page.page, page.per_page, page.total, page.total_pages) == (2, 3, 7, 3)
    assert (page.next_page, page.prev_page) == (3, 1)
    assert len(page.items) == 3
    last = client.devices_page(page=3, per_page=3)
    assert last.next_page is None and len(last.items) == 1


def test_snapshot_takes_ceil_n_over_per_page_requests(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 2500)
    snap = client.snapshot()
    assert len(snap) == 2500 and snap[iccid(1234)]["imei"] == imei(1234)
    gets = api_requests(emu, "/v2/devices")
    assert len(gets) == math.ceil(2500 / 1000) == client.stats.total_requests
    assert {r["query"]["per_page"] for r in gets} == {"1000"}


def test_snapshot_of_an_empty_account_is_one_request(emu: EmulatorServer, client: LattigoClient) -> None:
    assert client.snapshot() == {}
    assert client.stats.total_requests == 1


# --- single devices ----------------------------------------------------------------------------------


def test_device_by_iccid_or_by_name(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    by_iccid = client.device(iccid(0))
    assert by_iccid["iccid"] == iccid(0) and by_iccid["device_name"] != iccid(0)
    assert client.device(by_iccid["device_name"], id_type=None)["iccid"] == iccid(0)
    assert api_requests(emu, f"/v2/devices/{iccid(0)}")[0]["query"] == {"id_type": "iccid"}


def test_unknown_device_is_not_found_and_named_in_the_message(emu: EmulatorServer, client: LattigoClient) -> None:
    with pytest.raises(NotFound) as info:
        client.device(iccid(99))
    assert iccid(99) in str(info.value) and "v2/devices" in str(info.value)
    assert info.value.status == 404


def test_wrong_credentials_are_an_authentication_error_without_secrets(emu: EmulatorServer) -> None:
    bad = LattigoClient(emu.base_url, EMULATOR_KEY_NAME, "wrong-secret-value", sleep=lambda s: None)
    with pytest.raises(AuthenticationError) as info:
        bad.users()
    text = str(info.value) + repr(info.value)
    assert info.value.status == 401 and "v2/users" in text
    assert "wrong-secret-value" not in text and EMULATOR_API_KEY not in text
    assert len(api_requests(emu, "/v2/users")) == 1  # a 401 is not retried


def test_device_of_another_account_is_forbidden(emu: EmulatorServer, client: LattigoClient) -> None:
    other = OTHER_ACCOUNT_SIMS[0]
    with pytest.raises(AuthenticationError) as info:
        client.device(other["iccid"])
    assert info.value.status == 403


def test_bad_parameters_are_a_bad_request(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    with pytest.raises(BadRequest) as info:
        client.devices_page(page=1, per_page=5000)
    assert info.value.status == 400 and "per_page" in str(info.value)


# --- 429 and 5xx -------------------------------------------------------------------------------------


def test_429_then_success_waits_as_retry_after_says(emu: EmulatorServer, client: LattigoClient, clock: Clock) -> None:
    add_active(emu, 0, 3)
    emu.set_faults(fail_next=[{"path": "/v2/devices", "status": 429, "count": 2, "retry_after": 3}])
    assert len(client.snapshot()) == 3
    assert clock.waits == [3.0, 3.0]
    assert client.stats.retries["GET v2/devices"] == 2
    assert [r["status"] for r in api_requests(emu, "/v2/devices")] == [429, 429, 200]


def test_429_is_retried_for_a_post_too(emu: EmulatorServer, client: LattigoClient) -> None:
    add_inventory(emu, 0, 2)
    emu.set_faults(fail_next=[{"path": "/v2/device_operations/activation_request", "status": 429, "count": 1}])
    result = client.activate([ActivationRow(iccid(n), imei(n)) for n in range(2)], PLAN)
    assert result.accepted == [iccid(0), iccid(1)] and not result.rejected
    assert [r["status"] for r in api_requests(emu, "activation_request")] == [429, 200]


def test_429_is_retried_until_the_retry_budget_is_spent_not_a_fixed_count(emu: EmulatorServer, clock: Clock) -> None:
    emu.set_faults(fail_next=[{"path": "/v2/rate_plans", "status": 429, "count": 50, "retry_after": 2}])
    client = LattigoClient(
        emu.base_url,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        max_retries=2,
        retry_budget=10,
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(RateLimitBudgetExceeded) as info:
        client.rate_plans()
    err = info.value
    assert isinstance(err, RateLimited) and isinstance(err, DeadlineExceeded)
    assert err.bound == "retry_budget" and err.limit == 10 and err.retry_after == 2.0 and err.status == 429
    assert "retry_budget bound (10 s)" in str(err)
    # 2 s after each of 5 429s fills the 10 s budget: the 6th 429 stops it (more than max_retries=2 retries).
    assert clock.waits == [2.0] * 5
    assert len(api_requests(emu, "/v2/rate_plans")) == 6


def test_5xx_on_get_and_put_is_retried(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 2)
    emu.set_faults(
        fail_next=[
            {"path": "/v2/devices/*", "status": 503, "count": 1},
            {"path": "/v2/device_operations/change_simstate", "status": 500, "count": 2},
        ]
    )
    assert client.device(iccid(0))["iccid"] == iccid(0)
    result = client.change_simstate([iccid(0), iccid(1)], "suspend")
    assert result.succeeded == [iccid(0), iccid(1)] and not result.failed
    assert [r["status"] for r in api_requests(emu, "change_simstate")] == [500, 500, 200]
    assert {s["iccid"]: s["state"] for s in emu.sims()}[iccid(0)] == "suspended"


def test_5xx_on_a_post_that_sets_a_value_is_retried(emu: EmulatorServer, client: LattigoClient) -> None:
    names = [client.device(i)["device_name"] for i in add_active(emu, 0, 2)]
    emu.set_faults(
        fail_next=[
            {"path": "/v2/device_operations/set_usage_limit", "status": 500, "count": 1},
            {"path": "/v2/device_operations/remove_usage_limit", "status": 502, "count": 1},
        ]
    )
    assert sorted(client.set_usage_limit(names, 100).succeeded) == sorted(names)
    assert sorted(client.remove_usage_limit(names).succeeded) == sorted(names)
    assert [r["status"] for r in api_requests(emu, "usage_limit")] == [500, 200, 502, 200]


def test_5xx_on_a_non_idempotent_post_is_not_retried(emu: EmulatorServer, client: LattigoClient) -> None:
    names = [client.device(i)["device_name"] for i in add_active(emu, 0, 2)]
    emu.set_faults(fail_next=[{"path": "/v2/device_operations/send_sms", "status": 500, "count": 1}])
    result = client.send_sms(names, "hello")
    assert result.succeeded == [] and set(result.failed) == set(names)
    assert "ServerError" in result.failed[names[0]] and "500" in result.failed[names[0]]
    assert len(api_requests(emu, "send_sms")) == 1


# --- activation ----------------------------------------------------------------------------------------


def test_activation_then_wait_until_active(emu: EmulatorServer, client: LattigoClient, clock: Clock) -> None:
    emu.reset("empty", activation_delay=3600)
    add_inventory(emu, 0, 3)
    rows = [ActivationRow(iccid(n), imei(n), note="truck", note2="n2") for n in range(3)]
    result = client.activate(rows, PLAN)
    assert result.accepted == [iccid(n) for n in range(3)] and result.ok
    dev = client.device(iccid(0))
    assert dev["state"] == "pending_activation" and dev["note"] == "truck" and dev["note2"] == "n2"

    real_sleep = clock.sleep

    def sleep_and_finish(seconds: float) -> None:
        real_sleep(seconds)
        emu.tick()

    client._sleep = sleep_and_finish
    states = client.wait_until_active([iccid(n) for n in range(3)], timeout=60, poll_interval=5)
    assert states == {iccid(n): "active" for n in range(3)}
    assert clock.waits == [5]
    assert client.stats.requests["GET v2/devices"] == 2  # one snapshot per poll, not one GET per SIM


def test_wait_until_active_gives_up_at_the_timeout(emu: EmulatorServer, client: LattigoClient, clock: Clock) -> None:
    emu.reset("empty", activation_delay=3600)
    add_inventory(emu, 0, 1)
    client.activate([ActivationRow(iccid(0), imei(0))], PLAN)
    states = client.wait_until_active([iccid(0), iccid(5)], timeout=30, poll_interval=10)
    assert states == {iccid(0): "pending_activation", iccid(5): None}
    assert sum(clock.waits) == 30


def test_partial_422_is_a_partial_success(emu: EmulatorServer, client: LattigoClient, audit_path: Path) -> None:
    add_inventory(emu, 0, 3)
    add_active(emu, 3, 1)
    emu.set_faults(unprocessed_activations=[iccid(1)])
    rows = [ActivationRow(iccid(n), imei(n)) for n in range(4)]
    result = client.activate(rows, PLAN)
    assert result.accepted == [iccid(0), iccid(2)]
    assert result.rejected == {
        iccid(1): "iccid: was rejected by the carrier",
        iccid(3): "iccid: is already activated",
    }
    assert {u.device_index for u in result.unprocessed} == {1, 3}
    assert result.unprocessed[0].input["iccid"] in (iccid(1), iccid(3))
    entry = json.loads(audit_path.read_text().splitlines()[-1])
    assert entry["outcome"] == "partial" and entry["status"] == 422
    assert entry["failures"][iccid(1)] == "iccid: was rejected by the carrier"


def test_activation_of_an_unknown_rate_plan_rejects_every_row(emu: EmulatorServer, client: LattigoClient) -> None:
    add_inventory(emu, 0, 2)
    result = client.activate([ActivationRow(iccid(n), imei(n)) for n in range(2)], "No Such Plan")
    assert result.accepted == [] and set(result.rejected) == {iccid(0), iccid(1)}
    assert "rate_plan_name" in result.rejected[iccid(0)]


def test_activation_is_chunked(emu: EmulatorServer, client: LattigoClient) -> None:
    add_inventory(emu, 0, 7)
    client.chunk_size = 3
    result = client.activate([ActivationRow(iccid(n), imei(n)) for n in range(7)], PLAN)
    assert len(result.accepted) == 7
    sizes = [len(r["body"]["activation_requests"]) for r in api_requests(emu, "activation_request")]
    assert sizes == [3, 3, 1]


def test_500_on_activation_is_not_retried_blind(emu: EmulatorServer, client: LattigoClient) -> None:
    """The emulator refuses the whole request with a 500 (nothing applied): the client reads back, finds
    nothing applied, and sends the rows again once."""
    add_inventory(emu, 0, 3)
    emu.set_faults(fail_next=[{"path": "/v2/device_operations/activation_request", "status": 500, "count": 1}])
    result = client.activate([ActivationRow(iccid(n), imei(n)) for n in range(3)], PLAN)
    assert result.accepted == [iccid(n) for n in range(3)]
    assert result.recovered == [] and result.resent == [iccid(n) for n in range(3)]
    assert [r["status"] for r in api_requests(emu, "activation_request")] == [500, 200]


class _PartialApplyProxy:
    """Loopback proxy in front of the emulator: the first activation request reaches the emulator with only
    its first ``applied`` rows (a platform that failed midway), and the client gets a 500."""

    def __init__(self, emu: EmulatorServer, applied: int) -> None:
        self.stub, self.server = start_stub()
        self.emu, self.applied, self.tripped = emu, applied, False
        self.stub.handler = self.handle

    def handle(self, req: StubRequest) -> Reply:
        body = req.body
        if req.path.endswith("activation_request") and not self.tripped:
            self.tripped = True
            body = {**body, "activation_requests": body["activation_requests"][: self.applied]}
            self.forward(req, body)
            return 500, {}, {"error": "Internal Server Error"}
        return self.forward(req, body)

    def forward(self, req: StubRequest, body: Any) -> Reply:
        resp = requests.request(
            req.method,
            self.emu.base_url + req.path,
            params=req.query,
            json=body,
            headers={"Authorization": req.headers["authorization"]},
            timeout=10,
        )
        headers = {k: v for k, v in resp.headers.items() if k.lower().startswith("x-") or k == "Retry-After"}
        return resp.status_code, headers, resp.content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("count", [4, 25])  # per-SIM read-back, then read-back through the paged snapshot
def test_500_after_part_of_an_activation_was_applied_activates_no_sim_twice(
    emu: EmulatorServer, clock: Clock, count: int
) -> None:
    add_inventory(emu, 0, count)
    add_active(emu, 1000, 3)  # unrelated SIMs in the account
    proxy = _PartialApplyProxy(emu, applied=count // 2)
    try:
        client = LattigoClient(proxy.stub.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, sleep=clock.sleep)
        rows = [ActivationRow(iccid(n), imei(n)) for n in range(count)]
        result = client.activate(rows, PLAN)
    finally:
        proxy.close()
    everyone = [iccid(n) for n in range(count)]
    assert sorted(result.accepted) == everyone and not result.rejected
    assert result.recovered == everyone[: count // 2]
    assert result.resent == everyone[count // 2 :]
    # What reached the platform: each ICCID in exactly one activation request, and no refusal.
    posts = api_requests(emu, "activation_request")
    sent = [row["iccid"] for r in posts for row in r["body"]["activation_requests"]]
    assert sorted(sent) == everyone
    assert [r["status"] for r in posts] == [200, 200]
    states = {s["iccid"]: s["state"] for s in emu.sims()}
    assert all(states[i] in ("pending_activation", "active") for i in everyone)
    reads = client.stats.requests
    if count <= client.lookup_threshold:
        assert reads["GET v2/devices/:device_name"] == count
    else:
        assert reads["GET v2/devices"] == 1


def test_duplicate_rows_are_sent_once(emu: EmulatorServer, client: LattigoClient) -> None:
    add_inventory(emu, 0, 1)
    result = client.activate([ActivationRow(iccid(0), imei(0)), ActivationRow(iccid(0), imei(0))], PLAN)
    assert result.accepted == [iccid(0)]
    assert len(api_requests(emu, "activation_request")[0]["body"]["activation_requests"]) == 1


# --- bulk operations --------------------------------------------------------------------------------------


def test_change_simstate_by_iccid_with_a_missing_device(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 2)
    result = client.change_simstate([iccid(0), iccid(1), iccid(77)], "suspend")
    assert result.succeeded == [iccid(0), iccid(1)]
    assert result.failed == {iccid(77): "Error: Device does not exist."}
    body = api_requests(emu, "change_simstate")[0]["body"]
    assert body["id_type"] == "iccid" and body["state"] == "suspend"
    restored = client.change_simstate([iccid(0)], "restore")
    assert restored.succeeded == [iccid(0)]
    states = {s["iccid"]: s["state"] for s in emu.sims()}
    assert (states[iccid(0)], states[iccid(1)]) == ("active", "suspended")
    with pytest.raises(ValueError):
        client.change_simstate([iccid(0)], "activate")


def test_refused_transition_is_that_devices_failure(emu: EmulatorServer, client: LattigoClient) -> None:
    emu.reset("empty", activation_delay=3600)
    add_inventory(emu, 0, 1)
    client.activate([ActivationRow(iccid(0), imei(0))], PLAN)
    result = client.change_simstate([iccid(0)], "suspend")
    assert result.succeeded == [] and "pending activation" in result.failed[iccid(0)]


def test_bulk_operations_are_chunked(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 5)
    names = client.names_by_iccid()
    client.chunk_size = 2
    result = client.change_cost_center(list(names.values()), "Fleet-East")
    assert sorted(result.succeeded) == sorted(names.values())
    assert [len(r["body"]["device_names"]) for r in api_requests(emu, "change_cost_center")] == [2, 2, 1]
    assert {s["cost_center"] for s in emu.sims()} == {"Fleet-East"}


def test_change_cost_center_unknown_name_fails(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    name = client.device(iccid(0))["device_name"]
    result = client.change_cost_center([name, "99999"], "CC-1")
    assert result.succeeded == [name] and result.failed == {"99999": "Error: Device does not exist."}


def test_usage_limits(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 2)
    names = list(client.names_by_iccid().values())
    result = client.set_usage_limit(names + ["99999"], 2048, action="suspend", usernames=["ops-oncall"])
    assert sorted(result.succeeded) == sorted(names) and result.failed == {"99999": "Error: Device does not exist."}
    body = api_requests(emu, "set_usage_limit")[0]["body"]
    assert body == {
        "device_names": [*names, "99999"],
        "kb_limit": 2048,
        "action": "suspend",
        "usernames": ["ops-oncall"],
    }
    limits = {s["iccid"]: s["usage_limit"] for s in emu.sims()}
    assert limits[iccid(0)]["kb_limit"] == 2048 and limits[iccid(0)]["action"] == "suspend"
    email_only = client.set_usage_limit(names[:1], 10, action=None)
    assert email_only.succeeded == names[:1]
    assert "action" not in api_requests(emu, "set_usage_limit")[1]["body"]
    removed = client.remove_usage_limit(names)
    assert sorted(removed.succeeded) == sorted(names)
    assert all(s["usage_limit"] in (None, {}) for s in emu.sims())
    with pytest.raises(ValueError):
        client.set_usage_limit(names, -1)


def test_send_sms(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    add_active(emu, 1, 1, state="suspended")
    names = client.names_by_iccid()
    result = client.send_sms([names[iccid(0)], names[iccid(1)]], "ping")
    assert result.succeeded == [names[iccid(0)]]
    assert result.failed[names[iccid(1)]].startswith("Error:")
    assert api_requests(emu, "send_sms")[0]["body"]["sms_text"] == "ping"


def test_suspend_no_billing(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 2)
    result = client.suspend_no_billing([(iccid(0), imei(0)), (iccid(1), imei(9)), (iccid(55), imei(55))])
    assert result.succeeded == [iccid(0)]
    assert "imei" in result.failed[iccid(1)] and "does not exist" in result.failed[iccid(55)]
    assert {s["iccid"]: s["state"] for s in emu.sims()}[iccid(0)] in (
        "pending_suspend_no_billing",
        "suspended_no_billing",
    )
    assert api_requests(emu, "suspend_no_billing_request")[0]["body"] == {
        "suspension_requests": [
            {"imei": imei(0), "iccid": iccid(0)},
            {"imei": imei(9), "iccid": iccid(1)},
            {"imei": imei(55), "iccid": iccid(55)},
        ]
    }


def test_suspend_no_billing_after_a_500_reads_back_and_sends_only_the_rest(
    emu: EmulatorServer, client: LattigoClient
) -> None:
    add_active(emu, 0, 2)
    emu.add_sims([{"iccid": iccid(0), "state": "pending_suspend_no_billing"}])  # already queued
    emu.set_faults(fail_next=[{"path": "/v2/device_operations/suspend_no_billing_request", "status": 502, "count": 1}])
    result = client.suspend_no_billing([(iccid(0), imei(0)), (iccid(1), imei(1))])
    assert sorted(result.succeeded) == [iccid(0), iccid(1)] and not result.failed
    bodies = [r["body"]["suspension_requests"] for r in api_requests(emu, "suspend_no_billing_request")]
    assert [[row["iccid"] for row in b] for b in bodies] == [[iccid(0), iccid(1)], [iccid(1)]]


def test_set_note(emu: EmulatorServer, client: LattigoClient, audit_path: Path) -> None:
    add_active(emu, 0, 1)
    client.set_note(iccid(0), "note3", "shelf 4")
    assert client.device(iccid(0))["note3"] == "shelf 4"
    req = api_requests(emu, "/note")[0]
    assert req["method"] == "PUT" and req["body"] == {"field_name": "note3", "note": "shelf 4", "id_type": "iccid"}
    with pytest.raises(NotFound):
        client.set_note(iccid(42), "note", "x")
    with pytest.raises(ValueError):
        client.set_note(iccid(0), "note9", "x")
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(e["outcome"], e["status"]) for e in lines] == [("ok", 200), ("error", 404)]


def test_cellular_locate(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    add_active(emu, 1, 1, state="suspended")
    assert client.cellular_locate(iccid(0)).startswith("Success")
    with pytest.raises(LattigoError, match="not active"):
        client.cellular_locate(iccid(1))


def test_upload_request_partial(emu: EmulatorServer, client: LattigoClient) -> None:
    result = client.upload_request(["351234567890123", "12", "3512345678901234"], "ops@example.com", "SKU-1")
    assert result.succeeded == ["351234567890123", "3512345678901234"]
    assert result.failed == {"12": "imei: is not a valid IMEI"}


# --- account, usage, reports -----------------------------------------------------------------------


def test_rate_plans_and_users(emu: EmulatorServer, client: LattigoClient) -> None:
    plans = client.rate_plans()
    assert PLAN in [p["name"] for p in plans] and "monthly_data_allowance_bytes" in plans[0]
    assert client.users() == ["ops-oncall", "fleet-admin"]


def test_daily_and_monthly_data_usages(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 1)
    today = date.fromisoformat(emu.backend.now().date().isoformat())
    for back in range(1, 6):
        emu.record_usage(iccid(0), today - timedelta(days=back), 1000 * back)
    daily = client.daily_data_usages(iccid(0), start_date=today - timedelta(days=10), end_date=today, limit=100)
    assert sorted(d["bytes_used"] for d in daily) == [1000, 2000, 3000, 4000, 5000]
    assert {"date_for", "bytes_used", "sms_used"} <= set(daily[0])
    monthly = client.monthly_data_usages(iccid(0), start_date=today - timedelta(days=40), limit=12)
    assert sum(m["bytes_used"] for m in monthly) == 15000
    with pytest.raises(NotFound):
        client.daily_data_usages(iccid(31))


def test_reports_messages_and_events_on_the_demo_account(emu: EmulatorServer, client: LattigoClient) -> None:
    emu.reset("demo")
    client.per_page = 50
    active = next(d for d in client.devices(state="active") if (d.get("note") or "").startswith("Truck"))
    iccid_ = active["iccid"]
    # The seed's first SIM: a Fleet-East tracker with one CalAmp message a day at 06:00 UTC (its device report
    # 5 s later) for 90 days, and three SMS (3, 14 and 25 days ago: a PING, the device's answer, a PING).
    seeded = demo_account()["sims"][0]
    mobile_id = seeded["imei"][-10:]
    assert (iccid_, active["note"]) == (seeded["iccid"], "Truck 0001")
    today = emu.backend.now().date()
    days = [today - timedelta(days=back) for back in range(30, 0, -1)]  # the 30 whole days before today
    start, end = datetime.combine(days[0], time(0), UTC), datetime.combine(today, time(0), UTC)

    reports = client.device_reports(iccid_, start_date=start, end_date=end, limit=500)
    assert [r["created_at"] for r in reports] == [f"{d}T06:00:05Z" for d in reversed(days)]  # newest first
    messages = client.calamp_messages(iccid_, start, end)
    assert [m["created_at"] for m in messages] == [f"{d}T06:00:00Z" for d in days]
    assert {m["mobile_id"] for m in messages} == {mobile_id}
    assert {m["event_code"] for m in messages} == set(CALAMP_EVENT_CODES)
    of_day = {m["created_at"][:10]: m for m in messages}
    for report in reports:  # each report tells the event and the position of that day's message
        message = of_day[report["created_at"][:10]]
        assert [report[k] for k in ("event_code", "latitude", "longitude", "speed")] == [
            message[k] for k in ("event_code", "latitude", "longitude", "speed")
        ]
    last = client.last_calamp_message(iccid_)
    assert last is not None and last == client.calamp_messages(iccid_, days[-1], emu.backend.now())[-1]

    code = messages[0]["event_code"]
    ours = [m for m in messages if m["event_code"] == code]
    assert 0 < len(ours) < len(messages)
    assert client.calamp_messages(iccid_, start, end, event_code=code) == ours
    events = client.calamp_events(code, start, end)
    assert all(e["event_code"] == code for e in events)
    assert [e for e in events if e["mobile_id"] == mobile_id] == ours  # this SIM's, among the other trackers'
    assert len({e["mobile_id"] for e in events}) > 1

    sms = client.get_sms(iccid_, start_date=days[0], end_date=today, direction="all")
    assert [(s["event_type"], s["message_body"]) for s in sms] == [
        ("MT", "PING"),
        ("MO", "ACK location ok"),
        ("MT", "PING"),
    ]
    assert [s["event_type"] for s in client.get_sms(iccid_, days[0], today, direction="sent")] == ["MT", "MT"]
    with pytest.raises(ValueError):
        client.get_sms(iccid_, direction="sideways")


# --- audit log and counting -----------------------------------------------------------------------------


def test_audit_log_records_every_mutating_call_without_credentials(
    emu: EmulatorServer, client: LattigoClient, audit_path: Path
) -> None:
    add_inventory(emu, 0, 2)
    add_active(emu, 10, 1)
    client.activate([ActivationRow(iccid(0), imei(0)), ActivationRow(iccid(1), imei(1))], PLAN)
    client.change_simstate([iccid(10), iccid(99)], "suspend")
    client.snapshot()  # reads are not audited
    lines = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(e["method"], e["endpoint"]) for e in lines] == [
        ("POST", "v2/device_operations/activation_request"),
        ("PUT", "v2/device_operations/change_simstate"),
    ]
    act, sim = lines
    assert act["devices"] == [iccid(0), iccid(1)] and act["outcome"] == "ok" and act["status"] == 200
    assert act["time"].endswith("Z") and act["duration_ms"] >= 0 and act["rate_plan_name"] == PLAN
    assert sim["outcome"] == "partial" and sim["failures"] == {iccid(99): "Error: Device does not exist."}
    raw = audit_path.read_text()
    assert EMULATOR_API_KEY not in raw and EMULATOR_KEY_NAME not in raw


def test_stats_count_requests_per_endpoint(emu: EmulatorServer, client: LattigoClient) -> None:
    add_active(emu, 0, 3)
    client.per_page = 2
    emu.set_faults(fail_next=[{"path": "/v2/users", "status": 429, "count": 1}])
    client.snapshot()
    client.users()
    stats = client.stats.as_dict()
    assert stats["requests"] == {"GET v2/devices": 2, "GET v2/users": 2}
    assert stats["retries"] == {"GET v2/users": 1}
    assert stats["total_requests"] == len(emu.requests_log()) == 4
    client.stats.reset()
    assert client.stats.total_requests == 0
