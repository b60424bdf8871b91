"""The program's read of the account, handed to the provider of the same run (lattigo_fleet/run_snapshot.py):
taken once, only for the same account and the same engine process, only from a directory of the user's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lattigo_fleet import run_snapshot
from lattigo_fleet.client.models import LiveDevice

ACCOUNT = run_snapshot.account_of("http://127.0.0.1:9/", "key")
SIMS: dict[str, LiveDevice] = {"8901": {"iccid": "8901", "state": "active", "cost_center": "ops"}}


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


def test_what_the_program_left_is_taken_once() -> None:
    key = run_snapshot.run_key(os.getpid())
    run_snapshot.write(key, ACCOUNT, SIMS, {"8901": 5})
    assert run_snapshot.take(key, ACCOUNT) == (SIMS, {"8901": 5})
    assert run_snapshot.take(key, ACCOUNT) is None  # removed as it was taken


def test_another_account_or_another_run_takes_nothing() -> None:
    key = run_snapshot.run_key(os.getpid())
    run_snapshot.write(key, ACCOUNT, SIMS, {})
    assert run_snapshot.take(key, run_snapshot.account_of("http://127.0.0.1:9", "other-key")) is None
    run_snapshot.write(key, ACCOUNT, SIMS, {})
    assert run_snapshot.take(run_snapshot.run_key(os.getppid()), ACCOUNT) is None


def test_a_run_is_its_engine_process_with_its_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        key = run_snapshot.run_key(child.pid)
        assert key is not None and key.startswith(f"{child.pid}-")
        assert key != run_snapshot.run_key(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert run_snapshot.run_key(child.pid) is None  # gone: no run to hand anything to
    assert run_snapshot.run_key(1) is None and run_snapshot.run_key(None) is None


def test_the_files_are_the_users_alone(private_tmp: Path) -> None:
    key = run_snapshot.run_key(os.getpid())
    run_snapshot.write(key, ACCOUNT, SIMS, {})
    directory = private_tmp / f"lattigo-fleet-{os.getuid()}"
    assert directory.stat().st_mode & 0o777 == 0o700
    [written] = directory.iterdir()
    assert written.stat().st_mode & 0o777 == 0o600
    assert "secret" not in written.read_text()  # the account is named by endpoint and key name, no credential


def test_a_directory_open_to_others_or_a_link_is_not_used(private_tmp: Path) -> None:
    key = run_snapshot.run_key(os.getpid())
    directory = private_tmp / f"lattigo-fleet-{os.getuid()}"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    run_snapshot.write(key, ACCOUNT, SIMS, {})
    assert list(directory.iterdir()) == []
    directory.rmdir()
    elsewhere = private_tmp / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    directory.symlink_to(elsewhere)
    run_snapshot.write(key, ACCOUNT, SIMS, {})
    assert list(elsewhere.iterdir()) == []
    assert run_snapshot.take(key, ACCOUNT) is None


def test_a_file_that_is_not_a_snapshot_is_not_taken(private_tmp: Path) -> None:
    key = run_snapshot.run_key(os.getpid())
    assert key is not None
    run_snapshot.write(key, ACCOUNT, SIMS, {})  # makes the directory
    path = private_tmp / f"lattigo-fleet-{os.getuid()}" / f"snapshot-{key}.json"
    path.write_text("{not json")
    assert run_snapshot.take(key, ACCOUNT) is None
    assert not path.exists()
