"""One exception hierarchy for everything the API clients raise.

Every error names the HTTP method, the endpoint and the device(s) concerned, and carries the HTTP status
when there was one. No message ever contains a credential or a token: the clients never put one in, and
:func:`scrub` removes any that a server might echo back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LattigoError",
    "LattigoConnectionError",
    "AuthenticationError",
    "NotFound",
    "BadRequest",
    "RateLimited",
    "Unprocessable",
    "UnprocessedRow",
    "ServerError",
    "DeadlineExceeded",
    "RateLimitBudgetExceeded",
    "UnexpectedAnswer",
    "UnsafeRedirect",
    "ThingSpaceError",
    "ThingSpaceAuthError",
    "ThingSpaceSessionExpired",
    "ThingSpaceLoginLocked",
    "decode_error_hash",
    "scrub",
]

_MAX_DEVICES_IN_MESSAGE = 5
_MAX_DETAIL = 300


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each (non-trivial) secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def describe_devices(devices: Sequence[str]) -> str:
    """``device 8901`` / ``devices 8901, 8902 and 3 more``: short enough for one log line."""
    if not devices:
        return ""
    if len(devices) == 1:
        return f"device {devices[0]}"
    shown = ", ".join(devices[:_MAX_DEVICES_IN_MESSAGE])
    rest = len(devices) - _MAX_DEVICES_IN_MESSAGE
    return f"devices {shown}" + (f" and {rest} more" if rest > 0 else "")


class LattigoError(Exception):
    """Base of every error raised by :mod:`lattigo_fleet.client`.

    ``method``/``endpoint`` say which call failed, ``devices`` which devices it concerned, ``status`` the
    HTTP status (None when no response arrived) and ``detail`` what the server said, if anything.
    ``partial_result`` is set when a multi-chunk operation had already achieved something before it
    failed (an :class:`ActivationResult` or a :class:`BulkResult`).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        method: str | None = None,
        endpoint: str | None = None,
        devices: Sequence[str] = (),
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.method = method
        self.endpoint = endpoint
        self.devices = list(devices)
        self.status = status
        self.detail = detail
        self.partial_result: Any = None
        super().__init__(message or self._compose())

    def _compose(self) -> str:
        parts = []
        if self.method or self.endpoint:
            parts.append(" ".join(p for p in (self.method, self.endpoint) if p))
        if self.devices:
            parts.append(f"({describe_devices(self.devices)})")
        head = " ".join(parts) or "request"
        tail = []
        if self.status is not None:
            tail.append(f"HTTP {self.status}")
        if self.detail:
            tail.append(self.detail[:_MAX_DETAIL])
        return f"{head}: {self.__class__.__name__}" + (": " + ": ".join(tail) if tail else "")


class LattigoConnectionError(LattigoError):
    """No usable HTTP response: connection refused or reset, timeout (after the retries allowed)."""


class AuthenticationError(LattigoError):
    """401 or 403: credentials missing, wrong, or not allowed to touch this resource."""


class NotFound(LattigoError):
    """404: no such device (or endpoint)."""


class BadRequest(LattigoError):
    """400 (missing or wrong parameters), 405 and other 4xx the API does not document further."""


