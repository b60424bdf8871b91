"""Usage: each SIM's daily and monthly data and SMS, the usage limit that suspends, and the carrier's
(ThingSpace) view of the same days. No HTTP here.

One day's usage is a row of ``daily_usage``; ``monthly_usage`` is their sum per month, kept in step on
every write. A usage limit with action ``suspend`` suspends the SIM (through the lifecycle) once this
month's bytes reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator import lifecycle as lc
from emulator.errors import BadRequest, NotFound
from emulator.paging import PageRequest
from emulator.sims import Sims
from emulator.store import Store
from emulator.timeutil import fmt, month_end, month_key, month_start


@dataclass(frozen=True)
class DayOfSim:
    """One day's usage of one SIM, as the admin API records it."""

    iccid: str
    day: date
    bytes_used: int
    sms_mo: int = 0
    sms_mt: int = 0


@dataclass(frozen=True)
class DayUsage:
    day: str  # YYYY-MM-DD
    bytes_used: int
    sms_mo: int
    sms_mt: int


@dataclass(frozen=True)
class CarrierUsage:
    """A page of one SIM's daily usage as the carrier sees it."""

    rate_plan: str  # "unknown" if the SIM has none
    days: list[DayUsage]
    more: bool  # days after the last one are in the window


class Usage:
    """Recording usage, enforcing the usage limit, and reading usage back (Lattigo and carrier)."""

    def __init__(self, store: Store, sims: Sims) -> None:
        self.store = store
        self.sims = sims

    # ---- writing --------------------------------------------------------------------------------

    def record_usage(self, iccid: str, day: date, bytes_used: int, sms_mo: int = 0, sms_mt: int = 0) -> None:
        """Set one day's usage of a SIM (replacing what was there) and enforce its usage limit."""
        self.record_usages([DayOfSim(iccid, day, bytes_used, sms_mo, sms_mt)])

    def record_usages(self, days: list[DayOfSim]) -> None:
        """Set days of usage (a day of each of 100,000 SIMs, say), in order, as :meth:`record_usage` one after
        another would: in one transaction, so that the platform's day of a whole fleet is one write, not
        100,000 commits. All or nothing: an unknown ICCID or a negative count refuses them all."""
        for d in days:
            if d.bytes_used < 0 or d.sms_mo < 0 or d.sms_mt < 0:
                raise BadRequest("usage must not be negative")
        with self.store.op() as conn:
            this_month = self.sims.current_month()
            for d in days:
                sim = self.sims.by_iccid(d.iccid)
                if sim is None:
                    raise NotFound(f"no SIM with ICCID {d.iccid}")
                conn.execute(
                    "INSERT INTO daily_usage(sim_id, date_for, bytes_used, sms_mo, sms_mt) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(sim_id, date_for) DO UPDATE SET bytes_used = excluded.bytes_used, "
                    "sms_mo = excluded.sms_mo, sms_mt = excluded.sms_mt",
                    (sim["id"], d.day.isoformat(), d.bytes_used, d.sms_mo, d.sms_mt),
                )
                self._recompute_month(sim["id"], d.day)
                if d.bytes_used > 0:
                    stamp = fmt(datetime(d.day.year, d.day.month, d.day.day, 12, tzinfo=UTC))
                    assert stamp is not None
                    if not sim["last_connection_date"] or sim["last_connection_date"] < stamp:
                        conn.execute("UPDATE sims SET last_connection_date = ? WHERE id = ?", (stamp, sim["id"]))
                # Usage never changes a SIM's limit, so the row read above says whether there is one to enforce.
                if month_key(d.day) == this_month and sim["kb_limit"] is not None:
                    self.enforce_limit(sim["id"])

    def _recompute_month(self, sim_id: int, day: date) -> None:
        first, last = month_start(day), month_end(day)
        conn = self.store.conn
        total = conn.execute(
            "SELECT COALESCE(SUM(bytes_used), 0), COALESCE(SUM(sms_mo + sms_mt), 0) FROM daily_usage "
            "WHERE sim_id = ? AND date_for >= ? AND date_for <= ?",
            (sim_id, first.isoformat(), last.isoformat()),
        ).fetchone()
        conn.execute(
            "INSERT INTO monthly_usage(sim_id, month, bytes_used, sms_used) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sim_id, month) DO UPDATE SET bytes_used = excluded.bytes_used, "
            "sms_used = excluded.sms_used",
            (sim_id, month_key(day), total[0], total[1]),
        )

    def enforce_limit(self, sim_id: int) -> None:
        """Suspend the SIM if it has a suspending usage limit and this month's bytes reached it."""
        sim = self.store.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone()
        if sim is None or sim["kb_limit"] is None or sim["limit_action"] != "suspend":
            return
        row = self.store.conn.execute(
            "SELECT bytes_used FROM monthly_usage WHERE sim_id = ? AND month = ?",
            (sim_id, self.sims.current_month()),
        ).fetchone()
        used = row[0] if row else 0
        if used > 0 and used >= sim["kb_limit"] * 1024:
            self.sims.apply(sim, lc.USAGE_LIMIT_REACHED)

    # ---- reading (Lattigo) ----------------------------------------------------------------------

    def daily_usages(
        self, account: int, ident: str, id_type: str | None, start: date, end: date, limit: int, page: PageRequest
    ) -> tuple[list[dict[str, Any]], int]:
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
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
        with self.store.op() as conn:
            sim = self.sims.resolve(account, ident, id_type)
            rows = conn.execute(
                "SELECT id, month, bytes_used, sms_used FROM monthly_usage "
                "WHERE sim_id = ? AND month >= ? AND month <= ? ORDER BY month DESC LIMIT ?",
                (sim["id"], month_key(start), month_key(end), limit),
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

    # ---- reading (the carrier) ------------------------------------------------------------------

    def carrier_daily_usage(
        self, account: int, iccid: str, earliest: datetime, latest: datetime, page_days: int
    ) -> CarrierUsage:
        """One SIM's days of usage from ``earliest`` (a day not started at midnight is skipped) to ``latest``,
        at most ``page_days`` of them, as the carrier reports them."""
        with self.store.op() as conn:
            sim = self.sims.by_iccid(iccid)
            if sim is None or sim["account_id"] != account:
                raise NotFound(f"Device {iccid} was not found")
            first = earliest.date() if earliest.time() == datetime.min.time() else earliest.date() + timedelta(1)
            rows = conn.execute(
                "SELECT date_for, bytes_used, sms_mo, sms_mt FROM daily_usage WHERE sim_id = ? "
                "AND date_for >= ? AND date_for <= ? ORDER BY date_for LIMIT ?",
                (sim["id"], first.isoformat(), latest.date().isoformat(), page_days + 1),
            ).fetchall()
            days = [DayUsage(r["date_for"], r["bytes_used"], r["sms_mo"], r["sms_mt"]) for r in rows[:page_days]]
            return CarrierUsage(sim["rate_plan"] or "unknown", days, more=len(rows) > page_days)
