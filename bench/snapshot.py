"""Scale run (not a test): a fleet snapshot of N SIMs (default 10,000) through the Lattigo client.

Starts the emulator in a child process on the loopback interface (so that server and client do not share
one interpreter lock), loads N active SIMs, then times ``LattigoClient.snapshot()`` and counts its
requests, both as the client counted them and as the emulator logged them.

    .venv/bin/python -m bench.snapshot [--sims 10000] [--per-page 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from emulator.admin_client import AdminClient
from lattigo_fleet.client import LattigoClient

KEY_NAME, API_KEY = "bench-snapshot-key", "bench-snapshot-secret"
ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys
from emulator.server import EmulatorServer
server = EmulatorServer(db=":memory:", seed="empty", key_name=sys.argv[1], api_key=sys.argv[2],
                        activation_delay=0.0, port=0).start()
print(server.base_url, flush=True)
sys.stdin.read()
server.stop()
"""


def _loopback(base_url: str) -> str:
    host = urlsplit(base_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to run against a non-loopback host: {host}")
    return base_url.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10_000)
    parser.add_argument("--per-page", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not 1 <= args.sims <= 200_000:
        raise SystemExit("--sims must be between 1 and 200000")

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, KEY_NAME, API_KEY],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        base = _loopback(child.stdout.readline().strip())
        admin = AdminClient(base)
        t0 = time.perf_counter()
        batch = 2000
        for start in range(0, args.sims, batch):
            sims = [
                {"iccid": f"8901{i:016d}", "imei": f"35{i:013d}", "state": "active"}
                for i in range(start, min(args.sims, start + batch))
            ]
            admin.add_sims(sims)
        print(f"loaded {args.sims} active SIMs in {time.perf_counter() - t0:.1f} s")

        timings = []
        for run in range(1, args.runs + 1):
            admin.clear_requests()
            client = LattigoClient(base, KEY_NAME, API_KEY, per_page=args.per_page)
            t0 = time.perf_counter()
            snap = client.snapshot()
            elapsed = time.perf_counter() - t0
            timings.append(elapsed)
            logged = admin.requests()
            server_count = sum(1 for r in logged if r.get("path", "").rstrip("/").endswith("/v2/devices"))
            expected = math.ceil(args.sims / args.per_page)
            print(
                f"run {run}: {len(snap)} SIMs in {elapsed:.2f} s; requests: client counted "
                f"{client.stats.total_requests} (retries {client.stats.total_retries}), emulator logged "
                f"{server_count}; ceil(N/per_page) = {expected}"
            )
            if len(snap) != args.sims:
                print(f"  MISMATCH: expected {args.sims} SIMs")
            client.close()
        print(
            f"snapshot of {args.sims} SIMs, per_page {args.per_page}: median {statistics.median(timings):.2f} s, "
            f"best {min(timings):.2f} s over {len(timings)} runs"
        )
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
