"""The SIMs of the accounts: their fields, the lifecycle applied to their rows, and finding them. No HTTP.

SIM state changes go through :mod:`emulator.lifecycle` only (:meth:`Sims.apply`); a state that completes
by itself (pending activation, pending suspension without billing) queues its completion in the
:class:`~emulator.store.Store`. Lookups answer what the API sees: SIMs in inventory are invisible, and a
device of another account is refused (403) rather than reported missing.
"""

from __future__ import annotations

import json
import sqlite3
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
    def _network_identity(sim: sqlite3.Row) -> dict[str, Any]:
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

    def _next_device_name(self) -> str:
        current = int(self.store.meta("next_device_name") or FIRST_DEVICE_NAME)
        while self.conn.execute("SELECT 1 FROM sims WHERE device_name = ?", (str(current),)).fetchone():
            current += 1
        self.store.set_meta("next_device_name", current + 1)
        return str(current)

    def insert_sim(self, account_id: int, fields: dict[str, Any]) -> sqlite3.Row:
        """Insert a SIM as-is (no lifecycle): the seeds' and the admin API's way in."""
        with self.store.tx() as conn:
            values = dict(fields)
            values.setdefault("device_name", self._next_device_name())
            values.setdefault("state", lc.INVENTORY)
            values["account_id"] = account_id
            cols = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            cur = conn.execute(f"INSERT INTO sims({cols}) VALUES ({marks})", tuple(values.values()))
            sim = conn.execute("SELECT * FROM sims WHERE id = ?", (cur.lastrowid,)).fetchone()
            if sim["state"] != lc.INVENTORY:
                extra = self._network_identity(sim) if sim["state"] != lc.PENDING_ACTIVATION else {}
                if sim["state"] != lc.PENDING_ACTIVATION and not sim["last_activation_date"]:
                    extra["last_activation_date"] = fmt(self.store.now() - timedelta(days=120))
                if extra:
                    assignments = ", ".join(f"{k} = ?" for k in extra)
                    conn.execute(
                        f"UPDATE sims SET {assignments} WHERE id = ?",
                        (*extra.values(), sim["id"]),
                    )
                completion = lc.QUEUED_COMPLETIONS.get(sim["state"])
                if completion is not None:
                    self.store.schedule(JOB_COMPLETE, sim["id"], completion)
                sim = conn.execute("SELECT * FROM sims WHERE id = ?", (sim["id"],)).fetchone()
            return cast(sqlite3.Row, sim)

    # ---- lookups --------------------------------------------------------------------------------

    def by_id(self, sim_id: int) -> sqlite3.Row:
        return cast(sqlite3.Row, self.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone())

    def by_iccid(self, iccid: str) -> sqlite3.Row | None:
        """Any SIM, of any account and in any state (the platform's own view)."""
        return cast("sqlite3.Row | None", self.conn.execute("SELECT * FROM sims WHERE iccid = ?", (iccid,)).fetchone())

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
