"""The Lattigo REST API v2 client: the only code in the project that speaks HTTP to Lattigo.

One :class:`LattigoClient` wraps one ``requests.Session`` (HTTP Basic auth, connection pooling, a timeout
on every call, the retry policy of :mod:`lattigo_fleet.client._http`). Every documented endpoint is a
method; list endpoints follow the pagination headers to the last page; bulk operations take any number of
devices and send them in chunks; mutating calls are appended to an audit log when one is configured.

Devices are addressed by ICCID (``id_type=iccid``) wherever the API allows it; the endpoints that only
take device names (cost center, usage limits, SMS) say so, and :meth:`LattigoClient.names_by_iccid`
translates.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from lattigo_fleet.client._http import (
    SAFE_METHODS,
    AuditLog,
    PolicyRetry,
    RequestStats,
    RetryHooks,
    chunks,
    endpoint_of,
    iso,
    parse_retry_after,
    short_body,
    unique,
)
from lattigo_fleet.client.errors import (
    AuthenticationError,
    BadRequest,
    LattigoConnectionError,
    LattigoError,
    NotFound,
    RateLimited,
    ServerError,
    Unprocessable,
    UnprocessedRow,
    scrub,
)
from lattigo_fleet.client.models import NOTE_FIELDS, ActivationResult, ActivationRow, BulkResult, Page

__all__ = ["LattigoClient", "SIM_STATES", "SUSPENDED_NO_BILLING_STATES"]

log = logging.getLogger(__name__)

DateLike = date | datetime | str

SIM_STATES = (
    "pending_activation",
    "active",
    "suspended",
    "pending_suspend_no_billing",
    "suspended_no_billing",
)
SUSPENDED_NO_BILLING_STATES = frozenset({"pending_suspend_no_billing", "suspended_no_billing"})

_P_DEVICES = "v2/devices"
_P_OPS = "v2/device_operations"
#: Device operations that are POSTs but set a value (so repeating one is harmless, like a PUT).
IDEMPOTENT_POSTS = ("set_usage_limit", "remove_usage_limit")


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or not str(value).strip():
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _is_success(message: Any) -> bool:
    return isinstance(message, str) and message.strip().lower().startswith("success")


class LattigoClient:
    """Client of the Lattigo API v2.

    ``max_retries``: retries per request (429 for every verb; 5xx and read errors for GET/PUT only).
    ``backoff_factor``/``backoff_max``: exponential backoff with jitter when the server gives no
    ``Retry-After``; ``max_wait`` caps any single wait (``Retry-After`` included). ``sleep`` and ``clock``
    are injectable so that tests never wait for real.

    ``stats`` counts the requests actually sent (retries included) per ``"METHOD endpoint"``.
    """

    def __init__(
        self,
        base_url: str,
        key_name: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        chunk_size: int = 500,
        per_page: int = 1000,
        audit_log: str | Path | None = None,
        max_retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        pool_maxsize: int = 10,
        lookup_threshold: int = 10,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required")
        if chunk_size < 1 or per_page < 1:
            raise ValueError("chunk_size and per_page must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.chunk_size = int(chunk_size)
        self.per_page = int(per_page)
        self.max_retries = int(max_retries)
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.lookup_threshold = lookup_threshold
        self._sleep = sleep
        self._clock = clock
        self._secrets = (
            api_key,
            key_name,
            base64.b64encode(f"{key_name}:{api_key}".encode()).decode("ascii"),
        )
        self.stats = RequestStats()
        self.audit = AuditLog(audit_log)
        self._hooks = RetryHooks(sleep=sleep, max_wait=max_wait, on_retry=self._on_retry)
        retry = PolicyRetry.build(
            self.max_retries,
            hooks=self._hooks,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            allowed_methods=SAFE_METHODS,
        )
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=retry)
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Two POSTs set a value rather than queue work: repeating them after a 5xx is as safe as a PUT.
        setting_retry = PolicyRetry.build(
            self.max_retries,
            hooks=self._hooks,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            allowed_methods={*SAFE_METHODS, "POST"},
        )
        setting_adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=setting_retry)
        for op in IDEMPOTENT_POSTS:
            session.mount(f"{self.base_url}/{_P_OPS}/{op}", setting_adapter)
        session.auth = (key_name, api_key)
        session.headers.update({"Accept": "application/json", "User-Agent": "lattigo-fleet-client/0.1"})
        self._session = session

    # --- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> LattigoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the credentials
        return f"LattigoClient(base_url={self.base_url!r})"

    # --- plumbing -----------------------------------------------------------------------------------

    def _on_retry(self, method: str, url: str) -> None:
        self.stats.count_retry(method, endpoint_of(url))

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        devices: Sequence[str] = (),
        allow: Iterable[int] = (),
    ) -> requests.Response:
        """Send one request (the adapter's policy retries it where safe) and map failures to errors."""
        self.stats.count_request(method, endpoint_of(path))
        try:
            resp = self._session.request(
                method,
                f"{self.base_url}/{path}",
                params=params,
                json=json_body,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise LattigoConnectionError(
                method=method,
                endpoint=path,
                devices=devices,
                detail=self._scrub(f"{exc.__class__.__name__}: {exc}"),
            ) from None
        if 200 <= resp.status_code < 300 or resp.status_code in set(allow):
            return resp
        raise self._error_for(resp, method, path, devices)

    def _detail(self, resp: requests.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return self._scrub(short_body(resp.text or resp.reason or ""))
        if isinstance(data, Mapping):
            for key in ("error", "errors", "message", "errorMessage"):
                if key in data and data[key]:
                    value = data[key]
                    text = value if isinstance(value, str) else str(value)
                    return self._scrub(short_body(text))
        return self._scrub(short_body(str(data)))

    def _error_for(self, resp: requests.Response, method: str, path: str, devices: Sequence[str]) -> LattigoError:
        status = resp.status_code
        kwargs: dict[str, Any] = {
            "method": method,
            "endpoint": path,
            "devices": devices,
            "status": status,
            "detail": self._detail(resp),
        }
        if status in (401, 403):
            return AuthenticationError(**kwargs)
        if status == 404:
            return NotFound(**kwargs)
        if status == 422:
            processed, unprocessed = self._unprocessable_body(resp)
            return Unprocessable(processed=processed, unprocessed=unprocessed, **kwargs)
        if status == 429:
            return RateLimited(retry_after=parse_retry_after(resp.headers.get("Retry-After")), **kwargs)
        if 400 <= status < 500:
            return BadRequest(**kwargs)
        if status >= 500:
            return ServerError(**kwargs)
        return LattigoError(**kwargs)

    @staticmethod
    def _unprocessable_body(resp: requests.Response) -> tuple[list[dict[str, Any]], list[UnprocessedRow]]:
        try:
            data = resp.json()
        except ValueError:
            return [], []
        if not isinstance(data, Mapping):
            return [], []
        processed = [p for p in (data.get("processed") or []) if isinstance(p, Mapping)]
        unprocessed = [UnprocessedRow.parse(u) for u in (data.get("unprocessed") or [])]
        return [dict(p) for p in processed], unprocessed

    def _json(self, resp: requests.Response, method: str, path: str) -> Any:
        if not resp.content or not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError:
            raise LattigoError(
                method=method,
                endpoint=path,
                status=resp.status_code,
                detail="the response is not JSON: " + self._scrub(short_body(resp.text)),
            ) from None

    def _get(self, path: str, params: Mapping[str, Any] | None = None, devices: Sequence[str] = ()) -> Any:
        resp = self._request("GET", path, params=_clean(params), devices=devices)
        return self._json(resp, "GET", path)

    def _page(self, path: str, params: Mapping[str, Any] | None, page: int, per_page: int | None) -> Page:
        query = dict(_clean(params) or {})
        query["page"] = page
        if per_page:
            query["per_page"] = per_page
        resp = self._request("GET", path, params=query)
        data = self._json(resp, "GET", path)
        if data is None:
            data = []
        if not isinstance(data, list):
            raise LattigoError(method="GET", endpoint=path, status=resp.status_code, detail="expected a JSON array")
        h = resp.headers
        return Page(
            items=data,
            page=_header_int(h, "X-Page"),
            per_page=_header_int(h, "X-Per-Page"),
            total=_header_int(h, "X-Total"),
            total_pages=_header_int(h, "X-Total-Pages"),
            next_page=_header_int(h, "X-Next-Page"),
            prev_page=_header_int(h, "X-Prev-Page"),
        )

    def _paged(self, path: str, params: Mapping[str, Any] | None = None, per_page: int | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following ``X-Next-Page`` (or ``X-Page``/``X-Total-Pages``).

        A response without pagination headers is the whole list. When the server caps the page size, the
        following pages are asked with the size it announced in ``X-Per-Page``.
        """
        size = per_page or self.per_page
        page_no = 1
        while True:
            page = self._page(path, params, page_no, size)
            yield from page.items
            nxt = page.next_page
            if nxt is None and page.total_pages is not None:
                current = page.page or page_no
                if current < page.total_pages:
                    nxt = current + 1
            if nxt is None or not page.items:
                return
            if nxt <= page_no:
                raise LattigoError(
                    method="GET",
                    endpoint=path,
                    detail=f"pagination does not advance (page {page_no}, next {nxt})",
                )
            if page.per_page and page.per_page != size:
                size = page.per_page
            page_no = nxt

    @staticmethod
    def _device_path(device: str, sub: str | None = None) -> str:
        path = f"{_P_DEVICES}/{quote(str(device), safe='')}"
        return f"{path}/{sub}" if sub else path

    @staticmethod
    def _id_params(id_type: str | None) -> dict[str, str]:
        return {"id_type": id_type} if id_type and id_type != "device_name" else {}

    # --- devices --------------------------------------------------------------------------------------

    def devices(self, details: bool = True, state: str | None = None) -> Iterator[Any]:
        """Every device of the account, page after page (device objects, or names if ``details=False``)."""
        params: dict[str, Any] = {"details": "true" if details else None, "state": state}
        return self._paged(_P_DEVICES, params)

    def devices_page(
        self, page: int = 1, per_page: int | None = None, details: bool = True, state: str | None = None
    ) -> Page:
        """One page of ``v2/devices`` with its pagination headers."""
        params: dict[str, Any] = {"details": "true" if details else None, "state": state}
        return self._page(_P_DEVICES, params, page, per_page or self.per_page)

    def snapshot(self, state: str | None = None) -> dict[str, dict[str, Any]]:
        """All listed SIMs with details, keyed by ICCID, in ceil(N / page size) requests."""
        snap: dict[str, dict[str, Any]] = {}
        for device in self.devices(details=True, state=state):
            if isinstance(device, Mapping) and device.get("iccid"):
                snap[str(device["iccid"])] = dict(device)
        return snap

    def names_by_iccid(self, snapshot: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
        """ICCID -> device_name, for the endpoints that only take device names."""
        snap = snapshot if snapshot is not None else self.snapshot()
        return {iccid: str(dev["device_name"]) for iccid, dev in snap.items() if dev.get("device_name") is not None}

    def device(self, iccid_or_name: str, id_type: str | None = "iccid") -> dict[str, Any]:
        """One device object (``NotFound`` if the account has no such device)."""
        path = self._device_path(iccid_or_name)
        data = self._get(path, self._id_params(id_type), devices=[str(iccid_or_name)])
        if not isinstance(data, Mapping):
            raise LattigoError(method="GET", endpoint=path, detail="expected a device object")
        return dict(data)

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
        params = {
            **self._id_params(id_type),
            "start_date": _iso_or_none(start_date),
            "end_date": _iso_or_none(end_date),
            "direction": direction,
        }
        data = self._get(self._device_path(device, "get_sms"), params, devices=[device])
        return list(data or [])

    def calamp_messages(
        self,
        device: str,
        start_date: DateLike,
        end_date: DateLike,
        event_code: str | int | None = None,
        id_type: str | None = "iccid",
    ) -> list[dict[str, Any]]:
        """CalAmp messages of one device in a date range (every page)."""
        params = {
            **self._id_params(id_type),
            "start_date": iso(start_date),
            "end_date": iso(end_date),
            "event_code": event_code,
        }
        return list(self._paged(self._device_path(device, "calamp_messages"), params))

    def last_calamp_message(self, device: str, id_type: str | None = "iccid") -> dict[str, Any] | None:
        """The latest CalAmp message of one device, or None when it has none."""
        data = self._get(self._device_path(device, "last_calamp_message"), self._id_params(id_type), [device])
        if isinstance(data, list):
            return dict(data[0]) if data else None
        return dict(data) if isinstance(data, Mapping) and data else None

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
        params = {
            **self._id_params(id_type),
            "start_date": _iso_or_none(start_date),
            "end_date": _iso_or_none(end_date),
            "limit": limit,
        }
        return list(self._paged(self._device_path(device, sub), params))

    def set_note(self, device: str, field_name: str, note: str, id_type: str | None = "iccid") -> None:
        """PUT one note field (``note``, ``note1``..``note3``) of one device. Raises unless it succeeded."""
        if field_name not in NOTE_FIELDS:
            raise ValueError(f"field_name must be one of {', '.join(NOTE_FIELDS)}")
        path = self._device_path(device, "note")
        body = {"field_name": field_name, "note": note, **self._id_params(id_type)}
        with self.audit.record("PUT", endpoint_of(path), [device]) as rec:
            rec.extra["field_name"] = field_name
            resp = self._request("PUT", path, json_body=body, devices=[device])
            rec.status = resp.status_code
            data = self._json(resp, "PUT", path)
            if isinstance(data, Mapping) and data:
                message = data.get(device, next(iter(data.values())))
                if not _is_success(message):
                    rec.outcome = "failed"
                    rec.failures = {device: str(message)}
                    raise LattigoError(method="PUT", endpoint=path, devices=[device], detail=str(message))

    def cellular_locate(self, device: str, id_type: str | None = "iccid") -> Any:
        """Ask the carrier to triangulate one device (charged per call; never retried blind)."""
        path = self._device_path(device, "cellular_locate")
        with self.audit.record("POST", endpoint_of(path), [device]) as rec:
            resp = self._request("POST", path, json_body=self._id_params(id_type) or None, devices=[device])
            rec.status = resp.status_code
            data = self._json(resp, "POST", path)
            answer = next(iter(data.values())) if isinstance(data, Mapping) and len(data) == 1 else data
            if isinstance(answer, str) and answer.strip().lower().startswith("error"):
                rec.outcome = "failed"
                rec.failures = {device: answer}
                raise LattigoError(method="POST", endpoint=path, devices=[device], detail=answer)
        return answer

    # --- activation -----------------------------------------------------------------------------------

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
        all_rows = list(rows)
        seen: set[str] = set()
        result = ActivationResult()
        deduped: list[ActivationRow] = []
        for row in all_rows:
            if row.iccid in seen:
                continue  # the same SIM twice in one request would be asking for two activations
            seen.add(row.iccid)
            deduped.append(row)

        def body(chunk: Sequence[ActivationRow]) -> dict[str, Any]:
            return {"rate_plan_name": rate_plan_name, "activation_requests": [r.to_body() for r in chunk]}

        for chunk in chunks(deduped, self.chunk_size):
            try:
                result.merge(
                    self._submit_rows(
                        f"{_P_OPS}/activation_request",
                        list(chunk),
                        body,
                        took_effect=lambda dev: dev is not None,
                        extra_audit={"rate_plan_name": rate_plan_name},
                    )
                )
            except LattigoError as exc:
                exc.partial_result = result
                raise
        return result

    def _submit_rows(
        self,
        path: str,
        rows: list[Any],
        make_body: Callable[[Sequence[Any]], dict[str, Any]],
        took_effect: Callable[[Mapping[str, Any] | None], bool],
        extra_audit: Mapping[str, Any] | None = None,
    ) -> ActivationResult:
        """POST rows (each with an ``iccid``) to a queueing endpoint, recovering from unknown outcomes."""
        result = ActivationResult()
        pending = list(rows)
        attempt = 0
        while pending:
            attempt += 1
            try:
                result.merge(self._post_rows(path, pending, make_body, extra_audit))
                return result
            except (ServerError, LattigoConnectionError) as exc:
                failure = exc
            # The outcome is unknown: part of it may have been applied. Look, then send only the rest.
            try:
                observed = self._observe([r.iccid for r in pending])
            except LattigoError as reread:
                failure.partial_result = result
                raise failure from reread
            done = [r.iccid for r in pending if took_effect(observed.get(r.iccid))]
            result.accepted.extend(i for i in done if i not in result.accepted)
            result.recovered.extend(done)
            pending = [r for r in pending if r.iccid not in set(done)]
            log.warning(
                "%s failed (%s); re-read found %d of the rows applied, %d still to send",
                path,
                failure.__class__.__name__,
                len(done),
                len(pending),
            )
            if not pending:
                break
            if attempt > self.max_retries:
                for r in pending:
                    result.rejected[r.iccid] = f"not applied: {failure}"
                break
            result.resent.extend(r.iccid for r in pending)
            self._hooks.wait(self._backoff(attempt))
        return result

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_factor * (2 ** max(0, attempt - 1)))
        return delay / 2 + random.random() * delay / 2

    def _observe(self, iccids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current device objects of these ICCIDs (absent = not listed): per SIM if few, else paged."""
        if len(iccids) <= self.lookup_threshold:
            found: dict[str, dict[str, Any]] = {}
            for iccid in iccids:
                try:
                    found[iccid] = self.device(iccid, id_type="iccid")
                except NotFound:
                    pass
            return found
        wanted = set(iccids)
        return {i: d for i, d in self.snapshot().items() if i in wanted}

    def _post_rows(
        self,
        path: str,
        rows: Sequence[Any],
        make_body: Callable[[Sequence[Any]], dict[str, Any]],
        extra_audit: Mapping[str, Any] | None,
    ) -> ActivationResult:
        iccids = [r.iccid for r in rows]
        with self.audit.record("POST", endpoint_of(path), iccids) as rec:
            rec.extra.update(extra_audit or {})
            resp = self._request("POST", path, json_body=make_body(rows), devices=iccids, allow=(422,))
            rec.status = resp.status_code
            result = self._parse_row_results(resp, path, iccids)
            rec.failures = dict(result.rejected)
            if result.rejected:
                rec.outcome = "partial" if result.accepted else "rejected"
            return result

    def _parse_row_results(self, resp: requests.Response, path: str, keys: Sequence[str]) -> ActivationResult:
        """200 / 422 ``{processed, unprocessed}`` -> accepted and rejected keys (by ``device_index``)."""
        data = self._json(resp, "POST", path)
        result = ActivationResult()
        unprocessed_raw = data.get("unprocessed") if isinstance(data, Mapping) else None
        if resp.status_code == 422 and not unprocessed_raw:
            # The whole request was refused (e.g. an unknown rate plan): every row carries the reason.
            reason = self._detail(resp) or "Unprocessable Entity"
            result.rejected = {k: reason for k in keys}
            return result
        for raw in unprocessed_raw or []:
            row = UnprocessedRow.parse(raw)
            result.unprocessed.append(row)
            key: str | None = None
            if row.device_index is not None and 0 <= row.device_index < len(keys):
                key = keys[row.device_index]
            else:
                for field_name in ("iccid", "imei"):
                    value = row.input.get(field_name)
                    if value is not None and str(value) in keys:
                        key = str(value)
                        break
            if key is not None:
                result.rejected[key] = self._scrub(row.message)
        result.accepted = [k for k in keys if k not in result.rejected]
        return result

    def wait_until_active(
        self, iccids: Iterable[str], timeout: float = 600.0, poll_interval: float = 10.0
    ) -> dict[str, str | None]:
        """Poll the paged snapshot until every SIM is ``active`` (or settled in another non-pending
        state), or until ``timeout``. Returns ICCID -> state (None: not listed)."""
        targets = unique(str(i) for i in iccids)
        deadline = self._clock() + timeout
        while True:
            snap = self.snapshot() if targets else {}
            states: dict[str, str | None] = {i: (snap.get(i) or {}).get("state") for i in targets}
            settled = all(s is not None and not str(s).startswith("pending") for s in states.values())
            now = self._clock()
            if settled or now >= deadline:
                return states
            self._sleep(max(0.0, min(poll_interval, deadline - now)))

    # --- bulk device operations -----------------------------------------------------------------------

    def _bulk(
        self,
        method: str,
        op: str,
        names: Iterable[str],
        extra: Mapping[str, Any],
    ) -> BulkResult:
        path = f"{_P_OPS}/{op}"
        todo = unique(str(n) for n in names)
        result = BulkResult()
        for chunk in chunks(todo, self.chunk_size):
            chunk = list(chunk)
            body = {"device_names": chunk, **{k: v for k, v in extra.items() if v is not None}}
            with self.audit.record(method, path, chunk) as rec:
                try:
                    resp = self._request(method, path, json_body=body, devices=chunk)
                except (AuthenticationError, RateLimited) as exc:
                    exc.partial_result = result
                    raise
                except LattigoError as exc:
                    # This chunk failed as a whole; report each device and carry on with the others.
                    rec.outcome = "failed"
                    rec.status = exc.status
                    rec.detail = f"{exc.__class__.__name__}: {exc}"
                    rec.failures = {n: f"{exc.__class__.__name__}: {exc}" for n in chunk}
                    result.failed.update(rec.failures)
                    continue
                rec.status = resp.status_code
                part = self._parse_status_map(self._json(resp, method, path), chunk)
                rec.failures = dict(part.failed)
                if part.failed:
                    rec.outcome = "partial" if part.succeeded else "failed"
                result.merge(part)
        return result

    @staticmethod
    def _parse_status_map(data: Any, chunk: Sequence[str]) -> BulkResult:
        """``{"change_status"|"status": {name: "Success..."|"Error: ..."}}`` -> per-device outcome."""
        statuses: Any = None
        if isinstance(data, Mapping):
            for key in ("change_status", "status"):
                if isinstance(data.get(key), Mapping):
                    statuses = data[key]
                    break
            if statuses is None and any(n in data for n in chunk):
                statuses = data
        part = BulkResult()
        for name in chunk:
            if not isinstance(statuses, Mapping):
                part.failed[name] = "no per-device status in the response"
                continue
            message = statuses.get(name)
            if _is_success(message):
                part.succeeded.append(name)
            elif message is None:
                part.failed[name] = "no status returned for this device"
            else:
                part.failed[name] = str(message)
        return part

    def change_simstate(self, iccids: Iterable[str], state: str, id_type: str = "iccid") -> BulkResult:
        """Suspend or restore SIMs (``state`` is ``"suspend"`` or ``"restore"``), addressed by ICCID."""
        if state not in ("suspend", "restore"):
            raise ValueError("state must be 'suspend' or 'restore'")
        extra = {"state": state, **self._id_params(id_type)}
        return self._bulk("PUT", "change_simstate", iccids, extra)

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

    def suspend_no_billing(self, pairs: Iterable[tuple[str, str]]) -> BulkResult:
        """Queue suspension without billing for (ICCID, IMEI) pairs; keyed by ICCID.

        Like activation, a 5xx or a broken connection is answered by re-reading the SIMs' states and
        sending again only those not already (pending) suspended without billing.
        """
        rows = []
        seen: set[str] = set()
        for iccid, imei in pairs:
            if str(iccid) not in seen:
                seen.add(str(iccid))
                rows.append(_SuspendRow(str(iccid), str(imei)))
        result = BulkResult()

        def body(chunk: Sequence[_SuspendRow]) -> dict[str, Any]:
            return {"suspension_requests": [{"imei": r.imei, "iccid": r.iccid} for r in chunk]}

        for chunk in chunks(rows, self.chunk_size):
            try:
                part = self._submit_rows(
                    f"{_P_OPS}/suspend_no_billing_request",
                    list(chunk),
                    body,
                    took_effect=lambda dev: bool(dev) and dev.get("state") in SUSPENDED_NO_BILLING_STATES,
                )
            except LattigoError as exc:
                exc.partial_result = result
                raise
            result.merge(BulkResult(succeeded=part.accepted, failed=part.rejected))
        return result

    def upload_request(self, imeis: Iterable[str], upload_email: str, upload_sku: str) -> BulkResult:
        """Ask for IMEIs to be uploaded to the carrier's device database; keyed by IMEI.

        A 422 rejecting some IMEIs is a partial success. A 5xx is not retried (it cannot be checked).
        """
        todo = unique(str(i) for i in imeis)
        path = f"{_P_OPS}/upload_request"
        result = BulkResult()
        for chunk in chunks(todo, self.chunk_size):
            chunk = list(chunk)
            body = {
                "upload_email": upload_email,
                "upload_sku": upload_sku,
                "upload_ids": [{"imei": i} for i in chunk],
            }
            with self.audit.record("POST", path, chunk) as rec:
                try:
                    resp = self._request("POST", path, json_body=body, devices=chunk, allow=(422,))
                except LattigoError as exc:
                    exc.partial_result = result
                    raise
                rec.status = resp.status_code
                part = self._parse_row_results(resp, path, chunk)
                rec.failures = dict(part.rejected)
                if part.rejected:
                    rec.outcome = "partial" if part.accepted else "rejected"
            result.merge(BulkResult(succeeded=part.accepted, failed=part.rejected))
        return result

    def calamp_events(
        self,
        event_code: str | int,
        start_date: DateLike,
        end_date: DateLike,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        """CalAmp messages with one event code across all devices (every page)."""
        params = {
            "event_code": event_code,
            "start_date": iso(start_date),
            "end_date": iso(end_date),
            "state": state,
        }
        return list(self._paged(f"{_P_OPS}/calamp_events", params))

    # --- account --------------------------------------------------------------------------------------

    def rate_plans(self) -> list[dict[str, Any]]:
        """The account's rate plans (every page)."""
        return list(self._paged("v2/rate_plans"))

    def users(self) -> list[str]:
        """The account's usernames (every page)."""
        return [u if isinstance(u, str) else str(u.get("username", u)) for u in self._paged("v2/users")]


class _SuspendRow:
    __slots__ = ("iccid", "imei")

    def __init__(self, iccid: str, imei: str) -> None:
        self.iccid = iccid
        self.imei = imei


def _iso_or_none(value: DateLike | None) -> str | None:
    return None if value is None else iso(value)


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