class RateLimited(LattigoError):
    """429 and the retries allowed are spent. ``retry_after`` is what the server last asked for."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(LattigoError):
    """5xx (after the retries allowed where retrying is safe)."""


#: The bounds a call can hit, and the unit of each one's ``limit``.
BOUND_UNITS = {"pages": "pages", "retry_budget": "s", "response_time": "s", "body_size": "bytes"}


class DeadlineExceeded(LattigoError):
    """A call hit one of the client's bounds; ``bound`` says which and ``limit`` its value.

    ``pages``: a listing ran past ``max_pages``; ``retry_budget``: the retries of one call would wait longer
    than ``retry_budget`` seconds in all (or a single wait longer than ``max_wait``); ``response_time``: one
    answer took longer than ``response_timeout`` seconds to arrive whole; ``body_size``: one answer was
    larger than ``max_body_bytes``.
    """

    def __init__(self, *args: Any, bound: str, limit: float, **kwargs: Any) -> None:
        self.bound = bound
        self.limit = limit
        unit = BOUND_UNITS.get(bound, "")
        what = f"the {bound} bound ({limit:g} {unit})".replace(" )", ")")
        detail = kwargs.pop("detail", None)
        kwargs["detail"] = f"{what} was hit" + (f": {detail}" if detail else "")
        super().__init__(*args, **kwargs)


class RateLimitBudgetExceeded(DeadlineExceeded, RateLimited):
    """429s for longer than the retry budget allows: a :class:`RateLimited` and a ``retry_budget`` bound."""


class UnexpectedAnswer(LattigoError):
    """A 2xx answer that is not the documented shape of its endpoint (or not JSON, or nested absurdly
    deep): treated as an error, never as a success. ``detail`` says what was wrong."""


class UnsafeRedirect(LattigoError):
    """A redirect the client will not follow: to another scheme, host or port than the configured
    endpoint (it would send the credentials and the request's body there), one that would change the
    method of a write, or too many in a row."""


class AuditLogError(LattigoError):
    """The audit log cannot take this call's record (a full disk, an unwritable path): the call is not sent,
    or, when the record failed after the call, the run stops on it."""


class InsecureEndpoint(LattigoError):
    """An endpoint the client will not send credentials to: `http://` (clear text) on another machine than
    this one, or a scheme that is not HTTP. Nothing was sent."""


def decode_error_hash(raw: Any) -> dict[str, list[str]]:
    """The ``error`` of an ``unprocessed`` row: a JSON-encoded hash of arrays, per the API document.

    Tolerates an already-decoded dict, a hash whose values are plain strings, and a string that is not
    JSON at all (kept whole under ``"base"``).
    """
    value: Any = raw
    if isinstance(raw, (bytes, bytearray)):
        value = raw.decode("utf-8", "replace")
    if isinstance(value, str):
        from lattigo_fleet.client.shapes import nests_deeper_than

        if nests_deeper_than(value):
            return {"base": ["<an error nested too deeply to read>"]}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {"base": [value]} if value else {}
    if isinstance(value, Mapping):
        out: dict[str, list[str]] = {}
        for key, msgs in value.items():
            if isinstance(msgs, (list, tuple)):
                out[str(key)] = [_text(m) for m in msgs]
            else:
                out[str(key)] = [_text(msgs)]
        return out
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        return {"base": [_text(m) for m in value]}
    return {"base": [_text(value)]}


def _text(value: Any) -> str:
    """``str`` of a decoded JSON value that cannot recurse without bound (strings stay as they are)."""
    if not isinstance(value, (list, tuple, dict)):
        return str(value)
    try:
        return json.dumps(value, default=str)[:_MAX_DETAIL]
    except (ValueError, RecursionError):
        return "<unreadable>"


def _flatten_error(error: Mapping[str, Sequence[str]]) -> str:
    parts = []
    for key, msgs in error.items():
        text = "; ".join(msgs)
        parts.append(text if key == "base" else f"{key}: {text}")
    return "; ".join(parts) or "rejected (no reason given)"


@dataclass(frozen=True)
class UnprocessedRow:
    """One entry of a 422 ``unprocessed`` array."""

    device_index: int | None
    error: dict[str, list[str]]
    input: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """The decoded error hash as one line, e.g. ``iccid: has already been taken``."""
        return _flatten_error(self.error)

    @classmethod
    def parse(cls, raw: Any) -> UnprocessedRow:
        if not isinstance(raw, Mapping):
            return cls(device_index=None, error=decode_error_hash(raw), input={})
        index = raw.get("device_index")
        try:
            index = int(index) if index is not None else None
        except (TypeError, ValueError, OverflowError):
            index = None
        inp = raw.get("input")
        return cls(
            device_index=index,
            error=decode_error_hash(raw.get("error")),
            input=dict(inp) if isinstance(inp, Mapping) else {},
        )


class Unprocessable(LattigoError):
    """422 Unprocessable Entity, with the ``processed`` and ``unprocessed`` lists of the body."""

    def __init__(
        self,
        *args: Any,
        processed: Sequence[Mapping[str, Any]] = (),
        unprocessed: Sequence[UnprocessedRow] = (),
        **kwargs: Any,
    ) -> None:
        self.processed = [dict(p) for p in processed]
        self.unprocessed = list(unprocessed)
        super().__init__(*args, **kwargs)


# --- ThingSpace --------------------------------------------------------------------------------------


class ThingSpaceError(LattigoError):
    """A ThingSpace ``{"errorCode": ..., "errorMessage": ...}`` answer (or a failure to get one)."""

    def __init__(self, *args: Any, code: str | None = None, **kwargs: Any) -> None:
        self.code = code
        super().__init__(*args, **kwargs)


class ThingSpaceInsecureEndpoint(ThingSpaceError, InsecureEndpoint):
    """The ThingSpace endpoint is clear text off this machine (see :class:`InsecureEndpoint`)."""


class ThingSpaceAuthError(ThingSpaceError, AuthenticationError):
    """The API token or the session login was refused. A login refused on credentials is never retried."""


class ThingSpaceSessionExpired(ThingSpaceAuthError):
    """The VZ-M2M session token expired (and logging in again once did not help)."""


class ThingSpaceLoginLocked(ThingSpaceAuthError):
    """The account's login is locked after failed logins: only a support call unlocks it."""
