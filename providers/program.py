"""The Pulumi program: fleet.yaml -> validated desired state -> one Sim resource per SIM.

Before anything is registered: the settings (an unknown key of ours is refused with a did-you-mean), the fleet
file (spec), the SIMs that sibling stacks of the same account own (sharding, before any call), and the checks
against the live account (account_check), each problem reported at once with file:line:column. Only a clean
fleet registers resources; nothing is sent until `pulumi up` runs them.

Resource names are the ICCIDs, so that renaming a SIM in fleet.yaml changes nothing in the stack (its `name`
is an input, shown in diffs of new SIMs). Stacks written before that named resources by `name`; the one run
with LATTIGO_FLEET_UPGRADE=1 registers each Sim with an alias to its old name, so the upgrade is no change
either (aliases are not registered otherwise: they cost about a quarter of a run's CPU).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

import pulumi

from lattigo_fleet import guard
from lattigo_fleet.account_check import AccountCheck, check_against_account, plan_summary
from lattigo_fleet.account_snapshot import Snapshot
from lattigo_fleet.client.models import LiveDevice
from lattigo_fleet.fleetfile import DesiredSim, FleetError, FleetSpec, Issue, load_fleet
from lattigo_fleet.planner import Plan
from lattigo_fleet.settings import Settings, SettingsError, read_settings, unknown_keys
from lattigo_fleet.sharding import Held
from lattigo_fleet.stack_state import StackState, StackStateError, read_stack_state
from providers import registrar
from providers.guard import FleetGuard
from providers.sim import Sim, sdk_props

# Exit code that tells the language host "the errors are already reported" (no extra noise, no traceback).
_REPORTED = 32


def _fail(issues: Iterable[Issue | str]) -> NoReturn:
    issues = list(issues)
    for issue in issues:
        pulumi.log.error(str(issue))
    pulumi.log.error(f"{len(issues)} problem(s) found before any change was made; nothing was sent to Lattigo")
    sys.exit(_REPORTED)


def _config_keys() -> set[str]:
    from pulumi.runtime.config import CONFIG, get_config_env

    return set(CONFIG.get()) | set(get_config_env() or {})


def _engine_warnings(fleet_size: int) -> list[str]:
    """A large fleet run the slow way: without the engine settings, or with the stock provider server."""
    import shutil

    from lattigo_fleet.engine_settings import LARGE_FLEET, advice
    from lattigo_fleet.provider_host import STOCK_WORKERS

    warnings = [w for w in [advice(fleet_size)] if w]
    plugin = shutil.which("pulumi-resource-pulumi-python")
    if fleet_size >= LARGE_FLEET and plugin:
        with open(plugin, encoding="utf-8", errors="replace") as handle:
            ours = "lattigo_fleet.provider_host" in handle.read()
        if not ours:
            warnings.append(
                f"{plugin} is the stock dynamic-provider server: it serves {STOCK_WORKERS} operations at once, so "
                f"a bulk request holds at most {STOCK_WORKERS} SIMs; the Pulumi CLI that `make setup` installs "
                "(scripts/ensure-pulumi.sh) serves them with lattigo_fleet.provider_host, sized for fleets"
            )
    return warnings


@contextmanager
def _without_stack_traces() -> Iterator[None]:
    """Register without the Python stack. The SDK records, in every resource's state, the stack at its
    registration: 14 frames of the language host and asyncio, the same for every SIM, about 1.4 kB of a
    2.9 kB Sim. Only Pulumi's source links use it. The SDK offers no switch, so the private function that
    collects it is replaced while the Sims register (and left alone if a later SDK renames it)."""
    from pulumi.runtime import resource as sdk_resource

    original = getattr(sdk_resource, "_get_stack_trace", None)
    if original is None:
        yield
        return
    from pulumi.runtime.proto import source_pb2

    sdk_resource._get_stack_trace = source_pb2.StackTrace  # an empty trace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original


# How many SIMs without planned calls may be registered and not yet answered by the engine. The Python SDK
# holds about 70 kB per registration in flight (a dozen Outputs, each an asyncio task with its futures), and
# the engine answers far slower than the program registers: 10,000 SIMs registered at once held 0.77 GB in
# the program. Their steps change nothing, so the engine needs no more of them at once than this to stay busy:
# a no-change preview of 10,000 SIMs took 52 s with 256 in flight and 56 s with 512, and less memory in the
# program and in the engine.
IN_FLIGHT = 256


def _needs_calls(plan: Plan | None) -> bool:
    """Whether converging this SIM may reach a bulk request (or wait for the SIM to settle first)."""
    return plan is None or bool(plan.ops or plan.problems or plan.wait_for_settle)


def _registration_order(plan: Plan | None) -> tuple[int, str]:
    """Among SIMs with planned calls: those whose first call comes in an earlier phase go first (an activated
    SIM then joins the cost-center and note requests of the others), and SIMs that share a bulk request go
    together. The engine works on PULUMI_PARALLEL SIMs at a time, so a batch whose members arrive together
    goes out whole instead of in pieces."""
    if plan is None or not plan.ops:
        return (sys.maxsize, "")
    first = min(plan.ops, key=lambda op: op.phase)
    return (first.phase, repr(first.batch_key))


Register = Callable[[DesiredSim], Awaitable[None]]


async def _registration(fleet_guard: FleetGuard, upgrading: bool) -> Register:
    """How this run registers a Sim: its request sent by providers.registrar (the SDK's per-resource machinery
    is most of the program's CPU), or through the SDK's `Sim` when the run needs what only the SDK does
    (aliases, in the one upgrade run) or the SDK lacks what the registrar uses."""
    if not upgrading and registrar.available():
        lean = await registrar.Registrar.for_run(fleet_guard)

        async def send(sim: DesiredSim) -> None:
            await lean.register(sim.iccid, sim_inputs(sim))

        return send

    async def through_sdk(sim: DesiredSim) -> None:
        aliases = [pulumi.Alias(name=sim.name)] if upgrading and sim.name != sim.iccid else None
        with _without_stack_traces():
            options = pulumi.ResourceOptions(deleted_with=fleet_guard, aliases=aliases)
            registered = Sim(sim.iccid, sim.to_inputs(), options)
        try:
            await registered.urn.future()
        except Exception:  # the SDK reports a failed registration itself, once
            pass

    return through_sdk


def sim_inputs(sim: DesiredSim) -> dict[str, Any]:
    return sdk_props(sim.to_inputs())


def _register_sims(fleet: FleetSpec, plans: Mapping[str, Plan], fleet_guard: FleetGuard) -> pulumi.Output[int]:
    """Register one Sim per declared SIM; the Output resolves to their count once the engine answered them all.

    SIMs with planned calls go at once: a bulk request waits until every SIM it expects has asked the provider
    (batcher.py), so none of them may queue behind another. The others, most of a fleet on most runs, go at
    most IN_FLIGHT at a time, which bounds the program's memory without making anyone wait for them."""
    upgrading = bool(os.environ.get(guard.UPGRADE_ENV))  # the one run that takes over an earlier stack

    calling: list[DesiredSim] = []
    quiet: list[DesiredSim] = []
    for sim in fleet.sims:
        (calling if _needs_calls(plans.get(sim.name)) else quiet).append(sim)
    calling.sort(key=lambda sim: _registration_order(plans.get(sim.name)))

    async def register_all() -> int:
        register = await _registration(fleet_guard, upgrading)
        eager = [asyncio.ensure_future(register(sim)) for sim in calling]
        slots = asyncio.Semaphore(IN_FLIGHT)
        running: set[asyncio.Future[None]] = set()

        async def in_turn(sim: DesiredSim) -> None:
            try:
                await register(sim)
            finally:
                slots.release()

        for sim in quiet:
            await slots.acquire()
            task = asyncio.ensure_future(in_turn(sim))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running, *eager)
        return len(fleet.sims)

    return pulumi.Output.from_input(register_all())


