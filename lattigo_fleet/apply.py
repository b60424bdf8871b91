"""Carry out a SIM's planned operations: batched across concurrent SIMs, phase by phase.

`Applier.converge(desired, last_limit)` is what the provider's create and update call: plan against the live
snapshot, send the calls (merged with other SIMs' compatible calls by the batcher), wait for asynchronous
work, plan again, until nothing is left. Per-device failures in a bulk answer fail only that SIM, with the
API's own message.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from lattigo_fleet.batcher import Batcher
from lattigo_fleet.client import ActivationRow, LattigoApi
from lattigo_fleet.live import LiveFleet
from lattigo_fleet.planner import (
    ACTIVE,
    PENDING_ACTIVATION,
    PENDING_SUSPEND_NO_BILLING,
    PHASE_STATE,
    SUSPENDED,
    Op,
    Plan,
    plan_sim,
)
from lattigo_fleet.spec import UNMANAGED, DesiredSim, UsageLimit

# The operations whose batches can be foreseen from fleet.yaml and the live account. Usage limits are compared
# with what was last set (stored per resource, unknown here) and notes are one call per SIM: not foreseen.
FORESEEN = ("activate", "suspend", "restore", "suspend_no_billing", "cost_center")


class SimOperationError(Exception):
    """A SIM could not be converged; the message is the API's own where it gave one."""


