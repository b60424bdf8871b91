"""`lattigo-fleet import`: grouping, selection, --merge (comments, anchors, no overwrite), errors.

Pure parts take device objects as the API returns them; the error cases and the command's output run
against the emulator (tests/conftest.py)."""

from __future__ import annotations

import argparse
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from emulator.server import EmulatorServer
from lattigo_fleet.commands.importer import (
    ImportFailure,
    LiveSim,
    Selection,
    add_arguments,
    calls_at_next_up,
    group_name,
    layout,
    live_sims,
    merge_into,
    read_iccid_file,
    render_new,
    run,
    write_validated,
)
from lattigo_fleet.fleetfile import load_fleet
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME


def iccid(i: int) -> str:
    return f"8901260{i:013d}"


def imei(i: int) -> str:
    return f"35300{i:010d}"


def device(i: int, state: str = "active", cost_center: str | None = "Fleet-East", **notes: str) -> dict[str, Any]:
    return {
        "iccid": iccid(i),
        "imei": imei(i),
        "device_name": str(36500 + i),
        "state": state,
        "cost_center": cost_center,
        "note": notes.get("note", ""),
        "note1": notes.get("note1", ""),
        "note2": notes.get("note2", ""),
        "note3": notes.get("note3"),
        "bytes_used": 123 * i,
    }


def sims_of(*devices: dict[str, Any]) -> list[LiveSim]:
    sims, skipped, warnings = live_sims(devices)
    assert skipped == [] and warnings == []
    return sims


def parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(args)


# --------------------------------------------------------------------------------------------------
# The account in fleet.yaml's terms


def test_live_sims_settle_pending_states_and_normalise_empty_values() -> None:
    sims, skipped, warnings = live_sims(
        [
            device(2, "pending_activation", None, note="cab"),
            device(1, "pending_suspend_no_billing", "", note1="x" * 101),
            {"iccid": "123", "state": "active"},
            {**device(3), "state": "deactivated"},
            {**device(4), "imei": "12"},
        ]
    )
    assert [(s.iccid, s.state, s.live_state, s.cost_center, s.notes) for s in sims] == [
        (iccid(1), "suspended_no_billing", "pending_suspend_no_billing", "", {}),
        (iccid(2), "active", "pending_activation", "", {"note": "cab"}),
        (iccid(4), "active", "active", "Fleet-East", {}),
    ]
    assert sims[2].imei is None
    assert [(s.iccid, s.reason) for s in skipped] == [
        ("123", "its ICCID is not 19 or 20 digits"),
        (iccid(3), "its state 'deactivated' cannot be declared"),
    ]
    assert warnings == [
        f"{iccid(1)}: note1 is longer than 100 characters: left unmanaged",
        f"{iccid(4)}: IMEI '12' is not 15 or 16 digits: not declared",
    ]


# --------------------------------------------------------------------------------------------------
# Grouping


def test_layout_puts_the_most_common_state_and_cost_center_in_defaults_and_groups_the_others() -> None:
    sims = sims_of(
        device(1),
        device(2),
        device(3, "suspended"),
        device(4),
        device(5, cost_center="Cold Chain/EU"),
        device(6, cost_center="Cold Chain/EU", state="suspended"),
        device(7, cost_center="Warehouse"),
        device(8, cost_center=None, note="spare"),
    )
    placed = layout(sims)
    assert placed.defaults == {"state": "active", "cost_center": "Fleet-East"}
    assert placed.new_groups == {"cold-chain-eu": {"cost_center": "Cold Chain/EU"}}  # Warehouse has one SIM
    assert placed.entries == [
        {"iccid": iccid(1), "imei": imei(1)},
        {"iccid": iccid(2), "imei": imei(2)},
        {"iccid": iccid(3), "imei": imei(3), "state": "suspended"},
        {"iccid": iccid(4), "imei": imei(4)},
        {"iccid": iccid(5), "imei": imei(5), "group": "cold-chain-eu"},
        {"iccid": iccid(6), "imei": imei(6), "group": "cold-chain-eu", "state": "suspended"},
        {"iccid": iccid(7), "imei": imei(7), "cost_center": "Warehouse"},
        {"iccid": iccid(8), "imei": imei(8), "cost_center": "", "notes": {"note": "spare"}},
    ]


