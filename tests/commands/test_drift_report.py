"""`lattigo-fleet drift`'s report from a preview captured after three out-of-band changes (a cost center, a
note, a state) and one SIM nobody declared (tests/commands/fixtures/drift.json)."""

from __future__ import annotations

import json
from pathlib import Path

from lattigo_fleet.commands import drift
from lattigo_fleet.commands.preview_json import MISSING, parse_preview

FIXTURES = Path(__file__).parent / "fixtures"
DECLARED = {f"890126000000000000{i:02d}" for i in (1, 2, 3, 4, 5, 7, 8, 9)}
SNAPSHOT = {
    iccid: {"iccid": iccid, "device_name": str(36500 + n), "state": "active", "cost_center": "ops"}
    for n, iccid in enumerate(sorted(DECLARED | {"89012600000000000006", "89012600000000000099"}))
}


def report(name: str = "drift") -> drift.DriftReport:
    preview = parse_preview((FIXTURES / f"{name}.json").read_text())
    return drift.build_report(preview, SNAPSHOT, DECLARED)


def test_each_out_of_band_change_is_one_item_with_declared_and_live_values() -> None:
    items = [(i.sim, i.field, i.declared, i.live, i.kind) for i in report().items]
    assert items == [
        ("truck-1", "cost_center", "Fleet-East", "Warehouse", "drift"),
        ("truck-2", "notes.note1", "east depot", "west", "drift"),
        ("truck-5", "state", "active", "suspended", "drift"),
    ]


def test_sims_of_the_account_that_fleet_yaml_does_not_declare_are_unmanaged() -> None:
    found = report().unmanaged
    # 6 was removed from fleet.yaml and forgotten (on_remove: retain); 99 was never declared.
    assert [s.iccid for s in found] == ["89012600000000000006", "89012600000000000099"]
    assert report().counts == {"drift": 3, "drifted_sims": 3, "pending": 0, "unmanaged": 2}


def test_a_change_of_fleet_yaml_not_applied_yet_is_pending_not_drift() -> None:
    items = report("changes").items
    assert {(i.sim, i.field, i.kind) for i in items} == {
        ("truck-1", "cost_center", "pending"),
        ("truck-2", "notes.note1", "pending"),
        ("truck-3", "state", "pending"),
        ("truck-4", "usage_limit", "pending"),
        ("truck-8", "state", "pending"),
        ("truck-6", None, "pending"),
    }
    removed = next(i for i in items if i.field is None)
    assert removed.note == "removed from fleet.yaml, not applied yet"
    assert next(i for i in items if i.field == "notes.note1").live is MISSING


def test_the_text_report_names_each_item_once_and_what_cannot_be_checked_once() -> None:
    text = drift.render_text(report())
    for iccid in ("89012600000000000001", "89012600000000000002", "89012600000000000005", "89012600000000000099"):
        assert text.count(iccid) == 1
    assert 'truck-1 (89012600000000000001)  cost_center  declared "Fleet-East", live "Warehouse"' in text
    assert text.count("usage limits") == 1
    assert "Drift: 3 drifted field(s) on 3 SIM(s), 2 unmanaged SIM(s)." in text


def test_json_and_markdown_carry_the_same_items() -> None:
    doc = drift.render_json(report())
    assert json.loads(json.dumps(doc)) == doc
    assert doc["in_sync"] is False
    assert [d["field"] for d in doc["drift"]] == ["cost_center", "notes.note1", "state"]
    markdown = drift.render_markdown(report())
    assert '| truck-5 | `89012600000000000005` | state | "active" | "suspended" | drift |' in markdown
    # Every item of the JSON is a row of the Markdown table, in the same order, and nothing else is.
    table = markdown.split("| --- | --- | --- | --- | --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    assert rows == [
        [d["sim"], f"`{d['iccid']}`", d["field"], json.dumps(d["declared"]), json.dumps(d["live"]), d["kind"]]
        for d in doc["drift"]
    ]
    unmanaged = markdown.split("| ICCID | device | state | cost center |\n| --- | --- | --- | --- |\n", 1)[1]
    unmanaged = unmanaged.split("\n\n", 1)[0]
    assert [line.split("`")[1] for line in unmanaged.splitlines()] == [s["iccid"] for s in doc["unmanaged"]]


def test_a_clean_preview_is_in_sync() -> None:
    preview = parse_preview(json.dumps({"steps": [], "diagnostics": [], "changeSummary": {"same": 1}}))
    clean = drift.build_report(preview, {"1": {}}, {"1"})
    assert not clean.drifted and clean.items == [] and clean.unmanaged == []
    assert "In sync" in drift.render_text(clean)
