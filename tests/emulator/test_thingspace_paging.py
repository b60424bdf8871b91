"""ThingSpace usage pages with ``hasMoreData: true``: 202 as Verizon serves them (the default), or 200 as the
contract document shows (the ``thingspace_more_data_status`` setting, set through ``/_emulator/faults``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME

USAGE = "/api/m2m/v1/devices/usage/actions/list"
START = date(2024, 1, 1)


def _read_all(base: str, iccid: str) -> list[tuple[int, bool, int]]:
    """Every page of one SIM's usage from START, as (status, hasMoreData, records)."""
    http = requests.Session()
    bearer = http.post(
        base + "/api/ts/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(EMULATOR_KEY_NAME, EMULATOR_API_KEY),
        timeout=10,
    ).json()["access_token"]
    session = http.post(
        base + "/api/m2m/v1/session/login",
        json={"username": EMULATOR_KEY_NAME, "password": EMULATOR_API_KEY},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=10,
    ).json()["sessionToken"]
    cursor, pages = f"{START}T00:00:00Z", []
    while True:
        body = {"deviceId": {"id": iccid, "kind": "iccid"}, "earliest": cursor, "latest": "2024-12-31T00:00:00Z"}
        resp = http.post(
            base + USAGE, json=body, headers={"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session}, timeout=10
        )
        data = resp.json()
        pages.append((resp.status_code, data["hasMoreData"], len(data["usageHistory"])))
        if not data["hasMoreData"]:
            return pages
        cursor = data["usageHistory"][-1]["timestamp"]


@pytest.fixture
def sim(admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]) -> str:
    """A SIM with 7 days of usage, 3 days a page (each next page starts at the last day of the one before):
    three pages, the last one without more data."""
    iccid = str(make_sims(1)[0]["iccid"])
    for k in range(7):
        admin.post("usage", {"iccid": iccid, "date": (START + timedelta(days=k)).isoformat(), "bytes": k + 1})
    admin.faults(thingspace_page_days=3)
    return iccid


def test_pages_with_more_data_answer_202_by_default_and_the_last_page_200(
    fresh_emulator: EmulatorServer, admin: AdminClient, sim: str
) -> None:
    assert admin.get("faults")["thingspace_more_data_status"] == 202
    assert _read_all(fresh_emulator.base_url, sim) == [(202, True, 3), (202, True, 3), (200, False, 3)]


def test_the_setting_gives_200_for_every_page_as_the_document_shows(
    fresh_emulator: EmulatorServer, admin: AdminClient, sim: str
) -> None:
    assert admin.faults(thingspace_more_data_status=200)["thingspace_more_data_status"] == 200
    assert _read_all(fresh_emulator.base_url, sim) == [(200, True, 3), (200, True, 3), (200, False, 3)]
    assert admin.faults(thingspace_more_data_status=None)["thingspace_more_data_status"] == 202  # null: default


def test_a_single_page_answers_200_whatever_the_setting(
    fresh_emulator: EmulatorServer, admin: AdminClient, sim: str
) -> None:
    admin.faults(thingspace_page_days=31)
    assert _read_all(fresh_emulator.base_url, sim) == [(200, False, 7)]


@pytest.mark.parametrize("value", [201, 204, "200", True, 404])
def test_only_202_or_200_is_accepted(fresh_emulator: EmulatorServer, value: Any) -> None:
    resp = requests.post(
        fresh_emulator.base_url + "/_emulator/faults", json={"thingspace_more_data_status": value}, timeout=10
    )
    assert resp.status_code == 400 and "thingspace_more_data_status must be 202 or 200" in resp.text


def test_a_reset_restores_202(fresh_emulator: EmulatorServer, admin: AdminClient) -> None:
    admin.faults(thingspace_more_data_status=200)
    admin.post("reset")
    assert admin.get("faults")["thingspace_more_data_status"] == 202
