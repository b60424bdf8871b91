"""Scale run of the reconciler through the real pulumi CLI against the emulator (loopback only).

Measures, for a fleet of N SIMs (default 1,000) of which most already exist in the account and some are
new: the first `pulumi up` (requests by endpoint, wall time), a no-change `pulumi preview`, and a
`pulumi preview --refresh`; then the activation of 100 new SIMs in one `up` (activation requests).

    .venv/bin/python -m bench.reconcile [--sims 1000] [--new 100] [--no-skip-checkpoints]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.account import API_KEY, KEY_NAME, RATE_PLAN, floor_reads, floor_writes, iccid, imei
from devtools.pulumi_stack import PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import ADMIN_PREFIX, AdminClient
from emulator.server import EmulatorServer


def fleet_yaml(indices: range, cost_center_for: Callable[[int], str]) -> str:
    lines = ["version: 1", f'defaults: {{rate_plan: "{RATE_PLAN}"}}', "policy: {max_changes: 100%}", "sims:"]
    for i in indices:
        lines.append(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center_for(i)}}}')
    return "\n".join(lines) + "\n"


def mutating(requests: list[dict[str, Any]]) -> Counter[str]:
    return Counter(f"{r['method']} {r['path']}" for r in requests if not r["path"].startswith(ADMIN_PREFIX))


def timed(label: str, stack: PulumiStack, *args: str) -> float:
    start = time.perf_counter()
    stack.run(*args).check()
    took = time.perf_counter() - start
    print(f"{label}: {took:.1f} s")
    return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument(
        "--no-skip-checkpoints",
        action="store_true",
        help="drop PULUMI_SKIP_CHECKPOINTS (set by the engine settings): the engine then writes state per step",
    )
    parser.add_argument("--window-ms", type=int, default=None, help="lattigo-fleet:batchWindowMs for the stack")
    args = parser.parse_args(argv)

    bin_dir = pulumi_bin_dir()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0) as emu,
    ):
        base = emu.base_url
        admin = AdminClient(base)
        existing = args.sims - args.new
        # Most SIMs exist, half in the "ops" cost center; the rest are new (inventory) and get activated.
        admin.add_sims(
            [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(existing)]
            + [{"iccid": iccid(i), "imei": imei(i)} for i in range(existing, args.sims)]
        )

        project = make_project(Path(tmp) / "project")
        (project / "fleet.yaml").write_text(fleet_yaml(range(args.sims), lambda i: "ops" if i % 2 else "logistics"))
        stack = PulumiStack(project, Path(tmp), "bench", bin_dir=bin_dir)
        if args.no_skip_checkpoints:
            stack.env.pop("PULUMI_SKIP_CHECKPOINTS", None)
        stack.set_config("lattigo:endpoint", base)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        if args.window_ms is not None:
            stack.set_config("lattigo-fleet:batchWindowMs", str(args.window_ms))

        print(
            f"PULUMI_SKIP_CHECKPOINTS={stack.env.get('PULUMI_SKIP_CHECKPOINTS', 'unset')}, "
            f"PULUMI_PARALLEL={stack.env.get('PULUMI_PARALLEL', 'unset')}, "
            f"batch window {args.window_ms if args.window_ms is not None else 'default'} ms"
        )
        print(
            f"fleet: {args.sims} SIMs ({existing} exist, {existing // 2} need a cost-center move, "
            f"{args.new} need activation)"
        )
        admin.clear_requests()
        timed("first pulumi up", stack, "up", "--yes", "--skip-preview")
        served = admin.requests()
        print(f"  requests: {len(served)}; by endpoint: {dict(mutating(served))}")
        api = [r for r in served if not r["path"].startswith(ADMIN_PREFIX)]
        writes, reads = sum(r["method"] != "GET" for r in api), sum(r["method"] == "GET" for r in api)
        # The floor, as the fleet table counts it: one bulk request per call and parameters (at most 500 each).

        known = Counter(
            {
                ("activation_request", RATE_PLAN): args.new,
                ("change_cost_center", "logistics"): sum(1 for i in range(args.sims) if i % 2 == 0),
                ("change_cost_center", "ops"): sum(1 for i in range(existing, args.sims) if i % 2),  # new SIMs
            }
        )
        print(f"  writes: {writes} (floor {floor_writes(known)}); reads: {reads} (floor {floor_reads(args.sims)})")

        for label, cmd in (
            ("no-change pulumi preview", ("preview", "--expect-no-changes")),
            ("pulumi preview --refresh", ("preview", "--refresh", "--expect-no-changes")),
        ):
            admin.clear_requests()
            timed(label, stack, *cmd)
            served = admin.requests()
            print(f"  requests: {len(served)}; by endpoint: {dict(mutating(served))}")


if __name__ == "__main__":
    main()
