"""What ``/_emulator/*`` needs from the state: request-free inspection of every SIM, out-of-band changes
(drift) that bypass the lifecycle, and reset to a seed. No HTTP here; nothing here is reachable through
the emulated APIs.
"""

from __future__ import annotations

from typing import Any

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

    def upsert_sims(self, sims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /_emulator/sims: new ICCIDs are inserted (inventory without ``state``); known ones are
        changed out of band (drift), bypassing the lifecycle."""
        out_ids: list[int] = []
        with self.store.op() as conn:
            for spec in sims:
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
                account_name = spec.get("account", "primary")
                if account_name not in ACCOUNT_IDS:
                    raise BadRequest("account must be one of primary, other")
                fields = {
                    k: (text(v) if v is not None else None)
                    for k, v in spec.items()
                    if k not in ("iccid", "state", "account")
                }
                existing = self.sims.by_iccid(iccid)
                if existing is None:
                    values = {"iccid": iccid, **fields}
                    if state is not None:
                        values["state"] = state
                        if state in (lc.SUSPENDED,):
                            values["suspended_reason"] = "api"
                        if state in (lc.SUSPENDED_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING):
                            values["suspended_reason"] = "no_billing"
                    sim = self.sims.insert_sim(ACCOUNT_IDS[account_name], values)
                    out_ids.append(sim["id"])
                    continue
                if fields:
                    assignments = ", ".join(f"{k} = ?" for k in fields)
                    conn.execute(
                        f"UPDATE sims SET {assignments} WHERE id = ?",
                        (*fields.values(), existing["id"]),
                    )
                if "account" in spec:
                    conn.execute(
                        "UPDATE sims SET account_id = ? WHERE id = ?", (ACCOUNT_IDS[account_name], existing["id"])
                    )
                if state is not None and state != existing["state"]:
                    self.sims.set_state(
                        self.sims.by_id(existing["id"]), state, "api" if state == lc.SUSPENDED else None
                    )
                out_ids.append(existing["id"])
            return [admin_dict(self.sims.device_row(i)) for i in out_ids]
