"""The admin API at fleet size: many SIMs in one request, a day of usage of many SIMs in one request, and
listings whose pages follow each other. Each one answers as its one-at-a-time form does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from emulator.admin_client import AdminClient
from tests.emulator.helpers import Api, iccid, imei, utc_today

SPECS: list[dict[str, Any]] = [
    {"iccid": iccid(1), "imei": imei(1)},  # inventory
    {"iccid": iccid(2), "imei": imei(2), "state": "active", "cost_center": "East", "note1": "n1"},
    {"iccid": iccid(3), "state": "pending_activation"},
    {"iccid": iccid(4), "state": "suspended", "msisdn": "15550001234"},
    {"iccid": iccid(5), "state": "pending_suspend_no_billing", "rate_plan": "ACME Co 10MB Plan"},
    {"iccid": iccid(2), "state": "suspended", "note": "changed in the same request"},  # a repeat: a change
    {"iccid": iccid(6), "state": "suspended_no_billing", "account": "other"},
    {"iccid": iccid(1), "cost_center": "Lab"},  # a repeat of the inventory SIM
]


def _stored(admin: AdminClient) -> dict[str, dict[str, Any]]:
    return admin.sims(account="all")


@pytest.mark.parametrize("seed", ["empty", "demo"])
def test_many_sims_in_one_request_are_stored_as_one_request_each_stores_them(
    admin: AdminClient, frozen_clock: float, seed: str
) -> None:
    admin.reset(seed)
    one_at_a_time = [admin.add_sims([spec])[0] for spec in SPECS]
    expected = _stored(admin)
    admin.tick()
    expected_later = _stored(admin)
    admin.reset(seed)
    at_once = admin.add_sims(SPECS)
    assert at_once[0] == at_once[7] and at_once[1] == at_once[5]  # each SIM as stored after the whole request
    assert _stored(admin) == expected
    assert [s["iccid"] for s in at_once] == [s["iccid"] for s in one_at_a_time]
    assert [s["device_name"] for s in at_once] == [expected[s["iccid"]]["device_name"] for s in one_at_a_time]
    admin.tick()  # the pending states queued their completion, as one at a time
    assert _stored(admin) == expected_later
    assert (expected_later[iccid(3)]["state"], expected_later[iccid(5)]["state"]) == (
        "active",
        "suspended_no_billing",
    )


def test_new_sims_take_the_lowest_free_device_names(admin: AdminClient) -> None:
    admin.reset("demo")  # the demo's own SIMs hold names from 36500 on, with gaps
    taken = {int(s["device_name"]) for s in _stored(admin).values()}
    free = [n for n in range(36500, 36500 + len(taken) + 10) if n not in taken][:5]
    added = admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 6)])
    assert [int(s["device_name"]) for s in added] == free
    [later] = admin.add_sims([{"iccid": iccid(9), "state": "active"}])
    assert int(later["device_name"]) == next(n for n in range(free[-1] + 1, 10**6) if n not in taken)


def test_one_bad_sim_refuses_the_whole_request(api: Api, admin: AdminClient) -> None:
    body = {"sims": [{"iccid": iccid(1), "state": "active"}, {"iccid": iccid(2), "state": "gone"}]}
    resp = requests.post(api.base + "/_emulator/sims", json=body, timeout=10)
    assert resp.status_code == 400 and "state must be one of" in resp.json()["error"]
    assert _stored(admin).keys() == {"89019900000000000017", "89019900000000000025"}  # the other account's only


def test_a_day_of_many_sims_in_one_request_is_recorded_as_one_request_each_records_it(
    admin: AdminClient, frozen_clock: float
) -> None:
    admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 4)])
    today, day_before = utc_today().isoformat(), (utc_today() - timedelta(days=1)).isoformat()
    days = [
        {"iccid": iccid(1), "date": today, "bytes": 1000, "sms": 2},
        {"iccid": iccid(2), "date": today, "bytes": 0},
        {"iccid": iccid(1), "date": day_before, "bytes": 500, "sms_mt": 1},
        {"iccid": iccid(1), "date": today, "bytes": 1500, "sms": 1},  # the same day again: replaced
    ]
    for day in days:
        admin.post("usage", day)
    expected, expected_days = _stored(admin), admin.usage()
    admin.reset()
    admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 4)])
    assert admin.record_usages(days) == 4
    assert _stored(admin) == expected
    assert expected_days == [
        {"iccid": iccid(1), "date": day_before, "bytes": 500, "sms": 0, "sms_mt": 1},
        {"iccid": iccid(1), "date": today, "bytes": 1500, "sms": 1, "sms_mt": 0},
        {"iccid": iccid(2), "date": today, "bytes": 0, "sms": 0, "sms_mt": 0},
    ]
    assert admin.usage() == expected_days
    assert admin.usage(date=today, iccid=iccid(2)) == [expected_days[2]]
    assert admin.usage(account="other") == []


def test_a_day_of_many_sims_enforces_each_usage_limit(api: Api, admin: AdminClient) -> None:
    [limited, free] = admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in (1, 2)])
    resp = api.post(
        "/v2/device_operations/set_usage_limit",
        {"device_names": [limited["device_name"]], "kb_limit": 1, "action": ["suspend"]},
    )
    assert resp.status_code == 200
    today = utc_today().isoformat()
    admin.record_usages([{"iccid": iccid(k), "date": today, "bytes": 4096} for k in (1, 2)])
    stored = _stored(admin)
    assert (stored[iccid(1)]["state"], stored[iccid(2)]["state"]) == ("suspended", "active")


@pytest.mark.parametrize(
    ("entry", "status", "says"),
    [
        ({"iccid": iccid(99), "date": "2024-01-01", "bytes": 1}, 404, "no SIM with ICCID"),
        ({"iccid": iccid(1), "date": "2024-01-01", "bytes": -1}, 400, "must not be negative"),
        ({"iccid": iccid(1), "date": "2024-01-01"}, 400, "iccid, date and bytes are required"),
        ("not an object", 400, "must be an object"),
    ],
)
def test_one_bad_day_refuses_them_all(api: Api, admin: AdminClient, entry: Any, status: int, says: str) -> None:
    admin.add_sims([{"iccid": iccid(1), "imei": imei(1), "state": "active"}])
    good = {"iccid": iccid(1), "date": "2024-01-02", "bytes": 10}
    resp = requests.post(api.base + "/_emulator/usage", json={"usage": [good, entry]}, timeout=10)
    assert resp.status_code == status and says in resp.json()["error"]
    assert admin.usage() == []
    bad = requests.post(api.base + "/_emulator/usage", json={"usage": {"iccid": iccid(1)}}, timeout=10)
    assert bad.status_code == 400


def test_each_page_of_a_listing_reflects_the_account_as_it_is_asked(api: Api, admin: AdminClient) -> None:
    """Pages follow on from where the previous one ended while nothing changes; a change in between is seen
    by the next page as a fresh listing would see it (the total too)."""
    added = admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 31)])
    names = [s["device_name"] for s in added]

    def page(n: int) -> tuple[list[str], str]:
        resp = api.get("/v2/devices", params={"state": "active", "per_page": 10, "page": n})
        return resp.json(), resp.headers["X-Total"]

    assert page(1) == (names[:10], "30")
    admin.add_sims([{"iccid": iccid(3), "state": "suspended"}])  # one before page 2 leaves the filter
    assert page(2) == ([n for n in names if n != names[2]][10:20], "29")
    assert page(3) == ([n for n in names if n != names[2]][20:], "29")
    assert page(2) == ([n for n in names if n != names[2]][10:20], "29")  # asked again, out of order
    details = api.get("/v2/devices", params={"details": "true", "per_page": 10, "page": 2}).json()
    assert [d["device_name"] for d in details] == names[10:20]  # another filter: its own pages
