"""What the models answer, per device or per row, for the HTTP layer to word. No wire strings here.

A bulk device operation answers a :class:`DeviceResult` for each requested device; a row-based request
(activation, suspension without billing, upload) answers the rows it carried out and a
:class:`RejectedRow` for each one it did not, with Rails-style attribute errors. :mod:`emulator.lattigo`
turns both into the documented answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(Enum):
    DONE = "done"  # the change was made (or was already so)
    MISSING = "missing"  # this account has no such device (inventory SIMs count as missing)
    REFUSED = "refused"  # the lifecycle refuses the change; ``reason`` says why
    UNAVAILABLE = "unavailable"  # the device cannot take it now (not active, or not SMS-capable)


@dataclass(frozen=True)
class DeviceResult:
    """The outcome of an operation on one requested device."""

    status: Status
    reason: str | None = None  # for REFUSED: the lifecycle's sentence

    @classmethod
    def refused(cls, reason: str | None) -> DeviceResult:
        return cls(Status.REFUSED, reason)


DONE = DeviceResult(Status.DONE)
MISSING = DeviceResult(Status.MISSING)
UNAVAILABLE = DeviceResult(Status.UNAVAILABLE)


@dataclass(frozen=True)
class RejectedRow:
    """A row of a row-based request that was not carried out: its index, why (attribute → messages), and
    the row as understood."""

    index: int
    errors: dict[str, list[str]]
    input: dict[str, Any]
