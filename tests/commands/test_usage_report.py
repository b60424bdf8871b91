"""`lattigo-fleet usage`, without a network: the report's rules, the cache, the concurrent fetch, the outputs."""

from __future__ import annotations

import csv
import io
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet.client import AuthenticationError, NotFound
from lattigo_fleet.client.thingspace import DailyUsage
from lattigo_fleet.usage.cache import UsageCache, default_path, scope_of
from lattigo_fleet.usage.chart import render_chart
from lattigo_fleet.usage.fetch import Source, fetch_usage, lattigo_source, thingspace_source
from lattigo_fleet.usage.render import render_csv, render_json, render_text
from lattigo_fleet.usage.report import (
    LIMITS_NOTE,
    DayFigure,
    Series,
    SimInfo,
    UsageReport,
    build_report,
    differs,
    parse_share,
)

SVG = "{http://www.w3.org/2000/svg}"
D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
SIMS = [
    SimInfo("8901000000000000001", "truck-1", "East", "trucks", kb_limit=100, limit_action="suspend"),
    SimInfo("8901000000000000002", "truck-2", "East", "trucks", kb_limit=1000, limit_action="email"),
    SimInfo("8901000000000000003", "kiosk-1", "West", "kiosks"),
]
LATTIGO = {
    SIMS[0].iccid: {D1: DayFigure(50_000, 1), D2: DayFigure(40_000, 2)},
    SIMS[1].iccid: {D2: DayFigure(10_000)},
    SIMS[2].iccid: {D1: DayFigure(200_000, 3), D3: DayFigure(300_000)},
}


@pytest.mark.parametrize(
    ("lattigo", "thingspace", "differ"),
    [
        (100_000, 104_999, False),  # 4.8% of the larger
        (100_000, 105_263, False),  # 5,263 apart; 5% of 105,263 is 5,263.15
        (100_000, 105_264, True),  # 5,264 apart; 5% of 105,264 is 5,263.2
        (100_000, 106_000, True),
        (106_000, 100_000, True),  # symmetric
        (1_000, 2_000, False),  # 50% but only 1,000 bytes: under the floor
        (0, 1_024, False),  # at the floor
        (0, 1_025, True),
        (5_000, 0, True),  # a day one side does not report
    ],
)
def test_a_day_differs_beyond_the_tolerance_and_the_floor(lattigo: int, thingspace: int, differ: bool) -> None:
    assert differs(lattigo, thingspace, 0.05, 1024) is differ


@pytest.mark.parametrize(("text", "value"), [("80%", 0.8), ("0.8", 0.8), ("80", 0.8), ("5%", 0.05), ("0", 0.0)])
def test_shares_read_as_percentages_or_fractions(text: str, value: float) -> None:
    assert parse_share(text, "--over") == pytest.approx(value)


def test_a_share_that_is_not_a_number_is_named() -> None:
    with pytest.raises(ValueError, match="--over must be a share"):
        parse_share("lots", "--over")


def test_totals_per_sim_cost_center_and_group() -> None:
    report = build_report(SIMS, LATTIGO, D1, D3, top=2)
    assert report.total.bytes_used == 600_000 and report.total.sms_used == 6
    assert report.total.daily == {D1: 250_000, D2: 50_000, D3: 300_000}
    assert [(t.key, t.sims, t.bytes_used) for t in report.cost_centers] == [("West", 1, 500_000), ("East", 2, 100_000)]
    assert [(t.key, t.bytes_used) for t in report.groups] == [("kiosks", 500_000), ("trucks", 100_000)]
    assert [r.sim.name for r in report.top] == ["kiosk-1", "truck-1"]
    assert {r.sim.name: r.bytes_used for r in report.sims} == {"kiosk-1": 500_000, "truck-1": 90_000, "truck-2": 10_000}


def test_days_outside_the_range_count_only_for_the_month() -> None:
    report = build_report(SIMS, LATTIGO, D2, D3, over=0.8)
    assert report.total.bytes_used == 350_000
    # truck-1: 90,000 of 102,400 bytes this month (from the 1st) = 87.9%; truck-2: 1%; kiosk-1 has no limit.
    assert report.over is not None
    assert [(o.sim.name, o.month_bytes, round(o.share, 3)) for o in report.over] == [("truck-1", 90_000, 0.879)]
    assert report.month == (D1, D3)
    assert LIMITS_NOTE in report.notes and report.attention


def test_same_day_thingspace_records_are_summed_before_comparing() -> None:
    class FakeThingSpace:
        def daily_usage_by_day(self, iccid: str, earliest: datetime, latest: datetime) -> dict[date, DailyUsage]:
            usage = DailyUsage(D1)
            usage.bytes_used, usage.records = 105_369_575 + 64_963_283, 2
            return {D1: usage}

    series = thingspace_source(FakeThingSpace(), "s").read("8901", D1, D1)
    assert series == {D1: DayFigure(170_332_858, 0, 2)}
    report = build_report(
        SIMS[:1], {SIMS[0].iccid: {D1: DayFigure(170_332_858)}}, D1, D1, thingspace={SIMS[0].iccid: series}
    )
    assert report.comparison is not None and report.comparison.discrepancies == []


