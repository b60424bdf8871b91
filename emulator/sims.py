"""The SIMs of the accounts: their fields, the lifecycle applied to their rows, and finding them. No HTTP.

SIM state changes go through :mod:`emulator.lifecycle` only (:meth:`Sims.apply`); a state that completes
by itself (pending activation, pending suspension without billing) queues its completion in the
:class:`~emulator.store.Store`. Lookups answer what the API sees: SIMs in inventory are invisible, and a
device of another account is refused (403) rather than reported missing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from emulator import lifecycle as lc
from emulator.accounts import ACCOUNT_NAMES
from emulator.errors import BadRequest, Forbidden, NotFound
from emulator.store import Store
from emulator.timeutil import fmt, month_key

FIRST_DEVICE_NAME = 36500

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

_SIM_EXTRA_COLUMNS = (
    "account_id",
    "suspended_reason",
    "rate_plan",
    "kb_limit",
    "limit_action",
    "limit_usernames",
    "sms_capable",
)
#: SELECT of device rows: the API's fields first, in order (see device_dict), then the rest.
DEVICE_SELECT = (
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

#: Job kind: a pending state completes; payload: the lifecycle completion event.
JOB_COMPLETE = "complete_transition"
#: What _network_identity reads of a SIM (it keeps what was already assigned).
_IDENTITY_COLUMNS = ("id", "msisdn", "mdn", "min", "imsi", "ip_address", "ipv6")
#: Values per ``IN (...)`` (SQLite allows 32,766 bound parameters since 3.32, 999 before).
_IN_CHUNK = 900


def is_iccid(value: str) -> bool:
    return value.isdigit() and 18 <= len(value) <= 22


def is_imei(value: str) -> bool:
    return value.isdigit() and len(value) in (15, 16)


def text(value: Any) -> str:
    """A request value as the text the platform stores (``None`` → ``""``, ``12.0`` → ``"12"``)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def device_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A device row as the API's device object."""
    out = dict(zip(DEVICE_FIELDS, row, strict=False))
    out["connected"] = bool(out["connected"])
    return out