class Applier:
    def __init__(
        self,
        client: LattigoApi,
        live: LiveFleet,
        *,
        window: float = 0.2,
        activation_timeout: float = 300.0,
        max_rounds: int = 6,
        capacity: int | None = None,
    ) -> None:
        self.client = client
        self.live = live
        self.activation_timeout = activation_timeout
        self.max_rounds = max_rounds
        self.batcher: Batcher[Op] = Batcher(self._flush, window=window, max_size=client.chunk_size,
                                            capacity=capacity)

    def expect(self, plans: Iterable[Plan]) -> None:
        """What this run will ask for, as the preview planned it (fleet.yaml against the live account): each
        bulk request goes as soon as every SIM it expects has asked (see Batcher)."""
        expected: dict[Hashable, set[str]] = {}
        for plan in plans:
            for op in plan.ops:
                if op.kind in FORESEEN:
                    expected.setdefault(op.batch_key, set()).add(op.iccid)
        for key, iccids in expected.items():
            self.batcher.expect(key, iccids)

    # -- one SIM ---------------------------------------------------------------------------------------
    def converge(self, desired: DesiredSim, last_limit: UsageLimit | None | object = UNMANAGED) -> list[Op]:
        """Make the live SIM match `desired`. Returns the operations sent. Raises SimOperationError."""
        sent: list[Op] = []
        ignore = None  # the SIM's ignore_changes, until this apply activates it: then every declared value
        for _ in range(self.max_rounds):
            plan = plan_sim(desired, self.live.get(desired.iccid), last_limit, ignore=ignore)
            if plan.problems:
                raise SimOperationError("; ".join(plan.problems))
            if not plan.ops and not plan.wait_for_settle:
                return sent
            if plan.wait_for_settle:  # mid-transition: let it land, then plan again from there
                self._wait(desired.iccid)
                continue
            # Send the first phase only: later phases are planned again from the state it leaves behind.
            phase = min(op.phase for op in plan.ops)
            ops = [op for op in plan.ops if op.phase == phase]
            self._send(ops)
            sent += ops
            if any(op.kind == "activate" for op in ops):
                ignore = ()
            for op in ops:
                if op.kind in ("activate", "remove_limit"):
                    last_limit = None  # a freshly activated SIM has no usage limit
                elif op.kind == "set_limit":
                    last_limit = desired.usage_limit
            if any(op.kind in ("activate", "suspend_no_billing") for op in ops):
                self._wait(desired.iccid)
        raise SimOperationError(f"{desired.iccid}: still not converged after {self.max_rounds} rounds")

    def suspend(self, iccid: str) -> None:
        """Suspend one SIM (a removal under on_remove: suspend), sharing a bulk request with concurrent ones."""
        op = Op("suspend", iccid, PHASE_STATE)
        self.batcher.call(op.batch_key, op, op.iccid)

    def suspend_all(self, iccids: Sequence[str]) -> dict[str, str]:
        """Suspend many SIMs at once (`pulumi destroy` under on_remove: suspend): bulk requests of the
        client's chunk size. Returns the per-device failures, by ICCID."""
        ops = [Op("suspend", iccid, PHASE_STATE) for iccid in iccids]
        failed: dict[str, str] = {}
        for start in range(0, len(ops), self.client.chunk_size):
            chunk = ops[start:start + self.client.chunk_size]
            for op, outcome in zip(chunk, self._send_suspend(chunk), strict=True):
                if outcome is not None:
                    failed[op.iccid] = str(outcome)
        return failed

    def _send(self, ops: list[Op]) -> None:
        """Send one phase of one SIM's operations; raise with every failure's message."""
        errors: list[str] = []
        if ops[0].phase == PHASE_STATE:
            # State changes are ordered (restore, then suspend): one after the other.
            for op in ops:
                try:
                    self.batcher.call(op.batch_key, op, op.iccid)
                except SimOperationError as exc:
                    errors.append(str(exc))
                    break
        else:
            # Field changes are independent: queue them all so they share one merge window, and send the
            # per-device note calls meanwhile (nothing can merge with them).
            notes = [op for op in ops if op.kind == "note"]
            for outcome in self._send_note(notes):
                if outcome is not None:
                    errors.append(str(outcome))
            batched = [(op.batch_key, op, op.iccid) for op in ops if op.kind != "note"]
            for outcome in self.batcher.call_many(batched) if batched else []:
                if isinstance(outcome, SimOperationError):
                    errors.append(str(outcome))
                elif isinstance(outcome, BaseException):
                    raise outcome
        if errors:
            raise SimOperationError("; ".join(errors))

    def _wait(self, iccid: str) -> None:
        states = self.live.wait_settled([iccid], timeout=self.activation_timeout)
        if states[iccid] in (PENDING_ACTIVATION, PENDING_SUSPEND_NO_BILLING, None):
            raise SimOperationError(
                f"{iccid}: still {states[iccid] or 'not visible'} after {self.activation_timeout:.0f}s; "
                "the platform has accepted the request, run `pulumi up` again later to finish"
            )

    # -- many SIMs: one bulk request per batch key ------------------------------------------------------
    def _flush(self, key: Hashable, ops: Sequence[Op]) -> list[Any]:
        kind = ops[0].kind
        return getattr(self, f"_send_{kind}")(ops)

    def _device_name(self, iccid: str) -> str:
        sim = self.live.get(iccid)
        if not sim or not sim.get("device_name"):
            raise SimOperationError(f"{iccid} has no device_name in the account yet")
        return str(sim["device_name"])

    @staticmethod
    def _outcomes(ops: Sequence[Op], keys: Sequence[str], failed: dict[str, str]) -> list[Any]:
        return [
            SimOperationError(f"{op.iccid}: {failed[k]}") if k in failed else None
            for op, k in zip(ops, keys, strict=True)
        ]

    def _send_activate(self, ops: Sequence[Op]) -> list[Any]:
        first = ops[0]
        rows = []
        for op in ops:
            notes = dict(op.param("notes"))
            rows.append(
                ActivationRow(
                    iccid=op.iccid,
                    imei=op.param("imei"),
                    device_sku=op.param("device_sku"),
                    region_code=op.param("region_code"),
                    **notes,
                )
            )
        result = self.client.activate(rows, rate_plan_name=first.param("rate_plan"))
        outcomes: list[Any] = []
        for op in ops:
            if op.iccid in result.rejected:
                outcomes.append(SimOperationError(f"{op.iccid}: activation rejected: {result.rejected[op.iccid]}"))
            else:
                notes = dict(op.param("notes"))
                self.live.record(op.iccid, state=PENDING_ACTIVATION, imei=op.param("imei"), **notes)
                outcomes.append(None)
        return outcomes

    def _send_simstate(self, ops: Sequence[Op], action: str, new_state: str) -> list[Any]:
        iccids = [op.iccid for op in ops]
        result = self.client.change_simstate(iccids, action)
        for iccid in result.succeeded:
            self.live.record(iccid, state=new_state)
        return self._outcomes(ops, iccids, result.failed)

    def _send_suspend(self, ops: Sequence[Op]) -> list[Any]:
        return self._send_simstate(ops, "suspend", SUSPENDED)

    def _send_restore(self, ops: Sequence[Op]) -> list[Any]:
        return self._send_simstate(ops, "restore", ACTIVE)

    def _send_suspend_no_billing(self, ops: Sequence[Op]) -> list[Any]:
        pairs = [(op.iccid, op.param("imei")) for op in ops]
        result = self.client.suspend_no_billing(pairs)
        for iccid in result.succeeded:
            self.live.record(iccid, state=PENDING_SUSPEND_NO_BILLING)
        return self._outcomes(ops, [op.iccid for op in ops], result.failed)

    def _names(self, ops: Sequence[Op]) -> tuple[list[str], list[Any]]:
        names, early = [], []
        for op in ops:
            try:
                names.append(self._device_name(op.iccid))
                early.append(None)
            except SimOperationError as exc:
                names.append("")
                early.append(exc)
        return names, early

    def _send_by_name(self, ops: Sequence[Op], call, record: dict[str, Any] | None) -> list[Any]:
        names, early = self._names(ops)
        sendable = [(op, n) for op, n, e in zip(ops, names, early, strict=True) if e is None]
        if sendable:
            result = call([n for _, n in sendable])
            if record:
                for op, name in sendable:
                    if name not in result.failed:
                        self.live.record(op.iccid, **record)
            failed = result.failed
        else:
            failed = {}
        outcomes = self._outcomes(ops, names, failed)
        return [e if e is not None else o for e, o in zip(early, outcomes, strict=True)]

    def _send_cost_center(self, ops: Sequence[Op]) -> list[Any]:
        cost_center = ops[0].param("cost_center")
        return self._send_by_name(
            ops, lambda names: self.client.change_cost_center(names, cost_center), {"cost_center": cost_center}
        )

    def _send_set_limit(self, ops: Sequence[Op]) -> list[Any]:
        first = ops[0]
        return self._send_by_name(
            ops,
            lambda names: self.client.set_usage_limit(
                names,
                kb_limit=first.param("kb_limit"),
                action=first.param("action"),
                usernames=list(first.param("usernames")),
            ),
            None,
        )

    def _send_remove_limit(self, ops: Sequence[Op]) -> list[Any]:
        return self._send_by_name(ops, self.client.remove_usage_limit, None)

    def _send_note(self, ops: Sequence[Op]) -> list[Any]:
        outcomes: list[Any] = []
        for op in ops:  # the note endpoint takes one device per call
            field, value = op.param("field"), op.param("value")
            try:
                self.client.set_note(op.iccid, field, value, id_type="iccid")
            except Exception as exc:  # noqa: BLE001 - reported per SIM
                outcomes.append(SimOperationError(f"{op.iccid}: setting {field} failed: {exc}"))
                continue
            self.live.record(op.iccid, **{field: value})
            outcomes.append(None)
        return outcomes

