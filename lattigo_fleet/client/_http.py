"""Plumbing shared by the two clients: the retry policy, request counting and the audit log.

The Lattigo client retries in its own loop (``transport.py``: one retry budget per call, an adaptive rate
limiter shared by its threads). The ThingSpace client still uses urllib3's
:class:`~urllib3.util.retry.Retry` with :class:`PolicyRetry` mounted on its session's adapters, so that
every request (and every retry of it) goes through one policy:

* 429 is retried for every verb (a 429 was not processed), after the ``Retry-After`` the server asked
  for, or an exponential backoff with jitter when it did not say;
* 5xx and read errors are retried only for the methods declared safe (GET, and PUT, which in this API
  always sets a value, so repeating it is harmless); a POST is never repeated blind;
* a connection that could not be established is retried for every verb: nothing reached the server.

Waiting is done through an injectable ``sleep`` and capped, so that tests do not wait for real.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from urllib3.util.retry import Retry

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})


def insecure_endpoint(url: str) -> str | None:
    """Why the clients refuse to send credentials to `url`, or None: HTTPS anywhere, plain HTTP only on this
    machine (the emulator on loopback), where nothing travels over a network."""
    import ipaddress

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"{url!r} is not a URL"
    scheme = parts.scheme.lower()
    if scheme == "https" and host:
        return None
    if scheme == "http" and host:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return None
        return (
            f"http://{host} is clear text off this machine: the API credentials would travel unencrypted; use an "
            "https:// endpoint (plain http:// is accepted on loopback only, for the emulator)"
        )
    return f"{url!r} is not an https:// endpoint"


_DEVICE_PATH = re.compile(r"(?P<prefix>(?:^|/)v2/devices/)(?P<name>[^/]+)(?P<rest>/.*)?$")


def endpoint_of(url_or_path: str) -> str:
    """The endpoint template of a request: ``v2/devices/8901.../note`` -> ``v2/devices/:device_name/note``.

    Query strings and any base-URL prefix before ``v2/`` or ``api/`` are dropped.
    """
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0]
    for anchor in ("/v2/", "/api/"):
        idx = path.find(anchor)
        if idx >= 0:
            path = path[idx + 1 :]
            break
    path = path.lstrip("/")
    m = _DEVICE_PATH.search(path)
    if m:
        path = path[: m.start("name")] + ":device_name" + (m.group("rest") or "")
    return path


class RequestStats:
    """Requests actually sent, per ``"METHOD endpoint"``, and how many of them were retries. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def count_request(self, method: str, endpoint: str) -> None:
        with self._lock:
            self.requests[f"{method.upper()} {endpoint}"] += 1

    def count_retry(self, method: str, endpoint: str) -> None:
        key = f"{method.upper()} {endpoint}"
        with self._lock:
            self.requests[key] += 1
            self.retries[key] += 1

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    @property
    def total_retries(self) -> int:
        with self._lock:
            return sum(self.retries.values())

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": sum(self.requests.values()),
                "total_retries": sum(self.retries.values()),
                "requests": dict(self.requests),
                "retries": dict(self.retries),
            }

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.retries.clear()

    def __repr__(self) -> str:
        return f"RequestStats(total_requests={self.total_requests}, total_retries={self.total_retries})"


@dataclass
class RetryHooks:
    """What a :class:`PolicyRetry` needs from its client: how to wait, how long at most, whom to tell."""

    sleep: Callable[[float], None] = time.sleep
    max_wait: float = 120.0
    on_retry: Callable[[str, str], None] | None = None
    waits: list[float] = field(default_factory=list)  # the last few waits, for tests and diagnostics

    def wait(self, seconds: float) -> None:
        seconds = max(0.0, min(seconds, self.max_wait))
        self.waits.append(seconds)
        del self.waits[:-50]
        if seconds > 0:
            self.sleep(seconds)