def _drift_note(checked: AccountCheck, state: StackState, shown: int = 12) -> str | None:
    """What moved in the account since the last apply, with both values: a run does not refresh (Pulumi.yaml
    says why), so the preview's diff shows a drifted field's last applied value as its old side. Said once per
    run, in the program's summary; `--refresh` shows the live values in the diff itself."""
    from lattigo_fleet.fleetfile import DesiredSim
    from lattigo_fleet.planner import NOT_READ, observe
    from providers.sim import declared_changes

    moved: list[str] = []
    for iccid, stored in sorted(state.sims.items()):
        live = checked.live.get(iccid)
        if live is None or not stored.get("iccid"):
            continue
        applied = DesiredSim.from_inputs(stored)
        now = observe(applied, live, checked.month_bytes.get(iccid, NOT_READ))
        paths = declared_changes(dict(stored), sdk_props(now.to_inputs()))
        for path in sorted(paths):
            field, _, note = path.partition(".")
            was = applied.notes.get(note) if note else getattr(applied, field, None)
            is_now = now.notes.get(note) if note else getattr(now, field, None)
            moved.append(f"{applied.name} {path}: {was!r} applied, {is_now!r} in the account")
    if not moved:
        return None
    more = f"\n  and {len(moved) - shown} more" if len(moved) > shown else ""
    return (
        f"{len(moved)} field(s) moved in the account since the last apply; the diff below shows the applied value "
        "as the old side of these (`--refresh` shows the live one):\n  " + "\n  ".join(moved[:shown]) + more
    )


