"""What a run reads from the account: one listing, shared by the program and the provider (run_snapshot.py),
and no GET per SIM. Counted in the emulator's request log."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from devtools.pulumi_stack import PulumiStack
from emulator.admin_client import AdminClient
from tests.e2e.fleets import PLAN_5MB, iccid, imei, lattigo_fleet, seed_active

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


def test_many_stacks_share_one_read_of_the_account_and_writes_never_use_it(
    fleet_stack: PulumiStack, admin: AdminClient, tmp_path: Path
) -> None:
    seed_active(admin, range(1, 7))
    fleet_stack.write_fleet(fleet_text(range(1, 6)))
    fleet_stack.up().check()
    admin.add_sims([{"iccid": iccid(3), "cost_center": "Warehouse"}])  # drift, before the snapshot is read
    # SIM 6: in the account and declared, not held yet (its adoption is pending); the stack's slice of the
    # snapshot has it, so neither the plan nor the drift asks the API for it.
    fleet_stack.write_fleet(fleet_text(range(1, 7)))
    snapshot = tmp_path / "account.jsonl"

    admin.clear_requests()
    made = lattigo_fleet(fleet_stack, "snapshot", "--out", str(snapshot))
    assert made.returncode == 0, made.stderr
    assert len(gets(admin, LISTING)) == 1 and "6 SIMs" in made.stdout

    admin.clear_requests()
    plan = lattigo_fleet(fleet_stack, "plan", "--account-snapshot", str(snapshot), "--out", str(tmp_path / "p.json"))
    assert plan.returncode == 0, plan.stderr
    assert "Warehouse" in plan.stdout  # planned from the snapshot: the drift is in it
    drift = lattigo_fleet(fleet_stack, "drift", "--json", "--account-snapshot", str(snapshot))
    assert drift.returncode != 0 and "Warehouse" in drift.stdout
    assert gets(admin, LISTING) == [] and gets(admin, ONE_DEVICE) == []  # the plan and the drift check, refresh too
    assert admin.mutating() == []

    # An up never plans from a snapshot: with it in the environment, the program reads the account itself, and
    # an up whose refresh took the snapshot sends nothing.
    handed = {"LATTIGO_FLEET_ACCOUNT_SNAPSHOT": str(snapshot)}
    refused = subprocess.run(
        ["pulumi", "up", "--yes", "--skip-preview", "--refresh", "--non-interactive", "--stack", fleet_stack.name],
        cwd=fleet_stack.project_dir,
        env={**fleet_stack.env, **handed},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert refused.returncode != 0 and "which is for previews: nothing was sent" in refused.stdout + refused.stderr
    assert admin.mutating() == []
    admin.clear_requests()
    up = subprocess.run(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", fleet_stack.name],
        cwd=fleet_stack.project_dir,
        env={**fleet_stack.env, **handed},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert up.returncode == 0, up.stdout[-2000:]
    assert len(gets(admin, LISTING)) == 1  # the live account, not the snapshot
    assert admin.sims()[iccid(3)]["cost_center"] == "ops"


def test_a_snapshot_older_than_its_bound_or_of_another_account_is_refused(
    fleet_stack: PulumiStack, admin: AdminClient, tmp_path: Path
) -> None:
    seed_active(admin, range(1, 3))
    fleet_stack.write_fleet(fleet_text(range(1, 3)))
    snapshot = tmp_path / "account.jsonl"
    assert lattigo_fleet(fleet_stack, "snapshot", "--out", str(snapshot)).returncode == 0
    old = lattigo_fleet(
        fleet_stack, "plan", "--account-snapshot", str(snapshot), env={"LATTIGO_FLEET_SNAPSHOT_MAX_AGE": "0.001"}
    )
    assert old.returncode != 0
    assert "more than its bound" in old.stdout + old.stderr and "Traceback" not in old.stdout + old.stderr
    header, *sims = snapshot.read_text().splitlines(keepends=True)
    doc = json.loads(header)
    doc["account"] = "https://elsewhere.example#other-key"
    snapshot.write_text("".join([json.dumps(doc) + "\n", *sims]))
    other = lattigo_fleet(fleet_stack, "plan", "--account-snapshot", str(snapshot))
    assert other.returncode != 0 and "not of this stack's account" in other.stdout + other.stderr
