"""What a run reads from the account: one listing, shared by the program and the provider (run_snapshot.py),
and no GET per SIM. Counted in the emulator's request log."""

from __future__ import annotations

import re
from typing import Any

from devtools.pulumi_stack import PulumiStack
from emulator.admin_client import AdminClient
from tests.e2e.fleets import PLAN_5MB, iccid, imei, seed_active

LISTING = re.compile(r"^/v2/devices/?$")
ONE_DEVICE = re.compile(r"^/v2/devices/[^/]+/?$")


def fleet_text(adopted: range, new: range = range(0), cost_center: str = "ops") -> str:
    rows = [f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}}}' for i in adopted]
    rows += [f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: ops}}' for i in new]
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n' + "\n".join(rows) + "\n"


def gets(admin: AdminClient, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    return [r for r in admin.api_requests() if r["method"] == "GET" and pattern.match(r["path"])]


def test_a_run_lists_the_account_once_for_the_program_and_the_provider(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    seed_active(admin, range(1, 6))
    fleet_stack.write_fleet(fleet_text(range(1, 6)))
    fleet_stack.up().check()

    admin.clear_requests()
    fleet_stack.preview("--expect-no-changes").check()
    assert len(gets(admin, LISTING)) == 1  # one page: the program's read, handed to the provider
    assert gets(admin, ONE_DEVICE) == []

    fleet_stack.write_fleet(fleet_text(range(1, 6), cost_center="logistics"))
    admin.clear_requests()
    fleet_stack.up().check()
    assert {sim["cost_center"] for i, sim in admin.sims().items() if i in {iccid(n) for n in range(1, 6)}} == {
        "logistics"
    }
    assert len(gets(admin, LISTING)) == 1
    assert gets(admin, ONE_DEVICE) == []


def test_activations_read_the_account_within_two_listings_more(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, range(1, 4))
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in range(4, 7)])  # in inventory
    fleet_stack.write_fleet(fleet_text(range(1, 4), new=range(4, 7)))
    admin.clear_requests()
    fleet_stack.up().check()
    assert {admin.sims()[iccid(i)]["state"] for i in range(4, 7)} == {"active"}
    # The program's listing, handed over; then the activations' own wait (one listing per poll while they
    # are pending, which the emulator answers at once here).
    assert len(gets(admin, LISTING)) <= 1 + 2
    assert gets(admin, ONE_DEVICE) == []