def _check_siblings(fleet: FleetSpec, siblings: tuple[str, ...], held: Held | None) -> None:
    """One account, several stacks: refuse, before any call, a SIM that a sibling stack owns (sharding.py). `held`:
    what the siblings' states held, as this preview's account snapshot recorded it (else their states are read)."""
    import os

    from lattigo_fleet.sharding import SiblingError, overlap_issues, sibling_claims

    stack = pulumi.get_stack()
    try:
        claims = sibling_claims(
            siblings,
            this_stack=stack,
            project=pulumi.get_project(),
            organization=pulumi.get_organization(),
            cwd=os.getcwd(),
            held=held,
        )
    except SiblingError as exc:
        _fail([str(exc)])
    if issues := overlap_issues(fleet, stack, claims):
        _fail(issues)


def _exit_with_engine(interval: float = 0.5) -> None:
    """End the program when the `pulumi` engine that runs it is gone (a CI timeout kills `pulumi` alone): the
    program's parent is the language host, whose parent is the engine. As the provider host does: nothing
    is left half-done that the next run would not finish, since every run plans against the live account."""
    import os
    import threading
    import time

    from lattigo_fleet.run_snapshot import parent_of

    language_host = os.getppid()
    engine = parent_of(language_host)
    if not engine or engine <= 1:
        return

    def watch() -> None:
        while True:
            time.sleep(interval)
            if parent_of(language_host) != engine:  # the engine died: the host was adopted, or is gone too
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-engine", daemon=True).start()


def _account_snapshot(settings: Settings, fleet: FleetSpec, state: StackState, stack: str) -> Snapshot | None:
    """The account snapshot this preview was handed (LATTIGO_FLEET_ACCOUNT_SNAPSHOT: one read of the account for
    many stacks), or None: read the account. An up never plans from one (account_snapshot.py says why). Of the
    snapshot's SIMs only this stack's are kept: those it declares or holds (by its state, or as the snapshot
    job recorded it), 5,000 of a 100,000-SIM account."""
    from lattigo_fleet import account_snapshot

    if not os.environ.get(account_snapshot.SNAPSHOT_ENV):
        return None
    if not pulumi.runtime.is_dry_run():
        pulumi.log.info(f"{account_snapshot.SNAPSHOT_ENV} is for previews: this run reads the account itself")
        return None
    wanted = set(fleet.by_iccid) | set(state.held) | set(state.sims)
    try:
        return account_snapshot.from_environment(
            account_snapshot.account_of(settings.endpoint, settings.key_name),
            keep=wanted.__contains__,
            keep_held_by=stack,
        )
    except account_snapshot.AccountSnapshotError as exc:
        _fail([str(exc)])


def provider_slice(checked: AccountCheck, fleet: FleetSpec, state: StackState) -> dict[str, LiveDevice]:
    """What the provider needs of the account: the SIMs this stack declares or holds (it plans the one, removes
    the other; the guard counts both). A stack that is a slice of a large account hands over its slice, not the
    account: 5,000 SIMs of 100,000."""
    wanted = set(fleet.by_iccid) | set(state.held) | set(state.sims)
    return {iccid: sim for iccid, sim in checked.live.items() if iccid in wanted}


def _hand_to_provider(checked: AccountCheck, settings: Settings, fleet: FleetSpec, state: StackState) -> None:
    """Leave the account as read here for this run's provider, which then does not list it again
    (run_snapshot.py). The program's parent is the language host, whose parent is the engine."""
    from lattigo_fleet import run_snapshot

    engine = run_snapshot.parent_of(os.getppid())
    run_snapshot.write(
        run_snapshot.run_key(engine),
        run_snapshot.account_of(settings.endpoint, settings.key_name),
        provider_slice(checked, fleet, state),
        checked.month_bytes,
    )


