"""One account as many stacks, run the way a CI matrix runs them: K jobs at a time, each measured.

The account holds `stacks x sims` active SIMs (100,000 as 20 x 5,000 by default). The repository is one project
with a stack per slice: `Pulumi.<stack>.yaml` sets `lattigo-fleet:fleetFile` to `fleets/<stack>.yaml`, and all
stacks share one state backend (a file backend here, S3 for a team: docs/teams.md). Each job is one process
tree, as one runner of a matrix runs it, and runs K at a time on this box (K=2 on 2 cores: each job has about
one core, half of what a 2-core runner of its own gives it). Rounds:

1. **adopt**: every stack's first `pulumi up` (all its SIMs already in the account).
2. **nightly drift**: one `lattigo-fleet snapshot` job reads the account, then every stack's
   `lattigo-fleet drift --account-snapshot` from it (two stacks have a SIM changed out of band).
3. **pull request touching 2 of 20 stacks**: the snapshot job, then `lattigo-fleet plan --account-snapshot` for
   the two changed stacks only.
4. **merge of a 10% change spread over every stack** under an account limit of LIMIT requests/s (the
   emulator's rate limit): every stack's `pulumi up`, with the account's request budget split between the K
   jobs that run at once (LATTIGO_FLEET_REQUESTS_PER_SECOND, LATTIGO_FLEET_BUDGET_SHARES = K).

Per job: wall time, CPU seconds and peak RSS of all its processes together (sampled every 0.2 s from /proc,
bench/proctree.py), exit code. Per round: the account's requests (reads = GET, writes, 429s) from the
emulator's log, the writes' floor, the wall time here (K at a time) and on one runner per job (the snapshot
job, then the longest job: the figure of a 20-runner matrix, an upper bound since each job here shared its
cores). Writes bench/results/shards.{md,json}.

    .venv/bin/python -m bench.shards [--stacks 20] [--sims 5000] [--parallel 2] [--limit 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.account import API_KEY, KEY_NAME, RATE_PLAN, apply_mix, floor_writes, iccid, imei
from bench.proctree import TreeSampler
from devtools.pulumi_stack import REPO, PulumiStack, make_project, pulumi_bin_dir
from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from lattigo_fleet.client.lattigo import PER_PAGE
from lattigo_fleet.engine_settings import ENGINE_ENV

RESULTS = REPO / "bench" / "results"
SEED_CHUNK = 10_000
DRIFTED_STACKS = 2
CHANGED_STACKS = 2
# The targets (bench figures, not tests).
DRIFT_JOB_TARGET_S = 300
PR_TARGET_S = 180
JOB_MEMORY_TARGET_MB = 1000


@dataclass
class Job:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    expect: tuple[int, ...] = (0,)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mb: float = 0.0
    exit_code: int | None = None
    tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code in self.expect


def run_job(job: Job, timeout: float) -> Job:
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            job.argv, cwd=job.cwd, env=job.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = TreeSampler(proc.pid)
        while proc.poll() is None:
            sampler.sample()
            if time.perf_counter() - start > timeout:
                proc.kill()
            time.sleep(0.2)
        job.wall_s = round(time.perf_counter() - start, 1)
        job.exit_code = proc.returncode
        job.cpu_s = round(sum(p.cpu_s for p in sampler.procs.values()), 1)
        job.peak_mb = round(sampler.peak_together_kb.get("all", 0) * 1024 / 1e6, 1)
        out.seek(0)
        text = out.read().decode(errors="replace")
        job.tail = "" if job.ok else text[-3000:]
    print(f"  {job.name}: exit {job.exit_code}, {job.wall_s} s, {job.cpu_s} CPU-s, {job.peak_mb} MB", flush=True)
    return job


def run_matrix(jobs: list[Job], parallel: int, timeout: float) -> float:
    """Run the jobs `parallel` at a time (a matrix's max-parallel); the round's wall time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda job: run_job(job, timeout), jobs))
    return round(time.perf_counter() - start, 1)


