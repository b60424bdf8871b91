"""`lattigo-fleet usage` end to end against the emulator: usage recorded through its admin API, the report's
figures checked against the emulator's own, the ThingSpace skew fault giving exactly the planted
discrepancies, 429s ridden out, the cache making the second run free, and no credential ever printed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import pytest
import requests

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.server import EmulatorServer
from lattigo_fleet.cli import build_parser
from lattigo_fleet.commands.usage import main as usage_main
from lattigo_fleet.usage.report import differs, provisional
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME, emulator_env
from tests.e2e.fleets import iccid, imei

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=8)
END = TODAY - timedelta(days=1)  # complete days only, so that the cache holds them all
COST_CENTERS = ("Fleet-East", "Fleet-West", "Cold-Chain")
N = 9


def record(base: str, sim: str, day: date, nbytes: int, sms: int = 0) -> None:
    body = {"iccid": sim, "date": day.isoformat(), "bytes": nbytes, "sms": sms}
    requests.post(f"{base}/_emulator/usage", json=body, timeout=30).raise_for_status()


def planted_bytes(i: int, k: int) -> int:
    """SIM i's usage on day START + k: some large, some under the floor, some none."""
    if i % 3 == 2:
        return 500 + 10 * k  # small: a 10% skew is under the 1,024-byte floor
    if i == 4 and k % 2:
        return 0
    return (i + 1) * 1_000_000 + k * 7_919


Account: TypeAlias = tuple[EmulatorServer, Path, Path]  # the `account` fixture: (emulator, fleet.yaml, cache)


