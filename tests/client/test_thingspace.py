"""Contract tests of ThingSpaceClient over real HTTP against the emulator's ThingSpace surface."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests

from emulator.server import EmulatorServer
from lattigo_fleet.client import (
    AuthenticationError,
    ThingSpaceAuthError,
    ThingSpaceClient,
    ThingSpaceError,
    ThingSpaceLoginLocked,
)
from tests.client.conftest import Clock, add_active, api_requests, iccid
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME

START = date(2024, 3, 1)


def _record_days(emu: EmulatorServer, sim: str, days: int, first: date = START) -> dict[date, int]:
    expected: dict[date, int] = {}
    for n in range(days):
        day = first + timedelta(days=n)
        expected[day] = 1_000_000 + n * 1111
        emu.record_usage(sim, day, expected[day], sms=n % 3)
    return expected


def _usage_posts(emu: EmulatorServer) -> list[dict[str, Any]]:
    return api_requests(emu, "/usage/actions/list")


def test_daily_usage_follows_has_more_data_without_duplicates_or_gaps(
    emu: EmulatorServer, ts: ThingSpaceClient
) -> None:
    sim = add_active(emu, 0, 1)[0]
    expected = _record_days(emu, sim, 10)
    emu.set_faults(thingspace_page_days=3, thingspace_more_data_status=200)  # the statuses below are 200s
    records = ts.daily_usage(sim, START, START + timedelta(days=9))
    assert [r.day for r in records] == sorted(expected)
    assert {r.day: r.bytes_used for r in records} == expected
    assert records[1].sms_used == 1 and records[1].mo_sms == 1 and records[1].service_plan
    posts = _usage_posts(emu)
    assert len(posts) >= 4 and all(p["status"] == 200 for p in posts)
    assert posts[0]["body"]["deviceId"] == {"id": sim, "kind": "iccid"}
    assert posts[0]["body"]["earliest"] == "2024-03-01T00:00:00Z"


def test_two_records_for_one_day_are_kept_and_summed(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    expected = _record_days(emu, sim, 7)
    emu.set_faults(thingspace_page_days=2, thingspace_duplicate_days=True)
    records = ts.daily_usage(sim, START, START + timedelta(days=6))
    assert len(records) == 14
    by_day = ts.daily_usage_by_day(sim, START, START + timedelta(days=6))
    assert list(by_day) == sorted(expected)
    assert {d: agg.bytes_used for d, agg in by_day.items()} == expected
    assert all(agg.records == 2 for agg in by_day.values())
    assert by_day[START + timedelta(days=1)].sms_used == 1


def test_one_day_per_page_still_terminates_without_gaps(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    expected = _record_days(emu, sim, 4)
    emu.set_faults(thingspace_page_days=1)
    assert {r.day: r.bytes_used for r in ts.daily_usage(sim, START, START + timedelta(days=3))} == expected


def test_tokens_are_cached_across_calls(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    _record_days(emu, sim, 2)
    ts.daily_usage(sim, START, START + timedelta(days=1))
    ts.daily_usage(sim, START, START + timedelta(days=1))
    assert len(api_requests(emu, "/oauth2/token")) == 1
    assert len(api_requests(emu, "/session/login")) == 1
    assert ts.logins == 1 and ts.token_requests == 1


def test_session_expiring_halfway_through_paging_is_renewed_once(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    expected = _record_days(emu, sim, 9)
    emu.set_faults(thingspace_page_days=3, thingspace_more_data_status=200)  # the statuses below are 200s
    pages = {"n": 0}

    def expire_after_first_page(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        if (resp.request.url or "").endswith("/usage/actions/list") and resp.status_code == 200:
            pages["n"] += 1
            if pages["n"] == 1:
                requests.post(emu.base_url + "/_emulator/thingspace/expire-sessions", timeout=5)

    ts._session.hooks["response"].append(expire_after_first_page)
    records = ts.daily_usage(sim, START, START + timedelta(days=8))
    assert {r.day: r.bytes_used for r in records} == expected
    assert ts.logins == 2
    statuses = [p["status"] for p in _usage_posts(emu)]
    assert statuses[:3] == [200, 401, 200] and statuses.count(401) == 1


def test_session_expiring_again_right_after_renewal_is_an_error(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    _record_days(emu, sim, 2)
    ts.session_token()

    def always_expire(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        if (resp.request.url or "").endswith("/session/login"):
            requests.post(emu.base_url + "/_emulator/thingspace/expire-sessions", timeout=5)

    requests.post(emu.base_url + "/_emulator/thingspace/expire-sessions", timeout=5)
    ts._session.hooks["response"].append(always_expire)
    with pytest.raises(ThingSpaceError) as info:
        ts.daily_usage(sim, START, START + timedelta(days=1))
    assert info.value.code == "401" and "expired" in str(info.value)
    assert ts.logins == 2  # the first login plus exactly one renewal


def test_api_token_is_renewed_when_it_expires(emu: EmulatorServer, ts: ThingSpaceClient, clock: Clock) -> None:
    sim = add_active(emu, 0, 1)[0]
    _record_days(emu, sim, 1)
    ts.daily_usage(sim, START, START)
    clock.now += 3600  # our cache says it is stale: ask again before using it
    ts.daily_usage(sim, START, START)
    assert ts.token_requests == 2
    # The server drops it early: the request is refused once, the token fetched again, the call succeeds.
    requests.post(emu.base_url + "/_emulator/thingspace/expire-tokens", timeout=5)
    assert len(ts.daily_usage(sim, START, START)) == 1
    assert ts.token_requests == 3


def test_login_refused_on_credentials_is_never_retried(emu: EmulatorServer) -> None:
    bad = ThingSpaceClient(
        emu.base_url,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        EMULATOR_KEY_NAME,
        "wrong-password-123",
        sleep=lambda s: None,
    )
    for _ in range(3):
        with pytest.raises(ThingSpaceAuthError) as info:
            bad.daily_usage(iccid(0), START, START)
    assert isinstance(info.value, AuthenticationError)
    assert info.value.code == "401" and "wrong-password-123" not in str(info.value)
    assert len(api_requests(emu, "/session/login")) == 1


def test_locked_login_is_reported_as_such(emu: EmulatorServer) -> None:
    tok = requests.post(
        emu.base_url + "/api/ts/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(EMULATOR_KEY_NAME, EMULATOR_API_KEY),
        timeout=5,
    ).json()["access_token"]
    for _ in range(5):
        requests.post(
            emu.base_url + "/api/m2m/v1/session/login",
            json={"username": EMULATOR_KEY_NAME, "password": "nope"},
            headers={"Authorization": f"Bearer {tok}"},
            timeout=5,
        )
    ts = ThingSpaceClient(
        emu.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, EMULATOR_KEY_NAME, EMULATOR_API_KEY, sleep=lambda s: None
    )
    with pytest.raises(ThingSpaceLoginLocked) as info:
        ts.session_token()
    assert info.value.status == 403 and "locked" in str(info.value)


def test_wrong_app_credentials(emu: EmulatorServer) -> None:
    ts = ThingSpaceClient(emu.base_url, "nobody", "nothing-here", "u", "p", sleep=lambda s: None)
    with pytest.raises(ThingSpaceAuthError) as info:
        ts.api_token()
    assert info.value.status == 401 and "nothing-here" not in str(info.value)


def test_unknown_device_is_a_typed_error_with_the_code(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    with pytest.raises(ThingSpaceError) as info:
        ts.daily_usage(iccid(404), START, START)
    assert info.value.code == "404" and iccid(404) in str(info.value)


def test_429_and_5xx_on_usage_are_retried(emu: EmulatorServer, ts: ThingSpaceClient, clock: Clock) -> None:
    sim = add_active(emu, 0, 1)[0]
    _record_days(emu, sim, 2)
    emu.set_faults(
        fail_next=[
            {"path": "/api/m2m/v1/devices/usage/actions/list", "status": 429, "count": 1, "retry_after": 2},
            {"path": "/api/m2m/v1/devices/usage/actions/list", "status": 503, "count": 1},
        ]
    )
    assert len(ts.daily_usage(sim, START, START + timedelta(days=1))) == 2
    assert 2.0 in clock.waits
    assert [p["status"] for p in _usage_posts(emu)] == [429, 503, 200]


def test_datetimes_and_strings_are_accepted(emu: EmulatorServer, ts: ThingSpaceClient) -> None:
    sim = add_active(emu, 0, 1)[0]
    expected = _record_days(emu, sim, 3)
    a = ts.daily_usage(sim, datetime(2024, 3, 1, tzinfo=UTC), "2024-03-03T00:00:00Z")
    assert {r.day: r.bytes_used for r in a} == expected