class PolicyRetry(Retry):
    """urllib3 ``Retry`` with this project's policy (see the module docstring).

    ``allowed_methods`` are the verbs that may be repeated after a 5xx or a read error; 429 is retried for
    every verb regardless. Backoff: ``backoff_factor * 2**(n-1)`` capped at ``backoff_max``, with "equal
    jitter" (between half and all of it) so that concurrent clients spread out.
    """

    hooks: RetryHooks
    repeatable: frozenset[str]

    def __init__(
        self,
        *args: Any,
        hooks: RetryHooks | None = None,
        repeatable: Collection[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # urllib3 reads an empty allowed_methods as "every verb"; keep our own set, where empty means none.
        kwargs["allowed_methods"] = None
        super().__init__(*args, **kwargs)
        self.hooks = hooks or RetryHooks()
        self.repeatable = frozenset(m.upper() for m in (repeatable if repeatable is not None else SAFE_METHODS))

    @classmethod
    def build(
        cls,
        max_retries: int,
        *,
        hooks: RetryHooks,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        allowed_methods: Collection[str] = SAFE_METHODS,
        server_error_statuses: Collection[int] | None = None,
    ) -> PolicyRetry:
        statuses = set(server_error_statuses) if server_error_statuses is not None else set(range(500, 600))
        return cls(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=0,
            repeatable=allowed_methods,
            status_forcelist=statuses,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
            hooks=hooks,
        )

    def new(self, **kw: Any) -> PolicyRetry:
        retry = super().new(**kw)
        retry.hooks = self.hooks
        retry.repeatable = self.repeatable
        return retry

    def _is_method_retryable(self, method: str) -> bool:
        return method.upper() in self.repeatable

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return bool(self.total)
        if status_code in self.status_forcelist:
            return bool(self.total) and self._is_method_retryable(method)
        return False

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> Any:
        retry = super().increment(method, url, *args, **kwargs)  # raises once the retries are spent
        if self.hooks.on_retry is not None and method and url:
            self.hooks.on_retry(method, url)
        return retry

    def get_backoff_time(self) -> float:
        n = len(self.history)
        if n <= 0 or self.backoff_factor <= 0:
            return 0.0
        delay = min(self.backoff_max, self.backoff_factor * (2.0 ** (n - 1)))
        return delay / 2 + random.random() * delay / 2

    def sleep(self, response: Any = None) -> None:
        delay: float | None = None
        if response is not None and self.respect_retry_after_header:
            try:
                delay = self.get_retry_after(response)
            except Exception:  # an unparsable Retry-After: fall back to the backoff
                delay = None
        if delay is None:
            delay = self.get_backoff_time()
        self.hooks.wait(delay)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


# --- audit log ---------------------------------------------------------------------------------------


@dataclass
class AuditRecord:
    method: str
    endpoint: str
    devices: list[str]
    outcome: str = "ok"
    status: int | None = None
    failures: dict[str, str] = field(default_factory=dict)
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _AuditLogUnavailable(Exception):
    """An AuditLog built without its client's error type (in tests of the plumbing alone)."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(fields.get("detail"))


class AuditLog:
    """Appends one JSON line per mutating request to a file. Thread-safe; never holds the file open.

    A call that cannot be recorded is not sent: before each call the file must open for appending and its
    disk must have ``min_free_bytes`` left (else :class:`~lattigo_fleet.client.errors.AuditLogError`, and
    nothing is sent); a record that still fails to be written after its call raises the same error, so the
    run stops instead of going on unrecorded."""

    min_free_bytes = 1 << 20  # room for thousands of records: a disk with less is full for our purpose

    def __init__(self, path: str | Path | None, error: Callable[..., Exception] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        # What a call that cannot be recorded raises: the client's AuditLogError (passed in by the transport,
        # so that this plumbing module imports nothing of the client above it).
        self._error: Callable[..., Exception] = error or _AuditLogUnavailable

    def _check_room(self, method: str, endpoint: str, devices: Sequence[str]) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                stats = os.fstatvfs(fh.fileno())
        except OSError as exc:
            raise self._error(
                method=method,
                endpoint=endpoint,
                devices=devices,
                detail=f"the audit log {self.path} cannot be opened ({exc.strerror or exc}): nothing was sent",
            ) from None
        free = stats.f_bavail * stats.f_frsize
        if free < self.min_free_bytes:
            raise self._error(
                method=method,
                endpoint=endpoint,
                devices=devices,
                detail=f"the disk of the audit log {self.path} is full ({free} bytes free): nothing was sent",
            )

    @contextmanager
    def record(self, method: str, endpoint: str, devices: Sequence[str]) -> Iterator[AuditRecord]:
        rec = AuditRecord(method=method.upper(), endpoint=endpoint, devices=[str(d) for d in devices])
        if self.path is not None:
            self._check_room(rec.method, endpoint, rec.devices)
        started = time.monotonic()
        try:
            yield rec
        except BaseException as exc:
            rec.outcome = "error"
            status = getattr(exc, "status", None)
            if status is not None and rec.status is None:
                rec.status = status
            rec.detail = f"{exc.__class__.__name__}: {exc}"
            raise
        finally:
            self._write(rec, time.monotonic() - started)

    def _write(self, rec: AuditRecord, seconds: float) -> None:
        if self.path is None:
            return
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": rec.method,
            "endpoint": rec.endpoint,
            "devices": rec.devices,
            "outcome": rec.outcome,
            "status": rec.status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if rec.failures:
            entry["failures"] = rec.failures
        if rec.detail:
            entry["detail"] = rec.detail
        entry.update(rec.extra)
        line = json.dumps(entry, sort_keys=False, default=str)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except OSError as exc:
            raise self._error(
                method=rec.method,
                endpoint=rec.endpoint,
                devices=rec.devices,
                detail=f"this call was sent but could not be recorded in the audit log {self.path} "
                f"({exc.strerror or exc}): stopping",
            ) from None


# --- small helpers -----------------------------------------------------------------------------------


def iso(value: date | datetime | str) -> str:
    """ISO 8601 for the API: dates as ``YYYY-MM-DD``, datetimes in UTC with ``Z`` (naive = UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(items: Iterator[Any] | Sequence[Any]) -> list[Any]:
    """Order-preserving de-duplication."""
    seen: set[Any] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def short_body(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BodyBound(Exception):
    """An answer's body went past a bound while it was read: `bound` is ``response_time`` or ``body_size``."""

    def __init__(self, bound: str, detail: str) -> None:
        self.bound, self.detail = bound, detail
        super().__init__(detail)


_BODY_CHUNK = 64 * 1024


def read_bounded_body(resp: Any, deadline: float, max_bytes: int) -> None:
    """Read a streamed answer's body (requests, `stream=True`) in chunks into `resp`, failing with BodyBound
    once it takes longer than `deadline` (time.monotonic) or grows past `max_bytes`: the socket timeout only
    bounds the gap between two bytes, so a server trickling one byte at a time would hold a call forever.
    Read errors come out as requests' own exceptions."""
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > max_bytes:
        raise BodyBound("body_size", f"Content-Length {int(declared)}")
    body = bytearray()
    try:
        while True:
            if time.monotonic() > deadline:
                raise BodyBound("response_time", f"{len(body)} bytes of the body read")
            chunk = resp.raw.read1(_BODY_CHUNK, decode_content=True)
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise BodyBound("body_size", f"over {max_bytes} bytes read")
    except Urllib3ReadTimeout as exc:
        raise requests.ReadTimeout(exc) from None
    except (Urllib3Error, OSError) as exc:
        raise requests.ConnectionError(exc) from None
    resp._content = bytes(body)
    resp._content_consumed = True
