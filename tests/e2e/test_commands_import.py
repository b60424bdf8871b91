"""`lattigo-fleet import` end to end: the demo account (300 SIMs) → fleet.yaml → the real `pulumi up` sends
nothing (the emulator's request log), and the next `pulumi preview --expect-no-changes` passes."""

from __future__ import annotations

import json
import subprocess

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.fleetfile import UNMANAGED, load_fleet


def test_import_of_the_demo_account_then_pulumi_up_sends_nothing(
    fleet_stack: PulumiStack, fresh_emulator: EmulatorServer, admin: AdminClient
) -> None:
    fresh_emulator.reset("demo")
    project = fleet_stack.project_dir
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lattigo-fleet"), "import", "--stack", fleet_stack.name, "--json"],
        cwd=project,
        env=fleet_stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["file"] == "fleet.yaml" and len(report["added"]) == 300
    assert report["calls_at_next_up"] == {}
    assert "reading the account: 300 SIM(s)" in proc.stderr
    spec = load_fleet(project / "fleet.yaml")
    assert len(spec) == 300
    assert {s.usage_limit for s in spec.sims} == {UNMANAGED}
    assert {s.rate_plan for s in spec.sims} == {None}

    admin.clear_requests()
    fleet_stack.up().check()
    assert admin.mutating() == []
    assert len(fleet_stack.resources("lattigo:Sim")) == 300

    admin.clear_requests()
    fleet_stack.preview("--expect-no-changes", "--diff").check()
    assert admin.mutating() == []
