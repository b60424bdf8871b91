"""`lattigo-fleet sms|locate|reports|calamp|upload-imeis` end to end: the real CLI (a subprocess, no terminal)
against the emulator's demo account; every figure is checked against the emulator's own data (its admin API,
its request log, and its database for the telemetry the admin API does not show)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.pulumi_stack import REPO
from emulator.admin_client import AdminClient
from emulator.seeds import _iccid
from emulator.server import EmulatorServer
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME

FLEET = "version: 1\nsims:\n" + "".join(
    f'  - {{iccid: "{iccid}", name: {name}}}\n'
    for iccid, name in (
        (_iccid(0), "truck-0001"),
        (_iccid(1), "truck-0002"),
        (_iccid(3), "truck-0004"),
        (_iccid(200), "gateway-0200"),
    )
)


@pytest.fixture
def demo(fresh_emulator: EmulatorServer, tmp_path: Path) -> EmulatorServer:
    fresh_emulator.reset("demo")
    (tmp_path / "fleet.yaml").write_text(FLEET)
    fresh_emulator.clear_requests()
    return fresh_emulator


def cli(
    emu: EmulatorServer, cwd: Path, *argv: str, api_key: str = EMULATOR_API_KEY
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LATTIGO_ENDPOINT": emu.base_url,
        "LATTIGO_KEY_NAME": EMULATOR_KEY_NAME,
        "LATTIGO_API_KEY": api_key,
    }
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "lattigo-fleet"), *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows(emu: EmulatorServer, sql: str, *args: object) -> list[dict[str, Any]]:
    store = emu.backend.store
    with store.lock:
        return [dict(r) for r in store.conn.execute(sql, args).fetchall()]


def sim_id(emu: EmulatorServer, iccid: str) -> int:
    found: int = rows(emu, "SELECT id FROM sims WHERE iccid = ?", iccid)[0]["id"]
    return found


def api_calls(emu: EmulatorServer, method: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in emu.requests_log()
        if not r["path"].startswith("/_emulator") and (method is None or r["method"] == method)
    ]


def test_sms_send_queues_one_bulk_request_by_device_name_and_the_log_shows_it_delivered(
    demo: EmulatorServer, tmp_path: Path
) -> None:
    demo.reset("demo", activation_delay=3600)  # SMS stay queued until the tick
    admin = AdminClient(demo.base_url)
    sims = admin.sims()
    proc = cli(
        demo, tmp_path, "sms", "send", "truck-0001", "truck-0004", _iccid(2), "--text", "PING 42", "--yes", "--json"
    )
    assert proc.returncode == 1  # truck-0004 is suspended: the API refuses it
    doc = json.loads(proc.stdout)
    answers = {d["iccid"]: (d["device_name"], d["state"], d["ok"], d.get("error")) for d in doc["devices"]}
    assert answers == {
        _iccid(0): (sims[_iccid(0)]["device_name"], "active", True, None),
        _iccid(3): (
            sims[_iccid(3)]["device_name"],
            "suspended",
            False,
            "Error: Device does not exist, or does not have SMS enabled.",
        ),
        _iccid(2): (sims[_iccid(2)]["device_name"], "active", True, None),
    }
    assert (doc["queued"], doc["refused"]) == (2, 1)
    sends = api_calls(demo, "POST")
    assert len(sends) == 1 and sends[0]["path"] == "/v2/device_operations/send_sms"
    assert sends[0]["body"] == {"device_names": ["36500", "36503", "36502"], "sms_text": "PING 42"}
    assert proc.stderr.strip() == (
        "lattigo-fleet sms send: 1 of 3 device(s) refused: see the table (first: "
        "truck-0004: Error: Device does not exist, or does not have SMS enabled.)"
    )

    def new_sms() -> dict[str, list[dict[str, Any]]]:
        log = cli(demo, tmp_path, "sms", "log", "truck-0001", _iccid(2), "--direction", "sent", "--json")
        assert log.returncode == 0, log.stderr
        return {
            d["iccid"]: [m for m in d["sms"] if m["message_body"] == "PING 42"]
            for d in json.loads(log.stdout)["devices"]
        }

    queued = new_sms()
    assert {i: [m["event_status"] for m in ms] for i, ms in queued.items()} == {
        _iccid(0): ["queued"],
        _iccid(2): ["queued"],
    }
    demo.tick()
    delivered = new_sms()
    assert {i: [m["event_status"] for m in ms] for i, ms in delivered.items()} == {
        _iccid(0): ["delivered"],
        _iccid(2): ["delivered"],
    }
    for iccid in (_iccid(0), _iccid(2)):
        stored = rows(
            demo,
            "SELECT event_id, event_status FROM sms WHERE sim_id = ? AND message_body = 'PING 42'",
            sim_id(demo, iccid),
        )
        assert stored == [{"event_id": delivered[iccid][0]["event_id"], "event_status": "delivered"}]


def test_sms_log_table_lists_every_sms_of_each_device(demo: EmulatorServer, tmp_path: Path) -> None:
    proc = cli(demo, tmp_path, "sms", "log", "truck-0001", "truck-0002")
    assert proc.returncode == 0, proc.stderr
    for iccid, name in ((_iccid(0), "truck-0001"), (_iccid(1), "truck-0002")):
        stored = rows(
            demo,
            "SELECT event_timestamp, event_type, event_status, message_body FROM sms "
            "WHERE sim_id = ? ORDER BY event_timestamp",
            sim_id(demo, iccid),
        )
        assert f"{name}  {iccid}  device {36500 + int(iccid[-3:])}  active: {len(stored)} SMS" in proc.stdout
        for sms in stored:
            assert any(
                sms["event_timestamp"] in line and sms["message_body"] in line and sms["event_type"] in line
                for line in proc.stdout.splitlines()
            )


def test_sms_send_without_a_terminal_or_yes_refuses_and_sends_nothing(demo: EmulatorServer, tmp_path: Path) -> None:
    proc = cli(demo, tmp_path, "sms", "send", "truck-0001", "--text", "PING")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "lattigo-fleet sms send: refusing to send the SMS 'PING' to 1 device(s) (truck-0001) without confirmation: "
        "standard input is not a terminal (pass --yes); nothing sent"
    ]
    assert api_calls(demo, "POST") == []


def test_locate_shows_the_carrier_answer_of_each_device(demo: EmulatorServer, tmp_path: Path) -> None:
    proc = cli(demo, tmp_path, "locate", "truck-0001", "truck-0004", "--yes")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SIM", "ICCID", "DEVICE", "STATE", "CARRIER", "RESPONSE"]
    assert lines[1].split(maxsplit=4) == [
        "truck-0001",
        _iccid(0),
        "36500",
        "active",
        "Success: Location request submitted to the carrier.",
    ]
    assert lines[2].split(maxsplit=4) == [
        "truck-0004",
        _iccid(3),
        "36503",
        "suspended",
        "Error: Device is not active; the carrier cannot locate it.",
    ]
    posts = api_calls(demo, "POST")
    assert [p["path"] for p in posts] == [
        f"/v2/devices/{_iccid(0)}/cellular_locate",
        f"/v2/devices/{_iccid(3)}/cellular_locate",
    ]
    assert rows(demo, "SELECT sim_id FROM locate_requests") == [{"sim_id": sim_id(demo, _iccid(0))}]


def test_reports_are_the_newest_of_each_device(demo: EmulatorServer, tmp_path: Path) -> None:
    proc = cli(demo, tmp_path, "reports", "truck-0001", "truck-0002", "--limit", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    for device in json.loads(proc.stdout)["devices"]:
        stored = rows(
            demo,
            "SELECT id, created_at FROM device_reports WHERE sim_id = ? ORDER BY created_at DESC LIMIT 3",
            sim_id(demo, device["iccid"]),
        )
        assert [(r["id"], r["created_at"]) for r in device["reports"]] == [(s["id"], s["created_at"]) for s in stored]


def test_calamp_messages_in_a_window_match_the_emulator(demo: EmulatorServer, tmp_path: Path) -> None:
    now = demo.backend.now()
    since, until = (now - timedelta(days=20)).date().isoformat(), (now - timedelta(days=5)).date().isoformat()
    proc = cli(demo, tmp_path, "calamp", "messages", "truck-0001", "--since", since, "--until", until, "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["devices"][0]["messages"]
    stored = rows(
        demo,
        "SELECT id FROM calamp_messages WHERE sim_id = ? AND substr(created_at, 1, 10) >= ? "
        "AND substr(created_at, 1, 10) <= ? ORDER BY created_at",
        sim_id(demo, _iccid(0)),
        since,
        until,
    )
    assert len(stored) == 16
    assert [m["message_id"] for m in got] == [s["id"] for s in stored]

    coded = cli(
        demo, tmp_path, "calamp", "messages", "truck-0001", "--since", since, "--until", until, "--event-code", "20"
    )
    count = len(
        rows(
            demo,
            "SELECT id FROM calamp_messages WHERE sim_id = ? AND event_code = 20 AND "
            "substr(created_at, 1, 10) BETWEEN ? AND ?",
            sim_id(demo, _iccid(0)),
            since,
            until,
        )
    )
    assert f"truck-0001  {_iccid(0)}  device 36500  active: {count} message(s) from {since} to {until}" in coded.stdout


def test_calamp_last_per_device_and_a_device_without_messages(demo: EmulatorServer, tmp_path: Path) -> None:
    proc = cli(demo, tmp_path, "calamp", "last", "truck-0001", "gateway-0200", "--json")
    assert proc.returncode == 0, proc.stderr
    got = {d["iccid"]: d["message"] for d in json.loads(proc.stdout)["devices"]}
    newest = rows(
        demo,
        "SELECT id FROM calamp_messages WHERE sim_id = ? ORDER BY created_at DESC LIMIT 1",
        sim_id(demo, _iccid(0)),
    )
    assert got[_iccid(0)]["message_id"] == newest[0]["id"]
    assert rows(demo, "SELECT id FROM calamp_messages WHERE sim_id = ?", sim_id(demo, _iccid(200))) == []
    assert got[_iccid(200)] is None
    table = cli(demo, tmp_path, "calamp", "last", "gateway-0200").stdout.splitlines()
    assert table[1].split()[:4] == ["gateway-0200", _iccid(200), "36700", "no"]


def test_calamp_events_across_the_account(demo: EmulatorServer, tmp_path: Path) -> None:
    now = demo.backend.now()
    since, until = (now - timedelta(days=10)).date().isoformat(), now.date().isoformat()
    proc = cli(
        demo,
        tmp_path,
        "calamp",
        "events",
        "--event-code",
        "20",
        "--since",
        since,
        "--until",
        until,
        "--state",
        "active",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    stored = rows(
        demo,
        "SELECT c.id FROM calamp_messages c JOIN sims s ON s.id = c.sim_id WHERE c.event_code = 20 "
        "AND s.state = 'active' AND substr(c.created_at, 1, 10) BETWEEN ? AND ? "
        "ORDER BY c.created_at, c.id",
        since,
        until,
    )
    assert doc["count"] == len(stored) > 25  # more than one page of the API's default 25
    assert [m["message_id"] for m in doc["messages"]] == [s["id"] for s in stored]
    text = cli(
        demo,
        tmp_path,
        "calamp",
        "events",
        "--event-code",
        "20",
        "--since",
        since,
        "--until",
        until,
        "--state",
        "active",
    ).stdout
    assert text.startswith(
        f"{len(stored)} message(s) with event code 20 from {since} to {until}, devices in state active\n"
    )


def test_upload_imeis_shows_each_imei_answer(demo: EmulatorServer, tmp_path: Path) -> None:
    (tmp_path / "imeis.txt").write_text("# vendor batch 7\n356938035600000\n35693803560000X\n")
    proc = cli(
        demo,
        tmp_path,
        "upload-imeis",
        "356938035600007",
        "--file",
        "imeis.txt",
        "--email",
        "ops@vendor.com",
        "--sku",
        "XYZ000000012345",
        "--yes",
        "--json",
    )
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["imeis"] == [
        {"imei": "356938035600007", "ok": True},
        {"imei": "356938035600000", "ok": True},
        {"imei": "35693803560000X", "ok": False, "error": "imei: is not a valid IMEI"},
    ]
    stored = rows(demo, "SELECT imei, sku, email FROM uploads ORDER BY id")
    assert stored == [
        {"imei": i, "sku": "XYZ000000012345", "email": "ops@vendor.com"} for i in ("356938035600007", "356938035600000")
    ]
    assert [p["path"] for p in api_calls(demo, "POST")] == ["/v2/device_operations/upload_request"]


@pytest.mark.parametrize(
    "argv, api_key, message",
    [
        (["calamp", "last", "truck-9999"], EMULATOR_API_KEY, "no SIM named 'truck-9999' in fleet.yaml"),
        (["locate", _iccid(305), "--yes"], EMULATOR_API_KEY, f"ICCID {_iccid(305)}: not in the account at"),
        (["reports", "truck-0001"], "wrong-key", "refused the credentials (HTTP 401)"),
        (["sms", "log", "truck-0001", "--fleet", "missing.yaml"], EMULATOR_API_KEY, "missing.yaml:1:1: no such file"),
    ],
)
def test_errors_are_one_line_without_a_traceback_and_send_nothing(
    demo: EmulatorServer, tmp_path: Path, argv: list[str], api_key: str, message: str
) -> None:
    proc = cli(demo, tmp_path, *argv, api_key=api_key)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert api_calls(demo, "POST") == []


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LATTIGO_ENDPOINT": "http://127.0.0.1:9",
        "LATTIGO_KEY_NAME": "k",
        "LATTIGO_API_KEY": "s",
    }
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lattigo-fleet"), "sms", "log", _iccid(0)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "lattigo-fleet sms log: cannot reach the Lattigo API at http://127.0.0.1:9 "
        "(connection refused): check lattigo:endpoint / LATTIGO_ENDPOINT"
    ]
