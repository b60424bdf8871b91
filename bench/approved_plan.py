"""The approved plan at the size users run it: a 5,000-SIM account, a pull request that moves 200 SIMs to
another cost center and suspends 20, through the real pulumi CLI and `lattigo-fleet plan` / `apply`, against
the emulator (loopback only).

Measures the plan document's size, the time `lattigo-fleet plan --out` takes, and the merge:
(c) nothing moved in between: `apply --plan` against a plain `pulumi up` of the same change (what the merge's
check adds), with the account's requests; (a) a SIM the pull request touches moved in the account: refused,
with its requests; (b) a SIM it does not touch moved: refused in strict mode, healed in heal mode.
The machine's load is printed beside the figures.

    .venv/bin/python -m bench.approved_plan [--sims 5000] [--moves 200] [--suspends 20] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.account import API_KEY, KEY_NAME, RATE_PLAN, iccid, imei
from devtools.pulumi_stack import REPO, PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer


def fleet_yaml(sims: int, moved: set[int], suspended: set[int]) -> str:
    lines = ["version: 1", f'defaults: {{rate_plan: "{RATE_PLAN}"}}', "policy: {max_changes: 100%}", "sims:"]
    for i in range(sims):
        extra = ", state: suspended" if i in suspended else ""
        cost_center = "logistics" if i in moved else "ops"
        lines.append(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}{extra}}}')
    return "\n".join(lines) + "\n"


def requests_since(admin: AdminClient) -> dict[str, int]:
    counts = Counter("writes" if r["method"] != "GET" else "reads" for r in admin.api_requests())
    return {"reads": counts["reads"], "writes": counts["writes"]}


class Bench:
    def __init__(self, stack: PulumiStack, admin: AdminClient) -> None:
        self.stack, self.admin = stack, admin

    def cli(self, *args: str) -> tuple[int, float, str]:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "lattigo_fleet.cli", *args, "--stack", self.stack.name],
            cwd=self.stack.project_dir,
            env={**self.stack.env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        return proc.returncode, time.perf_counter() - start, proc.stdout + proc.stderr

    def plan(self, name: str) -> tuple[Path, float]:
        path = self.stack.project_dir / name
        code, took, output = self.cli("plan", "--out", str(path))
        assert code == 0, output[-3000:]
        return path, took

    def apply(self, path: Path) -> tuple[int, float, dict[str, int]]:
        self.admin.clear_requests()
        code, took, _output = self.cli("apply", "--plan", str(path))
        return code, took, requests_since(self.admin)

    def plain_up(self) -> tuple[float, dict[str, int]]:
        self.admin.clear_requests()
        start = time.perf_counter()
        self.stack.run("up", "--yes", "--skip-preview").check()
        return time.perf_counter() - start, requests_since(self.admin)


def revert(admin: AdminClient, moved: set[int], suspended: set[int]) -> None:
    """Put the account back to before the pull request (as if it had not been applied)."""
    admin.add_sims(
        [{"iccid": iccid(i), "cost_center": "ops"} for i in moved]
        + [{"iccid": iccid(i), "state": "active"} for i in suspended],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--suspends", type=int, default=20)
    parser.add_argument("--out", help="also write the figures as Markdown here")
    args = parser.parse_args(argv)
    moved = set(range(0, args.moves * 2, 2))
    suspended = set(range(1, args.suspends * 2, 2))
    untouched = args.sims - 1
    rows: list[tuple[str, str]] = []

    def report(label: str, value: str) -> None:
        print(f"{label}: {value}", flush=True)
        rows.append((label, value))

    load = os.getloadavg()
    report("machine", f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start")
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorServer(db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0) as emu,
    ):
        base = emu.base_url
        admin = AdminClient(base)
        admin.add_sims(
            [{"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"} for i in range(args.sims)]
        )
        project = make_project(Path(tmp) / "project")
        stack = PulumiStack(project, Path(tmp), "bench", bin_dir=pulumi_bin_dir())
        stack.set_config("lattigo:endpoint", base)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        (project / "fleet.yaml").write_text(fleet_yaml(args.sims, set(), set()))
        stack.run("up", "--yes", "--skip-preview").check()  # adopt the account
        bench = Bench(stack, admin)
        (project / "fleet.yaml").write_text(fleet_yaml(args.sims, moved, suspended))
        report("fleet", f"{args.sims:,} SIMs; the pull request moves {args.moves} and suspends {args.suspends}")

        # The plan document and its cost.
        path, took = bench.plan("plan-c.json")
        raw = path.read_bytes()
        report(
            "plan document",
            f"{len(raw):,} bytes ({len(gzip.compress(raw)):,} gzipped), {len(json.loads(raw)['sims'])} SIMs",
        )
        report("`lattigo-fleet plan --out` (preview + comment + document)", f"{took:.1f} s")

        # (c) nothing moved: apply the approved plan; then the same change by a plain `pulumi up`.
        code, took_apply, counts = bench.apply(path)
        assert code == 0, code
        report(
            "(c) `apply --plan`, nothing moved in between",
            f"{took_apply:.1f} s, {counts['reads']} reads, {counts['writes']} writes",
        )
        revert(admin, moved, suspended)
        took_plain, plain = bench.plain_up()
        report(
            "(c) plain `pulumi up` of the same change",
            f"{took_plain:.1f} s, {plain['reads']} reads, {plain['writes']} writes",
        )
        report(
            "the merge's check adds", f"{took_apply - took_plain:+.1f} s, {counts['reads'] - plain['reads']:+d} reads"
        )

        # (a) a SIM the pull request touches moved in the account between plan and merge.
        revert(admin, moved, suspended)
        path, _ = bench.plan("plan-a.json")
        admin.add_sims([{"iccid": iccid(min(moved)), "cost_center": "warehouse"}])
        code, took, counts = bench.apply(path)
        assert code == 3, code
        report(
            "(a) `apply --plan`, a touched SIM moved: refused (exit 3)",
            f"{took:.1f} s, {counts['reads']} reads, {counts['writes']} writes",
        )

        # (b) a SIM the pull request does not touch moved: strict refuses, heal applies and heals.
        admin.add_sims([{"iccid": iccid(min(moved)), "cost_center": "ops"}])
        path, _ = bench.plan("plan-b.json")
        admin.add_sims([{"iccid": iccid(untouched), "state": "suspended"}])
        code, took, counts = bench.apply(path)
        assert code == 3, code
        report(
            "(b) strict, an untouched SIM moved: refused (exit 3)",
            f"{took:.1f} s, {counts['reads']} reads, {counts['writes']} writes",
        )
        stack.set_config("lattigo-fleet:mergeMode", "heal")
        code, took, counts = bench.apply(path)
        assert code == 0, code
        report(
            "(b) heal, the same: applied and healed",
            f"{took:.1f} s, {counts['reads']} reads, {counts['writes']} writes",
        )
    load = os.getloadavg()
    report("machine at the end", f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    if args.out:
        text = "| measure | figure |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
        Path(args.out).write_text(f"# Approved plan, {args.sims:,} SIMs\n\n`python -m bench.approved_plan`\n\n{text}")


if __name__ == "__main__":
    main()
