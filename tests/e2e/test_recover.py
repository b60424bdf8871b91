"""`lattigo-fleet recover` end to end: the real pulumi CLI, killed with SIGKILL (its whole process group, as a CI
runner's timeout does) once the first activation request has reached the emulator; then `lattigo-fleet recover
--yes`, and the next `pulumi up` converges, the next `pulumi preview --expect-no-changes` passes, and no SIM is
activated twice. With the project's engine settings (ENGINE_ENV, PULUMI_SKIP_CHECKPOINTS=true) and without.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.engine_settings import ENGINE_ENV
from tests.e2e.fleets import PLAN_5MB, iccid, imei

NEW = range(1, 13)  # in inventory: activated by the run
MOVED = range(13, 19)  # active in 'ops', moved to 'logistics'
SUSPENDED = range(19, 23)  # active, suspended
ALL = range(1, 23)


def _fleet(changed: bool) -> str:
    rows = []
    for i in ALL:
        if i in NEW and not changed:
            continue
        cost_center = "logistics" if changed and i in MOVED else "ops"
        state = "suspended" if changed and i in SUSPENDED else "active"
        rows.append(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}, state: {state}}}')
    return (
        f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\npolicy: {{max_changes: 100%}}\nsims:\n'
        + "\n".join(rows)
        + "\n"
    )


def _start_up(stack: PulumiStack) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name],
        cwd=stack.project_dir,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for_activation(run: subprocess.Popen[bytes], admin: AdminClient) -> None:
    deadline = time.monotonic() + 180
    while not any(r["path"].endswith("activation_request") for r in admin.mutating()):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)


def _kill_group(run: subprocess.Popen[bytes]) -> None:
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)


def recover(stack: PulumiStack, *extra: str) -> subprocess.CompletedProcess[str]:
    """`lattigo-fleet recover` as a user runs it, in the stack's environment."""
    return subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "lattigo-fleet"),
            "recover",
            "--stack",
            stack.name,
            "--cwd",
            str(stack.project_dir),
            *extra,
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _lock_files(stack: PulumiStack) -> list[Path]:
    backend = Path(stack.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return list((backend / ".pulumi" / "locks").rglob("*.json"))


def _pending(stack: PulumiStack) -> list[str]:
    return [op["type"] for op in stack.export()["deployment"].get("pending_operations") or []]


@pytest.mark.parametrize("skip_checkpoints", [True, False], ids=["skip-checkpoints", "checkpoints"])
def test_kill_9_then_recover_then_up_converges_with_nothing_sent_twice(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer, skip_checkpoints: bool
) -> None:
    assert fleet_stack.env["PULUMI_SKIP_CHECKPOINTS"] == ENGINE_ENV["PULUMI_SKIP_CHECKPOINTS"]  # the harness's
    if not skip_checkpoints:
        fleet_stack.env.pop("PULUMI_SKIP_CHECKPOINTS")
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in NEW])
    admin.add_sims(
        [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in ALL if i not in NEW]
    )
    fleet_stack.write_fleet(_fleet(changed=False))
    fleet_stack.up().check()  # the SIMs already in the account, adopted: moves and suspensions are updates

    fresh_emulator.backend.activation_delay = 3.0  # activations take a while: time to kill the run
    fleet_stack.write_fleet(_fleet(changed=True))
    admin.clear_requests()
    run = _start_up(fleet_stack)
    _wait_for_activation(run, admin)
    _kill_group(run)

    # What a killed run leaves: a lock (the next up is refused) and, only with checkpoints, pending CREATEs.
    refused = fleet_stack.run("up", "--yes", "--skip-preview")
    # A kill that lands while the engine writes a checkpoint (only with checkpoints) leaves it cut off too:
    # recover restores the previous one (test_a_cut_off_checkpoint_is_restored_from_its_backup).
    cut_off = not skip_checkpoints and "failed to load checkpoint" in refused.output
    assert refused.returncode != 0 and ("locked" in refused.output or cut_off), refused.output
    assert _lock_files(fleet_stack)
    pending = [] if cut_off else _pending(fleet_stack)
    if skip_checkpoints:
        assert pending == []  # the engine writes the state once, at the end: a killed run writes none
    elif not cut_off:
        assert pending and set(pending) <= {"creating", "updating"} and "creating" in pending, pending

    done = recover(fleet_stack, "--yes")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    print(done.stdout)
    if cut_off:
        assert lines.pop(1).startswith("checkpoint: "), done.stdout  # the state file or its metadata sidecar
    assert lines[0] == f"checked: no pulumi run on stack 'test' in {fleet_stack.project_dir} is alive"
    assert lines[1].startswith("lock: removed the lock left by a dead run (pid ")
    if skip_checkpoints:
        assert lines[2] == "pending operations: none in the state, nothing to clear"
    elif cut_off:  # the restored checkpoint may hold the killed run's first pending operations, or none
        assert lines[2].startswith("pending operations: "), done.stdout
    else:
        assert lines[2].startswith(f"pending operations: cleared {len(pending)} (")
        assert lines[2].endswith(") with pulumi refresh --clear-pending-creates")
    assert lines[3].startswith("next: pulumi up --stack test")
    assert done.stderr == ""
    assert _lock_files(fleet_stack) == [] and _pending(fleet_stack) == []

    up = fleet_stack.up().check()
    assert "pending operations" not in up.output  # no warning left behind
    fleet_stack.preview("--expect-no-changes").check()

    activated = Counter(
        row["iccid"]
        for r in admin.mutating()
        if r["path"].endswith("activation_request")
        for row in r["body"]["activation_requests"]
    )
    assert set(activated) == {iccid(i) for i in NEW} and set(activated.values()) == {1}  # none twice
    live = admin.sims()
    assert all(live[iccid(i)]["state"] == "active" for i in NEW)
    assert all(live[iccid(i)]["cost_center"] == "logistics" for i in MOVED)
    assert all(live[iccid(i)]["state"] == "suspended" for i in SUSPENDED)
    assert {r["id"] for r in fleet_stack.resources("lattigo:Sim")} == {iccid(i) for i in ALL}

    again = recover(fleet_stack, "--yes")  # on a healthy stack: nothing to do, and no failure
    assert again.returncode == 0 and "lock: none; stack 'test' was not locked" in again.stdout, again.stderr


