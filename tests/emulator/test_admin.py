"""The admin API: request log, SIMs, faults, tick, reset, usage, clock; and the OpenAPI document."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import requests

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY
from tests.emulator.helpers import Api, iccid, imei, utc_today


def test_request_log_records_both_encodings_without_credentials(api: Api, admin: AdminClient) -> None:
    api.get("/v2/devices", params={"details": "true", "per_page": 5})
    api.put("/v2/device_operations/change_cost_center", {"device_names": ["1", "2"], "cost_center": "A"}, "json")
    api.put("/v2/device_operations/change_cost_center", {"device_names": ["1", "2"], "cost_center": "A"}, "form")
    requests.get(api.base + "/v2/users", timeout=10)  # 401
    api.get("/v2/nope")
    log = admin.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/v2/devices", 200),
        ("PUT", "/v2/device_operations/change_cost_center", 200),
        ("PUT", "/v2/device_operations/change_cost_center", 200),
        ("GET", "/v2/users", 401),
        ("GET", "/v2/nope", 404),
    ]
    assert all(set(e) == {"method", "path", "query", "body", "status"} for e in log)
    assert log[0]["query"] == {"details": "true", "per_page": "5"} and log[0]["body"] is None
    assert log[1]["body"] == log[2]["body"] == {"device_names": ["1", "2"], "cost_center": "A"}
    assert EMULATOR_API_KEY not in str(log) and "Authorization" not in str(log)
    # admin calls are not logged; DELETE clears
    assert requests.delete(api.base + "/_emulator/requests", timeout=10).json() == {"cleared": 5}
    assert admin.requests() == []


def test_admin_sims_inventory_and_drift(api: Api, admin: AdminClient) -> None:
    made = admin.add_sims(
        [
            {"iccid": iccid(1), "imei": imei(1)},
            {
                "iccid": iccid(2),
                "imei": imei(2),
                "state": "active",
                "cost_center": "East",
                "note1": "n1",
                "rate_plan": "ACME Co 10MB Plan",
            },
        ],
    )
    assert made[0]["state"] == "inventory" and made[1]["state"] == "active"
    view = admin.sims()
    assert set(view) == {iccid(1), iccid(2)}
    live = view[iccid(2)]
    assert live["rate_plan"] == "ACME Co 10MB Plan" and live["usage_limit"] is None
    assert live["account"] == "primary" and live["note1"] == "n1"
    # out-of-band change (drift)
    admin.add_sims([{"iccid": iccid(2), "state": "suspended", "cost_center": "West", "note": "changed"}])
    device = api.get(f"/v2/devices/{live['device_name']}").json()
    assert (device["state"], device["cost_center"], device["note"]) == ("suspended", "West", "changed")
    assert len(admin.sims(account="all")) == 4  # plus the other account's two
    assert set(admin.sims(account="other")) == {"89019900000000000017", "89019900000000000025"}
    assert set(admin.sims(state="inventory")) == {iccid(1)}
    bad = requests.post(api.base + "/_emulator/sims", json={"sims": [{"iccid": "12"}]}, timeout=10)
    assert bad.status_code == 400
    bad = requests.post(api.base + "/_emulator/sims", json={"sims": [{"iccid": iccid(3), "state": "gone"}]}, timeout=10)
    assert bad.status_code == 400


def test_faults_settings_roundtrip(admin: AdminClient) -> None:
    settings = admin.get("faults")
    assert settings["rate_limit_per_second"] is None and settings["error_rate"] == 0 and settings["fail_next"] == []
    admin.faults(rate_limit_per_second=5, latency_ms=1)
    admin.faults(error_rate=0.25)  # partial update keeps the rest
    settings = admin.get("faults")
    assert (settings["rate_limit_per_second"], settings["latency_ms"], settings["error_rate"]) == (5, 1, 0.25)
    cleared = requests.delete(admin.base + "/_emulator/faults", timeout=10).json()
    assert cleared["rate_limit_per_second"] is None and cleared["error_rate"] == 0
    assert requests.post(admin.base + "/_emulator/faults", json={"error_rate": 2}, timeout=10).status_code == 400
    assert requests.post(admin.base + "/_emulator/faults", json={"explode": 1}, timeout=10).status_code == 400


def test_fail_next_by_path_glob_and_method(api: Api, admin: AdminClient) -> None:
    admin.faults(
        fail_next=[
            {"path": "/v2/devices/*", "status": 503, "count": 2},
            {"path": "v2/device_operations/change_simstate", "status": 500, "count": 1, "method": "PUT"},
        ]
    )
    assert api.get("/v2/devices").status_code == 200  # not matched by the glob
    assert api.get("/v2/devices/123").status_code == 503
    assert api.get("/v2/devices/123/get_sms").status_code == 503
    assert api.get("/v2/devices/123").status_code == 404  # count used up
    assert (
        api.put("/v2/device_operations/change_simstate", {"device_names": ["1"], "state": "suspend"}).status_code == 500
    )
    assert (
        api.put("/v2/device_operations/change_simstate", {"device_names": ["1"], "state": "suspend"}).status_code == 200
    )
    assert admin.get("faults")["fail_next"] == []
    assert [e["status"] for e in admin.requests()] == [200, 503, 503, 404, 500, 200]


def test_error_rate_and_latency(api: Api, admin: AdminClient) -> None:
    admin.faults(error_rate=1.0)
    resp = api.get("/v2/users")
    assert resp.status_code == 500 and resp.json()["error"]
    admin.faults(error_rate=0.5)
    statuses = {api.get("/v2/users").status_code for _ in range(40)}
    assert statuses == {200, 500}
    admin.faults(error_rate=0, latency_ms=150)
    t0 = time.monotonic()
    api.get("/v2/users")
    assert time.monotonic() - t0 >= 0.15
    t0 = time.monotonic()
    admin.get("faults")  # the admin API is never slowed down
    assert time.monotonic() - t0 < 0.15


def test_reset_wipes_state_faults_and_log(
    api: Api, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    make_sims(3)
    admin.faults(latency_ms=5)
    admin.post("clock", {"advance_seconds": 100})
    api.get("/v2/devices")
    out = admin.post("reset", {"seed": "demo"})
    assert out["seed"] == "demo"
    assert admin.requests() == [] and admin.get("faults")["latency_ms"] == 0
    assert admin.get("clock")["offset_seconds"] == 0
    assert len(admin.sims()) == 320
    admin.post("reset")  # back to the server's own seed
    assert admin.sims() == {}
    assert requests.post(admin.base + "/_emulator/reset", json={"seed": "full"}, timeout=10).status_code == 400


def test_usage_endpoint_drives_totals(
    api: Api, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    sim = make_sims(1)[0]
    today = utc_today()
    admin.post("usage", {"iccid": sim["iccid"], "date": today.isoformat(), "bytes": 1000, "sms": 3})
    view = admin.post("usage", {"iccid": sim["iccid"], "date": today.isoformat(), "bytes": 1500, "sms": 1})
    assert view["bytes_used"] == 1500 and view["sms_used"] == 1  # a day's usage is replaced, not added
    device = api.get(f"/v2/devices/{sim['device_name']}").json()
    assert device["bytes_used"] == 1500 and device["last_connection_date"]
    assert (
        requests.post(
            admin.base + "/_emulator/usage", json={"iccid": iccid(99), "date": "2024-01-01", "bytes": 1}, timeout=10
        ).status_code
        == 404
    )
    assert requests.post(admin.base + "/_emulator/usage", json={"iccid": sim["iccid"]}, timeout=10).status_code == 400


def test_clock(admin: AdminClient) -> None:
    before = admin.get("clock")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", before["now"])
    after = admin.post("clock", {"advance_seconds": 86400})
    assert after["offset_seconds"] == 86400 and after["now"] > before["now"]


def test_openapi_document_covers_every_route(fresh_emulator: EmulatorServer) -> None:
    doc = requests.get(fresh_emulator.base_url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.") and doc["servers"][0]["url"] == fresh_emulator.base_url
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in fresh_emulator.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in ("/", "/openapi.json"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    for path, ops in doc["paths"].items():
        if path.startswith("/v2/"):
            for op in ops.values():
                assert "401" in op["responses"] and "429" in op["responses"], path


def test_fail_after_the_work_was_done(
    api: Api, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    sim = make_sims(1)[0]
    admin.faults(
        fail_next=[
            {
                "path": "/v2/device_operations/change_cost_center",
                "status": 500,
                "after": True,
                "message": "upstream timeout",
            }
        ]
    )
    resp = api.put(
        "/v2/device_operations/change_cost_center", {"device_names": [sim["device_name"]], "cost_center": "Applied"}
    )
    assert resp.status_code == 500 and resp.json() == {"error": "upstream timeout"}
    assert admin.sims()[sim["iccid"]]["cost_center"] == "Applied"  # carried out all the same
    assert admin.requests()[-1]["status"] == 500


def test_activation_failing_after_part_of_it_was_applied(api: Api, admin: AdminClient) -> None:
    admin.add_sims([{"iccid": iccid(k)} for k in (1, 2, 3)])
    rows = [{"iccid": iccid(k), "imei": imei(k)} for k in (1, 2, 3)]
    body = {"rate_plan_name": "ACME Co 5mb Rate Plan", "activation_requests": rows}
    admin.faults(fail_next=[{"path": "/v2/device_operations/activation_request", "status": 500, "apply_rows": 1}])
    assert api.post("/v2/device_operations/activation_request", body).status_code == 500
    states = {k: s["state"] for k, s in admin.sims().items()}
    assert states == {iccid(1): "active", iccid(2): "inventory", iccid(3): "inventory"}
    again = api.post("/v2/device_operations/activation_request", body)  # a blind retry
    assert again.status_code == 422
    assert [u["device_index"] for u in again.json()["unprocessed"]] == [0]
    assert "already" in again.json()["unprocessed"][0]["error"]


def test_fail_next_skip_and_expire_sessions(
    fresh_emulator: EmulatorServer, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    sim = make_sims(1)[0]
    ts = requests.Session()
    base = fresh_emulator.base_url
    bearer = ts.post(
        base + "/api/ts/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=fresh_emulator.auth,
        timeout=10,
    ).json()["access_token"]
    session = ts.post(
        base + "/api/m2m/v1/session/login",
        headers={"Authorization": f"Bearer {bearer}"},
        json={"username": fresh_emulator.key_name, "password": fresh_emulator.api_key},
        timeout=10,
    ).json()["sessionToken"]
    path = "/api/m2m/v1/devices/usage/actions/list"
    admin.faults(fail_next=[{"path": path, "expire_sessions": True, "skip": 1}])
    body = {
        "deviceId": {"id": sim["iccid"], "kind": "iccid"},
        "earliest": "2024-01-01T00:00:00Z",
        "latest": "2024-03-01T00:00:00Z",
    }
    headers = {"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session}
    assert ts.post(base + path, json=body, headers=headers, timeout=10).status_code == 200
    expired = ts.post(base + path, json=body, headers=headers, timeout=10)
    assert expired.status_code == 401 and "expired" in expired.json()["errorMessage"]


def test_a_cross_site_request_cannot_drive_the_admin_api(api: Api, admin: AdminClient) -> None:
    """A web page on another site can make the browser POST `text/plain` to a developer's emulator (no
    preflight): its Origin, or a Host that is not this machine's (DNS rebinding), is refused before anything
    happens. Same-origin tools (the tests, curl, the project's clients) send neither and are served."""
    before = admin.get("sims")
    for headers in (
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Host": "evil.example:80", "Content-Type": "text/plain"},
    ):
        resp = requests.post(api.base + "/_emulator/reset", data='{"seed": "empty"}', headers=headers, timeout=10)
        assert resp.status_code == 403, (headers, resp.status_code, resp.text)
    assert admin.get("sims") == before, "nothing was reset"
    same = requests.get(api.base + "/_emulator/health", headers={"Origin": api.base}, timeout=10)
    assert same.status_code == 200