@pytest.fixture
def account(fresh_emulator: EmulatorServer, tmp_path: Path) -> Account:
    """N active SIMs over three cost centers, a fleet.yaml grouping (and limiting) some of them, and
    START..TODAY of usage recorded through the admin API."""
    base = fresh_emulator.base_url
    sims = [
        {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": COST_CENTERS[i % 3]} for i in range(N)
    ]
    requests.post(f"{base}/_emulator/sims", json={"sims": sims}, timeout=30).raise_for_status()
    for i in range(N):
        for k in range((TODAY - START).days + 1):
            nbytes = planted_bytes(i, k)
            if nbytes:
                record(base, iccid(i), START + timedelta(days=k), nbytes, sms=k % 2)
    fleet = tmp_path / "fleet.yaml"
    rows = "".join(
        f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: sim-{i}, group: {"east" if i % 3 == 0 else "rest"}'
        + (", usage_limit: {kb_limit: 8000, action: suspend}" if i in (0, 1) else "")
        + "}\n"
        for i in range(N - 1)  # the last SIM is not in fleet.yaml
    )
    fleet.write_text("version: 1\ngroups:\n  east: {}\n  rest: {}\nsims:\n" + rows)
    return fresh_emulator, fleet, tmp_path / "cache.sqlite"


def run(
    emulator: EmulatorServer,
    fleet: Path,
    cache: Path,
    *argv: str,
    env: dict[str, str] | None = None,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> tuple[int, str, str]:
    args = build_parser().parse_args(["usage", "--fleet", str(fleet), "--cache", str(cache), "--no-progress", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = usage_main(args, out=out, err=err, env=env or emulator_env(emulator))
    printed = capsys.readouterr().err if capsys else ""
    return code, out.getvalue(), err.getvalue() + printed


def emulator_daily(emulator: EmulatorServer, start: date, end: date) -> dict[str, dict[str, int]]:
    """The emulator's own daily figures, read from its store (not through the API under test)."""
    rows = emulator.backend.store.conn.execute(
        "SELECT s.iccid, d.date_for, d.bytes_used FROM daily_usage d JOIN sims s ON s.id = d.sim_id "
        "WHERE d.date_for >= ? AND d.date_for <= ?",
        (start.isoformat(), end.isoformat()),
    ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for sim, day, nbytes in rows:
        out.setdefault(sim, {})[day] = nbytes
    return out


def test_the_report_matches_the_emulators_figures(account: Account) -> None:
    emulator, fleet, cache = account
    code, out, _ = run(emulator, fleet, cache, "--from", START.isoformat(), "--to", END.isoformat(), "--json")
    assert code == 0
    data = json.loads(out)
    truth = emulator_daily(emulator, START, END)
    assert {s["iccid"]: s["bytes"] for s in data["sims"]} == {
        iccid(i): sum(truth.get(iccid(i), {}).values()) for i in range(N)
    }
    assert data["totals"]["bytes"] == sum(sum(d.values()) for d in truth.values())
    by_cc = {c["cost_center"]: c["bytes"] for c in data["cost_centers"]}
    assert by_cc == {
        cc: sum(sum(truth.get(iccid(i), {}).values()) for i in range(N) if i % 3 == n)
        for n, cc in enumerate(COST_CENTERS)
    }
    groups = {g["group"]: g["sims"] for g in data["groups"]}
    assert groups == {"east": 3, "rest": 5, "(not in fleet.yaml)": 1}
    totals = {iccid(i): sum(truth.get(iccid(i), {}).values()) for i in range(N)}
    assert [(t["bytes"], totals[t["iccid"]]) for t in data["top"]] == [
        (b, b) for b in sorted((b for b in totals.values() if b), reverse=True)
    ]
    for sim in data["sims"]:
        assert sim["daily"] == {
            (START + timedelta(days=k)).isoformat(): truth.get(sim["iccid"], {}).get(
                (START + timedelta(days=k)).isoformat(), 0
            )
            for k in range((END - START).days + 1)
        }


def test_month_to_date_matches_the_emulators_monthly_counter(account: Account) -> None:
    emulator, fleet, cache = account
    code, out, _ = run(emulator, fleet, cache, "--json")
    assert code in (0, 2)
    data = json.loads(out)
    assert (data["from"], data["to"]) == (TODAY.replace(day=1).isoformat(), TODAY.isoformat())
    monthly = {s["iccid"]: s["bytes_used"] for s in emulator.sims()}  # the platform's month-to-date counter
    assert {s["iccid"]: s["bytes"] for s in data["sims"]} == {i: monthly[i] for i in monthly}


def test_sims_over_a_share_of_their_declared_limit(account: Account) -> None:
    emulator, fleet, cache = account
    code, out, _ = run(emulator, fleet, cache, "--over", "80%")
    month = emulator_daily(emulator, TODAY.replace(day=1), TODAY)
    limit = 8000 * 1024
    expected = sorted(i for i in (0, 1) if sum(month.get(iccid(i), {}).values()) >= 0.8 * limit)
    assert (
        f"Over 80% of their usage limit this month ({TODAY.replace(day=1).isoformat()} .. {TODAY.isoformat()}): "
        f"{len(expected)} SIM(s)" in out
    )
    for i in expected:
        assert iccid(i) in out.split("Over 80%")[1]
    assert "the Lattigo API cannot read limits back" in out
    assert code == (2 if expected else 0)


def test_the_skew_fault_gives_exactly_the_planted_discrepancies(account: Account) -> None:
    emulator, fleet, cache = account
    emulator.set_faults(thingspace_usage_skew=0.10, thingspace_duplicate_days=True, thingspace_page_days=4)
    chart = cache.parent / "usage.html"
    code, out, _ = run(
        emulator,
        fleet,
        cache,
        "--from",
        START.isoformat(),
        "--to",
        END.isoformat(),
        "--compare",
        "--tolerance",
        "5%",
        "--min-bytes",
        "1024",
        "--json",
        "--chart",
        str(chart),
    )
    assert code == 2
    data = json.loads(out)
    truth = emulator_daily(emulator, START, END)
    planted = set()
    for i in range(N):
        for day, nbytes in truth.get(iccid(i), {}).items():
            if differs(nbytes, round(nbytes * 1.1), 0.05, 1024):
                planted.add((iccid(i), day, nbytes, round(nbytes * 1.1)))
    found = {
        (d["iccid"], d["day"], d["lattigo_bytes"], d["thingspace_bytes"]) for d in data["compare"]["discrepancies"]
    }
    assert found == planted
    assert {i for i, *_ in planted} == {iccid(i) for i in range(N) if i % 3 != 2}  # the small SIMs stay under
    assert 'data-source="thingspace"' in chart.read_text()

    emulator.set_faults(thingspace_usage_skew=0.0)  # same figures, two records a day, several pages: no difference
    code, out, _ = run(
        emulator,
        fleet,
        cache.with_name("other.sqlite"),
        "--from",
        START.isoformat(),
        "--to",
        END.isoformat(),
        "--compare",
    )
    assert code == 0 and "no day differs" in out


def test_429s_are_ridden_out_and_the_second_run_reads_only_thingspaces_provisional_days(account: Account) -> None:
    emulator, fleet, cache = account
    emulator.set_faults(rate_limit_per_second=15, rate_limit_burst=3)
    emulator.clear_requests()
    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--compare", "--json", "--workers", "8"]
    code, out, _ = run(emulator, fleet, cache, *window)
    assert code == 0, out
    cold = json.loads(out)
    log = emulator.requests_log()
    assert any(r["status"] == 429 for r in log), "the fault should have answered some requests 429"
    truth = emulator_daily(emulator, START, END)
    assert cold["totals"]["bytes"] == sum(sum(d.values()) for d in truth.values())
    assert cold["requests"]["lattigo"] >= N and cold["not_read"] == []

    emulator.clear_requests()
    code, out, _ = run(emulator, fleet, cache, *window)
    warm = json.loads(out)
    days = [START + timedelta(days=k) for k in range((END - START).days + 1)]
    final = [d for d in days if not provisional(d, TODAY)]
    assert final and len(final) < len(days), "the window holds final and provisional days"
    usage_calls = [r for r in emulator.requests_log() if "usage" in r["path"]]
    # Lattigo's complete days and ThingSpace's final ones come from the cache; ThingSpace's provisional days,
    # which may still grow, are asked again, from the first of them.
    assert warm["requests"]["lattigo"] == 0 and warm["requests"]["thingspace"] >= N
    assert all(r["path"].startswith("/api/m2m/") for r in usage_calls)
    assert {str(r["body"]["earliest"])[:10] for r in usage_calls} == {(final[-1] + timedelta(days=1)).isoformat()}
    assert warm["requests"]["cached_days"] == N * (len(days) + len(final))
    assert warm["sims"] == cold["sims"] and warm["compare"] == cold["compare"]


def test_a_refused_thingspace_login_is_one_line_without_the_password(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, fleet, cache = account
    emulator.clear_requests()
    secret = "wrong-pa55word-xyz"
    code, out, err = run(
        emulator,
        fleet,
        cache,
        "--compare",
        env=emulator_env(emulator, LATTIGO_THINGSPACE_PASSWORD=secret),
        capsys=capsys,
    )
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lattigo-fleet usage: the ThingSpace API at ")
    assert secret not in err and EMULATOR_API_KEY not in err
    logins = [r for r in emulator.requests_log() if r["path"].endswith("/session/login")]
    assert len(logins) == 1  # never retried: five failures lock the account


def test_missing_thingspace_credentials_are_named(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    emulator, fleet, cache = account
    env = {k: v for k, v in emulator_env(emulator).items() if "THINGSPACE" not in k}
    code, _, err = run(emulator, fleet, cache, "--compare", env=env, capsys=capsys)
    assert code == 1
    assert "lattigo:thingspaceAppKey (LATTIGO_THINGSPACE_APP_KEY)" in err
    assert "lattigo:thingspacePassword (LATTIGO_THINGSPACE_PASSWORD)" in err


def test_the_cli_prints_tables_and_csv(account: Account) -> None:
    emulator, fleet, cache = account
    env = {**os.environ, **emulator_env(emulator), "PYTHONPATH": str(REPO)}
    base = [
        sys.executable,
        "-m",
        "lattigo_fleet.cli",
        "usage",
        "--fleet",
        str(fleet),
        "--cache",
        str(cache),
        "--from",
        START.isoformat(),
        "--to",
        END.isoformat(),
    ]
    table = subprocess.run([*base, "--top", "3"], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert table.returncode == 0, table.stderr
    assert "By cost center" in table.stdout and "Top 3 SIM(s):" in table.stdout and "sim-7" in table.stdout
    assert EMULATOR_API_KEY not in table.stdout + table.stderr
    csv_run = subprocess.run([*base, "--csv"], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    lines = csv_run.stdout.splitlines()
    assert lines[0] == "date,iccid,name,cost_center,group,bytes" and len(lines) == 1 + N * ((END - START).days + 1)
    truth = emulator_daily(emulator, START, END)
    assert sum(int(line.rsplit(",", 1)[1]) for line in lines[1:]) == sum(sum(d.values()) for d in truth.values())


def test_credentials_from_the_stack_config(
    account: Account, fleet_stack: PulumiStack, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, fleet, cache = account
    stack = fleet_stack
    (stack.project_dir / "fleet.yaml").write_text(fleet.read_text())
    for key, value, secret in (
        ("lattigo:thingspaceEndpoint", emulator.base_url, False),
        ("lattigo:thingspaceAppKey", EMULATOR_KEY_NAME, False),
        ("lattigo:thingspaceAppSecret", EMULATOR_API_KEY, True),
        ("lattigo:thingspaceUsername", EMULATOR_KEY_NAME, False),
        ("lattigo:thingspacePassword", EMULATOR_API_KEY, True),
    ):
        stack.set_config(key, value, secret=secret)
    assert EMULATOR_API_KEY not in (stack.project_dir / "Pulumi.test.yaml").read_text()
    env = {**stack.env, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lattigo_fleet.cli",
            "usage",
            "--stack",
            stack.name,
            "--cwd",
            str(stack.project_dir),
            "--cache",
            str(cache),
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat(),
            "--compare",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["compare"]["discrepancies"] == [] and data["totals"]["sims"] == N
    assert {g["group"] for g in data["groups"]} == {"east", "rest", "(not in fleet.yaml)"}
    assert EMULATOR_API_KEY not in proc.stdout + proc.stderr


def test_a_broken_cache_is_rebuilt_and_a_directory_in_its_place_is_one_line(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, fleet, cache = account
    window = ["--from", START.isoformat(), "--to", END.isoformat(), "--json"]
    code, out, _ = run(emulator, fleet, cache, *window)
    assert code == 0, out
    first = json.loads(out)
    cache.write_bytes(b"garbage, not a database\n" * 64)
    code, out, err = run(emulator, fleet, cache, *window)
    assert code == 0 and "was corrupted" in err and "Traceback" not in err, err
    assert json.loads(out)["sims"] == first["sims"], "the days are read again, the same"
    for leftover in cache.parent.glob("cache.sqlite*"):
        leftover.unlink()
    cache.mkdir()
    code, out, err = run(emulator, fleet, cache, *window, capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "a directory is in its place" in err, err
