"""The fleet table: what a user's runs cost at 1,000 and 10,000 SIMs (loopback only, every command bounded).

For each size, one stack on a file backend, the real `pulumi` CLI (pinned, scripts/ensure-pulumi.sh) with the
engine settings of lattigo_fleet.engine_settings.ENGINE_ENV (tests/e2e/harness.PulumiStack sets them), the
emulator on 127.0.0.1, and these runs in order:

1. first adoption: every SIM already active in the account (cost center "ops", a note); fleet.yaml declares
   them with the same values (cost center through a group, rate plan and state through defaults): `up`.
2. no-change `preview --expect-no-changes`.
3. drift check after a day of usage on every SIM (admin usage + tick) with 3 out-of-band changes (a note, a
   cost center, a suspension): `preview --expect-no-changes --diff`, which must fail; then the 3 are put back.
4. `up` with 1% of the SIMs changed: 40% move to cost center "finance", 30% to "logistics", 20% get a new
   note, 10% are suspended (policy max_changes: 100%).
5. `up` with another 10% changed, same mix.
6. 100 activations: 100 new ICCIDs in the account's inventory and in fleet.yaml: `up`.

Beside runs 1 and 2, the baseline: a throwaway program of N trivial dynamic resources (bench/trivial.py), in
its own stack with the same CLI, engine settings and provider host, measured the same way just before ours: its
first `up` (creating the N) and its no-change `preview --expect-no-changes`. The table gives ours / trivial for
wall time and CPU seconds (target: ≤ 0.6× for the no-change preview at 10,000 SIMs). `--no-trivial` skips it.

Per run: wall time; CPU seconds and peak RSS of the engine (`pulumi`), the program (the language host's
`pulumi-language-python-exec`) and the dynamic-provider host (`lattigo_fleet.provider_host`), sampled every
0.2 s from /proc (bench/proctree.py), and the CPU seconds of all its processes together (those three and the
rest: the Go language host, launchers); the 1-minute load average at its start and end (the machine is shared);
API requests from the emulator's request log (reads = GET, writes = the rest) beside the floor (fewest the API
allows) and a naive client's count; state bytes per SIM (the stack's checkpoint file / N). Writes
bench/results/fleet.{md,json} and prints the Markdown.

    .venv/bin/python -m bench.fleet [--sims 1000 10000] [--no-trivial]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import trivial
from bench.account import API_KEY, KEY_NAME, RATE_PLAN, apply_mix, floor_reads, floor_writes, iccid, imei
from bench.proctree import TreeSampler
from devtools.pulumi_stack import REPO, PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.engine_settings import ENGINE_ENV

RESULTS = REPO / "bench" / "results"
NEW_SIMS = 100
SCENARIOS = (
    "first adoption",
    "no-change preview",
    "drift check (day of usage, 3 drifts)",
    "up, 1% changed",
    "up, 10% changed",
    "100 activations",
)
# The targets. Wall times apply at 10,000 SIMs; the others at every size.
WALL_TARGET_S = {10000: {SCENARIOS[0]: 180, SCENARIOS[1]: 90, SCENARIOS[2]: 120, SCENARIOS[3]: 120}}
# Ours / the trivial program's, for wall time and CPU seconds (bench/trivial.py), at 10,000 SIMs.
TRIVIAL_RATIO_TARGET = {10000: {SCENARIOS[1]: 0.6}}
# The trivial program's runs, each beside one of ours: (ours, its own name, its command).
TRIVIAL_RUNS = (
    (SCENARIOS[0], "first up", ("up", "--yes", "--skip-preview")),
    (SCENARIOS[1], "no-change preview", ("preview", "--expect-no-changes")),
)
RSS_TARGET_MB = 1500  # all processes together, 1.5 GB
STATE_TARGET_B = 1500  # per SIM, 1.5 kB
WRITES_X, READS_X = 1.5, 2.0
ROLES = ("engine", "program", "provider")


def role(pid: int, root: int, cmdline: str) -> str:
    if pid == root:
        return "engine"
    if "pulumi-language-python-exec" in cmdline:
        return "program"
    if "lattigo_fleet.provider_host" in cmdline or "pulumi.dynamic" in cmdline:
        return "provider"
    return "other"  # the Go language host, the plugin's shell launcher before its exec, helpers


# --- the account and fleet.yaml ---------------------------------------------------------------------------


@dataclass
class Fleet:
    """fleet.yaml as the bench wants it: N adopted SIMs (group "depot" = cost center ops) plus overrides."""

    n: int
    cost_center: dict[int, str] = field(default_factory=dict)
    note: dict[int, str] = field(default_factory=dict)
    suspended: set[int] = field(default_factory=set)
    new: int = 0  # SIMs n .. n+new-1, activated from inventory

    @property
    def declared(self) -> int:
        return self.n + self.new

    def yaml(self) -> str:
        lines = [
            "version: 1",
            f'defaults: {{rate_plan: "{RATE_PLAN}", state: active}}',
            "groups:",
            "  depot: {cost_center: ops}",
            "policy: {max_changes: 100%}",
            "sims:",
        ]
        for i in range(self.n):
            extra = ""
            if i in self.cost_center:
                extra += f", cost_center: {self.cost_center[i]}"
            if i in self.suspended:
                extra += ", state: suspended"
            lines.append(
                f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: unit-{i:05d}, group: depot, '
                f'notes: {{note: "{self.note.get(i, original_note(i))}"}}{extra}}}'
            )
        for i in range(self.n, self.n + self.new):
            lines.append(
                f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: unit-{i:05d}, rate_plan: "{RATE_PLAN}"}}'
            )
        return "\n".join(lines) + "\n"

    def change(self, indices: list[int]) -> Counter[tuple[str, str]]:
        """Apply the mix to these SIMs; returns the known changes, keyed by (call, parameter)."""
        return apply_mix(indices, self.cost_center, self.note, self.suspended)

    def expected(self, i: int) -> dict[str, str]:
        return {
            "cost_center": self.cost_center.get(i, "ops"),
            "note": self.note.get(i, original_note(i)),
            "state": "suspended" if i in self.suspended else "active",
        }


def original_note(i: int) -> str:
    return f"unit {i}"


def day_of_usage(admin: AdminClient, n: int) -> None:
    """A day of usage on SIMs 0..n-1 (eight at a time), then the roll-up."""
    day = admin.now()[:10]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: admin.record_usage(iccid(i), day, 1_000_000 + i, sms=1), range(n)))
    admin.tick()


def mismatches(admin: AdminClient, fleet: Fleet) -> int:
    """SIMs whose live fields differ from what the fleet declares; new SIMs that are not active."""
    live = admin.sims()
    wrong = 0
    for i in range(fleet.n):
        sim = live.get(iccid(i)) or {}
        want = fleet.expected(i)
        wrong += any(str(sim.get(k)) != v for k, v in want.items())
    for i in range(fleet.n, fleet.declared):
        wrong += (live.get(iccid(i)) or {}).get("state") != "active"
    return wrong


# --- one measured command --------------------------------------------------------------------------------

_ID = re.compile(r"/\d{5,}(?=/|$)")


def endpoint(req: dict[str, Any]) -> str:
    return f"{req['method']} {_ID.sub('/{id}', req['path'])}"


def devices_in(req: dict[str, Any]) -> int:
    body = req.get("body")
    if not isinstance(body, dict):
        return 1
    for key in ("device_names", "activation_requests", "suspension_requests"):
        if isinstance(body.get(key), list):
            return len(body[key])
    return 1


def checkpoint_bytes(root: Path, stack: str) -> int:
    files = [
        p
        for p in (root / "backend" / ".pulumi" / "stacks").rglob(f"{stack}.json*")
        if not p.name.endswith(".bak") and ".bak" not in p.suffixes
    ]
    return max((p.stat().st_size for p in files), default=0)


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def run_sampled(stack: PulumiStack, args: tuple[str, ...], timeout: float) -> tuple[dict[str, Any], str, str]:
    """Run one `pulumi` command, sampling its process tree: the figures every row carries, stdout, stderr."""
    argv = ["pulumi", *args, "--stack", stack.name, "--non-interactive"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        load_start = load_1m()
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=stack.project_dir, env=stack.env, stdout=out, stderr=err, start_new_session=True
        )
        sampler = TreeSampler(proc.pid, classify=role)
        try:
            while proc.poll() is None:
                sampler.sample()
                if time.perf_counter() - start > timeout:
                    raise TimeoutError(f"pulumi {' '.join(args)}: over {timeout:.0f} s")
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        wall = time.perf_counter() - start
        load_end = load_1m()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    procs = sampler.by_role()
    figures = {
        "command": "pulumi " + " ".join(args),
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "output_lines": len(stdout.splitlines()),
        "processes": {r: procs.get(r, {"cpu_s": 0.0, "peak_rss_mb": 0.0, "processes": 0}) for r in (*ROLES, "other")},
        "cpu_s_total": round(sum(p["cpu_s"] for p in procs.values()), 2),  # every process of the run
        "peak_rss_mb_three_sum_of_peaks": round(sum(procs.get(r, {}).get("peak_rss_mb", 0.0) for r in ROLES), 1),
        "peak_rss_mb_three_together_sampled": round(
            sampler.peak_together_kb.get("engine+program+provider", 0) * 1024 / 1e6, 1
        ),
        # Every process of the run at the same moment (the target: what a runner must hold at once).
        "peak_rss_mb_all_together_sampled": round(sampler.peak_together_kb.get("all", 0) * 1024 / 1e6, 1),
        "samples": sampler.samples,
        "loadavg_1m": {"start": load_start, "end": load_end},
    }
    return figures, stdout, stderr


def report_run(label: str, row: dict[str, Any], stdout: str, stderr: str, detail: str = "") -> None:
    """One line per run as it ends; the output's tails when it did not end as expected (kept in the row)."""
    load = row["loadavg_1m"]
    print(
        f"{label}: exit {row['exit_code']}, {row['wall_s']:.1f} s, {row['cpu_s_total']:.1f} CPU-s, "
        f"load {load['start']:.2f} -> {load['end']:.2f}{detail}, {json.dumps(row['processes'])}",
        flush=True,
    )
    if not row["as_expected"]:
        row["stdout_tail"], row["stderr_tail"] = stdout[-4000:], stderr[-2000:]
        print(f"--- stdout tail\n{stdout[-3000:]}\n--- stderr tail\n{stderr[-1500:]}", flush=True)


