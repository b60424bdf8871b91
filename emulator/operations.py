"""Device operations (``v2/device_operations``): bulk changes to named devices, and the row-based requests
(activation, suspension without billing, upload). No HTTP here: each answers structured results
(:mod:`emulator.results`) that :mod:`emulator.lattigo` words.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from emulator import lifecycle as lc
from emulator.accounts import Accounts
from emulator.errors import BadRequest
from emulator.results import DONE, MISSING, UNAVAILABLE, DeviceResult, RejectedRow
from emulator.sims import NOTE_FIELDS, Sims, is_iccid, is_imei, text
from emulator.store import Store
from emulator.timeutil import fmt
from emulator.usage import Usage

NOTE_MAX_ACTIVATION = 250
USAGE_LIMIT_ACTIONS = ("suspend", "email")
SIMSTATE_EVENTS = {"suspend": lc.SUSPEND, "restore": lc.RESTORE}

#: Job kind: a queued SMS is delivered; payload: the sms row id.
JOB_SMS_DELIVERY = "sms_delivery"

RowResults = tuple[list[dict[str, Any]], list[RejectedRow]]


class Operations:
    """``v2/device_operations``: what each request changes, device by device or row by row."""

    def __init__(self, store: Store, sims: Sims, accounts: Accounts, usage: Usage) -> None:
        self.store = store
        self.sims = sims
        self.accounts = accounts
        self.usage = usage
        store.on_job(JOB_SMS_DELIVERY, self._deliver_sms)

    def _each_device(
        self, account: int, idents: list[str], id_type: str | None, change: Callable[[sqlite3.Row], DeviceResult]
    ) -> dict[str, DeviceResult]:
        """Apply ``change`` to each requested device (once, in request order); MISSING where this account
        has no such device. Call inside an operation (:meth:`Store.op`)."""
        found = self.sims.resolve_many(account, idents, id_type)
        return {ident: MISSING if sim is None else change(sim) for ident, sim in found.items()}

    # ---- bulk changes to named devices ----------------------------------------------------------

    def change_cost_center(
        self, account: int, idents: list[str], id_type: str | None, cost_center: str
    ) -> dict[str, DeviceResult]:
        def change(sim: sqlite3.Row) -> DeviceResult:
            self.store.conn.execute("UPDATE sims SET cost_center = ? WHERE id = ?", (cost_center, sim["id"]))
            return DONE

        with self.store.op():
            return self._each_device(account, idents, id_type, change)

    def change_simstate(
        self, account: int, idents: list[str], id_type: str | None, state: str
    ) -> dict[str, DeviceResult]:
        event = SIMSTATE_EVENTS.get(state)
        if event is None:
            raise BadRequest("state does not have a valid value (one of suspend, restore)")

        def change(sim: sqlite3.Row) -> DeviceResult:
            outcome = self.sims.apply(sim, event)
            return DONE if outcome.ok else DeviceResult.refused(outcome.refusal)

        with self.store.op():
            return self._each_device(account, idents, id_type, change)

    def set_usage_limit(
        self,
        account: int,
        idents: list[str],
        id_type: str | None,
        kb_limit: int,
        action: str,
        usernames: list[str],
    ) -> dict[str, DeviceResult]:
        if action not in USAGE_LIMIT_ACTIONS:
            raise BadRequest("action does not have a valid value (one of suspend, email)")

        with self.store.op():
            valid = self.accounts.usernames(account)
            kept = [u for u in usernames if u in valid]  # invalid usernames are silently ignored

            def change(sim: sqlite3.Row) -> DeviceResult:
                self.store.conn.execute(
                    "UPDATE sims SET kb_limit = ?, limit_action = ?, limit_usernames = ? WHERE id = ?",
                    (kb_limit, action, json.dumps(kept), sim["id"]),
                )
                self.usage.enforce_limit(sim["id"])
                return DONE

            return self._each_device(account, idents, id_type, change)

    def remove_usage_limit(self, account: int, idents: list[str], id_type: str | None) -> dict[str, DeviceResult]:
        def change(sim: sqlite3.Row) -> DeviceResult:
            self.store.conn.execute(
                "UPDATE sims SET kb_limit = NULL, limit_action = NULL, limit_usernames = NULL WHERE id = ?",
                (sim["id"],),
            )
            return DONE

        with self.store.op():
            return self._each_device(account, idents, id_type, change)

    def send_sms(self, account: int, idents: list[str], id_type: str | None, body: str) -> dict[str, DeviceResult]:
        """Queue an SMS to each device; UNAVAILABLE for a device that is not active or cannot take SMS."""
        with self.store.op() as conn:
            now = fmt(self.store.now())

            def change(sim: sqlite3.Row) -> DeviceResult:
                if not sim["sms_capable"] or sim["state"] != lc.ACTIVE:
                    return UNAVAILABLE
                event_id = hashlib.sha1(f"{sim['id']}:{now}:{secrets.token_hex(4)}".encode()).hexdigest()[:20]
                cur = conn.execute(
                    "INSERT INTO sms(sim_id, event_id, event_type, event_status, event_timestamp, message_body) "
                    "VALUES (?, ?, 'MT', 'queued', ?, ?)",
                    (sim["id"], event_id, now, body),
                )
                self.store.schedule(JOB_SMS_DELIVERY, sim["id"], str(cur.lastrowid))
                return DONE

            return self._each_device(account, idents, id_type, change)

    def _deliver_sms(self, job: sqlite3.Row) -> None:
        self.store.conn.execute(
            "UPDATE sms SET event_status = 'delivered', report_timestamp = ? WHERE id = ?",
            (fmt(self.store.now()), int(job["payload"])),
        )

    # ---- row-based requests ---------------------------------------------------------------------

    def activation_request(
        self,
        account: int,
        rate_plan_name: str,
        rows: list[dict[str, Any]],
        rejected_iccids: frozenset[str] = frozenset(),
    ) -> RowResults:
        processed: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        with self.store.op():
            plan_ok = self.accounts.has_rate_plan(account, rate_plan_name)
            seen: set[str] = set()
            for index, row in enumerate(rows):
                iccid = text(row.get("iccid"))
                imei = text(row.get("imei"))
                sku = text(row.get("device_sku"))
                notes = {f: text(row.get(f)) for f in NOTE_FIELDS}
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
                    sim = self.store.conn.execute(
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
                        echo[extra] = text(row.get(extra))
                if errors or sim is None:
                    rejected.append(RejectedRow(index, errors, echo))
                    continue
                updates: dict[str, Any] = {"rate_plan": rate_plan_name}
                if imei:
                    updates["imei"] = imei
                for f in NOTE_FIELDS:
                    if row.get(f) is not None:
                        updates[f] = notes[f]
                assignments = ", ".join(f"{k} = ?" for k in updates)
                self.store.conn.execute(
                    f"UPDATE sims SET {assignments} WHERE id = ?",
                    (*updates.values(), sim["id"]),
                )
                self.sims.apply(self.sims.by_id(sim["id"]), lc.ACTIVATE)
                processed.append({**echo, "request_type": "activate"})
        return processed, rejected

    def suspend_no_billing_request(self, account: int, rows: list[dict[str, Any]]) -> RowResults:
        processed: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        with self.store.op():
            # a device of another account refuses the whole request, like the other bulk operations
            self.sims.resolve_many(account, [i for i in (text(r.get("iccid")) for r in rows) if i], "iccid")
            for index, row in enumerate(rows):
                iccid = text(row.get("iccid"))
                imei = text(row.get("imei"))
                errors: dict[str, list[str]] = {}
                if not iccid:
                    errors.setdefault("iccid", []).append("can't be blank")
                if not imei:
                    errors.setdefault("imei", []).append("can't be blank")
                sim = None
                if iccid:
                    sim, _ = self.sims.find(account, iccid, "iccid")
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
                    rejected.append(RejectedRow(index, errors, echo))
                    continue
                self.sims.apply(sim, lc.SUSPEND_NO_BILLING)
                processed.append({**echo, "request_type": "suspend_no_billing"})
        return processed, rejected

    def upload_request(self, account: int, email: str, sku: str, ids: list[dict[str, Any]]) -> RowResults:
        processed: list[dict[str, Any]] = []
        rejected: list[RejectedRow] = []
        with self.store.op() as conn:
            for index, item in enumerate(ids):
                imei = text(item.get("imei"))
                if not imei:
                    errors = {"imei": ["can't be blank"]}
                elif not is_imei(imei):
                    errors = {"imei": ["is not a valid IMEI"]}
                else:
                    errors = {}
                if errors:
                    rejected.append(RejectedRow(index, errors, {"imei": imei}))
                    continue
                conn.execute(
                    "INSERT INTO uploads(account_id, imei, sku, email, created_at) VALUES (?, ?, ?, ?, ?)",
                    (account, imei, sku, email, fmt(self.store.now())),
                )
                processed.append({"imei": imei, "sku": sku, "email": email})
        return processed, rejected
