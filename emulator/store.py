"""The database, the emulated clock and the queue of work that completes later. No rules, no HTTP here.

Everything lives in one SQLite database (a file, or ``:memory:``), reached through one connection guarded
by a re-entrant lock, so concurrent requests are serialised and safe. Queued work (activations,
suspensions without billing, SMS delivery) is a row in ``jobs`` with a due time on the emulated clock; it
runs lazily before every operation (:meth:`Store.op`), or at once through :meth:`Store.tick`. What a job
does is up to the part that queued it: it registers a handler for its kind with :meth:`Store.on_job`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from emulator.errors import BadRequest
from emulator.timeutil import Clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rate_plans (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, name TEXT NOT NULL, days_in_term INTEGER,
    activation_fee REAL, termination_fee REAL, monthly_data_plan_cost REAL,
    monthly_data_allowance_bytes INTEGER, overage_data_unit_bytes INTEGER, overage_data_unit_cost REAL,
    monthly_sms_plan_cost REAL, monthly_sms_allowance INTEGER, overage_sms_unit INTEGER,
    overage_sms_unit_cost REAL, UNIQUE(account_id, name));
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, username TEXT NOT NULL, UNIQUE(account_id, username));
CREATE TABLE IF NOT EXISTS sims (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, device_name TEXT NOT NULL UNIQUE,
    iccid TEXT NOT NULL UNIQUE, imei TEXT, state TEXT NOT NULL, suspended_reason TEXT,
    ip_address TEXT, ipv6 TEXT, note TEXT, note1 TEXT, note2 TEXT, note3 TEXT, mdn TEXT, meid TEXT,
    imsi TEXT, esn TEXT, msisdn TEXT, min TEXT, connected INTEGER NOT NULL DEFAULT 0,
    last_connection_date TEXT, cost_center TEXT, last_activation_date TEXT, latitude TEXT, longitude TEXT,
    address TEXT, rate_plan TEXT, kb_limit INTEGER, limit_action TEXT, limit_usernames TEXT,
    sms_capable INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS sims_account_state ON sims(account_id, state, id);
-- the listing's filter (account, state) and order (id) in one index: its pages and counts never read the table
DROP INDEX IF EXISTS sims_account_id;
CREATE INDEX IF NOT EXISTS sims_account_listing ON sims(account_id, id, state);
CREATE INDEX IF NOT EXISTS sims_imei ON sims(imei);
CREATE INDEX IF NOT EXISTS sims_msisdn ON sims(msisdn);
CREATE TABLE IF NOT EXISTS daily_usage (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, date_for TEXT NOT NULL, bytes_used INTEGER NOT NULL,
    sms_mo INTEGER NOT NULL DEFAULT 0, sms_mt INTEGER NOT NULL DEFAULT 0, UNIQUE(sim_id, date_for));
CREATE TABLE IF NOT EXISTS monthly_usage (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, month TEXT NOT NULL, bytes_used INTEGER NOT NULL,
    sms_used INTEGER NOT NULL, UNIQUE(sim_id, month));
CREATE TABLE IF NOT EXISTS sms (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
    event_status TEXT NOT NULL, event_timestamp TEXT NOT NULL, message_body TEXT, report_timestamp TEXT,
    failure_reason TEXT);
CREATE INDEX IF NOT EXISTS sms_sim ON sms(sim_id, event_timestamp);
CREATE TABLE IF NOT EXISTS calamp_messages (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, event_code INTEGER NOT NULL, created_at TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS calamp_sim ON calamp_messages(sim_id, created_at);
CREATE INDEX IF NOT EXISTS calamp_event ON calamp_messages(event_code, created_at);
CREATE TABLE IF NOT EXISTS device_reports (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reports_sim ON device_reports(sim_id, created_at);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, sim_id INTEGER NOT NULL, due_at REAL NOT NULL, payload TEXT);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at);
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, imei TEXT NOT NULL, sku TEXT, email TEXT,
    created_at TEXT);
CREATE TABLE IF NOT EXISTS locate_requests (
    id INTEGER PRIMARY KEY, sim_id INTEGER NOT NULL, created_at TEXT NOT NULL);
"""
TABLES = (
    "meta",
    "rate_plans",
    "users",
    "sims",
    "daily_usage",
    "monthly_usage",
    "sms",
    "calamp_messages",
    "device_reports",
    "jobs",
    "uploads",
    "locate_requests",
)

