"""The Pulumi program: fleet.yaml -> validated desired state -> one Sim resource per SIM.

Everything that can be known before any change is checked here, all at once, and reported with
file:line:column: schema and cross-reference errors (spec), then against the account (rate plans and
usernames the API knows, IMEIs that differ from the live SIM, state transitions the platform cannot make,
the blast-radius guard). Only a clean fleet registers resources; nothing is sent until `pulumi up` runs them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import pulumi
from pulumi.runtime import get_config

from lattigo_fleet.planner import Op, Plan, is_suspension, plan_sim
from lattigo_fleet.spec import FleetError, FleetSpec, Issue, load_fleet, validate_against_account
from providers.guard import FleetGuard
from providers.sim import Sim

# Exit code that tells the language host "the errors are already reported" (no extra noise, no traceback).
_REPORTED = 32


def _setting(key: str, env: str, default: str | None = None) -> str | None:
    return get_config(key) or os.environ.get(env) or default


def _fail(issues: Iterable[Issue | str]) -> None:
    issues = list(issues)
    for issue in issues:
        pulumi.log.error(str(issue))
    pulumi.log.error(f"{len(issues)} problem(s) found before any change was made; nothing was sent to Lattigo")
    sys.exit(_REPORTED)


def _issue(fleet: FleetSpec, iccid: str, field: str | None, message: str) -> Issue:
    loc = fleet.source_of(iccid, field)
    index, sim = next((i, s) for i, s in enumerate(fleet.sims) if s.iccid == iccid)
    path = f"sims[{index}]" + (f".{field}" if field else "")
    who = iccid if sim.name == iccid else f"{sim.name} ({iccid})"
    return Issue(loc.file, loc.line, loc.column, path, f"SIM {who}: {message}")


@dataclass
class AccountCheck:
    issues: list[Issue | str] = field(default_factory=list)
    plans: dict[str, Plan] = field(default_factory=dict)  # by SIM name, against the live account
    suspensions: list[str] = field(default_factory=list)  # ICCIDs this fleet takes out of service


def check_against_account(fleet: FleetSpec, client, allow_large_changes: bool) -> AccountCheck:
    """Checks that need the live account: three reads (rate plans, users, one paged fleet snapshot)."""
    rate_plans = {p.get("name") for p in client.rate_plans()}
    usernames = set(client.users())
    result = AccountCheck(issues=list(validate_against_account(fleet, rate_plans, usernames)))
    issues, suspensions = result.issues, result.suspensions

    live = client.snapshot()
    for sim in fleet.sims:
        current = live.get(sim.iccid)
        if current and sim.imei and current.get("imei") and current["imei"] != sim.imei:
            issues.append(_issue(fleet, sim.iccid, "imei",
                                 f"declared IMEI {sim.imei} differs from the account's {current['imei']}; "
                                 "the Lattigo API cannot change the IMEI of an activated SIM"))
        plan = plan_sim(sim, current)
        for problem in plan.problems:
            issues.append(_issue(fleet, sim.iccid, "state" if current else None, problem))
        result.plans[sim.name] = plan
        if is_suspension((current or {}).get("state"), sim.state):
            suspensions.append(sim.iccid)

    limit = fleet.policy.limit_for(len(fleet.sims))
    if len(suspensions) > limit and not allow_large_changes:
        issues.append(
            f"{fleet.source_of(suspensions[0]).file}: policy.max_changes: this change would suspend "
            f"{len(suspensions)} SIMs, more than the limit of {limit}; if that is intended, run "
            "`pulumi config set lattigo-fleet:allowLargeChanges true` for this run"
        )
    return result


def _describe(op: Op) -> str:
    if op.kind == "activate":
        return f"activate on {op.param('rate_plan')!r}"
    if op.kind == "cost_center":
        return f"cost center -> {op.param('cost_center')!r}"
    if op.kind == "note":
        return f"{op.param('field')} -> {op.param('value')!r}"
    return op.kind.replace("_", " ")


def plan_summary(plans: dict[str, Plan], shown: int = 12) -> str:
    """What converging the live account takes, grouped by call: readable in a pull-request comment."""
    groups: dict[str, list[str]] = {}
    for name, plan in plans.items():
        for op in plan.ops:
            if op.kind not in ("set_limit", "remove_limit"):
                groups.setdefault(_describe(op), []).append(name)
    if not groups:
        return "live account already matches fleet.yaml (usage limits are compared by the diff below)"
    lines = ["Lattigo changes needed to make the live account match fleet.yaml "
             "(usage limits, which the API cannot read back, appear only in the diff):"]
    for what, names in sorted(groups.items()):
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        lines.append(f"  {what}: {len(names)} SIM(s): {', '.join(names[:shown])}{more}")
    return "\n".join(lines)


def main() -> None:
    fleet_file = _setting("lattigo-fleet:fleetFile", "LATTIGO_FLEET_FILE", "fleet.yaml")
    try:
        fleet = load_fleet(fleet_file)
    except FleetError as exc:
        _fail(exc.issues)

    endpoint = _setting("lattigo:endpoint", "LATTIGO_ENDPOINT")
    key_name = _setting("lattigo:keyName", "LATTIGO_KEY_NAME")
    api_key = _setting("lattigo:apiKey", "LATTIGO_API_KEY")
    if not (endpoint and key_name and api_key):
        _fail(["Lattigo credentials are not configured: set lattigo:endpoint, lattigo:keyName and "
               "lattigo:apiKey (secret) in the stack, or LATTIGO_ENDPOINT, LATTIGO_KEY_NAME, LATTIGO_API_KEY"])

    from lattigo_fleet.client import LattigoClient, LattigoError

    allow_large = str(_setting("lattigo-fleet:allowLargeChanges", "LATTIGO_ALLOW_LARGE_CHANGES", "false"))
    allow_large_changes = allow_large.lower() in ("1", "true", "yes")
    try:
        checked = check_against_account(fleet, LattigoClient(endpoint, key_name, api_key), allow_large_changes)
    except LattigoError as exc:
        _fail([f"cannot read the Lattigo account at {endpoint}: {exc}"])
    if checked.issues:
        _fail(checked.issues)
    pulumi.log.info(plan_summary(checked.plans))

    # Registered first: its check sees which SIMs left fleet.yaml and stops the run before any removal.
    FleetGuard(
        "fleet-guard",
        iccids=[sim.iccid for sim in fleet.sims],
        on_remove=fleet.policy.on_remove,
        limit=fleet.policy.limit_for(len(fleet.sims)),
        suspensions=len(checked.suspensions),
        allow_large_changes=allow_large_changes,
    )
    for sim in fleet.sims:
        Sim(sim.name, sim.to_inputs())
    pulumi.export("sim_count", len(fleet.sims))
