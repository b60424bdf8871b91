"""Retrieve Daily Usage as Verizon serves it: a page with more data comes back HTTP 202 (``hasMoreData: true``),
the last page 200. Verizon's published client models it so; the contract document shows only the 200 case.

Against a stub server (the exact statuses, bodies that are not JSON) and against the emulator, whose
``thingspace_more_data_status`` setting answers such pages 202 (Verizon's way, the default) or 200 (the
document's).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from lattigo_fleet.client import ThingSpaceClient, ThingSpaceError
from tests.client.conftest import add_active, api_requests
from tests.client.stub import Reply, Stub, StubRequest, start_stub

ICCID = "89148000000000000001"


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub, server = start_stub()
    yield stub
    server.shutdown()
    server.server_close()


def _record(day: str, nbytes: int) -> dict[str, Any]:
    return {"bytesUsed": nbytes, "smsUsed": 0, "timestamp": f"{day}T00:00:00Z", "source": "Usage Feed"}


PAGES = {  # earliest asked → (status, body): the first page 202 with more data, the last one 200
    "2024-03-01T00:00:00Z": (
        202,
        {"hasMoreData": True, "usageHistory": [_record("2024-03-01", 100), _record("2024-03-02", 200)]},
    ),
    "2024-03-02T00:00:00Z": (
        200,
        {"hasMoreData": False, "usageHistory": [_record("2024-03-02", 200), _record("2024-03-03", 300)]},
    ),
}


def _thingspace(stub: Stub, usage: Any) -> None:
    """Tokens as the auth facts have them (200), and ``usage(request) -> reply`` for the usage endpoint."""

    def handler(req: StubRequest) -> Reply:
        if req.path.endswith("/oauth2/token"):
            return 200, {}, {"access_token": "api-token", "token_type": "bearer", "expires_in": 3600}
        if req.path.endswith("/session/login"):
            return 200, {}, {"sessionToken": "session-token"}
        reply: Reply = usage(req)
        return reply

    stub.handler = handler


def _client(stub: Stub) -> ThingSpaceClient:
    return ThingSpaceClient(stub.base_url, "app-key", "app-secret", "user", "password", max_retries=0, timeout=5)


def test_a_page_answered_202_with_more_data_is_read_and_followed(stub: Stub) -> None:
    def usage(req: StubRequest) -> Reply:
        status, body = PAGES[req.body["earliest"]]
        return status, {}, body

    _thingspace(stub, usage)
    with _client(stub) as ts:
        records = ts.daily_usage(ICCID, date(2024, 3, 1), date(2024, 3, 3))
    assert [(r.day.isoformat(), r.bytes_used) for r in records] == [
        ("2024-03-01", 100),
        ("2024-03-02", 200),
        ("2024-03-03", 300),
    ]
    assert [r.body["earliest"] for r in stub.requests if r.path.endswith("/usage/actions/list")] == list(PAGES)


@pytest.mark.parametrize("status", [200, 201, 202, 203])
def test_any_2xx_page_with_a_json_body_is_a_page(stub: Stub, status: int) -> None:
    _thingspace(stub, lambda req: (status, {}, {"hasMoreData": False, "usageHistory": [_record("2024-03-01", 7)]}))
    with _client(stub) as ts:
        assert [r.bytes_used for r in ts.daily_usage(ICCID, date(2024, 3, 1), date(2024, 3, 1))] == [7]


@pytest.mark.parametrize(("status", "body"), [(202, b"<html>accepted</html>"), (200, b""), (204, b"")])
def test_a_2xx_without_json_is_a_clear_error(stub: Stub, status: int, body: bytes) -> None:
    _thingspace(stub, lambda req: (status, {}, body))
    with _client(stub) as ts, pytest.raises(ThingSpaceError) as info:
        ts.daily_usage(ICCID, date(2024, 3, 1), date(2024, 3, 1))
    assert info.value.status == status
    assert "not JSON" in str(info.value)


def test_the_token_endpoint_stays_strict_about_200(stub: Stub) -> None:
    """OAuth2 client credentials answer 200 (RFC 6749 §5.1); the auth facts name no other success."""

    def handler(req: StubRequest) -> Reply:
        return 202, {}, {"access_token": "api-token", "expires_in": 3600}

    stub.handler = handler
    with _client(stub) as ts, pytest.raises(ThingSpaceError) as info:
        ts.daily_usage(ICCID, date(2024, 3, 1), date(2024, 3, 1))
    assert info.value.status == 202 and info.value.endpoint == "api/ts/v1/oauth2/token"


# --- against the emulator ------------------------------------------------------------------------------------

START = date(2024, 3, 1)


def _plant(emu: Any, days: int) -> tuple[str, dict[date, int]]:
    sim = add_active(emu, 0, 1)[0]
    expected = {START + timedelta(days=n): 5_000 + n for n in range(days)}
    for day, nbytes in expected.items():
        emu.record_usage(sim, day, nbytes)
    return sim, expected


@pytest.mark.parametrize(("setting", "more_status"), [({}, 202), ({"thingspace_more_data_status": 200}, 200)])
def test_every_page_is_read_whichever_status_the_emulator_gives_pages_with_more_data(
    emu: Any, ts: ThingSpaceClient, setting: dict[str, int], more_status: int
) -> None:
    sim, expected = _plant(emu, 7)
    emu.set_faults(thingspace_page_days=3, **setting)
    records = ts.daily_usage(sim, START, START + timedelta(days=6))
    assert {r.day: r.bytes_used for r in records} == expected
    statuses = [p["status"] for p in api_requests(emu, "/usage/actions/list")]
    assert statuses == [more_status, more_status, 200]  # 3 + 3 days with more to come, then the last day
