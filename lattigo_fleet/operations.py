"""The Lattigo calls an apply makes, one type per kind: each knows its phase, its batch key (which other SIMs'
operations can share its bulk request) and how to send a batch of itself.

As in the request batcher of Terraform's Google provider, where each request carries its own combine and send
functions: the planner builds these (pure data), the batcher groups them by `batch_key`, and
`type(ops[0]).send(ops, ctx)` makes the call. Nothing is dispatched by name.

`send` returns one outcome per operation, in order: None for done, or a SimOperationError for that SIM alone;
it records each success in the shared live snapshot (`ctx.live`), so the rest of the run sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from lattigo_fleet.fleetfile import UsageLimit
from lattigo_fleet.vocabulary import (
    ACTIVE,
    PENDING_ACTIVATION,
    PENDING_SUSPEND_NO_BILLING,
    SUSPENDED,
)

if TYPE_CHECKING:
    from lattigo_fleet.client import BulkResult, LattigoApi
    from lattigo_fleet.live import LiveFleet


# Phases, in execution order: a SIM must be active before its state, cost center or usage limit can change, and
# a state change must not race an activation. Operations of one phase for many SIMs can share bulk calls.
PHASE_ACTIVATE = 0
PHASE_STATE = 1
PHASE_FIELDS = 2


class SimOperationError(Exception):
    """A SIM could not be converged; the message is the API's own where it gave one."""


class SendContext(Protocol):
    client: LattigoApi
    live: LiveFleet


Outcome = SimOperationError | None


@dataclass(frozen=True)
class Op:
    """One Lattigo call for one SIM."""

    iccid: str
    kind: ClassVar[str]
    phase: ClassVar[int]

    @property
    def batch_key(self) -> Hashable:
        """Operations with equal keys share one bulk request: the kind and the parameters they share."""
        return (self.kind,)

    def describe(self) -> str:
        """What it does to the account, for the summary a reviewer reads."""
        return self.kind.replace("_", " ")

    @property
    def touches(self) -> str:
        """The account field it sets, in fleet.yaml's terms (`state`, `cost_center`, `notes.note1`, ...)."""
        return self.field_name

    field_name: ClassVar[str] = "state"

    def to_record(self) -> dict[str, Any]:
        """The operation as plain JSON data (the plan document): its kind and its parameters."""
        record: dict[str, Any] = {"kind": self.kind}
        for item in fields(self):
            if item.name == "iccid":
                continue
            value = getattr(self, item.name)
            if isinstance(value, UsageLimit):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            record[item.name] = value
        return record

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        raise NotImplementedError


def _outcomes(ops: Sequence[Op], keys: Sequence[str], failed: dict[str, str]) -> list[Outcome]:
    return [
        SimOperationError(f"{op.iccid}: {failed[k]}") if k in failed else None for op, k in zip(ops, keys, strict=True)
    ]


def _send_by_device_name(
    ops: Sequence[Op], ctx: SendContext, call: Callable[[list[str]], BulkResult], record: dict[str, Any] | None
) -> list[Outcome]:
    """The endpoints that take device names: look each one up in the snapshot (a SIM still without one fails
    alone), make one call for the rest, and record what succeeded."""
    names: list[str] = []
    early: list[Outcome] = []
    for op in ops:
        sim = ctx.live.get(op.iccid)
        name = str(sim["device_name"]) if sim and sim.get("device_name") else ""
        names.append(name)
        early.append(None if name else SimOperationError(f"{op.iccid} has no device_name in the account yet"))
    sendable = [(op, n) for op, n, e in zip(ops, names, early, strict=True) if e is None]
    failed: dict[str, str] = {}
    if sendable:
        result = call([n for _, n in sendable])
        failed = result.failed
        if record:
            for op, name in sendable:
                if name not in failed:
                    ctx.live.record(op.iccid, **record)
    return [e if e is not None else o for e, o in zip(early, _outcomes(ops, names, failed), strict=True)]


@dataclass(frozen=True)
class Activate(Op):
    """An activation row. One request carries one rate plan; everything else is per row."""

    rate_plan: str
    imei: str | None
    region_code: str | None
    device_sku: str | None
    notes: tuple[tuple[str, str], ...]
    kind: ClassVar[str] = "activate"
    phase: ClassVar[int] = PHASE_ACTIVATE
    field_name: ClassVar[str] = "origin"

    @property
    def batch_key(self) -> Hashable:
        return (self.kind, self.rate_plan)

    def describe(self) -> str:
        return f"activate on {self.rate_plan!r}"

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        from lattigo_fleet.client import ActivationRow

        rows = [
            ActivationRow(
                iccid=op.iccid, imei=op.imei, device_sku=op.device_sku, region_code=op.region_code, **dict(op.notes)
            )
            for op in _typed(ops, Activate)
        ]
        result = ctx.client.activate(rows, rate_plan_name=_typed(ops, Activate)[0].rate_plan)
        outcomes: list[Outcome] = []
        for op in _typed(ops, Activate):
            if op.iccid in result.rejected:
                outcomes.append(SimOperationError(f"{op.iccid}: activation rejected: {result.rejected[op.iccid]}"))
            else:
                ctx.live.record(op.iccid, state=PENDING_ACTIVATION, imei=op.imei, **dict(op.notes))
                outcomes.append(None)
        return outcomes


