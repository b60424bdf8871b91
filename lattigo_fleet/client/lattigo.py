"""The Lattigo REST API v2 client: the surface, one method per documented endpoint.

Each method says what it sends and how the answer reads; the wire itself (session, auth, retries and 429,
typed errors, paging, the audit record of every mutating call, the re-read after an unknown outcome) is
:class:`lattigo_fleet.client.transport.LattigoTransport`, and the answers' formats are
:mod:`lattigo_fleet.client.replies`. List endpoints follow the pagination headers to the last page; bulk
operations take any number of devices and send them ``chunk_size`` at a time.

Devices are addressed by ICCID (``id_type=iccid``) wherever the API allows it; the endpoints that only
take device names (cost center, usage limits, SMS) say so, and :meth:`LattigoClient.names_by_iccid`
translates.

The module is ~500 lines because it has 25 public methods (the endpoints, the snapshot, the waiting) and
each keeps its signature and docstring here, in one list a reader can scan; no plumbing is left to move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

from lattigo_fleet.client import replies, shapes
from lattigo_fleet.client._http import chunks, iso, short_body, unique
from lattigo_fleet.client.budget import RequestBudget, request_budget
from lattigo_fleet.client.errors import AuthenticationError, LattigoError, NotFound, RateLimited
from lattigo_fleet.client.models import (
    NOTE_FIELDS,
    ActivationResult,
    ActivationRow,
    BulkResult,
    LiveDevice,
    Page,
    as_live_device,
    live_state,
)
from lattigo_fleet.client.shapes import Shape
from lattigo_fleet.client.transport import DEVICE_OPERATIONS, Answer, Bounds, LattigoTransport, rows_read
from lattigo_fleet.vocabulary import SIM_STATES, SUSPENDED_NO_BILLING_STATES  # re-exported

__all__ = ["LattigoClient", "SIM_STATES", "SUSPENDED_NO_BILLING_STATES"]

DateLike = date | datetime | str
R = TypeVar("R")


_P_DEVICES = "v2/devices"
_P_OPS = DEVICE_OPERATIONS

#: Devices per bulk request (activation, state, cost center, usage limit): the one statement of the size the
#: reconciler batches to (the Applier's batcher is cut to `chunk_size`). The documents name no limit; 500 keeps
#: a request's body and the platform's work per request bounded, and 10,000 SIMs in 20 requests.
CHUNK_SIZE = 500
#: Devices per page of `v2/devices` asked for: a fleet of N SIMs is read in ceil(N / PER_PAGE) requests.
PER_PAGE = 1000


class LattigoClient:
    """Client of the Lattigo API v2.

    ``max_retries``: retries per request after a 5xx or a broken connection (for GET, PUT and the POSTs
    that set a value only); a 429 is retried for every verb for as long as ``retry_budget`` lasts, and
    slows the whole client down (an adaptive token bucket shared by its threads, see
    :mod:`lattigo_fleet.client.pacing`). ``backoff_factor``/``backoff_max``: exponential backoff with jitter
    when the server gives no ``Retry-After``. ``sleep`` and ``clock`` are injectable so that tests never
    wait for real.

    The bounds of one call (each hit raises :class:`~lattigo_fleet.client.errors.DeadlineExceeded` whose
    ``bound`` names it; see :class:`~lattigo_fleet.client.transport.Bounds`):

    * ``max_pages`` (10,000): pages of one listing [``pages``];
    * ``retry_budget`` (300 s): time one call may spend waiting to retry, in all; ``max_wait`` (120 s):
      the longest single wait: a ``Retry-After`` above either fails at once [``retry_budget``];
    * ``response_timeout`` (120 s): wall-clock time for one answer to arrive whole (``timeout``, 30 s,
      bounds the gap between two bytes) [``response_time``];
    * ``max_body_bytes`` (64 MiB): the largest answer read [``body_size``];
    * ``listing_timeout`` (600 s): wall-clock time for one whole listing, all pages, less its waits for its
      turn under the request budget [``listing_time``].

    Every 2xx answer is checked against its endpoint's documented shape (:mod:`lattigo_fleet.client.shapes`);
    any other is an :class:`~lattigo_fleet.client.errors.UnexpectedAnswer`. Redirects are followed only to
    the configured endpoint's own scheme, host and port (else :class:`~lattigo_fleet.client.errors.UnsafeRedirect`).

    ``budget``: the account's request budget and how many jobs share it (:mod:`lattigo_fleet.client.budget`);
    by default the one this process is configured with (``LATTIGO_FLEET_REQUESTS_PER_SECOND`` and
    ``LATTIGO_FLEET_BUDGET_SHARES``, else the stack's ``lattigo-fleet:requestsPerSecond``), so that every
    client the product makes keeps to its share: at most ``budget / shares`` requests per second from the
    first request on (429s may still slow it further).

    ``stats`` counts the requests actually sent (retries included) per ``"METHOD endpoint"``.
    """

    def __init__(
        self,
        base_url: str,
        key_name: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        chunk_size: int = CHUNK_SIZE,
        per_page: int = PER_PAGE,
        audit_log: str | Path | None = None,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        pool_maxsize: int = 10,
        lookup_threshold: int = 10,
        max_pages: int = Bounds.max_pages,
        retry_budget: float = Bounds.retry_budget,
        response_timeout: float = Bounds.response_timeout,
        max_body_bytes: int = Bounds.max_body_bytes,
        listing_timeout: float = Bounds.listing_timeout,
        budget: RequestBudget | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        if chunk_size < 1 or per_page < 1:
            raise ValueError("chunk_size and per_page must be positive")
        #: the account's request budget and this job's share of it (None: read where the product reads it)
        self.budget = budget if budget is not None else request_budget()
        self._http = LattigoTransport(
            base_url,
            key_name,
            api_key,
            timeout=timeout,
            audit_log=audit_log,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            sleep=sleep,
            clock=clock,
            pool_maxsize=pool_maxsize,
            requests_per_second=self.budget.per_job,
            bounds=Bounds(
                max_pages=max_pages,
                retry_budget=retry_budget,
                max_wait=max_wait,
                response_timeout=response_timeout,
                max_body_bytes=max_body_bytes,
                listing_timeout=listing_timeout,
            ),
        )
        self.base_url = self._http.base_url
        self.stats = self._http.stats
        self.audit = self._http.audit
        self.chunk_size = int(chunk_size)
        self.per_page = int(per_page)
        self.lookup_threshold = lookup_threshold
        self._sleep = sleep
        self._clock = clock

    @property
    def max_retries(self) -> int:
        """Retries allowed per request (and re-sends after an unknown outcome)."""
        return self._http.max_retries

    @property
    def timeout(self) -> float:
        return self._http.timeout

    @property
    def bounds(self) -> Bounds:
        """The bounds of one call (pages, retry budget, response time, body size)."""
        return self._http.bounds

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LattigoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the credentials
        return f"LattigoClient(base_url={self.base_url!r})"

    def _paged(self, path: str, params: Mapping[str, Any] | None = None, *, shape: Shape) -> Iterator[Any]:
        return self._http.paged(path, params, self.per_page, shape=shape)

    # --- devices --------------------------------------------------------------------------------------

    def devices(self, details: bool = True, state: str | None = None) -> Iterator[Any]:
        """Every device of the account, page after page (device objects, or names if ``details=False``)."""
        shape = shapes.DEVICES if details else shapes.DEVICE_NAMES
        return self._paged(_P_DEVICES, {"details": "true" if details else None, "state": state}, shape=shape)

    def devices_page(
        self, page: int = 1, per_page: int | None = None, details: bool = True, state: str | None = None
    ) -> Page:
        """One page of ``v2/devices`` with its pagination headers."""
        params = {"details": "true" if details else None, "state": state}
        shape = shapes.DEVICES if details else shapes.DEVICE_NAMES
        return self._http.page(_P_DEVICES, params, page, per_page or self.per_page, shape=shape)

    def snapshot(self, state: str | None = None) -> dict[str, LiveDevice]:
        """All listed SIMs with details, keyed by ICCID, in ceil(N / page size) requests."""
        devices = self.devices(details=True, state=state)
        return {str(d["iccid"]): as_live_device(d) for d in devices}

    def names_by_iccid(self, snapshot: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
        """ICCID -> device_name, for the endpoints that only take device names."""
        snap = snapshot if snapshot is not None else self.snapshot()
        return {iccid: str(dev["device_name"]) for iccid, dev in snap.items() if dev.get("device_name") is not None}

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> LiveDevice:
        """One device object (``NotFound`` if the account has no such device)."""
        path = _device_path(iccid_or_name)
        return as_live_device(
            self._http.get(path, _id_params(id_type), devices=[str(iccid_or_name)], shape=shapes.DEVICE)
        )

    def get_sms(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        direction: str | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """SMS MT status objects of one device (VDF devices only)."""
        if direction is not None and direction not in ("all", "received", "sent"):
            raise ValueError("direction must be one of 'all', 'received', 'sent'")
        params = {**_id_params(id_type), **_date_range(start_date, end_date), "direction": direction}
        return list(self._http.get(_device_path(device, "get_sms"), params, devices=[device], shape=shapes.OBJECTS))

    def calamp_messages(
        self,
        device: str,
        start_date: DateLike,
        end_date: DateLike,
        event_code: str | int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """CalAmp messages of one device in a date range (every page)."""
        params: dict[str, Any] = {**_id_params(id_type), "start_date": iso(start_date), "end_date": iso(end_date)}
        params["event_code"] = event_code
        return list(self._paged(_device_path(device, "calamp_messages"), params, shape=shapes.MESSAGES))

    def last_calamp_message(self, device: str, id_type: str | None = "iccid") -> dict[str, Any] | None:
        """The latest CalAmp message of one device, or None when it has none."""
        path = _device_path(device, "last_calamp_message")
        data = self._http.get(path, _id_params(id_type), [device], shape=shapes.LAST_MESSAGE)
        if isinstance(data, list):
            return dict(data[0]) if data else None
        return dict(data) if data else None

    def device_reports(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """Device reports of one device (the API returns ``limit`` of them, 1 by default; every page)."""
        return self._usage_like("device_reports", device, start_date, end_date, limit, id_type)

    def daily_data_usages(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """Daily data usages (``date_for``, ``bytes_used``, ``sms_used``); ``limit`` defaults to 1 upstream."""
        return self._usage_like("daily_data_usages", device, start_date, end_date, limit, id_type)

    def monthly_data_usages(
        self,
        device: str,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        limit: int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """Monthly data usages; ``limit`` defaults to 1 upstream."""
        return self._usage_like("monthly_data_usages", device, start_date, end_date, limit, id_type)

    def _usage_like(
        self,
        sub: str,
        device: str,
        start_date: DateLike | None,
        end_date: DateLike | None,
        limit: int | None,
        id_type: str | None,
    ) -> list[dict[str, Any]]:
        params = {**_id_params(id_type), **_date_range(start_date, end_date), "limit": limit}
        return list(self._paged(_device_path(device, sub), params, shape=shapes.OBJECTS))

    def set_note(self, device: str, field_name: str, note: str, id_type: str | None = "iccid") -> None:
        """PUT one note field (``note``, ``note1``..``note3``) of one device. Raises unless it succeeded."""
        if field_name not in NOTE_FIELDS:
            raise ValueError(f"field_name must be one of {', '.join(NOTE_FIELDS)}")
        body = {"field_name": field_name, "note": note, **_id_params(id_type)}

        def read(answer: Answer) -> tuple[None, dict[str, str]]:
            data = answer.data  # a non-empty {name: status} object (the shape says so)
            message = data.get(device, next(iter(data.values())))
            return None, {} if replies.is_success(message) else {device: answer.scrub(short_body(message))}

        path, fields = _device_path(device, "note"), {"field_name": field_name}
        self._http.send(
            "PUT", path, body, devices=[device], read=read, shape=shapes.NOTE, audit_fields=fields, strict=True
        )

    def cellular_locate(self, device: str, id_type: str | None = "iccid") -> Any:
        """Ask the carrier to triangulate one device (charged per call; never retried blind)."""

        def read(answer: Answer) -> tuple[Any, dict[str, str]]:
            data = answer.data
            located = next(iter(data.values())) if len(data) == 1 else data
            refused = isinstance(located, str) and located.strip().lower().startswith("error")
            return located, {device: answer.scrub(short_body(located))} if refused else {}

        path, body = _device_path(device, "cellular_locate"), _id_params(id_type) or None
        return self._http.send("POST", path, body, devices=[device], read=read, shape=shapes.LOCATE, strict=True)

    # --- activation and other queued requests ---------------------------------------------------------

    def activate(self, rows: Iterable[ActivationRow], rate_plan_name: str) -> ActivationResult:
        """Request activation of SIMs, ``chunk_size`` rows per request.

        A 422 rejecting some rows is a partial success: they come back in ``rejected`` (ICCID -> the
        decoded reason). A 5xx or a broken connection is never retried blind: the account is re-read to
        learn which rows took effect, and only the others are sent again, so no SIM is activated twice.
        Raises only when nothing could be learned (auth failure, rate limit spent, the re-read failing);
        the exception's ``partial_result`` then holds what earlier chunks achieved.
        """
        if not rate_plan_name:
            raise ValueError("rate_plan_name is required")
        deduped = _first_of_each(rows, lambda row: row.iccid)  # one SIM twice would be two activations

        def body(chunk: Sequence[ActivationRow]) -> dict[str, Any]:
            return {"rate_plan_name": rate_plan_name, "activation_requests": [r.to_body() for r in chunk]}

        result = ActivationResult()
        for chunk in chunks(deduped, self.chunk_size):
            with _partial(result):
                result.merge(
                    self._http.submit_rows(
                        f"{_P_OPS}/activation_request",
                        chunk,
                        body,
                        shape=shapes.ROWS,
                        took_effect=lambda dev: dev is not None,
                        observe=self._observe,
                        audit_fields={"rate_plan_name": rate_plan_name},
                    )
                )
        return result

    def suspend_no_billing(self, pairs: Iterable[tuple[str, str]]) -> BulkResult:
        """Queue suspension without billing for (ICCID, IMEI) pairs; keyed by ICCID.

        Like activation, a 5xx or a broken connection is answered by re-reading the SIMs' states and
        sending again only those not already (pending) suspended without billing.
        """
        rows = _first_of_each((_SuspendRow(str(iccid), str(imei)) for iccid, imei in pairs), lambda row: row.iccid)

        def body(chunk: Sequence[_SuspendRow]) -> dict[str, Any]:
            return {"suspension_requests": [{"imei": r.imei, "iccid": r.iccid} for r in chunk]}

        result = BulkResult()
        for chunk in chunks(rows, self.chunk_size):
            with _partial(result):
                part = self._http.submit_rows(
                    f"{_P_OPS}/suspend_no_billing_request",
                    chunk,
                    body,
                    shape=shapes.ROWS,
                    took_effect=lambda dev: dev is not None and dev.get("state") in SUSPENDED_NO_BILLING_STATES,
                    observe=self._observe,
                )
            result.merge(BulkResult(succeeded=part.accepted, failed=part.rejected))
        return result

    def upload_request(self, imeis: Iterable[str], upload_email: str, upload_sku: str) -> BulkResult:
        """Ask for IMEIs to be uploaded to the carrier's device database; keyed by IMEI.

        A 422 rejecting some IMEIs is a partial success. A 5xx is not retried (it cannot be checked).
        """
        result = BulkResult()
        for chunk in chunks(unique(str(i) for i in imeis), self.chunk_size):
            keys = list(chunk)
            body = {"upload_email": upload_email, "upload_sku": upload_sku, "upload_ids": [{"imei": i} for i in keys]}
            with _partial(result):
                part = self._http.send(
                    "POST",
                    f"{_P_OPS}/upload_request",
                    body,
                    devices=keys,
                    read=partial(rows_read, keys=keys),
                    shape=shapes.ROWS,
                    allow=(422,),
                    refused="rejected",
                )
            result.merge(BulkResult(succeeded=part.accepted, failed=part.rejected))
        return result

    def _observe(self, iccids: Sequence[str]) -> dict[str, LiveDevice]:
        """The current device objects of these ICCIDs (absent = not listed): per SIM if few, else paged."""
        if len(iccids) <= self.lookup_threshold:
            found: dict[str, LiveDevice] = {}
            for iccid in iccids:
                try:
                    found[iccid] = self.device(iccid, id_type="iccid")
                except NotFound:
                    pass
            return found
        wanted = set(iccids)
        return {i: d for i, d in self.snapshot().items() if i in wanted}

    def wait_until_active(
        self, iccids: Iterable[str], timeout: float = 600.0, poll_interval: float = 10.0
    ) -> dict[str, str | None]:
        """Poll the paged snapshot until every SIM is ``active`` (or settled in another non-pending
        state), or until ``timeout``. Returns ICCID -> state (None: not listed)."""
        targets = unique(str(i) for i in iccids)
        deadline = self._clock() + timeout
        while True:
            snap = self.snapshot() if targets else {}
            states: dict[str, str | None] = {i: live_state(snap.get(i)) for i in targets}
            settled = all(s is not None and not str(s).startswith("pending") for s in states.values())
            now = self._clock()
            if settled or now >= deadline:
                return states
            self._sleep(max(0.0, min(poll_interval, deadline - now)))

    # --- bulk device operations -----------------------------------------------------------------------

    def change_simstate(self, iccids: Iterable[str], state: str, id_type: str = "iccid") -> BulkResult:
        """Suspend or restore SIMs (``state`` is ``"suspend"`` or ``"restore"``), addressed by ICCID."""
        if state not in ("suspend", "restore"):
            raise ValueError("state must be 'suspend' or 'restore'")
        return self._bulk("PUT", "change_simstate", iccids, {"state": state, **_id_params(id_type)})

    def change_cost_center(self, device_names: Iterable[str], cost_center: str) -> BulkResult:
        """Set the cost center of devices (by device name: the endpoint takes no ``id_type``)."""
        return self._bulk("PUT", "change_cost_center", device_names, {"cost_center": cost_center})

    def set_usage_limit(
        self,
        device_names: Iterable[str],
        kb_limit: int,
        action: str | None = "suspend",
        usernames: Sequence[str] | None = None,
    ) -> BulkResult:
        """Set a monthly usage limit (KB) on devices (by device name); ``action`` "suspend" or "email"."""
        if isinstance(kb_limit, bool) or int(kb_limit) != kb_limit or kb_limit < 0:
            raise ValueError("kb_limit must be a non-negative integer")
        if action not in (None, "suspend", "email"):
            raise ValueError("action must be 'suspend', 'email' or None")
        extra: dict[str, Any] = {"kb_limit": int(kb_limit), "action": action}
        if usernames:
            extra["usernames"] = list(usernames)
        return self._bulk("POST", "set_usage_limit", device_names, extra)

    def remove_usage_limit(self, device_names: Iterable[str]) -> BulkResult:
        """Remove the monthly usage limit of devices (by device name)."""
        return self._bulk("POST", "remove_usage_limit", device_names, {})

    def send_sms(self, device_names: Iterable[str], text: str) -> BulkResult:
        """Queue an SMS to devices (by device name). Never retried after a 5xx: it might be sent twice."""
        if not text:
            raise ValueError("text is required")
        return self._bulk("POST", "send_sms", device_names, {"sms_text": text})

    def _bulk(self, method: str, op: str, names: Iterable[str], extra: Mapping[str, Any]) -> BulkResult:
        """``{"device_names": [...], **extra}``, ``chunk_size`` names per request. A chunk that fails fails
        its own devices; only an authentication failure or the rate limit stops the whole operation."""
        params = {k: v for k, v in extra.items() if v is not None}
        result = BulkResult()
        for chunk in chunks(unique(str(n) for n in names), self.chunk_size):
            names_ = list(chunk)
            with _partial(result, only=(AuthenticationError, RateLimited)):
                part = self._http.send(
                    method,
                    f"{_P_OPS}/{op}",
                    {"device_names": names_, **params},
                    devices=names_,
                    read=partial(_status_read, names=names_),
                    shape=_STATUS_SHAPES[op],
                    contain=lambda failed: BulkResult(failed=failed),
                )
            result.merge(part)
        return result

    def calamp_events(
        self,
        event_code: str | int,
        start_date: DateLike,
        end_date: DateLike,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        """CalAmp messages with one event code across all devices (every page)."""
        params = {"event_code": event_code, "start_date": iso(start_date), "end_date": iso(end_date), "state": state}
        return list(self._paged(f"{_P_OPS}/calamp_events", params, shape=shapes.MESSAGES))

    # --- account --------------------------------------------------------------------------------------

    def rate_plans(self) -> list[dict[str, Any]]:
        """The account's rate plans (every page): objects with at least a string ``name``."""
        return [dict(plan) for plan in self._paged("v2/rate_plans", shape=shapes.RATE_PLANS)]

    def users(self) -> list[str]:
        """The account's usernames (every page)."""
        return list(self._paged("v2/users", shape=shapes.USERS))


#: The answer of each bulk device operation: ``change_status`` for the two PUTs, ``status`` for the POSTs.
_STATUS_SHAPES = {
    "change_simstate": shapes.CHANGE_STATUS,
    "change_cost_center": shapes.CHANGE_STATUS,
    "set_usage_limit": shapes.STATUS,
    "remove_usage_limit": shapes.STATUS,
    "send_sms": shapes.STATUS,
}


class _SuspendRow(NamedTuple):
    iccid: str
    imei: str


@contextmanager
def _partial(result: Any, only: tuple[type[LattigoError], ...] = (LattigoError,)) -> Iterator[None]:
    """Attach what a multi-chunk operation achieved so far to the error that stops it."""
    try:
        yield
    except only as exc:
        exc.partial_result = result
        raise


def _status_read(answer: Answer, names: Sequence[str]) -> tuple[BulkResult, dict[str, str]]:
    part = replies.status_map(answer.data, names)
    return part, part.failed


def _device_path(device: str, sub: str | None = None) -> str:
    path = f"{_P_DEVICES}/{quote(str(device), safe='')}"
    return f"{path}/{sub}" if sub else path


def _id_params(id_type: str | None) -> dict[str, str]:
    return {"id_type": id_type} if id_type and id_type != "device_name" else {}


def _date_range(start_date: DateLike | None, end_date: DateLike | None) -> dict[str, str | None]:
    """The optional ``start_date``/``end_date`` query parameters (an absent one is left out)."""
    return {k: None if v is None else iso(v) for k, v in (("start_date", start_date), ("end_date", end_date))}


def _first_of_each(items: Iterable[R], key: Callable[[R], str]) -> list[R]:
    """The first item of each key, in their order."""
    first: dict[str, R] = {}
    for item in items:
        first.setdefault(key(item), item)
    return list(first.values())
