"""One account sharded over stacks: request count and wall time as the stacks run 2 at a time.

The account holds `stacks x sims` active SIMs (cost center "ops"); each stack's fleet file declares its own
slice, with 1% of its SIMs moving to cost center "logistics" (so each run reads the account and writes a
little). The stacks are stacks of one project on one shared file backend, each listing all of them in
`lattigo-fleet:siblingStacks` (so each run also reads every sibling's checkpoint), and they run
`pulumi up --yes --skip-preview` two processes at a time (a second round when everything is in sync: the
steady state). Real `pulumi` CLI (scripts/ensure-pulumi.sh) with lattigo_fleet.engine_settings.ENGINE_ENV
(set by tests/e2e/harness.PulumiStack), emulator on 127.0.0.1.

Per configuration: wall time of each stack's run and of the whole account, and API requests (reads = GET,
writes = the rest; the emulator's request log, for the whole account since stacks overlap). Writes
bench/results/shards.{md,json}.

    .venv/bin/python -m bench.shards --config 1x10000 4x2500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from devtools.pulumi_stack import REPO, PulumiStack, make_project, pulumi_bin_dir
from emulator.server import EmulatorServer
from lattigo_fleet.engine_settings import ENGINE_ENV

KEY_NAME, API_KEY = "bench-key", "bench-secret-0123456789"
RATE_PLAN = "ACME Co 5mb Rate Plan"
RESULTS = REPO / "bench" / "results"


def iccid(i: int) -> str:
    return f"8901261{i:012d}"


def imei(i: int) -> str:
    return f"35400{i:010d}"


def fleet_yaml(indices: range) -> str:
    rows = []
    for i in indices:
        cost_center = "logistics" if i % 100 == 0 else "ops"
        rows.append(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}}}\n')
    return (
        f'version: 1\ndefaults: {{rate_plan: "{RATE_PLAN}", state: active}}\n'
        f"policy: {{max_changes: 100%}}\nsims:\n{''.join(rows)}"
    )


def run_round(stacks: list[PulumiStack], emu: EmulatorServer, parallel: int, timeout: float) -> dict[str, Any]:
    emu.clear_requests()
    started = time.monotonic()
    per_stack: dict[str, float] = {}
    failed: list[str] = []
    queue = list(stacks)
    running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
    while queue or running:
        while queue and len(running) < parallel:
            stack = queue.pop(0)
            log_file = stack.project_dir.parent / f"{stack.name}.log"
            with open(log_file, "w") as out:  # a file, not a pipe: a chatty run must not block on it
                proc = subprocess.Popen(
                    ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name],
                    cwd=stack.project_dir,
                    env=stack.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running[stack.name] = (proc, time.monotonic())
        time.sleep(0.2)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                per_stack[name] = round(time.monotonic() - t0, 1)
                if proc.returncode != 0:
                    tail = (stack.project_dir.parent / f"{name}.log").read_text()[-500:]
                    failed.append(f"{name}: exit {proc.returncode}: {tail}")
                del running[name]
            elif time.monotonic() - t0 > timeout:
                proc.kill()
                failed.append(f"{name}: timed out")
    wall = round(time.monotonic() - started, 1)
    log = [r for r in emu.requests_log() if not r["path"].startswith("/_emulator")]
    writes = [r for r in log if r["method"] != "GET"]
    return {
        "wall_s": wall,
        "per_stack_s": per_stack,
        "reads": len(log) - len(writes),
        "writes": len(writes),
        "writes_by_endpoint": dict(Counter(r["path"].rsplit("/", 1)[-1] for r in writes)),
        "failed": failed,
    }


def run_config(n_stacks: int, sims: int, bin_dir: str, parallel: int = 2) -> dict[str, Any]:
    total = n_stacks * sims
    with (
        tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp,
        EmulatorServer(
            db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0, host="127.0.0.1"
        ) as emu,
    ):
        root = Path(tmp)
        for start in range(0, total, 5000):
            emu.add_sims(
                [
                    {
                        "iccid": iccid(i),
                        "imei": imei(i),
                        "state": "active",
                        "cost_center": "ops",
                        "rate_plan": RATE_PLAN,
                    }
                    for i in range(start, min(total, start + 5000))
                ]
            )
        project = make_project(root / "project")
        names = [f"shard-{k}" for k in range(n_stacks)]
        stacks = []
        for k, name in enumerate(names):
            stack = PulumiStack(project, root, name, bin_dir=bin_dir)  # one root: one shared backend
            assert all(stack.env.get(key) == value for key, value in ENGINE_ENV.items())
            stack.set_config("lattigo:endpoint", emu.base_url)
            stack.set_config("lattigo:keyName", KEY_NAME)
            stack.set_config("lattigo:apiKey", API_KEY, secret=True)
            stack.set_config("lattigo-fleet:fleetFile", f"fleet-{name}.yaml")
            if n_stacks > 1:
                stack.set_config("lattigo-fleet:siblingStacks", ",".join(names))
            (project / f"fleet-{name}.yaml").write_text(fleet_yaml(range(k * sims, (k + 1) * sims)))
            stacks.append(stack)
        timeout = 600 + 0.1 * sims
        first = run_round(stacks, emu, parallel, timeout)
        live = emu.sims()
        wrong = sum(
            1 for s in live if s.get("cost_center") != ("logistics" if int(s["iccid"][-12:]) % 100 == 0 else "ops")
        )
        steady = run_round(stacks, emu, parallel, timeout)
        state_bytes = sum(p.stat().st_size for p in (root / "backend").rglob("*.json") if "/stacks/" in str(p))
    return {
        "stacks": n_stacks,
        "sims_per_stack": sims,
        "account_sims": total,
        "parallel": parallel,
        "first": first,
        "steady": steady,
        "live_mismatches_after": wrong,
        "state_bytes": state_bytes,
    }


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [
        "# Sharded account benchmark",
        "",
        header,
        "",
        "| stacks x SIMs | account | round | wall s (account) | per stack s (min / max) | reads | writes | "
        "mismatches after |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        for key in ("first", "steady"):
            rnd = r[key]
            times = list(rnd["per_stack_s"].values()) or [0]
            lines.append(
                f"| {r['stacks']} x {r['sims_per_stack']:,} | {r['account_sims']:,} | "
                f"{'1% changed' if key == 'first' else 'in sync'} | {rnd['wall_s']} | {min(times)} / "
                f"{max(times)} | {rnd['reads']:,} | {rnd['writes']:,} | "
                f"{r['live_mismatches_after'] if key == 'first' else ''} |"
            )
            if rnd["failed"]:
                lines.append(f"|  |  | failed: {'; '.join(rnd['failed'])[:300]} |  |  |  |  |  |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=["1x10000", "4x2500"], help="STACKSxSIMS, e.g. 10x10000")
    parser.add_argument("--parallel", type=int, default=2, help="stacks running at once")
    args = parser.parse_args(argv)
    bin_dir = pulumi_bin_dir()
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    header = (
        f"Real `pulumi` CLI, one shared file backend, emulator on 127.0.0.1, engine settings "
        f"{' '.join(f'{k}={v}' for k, v in ENGINE_ENV.items())}; {os.cpu_count()} CPUs (shared machine, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}. {args.parallel} stacks at a time; "
        "each round: every stack's `pulumi up --yes --skip-preview`. One run each."
    )
    results = []
    for config in args.config:
        n_stacks, sims = (int(x) for x in config.lower().split("x"))
        print(f"--- {n_stacks} stacks x {sims} SIMs", flush=True)
        result = run_config(n_stacks, sims, bin_dir, args.parallel)
        print(json.dumps(result), flush=True)
        results.append(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shards.json").write_text(json.dumps({"header": header, "results": results}, indent=2))
    text = markdown(results, header)
    (RESULTS / "shards.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
