"""What a stack's state says about its fleet: the SIMs it holds and what was last applied to each.

The plan of a run needs three inputs: fleet.yaml, the live account, and this. The live account cannot tell
which SIMs the stack manages (a removal is a SIM the state holds and fleet.yaml no longer declares), nor the
usage limit last set on a SIM (the API cannot read limits back), nor whether lattigo-fleet activated or
adopted it. The state can: it is read with `pulumi stack export` from the backend the project uses, the
same reader for this stack (the program and the commands) and for its siblings (sharding.py). Exporting takes
no lock, so it works while a run holds the stack (it then sees the state that run started from).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lattigo_fleet.fleetfile import UNMANAGED, DesiredSim, UsageLimit

GUARD_TYPE_SUFFIX = "lattigo:FleetGuard"
SIM_TYPE_SUFFIX = ":Sim"
# What the language host sets for the program's own process: not for a CLI started from it.
_PROGRAM_ONLY_ENV = (
    "PULUMI_MONITOR",
    "PULUMI_ENGINE",
    "PULUMI_CONFIG",
    "PULUMI_CONFIG_SECRET_KEYS",
    "PULUMI_DRY_RUN",
    "PULUMI_PROJECT",
    "PULUMI_STACK",
    "PULUMI_ORGANIZATION",
    "PULUMI_ROOT_DIRECTORY",
)


EXPORT_GOGC = "20"


class StackStateError(Exception):
    """The stack's state cannot be read; the message is one line (the CLI's own reason)."""


@dataclass(frozen=True)
class StackState:
    """The fleet as the stack last recorded it."""

    held: frozenset[str] = frozenset()  # ICCIDs: the guard's record of the last applied fleet, and every Sim
    sims: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # ICCID -> the Sim's outputs

    def last_limit(self, iccid: str) -> UsageLimit | None | object:
        """The usage limit this tool last set on the SIM (UNMANAGED: none known, e.g. a SIM not held yet)."""
        stored = self.sims.get(iccid)
        if not stored or not stored.get("iccid"):
            return UNMANAGED
        try:
            return DesiredSim.from_inputs(stored).usage_limit
        except ValueError:
            return UNMANAGED


def from_deployment(deployment: Mapping[str, Any]) -> StackState:
    """A `pulumi stack export`'s `deployment`, read: Sims still being created (a run that died mid-way) count as
    held, as the guard's record and every Sim resource do."""
    held: set[str] = set()
    sims: dict[str, Mapping[str, Any]] = {}
    resources = list(deployment.get("resources") or [])
    resources += [op.get("resource") or {} for op in deployment.get("pending_operations") or []]
    for resource in resources:
        kind = str(resource.get("type") or "")
        outputs = resource.get("outputs") or {}
        if kind.endswith(GUARD_TYPE_SUFFIX):
            held.update(str(i) for i in outputs.get("iccids") or [])
        elif kind.endswith(SIM_TYPE_SUFFIX):
            iccid = (resource.get("inputs") or {}).get("iccid") or outputs.get("iccid") or resource.get("id")
            if iccid:
                held.add(str(iccid))
                if isinstance(outputs, Mapping) and outputs.get("iccid"):
                    sims[str(iccid)] = outputs
    return StackState(frozenset(held), sims)


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `pulumi` CLI started from inside a program (or anywhere else)."""
    base = dict(os.environ if env is None else env)
    for name in _PROGRAM_ONLY_ENV:
        base.pop(name, None)
    return base


def export(
    stack: str, *, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Mapping[str, Any]:
    """`pulumi stack export --stack STACK`: its `deployment` (empty for a stack never applied). Raises
    StackStateError with the CLI's reason."""
    pulumi = shutil.which("pulumi", path=(env or os.environ).get("PATH"))
    if pulumi is None:
        raise StackStateError(f"cannot read stack {stack!r}: no `pulumi` on PATH")
    try:
        proc = subprocess.run(
            [pulumi, "stack", "export", "--stack", stack, "--non-interactive"],
            cwd=cwd,
            # A short-lived CLI that holds the whole state while the engine's own run holds it too: collected
            # often, it needs about half the memory (at 20,000 SIMs, 459 -> ~250 MB), for a fraction of a second.
            env={**cli_env(env), "GOGC": EXPORT_GOGC},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise StackStateError(f"cannot read stack {stack!r}: `pulumi stack export` took over {timeout:.0f}s") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()[-1]
        raise StackStateError(f"cannot read stack {stack!r} from the backend: {why}")
    try:
        exported = json.loads(proc.stdout)
    except ValueError as exc:
        raise StackStateError(f"`pulumi stack export --stack {stack}` did not print JSON: {exc}") from None
    deployment = exported.get("deployment") if isinstance(exported, Mapping) else None
    return deployment if isinstance(deployment, Mapping) else {}


def read_stack_state(
    stack: str, *, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> StackState:
    return from_deployment(export(stack, cwd=cwd, env=env))
