"""The Lattigo transport: everything between an endpoint method and the wire, and nothing about endpoints.

One :class:`LattigoTransport` owns one ``requests.Session`` and, for every request:

* HTTP Basic auth, connection pooling, a timeout, and the retry policy of :mod:`lattigo_fleet.client._http`
  mounted on the session's adapters (429 for every verb; 5xx and read errors only where repeating is safe);
* the request count (:attr:`stats`) and the mapping of failures to the typed errors of
  :mod:`lattigo_fleet.client.errors`, with every credential scrubbed from their messages;
* paging (:meth:`paged` follows the pagination headers to the last page);
* :meth:`send`, the one way to make a mutating call: it sends, maps errors, and appends the audit record;
* :meth:`submit_rows`, the recovery of a queueing POST whose outcome is unknown (a 5xx or a broken
  connection): re-read what took effect, send again only the rest.

What the answers mean is read by :mod:`lattigo_fleet.client.replies`; the endpoints are
:class:`lattigo_fleet.client.lattigo.LattigoClient`.
"""

from __future__ import annotations

import base64
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from lattigo_fleet.client import replies
from lattigo_fleet.client._http import (
    SAFE_METHODS,
    AuditLog,
    PolicyRetry,
    RequestStats,
    RetryHooks,
    endpoint_of,
    parse_retry_after,
    short_body,
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
    scrub,
)
from lattigo_fleet.client.models import ActivationResult, Page

