"""What ``/_emulator/*`` needs from the state: request-free inspection of every SIM, out-of-band changes
(drift) that bypass the lifecycle, and reset to a seed. No HTTP here; nothing here is reachable through
the emulated APIs.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

from emulator import lifecycle as lc
from emulator.accounts import ACCOUNT_IDS, Accounts
from emulator.errors import BadRequest
from emulator.sims import DEVICE_SELECT, NOTE_FIELDS, Sims, admin_dict, is_iccid, is_imei, text
from emulator.store import Store
from emulator.tokens import ThingSpaceTokens

_UPSERT_FIELDS = {"iccid", "imei", "state", "cost_center", "rate_plan", "account", "msisdn", *NOTE_FIELDS}


class AdminQueries:
    """Inspection, drift and reset, for the admin API and the in-process server."""

    def __init__(
        self, store: Store, accounts: Accounts, sims: Sims, tokens: ThingSpaceTokens, default_seed: str
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.sims = sims
        self.tokens = tokens
        self.default_seed = default_seed

    def reset(self, seed: str | None = None) -> None:
        """Wipe every table, the clock and ThingSpace's tokens; load a seed (default: the backend's own)."""
        from emulator import seeds

        seed = seed or self.default_seed
        if seed not in seeds.SEEDS:
            raise BadRequest(f"seed must be one of {', '.join(sorted(seeds.SEEDS))}")
        with self.store.tx():
            self.store.wipe()
            self.sims.reset_device_names()
            self.tokens.reset()
            seeds.SEEDS[seed](self.accounts, self.sims)
            self.store.set_meta("seed", seed)
            self.store.refresh_next_due()

    def sims_view(
        self, account: str | None = "primary", state: str | None = None, iccid: str | None = None
    ) -> list[dict[str, Any]]:
        """GET /_emulator/sims: every SIM (inventory included) with what only the platform knows."""
        with self.store.op() as conn:
            sql = DEVICE_SELECT + "WHERE 1 = 1"
            args: list[Any] = [self.sims.current_month()]
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
            return [admin_dict(r) for r in rows]

    def usage_view(
        self, account: str | None = "primary", day: date | None = None, iccid: str | None = None
    ) -> list[dict[str, Any]]:
        """GET /_emulator/usage: the days of usage recorded (of one day, of one SIM), by SIM then day, in the words
        POST /_emulator/usage takes."""
        with self.store.op() as conn:
            sql = (
                "SELECT s.iccid, u.date_for, u.bytes_used, u.sms_mo, u.sms_mt FROM daily_usage u "
                "JOIN sims s ON s.id = u.sim_id WHERE 1 = 1"
            )
            args: list[Any] = []
            if account and account != "all":
                if account not in ACCOUNT_IDS:
                    raise BadRequest("account must be one of primary, other, all")
                sql += " AND s.account_id = ?"
                args.append(ACCOUNT_IDS[account])
            if day is not None:
                sql += " AND u.date_for = ?"
                args.append(day.isoformat())
            if iccid:
                sql += " AND s.iccid = ?"
                args.append(iccid)
            rows = conn.execute(sql + " ORDER BY s.id, u.date_for", args).fetchall()
            return [{"iccid": r[0], "date": r[1], "bytes": r[2], "sms": r[3], "sms_mt": r[4]} for r in rows]

    def upsert_sims(self, sims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /_emulator/sims: new ICCIDs are inserted (inventory without ``state``); known ones are
        changed out of band (drift), bypassing the lifecycle. All of it or nothing: a bad SIM refuses the
        request. The answer is each SIM as stored after the request, in request order.

        New SIMs are inserted together (:meth:`Sims.insert_sims`), those before a repeat of one of them first,
        so that the repeat changes it as it would one at a time."""
        with self.store.op() as conn:
            upserts = [_upsert(spec) for spec in sims]
            known = {
                row["iccid"]: row["id"] for row in self.sims.rows_by_iccid([u.iccid for u in upserts], "id, iccid")
            }
            new: dict[str, tuple[int, dict[str, Any]]] = {}

            def insert_new() -> None:
                known.update(zip(new, self.sims.insert_sims(list(new.values())), strict=True))
                new.clear()

            for u in upserts:
                if u.iccid in new:
                    insert_new()
                sim_id = known.get(u.iccid)
                if sim_id is None:
                    new[u.iccid] = (ACCOUNT_IDS[u.account], _new_sim_values(u))
                    continue
                existing = self.sims.by_id(sim_id)
                if u.fields:
                    assignments = ", ".join(f"{k} = ?" for k in u.fields)
                    conn.execute(f"UPDATE sims SET {assignments} WHERE id = ?", (*u.fields.values(), sim_id))
                if u.account_given:
                    conn.execute("UPDATE sims SET account_id = ? WHERE id = ?", (ACCOUNT_IDS[u.account], sim_id))
                if u.state is not None and u.state != existing["state"]:
                    self.sims.set_state(self.sims.by_id(sim_id), u.state, "api" if u.state == lc.SUSPENDED else None)
            insert_new()
            rows = {
                row["iccid"]: row
                for row in self.sims.device_rows_by_iccid(list(dict.fromkeys(u.iccid for u in upserts)))
            }
            return [admin_dict(rows[u.iccid]) for u in upserts]


class _Upsert(NamedTuple):
    """One SIM of POST /_emulator/sims, checked."""

    iccid: str
    state: str | None
    account: str  # primary | other
    account_given: bool
    fields: dict[str, str | None]  # the other fields, as stored


def _upsert(spec: Any) -> _Upsert:
    if not isinstance(spec, dict):
        raise BadRequest("each sim must be an object")
    unknown = set(spec) - _UPSERT_FIELDS
    if unknown:
        raise BadRequest(f"unknown sim fields: {', '.join(sorted(unknown))}")
    iccid = text(spec.get("iccid"))
    if not is_iccid(iccid):
        raise BadRequest(f"iccid {iccid!r} is not a valid ICCID (18-22 digits)")
    imei = spec.get("imei")
    if imei is not None and not is_imei(text(imei)):
        raise BadRequest(f"imei {imei!r} is not a valid IMEI (15 or 16 digits)")
    state = spec.get("state")
    if state is not None and state not in lc.API_STATES:
        raise BadRequest(f"state must be one of {', '.join(lc.API_STATES)}")
    account = spec.get("account", "primary")
    if account not in ACCOUNT_IDS:
        raise BadRequest("account must be one of primary, other")
    fields = {
        k: (text(v) if v is not None else None) for k, v in spec.items() if k not in ("iccid", "state", "account")
    }
    return _Upsert(iccid, state, account, "account" in spec, fields)


def _new_sim_values(u: _Upsert) -> dict[str, Any]:
    values: dict[str, Any] = {"iccid": u.iccid, **u.fields}
    if u.state is not None:
        values["state"] = u.state
        if u.state == lc.SUSPENDED:
            values["suspended_reason"] = "api"
        if u.state in (lc.SUSPENDED_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING):
            values["suspended_reason"] = "no_billing"
    return values
