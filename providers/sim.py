"""The `Sim` dynamic resource: one per SIM in fleet.yaml; its Pulumi name and id are the ICCID.

Thin glue between the Pulumi engine and the rest: `check` validates one SIM's inputs and records how the SIM
came under management, `diff` names the account fields that differ, `create`/`update` hand the SIM to the
Applier (planner + batched client calls), `read` reports the SIM as the live account shows it (refresh), and
`delete` follows fleet.yaml's `policy.on_remove` within the blast-radius guard.

What a resource stores is what fleet.yaml declares (DesiredSim.to_inputs) plus `origin`: nothing the
platform changes by itself (usage counters, connection times), so a refresh shows drift in declared fields
and nothing else. Everything the process shares lives in providers.runtime; credentials never reach state.
"""

from __future__ import annotations

from typing import Any, cast

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from lattigo_fleet.fleetfile import ACTIVATION_FIELDS, UNMANAGED, DesiredSim, SimInputs
from lattigo_fleet.provider_host import DetailedDiffResult, ProviderError, warn
from providers import runtime as rt

# How the SIM came under management, recorded at its first apply. An adopted SIM was already in the account:
# its rate plan, region code and SKU were never applied (the API can neither read nor change them), so they
# are not recorded. An activated SIM got them from its activation request, and they cannot change after.
ADOPTED, ACTIVATED = "adopted", "activated"


def sdk_props(inputs: SimInputs) -> dict[str, Any]:
    """A SIM's inputs as the SDK types resource properties (JSON-able values under string keys)."""
    return cast(dict[str, Any], inputs)


def declared_changes(stored: dict[str, Any], declared: dict[str, Any]) -> dict[str, str]:
    """The account fields whose declared value differs from the stored one, as a detailed diff
    (`{"cost_center": "update", "notes.note1": "add"}`). Stored values are the last applied or, after a
    refresh, the live ones. A field fleet.yaml does not declare, or names in `ignore_changes`, is no change."""
    old, new = DesiredSim.from_inputs(stored), DesiredSim.from_inputs(declared)
    ignored = set(new.ignore_changes)
    changes: dict[str, str] = {}
    if new.state != old.state and "state" not in ignored:
        changes["state"] = "update"
    if new.cost_center is not None and "cost_center" not in ignored and new.cost_center != old.cost_center:
        changes["cost_center"] = "add" if old.cost_center is None else "update"
    if "notes" not in ignored:
        for name, value in new.notes.items():
            if old.notes.get(name) != value:
                changes[f"notes.{name}"] = "add" if name not in old.notes else "update"
    if new.usage_limit is not UNMANAGED and new.usage_limit != old.usage_limit:
        changes["usage_limit"] = "add" if old.usage_limit is UNMANAGED else "update"
    return changes


def frozen_field_failures(stored: dict[str, Any], declared: dict[str, Any]) -> list[CheckFailure]:
    """An activated SIM's activation fields cannot change: the Lattigo API has no call for it."""
    failures = []
    for key in ACTIVATION_FIELDS:
        old, new = stored.get(key), declared.get(key)
        if old and new is not None and new != old:
            failures.append(
                CheckFailure(
                    key,
                    f"SIM {declared.get('name') or declared.get('iccid')}: {key} cannot change from {old!r} to "
                    f"{new!r} on an activated SIM (the Lattigo API has no call for it); revert it in fleet.yaml",
                )
            )
    return failures


def _warn_unapplied(runtime: rt.Runtime, desired: DesiredSim, fields: list[str]) -> None:
    """Said once per run: a declared rate plan (or region code, SKU) does nothing for a SIM already in the
    account, and a reviewer must not believe otherwise."""
    if "unapplied" in runtime.warned:
        return
    runtime.warned.add("unapplied")
    warn(
        f"{', '.join(fields)} declared for SIMs already in the account (first: {desired.name} {desired.iccid}) "
        "is not applied: the Lattigo API can neither read nor change the rate plan, region code or SKU of an "
        "activated SIM, so they are used only to activate new SIMs and are not recorded for adopted ones"
    )


def _settle_if_planned_here(news: dict[str, Any]) -> None:
    """This SIM's diff found nothing to change, so no call for it will reach the batcher in this run: strike it
    off what the run's bulk requests wait for. Only for the diff of this run's program (what fleet.yaml says
    now); the engine also diffs during a refresh, against the stored inputs."""
    runtime = rt.runtime()
    runtime.expect_this_run()
    declared = runtime.fleet().by_iccid.get(str(news.get("iccid")))
    if declared is None:
        return
    ours = {k: v for k, v in declared.to_inputs().items() if k not in ACTIVATION_FIELDS}
    theirs = {k: v for k, v in news.items() if k not in (*ACTIVATION_FIELDS, "origin", "__provider")}
    if DesiredSim.from_inputs(ours) == DesiredSim.from_inputs(theirs):
        runtime.applier.batcher.settle(declared.iccid)


def _check_approved(runtime: rt.Runtime, desired: DesiredSim, last_limit: Any) -> None:
    """Under an approved strict plan, a SIM sends exactly the calls the plan lists for it, or nothing."""
    from lattigo_fleet.planner import NOT_READ, limit_suspension_candidate, plan_sim

    live = runtime.live.get(desired.iccid)
    month = runtime.live.month_bytes(desired.iccid) if limit_suspension_candidate(desired, live) else NOT_READ
    planned = [op.to_record() for op in plan_sim(desired, live, last_limit, month_bytes=month).ops]
    entry = runtime.approved_entry(desired.iccid)
    approved = list(entry["operations"]) if entry else []
    if planned != approved:
        calls = ", ".join(op["kind"] for op in planned) or "no call"
        was = ", ".join(op["kind"] for op in approved) or "no call"
        raise ProviderError(
            f"{desired.name} ({desired.iccid}): the plan for this SIM is now {calls}, the approved plan says "
            f"{was}: the account moved since the review, so nothing was sent for this SIM (plan again)"
        )


