"""Canned answers without a socket, for feeding arbitrary bytes to the client's whole reading path.

:class:`CannedAdapter` is a ``requests`` transport adapter that answers every request with the same status,
headers and body, as a streamed urllib3 response: the client reads it exactly as it reads the wire (in
chunks, within its bounds), decodes, checks the shape and reads the answer. ``ENDPOINTS`` calls each client
method once and checks that what it returned is well typed. Used by ``test_answer_properties.py``
(hypothesis) and ``bench/fuzz_client.py`` (the long run).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse

from lattigo_fleet.client import ActivationResult, ActivationRow, BulkResult, LattigoClient

BASE = "http://lattigo.invalid"
ICCIDS = ["89010000000000000001", "89010000000000000002"]
IMEIS = ["351234567890121", "351234567890122"]
NAMES = ["36500", "36501"]


class CannedAdapter(HTTPAdapter):
    """Answers every request with ``status``, ``headers`` and ``body`` (streamed, like the wire)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(max_retries=0)
        self.status, self.headers, self.body = status, dict(headers), body
        self.sent = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        raw = HTTPResponse(
            body=io.BytesIO(self.body),
            headers=self.headers,
            status=self.status,
            reason="Canned",
            preload_content=False,
            decode_content=True,
            request_method=request.method,
        )
        return self.build_response(request, raw)


def canned_client(status: int, headers: Mapping[str, str], body: bytes, **kw: Any) -> LattigoClient:
    """A client whose every request gets this answer; it never sleeps and its bounds are small."""
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    kw.setdefault("max_retries", 1)
    kw.setdefault("retry_budget", 5.0)
    kw.setdefault("max_pages", 5)
    kw.setdefault("max_body_bytes", 1 << 20)
    client = LattigoClient(BASE, "fuzz-key", "fuzz-secret-0123", sleep=sleep, clock=lambda: now[0], **kw)
    client._http.session.mount("http://", CannedAdapter(status, headers, body))
    return client


# --- what each endpoint must return --------------------------------------------------------------------


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _devices(value: Any) -> bool:
    return _objects(value) and all(isinstance(d.get("iccid"), (str, int)) for d in value)


def _snapshot(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())


def _bulk(keys: list[str]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return (
            isinstance(value, BulkResult)
            and all(isinstance(k, str) for k in value.succeeded)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.failed.items())
            and set(value.succeeded) | set(value.failed) <= set(keys)
        )

    return check


def _rows(value: Any) -> bool:
    return (
        isinstance(value, ActivationResult)
        and set(value.accepted) | set(value.rejected) <= set(ICCIDS)
        and all(isinstance(v, str) for v in value.rejected.values())
        and not set(value.accepted) & set(value.rejected)
    )


ROWS = [ActivationRow(i, m) for i, m in zip(ICCIDS, IMEIS, strict=True)]

#: endpoint -> (call the client, is the result well typed?)
ENDPOINTS: dict[str, tuple[Callable[[LattigoClient], Any], Callable[[Any], bool]]] = {
    "devices": (lambda c: list(c.devices()), _devices),
    "device_names": (
        lambda c: list(c.devices(details=False)),
        lambda v: isinstance(v, list) and all(isinstance(n, (str, int)) for n in v),
    ),
    "snapshot": (lambda c: c.snapshot(), _snapshot),
    "device": (lambda c: c.device(ICCIDS[0]), lambda v: isinstance(v, dict) and "iccid" in v),
    "get_sms": (lambda c: c.get_sms(ICCIDS[0]), _objects),
    "calamp_messages": (lambda c: c.calamp_messages(ICCIDS[0], "2026-01-01", "2026-01-31"), _objects),
    "last_calamp_message": (lambda c: c.last_calamp_message(ICCIDS[0]), lambda v: v is None or isinstance(v, dict)),
    "device_reports": (lambda c: c.device_reports(ICCIDS[0]), _objects),
    "daily_data_usages": (lambda c: c.daily_data_usages(ICCIDS[0]), _objects),
    "monthly_data_usages": (lambda c: c.monthly_data_usages(ICCIDS[0]), _objects),
    "set_note": (lambda c: c.set_note(ICCIDS[0], "note", "x"), lambda v: v is None),
    "cellular_locate": (lambda c: c.cellular_locate(ICCIDS[0]), lambda v: True),
    "activate": (lambda c: c.activate(ROWS, "plan"), _rows),
    "suspend_no_billing": (lambda c: c.suspend_no_billing(zip(ICCIDS, IMEIS, strict=True)), _bulk(ICCIDS)),
    "upload_request": (lambda c: c.upload_request(IMEIS, "a@b.c", "SKU"), _bulk(IMEIS)),
    "change_simstate": (lambda c: c.change_simstate(ICCIDS, "suspend"), _bulk(ICCIDS)),
    "change_cost_center": (lambda c: c.change_cost_center(NAMES, "cc"), _bulk(NAMES)),
    "set_usage_limit": (lambda c: c.set_usage_limit(NAMES, 100), _bulk(NAMES)),
    "remove_usage_limit": (lambda c: c.remove_usage_limit(NAMES), _bulk(NAMES)),
    "send_sms": (lambda c: c.send_sms(NAMES, "hi"), _bulk(NAMES)),
    "calamp_events": (lambda c: c.calamp_events(5, "2026-01-01", "2026-01-31"), _objects),
    "rate_plans": (
        lambda c: c.rate_plans(),
        lambda v: _objects(v) and all(isinstance(p.get("name"), str) for p in v),
    ),
    "users": (lambda c: c.users(), lambda v: isinstance(v, list) and all(isinstance(u, str) for u in v)),
}

#: Keys worth guessing: what the readers look for, so that generated answers come close to valid ones.
KEYS = [
    "processed",
    "unprocessed",
    "device_index",
    "error",
    "input",
    "change_status",
    "status",
    "iccid",
    "imei",
    "device_name",
    "state",
    "name",
    "username",
    *ICCIDS,
    *IMEIS,
    *NAMES,
]

HEADERS = ["X-Next-Page", "X-Page", "X-Total", "X-Total-Pages", "X-Per-Page", "Retry-After", "Location"]
STATUSES = [200, 200, 200, 200, 201, 204, 302, 307, 400, 404, 422, 422, 429, 500, 503]
