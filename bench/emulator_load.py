"""Load test of the emulator on loopback (not a test): sustained requests/s and latency percentiles of
``GET /v2/devices?details=true`` over N SIMs (default 10,000) at ``per_page`` 100 and 1000.

The emulator runs in a child process (``python -m emulator``), so that it and the load generator do not
share one interpreter lock. Every loop is bounded both in requests and in seconds.

    .venv/bin/python -m bench.emulator_load [--sims 10000] [--threads 4] [--seconds 15] [--max-requests 3000]
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

KEY = ("bench-load-key", "bench-load-secret")
ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000


def _start_emulator() -> tuple[subprocess.Popen[str], str]:
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


def _load_sims(base: str, count: int) -> float:
    t0 = time.monotonic()
    session = requests.Session()
    for start in range(0, count, BATCH):
        sims = [
            {
                "iccid": f"8901{410000000000000 + k:016d}",
                "imei": f"35{k:013d}",
                "state": "active",
                "cost_center": f"CC-{k % 5}",
                "note": f"bench {k}",
            }
            for k in range(start, min(count, start + BATCH))
        ]
        session.post(f"{base}/_emulator/sims", json={"sims": sims}, timeout=120).raise_for_status()
    return time.monotonic() - t0


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
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--seconds", type=float, default=15.0, help="time bound of each run")
    parser.add_argument("--max-requests", type=int, default=3000, help="request bound of each run")
    parser.add_argument("--per-page", type=int, action="append", help="default: 100 and 1000")
    parser.add_argument("--url", help="an emulator already running (its admin API is used to load SIMs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    per_pages = args.per_page or [100, 1000]
    proc = None
    base = args.url
    if base is None:
        proc, base = _start_emulator()
    try:
        load_seconds = _load_sims(base, args.sims)
        total = int(requests.get(f"{base}/v2/devices", auth=KEY, params={"per_page": 1}, timeout=30).headers["X-Total"])
        print(
            f"emulator at {base}: {total} SIMs loaded in {load_seconds:.1f} s; "
            f"{args.threads} client threads, each run bounded by {args.seconds:g} s and {args.max_requests} "
            "requests",
            flush=True,
        )
        results = []
        for per_page in per_pages:
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
            print(json.dumps({"sims": total, "threads": args.threads, "runs": results}, indent=2))
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
