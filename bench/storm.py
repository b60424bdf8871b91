"""An apply under a 429 storm: the real pulumi CLI against the emulator limited to 2 requests/s (loopback only).

1,000 SIMs, of which 900 exist (450 need a cost-center move) and 100 must be activated, in one `pulumi up`
while the emulator answers 429 beyond 2 requests/s. Reports failed SIMs (the goal: 0 in one run), the share
of requests answered 429, requests sent, SIMs that do not match fleet.yaml afterwards, and wall time.

    .venv/bin/python -m bench.storm [--sims 1000] [--new 100] [--rate 2] [--notes N] [--no-moves]

`--notes N` gives N existing SIMs a new note, one call per SIM (the API has no bulk note call): with
`--sims 150 --new 0 --notes 150 --no-moves --rate 0.4`, a change made of per-SIM calls only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.account import API_KEY, KEY_NAME, RATE_PLAN, iccid, imei
from devtools.pulumi_stack import PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second the emulator allows")
    parser.add_argument("--notes", type=int, default=0, help="existing SIMs that get a new note (a call each)")
    parser.add_argument("--no-moves", action="store_true", help="no cost-center moves: every SIM stays in ops")
    args = parser.parse_args(argv)

    def cost_center(i: int) -> str:
        return "ops" if args.no_moves or i % 2 else "logistics"

    def note(i: int) -> str:
        return f", notes: {{note1: fw-{i}}}" if i < min(args.notes, existing) else ""

    existing = args.sims - args.new

    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0) as emu,
    ):
        base = emu.base_url
        admin = AdminClient(base)
        admin.add_sims(
            [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(existing)]
            + [{"iccid": iccid(i), "imei": imei(i)} for i in range(existing, args.sims)]
        )
        project = make_project(Path(tmp) / "project")
        rows = "".join(
            f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center(i)}{note(i)}}}\n'
            for i in range(args.sims)
        )
        (project / "fleet.yaml").write_text(
            f'version: 1\ndefaults: {{rate_plan: "{RATE_PLAN}"}}\npolicy: {{max_changes: 100%}}\nsims:\n{rows}'
        )
        stack = PulumiStack(project, Path(tmp), "storm", bin_dir=pulumi_bin_dir())
        stack.set_config("lattigo:endpoint", base)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)

        admin.clear_requests()
        admin.faults(rate_limit_per_second=args.rate, rate_limit_burst=2)
        start = time.perf_counter()
        result = stack.up()
        wall = time.perf_counter() - start
        admin.clear_faults()

        served = admin.api_requests()
        statuses = Counter(r["status"] for r in served)
        failed = sum(1 for event in result.events if "resOpFailedEvent" in event)
        live = admin.sims()
        mismatched = sum(
            1
            for i in range(args.sims)
            if live[iccid(i)]["state"] != "active"
            or live[iccid(i)]["cost_center"] != cost_center(i)
            or (note(i) and live[iccid(i)].get("note1") != f"fw-{i}")
        )
        figures = {
            "sims": args.sims,
            "notes": min(args.notes, existing),
            "rate_per_second": args.rate,
            "exit": result.returncode,
            "failed_sims": failed,
            "requests": len(served),
            "answered_429": statuses.get(429, 0),
            "share_429": round(statuses.get(429, 0) / max(len(served), 1), 3),
            "mismatched_after": mismatched,
            "wall_seconds": round(wall, 1),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
