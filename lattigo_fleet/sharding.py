"""One account, several stacks: which SIMs the sibling stacks own, and the refusal of a SIM claimed twice.

A stack can own a slice of the account: its own fleet file (`lattigo-fleet:fleetFile`), and the stacks that
share the account are listed in `lattigo-fleet:siblingStacks` (names of stacks of this project, or fully
qualified `org/project/stack`; the same list can be set in every stack: a stack skips its own name). Before
any call of its own, even a read (only the engine's refresh of this stack's Sims comes first), the program
asks here which ICCIDs each sibling owns and refuses the run if this stack's fleet declares one of them,
naming both stacks and each ICCID (the first 10, and the count) at its file:line:column in this stack's
fleet file.

A sibling owns an ICCID when either
- **its latest checkpoint holds it** (what it manages now): the ICCIDs that its `lattigo:FleetGuard` recorded
  at its last apply, plus any Sim resource in its state (a run that died before the guard was updated), read
  with `pulumi stack export --stack SIBLING` from the same backend as this stack; or
- **its fleet file in this checkout declares it** (what it will manage after its next apply), when the
  sibling's stack settings (`Pulumi.<stack>.yaml`) are in this project directory. This closes the race that
  a check of applied state alone leaves open: two stacks adding the same new SIM in one commit (or two
  concurrent runs) would each see nothing in the other's state and both activate it. With fleet files in
  one repository, such a commit fails the preview of both stacks.

Why read the siblings' checkpoints with the CLI rather than through `StackReference`s to an exported output:
- the check must be complete before the first resource is registered (a Sim registered is a Sim the engine
  may create); a StackReference's output is an `Output`, so the program would have to register every Sim from
  inside an `apply`, and a preview of a stack whose sibling is mid-run would see an unknown;
- the ownership record already exists: the FleetGuard keeps the ICCIDs of the last applied fleet (it needs
  them for the blast-radius guard). An exported output would store them a second time and print them at the
  end of every `up`: 10,000 ICCIDs are about 240 kB of output in plain text (22 bytes each, quoted), or, as a
  secret (shown as `[secret]`), about 330 kB of ciphertext in the checkpoint, decrypted with the sibling's
  own secrets provider, which this stack may not hold (a KMS key of another team);
- `lattigo-fleet drift` runs outside any Pulumi program, where a StackReference does not exist: reading the
  backend through the CLI is the same code for the program and for the command (`sibling_iccids`).
The CLI reads the backend this stack uses (`PULUMI_BACKEND_URL` or `pulumi login`), with its credentials, and
exporting takes no lock, so it works while the sibling runs (it then sees the sibling's last saved state).
Its cost is one CLI start and one read of each sibling's checkpoint per run (about 1.2 kB per SIM).

What this does not do: it cannot see a stack that is not listed, nor SIMs managed by other tools; a stack
of another project is checked only against its applied state (its fleet file is not in this checkout).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lattigo_fleet.fleetfile import FleetSpec, Issue
from lattigo_fleet.stack_state import StackStateError, export, from_deployment

SHOWN = 10


class SiblingError(Exception):
    """A sibling stack's ownership cannot be read (no such stack, backend unreachable); the message says which."""


@dataclass(frozen=True)
class Claim:
    """What one sibling stack owns."""

    stack: str  # as listed in lattigo-fleet:siblingStacks
    held: frozenset[str]  # in its latest checkpoint
    declared: frozenset[str]  # in its fleet file(s) in this checkout
    fleet_file: str | None = None  # that file, when its stack settings are in this checkout

    @property
    def iccids(self) -> frozenset[str]:
        return self.held | self.declared


# --- names ---------------------------------------------------------------------------------------------------


