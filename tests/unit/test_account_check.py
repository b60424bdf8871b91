"""The account check on a slice of the account (a stack's part of a shared snapshot): what it still knows of
the whole account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lattigo_fleet.account_check import check_against_account
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import load_fleet
from tests.unit.fakes import UnusedApi

PLAN = "ACME Co 5mb Rate Plan"
ICCID = "89010000000000000001"


class AccountOfPlansAndUsers(UnusedApi):
    def rate_plans(self) -> list[dict[str, Any]]:
        return [{"name": PLAN}]

    def users(self) -> list[str]:
        return []


def moved_to(tmp_path: Path, cost_center: str, in_use: set[str] | None) -> list[str]:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f'version: 1\ndefaults: {{rate_plan: "{PLAN}"}}\nsims:\n  - {{iccid: "{ICCID}", cost_center: {cost_center}}}\n'
    )
    live: dict[str, LiveDevice] = {
        ICCID: {"iccid": ICCID, "state": "active", "device_name": "d1", "cost_center": "ops"}
    }
    checked = check_against_account(
        load_fleet(path), AccountOfPlansAndUsers(), False, probe_new_sims=False, live=live, cost_centers_in_use=in_use
    )
    return checked.warnings


def test_a_cost_center_another_stack_uses_is_not_new(tmp_path: Path) -> None:
    # The slice holds this stack's SIMs only; the account's cost centers come with it (account_snapshot.py).
    assert moved_to(tmp_path, "Warehouse", {"ops", "Warehouse"}) == []


def test_a_cost_center_no_sim_of_the_account_uses_is_named(tmp_path: Path) -> None:
    (warning,) = moved_to(tmp_path, "Warehous", {"ops", "Warehouse"})
    assert (
        "fleet.yaml:4" in warning
        and "'Warehous', which no SIM in the account uses yet; did you mean 'Warehouse'?" in warning
    )


def test_without_a_snapshot_the_cost_centers_in_use_are_those_of_the_account_read(tmp_path: Path) -> None:
    assert "no SIM in the account uses yet" in moved_to(tmp_path, "Warehouse", None)[0]
