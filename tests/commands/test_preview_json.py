"""Reading `pulumi preview --json` (fixtures captured from real runs: tests/commands/capture_fixtures.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lattigo_fleet.commands.preview_json import (
    MISSING,
    Preview,
    PreviewError,
    first_error,
    is_guard,
    is_sim,
    parse_preview,
    read_preview_file,
    split_path,
    urn_name,
    urn_stack,
    urn_type,
    value_at,
)

FIXTURES = Path(__file__).parent / "fixtures"
SIM_URN = "urn:pulumi:ci::lattigo-fleet::pulumi-python:dynamic/lattigo:Sim::89012600000000000001"


def fixture(name: str) -> Preview:
    return parse_preview((FIXTURES / f"{name}.json").read_text(), name)


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("cost_center", ["cost_center"]),
        ("notes.note1", ["notes", "note1"]),
        ('notes["a.b"]', ["notes", "a.b"]),
        ('a["x \\"y\\""][0].b', ["a", 'x "y"', 0, "b"]),
        ("list[12]", ["list", 12]),
    ],
)
def test_property_paths_split_as_pulumi_writes_them(path: str, keys: list[str | int]) -> None:
    assert split_path(path) == keys


def test_a_value_is_read_at_its_path_and_missing_when_absent() -> None:
    props = {"notes": {"note1": "east", "a.b": "x"}, "list": [1, 2], "state": "active"}
    assert value_at(props, "notes.note1") == "east"
    assert value_at(props, 'notes["a.b"]') == "x"
    assert value_at(props, "list[1]") == 2
    assert value_at(props, "notes.note2") is MISSING
    assert value_at(props, "list[5]") is MISSING
    assert value_at(None, "state") is MISSING
    assert value_at({"k": {"4dabf18193072939515e22adb298388d": "x", "value": "plain"}}, "k") == "[secret]"


def test_urns_give_stack_type_and_name() -> None:
    assert urn_name(SIM_URN) == "89012600000000000001"
    assert urn_type(SIM_URN) == "pulumi-python:dynamic/lattigo:Sim"
    assert urn_stack(SIM_URN) == "ci"
    assert urn_name("urn:pulumi:ci::p::t::name::with::colons") == "name::with::colons"


def test_a_change_preview_reads_ops_detailed_diffs_and_diagnostics() -> None:
    preview = fixture("changes")
    assert preview.stack == "ci"
    ops = {(s.op, s.name) for s in preview.planned() if is_sim(s) and s.op != "same"}
    assert ops == {
        ("update", "89012600000000000001"),
        ("update", "89012600000000000002"),
        ("update", "89012600000000000003"),
        ("update", "89012600000000000004"),
        ("update", "89012600000000000008"),
        ("delete", "89012600000000000006"),
    }
    by_name = {s.name: s for s in preview.planned() if is_sim(s)}
    assert by_name["89012600000000000001"].detailed_diff == {"cost_center": "update"}
    assert by_name["89012600000000000002"].detailed_diff == {"notes.note1": "add"}
    assert by_name["89012600000000000004"].detailed_diff == {"usage_limit": "add"}
    # Every resource already in the stack was refreshed first; the guard is a step of its own.
    assert len(preview.refreshed()) == 11  # the stack, the guard, nine SIMs
    assert [s.op for s in preview.planned() if is_guard(s)] == ["update"]
    warning = preview.warnings[0]
    assert warning.message.startswith("fleet.yaml:") and not warning.message.endswith("\n")
    assert preview.errors == [] and preview.refusal is None


def test_the_refresh_step_holds_the_applied_state_and_the_update_step_the_live_one() -> None:
    preview = fixture("drift")
    urn = next(s.urn for s in preview.planned() if s.name == "89012600000000000001")
    update = next(s for s in preview.planned() if s.urn == urn)
    assert value_at(preview.refreshed()[urn].old_inputs, "cost_center") == "Fleet-East"  # last applied
    assert value_at(update.old_inputs, "cost_center") == "Warehouse"  # live
    assert value_at(update.new_inputs, "cost_center") == "Fleet-East"  # declared


def test_a_guard_refusal_is_found_among_the_errors() -> None:
    preview = fixture("refused")
    assert preview.refusal is not None
    assert "policy.max_changes: this run would take 5 SIMs out of service" in preview.refusal.message


def test_the_first_error_skips_the_programs_problem_count() -> None:
    preview = fixture("unreachable")
    assert first_error(preview).startswith("cannot read the Lattigo account at http://127.0.0.1:9")
    assert "problem(s) found" not in first_error(preview)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("not json", "is not JSON"),
        ("[1, 2]", "not the output of `pulumi preview --json`"),
        ('{"name": "x"}', "not the output of `pulumi preview --json`"),
    ],
)
def test_what_is_not_a_preview_is_refused_in_one_line(text: str, says: str) -> None:
    with pytest.raises(PreviewError) as err:
        parse_preview(text, "preview.json")
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_and_standard_input(tmp_path: Path) -> None:
    with pytest.raises(PreviewError, match="no such file"):
        read_preview_file(str(tmp_path / "nope.json"))
    doc = json.dumps({"steps": [], "diagnostics": [], "changeSummary": {}})
    assert read_preview_file("-", io.StringIO(doc)).steps == []
