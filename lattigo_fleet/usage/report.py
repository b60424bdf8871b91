"""The usage report, pure: daily figures per SIM in, totals per SIM / cost center / group, the top consumers,
the SIMs over a share of their usage limit, and Lattigo against ThingSpace out. No network, no files.

The rules, each written once here:

- a day of a SIM is its bytes and SMS as the source reports them; a day a source does not report is 0;
- :func:`differs`: Lattigo and ThingSpace disagree on a day when ``|L - T| > max(tolerance * max(L, T),
  min_bytes)`` (symmetric, and small numbers need an absolute difference above the floor);
- :func:`provisional`: ThingSpace's last :data:`PROVISIONAL_DAYS` days before today (UTC) are not final, so a
  difference on one of them is reported apart, flagged provisional, and is not a discrepancy (``attention``);
- ``--over``: this month's bytes (the month of the report's last day, from its 1st to that day) against the
  SIM's fleet.yaml ``usage_limit.kb_limit`` (KB = 1,024 bytes, as the platform counts it). Limits come from
  fleet.yaml only: the Lattigo API cannot read them back (:data:`LIMITS_NOTE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

NO_COST_CENTER = "(none)"
NO_GROUP = "(no group)"
NOT_IN_FLEET = "(not in fleet.yaml)"
KB = 1024
LIMITS_NOTE = (
    "usage limits are the ones fleet.yaml declares: the Lattigo API cannot read limits back, so a "
    "limit set outside fleet.yaml (or on a SIM fleet.yaml does not manage) is not seen"
)
# Verizon's SMS records of a day reach ThingSpace up to 3 days late: a day's ThingSpace figures are final only
# once the day is more than this many days before today (UTC). A window ending earlier has no provisional day.
LATTIGO, THINGSPACE = "lattigo", "thingspace"  # the two sources of figures
PROVISIONAL_DAYS = 3
PROVISIONAL_NOTE = f"ThingSpace may still add records for the last {PROVISIONAL_DAYS} days"


@dataclass(frozen=True)
class DayFigure:
    """One day of one SIM from one source (ThingSpace's same-day records already summed)."""

    bytes_used: int = 0
    sms_used: int = 0
    records: int = 1  # how many records the source sent for that day (0: none, the day is a zero)

    def __add__(self, other: DayFigure) -> DayFigure:
        return DayFigure(
            self.bytes_used + other.bytes_used, self.sms_used + other.sms_used, self.records + other.records
        )


Series = dict[date, DayFigure]


@dataclass(frozen=True)
class SimInfo:
    """Who a SIM is in the report: the account's cost center, fleet.yaml's group and usage limit."""

    iccid: str
    name: str
    cost_center: str = NO_COST_CENTER
    group: str = NOT_IN_FLEET
    kb_limit: int | None = None
    limit_action: str | None = None
    state: str | None = None


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def month_start(day: date) -> date:
    return day.replace(day=1)


def provisional(day: date, today: date) -> bool:
    """Whether ThingSpace may still add records for ``day``: it is at most PROVISIONAL_DAYS days before today."""
    return (today - day).days <= PROVISIONAL_DAYS


def differs(lattigo: int, thingspace: int, tolerance: float, min_bytes: int) -> bool:
    """Whether two figures of one day disagree beyond the tolerance and the absolute floor."""
    return abs(lattigo - thingspace) > max(tolerance * max(lattigo, thingspace), min_bytes)


def parse_share(text: str, what: str) -> float:
    """``80%``, ``80`` (read as a percentage when above 1) or ``0.8`` → 0.8. Raises ValueError with a message."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"{what} must be a share such as 80% or 0.8, not {text!r}") from None
    if not raw.endswith("%") and value > 1:
        value /= 100
    if value < 0 or value != value:
        raise ValueError(f"{what} must not be negative, not {text!r}")
    return value


# --- the report ------------------------------------------------------------------------------------------


@dataclass
class Total:
    """The sum of some SIMs (a cost center, a group, the whole report), with its daily bytes."""

    key: str
    sims: int = 0
    bytes_used: int = 0
    sms_used: int = 0
    daily: dict[date, int] = field(default_factory=dict)

    def to_json(self, label: str) -> dict[str, Any]:
        return {
            label: self.key,
            "sims": self.sims,
            "bytes": self.bytes_used,
            "sms": self.sms_used,
            "daily": {d.isoformat(): b for d, b in sorted(self.daily.items())},
        }


@dataclass(frozen=True)
class SimRow:
    sim: SimInfo
    bytes_used: int
    sms_used: int
    daily: dict[date, int]

    def to_json(self) -> dict[str, Any]:
        s = self.sim
        return {
            "iccid": s.iccid,
            "name": s.name,
            "cost_center": s.cost_center,
            "group": s.group,
            "state": s.state,
            "bytes": self.bytes_used,
            "sms": self.sms_used,
            "daily": {d.isoformat(): b for d, b in sorted(self.daily.items())},
        }


@dataclass(frozen=True)
class OverLimit:
    sim: SimInfo
    month_bytes: int
    share: float  # of the limit

    @property
    def limit_bytes(self) -> int:
        return (self.sim.kb_limit or 0) * KB

    def to_json(self) -> dict[str, Any]:
        return {
            "iccid": self.sim.iccid,
            "name": self.sim.name,
            "cost_center": self.sim.cost_center,
            "group": self.sim.group,
            "kb_limit": self.sim.kb_limit,
            "action": self.sim.limit_action,
            "month_bytes": self.month_bytes,
            "share": round(self.share, 4),
        }


@dataclass(frozen=True)
class Discrepancy:
    sim: SimInfo
    day: date
    lattigo: int
    thingspace: int
    provisional: bool = False  # on a day ThingSpace may still add records for (:func:`provisional`)

    @property
    def difference(self) -> int:
        return self.thingspace - self.lattigo

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "iccid": self.sim.iccid,
            "name": self.sim.name,
            "cost_center": self.sim.cost_center,
            "day": self.day.isoformat(),
            "lattigo_bytes": self.lattigo,
            "thingspace_bytes": self.thingspace,
            "difference": self.difference,
        }
        if self.provisional:  # only then, so that a report of final days reads as it always did
            out["provisional"] = True
        return out


def _by_sim_and_day(d: Discrepancy) -> tuple[str, str, date]:
    return (d.sim.name, d.sim.iccid, d.day)


@dataclass
class Comparison:
    tolerance: float
    min_bytes: int
    compared_sims: int
    discrepancies: list[Discrepancy]
    lattigo_daily: dict[date, int]
    thingspace_daily: dict[date, int]
    thingspace: dict[str, Series] = field(default_factory=dict, repr=False)
    # The days that differ on a provisional day (not in ``discrepancies``), and the window's first provisional
    # day: None when the window ends more than PROVISIONAL_DAYS days before today.
    provisional: list[Discrepancy] = field(default_factory=list)
    provisional_from: date | None = None

    @property
    def sims_with_discrepancies(self) -> int:
        return len({d.sim.iccid for d in self.discrepancies})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tolerance": self.tolerance,
            "min_bytes": self.min_bytes,
            "compared_sims": self.compared_sims,
            "rule": "differs when |lattigo - thingspace| > max(tolerance * max(lattigo, thingspace), min_bytes)",
            # Every day that differs; those on a provisional day say so ("provisional": true).
            "discrepancies": [d.to_json() for d in sorted(self.discrepancies + self.provisional, key=_by_sim_and_day)],
            "daily": {
                "lattigo": {d.isoformat(): b for d, b in sorted(self.lattigo_daily.items())},
                "thingspace": {d.isoformat(): b for d, b in sorted(self.thingspace_daily.items())},
            },
        }
        if self.provisional_from is not None:
            out["provisional"] = {
                "from": self.provisional_from.isoformat(),
                "days": PROVISIONAL_DAYS,
                "note": PROVISIONAL_NOTE,
                "differ": len(self.provisional),
            }
        return out


@dataclass
class UsageReport:
    start: date
    end: date
    total: Total
    sims: list[SimRow]  # by bytes, largest first
    cost_centers: list[Total]
    groups: list[Total]
    top: list[SimRow]
    over: list[OverLimit] | None = None
    over_threshold: float | None = None
    month: tuple[date, date] | None = None
    comparison: Comparison | None = None
    not_read: list[tuple[str, str, str]] = field(default_factory=list)  # (iccid, source, error)
    notes: list[str] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        return days_between(self.start, self.end)

    @property
    def attention(self) -> bool:
        """Something to look at: SIMs over the threshold, or final days on which the two sources disagree."""
        return bool(self.over) or bool(self.comparison and self.comparison.discrepancies)


def _daily_bytes(series: Mapping[date, DayFigure], days: Iterable[date]) -> dict[date, int]:
    return {d: series[d].bytes_used if d in series else 0 for d in days}


def build_report(
    sims: Iterable[SimInfo],
    lattigo: Mapping[str, Series],
    start: date,
    end: date,
    *,
    top: int = 10,
    over: float | None = None,
    thingspace: Mapping[str, Series] | None = None,
    tolerance: float = 0.05,
    min_bytes: int = 1024,
    not_read: Iterable[tuple[str, str, str]] = (),
    today: date | None = None,
) -> UsageReport:
    """The report of ``sims`` over [start, end] from their Lattigo daily figures (and ThingSpace's, to compare).
    ``lattigo`` may hold days outside the range (``--over`` needs the whole month): they count only there.
    ``today`` (default: the UTC date now) tells which days ThingSpace may still add to (:func:`provisional`)."""
    days = days_between(start, end)
    not_read = list(not_read)
    unread_lattigo = {iccid for iccid, source, _ in not_read if source == "lattigo"}
    rows: list[SimRow] = []
    total = Total("total", daily=dict.fromkeys(days, 0))
    by_cc: dict[str, Total] = {}
    by_group: dict[str, Total] = {}
    infos = [s for s in sims if s.iccid not in unread_lattigo]
    for sim in infos:
        series = lattigo.get(sim.iccid, {})
        daily = _daily_bytes(series, days)
        sms = sum(series[d].sms_used for d in days if d in series)
        row = SimRow(sim, sum(daily.values()), sms, daily)
        rows.append(row)
        for bucket in (
            total,
            by_cc.setdefault(sim.cost_center, Total(sim.cost_center, daily=dict.fromkeys(days, 0))),
            by_group.setdefault(sim.group, Total(sim.group, daily=dict.fromkeys(days, 0))),
        ):
            bucket.sims += 1
            bucket.bytes_used += row.bytes_used
            bucket.sms_used += sms
            for d, b in daily.items():
                bucket.daily[d] += b
    rows.sort(key=lambda r: (-r.bytes_used, r.sim.name, r.sim.iccid))

    def ordered(totals: dict[str, Total]) -> list[Total]:
        return sorted(totals.values(), key=lambda t: (-t.bytes_used, t.key))

    report = UsageReport(
        start,
        end,
        total,
        rows,
        ordered(by_cc),
        ordered(by_group),
        [r for r in rows[: max(0, top)] if r.bytes_used > 0],
        not_read=not_read,
    )
    if over is not None:
        first = month_start(end)
        report.over_threshold, report.month = over, (first, end)
        month_days = days_between(first, end)
        found = []
        for sim in infos:
            if not sim.kb_limit:
                continue
            series = lattigo.get(sim.iccid, {})
            used = sum(series[d].bytes_used for d in month_days if d in series)
            share = used / (sim.kb_limit * KB)
            if share >= over:
                found.append(OverLimit(sim, used, share))
        report.over = sorted(found, key=lambda o: (-o.share, o.sim.name, o.sim.iccid))
        report.notes.append(LIMITS_NOTE)
    if thingspace is not None:
        report.comparison = compare(
            infos,
            lattigo,
            thingspace,
            days,
            tolerance,
            min_bytes,
            {iccid for iccid, source, _ in not_read if source == "thingspace"},
            today=today,
        )
    return report


def compare(
    sims: Iterable[SimInfo],
    lattigo: Mapping[str, Series],
    thingspace: Mapping[str, Series],
    days: list[date],
    tolerance: float,
    min_bytes: int,
    skip: set[str] | None = None,
    *,
    today: date | None = None,
) -> Comparison:
    """Each SIM's days, Lattigo beside ThingSpace; the days that differ (:func:`differs`), by SIM then day, those
    on a provisional day apart (``today``: the UTC date now unless given)."""
    today = today or datetime.now(UTC).date()
    found: list[Discrepancy] = []
    l_daily, t_daily = dict.fromkeys(days, 0), dict.fromkeys(days, 0)
    compared = 0
    for sim in sims:
        if skip and sim.iccid in skip:
            continue
        compared += 1
        ls, ts = lattigo.get(sim.iccid, {}), thingspace.get(sim.iccid, {})
        for d in days:
            lb = ls[d].bytes_used if d in ls else 0
            tb = ts[d].bytes_used if d in ts else 0
            l_daily[d] += lb
            t_daily[d] += tb
            if differs(lb, tb, tolerance, min_bytes):
                found.append(Discrepancy(sim, d, lb, tb, provisional(d, today)))
    found.sort(key=_by_sim_and_day)
    return Comparison(
        tolerance,
        min_bytes,
        compared,
        [d for d in found if not d.provisional],
        l_daily,
        t_daily,
        dict(thingspace),
        provisional=[d for d in found if d.provisional],
        provisional_from=next((d for d in days if provisional(d, today)), None),
    )
