"""Benchmark of `lattigo-fleet usage` at fleet size (not a test): requests and wall time of the report for
N SIMs (default 5,000) x 30 days, Lattigo and ThingSpace (`--compare`), cold cache, warm cache (the same
range again) and the nightly run (the range moved on by a day: yesterday is new, today is never cached).

The emulator runs in a child process on a SQLite file (so that it and the report do not share one
interpreter lock); the usage is written beforehand through the emulator's own model, in this process, on
that file. Every run is bounded.

    .venv/bin/python -m bench.usage_report [--sims 5000] [--days 30] [--workers 8] [--out bench/results/usage_report.md]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = ("bench-usage-key", "bench-usage-secret")
COST_CENTERS = ("Fleet-East", "Fleet-West", "Cold-Chain", "Retail", "Lab")


def iccid(k: int) -> str:
    return f"8901{420000000000000 + k:016d}"


def seed(db: Path, sims: int, days: int) -> float:
    """SIMs and `days` complete days of usage each, written through the emulator's model."""
    from emulator.server import EmulatorServer

    t0 = time.monotonic()
    srv = EmulatorServer(
        db=str(db), seed="empty", key_name=KEY[0], api_key=KEY[1], activation_delay=0.0, host="127.0.0.1", port=0
    )
    srv.start()
    try:
        for start in range(0, sims, 1000):
            srv.add_sims(
                [
                    {
                        "iccid": iccid(k),
                        "imei": f"35{k:013d}",
                        "state": "active",
                        "cost_center": COST_CENTERS[k % len(COST_CENTERS)],
                    }
                    for k in range(start, min(sims, start + 1000))
                ]
            )
        today = datetime.now(UTC).date()
        for k in range(sims):
            for d in range(1, days + 1):
                srv.record_usage(iccid(k), today - timedelta(days=d), 100_000 + (k * 7919 + d * 104729) % 5_000_000)
    finally:
        srv.stop()
    return time.monotonic() - t0


def start_emulator(db: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--db",
            str(db),
            "--key-name",
            KEY[0],
            "--api-key",
            KEY[1],
            "--activation-delay",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://[^\s]+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, match.group(0)


def run_report(base: str, cache: Path, first: str, last: str, workers: int) -> dict[str, Any]:
    from lattigo_fleet.cli import build_parser
    from lattigo_fleet.commands.usage import main as usage_main

    env = {
        "LATTIGO_ENDPOINT": base,
        "LATTIGO_KEY_NAME": KEY[0],
        "LATTIGO_API_KEY": KEY[1],
        "LATTIGO_THINGSPACE_ENDPOINT": base,
        "LATTIGO_THINGSPACE_APP_KEY": KEY[0],
        "LATTIGO_THINGSPACE_APP_SECRET": KEY[1],
        "LATTIGO_THINGSPACE_USERNAME": KEY[0],
        "LATTIGO_THINGSPACE_PASSWORD": KEY[1],
    }
    # --cwd: a directory without fleet.yaml (groups and limits do not change the requests).
    args = build_parser().parse_args(
        [
            "usage",
            "--cwd",
            str(cache.parent),
            "--cache",
            str(cache),
            "--from",
            first,
            "--to",
            last,
            "--compare",
            "--json",
            "--workers",
            str(workers),
        ]
    )
    out = io.StringIO()
    t0 = time.monotonic()
    code = usage_main(args, out=out, err=sys.stderr, env=env)
    wall = time.monotonic() - t0
    data = json.loads(out.getvalue())
    if code not in (0, 2) or data["not_read"]:
        raise SystemExit(f"the report failed (exit {code}, {len(data['not_read'])} not read)")
    req = data["requests"]
    return {
        "lattigo": req["lattigo"],
        "listing": req["lattigo_listing"],
        "thingspace": req["thingspace"],
        "cached_days": req["cached_days"],
        "wall": round(wall, 2),
        "sims": data["totals"]["sims"],
        "bytes": data["totals"]["bytes"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as tmp:
        db, cache = Path(tmp) / "emulator.sqlite", Path(tmp) / "usage.sqlite"
        seeded = seed(db, args.sims, args.days)
        print(f"seeded {args.sims:,} SIMs x {args.days} days in {seeded:.0f} s", file=sys.stderr)
        proc, base = start_emulator(db)
        try:
            today = datetime.now(UTC).date()
            first, last = today - timedelta(days=args.days), today - timedelta(days=1)
            rows = [
                ("cold (empty cache)", run_report(base, cache, first.isoformat(), last.isoformat(), args.workers)),
                ("warm (same range again)", run_report(base, cache, first.isoformat(), last.isoformat(), args.workers)),
                (
                    "nightly (range moved to include today)",
                    run_report(base, cache, (first + timedelta(1)).isoformat(), today.isoformat(), args.workers),
                ),
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = [
        f"`lattigo-fleet usage --compare`, {args.sims:,} SIMs x {args.days} days, {args.workers} workers per API, "
        "emulator on loopback (child process)",
        "",
        "| run | Lattigo usage requests | listing requests | ThingSpace requests | SIM-days from cache | wall (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['lattigo']:,} | {r['listing']:,} | {r['thingspace']:,} | {r['cached_days']:,} | "
            f"{r['wall']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