def test_layout_without_groups_declares_cost_centers_on_the_sims() -> None:
    placed = layout(sims_of(device(1), device(2, cost_center="B"), device(3, cost_center="B")), use_groups=False)
    assert placed.defaults == {"state": "active", "cost_center": "B"}
    assert placed.new_groups == {}
    assert [e.get("cost_center") for e in placed.entries] == ["Fleet-East", None, None]


def test_layout_ties_are_broken_the_same_way_every_time() -> None:
    sims = sims_of(device(1, "suspended", "B"), device(2, "active", "A"))
    assert layout(sims).defaults == {"state": "active", "cost_center": "A"}
    assert layout(list(reversed(sims))).defaults == {"state": "active", "cost_center": "A"}


@pytest.mark.parametrize(
    "cost_center, taken, expected",
    [
        ("Fleet-East", [], "fleet-east"),
        ("Cold Chain/EU", [], "cold-chain-eu"),
        ("--", [], "no-cost-center"),
        ("Ops", ["ops"], "ops-2"),
        ("Ops", ["ops", "ops-2"], "ops-3"),
    ],
)
def test_group_names_are_valid_and_unique(cost_center: str, taken: list[str], expected: str) -> None:
    assert group_name(cost_center, taken) == expected


def test_a_new_file_loads_back_to_exactly_the_account_and_plans_no_call(tmp_path: Path) -> None:
    devices = [
        device(1, note="Truck 0001", note1="fw 2.0.0"),
        device(2, "pending_activation"),
        device(3, "suspended_no_billing", "Cold-Chain"),
        device(4, "suspended", "Cold-Chain"),
        device(5, cost_center=None),
        device(6, cost_center="true", note3="null"),
    ]
    sims = sims_of(*devices)
    text = render_new(layout(sims), endpoint="http://lattigo.test")
    assert '  - iccid: "89012600000000000001"\n    imei: "353000000000001"\n' in text
    assert "usage_limit: monthly usage limits are write-only" in text.split("version: 1")[0]
    assert "rate_plan" in text.split("version: 1")[0] and "rate_plan:" not in text.split("version: 1")[1]
    spec = write_validated(tmp_path / "fleet.yaml", text)
    got = {s.iccid: (s.imei, s.state, s.cost_center, s.notes, s.name) for s in spec.sims}
    assert got == {
        iccid(1): (imei(1), "active", "Fleet-East", {"note": "Truck 0001", "note1": "fw 2.0.0"}, iccid(1)),
        iccid(2): (imei(2), "active", "Fleet-East", {}, iccid(2)),
        iccid(3): (imei(3), "suspended_no_billing", "Cold-Chain", {}, iccid(3)),
        iccid(4): (imei(4), "suspended", "Cold-Chain", {}, iccid(4)),
        iccid(5): (imei(5), "active", "", {}, iccid(5)),
        iccid(6): (imei(6), "active", "true", {"note3": "null"}, iccid(6)),
    }
    assert calls_at_next_up(spec, sims) == {}


# --------------------------------------------------------------------------------------------------
# Selection


def test_selection_by_cost_center_state_and_iccids() -> None:
    sims = sims_of(
        device(1), device(2, "pending_activation", "B"), device(3, "suspended", "B"), device(4, cost_center=None)
    )

    def chosen(sel: Selection) -> list[str]:
        return [s.iccid[-1] for s in sims if sel.matches(s)]

    assert chosen(Selection()) == ["1", "2", "3", "4"]
    assert chosen(Selection(cost_centers=("B",))) == ["2", "3"]
    assert chosen(Selection(cost_centers=("B", "Fleet-East"))) == ["1", "2", "3"]
    assert chosen(Selection(cost_centers=("",))) == ["4"]
    assert chosen(Selection(state="active")) == ["1", "2", "4"]  # a pending activation counts
    assert chosen(Selection(state="pending_activation")) == ["2"]
    assert chosen(Selection(state="suspended", cost_centers=("B",))) == ["3"]
    assert chosen(Selection(iccids=frozenset({iccid(1), iccid(4)}))) == ["1", "4"]


