"""Every documented return code: 200, 400, 401, 403, 404, 405, 422, 429."""

from __future__ import annotations

import base64

import pytest
import requests

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME, OTHER_ACCOUNT_API_KEY, OTHER_ACCOUNT_KEY_NAME
from tests.emulator.helpers import Api, fixture


def test_401_without_credentials(fresh_emulator: EmulatorServer) -> None:
    resp = requests.get(fresh_emulator.base_url + "/v2/devices", timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "auth",
    [(EMULATOR_KEY_NAME, "wrong"), ("unknown", EMULATOR_API_KEY), (EMULATOR_KEY_NAME, ""), ("", "")],
)
def test_401_with_wrong_credentials(fresh_emulator: EmulatorServer, auth: tuple[str, str]) -> None:
    resp = requests.get(fresh_emulator.base_url + "/v2/devices", auth=auth, timeout=10)
    assert resp.status_code == 401


def test_401_on_every_surface_of_v2(api: Api, fresh_emulator: EmulatorServer) -> None:
    for method, path in [("PUT", "/v2/device_operations/change_simstate"), ("GET", "/v2/rate_plans")]:
        resp = requests.request(method, fresh_emulator.base_url + path, timeout=10)
        assert resp.status_code == 401


def test_basic_header_assembled_by_hand(fresh_emulator: EmulatorServer) -> None:
    token = base64.b64encode(f"{EMULATOR_KEY_NAME}:{EMULATOR_API_KEY}".encode()).decode()
    resp = requests.get(
        fresh_emulator.base_url + "/v2/devices", headers={"Authorization": f"Basic {token}"}, timeout=10
    )
    assert resp.status_code == 200
    assert resp.json() == []


def test_up_to_five_key_pairs_per_account() -> None:
    pairs = [(f"key{i}", f"secret{i}") for i in range(5)]
    with EmulatorServer(key_name=None, api_key=None, keys=pairs, activation_delay=0) as srv:
        for pair in pairs:
            assert requests.get(srv.base_url + "/v2/users", auth=pair, timeout=10).status_code == 200
    with pytest.raises(ValueError):
        EmulatorServer(key_name="k", api_key="s", keys=[(f"x{i}", "y") for i in range(5)])


def test_404_unknown_path(api: Api) -> None:
    for path in ("/v2/devicez", "/v3/devices", "/v2/device_operations/explode", "/v2/devices/1/nothing"):
        resp = api.get(path)
        assert resp.status_code == 404, path
        assert "error" in resp.json()


def test_404_unknown_device_on_single_device_paths(api: Api) -> None:
    for sub in (
        "",
        "/get_sms",
        "/calamp_messages",
        "/last_calamp_message",
        "/device_reports",
        "/daily_data_usages",
        "/monthly_data_usages",
    ):
        assert api.get(f"/v2/devices/99999999{sub}").status_code == 404, sub
    assert api.put("/v2/devices/99999999/note", {"field_name": "note", "note": "x"}).status_code == 404
    assert api.post("/v2/devices/99999999/cellular_locate").status_code == 404


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v2/devices"),
        ("DELETE", "/v2/devices/36524"),
        ("GET", "/v2/device_operations/activation_request"),
        ("POST", "/v2/device_operations/change_cost_center"),
        ("GET", "/v2/device_operations/change_simstate"),
        ("PUT", "/v2/device_operations/set_usage_limit"),
        ("GET", "/v2/device_operations/send_sms"),
        ("POST", "/v2/device_operations/calamp_events"),
        ("GET", "/v2/devices/36524/cellular_locate"),
        ("GET", "/v2/devices/36524/note"),
        ("POST", "/v2/rate_plans"),
        ("DELETE", "/v2/users"),
    ],
)
def test_405_wrong_verb(api: Api, method: str, path: str) -> None:
    resp = api.session.request(method, api.url(path), timeout=10)
    assert resp.status_code == 405
    assert "error" in resp.json()
    assert "Allow" in resp.headers


