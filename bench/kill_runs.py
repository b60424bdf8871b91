"""Crash recovery, measured: `pulumi up` of a mixed 200-SIM fleet killed with SIGKILL at random points, each
followed by the documented way back, `lattigo-fleet recover --yes`, and a plain `pulumi up`.

The fleet (defaults): 200 SIMs, 140 already in the account and in the stack (a first `up` adopted them), 60 in
inventory. The change under test activates the 60, moves 50 to another cost center and suspends 20. Each run
starts from that same stack state and account, starts `pulumi up`, kills its whole process group (as a CI
runner's timeout does) after a random delay (seeded; between 0.5 s and the duration of an uninterrupted run,
measured first; a run that finishes before its kill lowers that bound to 90 % of its own duration and is
drawn again), then:

1. notes whether the dead run left the stack locked (a lock file: the next plain `pulumi up` is refused) and
   how many pending operations its state holds;
2. runs `lattigo-fleet recover --yes` (the one manual step);
3. runs `pulumi up`, then `pulumi preview --expect-no-changes`;
4. checks the live account against fleet.yaml and counts the activation rows sent per ICCID over the run.

    .venv/bin/python -m bench.kill_runs [--runs 20] [--seed 7] [--sims 200] [--no-skip-checkpoints]

Runs with the project's engine settings (lattigo_fleet.engine_settings.ENGINE_ENV, as the harness sets them);
`--no-skip-checkpoints` drops PULUMI_SKIP_CHECKPOINTS to show the pending CREATE operations a killed run then
leaves and that recover clears. Loopback only; every command is bounded.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.pulumi_stack import REPO, PulumiStack, make_project, pulumi_bin_dir
from emulator.server import EmulatorServer

KEY_NAME, API_KEY = "bench-key", "bench-secret"
RATE_PLAN = "ACME Co 5mb Rate Plan"
ACTIVATION_DELAY = 2.0  # seconds of the emulated clock: activations are in flight for a while


def iccid(i: int) -> str:
    return f"890177{i:014d}"


def imei(i: int) -> str:
    return f"35{i:013d}"


@dataclass(frozen=True)
class Fleet:
    sims: int

    @property
    def new(self) -> range:  # 30 %: in inventory, activated by the run
        return range(0, self.sims * 3 // 10)

    @property
    def moved(self) -> range:  # 25 %: cost center ops -> logistics
        return range(self.new.stop, self.new.stop + self.sims // 4)

    @property
    def suspended(self) -> range:  # 10 %
        return range(self.moved.stop, self.moved.stop + self.sims // 10)

    def account(self) -> list[dict[str, Any]]:
        return [{"iccid": iccid(i), "imei": imei(i)} for i in self.new] + [
            {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "ops"}
            for i in range(self.new.stop, self.sims)
        ]

    def yaml(self, changed: bool) -> str:
        rows = []
        for i in range(self.sims):
            if i in self.new and not changed:
                continue
            cost_center = "logistics" if changed and i in self.moved else "ops"
            state = "suspended" if changed and i in self.suspended else "active"
            rows.append(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", cost_center: {cost_center}, state: {state}}}')
        return (
            f'version: 1\ndefaults: {{rate_plan: "{RATE_PLAN}"}}\npolicy: {{max_changes: 100%}}\nsims:\n'
            + "\n".join(rows)
            + "\n"
        )

    def converged(self, live: dict[str, dict[str, Any]]) -> list[str]:
        """ICCIDs whose live state or cost center differ from fleet.yaml (changed)."""
        wrong = []
        for i in range(self.sims):
            sim = live.get(iccid(i)) or {}
            state = "suspended" if i in self.suspended else "active"
            cost_center = "logistics" if i in self.moved else "ops"
            if sim.get("state") != state or sim.get("cost_center") != cost_center:
                wrong.append(iccid(i))
        return wrong


@dataclass
class Run:
    n: int
    delay: float
    killed: bool = False  # False: the run had finished before the kill
    sent_before_kill: Counter[str] = field(default_factory=Counter)
    refused_without_recover: bool = False
    pending_before: int = 0
    recover_rc: int | None = None
    recover_out: str = ""
    up_rc: int | None = None
    preview_rc: int | None = None
    not_converged: list[str] = field(default_factory=list)
    duplicate_activations: int = 0
    seconds: float = 0.0

    @property
    def converged(self) -> bool:
        return self.recover_rc == 0 and self.up_rc == 0 and self.preview_rc == 0 and not self.not_converged


def _activation_rows(log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        row["iccid"]
        for r in log
        if r["method"] != "GET" and r["path"].endswith("activation_request")
        for row in (r.get("body") or {}).get("activation_requests") or []
    )


def _mutating(log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        r["path"].rsplit("/", 1)[-1] for r in log if r["method"] != "GET" and not r["path"].startswith("/_emulator")
    )


def _start_up(stack: PulumiStack) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack.name],
        cwd=stack.project_dir,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _restore(template: Path, backend: Path) -> None:
    shutil.rmtree(backend)
    shutil.copytree(template, backend)


def _reset_account(emu: EmulatorServer, fleet: Fleet) -> None:
    emu.reset("empty", activation_delay=ACTIVATION_DELAY)
    emu.add_sims(fleet.account())
    emu.clear_requests()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument(
        "--no-skip-checkpoints",
        action="store_true",
        help="run pulumi without PULUMI_SKIP_CHECKPOINTS (the state is then written per step)",
    )
    args = parser.parse_args(argv)
    fleet = Fleet(args.sims)
    rng = random.Random(args.seed)
    bin_dir = pulumi_bin_dir()
    recover_cmd = [str(REPO / ".venv" / "bin" / "lattigo-fleet"), "recover", "--yes"]

    with (
        tempfile.TemporaryDirectory(prefix="kill-runs-") as tmp,
        EmulatorServer(
            db=":memory:",
            seed="empty",
            key_name=KEY_NAME,
            api_key=API_KEY,
            activation_delay=ACTIVATION_DELAY,
            host="127.0.0.1",
            port=0,
        ) as emu,
    ):
        root = Path(tmp)
        project = make_project(root / "project")
        stack = PulumiStack(project, root, "bench", bin_dir=bin_dir)
        if args.no_skip_checkpoints:
            stack.env.pop("PULUMI_SKIP_CHECKPOINTS", None)
        stack.set_config("lattigo:endpoint", emu.base_url)
        stack.set_config("lattigo:keyName", KEY_NAME)
        stack.set_config("lattigo:apiKey", API_KEY, secret=True)
        stack.set_config("lattigo-fleet:activationTimeout", "120")
        backend = Path(stack.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
        template = root / "backend-template"

        _reset_account(emu, fleet)
        (project / "fleet.yaml").write_text(fleet.yaml(changed=False))
        stack.up().check()  # the SIMs already in the account, adopted
        shutil.copytree(backend, template)
        (project / "fleet.yaml").write_text(fleet.yaml(changed=True))
        print(
            f"fleet: {fleet.sims} SIMs; the change: {len(fleet.new)} activations, {len(fleet.moved)} cost-center "
            f"moves, {len(fleet.suspended)} suspensions; PULUMI_SKIP_CHECKPOINTS="
            f"{stack.env.get('PULUMI_SKIP_CHECKPOINTS', 'unset')}; activation delay {ACTIVATION_DELAY} s",
            flush=True,
        )

        # Calibration: one uninterrupted run bounds the kill delays.
        emu.clear_requests()
        start = time.monotonic()
        stack.up().check()
        full = time.monotonic() - start
        print(
            f"uninterrupted up: {full:.1f} s, calls {dict(_mutating(emu.requests_log()))}; kill delays: "
            f"uniform(0.5, {full:.1f}) s, seed {args.seed}",
            flush=True,
        )

        runs: list[Run] = []
        bound = full
        redrawn = 0
        for n in range(1, args.runs + 1):
            began = time.monotonic()
            for attempt in range(1, 4):  # a run that finishes before its kill is drawn again, with a lower bound
                _restore(template, backend)
                _reset_account(emu, fleet)
                run = Run(n, round(rng.uniform(0.5, bound), 2))
                started = time.monotonic()
                proc = _start_up(stack)
                try:
                    proc.wait(timeout=run.delay)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=60)
                    run.killed = True
                    break
                bound = max(1.0, 0.9 * (time.monotonic() - started))
                if attempt < 3:
                    redrawn += 1
                    print(
                        f"  run {n}: finished before its kill at {run.delay:.2f} s; kill delays now bounded by "
                        f"{bound:.1f} s, drawn again",
                        flush=True,
                    )
            run.sent_before_kill = _mutating(emu.requests_log())

            # A lock file of the dead run: the next `pulumi up` would be refused ("the stack is currently locked").
            run.refused_without_recover = any((backend / ".pulumi" / "locks").rglob("*.json"))
            run.pending_before = len(stack.export()["deployment"].get("pending_operations") or [])

            rec = subprocess.run(
                [*recover_cmd, "--stack", stack.name, "--cwd", str(project)],
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            run.recover_rc, run.recover_out = rec.returncode, (rec.stdout + rec.stderr).strip()
            run.up_rc = stack.up().returncode
            run.preview_rc = stack.run("preview", "--expect-no-changes", timeout=900).returncode
            log = emu.requests_log()
            run.not_converged = fleet.converged({s["iccid"]: s for s in emu.sims()})
            run.duplicate_activations = sum(count - 1 for count in _activation_rows(log).values() if count > 1)
            run.seconds = time.monotonic() - began
            runs.append(run)
            lock_line = next((line for line in run.recover_out.splitlines() if line.startswith("lock:")), "")
            pending_line = next((line for line in run.recover_out.splitlines() if line.startswith("pending")), "")
            print(
                f"run {n:2d}: kill at {run.delay:5.2f} s ({'killed' if run.killed else 'had finished'}; sent "
                f"{dict(run.sent_before_kill) or 'nothing'}); locked after the kill: "
                f"{run.refused_without_recover}; pending ops {run.pending_before}; recover rc {run.recover_rc}; "
                f"up rc {run.up_rc}; preview --expect-no-changes rc {run.preview_rc}; "
                f"converged {run.converged}; duplicate activations {run.duplicate_activations}; "
                f"{run.seconds:.0f} s",
                flush=True,
            )
            print(f"        recover: {lock_line[:90]} | {pending_line[:110]}", flush=True)
            if run.recover_rc:
                print(f"        recover said: {run.recover_out}", flush=True)

        killed = [r for r in runs if r.killed]
        mid = [r for r in killed if r.sent_before_kill]
        print()
        print(
            f"converged: {sum(r.converged for r in runs)}/{len(runs)} "
            f"(killed mid-run: {len(killed)}, of which after the first call: {len(mid)}; runs that finished "
            f"before their kill and were drawn again: {redrawn})"
        )
        print(f"duplicate activations: {sum(r.duplicate_activations for r in runs)}")
        print(
            f"left the stack locked (a plain `pulumi up` is refused): "
            f"{sum(r.refused_without_recover for r in runs)}/{len(runs)}"
        )
        print(
            f"pending operations left by the killed run: {sum(r.pending_before > 0 for r in runs)}/{len(runs)} runs "
            f"(cleared by recover: {sum(r.pending_before > 0 and r.recover_rc == 0 for r in runs)})"
        )
        recovered = sum(r.recover_rc == 0 for r in runs)
        print(
            f"manual steps: `lattigo-fleet recover --yes` only, in {recovered}/{len(runs)} runs; anything else "
            f"needed: {sum(not r.converged for r in runs)}"
        )
        return 0 if all(r.converged and not r.duplicate_activations for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
