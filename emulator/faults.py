"""Faults, settable at start and at run time through ``/_emulator/faults``.

- ``rate_limit_per_second``: a token bucket per key (Lattigo key_name, ThingSpace app key); an empty bucket
  answers 429 with ``Retry-After`` (whole seconds). ``rate_limit_burst`` sets the bucket size (default:
  the rate, at least 1). The buckets refill on the clock given to :class:`Faults` (the server gives the
  emulated clock, so advancing it refills them).
- ``error_rate``: the fraction of API requests answered with ``error_status`` (default 500).
- ``latency_ms``: added to every API request.
- ``fail_next``: ``[{"path", "status", "count", "method"?, "retry_after"?, "message"?, "skip"?, "after"?,
  "apply_rows"?, "expire_sessions"?}]``: the next ``count`` requests whose path matches (exact, or a glob
  such as ``/v2/devices/*``), after letting ``skip`` of them through, answer ``status``. With ``after`` the
  request is carried out first and only its answer is replaced (a failure after the work was done); with
  ``apply_rows`` N (activation_request) only its first N rows are carried out, then it fails. With
  ``expire_sessions`` every ThingSpace session expires just before the request, which then meets a real
  expiry (no status of its own).
- ``unprocessed_activations``: ICCIDs whose activation rows come back unprocessed ("was rejected by the
  carrier").
- ``thingspace_usage_skew``: ThingSpace's bytes are Lattigo's times (1 + skew), so cross-checks fail.
- ``thingspace_page_days``: days of usage per ThingSpace answer before ``hasMoreData`` (default 31).
- ``thingspace_duplicate_days``: ThingSpace splits each day into two records with the same timestamp
  (the document's own sample does this).
- ``thingspace_more_data_status``: the HTTP status of a ThingSpace usage page with ``hasMoreData: true``:
  202 (the default: Verizon's way, as its published client models it) or 200 (the contract document's only
  case). The last page is always 200.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from emulator.errors import BadRequest

DEFAULT_THINGSPACE_PAGE_DAYS = 31
THINGSPACE_MORE_DATA_STATUSES = (202, 200)  # Verizon's, then the document's; the first is the default


def _defaults() -> dict[str, Any]:
    return {
        "rate_limit_per_second": None,
        "rate_limit_burst": None,
        "error_rate": 0.0,
        "error_status": 500,
        "latency_ms": 0,
        "fail_next": [],
        "unprocessed_activations": [],
        "thingspace_usage_skew": 0.0,
        "thingspace_page_days": DEFAULT_THINGSPACE_PAGE_DAYS,
        "thingspace_duplicate_days": False,
        "thingspace_more_data_status": THINGSPACE_MORE_DATA_STATUSES[0],
    }


def _number(value: Any, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"{name} must be a number")
    try:
        number = float(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a number") from exc
    if math.isnan(number) or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise BadRequest(f"{name} is out of range")
    return number


class Faults:
    """Current fault settings plus the per-key token buckets. Thread-safe.

    ``clock`` gives the seconds the buckets refill by (default ``time.monotonic``; the server passes the
    emulated clock's ``timestamp``).
    """

    def __init__(
        self,
        rate_limit_per_second: float | None = None,
        error_rate: float = 0.0,
        latency_ms: float = 0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._clock = clock
        self._settings = _defaults()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.update(
            {"rate_limit_per_second": rate_limit_per_second, "error_rate": error_rate, "latency_ms": latency_ms}
        )

    # ---- settings -------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._settings)
            out["fail_next"] = [dict(f) for f in self._settings["fail_next"] if f["count"] > 0]
            out["unprocessed_activations"] = list(self._settings["unprocessed_activations"])
            return out

    def clear(self) -> None:
        with self._lock:
            self._settings = _defaults()
            self._buckets.clear()

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the given settings only (null restores a setting's default). Validates everything first."""
        if not isinstance(changes, dict):
            raise BadRequest("faults must be a JSON object")
        unknown = set(changes) - set(_defaults())
        if unknown:
            raise BadRequest(f"unknown fault settings: {', '.join(sorted(unknown))}")
        new: dict[str, Any] = {}
        defaults = _defaults()
        for key, value in changes.items():
            if value is None:
                new[key] = defaults[key]
            elif key == "rate_limit_per_second":
                new[key] = _number(value, key, minimum=0) or None
            elif key == "rate_limit_burst":
                new[key] = int(_number(value, key, minimum=1))
            elif key == "error_rate":
                new[key] = _number(value, key, 0.0, 1.0)
            elif key == "error_status":
                new[key] = int(_number(value, key, 400, 599))
            elif key == "latency_ms":
                new[key] = _number(value, key, 0, 60_000)
            elif key == "fail_next":
                new[key] = self._parse_fail_next(value)
            elif key == "unprocessed_activations":
                if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                    raise BadRequest("unprocessed_activations must be an array of ICCIDs")
                new[key] = [str(v) for v in value]
            elif key == "thingspace_usage_skew":
                new[key] = _number(value, key, -1.0, 100.0)
            elif key == "thingspace_page_days":
                new[key] = int(_number(value, key, 1, 10_000))
            elif key == "thingspace_duplicate_days":
                if not isinstance(value, bool):
                    raise BadRequest("thingspace_duplicate_days must be true or false")
                new[key] = value
            elif key == "thingspace_more_data_status":
                if isinstance(value, bool) or value not in THINGSPACE_MORE_DATA_STATUSES:
                    raise BadRequest("thingspace_more_data_status must be 202 or 200")
                new[key] = int(value)
        with self._lock:
            if "rate_limit_per_second" in new or "rate_limit_burst" in new:
                self._buckets.clear()
            self._settings.update(new)
        return self.settings()

    @staticmethod
    def _parse_fail_next(value: Any) -> list[dict[str, Any]]:
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise BadRequest("fail_next must be an array of {path, status, count}")
        known = {
            "path",
            "status",
            "count",
            "method",
            "retry_after",
            "message",
            "skip",
            "after",
            "apply_rows",
            "expire_sessions",
        }
        out = []
        for item in value:
            if not isinstance(item, dict) or "path" not in item:
                raise BadRequest("each fail_next entry needs a path")
            unknown = set(item) - known
            if unknown:
                raise BadRequest(f"unknown fail_next fields: {', '.join(sorted(unknown))}")
            expire = bool(item.get("expire_sessions"))
            if "status" not in item and not expire:
                raise BadRequest("each fail_next entry needs a status (or expire_sessions)")
            path = str(item["path"])
            if not path.startswith("/"):
                path = "/" + path
            entry: dict[str, Any] = {
                "path": path,
                "status": int(_number(item.get("status", 401), "status", 100, 599)),
                "count": int(_number(item.get("count", 1), "count", 0, 1_000_000)),
            }
            if item.get("method"):
                entry["method"] = str(item["method"]).upper()
            if item.get("retry_after") is not None:
                entry["retry_after"] = int(_number(item["retry_after"], "retry_after", 0, 3600))
            if item.get("message") is not None:
                entry["message"] = str(item["message"])
            if item.get("skip"):
                entry["skip"] = int(_number(item["skip"], "skip", 0, 1_000_000))
            if item.get("after"):
                entry["after"] = True
            if item.get("apply_rows") is not None:
                entry["apply_rows"] = int(_number(item["apply_rows"], "apply_rows", 0, 1_000_000))
                entry["after"] = True
            if expire:
                entry["expire_sessions"] = True
            out.append(entry)
        return out

    # ---- what a request meets -------------------------------------------------------------------

    @property
    def latency_seconds(self) -> float:
        return float(self._settings["latency_ms"]) / 1000.0

    def take_fail_next(self, method: str, path: str) -> dict[str, Any] | None:
        """The fail_next entry this request consumes, if any."""
        with self._lock:
            for entry in self._settings["fail_next"]:
                if entry["count"] <= 0:
                    continue
                if entry.get("method") and entry["method"] != method.upper():
                    continue
                pattern = entry["path"]
                if path == pattern or path.rstrip("/") == pattern.rstrip("/") or fnmatch.fnmatchcase(path, pattern):
                    if entry.get("skip", 0) > 0:
                        entry["skip"] -= 1
                        continue
                    entry["count"] -= 1
                    return dict(entry)
        return None

    def random_error(self) -> int | None:
        with self._lock:
            rate = self._settings["error_rate"]
            if rate and self._rng.random() < rate:
                return int(self._settings["error_status"])
        return None

    def rate_limited(self, principal: str) -> int | None:
        """None when the request may go on, else the Retry-After seconds."""
        with self._lock:
            rate = float(self._settings["rate_limit_per_second"] or 0)
            if not rate:
                return None
            burst = float(self._settings["rate_limit_burst"] or max(1.0, rate))
            now = self._clock()
            tokens, last = self._buckets.get(principal, (burst, now))
            # a clock put back (a reset of the emulated clock, a wall-clock step) refills nothing
            tokens = min(burst, tokens + max(0.0, now - last) * rate)
            if tokens >= 1.0:
                self._buckets[principal] = (tokens - 1.0, now)
                return None
            self._buckets[principal] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))

    @property
    def unprocessed_activations(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._settings["unprocessed_activations"])

    @property
    def thingspace(self) -> tuple[float, int, bool]:
        with self._lock:
            s = self._settings
            return (
                float(s["thingspace_usage_skew"]),
                int(s["thingspace_page_days"]),
                bool(s["thingspace_duplicate_days"]),
            )

    @property
    def thingspace_more_data_status(self) -> int:
        with self._lock:
            return int(self._settings["thingspace_more_data_status"])
