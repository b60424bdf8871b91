"""One account, several stacks (lattigo_fleet/sharding.py): names, what a sibling owns, and the refusal."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from lattigo_fleet import sharding
from lattigo_fleet.fleetfile import FleetSpec, Issue, load_fleet
from lattigo_fleet.settings import SettingsError, read_settings
from lattigo_fleet.sharding import (
    Claim,
    declared_in_files,
    held_in_deployment,
    invalid_stack_names,
    is_same_stack,
    overlap_issues,
    parse_stacks,
    sibling_fleet_file,
)
from tests.e2e.fleets import iccid, imei

CREDENTIALS = {"lattigo:endpoint": "https://x", "lattigo:keyName": "k", "lattigo:apiKey": "s"}


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (None, ()),
        ("", ()),
        ("east", ("east",)),
        ("east,west", ("east", "west")),
        (" east , west  north", ("east", "west", "north")),
        ('["east", "acme/lattigo-fleet/west"]', ("east", "acme/lattigo-fleet/west")),
        ("east,east", ("east",)),
    ],
)
def test_the_sibling_list_is_read_as_written(raw: str | None, names: tuple[str, ...]) -> None:
    assert parse_stacks(raw) == names


def test_only_pulumi_stack_name_shapes_are_accepted() -> None:
    assert invalid_stack_names(["east", "acme/lattigo-fleet/west", "a/b", "we st", "x/y/z/w"]) == [
        "a/b",
        "we st",
        "x/y/z/w",
    ]


@pytest.mark.parametrize(
    ("name", "same"),
    [
        ("east", True),
        ("west", False),
        ("organization/lattigo-fleet/east", True),
        ("acme/lattigo-fleet/east", True),
        ("acme/other-project/east", False),
        ("acme/lattigo-fleet/west", False),
    ],
)
def test_a_stack_skips_its_own_name_in_the_shared_list(name: str, same: bool) -> None:
    assert is_same_stack(name, "east", "lattigo-fleet") is same


def test_a_sibling_holds_its_guard_record_its_sims_and_its_pending_creates() -> None:
    deployment = {
        "resources": [
            {"type": "pulumi:pulumi:Stack"},
            {"type": "pulumi-python:dynamic/lattigo:FleetGuard", "outputs": {"iccids": [iccid(1), iccid(2)]}},
            {"type": "pulumi-python:dynamic/lattigo:Sim", "id": iccid(2), "inputs": {"iccid": iccid(2)}},
            {"type": "pulumi-python:dynamic/lattigo:Sim", "id": iccid(3), "inputs": {"iccid": iccid(3)}},
        ],
        "pending_operations": [
            {
                "type": "creating",
                "resource": {"type": "pulumi-python:dynamic/lattigo:Sim", "inputs": {"iccid": iccid(4)}},
            }
        ],
    }
    assert held_in_deployment(deployment) == {iccid(1), iccid(2), iccid(3), iccid(4)}
    assert held_in_deployment({}) == frozenset()  # a stack initialised, never applied


def test_a_sibling_declares_the_iccids_of_its_fleet_file_and_its_d_directory(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.east.yaml").write_text("config:\n  lattigo-fleet:fleetFile: fleets/east.yaml\n")
    (tmp_path / "Pulumi.west.yaml").write_text("config:\n  lattigo:endpoint: http://x\n")
    fleets = tmp_path / "fleets"
    (fleets / "east.d").mkdir(parents=True)
    (fleets / "east.yaml").write_text(f'version: 1\nsims:\n  - {{iccid: "{iccid(1)}"}}\n')
    (fleets / "east.d" / "more.yaml").write_text(f'version: 1\nsims:\n  - {{iccid: "{iccid(2)}"}}\n')
    (fleets / "east.d" / ".swap.yaml").write_text(f'version: 1\nsims:\n  - {{iccid: "{iccid(3)}"}}\n')

    assert sibling_fleet_file("east", tmp_path) == tmp_path / "fleets" / "east.yaml"
    assert sibling_fleet_file("acme/lattigo-fleet/east", tmp_path) == tmp_path / "fleets" / "east.yaml"
    assert sibling_fleet_file("west", tmp_path) == tmp_path / "fleet.yaml"  # the default
    assert sibling_fleet_file("north", tmp_path) is None  # its settings are not in this checkout
    assert declared_in_files(tmp_path / "fleets" / "east.yaml") == {iccid(1), iccid(2)}
    assert declared_in_files(tmp_path / "missing.yaml") == frozenset()


def fleet_of(tmp_path: Path, indices: Iterable[int]) -> FleetSpec:
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}"}}\n' for i in indices)
    path = tmp_path / "fleet-west.yaml"
    path.write_text(f"version: 1\nsims:\n{rows}")
    return load_fleet(str(path))


def test_no_overlap_no_issue(tmp_path: Path) -> None:
    fleet = fleet_of(tmp_path, range(1, 4))
    assert overlap_issues(fleet, "west", [Claim("east", frozenset({iccid(9)}), frozenset())]) == []


def test_an_overlap_names_both_stacks_the_first_ten_iccids_at_their_place_and_the_count(tmp_path: Path) -> None:
    fleet = fleet_of(tmp_path, range(1, 21))
    shared = frozenset(iccid(i) for i in range(5, 17))  # 12 of them
    issues = overlap_issues(fleet, "west", [Claim("east", shared, frozenset({iccid(5)}), "fleet-east.yaml")])

    located, summary = issues[:-1], issues[-1]
    assert len(located) == 10
    first = located[0]
    assert str(first) == (
        f"{fleet.source_of(iccid(5), 'iccid')}: sims[4].iccid: SIM {iccid(5)}: also managed by "
        "stack `east` (held in its state and declared in its fleet-east.yaml)"
    )
    # The first ten, each an Issue at its own ICCID in this stack's file (row i is on line i + 2, its ICCID at
    # column 13), naming the other stack.
    fleet_file = str(tmp_path / "fleet-west.yaml")
    assert [(i.file, i.line, i.column, i.field) for i in located if isinstance(i, Issue)] == [
        (fleet_file, n + 2, 13, f"sims[{n - 1}].iccid") for n in range(5, 15)
    ]
    assert [i.message.split(":")[0] for i in located if isinstance(i, Issue)] == [
        f"SIM {iccid(i)}" for i in range(5, 15)
    ]
    assert all(isinstance(i, Issue) and "also managed by stack `east`" in i.message for i in located)
    assert isinstance(located[1], Issue) and "(held in its state)" in located[1].message
    # Then one line of no place in the file: both stacks, the count, and the same first ten ICCIDs.
    assert isinstance(summary, str)
    assert summary.startswith(
        "stack `west` and stack `east` both manage 12 ICCID(s) (the first 10 are listed above): "
        f"{', '.join(iccid(i) for i in range(5, 15))} and more. "
    )


def test_the_sibling_list_is_a_setting_and_bad_names_are_refused() -> None:
    config = {**CREDENTIALS, "lattigo-fleet:siblingStacks": "east, west"}
    assert read_settings(config.get, env={}).sibling_stacks == ("east", "west")
    assert read_settings(CREDENTIALS.get, env={}).sibling_stacks == ()
    with pytest.raises(SettingsError, match="'a/b' is not a stack name"):
        read_settings({**CREDENTIALS, "lattigo-fleet:siblingStacks": "east,a/b"}.get, env={})


def test_what_a_snapshot_recorded_a_sibling_holds_is_not_read_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_export(*_: object, **__: object) -> frozenset[str]:
        raise AssertionError("the sibling's state was read although the snapshot recorded it")

    monkeypatch.setattr(sharding, "held_iccids", no_export)
    [claim] = sharding.sibling_claims(
        ["east", "west"], this_stack="west", cwd=tmp_path, held={"east": frozenset({"8901"})}
    )
    assert claim.stack == "east" and claim.iccids == {"8901"}
