"""The blast-radius guard: how many SIMs one run may take out of service, written once.

Pure. Every path that can take a SIM out of service asks this module, before the first call is sent:

- the program, for the suspensions fleet.yaml declares (it cannot see removals: it does not know the stack);
- the `FleetGuard` resource, at the start of every preview and up, for those suspensions *and* the SIMs
  removed from fleet.yaml (it keeps the ICCIDs of the last applied fleet);
- the `FleetGuard`'s delete, which is what `pulumi destroy` does with the whole fleet;
- a removed SIM's own delete, as a backstop for a guard whose record is behind (a run cut short).

What counts: a SIM *serving* in the account (active, or on its way to active) that this run would suspend,
either because fleet.yaml now declares it suspended (unless its `ignore_changes` holds `state`), or because it
left fleet.yaml under `policy.on_remove: suspend`. A SIM already suspended, or not yet activated, takes
nothing out of service, and with `on_remove: retain` a removal sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import DesiredSim, Policy
from lattigo_fleet.planner import ACTIVE, PENDING_ACTIVATION, SUSPENDED, SUSPENDED_NO_BILLING

SERVING = (ACTIVE, PENDING_ACTIVATION)
ALLOW_ENV = "LATTIGO_ALLOW_LARGE_CHANGES"
# Set for the one run that takes over a stack written by an earlier version (Sims named by `name`): the program
# then registers each Sim with an alias to its old name. Aliases cost about a quarter of a run's CPU, so they
# are not registered otherwise, and FleetGuard refuses to run on such a stack until this is set.
UPGRADE_ENV = "LATTIGO_FLEET_UPGRADE"


def serving(live: LiveDevice | None) -> bool:
    return live is not None and live.get("state") in SERVING


def suspended_by_fleet(sims: Iterable[DesiredSim], live: Mapping[str, LiveDevice]) -> list[DesiredSim]:
    """The declared SIMs whose declared state takes a serving SIM out of service."""
    return [
        sim
        for sim in sims
        if sim.state in (SUSPENDED, SUSPENDED_NO_BILLING)
        and "state" not in sim.ignore_changes
        and serving(live.get(sim.iccid))
    ]


def suspended_by_removal(policy: Policy, removed: Iterable[str], live: Mapping[str, LiveDevice]) -> list[str]:
    """The removed ICCIDs whose removal suspends a serving SIM."""
    if policy.on_remove != "suspend":
        return []
    return [iccid for iccid in removed if serving(live.get(iccid))]


def fleet_size(held: int, declared: int) -> int:
    """The fleet a percentage limit is a share of: the larger of the fleet before the run (the SIMs the stack
    holds) and the fleet after it (the SIMs fleet.yaml declares). One rule for every path: a run that forgets
    half the fleet under `retain` does not shrink the budget of its own suspensions, and a first run (the stack
    holds nothing yet) is measured against what it declares."""
    return max(held, declared)


@dataclass(frozen=True)
class BlastRadius:
    """What one run takes out of service, against the limit: the guard's answer as data (the plan document and
    the PR comment read this, never the refusal's words)."""

    suspended: tuple[str, ...]  # names of declared SIMs that the run suspends
    removed: tuple[str, ...]  # ICCIDs removed from fleet.yaml that the run suspends (on_remove: suspend)
    fleet_size: int
    limit: int
    allowed_by_setting: bool
    refusal: str | None

    @property
    def total(self) -> int:
        return len(self.suspended) + len(self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_of_service": self.total,
            "suspended": list(self.suspended),
            "removed": list(self.removed),
            "fleet_size": self.fleet_size,
            "limit": self.limit,
            "allowed_by_setting": self.allowed_by_setting,
            "refused": self.refusal is not None,
            "message": self.refusal,
        }


def assess(
    policy: Policy,
    *,
    held: int,
    declared: int,
    suspended: Sequence[str] = (),
    removed: Sequence[str] = (),
    allow: bool = False,
    command: str = "pulumi up",
) -> BlastRadius:
    """The guard's verdict for a run, with every number it rests on (see `fleet_size` and `refusal`)."""
    size = fleet_size(held, declared)
    return BlastRadius(
        tuple(suspended),
        tuple(removed),
        size,
        policy.limit_for(size),
        allow,
        refusal(policy, size, suspended=suspended, removed=removed, allow=allow, command=command),
    )


def _shown(names: Sequence[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def refusal(
    policy: Policy,
    fleet_size: int,
    *,
    suspended: Sequence[str] = (),
    removed: Sequence[str] = (),
    allow: bool = False,
    command: str = "pulumi up",
) -> str | None:
    """None if the run may go ahead; otherwise the message that refuses it.

    `fleet_size` is the fleet the limit is a share of (`fleet_size()`); `suspended` and `removed` name the SIMs
    counted above; `allow` is the escape hatch; `command` is what the user runs again to allow it once."""
    total = len(suspended) + len(removed)
    limit = policy.limit_for(fleet_size)
    if allow or total <= limit:
        return None
    parts = []
    if suspended:
        parts.append(f"{len(suspended)} suspended by fleet.yaml: {_shown(suspended)}")
    if removed:
        parts.append(f"{len(removed)} removed from fleet.yaml with on_remove: suspend: {_shown(removed)}")
    return (
        f"policy.max_changes: this run would take {total} SIMs out of service ({'; '.join(parts)}), "
        f"more than the limit of {limit} ({policy.describe()}); nothing was sent. If that is intended, allow "
        f"it for this run only with `{ALLOW_ENV}=true {command}` (the stack setting "
        "lattigo-fleet:allowLargeChanges lifts the guard for every later run too, until it is removed)"
    )
