"""Running the emulator: restart on the same --db, the command line, concurrency, the state machine table."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from emulator import lifecycle as lc
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.emulator.helpers import Api, iccid, imei, utc_today

KEY = ("restart-key", "restart-secret")


def test_restart_on_the_same_db_keeps_everything(tmp_path: Path) -> None:
    db = str(tmp_path / "emulator.db")
    with EmulatorServer(db=db, seed="empty", key_name=KEY[0], api_key=KEY[1], activation_delay=3600) as srv:
        api, admin = Api(srv.base_url, KEY), AdminClient(srv.base_url)
        admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 4)])
        admin.add_sims([{"iccid": iccid(9)}])
        names = api.get("/v2/devices").json()
        api.put(f"/v2/devices/{names[0]}/note", {"field_name": "note1", "note": "kept"})
        api.put("/v2/device_operations/change_cost_center", {"device_names": names[:2], "cost_center": "Kept"})
        api.post(
            "/v2/device_operations/set_usage_limit",
            {"device_names": [names[1]], "kb_limit": 777, "action": "suspend", "usernames": ["ops-oncall"]},
        )
        api.put("/v2/device_operations/change_simstate", {"device_names": [names[2]], "state": "suspend"})
        api.post(
            "/v2/device_operations/activation_request",
            {"rate_plan_name": "ACME Co 5mb Rate Plan", "activation_requests": [{"iccid": iccid(9), "imei": imei(9)}]},
        )
        admin.post("usage", {"iccid": iccid(1), "date": utc_today().isoformat(), "bytes": 4242})
        admin.post("clock", {"advance_seconds": 600})
        before = admin.sims()
        port = srv.port
    assert before[iccid(9)]["state"] == "pending_activation"
    with EmulatorServer(db=db, seed="demo", key_name=KEY[0], api_key=KEY[1], activation_delay=3600) as srv:
        admin = AdminClient(srv.base_url)
        after = admin.sims()
        assert after == before  # the seed is not reapplied to an existing db
        assert after[iccid(1)]["note1"] == "kept" and after[iccid(1)]["bytes_used"] == 4242
        assert after[iccid(2)]["usage_limit"] == {"kb_limit": 777, "action": "suspend", "usernames": ["ops-oncall"]}
        assert after[iccid(3)]["state"] == "suspended"
        assert admin.get("clock")["offset_seconds"] == 600
        admin.post("tick")  # queued work survived the restart too
        assert admin.sims()[iccid(9)]["state"] == "active"
        assert srv.port != 0 and port != 0


def test_cli_prints_its_url_and_stops_cleanly(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("lattigo-fleet")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lattigo_fleet.cli"]
    proc = subprocess.Popen(
        [
            *cmd,
            "emulator",
            "--port",
            "0",
            "--seed",
            "demo",
            "--key-name",
            "k",
            "--api-key",
            "s",
            "--db",
            str(tmp_path / "cli.db"),
            "--activation-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base = match.group(1)
        resp = requests.get(base + "/v2/devices", auth=("k", "s"), params={"per_page": 1000}, timeout=10)
        assert resp.status_code == 200 and len(resp.json()) == 300
        assert requests.get(base + "/v2/devices", auth=("k", "x"), timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # one line only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_command_line_arguments() -> None:
    import argparse

    from emulator.server import add_arguments, run_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.db, args.seed) == ("127.0.0.1", 0, ":memory:", "empty")
    assert args.activation_delay == 2.0 and args.rate_limit_per_second is None
    args = parser.parse_args(
        [
            "--activation-delay",
            "0",
            "--rate-limit-per-second",
            "5",
            "--error-rate",
            "0.1",
            "--latency-ms",
            "20",
            "--seed",
            "demo",
            "--key-name",
            "k",
            "--api-key",
            "s",
        ]
    )
    assert (args.activation_delay, args.rate_limit_per_second, args.error_rate, args.latency_ms) == (0, 5, 0.1, 20)
    assert run_from_args(parser.parse_args(["--extra-key", "nocolon"])) == 2
    assert run_from_args(parser.parse_args(["--activation-delay", "-1"])) == 2


def test_faults_given_at_start() -> None:
    with EmulatorServer(key_name="a", api_key="b", rate_limit_per_second=1, latency_ms=1) as srv:
        pinned = time.time()  # the clock stands still: the bucket (1 token) does not refill however slow the calls
        srv.backend.store.clock.source = lambda: pinned
        statuses = [requests.get(srv.base_url + "/v2/users", auth=srv.auth, timeout=10).status_code for _ in range(3)]
        assert 429 in statuses
        assert srv.faults.settings()["latency_ms"] == 1


def test_concurrent_requests_are_safe(api: Api, admin: AdminClient) -> None:
    admin.add_sims([{"iccid": iccid(k), "imei": imei(k), "state": "active"} for k in range(1, 41)])
    names = api.get("/v2/devices", params={"per_page": 100}).json()
    errors: list[str] = []

    def worker(k: int) -> None:
        session = Api(api.base, api.auth)
        for n in range(10):
            name = names[(k * 10 + n) % len(names)]
            r1 = session.put(f"/v2/devices/{name}/note", {"field_name": "note", "note": f"w{k}"})
            r2 = session.put(
                "/v2/device_operations/change_simstate",
                {"device_names": [name], "state": "suspend" if n % 2 else "restore"},
            )
            r3 = session.get("/v2/devices", params={"details": "true", "per_page": 100})
            for r in (r1, r2, r3):
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(admin.requests()) == 1 + 8 * 10 * 3


def test_context_manager_and_base_url() -> None:
    srv = EmulatorServer(key_name="a", api_key="b", activation_delay=0)
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    with srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", srv.base_url)
        assert requests.get(srv.base_url + "/v2/users", auth=srv.auth, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "state,event,expected",
    [
        (lc.INVENTORY, lc.ACTIVATE, lc.PENDING_ACTIVATION),
        (lc.PENDING_ACTIVATION, lc.ACTIVATION_COMPLETE, lc.ACTIVE),
        (lc.ACTIVE, lc.SUSPEND, lc.SUSPENDED),
        (lc.SUSPENDED, lc.RESTORE, lc.ACTIVE),
        (lc.SUSPENDED_NO_BILLING, lc.RESTORE, lc.ACTIVE),
        (lc.ACTIVE, lc.SUSPEND_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING),
        (lc.SUSPENDED, lc.SUSPEND_NO_BILLING, lc.PENDING_SUSPEND_NO_BILLING),
        (lc.PENDING_SUSPEND_NO_BILLING, lc.SUSPEND_NO_BILLING_COMPLETE, lc.SUSPENDED_NO_BILLING),
        (lc.ACTIVE, lc.USAGE_LIMIT_REACHED, lc.SUSPENDED),
        (lc.SUSPENDED, lc.SUSPEND, None),
        (lc.ACTIVE, lc.RESTORE, None),
        (lc.SUSPENDED_NO_BILLING, lc.SUSPEND_NO_BILLING, None),
        (lc.SUSPENDED, lc.USAGE_LIMIT_REACHED, None),
    ],
)
def test_lifecycle_allowed(state: str, event: str, expected: str | None) -> None:
    outcome = lc.decide(state, event)
    assert outcome.ok
    assert outcome.new_state == expected
    assert outcome.noop == (expected is None)


@pytest.mark.parametrize(
    "state,event",
    [
        (lc.PENDING_ACTIVATION, lc.SUSPEND),
        (lc.PENDING_ACTIVATION, lc.RESTORE),
        (lc.PENDING_ACTIVATION, lc.SUSPEND_NO_BILLING),
        (lc.SUSPENDED_NO_BILLING, lc.SUSPEND),
        (lc.PENDING_SUSPEND_NO_BILLING, lc.RESTORE),
        (lc.ACTIVE, lc.ACTIVATE),
        (lc.INVENTORY, lc.SUSPEND),
    ],
)
def test_lifecycle_refused_with_a_reason(state: str, event: str) -> None:
    outcome = lc.decide(state, event)
    assert not outcome.ok
    assert outcome.refusal and outcome.refusal.endswith(".") and outcome.attribute_error
