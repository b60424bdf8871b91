"""Checks of fleet.yaml against the live account, before any resource is registered.

Everything that can be known before a change is made is checked here, all at once, each problem with the
file:line:column of the field that causes it: rate plans and usernames the API does not list, IMEIs that
differ from the live SIM's, state transitions the platform cannot make, ICCIDs of another account, and the
blast-radius guard for declared suspensions. Warnings (nothing is refused) for what is probably a typo: a
cost center that no SIM of the account uses yet. And the summary a reviewer reads first: the Lattigo calls
that converging the account takes, grouped by call.

Reads: rate plans, users, one paged snapshot of the fleet and, in a preview, one GET per declared SIM that the
snapshot does not hold (a SIM to activate: the answer says whether the ICCID belongs to another account). An
apply does not ask again: `pulumi up` previews first, and an apply without a preview (`--skip-preview`) still
sends nothing for such a SIM but its row of the activation request, which the API rejects by name while the
other SIMs of the request are activated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lattigo_fleet import guard
from lattigo_fleet.account_snapshot import cost_centers_of
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.client.protocols import LattigoApi
from lattigo_fleet.fleetfile import FleetSpec, Issue, validate_against_account
from lattigo_fleet.live import month_bytes
from lattigo_fleet.operations import RemoveUsageLimit, SetCostCenter, SetUsageLimit
from lattigo_fleet.planner import NOT_READ, Plan, limit_suspension_candidate, plan_sim
from lattigo_fleet.stack_state import StackState
from lattigo_fleet.suggest import COST_CENTER_CUTOFF, did_you_mean

PROBE_CONCURRENCY = 8


@dataclass
class AccountCheck:
    issues: list[Issue | str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plans: dict[str, Plan] = field(default_factory=dict)  # by SIM name, against the live account
    live: dict[str, LiveDevice] = field(default_factory=dict)  # the snapshot the plans were made on
    month_bytes: dict[str, int | None] = field(default_factory=dict)  # of the SIMs a usage limit may have suspended
    removed: list[str] = field(default_factory=list)  # ICCIDs the stack holds and fleet.yaml no longer declares
    blast: guard.BlastRadius | None = None  # the blast-radius guard's verdict on this run


def _issue(fleet: FleetSpec, iccid: str, field_name: str | None, message: str) -> Issue:
    loc = fleet.source_of(iccid, field_name)
    sim = fleet.by_iccid[iccid]
    path = fleet.sim_path(iccid, field_name)
    who = iccid if sim.name == iccid else f"{sim.name} ({iccid})"
    return Issue(loc.file, loc.line, loc.column, path, f"SIM {who}: {message}")


def _names(items: Iterable[Mapping[str, Any] | Any], key: str) -> set[str]:
    """Names out of a list the API returned, skipping entries that are not what the document says."""
    return {str(item[key]) for item in items if isinstance(item, Mapping) and item.get(key) is not None}


def probe_absent(client: LattigoApi, iccids: list[str]) -> dict[str, str]:
    """For declared ICCIDs the snapshot does not hold: "other_account" (403), "absent" (404: an inventory SIM
    or an unknown ICCID, which the API does not tell apart) or "present" (the snapshot was behind)."""
    from lattigo_fleet.client import AuthenticationError, NotFound

    def probe(iccid: str) -> tuple[str, str]:
        try:
            client.device(iccid)
        except NotFound:
            return iccid, "absent"
        except AuthenticationError as exc:
            if exc.status == 403:
                return iccid, "other_account"
            raise
        return iccid, "present"

    if not iccids:
        return {}
    with ThreadPoolExecutor(max_workers=min(PROBE_CONCURRENCY, len(iccids))) as pool:
        return dict(pool.map(probe, iccids))


def new_cost_center_warnings(fleet: FleetSpec, plans: Mapping[str, Plan], in_use: AbstractSet[str]) -> list[str]:
    """A move to a cost center that no SIM of the account uses yet (`in_use`) is often a typo ("Fleet-Eastt")."""
    moving: dict[str, list[str]] = {}
    for sim in fleet.sims:
        for op in plans[sim.name].ops if sim.name in plans else ():
            if isinstance(op, SetCostCenter) and op.cost_center and op.cost_center not in in_use:
                moving.setdefault(op.cost_center, []).append(sim.iccid)
    warnings = []
    for cost_center, iccids in sorted(moving.items()):
        loc = fleet.source_of(iccids[0], "cost_center")
        close = did_you_mean(cost_center, sorted(in_use), COST_CENTER_CUTOFF)
        hint = f"; did you mean {close!r}?" if close else " (a new cost center, if that is intended)"
        warnings.append(
            f"{loc}: cost_center: {len(iccids)} SIM(s) move to {cost_center!r}, which no SIM in the "
            f"account uses yet{hint}"
        )
    return warnings


def check_against_account(
    fleet: FleetSpec,
    client: LattigoApi,
    allow_large_changes: bool,
    *,
    state: StackState | None = None,
    probe_new_sims: bool = True,
    live: Mapping[str, LiveDevice] | None = None,
    cost_centers_in_use: AbstractSet[str] | None = None,
) -> AccountCheck:
    """`state` is the stack as last applied (stack_state.py): the SIMs it holds (removals, the guard's fleet
    size) and the usage limit last set on each (the API cannot read them back). None: a stack that holds
    nothing yet. `live` and `cost_centers_in_use` (a slice of the account as a snapshot file shows it, and the
    cost centers of the whole account) are for a preview; else the account is read now."""
    state = state or StackState()
    rate_plans = _names(client.rate_plans(), "name")
    usernames = {str(u) for u in client.users() if isinstance(u, str)}
    result = AccountCheck(issues=list(validate_against_account(fleet, rate_plans, usernames)))
    issues = result.issues
    # `live`: the account as a snapshot file shows it (account_snapshot.py), for a preview; else read now.
    live = result.live = dict(live) if live is not None else client.snapshot()

    absent = [sim.iccid for sim in fleet.sims if sim.iccid not in live]
    probed = probe_absent(client, absent) if probe_new_sims else {}
    for iccid, answer in probed.items():
        if answer == "other_account":
            issues.append(
                _issue(
                    fleet,
                    iccid,
                    "iccid",
                    "this ICCID is not in this account's inventory: the API "
                    "answers 403 Forbidden for it (it belongs to another account); remove it",
                )
            )
        elif answer == "present":  # listed since the snapshot was read: plan against what is there now
            from lattigo_fleet.client import LattigoError

            try:
                live[iccid] = client.device(iccid)
            except LattigoError:
                pass

    result.month_bytes = month_bytes(
        client, [sim.iccid for sim in fleet.sims if limit_suspension_candidate(sim, live.get(sim.iccid))]
    )
    for sim in fleet.sims:
        current = live.get(sim.iccid)
        if probed.get(sim.iccid) == "other_account":
            continue
        if current and sim.imei and current.get("imei") and current["imei"] != sim.imei:
            issues.append(
                _issue(
                    fleet,
                    sim.iccid,
                    "imei",
                    f"declared IMEI {sim.imei} differs from the account's {current['imei']}; "
                    "the Lattigo API cannot change the IMEI of an activated SIM",
                )
            )
        plan = plan_sim(
            sim, current, state.last_limit(sim.iccid), month_bytes=result.month_bytes.get(sim.iccid, NOT_READ)
        )
        for problem in plan.problems:
            if current is None:
                problem = problem.replace(
                    "is not in the account",
                    "is not an activated SIM of this account (the API answers 404 Not Found for it)",
                )
            issues.append(_issue(fleet, sim.iccid, "state" if current else None, problem))
        result.plans[sim.name] = plan

    suspended = guard.suspended_by_fleet(fleet.sims, live)
    result.removed = sorted(state.held - set(fleet.by_iccid))
    blast = result.blast = guard.assess(
        fleet.policy,
        held=len(state.held),
        declared=len(fleet.sims),
        suspended=[s.name for s in suspended],
        removed=guard.suspended_by_removal(fleet.policy, result.removed, live),
        allow=allow_large_changes,
    )
    if blast.refusal:
        where = f"{fleet.source_of(suspended[0].iccid, 'state')}: " if suspended else f"{fleet.path}: "
        issues.append(f"{where}{blast.refusal}")
    in_use = cost_centers_of(live.values()) if cost_centers_in_use is None else cost_centers_in_use
    result.warnings = new_cost_center_warnings(fleet, result.plans, in_use)
    return result


def plan_summary(plans: Mapping[str, Plan], shown: int = 12) -> str:
    """What converging the live account takes, grouped by call: readable in a pull-request comment, and of
    a size that does not grow with the fleet."""
    groups: dict[str, list[str]] = {}
    for name, plan in plans.items():
        for op in plan.ops:
            if not isinstance(op, SetUsageLimit | RemoveUsageLimit):
                groups.setdefault(op.describe(), []).append(name)
    if not groups:
        return "live account already matches fleet.yaml (usage limits are compared by the diff below)"
    lines = [
        "Lattigo changes needed to make the live account match fleet.yaml "
        "(usage limits, which the API cannot read back, appear only in the diff):"
    ]
    for what, names in sorted(groups.items()):
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        lines.append(f"  {what}: {len(names)} SIM(s): {', '.join(names[:shown])}{more}")
    return "\n".join(lines)
