"""`lattigo-fleet usage --compare`: the last PROVISIONAL_DAYS days before today are provisional (Verizon's SMS
records reach ThingSpace up to 3 days late). A difference there is reported apart, flagged, and is not a
discrepancy for ``attention`` or the exit status; the same difference on an older day is one."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from emulator.server import EmulatorServer
from lattigo_fleet.cli import build_parser
from lattigo_fleet.commands import usage as usage_command
from lattigo_fleet.usage.render import render_csv, render_json, render_text
from lattigo_fleet.usage.report import PROVISIONAL_DAYS, DayFigure, SimInfo, UsageReport, build_report, provisional
from tests.conftest import emulator_env

TODAY = date(2024, 5, 20)
SIM = SimInfo("8901000000000000001", "truck-1", "East", "trucks")
NOTE = "ThingSpace may still add records for the last 3 days"


@pytest.mark.parametrize(
    ("days_before_today", "is_provisional"),
    [(-1, True), (0, True), (1, True), (3, True), (4, False), (5, False), (30, False)],
)
def test_the_last_three_days_before_today_are_provisional(days_before_today: int, is_provisional: bool) -> None:
    assert PROVISIONAL_DAYS == 3
    assert provisional(TODAY - timedelta(days=days_before_today), TODAY) is is_provisional


def _report(differing_day: date, end: date) -> UsageReport:
    """A week ending ``end`` in which ThingSpace counts 20,000 bytes more than Lattigo on ``differing_day`` only."""
    days = [end - timedelta(days=k) for k in range(7)]
    lattigo = {SIM.iccid: {d: DayFigure(100_000) for d in days}}
    thingspace = {SIM.iccid: {d: DayFigure(120_000 if d == differing_day else 100_000) for d in days}}
    return build_report([SIM], lattigo, days[-1], end, thingspace=thingspace, today=TODAY)


def test_a_difference_on_the_last_day_of_a_window_ending_today_is_provisional() -> None:
    report = _report(TODAY, TODAY)
    c = report.comparison
    assert c is not None
    assert c.discrepancies == [] and not report.attention
    assert [(d.day, d.lattigo, d.thingspace, d.provisional) for d in c.provisional] == [(TODAY, 100_000, 120_000, True)]
    assert c.provisional_from == TODAY - timedelta(days=3)

    text = render_text(report)
    assert "no day differs" in text  # the final days
    assert f"Provisional from 2024-05-17 ({NOTE}; not counted above): 1 day(s) differ on 1 SIM(s)" in text
    assert "2024-05-20        100,000           120,000  +20,000 (16.7%)" in text

    compare = render_json(report)["compare"]
    assert [(d["day"], d["difference"], d["provisional"]) for d in compare["discrepancies"]] == [
        ("2024-05-20", 20_000, True)
    ]
    assert compare["provisional"] == {"from": "2024-05-17", "days": 3, "note": NOTE, "differ": 1}

    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert {r["date"]: r["differs"] for r in rows}["2024-05-20"] == "provisional"
    assert {r["differs"] for r in rows if r["date"] != "2024-05-20"} == {"no"}


def test_the_same_difference_five_days_before_today_is_a_discrepancy() -> None:
    day = TODAY - timedelta(days=5)
    report = _report(day, TODAY)
    c = report.comparison
    assert c is not None
    assert [(d.day, d.difference, d.provisional) for d in c.discrepancies] == [(day, 20_000, False)]
    assert c.provisional == [] and report.attention
    text = render_text(report)
    assert "1 day(s) differ on 1 SIM(s)" in text
    assert f"Provisional from 2024-05-17 ({NOTE}; not counted above): no day differs" in text
    assert "provisional" not in render_json(report)["compare"]["discrepancies"][0]


def test_a_window_that_ends_more_than_three_days_ago_reads_as_it_always_did() -> None:
    end = TODAY - timedelta(days=4)
    report = _report(end, end)
    c = report.comparison
    assert c is not None and c.provisional_from is None and c.provisional == []
    assert [d.day for d in c.discrepancies] == [end] and report.attention
    assert "rovisional" not in render_text(report)
    assert "rovisional" not in json.dumps(render_json(report)) and "rovisional" not in render_csv(report)


# --- the command against the emulator: the exit status -------------------------------------------------------

REAL_TODAY = datetime.now(UTC).date()
ICCID = "89012600000000000001"


def _run(emulator: EmulatorServer, tmp_path: Path, differing_day: date, monkeypatch: pytest.MonkeyPatch) -> int:
    """`usage --compare` over the week ending today, with ThingSpace 10% above Lattigo on ``differing_day``."""
    monkeypatch.setattr(usage_command, "utc_today", lambda: REAL_TODAY)  # one "today" even across midnight
    emulator.add_sims([{"iccid": ICCID, "imei": "350000000000001", "state": "active"}])
    emulator.record_usage(ICCID, differing_day, 5_000_000)
    emulator.set_faults(thingspace_usage_skew=0.10)  # only days with usage differ: here, the one day
    env = emulator_env(emulator)
    window = ["--from", (REAL_TODAY - timedelta(days=6)).isoformat(), "--to", REAL_TODAY.isoformat()]
    args = build_parser().parse_args(
        ["usage", "--cwd", str(tmp_path), "--no-cache", "--no-progress", "--compare", "--json", *window]
    )
    out, err = io.StringIO(), io.StringIO()
    code = usage_command.main(args, out=out, err=err, env=env)
    compare = json.loads(out.getvalue())["compare"]
    flagged = [(d["day"], d.get("provisional", False)) for d in compare["discrepancies"]]
    assert flagged == [(differing_day.isoformat(), provisional(differing_day, REAL_TODAY))], err.getvalue()
    return code


def test_a_difference_today_does_not_set_the_exit_status(
    fresh_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(fresh_emulator, tmp_path, REAL_TODAY, monkeypatch) == usage_command.OK


def test_a_difference_five_days_ago_sets_the_exit_status(
    fresh_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(fresh_emulator, tmp_path, REAL_TODAY - timedelta(days=5), monkeypatch) == usage_command.ATTENTION