@dataclass(frozen=True)
class _SimState(Op):
    action: ClassVar[str]
    lands_in: ClassVar[str]
    phase: ClassVar[int] = PHASE_STATE

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        iccids = [op.iccid for op in ops]
        result = ctx.client.change_simstate(iccids, cls.action)
        for iccid in result.succeeded:
            ctx.live.record(iccid, state=cls.lands_in)
        return _outcomes(ops, iccids, result.failed)


@dataclass(frozen=True)
class Suspend(_SimState):
    kind: ClassVar[str] = "suspend"
    action: ClassVar[str] = "suspend"
    lands_in: ClassVar[str] = SUSPENDED


@dataclass(frozen=True)
class Restore(_SimState):
    kind: ClassVar[str] = "restore"
    action: ClassVar[str] = "restore"
    lands_in: ClassVar[str] = ACTIVE


@dataclass(frozen=True)
class SuspendNoBilling(Op):
    """Suspension without billing, which the API asks for by ICCID and IMEI (the account's IMEI)."""

    imei: str | None
    kind: ClassVar[str] = "suspend_no_billing"
    phase: ClassVar[int] = PHASE_STATE

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        typed = _typed(ops, SuspendNoBilling)
        result = ctx.client.suspend_no_billing([(op.iccid, op.imei or "") for op in typed])
        for iccid in result.succeeded:
            ctx.live.record(iccid, state=PENDING_SUSPEND_NO_BILLING)
        return _outcomes(ops, [op.iccid for op in ops], result.failed)


@dataclass(frozen=True)
class SetCostCenter(Op):
    cost_center: str
    kind: ClassVar[str] = "cost_center"
    phase: ClassVar[int] = PHASE_FIELDS
    field_name: ClassVar[str] = "cost_center"

    @property
    def batch_key(self) -> Hashable:
        return (self.kind, self.cost_center)

    def describe(self) -> str:
        return f"cost center -> {self.cost_center!r}"

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        cost_center = _typed(ops, SetCostCenter)[0].cost_center
        return _send_by_device_name(
            ops, ctx, lambda names: ctx.client.change_cost_center(names, cost_center), {"cost_center": cost_center}
        )


@dataclass(frozen=True)
class SetNote(Op):
    """One note field. The note endpoint takes one device per call: nothing merges with it."""

    field: str
    value: str
    kind: ClassVar[str] = "note"
    phase: ClassVar[int] = PHASE_FIELDS

    @property
    def batch_key(self) -> Hashable:
        return (self.kind, self.iccid, self.field, self.value)

    @property
    def touches(self) -> str:
        return f"notes.{self.field}"

    def describe(self) -> str:
        return f"{self.field} -> {self.value!r}"

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for op in _typed(ops, SetNote):
            try:
                ctx.client.set_note(op.iccid, op.field, op.value, id_type="iccid")
            except Exception as exc:
                outcomes.append(SimOperationError(f"{op.iccid}: setting {op.field} failed: {exc}"))
                continue
            ctx.live.record(op.iccid, **{op.field: op.value})
            outcomes.append(None)
        return outcomes


@dataclass(frozen=True)
class SetUsageLimit(Op):
    limit: UsageLimit
    kind: ClassVar[str] = "set_limit"
    phase: ClassVar[int] = PHASE_FIELDS
    field_name: ClassVar[str] = "usage_limit"

    @property
    def batch_key(self) -> Hashable:
        return (self.kind, self.limit)

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        limit = _typed(ops, SetUsageLimit)[0].limit
        return _send_by_device_name(
            ops,
            ctx,
            lambda names: ctx.client.set_usage_limit(
                names, kb_limit=limit.kb_limit, action=limit.action, usernames=list(limit.usernames)
            ),
            None,
        )


@dataclass(frozen=True)
class RemoveUsageLimit(Op):
    kind: ClassVar[str] = "remove_limit"
    phase: ClassVar[int] = PHASE_FIELDS
    field_name: ClassVar[str] = "usage_limit"

    @classmethod
    def send(cls, ops: Sequence[Op], ctx: SendContext) -> list[Outcome]:
        return _send_by_device_name(ops, ctx, ctx.client.remove_usage_limit, None)


# The state transitions the platform offers, as the operations that make them (in order).
STATE_OPS: dict[str, type[Op]] = {"suspend": Suspend, "restore": Restore, "suspend_no_billing": SuspendNoBilling}


def _typed(ops: Sequence[Op], kind: type[Any]) -> list[Any]:
    """A batch holds one kind (its key starts with the kind): typed access to its fields."""
    assert all(isinstance(op, kind) for op in ops), f"a batch mixes kinds: {ops!r}"
    return list(ops)