def _last_limit(stored: dict[str, Any]) -> Any:
    return DesiredSim.from_inputs(stored).usage_limit if stored.get("iccid") else UNMANAGED


def _observed(iccid: str, stored: dict[str, Any]) -> SimInputs | None:
    """The SIM as the live account shows it, in the terms of its stored declaration (what a refresh stores),
    or None when the account no longer has it."""
    from lattigo_fleet.planner import NOT_READ, limit_suspension_candidate, observe

    runtime = rt.runtime()
    live = runtime.live.get(iccid)
    if live is None:
        return None
    declared = DesiredSim.from_inputs(stored)
    month = runtime.live.month_bytes(iccid) if limit_suspension_candidate(declared, live) else NOT_READ
    observed = observe(declared, live, month).to_inputs()
    observed["origin"] = stored.get("origin") or ADOPTED
    for key in ACTIVATION_FIELDS:  # not readable: what was recorded stays
        if stored.get(key) is not None:
            observed[key] = stored[key]
    return observed


def _as_live(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored inputs brought up to the live account; as they are when the account does not have the SIM (its
    update then reports that the SIM is gone) or they are not a SIM's."""
    if not stored.get("iccid"):
        return stored
    observed = _observed(str(stored["iccid"]), stored)
    return stored if observed is None else sdk_props(observed)


class SimProvider(ResourceProvider):
    # The pickled provider holds no attributes, let alone a secret (credentials live in the runtime), so it
    # need not be encrypted into every resource's inputs and outputs: a plain ~80-byte reference instead.
    serialize_as_secret_always = False

    def configure(self, req: ConfigureRequest) -> None:
        rt.configure(req.config)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items() if k != "origin"}
        try:
            desired = DesiredSim.from_inputs(inputs)
        except ValueError as exc:
            return CheckResult(news, [CheckFailure("iccid", f"invalid SIM declaration: {exc}")])
        if olds.get("iccid"):
            origin = olds.get("origin") or ADOPTED  # state of earlier versions: we cannot know, refuse nothing
        else:
            runtime = rt.runtime()
            origin = ADOPTED if runtime.live.get(desired.iccid) is not None else ACTIVATED
            declared = [key for key in ACTIVATION_FIELDS if inputs.get(key)]
            if origin == ADOPTED and declared:
                _warn_unapplied(runtime, desired, declared)
        failures: list[CheckFailure] = []
        if origin == ADOPTED:
            for key in ACTIVATION_FIELDS:
                inputs.pop(key, None)
        else:
            failures = frozen_field_failures(olds, inputs)
        inputs["origin"] = origin
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DetailedDiffResult:
        # Against the live account, not the stored inputs: the project does not refresh before every run (a
        # refresh is a whole pass of the engine over the stack, ~40% of a no-change preview), so what the state
        # holds is what was last applied. The provider's live snapshot, read once per run, says what the SIM
        # is now, in the terms of its declaration, exactly as a refresh would have stored it. In a refresh's
        # own diff the engine passes the refreshed inputs as `olds`, which are that already.
        changes = declared_changes(_as_live(olds), news)
        if not changes:
            _settle_if_planned_here(news)
        return DetailedDiffResult(changes)

    def _converge(self, news: dict[str, Any], last_limit: Any) -> dict[str, Any]:
        from lattigo_fleet.apply import SimOperationError

        runtime = rt.runtime()
        runtime.may_write()
        runtime.expect_this_run()
        desired = DesiredSim.from_inputs(news)
        if runtime.approved_plan is not None:
            _check_approved(runtime, desired, last_limit)
        try:
            runtime.applier.converge(desired, last_limit)
        except SimOperationError as exc:
            raise ProviderError(str(exc)) from None
        return dict(news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        # An ICCID already in the account is adopted: no activation, its other fields converged. We do not
        # know what usage limit it has, so a declared limit (or "no limit") is always sent once.
        return CreateResult(id_=props["iccid"], outs=self._converge(props, UNMANAGED))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._converge(news, _last_limit(olds)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        observed = _observed(id_, props)
        if observed is None:
            return ReadResult(id_=None, outs={})
        return ReadResult(id_=id_, outs=sdk_props(observed), inputs=sdk_props(observed))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        runtime = rt.runtime()
        if runtime.fleet().policy.on_remove != "suspend":
            return  # retain: forget the SIM, send nothing
        from lattigo_fleet.guard import serving

        live = runtime.live.get(id_)
        if not serving(live):  # already out of service, or gone: nothing to send
            return
        runtime.may_write()
        runtime.check_removal(id_)
        if runtime.approved_plan is not None and (runtime.approved_entry(id_) or {}).get("action") != "forget_suspend":
            raise ProviderError(f"{id_}: its suspension is not in the approved plan; nothing sent (plan again)")
        from lattigo_fleet.apply import SimOperationError

        try:
            if live is not None and live.get("state") != "active":  # still activating: suspend where it lands
                runtime.applier.wait_settled(id_)
            runtime.applier.suspend(id_)
        except SimOperationError as exc:
            raise ProviderError(str(exc)) from None


class Sim(Resource, module="lattigo", name="Sim"):
    """One SIM of the fleet. Inputs: DesiredSim.to_inputs(); outputs: the same, as applied or refreshed."""

    def __init__(self, name: str, inputs: SimInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SimProvider(), name, sdk_props(inputs), opts)
