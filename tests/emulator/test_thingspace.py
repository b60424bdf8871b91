"""ThingSpace: API token, VZ-M2M session (lifetimes, lock-out) and Retrieve Daily Usage (the sample)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME
from tests.emulator.helpers import Api, fixture

TOKEN = "/api/ts/v1/oauth2/token"
LOGIN = "/api/m2m/v1/session/login"
LOGOUT = "/api/m2m/v1/session/logout"
USAGE = "/api/m2m/v1/devices/usage/actions/list"
SAMPLE_DAYS = {  # the sample's bytes per day (its two records of 2023-10-26 summed)
    "2023-10-25": 105369575,
    "2023-10-26": 64963283 + 54895113,
    "2023-10-27": 816570,
    "2023-10-28": 792821,
    "2023-10-29": 778568,
    "2023-10-30": 789846,
}


class ThingSpace:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def token(self, auth: tuple[str, str] | None = (EMULATOR_KEY_NAME, EMULATOR_API_KEY)) -> requests.Response:
        return self.http.post(self.base + TOKEN, data={"grant_type": "client_credentials"}, auth=auth, timeout=10)

    def bearer(self) -> str:
        resp = self.token()
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    def login(
        self, bearer: str, username: str = EMULATOR_KEY_NAME, password: str = EMULATOR_API_KEY
    ) -> requests.Response:
        return self.http.post(
            self.base + LOGIN,
            json={"username": username, "password": password},
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
        )

    def session(self) -> tuple[str, str]:
        bearer = self.bearer()
        resp = self.login(bearer)
        assert resp.status_code == 200, resp.text
        return bearer, resp.json()["sessionToken"]

    def usage(self, bearer: str, session: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(
            self.base + USAGE,
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session},
        )


@pytest.fixture
def ts(fresh_emulator: EmulatorServer) -> ThingSpace:
    return ThingSpace(fresh_emulator.base_url)


@pytest.fixture
def sample_sim(admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]) -> dict[str, Any]:
    sim = make_sims(1, rate_plan="ACME Co 5mb Rate Plan")[0]
    for day, total in SAMPLE_DAYS.items():
        admin.post(
            "usage", {"iccid": sim["iccid"], "date": day, "bytes": total, "sms": 2 if day == "2023-10-26" else 0}
        )
    return sim


def test_api_token_lifetime_and_reuse(ts: ThingSpace, admin: AdminClient) -> None:
    first = ts.token()
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["access_token"]
    again = ts.token().json()
    assert again["access_token"] == body["access_token"] and again["expires_in"] <= 3600
    admin.post("clock", {"advance_seconds": 3601})
    renewed = ts.token().json()
    assert renewed["access_token"] != body["access_token"]
    assert ts.login(body["access_token"]).status_code == 401  # the old token expired


def test_token_errors(ts: ThingSpace) -> None:
    assert ts.token(auth=None).status_code == 401
    wrong = ts.token(auth=(EMULATOR_KEY_NAME, "nope"))
    assert wrong.status_code == 401 and set(wrong.json()) == {"errorCode", "errorMessage"}
    assert wrong.json()["errorCode"] == "401"
    bad_grant = ts.http.post(
        ts.base + TOKEN, data={"grant_type": "password"}, auth=(EMULATOR_KEY_NAME, EMULATOR_API_KEY), timeout=10
    )
    assert bad_grant.status_code == 400


def test_login_logout_and_session_idle_expiry(ts: ThingSpace, admin: AdminClient, sample_sim: dict[str, Any]) -> None:
    bearer, session = ts.session()
    body = fixture("thingspace_usage_request.json")
    body["deviceId"]["id"] = sample_sim["iccid"]
    assert ts.usage(bearer, session, body).status_code == 200
    admin.post("clock", {"advance_seconds": 19 * 60})
    assert ts.usage(bearer, session, body).status_code == 200  # used: stays valid
    admin.post("clock", {"advance_seconds": 19 * 60})
    assert ts.usage(bearer, session, body).status_code == 200
    admin.post("clock", {"advance_seconds": 21 * 60})
    expired = ts.usage(bearer, session, body)
    assert expired.status_code == 401 and "session" in expired.json()["errorMessage"].lower()
    assert "expired" in expired.json()["errorMessage"].lower()
    bearer = ts.bearer()  # the API token also aged past its hour
    _, session = ts.session()
    assert ts.usage(bearer, session, body).status_code == 200
    admin.post("thingspace/expire-sessions")
    assert ts.usage(bearer, session, body).status_code == 401
    _, session = ts.session()
    out = ts.http.post(
        ts.base + LOGOUT, headers={"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session}, timeout=10
    )
    assert out.status_code == 200
    assert ts.usage(bearer, session, body).status_code == 401


def test_five_failed_logins_lock_the_account(ts: ThingSpace, admin: AdminClient) -> None:
    bearer = ts.bearer()
    for n in range(5):
        resp = ts.login(bearer, password="wrong")
        assert resp.status_code == 401, n
        assert "lock" not in resp.json()["errorMessage"].lower()
    locked = ts.login(bearer)  # even the right password now
    assert locked.status_code == 403 and "locked" in locked.json()["errorMessage"]
    admin.post("thingspace/unlock")
    assert ts.login(bearer).status_code == 200


def test_a_success_resets_the_failure_count(ts: ThingSpace) -> None:
    bearer = ts.bearer()
    for _ in range(4):
        ts.login(bearer, password="wrong")
    assert ts.login(bearer).status_code == 200
    for _ in range(4):
        ts.login(bearer, password="wrong")
    assert ts.login(bearer).status_code == 200


def test_retrieve_daily_usage_matches_the_sample(ts: ThingSpace, sample_sim: dict[str, Any]) -> None:
    bearer, session = ts.session()
    body = fixture("thingspace_usage_request.json")
    body["deviceId"]["id"] = sample_sim["iccid"]
    resp = ts.usage(bearer, session, body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    sample = fixture("thingspace_usage_response.json")
    assert set(got) == set(sample)
    assert got["hasMoreData"] is False
    assert got["deviceId"] == {"id": sample_sim["iccid"], "kind": "iccid"}
    record_keys = set(sample["usageHistory"][0])
    assert all(set(r) == record_keys for r in got["usageHistory"])
    assert {r["timestamp"][:10]: r["bytesUsed"] for r in got["usageHistory"]} == SAMPLE_DAYS
    day26 = next(r for r in got["usageHistory"] if r["timestamp"].startswith("2023-10-26"))
    assert day26["extendedAttributes"] == [{"key": "MoSms", "value": "2"}, {"key": "MtSms", "value": "0"}]
    assert day26["smsUsed"] == 2 and day26["source"] == "Usage Feed"
    assert day26["servicePlan"] == "ACME Co 5mb Rate Plan"


def test_duplicate_day_records_like_the_sample(ts: ThingSpace, admin: AdminClient, sample_sim: dict[str, Any]) -> None:
    admin.faults(thingspace_duplicate_days=True)
    bearer, session = ts.session()
    body = fixture("thingspace_usage_request.json")
    body["deviceId"]["id"] = sample_sim["iccid"]
    records = ts.usage(bearer, session, body).json()["usageHistory"]
    assert len(records) == 12
    totals: dict[str, int] = {}
    for r in records:
        totals[r["timestamp"][:10]] = totals.get(r["timestamp"][:10], 0) + r["bytesUsed"]
    assert totals == SAMPLE_DAYS


def test_has_more_data_paging(
    ts: ThingSpace, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    sim = make_sims(1)[0]
    start = date(2024, 1, 1)
    for k in range(70):
        admin.post("usage", {"iccid": sim["iccid"], "date": (start + timedelta(days=k)).isoformat(), "bytes": k + 1})
    admin.faults(thingspace_page_days=31)
    bearer, session = ts.session()
    cursor, seen, pages = "2024-01-01T00:00:00Z", {}, 0
    while True:
        body = {"deviceId": {"id": sim["iccid"], "kind": "iccid"}, "earliest": cursor, "latest": "2024-12-31T00:00:00Z"}
        data = ts.usage(bearer, session, body).json()
        pages += 1
        for r in data["usageHistory"]:
            seen[r["timestamp"]] = r["bytesUsed"]
        if not data["hasMoreData"]:
            break
        cursor = data["usageHistory"][-1]["timestamp"]  # continue from the last record (inclusive)
    assert pages == 3 and len(seen) == 70 and sum(seen.values()) == sum(range(1, 71))


def test_usage_skew_fault_makes_cross_checks_disagree(
    ts: ThingSpace, admin: AdminClient, api: Api, sample_sim: dict[str, Any]
) -> None:
    admin.faults(thingspace_usage_skew=0.1)
    bearer, session = ts.session()
    body = fixture("thingspace_usage_request.json")
    body["deviceId"]["id"] = sample_sim["iccid"]
    got = {r["timestamp"][:10]: r["bytesUsed"] for r in ts.usage(bearer, session, body).json()["usageHistory"]}
    assert got == {d: round(b * 1.1) for d, b in SAMPLE_DAYS.items()}
    lattigo = api.get(
        f"/v2/devices/{sample_sim['device_name']}/daily_data_usages",
        params={"start_date": "2023-10-25", "end_date": "2023-10-30", "limit": 10},
    ).json()
    assert {u["date_for"]: u["bytes_used"] for u in lattigo} == SAMPLE_DAYS


def test_usage_errors(ts: ThingSpace, sample_sim: dict[str, Any]) -> None:
    bearer, session = ts.session()
    good = {
        "deviceId": {"id": sample_sim["iccid"], "kind": "iccid"},
        "earliest": "2023-10-25T00:00:00Z",
        "latest": "2023-10-30T00:00:00Z",
    }
    no_bearer = ts.http.post(ts.base + USAGE, json=good, headers={"VZ-M2M-Token": session}, timeout=10)
    assert no_bearer.status_code == 401 and no_bearer.json()["errorCode"] == "401"
    assert ts.usage("not-a-token", session, good).status_code == 401
    assert ts.usage(bearer, "not-a-session", good).status_code == 401
    for bad in (
        {**good, "deviceId": {"id": "123", "kind": "imei"}},
        {**good, "earliest": None},
        {**good, "latest": "whenever"},
        {**good, "earliest": "2023-11-01T00:00:00Z"},
        {"earliest": good["earliest"], "latest": good["latest"]},
    ):
        resp = ts.usage(bearer, session, bad)
        assert resp.status_code == 400, bad
        assert set(resp.json()) == {"errorCode", "errorMessage"} and resp.json()["errorCode"] == "400"
    unknown = ts.usage(bearer, session, {**good, "deviceId": {"id": "89000000000000000000", "kind": "iccid"}})
    assert unknown.status_code == 404
    other = ts.usage(bearer, session, {**good, "deviceId": {"id": "89019900000000000017", "kind": "iccid"}})
    assert other.status_code == 404  # another account's SIM is not ours to read
    form = ts.http.post(
        ts.base + USAGE,
        data={"earliest": "x"},
        timeout=10,
        headers={"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session},
    )
    assert form.status_code == 400  # Content-Type must be application/json


def test_thingspace_rate_limit_and_log(ts: ThingSpace, admin: AdminClient, frozen_clock: float) -> None:
    # the clock stands still, so the bucket (1 token) does not refill between the logins however slow they are
    bearer = ts.bearer()
    admin.faults(rate_limit_per_second=1)
    statuses = [ts.login(bearer).status_code for _ in range(4)]
    assert 429 in statuses
    entries = [e for e in admin.requests() if e["path"].startswith("/api/")]
    assert [e["path"] for e in entries][:2] == [TOKEN, LOGIN]
    text = str(entries)
    assert EMULATOR_API_KEY not in text and bearer not in text
    assert entries[1]["body"]["password"] == "[redacted]"