def test_iccid_file_takes_one_per_line_with_comments_and_refuses_a_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "iccids.txt"
    good.write_text(f'# trucks\n{iccid(1)}\n\n  "{iccid(2)}"  # quoted is fine\n')
    assert read_iccid_file(str(good)) == {iccid(1), iccid(2)}
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{iccid(1)}\n8901abc\n")
    with pytest.raises(ImportFailure, match=r"bad.txt:2: '8901abc' is not an ICCID"):
        read_iccid_file(str(bad))
    with pytest.raises(ImportFailure, match="cannot read the ICCID file"):
        read_iccid_file(str(tmp_path / "missing.txt"))


# --------------------------------------------------------------------------------------------------
# --merge

EXISTING = f"""\
# Our fleet. Reviewed by ops.
version: 1
x-east: &east {{cost_center: Fleet-East}}   # the anchor, kept
x-notes: &depot {{note: "east depot"}}
defaults:
  state: active
groups:
  east: *east
sims:
  # the first truck
  - iccid: "{iccid(3)}"
    name: truck-3
    group: east
    notes: *depot
  - iccid: "{iccid(1)}"   # declared suspended, the account says active
    name: truck-1
    group: east
    state: suspended
    notes: *depot
"""


def write_existing(tmp_path: Path, text: str = EXISTING) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def test_merge_adds_new_sims_keeps_comments_order_anchors_and_leaves_declared_values(tmp_path: Path) -> None:
    path = write_existing(tmp_path)
    sims = sims_of(
        device(1, note="east depot"),
        device(2),
        device(3, note="west depot"),
        device(4, cost_center="Lab"),
        device(5, cost_center="Lab", state="suspended"),
    )
    merged = merge_into(EXISTING, path, load_fleet(path), sims)
    text = merged.text
    # The whole file as it was (comments, anchors, order, quotes), the new group added after the file's own.
    with_group = EXISTING.replace("  east: *east\n", "  east: *east\n  lab: {cost_center: Lab}\n")
    assert text.startswith(with_group)
    assert "# the first truck" in text and "# declared suspended, the account says active" in text
    assert merged.added == [iccid(2), iccid(4), iccid(5)]
    assert merged.new_groups == {"lab": {"cost_center": "Lab"}}
    assert text.endswith(
        f'  - iccid: "{iccid(2)}"\n    imei: "{imei(2)}"\n    group: east\n'
        f'  - iccid: "{iccid(4)}"\n    imei: "{imei(4)}"\n    group: lab\n'
        f'  - iccid: "{iccid(5)}"\n    imei: "{imei(5)}"\n    group: lab\n    state: suspended\n'
    )
    assert [(d.iccid, d.field, d.declared, d.live, d.applied) for d in merged.differences] == [
        (iccid(1), "state", "suspended", "active", False),
        (iccid(3), "notes.note", "east depot", "west depot", False),
    ]
    assert merged.differences[0].where == f"{path}:18:12"
    spec = write_validated(path, text)
    assert spec.by_iccid[iccid(1)].state == "suspended"  # not overwritten
    assert {i for i, kinds in calls_at_next_up(spec, sims).items()} == {iccid(1), iccid(3)}


def test_merge_with_overwrite_sets_the_sims_own_value_and_never_the_shared_anchor(tmp_path: Path) -> None:
    path = write_existing(tmp_path)
    sims = sims_of(device(1, note="east depot"), device(3, note="west depot"))
    merged = merge_into(EXISTING, path, load_fleet(path), sims, overwrite=True)
    assert [(d.field, d.applied) for d in merged.differences] == [("state", True), ("notes.note", True)]
    assert 'x-notes: &depot {note: "east depot"}' in merged.text
    assert "    state: active\n" in merged.text
    spec = write_validated(path, merged.text)
    assert spec.by_iccid[iccid(3)].notes == {"note": "west depot"}
    assert spec.by_iccid[iccid(1)].notes == {"note": "east depot"}  # still the anchor's
    assert calls_at_next_up(spec, sims) == {}


