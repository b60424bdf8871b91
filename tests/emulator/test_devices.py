"""v2/devices and v2/devices/:device_name, pagination, id types, rate plans and users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emulator.admin_client import AdminClient
from emulator.models import DEVICE_FIELDS, RATE_PLAN_FIELDS
from tests.emulator.helpers import Api, iccid, imei


def test_empty_account_lists_nothing(api: Api) -> None:
    resp = api.get("/v2/devices")
    assert resp.status_code == 200
    assert resp.json() == []
    assert resp.headers["X-Total"] == "0"
    assert resp.headers["X-Page"] == "1"
    assert resp.headers["X-Next-Page"] == ""
    assert resp.headers["X-Prev-Page"] == ""


def test_names_and_details(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    sims = make_sims(3, cost_center="East", note="n")
    names = [s["device_name"] for s in sims]
    assert all(n.isdigit() for n in names)
    assert all(s["device_name"] != s["iccid"] for s in sims)
    assert api.get("/v2/devices").json() == names
    for flag in ("true", "t", "1", "TRUE"):
        details = api.get("/v2/devices", params={"details": flag}).json()
        assert [d["device_name"] for d in details] == names
    device = details[0]
    assert list(device) == list(DEVICE_FIELDS)
    assert device["iccid"] == iccid(1) and device["imei"] == imei(1)
    assert device["state"] == "active" and device["cost_center"] == "East" and device["note"] == "n"
    assert isinstance(device["id"], int) and isinstance(device["bytes_used"], int)
    assert device["last_activation_date"].endswith("Z")
    assert api.get("/v2/devices", params={"details": "false"}).json() == names


def test_state_filter(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    active = make_sims(2)
    suspended = make_sims(3, state="suspended", start=10)
    make_sims(2, state=None, start=20)  # inventory: never listed
    assert api.get("/v2/devices", params={"state": "active"}).json() == [s["device_name"] for s in active]
    assert api.get("/v2/devices", params={"state": "suspended"}).json() == [s["device_name"] for s in suspended]
    assert api.get("/v2/devices", params={"state": "suspended_no_billing"}).json() == []
    assert len(api.get("/v2/devices").json()) == 5


def test_pagination_headers(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    names = [s["device_name"] for s in make_sims(42)]
    resp = api.get("/v2/devices", params={"page": 3, "per_page": 10})
    assert resp.json() == names[20:30]
    h = resp.headers
    assert (
        h["X-Total"],
        h["X-Total-Pages"],
        h["X-Page"],
        h["X-Per-Page"],
        h["X-Next-Page"],
        h["X-Prev-Page"],
        h["X-Offset"],
    ) == ("42", "5", "3", "10", "4", "2", "0")
    last = api.get("/v2/devices", params={"page": 5, "per_page": 10})
    assert last.json() == names[40:] and last.headers["X-Next-Page"] == ""
    beyond = api.get("/v2/devices", params={"page": 9, "per_page": 10})
    assert beyond.json() == []
    # offset is a padding before the first page
    padded = api.get("/v2/devices", params={"page": 1, "per_page": 10, "offset": 5})
    assert padded.json() == names[5:15] and padded.headers["X-Offset"] == "5"
    # default page 1, default per_page 25
    first = api.get("/v2/devices")
    assert first.json() == names[:25] and first.headers["X-Per-Page"] == "25" and first.headers["X-Next-Page"] == "2"
    # following X-Next-Page visits every device once
    seen, page = [], "1"
    while page:
        r = api.get("/v2/devices", params={"page": page, "per_page": 7, "details": "true"})
        seen += [d["device_name"] for d in r.json()]
        page = r.headers["X-Next-Page"]
    assert seen == names


def test_single_device_by_name_and_id_types(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    sim = make_sims(1)[0]
    name = sim["device_name"]
    by_name = api.get(f"/v2/devices/{name}").json()
    assert by_name["iccid"] == sim["iccid"]
    for id_type, value in [
        ("iccid", sim["iccid"]),
        ("imei", sim["imei"]),
        ("msisdn", by_name["msisdn"]),
        ("device_name", name),
        ("ICCID", sim["iccid"]),
    ]:
        resp = api.get(f"/v2/devices/{value}", params={"id_type": id_type})
        assert resp.status_code == 200, id_type
        assert resp.json()["device_name"] == name
    assert api.get(f"/v2/devices/{sim['iccid']}").status_code == 404  # an ICCID is not a device_name


def test_inventory_sim_is_invisible(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    sim = make_sims(1, state=None)[0]
    assert sim["state"] == "inventory"
    assert api.get(f"/v2/devices/{sim['device_name']}").status_code == 404
    assert api.get(f"/v2/devices/{sim['iccid']}", params={"id_type": "iccid"}).status_code == 404
    assert api.get("/v2/devices").json() == []


def test_trailing_slash_is_tolerated(api: Api) -> None:
    assert api.get("/v2/devices/").status_code == 200


def test_get_with_a_json_content_type_and_no_body(api: Api, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    """The documents' "Example using JSON" for GET endpoints: a JSON content type, parameters in the query."""
    name = make_sims(1)[0]["device_name"]
    headers = {"Content-Type": "application/json"}
    assert api.get(f"/v2/devices/{name}/daily_data_usages", headers=headers).status_code == 200
    resp = api.get("/v2/devices", params={"details": "true"}, headers=headers)
    assert resp.status_code == 200 and resp.json()[0]["device_name"] == name
    # a JSON body on a GET is read too
    resp = api.session.get(api.url("/v2/devices"), json={"details": True}, timeout=10)
    assert resp.json()[0]["device_name"] == name


def test_rate_plans_and_users(api: Api) -> None:
    resp = api.get("/v2/rate_plans")
    plans = resp.json()
    assert [p["name"] for p in plans] == ["ACME Co 5mb Rate Plan", "ACME Co 10MB Plan"]
    assert all(list(p) == list(RATE_PLAN_FIELDS) for p in plans)
    assert resp.headers["X-Total"] == "2"
    users = api.get("/v2/users")
    assert users.json() == ["ops-oncall", "fleet-admin"]
    assert api.get("/v2/users", params={"per_page": 1, "page": 2}).json() == ["fleet-admin"]


@pytest.mark.parametrize("per_page", [100, 1000])
def test_large_pages(api: Api, admin: AdminClient, per_page: int) -> None:
    admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 1201)])
    resp = api.get("/v2/devices", params={"details": "true", "per_page": per_page, "page": 2})
    assert len(resp.json()) == (100 if per_page == 100 else 200)
    assert resp.headers["X-Total"] == "1200"