def parse_stacks(raw: str | Sequence[str] | None) -> tuple[str, ...]:
    """`lattigo-fleet:siblingStacks` as written: "east, west" (commas or spaces) or a JSON list."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = None
            if isinstance(loaded, list):
                raw = [str(item) for item in loaded]
        if isinstance(raw, str):
            raw = re.split(r"[,\s]+", raw)
    names: list[str] = []
    for name in (str(n).strip() for n in raw):
        if name and name not in names:
            names.append(name)
    return tuple(names)


def invalid_stack_names(names: Iterable[str]) -> list[str]:
    """Names that are neither `stack` nor `org/project/stack` (Pulumi's own shapes)."""
    return [n for n in names if not re.fullmatch(r"[\w.-]+(/[\w.-]+/[\w.-]+)?", n)]


def is_same_stack(name: str, stack: str, project: str, organization: str | None = None) -> bool:
    """Whether a name in the sibling list designates this stack (so that every stack can carry one list)."""
    parts = name.split("/")
    if len(parts) == 1:
        return parts[0] == stack
    if len(parts) == 3:
        org, proj, st = parts
        return st == stack and proj == project and (organization is None or org in (organization, "organization"))
    return False


# --- what a sibling holds: its checkpoint ------------------------------------------------------------------


def held_in_deployment(deployment: Mapping[str, Any]) -> frozenset[str]:
    """The ICCIDs a stack's state holds (stack_state.from_deployment)."""
    return from_deployment(deployment).held


def held_iccids(
    stack: str, *, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None, timeout: float = 300
) -> frozenset[str]:
    """`pulumi stack export --stack STACK` of the backend this project uses: the ICCIDs its state holds.
    Raises SiblingError when the stack cannot be read (it does not exist, the backend is unreachable)."""
    try:
        return from_deployment(export(stack, cwd=cwd, env=env, timeout=timeout)).held
    except StackStateError as exc:
        raise SiblingError(
            f"{str(exc).replace('cannot read stack', 'cannot read sibling stack', 1)} (every stack named "
            "in lattigo-fleet:siblingStacks must exist: `pulumi stack init` it, or remove it from the list)"
        ) from None


# --- what a sibling declares: its fleet file in this checkout -------------------------------------------------


def sibling_fleet_file(stack: str, project_dir: str | os.PathLike[str]) -> Path | None:
    """The fleet file a stack of this project uses, from its `Pulumi.<stack>.yaml`; None if that is not here."""
    import yaml

    short = stack.rsplit("/", 1)[-1]
    settings = Path(project_dir) / f"Pulumi.{short}.yaml"
    if not settings.is_file():
        return None
    loaded = yaml.load(settings.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
    config = loaded.get("config") or {} if isinstance(loaded, dict) else {}
    name = config.get("lattigo-fleet:fleetFile") if isinstance(config, dict) else None
    return Path(project_dir) / str(name or "fleet.yaml")


def declared_in_files(fleet_file: str | os.PathLike[str]) -> frozenset[str]:
    """The ICCIDs a fleet file and its `<stem>.d/*.yaml` declare, read fast (C YAML, no validation: the
    sibling's own runs validate it). A file that is missing or not YAML declares nothing here."""
    import yaml

    path = Path(fleet_file)
    files = [path]
    extra = path.with_name(f"{path.stem}.d")
    if extra.is_dir():
        files += sorted(p for p in extra.iterdir() if p.name.endswith(".yaml") and not p.name.startswith("."))
    found: set[str] = set()
    for file in files:
        try:
            doc = yaml.load(file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        except (OSError, yaml.YAMLError):
            continue
        sims = doc.get("sims") if isinstance(doc, dict) else None
        for sim in sims if isinstance(sims, list) else ():
            if isinstance(sim, dict) and sim.get("iccid") is not None:
                found.add(str(sim["iccid"]))
    return frozenset(found)


# --- the public surface: the program and `lattigo-fleet drift` --------------------------------------------


# What each stack's state held, as a sharded run's snapshot job recorded it (account_snapshot.py): stack -> ICCIDs.
Held = Mapping[str, frozenset[str]]


def claim_of(
    stack: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    held: Held | None = None,
) -> Claim:
    """What `stack` owns. Its state is read now, unless `held` (a preview's account snapshot) recorded it."""
    project_dir = Path(cwd or ".")
    fleet_file = sibling_fleet_file(stack, project_dir) if "/" not in stack else None
    declared = declared_in_files(fleet_file) if fleet_file else frozenset()
    shown = os.path.relpath(fleet_file, project_dir) if fleet_file else None
    state = held[stack] if held is not None and stack in held else held_iccids(stack, cwd=cwd, env=env)
    return Claim(stack, state, declared, shown)


def sibling_iccids(
    stack: str, *, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> frozenset[str]:
    """Every ICCID the stack `stack` owns: held in its latest state, or declared in its fleet file in this
    checkout. `cwd` is the project directory (default: the current one). Raises SiblingError."""
    return claim_of(stack, cwd=cwd, env=env).iccids


def sibling_claims(
    siblings: Iterable[str],
    *,
    this_stack: str | None,
    project: str | None = None,
    organization: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    held: Held | None = None,
) -> list[Claim]:
    """The claims of every listed sibling but this stack, read in parallel. Raises SiblingError (all the
    unreadable siblings in one message)."""
    others = [
        s for s in siblings if this_stack is None or not is_same_stack(s, this_stack, project or "", organization)
    ]
    if not others:
        return []
    with ThreadPoolExecutor(max_workers=min(4, len(others))) as pool:
        futures = [pool.submit(claim_of, s, cwd=cwd, env=env, held=held) for s in others]
    claims, errors = [], []
    for future in futures:
        try:
            claims.append(future.result())
        except SiblingError as exc:
            errors.append(str(exc))
    if errors:
        raise SiblingError("; ".join(errors))
    return claims


def owned_by_siblings(
    siblings: Iterable[str],
    *,
    this_stack: str | None,
    project: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    held: Held | None = None,
) -> dict[str, str]:
    """ICCID -> the sibling stack that owns it (for drift: a SIM a sibling owns is not unmanaged)."""
    owner: dict[str, str] = {}
    for claim in sibling_claims(siblings, this_stack=this_stack, project=project, cwd=cwd, env=env, held=held):
        for iccid in claim.iccids:
            owner.setdefault(iccid, claim.stack)
    return owner


def overlap_issues(fleet: FleetSpec, this_stack: str, claims: Iterable[Claim]) -> list[Issue | str]:
    """For each sibling that owns ICCIDs this stack declares: the first SHOWN of them, each at its place in
    this stack's fleet file, then one line naming both stacks and the count."""
    issues: list[Issue | str] = []
    for claim in claims:
        both = [sim for sim in fleet.sims if sim.iccid in claim.iccids]
        if not both:
            continue
        for sim in both[:SHOWN]:
            where = []
            if sim.iccid in claim.held:
                where.append("held in its state")
            if sim.iccid in claim.declared:
                where.append(f"declared in its {claim.fleet_file}")
            who = sim.iccid if sim.name == sim.iccid else f"{sim.name} ({sim.iccid})"
            loc = fleet.source_of(sim.iccid, "iccid")
            issues.append(
                Issue(
                    loc.file,
                    loc.line,
                    loc.column,
                    fleet.sim_path(sim.iccid, "iccid"),
                    f"SIM {who}: also managed by stack `{claim.stack}` ({' and '.join(where)})",
                )
            )
        more = f" (the first {SHOWN} are listed above)" if len(both) > SHOWN else " (listed above)"
        issues.append(
            f"stack `{this_stack}` and stack `{claim.stack}` both manage {len(both)} ICCID(s){more}: "
            f"{', '.join(s.iccid for s in both[:SHOWN])}{' and more' if len(both) > SHOWN else ''}. Two stacks "
            f"must never manage the same SIM: remove them from one of the two fleet files. To move SIMs between "
            f"stacks, remove them from `{claim.stack}` and apply it first (policy.on_remove: retain forgets "
            "them without a call), then add them here"
        )
    return issues