def measure(
    *,
    n: int,
    scenario: str,
    stack: PulumiStack,
    root: Path,
    admin: AdminClient,
    fleet: Fleet,
    args: tuple[str, ...],
    known: Counter[tuple[str, str]],
    expect_ok: bool,
    timeout: float,
) -> dict[str, Any]:
    admin.clear_requests()
    print(f"[{n}] {scenario}: pulumi {' '.join(args)} ...", flush=True)
    figures, stdout, stderr = run_sampled(stack, args, timeout)
    log = admin.api_requests()
    reads = [r for r in log if r["method"] == "GET"]
    writes = [r for r in log if r["method"] != "GET"]
    row = {
        "sims": n,
        "scenario": scenario,
        **figures,
        "as_expected": (figures["exit_code"] == 0) == expect_ok,
        "requests": {
            "reads": len(reads),
            "writes": len(writes),
            "floor_reads": floor_reads(fleet.declared),
            "floor_writes": floor_writes(known),
            "naive_reads": fleet.declared,
            "naive_writes": sum(known.values()),
            "known_changes": {f"{call} {param}": c for (call, param), c in sorted(known.items())},
            "by_endpoint": dict(Counter(endpoint(r) for r in log).most_common()),
            "devices_by_write_endpoint": dict(sum((Counter({endpoint(r): devices_in(r)}) for r in writes), Counter())),
            "statuses": dict(Counter(str(r.get("status")) for r in log)),
        },
        "state_bytes_per_sim": round(checkpoint_bytes(root, stack.name) / fleet.declared, 1),
    }
    report_run(f"[{n}] {scenario}", row, stdout, stderr, f", {len(reads)} reads, {len(writes)} writes")
    return row