def test_discrepancies_list_both_figures() -> None:
    thingspace = {
        SIMS[0].iccid: {D1: DayFigure(50_000), D2: DayFigure(60_000)},
        SIMS[2].iccid: {D1: DayFigure(200_500), D3: DayFigure(300_000)},
    }
    report = build_report(SIMS, LATTIGO, D1, D3, thingspace=thingspace)
    c = report.comparison
    assert c is not None
    assert [(d.sim.name, d.day, d.lattigo, d.thingspace) for d in c.discrepancies] == [
        ("truck-1", D2, 40_000, 60_000),
        ("truck-2", D2, 10_000, 0),
    ]
    text = render_text(report)
    assert "2 day(s) differ on 2 SIM(s)" in text
    assert "40,000" in text and "60,000" in text and "+20,000" in text


def test_lattigo_rows_are_read_with_a_limit_covering_the_window() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class FakeLattigo:
        class stats:
            total_requests = 0

        def daily_data_usages(self, device: str, **kw: Any) -> list[dict[str, Any]]:
            calls.append((device, kw))
            return [
                {"id": 1, "date_for": "2024-05-03", "bytes_used": 7, "sms_used": 1},
                {"id": 2, "date_for": "2024-04-30", "bytes_used": 9, "sms_used": 0},
            ]  # outside: dropped

    series = lattigo_source(FakeLattigo(), "s").read("8901", D1, D3)
    assert series == {D3: DayFigure(7, 1)}
    assert calls == [("8901", {"start_date": D1, "end_date": D3, "limit": 3, "id_type": "iccid"})]


