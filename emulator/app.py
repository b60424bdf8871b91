"""The Flask application: routing of the three surfaces, and what every API request meets on its way in
(added latency, fail_next, credentials, the rate limit, random errors) and out (the request log).

- ``/v2/...`` (and any other path outside the two below): Lattigo, HTTP Basic ``key_name:api_key``.
- ``/api/...``: ThingSpace (its own tokens; see :mod:`emulator.thingspace`).
- ``/_emulator/...`` and ``/openapi.json``: the admin API, no auth, no faults, not logged.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from emulator.errors import ApiError
from emulator.faults import Faults
from emulator.http import (
    ADMIN,
    LATTIGO,
    RequestLog,
    error_response,
    redact,
    surface,
)
from emulator.models import Backend
from emulator.params import parse_body, parse_nested_query


def create_app(backend: Backend, faults: Faults, log: RequestLog) -> Flask:
    from emulator.admin import bp as admin_bp
    from emulator.lattigo import bp as lattigo_bp
    from emulator.thingspace import bp as thingspace_bp

    here = os.path.dirname(os.path.abspath(__file__))
    app = Flask("emulator", root_path=here, instance_path=os.path.join(here, "instance"), static_folder=None)
    app.url_map.strict_slashes = False
    app.config["BACKEND"] = backend
    app.config["FAULTS"] = faults
    app.config["REQUEST_LOG"] = log
    app.config["ACTIVATION_DELAY"] = backend.activation_delay
    app.register_blueprint(lattigo_bp)
    app.register_blueprint(thingspace_bp)
    app.register_blueprint(admin_bp)

    @app.before_request
    def _on_the_way_in() -> Response | None:
        kind = surface(request.path)
        g.kind = kind
        if kind == ADMIN:
            return None
        if faults.latency_seconds:
            time.sleep(faults.latency_seconds)
        failing = faults.take_fail_next(request.method, request.path)
        if failing is not None:
            if failing.get("expire_sessions"):
                backend.thingspace.expire_sessions()
            elif failing.get("after"):
                g.fail_after = failing
            else:
                return _failure(kind, failing)
        principal = None
        if kind == LATTIGO:
            auth = request.authorization
            if auth is None or auth.type != "basic":
                return _unauthorized("Credentials are missing")
            try:
                g.account = backend.accounts.authenticate(auth.username, auth.password)
            except ApiError as exc:
                return _unauthorized(exc.message)
            principal = f"lattigo:{auth.username}"
        else:
            principal = _thingspace_principal(backend)
        if principal is not None:
            retry_after = faults.rate_limited(principal)
            if retry_after is not None:
                return error_response(kind, 429, "Too many requests", {"Retry-After": str(retry_after)})
        status = faults.random_error()
        if status is not None:
            return error_response(kind, status, "Emulated random failure")
        return None

    @app.after_request
    def _on_the_way_out(resp: Response) -> Response:
        kind = g.get("kind", surface(request.path))
        if kind == ADMIN:
            return resp
        failing = g.pop("fail_after", None)
        if failing is not None:
            resp = _failure(kind, failing)
        try:
            body = parse_body(request.get_data(cache=True), request.content_type)
        except ApiError:
            body = request.get_data(cache=True).decode("utf-8", errors="replace")
        log.append(
            {
                "method": request.method,
                "path": request.path,
                "query": redact(parse_nested_query(request.query_string.decode("utf-8", errors="replace"))),
                "body": redact(body),
                "status": resp.status_code,
            }
        )
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        if exc.status == 401 and g.get("kind") == LATTIGO:
            return _unauthorized(exc.message)
        return error_response(g.get("kind", LATTIGO), exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        kind = g.get("kind", surface(request.path))
        messages = {
            404: "The resource could not be found",
            405: f"Method {request.method} is not allowed for this endpoint",
        }
        resp = error_response(kind, exc.code or 500, messages.get(exc.code or 0, exc.description or exc.name))
        if exc.code == 405:
            allow = exc.get_headers().__iter__()
            for k, v in allow:
                if k.lower() == "allow":
                    resp.headers["Allow"] = v
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:  # pragma: no cover - a bug, reported as 500
        app.logger.exception("unexpected error", exc_info=exc)
        return error_response(g.get("kind", LATTIGO), 500, "Internal Server Error")

    return app


def _failure(kind: str, failing: dict[str, Any]) -> Response:
    status = failing["status"]
    headers = {}
    if status == 429 or "retry_after" in failing:
        headers["Retry-After"] = str(failing.get("retry_after", 1))
    return error_response(kind, status, failing.get("message") or f"Emulated failure ({status})", headers)


def _unauthorized(message: str) -> Response:
    return error_response(LATTIGO, 401, message, {"WWW-Authenticate": 'Basic realm="Lattigo API"'})


def _thingspace_principal(backend: Backend) -> str | None:
    auth = request.authorization
    if auth is None:
        return None
    if auth.type == "basic" and auth.username:
        return f"thingspace:{auth.username}"
    if auth.type == "bearer":
        app_key = backend.thingspace.app_key_of(auth.token)
        if app_key:
            return f"thingspace:{app_key}"
    return None
