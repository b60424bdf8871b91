"""`FleetGuard`: one bookkeeping resource per stack that lets the blast-radius guard see the whole run.

The program cannot see which SIMs the stack held before, and deletes never reach a provider in a preview.
This resource can: its outputs keep the ICCIDs of the last applied fleet (and the policy), and Pulumi hands
them to `diff` at the start of every preview and up (the program registers it first). `diff` counts what the
run takes out of service, against the live account (lattigo_fleet.guard) and refuses the run before anything
is sent; the removals it allowed are the ones a SIM's delete may carry out.

`pulumi destroy` does not run the program: every Sim is registered `deleted_with` this guard, so a destroy
deletes no Sim one by one. The guard's own delete counts the stack's serving SIMs under the same rule and, if
allowed, suspends them in bulk (on_remove: suspend), or refuses with nothing sent.

Its inputs are a count and a digest, never the ICCID list, so that a diff of the fleet shows one line here
whatever its size. It makes no API call but reads.
"""

from __future__ import annotations

import os
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, ConfigureRequest, CreateResult, Resource, ResourceProvider, UpdateResult

from lattigo_fleet import guard
from lattigo_fleet.fleetfile import FleetSpec, Policy
from lattigo_fleet.provider_host import DetailedDiffResult, ProviderError, warn
from providers import runtime as rt


def fleet_digest(fleet: FleetSpec) -> str:
    """What the guard records changes exactly when this does: the declared ICCIDs and the policy."""
    import hashlib

    policy = fleet.policy
    text = "\n".join(
        [policy.on_remove, str(policy.max_changes), str(policy.max_changes_percent), *sorted(fleet.by_iccid)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def guard_inputs(fleet: FleetSpec) -> dict[str, Any]:
    return {"sims": len(fleet.sims), "fleet_digest": fleet_digest(fleet)}


def _record(fleet: FleetSpec) -> dict[str, Any]:
    policy = fleet.policy
    return {
        **guard_inputs(fleet),
        "iccids": sorted(fleet.by_iccid),
        "policy": {
            "on_remove": policy.on_remove,
            "max_changes": policy.max_changes,
            "max_changes_percent": policy.max_changes_percent,
        },
    }


def _stored_policy(props: dict[str, Any]) -> Policy:
    stored = props.get("policy")
    if isinstance(stored, dict):
        count = stored.get("max_changes")
        return Policy(
            stored.get("on_remove") or "retain",
            max_changes=None if count is None else int(count),
            max_changes_percent=stored.get("max_changes_percent"),
        )
    # Written by an earlier version: the policy's limit for the fleet of that time.
    return Policy(props.get("on_remove") or "retain", max_changes=int(props.get("limit") or 0))


class FleetGuardProvider(ResourceProvider):
    serialize_as_secret_always = False  # as SimProvider: a reference to an attribute-free class, no secret

    def configure(self, req: ConfigureRequest) -> None:
        rt.configure(req.config)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DetailedDiffResult:
        runtime = rt.runtime()
        fleet = runtime.fleet()
        if fleet_digest(fleet) != news.get("fleet_digest"):
            # Not this run's program speaking: a refresh compares the refreshed state with the stored inputs.
            return DetailedDiffResult({})
        if (
            olds.get("iccids") is not None
            and olds.get("fleet_digest") is None
            and not os.environ.get(guard.UPGRADE_ENV)
        ):
            # Written by an earlier version: its Sims are named by `name`. Without the aliases that one upgrade
            # run registers, Pulumi would see every named SIM as removed and added again.
            raise ProviderError(
                "this stack was last applied by an earlier lattigo-fleet, whose SIM resources are named by their "
                f"`name`: run `{guard.UPGRADE_ENV}=1 pulumi up` once to take them over in place (nothing is sent to "
                "Lattigo; see docs/fleet-yaml.md, Upgrading a stack from an earlier version), then run as usual"
            )
        held = [str(i) for i in olds.get("iccids") or []]
        live = {iccid: sim for iccid in held if (sim := runtime.live.get(iccid)) is not None}
        removed = guard.suspended_by_removal(fleet.policy, [i for i in held if i not in fleet.by_iccid], live)
        declared_live = {sim.iccid: s for sim in fleet.sims if (s := runtime.live.get(sim.iccid)) is not None}
        suspended = [sim.name for sim in guard.suspended_by_fleet(fleet.sims, declared_live)]
        runtime.held_count = len(held)
        refusal = guard.assess(
            fleet.policy,
            held=len(held),
            declared=len(fleet.sims),
            suspended=suspended,
            removed=removed,
            allow=runtime.settings.allow_large_changes,
        ).refusal
        if refusal:
            raise ProviderError(refusal)
        runtime.approve_removals(removed)
        if removed:  # the program's summary cannot see removals: say what they will do
            shown = ", ".join(removed[:10]) + (f" and {len(removed) - 10} more" if len(removed) > 10 else "")
            warn(
                f"{len(removed)} SIM(s) removed from fleet.yaml will be suspended (policy.on_remove: suspend): {shown}"
            )
        if olds.get("fleet_digest") == news.get("fleet_digest"):
            return DetailedDiffResult({})
        return DetailedDiffResult(
            {"sims": "update"} if olds.get("sims") != news.get("sims") else {"fleet_digest": "update"}
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="fleet", outs=_record(rt.runtime().fleet()))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_record(rt.runtime().fleet()))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """`pulumi destroy`: the whole fleet leaves the stack at once, under the policy last applied."""
        runtime = rt.runtime()
        policy = _stored_policy(props)
        held = [str(i) for i in props.get("iccids") or []]
        live = {iccid: sim for iccid in held if (sim := runtime.live.get(iccid)) is not None}
        removed = guard.suspended_by_removal(policy, held, live)
        refusal = guard.assess(
            policy,
            held=len(held),
            declared=0,
            removed=removed,
            allow=runtime.settings.allow_large_changes,
            command="pulumi destroy",
        ).refusal
        if refusal:
            raise ProviderError(refusal)
        failed = runtime.applier.suspend_all(removed) if removed else {}
        if failed:
            raise ProviderError("; ".join(f"{iccid}: {why}" for iccid, why in sorted(failed.items())))


class FleetGuard(Resource, module="lattigo", name="FleetGuard"):
    def __init__(self, name: str, fleet: FleetSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FleetGuardProvider(), name, guard_inputs(fleet), opts)
