"""The `Sim` dynamic resource: one per SIM in fleet.yaml, id = ICCID.

Thin glue between the Pulumi engine and the rest: `check` validates one SIM's inputs, `diff` compares
declared fields, `create`/`update` hand the SIM to the Applier (planner + batched client calls), `read`
answers from the shared fleet snapshot, `delete` follows fleet.yaml's `policy.on_remove`.

The provider object is serialised into every resource's state, so it carries no attributes: everything the
process needs (credentials, client, snapshot, batcher) lives in one `_Runtime` built by `configure`, which
Pulumi calls once per provider process with the stack's configuration. Credentials never reach resource
state, logs or error messages.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from lattigo_fleet.planner import SETTLES_TO

# Inputs declared in fleet.yaml (DesiredSim.to_inputs keys).
INPUT_KEYS = (
    "iccid", "imei", "name", "state", "rate_plan", "region_code", "device_sku",
    "cost_center", "notes", "usage_limit", "managed",
)
# Read-only fields the platform reports, exposed as outputs.
LIVE_KEYS = (
    "device_name", "msisdn", "mdn", "imsi", "ip_address", "ipv6", "bytes_used", "sms_used", "connected",
    "last_connection_date", "last_activation_date",
)
# Fields whose change on an activated SIM the API offers no call for.
FIXED_AFTER_ACTIVATION = ("imei", "rate_plan", "region_code", "device_sku")


@dataclass
class _Settings:
    endpoint: str
    key_name: str
    api_key: str = field(repr=False)
    fleet_file: str
    allow_large_changes: bool
    activation_timeout: float
    batch_window: float
    audit_log: str | None


class _Runtime:
    """Per-process state shared by all Sim operations."""

    def __init__(self, settings: _Settings) -> None:
        from lattigo_fleet.apply import Applier
        from lattigo_fleet.client import LattigoClient
        from lattigo_fleet.live import LiveFleet

        self.settings = settings
        self.client = LattigoClient(
            settings.endpoint, settings.key_name, settings.api_key, audit_log=settings.audit_log
        )
        self.live = LiveFleet(self.client)
        self.applier = Applier(
            self.client, self.live, window=settings.batch_window, activation_timeout=settings.activation_timeout
        )
        self._removals = 0
        self._lock = threading.Lock()
        self._fleet = None

    def fleet(self):
        """(policy, fleet size, declared ICCIDs) of the fleet file, read once per process."""
        from lattigo_fleet.spec import load_fleet

        with self._lock:
            if self._fleet is None:
                fleet = load_fleet(self.settings.fleet_file)
                self._fleet = (fleet.policy, len(fleet.sims), frozenset(fleet.by_iccid))
            return self._fleet

    def count_removal(self) -> None:
        """The blast-radius guard for removals with on_remove: suspend (deletes never reach a preview)."""
        policy, size, _ = self.fleet()
        with self._lock:
            self._removals += 1
            limit = policy.limit_for(max(size, 1))
            if self._removals > limit and not self.settings.allow_large_changes:
                raise Exception(
                    f"refusing to suspend more than {limit} removed SIMs in one run (policy.max_changes); "
                    "set `pulumi config set lattigo-fleet:allowLargeChanges true` to allow it"
                )


_RUNTIME: _Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def _setting(config: Any, key: str, env: str, default: str | None = None) -> str | None:
    value = config.get(key) if config is not None else None
    if value in (None, ""):
        value = os.environ.get(env, default)
    return value


def _settings_from(config: Any) -> _Settings:
    endpoint = _setting(config, "lattigo:endpoint", "LATTIGO_ENDPOINT")
    key_name = _setting(config, "lattigo:keyName", "LATTIGO_KEY_NAME")
    api_key = _setting(config, "lattigo:apiKey", "LATTIGO_API_KEY")
    missing = [n for n, v in (("lattigo:endpoint", endpoint), ("lattigo:keyName", key_name),
                              ("lattigo:apiKey", api_key)) if not v]
    if missing:
        raise Exception(
            "Lattigo credentials are not configured: set " + ", ".join(missing)
            + " (stack config) or LATTIGO_ENDPOINT / LATTIGO_KEY_NAME / LATTIGO_API_KEY"
        )
    return _Settings(
        endpoint=endpoint,
        key_name=key_name,
        api_key=api_key,
        fleet_file=_setting(config, "lattigo-fleet:fleetFile", "LATTIGO_FLEET_FILE", "fleet.yaml"),
        allow_large_changes=str(_setting(config, "lattigo-fleet:allowLargeChanges", "LATTIGO_ALLOW_LARGE_CHANGES",
                                         "false")).lower() in ("1", "true", "yes"),
        activation_timeout=float(_setting(config, "lattigo-fleet:activationTimeout",
                                          "LATTIGO_ACTIVATION_TIMEOUT", "300")),
        batch_window=float(_setting(config, "lattigo-fleet:batchWindowMs", "LATTIGO_BATCH_WINDOW_MS", "200")) / 1000,
        audit_log=_setting(config, "lattigo-fleet:auditLog", "LATTIGO_AUDIT_LOG"),
    )


def _runtime() -> _Runtime:
    with _RUNTIME_LOCK:
        if _RUNTIME is None:  # Pulumi calls configure() before any operation; this is a bug guard
            raise Exception("the Sim provider was used before Pulumi configured it")
        return _RUNTIME


def _outputs(inputs: dict, live: dict | None) -> dict:
    outs = {k: inputs.get(k) for k in INPUT_KEYS}
    live = live or {}
    for key in LIVE_KEYS:
        outs[key] = live.get(key)
    outs["live_state"] = live.get("state")
    return outs


def _observed_inputs(stored: dict, live: dict) -> dict:
    """The inputs as the account shows them now, so that refresh turns drift into a diff against fleet.yaml.
    Usage limits, rate plan, region and SKU cannot be read from the API: the stored values stay."""
    inputs = {k: stored.get(k) for k in INPUT_KEYS}
    managed = set(stored.get("managed") or [])
    inputs["imei"] = live.get("imei") or stored.get("imei")
    state = live.get("state") or stored.get("state")
    if SETTLES_TO.get(state) == stored.get("state"):
        state = stored.get("state")  # on its way to exactly what was declared: not drift
    inputs["state"] = state
    if "cost_center" in managed:
        inputs["cost_center"] = live.get("cost_center") or ""
    notes = dict(stored.get("notes") or {})
    for note_field in notes:
        notes[note_field] = live.get(note_field) or ""
    inputs["notes"] = notes
    return inputs


def changed_fields(olds: dict, news: dict) -> list[str]:
    """Declared fields whose value differs between the last applied (or refreshed) state and fleet.yaml."""
    changes = []
    managed = set(news.get("managed") or [])
    for key in ("iccid", "state"):  # (a new name is a new resource, never a diff)
        if news.get(key) != olds.get(key):
            changes.append(key)
    for key in FIXED_AFTER_ACTIVATION:  # only when declared: None means "not said in fleet.yaml"
        if news.get(key) is not None and news.get(key) != olds.get(key):
            changes.append(key)
    if "cost_center" in managed and news.get("cost_center") != olds.get("cost_center"):
        changes.append("cost_center")
    old_notes, new_notes = olds.get("notes") or {}, news.get("notes") or {}
    if any(new_notes.get(k) != old_notes.get(k) for k in new_notes):
        changes.append("notes")
    if "usage_limit" in managed and news.get("usage_limit") != olds.get("usage_limit"):
        changes.append("usage_limit")
    if sorted(olds.get("managed") or []) != sorted(managed):
        changes.append("managed")
    return changes


class SimProvider(ResourceProvider):
    def configure(self, req: ConfigureRequest) -> None:
        global _RUNTIME
        with _RUNTIME_LOCK:
            # Pulumi configures once per distinct serialised provider; all of them share one runtime, so
            # one snapshot, one batcher and one removal count serve the whole process.
            if _RUNTIME is None:
                _RUNTIME = _Runtime(_settings_from(req.config))

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from lattigo_fleet.spec import DesiredSim

        failures = []
        try:
            DesiredSim.from_inputs(news)
        except Exception as exc:  # noqa: BLE001 - reported against the resource
            failures.append(CheckFailure("iccid", f"invalid SIM declaration: {exc}"))
        # olds are the inputs last applied; if the SIM was activated by us, some fields are frozen.
        if olds.get("iccid") and olds.get("iccid") == news.get("iccid"):
            for key in FIXED_AFTER_ACTIVATION:
                if news.get(key) is not None and olds.get(key) and news.get(key) != olds.get(key):
                    failures.append(CheckFailure(
                        key,
                        f"SIM {news.get('iccid')}: {key} cannot change from {olds.get(key)!r} to {news.get(key)!r} "
                        "on an activated SIM (the Lattigo API has no call for it); revert it in fleet.yaml",
                    ))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_fields(olds, news)
        replaces = ["iccid"] if "iccid" in changes else []
        return DiffResult(changes=bool(changes), replaces=replaces, delete_before_replace=True)

    def _converge(self, news: dict[str, Any], last_limit: Any) -> dict:
        from lattigo_fleet.apply import SimOperationError
        from lattigo_fleet.spec import DesiredSim

        runtime = _runtime()
        desired = DesiredSim.from_inputs(news)
        try:
            runtime.applier.converge(desired, last_limit)
        except SimOperationError as exc:
            raise Exception(str(exc)) from None
        return _outputs(news, runtime.live.get(desired.iccid))

    def create(self, props: dict[str, Any]) -> CreateResult:
        from lattigo_fleet.spec import UNMANAGED

        # An ICCID already in the account is adopted: no activation, its other fields converged. We do not
        # know what usage limit it has, so a declared limit (or "no limit") is always sent once.
        return CreateResult(id_=props["iccid"], outs=self._converge(props, UNMANAGED))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from lattigo_fleet.spec import UNMANAGED, UsageLimit

        if "usage_limit" in (olds.get("managed") or []):
            raw = olds.get("usage_limit")
            last_limit = UsageLimit.from_dict(raw) if raw else None
        else:
            last_limit = UNMANAGED
        return UpdateResult(outs=self._converge(news, last_limit))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        live = _runtime().live.get(id_)
        if live is None:
            return ReadResult(id_=None, outs={})
        inputs = _observed_inputs(props, live)
        return ReadResult(id_=id_, outs=_outputs(inputs, live), inputs=inputs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        runtime = _runtime()
        policy, _, declared = runtime.fleet()
        if policy.on_remove != "suspend":
            return  # retain: forget the SIM, send nothing
        if id_ in declared:
            return  # still in fleet.yaml, under a new resource name: this is a rename, not a removal
        live = runtime.live.get(id_)
        if live is None or live.get("state") != "active":
            return
        runtime.count_removal()
        from lattigo_fleet.planner import PHASE_STATE, Op

        op = Op("suspend", id_, PHASE_STATE)
        runtime.applier.batcher.call(op.batch_key, op)


class Sim(Resource, module="lattigo", name="Sim"):
    """One SIM of the fleet. Inputs: DesiredSim.to_inputs(); outputs add the live read-only fields."""

    device_name: pulumi.Output[str]
    live_state: pulumi.Output[str]
    msisdn: pulumi.Output[str]
    ip_address: pulumi.Output[str]

    def __init__(self, name: str, inputs: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        props = {**inputs, **{k: None for k in LIVE_KEYS}, "live_state": None}
        super().__init__(SimProvider(), name, props, opts)
