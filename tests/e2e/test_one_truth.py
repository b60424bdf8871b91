"""One truth from pull request to merge to nightly: what a preview shows is what an up does, and it stays
readable. Each test is one reproduced report (issue "One truth"), end to end: the real `pulumi`, the
emulator's request log as the witness."""

from __future__ import annotations

import re

import requests

from devtools.pulumi_stack import PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.e2e.fleets import PLAN_5MB, by_endpoint, device_names, iccid, imei, seed_active, small_fleet


def fleet_of(rows: list[str], head: str = "") -> str:
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\n{head}sims:\n' + "".join(f"  - {r}\n" for r in rows)


def row(i: int, extra: str = "") -> str:
    return f'{{iccid: "{iccid(i)}", imei: "{imei(i)}", name: truck-{i}{", " + extra if extra else ""}}}'


def test_a_plain_up_heals_drift_that_the_preview_announced(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, range(1, 4))
    fleet_stack.write_fleet(fleet_of([row(i, "cost_center: Fleet-East") for i in range(1, 4)]))
    fleet_stack.up().check()

    admin.add_sims([{"iccid": iccid(2), "cost_center": "Warehouse"}])  # someone, in the portal
    admin.clear_requests()
    preview = fleet_stack.preview("--diff")  # no --refresh: each diff is against the live account anyway
    preview.check()
    assert "cost center -> 'Fleet-East': 1 SIM(s): truck-2" in preview.output
    assert "~ cost_center:" in preview.output  # the one changed field (its old side: the applied value)
    assert "truck-2 cost_center: 'Fleet-East' applied, 'Warehouse' in the account" in preview.output
    assert "1 to update" in preview.output
    assert admin.mutating() == []

    fleet_stack.up().check()  # the merge recipe: no --refresh either
    calls = admin.mutating()
    assert [r["path"].rsplit("/", 1)[-1] for r in calls] == ["change_cost_center"]
    assert device_names(calls[0]) == [admin.sims()[iccid(2)]["device_name"]]
    assert admin.sims()[iccid(2)]["cost_center"] == "Fleet-East"
    fleet_stack.preview("--expect-no-changes").check()


