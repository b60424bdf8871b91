"""Reading devices and their per-device sub-resources (``v2/devices…``): lists, one device, SMS, CalAmp
messages and events, device reports, notes, carrier location requests. No HTTP here.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Any

from emulator import lifecycle as lc
from emulator.errors import BadRequest
from emulator.paging import PageRequest
from emulator.results import DONE, UNAVAILABLE, DeviceResult
from emulator.sims import DEVICE_SELECT, NOTE_FIELDS, Sims, device_dict
from emulator.store import Store
from emulator.timeutil import fmt

NOTE_MAX_API = 100  # the note endpoint truncates


def _message(row: sqlite3.Row) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(row["body"])
    body["message_id"] = row["id"]
    body["event_code"] = row["event_code"]
    body["created_at"] = row["created_at"]
    return body


def _check_state_filter(state: str | None) -> None:
    if state is not None and state not in lc.API_STATES:
        raise BadRequest(f"state does not have a valid value (one of {', '.join(lc.API_STATES)})")


class _ListingMemo:
    """What the pages of one listing share while the SIMs do not change: each filter's total, and where each page
    served ends (the last id), so that the next page starts there instead of counting its way past every SIM
    before it. Without it, page p of 100 cost a COUNT and an OFFSET walk of p x per_page rows: the listing of
    100,000 SIMs was quadratic. Forgotten whenever the database changed (its connection's change count moved:
    the emulator is its database's only writer); bounded in size."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self.changes = -1
        self.totals: dict[tuple[Any, ...], int] = {}
        self.ends: dict[tuple[Any, ...], int] = {}  # (filter, index of a page's first row) -> id of the row before

    def current(self, changes: int) -> _ListingMemo:
        if changes != self.changes or len(self.ends) > self.MAX_ENTRIES:
            self.changes = changes
            self.totals.clear()
            self.ends.clear()
        return self


class Devices:
    """The read side of ``v2/devices`` (plus notes and location requests, which touch one device)."""

    def __init__(self, store: Store, sims: Sims) -> None:
        self.store = store
        self.sims = sims
        self._memo = _ListingMemo()

    def list_devices(self, account: int, state: str | None, details: bool, page: PageRequest) -> tuple[list[Any], int]:
        _check_state_filter(state)
        with self.store.op() as conn:
            where = "s.account_id = ? AND s.state != 'inventory'"
            args: list[Any] = [account]
            if state is not None:
                where = "s.account_id = ? AND s.state = ?"
                args = [account, state]
            memo = self._memo.current(conn.total_changes)
            key = (where, *args)
            total = memo.totals.get(key)
            if total is None:
                total = memo.totals[key] = conn.execute(f"SELECT COUNT(*) FROM sims s WHERE {where}", args).fetchone()[
                    0
                ]
            after = memo.ends.get((*key, page.start))
            if after is None:
                ids = f"SELECT s.id FROM sims s WHERE {where} ORDER BY s.id LIMIT ? OFFSET ?"
                ids_args = (*args, page.per_page, page.start)
            else:
                ids = f"SELECT s.id FROM sims s WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?"
                ids_args = (*args, after, page.per_page)
            if details:
                # page the ids first (an index walk), then join only that page's rows
                rows = conn.execute(
                    f"WITH page AS ({ids}) " + DEVICE_SELECT + "WHERE s.id IN (SELECT id FROM page) ORDER BY s.id",
                    (*ids_args, self.sims.current_month()),
                ).fetchall()
                items: list[Any] = [device_dict(r) for r in rows]
            else:
                rows = conn.execute(
                    f"SELECT s.id, s.device_name FROM sims s WHERE s.id IN ({ids}) ORDER BY s.id", ids_args
                ).fetchall()
                items = [r[1] for r in rows]
            if rows:
                memo.ends[(*key, page.start + len(rows))] = rows[-1]["id"]
            return items, total

    def get_device(self, account: int, ident: str, id_type: str | None) -> dict[str, Any]:
        with self.store.op():
            return device_dict(self.sims.resolve(account, ident, id_type))

    def get_sms(
        self,
        account: int,
        ident: str,
        id_type: str | None,
        start: date | None,
        end: date | None,
        direction: str,
    ) -> list[dict[str, Any]]:
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
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
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
            where = "sim_id = ? AND created_at >= ? AND created_at <= ?"
            args: list[Any] = [sim["id"], fmt(start), fmt(end)]
            if event_code is not None:
                where += " AND event_code = ?"
                args.append(event_code)
            total = conn.execute(f"SELECT COUNT(*) FROM calamp_messages WHERE {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM calamp_messages WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                (*args, page.per_page, page.start),
            ).fetchall()
            return [_message(r) for r in rows], total

    def last_calamp_message(self, account: int, ident: str, id_type: str | None) -> dict[str, Any] | None:
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
            row = conn.execute(
                "SELECT * FROM calamp_messages WHERE sim_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                (sim["id"],),
            ).fetchone()
            return None if row is None else _message(row)

    def calamp_events(
        self,
        account: int,
        event_code: int,
        start: datetime,
        end: datetime,
        state: str | None,
        page: PageRequest,
    ) -> tuple[list[dict[str, Any]], int]:
        _check_state_filter(state)
        with self.store.op() as conn:
            where = (
                "c.event_code = ? AND c.created_at >= ? AND c.created_at <= ? AND s.account_id = ? "
                "AND s.state != 'inventory'"
            )
            args: list[Any] = [event_code, fmt(start), fmt(end), account]
            if state is not None:
                where += " AND s.state = ?"
                args.append(state)
            base = f"FROM calamp_messages c JOIN sims s ON s.id = c.sim_id WHERE {where}"
            total = conn.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT c.* {base} ORDER BY c.created_at, c.id LIMIT ? OFFSET ?",
                (*args, page.per_page, page.start),
            ).fetchall()
            return [_message(r) for r in rows], total

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
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
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

    def set_note(self, account: int, ident: str, id_type: str | None, field: str, text: str) -> str:
        """Set one note field (truncated to NOTE_MAX_API); returns the device name."""
        if field not in NOTE_FIELDS:
            raise BadRequest(f"field_name does not have a valid value (one of {', '.join(NOTE_FIELDS)})")
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
            conn.execute(f"UPDATE sims SET {field} = ? WHERE id = ?", (text[:NOTE_MAX_API], sim["id"]))
            return str(sim["device_name"])

    def cellular_locate(self, account: int, ident: str, id_type: str | None) -> tuple[str, DeviceResult]:
        """Ask the carrier to locate a device: (device name, DONE, or UNAVAILABLE if it is not active)."""
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
            if sim["state"] != lc.ACTIVE:
                return sim["device_name"], UNAVAILABLE
            conn.execute(
                "INSERT INTO locate_requests(sim_id, created_at) VALUES (?, ?)", (sim["id"], fmt(self.store.now()))
            )
            return sim["device_name"], DONE
