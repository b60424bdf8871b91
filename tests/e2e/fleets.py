"""Helpers for end-to-end tests of the real program: fleet files, ICCIDs, the emulator's admin API."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

from devtools.pulumi_stack import REPO, PulumiStack
from emulator.admin_client import AdminClient

PLAN_5MB = "ACME Co 5mb Rate Plan"


def iccid(i: int) -> str:
    return f"8901260{i:013d}"


def imei(i: int) -> str:
    return f"35300{i:010d}"


def by_endpoint(reqs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["path"].rsplit("/", 1)[-1] if "/device_operations/" in r["path"] else r["path"] for r in reqs)


def device_names(req: dict[str, Any]) -> list[str]:
    body = req.get("body") or {}
    return list(body.get("device_names") or [])


def small_fleet(states: dict[int, str], policy: str = "") -> str:
    rows = "".join(f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", state: {s}}}\n' for i, s in states.items())
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\n{policy}sims:\n{rows}'


def seed_active(admin: AdminClient, indices: Iterable[int]) -> None:
    admin.add_sims([{"iccid": iccid(i), "imei": imei(i), "state": "active", "rate_plan": PLAN_5MB} for i in indices])


def lattigo_fleet(
    stack: PulumiStack, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`lattigo-fleet ARGS --stack STACK` in the stack's project, with its environment (and `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "lattigo_fleet.cli", *args, "--stack", stack.name],
        cwd=stack.project_dir,
        env={**stack.env, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
