"""`lattigo-fleet recover` without a real engine: a fake /proc and a fake `pulumi` that records its calls.

The real thing (kill -9 of `pulumi up`, recover, up converges) is tests/e2e/test_recover.py.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lattigo_fleet.cli import main as cli_main
from lattigo_fleet.commands import recover as rc
from lattigo_fleet.engine_settings import ENGINE_ENV

FAKE_PULUMI = r"""#!{python}
import json, os, sys
from pathlib import Path
state = Path(os.environ["FAKE_STATE"])
with open(os.environ["FAKE_CALLS"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "skip": os.environ.get("PULUMI_SKIP_CHECKPOINTS")}}) + "\n")
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
if args[:2] == ["stack", "--show-name"]:
    print(os.environ.get("FAKE_SELECTED", "test")) if os.environ.get("FAKE_SELECTED", "test") else sys.exit(255)
elif args[:2] == ["stack", "export"]:
    print(state.read_text())
elif args[0] == "cancel":
    if os.environ.get("FAKE_CANCEL_ERROR"):
        print("error: " + os.environ["FAKE_CANCEL_ERROR"], file=sys.stderr); sys.exit(255)
    print("The currently running update for 'test' has been canceled!")
elif args[0] == "refresh":
    if os.environ.get("FAKE_REFRESH_ERROR"):
        print("error: " + os.environ["FAKE_REFRESH_ERROR"], file=sys.stderr); sys.exit(255)
    doc = json.loads(state.read_text())
    doc["deployment"]["pending_operations"] = []
    state.write_text(json.dumps(doc))
