"""Verizon ThingSpace client: the carrier-side daily usage of a SIM ("Retrieve Daily Usage").

Token lifecycle, per ``thingspace-auth-facts.md``:

* the API token (OAuth2 client credentials) is cached until it expires (one hour, ``expires_in``);
* the VZ-M2M session token is cached and renewed only when a request fails because it expired, and then
  only once for that request;
* a login refused on its credentials is never retried: five consecutive failures lock the account, so the
  client remembers the refusal and will not send that login again.

``daily_usage`` follows ``hasMoreData`` to the end (a page is any 2xx answer with a JSON body: Verizon sends
202 while there is more data, 200 with the last page): each next request starts (``earliest``) at the
timestamp of the last record received, and the records the server sends again at that boundary are
dropped, counted as a multiset, so that two genuine records for the same day are both kept.

It is one module of ~470 lines because the token lifecycle and that paging are one story, told against
one endpoint; split it (session vs. endpoints, as lattigo.py/transport.py) when a second endpoint arrives.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from lattigo_fleet.client._http import (
    BodyBound,
    PolicyRetry,
    RequestStats,
    RetryHooks,
    endpoint_of,
    insecure_endpoint,
    iso,
    read_bounded_body,
    short_body,
)
from lattigo_fleet.client.errors import (
    ThingSpaceAuthError,
    ThingSpaceError,
    ThingSpaceInsecureEndpoint,
    ThingSpaceLoginLocked,
    ThingSpaceSessionExpired,
    scrub,
)

__all__ = ["ThingSpaceClient", "UsageRecord", "DailyUsage"]

TOKEN_PATH = "api/ts/v1/oauth2/token"
LOGIN_PATH = "api/m2m/v1/session/login"
LOGOUT_PATH = "api/m2m/v1/session/logout"
USAGE_PATH = "api/m2m/v1/devices/usage/actions/list"


def _to_int(value: Any) -> int:
    """A count the document types as a string but examples send as a number: both parse."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(Decimal(str(value).strip()))
        except (InvalidOperation, ValueError):
            raise ThingSpaceError(detail=f"not a number: {short_body(str(value), 40)}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1", "yes")
    return bool(value)


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 (``Z`` or offset; naive = UTC), or epoch seconds/milliseconds."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    else:
        text = str(value).strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ThingSpaceError(detail=f"unreadable timestamp {short_body(str(value), 40)!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class UsageRecord:
    """One ``usageHistory`` entry. ``mo_sms``/``mt_sms`` come from ``extendedAttributes`` when present."""

    timestamp: datetime
    bytes_used: int
    sms_used: int
    mo_sms: int | None = None
    mt_sms: int | None = None
    service_plan: str | None = None
    source: str | None = None
    extended_attributes: tuple[tuple[str, str], ...] = ()
    raw_timestamp: str = ""

    @property
    def day(self) -> date:
        return self.timestamp.date()

    def identity(self) -> tuple[Any, ...]:
        """What makes two records "the same record" (for dropping the ones re-sent at a page boundary)."""
        return (
            self.timestamp,
            self.bytes_used,
            self.sms_used,
            self.service_plan,
            self.source,
            self.extended_attributes,
        )

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> UsageRecord:
        attrs: list[tuple[str, str]] = []
        for item in raw.get("extendedAttributes") or []:
            if isinstance(item, Mapping) and "key" in item:
                attrs.append((str(item["key"]), "" if item.get("value") is None else str(item.get("value"))))
        lookup = dict(attrs)
        ts_raw = raw.get("timestamp")
        if ts_raw is None:
            raise ThingSpaceError(detail="a usage record has no timestamp")
        return cls(
            timestamp=parse_timestamp(ts_raw),
            bytes_used=_to_int(raw.get("bytesUsed")),
            sms_used=_to_int(raw.get("smsUsed")),
            mo_sms=_to_int(lookup["MoSms"]) if "MoSms" in lookup else None,
            mt_sms=_to_int(lookup["MtSms"]) if "MtSms" in lookup else None,
            service_plan=raw.get("servicePlan"),
            source=raw.get("source"),
            extended_attributes=tuple(attrs),
            raw_timestamp=str(ts_raw),
        )


@dataclass
class DailyUsage:
    """The records of one day summed (``records`` says how many there were)."""

    day: date
    bytes_used: int = 0
    sms_used: int = 0
    mo_sms: int = 0
    mt_sms: int = 0
    records: int = 0

    def add(self, record: UsageRecord) -> None:
        self.bytes_used += record.bytes_used
        self.sms_used += record.sms_used
        self.mo_sms += record.mo_sms or 0
        self.mt_sms += record.mt_sms or 0
        self.records += 1


@dataclass
class _ApiToken:
    value: str
    expires_at: float


class ThingSpaceClient:
    """Client of ThingSpace's connectivity-management API, limited to what the project needs."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_pages: int = 10_000,
        response_timeout: float = 120.0,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # The Lattigo client's bounds (transport.Bounds): one answer whole within response_timeout seconds
        # (the socket timeout only bounds the gap between two bytes), and no larger than max_body_bytes.
        self.response_timeout = response_timeout
        self.max_body_bytes = max_body_bytes
        self.max_pages = max_pages
        self._app = (app_key, app_secret)
        self._login = {"username": username, "password": password}
        self._clock = clock
        self._lock = threading.RLock()
        self._api_token: _ApiToken | None = None
        self._session_token: str | None = None
        self._refused: ThingSpaceAuthError | None = None  # a login refused on credentials: never again
        self.stats = RequestStats()
        self.logins = 0
        self.token_requests = 0

        hooks = RetryHooks(sleep=sleep, max_wait=max_wait, on_retry=self._on_retry)
        # Logins and token requests: only 429 and connections that never reached the server are retried.
        auth_retry = PolicyRetry.build(
            max_retries, hooks=hooks, backoff_factor=backoff_factor, allowed_methods=(), server_error_statuses=()
        )
        # Retrieving usage is a read, even though it is a POST: 5xx and read errors may be retried too.
        read_retry = PolicyRetry.build(
            max_retries, hooks=hooks, backoff_factor=backoff_factor, allowed_methods=("POST", "GET")
        )
        session = requests.Session()
        auth_adapter = HTTPAdapter(max_retries=auth_retry)
        session.mount("http://", auth_adapter)
        session.mount("https://", auth_adapter)
        session.mount(f"{self.base_url}/{USAGE_PATH}", HTTPAdapter(max_retries=read_retry))
        session.headers.update({"Accept": "application/json", "User-Agent": "lattigo-fleet-client/0.1"})
        self._session = session

    def __repr__(self) -> str:  # never the credentials
        return f"ThingSpaceClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ThingSpaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------

    def _on_retry(self, method: str, url: str) -> None:
        self.stats.count_retry(method, endpoint_of(url))

    def _secrets(self) -> list[str | None]:
        import base64

        basic = base64.b64encode(f"{self._app[0]}:{self._app[1]}".encode()).decode("ascii")  # an echoed header
        secrets: list[str | None] = [*self._app, basic, self._login["password"], self._session_token]
        if self._api_token:
            secrets.append(self._api_token.value)
        return secrets

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets())

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        if refused := insecure_endpoint(self.base_url):
            raise ThingSpaceInsecureEndpoint(method="POST", endpoint=path, detail=refused)
        self.stats.count_request("POST", endpoint_of(path))
        try:
            # Never a redirect: every request carries a credential (the app secret, the password, a token),
            # and requests would send most of them on to wherever the Location points.
            deadline = time.monotonic() + self.response_timeout
            resp = self._session.post(
                f"{self.base_url}/{path}", timeout=self.timeout, allow_redirects=False, stream=True, **kwargs
            )
            try:
                read_bounded_body(resp, deadline, self.max_body_bytes)
            except BodyBound as exc:
                resp.close()
                limit = (
                    f"{self.response_timeout:g} s" if exc.bound == "response_time" else f"{self.max_body_bytes} bytes"
                )
                raise ThingSpaceError(
                    method="POST",
                    endpoint=path,
                    status=resp.status_code,
                    detail=f"the answer went past its bound [{exc.bound}: {limit}]: {exc.detail}",
                ) from None
        except requests.RequestException as exc:
            raise ThingSpaceError(
                method="POST", endpoint=path, detail=self._scrub(f"{exc.__class__.__name__}: {exc}")
            ) from None
        if 300 <= resp.status_code < 400:
            where = urlsplit(urljoin(resp.url, resp.headers.get("Location", "")))
            raise ThingSpaceError(
                method="POST",
                endpoint=path,
                status=resp.status_code,
                detail=self._scrub(
                    f"a redirect to {short_body(f'{where.scheme}://{where.netloc}', 120)}: not followed (it would "
                    "carry the credentials)"
                ),
            )
        return resp

    def _error(
        self, resp: requests.Response, path: str, devices: list[str] | None = None, *, login: bool = False
    ) -> ThingSpaceError:
        code: str | None = None
        message = ""
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, Mapping):
            code = None if data.get("errorCode") is None else str(data.get("errorCode"))
            message = str(data.get("errorMessage") or data.get("error_description") or data.get("error") or "")
        elif resp.text:
            message = short_body(resp.text)
        text = f"{code or ''} {message}".lower()
        status = resp.status_code
        kind: type[ThingSpaceError] = ThingSpaceError
        if "lock" in text:
            kind = ThingSpaceLoginLocked
        elif login and status in (400, 401, 403):
            kind = ThingSpaceAuthError
        elif "session" in text and any(w in text for w in ("expire", "invalid", "timed out", "timeout")):
            kind = ThingSpaceSessionExpired
        elif status in (401, 403):
            kind = ThingSpaceAuthError
        detail = self._scrub(f"{code}: {message}" if code else message) or None
        return kind(method="POST", endpoint=path, devices=devices or [], status=status, detail=detail, code=code)

    # --- tokens -------------------------------------------------------------------------------------

    def api_token(self) -> str:
        """The OAuth2 API token, fetched once and cached until (shortly before) it expires."""
        with self._lock:
            now = self._clock()
            if self._api_token and now < self._api_token.expires_at:
                return self._api_token.value
            self.token_requests += 1
            resp = self._post(
                TOKEN_PATH,
                data={"grant_type": "client_credentials"},
                auth=self._app,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            # Strictly 200 (not any 2xx as in ``_call``): an OAuth2 token is granted with 200 (RFC 6749
            # section 5.1), and the auth facts name no other success for the token or the login.
            if resp.status_code != 200:
                raise self._error(resp, TOKEN_PATH, login=True)
            data = self._json(resp, TOKEN_PATH)
            token = data.get("access_token") if isinstance(data, Mapping) else None
            if not token:
                raise ThingSpaceAuthError(method="POST", endpoint=TOKEN_PATH, detail="no access_token")
            try:
                lifetime = float(data.get("expires_in") or 3600)
            except (TypeError, ValueError):
                lifetime = 3600.0
            margin = min(60.0, lifetime / 10)
            self._api_token = _ApiToken(str(token), now + max(0.0, lifetime - margin))
            return self._api_token.value

    def session_token(self) -> str:
        """The VZ-M2M session token: logs in once, then reuses it until a request says it expired."""
        with self._lock:
            if self._session_token:
                return self._session_token
            if self._refused is not None:
                # Do not send a login that was already refused on its credentials: it counts toward the lock.
                raise self._refused
            bearer = self.api_token()
            self.logins += 1
            resp = self._post(
                LOGIN_PATH,
                json=self._login,
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
            )
            if resp.status_code != 200:
                err = self._error(resp, LOGIN_PATH, login=True)
                if isinstance(err, ThingSpaceAuthError):
                    self._refused = err
                raise err
            data = self._json(resp, LOGIN_PATH)
            token = data.get("sessionToken") if isinstance(data, Mapping) else None
            if not token:
                raise ThingSpaceError(method="POST", endpoint=LOGIN_PATH, detail="no sessionToken in the answer")
            self._session_token = str(token)
            return self._session_token

    def logout(self) -> None:
        """End the session (if any)."""
        with self._lock:
            if not self._session_token:
                return
            token, self._session_token = self._session_token, None
            try:
                self._post(
                    LOGOUT_PATH,
                    headers={"Authorization": f"Bearer {self.api_token()}", "VZ-M2M-Token": token},
                )
            except ThingSpaceError:
                pass

    def _json(self, resp: requests.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise ThingSpaceError(
                method="POST", endpoint=path, status=resp.status_code, detail="the answer is not JSON"
            ) from None

    def _call(self, path: str, body: Mapping[str, Any], devices: list[str]) -> Any:
        """POST with both tokens; renew the session once if it expired, the API token once if refused."""
        renewed_session = renewed_token = False
        while True:
            bearer = self.api_token()
            session = self.session_token()
            resp = self._post(
                path,
                json=body,
                headers={
                    "Authorization": f"Bearer {bearer}",
                    "VZ-M2M-Token": session,
                    "Content-Type": "application/json",
                },
            )
            if 200 <= resp.status_code < 300:
                # Any 2xx: Verizon answers a usage page that has more data 202 (``hasMoreData: true``), though
                # the document shows only 200. The body must still be JSON; ``_json`` says so when it is not.
                return self._json(resp, path)
            err = self._error(resp, path, devices)
            with self._lock:
                if isinstance(err, ThingSpaceSessionExpired) and not renewed_session:
                    renewed_session = True
                    if self._session_token == session:
                        self._session_token = None
                    continue
                if (
                    type(err) is ThingSpaceAuthError
                    and not renewed_token
                    and any(w in (err.detail or "").lower() for w in ("token", "bearer", "expired"))
                ):
                    renewed_token = True
                    if self._api_token and self._api_token.value == bearer:
                        self._api_token = None
                    continue
            raise err

    # --- usage --------------------------------------------------------------------------------------

    def daily_usage(
        self, iccid: str, earliest: date | datetime | str, latest: date | datetime | str
    ) -> list[UsageRecord]:
        """Every daily-usage record of one SIM between ``earliest`` and ``latest``, in time order."""
        iccid = str(iccid)
        latest_s = _ts_param(latest)
        cursor = _ts_param(earliest)
        records: list[UsageRecord] = []
        stalled_at: datetime | None = None
        for _ in range(self.max_pages):
            body = {"deviceId": {"id": iccid, "kind": "iccid"}, "earliest": cursor, "latest": latest_s}
            data = self._call(USAGE_PATH, body, [iccid])
            if not isinstance(data, Mapping):
                raise ThingSpaceError(method="POST", endpoint=USAGE_PATH, devices=[iccid], detail="not an object")
            page = [UsageRecord.parse(r) for r in (data.get("usageHistory") or []) if isinstance(r, Mapping)]
            # Drop what this page repeats of what we already have from the boundary onwards.
            boundary = parse_timestamp(cursor)
            overlap = Counter(r.identity() for r in records if r.timestamp >= boundary)
            fresh = []
            for record in page:
                key = record.identity()
                if overlap[key] > 0:
                    overlap[key] -= 1
                else:
                    fresh.append(record)
            records.extend(fresh)
            if not _to_bool(data.get("hasMoreData")):
                break
            if not page:
                raise ThingSpaceError(
                    method="POST", endpoint=USAGE_PATH, devices=[iccid], detail="hasMoreData with no records"
                )
            last = max(page, key=lambda r: r.timestamp)
            if last.timestamp > boundary:
                cursor = last.raw_timestamp
            elif stalled_at == boundary:
                raise ThingSpaceError(
                    method="POST",
                    endpoint=USAGE_PATH,
                    devices=[iccid],
                    detail=f"paging made no progress at {last.raw_timestamp}",
                )
            else:
                # The whole page sat at the boundary instant, so asking from there again would return the
                # same page: step just past it (once; a second stall is an error, not a loop).
                stalled_at = boundary
                cursor = _ts_param(boundary + timedelta(seconds=1))
        else:
            raise ThingSpaceError(
                method="POST", endpoint=USAGE_PATH, devices=[iccid], detail=f"more than {self.max_pages} pages"
            )
        records.sort(key=lambda r: r.timestamp)
        return records

    def daily_usage_by_day(
        self, iccid: str, earliest: date | datetime | str, latest: date | datetime | str
    ) -> dict[date, DailyUsage]:
        """``daily_usage`` summed per day: two records for one day are added together."""
        days: dict[date, DailyUsage] = {}
        for record in self.daily_usage(iccid, earliest, latest):
            days.setdefault(record.day, DailyUsage(record.day)).add(record)
        return dict(sorted(days.items()))


def _ts_param(value: date | datetime | str) -> str:
    """ThingSpace wants datetimes: a bare date means midnight UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return iso(value)
