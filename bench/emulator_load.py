"""Load test of the emulator on loopback (not a test): the emulator at fleet size, then sustained requests/s
and latency percentiles of ``GET /v2/devices?details=true`` over N SIMs (default 10,000) at ``per_page`` 100
and 1000.

At fleet size, each step timed (wall seconds; the emulator's CPU seconds beside them):
- seed: N active SIMs through the admin API (``POST /_emulator/sims``, ``--seed-chunk`` a request);
- list: every SIM through the Lattigo API as the product reads it (``LattigoClient.snapshot()``: ``GET
  /v2/devices?details=true&per_page=1000``, N / 1000 pages), checked complete;
- usage: a day of usage of every SIM (``POST /_emulator/usage {"usage": [...]}``, ``--usage-chunk`` a request);
- read usage: that day back (``GET /_emulator/usage?date=``), checked complete.

The emulator runs in a child process (``python -m emulator``), so that it and the load generator do not
share one interpreter lock; ``--db FILE`` keeps its state in a SQLite file instead of memory. Every loop is
bounded both in requests and in seconds.

    .venv/bin/python -m bench.emulator_load [--sims 10000] [--db FILE] [--threads 4] [--seconds 15]
        [--max-requests 3000] [--scale-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from emulator.admin_client import AdminClient
from lattigo_fleet.client import LattigoClient

KEY = ("bench-load-key", "bench-load-secret")
ROOT = Path(__file__).resolve().parent.parent


def iccid(k: int) -> str:
    return f"8901{410000000000000 + k:016d}"


def _start_emulator(db: str | None) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--seed",
            "empty",
            "--key-name",
            KEY[0],
            "--api-key",
            KEY[1],
            "--activation-delay",
            "0",
            *(["--db", db] if db else []),
        ],
        stdout=subprocess.PIPE,
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


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere or for an emulator of the
    caller's): the emulator's own work, apart from the client's and the machine's other load."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Step:
    """Wall time and the emulator's CPU time of one step."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def __enter__(self) -> _Step:
        self.wall0, self.cpu0 = time.monotonic(), _cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.monotonic() - self.wall0, 2)
        cpu = _cpu_seconds(self.pid)
        self.cpu = None if cpu is None or self.cpu0 is None else round(cpu - self.cpu0, 2)

    def figures(self, **extra: Any) -> dict[str, Any]:
        return {"seconds": self.seconds, "emulator_cpu_seconds": self.cpu, **extra}


def at_scale(base: str, count: int, pid: int | None, seed_chunk: int, usage_chunk: int) -> dict[str, Any]:
    """Seed ``count`` SIMs, list them as the product does, record and read back a day of usage of each."""
    admin = AdminClient(base)
    with _Step(pid) as seed:
        for start in range(0, count, seed_chunk):
            admin.add_sims(
                [
                    {
                        "iccid": iccid(k),
                        "imei": f"35{k:013d}",
                        "state": "active",
                        "cost_center": f"CC-{k % 5}",
                        "note": f"bench {k}",
                    }
                    for k in range(start, min(count, start + seed_chunk))
                ]
            )
    with LattigoClient(base, *KEY) as client, _Step(pid) as listing:
        snapshot = client.snapshot()
        pages = client.stats.total_requests
    listed = sum(1 for k in range(count) if iccid(k) in snapshot)
    if listed != count:
        raise SystemExit(f"the listing found {listed} of the {count} SIMs seeded")
    day = admin.now()[:10]
    with _Step(pid) as usage:
        for start in range(0, count, usage_chunk):
            admin.record_usages(
                [
                    {"iccid": iccid(k), "date": day, "bytes": 100_000 + (k * 7919) % 5_000_000, "sms": k % 3}
                    for k in range(start, min(count, start + usage_chunk))
                ]
            )
    with _Step(pid) as read:
        days = admin.usage(date=day)
    if len(days) != count:
        raise SystemExit(f"the usage of {day} has {len(days)} days recorded, not {count}")
    return {
        "seed": seed.figures(requests=math.ceil(count / seed_chunk)),
        "list": listing.figures(requests=pages, devices=len(snapshot)),
        "usage": usage.figures(requests=math.ceil(count / usage_chunk), day=day),
        "read_usage": read.figures(requests=1, days=len(days)),
    }


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)
    return ordered[index]


