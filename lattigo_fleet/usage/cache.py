"""The local cache of complete days: SQLite, ``${XDG_CACHE_HOME:-~/.cache}/lattigo-fleet/usage.sqlite``.

A day is complete once it is over in UTC (``day < today``): its figures will not change, so a SIM's day is
read from an API once and from here afterwards, and the nightly run asks only for the days it has not seen.
Every day of a fetched window is stored, a day the source did not report as a zero (``records`` 0), so
that "no usage" is remembered too. Today and later days are never stored.

Rows are keyed by source (``lattigo`` / ``thingspace``), a *scope* (a hash of the endpoint and the key name
or app key, so two accounts or two emulators never share figures; no credential is stored) and ICCID.
Used from one thread (the command's): the workers only fetch.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

from lattigo_fleet.usage.report import DayFigure, Series

SCHEMA = """
CREATE TABLE IF NOT EXISTS days (
    source TEXT NOT NULL,
    scope TEXT NOT NULL,
    iccid TEXT NOT NULL,
    day TEXT NOT NULL,
    bytes_used INTEGER NOT NULL,
    sms_used INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (source, scope, iccid, day)
) WITHOUT ROWID;
"""


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lattigo-fleet" / "usage.sqlite"


def utc_today() -> date:
    return datetime.now(UTC).date()


def scope_of(endpoint: str, principal: str) -> str:
    """Whose figures these are, without writing down who: a hash of the endpoint and the key name."""
    return hashlib.sha256(f"{endpoint.rstrip('/')}\0{principal}".encode()).hexdigest()[:20]


class UsageCache:
    """Complete days of daily usage, per (source, scope, ICCID)."""

    def __init__(self, path: str | os.PathLike[str] | None, today: date | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.today = today or utc_today()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(":memory:" if self.path is None else str(self.path))
        if self.path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self.hits = 0  # SIM-days answered from the cache
        self.stored = 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UsageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, day: date) -> bool:
        return day < self.today

    def load(self, source: str, scope: str, iccids: Iterable[str], start: date, end: date) -> dict[str, Series]:
        """The cached days of these SIMs within [start, end]."""
        wanted = set(iccids)
        found: dict[str, Series] = {}
        rows = self._conn.execute(
            "SELECT iccid, day, bytes_used, sms_used, records FROM days "
            "WHERE source = ? AND scope = ? AND day >= ? AND day <= ?",
            (source, scope, start.isoformat(), end.isoformat()),
        )
        for iccid, day, bytes_used, sms_used, records in rows:
            if iccid in wanted:
                found.setdefault(iccid, {})[date.fromisoformat(day)] = DayFigure(bytes_used, sms_used, records)
        self.hits += sum(len(series) for series in found.values())
        return found

    def store(self, source: str, scope: str, iccid: str, series: Mapping[date, DayFigure], days: Iterable[date]) -> int:
        """Remember the complete ones of ``days`` (those absent from ``series`` as zeros). Returns how many."""
        rows = []
        for day in days:
            if not self.complete(day):
                continue
            fig = series.get(day) or DayFigure(0, 0, 0)
            rows.append((source, scope, iccid, day.isoformat(), fig.bytes_used, fig.sms_used, fig.records))
        self._conn.executemany("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.stored += len(rows)
        return len(rows)

    def commit(self) -> None:
        self._conn.commit()
