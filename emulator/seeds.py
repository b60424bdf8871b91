"""Seeds: ``demo`` (a believable account) and ``empty`` (plans and users, no SIMs). Deterministic.

:func:`demo_account` returns the demo account's data without touching a database, so other parts of the
project (a ``fleet.yaml`` that matches a slice of it, end-to-end tests) can import the exact ICCIDs,
device names, users and plans. Usage history, CalAmp messages, device reports and SMS are generated
relative to the emulator's clock when the seed is loaded (90 days back from "now"), from a fixed random
seed, so their values are the same every time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from emulator import lifecycle as lc
from emulator.accounts import OTHER_ACCOUNT, OTHER_ACCOUNT_API_KEY, OTHER_ACCOUNT_KEY_NAME, PRIMARY_ACCOUNT
from emulator.timeutil import fmt

if TYPE_CHECKING:
    from emulator.accounts import Accounts
    from emulator.sims import Sims

RANDOM_SEED = 20240523
HISTORY_DAYS = 90

PLAN_5MB = "ACME Co 5mb Rate Plan"
PLAN_10MB = "ACME Co 10MB Plan"
PLAN_100MB = "ACME Co 100MB Plan"
PLAN_1GB = "ACME Co 1GB Pooled Plan"


def _plan(name: str, allowance: int, cost: float, sms: int) -> dict[str, Any]:
    return {
        "name": name,
        "days_in_term": 30,
        "activation_fee": 0.0,
        "termination_fee": 0.0,
        "monthly_data_plan_cost": cost,
        "monthly_data_allowance_bytes": allowance,
        "overage_data_unit_bytes": 1048576,
        "overage_data_unit_cost": 0.5,
        "monthly_sms_plan_cost": 0.0,
        "monthly_sms_allowance": sms,
        "overage_sms_unit": 1,
        "overage_sms_unit_cost": 0.02,
    }


EMPTY_RATE_PLANS = [
    _plan(PLAN_5MB, 5 * 1024 * 1024, 2.5, 50),
    _plan(PLAN_10MB, 10 * 1024 * 1024, 3.75, 100),
]
EMPTY_USERS = ["ops-oncall", "fleet-admin"]

DEMO_RATE_PLANS = [
    *EMPTY_RATE_PLANS,
    _plan(PLAN_100MB, 100 * 1024 * 1024, 9.0, 200),
    _plan(PLAN_1GB, 1024 * 1024 * 1024, 18.0, 500),
]
DEMO_USERS = ["ops-oncall", "fleet-admin", "billing", "j.rivera", "m.okafor"]
DEMO_COST_CENTERS = ["Fleet-East", "Fleet-West", "Cold-Chain", "Field-Service", "Warehouse"]

#: The second account (its own key pair): its SIMs answer 403 to the primary account's keys.
OTHER_ACCOUNT_SIMS = [
    {"iccid": "89019900000000000017", "imei": "356938035643809", "device_name": "90001", "state": "active"},
    {"iccid": "89019900000000000025", "imei": "356938035643817", "device_name": "90002", "state": "suspended"},
]
OTHER_ACCOUNT_PLAN = _plan("Globex Standard 25MB", 25 * 1024 * 1024, 5.0, 100)

DEMO_SIM_COUNT = 300
DEMO_INVENTORY_COUNT = 20
_DAILY_BYTES = {
    PLAN_5MB: (100_000, 180_000),
    PLAN_10MB: (200_000, 330_000),
    PLAN_100MB: (2_000_000, 3_300_000),
    PLAN_1GB: (20_000_000, 33_000_000),
}
CALAMP_EVENT_CODES = {1: "ignition on", 2: "ignition off", 10: "heartbeat", 20: "harsh braking"}


def _iccid(serial: int) -> str:
    return f"89014103{211118000 + serial:012d}"


def _imei(serial: int) -> str:
    return f"3569380{35600000 + serial * 7:08d}"


def demo_account() -> dict[str, Any]:
    """The demo account's data: plans, users, cost centers, the 300 SIMs, the 20 in inventory, the other
    account. Each SIM: iccid, imei, device_name, state, cost_center, rate_plan, note..note3, usage_limit."""
    sims: list[dict[str, Any]] = []
    for i in range(DEMO_SIM_COUNT):
        cost_center = DEMO_COST_CENTERS[i // 60]
        if cost_center == "Cold-Chain":
            plan = PLAN_10MB
        elif cost_center == "Field-Service":
            plan = PLAN_100MB
        elif cost_center == "Warehouse":
            plan = PLAN_5MB
        else:
            plan = PLAN_1GB if i % 6 == 0 else PLAN_5MB
        if i >= DEMO_SIM_COUNT - 8:
            state = lc.PENDING_ACTIVATION
        elif i % 25 == 11:
            state = lc.SUSPENDED_NO_BILLING
        elif i % 10 == 3:
            state = lc.SUSPENDED
        else:
            state = lc.ACTIVE
        kind = {"Cold-Chain": "Reefer", "Field-Service": "Van", "Warehouse": "Gateway"}.get(cost_center, "Truck")
        usage_limit = None
        if plan == PLAN_5MB and i % 10 == 0:
            usage_limit = {"kb_limit": 6144, "action": "suspend", "usernames": ["ops-oncall"]}
        elif plan == PLAN_1GB and i % 12 == 0:
            usage_limit = {"kb_limit": 1536000, "action": "email", "usernames": ["ops-oncall", "fleet-admin"]}
        sims.append(
            {
                "iccid": _iccid(i),
                "imei": _imei(i),
                "device_name": str(36500 + i),
                "state": state,
                "cost_center": cost_center,
                "rate_plan": plan,
                "note": f"{kind} {i + 1:04d}",
                "note1": f"fw {2 + i % 2}.{i % 5}.{i % 3}",
                "note2": "",
                "note3": "",
                "usage_limit": usage_limit,
            }
        )
    # one SIM that a usage limit has suspended
    sims[7].update(state=lc.SUSPENDED, usage_limit={"kb_limit": 1024, "action": "suspend", "usernames": ["ops-oncall"]})
    sims[7]["suspended_reason"] = "usage_limit"
    inventory = [
        {"iccid": _iccid(DEMO_SIM_COUNT + j), "imei": _imei(DEMO_SIM_COUNT + j), "device_name": str(36800 + j)}
        for j in range(DEMO_INVENTORY_COUNT)
    ]
    return {
        "rate_plans": [dict(p) for p in DEMO_RATE_PLANS],
        "users": list(DEMO_USERS),
        "cost_centers": list(DEMO_COST_CENTERS),
        "sims": sims,
        "inventory": inventory,
        "other_account": other_account(),
    }


def other_account() -> dict[str, Any]:
    return {
        "key_name": OTHER_ACCOUNT_KEY_NAME,
        "api_key": OTHER_ACCOUNT_API_KEY,
        "sims": [dict(s) for s in OTHER_ACCOUNT_SIMS],
        "rate_plans": [dict(OTHER_ACCOUNT_PLAN)],
        "users": ["globex-ops"],
    }


def _load_other_account(accounts: Accounts, sims: Sims) -> None:
    data = other_account()
    for plan in data["rate_plans"]:
        accounts.add_rate_plan(OTHER_ACCOUNT, plan)
    for user in data["users"]:
        accounts.add_user(OTHER_ACCOUNT, user)
    for sim in data["sims"]:
        values = dict(sim, rate_plan=OTHER_ACCOUNT_PLAN["name"], cost_center="Globex")
        if sim["state"] == lc.SUSPENDED:
            values["suspended_reason"] = "api"
        sims.insert_sim(OTHER_ACCOUNT, values)


def load_empty(accounts: Accounts, sims: Sims) -> None:
    for plan in EMPTY_RATE_PLANS:
        accounts.add_rate_plan(PRIMARY_ACCOUNT, plan)
    for user in EMPTY_USERS:
        accounts.add_user(PRIMARY_ACCOUNT, user)
    _load_other_account(accounts, sims)


def load_demo(accounts: Accounts, sims: Sims) -> None:
    data = demo_account()
    for plan in data["rate_plans"]:
        accounts.add_rate_plan(PRIMARY_ACCOUNT, plan)
    for user in data["users"]:
        accounts.add_user(PRIMARY_ACCOUNT, user)
    _load_other_account(accounts, sims)
    rng = random.Random(RANDOM_SEED)
    now = sims.store.now()
    today = now.date()
    conn = sims.store.conn
    sim_ids: list[tuple[int, dict[str, Any]]] = []
    for i, sim in enumerate(data["sims"]):
        values = {k: v for k, v in sim.items() if k != "usage_limit"}
        values["last_activation_date"] = fmt(now - timedelta(days=120 + (i * 13) % 400))
        if sim["state"] == lc.SUSPENDED:
            values.setdefault("suspended_reason", "api")
        elif sim["state"] == lc.SUSPENDED_NO_BILLING:
            values["suspended_reason"] = "no_billing"
        if sim["state"] == lc.PENDING_ACTIVATION:
            values["last_activation_date"] = None
        limit = sim["usage_limit"]
        if limit:
            values.update(
                kb_limit=limit["kb_limit"], limit_action=limit["action"], limit_usernames=json.dumps(limit["usernames"])
            )
        if sim["state"] == lc.ACTIVE:
            values["connected"] = 1 if i % 4 else 0
            values["last_connection_date"] = fmt(now - timedelta(minutes=5 + (i * 37) % 2000))
            values["latitude"] = f"{40.0 + (i % 50) * 0.05:.6f}"
            values["longitude"] = f"{-75.0 - (i % 40) * 0.07:.6f}"
        row = sims.insert_sim(PRIMARY_ACCOUNT, values)
        sim_ids.append((row["id"], sim))
    for inv in data["inventory"]:
        sims.insert_sim(PRIMARY_ACCOUNT, dict(inv))

    # usage history
    usage_rows = []
    for sim_id, sim in sim_ids:
        if sim["state"] == lc.PENDING_ACTIVATION:
            continue
        low, high = _DAILY_BYTES[sim["rate_plan"]]
        stop = None
        if sim["state"] != lc.ACTIVE:
            stop = 5 + (sim_id * 7) % 60  # days ago the SIM stopped using data
        for back in range(HISTORY_DAYS, -1, -1):
            if stop is not None and back < stop:
                break
            day = today - timedelta(days=back)
            bytes_used = rng.randint(low, high) if back else rng.randint(low, high) // 2  # today: half a day
            usage_rows.append((sim_id, day.isoformat(), bytes_used, rng.choice((0, 0, 0, 1, 2)), rng.choice((0, 0, 1))))
    conn.executemany(
        "INSERT INTO daily_usage(sim_id, date_for, bytes_used, sms_mo, sms_mt) VALUES (?, ?, ?, ?, ?)", usage_rows
    )
    # the SIM suspended by its usage limit went over 1 MB this month
    conn.execute(
        "INSERT INTO daily_usage(sim_id, date_for, bytes_used) VALUES (?, ?, 2000000) "
        "ON CONFLICT(sim_id, date_for) DO UPDATE SET bytes_used = 2000000",
        (sim_ids[7][0], today.replace(day=1).isoformat()),
    )
    conn.execute(
        "INSERT INTO monthly_usage(sim_id, month, bytes_used, sms_used) "
        "SELECT sim_id, substr(date_for, 1, 7), SUM(bytes_used), SUM(sms_mo + sms_mt) FROM daily_usage "
        "GROUP BY sim_id, substr(date_for, 1, 7)"
    )
    _load_telemetry(sims, rng, sim_ids, now)


def _load_telemetry(sims: Sims, rng: random.Random, sim_ids: list[tuple[int, dict[str, Any]]], now: datetime) -> None:
    conn = sims.store.conn
    trackers = [(sid, s) for sid, s in sim_ids if s["cost_center"] in ("Fleet-East", "Fleet-West")][:40]
    messages = []
    reports = []
    for n, (sim_id, sim) in enumerate(trackers):
        lat, lon = 40.0 + n * 0.1, -75.0 - n * 0.1
        seq = 0
        for back in range(HISTORY_DAYS, -1, -1):
            stamp = (now - timedelta(days=back)).replace(hour=6 + n % 12, minute=n % 60, second=0, microsecond=0)
            if stamp > now:
                continue
            code = list(CALAMP_EVENT_CODES)[(back + n) % len(CALAMP_EVENT_CODES)]
            lat += rng.uniform(-0.01, 0.01)
            lon += rng.uniform(-0.01, 0.01)
            seq += 1
            body: dict[str, Any] = {
                "mobile_id": sim["imei"][-10:],
                "latitude": f"{lat:.5f}",
                "longitude": f"{lon:.5f}",
                "altitude": rng.randint(10, 300),
                "speed": rng.randint(0, 110),
                "heading": rng.randint(0, 359),
                "satellites": rng.randint(4, 12),
                "fix_status": 2,
                "event_index": seq % 256,
                "gps_hdop": f"{rng.uniform(0.7, 2.5):.1f}",
                "communication_state": 15,
                "rssi": -rng.randint(60, 105),
                "network_id": 311480,
                "inputs": rng.randint(0, 3),
                "unit_status": 0,
                "sequence_number": seq,
                "report_generated_at": fmt(stamp),
                "time_of_fix": fmt(stamp - timedelta(seconds=2)),
                "accumulator_count": 16,
            }
            body["rsssi"] = body["rssi"]  # the newer edition's field list spells it so for calamp_messages
            for k in range(16):
                body[f"accumulator{k}"] = rng.randint(0, 100000) if k < 4 else 0
            messages.append((sim_id, code, fmt(stamp), json.dumps(body)))
            report = {
                "latitude": f"{lat:.5f}",
                "longitude": f"{lon:.5f}",
                "speed": body["speed"],
                "heading": body["heading"],
                "altitude": body["altitude"],
                "gps_quality": rng.choice(["good", "good", "fair"]),
                "unit_status": 0,
                "time_of_fix": fmt(stamp - timedelta(seconds=2)),
                "battery": f"{rng.uniform(3.6, 4.2):.2f}",
                "voltage": f"{rng.uniform(12.1, 14.4):.2f}",
                "event_code": code,
                "temperature": f"{rng.uniform(-5, 35):.1f}",
                "type": "periodic",
                "fuel_level": rng.randint(5, 100),
                "distance": rng.randint(0, 400000),
                "rssi": body["rssi"],
            }
            reports.append((sim_id, fmt(stamp + timedelta(seconds=5)), json.dumps(report)))
    conn.executemany("INSERT INTO calamp_messages(sim_id, event_code, created_at, body) VALUES (?, ?, ?, ?)", messages)
    conn.executemany("INSERT INTO device_reports(sim_id, created_at, body) VALUES (?, ?, ?)", reports)
    sms_rows = []
    for n, (sim_id, sim) in enumerate(sim_ids[:30]):
        if sim["state"] == lc.PENDING_ACTIVATION:
            continue
        for k in range(3):
            stamp = now - timedelta(days=3 + 11 * k + n % 5, hours=n % 7)
            mt = k != 1
            sms_rows.append(
                (
                    sim_id,
                    f"{sim_id:06d}{k:02d}{n:04d}",
                    "MT" if mt else "MO",
                    "delivered" if mt or k else "received",
                    fmt(stamp),
                    "PING" if mt else "ACK location ok",
                    fmt(stamp + timedelta(seconds=40)),
                    None,
                )
            )
    conn.executemany(
        "INSERT INTO sms(sim_id, event_id, event_type, event_status, event_timestamp, message_body, "
        "report_timestamp, failure_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        sms_rows,
    )


SEEDS: dict[str, Callable[[Accounts, Sims], None]] = {"empty": load_empty, "demo": load_demo}
