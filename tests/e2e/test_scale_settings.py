"""The engine settings every user runs with (lattigo_fleet/engine_settings.py), end to end: a run cut short
still converges on the next, and bulk requests hold what the plan foresaw, not what timing allowed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

from devtools.pulumi_stack import PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.engine_settings import ENGINE_ENV
from tests.e2e.fleets import PLAN_5MB, by_endpoint, device_names, iccid, imei


def test_the_tests_run_pulumi_as_users_do(fleet_stack: PulumiStack) -> None:
    assert {k: fleet_stack.env[k] for k in ENGINE_ENV} == ENGINE_ENV


def test_a_run_killed_mid_way_converges_on_the_next_with_nothing_sent_twice(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.reset("empty", activation_delay=3.0)  # activations take a while: time to kill the run
    new = range(1, 21)
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in new])
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: logistics}}\n' for i in new)
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}')
    admin.clear_requests()

    # The whole process group, as a CI runner's timeout does, once the activation request has gone.
    run = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "test"],
        cwd=fleet_stack.project_dir,
        env=fleet_stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any(r["path"].endswith("activation_request") for r in admin.mutating()):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)

    fleet_stack.run("cancel", "--yes").check()  # the documented way out of the lock a killed run leaves
    fleet_stack.up().check()
    fleet_stack.preview("--expect-no-changes").check()

    activated = Counter(
        row["iccid"]
        for r in admin.mutating()
        if r["path"].endswith("activation_request")
        for row in r["body"]["activation_requests"]
    )
    assert set(activated) == {iccid(i) for i in new} and set(activated.values()) == {1}  # none twice
    live = admin.sims()
    assert all(live[iccid(i)]["state"] == "active" and live[iccid(i)]["cost_center"] == "logistics" for i in new)
    assert {r["id"] for r in fleet_stack.resources("lattigo:Sim")} == {iccid(i) for i in new}


def test_bulk_requests_hold_what_the_plan_foresaw(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    """40 SIMs move to one cost center and 10 are suspended: one request each, however the engine schedules
    them (the batcher sends when every SIM the plan expects has asked; no timing decides)."""
    admin.add_sims(
        [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(1, 51)]
    )
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: ops}}\n' for i in range(1, 51))
    fleet_stack.write_fleet(f"version: 1\npolicy: {{max_changes: 100%}}\nsims:\n{rows}")
    fleet_stack.up().check()

    changed = rows
    for i in range(1, 41):
        changed = changed.replace(f'imei: "{imei(i)}", cost_center: ops', f'imei: "{imei(i)}", cost_center: cold')
    for i in range(41, 51):
        changed = changed.replace(
            f'imei: "{imei(i)}", cost_center: ops', f'imei: "{imei(i)}", cost_center: ops, state: suspended'
        )
    fleet_stack.write_fleet(f"version: 1\npolicy: {{max_changes: 100%}}\nsims:\n{changed}")
    fleet_stack.set_config("lattigo-fleet:batchWindowMs", "30000")  # the window must never be what decides
    admin.clear_requests()
    fleet_stack.up().check()
    calls = admin.mutating()
    assert by_endpoint(calls) == {"change_cost_center": 1, "change_simstate": 1}
    [moves] = [r for r in calls if r["path"].endswith("change_cost_center")]
    assert len(device_names(moves)) == 40


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), from /proc."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                found[int(entry)] = (ppid, cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_provider_program_and_language_host_exit_when_the_engine_is_killed(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.reset("empty", activation_delay=30.0)  # the apply would wait half a minute
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in range(1, 4)])
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}"}}\n' for i in range(1, 4))
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}')
    run = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "test"],
        cwd=fleet_stack.project_dir,
        env=fleet_stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(r["path"].endswith("activation_request") for r in admin.mutating()):
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        providers = [
            pid for pid, (ppid, cmd) in _processes().items() if ppid == run.pid and "lattigo_fleet.provider_host" in cmd
        ]
        assert len(providers) == 1, _processes()
        processes = _processes()
        hosts = {pid for pid, (ppid, _) in processes.items() if ppid == run.pid}
        programs = [
            pid for pid, (ppid, cmd) in processes.items() if ppid in hosts and "pulumi-language-python-exec" in cmd
        ]
        assert len(programs) == 1, processes
        run.kill()  # the engine alone, as a CI timeout does
        run.wait(timeout=30)
        deadline = time.monotonic() + 20
        while ({providers[0], programs[0]} | hosts) & set(_processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert providers[0] not in _processes(), "the provider outlived its engine"
        assert programs[0] not in _processes(), "the program outlived its engine"
        assert not hosts & set(_processes()), "the language host outlived its engine"
    finally:
        if run.poll() is None:
            run.kill()
        fleet_stack.run("cancel", "--yes")


def test_state_stays_under_one_and_a_half_kilobytes_per_sim(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    admin.add_sims(
        [
            {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops", "note": "depot"}
            for i in range(1, 51)
        ]
    )
    rows = "".join(
        f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: truck-{i:04d}, cost_center: ops, '
        "notes: {note: depot}, usage_limit: {kb_limit: 51200, action: suspend}}\n"
        for i in range(1, 51)
    )
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}')
    fleet_stack.up().check()
    import json

    sims = fleet_stack.resources("lattigo:Sim")
    per_sim = sum(len(json.dumps(r)) for r in sims) / len(sims)
    print(f"state: {per_sim:.0f} bytes per SIM")
    assert per_sim <= 1500
    assert not any("stackTrace" in r or isinstance(r["inputs"]["__provider"], dict) for r in sims)


def test_scattered_changes_still_share_one_request(fleet_stack: PulumiStack, admin: AdminClient) -> None:
    """The SIMs that change are spread through the fleet, so they reach the provider apart; a batch that still
    expects some does not go on the (here 1 ms) idle window, and the unchanged SIMs' diffs strike nobody off."""
    admin.add_sims(
        [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(1, 61)]
    )

    def fleet(moved: set[int]) -> str:
        rows = "".join(
            f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {"cold" if i in moved else "ops"}}}\n'
            for i in range(1, 61)
        )
        return f"version: 1\nsims:\n{rows}"

    fleet_stack.write_fleet(fleet(set()))
    fleet_stack.up().check()
    fleet_stack.set_config("lattigo-fleet:batchWindowMs", "1")
    fleet_stack.write_fleet(fleet(set(range(6, 61, 6))))
    admin.clear_requests()
    fleet_stack.up().check()
    [moves] = admin.mutating()
    assert moves["path"].endswith("change_cost_center") and len(device_names(moves)) == 10