"""


def _state(pending: list[str]) -> str:
    ops = [{"type": t, "resource": {"urn": f"urn:pulumi:test::p::t::r{i}"}} for i, t in enumerate(pending)]
    return json.dumps({"version": 3, "deployment": {"resources": [{"urn": "x"}], "pending_operations": ops}})


@dataclass
class FakeEngine:
    """What the fixture `fake` sets up, and what the tests do with it."""

    project: Path  # the project dir, with its Pulumi.yaml
    proc: Path  # the fake /proc
    state: Path  # what `pulumi stack export` prints
    lock_dir: Path  # the file backend's lock dir of stack 'test'
    env: dict[str, str]
    calls_log: Path  # one JSON line per `pulumi` call

    def calls(self) -> list[list[str]]:
        return [json.loads(line)["argv"] for line in self.calls_log.read_text().splitlines()]

    def skip_flags(self) -> list[str | None]:
        return [json.loads(line)["skip"] for line in self.calls_log.read_text().splitlines()]

    def add_process(self, pid: int, argv: list[str], cwd: Path) -> None:
        (self.proc / str(pid)).mkdir()
        (self.proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (self.proc / str(pid) / "cwd").symlink_to(cwd)

    def run(
        self, stack: str | None = "test", yes: bool = True, confirm: Callable[[str], str] | None = None
    ) -> tuple[int, str]:
        out = io.StringIO()
        code = rc.recover(self.project, stack, rc.engine_env(), yes=yes, out=out, proc_root=self.proc, confirm=confirm)
        return code, out.getvalue()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """A project dir, an empty fake /proc, a file backend with its lock dir, and a fake `pulumi` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI.format(python=sys.executable))
    script.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: lattigo-fleet\nruntime: python\n")
    backend = tmp_path / "backend"
    lock_dir = backend / ".pulumi" / "locks" / "organization" / "lattigo-fleet" / "test"
    lock_dir.mkdir(parents=True)
    proc = tmp_path / "proc"
    proc.mkdir()
    state = tmp_path / "state.json"
    state.write_text(_state([]))
    calls = tmp_path / "calls.jsonl"
    calls.touch()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "FAKE_CALLS": str(calls),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "HOME": str(tmp_path),
    }
    for key in list(os.environ):
        if key.startswith(("PULUMI_", "FAKE_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return FakeEngine(project=project, proc=proc, state=state, lock_dir=lock_dir, env=env, calls_log=calls)


def _mutating(calls: list[list[str]]) -> list[str]:
    return [c[0] for c in calls if c[0] in ("cancel", "refresh")]


def test_a_dead_run_lock_is_removed_and_nothing_else_is_done(fake: FakeEngine) -> None:
    (fake.lock_dir / "abc.json").write_text(
        json.dumps({"pid": 4242, "hostname": socket.gethostname(), "timestamp": "2026-01-02T03:04:05.123Z"})
    )
    code, out = fake.run()
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("checked: no pulumi run on stack 'test'")
    assert lines[1] == (
        "lock: removed the lock left by a dead run (pid 4242 on "
        f"{socket.gethostname()} since 2026-01-02T03:04:05) with pulumi cancel --yes"
    )
    assert lines[2] == "pending operations: none in the state, nothing to clear"
    assert lines[3].startswith("next: pulumi up --stack test")
    assert ["cancel", "--yes", "--stack", "test", "--non-interactive"] in fake.calls()
    assert _mutating(fake.calls()) == ["cancel"]  # no refresh: nothing pending
    assert set(fake.skip_flags()) == {ENGINE_ENV["PULUMI_SKIP_CHECKPOINTS"]}  # the project's engine settings


def test_without_a_lock_it_does_not_fail(fake: FakeEngine) -> None:
    code, out = fake.run()
    assert code == 0
    assert "lock: none; stack 'test' was not locked" in out
    # and twice in a row: recover is idempotent
    assert fake.run()[0] == 0


@pytest.mark.parametrize("pending", [["creating"] * 3, ["creating", "updating", "deleting"]])
def test_pending_operations_are_cleared_with_refresh_clear_pending_creates(
    fake: FakeEngine, pending: list[str]
) -> None:
    fake.state.write_text(_state(pending))
    code, out = fake.run()
    assert code == 0, out
    refresh = [c for c in fake.calls() if c[0] == "refresh"]
    assert refresh == [
        ["refresh", "--yes", "--skip-preview", "--clear-pending-creates", "--stack", "test", "--non-interactive"]
    ]
    assert f"pending operations: cleared {len(pending)} (" in out
    assert ("3 CREATE" in out) if pending == ["creating"] * 3 else ("1 CREATE, 1 DELETE, 1 UPDATE" in out)
    assert _mutating(fake.calls()) == ["cancel", "refresh"]  # the lock first: refresh takes it


def test_a_running_pulumi_up_on_the_stack_is_refused_and_named(
    fake: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_process(31337, ["/opt/pulumi/bin/pulumi", "up", "--yes", "--stack", "test"], fake.project)
    with pytest.raises(rc.RecoverError) as refused:
        fake.run()
    assert "pulumi up (pid 31337) is still running on stack 'test'" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert _mutating(fake.calls()) == []


@pytest.mark.parametrize(
    "argv, cwd_rel, refused",
    [
        (["pulumi", "preview", "-s", "test"], ".", True),
        (["pulumi", "--cwd", "PROJECT", "destroy", "--stack=test"], "/", True),
        (["pulumi", "-C", "PROJECT", "refresh", "-stest"], "/", True),
        (["pulumi", "up"], "sub", True),  # no --stack: the selected stack, which is 'test'; from a subdirectory
        (["pulumi", "up", "--stack", "organization/lattigo-fleet/test"], ".", True),
        (["pulumi", "up", "--stack", "prod"], ".", False),  # another stack
        (["pulumi", "up", "--stack", "test"], "/", False),  # another project directory
        (["pulumi", "stack", "ls"], ".", False),  # does not work on the stack
        (["pulumi-language-python", "up", "--stack", "test"], ".", False),  # not the CLI
    ],
)
def test_which_processes_count(fake: FakeEngine, argv: list[str], cwd_rel: str, refused: bool) -> None:
    (fake.project / "sub").mkdir(exist_ok=True)
    argv = [str(fake.project) if a == "PROJECT" else a for a in argv]
    cwd = Path(cwd_rel) if cwd_rel.startswith("/") else fake.project / cwd_rel
    fake.add_process(4000, argv, cwd)
    if refused:
        with pytest.raises(rc.RecoverError, match=r"\(pid 4000\) is still running"):
            fake.run()
    else:
        assert fake.run()[0] == 0


def test_the_lock_holder_still_alive_is_refused(fake: FakeEngine, tmp_path: Path) -> None:
    fake.add_process(5000, ["/usr/bin/pulumi", "up", "--stack", "test"], tmp_path)  # elsewhere (another clone)
    (fake.lock_dir / "l.json").write_text(json.dumps({"pid": 5000, "hostname": socket.gethostname()}))
    with pytest.raises(rc.RecoverError, match=r"pulumi \(pid 5000\), which holds the lock of stack 'test', is still"):
        fake.run()
    (fake.lock_dir / "l.json").write_text(json.dumps({"pid": 5000, "hostname": "ci-runner-7"}))
    with pytest.raises(rc.RecoverError, match="host ci-runner-7, which cannot be checked from here"):
        fake.run()
    assert _mutating(fake.calls()) == []


def test_a_real_process_named_pulumi_is_found_in_the_real_proc(fake: FakeEngine) -> None:
    """The /proc reading itself, on a live process whose argv[0] is `pulumi`."""
    sleeper = subprocess.Popen(
        ["pulumi", "-c", "sleep 30; true", "up", "--stack", "test"], executable="/bin/sh", cwd=fake.project
    )
    try:
        deadline = time.monotonic() + 10
        while not any(p.pid == sleeper.pid for p in rc.pulumi_processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        found = [p for p in rc.pulumi_processes() if p.pid == sleeper.pid]
        assert found == [rc.PulumiProcess(sleeper.pid, "up", "test", fake.project.resolve())]
        with pytest.raises(rc.RecoverError, match=rf"pulumi up \(pid {sleeper.pid}\) is still running"):
            rc.recover(fake.project, "test", rc.engine_env(), yes=True, out=io.StringIO())
    finally:
        sleeper.kill()
        sleeper.wait()


def test_errors_are_one_line_without_traceback(
    fake: FakeEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cli_main(["recover", "--yes", "--cwd", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lattigo-fleet recover: no Pulumi.yaml in") and err.count("\n") == 1

    monkeypatch.setenv("FAKE_CANCEL_ERROR", "failed to cancel: permission denied\nmore detail")
    assert cli_main(["recover", "--yes", "--cwd", str(fake.project), "--stack", "test"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "lattigo-fleet recover: pulumi cancel failed: failed to cancel: permission denied\n"
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1

    monkeypatch.delenv("FAKE_CANCEL_ERROR")
    fake.state.write_text(_state(["creating"]))
    monkeypatch.setenv("FAKE_REFRESH_ERROR", "passphrase must be set with PULUMI_CONFIG_PASSPHRASE")
    assert cli_main(["recover", "--yes", "--cwd", str(fake.project), "--stack", "test"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "lattigo-fleet recover: pulumi refresh --clear-pending-creates failed: passphrase must be "
        "set with PULUMI_CONFIG_PASSPHRASE\n"
    )

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cli_main(["recover", "--yes", "--cwd", str(fake.project)]) == 1
    assert capsys.readouterr().err == f"lattigo-fleet recover: {rc.NOT_ON_PATH}\n"


def test_no_stack_selected_and_none_given(fake: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SELECTED", "")
    with pytest.raises(rc.RecoverError, match="no stack selected .*: pass --stack NAME"):
        fake.run(stack=None)


def test_the_selected_stack_is_the_default(fake: FakeEngine) -> None:
    code, out = fake.run(stack=None)
    assert code == 0 and "next: pulumi up --stack test" in out


def test_without_yes_it_asks_and_a_no_changes_nothing(fake: FakeEngine) -> None:
    fake.state.write_text(_state(["creating", "creating"]))
    asked: list[str] = []

    def say_no(question: str) -> str:
        asked.append(question)
        return "n"

    code, out = fake.run(yes=False, confirm=say_no)
    assert code == 1 and out.splitlines()[-1] == "nothing changed"
    assert asked == ["remove no lock file of stack 'test' and clear 2 pending operation(s) (2 CREATE)? [y/N] "]
    assert _mutating(fake.calls()) == []
    code, out = fake.run(yes=False, confirm=lambda q: "y")
    assert code == 0 and _mutating(fake.calls()) == ["cancel", "refresh"]


def test_without_yes_and_without_a_terminal_it_refuses(fake: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(rc.RecoverError, match="not a terminal: pass --yes"):
        fake.run(yes=False)


def test_parse_pulumi_argv() -> None:
    assert rc.parse_pulumi_argv(["up", "--yes", "-s", "dev", "--message", "preview"]) == ("up", "dev", None)
    assert rc.parse_pulumi_argv(["-C", "/x", "preview", "--stack=a/b/c"]) == ("preview", "a/b/c", "/x")
    assert rc.parse_pulumi_argv(["--cwd=/y", "refresh"]) == ("refresh", None, "/y")
    assert rc.parse_pulumi_argv(["stack", "export"]) == (None, None, None)
