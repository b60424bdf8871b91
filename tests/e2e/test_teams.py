"""Teams: the state in a shared S3-compatible backend with Pulumi's own locking, and one account sharded over
stacks that never manage the same SIM. The real `pulumi` CLI, a real S3 server (moto's, on loopback) and the
emulator, whose request log is the witness of every call.

The only timing used is the deterministic overlap: the first `up` activates SIMs that take 5 s to activate
(the emulator's activation delay), and the second `up` starts once the first one's activation request is in
the request log, so the first one holds the stack's lock while the second one starts.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from devtools.pulumi_stack import REPO, PulumiResult, PulumiStack, make_project
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.sharding import sibling_iccids
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME
from tests.e2e.fleets import PLAN_5MB, device_names, iccid, imei

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, self.port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{self.port}"

    def client(self) -> Any:  # a boto3 S3 client: boto3 ships no type information
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self) -> str:
        name = f"lattigo-state-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in listed.get("Contents") or []]

    def readme_url(self, bucket: str) -> str:
        """The form docs/teams.md documents (gocloud.dev s3blob's own parameters)."""
        return f"s3://{bucket}?endpoint={self.endpoint}&disable_https=true&use_path_style=true&region=us-east-1"

    def legacy_url(self, bucket: str) -> str:
        """The AWS SDK v1-era form, which Pulumi translates (disableSSL -> disable_https, scheme added)."""
        return f"s3://{bucket}?endpoint=127.0.0.1:{self.port}&disableSSL=true&s3ForcePathStyle=true"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every S3 request
    server = S3Server()
    try:
        yield server
    finally:
        server.server.stop()


class TeamStack(PulumiStack):
    """A stack of the real program whose state is in the shared S3 backend (not the harness's file backend)."""

    def __init__(self, project_dir: Path, root: Path, name: str, *, bin_dir: str, backend_url: str) -> None:
        self.backend_env = {**AWS_ENV, "PULUMI_BACKEND_URL": backend_url}
        super().__init__(project_dir, root, name, bin_dir=bin_dir)

    def run(self, *args: str, timeout: float = 900) -> PulumiResult:
        self.env.update(self.backend_env)
        return super().run(*args, timeout=timeout)

    def start_up(self) -> subprocess.Popen[str]:
        self.env.update(self.backend_env)
        return subprocess.Popen(
            ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", self.name],
            cwd=self.project_dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


TwoStacks: TypeAlias = tuple[Path, dict[str, TeamStack]]  # the `two_stacks` fixture: (project, name -> stack)


def team_stack(
    project: Path, root: Path, name: str, emulator_url: str, bin_dir: str, backend_url: str, **config: str
) -> TeamStack:
    stack = TeamStack(project, root / f"home-{name}", name, bin_dir=bin_dir, backend_url=backend_url)
    stack.set_config("lattigo:endpoint", emulator_url)
    stack.set_config("lattigo:keyName", EMULATOR_KEY_NAME)
    stack.set_config("lattigo:apiKey", EMULATOR_API_KEY, secret=True)
    stack.set_config("lattigo-fleet:activationTimeout", "60")
    for key, value in config.items():
        stack.set_config(f"lattigo-fleet:{key}", value)
    return stack


def fleet_text(indices: Iterable[int], cost_center: str = "logistics") -> str:
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}}}\n' for i in indices)
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}'


