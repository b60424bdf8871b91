"""Wire behaviours the emulator does not produce on demand, over real HTTP against a scripted stub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lattigo_fleet.client import (
    ActivationRow,
    DeadlineExceeded,
    LattigoClient,
    LattigoConnectionError,
    LattigoError,
    RateLimitBudgetExceeded,
    RateLimited,
    ServerError,
    Unprocessable,
)
from tests.client.conftest import Clock
from tests.client.stub import Reply, Stub, StubRequest, start_stub

KEY, SECRET = "stub-key", "stub-secret-value"


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub, server = start_stub()
    yield stub
    server.shutdown()
    server.server_close()


def _client(stub: Stub, **kw: Any) -> tuple[LattigoClient, list[float]]:
    waits: list[float] = []
    kw.setdefault("max_retries", 3)
    return LattigoClient(stub.base_url, KEY, SECRET, sleep=waits.append, **kw), waits


def _devices(n: int) -> list[dict[str, str]]:
    return [{"device_name": str(1000 + i), "iccid": f"89{i:018d}", "state": "active"} for i in range(n)]


def test_server_capping_per_page_is_followed_with_the_announced_size(stub: Stub) -> None:
    fleet = _devices(23)
    cap = 10

    def handler(req: StubRequest) -> Reply:
        page, per_page = int(req.query.get("page", 1)), min(int(req.query.get("per_page", 25)), cap)
        pages = -(-len(fleet) // per_page)
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total-Pages": str(pages)}
        headers["X-Next-Page"] = str(page + 1) if page < pages else ""
        return 200, headers, fleet[(page - 1) * per_page : page * per_page]

    stub.handler = handler
    client, _ = _client(stub, per_page=1000)
    snap = client.snapshot()
    assert len(snap) == 23
    assert [r.query["page"] for r in stub.requests] == ["1", "2", "3"]
    assert [r.query["per_page"] for r in stub.requests] == ["1000", "10", "10"]


def test_total_pages_without_next_page_header(stub: Stub) -> None:
    fleet = _devices(7)

    def handler(req: StubRequest) -> Reply:
        page = int(req.query["page"])
        return 200, {"X-Page": str(page), "X-Total-Pages": "3"}, fleet[(page - 1) * 3 : page * 3]

    stub.handler = handler
    client, _ = _client(stub, per_page=3)
    assert len(list(client.devices())) == 7
    assert len(stub.requests) == 3


def test_no_pagination_headers_means_one_page(stub: Stub) -> None:
    stub.handler = lambda req: (200, {}, _devices(4))
    client, _ = _client(stub)
    assert len(client.snapshot()) == 4
    assert len(stub.requests) == 1


def test_pagination_that_does_not_advance_is_an_error(stub: Stub) -> None:
    stub.handler = lambda req: (200, {"X-Page": "1", "X-Next-Page": "1"}, _devices(2))
    client, _ = _client(stub)
    with pytest.raises(LattigoError, match="does not advance"):
        client.snapshot()


def test_retry_after_is_obeyed_for_a_post_and_one_above_max_wait_fails_at_once(stub: Stub) -> None:
    calls = {"n": 0}

    def handler(req: StubRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": "7"}, {"error": "slow down"}
        if calls["n"] == 2:
            return 429, {"Retry-After": "9999"}, {"error": "slow down"}
        return 200, {}, {"processed": [], "unprocessed": []}

    stub.handler = handler
    clock = Clock()
    client = LattigoClient(stub.base_url, KEY, SECRET, max_wait=60, sleep=clock.sleep, clock=clock)
    with pytest.raises(RateLimitBudgetExceeded) as info:
        client.activate([ActivationRow("8901" + "0" * 16, "351234567890123")], "plan")
    assert info.value.bound == "retry_budget" and info.value.retry_after == 9999.0
    assert "9999 s is longer than max_wait (60 s)" in str(info.value)
    assert clock.waits == [7.0]  # the 9999 s was not waited, not even in part
    assert calls["n"] == 2


def test_429_without_retry_after_backs_off_and_paces_within_the_budget(stub: Stub) -> None:
    stub.handler = lambda req: (429, {}, {"error": "slow down"})
    clock = Clock()
    client = LattigoClient(
        stub.base_url,
        KEY,
        SECRET,
        max_retries=4,
        backoff_factor=1.0,
        backoff_max=4,
        retry_budget=30,
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(RateLimited) as info:
        client.users()
    assert isinstance(info.value, DeadlineExceeded) and info.value.bound == "retry_budget"
    assert sum(clock.waits) <= 30
    assert len(stub.requests) > 5  # not a fixed 1 + max_retries attempts: as many as the budget allows
    assert all(w >= 0.5 for w in clock.waits[:1]) and max(clock.waits) <= 4
    assert info.value.status == 429
    assert "v2/users" in str(info.value) and SECRET not in str(info.value)


def test_dropped_connection_on_activation_is_recovered_by_reading_back(stub: Stub) -> None:
    """The server applies the activation, then the connection drops before the answer."""
    iccid = "8901" + "1" * 16
    state = {"activated": False}

    def handler(req: StubRequest) -> Reply | None:
        if req.path.endswith("activation_request"):
            state["activated"] = True
            return None
        if req.path.startswith("/v2/devices/"):
            if state["activated"]:
                return 200, {}, {"iccid": iccid, "device_name": "5", "state": "pending_activation"}
            return 404, {}, {"error": "Device not found"}
        return 404, {}, {}

    stub.handler = handler
    client, _ = _client(stub)
    result = client.activate([ActivationRow(iccid, "351234567890123")], "plan")
    assert result.accepted == [iccid] and result.recovered == [iccid] and result.resent == []
    posts = [r for r in stub.requests if r.method == "POST"]
    assert len(posts) == 1


def test_persistent_5xx_on_activation_reports_rows_not_applied(stub: Stub) -> None:
    iccid = "8901" + "2" * 16

    def handler(req: StubRequest) -> Reply:
        if req.path.endswith("activation_request"):
            return 503, {}, {"error": "maintenance"}
        return 404, {}, {"error": "Device not found"}

    stub.handler = handler
    client, _ = _client(stub, max_retries=2)
    result = client.activate([ActivationRow(iccid, "351234567890123")], "plan")
    assert result.accepted == []
    assert "not applied" in result.rejected[iccid] and "HTTP 503" in result.rejected[iccid]
    assert len([r for r in stub.requests if r.method == "POST"]) == 3


def test_activation_failure_that_cannot_be_checked_raises_with_partial_result(stub: Stub) -> None:
    ok, bad = "8901" + "3" * 16, "8901" + "4" * 16

    def handler(req: StubRequest) -> Reply:
        if req.path.endswith("activation_request"):
            if req.body["activation_requests"][0]["iccid"] == ok:
                return 200, {}, {"processed": [{"iccid": ok}], "unprocessed": []}
            return 500, {}, {"error": "boom"}
        return 500, {}, {"error": "reads are down too"}

    stub.handler = handler
    client, _ = _client(stub, chunk_size=1, max_retries=1)
    with pytest.raises(ServerError) as info:
        client.activate([ActivationRow(ok, "351234567890123"), ActivationRow(bad, "351234567890124")], "plan")
    assert info.value.partial_result.accepted == [ok]


def test_connection_refused_is_a_typed_error(stub: Stub) -> None:
    client = LattigoClient("http://127.0.0.1:9", KEY, SECRET, max_retries=1, sleep=lambda s: None, timeout=2)
    with pytest.raises(LattigoConnectionError) as info:
        client.rate_plans()
    assert "v2/rate_plans" in str(info.value) and SECRET not in str(info.value)


def test_422_outside_the_row_endpoints_is_unprocessable_with_its_rows(stub: Stub) -> None:
    body = {
        "processed": [{"iccid": "1"}],
        "unprocessed": [{"device_index": 0, "error": '{"iccid":["bad"]}', "input": {"iccid": "2"}}],
    }
    stub.handler = lambda req: (422, {}, body)
    client, _ = _client(stub)
    with pytest.raises(Unprocessable) as info:
        client.device("2")
    err = info.value
    assert err.processed == [{"iccid": "1"}]
    assert err.unprocessed[0].device_index == 0 and err.unprocessed[0].error == {"iccid": ["bad"]}
    assert err.unprocessed[0].input == {"iccid": "2"}
