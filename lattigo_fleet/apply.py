"""Carry out a SIM's planned operations: batched across concurrent SIMs, phase by phase.

`Applier.converge(desired, last_limit)` is what the provider's create and update call: plan against the live
snapshot, send the calls (merged with other SIMs' compatible calls by the batcher), wait for asynchronous
work, plan again, until nothing is left. Per-device failures in a bulk answer fail only that SIM, with the
API's own message.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from lattigo_fleet.batcher import Batcher
from lattigo_fleet.client import LattigoApi
from lattigo_fleet.fleetfile import UNMANAGED, DesiredSim, UsageLimit
from lattigo_fleet.live import LiveFleet
from lattigo_fleet.operations import (
    PHASE_STATE,
    Activate,
    Op,
    RemoveUsageLimit,
    Restore,
    SetCostCenter,
    SetNote,
    SetUsageLimit,
    SimOperationError,
    Suspend,
    SuspendNoBilling,
)
from lattigo_fleet.planner import NOT_READ, Plan, limit_suspension_candidate, plan_sim
from lattigo_fleet.vocabulary import PENDING_ACTIVATION, PENDING_SUSPEND_NO_BILLING

__all__ = ["Applier", "SimOperationError"]

# The operations whose batches can be foreseen from fleet.yaml and the live account. Usage limits are compared
# with what was last set (stored per resource, unknown here) and notes are one call per SIM: not foreseen.
FORESEEN: tuple[type[Op], ...] = (Activate, Suspend, Restore, SuspendNoBilling, SetCostCenter)


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
        self.batcher: Batcher[Op] = Batcher(self._flush, window=window, max_size=client.chunk_size, capacity=capacity)
        # Asked right before every call with the SIMs it carries (an approved plan's check): ICCID -> why that SIM
        # must not be sent; the others go.
        self.precondition: Callable[[Sequence[Op]], dict[str, str]] | None = None

    def expect(self, plans: Iterable[Plan]) -> None:
        """What this run will ask for, as the preview planned it (fleet.yaml against the live account): each
        bulk request goes as soon as every SIM it expects has asked (see Batcher)."""
        expected: dict[Hashable, set[str]] = {}
        for plan in plans:
            for op in plan.ops:
                if isinstance(op, FORESEEN):
                    expected.setdefault(op.batch_key, set()).add(op.iccid)
        for key, iccids in expected.items():
            self.batcher.expect(key, iccids)

    # -- one SIM ---------------------------------------------------------------------------------------
    def converge(self, desired: DesiredSim, last_limit: UsageLimit | None | object = UNMANAGED) -> list[Op]:
        """Make the live SIM match `desired`. Returns the operations sent. Raises SimOperationError."""
        sent: list[Op] = []
        ignore = None  # the SIM's ignore_changes, until this apply activates it: then every declared value
        for _ in range(self.max_rounds):
            live = self.live.get(desired.iccid)
            month = self.live.month_bytes(desired.iccid) if limit_suspension_candidate(desired, live) else NOT_READ
            plan = plan_sim(desired, live, last_limit, ignore=ignore, month_bytes=month)
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
            if any(isinstance(op, Activate) for op in ops):
                ignore = ()
            for op in ops:
                if isinstance(op, Activate | RemoveUsageLimit):
                    last_limit = None  # a freshly activated SIM has no usage limit
                elif isinstance(op, SetUsageLimit):
                    last_limit = desired.usage_limit
            if any(isinstance(op, Activate | SuspendNoBilling) for op in ops):
                self._wait(desired.iccid)
        raise SimOperationError(f"{desired.iccid}: still not converged after {self.max_rounds} rounds")

    def wait_settled(self, iccid: str) -> None:
        """Wait until the SIM is no longer in flight (an activation landing); raise if it does not land."""
        self._wait(iccid)

    def suspend(self, iccid: str) -> None:
        """Suspend one SIM (a removal under on_remove: suspend), sharing a bulk request with concurrent ones."""
        op = Suspend(iccid)
        self.batcher.call(op.batch_key, op, op.iccid)

    def suspend_all(self, iccids: Sequence[str]) -> dict[str, str]:
        """Suspend many SIMs at once (`pulumi destroy` under on_remove: suspend): bulk requests of the
        client's chunk size. Returns the per-device failures, by ICCID."""
        ops: list[Op] = [Suspend(iccid) for iccid in iccids]
        failed: dict[str, str] = {}
        for start in range(0, len(ops), self.client.chunk_size):
            chunk = ops[start : start + self.client.chunk_size]
            for op, outcome in zip(chunk, Suspend.send(chunk, self), strict=True):
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
            notes = [op for op in ops if isinstance(op, SetNote)]
            for outcome in self._send_checked(notes) if notes else []:
                if outcome is not None:
                    errors.append(str(outcome))
            batched = [(op.batch_key, op, op.iccid) for op in ops if not isinstance(op, SetNote)]
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
        return self._send_checked(ops)

    def _send_checked(self, ops: Sequence[Op]) -> list[Any]:
        """One call for `ops` (of one kind), less the SIMs the precondition refuses: those fail alone, unsent."""
        refused = self.precondition(ops) if self.precondition else {}
        sendable = [op for op in ops if op.iccid not in refused]
        sent = iter(type(ops[0]).send(sendable, self) if sendable else [])
        return [SimOperationError(refused[op.iccid]) if op.iccid in refused else next(sent) for op in ops]