def finish(run: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    out, err = run.communicate(timeout=timeout)
    return run.returncode, out + err


def assert_no_device_changed_twice(calls: list[dict[str, Any]]) -> Counter[str]:
    """Per endpoint, every device at most once; returns how many devices each endpoint touched."""
    touched: Counter[str] = Counter()
    for endpoint in {r["path"].rsplit("/", 1)[-1] for r in calls if "/device_operations/" in r["path"]}:
        names = [n for r in calls if r["path"].endswith("/" + endpoint) for n in device_names(r)]
        if endpoint == "activation_request":
            names = [
                row["iccid"]
                for r in calls
                if r["path"].endswith("/" + endpoint)
                for row in r["body"]["activation_requests"]
            ]
        assert len(names) == len(set(names)), f"{endpoint}: sent twice: {Counter(names).most_common(3)}"
        touched[endpoint] = len(names)
    return touched


def assert_refused_before_any_call(admin: AdminClient) -> None:
    """Nothing written, and none of the program's own reads (rate plans, users: the first thing its account
    check reads): the refusal comes before the program reads the account at all."""
    assert admin.mutating() == []
    assert not [r["path"] for r in admin.api_requests() if r["path"].endswith(("/rate_plans", "/users"))]


# --- the shared backend and its lock ----------------------------------------------------------------------------


def test_a_second_up_on_a_locked_stack_in_s3_is_refused_and_no_sim_changes_twice(
    s3: S3Server, tmp_path: Path, pulumi_bin: str, fresh_emulator: EmulatorServer
) -> None:
    admin = AdminClient(fresh_emulator.base_url)
    fresh_emulator.reset("empty", activation_delay=5.0)  # the first up holds the lock while SIMs activate
    bucket = s3.new_bucket()
    project = make_project(tmp_path / "project")
    stack = team_stack(project, tmp_path, "prod", fresh_emulator.base_url, pulumi_bin, s3.readme_url(bucket))
    new = range(1, 5)
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in new])  # in inventory: to activate
    (project / "fleet.yaml").write_text(fleet_text(new))
    admin.clear_requests()

    first = stack.start_up()
    deadline = time.monotonic() + 180
    while not any(r["path"].endswith("activation_request") for r in admin.mutating()):
        assert first.poll() is None and time.monotonic() < deadline, f"the first up ended early: {finish(first)}"
        time.sleep(0.05)
    assert any(k.startswith(".pulumi/locks/") for k in s3.keys(bucket)), "the running up holds a lock in S3"

    second = stack.up()
    assert second.returncode != 0
    assert "the stack is currently locked by 1 lock(s)" in second.output
    assert f"s3://{bucket}" in second.output and "pulumi cancel" in second.output  # where the lock is, and the way out

    code, output = finish(first)
    assert code == 0, output[-4000:]
    calls = admin.mutating()
    touched = assert_no_device_changed_twice(calls)
    assert touched["activation_request"] == len(new)
    assert sorted(
        row["iccid"]
        for r in calls
        if r["path"].endswith("activation_request")
        for row in r["body"]["activation_requests"]
    ) == [iccid(i) for i in new]
    assert {admin.sims()[iccid(i)]["state"] for i in new} == {"active"}

    keys = s3.keys(bucket)
    assert ".pulumi/stacks/lattigo-fleet/prod.json" in keys  # the state is in the bucket ...
    assert not [k for k in keys if k.startswith(".pulumi/locks/")]  # ... and the lock is gone
    admin.clear_requests()
    stack.up().check()
    assert admin.mutating() == []  # converged: a later up, from the state in S3, sends nothing


# --- one account, several stacks --------------------------------------------------------------------------------


@pytest.fixture
def two_stacks(s3: S3Server, tmp_path: Path, pulumi_bin: str, fresh_emulator: EmulatorServer) -> TwoStacks:
    """Stacks `east` and `west` of one project, in one S3 backend (the v1-era URL form), each with its own fleet
    file and the same sibling list."""
    bucket = s3.new_bucket()
    project = make_project(tmp_path / "project")
    stacks = {
        name: team_stack(
            project,
            tmp_path,
            name,
            fresh_emulator.base_url,
            pulumi_bin,
            s3.legacy_url(bucket),
            fleetFile=f"fleet-{name}.yaml",
            siblingStacks="east,west",
            batchWindowMs="400",
        )
        for name in ("east", "west")
    }
    return project, stacks


