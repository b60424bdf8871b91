"""`lattigo-fleet stacks`: the stacks from their Pulumi.<stack>.yaml files, and those a change touches."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lattigo_fleet.cli import build_parser
from lattigo_fleet.commands import stacks
from lattigo_fleet.commands.stacks import StackFiles

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(["stacks", *argv])
    out = io.StringIO()
    code = stacks.main(args, out)
    return code, out.getvalue(), capsys.readouterr().err


def git(cwd: Path, *args: str) -> None:
    import os

    subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Three stacks of one project, each with its fleet file under fleets/, committed."""
    root = tmp_path / "repo"
    (root / "fleets").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: lattigo-fleet\n")
    for name in ("east", "west", "north"):
        (root / f"Pulumi.{name}.yaml").write_text(
            f"config:\n  lattigo-fleet:fleetFile: fleets/{name}.yaml\n  lattigo-fleet:siblingStacks: east,west,north\n"
        )
        (root / "fleets" / f"{name}.yaml").write_text("version: 1\nsims: []\n")
    (root / "Pulumi.plain.yaml").write_text("config:\n  lattigo:endpoint: https://x\n")  # the default fleet file
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_the_stacks_are_the_settings_files_with_their_fleet_files(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--cwd", str(project)], capsys)
    assert (code, err) == (0, "")
    assert out == "east\tfleets/east.yaml\nnorth\tfleets/north.yaml\nplain\tfleet.yaml\nwest\tfleets/west.yaml\n"
    code, out, _ = run(["--cwd", str(project), "--json"], capsys)
    assert json.loads(out) == ["east", "north", "plain", "west"]


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        ({"fleets/west.yaml": "version: 1\nsims: []\n# moved\n"}, ["west"]),
        ({"fleets/west.d/trucks.yaml": "sims: []\n"}, ["west"]),  # untracked, in its <stem>.d
        ({"Pulumi.north.yaml": "config: {}\n"}, ["north"]),
        ({"fleet.yaml": "version: 1\nsims: []\n"}, ["plain"]),
        ({"Pulumi.yaml": "name: lattigo-fleet\ndescription: x\n"}, ["east", "north", "plain", "west"]),
        ({"README.md": "x\n", "fleets/westward.yaml": "sims: []\n"}, []),
    ],
)
def test_changed_from_lists_the_stacks_a_change_touches(
    project: Path, change: dict[str, str], changed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in change.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    code, out, err = run(["--cwd", str(project), "--changed-from", "HEAD", "--json"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == changed


def test_changes_in_another_checkout_and_a_deleted_fleet_file(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stacks are this checkout's; what changed is read in the other (a pull request's), committed there."""
    other = tmp_path / "pull-request"
    subprocess.run(["git", "clone", "-q", str(project), str(other)], check=True, capture_output=True)
    (other / "fleets" / "east.yaml").unlink()
    git(other, "commit", "-qam", "drop east")
    code, out, err = run(
        ["--cwd", str(project), "--changed-from", "HEAD^1", "--changes-in", str(other), "--json"], capsys
    )
    assert (code, json.loads(out), err) == (0, ["east"], "")


def test_one_stack_alone_and_a_stack_without_settings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--cwd", str(project), "--stack", "west"], capsys)[:2] == (0, "west\tfleets/west.yaml\n")
    # All its settings from the environment: the default fleet file.
    assert run(["--cwd", str(project), "--stack", "prod"], capsys)[:2] == (0, "prod\tfleet.yaml\n")


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (None, ["--changed-from", "nope"], "cannot list the changes since nope in "),
        (None, ["--changed-from=--output=x"], "--changed-from '--output=x': not a git revision"),
        (None, ["--changes-in", "x"], "--changes-in needs --changed-from REF"),
        (None, ["--stack", "a/b"], "--stack 'a/b': not a stack name of this project"),
        ({"Pulumi.bad.yaml": "config: [\n"}, [], "Pulumi.bad.yaml: not a stack settings file: "),
        (
            {"Pulumi.bad.yaml": "config:\n  lattigo-fleet:fleetFile: ../../etc/passwd\n"},
            [],
            "Pulumi.bad.yaml: lattigo-fleet:fleetFile must be a path inside the project, not '../../etc/passwd'",
        ),
    ],
)
def test_a_failure_is_one_line(
    project: Path,
    setup: dict[str, str] | None,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, text in (setup or {}).items():
        (project / name).write_text(text)
    code, out, err = run(["--cwd", str(project), *argv], capsys)
    assert code == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"lattigo-fleet stacks: {message}"), err


def test_a_project_without_stacks_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--cwd", str(tmp_path)], capsys)
    assert code == 1
    how = "(a Pulumi.<stack>.yaml for each stack: `pulumi stack init`)"
    assert err == f"lattigo-fleet stacks: no stack settings in {tmp_path} {how}\n"


@pytest.mark.parametrize(
    ("path", "touched"),
    [
        ("fleets/east.yaml", True),
        ("fleets/./east.yaml", True),
        ("fleets/east.d/a.yaml", True),
        ("fleets/east.d", False),  # the directory itself is no file git lists
        ("fleets/eastern.yaml", False),
        ("Pulumi.east.yaml", True),
        ("Pulumi.yaml", True),
        ("Pulumi.west.yaml", False),
    ],
)
def test_what_touches_a_stack(path: str, touched: bool) -> None:
    assert StackFiles("east", "Pulumi.east.yaml", "fleets/east.yaml").touched_by(path) is touched


def child(project: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    out = project / "child.yml"
    code, _, err = run(
        [
            "--cwd",
            str(project),
            "--gitlab-pipeline",
            str(out),
            "--gitlab-component",
            "h/g/lattigo-fleet/lattigo-fleet@v1",
            *argv,
        ],
        capsys,
    )
    assert code == 0, err
    loaded: dict[str, Any] = yaml.safe_load(out.read_text())
    return loaded


def test_a_gitlab_child_pipeline_has_a_job_per_stack_and_the_report_after_them(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = child(
        project, capsys, "--gitlab-command", "drift", "--gitlab-image", "img:1", "--gitlab-variable", "FLEET_MR_IID=7"
    )
    assert doc["include"] == [
        {"component": "h/g/lattigo-fleet/lattigo-fleet@v1", "inputs": {"command": "jobs", "stage": "report"}}
    ]
    assert doc["default"] == {"image": "img:1"}
    assert doc["variables"] == {
        "FLEET_MATRIX": "true",
        "FLEET_STACKS": '["east", "north", "plain", "west"]',
        "LATTIGO_FLEET_BUDGET_SHARES": "4",  # GitLab may run every stack's job at once
        "FLEET_MR_IID": "7",
    }
    jobs = [name for name in doc if name not in ("stages", "include", "default", "variables")]
    assert jobs == [
        "fleet-snapshot",
        "fleet-drift: east",
        "fleet-drift: north",
        "fleet-drift: plain",
        "fleet-drift: west",
        "fleet-drift-issue",
    ]
    assert doc["fleet-drift: west"] == {
        "extends": ".lattigo-fleet-drift",
        "stage": "stacks",
        "rules": [{"when": "on_success"}],
        "variables": {"FLEET_STACK": "west", "FLEET_FILE": "fleets/west.yaml"},
    }
    assert doc["fleet-drift-issue"]["rules"] == [{"when": "always"}] and doc["fleet-drift-issue"]["stage"] == "report"


def test_a_merges_child_pipeline_applies_each_stack_apart_and_one_stack_reads_the_account_itself(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "fleets" / "west.yaml").write_text("version: 1\nsims: []\n# changed\n")
    doc = child(project, capsys, "--gitlab-command", "apply", "--changed-from", "HEAD")
    jobs = [name for name in doc if name not in ("stages", "include", "variables")]
    assert jobs == ["fleet-apply: west"]
    assert doc["fleet-apply: west"]["resource_group"] == "lattigo-fleet-apply-west"
    assert [
        n for n in child(project, capsys, "--gitlab-command", "plan", "--stack", "west") if n.startswith("fleet-")
    ] == [
        "fleet-plan: west",
        "fleet-comment",
    ], "no snapshot job for one stack: its own read is as many"
    (project / "fleets" / "west.yaml").write_text("version: 1\nsims: []\n")
    doc = child(project, capsys, "--gitlab-command", "plan", "--changed-from", "HEAD")
    assert [n for n in doc if n.startswith("fleet-")] == ["fleet-plan: no stack"], "GitLab refuses a pipeline of no job"