def test_a_rate_plan_declared_on_an_adopted_sim_is_said_not_applied_and_never_recorded(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    seed_active(admin, [1])  # on the 5mb plan
    fleet_stack.write_fleet(fleet_of([row(1, 'rate_plan: "ACME Co 10MB Plan"')]))
    admin.clear_requests()
    preview = fleet_stack.preview()
    preview.check()
    assert "rate_plan" in preview.output and "not applied" in preview.output
    assert "can neither read nor change the rate plan" in preview.output

    result = fleet_stack.up()
    result.check()
    assert admin.mutating() == []
    [sim] = fleet_stack.resources("lattigo:Sim")
    assert "rate_plan" not in sim["outputs"] and sim["outputs"]["origin"] == "adopted"

    # Correcting it to the true plan (or anything else) is neither refused nor a change.
    fleet_stack.write_fleet(fleet_of([row(1, f'rate_plan: "{PLAN_5MB}"')]))
    fleet_stack.preview("--expect-no-changes").check()
    fleet_stack.up().check()
    assert admin.mutating() == []


def test_destroy_with_on_remove_suspend_is_refused_before_the_first_suspension(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    seed_active(admin, range(1, 4))
    policy = "policy: {on_remove: suspend, max_changes: 1}\n"
    fleet_stack.write_fleet(small_fleet({1: "active", 2: "active", 3: "active"}, policy))
    fleet_stack.up().check()
    admin.clear_requests()

    refused = fleet_stack.destroy()
    assert refused.returncode != 0
    assert (
        "take 3 SIMs out of service" in refused.output
        and "LATTIGO_ALLOW_LARGE_CHANGES=true pulumi destroy" in refused.output
    )
    assert admin.mutating() == []
    assert all(s["state"] == "active" for s in admin.sims().values())

    fleet_stack.env["LATTIGO_ALLOW_LARGE_CHANGES"] = "true"
    fleet_stack.destroy().check()
    calls = admin.mutating()
    assert by_endpoint(calls) == {"change_simstate": 1}  # one bulk request for the whole fleet
    assert sorted(device_names(calls[0])) == [iccid(i) for i in range(1, 4)]
    assert all(s["state"] == "suspended" for s in admin.sims().values())


def test_a_removal_over_the_limit_is_refused_in_up_before_any_suspension(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    seed_active(admin, range(1, 5))
    policy = "policy: {on_remove: suspend, max_changes: 1}\n"
    fleet_stack.write_fleet(small_fleet({i: "active" for i in range(1, 5)}, policy))
    fleet_stack.up().check()
    fleet_stack.write_fleet(small_fleet({1: "suspended", 2: "active"}, policy))  # 1 suspension + 2 removals
    admin.clear_requests()
    result = fleet_stack.up()
    assert result.returncode != 0
    assert "take 3 SIMs out of service" in result.output
    assert "1 suspended by fleet.yaml" in result.output and "2 removed from fleet.yaml" in result.output
    assert admin.mutating() == []


def test_a_config_key_typo_is_refused_with_a_did_you_mean(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, [1])
    fleet_stack.write_fleet(fleet_of([row(1)]))
    fleet_stack.set_config("lattigo-fleet:fleetfile", "other.yaml")
    fleet_stack.set_config("lattigo:endpiont", "http://127.0.0.1:9")
    admin.clear_requests()
    result = fleet_stack.preview()
    assert result.returncode != 0
    assert (
        "unknown stack config key `lattigo-fleet:fleetfile`; did you mean `lattigo-fleet:fleetFile`?" in result.output
    )
    assert "`lattigo:endpiont`; did you mean `lattigo:endpoint`?" in result.output
    assert "Traceback" not in result.output
    assert admin.api_requests() == []


def test_a_move_to_a_cost_center_nobody_uses_is_warned_with_a_did_you_mean(
    fleet_stack: PulumiStack, admin: AdminClient
) -> None:
    admin.add_sims(
        [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "Fleet-East"} for i in range(1, 4)]
    )
    fleet_stack.write_fleet(fleet_of([row(1), row(2), row(3, "cost_center: Fleet-Eastt")]))
    preview = fleet_stack.preview()
    preview.check()
    assert re.search(
        r"fleet\.yaml:6:\d+: cost_center: 1 SIM\(s\) move to 'Fleet-Eastt', which no SIM in the "
        r"account uses yet; did you mean 'Fleet-East'\?",
        preview.output,
    ), preview.output
    # An existing cost center is no warning.
    fleet_stack.write_fleet(fleet_of([row(1), row(2), row(3, "cost_center: Fleet-East")]))
    assert "no SIM in the account uses yet" not in fleet_stack.preview().check().output


def test_a_sim_of_another_account_is_refused_at_preview_with_its_position(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    from tests.conftest import OTHER_ACCOUNT_SIMS

    other = OTHER_ACCOUNT_SIMS[0]
    seed_active(admin, [1])
    fleet_stack.write_fleet(fleet_of([row(1), f'{{iccid: "{other["iccid"]}", imei: "{other["imei"]}"}}']))
    admin.clear_requests()
    result = fleet_stack.preview()
    assert result.returncode != 0
    assert re.search(
        rf"fleet\.yaml:5:\d+: sims\[1\]\.iccid: SIM {other['iccid']}: this ICCID is not in this "
        r"account's inventory: the API answers 403 Forbidden",
        result.output,
    ), result.output
    assert admin.mutating() == []


def test_a_suspension_by_the_platform_can_be_declared_expected(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, [1, 2])
    fleet_stack.write_fleet(fleet_of([row(1, "ignore_changes: [state]"), row(2)]))
    fleet_stack.up().check()

    # Both SIMs reach their usage limit and the platform suspends them (the API does not say why).
    admin.add_sims([{"iccid": iccid(1), "state": "suspended"}, {"iccid": iccid(2), "state": "suspended"}])
    admin.clear_requests()
    drift = fleet_stack.preview("--expect-no-changes", "--diff")
    assert drift.returncode != 0
    assert "truck-2" in drift.output or iccid(2) in drift.output
    assert iccid(1) not in drift.output  # expected: not drift

    fleet_stack.up().check()
    calls = admin.mutating()
    assert by_endpoint(calls) == {"change_simstate": 1} and calls[0]["body"]["state"] == "restore"
    assert device_names(calls[0]) == [iccid(2)]
    assert admin.sims()[iccid(1)]["state"] == "suspended"


def test_adding_one_sim_prints_nothing_in_proportion_to_the_fleet(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, range(1, 41))
    fleet_stack.write_fleet(fleet_of([row(i) for i in range(1, 41)]))
    fleet_stack.up().check()

    admin.add_sims([{"iccid": iccid(41), "imei": imei(41)}])
    fleet_stack.write_fleet(fleet_of([row(i) for i in range(1, 42)]))
    preview = fleet_stack.preview("--diff")
    preview.check()
    assert iccid(41) in preview.stdout
    assert not any(iccid(i) in preview.stdout for i in range(1, 41)), preview.stdout
    assert "managed" not in preview.stdout
    # The guard's bookkeeping is one line whatever the fleet's size.
    assert "sims: 40 => 41" in preview.stdout


def test_a_drift_report_after_a_day_of_usage_shows_only_the_drift(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    seed_active(admin, range(1, 11))
    fleet_stack.write_fleet(fleet_of([row(i, "cost_center: ops, notes: {note: depot}") for i in range(1, 11)]))
    fleet_stack.up().check()

    today = requests.get(f"{fresh_emulator.base_url}/_emulator/clock", timeout=30).json()
    day = str(today.get("now") or today.get("time") or "")[:10]
    for i in range(1, 11):
        requests.post(
            f"{fresh_emulator.base_url}/_emulator/usage",
            json={"iccid": iccid(i), "date": day, "bytes": 1000 * i, "sms": i},
            timeout=30,
        ).raise_for_status()
    fresh_emulator.tick()
    admin.add_sims([{"iccid": iccid(7), "note": "moved to the north yard"}])  # the one real drift

    drift = fleet_stack.preview("--expect-no-changes", "--diff")
    assert drift.returncode != 0
    lines = drift.stdout.splitlines()
    assert sum("(update)" in line for line in lines) == 1  # truck-7, and nothing else
    assert [line.strip().split(":")[0] for line in lines if "=>" in line] == ["~ note"]  # notes.note, once
    assert "truck-7 notes.note: 'depot' applied, 'moved to the north yard' in the account" in drift.output
    for noise in ("bytes_used", "sms_used", "last_connection_date", "connected", "managed"):
        assert noise not in drift.stdout
    print(f"drift report: {len(lines)} lines, {len(drift.stdout)} characters")


def test_a_renamed_sim_is_no_change(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, [1, 2])
    fleet_stack.write_fleet(fleet_of([row(1), row(2)]))
    fleet_stack.up().check()
    fleet_stack.write_fleet(fleet_of([row(1), row(2).replace("truck-2", "lorry-2")]))
    preview = fleet_stack.preview("--diff", "--expect-no-changes")
    preview.check()
    assert "delete" not in preview.stdout and "create" not in preview.stdout


def test_a_reviewer_can_tell_adoptions_from_activations(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    seed_active(admin, [1])
    admin.add_sims([{"iccid": iccid(2), "imei": imei(2)}])  # in inventory: to activate
    fleet_stack.write_fleet(fleet_of([row(1), row(2)]))
    preview = fleet_stack.preview("--diff")
    preview.check()
    blocks = [re.sub(r" +:", ":", b) for b in preview.stdout.split("(create)")]
    adopted = next(b for b in blocks if f'iccid: "{iccid(1)}"' in b)
    activated = next(b for b in blocks if f'iccid: "{iccid(2)}"' in b)
    assert 'origin: "adopted"' in adopted and "rate_plan" not in adopted
    assert 'origin: "activated"' in activated and f'rate_plan: "{PLAN_5MB}"' in activated
    assert "activate on 'ACME Co 5mb Rate Plan': 1 SIM(s): truck-2" in preview.output


def test_an_apply_does_not_probe_new_sims_and_the_api_refuses_another_accounts_by_name(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    """The preview asks about each SIM the account does not list (the test above); the apply does not ask again
    (100 new SIMs were 100 more reads per `up`). Without a preview, another account's SIM costs only its row of
    the activation request: rejected by name, while the SIM beside it is activated."""
    from tests.conftest import OTHER_ACCOUNT_SIMS

    other = OTHER_ACCOUNT_SIMS[0]
    seed_active(admin, [1])
    admin.add_sims([{"iccid": iccid(2), "imei": imei(2)}])  # in inventory: to activate
    fleet_stack.write_fleet(fleet_of([row(1), row(2), f'{{iccid: "{other["iccid"]}", imei: "{other["imei"]}"}}']))
    admin.clear_requests()
    result = fleet_stack.up()  # --skip-preview: the program runs once, as an apply
    assert result.returncode != 0
    assert other["iccid"] in result.output and "not found in this account's inventory" in result.output
    log = admin.api_requests()
    activation = next(i for i, r in enumerate(log) if r["path"].endswith("/activation_request"))
    one_sim_reads = [i for i, r in enumerate(log) if re.fullmatch(r"/v2/devices/\d+", r["path"])]
    assert all(i > activation for i in one_sim_reads), log  # only the check that an activation landed
    assert not any(log[i]["path"].endswith(other["iccid"]) for i in one_sim_reads)
    assert admin.sims()[iccid(2)]["state"] == "active"
