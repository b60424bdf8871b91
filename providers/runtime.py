"""What the provider process shares between all its resource operations: one per `pulumi` run.

Pulumi builds a provider object per resource from its pickled state, and calls `configure` once per process
with the stack's configuration. The objects carry nothing; this runtime holds everything the operations
share: the settings (credentials included: they never reach resource state), one Lattigo client, one live
fleet snapshot, one applier (and so one batcher), the fleet file as the provider reads it, and the removals
that the blast-radius guard approved in this run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lattigo_fleet import guard, provider_host
from lattigo_fleet.fleetfile import FleetError, FleetSpec
from lattigo_fleet.provider_host import ProviderError
from lattigo_fleet.settings import Settings, SettingsError, read_settings

if TYPE_CHECKING:
    from lattigo_fleet.operations import Op


class Runtime:
    def __init__(self, settings: Settings) -> None:
        from lattigo_fleet.apply import Applier
        from lattigo_fleet.client import LattigoClient
        from lattigo_fleet.live import LiveFleet

        self.settings = settings
        self.client = LattigoClient(
            settings.endpoint, settings.key_name, settings.api_key, audit_log=settings.audit_log
        )
        self.from_snapshot_file = False  # the live view came from an account snapshot file: re-read before writing
        self.live = LiveFleet(self.client, first_read=self._first_read)
        self.applier = Applier(
            self.client,
            self.live,
            window=settings.batch_window,
            activation_timeout=settings.activation_timeout,
            capacity=provider_host.concurrency(),
        )
        self._expected = False
        self._expecting = threading.Lock()
        self._lock = threading.Lock()
        self._fleet: FleetSpec | None = None
        self._approved: set[str] = set()  # removals the guard counted in this run
        self._unapproved: list[str] = []  # removals it did not see (its record was behind): the backstop's count
        self.held_count = 0  # SIMs the stack held before this run (the guard's record), for the backstop
        self.warned: set[str] = set()  # one warning of each kind per run
        self.approved_plan = _approved_plan(settings)
        if self.approved_plan is not None:
            self.applier.precondition = self.still_as_approved

    def _first_read(self) -> Any:
        """The account as this run's program read it, handed over instead of a second listing (run_snapshot.py;
        the provider's parent is the engine that runs the program); else, in a run handed an account snapshot
        (account_snapshot.py: a refresh reads before the program), that file; else None: list the account."""
        import os

        from lattigo_fleet import account_snapshot, run_snapshot

        account = account_snapshot.account_of(self.settings.endpoint, self.settings.key_name)
        handed = run_snapshot.take(run_snapshot.run_key(os.getppid()), account)
        if handed is not None:
            return handed
        try:
            shared = account_snapshot.from_environment(account)
        except account_snapshot.AccountSnapshotError as exc:
            raise ProviderError(str(exc)) from None
        if shared is None:
            return None
        self.from_snapshot_file = True
        return shared.sims, {}

    def may_write(self) -> None:
        """Nothing is sent from a view of the account that a snapshot file gave (an `up --refresh` run with
        LATTIGO_FLEET_ACCOUNT_SNAPSHOT set: the refresh reads before the program can hand over its live read).
        A snapshot is for previews; an up plans from the account itself (account_snapshot.py)."""
        from lattigo_fleet.account_snapshot import SNAPSHOT_ENV

        if self.from_snapshot_file:
            raise ProviderError(
                f"this run was handed an account snapshot ({SNAPSHOT_ENV}), which is for previews: nothing was "
                "sent; run the up without it, so that it plans from the live account"
            )

    def fleet(self) -> FleetSpec:
        """The fleet file, read once per process (the program read the same file in this run)."""
        from lattigo_fleet.fleetfile import load_fleet

        with self._lock:
            if self._fleet is None:
                try:
                    self._fleet = load_fleet(self.settings.fleet_file)
                except FleetError as exc:
                    raise ProviderError(str(exc)) from None
            return self._fleet

    def expect_this_run(self) -> None:
        """Before the first change: tell the batcher what this run will ask for, planned exactly as the
        preview planned it (fleet.yaml against the live account), so each bulk request goes when complete."""
        from lattigo_fleet.planner import plan_sim

        with self._expecting:  # the others wait: a batch must not open before it knows what to expect
            if self._expected:
                return
            fleet = self.fleet()
            self.applier.expect(plan_sim(sim, self.live.get(sim.iccid)) for sim in fleet.sims)
            self._expected = True

    def approved_entry(self, iccid: str) -> Mapping[str, Any] | None:
        assert self.approved_plan is not None
        return self.approved_plan.get(iccid)

    def still_as_approved(self, ops: Sequence[Op]) -> dict[str, str]:
        """Right before a bulk request (or a note call) goes out under an approved strict plan: read the account
        again and fail each SIM whose field this call sets no longer holds the value the plan was computed from
        (its "before"). The Lattigo API has no conditional write, so this read is as close to the write as the
        check can be; a field this run already wrote is not checked again (its before is our own write)."""
        from lattigo_fleet.plan_document import live_value, shown

        self.live.reload(if_older_than=self.live.generation)
        failed: dict[str, str] = {}
        for op in ops:
            entry = self.approved_entry(op.iccid)
            current = self.live.get(op.iccid)
            field_name = op.touches
            if entry is None:
                failed[op.iccid] = f"{op.iccid}: {op.kind} is not in the approved plan; nothing sent for this SIM"
                continue
            if field_name == "usage_limit" or self.live.written_here(op.iccid, field_name):
                continue  # limits cannot be read back; our own write is not a change by someone else
            activated_here = "state" not in (entry.get("before") or {}) and self.live.written_here(op.iccid, "state")
            if field_name != "origin" and activated_here:
                continue  # not in the account at review, activated by this run: its fields are no one else's
            if field_name == "origin":
                now, was = ("in the account" if current is not None else None), None
            else:
                now, was = live_value(current, field_name), (entry.get("before") or {}).get(field_name)
            if now != was:
                failed[op.iccid] = (
                    f"{op.iccid}: {field_name} is {shown(now)} in the account now, {shown(was)} when the plan was "
                    "approved: the account moved since the review, so nothing was sent for this SIM (plan again)"
                )
        return failed

    def approve_removals(self, iccids: Iterable[str]) -> None:
        with self._lock:
            self._approved.update(iccids)

    def check_removal(self, iccid: str) -> None:
        """Before a removed SIM is suspended: the guard approved it, or the backstop allows one more."""
        fleet = self.fleet()
        with self._lock:
            if iccid in self._approved:
                return
            counted = [*self._unapproved, iccid]
            message = guard.refusal(
                fleet.policy,
                guard.fleet_size(max(self.held_count, len(fleet.sims) + len(counted)), len(fleet.sims)),
                removed=counted,
                allow=self.settings.allow_large_changes,
            )
            if message:
                raise ProviderError(message)
            self._unapproved = counted


def _approved_plan(settings: Settings) -> dict[str, Mapping[str, Any]] | None:
    """The approved plan that `lattigo-fleet apply` hands to a strict run (by ICCID), or None."""
    import os

    from lattigo_fleet import plan_document

    path = os.environ.get(plan_document.APPROVED_ENV)
    if not path or settings.merge_mode != plan_document.STRICT:
        return None
    try:
        doc = plan_document.read(path)
    except plan_document.PlanDocumentError as exc:
        raise ProviderError(str(exc)) from None
    return {str(e["iccid"]): e for e in doc.get("sims") or []}


_RUNTIME: Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def configure(config: Any) -> None:
    """Build the process's runtime from the stack configuration (Pulumi calls this once per process per
    provider object; all of them share one runtime: one snapshot, one batcher, one removal count)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            try:
                settings = read_settings(lambda key: config.get(key) if config is not None else None)
            except SettingsError as exc:
                raise ProviderError(str(exc)) from None
            _RUNTIME = Runtime(settings)


def runtime() -> Runtime:
    with _RUNTIME_LOCK:
        if _RUNTIME is None:  # Pulumi calls configure() before any operation; this is a bug guard
            raise ProviderError("the lattigo-fleet provider was used before Pulumi configured it")
        return _RUNTIME
