"""The account snapshot that the stacks of a sharded run share (lattigo_fleet/account_snapshot.py): what is
refused, in one line that names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lattigo_fleet import account_snapshot as snap
from lattigo_fleet.client.models import LiveDevice

ACCOUNT = snap.account_of("http://127.0.0.1:9/", "key")
SIMS: dict[str, LiveDevice] = {"8901": {"iccid": "8901", "state": "active"}}
NOW = 1_800_000_000.0


def written(tmp_path: Path, read_at: float = NOW) -> Path:
    path = tmp_path / "account.json"
    snap.write(path, ACCOUNT, SIMS, read_at)
    return path


def test_a_fresh_snapshot_of_this_account_is_read(tmp_path: Path) -> None:
    assert snap.read(written(tmp_path), ACCOUNT, bound_s=60, now=NOW + 59) == snap.Snapshot(SIMS)


def test_it_records_what_each_stack_held(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    snap.write(path, ACCOUNT, SIMS, NOW, held={"east": ["8902", "8901"], "west": []})
    assert snap.read(path, ACCOUNT, bound_s=60, now=NOW).held == {"east": {"8901", "8902"}, "west": frozenset()}


def test_one_older_than_its_bound_is_refused_with_its_age(tmp_path: Path) -> None:
    path = written(tmp_path)
    with pytest.raises(snap.AccountSnapshotError, match=r"read 2 min ago .* more than its bound of 1 min"):
        snap.read(path, ACCOUNT, bound_s=60, now=NOW + 120)


def test_one_of_another_account_is_refused(tmp_path: Path) -> None:
    with pytest.raises(snap.AccountSnapshotError, match="not of this stack's account"):
        snap.read(written(tmp_path), snap.account_of("http://127.0.0.1:9", "other"), bound_s=60, now=NOW)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not JSON"), ('{"schema": "x"}', "is not a lattigo-fleet account snapshot"), (None, "No such")],
)
def test_a_file_that_is_not_a_snapshot_is_refused_by_name(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "account.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(snap.AccountSnapshotError, match=message) as raised:
        snap.read(path, ACCOUNT, bound_s=60, now=NOW)
    assert str(path) in str(raised.value)


def test_the_bound_comes_from_the_environment(tmp_path: Path) -> None:
    path = written(tmp_path, read_at=NOW)
    assert snap.max_age({}) == snap.SNAPSHOT_MAX_AGE_S
    assert snap.max_age({snap.MAX_AGE_ENV: "120"}) == 120
    with pytest.raises(snap.AccountSnapshotError, match="LATTIGO_FLEET_SNAPSHOT_MAX_AGE='soon'"):
        snap.max_age({snap.MAX_AGE_ENV: "soon"})
    assert snap.from_environment(ACCOUNT, {}) is None
    doc = json.loads(path.read_text())
    assert doc["account"] == ACCOUNT and "key" in doc["account"]  # named by endpoint and key name only