def trivial_stack(root: Path, n: int, bin_dir: str) -> PulumiStack:
    """The trivial program's own project and stack under `root`; its processes import bench.trivial."""
    project = make_project(root / "project", main_py=trivial.program(n), name="bench-trivial")
    stack = PulumiStack(project, root, "bench", bin_dir=bin_dir)
    assert all(stack.env.get(k) == v for k, v in ENGINE_ENV.items()), "engine settings missing"
    stack.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(trivial.ROOT), stack.env.get("PYTHONPATH")) if p)
    return stack


def measure_trivial(
    *, n: int, beside: str, scenario: str, stack: PulumiStack, args: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    label = f"[{n}] trivial, {scenario}"
    print(f"{label}: pulumi {' '.join(args)} ...", flush=True)
    figures, stdout, stderr = run_sampled(stack, args, timeout)
    row = {
        "sims": n,
        "scenario": f"trivial: {scenario}",
        "beside": beside,
        **figures,
        "as_expected": figures["exit_code"] == 0,
        "state_bytes_per_resource": round(checkpoint_bytes(stack.root, stack.name) / n, 1),
    }
    report_run(label, row, stdout, stderr)
    return row


def ratio(ours: float, base: float) -> float | None:
    return round(ours / base, 2) if base else None


def vs_trivial(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Ours against the trivial program's run beside it: both figures and ours / trivial."""
    return {
        "trivial_scenario": base["scenario"],
        "trivial_wall_s": base["wall_s"],
        "trivial_cpu_s_total": base["cpu_s_total"],
        "wall_ratio": ratio(ours["wall_s"], base["wall_s"]),
        "cpu_s_ratio": ratio(ours["cpu_s_total"], base["cpu_s_total"]),
    }


def run_size(
    n: int, bin_dir: str, with_trivial: bool = True, *, first_two: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Our rows at size n and the trivial program's beside them (none without `with_trivial`). `first_two`: the
    first adoption and the no-change preview only (the 20,000-SIM memory and linearity check)."""
    timeout = 600 + 0.3 * n
    rows: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp,
        EmulatorServer(
            db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0, host="127.0.0.1"
        ) as emu,
    ):
        root = Path(tmp)
        admin = AdminClient(emu.base_url)
        admin.add_sims(
            [
                {
                    "iccid": iccid(i),
                    "imei": imei(i),
                    "state": "active",
                    "cost_center": "ops",
                    "note": original_note(i),
                    "rate_plan": RATE_PLAN,
                }
                for i in range(n)
            ]
        )
        project = make_project(root / "project")
        stack = PulumiStack(project, root, "bench", bin_dir=bin_dir)
        assert all(stack.env.get(k) == v for k, v in ENGINE_ENV.items()), "engine settings missing"
        stack.set_config("lattigo:endpoint", emu.base_url)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        fleet = Fleet(n)
        fleet_file = project / "fleet.yaml"
        base_stack = trivial_stack(root / "trivial", n, bin_dir) if with_trivial else None
        base_runs = {ours: (name, args) for ours, name, args in TRIVIAL_RUNS}

        def step(scenario: str, args: tuple[str, ...], known: Counter[tuple[str, str]], expect_ok: bool = True) -> bool:
            base = None
            # The trivial program's run just before ours (its preview only after its up made the resources).
            if base_stack is not None and scenario in base_runs and all(b["as_expected"] for b in baseline):
                name, base_args = base_runs[scenario]
                base = measure_trivial(
                    n=n, beside=scenario, scenario=name, stack=base_stack, args=base_args, timeout=timeout
                )
                baseline.append(base)
            fleet_file.write_text(fleet.yaml())
            row = measure(
                n=n,
                scenario=scenario,
                stack=stack,
                root=root,
                admin=admin,
                fleet=fleet,
                args=args,
                known=known,
                expect_ok=expect_ok,
                timeout=timeout,
            )
            if args[0] == "up":
                row["live_mismatches_after"] = mismatches(admin, fleet)
            if base is not None and base["as_expected"]:
                row["vs_trivial"] = vs_trivial(row, base)
            rows.append(row)
            as_expected: bool = row["as_expected"]
            return as_expected

        up = ("up", "--yes", "--skip-preview")
        if not step(SCENARIOS[0], up, Counter()):
            return rows, baseline
        if not step(SCENARIOS[1], ("preview", "--expect-no-changes"), Counter()) or first_two:
            return rows, baseline
        day_of_usage(admin, n)
        drift = [
            {"iccid": iccid(7), "note": "moved to the north yard"},
            {"iccid": iccid(8), "cost_center": "finance"},
            {"iccid": iccid(9), "state": "suspended"},
        ]
        admin.add_sims(drift)
        ok = step(SCENARIOS[2], ("preview", "--expect-no-changes", "--diff"), Counter(), expect_ok=False)
        admin.add_sims(
            [
                {"iccid": iccid(7), "note": original_note(7)},
                {"iccid": iccid(8), "cost_center": "ops"},
                {"iccid": iccid(9), "state": "active"},
            ]
        )  # put back: the next rows change only what they say
        if not ok:
            return rows, baseline
        one = [i for i in range(n) if i % 100 == 50]  # 1%, spread over the fleet
        if not step(SCENARIOS[3], up, fleet.change(one)):
            return rows, baseline
        ten = [i for i in range(n) if i % 10 == 3]  # another 10%, disjoint from the 1%
        if not step(SCENARIOS[4], up, fleet.change(ten)):
            return rows, baseline
        admin.add_sims([{"iccid": iccid(i), "imei": imei(i)} for i in range(n, n + NEW_SIMS)])
        fleet.new = NEW_SIMS
        step(SCENARIOS[5], up, Counter({("activation_request", RATE_PLAN): NEW_SIMS}))
    return rows, baseline


# --- the table -------------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "✅" if ok else "❌"


def _exit(row: dict[str, Any]) -> str:
    return f"{row['exit_code']}{'' if row['as_expected'] else ' ⚠️ unexpected'}"


def _load(row: dict[str, Any]) -> str:
    return f"{row['loadavg_1m']['start']:.2f} → {row['loadavg_1m']['end']:.2f}"


def _procs(row: dict[str, Any]) -> list[str]:
    return [f"{row['processes'][r]['cpu_s']:.1f} s / {row['processes'][r]['peak_rss_mb']:.0f}" for r in ROLES]


def _ratio(value: float | None, target: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.2f}×"
    return f"{text} (≤ {target} {_met(value <= target)})" if target else text


def trivial_table(report: dict[str, Any]) -> list[str]:
    """Each of the trivial program's runs beside ours, with ours / trivial for wall time and CPU seconds."""
    if not report.get("trivial"):
        return []
    ours = {(r["sims"], r["scenario"]): r for r in report["rows"]}
    out = [
        "",
        "## Beside a trivial program",
        "",
        "The same CLI, engine settings and provider host running a throwaway program of as many trivial dynamic "
        "resources (bench/trivial.py: `create` echoes two small strings; the SDK's defaults), in its own stack, "
        "measured the same way just before ours: its first `up` beside our first adoption, its no-change "
        "preview beside ours. Per process as above; *all*: CPU seconds of every process of the run. Ratios: "
        "ours / trivial.",
        "",
        "| SIMs | beside our | trivial exit | trivial wall s | engine | program | provider | trivial CPU-s all "
        "| trivial load 1m | our wall s | our CPU-s all | wall ours/trivial | CPU-s ours/trivial |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for base in report["trivial"]:
        n, sc = base["sims"], base["beside"]
        mine = ours.get((n, sc))
        target = TRIVIAL_RATIO_TARGET.get(n, {}).get(sc)
        if mine is not None and mine["as_expected"] and base["as_expected"]:
            compared = vs_trivial(mine, base)
            theirs = f"{mine['wall_s']:.1f} | {mine['cpu_s_total']:.1f}"
            ratios = f"{_ratio(compared['wall_ratio'], target)} | {_ratio(compared['cpu_s_ratio'], target)}"
        else:
            theirs = ratios = "— | —"
        out.append(
            f"| {n:,} | {sc} | {_exit(base)} | {base['wall_s']:.1f} | {' | '.join(_procs(base))} "
            f"| {base['cpu_s_total']:.1f} | {_load(base)} | {theirs} | {ratios} |"
        )
    out += [
        "",
        "Trivial commands: "
        + "; ".join(
            f"{sc}: `{cmd}`"
            for sc, cmd in dict(
                (b["scenario"].removeprefix("trivial: "), b["command"]) for b in report["trivial"]
            ).items()
        )
        + ".",
    ]
    return out


def linearity(report: dict[str, Any]) -> list[str]:
    """Seconds and CPU-seconds per 1,000 SIMs of the no-change preview at each size: linear time is a flat line."""
    rows = [r for r in report["rows"] if r["scenario"] == SCENARIOS[1] and r["as_expected"]]
    if len(rows) < 2:
        return []
    cells = ", ".join(
        f"{r['sims']:,} SIMs: {1000 * r['wall_s'] / r['sims']:.2f} s and "
        f"{1000 * r['cpu_s_total'] / r['sims']:.2f} CPU-s"
        for r in rows
    )
    return ["", f"No-change preview per 1,000 SIMs (linear time is the same figure at every size): {cells}."]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        "# Fleet benchmark",
        "",
        f"Real `pulumi` {m['pulumi']} CLI, file backend, emulator on 127.0.0.1, engine settings "
        f"{' '.join(f'{k}={v}' for k, v in m['engine_env'].items())}; {m['cpus']} CPUs "
        f"(shared machine, load average {m['loadavg']} at the start), Python {m['python']}, {m['date']}. "
        "Figures as measured, one run each.",
        "",
        "Per process: CPU seconds / peak RSS in MB (VmHWM, sampled every 0.2 s). *CPU-s all*: CPU seconds of "
        "every process of the run (the three and the rest). *Together*: the peak of every process of the run at "
        "once (sampled; target: ≤ 1,500 MB) / the sum of the three processes' own peaks (an upper bound). "
        "Requests: ours / floor / naive (targets: writes ≤ 1.5× floor, reads ≤ 2× floor). State: "
        "checkpoint bytes / SIM (target ≤ 1,500). *Load 1m*: the 1-minute load average at the run's start → "
        "end. Wall-time targets apply at 10,000 SIMs.",
        "",
        "| SIMs | scenario | exit | wall s | engine | program | provider | CPU-s all | together MB | writes "
        "| reads | state B/SIM | output lines | load 1m |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        n, sc, rq = row["sims"], row["scenario"], row["requests"]
        wall_target = WALL_TARGET_S.get(n, {}).get(sc)
        wall = f"{row['wall_s']:.1f}"
        if wall_target:
            wall += f" (≤ {wall_target} {_met(row['wall_s'] <= wall_target)})"
        together = row.get("peak_rss_mb_all_together_sampled", row["peak_rss_mb_three_sum_of_peaks"])
        peaks = row["peak_rss_mb_three_sum_of_peaks"]
        w_ok = rq["writes"] <= WRITES_X * rq["floor_writes"]
        r_ok = rq["reads"] <= READS_X * rq["floor_reads"]
        state = row["state_bytes_per_sim"]
        out.append(
            f"| {n:,} | {sc} | {_exit(row)} | {wall} | {' | '.join(_procs(row))} | {row['cpu_s_total']:.1f} "
            f"| {together:,.0f} / {peaks:,.0f} {_met(together <= RSS_TARGET_MB)} "
            f"| {rq['writes']:,} / {rq['floor_writes']:,} / {rq['naive_writes']:,} {_met(w_ok)} "
            f"| {rq['reads']:,} / {rq['floor_reads']:,} / {rq['naive_reads']:,} {_met(r_ok)} "
            f"| {state:,.0f} {_met(state <= STATE_TARGET_B)} | {row['output_lines']:,} | {_load(row)} |"
        )
    out += [
        "",
        "Commands: "
        + "; ".join(
            f"{i + 1}. {sc}: `{cmd}`"
            for i, (sc, cmd) in enumerate(dict((r["scenario"], r["command"]) for r in report["rows"]).items())
        )
        + ".",
    ]
    out += linearity(report)
    out += trivial_table(report)
    out += ["", "Writes by endpoint (requests / devices) where there were any:", ""]
    for row in report["rows"]:
        devs = row["requests"]["devices_by_write_endpoint"]
        if devs:
            calls = ", ".join(f"`{e}` {row['requests']['by_endpoint'][e]} / {d}" for e, d in devs.items())
            out.append(f"- {row['sims']:,}, {row['scenario']}: {calls}")
    return "\n".join(out) + "\n"


def machine(bin_dir: str) -> dict[str, Any]:
    version = subprocess.run(
        [str(Path(bin_dir) / "pulumi"), "version"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    return {
        "pulumi": version,
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "engine_env": dict(ENGINE_ENV),
    }


def write(report: dict[str, Any], out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out_dir / "fleet.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--scale-sims",
        type=int,
        nargs="*",
        default=[20000],
        help="sizes measured by their first adoption and no-change preview only (memory, linear time)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--trivial",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the trivial program beside runs 1 and 2 (default: yes)",
    )
    args = parser.parse_args(argv)
    bin_dir = pulumi_bin_dir()
    report: dict[str, Any] = {"machine": machine(bin_dir), "rows": [], "trivial": []}
    sizes = [(n, False) for n in args.sims] + [(n, True) for n in args.scale_sims or [] if n not in args.sims]
    for n, first_two in sizes:
        rows, baseline = run_size(n, bin_dir, with_trivial=args.trivial and not first_two, first_two=first_two)
        report["rows"] += rows
        report["trivial"] += baseline
        write(report, args.out)  # after every size: a long run keeps what it measured
    print(write(report, args.out), flush=True)
    if not all(r["as_expected"] for r in report["rows"] + report["trivial"]):
        raise SystemExit("some runs did not end as expected: see the table and fleet.json")


if __name__ == "__main__":
    main()
