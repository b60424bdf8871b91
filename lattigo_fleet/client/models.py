"""Typed values the Lattigo client takes and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Required, TypedDict, cast

from lattigo_fleet.vocabulary import NOTE_FIELDS

# NOTE_FIELDS is re-exported: the client's callers name the fields from here too
__all__ = ["NOTE_FIELDS", "DeviceFields", "LiveDevice", "as_live_device", "live_note", "live_state", "with_fields"]


class DeviceFields(TypedDict, total=False):
    """The fields of a device object that the reconciler reads or writes (a write is recorded with them:
    ``LiveFleet.record(iccid, state=...)``)."""

    id: int | str | None
    device_name: str
    state: str
    imei: str | None
    cost_center: str | None
    note: str | None
    note1: str | None
    note2: str | None
    note3: str | None
    connected: bool | None


class LiveDevice(DeviceFields, total=False):
    """A device of the account as the API lists it (``GET /devices`` with details, ``GET /devices/{id}``),
    between the client, the live snapshot, the planner and the provider. The client checks each answer
    against ``shapes.DEVICE`` before it becomes one, so these keys have these types; the API's other keys
    pass through unread. Only ``iccid`` is sure: a SIM this run activated is known by it before the next read."""

    iccid: Required[str]


def as_live_device(device: Mapping[str, Any]) -> LiveDevice:
    """A device object the client has checked against its shape (``shapes.DEVICE``), typed as one. The API
    may give an IMEI as a number; the reconciler compares and sends it as the text fleet.yaml declares."""
    fields = {**device, "iccid": str(device["iccid"])}
    if fields.get("imei") is not None:
        fields["imei"] = str(fields["imei"])
    return cast(LiveDevice, fields)


def with_fields(device: LiveDevice | None, iccid: str, fields: DeviceFields) -> LiveDevice:
    """The device with these fields written over it (a new one, known by its ICCID, if there is none)."""
    return cast(LiveDevice, {**(device or {"iccid": iccid}), **fields})


def live_state(device: LiveDevice | None) -> str | None:
    """A device's state, None when the account does not list it."""
    return None if device is None else device.get("state")


def live_note(device: Mapping[str, Any] | None, field_name: str) -> str:
    """One note of a live device, "" when unset: the API answers null or leaves an empty note out."""
    if device is None:
        return ""
    return str(device.get(field_name) or "")


@dataclass(frozen=True)
class ActivationRow:
    """One SIM to activate: ICCID and IMEI (or a ``device_sku`` instead of the IMEI), optional notes."""

    iccid: str
    imei: str | None = None
    device_sku: str | None = None
    region_code: str | None = None
    note: str | None = None
    note1: str | None = None
    note2: str | None = None
    note3: str | None = None

    def __post_init__(self) -> None:
        if not self.iccid:
            raise ValueError("ActivationRow needs an iccid")
        if not self.imei and not self.device_sku:
            raise ValueError(f"ActivationRow for ICCID {self.iccid} needs an imei or a device_sku")

    def to_body(self) -> dict[str, str]:
        """The ``activation_requests`` entry: only the fields that are set."""
        body: dict[str, str] = {}
        for name in ("imei", "iccid", "device_sku", "region_code", *NOTE_FIELDS):
            value = getattr(self, name)
            if value is not None:
                body[name] = str(value)
        return body


@dataclass
class ActivationResult:
    """What an activation achieved.

    ``accepted``: ICCIDs the API took (they are being activated: ``pending_activation`` then ``active``).
    ``rejected``: ICCID -> the API's reason (from the 422 ``unprocessed`` rows, or why it could not be sent).
    ``unprocessed``: the raw 422 rows, for whoever wants the decoded error hashes and inputs.
    ``recovered``: ICCIDs found to have taken effect by re-reading the account after a 5xx or a broken
    connection (they are also in ``accepted``); ``resent``: ICCIDs sent again because they had not.
    """

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    unprocessed: list[Any] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def merge(self, other: ActivationResult) -> None:
        self.accepted.extend(i for i in other.accepted if i not in self.accepted)
        self.rejected.update(other.rejected)
        self.unprocessed.extend(other.unprocessed)
        self.recovered.extend(other.recovered)
        self.resent.extend(other.resent)


@dataclass
class BulkResult:
    """Per-device outcome of a bulk operation, keyed by what the caller passed (ICCID or device name).

    A device whose status is anything but ``Success...`` (e.g. ``Error: Device does not exist.``) is in
    ``failed`` with the API's own message.
    """

    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def merge(self, other: BulkResult) -> None:
        for name in other.succeeded:
            if name not in self.succeeded:
                self.succeeded.append(name)
            self.failed.pop(name, None)
        for name, msg in other.failed.items():
            if name not in self.succeeded:
                self.failed[name] = msg


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint and its pagination headers (None where the server sent none)."""

    items: list[Any]
    page: int | None
    per_page: int | None
    total: int | None
    total_pages: int | None
    next_page: int | None
    prev_page: int | None
