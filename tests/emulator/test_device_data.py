"""Per-device data on the demo seed: get_sms, CalAmp messages, device reports, data usages, notes, locate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from emulator.seeds import demo_account
from emulator.server import EmulatorServer
from tests.emulator.helpers import Api, fixture, utc_today

DEMO_TRACKER = "36524"  # the documents' example device name exists in the demo seed


@pytest.fixture(scope="module")
def demo(emulator: EmulatorServer) -> Iterator[Api]:
    emulator.reset("demo")
    yield Api(emulator.base_url, emulator.auth)
    emulator.reset("empty")


def test_demo_seed_matches_demo_account(demo: Api) -> None:
    data = demo_account()
    names = []
    page = "1"
    while page:
        resp = demo.get("/v2/devices", params={"per_page": 1000, "page": page, "details": "true"})
        names += resp.json()
        page = resp.headers["X-Next-Page"]
    assert len(names) == 300
    by_iccid = {d["iccid"]: d for d in names}
    for sim in data["sims"]:
        live = by_iccid[sim["iccid"]]
        assert live["device_name"] == sim["device_name"]
        assert live["cost_center"] == sim["cost_center"]
        assert live["imei"] == sim["imei"]
    assert len({s["cost_center"] for s in data["sims"]}) == 5
    assert len(data["inventory"]) == 20
    plans = [p["name"] for p in demo.get("/v2/rate_plans").json()]
    assert "ACME Co 5mb Rate Plan" in plans and "ACME Co 10MB Plan" in plans
    assert "ops-oncall" in demo.get("/v2/users").json()
    assert all(s["iccid"].startswith("8901") and len(s["iccid"]) == 20 for s in data["sims"])
    assert all(len(s["imei"]) == 15 for s in data["sims"])
    assert demo_account() == data  # deterministic


def test_get_sms(demo: Api) -> None:
    all_sms = demo.get("/v2/devices/36501/get_sms").json()
    assert all_sms
    keys = {
        "event_id",
        "event_status",
        "event_timestamp",
        "event_type",
        "imsi",
        "message_body",
        "msisdn",
        "report_timestamp",
        "failure_reason",
    }
    assert all(set(m) == keys for m in all_sms)
    sent = demo.get("/v2/devices/36501/get_sms", params={"direction": "sent"}).json()
    received = demo.get("/v2/devices/36501/get_sms", params={"direction": "received"}).json()
    assert len(sent) + len(received) == len(all_sms) and sent and received
    day = all_sms[0]["event_timestamp"][:10]
    # only the date is used; the time component is ignored
    one_day = demo.get(
        "/v2/devices/36501/get_sms", params={"start_date": day + "T23:59:59Z", "end_date": day + "T00:00:00"}
    ).json()
    assert one_day and all(m["event_timestamp"].startswith(day) for m in one_day)
    # the older edition's example query (a day with nothing)
    assert demo.get("/v2/devices/36501/get_sms", params=fixture("curl_examples.json")["get_sms_query"]).json() == []
    assert demo.get("/v2/devices/36501/get_sms", params={"direction": "sideways"}).status_code == 400


def test_calamp_messages_range_event_code_and_paging(demo: Api) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(days=20)).date().isoformat()
    resp = demo.get(
        f"/v2/devices/{DEMO_TRACKER}/calamp_messages",
        params={"start_date": start, "end_date": now.date().isoformat(), "per_page": 5},
    )
    assert resp.status_code == 200
    msgs = resp.json()
    assert len(msgs) == 5 and int(resp.headers["X-Total"]) >= 20
    assert all(m["created_at"] >= start for m in msgs)
    for field in (
        "message_id",
        "mobile_id",
        "latitude",
        "longitude",
        "event_code",
        "rssi",
        "accumulator15",
        "time_of_fix",
        "report_generated_at",
    ):
        assert field in msgs[0]
    total = int(resp.headers["X-Total"])
    code = msgs[0]["event_code"]
    only = demo.get(
        f"/v2/devices/{DEMO_TRACKER}/calamp_messages", params={"start_date": start, "event_code": code, "per_page": 100}
    ).json()
    assert only and all(m["event_code"] == code for m in only) and len(only) < total
    # defaults: the last month
    assert demo.get(f"/v2/devices/{DEMO_TRACKER}/calamp_messages").status_code == 200


def test_last_calamp_message(demo: Api) -> None:
    last = demo.get(f"/v2/devices/{DEMO_TRACKER}/last_calamp_message").json()
    assert isinstance(last, dict) and last["message_id"]
    everything = demo.get(
        f"/v2/devices/{DEMO_TRACKER}/calamp_messages", params={"start_date": "2000-01-01", "per_page": 1000}
    ).json()
    assert last["message_id"] == max(everything, key=lambda m: (m["created_at"], m["message_id"]))["message_id"]
    # a device with no messages: an empty array
    assert demo.get("/v2/devices/36790/last_calamp_message").json() == []


def test_calamp_events_across_devices(demo: Api) -> None:
    resp = demo.get(
        "/v2/device_operations/calamp_events",
        params={"event_code": 20, "start_date": (utc_today() - timedelta(days=10)).isoformat(), "per_page": 50},
    )
    events = resp.json()
    assert events and all(m["event_code"] == 20 for m in events)
    assert len({m["mobile_id"] for m in events}) > 1
    suspended = demo.get(
        "/v2/device_operations/calamp_events",
        params={"event_code": 20, "state": "suspended", "start_date": "2000-01-01", "per_page": 1000},
    ).json()
    assert len(suspended) < int(
        demo.get("/v2/device_operations/calamp_events", params={"event_code": 20, "start_date": "2000-01-01"}).headers[
            "X-Total"
        ]
    )


def test_device_reports_limit_default_and_window(demo: Api) -> None:
    one = demo.get(f"/v2/devices/{DEMO_TRACKER}/device_reports")
    assert len(one.json()) == 1  # limit defaults to 1: the newest
    many = demo.get(f"/v2/devices/{DEMO_TRACKER}/device_reports", params={"limit": 50, "per_page": 100}).json()
    assert 28 <= len(many) <= 32  # default window: one month ago to now
    assert many[0]["id"] == one.json()[0]["id"]
    assert [r["created_at"] for r in many] == sorted((r["created_at"] for r in many), reverse=True)
    for field in ("id", "latitude", "battery", "voltage", "rssi", "type", "fuel_level", "time_of_fix"):
        assert field in many[0]
    paged = demo.get(f"/v2/devices/{DEMO_TRACKER}/device_reports", params={"limit": 50, "per_page": 10, "page": 2})
    assert paged.json() == many[10:20] and paged.headers["X-Total"] == str(len(many))


def test_daily_and_monthly_usages(demo: Api) -> None:
    daily = demo.get("/v2/devices/36501/daily_data_usages")
    assert len(daily.json()) == 1  # limit defaults to 1
    today = utc_today()
    window = {"start_date": (today - timedelta(days=9)).isoformat(), "end_date": today.isoformat(), "limit": 100}
    days = demo.get("/v2/devices/36501/daily_data_usages", params=window).json()
    assert len(days) == 10
    assert set(days[0]) == {"id", "date_for", "bytes_used", "sms_used"}
    assert days[0]["date_for"] == today.isoformat()
    months = demo.get(
        "/v2/devices/36501/monthly_data_usages",
        params={"start_date": (today - timedelta(days=80)).isoformat(), "limit": 12},
    ).json()
    assert 3 <= len(months) <= 4 and months[0]["date_for"] == today.replace(day=1).isoformat()
    device = demo.get("/v2/devices/36501").json()
    assert device["bytes_used"] == months[0]["bytes_used"]  # bytes_used is this month's
    month_days = demo.get(
        "/v2/devices/36501/daily_data_usages", params={"start_date": today.replace(day=1).isoformat(), "limit": 40}
    ).json()
    assert sum(d["bytes_used"] for d in month_days) == months[0]["bytes_used"]
    assert demo.get("/v2/devices/36501/daily_data_usages", params={"limit": 0}).status_code == 400
    assert (
        demo.get(
            "/v2/devices/36501/daily_data_usages", params={"start_date": "2024-02-02", "end_date": "2024-01-01"}
        ).status_code
        == 400
    )


def test_time_formats_tolerated(demo: Api) -> None:
    """Every form of one instant (midnight UTC five days ago, inside the seeded history) reads the same."""
    day = utc_today() - timedelta(days=5)
    days_from: dict[str, list[str]] = {}
    for start in (
        day.isoformat(),
        f"{day.isoformat()}T00:00:00Z",
        f"{day.isoformat()}T02:00:00+02:00",
        f"{day.isoformat()} 00:00:00",
        day.strftime("%Y%m%d"),
        day.strftime("%Y/%m/%d"),
    ):
        resp = demo.get("/v2/devices/36501/daily_data_usages", params={"start_date": start, "limit": 40})
        assert resp.status_code == 200, start
        days_from[start] = sorted(d["date_for"][:10] for d in resp.json())
    first = days_from[day.isoformat()]
    assert first[0] == day.isoformat()  # from that day on
    assert all(days == first for days in days_from.values()), days_from


def test_note_put_and_post(demo: Api, encoding: str) -> None:
    examples = fixture("curl_examples.json")
    body = examples["note_json"] if encoding == "json" else examples["note_form"]
    resp = demo.put(f"/v2/devices/{DEMO_TRACKER}/note", body, encoding)
    assert resp.status_code == 200 and resp.json() == {DEMO_TRACKER: "Success"}
    assert demo.get(f"/v2/devices/{DEMO_TRACKER}").json()["note"] == examples["note_json"]["note"]
    resp = demo.post(f"/v2/devices/{DEMO_TRACKER}/note", {"field_name": "note2", "note": "x" * 150}, encoding)
    assert resp.json() == {DEMO_TRACKER: "Success"}
    assert demo.get(f"/v2/devices/{DEMO_TRACKER}").json()["note2"] == "x" * 100  # truncated
    iccid = demo.get(f"/v2/devices/{DEMO_TRACKER}").json()["iccid"]
    resp = demo.put(
        f"/v2/devices/{iccid}/note", {"field_name": "note3", "note": "by iccid", "id_type": "iccid"}, encoding
    )
    assert resp.json() == {DEMO_TRACKER: "Success"}  # answered by device_name
    assert (
        demo.put(f"/v2/devices/{DEMO_TRACKER}/note", {"field_name": "note9", "note": "x"}, encoding).status_code == 400
    )
    assert demo.put(f"/v2/devices/{DEMO_TRACKER}/note", {"field_name": "note"}, encoding).status_code == 400


def test_cellular_locate(demo: Api) -> None:
    resp = demo.post("/v2/devices/36501/cellular_locate")
    assert resp.status_code == 200
    answer = resp.json()
    assert answer == {"36501": "Success: Location request submitted to the carrier."}
    iccid = demo.get("/v2/devices/36501").json()["iccid"]
    assert demo.post(f"/v2/devices/{iccid}/cellular_locate?id_type=iccid").json() == answer
    suspended = demo.get("/v2/devices", params={"state": "suspended"}).json()[0]
    assert demo.post(f"/v2/devices/{suspended}/cellular_locate").json() == {
        suspended: "Error: Device is not active; the carrier cannot locate it."
    }
