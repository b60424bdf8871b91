"""`plan --json`, `plan --gitlab-report` and `drift --json` end to end, in the shape of Pulumi's own summary: the
real `pulumi` on a local backend, the real program, the emulator; the commands run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.pulumi_stack import PulumiStack
from emulator.admin_client import AdminClient
from tests.e2e.fleets import PLAN_5MB, iccid, imei, lattigo_fleet, seed_active
from tests.e2e.test_commands_plan_drift import fleet_of, row

SIM_TYPE = "pulumi-python:dynamic/lattigo:Sim"


def test_plan_and_drift_json_in_pulumis_shape_and_the_gitlab_report(
    fleet_stack: PulumiStack, admin: AdminClient, tmp_path: Path
) -> None:
    seed_active(admin, range(1, 4))
    admin.add_sims([{"iccid": iccid(4), "imei": imei(4)}])  # in inventory
    fleet_stack.write_fleet(fleet_of([row(i, "cost_center: ops") for i in range(1, 4)]))
    fleet_stack.up().check()
    admin.clear_requests()

    fleet_stack.write_fleet(
        fleet_of([row(1, "cost_center: Fleet-East"), *[row(i, "cost_center: ops") for i in (2, 3)], row(4)])
    )
    report, summary = tmp_path / "gitlab.json", tmp_path / "step-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    result = lattigo_fleet(fleet_stack, "plan", "--json", "--gitlab-report", str(report), env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["result"] == "succeeded"
    assert isinstance(doc["durationSeconds"], int) and 0 <= doc["durationSeconds"] < 600
    assert doc["changeSummary"] == {"create": 1, "update": 1, "delete": 0, "same": 2}
    assert [(s["op"], s["type"], s["name"], s["sim"], s["actions"]) for s in doc["steps"]] == [
        ("create", SIM_TYPE, iccid(4), "truck-4", ["activate"]),
        ("update", SIM_TYPE, iccid(1), "truck-1", ["cost_center"]),
    ]
    update = doc["steps"][1]
    assert update["urn"] == f"urn:pulumi:{fleet_stack.name}::lattigo-fleet::{SIM_TYPE}::{iccid(1)}"
    assert (update["diffs"], update["detailedDiff"]) == (
        ["cost_center"],
        {"cost_center": {"kind": "update", "inputDiff": True}},
    )
    assert update["fields"] == {"cost_center": {"before": "ops", "after": "Fleet-East"}}
    assert update["calls"] == [{"kind": "cost_center", "cost_center": "Fleet-East"}]
    assert doc["steps"][0]["fields"]["rate_plan"] == {"before": None, "after": PLAN_5MB}
    assert doc["counts"] == {"activate": 1, "cost_center": 1}  # the keys of before are kept
    assert json.loads(report.read_text()) == {"create": 1, "update": 1, "delete": 0}
    assert not summary.exists()  # nothing was cut
    assert admin.mutating() == []

    fleet_stack.write_fleet(fleet_of([row(i, "cost_center: ops") for i in range(1, 4)]))
    admin.add_sims([{"iccid": iccid(2), "cost_center": "Warehouse"}])  # someone, in the portal
    drift = lattigo_fleet(fleet_stack, "drift", "--json")
    assert drift.returncode == 2, drift.stderr
    found = json.loads(drift.stdout)
    assert "durationSeconds" not in found  # the same account, the same report, run after run
    assert (found["result"], found["changeSummary"]) == (
        "succeeded",
        {"create": 0, "update": 1, "delete": 0, "same": 2},
    )
    assert [(s["op"], s["sim"], s["kind"], s["fields"], s["calls"]) for s in found["steps"]] == [
        (
            "update",
            "truck-2",
            "drift",
            {"cost_center": {"before": "Warehouse", "after": "ops", "kind": "drift"}},
            [{"kind": "cost_center", "cost_center": "ops"}],
        )
    ]
    assert [(d["iccid"], d["field"], d["kind"]) for d in found["drift"]] == [(iccid(2), "cost_center", "drift")]