__all__ = ["LattigoTransport", "Answer", "DEVICE_OPERATIONS", "IDEMPOTENT_POSTS"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEVICE_OPERATIONS = "v2/device_operations"
#: Device operations that are POSTs but set a value (so repeating one is harmless, like a PUT).
IDEMPOTENT_POSTS = ("set_usage_limit", "remove_usage_limit")


class Answer:
    """The answer to an audited call, as :meth:`LattigoTransport.send` hands it to the endpoint's reader."""

    def __init__(self, status: int, data: Any, detail: Callable[[], str], scrub: Callable[[str], str]) -> None:
        self.status = status
        self.data = data  # the decoded JSON body, None when empty
        self.detail = detail  # what the server said, scrubbed (computed only when asked)
        self.scrub = scrub  # removes the credentials from any text taken from the answer


class LattigoTransport:
    """The session, the retry policy, error mapping, paging and the audit log of one Lattigo client."""

    def __init__(
        self,
        base_url: str,
        key_name: str,
        api_key: str,
        *,
        timeout: float,
        audit_log: str | Path | None,
        max_retries: int,
        backoff_factor: float,
        backoff_max: float,
        max_wait: float,
        sleep: Callable[[float], None],
        pool_maxsize: int,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self._secrets = (
            api_key,
            key_name,
            base64.b64encode(f"{key_name}:{api_key}".encode()).decode("ascii"),
        )
        self.stats = RequestStats()
        self.audit = AuditLog(audit_log)
        self.hooks = RetryHooks(sleep=sleep, max_wait=max_wait, on_retry=self._on_retry)
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=self._retry(SAFE_METHODS))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Two POSTs set a value rather than queue work: repeating them after a 5xx is as safe as a PUT.
        setting_retry = self._retry({*SAFE_METHODS, "POST"})
        setting_adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=setting_retry)
        for op in IDEMPOTENT_POSTS:
            session.mount(f"{self.base_url}/{DEVICE_OPERATIONS}/{op}", setting_adapter)
        session.auth = (key_name, api_key)
        session.headers.update({"Accept": "application/json", "User-Agent": "lattigo-fleet-client/0.1"})
        self.session = session

    def _retry(self, repeatable: Iterable[str]) -> PolicyRetry:
        return PolicyRetry.build(
            self.max_retries,
            hooks=self.hooks,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            allowed_methods=frozenset(repeatable),
        )

    def close(self) -> None:
        self.session.close()

    def _on_retry(self, method: str, url: str) -> None:
        self.stats.count_retry(method, endpoint_of(url))

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    # --- one request ----------------------------------------------------------------------------------

    def request(
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
            resp = self.session.request(
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
                detail=self.scrub(f"{exc.__class__.__name__}: {exc}"),
            ) from None
        if 200 <= resp.status_code < 300 or resp.status_code in set(allow):
            return resp
        raise self._error_for(resp, method, path, devices)

    def detail(self, resp: requests.Response) -> str:
        """What the server said in this answer, short and scrubbed."""
        try:
            data = resp.json()
        except ValueError:
            return self.scrub(short_body(resp.text or resp.reason or ""))
        return self.scrub(replies.error_text(data))

    def _error_for(self, resp: requests.Response, method: str, path: str, devices: Sequence[str]) -> LattigoError:
        status = resp.status_code
        kwargs: dict[str, Any] = {
            "method": method,
            "endpoint": path,
            "devices": devices,
            "status": status,
            "detail": self.detail(resp),
        }
        if status in (401, 403):
            return AuthenticationError(**kwargs)
        if status == 404:
            return NotFound(**kwargs)
        if status == 422:
            try:
                processed, unprocessed = replies.unprocessable_body(resp.json())
            except ValueError:
                processed, unprocessed = [], []
            return Unprocessable(processed=processed, unprocessed=unprocessed, **kwargs)
        if status == 429:
            return RateLimited(retry_after=parse_retry_after(resp.headers.get("Retry-After")), **kwargs)
        if 400 <= status < 500:
            return BadRequest(**kwargs)
        if status >= 500:
            return ServerError(**kwargs)
        return LattigoError(**kwargs)

    def json(self, resp: requests.Response, method: str, path: str) -> Any:
        """The decoded body (None when empty); a body that is not JSON is a :class:`LattigoError`."""
        if not resp.content or not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError:
            raise LattigoError(
                method=method,
                endpoint=path,
                status=resp.status_code,
                detail="the response is not JSON: " + self.scrub(short_body(resp.text)),
            ) from None

    # --- reads ----------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, devices: Sequence[str] = ()) -> Any:
        resp = self.request("GET", path, params=_clean(params), devices=devices)
        return self.json(resp, "GET", path)

    def page(self, path: str, params: Mapping[str, Any] | None, page: int, per_page: int | None) -> Page:
        query = dict(_clean(params) or {})
        query["page"] = page
        if per_page:
            query["per_page"] = per_page
        resp = self.request("GET", path, params=query)
        data = self.json(resp, "GET", path)
        if data is None:
            data = []
        if not isinstance(data, list):
            raise LattigoError(method="GET", endpoint=path, status=resp.status_code, detail="expected a JSON array")
        return replies.page_of(data, resp.headers)

    def paged(self, path: str, params: Mapping[str, Any] | None, per_page: int) -> Iterator[Any]:
        """Every item of a list endpoint, following ``X-Next-Page`` (or ``X-Page``/``X-Total-Pages``).

        A response without pagination headers is the whole list. When the server caps the page size, the
        following pages are asked with the size it announced in ``X-Per-Page``.
        """
        size = per_page
        page_no = 1
        while True:
            page = self.page(path, params, page_no, size)
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

    # --- mutating calls -------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        devices: Sequence[str],
        read: Callable[[Answer], tuple[T, Mapping[str, str]]],
        allow: Iterable[int] = (),
        audit_fields: Mapping[str, Any] | None = None,
        refused: str = "failed",
        strict: bool = False,
        contain: Callable[[dict[str, str]], T] | None = None,
    ) -> T:
        """Send one mutating request and append its audit record (whatever happens, exceptions included).

        ``read`` turns the answer into ``(value, refusals)``: what the endpoint returns, and device ->
        reason for each device the API refused. The record's outcome is ``ok`` (none refused), ``partial``
        (some) or ``refused`` (the word for "all", e.g. ``rejected``); with ``strict`` a refusal is raised
        as a :class:`LattigoError`. ``audit_fields`` are added to the record.

        ``contain`` (bulk operations): a request failing for any reason but authentication or the rate
        limit fails its own devices only: it is recorded as ``failed`` and ``contain(failures)`` returned.
        """
        with self.audit.record(method, endpoint_of(path), devices) as rec:
            rec.extra.update(audit_fields or {})
            try:
                resp = self.request(method, path, json_body=body, devices=devices, allow=allow)
            except (AuthenticationError, RateLimited):
                raise
            except LattigoError as exc:
                if contain is None:
                    raise
                rec.outcome, rec.status = "failed", exc.status
                rec.detail = f"{exc.__class__.__name__}: {exc}"
                rec.failures = {str(d): rec.detail for d in devices}
                return contain(dict(rec.failures))
            rec.status = resp.status_code
            answer = Answer(resp.status_code, self.json(resp, method, path), lambda: self.detail(resp), self.scrub)
            value, failures = read(answer)
            rec.failures = dict(failures)
            if failures:
                rec.outcome = "partial" if any(str(d) not in failures for d in devices) else refused
                if strict:
                    detail = "; ".join(failures.values())
                    raise LattigoError(method=method, endpoint=path, devices=devices, detail=detail)
            return value

    def submit_rows(
        self,
        path: str,
        rows: Sequence[Any],
        make_body: Callable[[Sequence[Any]], dict[str, Any]],
        *,
        took_effect: Callable[[Mapping[str, Any] | None], bool],
        observe: Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]],
        audit_fields: Mapping[str, Any] | None = None,
    ) -> ActivationResult:
        """POST rows (each with an ``iccid``) to a queueing endpoint, recovering from unknown outcomes.

        A 422 refusing some rows is a partial success. After a 5xx or a broken connection (never retried
        blind: a queued request might be queued twice) ``observe`` re-reads the SIMs, the rows that
        ``took_effect`` count as accepted, and only the others are sent again, up to ``max_retries`` times.
        """
        result = ActivationResult()
        pending = list(rows)
        attempt = 0
        while pending:
            attempt += 1
            try:
                result.merge(self._post_rows(path, pending, make_body, audit_fields))
                return result
            except (ServerError, LattigoConnectionError) as exc:
                failure = exc
            # The outcome is unknown: part of it may have been applied. Look, then send only the rest.
            try:
                observed = observe([r.iccid for r in pending])
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
            self.hooks.wait(self._backoff(attempt))
        return result

    def _post_rows(
        self,
        path: str,
        rows: Sequence[Any],
        make_body: Callable[[Sequence[Any]], dict[str, Any]],
        audit_fields: Mapping[str, Any] | None,
    ) -> ActivationResult:
        iccids = [r.iccid for r in rows]
        return self.send(
            "POST",
            path,
            make_body(rows),
            devices=iccids,
            read=lambda answer: rows_read(answer, iccids),
            allow=(422,),
            audit_fields=audit_fields,
            refused="rejected",
        )

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_factor * (2 ** max(0, attempt - 1)))
        return delay / 2 + random.random() * delay / 2


def rows_read(answer: Answer, keys: Sequence[str]) -> tuple[ActivationResult, dict[str, str]]:
    """The reader of a row endpoint's answer for :meth:`LattigoTransport.send`: refusals are the rejected."""
    result = replies.row_results(answer.status, answer.data, keys, answer.detail, answer.scrub)
    return result, result.rejected


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