def _run(base: str, per_page: int, total: int, threads: int, seconds: float, max_requests: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / per_page))
    latencies: list[float] = []
    failures: list[int] = []
    sizes: list[int] = []
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        session.auth = KEY
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            t0 = time.perf_counter()
            params: dict[str, str | int] = {"details": "true", "per_page": per_page, "page": n % pages + 1}
            resp = session.get(f"{base}/v2/devices", params=params, timeout=60)
            body = resp.content
            elapsed = time.perf_counter() - t0
            with lock:
                if resp.status_code == 200:
                    latencies.append(elapsed)
                    sizes.append(len(body))
                else:
                    failures.append(resp.status_code)

    # warm up (connections, caches) outside the measurement
    warm = requests.Session()
    warm.auth = KEY
    for page in range(1, min(pages, 3) + 1):
        warm_params: dict[str, str | int] = {"details": "true", "per_page": per_page, "page": page}
        warm.get(f"{base}/v2/devices", params=warm_params, timeout=60)
    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.monotonic() - started
    done = len(latencies)
    return {
        "per_page": per_page,
        "requests": done,
        "failures": len(failures),
        "seconds": round(wall, 2),
        "requests_per_second": round(done / wall, 1) if wall else 0.0,
        "devices_per_second": round(done * per_page / wall) if wall else 0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "mean_response_kb": round(statistics.mean(sizes) / 1024, 1) if sizes else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10_000)
    parser.add_argument("--db", help="a SQLite file for the emulator's state (default: memory); must not exist")
    parser.add_argument("--seed-chunk", type=int, default=5000, help="SIMs per seeding request")
    parser.add_argument("--usage-chunk", type=int, default=10_000, help="days of usage per request")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--seconds", type=float, default=15.0, help="time bound of each run")
    parser.add_argument("--max-requests", type=int, default=3000, help="request bound of each run")
    parser.add_argument("--per-page", type=int, action="append", help="default: 100 and 1000")
    parser.add_argument("--scale-only", action="store_true", help="the fleet-size steps only, no load runs")
    parser.add_argument("--url", help="an emulator already running (its admin API is used to load SIMs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    per_pages = args.per_page or [100, 1000]
    if args.db and Path(args.db).exists():
        raise SystemExit(f"--db {args.db} exists: the bench seeds an empty emulator")
    proc = None
    base = args.url
    if base is None:
        proc, base = _start_emulator(args.db)
    try:
        scale = at_scale(base, args.sims, proc.pid if proc else None, args.seed_chunk, args.usage_chunk)
        total = int(requests.get(f"{base}/v2/devices", auth=KEY, params={"per_page": 1}, timeout=30).headers["X-Total"])
        where = f"SQLite file {args.db}" if args.db else "memory"
        print(f"emulator at {base} ({where}), {total} SIMs; wall seconds (the emulator's CPU seconds):", flush=True)
        for step, what in (
            ("seed", f"seed {args.sims} SIMs, {args.seed_chunk} a request"),
            ("list", "list them all: LattigoClient.snapshot(), per_page 1000"),
            ("usage", f"a day of usage of each, {args.usage_chunk} a request"),
            ("read_usage", "read that day back: GET /_emulator/usage?date="),
        ):
            figures = scale[step]
            cpu = figures["emulator_cpu_seconds"]
            print(
                f"  {what:<58} {figures['seconds']:>7.2f} s" + (f" ({cpu:.2f} s)" if cpu is not None else ""),
                flush=True,
            )
        results = []
        for per_page in [] if args.scale_only else per_pages:
            if per_page == per_pages[0]:
                print(
                    f"{args.threads} client threads, each run bounded by {args.seconds:g} s and {args.max_requests} "
                    "requests",
                    flush=True,
                )
            result = _run(base, per_page, total, args.threads, args.seconds, args.max_requests)
            results.append(result)
            print(
                f"GET v2/devices?details=true per_page={per_page:>4}: {result['requests']} requests in "
                f"{result['seconds']} s = {result['requests_per_second']} req/s "
                f"({result['devices_per_second']} devices/s), p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                f"max {result['max_ms']} ms, {result['mean_response_kb']} KiB/response, "
                f"{result['failures']} failures",
                flush=True,
            )
        if args.json:
            print(
                json.dumps(
                    {"sims": total, "db": args.db, "scale": scale, "threads": args.threads, "runs": results}, indent=2
                )
            )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
