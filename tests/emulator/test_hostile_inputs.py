"""Hostile inputs the emulator must refuse with its documented errors, never a 500 or a silent 200."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME
from tests.emulator.helpers import Api

SET_LIMIT = "/v2/device_operations/set_usage_limit"
TOKEN = "/api/ts/v1/oauth2/token"
LOGIN = "/api/m2m/v1/session/login"
LOGOUT = "/api/m2m/v1/session/logout"


def test_a_kb_limit_past_64_bits_is_a_400_like_other_bad_parameters(
    api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    [sim] = make_sims(1)
    name = sim["device_name"]
    for kb_limit in (2**63, 2**63 + 1, 2**64, 10**30):
        resp = api.post(SET_LIMIT, {"device_names": [name], "kb_limit": kb_limit, "action": "suspend"}, encoding)
        assert resp.status_code == 400, (kb_limit, resp.status_code, resp.text)
        assert set(resp.json()) == {"error"} and "kb_limit" in resp.json()["error"], resp.text
    assert admin.sims()[sim["iccid"]]["usage_limit"] is None  # nothing was set
    # the largest limit the platform can store still works
    resp = api.post(SET_LIMIT, {"device_names": [name], "kb_limit": 2**63 - 1, "action": "suspend"}, encoding)
    assert resp.status_code == 200 and resp.json() == {"status": {name: "Success: Device data limit is set."}}


def _bearer(base: str) -> str:
    resp = requests.post(
        base + TOKEN, data={"grant_type": "client_credentials"}, auth=(EMULATOR_KEY_NAME, EMULATOR_API_KEY), timeout=10
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def test_logout_with_a_bogus_session_token_is_a_401(fresh_emulator: EmulatorServer) -> None:
    base = fresh_emulator.base_url
    bearer = _bearer(base)
    auth = {"Authorization": f"Bearer {bearer}"}
    for bogus in ("not-a-session", "x" * 32):
        by_header = requests.post(base + LOGOUT, headers={**auth, "VZ-M2M-Token": bogus}, timeout=10)
        by_body = requests.post(base + LOGOUT, headers=auth, json={"sessionToken": bogus}, timeout=10)
        for resp in (by_header, by_body):
            assert resp.status_code == 401, (bogus, resp.status_code, resp.text)
            assert resp.json() == {"errorCode": "401", "errorMessage": "Invalid VZ-M2M session token"}
    # a real session logs out once; the same token again is unknown
    session = requests.post(
        base + LOGIN, headers=auth, json={"username": EMULATOR_KEY_NAME, "password": EMULATOR_API_KEY}, timeout=10
    )
    token = session.json()["sessionToken"]
    first = requests.post(base + LOGOUT, headers={**auth, "VZ-M2M-Token": token}, timeout=10)
    assert first.status_code == 200 and first.json() == {"sessionToken": token}
    again = requests.post(base + LOGOUT, headers={**auth, "VZ-M2M-Token": token}, timeout=10)
    assert again.status_code == 401