def test_403_device_of_another_account(api: Api, encoding: str) -> None:
    # 90001 and 90002 belong to the second account of every seed
    assert api.get("/v2/devices/90001").status_code == 403
    assert api.get("/v2/devices/89019900000000000017", params={"id_type": "iccid"}).status_code == 403
    assert api.put("/v2/devices/90001/note", {"field_name": "note", "note": "x"}, encoding).status_code == 403
    resp = api.put(
        "/v2/device_operations/change_cost_center", {"device_names": ["90001", "123"], "cost_center": "X"}, encoding
    )
    assert resp.status_code == 403
    resp = api.put("/v2/device_operations/change_simstate", {"device_names": ["90002"], "state": "restore"}, encoding)
    assert resp.status_code == 403
    for path, body in [
        ("/v2/device_operations/set_usage_limit", {"device_names": ["90001"], "kb_limit": 1, "action": "suspend"}),
        ("/v2/device_operations/remove_usage_limit", {"device_names": ["90001"]}),
        ("/v2/device_operations/send_sms", {"device_names": ["90001"], "sms_text": "hi"}),
        (
            "/v2/device_operations/suspend_no_billing_request",
            {"suspension_requests": [{"iccid": "89019900000000000017", "imei": "356938035643809"}]},
        ),
    ]:
        assert api.post(path, body, encoding).status_code == 403, path
    for sub in (
        "get_sms",
        "calamp_messages",
        "last_calamp_message",
        "device_reports",
        "daily_data_usages",
        "monthly_data_usages",
    ):
        assert api.get(f"/v2/devices/90001/{sub}").status_code == 403, sub
    assert api.post("/v2/devices/90001/cellular_locate").status_code == 403
    # and nothing changed on the other side
    other = Api(api.base, (OTHER_ACCOUNT_KEY_NAME, OTHER_ACCOUNT_API_KEY))
    device = other.get("/v2/devices/90001").json()
    assert device["cost_center"] == "Globex"
    assert other.get("/v2/devices/90002").json()["state"] == "suspended"
    # the other account does not see ours either, and its own list holds only its SIMs
    assert other.get("/v2/devices").json() == ["90001", "90002"]


def test_400_missing_or_bad_parameters(api: Api, encoding: str) -> None:
    cases = [
        ("PUT", "/v2/device_operations/change_cost_center", {"cost_center": "X"}),
        ("PUT", "/v2/device_operations/change_cost_center", {"device_names": ["1"]}),
        ("PUT", "/v2/device_operations/change_simstate", {"device_names": ["1"]}),
        ("PUT", "/v2/device_operations/change_simstate", {"device_names": ["1"], "state": "explode"}),
        ("POST", "/v2/device_operations/set_usage_limit", {"device_names": ["1"]}),
        ("POST", "/v2/device_operations/set_usage_limit", {"device_names": ["1"], "kb_limit": "lots"}),
        ("POST", "/v2/device_operations/set_usage_limit", {"device_names": ["1"], "kb_limit": 5, "action": "x"}),
        ("POST", "/v2/device_operations/remove_usage_limit", {}),
        ("POST", "/v2/device_operations/send_sms", {"device_names": ["1"]}),
        ("POST", "/v2/device_operations/activation_request", {"activation_requests": [{"iccid": "1"}]}),
        ("POST", "/v2/device_operations/activation_request", {"rate_plan_name": "ACME Co 5mb Rate Plan"}),
        ("POST", "/v2/device_operations/suspend_no_billing_request", {}),
        ("POST", "/v2/device_operations/upload_request", {"upload_email": "a@b.c", "upload_sku": "X"}),
    ]
    for method, path, body in cases:
        resp = api.send(method, path, body, encoding)
        assert resp.status_code == 400, (path, body, resp.text)
        assert resp.json()["error"]


def test_400_bad_query_parameters(api: Api) -> None:
    for params in (
        {"page": "0"},
        {"page": "x"},
        {"per_page": "0"},
        {"per_page": "1001"},
        {"offset": "-1"},
        {"state": "exploded"},
        {"details": "maybe"},
    ):
        assert api.get("/v2/devices", params=params).status_code == 400, params
    assert api.get("/v2/device_operations/calamp_events").status_code == 400  # event_code is required
    assert (
        api.get("/v2/device_operations/calamp_events", params={"event_code": 1, "start_date": "nonsense"}).status_code
        == 400
    )
    assert api.get("/v2/devices/1", params={"id_type": "passport"}).status_code == 400


def test_400_malformed_json(api: Api) -> None:
    resp = api.session.put(
        api.url("/v2/device_operations/change_cost_center"),
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400


def test_422_activation_with_bad_rows(api: Api, admin: AdminClient) -> None:
    body = fixture("activation_request.json")
    resp = api.post("/v2/device_operations/activation_request", body)
    assert resp.status_code == 422
    assert len(resp.json()["unprocessed"]) == 3


def test_429_with_retry_after(api: Api, admin: AdminClient, frozen_clock: float) -> None:
    # the clock stands still: the bucket (burst 2) refills only when the test advances the clock
    admin.faults(rate_limit_per_second=2)
    statuses = [api.get("/v2/users") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"]
    # the bucket is per key: another key pair of another account is not limited by ours
    other = Api(api.base, (OTHER_ACCOUNT_KEY_NAME, OTHER_ACCOUNT_API_KEY))
    assert other.get("/v2/users").status_code == 200
    # still limited until Retry-After has passed on the emulated clock ...
    assert api.get("/v2/users").status_code == 429
    # ... and after waiting Retry-After, the call goes through
    admin.post("clock", {"advance_seconds": int(limited[0].headers["Retry-After"])})
    assert api.get("/v2/users").status_code == 200


def test_429_from_fail_next_has_retry_after(api: Api, admin: AdminClient) -> None:
    admin.faults(fail_next=[{"path": "/v2/devices", "status": 429, "count": 1, "retry_after": 3}])
    resp = api.get("/v2/devices")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert api.get("/v2/devices").status_code == 200
