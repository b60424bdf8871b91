"""`lattigo-fleet plan` and `lattigo-fleet drift` end to end: the real `pulumi` on a local backend, the real
program, the emulator; the commands run as a user runs them, in the project directory."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.e2e.fleets import PLAN_5MB, iccid, imei, seed_active


def fleet_of(rows: list[str]) -> str:
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n' + "".join(f"  - {r}\n" for r in rows)


def row(i: int, extra: str = "") -> str:
    return f'{{iccid: "{iccid(i)}", imei: "{imei(i)}", name: truck-{i}{", " + extra if extra else ""}}}'


def lattigo_fleet(stack: PulumiStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "lattigo_fleet.cli", *args, "--stack", stack.name],
        cwd=stack.project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


DECLARED = "cost_center: ops, notes: {note1: depot}, usage_limit: {kb_limit: 100000000, action: suspend}"


def test_drift_reports_each_out_of_band_change_and_unmanaged_sim_once_and_ignores_a_day_of_usage(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    seed_active(admin, range(1, 6))
    fleet_stack.write_fleet(fleet_of([row(i, DECLARED) for i in range(1, 6)]))
    fleet_stack.up().check()

    clean = lattigo_fleet(fleet_stack, "drift")
    assert clean.returncode == 0, clean.stderr
    assert "In sync" in clean.stdout

    # Someone, in the portal: a cost center, a note, a state; and a SIM nobody declared.
    admin.add_sims(
        [
            {"iccid": iccid(1), "cost_center": "Warehouse"},
            {"iccid": iccid(2), "note1": "west yard"},
            {"iccid": iccid(4), "state": "suspended"},
        ]
    )
    admin.add_sims([{"iccid": iccid(99), "imei": imei(99), "state": "active", "rate_plan": PLAN_5MB}])

    first = lattigo_fleet(fleet_stack, "drift", "--json")
    assert first.returncode == 2, first.stderr
    report = json.loads(first.stdout)
    assert [(d["iccid"], d["field"], d["declared"], d["live"], d["kind"]) for d in report["drift"]] == [
        (iccid(1), "cost_center", "ops", "Warehouse", "drift"),
        (iccid(2), "notes.note1", "depot", "west yard", "drift"),
        (iccid(4), "state", "active", "suspended", "drift"),
    ]
    assert [u["iccid"] for u in report["unmanaged"]] == [iccid(99)]
    assert report["counts"] == {"drift": 3, "drifted_sims": 3, "pending": 0, "unmanaged": 1}
    text = lattigo_fleet(fleet_stack, "drift")
    assert text.returncode == 2
    for who in (iccid(1), iccid(2), iccid(4), iccid(99)):
        assert text.stdout.count(who) == 1, text.stdout
    assert text.stdout.count("usage limits") == 1
    markdown = lattigo_fleet(fleet_stack, "drift", "--markdown")
    assert markdown.returncode == 2 and "| truck-1 | `" in markdown.stdout

    # A day of traffic on every SIM: nothing more to report.
    base = fresh_emulator.base_url
    day = requests.get(f"{base}/_emulator/clock", timeout=30).json()["now"][:10]
    for n, sim in enumerate(admin.sims(), start=1):
        requests.post(
            f"{base}/_emulator/usage", json={"iccid": sim, "date": day, "bytes": 250_000 * n, "sms": n}, timeout=30
        ).raise_for_status()
    requests.post(f"{base}/_emulator/tick", timeout=30).raise_for_status()
    after = lattigo_fleet(fleet_stack, "drift", "--json")
    assert after.returncode == 2
    assert json.loads(after.stdout) == report
    assert lattigo_fleet(fleet_stack, "drift").stdout == text.stdout


def test_drift_says_what_is_wrong_in_one_line(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, [1])
    fleet_stack.write_fleet(fleet_of([row(1)]))
    fleet_stack.up().check()

    fleet_stack.write_fleet("version: 1\nsims:\n  - {iccid: 8901260000000000001}\n")  # unquoted ICCID
    bad_file = lattigo_fleet(fleet_stack, "drift")
    assert bad_file.returncode == 1 and bad_file.stdout == ""
    assert bad_file.stderr.startswith("lattigo-fleet drift: ") and "fleet.yaml:3:" in bad_file.stderr
    assert bad_file.stderr.count("\n") == 1 and "Traceback" not in bad_file.stderr

    fleet_stack.write_fleet(fleet_of([row(1)]))
    fleet_stack.set_config("lattigo:apiKey", "wrong-key", secret=True)
    wrong_key = lattigo_fleet(fleet_stack, "drift")
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.startswith("lattigo-fleet drift: the preview failed: cannot read the Lattigo account")
    assert wrong_key.stderr.count("\n") == 1 and "wrong-key" not in wrong_key.stderr

    fleet_stack.set_config("lattigo:endpoint", "http://127.0.0.1:9")
    unreachable = lattigo_fleet(fleet_stack, "drift", "--json")
    assert unreachable.returncode == 1 and unreachable.stdout == ""
    assert "http://127.0.0.1:9" in unreachable.stderr and unreachable.stderr.count("\n") == 1


def test_plan_comments_on_a_real_preview(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, range(1, 4))
    admin.add_sims([{"iccid": iccid(4), "imei": imei(4)}])  # in inventory
    fleet_stack.write_fleet(fleet_of([row(i, "cost_center: ops") for i in range(1, 4)]))
    fleet_stack.up().check()
    admin.clear_requests()

    fleet_stack.write_fleet(
        fleet_of(
            [
                row(1, "cost_center: Fleet-East"),
                row(2, "cost_center: ops, state: suspended"),
                row(3, "cost_center: ops"),
                row(4),
            ]
        )
    )
    result = lattigo_fleet(fleet_stack, "plan", "--cwd", str(fleet_stack.project_dir), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"] == {"activate": 1, "suspend": 1, "cost_center": 1}
    assert [(c["sim"], c["field"], c["old"], c["new"], c["action"]) for c in doc["changes"]] == [
        ("truck-4", "origin", None, "activated", "activate"),
        ("truck-4", "rate_plan", None, PLAN_5MB, "activate"),
        ("truck-2", "state", "active", "suspended", "suspend"),
        ("truck-1", "cost_center", "ops", "Fleet-East", "cost_center"),
    ]
    markdown = lattigo_fleet(fleet_stack, "plan")
    assert markdown.returncode == 0
    assert "| truck-1 | `" + iccid(1) + "` | cost center | cost_center: `ops` → `Fleet-East` |" in markdown.stdout
    assert admin.mutating() == []
