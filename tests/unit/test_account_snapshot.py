"""The account snapshot that the stacks of a sharded run share (lattigo_fleet/account_snapshot.py): what a
reader keeps of it, and what is refused, in one line that names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lattigo_fleet import account_snapshot as snap
from lattigo_fleet.client.models import LiveDevice

ACCOUNT = snap.account_of("http://127.0.0.1:9/", "key")
SIMS: dict[str, LiveDevice] = {"8901": {"iccid": "8901", "state": "active"}}
NOW = 1_800_000_000.0
ACCOUNT_OF_FOUR: dict[str, LiveDevice] = {
    "8901": {"iccid": "8901", "state": "active", "cost_center": "Fleet-East"},
    "8902": {"iccid": "8902", "state": "active", "cost_center": "Warehouse"},
    "8903": {"iccid": "8903", "state": "suspended", "cost_center": "Lab"},
    "8904": {"iccid": "8904", "state": "active", "device_name": 'say "hi"\\'},
}


def written(tmp_path: Path, read_at: float = NOW, sims: dict[str, LiveDevice] = SIMS, **kwargs: object) -> Path:
    path = tmp_path / "account.jsonl"
    snap.write(path, ACCOUNT, sims, read_at, **kwargs)  # type: ignore[arg-type]
    return path


def test_a_fresh_snapshot_of_this_account_is_read(tmp_path: Path) -> None:
    read = snap.read(written(tmp_path), ACCOUNT, bound_s=60, now=NOW + 59)
    assert read.sims == SIMS and read.held == {} and read.read_at == NOW


def test_it_records_what_each_stack_held(tmp_path: Path) -> None:
    path = written(tmp_path, held={"east": ["8902", "8901"], "west": []})
    assert snap.read(path, ACCOUNT, bound_s=60, now=NOW).held == {"east": {"8901", "8902"}, "west": frozenset()}


def test_a_reader_keeps_the_sims_it_asks_for_and_those_its_stack_held(tmp_path: Path) -> None:
    path = written(tmp_path, sims=ACCOUNT_OF_FOUR, held={"east": ["8902"], "west": ["8903"]})
    kept = snap.read(path, ACCOUNT, keep={"8901", "8904"}.__contains__, keep_held_by="east", bound_s=60, now=NOW)
    assert kept.sims == {i: ACCOUNT_OF_FOUR[i] for i in ("8901", "8902", "8904")}  # 8904's name has escapes
    # The cost centers are the whole account's, so a slice still knows which are in use (8903's "Lab").
    assert kept.cost_centers_in_use() == {"Fleet-East", "Warehouse", "Lab"}


def test_a_slice_keeps_the_whole_accounts_header(tmp_path: Path) -> None:
    whole = snap.read(
        written(tmp_path, sims=ACCOUNT_OF_FOUR, held={"east": ["8902"], "west": ["8903"]}), ACCOUNT, bound_s=60, now=NOW
    )
    target = tmp_path / "east.jsonl"
    snap.write_slice(target, ACCOUNT, whole, "east", declared=["8901"])
    part = snap.read(target, ACCOUNT, bound_s=60, now=NOW)
    assert set(part.sims) == {"8901", "8902"}
    assert part.held == whole.held and part.read_at == NOW
    assert part.cost_centers == frozenset({"Fleet-East", "Warehouse", "Lab"})
    assert json.loads(target.read_text().splitlines()[0])["slice_of"] == "east"


def test_one_older_than_its_bound_is_refused_with_its_age(tmp_path: Path) -> None:
    path = written(tmp_path)
    with pytest.raises(snap.AccountSnapshotError, match=r"read 2 min ago .* more than its bound of 1 min"):
        snap.read(path, ACCOUNT, bound_s=60, now=NOW + 120)


def test_one_of_another_account_is_refused(tmp_path: Path) -> None:
    with pytest.raises(snap.AccountSnapshotError, match="not of this stack's account"):
        snap.read(written(tmp_path), snap.account_of("http://127.0.0.1:9", "other"), bound_s=60, now=NOW)


def test_one_cut_short_is_refused_with_its_count(tmp_path: Path) -> None:
    path = written(tmp_path, sims=ACCOUNT_OF_FOUR)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))  # an artifact whose upload stopped
    with pytest.raises(snap.AccountSnapshotError, match="is cut short: 2 of its 4 SIMs") as raised:
        snap.read(path, ACCOUNT, keep=lambda iccid: False, bound_s=60, now=NOW)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON lines: line 1"),
        ('{"schema": "x"}', "is not a lattigo-fleet account snapshot"),
        ('{"schema": "lattigo-fleet/account-snapshot/v1", "sims": {}}', "written by an older lattigo-fleet"),
        ("", "is not a lattigo-fleet account snapshot"),
        (None, "No such"),
    ],
)
def test_a_file_that_is_not_a_snapshot_is_refused_by_name(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "account.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(snap.AccountSnapshotError, match=message) as raised:
        snap.read(path, ACCOUNT, bound_s=60, now=NOW)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("line", "where"), [("{oops\n", "line 2 is not JSON"), ('{"state": "x"}\n', "line 2 is not a SIM")]
)
def test_a_sim_line_that_is_not_one_is_refused_by_its_line(tmp_path: Path, line: str, where: str) -> None:
    path = written(tmp_path)
    header = path.read_text().splitlines(keepends=True)[0]
    path.write_text(header + line)
    with pytest.raises(snap.AccountSnapshotError, match=where):
        snap.read(path, ACCOUNT, bound_s=60, now=NOW)


def test_the_bound_comes_from_the_environment(tmp_path: Path) -> None:
    path = written(tmp_path, read_at=NOW)
    assert snap.max_age({}) == snap.SNAPSHOT_MAX_AGE_S
    assert snap.max_age({snap.MAX_AGE_ENV: "120"}) == 120
    with pytest.raises(snap.AccountSnapshotError, match="LATTIGO_FLEET_SNAPSHOT_MAX_AGE='soon'"):
        snap.max_age({snap.MAX_AGE_ENV: "soon"})
    assert snap.from_environment(ACCOUNT, {}) is None
    doc = json.loads(path.read_text().splitlines()[0])
    assert doc["account"] == ACCOUNT and "key" in doc["account"]  # named by endpoint and key name only
