"""The README's demo runs to its end on the shipped fleet.yaml and leaves the account matching it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from devtools.pulumi_stack import REPO, make_project


def test_demo_runs_to_its_end(tmp_path: Path, pulumi_bin: str) -> None:
    project = make_project(tmp_path / "project")
    shutil.copy(REPO / "fleet.yaml", project / "fleet.yaml")
    env = {
        **os.environ,
        "PATH": f"{pulumi_bin}{os.pathsep}{os.environ['PATH']}",
        "NO_COLOR": "1",
        "PULUMI_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lattigo-fleet"), "demo", "--project-dir", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    # The shipped fleet makes each kind of change once...
    for endpoint in (
        "activation_request",
        "change_simstate",
        "change_cost_center",
        "set_usage_limit",
        "remove_usage_limit",
        "/note",
    ):
        assert endpoint in out, endpoint
    # ...and the second look finds nothing left to do.
    assert "14 unchanged" in out
    assert "done: the account matches fleet.yaml" in out
    assert not list(project.glob("Pulumi.demo-*.yaml"))