@dataclass
class Account:
    stacks: int
    sims: int
    cost_center: dict[int, str] = field(default_factory=dict)
    note: dict[int, str] = field(default_factory=dict)
    suspended: set[int] = field(default_factory=set)
    # Stack -> the changes its fleet file holds that no `up` has applied yet (a pull request's plan applies none).
    unapplied: dict[int, Counter[tuple[str, str]]] = field(default_factory=dict)

    def slice(self, s: int) -> range:
        return range(s * self.sims, (s + 1) * self.sims)

    def fleet_yaml(self, s: int) -> str:
        rows = []
        for i in self.slice(s):
            extra = f', notes: {{note: "{self.note[i]}"}}' if i in self.note else ""
            extra += ", state: suspended" if i in self.suspended else ""
            rows.append(
                f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {self.cost_center.get(i, "ops")}{extra}}}'
            )
        return (
            f'version: 1\ndefaults: {{rate_plan: "{RATE_PLAN}", state: active}}\npolicy: {{max_changes: 100%}}\n'
            "sims:\n" + "\n".join(rows) + "\n"
        )

    def change(self, indices: list[int]) -> Counter[tuple[str, str]]:
        """Apply the mix to these SIMs (all of one stack); returns the known changes, keyed by (call, parameter)."""
        known = apply_mix(indices, self.cost_center, self.note, self.suspended)
        stack = indices[0] // self.sims
        self.unapplied[stack] = self.unapplied.get(stack, Counter()) + known
        return known

    def take_unapplied(self, stack: int) -> Counter[tuple[str, str]]:
        """The changes the stack's next `up` applies (its floor_writes), as applied from now on."""
        return self.unapplied.pop(stack, Counter())


def _call(request: dict[str, Any]) -> str:
    """`PUT /v2/devices/{device}/note`: a request's call, whichever device it names."""
    return f"{request['method']} {re.sub(r'/[0-9A-Za-z]{15,}(?=/|$)', '/{device}', request['path'])}"


def requests_since(admin: AdminClient) -> dict[str, Any]:
    log = admin.api_requests()
    admin.clear_requests()
    reads = [r for r in log if r["method"] == "GET"]
    listing = [r for r in reads if r["path"].rstrip("/") == "/v2/devices"]
    return {
        "reads": len(reads),
        "listing_pages": len(listing),
        "writes": len(log) - len(reads),
        # Which calls: a write over the floor shows here as the call that took one request more.
        "writes_by_call": dict(Counter(_call(r) for r in log if r["method"] != "GET")),
        "throttled_429": sum(1 for r in log if str(r.get("status")) == "429"),
        "statuses": dict(Counter(str(r.get("status")) for r in log)),
    }


def job_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    return [
        {
            "job": j.name,
            "exit_code": j.exit_code,
            "ok": j.ok,
            "wall_s": j.wall_s,
            "cpu_s": j.cpu_s,
            "peak_mb": j.peak_mb,
            **({"tail": j.tail} if j.tail else {}),
        }
        for j in jobs
    ]


