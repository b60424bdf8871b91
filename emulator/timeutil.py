"""Times in and out, as the Time Format section says.

Out: ISO 8601 in UTC (``2024-05-23T10:00:00Z``). In: ISO 8601, plus a few common non-standard forms; a
time without a zone is taken as UTC.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from emulator.errors import BadRequest

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT_DATE = re.compile(r"^\d{8}$")
_FALLBACK_FORMATS = (
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%d %b %Y",
    "%b %d %Y",
    "%Y-%m-%d %H:%M:%S %Z",
)


class Clock:
    """Wall-clock UTC time plus an offset that the admin API can move forward.

    ``source`` is where the wall-clock seconds come from (``time.time``); a test may replace it with a fixed
    value, so that only ``advance_clock`` moves the emulated time.
    """

    def __init__(self, offset_seconds: float = 0.0, source: Callable[[], float] = time.time) -> None:
        self.offset_seconds = offset_seconds
        self.source = source

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        return self.source() + self.offset_seconds


def fmt(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_date(d: date) -> str:
    return d.strftime("%Y-%m-%d")


def is_date_only(text: str) -> bool:
    text = text.strip()
    return bool(_DATE_ONLY.match(text) or _COMPACT_DATE.match(text))


def parse_time(text: str, name: str = "time") -> datetime:
    """Parse an input time; naive times are UTC. Raises BadRequest naming the parameter."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"{name} is invalid")
    raw = text.strip()
    if _COMPACT_DATE.match(raw):
        raw = f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    candidate = raw.replace(" UTC", "Z").replace(" GMT", "Z")
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        for fmt_ in _FALLBACK_FORMATS:
            try:
                parsed = datetime.strptime(raw, fmt_)
                break
            except ValueError:
                continue
    if parsed is None:
        raise BadRequest(f"{name} is invalid")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_range(
    start: str | None,
    end: str | None,
    now: datetime,
    default_start: timedelta | None = timedelta(days=31),
) -> tuple[datetime, datetime]:
    """An inclusive [start, end] window. A date-only end covers that whole day."""
    if end:
        end_dt = parse_time(end, "end_date")
        if is_date_only(end):
            end_dt = end_dt + timedelta(days=1) - timedelta(microseconds=1)
    else:
        end_dt = now
    if start:
        start_dt = parse_time(start, "start_date")
    else:
        start_dt = one_month_before(now) if default_start is not None else datetime(1970, 1, 1, tzinfo=UTC)
    if start_dt > end_dt:
        raise BadRequest("start_date must not be after end_date")
    return start_dt, end_dt


def one_month_before(now: datetime) -> datetime:
    """The same day and time one calendar month earlier (clamped to the month's last day)."""
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    day = min(now.day, _days_in_month(year, month))
    return now.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def month_start(d: date) -> date:
    return d.replace(day=1)


def month_end(d: date) -> date:
    return d.replace(day=_days_in_month(d.year, d.month))


def month_key(d: date) -> str:
    """The month of a day as stored (``2024-05``)."""
    return d.strftime("%Y-%m")