def admin_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A device row as the admin API shows it: the device object plus what only the platform knows."""
    out = device_dict(row)
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


class Sims:
    """The ``sims`` table and its rules: the lifecycle applied, insertion, and lookups as the API sees them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.on_job(JOB_COMPLETE, self._complete)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    def current_month(self) -> str:
        return month_key(self.store.now().date())

    # ---- the lifecycle, applied -----------------------------------------------------------------

    def apply(self, sim: sqlite3.Row, event: str) -> lc.Outcome:
        """Apply a lifecycle event to a SIM row; queue the completion of pending states."""
        outcome = lc.decide(sim["state"], event)
        if not outcome.ok or outcome.noop or outcome.new_state is None:
            return outcome
        self.set_state(sim, outcome.new_state, outcome.suspended_reason)
        return outcome

    def _complete(self, job: sqlite3.Row) -> None:
        sim = self.conn.execute("SELECT * FROM sims WHERE id = ?", (job["sim_id"],)).fetchone()
        if sim is not None:
            self.apply(sim, job["payload"])

    def set_state(self, sim: sqlite3.Row, new_state: str, reason: str | None = None) -> None:
        """Put a SIM in a state (the lifecycle has decided, or the admin API bypasses it)."""
        now = fmt(self.store.now())
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
        self.conn.execute(f"UPDATE sims SET {assignments} WHERE id = ?", (*sets.values(), sim["id"]))
        self.store.cancel(JOB_COMPLETE, sim["id"])
        completion = lc.QUEUED_COMPLETIONS.get(new_state)
        if completion is not None:
            self.store.schedule(JOB_COMPLETE, sim["id"], completion)

    @staticmethod
    def _network_identity(sim: Mapping[str, Any] | sqlite3.Row) -> dict[str, Any]:
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

    # ---- insertion (seeds and admin) ------------------------------------------------------------

    def reset_device_names(self) -> None:
        self.store.set_meta("next_device_name", FIRST_DEVICE_NAME)

    def _next_device_names(self, count: int) -> list[str]:
        """The next ``count`` free device names, in order: what ``count`` inserts one after another would take
        (each the lowest free name from the counter on), found with one query per run of candidates."""
        current = int(self.store.meta("next_device_name") or FIRST_DEVICE_NAME)
        names: list[str] = []
        while len(names) < count:
            candidates = [str(n) for n in range(current, current + count - len(names))]
            taken = {row[0] for row in self._rows_where_in("SELECT device_name FROM sims", "device_name", candidates)}
            names.extend(name for name in candidates if name not in taken)
            current += len(candidates)
        if count:
            # the loop ends on a run of free names, so this is the last name taken + 1, as one insert leaves it
            self.store.set_meta("next_device_name", current)
        return names

    def _rows_where_in(self, select: str, column: str, values: list[str], *args: Any) -> list[sqlite3.Row]:
        """``select`` (its ``?`` bound to ``args``) of the rows whose ``column`` is one of ``values``, a chunk of
        values per query."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start : start + _IN_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows.extend(self.conn.execute(f"{select} WHERE {column} IN ({marks})", (*args, *chunk)))
        return rows

    def insert_sim(self, account_id: int, fields: dict[str, Any]) -> sqlite3.Row:
        """Insert a SIM as-is (no lifecycle): the seeds' and the admin API's way in."""
        [sim_id] = self.insert_sims([(account_id, fields)])
        return self.by_id(sim_id)

    def insert_sims(self, sims: list[tuple[int, dict[str, Any]]]) -> list[int]:
        """Insert SIMs as-is (no lifecycle), in order: their ids. A SIM that is not in inventory gets the network
        identity of an active one (unless pending activation) and, if it has none, an activation date of 120
        days ago; a pending state queues its completion.

        In bulk, because seeding 100,000 SIMs one statement at a time is most of a minute: every value is
        computed before the rows are written (ids too, as SQLite would give them: the largest + 1, in order),
        and rows with the same columns go in one ``executemany``."""
        with self.store.tx() as conn:
            first_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM sims").fetchone()[0]) + 1
            names = iter(self._next_device_names(sum(1 for _, fields in sims if "device_name" not in fields)))
            now = self.store.now()
            by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            queued: list[tuple[int, str]] = []
            for offset, (account_id, fields) in enumerate(sims):
                values = dict(fields)
                if "device_name" not in values:
                    values["device_name"] = next(names)
                values.setdefault("state", lc.INVENTORY)
                values["account_id"] = account_id
                values["id"] = sim_id = first_id + offset
                state = values["state"]
                if state != lc.INVENTORY and state != lc.PENDING_ACTIVATION:
                    values.update(self._network_identity({c: values.get(c) for c in _IDENTITY_COLUMNS}))
                    if not values.get("last_activation_date"):
                        values["last_activation_date"] = fmt(now - timedelta(days=120))
                completion = lc.QUEUED_COMPLETIONS.get(state) if state != lc.INVENTORY else None
                if completion is not None:
                    queued.append((sim_id, completion))
                by_columns.setdefault(tuple(values), []).append(tuple(values.values()))
            for columns, rows in by_columns.items():
                marks = ", ".join("?" for _ in columns)
                conn.executemany(f"INSERT INTO sims({', '.join(columns)}) VALUES ({marks})", rows)
            for sim_id, completion in queued:
                self.store.schedule(JOB_COMPLETE, sim_id, completion)
            return [first_id + offset for offset in range(len(sims))]

    # ---- lookups --------------------------------------------------------------------------------

    def by_id(self, sim_id: int) -> sqlite3.Row:
        return cast(sqlite3.Row, self.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone())

    def by_iccid(self, iccid: str) -> sqlite3.Row | None:
        """Any SIM, of any account and in any state (the platform's own view)."""
        return cast("sqlite3.Row | None", self.conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone())

    def rows_by_iccid(self, iccids: list[str], columns: str = "*") -> list[sqlite3.Row]:
        """The SIMs (any account, any state) with these ICCIDs, in no particular order; unknown ones are left out."""
        return self._rows_where_in(f"SELECT {columns} FROM sims", "iccid", iccids)

    def device_rows_by_iccid(self, iccids: list[str]) -> list[sqlite3.Row]:
        """Device rows (as :meth:`device_row`) of the SIMs with these ICCIDs, in no particular order."""
        return self._rows_where_in(DEVICE_SELECT, "s.iccid", iccids, self.current_month())

    def device_row(self, sim_id: int) -> sqlite3.Row:
        row = self.conn.execute(DEVICE_SELECT + "WHERE s.id = ?", (self.current_month(), sim_id)).fetchone()
        return cast(sqlite3.Row, row)

    @staticmethod
    def id_column(id_type: str | None) -> str:
        if id_type is None or id_type == "":
            return "device_name"
        column = ID_TYPES.get(id_type.strip().lower())
        if column is None:
            raise BadRequest(f"id_type does not have a valid value (one of {', '.join(ID_TYPES)})")
        return column

    def find(self, account: int, ident: str, column: str) -> tuple[sqlite3.Row | None, bool]:
        """(device row of this account, whether another account has it). Inventory SIMs are invisible."""
        rows = self.conn.execute(
            DEVICE_SELECT + f"WHERE s.{column} = ? AND s.state != 'inventory' ORDER BY s.id",
            (self.current_month(), ident),
        ).fetchall()
        mine = [r for r in rows if r["account_id"] == account]
        if mine:
            return mine[0], False
        return None, bool(rows)

    def resolve(self, account: int, ident: str, id_type: str | None) -> sqlite3.Row:
        """The device row of one requested device: NotFound if there is none, Forbidden if it is another's."""
        row, foreign = self.find(account, str(ident), self.id_column(id_type))
        if row is None:
            if foreign:
                raise Forbidden("Attempted access to a device you do not own")
            raise NotFound("Device not found")
        return row

    def resolve_many(self, account: int, idents: list[str], id_type: str | None) -> dict[str, sqlite3.Row | None]:
        """Each requested device (once, in request order) → its row, or None if this account has no such
        device. If any of them belongs to another account, the whole request is refused (Forbidden)."""
        column = self.id_column(id_type)
        found: dict[str, sqlite3.Row | None] = {}
        foreign: list[str] = []
        for ident in idents:
            row, other = self.find(account, ident, column)
            found[ident] = row
            if row is None and other:
                foreign.append(ident)
        if foreign:
            raise Forbidden(f"Attempted access to devices you do not own: {', '.join(foreign)}")
        return found
