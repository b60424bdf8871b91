"""The local cache of complete days: SQLite, ``${XDG_CACHE_HOME:-~/.cache}/lattigo-fleet/usage.sqlite``.

A day is complete once it is over in UTC (``day < today``): its figures will not change, so a SIM's day is
read from an API once and from here afterwards, and the nightly run asks only for the days it has not seen.
Every day of a fetched window is stored, a day the source did not report as a zero (``records`` 0), so
that "no usage" is remembered too. Today and later days are never stored, nor ThingSpace's provisional days
(the last ``PROVISIONAL_DAYS``: its records for them may still arrive).

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

from lattigo_fleet.usage.report import THINGSPACE, DayFigure, Series, provisional

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


class UsageCacheError(Exception):
    """The cache cannot be used (a directory at its path, locked by another process): one line for the user."""


# What SQLite says of a file that is not (or no longer) a database: the cache is set aside and rebuilt.
_BROKEN = ("file is not a database", "database disk image is malformed", "malformed", "not a database")


class UsageCache:
    """Complete days of daily usage, per (source, scope, ICCID).

    It is a cache: a corrupted file is renamed beside itself (``set_aside``) and a new one started, so the
    days are read from the APIs again. A path that cannot hold it, or a cache another process holds locked
    past ``busy_timeout`` seconds, is a :class:`UsageCacheError`."""

    def __init__(
        self, path: str | os.PathLike[str] | None, today: date | None = None, *, busy_timeout: float = 10.0
    ) -> None:
        self.path = None if path is None else Path(path)
        self.today = today or utc_today()
        self.busy_timeout = busy_timeout
        self.set_aside: Path | None = None
        self.hits = 0  # SIM-days answered from the cache
        self.stored = 0
        if self.path is not None and self.path.is_dir():
            raise UsageCacheError(f"{self.path}: the usage cache is a file, and a directory is in its place")
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if self.path is None or not any(word in str(exc) for word in _BROKEN):
                raise self._error(exc) from None
            self._set_aside()
            try:
                self._conn = self._open()
            except sqlite3.Error as again:
                raise self._error(again) from None

    def _open(self) -> sqlite3.Connection:
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageCacheError(f"{self.path}: cannot create its directory: {exc.strerror or exc}") from None
        conn = sqlite3.connect(":memory:" if self.path is None else str(self.path), timeout=self.busy_timeout)
        try:
            if self.path is not None:
                conn.execute("PRAGMA journal_mode=WAL")
                # A damaged page shows here, not at some later query in the middle of a report.
                problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({problems[0]})")
            conn.executescript(SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> None:
        assert self.path is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, target.with_name(target.name + suffix))
        except OSError as exc:
            raise UsageCacheError(
                f"{self.path}: the usage cache is corrupted and cannot be set aside ({exc.strerror or exc}): "
                "delete it, or run with --no-cache"
            ) from None
        self.set_aside = target

    def _error(self, exc: sqlite3.Error) -> UsageCacheError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return UsageCacheError(
                f"{self.path}: the usage cache is locked by another process (another `lattigo-fleet usage`?): "
                "try again when it is done, or run with --no-cache"
            )
        return UsageCacheError(f"{self.path}: cannot use the usage cache: {text}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UsageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, day: date, source: str) -> bool:
        """Whether the source's figures of this day are final: the day is over, and for ThingSpace, no
        longer provisional (its records of the last days may still arrive; report.provisional)."""
        return day < self.today and not (source == THINGSPACE and provisional(day, self.today))

    def load(self, source: str, scope: str, iccids: Iterable[str], start: date, end: date) -> dict[str, Series]:
        """The cached days of these SIMs within [start, end]."""
        wanted = set(iccids)
        found: dict[str, Series] = {}
        try:
            rows = self._conn.execute(
                "SELECT iccid, day, bytes_used, sms_used, records FROM days "
                "WHERE source = ? AND scope = ? AND day >= ? AND day <= ?",
                (source, scope, start.isoformat(), end.isoformat()),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        for iccid, day, bytes_used, sms_used, records in rows:
            if iccid in wanted:
                found.setdefault(iccid, {})[date.fromisoformat(day)] = DayFigure(bytes_used, sms_used, records)
        self.hits += sum(len(series) for series in found.values())
        return found

    def store(self, source: str, scope: str, iccid: str, series: Mapping[date, DayFigure], days: Iterable[date]) -> int:
        """Remember the complete ones of ``days`` (those absent from ``series`` as zeros). Returns how many."""
        rows = []
        for day in days:
            if not self.complete(day, source):
                continue
            fig = series.get(day) or DayFigure(0, 0, 0)
            rows.append((source, scope, iccid, day.isoformat(), fig.bytes_used, fig.sms_used, fig.records))
        try:
            self._conn.executemany("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        self.stored += len(rows)
        return len(rows)

    def commit(self) -> None:
        try:
            self._conn.commit()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