def test_merge_fills_an_empty_sims_list_and_uses_the_files_defaults(tmp_path: Path) -> None:
    text = 'version: 1  # empty so far\ndefaults: {cost_center: A, notes: {note2: ""}}\nsims:\n'
    path = write_existing(tmp_path, text)
    sims = sims_of(device(1, cost_center="A"), device(2, cost_center="B", note2="x"))
    merged = merge_into(text, path, load_fleet(path), sims)
    assert merged.text.startswith('version: 1  # empty so far\ndefaults: {cost_center: A, notes: {note2: ""}}\n')
    spec = write_validated(path, merged.text)
    assert [(s.cost_center, s.notes) for s in spec.sims] == [("A", {"note2": ""}), ("B", {"note2": "x"})]
    assert calls_at_next_up(spec, sims) == {}


def test_write_validated_leaves_nothing_behind_for_an_invalid_file(tmp_path: Path) -> None:
    path = write_existing(tmp_path)
    with pytest.raises(ImportFailure, match=r"not valid, nothing written: .*fleet.yaml:2:"):
        write_validated(path, "version: 1\nsims: [{iccid: 12}]\n")
    assert path.read_text() == EXISTING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.yaml"]


def test_merge_sees_sims_and_groups_of_fleet_d(tmp_path: Path) -> None:
    path = write_existing(tmp_path, 'version: 1\nsims:\n  - {iccid: "' + iccid(1) + '", cost_center: X}\n')
    (tmp_path / "fleet.d").mkdir()
    (tmp_path / "fleet.d" / "lab.yaml").write_text(
        f'groups:\n  lab: {{cost_center: Lab}}\nsims:\n  - {{iccid: "{iccid(2)}", group: lab}}\n'
    )
    sims = sims_of(device(1, cost_center="X"), device(2, cost_center="Lab"), device(3, cost_center="Lab"))
    merged = merge_into(path.read_text(), path, load_fleet(path), sims)
    assert merged.added == [iccid(3)] and merged.new_groups == {}
    assert f'  - iccid: "{iccid(3)}"\n    imei: "{imei(3)}"\n    group: lab\n' in merged.text
    spec = write_validated(path, merged.text)
    assert len(spec) == 3 and calls_at_next_up(spec, sims) == {}


# --------------------------------------------------------------------------------------------------
# The command against the emulator: output and errors


@pytest.fixture
def account(fresh_emulator: EmulatorServer) -> tuple[EmulatorServer, dict[str, str]]:
    fresh_emulator.add_sims(
        [
            {
                "iccid": iccid(i),
                "imei": imei(i),
                "state": "suspended" if i % 4 == 0 else "active",
                "rate_plan": "ACME Co 5mb Rate Plan",
                "cost_center": ["Fleet-East", "Lab"][i % 2],
                "note": f"unit {i}",
            }
            for i in range(1, 13)
        ]
    )
    env = {
        "LATTIGO_ENDPOINT": fresh_emulator.base_url,
        "LATTIGO_KEY_NAME": EMULATOR_KEY_NAME,
        "LATTIGO_API_KEY": EMULATOR_API_KEY,
    }
    return fresh_emulator, env


