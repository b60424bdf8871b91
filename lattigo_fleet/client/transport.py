"""The Lattigo transport: everything between an endpoint method and the wire, and nothing about endpoints.

One :class:`LattigoTransport` owns one ``requests.Session`` and, for every request:

* HTTP Basic auth, connection pooling, a timeout, and its own retry loop (429 for every verb, paced by
  the shared :class:`~lattigo_fleet.client.pacing.AdaptiveRateLimiter`; 5xx and read errors only where
  repeating is safe), all of it within the :class:`Bounds` of one call (retry budget, response time,
  body size; redirects only to the configured endpoint's own origin);
* the request count (:attr:`stats`) and the mapping of failures to the typed errors of
  :mod:`lattigo_fleet.client.errors`, with every credential scrubbed from their messages;
* the check of every 2xx answer against its endpoint's shape (:mod:`lattigo_fleet.client.shapes`);
* paging (:meth:`paged` follows the pagination headers to the last page, within ``max_pages``);
* :meth:`send`, the one way to make a mutating call: it sends, maps errors, and appends the audit record;
* :meth:`submit_rows`, the recovery of a queueing POST whose outcome is unknown (a 5xx or a broken
  connection): re-read what took effect, send again only the rest.

What the answers mean is read by :mod:`lattigo_fleet.client.replies`; the endpoints are
:class:`lattigo_fleet.client.lattigo.LattigoClient`.

Over 400 lines: one retry loop with its bounds, pacing, streaming reads and error mapping, which only make sense
together; the endpoints, shapes, pacing and errors are in modules of their own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from lattigo_fleet.client import replies
from lattigo_fleet.client._http import (
    SAFE_METHODS,
    AuditLog,
    BodyBound,
    RequestStats,
    endpoint_of,
    insecure_endpoint,
    parse_retry_after,
    read_bounded_body,
    short_body,
)
from lattigo_fleet.client.errors import (
    AuditLogError,
    AuthenticationError,
    BadRequest,
    DeadlineExceeded,
    InsecureEndpoint,
    LattigoConnectionError,
    LattigoError,
    NotFound,
    RateLimitBudgetExceeded,
    RateLimited,
    ServerError,
    UnexpectedAnswer,
    Unprocessable,
    UnsafeRedirect,
    scrub,
)
from lattigo_fleet.client.models import ActivationResult, Page
from lattigo_fleet.client.pacing import AdaptiveRateLimiter
from lattigo_fleet.client.shapes import MAX_NESTING, Shape, nesting_depth, nests_deeper_than

__all__ = ["LattigoTransport", "Answer", "Bounds", "DEVICE_OPERATIONS", "IDEMPOTENT_POSTS"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEVICE_OPERATIONS = "v2/device_operations"
#: Device operations that are POSTs but set a value (so repeating one is harmless, like a PUT).
IDEMPOTENT_POSTS = ("set_usage_limit", "remove_usage_limit")
#: Redirects followed in a row (only to the configured endpoint's own scheme, host and port).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
#: Reservations of a token one attempt makes when the rate keeps falling while it waits.
MAX_RESERVATIONS = 5
#: The shortest wait before a retry, whatever backoff_factor says: a retry is never sent back to back.
MIN_BACKOFF = 0.05


@dataclass(frozen=True)
class Bounds:
    """How far one call may go before it fails with :class:`DeadlineExceeded` (its ``bound`` in brackets).

    ``max_pages`` [pages]: pages of one listing (a listing also stops when the server's own ``X-Total`` or
    ``X-Total-Pages`` says it is complete, and fails with :class:`UnexpectedAnswer` when a page repeats).
    ``retry_budget`` [retry_budget]: seconds one call may spend waiting between its attempts (429 pacing,
    ``Retry-After``, backoff after a 5xx), in all; long enough by default to ride out a rate-limit storm.
    A ``Retry-After`` longer than what is left of it, or than ``max_wait``, fails at once.
    ``response_timeout`` [response_time]: wall-clock seconds for one answer to arrive whole, from sending
    the request to the last byte of the body (the socket ``timeout`` only bounds the gap between bytes).
    ``max_body_bytes`` [body_size]: the largest answer body read (after decompression).
    ``listing_timeout`` [listing_time]: wall-clock seconds for one whole listing (all its pages), so that a
    server paging slowly without a total cannot keep a run going for hours; the waits for the listing's turn
    in the shared bucket (the account's request budget, a 429 storm's pacing) do not count.
    """

    max_pages: int = 10_000
    retry_budget: float = 300.0
    max_wait: float = 120.0
    response_timeout: float = 120.0
    max_body_bytes: int = 64 * 1024 * 1024
    listing_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.max_pages < 1 or self.max_body_bytes < 1:
            raise ValueError("max_pages and max_body_bytes must be positive")
        if not (self.retry_budget >= 0 and self.max_wait >= 0 and self.response_timeout > 0):
            raise ValueError("retry_budget and max_wait must be >= 0, response_timeout > 0")
        if not self.listing_timeout > 0:
            raise ValueError("listing_timeout must be > 0")


class Answer:
    """The answer to an audited call, as :meth:`LattigoTransport.send` hands it to the endpoint's reader."""

    def __init__(self, status: int, data: Any, detail: Callable[[], str], scrub: Callable[[str], str]) -> None:
        self.status = status
        self.data = data  # the decoded JSON body, None when empty
        self.detail = detail  # what the server said, scrubbed (computed only when asked)
        self.scrub = scrub  # removes the credentials from any text taken from the answer


