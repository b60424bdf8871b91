"""The admin API under ``/_emulator/`` (no auth, not logged, no faults) and ``GET /openapi.json``.

- ``GET /_emulator/requests`` / ``DELETE``: the request log (``method, path, query, body, status``).
- ``GET /_emulator/sims[?account=primary|other|all&state=&iccid=]``: ``{"sims": [device fields +
  rate_plan, usage_limit, suspended_reason, account]}``; inventory SIMs have state ``inventory``.
- ``POST /_emulator/sims`` ``{"sims": [{iccid, imei?, state?, cost_center?, note..note3?, rate_plan?,
  msisdn?, account?}]}``: add to inventory (no state) or change live fields out of band.
- ``GET/POST/DELETE /_emulator/faults``: see :mod:`emulator.faults`.
- ``POST /_emulator/tick``: run all queued work now.
- ``POST /_emulator/reset`` ``{"seed"?, "activation_delay"?}``: wipe state, faults, request log, ThingSpace
  tokens, clock; the activation delay goes back to the server's own unless given.
- ``POST /_emulator/usage`` ``{"iccid", "date", "bytes", "sms"?, "sms_mt"?}``: one day's usage (the answer: the
  SIM as ``GET /_emulator/sims`` shows it); or ``{"usage": [{...}, ...]}``: many days, of many SIMs, all or
  none (the answer: ``{"recorded": N}``).
- ``GET /_emulator/usage[?date=&iccid=&account=primary|other|all]``: ``{"usage": [{iccid, date, bytes, sms,
  sms_mt}]}``, the days recorded, in the POST's words (``sms`` is the SMS sent by the device), by SIM then day.
- ``GET/POST /_emulator/clock`` ``{"advance_seconds"}``: the emulated now.
- ``POST /_emulator/thingspace/expire-sessions`` | ``expire-tokens`` | ``unlock``.
- ``GET /_emulator/health``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from emulator.errors import BadRequest
from emulator.http import app_backend, app_faults, app_request_log, json_response
from emulator.openapi import openapi_document
from emulator.params import parse_body
from emulator.timeutil import fmt, parse_time
from emulator.usage import DayOfSim

bp = Blueprint("admin", __name__)

_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@bp.before_request
def _this_machine_only() -> Response | None:
    """The admin API has no auth (it is a developer's tool), so a web page on another site must not drive it
    through the developer's browser: a cross-origin `text/plain` POST needs no preflight, and DNS rebinding
    can make another name point here. An `Origin` other than this server's own, or a Host that is not a
    loopback name or an IP address, is refused; tools that send neither (curl, the tests) are served."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit("//" + (request.host or "")).hostname or ""
    except ValueError:
        host = ""
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != (request.host or "").lower():
            return json_response({"error": "cross-origin requests to the admin API are refused"}, 403)
    if host not in _LOCAL_NAMES and not _is_ip_address(host):
        return json_response({"error": f"the admin API answers on this machine's addresses only, not {host!r}"}, 403)
    return None


def _is_ip_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _body() -> dict[str, Any]:
    body = parse_body(request.get_data(cache=True), request.content_type or "application/json")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


@bp.get("/")
def index() -> Response:
    return json_response(
        {
            "service": "lattigo-fleet emulator",
            "lattigo": "/v2/",
            "thingspace": "/api/",
            "admin": "/_emulator/",
            "openapi": "/openapi.json",
        }
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(request.host_url.rstrip("/")))


@bp.get("/_emulator/health")
def health() -> Response:
    return json_response({"status": "ok", "now": fmt(app_backend().now())})


@bp.get("/_emulator/requests")
def requestsapp_request_log() -> Response:
    return json_response(app_request_log().entries())


@bp.delete("/_emulator/requests")
def clear_requests() -> Response:
    return json_response({"cleared": app_request_log().clear()})


@bp.get("/_emulator/sims")
def list_sims() -> Response:
    args = request.args
    sims = app_backend().admin.sims_view(args.get("account", "primary"), args.get("state"), args.get("iccid"))
    return json_response({"sims": sims})


@bp.post("/_emulator/sims")
def upsert_sims() -> Response:
    sims = _body().get("sims")
    if not isinstance(sims, list):
        raise BadRequest("sims must be an array")
    return json_response({"sims": app_backend().admin.upsert_sims(sims)})


@bp.get("/_emulator/faults")
def getapp_faults() -> Response:
    return json_response(app_faults().settings())


@bp.post("/_emulator/faults")
def setapp_faults() -> Response:
    return json_response(app_faults().update(_body()))


@bp.delete("/_emulator/faults")
def clearapp_faults() -> Response:
    app_faults().clear()
    return json_response(app_faults().settings())


@bp.post("/_emulator/tick")
def tick() -> Response:
    return json_response({"ran": app_backend().tick(), "now": fmt(app_backend().now())})


@bp.post("/_emulator/reset")
def reset() -> Response:
    body = _body()
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, str):
        raise BadRequest("seed must be a string")
    delay = body.get("activation_delay", current_app.config["ACTIVATION_DELAY"])
    try:
        delay = float(delay)
    except (TypeError, ValueError) as exc:
        raise BadRequest("activation_delay must be a number of seconds") from exc
    if delay < 0:
        raise BadRequest("activation_delay must not be negative")
    app_backend().activation_delay = delay
    app_backend().reset(seed)
    app_faults().clear()
    app_request_log().clear()
    return json_response(
        {"seed": seed or app_backend().default_seed, "activation_delay": delay, "now": fmt(app_backend().now())}
    )