def run_import(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(parse(argv), stdout=out, stderr=err, env=env)
    return code, out.getvalue(), err.getvalue()


def test_import_writes_the_selection_and_reports_it(
    account: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    emulator, env = account
    target = tmp_path / "fleet.yaml"
    code, out, err = run_import(["-o", str(target), "--cost-center", "Lab"], env)
    assert code == 0, err
    assert out.splitlines()[0] == f"wrote {target}: 6 SIM(s) (6 active) of 12 in the account, cost center 'Lab'"
    assert "reading the account: 12 SIM(s) in 1 request(s)" in err
    assert {s.iccid for s in load_fleet(target).sims} == {iccid(i) for i in range(1, 13, 2)}
    assert [r for r in emulator.requests_log() if r["method"] != "GET"] == []


def test_import_json_output_and_state_selection(account: tuple[EmulatorServer, dict[str, str]], tmp_path: Path) -> None:
    _, env = account
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{iccid(4)}\n{iccid(5)}\n{iccid(8)}\n{iccid(99)}\n")
    code, out, err = run_import(
        ["-o", str(tmp_path / "f.yaml"), "--json", "--state", "suspended", "--iccid-file", str(ids)], env
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["added"] == [iccid(4), iccid(8)]
    assert report["not_in_account"] == [iccid(99)]
    assert report["defaults"] == {"state": "suspended", "cost_center": "Fleet-East"}
    assert report["calls_at_next_up"] == {}


def test_import_refuses_to_overwrite_without_merge_or_force(
    account: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    _, env = account
    path = write_existing(tmp_path)
    code, out, err = run_import(["-o", str(path)], env)
    assert (code, out) == (1, "")
    assert err == f"lattigo-fleet import: error: {path} exists: --merge to add what is new, --force to replace it\n"
    assert path.read_text() == EXISTING
    code, _, err = run_import(["-o", str(path), "--force"], env)
    assert code == 0, err
    assert len(load_fleet(path)) == 12


def test_import_merge_reports_what_it_left_alone(
    account: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    _, env = account
    path = write_existing(tmp_path)
    code, out, err = run_import(["-o", str(path), "--merge"], env)
    assert code == 0, err
    assert (
        out.splitlines()[0] == f"merged into {path}: 10 SIM(s) added, 2 already declared (every SIM of 12 in "
        "the account)"
    )
    assert f"    {path}:18:12: {iccid(1)} state: declared 'suspended', the account has 'active'" in out
    assert f"{iccid(3)} notes.note: declared 'east depot', the account has 'unit 3'" in out
    assert "`pulumi up` would still send calls for 2 SIM(s)" in out


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("bad-file", "cannot merge into {path}, it is not valid: {path}:1:1: missing required field 'version'"),
        ("wrong-key", "the Lattigo API at {url} refused the credentials (HTTP 401): check lattigo:keyName"),
        ("refused", "cannot reach the Lattigo API at {url} (connection refused)"),
        ("no-credentials", "Lattigo credentials are not configured: set lattigo:apiKey"),
        ("overwrite-alone", "--overwrite goes with --merge"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    account: tuple[EmulatorServer, dict[str, str]], tmp_path: Path, setup: str, expected: str
) -> None:
    emulator, env = account
    env = dict(env)
    path = tmp_path / "fleet.yaml"
    argv = ["-o", str(path)]
    if setup == "bad-file":
        path.write_text("sims: []\n")
        argv.append("--merge")
    elif setup == "wrong-key":
        env["LATTIGO_API_KEY"] = "not-the-key-000"
    elif setup == "refused":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env["LATTIGO_ENDPOINT"] = f"http://127.0.0.1:{port}"
    elif setup == "no-credentials":
        del env["LATTIGO_API_KEY"]
    elif setup == "overwrite-alone":
        argv.append("--overwrite")
    code, out, err = run_import(argv, env)
    message = expected.format(path=path, url=env["LATTIGO_ENDPOINT"])
    lines = err.splitlines()
    assert code == 1
    assert lines[-1].startswith(f"lattigo-fleet import: error: {message}"), err
    assert "Traceback" not in err and EMULATOR_API_KEY not in err
    if setup != "bad-file":
        assert not path.exists()
    code, out, _ = run_import([*argv, "--json"], env)
    assert code == 1 and json.loads(out)["error"].startswith(message)


AWKWARD = [
    "? a question",
    ": starts with a colon",
    "- dash",
    "#hash",
    "a: b",
    "a #b",
    "[x]",
    "{y}",
    "*star",
    "&amp",
    "!bang",
    "%pct",
    "@at",
    "`tick",
    "'quote",
    '"dq',
    " lead",
    "trail ",
    "yes",
    "0x1F",
    "1e3",
    "~",
    "|",
    ">",
]


@pytest.mark.parametrize("value", AWKWARD)
def test_values_round_trip_through_a_written_file_whatever_they_contain(tmp_path: Path, value: str) -> None:
    devices = [device(1, cost_center=value, note=value), device(2, cost_center=value), device(3, note1=value)]
    sims = sims_of(*devices)
    spec = write_validated(tmp_path / "fleet.yaml", render_new(layout(sims), endpoint="http://lattigo.test"))
    got = {s.iccid: (s.cost_center, s.notes) for s in spec.sims}
    assert got[iccid(1)] == (value, {"note": value}) and got[iccid(2)][0] == value
    assert got[iccid(3)][1] == {"note1": value}
    assert calls_at_next_up(spec, sims) == {}