def round_row(
    round_name: str, jobs: list[Job], wall: float, first: Job | None, requests: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One round's row of the report. `wall` is often the snapshot job's wall time plus the matrix's: rounded
    here, since a sum of floats prints as 12.600000000000001."""
    return {
        "round": round_name,
        "wall_s_here": round(wall, 1),
        **summary(jobs, first),
        "requests": requests,
        "jobs_detail": job_rows(jobs),
        **extra,
    }


def summary(jobs: list[Job], first: Job | None) -> dict[str, Any]:
    stack_jobs = [j for j in jobs if j is not first]
    walls = [j.wall_s for j in stack_jobs] or [0.0]
    return {
        "jobs": len(jobs),
        "failed": [j.name for j in jobs if not j.ok],
        "job_wall_s": {"min": min(walls), "max": max(walls)},
        "job_cpu_s_max": max((j.cpu_s for j in stack_jobs), default=0.0),
        "job_peak_mb_max": max((j.peak_mb for j in jobs), default=0.0),
        # One runner per job: the snapshot job, then the stack jobs side by side, the longest last.
        "one_runner_per_job_wall_s": round((first.wall_s if first else 0.0) + max(walls), 1),
    }


def bench(stacks: int, sims: int, parallel: int, limit: float, out_dir: Path) -> dict[str, Any]:
    bin_dir = pulumi_bin_dir()
    total = stacks * sims
    timeout = 1800.0
    rounds: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp,
        EmulatorServer(
            db=":memory:", seed="empty", key_name=KEY_NAME, api_key=API_KEY, activation_delay=0.0, host="127.0.0.1"
        ) as emu,
    ):
        root = Path(tmp)
        admin = AdminClient(emu.base_url)
        started = time.perf_counter()
        for begin in range(0, total, SEED_CHUNK):
            admin.add_sims(
                [
                    {
                        "iccid": iccid(i),
                        "imei": imei(i),
                        "state": "active",
                        "cost_center": "ops",
                        "rate_plan": RATE_PLAN,
                    }
                    for i in range(begin, min(total, begin + SEED_CHUNK))
                ]
            )
        seeded_s = round(time.perf_counter() - started, 1)
        print(f"seeded {total:,} SIMs in {seeded_s} s", flush=True)

        project = make_project(root / "project")
        (project / "fleets").mkdir()
        account = Account(stacks, sims)
        names = [f"shard-{s:02d}" for s in range(stacks)]
        stack_of: dict[str, PulumiStack] = {}
        for s, name in enumerate(names):
            stack = PulumiStack(project, root, name, bin_dir=bin_dir)
            stack.set_configs(
                {
                    "lattigo:endpoint": emu.base_url,
                    "lattigo:keyName": KEY_NAME,
                    "lattigo-fleet:fleetFile": f"fleets/{name}.yaml",
                    # As docs/teams.md says to: every stack lists them all (a stack skips its own name).
                    "lattigo-fleet:siblingStacks": ",".join(names),
                },
                secret={"lattigo:apiKey": API_KEY},
            )
            (project / "fleets" / f"{name}.yaml").write_text(account.fleet_yaml(s))
            stack_of[name] = stack
        env = {**stack_of[names[0]].env, "PYTHONPATH": str(REPO)}
        assert all(env.get(k) == v for k, v in ENGINE_ENV.items())
        cli = [sys.executable, "-m", "lattigo_fleet.cli"]
        pulumi_up = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack"]
        snapshot_file = root / "account-snapshot.jsonl"

        def snapshot_job() -> Job:
            return Job("snapshot", [*cli, "snapshot", "--stack", names[0], "--out", str(snapshot_file)], env, project)

        def record(round_name: str, jobs: list[Job], wall: float, first: Job | None, **extra: Any) -> None:
            row = round_row(round_name, jobs, wall, first, requests_since(admin), **extra)
            rounds.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "jobs_detail"}), flush=True)

        # 1. adopt
        admin.clear_requests()
        jobs = [Job(f"up {n}", [*pulumi_up, n], env, project) for n in names]
        record("adopt: first up of every stack", jobs, run_matrix(jobs, parallel, timeout), None)

        # 2. nightly drift, two stacks drifted
        for s in range(DRIFTED_STACKS):
            admin.add_sims([{"iccid": iccid(s * sims + 7), "cost_center": "Warehouse"}])
        admin.clear_requests()
        first = snapshot_job()
        run_job(first, timeout)
        jobs = [
            Job(
                f"drift {n}",
                [*cli, "drift", "--json", "--stack", n, "--account-snapshot", str(snapshot_file)],
                env,
                project,
                expect=(0, 2) if i >= DRIFTED_STACKS else (2,),
            )
            for i, n in enumerate(names)
        ]
        wall = first.wall_s + run_matrix(jobs, parallel, timeout)
        record("nightly drift of every stack", [first, *jobs], wall, first, listing_floor=math.ceil(total / PER_PAGE))
        for s in range(DRIFTED_STACKS):  # back in sync
            admin.add_sims([{"iccid": iccid(s * sims + 7), "cost_center": "ops"}])

        # 3. a pull request touching 2 of the stacks
        changed = names[:CHANGED_STACKS]
        for s in range(CHANGED_STACKS):
            account.change([s * sims + k for k in range(0, sims, 100)])
            (project / "fleets" / f"{names[s]}.yaml").write_text(account.fleet_yaml(s))
        admin.clear_requests()
        first = snapshot_job()
        run_job(first, timeout)
        jobs = [
            Job(
                f"plan {n}",
                [
                    *cli,
                    "plan",
                    "--stack",
                    n,
                    "--account-snapshot",
                    str(snapshot_file),
                    "--out",
                    str(root / f"{n}.plan"),
                ],
                env,
                project,
            )
            for n in changed
        ]
        wall = first.wall_s + run_matrix(jobs, parallel, timeout)
        record(f"pull request: plan {CHANGED_STACKS} of {stacks} stacks", [first, *jobs], wall, first)

        # 4. the merge of a 10% change spread over every stack, under the account's limit
        floor = 0  # each stack's own bulk requests: stacks never share one
        for s in range(stacks):
            account.change([s * sims + k for k in range(1, sims, 10)])
            floor += floor_writes(account.take_unapplied(s))  # with the pull request's change, merged now
            (project / "fleets" / f"{names[s]}.yaml").write_text(account.fleet_yaml(s))
        admin.faults(rate_limit_per_second=limit)
        budget = {"LATTIGO_FLEET_REQUESTS_PER_SECOND": str(limit), "LATTIGO_FLEET_BUDGET_SHARES": str(parallel)}
        admin.clear_requests()
        jobs = [Job(f"up {n}", [*pulumi_up, n], {**env, **budget}, project) for n in names]
        wall = run_matrix(jobs, parallel, timeout)
        record(
            f"merge: up of every stack, 10% changed, account limit {limit:g} requests/s",
            jobs,
            wall,
            None,
            floor_writes=floor,
        )
        admin.faults(rate_limit_per_second=None)
        mismatched = sum(
            1
            for i, sim in admin.sims().items()
            if (idx := int(i[6:])) < total and (sim.get("cost_center") != account.cost_center.get(idx, "ops"))
        )
    return {
        "machine": machine(bin_dir),
        "config": {"stacks": stacks, "sims_per_stack": sims, "account": total, "parallel": parallel, "limit": limit},
        "seed_s": seeded_s,
        "rounds": rounds,
        "cost_center_mismatches_after": mismatched,
        "command": f"python -m bench.shards --stacks {stacks} --sims {sims} --parallel {parallel} --limit {limit:g}",
    }


def machine(bin_dir: str) -> dict[str, Any]:
    version = subprocess.run([f"{bin_dir}/pulumi", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "pulumi": version,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def _met(ok: bool) -> str:
    return "✅" if ok else "❌"


def markdown(report: dict[str, Any]) -> str:
    m, c = report["machine"], report["config"]
    lines = [
        "# Sharded account benchmark",
        "",
        f"`{report['command']}`: {c['account']:,} SIMs as {c['stacks']} stacks of {c['sims_per_stack']:,}, "
        f"{c['parallel']} jobs at a time on this box. Real `pulumi` {m['pulumi']} CLI, one shared file backend, the "
        f"emulator on 127.0.0.1, engine settings {' '.join(f'{k}={v}' for k, v in ENGINE_ENV.items())}; "
        f"{m['cpus']} CPUs (load average {' '.join(map(str, m['load_at_start']))} at the start), Python "
        f"{m['python']}, {m['date']}. Seeding the emulator: {report['seed_s']} s.",
        "",
        f"Per job: wall s / CPU-s / peak MB of all its processes together. Here each job shared the box's "
        f"{m['cpus']} cores with {c['parallel'] - 1} other(s); *one runner per job* is the snapshot job then the "
        "longest stack job: what a matrix of as many runners takes (at most: a runner of its own gives a job all "
        "its cores).",
        "",
        "| round | jobs | failed | job wall s (min-max) | job CPU-s max | job peak MB max | wall here s | "
        "one runner per job s | reads (listing pages) | writes (floor) | 429s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rounds"]:
        req = r["requests"]
        writes = f"{req['writes']:,}" + (f" ({r['floor_writes']:,})" if "floor_writes" in r else "")
        lines.append(
            f"| {r['round']} | {r['jobs']} | {len(r['failed'])} {_met(not r['failed'])} | "
            f"{r['job_wall_s']['min']}-{r['job_wall_s']['max']} | {r['job_cpu_s_max']} | "
            f"{r['job_peak_mb_max']:,.0f} {_met(r['job_peak_mb_max'] <= JOB_MEMORY_TARGET_MB)} | {r['wall_s_here']} | "
            f"{r['one_runner_per_job_wall_s']} | {req['reads']:,} ({req['listing_pages']:,}) | {writes} | "
            f"{req['throttled_429']:,} |"
        )
    lines += [
        "",
        f"Targets: nightly drift ≤ {DRIFT_JOB_TARGET_S} s per job on a 2-core runner, the whole account's reads ≤ 2x "
        "the pages of one listing plus the snapshot job's; a pull request touching 2 stacks ≤ "
        f"{PR_TARGET_S} s; the merge's writes at the floor and no SIM failed; every job ≤ {JOB_MEMORY_TARGET_MB:,} MB. "
        f"Cost centers not as declared after the merge: {report['cost_center_mismatches_after']}.",
        "",
        "Jobs (wall s / CPU-s / peak MB):",
        "",
    ]
    for r in report["rounds"]:
        cells = ", ".join(f"{j['job']} {j['wall_s']}/{j['cpu_s']}/{j['peak_mb']:.0f}" for j in r["jobs_detail"])
        lines.append(f"- {r['round']}: {cells}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=20)
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=2, help="jobs at a time (a matrix's max-parallel)")
    parser.add_argument("--limit", type=float, default=10.0, help="the account's rate limit in the merge round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = bench(args.stacks, args.sims, args.parallel, args.limit, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shards.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "shards.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
