"""What every surface of the emulator shares (Lattigo, ThingSpace, admin): the request log, JSON and error
answers, which surface a path belongs to, and the request's parameters. The app (emulator/app.py) and its
blueprints import it; it imports neither, so the app's imports run one way: app -> blueprints -> this.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app, g, request

from emulator.params import merge_params, parse_body, parse_nested_query

if TYPE_CHECKING:  # types only: the app puts them in its config, and this module never imports the app's parts
    from emulator.faults import Faults
    from emulator.models import Backend

LATTIGO = "lattigo"
THINGSPACE = "thingspace"
ADMIN = "admin"
REDACTED = "[redacted]"
SECRET_KEYS = {"password", "sessiontoken", "access_token", "api_key", "app_secret", "client_secret", "token"}
MAX_LOG_ENTRIES = 200_000


class RequestLog:
    """Every API request served, oldest first: method, path, query, body, status. Never credentials."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > MAX_LOG_ENTRIES:
                del self._entries[: len(self._entries) - MAX_LOG_ENTRIES]

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            return n


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    resp = Response(body, status=status, mimetype="application/json")
    if headers:
        for k, v in headers.items():
            resp.headers[k] = v
    return resp


def surface(path: str) -> str:
    if path.startswith("/_emulator") or path in ("/openapi.json", "/"):
        return ADMIN
    if path.startswith("/api/"):
        return THINGSPACE
    return LATTIGO


def error_response(kind: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if kind == THINGSPACE:
        return json_response({"errorCode": str(status), "errorMessage": message}, status, headers)
    return json_response({"error": message}, status, headers)


def params() -> dict[str, Any]:
    """The request's parameters: query string merged with the JSON or form body (body wins)."""
    cached = g.get("_params")
    if cached is None:
        query = parse_nested_query(request.query_string.decode("utf-8", errors="replace"))
        body = parse_body(request.get_data(cache=True), request.content_type)
        cached = merge_params(query, body)
        g._params = cached
    return cast(dict[str, Any], cached)


# What the app (emulator/app.py create_app) keeps in its config, typed once for every blueprint.
def app_backend() -> Backend:
    return cast("Backend", current_app.config["BACKEND"])


def app_faults() -> Faults:
    return cast("Faults", current_app.config["FAULTS"])


def app_request_log() -> RequestLog:
    return cast(RequestLog, current_app.config["REQUEST_LOG"])