def test_two_stacks_apply_their_halves_at_once_and_the_account_converges_with_no_call_twice(
    two_stacks: TwoStacks, admin: AdminClient
) -> None:
    project, stacks = two_stacks
    halves = {"east": [1, 2, 3, 7, 8], "west": [4, 5, 6, 9, 10]}
    admin.add_sims(
        [
            {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops", "rate_plan": PLAN_5MB}
            for i in (1, 2, 3, 4, 5, 6)
        ]
    )  # to adopt, moving cost center
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in (7, 8, 9, 10)])  # to activate
    for name, half in halves.items():
        (project / f"fleet-{name}.yaml").write_text(fleet_text(half))
    admin.clear_requests()

    runs = {name: stack.start_up() for name, stack in stacks.items()}  # two processes, one account
    for name, run in runs.items():
        code, output = finish(run)
        assert code == 0, f"{name}: {output[-4000:]}"

    every = [iccid(i) for i in range(1, 11)]
    live = admin.sims()
    assert {(live[i]["state"], live[i]["cost_center"]) for i in every} == {("active", "logistics")}
    calls = admin.mutating()
    touched = assert_no_device_changed_twice(calls)
    assert touched["activation_request"] == 4
    assert touched["change_cost_center"] <= 10
    # Each stack holds its own half, as the drift command reads it (sharding.sibling_iccids, the S3 backend).
    for name, half in halves.items():
        assert sibling_iccids(name, cwd=project, env=stacks[name].env) == {iccid(i) for i in half}

    admin.clear_requests()
    runs = {name: stack.start_up() for name, stack in stacks.items()}
    for name, run in runs.items():
        code, output = finish(run)
        assert code == 0, f"{name}: {output[-4000:]}"
    assert admin.mutating() == []


def test_an_iccid_of_a_sibling_stack_is_refused_before_any_call_naming_both_stacks(
    two_stacks: TwoStacks, admin: AdminClient
) -> None:
    project, stacks = two_stacks
    admin.add_sims(
        [{"iccid": iccid(i), "imei": imei(i), "state": "active", "rate_plan": PLAN_5MB} for i in range(1, 10)]
    )
    (project / "fleet-east.yaml").write_text(fleet_text([1, 2, 3]))
    (project / "fleet-west.yaml").write_text(fleet_text([4, 5]))
    for stack in stacks.values():
        stack.up().check()
    # east now also declares 9 (not applied yet); west declares east's 3 and that 9.
    (project / "fleet-east.yaml").write_text(fleet_text([1, 2, 3, 9]))
    (project / "fleet-west.yaml").write_text(fleet_text([4, 5, 3, 9]))
    admin.clear_requests()

    for result in (stacks["west"].preview(), stacks["west"].up()):
        assert result.returncode != 0
        text = result.output
        assert "stack `west` and stack `east` both manage 2 ICCID(s)" in text
        assert (
            f"fleet-west.yaml:6:13: sims[2].iccid: SIM {iccid(3)}: also managed by stack `east` (held in its "
            "state and declared in its fleet-east.yaml)" in text
        )
        assert (
            f"fleet-west.yaml:7:13: sims[3].iccid: SIM {iccid(9)}: also managed by stack `east` (declared in "
            "its fleet-east.yaml)" in text
        )
    assert_refused_before_any_call(admin)

    stacks["west"].set_config("lattigo-fleet:siblingStacks", "east,west,north")
    (project / "fleet-west.yaml").write_text(fleet_text([4, 5]))
    result = stacks["west"].preview()
    assert result.returncode != 0 and "cannot read sibling stack 'north'" in result.output
    assert_refused_before_any_call(admin)


def test_drift_counts_a_sibling_stacks_sims_as_managed(two_stacks: TwoStacks, admin: AdminClient) -> None:
    """`lattigo-fleet drift` on one stack: the other stack's half is not unmanaged; a SIM neither declares is."""
    import json

    project, stacks = two_stacks
    halves = {"east": [1, 2], "west": [3, 4]}
    admin.add_sims(
        [
            {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "logistics", "rate_plan": PLAN_5MB}
            for i in (1, 2, 3, 4, 5)
        ]
    )
    for name, half in halves.items():
        (project / f"fleet-{name}.yaml").write_text(fleet_text(half))
        stacks[name].up().check()
    drift = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lattigo-fleet"), "drift", "--stack", "east", "--json"],
        cwd=project,
        env=stacks["east"].env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert drift.returncode == 2, drift.stdout + drift.stderr  # SIM 5 is unmanaged
    report = json.loads(drift.stdout)
    assert [sim["iccid"] for sim in report["unmanaged"]] == [iccid(5)]