@bp.post("/_emulator/usage")
def record_usage() -> Response:
    body = _body()
    backend = app_backend()
    if "usage" in body:  # many days at once: a day of a whole fleet in one request
        entries = body["usage"]
        if not isinstance(entries, list):
            raise BadRequest("usage must be an array of {iccid, date, bytes, sms?, sms_mt?}")
        backend.usage.record_usages([_day_of_sim(entry) for entry in entries])
        return json_response({"recorded": len(entries)})
    day = _day_of_sim(body)
    backend.usage.record_usage(day.iccid, day.day, day.bytes_used, day.sms_mo, day.sms_mt)
    sims = backend.admin.sims_view("all", iccid=day.iccid)
    return json_response(sims[0] if sims else {})


@bp.get("/_emulator/usage")
def usage_days() -> Response:
    args = request.args
    day = parse_time(args["date"], "date").date() if args.get("date") else None
    usage = app_backend().admin.usage_view(args.get("account", "primary"), day, args.get("iccid"))
    return json_response({"usage": usage})


def _day_of_sim(body: Any) -> DayOfSim:
    """``{iccid, date, bytes, sms?, sms_mt?}``: one day of one SIM."""
    if not isinstance(body, dict):
        raise BadRequest("each day of usage must be an object")
    iccid = body.get("iccid")
    if not iccid or not body.get("date") or body.get("bytes") is None:
        raise BadRequest("iccid, date and bytes are required")
    day = parse_time(str(body["date"]), "date").date()
    try:
        return DayOfSim(str(iccid), day, int(body["bytes"]), int(body.get("sms") or 0), int(body.get("sms_mt") or 0))
    except (TypeError, ValueError) as exc:
        raise BadRequest("bytes, sms and sms_mt must be integers") from exc


@bp.get("/_emulator/clock")
def get_clock() -> Response:
    backend = app_backend()
    return json_response({"now": fmt(backend.now()), "offset_seconds": backend.store.clock.offset_seconds})


@bp.post("/_emulator/clock")
def advance_clock() -> Response:
    body = _body()
    try:
        seconds = float(body.get("advance_seconds", 0))
    except (TypeError, ValueError) as exc:
        raise BadRequest("advance_seconds must be a number") from exc
    backend = app_backend()
    now = backend.advance_clock(seconds)
    return json_response({"now": fmt(now), "offset_seconds": backend.store.clock.offset_seconds})


@bp.post("/_emulator/thingspace/expire-sessions")
def expire_sessions() -> Response:
    return json_response({"expired": app_backend().thingspace.expire_sessions()})


@bp.post("/_emulator/thingspace/expire-tokens")
def expire_tokens() -> Response:
    return json_response({"expired": app_backend().thingspace.expire_tokens()})


@bp.post("/_emulator/thingspace/unlock")
def unlock() -> Response:
    app_backend().thingspace.unlock()
    return json_response({"unlocked": True})