#: What a job does when it is due: called with its ``jobs`` row, inside the transaction that runs it.
JobHandler = Callable[[sqlite3.Row], None]


class Store:
    """One SQLite connection under a re-entrant lock, the emulated clock, and the queue of due work."""

    def __init__(self, db: str = ":memory:", activation_delay: float = 2.0) -> None:
        self.lock = threading.RLock()
        self.db_path = db
        self.conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        if db != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._depth = 0
        #: how long queued work takes on the emulated clock (seconds)
        self.activation_delay = float(activation_delay)
        self._handlers: dict[str, JobHandler] = {}
        self.clock = Clock(float(self.meta("clock_offset") or 0.0))
        self._next_due: float | None = None

    # ---- transactions ---------------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction under the lock (re-entrant: nested uses join the outer one)."""
        with self.lock:
            if self._depth == 0:
                self.conn.execute("BEGIN")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("COMMIT")

    @contextmanager
    def op(self) -> Iterator[sqlite3.Connection]:
        """An API operation: run queued work that is due, then the operation, in one transaction."""
        with self.tx() as conn:
            self.run_due_jobs()
            yield conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def wipe(self) -> None:
        """Empty every table, put the clock back to real time and forget queued work (inside a tx)."""
        for table in TABLES:
            self.conn.execute(f"DELETE FROM {table}")
        self.clock.offset_seconds = 0.0
        self.set_meta("clock_offset", 0.0)
        self._next_due = None

    # ---- the clock ------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance_clock(self, seconds: float) -> datetime:
        if seconds < 0:
            raise BadRequest("advance_seconds must not be negative")
        with self.tx():
            self.clock.offset_seconds += seconds
            self.set_meta("clock_offset", self.clock.offset_seconds)
            self.run_due_jobs()
            return self.now()

    # ---- queued work ----------------------------------------------------------------------------

    def on_job(self, kind: str, handler: JobHandler) -> None:
        """Have ``handler`` run each job of this kind when it is due."""
        self._handlers[kind] = handler

    def schedule(self, kind: str, sim_id: int, payload: str | None = None) -> None:
        """Queue a job for a SIM, due ``activation_delay`` seconds from now on the emulated clock."""
        due = self.clock.timestamp() + self.activation_delay
        self.conn.execute(
            "INSERT INTO jobs(kind, sim_id, due_at, payload) VALUES (?, ?, ?, ?)", (kind, sim_id, due, payload)
        )
        if self._next_due is None or due < self._next_due:
            self._next_due = due

    def cancel(self, kind: str, sim_id: int) -> None:
        """Drop a SIM's queued jobs of one kind."""
        self.conn.execute("DELETE FROM jobs WHERE sim_id = ? AND kind = ?", (sim_id, kind))

    def refresh_next_due(self) -> None:
        row = self.conn.execute("SELECT MIN(due_at) FROM jobs").fetchone()
        self._next_due = row[0]

    def run_due_jobs(self, force: bool = False) -> int:
        """Run the jobs that are due (all of them if ``force``), oldest first. Returns how many ran."""
        if not force and (self._next_due is None or self._next_due > self.clock.timestamp()):
            return 0
        with self.tx() as conn:
            if force:
                jobs = conn.execute("SELECT * FROM jobs ORDER BY due_at, id").fetchall()
            else:
                jobs = conn.execute(
                    "SELECT * FROM jobs WHERE due_at <= ? ORDER BY due_at, id", (self.clock.timestamp(),)
                ).fetchall()
            for job in jobs:
                conn.execute("DELETE FROM jobs WHERE id = ?", (job["id"],))
                handler = self._handlers.get(job["kind"])
                if handler is not None:
                    handler(job)
            self.refresh_next_due()
            return len(jobs)

    def tick(self) -> int:
        """Run all queued work now, whatever its due time. Returns how many jobs ran."""
        with self.tx():
            return self.run_due_jobs(force=True)
