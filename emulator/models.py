"""State and rules of the emulated Lattigo account(s) and the carrier (ThingSpace) view. No HTTP here.

Everything lives in one SQLite database (a file, or ``:memory:``), reached through one connection guarded
by a re-entrant lock, so concurrent requests are serialised and safe. SIM state changes go through
:mod:`emulator.lifecycle` only. Queued work (activations, suspensions without billing, SMS delivery) is a
row in ``jobs`` with a due time on the emulated clock; it runs lazily before every operation, or at once
through :meth:`Backend.tick`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator import lifecycle as lc
from emulator.errors import BadRequest, Forbidden, NotFound, Unauthorized
from emulator.paging import PageRequest
from emulator.timeutil import Clock, fmt, month_end, month_start

PRIMARY_ACCOUNT = 1
OTHER_ACCOUNT = 2
ACCOUNT_NAMES = {PRIMARY_ACCOUNT: "primary", OTHER_ACCOUNT: "other"}
ACCOUNT_IDS = {v: k for k, v in ACCOUNT_NAMES.items()}

#: The second account's fixed key pair: its SIMs answer 403 to the primary account and vice versa.
OTHER_ACCOUNT_KEY_NAME = "globex-key"
OTHER_ACCOUNT_API_KEY = "globex-secret-not-for-production"

MAX_KEY_PAIRS = 5
FIRST_DEVICE_NAME = 36500

API_TOKEN_LIFETIME = 3600  # seconds, from issue
SESSION_IDLE_LIFETIME = 20 * 60  # seconds without use
MAX_FAILED_LOGINS = 5

DEVICE_FIELDS = (
    "id",
    "device_name",
    "ip_address",
    "ipv6",
    "note",
    "state",
    "mdn",
    "meid",
    "imsi",
    "imei",
    "iccid",
    "esn",
    "msisdn",
    "min",
    "connected",
    "last_connection_date",
    "cost_center",
    "last_activation_date",
    "latitude",
    "longitude",
    "address",
    "bytes_used",
    "sms_used",
    "note1",
    "note2",
    "note3",
)
NOTE_FIELDS = ("note", "note1", "note2", "note3")
ID_TYPES = {
    "device_name": "device_name",
    "iccid": "iccid",
    "imei": "imei",
    "msisdn": "msisdn",
    "mdn": "mdn",
    "imsi": "imsi",
    "esn": "esn",
    "meid": "meid",
    "min": "min",
}
RATE_PLAN_FIELDS = (
    "name",
    "days_in_term",
    "activation_fee",
    "termination_fee",
    "monthly_data_plan_cost",
    "monthly_data_allowance_bytes",
    "overage_data_unit_bytes",
    "overage_data_unit_cost",
    "monthly_sms_plan_cost",
    "monthly_sms_allowance",
    "overage_sms_unit",
    "overage_sms_unit_cost",
)
NOTE_MAX_API = 100  # the note endpoint truncates
NOTE_MAX_ACTIVATION = 250
USAGE_LIMIT_ACTIONS = ("suspend", "email")

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
CREATE INDEX IF NOT EXISTS sims_account_id ON sims(account_id, id);
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

_SIM_EXTRA_COLUMNS = (
    "account_id",
    "suspended_reason",
    "rate_plan",
    "kb_limit",
    "limit_action",
    "limit_usernames",
    "sms_capable",
)
_DEVICE_SELECT = (
    "SELECT "
    + ", ".join(
        "COALESCE(m.bytes_used, 0) AS bytes_used"
        if f == "bytes_used"
        else "COALESCE(m.sms_used, 0) AS sms_used"
        if f == "sms_used"
        else f"s.{f}"
        for f in DEVICE_FIELDS
    )
    + ", "
    + ", ".join(f"s.{c}" for c in _SIM_EXTRA_COLUMNS)
    + " FROM sims s LEFT JOIN monthly_usage m ON m.sim_id = s.id AND m.month = ? "
)

# Job kinds (queued work)
JOB_COMPLETE = "complete_transition"  # payload: the lifecycle completion event
JOB_SMS_DELIVERY = "sms_delivery"  # payload: sms row id


def is_iccid(value: str) -> bool:
    return value.isdigit() and 18 <= len(value) <= 22


def is_imei(value: str) -> bool:
    return value.isdigit() and len(value) in (15, 16)


def _month_key(d: date) -> str:
    return d.strftime("%Y-%m")


class Backend:
    """The emulated platform: accounts, SIMs, usage, messages, queued work, ThingSpace tokens."""

    def __init__(
        self,
        db: str = ":memory:",
        keys: Sequence[tuple[str, str]] = (),
        activation_delay: float = 2.0,
        seed: str = "empty",
    ) -> None:
        if len(keys) > MAX_KEY_PAIRS:
            raise ValueError(f"an account has at most {MAX_KEY_PAIRS} key pairs")
        self.lock = threading.RLock()
        self.db_path = db
        self.conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        if db != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self._depth = 0
        self.activation_delay = float(activation_delay)
        self.default_seed = seed
        self._keys: dict[str, tuple[str, int]] = {}
        for name, key in keys:
            self._keys[name] = (key, PRIMARY_ACCOUNT)
        self._keys[OTHER_ACCOUNT_KEY_NAME] = (OTHER_ACCOUNT_API_KEY, OTHER_ACCOUNT)
        self._ts_reset()
        self.clock = Clock(float(self._meta("clock_offset") or 0.0))
        self._next_due: float | None = None
        if self._meta("seed") is None:
            self.reset(seed)
        else:
            self._refresh_next_due()

    # ---- plumbing -------------------------------------------------------------------------------

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
            self._run_due_jobs()
            yield conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def now(self) -> datetime:
        return self.clock.now()

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def reset(self, seed: str | None = None) -> None:
        """Wipe every table and load a seed (default: the one the backend was created with)."""
        from emulator import seeds

        seed = seed or self.default_seed
        if seed not in seeds.SEEDS:
            raise BadRequest(f"seed must be one of {', '.join(sorted(seeds.SEEDS))}")
        with self.tx() as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self.clock.offset_seconds = 0.0
            self._set_meta("clock_offset", 0.0)
            self._set_meta("next_device_name", FIRST_DEVICE_NAME)
            self._next_due = None
            self._ts_reset()
            seeds.SEEDS[seed](self)
            self._set_meta("seed", seed)
            self._refresh_next_due()

    # ---- credentials ----------------------------------------------------------------------------

    def authenticate(self, key_name: str | None, api_key: str | None) -> int:
        """The account of a key pair, or Unauthorized."""
        if not key_name or api_key is None:
            raise Unauthorized("Credentials are missing")
        entry = self._keys.get(key_name)
        if entry is None or not hmac.compare_digest(entry[0].encode(), api_key.encode()):
            raise Unauthorized("Credentials are incorrect")
        return entry[1]

    # ---- clock and queued work ------------------------------------------------------------------

    def advance_clock(self, seconds: float) -> datetime:
        if seconds < 0:
            raise BadRequest("advance_seconds must not be negative")
        with self.tx():
            self.clock.offset_seconds += seconds
            self._set_meta("clock_offset", self.clock.offset_seconds)
            self._run_due_jobs()
            return self.now()

    def _schedule(self, kind: str, sim_id: int, payload: str | None = None) -> None:
        due = self.clock.timestamp() + self.activation_delay
        self.conn.execute(
            "INSERT INTO jobs(kind, sim_id, due_at, payload) VALUES (?, ?, ?, ?)", (kind, sim_id, due, payload)
        )
        if self._next_due is None or due < self._next_due:
            self._next_due = due

    def _refresh_next_due(self) -> None:
        row = self.conn.execute("SELECT MIN(due_at) FROM jobs").fetchone()
        self._next_due = row[0]

    def _run_due_jobs(self, force: bool = False) -> int:
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
                if job["kind"] == JOB_COMPLETE:
                    sim = conn.execute("SELECT * FROM sims WHERE id = ?", (job["sim_id"],)).fetchone()
                    if sim is not None:
                        self._apply(sim, job["payload"])
                elif job["kind"] == JOB_SMS_DELIVERY:
                    stamp = fmt(self.now())
                    conn.execute(
                        "UPDATE sms SET event_status = 'delivered', report_timestamp = ? WHERE id = ?",
                        (stamp, int(job["payload"])),
                    )
            self._refresh_next_due()
            return len(jobs)

    def tick(self) -> int:
        """Run all queued work now, whatever its due time. Returns how many jobs ran."""
        with self.tx():
            return self._run_due_jobs(force=True)

    # ---- the lifecycle, applied -----------------------------------------------------------------

    def _apply(self, sim: sqlite3.Row, event: str) -> lc.Outcome:
        """Apply a lifecycle event to a SIM row; queue the completion of pending states."""
        outcome = lc.decide(sim["state"], event)
        if not outcome.ok or outcome.noop or outcome.new_state is None:
            return outcome
        self._set_state(sim, outcome.new_state, outcome.suspended_reason)
        return outcome

    def _set_state(self, sim: sqlite3.Row, new_state: str, reason: str | None = None) -> None:
        now = fmt(self.now())
        sets: dict[str, Any] = {"state": new_state}
        if new_state == lc.SUSPENDED:
            sets["suspended_reason"] = reason or "api"
        elif new_state in (lc.SUSPENDED_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING):
            sets["suspended_reason"] = "no_billing"
        else:
            sets["suspended_reason"] = None
        if new_state != lc.ACTIVE:
            sets["connected"] = 0
        if new_state == lc.ACTIVE:
            if sim["state"] == lc.PENDING_ACTIVATION or not sim["last_activation_date"]:
                sets["last_activation_date"] = now
            sets.update(self._network_identity(sim))
        assignments = ", ".join(f"{k} = ?" for k in sets)
        self.conn.execute(f"UPDATE sims SET {assignments} WHERE id = ?", (*sets.values(), sim["id"]))  # noqa: S608
        self.conn.execute("DELETE FROM jobs WHERE sim_id = ? AND kind = ?", (sim["id"], JOB_COMPLETE))
        completion = lc.QUEUED_COMPLETIONS.get(new_state)
        if completion is not None:
            self._schedule(JOB_COMPLETE, sim["id"], completion)

    def _network_identity(self, sim: sqlite3.Row) -> dict[str, Any]:
        """Identifiers the carrier assigns on activation (kept once assigned)."""
        n = int(sim["id"])
        msisdn = sim["msisdn"] or f"1555{(3000000 + n * 7919) % 10000000:07d}"
        return {
            "msisdn": msisdn,
            "mdn": sim["mdn"] or msisdn[-10:],
            "min": sim["min"] or msisdn[-10:],
            "imsi": sim["imsi"] or f"311480{(n * 104729) % 1000000000:09d}",
            "ip_address": sim["ip_address"] or f"10.{64 + (n >> 16) % 64}.{(n >> 8) % 256}.{n % 256}",
            "ipv6": sim["ipv6"] or f"fd00:1a77:160::{n:x}",
        }

    # ---- low-level inserts (seeds and admin) ----------------------------------------------------

    def _next_device_name(self) -> str:
        current = int(self._meta("next_device_name") or FIRST_DEVICE_NAME)
        while self.conn.execute("SELECT 1 FROM sims WHERE device_name = ?", (str(current),)).fetchone():
            current += 1
        self._set_meta("next_device_name", current + 1)
        return str(current)

    def insert_sim(self, account_id: int, fields: dict[str, Any]) -> sqlite3.Row:
        """Insert a SIM as-is (no lifecycle): the seeds' and the admin API's way in."""
        with self.tx() as conn:
            values = dict(fields)
            values.setdefault("device_name", self._next_device_name())
            values.setdefault("state", lc.INVENTORY)
            values["account_id"] = account_id
            cols = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            cur = conn.execute(f"INSERT INTO sims({cols}) VALUES ({marks})", tuple(values.values()))  # noqa: S608
            sim = conn.execute("SELECT * FROM sims WHERE id = ?", (cur.lastrowid,)).fetchone()
            if sim["state"] != lc.INVENTORY:
                extra = self._network_identity(sim) if sim["state"] != lc.PENDING_ACTIVATION else {}
                if sim["state"] != lc.PENDING_ACTIVATION and not sim["last_activation_date"]:
                    extra["last_activation_date"] = fmt(self.now() - timedelta(days=120))
                if extra:
                    assignments = ", ".join(f"{k} = ?" for k in extra)
                    conn.execute(
                        f"UPDATE sims SET {assignments} WHERE id = ?",
                        (*extra.values(), sim["id"]),  # noqa: S608
                    )
                completion = lc.QUEUED_COMPLETIONS.get(sim["state"])
                if completion is not None:
                    self._schedule(JOB_COMPLETE, sim["id"], completion)
                sim = conn.execute("SELECT * FROM sims WHERE id = ?", (sim["id"],)).fetchone()
            return sim

    def add_rate_plan(self, account_id: int, plan: dict[str, Any]) -> None:
        cols = ["account_id", *RATE_PLAN_FIELDS]
        with self.tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO rate_plans({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",  # noqa: S608
                (account_id, *(plan.get(f) for f in RATE_PLAN_FIELDS)),
            )

    def add_user(self, account_id: int, username: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO users(account_id, username) VALUES (?, ?)", (account_id, username))

    # ---- device views ---------------------------------------------------------------------------

    def _device_query(self) -> str:
        """SELECT of device rows: the API's fields first, in order (see device_dict), then the rest."""
        return _DEVICE_SELECT

    def _current_month(self) -> str:
        return _month_key(self.now().date())

    @staticmethod
    def device_dict(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(zip(DEVICE_FIELDS, row, strict=False))
        out["connected"] = bool(out["connected"])
        return out

    def _admin_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        out = self.device_dict(row)
        out["rate_plan"] = row["rate_plan"]
        out["usage_limit"] = (
            None
            if row["kb_limit"] is None
            else {
                "kb_limit": row["kb_limit"],
                "action": row["limit_action"],
                "usernames": json.loads(row["limit_usernames"] or "[]"),
            }
        )
        out["suspended_reason"] = row["suspended_reason"]
        out["account"] = ACCOUNT_NAMES.get(row["account_id"], str(row["account_id"]))
        return out

    def list_devices(self, account: int, state: str | None, details: bool, page: PageRequest) -> tuple[list[Any], int]:
        if state is not None and state not in lc.API_STATES:
            raise BadRequest(f"state does not have a valid value (one of {', '.join(lc.API_STATES)})")
        with self.op() as conn:
            where = "s.account_id = ? AND s.state != 'inventory'"
            args: list[Any] = [account]
            if state is not None:
                where = "s.account_id = ? AND s.state = ?"
                args = [account, state]
            total = conn.execute(f"SELECT COUNT(*) FROM sims s WHERE {where}", args).fetchone()[0]  # noqa: S608
            if details:
                # page the ids first (an index walk), then join only that page's rows
                rows = conn.execute(
                    "WITH page AS (SELECT s.id FROM sims s "  # noqa: S608
                    f"WHERE {where} ORDER BY s.id LIMIT ? OFFSET ?) "
                    + self._device_query()
                    + "WHERE s.id IN (SELECT id FROM page) ORDER BY s.id",
                    (*args, page.per_page, page.start, self._current_month()),
                ).fetchall()
                return [self.device_dict(r) for r in rows], total
            rows = conn.execute(
                f"SELECT s.device_name FROM sims s WHERE {where} ORDER BY s.id LIMIT ? OFFSET ?",  # noqa: S608
                (*args, page.per_page, page.start),
            ).fetchall()
            return [r[0] for r in rows], total

    def _id_column(self, id_type: str | None) -> str:
        if id_type is None or id_type == "":
            return "device_name"
        column = ID_TYPES.get(id_type.strip().lower())
        if column is None:
            raise BadRequest(f"id_type does not have a valid value (one of {', '.join(ID_TYPES)})")
        return column

    def _find(self, account: int, ident: str, column: str) -> tuple[sqlite3.Row | None, bool]:
        """(row of this account, whether another account has it). Inventory SIMs are invisible."""
        rows = self.conn.execute(
            self._device_query() + f"WHERE s.{column} = ? AND s.state != 'inventory' ORDER BY s.id",  # noqa: S608
            (self._current_month(), ident),
        ).fetchall()
        mine = [r for r in rows if r["account_id"] == account]
        if mine:
            return mine[0], False
        return None, bool(rows)

    def _resolve(self, account: int, ident: str, id_type: str | None) -> sqlite3.Row:
        column = self._id_column(id_type)
        row, foreign = self._find(account, str(ident), column)
        if row is None:
            if foreign:
                raise Forbidden("Attempted access to a device you do not own")
            raise NotFound("Device not found")
        return row

    def _resolve_many(self, account: int, idents: list[str], id_type: str | None) -> dict[str, sqlite3.Row | None]:
        column = self._id_column(id_type)
        found: dict[str, sqlite3.Row | None] = {}
        foreign: list[str] = []
        for ident in idents:
            row, other = self._find(account, ident, column)
            found[ident] = row
            if row is None and other:
                foreign.append(ident)
        if foreign:
            raise Forbidden(f"Attempted access to devices you do not own: {', '.join(foreign)}")
        return found

    def get_device(self, account: int, ident: str, id_type: str | None) -> dict[str, Any]:
        with self.op():
            return self.device_dict(self._resolve(account, ident, id_type))

    # ---- per-device sub-resources ---------------------------------------------------------------

    def get_sms(
        self,
        account: int,
        ident: str,
        id_type: str | None,
        start: date | None,
        end: date | None,
        direction: str,
    ) -> list[dict[str, Any]]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            sql = "SELECT * FROM sms WHERE sim_id = ?"
            args: list[Any] = [sim["id"]]
            if start is not None:
                sql += " AND substr(event_timestamp, 1, 10) >= ?"
                args.append(start.isoformat())
            if end is not None:
                sql += " AND substr(event_timestamp, 1, 10) <= ?"
                args.append(end.isoformat())
            if direction == "sent":
                sql += " AND event_type = 'MT'"
            elif direction == "received":
                sql += " AND event_type = 'MO'"
            rows = conn.execute(sql + " ORDER BY event_timestamp, id", args).fetchall()
            return [
                {
                    "event_id": r["event_id"],
                    "event_status": r["event_status"],
                    "event_timestamp": r["event_timestamp"],
                    "event_type": r["event_type"],
                    "imsi": sim["imsi"],
                    "message_body": r["message_body"],
                    "msisdn": sim["msisdn"],
                    "report_timestamp": r["report_timestamp"],
                    "failure_reason": r["failure_reason"],
                }
                for r in rows
            ]

    @staticmethod
    def _message(row: sqlite3.Row) -> dict[str, Any]:
        body = json.loads(row["body"])
        body["message_id"] = row["id"]
        body["event_code"] = row["event_code"]
        body["created_at"] = row["created_at"]
        return body

    def calamp_messages(
        self,
        account: int,
        ident: str,
        id_type: str | None,
        start: datetime,
        end: datetime,
        event_code: int | None,
        page: PageRequest,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            where = "sim_id = ? AND created_at >= ? AND created_at <= ?"
            args: list[Any] = [sim["id"], fmt(start), fmt(end)]
            if event_code is not None:
                where += " AND event_code = ?"
                args.append(event_code)
            total = conn.execute(f"SELECT COUNT(*) FROM calamp_messages WHERE {where}", args).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT * FROM calamp_messages WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",  # noqa: S608
                (*args, page.per_page, page.start),
            ).fetchall()
            return [self._message(r) for r in rows], total

    def last_calamp_message(self, account: int, ident: str, id_type: str | None) -> dict[str, Any] | None:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            row = conn.execute(
                "SELECT * FROM calamp_messages WHERE sim_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                (sim["id"],),
            ).fetchone()
            return None if row is None else self._message(row)

    def calamp_events(
        self,
        account: int,
        event_code: int,
        start: datetime,
        end: datetime,
        state: str | None,
        page: PageRequest,
    ) -> tuple[list[dict[str, Any]], int]:
        if state is not None and state not in lc.API_STATES:
            raise BadRequest(f"state does not have a valid value (one of {', '.join(lc.API_STATES)})")
        with self.op() as conn:
            where = (
                "c.event_code = ? AND c.created_at >= ? AND c.created_at <= ? AND s.account_id = ? "
                "AND s.state != 'inventory'"
            )
            args: list[Any] = [event_code, fmt(start), fmt(end), account]
            if state is not None:
                where += " AND s.state = ?"
                args.append(state)
            base = f"FROM calamp_messages c JOIN sims s ON s.id = c.sim_id WHERE {where}"
            total = conn.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT c.* {base} ORDER BY c.created_at, c.id LIMIT ? OFFSET ?",  # noqa: S608
                (*args, page.per_page, page.start),
            ).fetchall()
            return [self._message(r) for r in rows], total

    def set_note(self, account: int, ident: str, id_type: str | None, field: str, text: str) -> str:
        if field not in NOTE_FIELDS:
            raise BadRequest(f"field_name does not have a valid value (one of {', '.join(NOTE_FIELDS)})")
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            conn.execute(f"UPDATE sims SET {field} = ? WHERE id = ?", (text[:NOTE_MAX_API], sim["id"]))  # noqa: S608
            return sim["device_name"]

    def device_reports(
        self,
        account: int,
        ident: str,
        id_type: str | None,
        start: datetime,
        end: datetime,
        limit: int,
        page: PageRequest,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            rows = conn.execute(
                "SELECT * FROM device_reports WHERE sim_id = ? AND created_at >= ? AND created_at <= ? "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (sim["id"], fmt(start), fmt(end), limit),
            ).fetchall()
            items = []
            for r in rows:
                body = json.loads(r["body"])
                body["id"] = r["id"]
                body["created_at"] = r["created_at"]
                items.append(body)
            return page.slice(items), len(items)

    def daily_usages(
        self, account: int, ident: str, id_type: str | None, start: date, end: date, limit: int, page: PageRequest
    ) -> tuple[list[dict[str, Any]], int]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            rows = conn.execute(
                "SELECT id, date_for, bytes_used, sms_mo + sms_mt AS sms FROM daily_usage "
                "WHERE sim_id = ? AND date_for >= ? AND date_for <= ? ORDER BY date_for DESC LIMIT ?",
                (sim["id"], start.isoformat(), end.isoformat(), limit),
            ).fetchall()
            items = [
                {"id": r["id"], "date_for": r["date_for"], "bytes_used": r["bytes_used"], "sms_used": r["sms"]}
                for r in rows
            ]
            return page.slice(items), len(items)

    def monthly_usages(
        self, account: int, ident: str, id_type: str | None, start: date, end: date, limit: int, page: PageRequest
    ) -> tuple[list[dict[str, Any]], int]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            rows = conn.execute(
                "SELECT id, month, bytes_used, sms_used FROM monthly_usage "
                "WHERE sim_id = ? AND month >= ? AND month <= ? ORDER BY month DESC LIMIT ?",
                (sim["id"], _month_key(start), _month_key(end), limit),
            ).fetchall()
            items = [
                {
                    "id": r["id"],
                    "date_for": f"{r['month']}-01",
                    "bytes_used": r["bytes_used"],
                    "sms_used": r["sms_used"],
                }
                for r in rows
            ]
            return page.slice(items), len(items)

    def cellular_locate(self, account: int, ident: str, id_type: str | None) -> tuple[str, str]:
        with self.op() as conn:
            sim = self._resolve(account, ident, id_type)
            if sim["state"] != lc.ACTIVE:
                return sim["device_name"], "Error: Device is not active; the carrier cannot locate it."
            conn.execute("INSERT INTO locate_requests(sim_id, created_at) VALUES (?, ?)", (sim["id"], fmt(self.now())))
            return sim["device_name"], "Success: Location request submitted to the carrier."

    # ---- device operations ----------------------------------------------------------------------

    def change_cost_center(
        self, account: int, idents: list[str], id_type: str | None, cost_center: str
    ) -> dict[str, str]:
        with self.op() as conn:
            found = self._resolve_many(account, idents, id_type)
            out: dict[str, str] = {}
            for ident, sim in found.items():
                if sim is None:
                    out[ident] = "Error: Device does not exist."
                    continue
                conn.execute("UPDATE sims SET cost_center = ? WHERE id = ?", (cost_center, sim["id"]))
                out[ident] = "Success"
            return out

    def change_simstate(self, account: int, idents: list[str], id_type: str | None, state: str) -> dict[str, str]:
        event = {"suspend": lc.SUSPEND, "restore": lc.RESTORE}.get(state)
        if event is None:
            raise BadRequest("state does not have a valid value (one of suspend, restore)")
        with self.op():
            found = self._resolve_many(account, idents, id_type)
            out: dict[str, str] = {}
            for ident, sim in found.items():
                if sim is None:
                    out[ident] = "Error: Device does not exist."
                    continue
                outcome = self._apply(sim, event)
                out[ident] = "Success" if outcome.ok else f"Error: {outcome.refusal}"
            return out

    def set_usage_limit(
        self,
        account: int,
        idents: list[str],
        id_type: str | None,
        kb_limit: int,
        action: str,
        usernames: list[str],
    ) -> dict[str, str]:
        if action not in USAGE_LIMIT_ACTIONS:
            raise BadRequest("action does not have a valid value (one of suspend, email)")
        with self.op() as conn:
            valid = {
                r[0] for r in conn.execute("SELECT username FROM users WHERE account_id = ?", (account,)).fetchall()
            }
            kept = [u for u in usernames if u in valid]  # invalid usernames are silently ignored
            found = self._resolve_many(account, idents, id_type)
            out: dict[str, str] = {}
            for ident, sim in found.items():
                if sim is None:
                    out[ident] = "Error: Device does not exist."
                    continue
                conn.execute(
                    "UPDATE sims SET kb_limit = ?, limit_action = ?, limit_usernames = ? WHERE id = ?",
                    (kb_limit, action, json.dumps(kept), sim["id"]),
                )
                self._enforce_limit(sim["id"])
                out[ident] = "Success: Device data limit is set."
            return out

    def remove_usage_limit(self, account: int, idents: list[str], id_type: str | None) -> dict[str, str]:
        with self.op() as conn:
            found = self._resolve_many(account, idents, id_type)
            out: dict[str, str] = {}
            for ident, sim in found.items():
                if sim is None:
                    out[ident] = "Error: Device does not exist."
                    continue
                conn.execute(
                    "UPDATE sims SET kb_limit = NULL, limit_action = NULL, limit_usernames = NULL WHERE id = ?",
                    (sim["id"],),
                )
                out[ident] = "Success: Device data limit removed."
            return out

    def send_sms(self, account: int, idents: list[str], id_type: str | None, text: str) -> dict[str, str]:
        with self.op() as conn:
            found = self._resolve_many(account, idents, id_type)
            out: dict[str, str] = {}
            now = fmt(self.now())
            for ident, sim in found.items():
                if sim is None or not sim["sms_capable"] or sim["state"] != lc.ACTIVE:
                    out[ident] = "Error: Device does not exist, or does not have SMS enabled."
                    continue
                event_id = hashlib.sha1(f"{sim['id']}:{now}:{secrets.token_hex(4)}".encode()).hexdigest()[:20]
                cur = conn.execute(
                    "INSERT INTO sms(sim_id, event_id, event_type, event_status, event_timestamp, message_body) "
                    "VALUES (?, ?, 'MT', 'queued', ?, ?)",
                    (sim["id"], event_id, now, text),
                )
                self._schedule(JOB_SMS_DELIVERY, sim["id"], str(cur.lastrowid))
                out[ident] = "Success: Attempting SMS Send."
            return out

    def activation_request(
        self,
        account: int,
        rate_plan_name: str,
        rows: list[dict[str, Any]],
        rejected_iccids: frozenset[str] = frozenset(),
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        processed: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        with self.op() as conn:
            plan_ok = (
                conn.execute(
                    "SELECT 1 FROM rate_plans WHERE account_id = ? AND name = ?", (account, rate_plan_name)
                ).fetchone()
                is not None
            )
            seen: set[str] = set()
            for index, row in enumerate(rows):
                iccid = _text(row.get("iccid"))
                imei = _text(row.get("imei"))
                sku = _text(row.get("device_sku"))
                notes = {f: _text(row.get(f)) for f in NOTE_FIELDS}
                errors: dict[str, list[str]] = {}
                if not iccid:
                    errors.setdefault("iccid", []).append("can't be blank")
                elif not is_iccid(iccid):
                    errors.setdefault("iccid", []).append("is not a valid ICCID")
                if not imei and not sku:
                    errors.setdefault("imei", []).append("can't be blank")
                elif imei and not is_imei(imei):
                    errors.setdefault("imei", []).append("is not a valid IMEI")
                for f, v in notes.items():
                    if len(v) > NOTE_MAX_ACTIVATION:
                        errors.setdefault(f, []).append(f"is too long (maximum is {NOTE_MAX_ACTIVATION} characters)")
                if not plan_ok:
                    errors.setdefault("rate_plan_name", []).append(
                        f"'{rate_plan_name}' is not a rate plan available to this account"
                    )
                sim = None
                if iccid and "iccid" not in errors:
                    if iccid in seen:
                        errors.setdefault("iccid", []).append("appears more than once in this request")
                    sim = conn.execute(
                        "SELECT * FROM sims WHERE iccid = ? AND account_id = ?", (iccid, account)
                    ).fetchone()
                    if sim is None:
                        errors.setdefault("iccid", []).append("was not found in this account's inventory")
                    else:
                        outcome = lc.decide(sim["state"], lc.ACTIVATE)
                        if not outcome.ok:
                            errors.setdefault("iccid", []).append(outcome.attribute_error or "cannot be activated")
                    seen.add(iccid)
                if not errors and iccid in rejected_iccids:
                    errors.setdefault("iccid", []).append("was rejected by the carrier")
                echo = {"iccid": iccid, "imei": imei, **notes}
                for extra in ("device_sku", "region_code"):
                    if row.get(extra) is not None:
                        echo[extra] = _text(row.get(extra))
                if errors or sim is None:
                    unprocessed.append(
                        {"device_index": index, "error": json.dumps(errors, separators=(",", ":")), "input": echo}
                    )
                    continue
                updates: dict[str, Any] = {"rate_plan": rate_plan_name}
                if imei:
                    updates["imei"] = imei
                for f in NOTE_FIELDS:
                    if row.get(f) is not None:
                        updates[f] = notes[f]
                assignments = ", ".join(f"{k} = ?" for k in updates)
                conn.execute(f"UPDATE sims SET {assignments} WHERE id = ?", (*updates.values(), sim["id"]))  # noqa: S608
                self._apply(conn.execute("SELECT * FROM sims WHERE id = ?", (sim["id"],)).fetchone(), lc.ACTIVATE)
                processed.append({**echo, "request_type": "activate"})
        return processed, unprocessed

    def suspend_no_billing_request(
        self, account: int, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        processed: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        with self.op():
            # a device of another account refuses the whole request, like the other bulk operations
            foreign = []
            for row in rows:
                iccid = _text(row.get("iccid"))
                if iccid:
                    mine, other = self._find(account, iccid, "iccid")
                    if mine is None and other:
                        foreign.append(iccid)
            if foreign:
                raise Forbidden(f"Attempted access to devices you do not own: {', '.join(foreign)}")
            for index, row in enumerate(rows):
                iccid = _text(row.get("iccid"))
                imei = _text(row.get("imei"))
                errors: dict[str, list[str]] = {}
                if not iccid:
                    errors.setdefault("iccid", []).append("can't be blank")
                if not imei:
                    errors.setdefault("imei", []).append("can't be blank")
                sim = None
                if iccid:
                    sim, _ = self._find(account, iccid, "iccid")
                    if sim is None:
                        errors.setdefault("iccid", []).append("does not exist")
                    elif imei and sim["imei"] and sim["imei"] != imei:
                        errors.setdefault("imei", []).append("does not match the device's IMEI")
                if sim is not None and not errors:
                    outcome = lc.decide(sim["state"], lc.SUSPEND_NO_BILLING)
                    if not outcome.ok:
                        errors.setdefault("iccid", []).append(outcome.attribute_error or "cannot be suspended")
                echo = {"iccid": iccid, "imei": imei}
                if errors or sim is None:
                    unprocessed.append(
                        {"device_index": index, "error": json.dumps(errors, separators=(",", ":")), "input": echo}
                    )
                    continue
                self._apply(sim, lc.SUSPEND_NO_BILLING)
                processed.append({**echo, "request_type": "suspend_no_billing"})
        return processed, unprocessed

    def upload_request(
        self, account: int, email: str, sku: str, ids: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        processed: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        with self.op() as conn:
            for index, item in enumerate(ids):
                imei = _text(item.get("imei"))
                if not imei:
                    errors = {"imei": ["can't be blank"]}
                elif not is_imei(imei):
                    errors = {"imei": ["is not a valid IMEI"]}
                else:
                    errors = {}
                if errors:
                    unprocessed.append(
                        {
                            "device_index": index,
                            "error": json.dumps(errors, separators=(",", ":")),
                            "input": {"imei": imei},
                        }
                    )
                    continue
                conn.execute(
                    "INSERT INTO uploads(account_id, imei, sku, email, created_at) VALUES (?, ?, ?, ?, ?)",
                    (account, imei, sku, email, fmt(self.now())),
                )
                processed.append({"imei": imei, "sku": sku, "email": email})
        return processed, unprocessed

    def rate_plans(self, account: int) -> list[dict[str, Any]]:
        with self.op() as conn:
            rows = conn.execute("SELECT * FROM rate_plans WHERE account_id = ? ORDER BY id", (account,)).fetchall()
            return [{f: r[f] for f in RATE_PLAN_FIELDS} for r in rows]

    def users(self, account: int) -> list[str]:
        with self.op() as conn:
            rows = conn.execute("SELECT username FROM users WHERE account_id = ? ORDER BY id", (account,)).fetchall()
            return [r[0] for r in rows]

    # ---- usage and its limit --------------------------------------------------------------------

    def record_usage(self, iccid: str, day: date, bytes_used: int, sms_mo: int = 0, sms_mt: int = 0) -> None:
        """Set one day's usage of a SIM (replacing what was there) and enforce its usage limit."""
        if bytes_used < 0 or sms_mo < 0 or sms_mt < 0:
            raise BadRequest("usage must not be negative")
        with self.tx() as conn:
            self._run_due_jobs()
            sim = conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone()
            if sim is None:
                raise NotFound(f"no SIM with ICCID {iccid}")
            conn.execute(
                "INSERT INTO daily_usage(sim_id, date_for, bytes_used, sms_mo, sms_mt) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(sim_id, date_for) DO UPDATE SET bytes_used = excluded.bytes_used, "
                "sms_mo = excluded.sms_mo, sms_mt = excluded.sms_mt",
                (sim["id"], day.isoformat(), bytes_used, sms_mo, sms_mt),
            )
            self._recompute_month(sim["id"], day)
            if bytes_used > 0:
                stamp = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
                if not sim["last_connection_date"] or sim["last_connection_date"] < fmt(stamp):
                    conn.execute("UPDATE sims SET last_connection_date = ? WHERE id = ?", (fmt(stamp), sim["id"]))
            if _month_key(day) == self._current_month():
                self._enforce_limit(sim["id"])

    def _recompute_month(self, sim_id: int, day: date) -> None:
        first, last = month_start(day), month_end(day)
        total = self.conn.execute(
            "SELECT COALESCE(SUM(bytes_used), 0), COALESCE(SUM(sms_mo + sms_mt), 0) FROM daily_usage "
            "WHERE sim_id = ? AND date_for >= ? AND date_for <= ?",
            (sim_id, first.isoformat(), last.isoformat()),
        ).fetchone()
        self.conn.execute(
            "INSERT INTO monthly_usage(sim_id, month, bytes_used, sms_used) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sim_id, month) DO UPDATE SET bytes_used = excluded.bytes_used, "
            "sms_used = excluded.sms_used",
            (sim_id, _month_key(day), total[0], total[1]),
        )

    def _enforce_limit(self, sim_id: int) -> None:
        sim = self.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone()
        if sim is None or sim["kb_limit"] is None or sim["limit_action"] != "suspend":
            return
        row = self.conn.execute(
            "SELECT bytes_used FROM monthly_usage WHERE sim_id = ? AND month = ?", (sim_id, self._current_month())
        ).fetchone()
        used = row[0] if row else 0
        if used > 0 and used >= sim["kb_limit"] * 1024:
            self._apply(sim, lc.USAGE_LIMIT_REACHED)

    # ---- admin views ----------------------------------------------------------------------------

    def admin_sims(
        self, account: str | None = "primary", state: str | None = None, iccid: str | None = None
    ) -> list[dict[str, Any]]:
        with self.tx() as conn:
            self._run_due_jobs()
            sql = self._device_query() + "WHERE 1 = 1"
            args: list[Any] = [self._current_month()]
            if account and account != "all":
                if account not in ACCOUNT_IDS:
                    raise BadRequest("account must be one of primary, other, all")
                sql += " AND s.account_id = ?"
                args.append(ACCOUNT_IDS[account])
            if state:
                sql += " AND s.state = ?"
                args.append(state)
            if iccid:
                sql += " AND s.iccid = ?"
                args.append(iccid)
            rows = conn.execute(sql + " ORDER BY s.id", args).fetchall()
            return [self._admin_dict(r) for r in rows]

    def admin_upsert_sims(self, sims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /_emulator/sims: new ICCIDs are inserted (inventory without ``state``); known ones are
        changed out of band (drift), bypassing the lifecycle."""
        allowed = {"iccid", "imei", "state", "cost_center", "rate_plan", "account", "msisdn", *NOTE_FIELDS}
        out_ids: list[int] = []
        with self.tx() as conn:
            self._run_due_jobs()
            for spec in sims:
                if not isinstance(spec, dict):
                    raise BadRequest("each sim must be an object")
                unknown = set(spec) - allowed
                if unknown:
                    raise BadRequest(f"unknown sim fields: {', '.join(sorted(unknown))}")
                iccid = _text(spec.get("iccid"))
                if not is_iccid(iccid):
                    raise BadRequest(f"iccid {iccid!r} is not a valid ICCID (18-22 digits)")
                imei = spec.get("imei")
                if imei is not None and not is_imei(_text(imei)):
                    raise BadRequest(f"imei {imei!r} is not a valid IMEI (15 or 16 digits)")
                state = spec.get("state")
                if state is not None and state not in lc.API_STATES:
                    raise BadRequest(f"state must be one of {', '.join(lc.API_STATES)}")
                account_name = spec.get("account", "primary")
                if account_name not in ACCOUNT_IDS:
                    raise BadRequest("account must be one of primary, other")
                fields = {
                    k: (_text(v) if v is not None else None)
                    for k, v in spec.items()
                    if k not in ("iccid", "state", "account")
                }
                existing = conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone()
                if existing is None:
                    values = {"iccid": iccid, **fields}
                    if state is not None:
                        values["state"] = state
                        if state in (lc.SUSPENDED,):
                            values["suspended_reason"] = "api"
                        if state in (lc.SUSPENDED_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING):
                            values["suspended_reason"] = "no_billing"
                    sim = self.insert_sim(ACCOUNT_IDS[account_name], values)
                    out_ids.append(sim["id"])
                    continue
                if fields:
                    assignments = ", ".join(f"{k} = ?" for k in fields)
                    conn.execute(
                        f"UPDATE sims SET {assignments} WHERE id = ?",
                        (*fields.values(), existing["id"]),  # noqa: S608
                    )
                if "account" in spec:
                    conn.execute(
                        "UPDATE sims SET account_id = ? WHERE id = ?", (ACCOUNT_IDS[account_name], existing["id"])
                    )
                if state is not None and state != existing["state"]:
                    row = conn.execute("SELECT * FROM sims WHERE id = ?", (existing["id"],)).fetchone()
                    self._set_state(row, state, "api" if state == lc.SUSPENDED else None)
                out_ids.append(existing["id"])
            rows = [
                conn.execute(self._device_query() + "WHERE s.id = ?", (self._current_month(), i)).fetchone()
                for i in out_ids
            ]
            return [self._admin_dict(r) for r in rows]

    def account_of_sim(self, iccid: str) -> int | None:
        with self.tx() as conn:
            row = conn.execute("SELECT account_id FROM sims WHERE iccid = ?", (iccid,)).fetchone()
            return None if row is None else row[0]

    # ---- ThingSpace (carrier) -------------------------------------------------------------------

    def _ts_reset(self) -> None:
        self._ts_tokens: dict[str, dict[str, Any]] = {}
        self._ts_token_by_app: dict[str, str] = {}
        self._ts_sessions: dict[str, dict[str, Any]] = {}
        self._ts_failed: dict[str, int] = {}
        self._ts_locked: set[str] = set()

    def ts_issue_token(self, app_key: str | None, app_secret: str | None) -> tuple[str, int]:
        """OAuth2 client credentials: the same token again within its hour."""
        with self.lock:
            account = self.authenticate(app_key, app_secret)
            now = self.clock.timestamp()
            token = self._ts_token_by_app.get(app_key or "")
            if token is not None and self._ts_tokens[token]["expires"] > now:
                return token, int(self._ts_tokens[token]["expires"] - now)
            token = secrets.token_urlsafe(24)
            self._ts_tokens[token] = {"app_key": app_key, "account": account, "expires": now + API_TOKEN_LIFETIME}
            self._ts_token_by_app[app_key or ""] = token
            return token, API_TOKEN_LIFETIME

    def ts_token_account(self, token: str | None) -> tuple[int, str]:
        """(account, app key) of a valid bearer token, or Unauthorized."""
        with self.lock:
            entry = self._ts_tokens.get(token or "")
            if entry is None:
                raise Unauthorized("Invalid API access token")
            if entry["expires"] <= self.clock.timestamp():
                raise Unauthorized("API access token has expired")
            return entry["account"], entry["app_key"]

    def ts_app_key_of(self, token: str | None) -> str | None:
        with self.lock:
            entry = self._ts_tokens.get(token or "")
            return None if entry is None else entry["app_key"]

    def ts_login(self, username: str | None, password: str | None) -> str:
        with self.lock:
            user = username or ""
            if user in self._ts_locked:
                raise Forbidden(
                    "The contact record is locked after 5 consecutive failed logins; contact support to unlock it"
                )
            try:
                account = self.authenticate(username, password)
            except Unauthorized:
                count = self._ts_failed.get(user, 0) + 1
                self._ts_failed[user] = count
                if count >= MAX_FAILED_LOGINS:
                    self._ts_locked.add(user)
                raise Unauthorized(
                    f"Invalid username or password ({count} consecutive failed login{'s' if count != 1 else ''})"
                ) from None
            self._ts_failed.pop(user, None)
            token = secrets.token_urlsafe(24)
            self._ts_sessions[token] = {"account": account, "username": user, "last_used": self.clock.timestamp()}
            return token

    def ts_logout(self, session_token: str) -> None:
        with self.lock:
            self._ts_sessions.pop(session_token, None)

    def ts_session_account(self, session_token: str | None) -> int:
        with self.lock:
            entry = self._ts_sessions.get(session_token or "")
            now = self.clock.timestamp()
            if entry is None:
                raise Unauthorized("Invalid VZ-M2M session token")
            if now - entry["last_used"] > SESSION_IDLE_LIFETIME:
                raise Unauthorized("VZ-M2M session token has expired")
            entry["last_used"] = now
            return entry["account"]

    def ts_expire_sessions(self) -> int:
        with self.lock:
            for entry in self._ts_sessions.values():
                entry["last_used"] = float("-inf")
            return len(self._ts_sessions)

    def ts_expire_tokens(self) -> int:
        with self.lock:
            for entry in self._ts_tokens.values():
                entry["expires"] = float("-inf")
            return len(self._ts_tokens)

    def ts_unlock(self) -> None:
        with self.lock:
            self._ts_failed.clear()
            self._ts_locked.clear()

    def ts_daily_usage(
        self,
        account: int,
        iccid: str,
        earliest: datetime,
        latest: datetime,
        page_days: int,
        skew: float = 0.0,
        split_days: bool = False,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The carrier's daily usage records of one SIM: (records, hasMoreData)."""
        with self.op() as conn:
            sim = conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone()
            if sim is None or sim["account_id"] != account:
                raise NotFound(f"Device {iccid} was not found")
            first = earliest.date() if earliest.time() == datetime.min.time() else earliest.date() + timedelta(1)
            rows = conn.execute(
                "SELECT date_for, bytes_used, sms_mo, sms_mt FROM daily_usage WHERE sim_id = ? "
                "AND date_for >= ? AND date_for <= ? ORDER BY date_for LIMIT ?",
                (sim["id"], first.isoformat(), latest.date().isoformat(), page_days + 1),
            ).fetchall()
            more = len(rows) > page_days
            records: list[dict[str, Any]] = []
            plan = sim["rate_plan"] or "unknown"
            for r in rows[:page_days]:
                total = int(round(r["bytes_used"] * (1.0 + skew)))
                parts = (
                    [(total // 2, r["sms_mo"], 0), (total - total // 2, 0, r["sms_mt"])]
                    if split_days
                    else [(total, r["sms_mo"], r["sms_mt"])]
                )
                for part_bytes, mo, mt in parts:
                    records.append(
                        {
                            "bytesUsed": part_bytes,
                            "extendedAttributes": [
                                {"key": "MoSms", "value": str(mo)},
                                {"key": "MtSms", "value": str(mt)},
                            ],
                            "servicePlan": plan,
                            "smsUsed": mo + mt,
                            "source": "Usage Feed",
                            "timestamp": f"{r['date_for']}T00:00:00Z",
                        }
                    )
            return records, more


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