def test_the_cache_keeps_complete_days_only(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    with UsageCache(path, today=D3) as cache:
        stored = cache.store("lattigo", "a", "8901", {D1: DayFigure(5)}, [D1, D2, D3])
        cache.commit()
    assert stored == 2  # D3 is today: not complete
    with UsageCache(path, today=D3) as cache:
        assert cache.load("lattigo", "a", ["8901"], D1, D3) == {"8901": {D1: DayFigure(5), D2: DayFigure(0, 0, 0)}}
        assert cache.load("lattigo", "other-scope", ["8901"], D1, D3) == {}
        assert cache.hits == 2


def test_the_default_cache_path_follows_xdg(tmp_path: Path) -> None:
    assert default_path({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "lattigo-fleet" / "usage.sqlite"
    assert scope_of("http://a/", "k") == scope_of("http://a", "k") != scope_of("http://a", "other")


class CountingSource:
    """A fake API: every read counted, at most ``workers`` at once checked, some ICCIDs failing."""

    def __init__(self, name: str = "lattigo", fail: Iterable[str] = (), refuse: bool = False) -> None:
        self.calls: list[tuple[str, date, date]] = []
        self.lock = threading.Lock()
        self.active = self.peak = 0
        self.fail, self.refuse, self.name = set(fail), refuse, name

    def read(self, iccid: str, first: date, last: date) -> Series:
        with self.lock:
            self.calls.append((iccid, first, last))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            threading.Event().wait(0.002)
            if self.refuse:
                raise AuthenticationError(status=401, detail="refused")
            if iccid in self.fail:
                raise NotFound(status=404, detail="no such device")
            return {d: DayFigure(int(iccid[-3:]) * 10) for d in _days(first, last)}
        finally:
            with self.lock:
                self.active -= 1

    def source(self) -> Source:
        return Source(self.name, "scope", self.read, lambda: len(self.calls))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_a_warm_cache_reads_only_the_days_it_lacks(tmp_path: Path) -> None:
    iccids = [f"8901000000000000{i:03d}" for i in range(40)]
    today = date(2024, 5, 31)
    api = CountingSource()
    with UsageCache(tmp_path / "c.sqlite", today=today) as cache:
        cold = fetch_usage(
            [api.source()], iccids, date(2024, 5, 1), date(2024, 5, 30), cache, workers=4, progress=False
        )
    assert cold.requests == {"lattigo": 40} and cold.cached_days == 0 and api.peak <= 4
    assert cold.series["lattigo"][iccids[7]][date(2024, 5, 9)] == DayFigure(70)
    api.calls.clear()
    with UsageCache(tmp_path / "c.sqlite", today=today) as cache:  # the same range: nothing to read
        warm = fetch_usage([api.source()], iccids, date(2024, 5, 1), date(2024, 5, 30), cache, progress=False)
    assert warm.requests == {"lattigo": 0} and warm.cached_days == 40 * 30
    assert warm.series == cold.series
    with UsageCache(tmp_path / "c.sqlite", today=today) as cache:  # the next night: one new day (and today)
        fetch_usage([api.source()], iccids, date(2024, 5, 1), today, cache, progress=False)
    assert {(first, last) for _, first, last in api.calls} == {(today, today)} and len(api.calls) == 40


def test_a_sim_that_fails_is_reported_and_not_cached(tmp_path: Path) -> None:
    iccids = ["8901000000000000001", "8901000000000000002"]
    api = CountingSource(fail={iccids[1]})
    with UsageCache(tmp_path / "c.sqlite", today=D3) as cache:
        result = fetch_usage([api.source()], iccids, D1, D2, cache, progress=False)
        assert cache.load("lattigo", "scope", iccids, D1, D2).keys() == {iccids[0]}
    assert [(i, s) for i, s, _ in result.not_read] == [(iccids[1], "lattigo")]
    report = build_report([SimInfo(i, i) for i in iccids], result.series["lattigo"], D1, D2, not_read=result.not_read)
    assert report.total.sims == 1 and "Not read (1)" in render_text(report)


def test_a_refused_credential_stops_everything(tmp_path: Path) -> None:
    api = CountingSource(refuse=True)
    with UsageCache(None, today=D3) as cache, pytest.raises(AuthenticationError):
        fetch_usage(
            [api.source()], [f"8901000000000000{i:03d}" for i in range(50)], D1, D2, cache, workers=2, progress=False
        )
    assert len(api.calls) < 50


def _report_with_compare() -> UsageReport:
    thingspace = {s.iccid: {d: DayFigure(int(f.bytes_used * 1.1)) for d, f in LATTIGO[s.iccid].items()} for s in SIMS}
    return build_report(SIMS, LATTIGO, D1, D3, over=0.5, thingspace=thingspace)


def int_attr(element: ET.Element, name: str) -> int:
    value = element.get(name)
    assert value is not None, f"<{element.tag}> has no {name}"
    return int(value)


def test_the_chart_is_valid_html_and_svg_with_one_series_per_cost_center() -> None:
    html = render_chart(_report_with_compare())

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.svgs = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.svgs += tag == "svg"

    parser = Collect()
    parser.feed(html)
    parser.close()
    assert parser.svgs == 2
    root = ET.fromstring(html.split("\n", 1)[1])  # well-formed XML after the doctype
    charts = {svg.get("id"): svg for svg in root.iter(f"{SVG}svg")}
    assert set(charts) == {"daily-by-cost-center", "discrepancies"}
    series = {
        g.get("data-cost-center"): int_attr(g, "data-total-bytes")
        for g in charts["daily-by-cost-center"].iter(f"{SVG}g")
        if g.get("class") == "series"
    }
    assert series == {"West": 500_000, "East": 100_000}
    points = [
        c
        for g in charts["daily-by-cost-center"].iter(f"{SVG}g")
        if g.get("data-cost-center") == "West"
        for c in g.iter(f"{SVG}circle")
    ]
    assert [(p.get("data-day"), int_attr(p, "data-bytes")) for p in points] == [
        ("2024-05-01", 200_000),
        ("2024-05-02", 0),
        ("2024-05-03", 300_000),
    ]
    sources = {
        g.get("data-source"): int_attr(g, "data-total-bytes")
        for g in charts["discrepancies"].iter(f"{SVG}g")
        if g.get("class") == "series"
    }
    assert sources == {"lattigo": 600_000, "thingspace": 660_000}
    bands = {
        r.get("data-day"): int_attr(r, "data-sims")
        for r in charts["discrepancies"].iter(f"{SVG}rect")
        if r.get("class") == "discrepancy"
    }
    assert bands == {"2024-05-01": 2, "2024-05-02": 1, "2024-05-03": 1}


def test_a_cost_center_name_is_escaped_in_the_chart() -> None:
    sims = [SimInfo("8901", "a", cost_center='R&D <"lab">')]
    html = render_chart(build_report(sims, {"8901": {D1: DayFigure(5)}}, D1, D1))
    root = ET.fromstring(html.split("\n", 1)[1])
    assert [g.get("data-cost-center") for g in root.iter(f"{SVG}g") if g.get("class") == "series"] == ['R&D <"lab">']


def test_json_and_csv_carry_every_sim_and_day() -> None:
    report = _report_with_compare()
    data = render_json(report, {"lattigo": 3})
    assert data["totals"]["bytes"] == 600_000 and len(data["sims"]) == 3 and data["requests"] == {"lattigo": 3}
    assert data["over"]["sims"][0]["iccid"] == SIMS[0].iccid and data["notes"] == [LIMITS_NOTE]
    assert len(data["compare"]["discrepancies"]) == 4
    json.dumps(data)
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == 3 * 3
    assert sum(int(r["bytes"]) for r in rows) == 600_000
    assert sum(int(r["thingspace_bytes"]) for r in rows) == 660_000
    assert {(r["iccid"], r["date"]) for r in rows if r["differs"] == "yes"} == {
        (d["iccid"], d["day"]) for d in data["compare"]["discrepancies"]
    }


def test_the_text_report_says_limits_cannot_be_read_back() -> None:
    text = render_text(_report_with_compare())
    assert "the Lattigo API cannot read limits back" in text
    assert "Over 50% of their usage limit this month (2024-05-01 .. 2024-05-03): 1 SIM(s)" in text
