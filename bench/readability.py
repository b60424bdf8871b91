"""How much a reviewer has to read, at fleet size: the real pulumi CLI against the emulator (loopback only).

For a fleet of N SIMs (default 5,000) already under management, the characters of `pulumi preview --diff`
for (a) one SIM added, (b) 5 field changes, (c) 500 cost-center moves, and the lines of the drift check
(`pulumi preview --expect-no-changes --diff`) for one real drift after a day of usage on every SIM.

    .venv/bin/python -m bench.readability [--sims 5000] [--moves 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.account import API_KEY, KEY_NAME, RATE_PLAN, iccid, imei
from devtools.pulumi_stack import PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer


def fleet_yaml(
    n: int,
    cost_center: Callable[[int], str] = lambda i: "ops",
    note: Callable[[int], str] = lambda i: "depot",
    extra: Callable[[int], str] = lambda i: "",
) -> str:
    lines = ["version: 1", f'defaults: {{rate_plan: "{RATE_PLAN}"}}', "policy: {max_changes: 100%}", "sims:"]
    for i in range(n):
        more = extra(i)
        lines.append(
            f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: truck-{i:05d}, '
            f"cost_center: {cost_center(i)}, notes: {{note: {note(i)}}}{', ' + more if more else ''}}}"
        )
    return "\n".join(lines) + "\n"


def measure(label: str, stack: PulumiStack, *args: str, expect_failure: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    result = stack.run(*args)
    took = time.perf_counter() - start
    if (result.returncode != 0) != expect_failure:
        raise SystemExit(
            f"{label}: pulumi {' '.join(args)} exited {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.output[-3000:]}"
        )
    figures = {
        "case": label,
        "command": "pulumi " + " ".join(args),
        "characters": len(result.stdout),
        "lines": len(result.stdout.splitlines()),
        "seconds": round(took, 1),
    }
    print(json.dumps(figures), flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--moves", type=int, default=500)
    args = parser.parse_args(argv)
    n = args.sims

    bin_dir = pulumi_bin_dir()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0) as emu,
    ):
        base = emu.base_url
        admin = AdminClient(base)
        admin.add_sims(
            [
                {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops", "note": "depot"}
                for i in range(n)
            ]
            + [{"iccid": iccid(n), "imei": imei(n)}]
        )
        project = make_project(Path(tmp) / "project")
        stack = PulumiStack(project, Path(tmp), "bench", bin_dir=bin_dir)
        stack.env["PULUMI_SKIP_CHECKPOINTS"] = "true"  # the adoption that sets the bench up; not measured
        for key, value in (("lattigo:endpoint", base), ("lattigo:keyName", KEY_NAME)):
            stack.set_config(key, value)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        fleet = project / "fleet.yaml"
        fleet.write_text(fleet_yaml(n))
        start = time.perf_counter()
        stack.run("up", "--yes", "--skip-preview").check()
        print(f"set-up: adopted {n} SIMs in {time.perf_counter() - start:.0f} s", flush=True)

        results = []
        fleet.write_text(fleet_yaml(n + 1))
        results.append(measure("(a) one SIM added", stack, "preview", "--diff"))
        fleet.write_text(
            fleet_yaml(
                n,
                cost_center=lambda i: "finance" if i in (1, 2) else "ops",
                note=lambda i: "north" if i in (4, 5) else "depot",
                extra=lambda i: "state: suspended" if i == 3 else "",
            )
        )
        results.append(measure("(b) 5 field changes", stack, "preview", "--diff"))
        fleet.write_text(fleet_yaml(n, cost_center=lambda i: "logistics" if i < args.moves else "ops"))
        results.append(measure(f"(c) {args.moves} cost-center moves", stack, "preview", "--diff"))

        fleet.write_text(fleet_yaml(n))
        day = admin.now()[:10]
        for i in range(n):
            admin.record_usage(iccid(i), day, 1000 + i, sms=1)
        admin.tick()
        admin.add_sims([{"iccid": iccid(7), "note": "moved to the north yard"}])
        results.append(
            measure(
                "(d) drift check: 1 real drift after a day of usage",
                stack,
                "preview",
                "--expect-no-changes",
                "--diff",
                expect_failure=True,
            )
        )

        print("\n| case | command | characters | lines | wall |\n| --- | --- | --- | --- | --- |")
        for r in results:
            print(f"| {r['case']} | `{r['command']}` | {r['characters']:,} | {r['lines']:,} | {r['seconds']} s |")


if __name__ == "__main__":
    main()
