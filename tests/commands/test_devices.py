"""Device operations (`lattigo-fleet sms|locate|reports|calamp|upload-imeis`), in process against the emulator:
addressing by ICCID or fleet.yaml name, the confirmation rule, one-line errors, tables."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import pytest

from emulator.seeds import _iccid
from emulator.server import EmulatorServer
from lattigo_fleet.cli import build_parser
from lattigo_fleet.commands import devices
from lattigo_fleet.commands.devices import Device, DeviceFailure, each_device, parse_when, render_table
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME

FLEET = "version: 1\nsims:\n" + "".join(
    f'  - {{iccid: "{iccid}", name: {name}}}\n'
    for iccid, name in ((_iccid(0), "truck-0001"), (_iccid(1), "truck-0002"), (_iccid(3), "truck-0004"))
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def demo(fresh_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    fresh_emulator.reset("demo")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fleet.yaml").write_text(FLEET)
    return fresh_emulator


def run(
    emu: EmulatorServer,
    argv: list[str],
    stdin: TextIO | None = None,
    endpoint: str | None = None,
    api_key: str = EMULATOR_API_KEY,
) -> tuple[int, str]:
    env = {
        "LATTIGO_ENDPOINT": endpoint or emu.base_url,
        "LATTIGO_KEY_NAME": EMULATOR_KEY_NAME,
        "LATTIGO_API_KEY": api_key,
    }
    out = io.StringIO()
    args = build_parser().parse_args(argv)
    code = devices.main(args, env=env, stdin=stdin if stdin is not None else io.StringIO(), stdout=out)
    return code, out.getvalue()


def mutating(emu: EmulatorServer) -> list[dict[str, Any]]:
    return [r for r in emu.requests_log() if r["method"] != "GET" and not r["path"].startswith("/_emulator")]


def test_a_name_and_the_iccid_of_the_same_sim_address_it_once(demo: EmulatorServer) -> None:
    code, out = run(demo, ["sms", "log", "truck-0001", _iccid(0), "--json"])
    assert code == 0
    doc = json.loads(out)
    assert [(d["iccid"], d["name"], d["device_name"]) for d in doc["devices"]] == [(_iccid(0), "truck-0001", "36500")]


def test_more_sims_than_the_lookup_threshold_are_resolved_from_the_paged_snapshot(demo: EmulatorServer) -> None:
    iccids = [_iccid(i) for i in range(12)]
    demo.clear_requests()
    code, out = run(demo, ["calamp", "last", *iccids, "--json"])
    assert code == 0
    paths = [r["path"] for r in demo.requests_log()]
    assert "/v2/devices" in paths
    assert not any(p.startswith("/v2/devices/") and p.count("/") == 3 for p in paths)  # no GET per SIM
    assert [d["device_name"] for d in json.loads(out)["devices"]] == [str(36500 + i) for i in range(12)]


@pytest.mark.parametrize("answer, sent", [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False)])
def test_a_terminal_is_asked_before_sending(
    demo: EmulatorServer, capsys: pytest.CaptureFixture[str], answer: str, sent: bool
) -> None:
    demo.clear_requests()
    code, out = run(demo, ["sms", "send", "truck-0001", "--text", "PING"], stdin=Terminal(answer))
    err = capsys.readouterr().err
    assert "Send the SMS 'PING' to 1 device(s) (truck-0001)? [y/N]" in err
    assert len(mutating(demo)) == (1 if sent else 0)
    assert code == (0 if sent else 1)
    if not sent:
        assert err.strip().endswith("lattigo-fleet sms send: not confirmed: nothing sent")


@pytest.mark.parametrize(
    "argv",
    [
        ["sms", "send", "truck-0001", "--text", "PING"],
        ["locate", "truck-0001"],
        ["upload-imeis", "356938035600000", "--email", "a@b.c", "--sku", "X"],
    ],
)
def test_without_a_terminal_and_without_yes_nothing_is_sent(
    demo: EmulatorServer, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    demo.clear_requests()
    code, _ = run(demo, argv, stdin=io.StringIO("y\n"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "without confirmation: standard input is not a terminal (pass --yes); nothing sent" in err[0]
    assert mutating(demo) == []


def test_a_broken_default_fleet_file_does_not_stop_iccids_but_stops_names(
    demo: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleet.yaml").write_text("version: 2\nsims: []\n")
    assert run(demo, ["calamp", "last", _iccid(0)])[0] == 0
    code, _ = run(demo, ["calamp", "last", "truck-0001"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "'truck-0001' is not an ICCID" in err[0] and "fleet.yaml:1:10" in err[0]


def test_an_explicit_fleet_file_that_is_bad_is_an_error(
    demo: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "other.yaml").write_text("sims: [\n")
    code, _ = run(demo, ["calamp", "last", _iccid(0), "--fleet", "other.yaml"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("lattigo-fleet calamp last: other.yaml:")


@pytest.mark.parametrize(
    "target, message",
    [
        ("truck-001", "no SIM named 'truck-001' in fleet.yaml, and it is not an ICCID; did you mean 'truck-0001'?"),
        (_iccid(300), f"ICCID {_iccid(300)}: not in the account at"),  # in inventory: the API answers 404
        ("89019900000000000017", "ICCID 89019900000000000017: belongs to another account (HTTP 403)"),
    ],
)
def test_an_unknown_name_or_iccid_is_one_line_and_nothing_is_sent(
    demo: EmulatorServer, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    demo.clear_requests()
    code, out = run(demo, ["sms", "send", target, "--text", "x", "--yes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and out == "" and len(err) == 1
    assert message in err[0] and err[0].endswith("nothing sent")
    assert mutating(demo) == []


def test_wrong_key_and_unreachable_endpoint_are_one_line(
    demo: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(demo, ["reports", "truck-0001"], api_key="wrong")[0] == 1
    assert run(demo, ["reports", "truck-0001"], endpoint="http://127.0.0.1:9")[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lattigo-fleet reports: the Lattigo API at {demo.base_url} refused the credentials (HTTP 401): check "
        "lattigo:keyName and lattigo:apiKey (or LATTIGO_KEY_NAME / LATTIGO_API_KEY)",
        "lattigo-fleet reports: cannot reach the Lattigo API at http://127.0.0.1:9 (connection refused): check "
        "lattigo:endpoint / LATTIGO_ENDPOINT",
    ]


def test_missing_credentials_are_one_line(demo: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["calamp", "last", "truck-0001"])
    assert devices.main(args, env={}, stdin=io.StringIO(), stdout=io.StringIO()) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Lattigo credentials are not configured" in err[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-01", date(2024, 5, 1)),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        (None, None),
    ],
)
def test_dates(text: str | None, expected: date | datetime | None) -> None:
    assert parse_when(text, "--since") == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "01/05/2024"])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(DeviceFailure, match="is not a date"):
        parse_when(text, "--since")


def test_since_after_until_is_refused_before_any_call(demo: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    demo.clear_requests()
    code, _ = run(demo, ["sms", "log", "truck-0001", "--since", "2024-05-02", "--until", "2024-05-01"])
    assert code == 1 and demo.requests_log() == []
    assert "--since 2024-05-02 is after --until 2024-05-01" in capsys.readouterr().err


def test_table_columns_are_aligned_and_long_cells_clipped() -> None:
    text = render_table(("A", "LONG HEADER"), [("x" * 100, None), ("yy", 3)])
    lines = text.splitlines()
    assert lines[0] == "A" + " " * 71 + "  LONG HEADER"
    assert lines[1] == "x" * 71 + "…  -"
    assert lines[2] == "yy" + " " * 70 + "  3"


class Down:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, device: Device) -> NoReturn:
        from lattigo_fleet.client import LattigoConnectionError

        self.calls += 1
        raise LattigoConnectionError(method="POST", endpoint="x", status=None, detail="refused")


def test_after_a_connection_failure_the_other_devices_are_not_tried() -> None:
    devs = [Device(str(i) * 19, str(i)) for i in range(1, 4)]
    call = Down()
    outcomes = each_device(devs, call)
    assert call.calls == 1
    assert [o.ok for o in outcomes] == [False, False, False]
    assert outcomes[1].error == "not tried: an earlier call failed (LattigoConnectionError)"