def _write_and_check_plan(
    fleet: FleetSpec, checked: AccountCheck, state: StackState, settings: Settings, stack: str
) -> None:
    """The plan document of this run (plan_document.py): written where `lattigo-fleet plan`, `drift` or `apply`
    asked (LATTIGO_FLEET_PLAN_OUT), and, when `lattigo-fleet apply` hands over the approved plan
    (LATTIGO_FLEET_APPROVED_PLAN), compared with it before anything is registered: in the strict mode a plan
    that moved stops the run here, with nothing sent; in the heal mode the run goes on and says what it heals."""
    from datetime import UTC, datetime

    from lattigo_fleet import plan_document

    doc = plan_document.build(
        fleet,
        checked,
        state,
        stack=stack,
        mode=settings.merge_mode,
        allow_large_changes=settings.allow_large_changes,
        commit=plan_document.commit_of(os.getcwd()),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=plan_document.source_of_run(),
    )
    if out := os.environ.get(plan_document.PLAN_OUT_ENV):
        try:
            plan_document.write(doc, out)
        except OSError as exc:
            _fail([f"cannot write the plan document to {out}: {exc.strerror or exc}"])
    approved_path = os.environ.get(plan_document.APPROVED_ENV)
    if not approved_path:
        return
    try:
        approved = plan_document.read(approved_path)
    except plan_document.PlanDocumentError as exc:
        _fail([str(exc)])
    staleness = plan_document.compare(approved, doc)
    if not staleness:
        pulumi.log.info(f"the approved plan {plan_document.short(approved['digest'])} is the plan now: applying it")
        return
    lines = "\n".join(plan_document.stale_lines(staleness))
    if settings.merge_mode == plan_document.HEAL:
        pulumi.log.warn(
            f"merge mode heal: the account or the fleet files moved since the plan "
            f"{plan_document.short(approved['digest'])} was approved; this run applies the plan as it is now "
            f"({plan_document.short(doc['digest'])}), which heals:\n{lines}"
        )
        return
    _fail(
        [
            f"the approved plan {plan_document.short(approved['digest'])} is stale: the plan now is "
            f"{plan_document.short(doc['digest'])}, and nothing was sent (merge mode strict). What moved since the "
            f"review (before at review / now):\n{lines}\nReview the new plan and approve it (run the pull "
            "request's plan again), or set lattigo-fleet:mergeMode to heal to apply whatever is needed at merge time"
        ]
    )


def main() -> None:
    from pulumi.runtime import get_config

    _exit_with_engine()

    problems: list[Issue | str] = list(unknown_keys(_config_keys()))
    try:
        settings = read_settings(get_config)
    except SettingsError as exc:
        problems.append(str(exc))
    if problems:
        _fail(problems)
    try:
        fleet = load_fleet(settings.fleet_file)
    except FleetError as exc:
        _fail(exc.issues)
    from lattigo_fleet.client import LattigoClient, LattigoError

    stack = pulumi.get_stack()
    try:
        state = read_stack_state(stack, cwd=os.getcwd())
    except StackStateError as exc:
        _fail([f"{exc}: the plan needs the SIMs this stack holds and the usage limits it last set"])
    snapshot = _account_snapshot(settings, fleet, state, stack)
    if settings.sibling_stacks:
        _check_siblings(fleet, settings.sibling_stacks, snapshot.held if snapshot else None)
    try:
        checked = check_against_account(
            fleet,
            LattigoClient(settings.endpoint, settings.key_name, settings.api_key),
            settings.allow_large_changes,
            state=state,
            probe_new_sims=pulumi.runtime.is_dry_run(),  # a preview refuses another account's SIM by position
            live=snapshot.sims if snapshot else None,
            cost_centers_in_use=snapshot.cost_centers_in_use() if snapshot else None,
        )
    except LattigoError as exc:
        _fail([f"cannot read the Lattigo account at {settings.endpoint}: {exc}"])
    _hand_to_provider(checked, settings, fleet, state)
    _write_and_check_plan(fleet, checked, state, settings, stack)
    if checked.issues:
        _fail(checked.issues)
    for warning in [*checked.warnings, *_engine_warnings(len(fleet.sims))]:
        pulumi.log.warn(warning)
    pulumi.log.info(plan_summary(checked.plans))
    if note := _drift_note(checked, state):
        pulumi.log.info(note)

    # Registered first: its diff sees the whole run (removals included) before any change is made.
    fleet_guard = FleetGuard("fleet-guard", fleet)
    pulumi.export("sim_count", _register_sims(fleet, checked.plans, fleet_guard))
