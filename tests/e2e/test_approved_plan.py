"""The approved plan is the applied plan: `lattigo-fleet plan` writes the plan document a reviewer approves, and
`lattigo-fleet apply --plan` applies exactly it, or sends nothing and names each stale SIM and field. End to
end: the real `pulumi`, the real program, the emulator's request log as the witness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.e2e.fleets import PLAN_5MB, by_endpoint, iccid, imei, seed_active


def fleet_of(rows: list[str], head: str = "") -> str:
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\n{head}sims:\n' + "".join(f"  - {r}\n" for r in rows)


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


def plan(stack: PulumiStack, name: str = "plan.json") -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    path = stack.project_dir / name
    result = lattigo_fleet(stack, "plan", "--out", str(path))
    assert path.exists(), result.stderr
    return result, json.loads(path.read_text()), path


def three_sims_applied(fleet_stack: PulumiStack, admin: AdminClient, extra: str = "cost_center: Fleet-East") -> None:
    seed_active(admin, range(1, 4))
    fleet_stack.write_fleet(fleet_of([row(i, extra) for i in range(1, 4)]))
    fleet_stack.up().check()


def test_the_plan_document_names_each_call_with_its_before_and_after_and_the_comment_its_digest(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    three_sims_applied(fleet_stack, admin)
    fleet_stack.write_fleet(fleet_of([row(1, "cost_center: Cold-Chain"), row(2, "cost_center: Fleet-East"), row(3)]))
    result, doc, _path = plan(fleet_stack)
    assert result.returncode == 0, result.stderr
    assert doc["stack"] == fleet_stack.name and doc["mode"] == "strict"
    [entry] = doc["sims"]
    assert entry["iccid"] == iccid(1) and entry["action"] == "update"
    assert entry["operations"] == [{"kind": "cost_center", "cost_center": "Cold-Chain"}]
    assert entry["before"] == {"state": "active", "cost_center": "Fleet-East"}
    assert entry["after"] == {"cost_center": "Cold-Chain"}
    assert doc["digest"].startswith("sha256:") and doc["digest"][7:19] in result.stdout
    assert "merge mode **strict**" in result.stdout


def test_a_out_of_band_change_to_a_sim_the_plan_touches_is_refused_with_nothing_sent(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    three_sims_applied(fleet_stack, admin)
    fleet_stack.write_fleet(
        fleet_of([row(1, "cost_center: Cold-Chain"), *(row(i, "cost_center: Fleet-East") for i in (2, 3))])
    )
    _result, approved, path = plan(fleet_stack)

    admin.add_sims([{"iccid": iccid(1), "cost_center": "Warehouse"}])  # someone, in the portal, after the review
    admin.clear_requests()
    applied = lattigo_fleet(fleet_stack, "apply", "--plan", str(path))
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert admin.mutating() == []
    assert f"truck-1 ({iccid(1)})" in applied.stdout
    assert "cost_center: 'Fleet-East' at review / 'Warehouse' now" in applied.stdout
    assert "The plan now, for a new review" in applied.stdout and "Cold-Chain" in applied.stdout
    assert admin.sims()[iccid(1)]["cost_center"] == "Warehouse"


def test_b_out_of_band_change_elsewhere_is_refused_in_strict_mode_and_healed_in_heal_mode(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    three_sims_applied(fleet_stack, admin)
    fleet_stack.write_fleet(
        fleet_of([row(1, "cost_center: Cold-Chain"), *(row(i, "cost_center: Fleet-East") for i in (2, 3))])
    )
    _result, approved, path = plan(fleet_stack)
    admin.add_sims([{"iccid": iccid(3), "state": "suspended"}])  # a SIM the pull request does not touch

    admin.clear_requests()
    strict = lattigo_fleet(fleet_stack, "apply", "--plan", str(path))
    assert strict.returncode == 3, strict.stdout + strict.stderr
    assert admin.mutating() == []
    assert f"truck-3 ({iccid(3)}): not in the approved plan; now: update (restore)" in strict.stdout
    assert "state: 'active' at review / 'suspended' now" in strict.stdout

    fleet_stack.set_config("lattigo-fleet:mergeMode", "heal")
    _result, approved, path = plan(fleet_stack)  # the plan says what heal mode does
    assert approved["mode"] == "heal"
    admin.add_sims([{"iccid": iccid(2), "cost_center": "Warehouse"}])  # and one more after this review
    admin.clear_requests()
    healed = lattigo_fleet(fleet_stack, "apply", "--plan", str(path))
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "healed what moved since" in healed.stderr
    sims = admin.sims()
    assert sims[iccid(1)]["cost_center"] == "Cold-Chain" and sims[iccid(2)]["cost_center"] == "Fleet-East"
    assert sims[iccid(3)]["state"] == "active"


def test_c_no_change_in_between_sends_exactly_the_approved_plans_writes(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    three_sims_applied(fleet_stack, admin)
    fleet_stack.write_fleet(
        fleet_of([row(1, "cost_center: Cold-Chain"), row(2, "cost_center: Cold-Chain"), row(3, "state: suspended")])
    )
    _result, approved, path = plan(fleet_stack)
    assert [e["operations"] for e in approved["sims"]] == [
        [{"kind": "cost_center", "cost_center": "Cold-Chain"}],
        [{"kind": "cost_center", "cost_center": "Cold-Chain"}],
        [{"kind": "suspend"}],
    ]
    admin.clear_requests()
    applied = lattigo_fleet(fleet_stack, "apply", "--plan", str(path), "--expect-digest", approved["digest"][7:19])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert by_endpoint(admin.mutating()) == {"change_cost_center": 1, "change_simstate": 1}
    assert fleet_stack.preview("--expect-no-changes").returncode == 0


def test_c_an_approved_activation_then_sets_the_fields_of_the_sim_it_activated(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    # A SIM in inventory is unknown to the API at review (no "before"); once this run activated it, its cost
    # center and notes are set on a SIM that is ours: no re-read may call that a change by someone else.
    three_sims_applied(fleet_stack, admin)
    admin.add_sims([{"iccid": iccid(4), "imei": imei(4)}])
    fleet_stack.write_fleet(
        fleet_of([*(row(i, "cost_center: Fleet-East") for i in (1, 2, 3)), row(4, "cost_center: Cold-Chain")])
    )
    _result, approved, path = plan(fleet_stack)
    [entry] = approved["sims"]
    assert entry["action"] == "activate" and "state" not in entry["before"], entry
    admin.clear_requests()
    applied = lattigo_fleet(fleet_stack, "apply", "--plan", str(path), "--expect-digest", approved["digest"][7:19])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert by_endpoint(admin.mutating()) == {"activation_request": 1, "change_cost_center": 1}, admin.mutating()
    assert fleet_stack.preview("--expect-no-changes").returncode == 0


def test_d_a_plan_made_before_main_moved_is_refused(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    three_sims_applied(fleet_stack, admin)
    base = [row(i, "cost_center: Fleet-East") for i in (1, 2, 3)]
    # Pull request 2 is planned on the base of that time ...
    fleet_stack.write_fleet(fleet_of([base[0], base[1], row(3, "cost_center: Retail")]))
    _result, second, second_path = plan(fleet_stack, "second.json")
    # ... then pull request 1 merges first: main (and the account) move.
    fleet_stack.write_fleet(fleet_of([row(1, "cost_center: Cold-Chain"), base[1], base[2]]))
    _result, first, first_path = plan(fleet_stack, "first.json")
    assert lattigo_fleet(fleet_stack, "apply", "--plan", str(first_path)).returncode == 0
    # The merge of pull request 2: main now holds both changes.
    fleet_stack.write_fleet(fleet_of([row(1, "cost_center: Cold-Chain"), base[1], row(3, "cost_center: Retail")]))
    admin.clear_requests()
    now_path = fleet_stack.project_dir / "plan-now.json"
    refused = lattigo_fleet(fleet_stack, "apply", "--plan", str(second_path), "--out", str(now_path))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert admin.mutating() == []
    assert "the fleet files differ from the ones the plan was made on (fleet.yaml)" in refused.stdout
    assert "Updating" not in refused.stdout, "standard output is the report alone; pulumi's goes to stderr"
    # The plan at merge time, reviewed from the refusal, is approved by its digest and applied as it is.
    now = json.loads(now_path.read_text())
    assert now["digest"][7:19] in refused.stdout and [e["name"] for e in now["sims"]] == ["truck-3"]
    approved = lattigo_fleet(fleet_stack, "apply", "--plan", str(now_path), "--expect-digest", now["digest"][7:19])
    assert approved.returncode == 0, approved.stdout + approved.stderr
    writes = admin.mutating()
    assert by_endpoint(writes) == {"change_cost_center": 1} and writes[0]["body"]["cost_center"] == "Retail", writes


def test_a_strict_merge_without_a_plan_or_with_another_digest_sends_nothing(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    three_sims_applied(fleet_stack, admin)
    fleet_stack.write_fleet(fleet_of([row(1, "cost_center: Cold-Chain"), row(2), row(3)]))
    _result, approved, path = plan(fleet_stack)
    admin.clear_requests()
    no_plan = lattigo_fleet(fleet_stack, "apply")
    assert no_plan.returncode == 1 and "no approved plan" in no_plan.stderr
    both = lattigo_fleet(fleet_stack, "apply", "--plan", str(path), "--heal")
    assert both.returncode == 1 and "not both" in both.stderr
    other = lattigo_fleet(fleet_stack, "apply", "--plan", str(path), "--expect-digest", "0123456789ab")
    assert other.returncode == 1 and "not the plan 0123456789ab that the reviewer read" in other.stderr
    edited = json.loads(path.read_text())
    edited["sims"][0]["operations"][0]["cost_center"] = "Elsewhere"
    path.write_text(json.dumps(edited))
    tampered = lattigo_fleet(fleet_stack, "apply", "--plan", str(path))
    assert tampered.returncode == 1 and "digest does not match its content" in tampered.stderr
    assert admin.mutating() == []


def test_e_the_blast_radius_is_a_share_of_the_larger_fleet_on_every_path(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    # 20 held; the pull request forgets 10 (on_remove: retain) and suspends 2, at max_changes 10%. Of the 20 held
    # that is 2 allowed; the program used to count 10% of the 10 left (1) and refuse what the guard allowed.
    seed_active(admin, range(1, 21))
    policy = "policy: {on_remove: retain, max_changes: 10%}\n"
    fleet_stack.write_fleet(fleet_of([row(i) for i in range(1, 21)], policy))
    fleet_stack.up().check()
    kept = [row(i, "state: suspended") if i in (1, 2) else row(i) for i in range(1, 11)]
    fleet_stack.write_fleet(fleet_of(kept, policy))
    result, doc, path = plan(fleet_stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert doc["guard"] | {"suspended": None} == {
        "out_of_service": 2,
        "suspended": None,
        "removed": [],
        "fleet_size": 20,
        "limit": 2,
        "allowed_by_setting": False,
        "refused": False,
        "message": None,
    }
    assert doc["counts"]["sims_forget"] == 10 and doc["counts"]["calls_suspend"] == 2
    admin.clear_requests()
    applied = lattigo_fleet(fleet_stack, "apply", "--plan", str(path))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert by_endpoint(admin.mutating()) == {"change_simstate": 1}


def test_f_a_sim_its_own_usage_limit_suspended_is_left_alone_and_said_so(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    from datetime import UTC, datetime

    seed_active(admin, range(1, 3))
    limit = "usage_limit: {kb_limit: 100, action: suspend}"
    fleet_stack.write_fleet(fleet_of([row(1, limit), row(2, limit)]))
    fleet_stack.up().check()  # sets both limits
    today = datetime.now(UTC).date().isoformat()
    fresh_emulator.record_usage(iccid(1), today, 200 * 1024)  # over its limit: the platform suspends it
    assert admin.sims()[iccid(1)]["state"] == "suspended"
    admin.add_sims([{"iccid": iccid(2), "state": "suspended"}])  # under its limit: someone suspended it

    result, doc, path = plan(fleet_stack)
    assert [(e["iccid"], e["verdict"], e["month_kb"]) for e in doc["left_alone"]] == [(iccid(1), "by_usage_limit", 200)]
    assert [e["iccid"] for e in doc["sims"]] == [iccid(2)]  # restored: drift
    assert doc["sims"][0]["limit_suspension"]["verdict"] == "not_by_usage_limit"
    assert "suspended by their own usage limit" in result.stdout and "truck-1" in result.stdout

    drift = lattigo_fleet(fleet_stack, "drift", "--json")
    report = json.loads(drift.stdout)
    assert [i["iccid"] for i in report["drift"]] == [iccid(2)]
    assert [s["iccid"] for s in report["left_alone"]] == [iccid(1)]

    admin.clear_requests()
    assert lattigo_fleet(fleet_stack, "apply", "--plan", str(path)).returncode == 0
    calls = admin.mutating()
    assert by_endpoint(calls) == {"change_simstate": 1}
    assert calls[0]["body"]["device_names"] == [iccid(2)]
    assert admin.sims()[iccid(1)]["state"] == "suspended"
    fleet_stack.up().check()  # a plain run leaves it alone too
    assert admin.sims()[iccid(1)]["state"] == "suspended"