def test_recover_refuses_while_the_run_is_alive_and_names_its_pid(
    fleet_stack: PulumiStack, admin: AdminClient, fresh_emulator: EmulatorServer
) -> None:
    fresh_emulator.reset("empty", activation_delay=60.0)  # the run waits for its activations
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in range(1, 4)])
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}"}}\n' for i in range(1, 4))
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}')
    run = _start_up(fleet_stack)
    try:
        _wait_for_activation(run, admin)
        refused = recover(fleet_stack, "--yes")
        assert refused.returncode == 1
        assert refused.stderr == (
            f"lattigo-fleet recover: pulumi up (pid {run.pid}) is still running on stack 'test' "
            f"in {fleet_stack.project_dir}: let it finish or stop it, then run recover again; "
            "nothing was changed\n"
        )
        assert _lock_files(fleet_stack)  # the live run keeps its lock
        assert run.poll() is None
    finally:
        if run.poll() is None:
            _kill_group(run)
    done = recover(fleet_stack, "--yes")
    assert done.returncode == 0, done.stderr
    assert _lock_files(fleet_stack) == []


@pytest.mark.parametrize("cut", ["checkpoint", "metadata sidecar"])
def test_a_cut_off_checkpoint_is_restored_from_its_backup(
    fleet_stack: PulumiStack, admin: AdminClient, cut: str
) -> None:
    """A kill while the engine writes a checkpoint (or a disk that filled then) can leave the stack's state file
    cut off: every command says `failed to load checkpoint`. recover keeps the cut-off file aside and restores
    the backend's backup of the previous checkpoint; the next up re-reads the account and converges."""
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(1, 4)])
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: ops}}\n' for i in range(1, 4))
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}')
    fleet_stack.up().check()
    fleet_stack.write_fleet(f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}'.replace("ops", "lab"))
    fleet_stack.up().check()  # a second checkpoint: the first is its .bak
    backend = Path(fleet_stack.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    [checkpoint] = [p for p in (backend / ".pulumi" / "stacks").rglob(f"{fleet_stack.name}.json")]
    assert checkpoint.with_name(checkpoint.name + ".bak").exists()
    if cut == "checkpoint":
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    else:  # the bucket driver's metadata sidecar, truncated before it was written (seen after a kill -9)
        checkpoint.with_name(checkpoint.name + ".attrs").write_bytes(b"")
    broken = fleet_stack.run("preview")
    assert broken.returncode != 0 and "failed to load checkpoint" in broken.output, broken.output

    done = recover(fleet_stack, "--yes")
    assert done.returncode == 0, done.stderr
    said = "the state file was cut off" if cut == "checkpoint" else "test.json.attrs was cut off"
    assert f"checkpoint: {'the state' if cut != 'checkpoint' else ''}" in done.stdout and said in done.stdout, (
        done.stdout
    )
    assert list(checkpoint.parent.glob("*.cut-off-*")), "the cut-off file is kept aside"
    fleet_stack.up().check()
    fleet_stack.preview("--expect-no-changes").check()
    assert {
        s["iccid"]: s["cost_center"] for s in admin.sims().values() if s["iccid"] in {iccid(i) for i in range(1, 4)}
    } == {iccid(i): "lab" for i in range(1, 4)}