class _Call:
    """The retry state of one call: when it started, how long it has waited, its failed attempts."""

    def __init__(self, method: str, path: str, devices: Sequence[str], started: float) -> None:
        self.method = method
        self.path = path
        self.devices = devices
        self.started = started
        self.waited = 0.0  # its own waits: backoffs, and the part of the bucket's waits it owed (below)
        self.queued = 0.0  # waits for its turn in the shared bucket: the account's throughput, not its budget
        self.owed = 0.0  # Retry-After seconds the server asked of this call, which the bucket then waits
        self.failures = 0  # attempts lost to a 5xx or a broken connection
        self.throttles = 0  # attempts answered 429
        self.attempts = 0


class _NotReached(Exception):
    """The connection could not be made: nothing reached the server, so any verb may be sent again."""


class LattigoTransport:
    """The session, the retry policy, error mapping, paging and the audit log of one Lattigo client.

    Retries are this class's own loop (not urllib3's), so that one budget bounds them all:

    * 429 is retried for every verb (a 429 was not processed) for as long as the retry budget lasts, after
      the ``Retry-After`` the server asked for (else an exponential backoff with jitter), and the shared
      :class:`AdaptiveRateLimiter` slows every thread of the client down to the rate the server allows;
    * 5xx and read errors are retried (``max_retries`` times, within the budget) only for the methods that
      may be repeated: GET, PUT (which in this API always sets a value) and the POSTs that set a value;
    * a connection that could not be established is retried for every verb: nothing reached the server.
    """

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
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
        pool_maxsize: int,
        bounds: Bounds | None = None,
        requests_per_second: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.bounds = bounds or Bounds()
        self._sleep = sleep
        self._clock = clock
        self._secrets = (
            api_key,
            key_name,
            base64.b64encode(f"{key_name}:{api_key}".encode()).decode("ascii"),
        )
        self.stats = RequestStats()
        self.audit = AuditLog(audit_log, error=AuditLogError)
        self.limiter = AdaptiveRateLimiter(clock, ceiling=requests_per_second)
        self._turns = threading.local()  # seconds this thread's calls waited their turn in the bucket, in all
        self.waits: list[float] = []  # the last few waits, for tests and diagnostics
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = (key_name, api_key)
        session.headers.update({"Accept": "application/json", "User-Agent": "lattigo-fleet-client/0.1"})
        self.session = session

    def close(self) -> None:
        self.session.close()

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
        """Send one request, retrying it within the bounds (see the class docstring); map failures to errors.

        The answer's body has been read whole (``resp.content``) within ``response_timeout`` and
        ``max_body_bytes``.
        """
        if refused := insecure_endpoint(self.base_url):
            raise InsecureEndpoint(method=method, endpoint=path, devices=devices, detail=refused)
        call = _Call(method, path, devices, self._clock())
        began = time.monotonic()  # real time: the waits for an answer are the socket's, not the injected clock's
        operation = path.rsplit("/", 1)[-1] if path.startswith(f"{DEVICE_OPERATIONS}/") else None
        repeatable = method in SAFE_METHODS or (method == "POST" and operation in IDEMPOTENT_POSTS)
        allowed = set(allow)
        last: requests.Response | None = None  # the previous attempt's answer, for the error if we stop
        while True:
            sent_at = self._pace(call, last)
            call.attempts += 1
            if call.attempts == 1:
                self.stats.count_request(method, endpoint_of(path))
            else:
                self.stats.count_retry(method, endpoint_of(path))
            try:
                resp = self._exchange(call, params, json_body)
            except _NotReached as exc:
                self._retry_or_raise(call, True, self._connection_error(call, exc.__cause__))
                continue
            except requests.RequestException as exc:
                if isinstance(exc, requests.ReadTimeout):
                    self._check_answer_bound(call, began)
                self._retry_or_raise(call, repeatable, self._connection_error(call, exc))
                continue
            last, status = resp, resp.status_code
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if status == 429:
                call.throttles += 1
                if retry_after:  # honoured: the next acquire() waits it (and so does every other thread)
                    self._check_wait(call, retry_after, resp)  # too long: fail now, not after waiting
                    call.owed += retry_after  # the bucket's next wait is this call's own, up to this much
                    self.limiter.on_throttle(sent_at, retry_after)
                else:  # none (or "0"): back off, and the bucket paces the retry too
                    self.limiter.on_throttle(sent_at, None)
                    # The bucket's spacing at the lowered rate is this call's own wait, not a turn in line.
                    call.owed += 1.0 / self.limiter.rate if self.limiter.rate > 0 else 0.0
                    self._wait(call, self._backoff(call.throttles), resp)
                continue
            self.limiter.on_success()
            if status >= 500 and repeatable and call.failures < self.max_retries:
                call.failures += 1
                self._wait(call, retry_after if retry_after is not None else self._backoff(call.failures), resp)
                continue
            if 200 <= status < 300 or status in allowed:
                return resp
            raise self._error_for(resp, method, path, devices)

    def _check_answer_bound(self, call: _Call, began: float) -> None:
        """After an attempt that got no answer in time: fail the call if another wait for one would end past
        the response bound, so a server that never answers costs one clear error within that bound."""
        wait = min(self.timeout, self.bounds.response_timeout)
        if time.monotonic() - began + wait > self.bounds.response_timeout:
            raise DeadlineExceeded(
                method=call.method,
                endpoint=call.path,
                devices=call.devices,
                bound="response_time",
                limit=self.bounds.response_timeout,
                detail=f"no answer from the server in {call.attempts} attempt(s) of {self.timeout:g} s each",
            )

    def _pace(self, call: _Call, last: requests.Response | None) -> float:
        """Wait for the shared bucket's token (the client's pacing, and any Retry-After a 429 asked of every
        thread); reserve again, a few times at most, if the rate fell while waiting. The send time."""
        for _ in range(MAX_RESERVATIONS):
            epoch = self.limiter.epoch
            pace, sent_at = self.limiter.acquire()
            if pace > 0:
                self._wait(call, pace, last, pacing=True)
            if self.limiter.epoch == epoch:
                break
        return sent_at

    def _waited_turns(self) -> float:
        """Seconds this thread's calls have waited their turn in the shared bucket (not waits owed to a 429)."""
        seconds: float = getattr(self._turns, "seconds", 0.0)
        return seconds

    def _retry_or_raise(self, call: _Call, repeatable: bool, error: LattigoConnectionError) -> None:
        if not repeatable or call.failures >= self.max_retries:
            raise error
        call.failures += 1
        self._wait(call, self._backoff(call.failures), None, error)

    def _connection_error(self, call: _Call, exc: BaseException | None) -> LattigoConnectionError:
        return LattigoConnectionError(
            method=call.method,
            endpoint=call.path,
            devices=call.devices,
            detail=self.scrub(f"{exc.__class__.__name__}: {exc}"),
        )

    def _wait(
        self,
        call: _Call,
        seconds: float,
        resp: requests.Response | None,
        error: LattigoError | None = None,
        *,
        pacing: bool = False,
    ) -> None:
        """Wait ``seconds`` before the next attempt, unless that would break the retry budget: then fail.

        A wait of the shared bucket (``pacing``) is the call's own only as far as it owes one (a Retry-After the
        server asked of it); the rest is its turn behind the other threads' calls, which the budget does not
        count: per-SIM calls queued behind a slow account must not fail for waiting their turn."""
        own = seconds
        if pacing:
            own = min(seconds, call.owed)
            call.owed -= own
            call.queued += seconds - own
            self._turns.seconds = self._waited_turns() + seconds - own
        self._check_wait(call, own, resp, error, pacing=pacing)
        call.waited += own
        self.waits.append(seconds)
        del self.waits[:-50]
        if seconds > 0:
            self._sleep(seconds)

    def _check_wait(
        self,
        call: _Call,
        seconds: float,
        resp: requests.Response | None,
        error: LattigoError | None = None,
        *,
        pacing: bool = False,
    ) -> None:
        """Fail (bound ``retry_budget``) if waiting ``seconds`` more would overrun the call's retry budget,
        or (a wait the server asked for) is longer than ``max_wait``."""
        budget = self.bounds.retry_budget
        spent = max(self._clock() - call.started - call.queued, call.waited)
        too_long = not pacing and seconds > self.bounds.max_wait
        if spent + seconds <= budget and not too_long:
            return
        why = (
            f"a wait of {seconds:g} s is longer than max_wait ({self.bounds.max_wait:g} s)"
            if too_long
            else f"{spent:.1f} s spent on {call.attempts} attempt(s), {seconds:.1f} s more needed"
        )
        last = error.detail if error is not None else (self.detail(resp) if resp is not None else None)
        kwargs: dict[str, Any] = {
            "method": call.method,
            "endpoint": call.path,
            "devices": call.devices,
            "status": resp.status_code if resp is not None else None,
            "bound": "retry_budget",
            "limit": budget,
            "detail": why + (f"; last answer: {last}" if last else ""),
        }
        if resp is not None and resp.status_code == 429:
            raise RateLimitBudgetExceeded(retry_after=parse_retry_after(resp.headers.get("Retry-After")), **kwargs)
        raise DeadlineExceeded(**kwargs)

    def _exchange(self, call: _Call, params: Mapping[str, Any] | None, body: Any) -> requests.Response:
        """One attempt: send, follow same-origin redirects, read the body within the bounds."""
        deadline = time.monotonic() + self.bounds.response_timeout
        method, url = call.method, f"{self.base_url}/{call.path}"
        read_timeout = min(self.timeout, self.bounds.response_timeout)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    timeout=(self.timeout, read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.ConnectionError as exc:
                reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
                if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError):
                    raise _NotReached() from exc
                raise
            try:
                self._read_body(resp, deadline, call)
            finally:
                resp.close()
            if resp.status_code not in _REDIRECTS:
                return resp
            url, method, body = self._redirect(resp, call, method, body)
            params = None  # the target carries its own query
            self.stats.count_request(method, endpoint_of(url))
        raise UnsafeRedirect(
            method=call.method, endpoint=call.path, devices=call.devices, detail=f"more than {MAX_REDIRECTS} redirects"
        )

    def _redirect(self, resp: requests.Response, call: _Call, method: str, body: Any) -> tuple[str, str, Any]:
        """Where a redirect leads, if the client may follow it: the same origin only, the method kept."""
        location = resp.headers.get("Location")
        fail: dict[str, Any] = {
            "method": call.method,
            "endpoint": call.path,
            "devices": call.devices,
            "status": resp.status_code,
        }
        if not location:
            raise UnexpectedAnswer(detail="a redirect without a Location", **fail)
        target = urljoin(resp.url, location)
        if _origin(target) != self._origin:
            origin = _origin(target)
            where = self.scrub(short_body("{}://{}:{}".format(*origin) if origin else location, 120))
            raise UnsafeRedirect(detail=f"redirected off the configured endpoint, to {where}: not followed", **fail)
        if resp.status_code in (307, 308) or method in ("GET", "HEAD"):
            return target, method, body
        raise UnsafeRedirect(detail=f"a {resp.status_code} would turn this {method} into a GET: not followed", **fail)

    def _read_body(self, resp: requests.Response, deadline: float, call: _Call) -> None:
        """Read the body within the response deadline and the body cap (_http.read_bounded_body)."""
        try:
            read_bounded_body(resp, deadline, self.bounds.max_body_bytes)
        except BodyBound as exc:
            limit = self.bounds.response_timeout if exc.bound == "response_time" else self.bounds.max_body_bytes
            raise DeadlineExceeded(
                method=call.method,
                endpoint=call.path,
                devices=call.devices,
                status=resp.status_code,
                bound=exc.bound,
                limit=limit,
                detail=exc.detail,
            ) from None

    def detail(self, resp: requests.Response) -> str:
        """What the server said in this answer, short and scrubbed."""
        try:
            data = _loads(resp.content)
        except ValueError:
            text = resp.content[:2000].decode("utf-8", "replace") if resp.content else ""
            return self.scrub(short_body(text or resp.reason or ""))
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
                processed, unprocessed = replies.unprocessable_body(_loads(resp.content))
            except ValueError:
                processed, unprocessed = [], []
            return Unprocessable(processed=processed, unprocessed=unprocessed, **kwargs)
        if status == 429:
            return RateLimited(retry_after=parse_retry_after(resp.headers.get("Retry-After")), **kwargs)
        if 400 <= status < 500:
            return BadRequest(**kwargs)
        if status >= 500:
            return ServerError(**kwargs)
        return UnexpectedAnswer(**kwargs)

    def json(self, resp: requests.Response, method: str, path: str, shape: Shape | None = None) -> Any:
        """The decoded body (None when empty), checked against ``shape`` when the answer is a 2xx.

        A body that is not JSON, nests deeper than the shapes allow, or (a 2xx) is not ``shape`` is an
        :class:`UnexpectedAnswer`.
        """
        fail: dict[str, Any] = {"method": method, "endpoint": path, "status": resp.status_code}
        try:
            data = _loads(resp.content) if resp.content.strip() else None
        except ValueError as exc:
            raise UnexpectedAnswer(detail=self.scrub(str(exc)), **fail) from None
        if shape is not None and 200 <= resp.status_code < 300:
            if data is None:
                raise UnexpectedAnswer(detail=f"expected {shape.name}; the answer is empty", **fail)
            try:
                problem = shape.problem(data)
            except RecursionError:
                problem = f"expected {shape.name}; the answer nests too deeply to check"
            if problem:
                raise UnexpectedAnswer(detail=self.scrub(problem), **fail)
        return data

    # --- reads ----------------------------------------------------------------------------------------

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, devices: Sequence[str] = (), *, shape: Shape
    ) -> Any:
        """GET one answer of the given ``shape`` (anything else is an :class:`UnexpectedAnswer`)."""
        resp = self.request("GET", path, params=_clean(params), devices=devices)
        return self.json(resp, "GET", path, shape)

    def page(
        self, path: str, params: Mapping[str, Any] | None, page: int, per_page: int | None, *, shape: Shape
    ) -> Page:
        return self._page(path, params, page, per_page, shape)[0]

    def _page(
        self, path: str, params: Mapping[str, Any] | None, page: int, per_page: int | None, shape: Shape
    ) -> tuple[Page, str]:
        """One page and a digest of its body (to notice a server that answers the same page again)."""
        query = dict(_clean(params) or {})
        query["page"] = page
        if per_page:
            query["per_page"] = per_page
        resp = self.request("GET", path, params=query)
        data = self.json(resp, "GET", path, shape)
        return replies.page_of(data, resp.headers), hashlib.sha256(resp.content).hexdigest()

    def paged(self, path: str, params: Mapping[str, Any] | None, per_page: int, *, shape: Shape) -> Iterator[Any]:
        """Every item of a list endpoint, following ``X-Next-Page`` (or ``X-Page``/``X-Total-Pages``).

        A response without pagination headers is the whole list. When the server caps the page size, the
        following pages are asked with the size it announced in ``X-Per-Page``. The listing stops when the
        server's own ``X-Total-Pages`` or ``X-Total`` says it is complete, and fails after ``max_pages``
        pages (:class:`DeadlineExceeded`, bound ``pages``) or when a page repeats an earlier one or the
        page number does not advance (:class:`UnexpectedAnswer`).
        """
        size = per_page
        page_no = 1
        pages = items = 0
        digests: dict[str, int] = {}
        started, turns = self._clock(), self._waited_turns()
        while True:
            # The waits for its turn in the bucket (a small share of the account's budget) are the account's
            # throughput, known in advance, not a server paging slowly: they do not count against the bound.
            if self._clock() - started - (self._waited_turns() - turns) > self.bounds.listing_timeout:
                raise DeadlineExceeded(
                    method="GET",
                    endpoint=path,
                    bound="listing_time",
                    limit=self.bounds.listing_timeout,
                    detail=f"{items} items in {pages} pages read and the server still announces page {page_no}",
                )
            if pages >= self.bounds.max_pages:
                raise DeadlineExceeded(
                    method="GET",
                    endpoint=path,
                    bound="pages",
                    limit=self.bounds.max_pages,
                    detail=f"{items} items read and the server still announces page {page_no}",
                )
            page, digest = self._page(path, params, page_no, size, shape)
            pages += 1
            if page.items and digest in digests:
                raise UnexpectedAnswer(
                    method="GET", endpoint=path, detail=f"page {page_no} repeats page {digests[digest]}"
                )
            digests[digest] = page_no
            items += len(page.items)
            yield from page.items
            current = page.page or page_no
            nxt = page.next_page
            if nxt is None and page.total_pages is not None and current < page.total_pages:
                nxt = current + 1
            if nxt is None or not page.items:
                return
            if page.total_pages is not None and current >= page.total_pages:
                return  # the server's own count of pages says this was the last one
            if page.total is not None and items >= page.total:
                return  # ... or its count of items
            if nxt <= page_no:
                raise UnexpectedAnswer(
                    method="GET",
                    endpoint=path,
                    detail=f"pagination does not advance (page {page_no}, next {nxt})",
                )
            if page.per_page and page.per_page > 0 and page.per_page != size:
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
        shape: Shape,
        allow: Iterable[int] = (),
        audit_fields: Mapping[str, Any] | None = None,
        refused: str = "failed",
        strict: bool = False,
        contain: Callable[[dict[str, str]], T] | None = None,
    ) -> T:
        """Send one mutating request and append its audit record (whatever happens, exceptions included).

        ``shape`` is the documented shape of a 2xx answer (any other is an :class:`UnexpectedAnswer`);
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
            try:
                data = self.json(resp, method, path, shape)
            except UnexpectedAnswer as exc:
                if contain is None:
                    raise
                rec.outcome, rec.detail = "failed", f"{exc.__class__.__name__}: {exc}"
                rec.failures = {str(d): rec.detail for d in devices}
                return contain(dict(rec.failures))
            answer = Answer(resp.status_code, data, lambda: self.detail(resp), self.scrub)
            try:
                value, failures = read(answer)
            except replies.ForeignRows as exc:
                # Taken as success it would report SIMs activated that were not asked for (and hide ours).
                rec.outcome, rec.detail = "failed", f"UnexpectedAnswer: {exc}"
                raise UnexpectedAnswer(
                    method=method, endpoint=path, devices=devices, status=resp.status_code, detail=str(exc)
                ) from None
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
        shape: Shape,
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
                result.merge(self._post_rows(path, pending, make_body, shape, audit_fields))
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
            self._sleep(self._backoff(attempt))
        return result

    def _post_rows(
        self,
        path: str,
        rows: Sequence[Any],
        make_body: Callable[[Sequence[Any]], dict[str, Any]],
        shape: Shape,
        audit_fields: Mapping[str, Any] | None,
    ) -> ActivationResult:
        iccids = [r.iccid for r in rows]
        return self.send(
            "POST",
            path,
            make_body(rows),
            devices=iccids,
            read=lambda answer: rows_read(answer, iccids),
            shape=shape,
            allow=(422,),
            audit_fields=audit_fields,
            refused="rejected",
        )

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_factor * (2.0 ** min(30, max(0, attempt - 1))))
        delay = max(delay, MIN_BACKOFF)
        return delay / 2 + random.random() * delay / 2


def rows_read(answer: Answer, keys: Sequence[str]) -> tuple[ActivationResult, dict[str, str]]:
    """The reader of a row endpoint's answer for :meth:`LattigoTransport.send`: refusals are the rejected."""
    result = replies.row_results(answer.status, answer.data, keys, answer.detail, answer.scrub)
    return result, result.rejected


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _loads(content: bytes) -> Any:
    """JSON from a body, or ValueError (also for nesting deeper than :data:`MAX_NESTING`)."""
    if nests_deeper_than(content, MAX_NESTING):
        raise ValueError(f"the answer nests deeper than {MAX_NESTING} levels: it nests too deeply to decode")
    try:
        data = json.loads(content)
    except RecursionError:
        raise ValueError("the answer nests too deeply to decode") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise ValueError(f"the answer is not JSON ({short_body(str(exc), 80)}): {_peek(content)}") from None
    if nesting_depth(data, MAX_NESTING) > MAX_NESTING:
        raise ValueError(f"the answer nests deeper than {MAX_NESTING} levels")
    return data


def _peek(content: bytes) -> str:
    return short_body(content[:400].decode("utf-8", "replace"), 120)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port filled in; None for a URL without a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, parts.hostname.lower(), port
