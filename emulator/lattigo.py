"""Lattigo API v2: parse each request, call the models, format the answer as the documents show it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g

from emulator.errors import BadRequest
from emulator.http import app_backend, app_faults, json_response, params
from emulator.paging import PageRequest, page_request
from emulator.params import get_bool, get_dict_list, get_int, get_str, get_str_list
from emulator.results import DeviceResult, RejectedRow, Status
from emulator.timeutil import parse_range, parse_time

bp = Blueprint("lattigo", __name__, url_prefix="/v2")

# The per-device answers of the documents (the models answer a Status; these are its words).
DEVICE_MISSING = "Error: Device does not exist."
SMS_UNAVAILABLE = "Error: Device does not exist, or does not have SMS enabled."
# The largest usage limit the platform stores (a signed 64-bit integer, as its database column).
KB_LIMIT_MAX = 2**63 - 1
_LOCATE_ANSWERS = {
    Status.DONE: "Success: Location request submitted to the carrier.",
    Status.UNAVAILABLE: "Error: Device is not active; the carrier cannot locate it.",
}


def _opt(p: dict[str, Any], name: str) -> str | None:
    value = get_str(p, name)
    return value if value not in (None, "") else None


# ---- devices ---------------------------------------------------------------------------------------


@bp.get("/devices")
def devices() -> Response:
    p = params()
    page = page_request(p)
    items, total = app_backend().devices.list_devices(g.account, _opt(p, "state"), get_bool(p, "details"), page)
    return json_response(items, headers=page.headers(total))


@bp.get("/devices/<device_name>")
def device(device_name: str) -> Response:
    return json_response(app_backend().devices.get_device(g.account, device_name, _opt(params(), "id_type")))


@bp.get("/devices/<device_name>/get_sms")
def get_sms(device_name: str) -> Response:
    p = params()
    start = parse_time(p["start_date"], "start_date").date() if _opt(p, "start_date") else None
    end = parse_time(p["end_date"], "end_date").date() if _opt(p, "end_date") else None
    if start and end and start > end:
        raise BadRequest("start_date must not be after end_date")
    direction = (_opt(p, "direction") or "all").lower()
    if direction not in ("all", "received", "sent"):
        raise BadRequest("direction does not have a valid value (one of all, received, sent)")
    return json_response(
        app_backend().devices.get_sms(g.account, device_name, _opt(p, "id_type"), start, end, direction)
    )


@bp.get("/devices/<device_name>/calamp_messages")
def calamp_messages(device_name: str) -> Response:
    p = params()
    backend = app_backend()
    start, end = parse_range(_opt(p, "start_date"), _opt(p, "end_date"), backend.now())
    page = page_request(p)
    items, total = backend.devices.calamp_messages(
        g.account, device_name, _opt(p, "id_type"), start, end, get_int(p, "event_code"), page
    )
    return json_response(items, headers=page.headers(total))


@bp.get("/devices/<device_name>/last_calamp_message")
def last_calamp_message(device_name: str) -> Response:
    message = app_backend().devices.last_calamp_message(g.account, device_name, _opt(params(), "id_type"))
    return json_response(message if message is not None else [])


@bp.route("/devices/<device_name>/note", methods=["PUT", "POST"])
def note(device_name: str) -> Response:
    p = params()
    field = get_str(p, "field_name", required=True)
    text = get_str(p, "note", required=True)
    assert field is not None and text is not None
    name = app_backend().devices.set_note(g.account, device_name, _opt(p, "id_type"), field, text)
    return json_response({name: "Success"})


def _report_window(p: dict[str, Any]) -> tuple[datetime, datetime, int, PageRequest]:
    backend = app_backend()
    start, end = parse_range(_opt(p, "start_date"), _opt(p, "end_date"), backend.now())
    limit = get_int(p, "limit", 1, minimum=1)
    return start, end, limit, page_request(p)


@bp.get("/devices/<device_name>/device_reports")
def device_reports(device_name: str) -> Response:
    p = params()
    start, end, limit, page = _report_window(p)
    items, total = app_backend().devices.device_reports(
        g.account, device_name, _opt(p, "id_type"), start, end, limit, page
    )
    return json_response(items, headers=page.headers(total))


@bp.get("/devices/<device_name>/daily_data_usages")
def daily_data_usages(device_name: str) -> Response:
    p = params()
    start, end, limit, page = _report_window(p)
    items, total = app_backend().usage.daily_usages(
        g.account, device_name, _opt(p, "id_type"), start.date(), end.date(), limit, page
    )
    return json_response(items, headers=page.headers(total))


@bp.get("/devices/<device_name>/monthly_data_usages")
def monthly_data_usages(device_name: str) -> Response:
    p = params()
    start, end, limit, page = _report_window(p)
    items, total = app_backend().usage.monthly_usages(
        g.account, device_name, _opt(p, "id_type"), start.date(), end.date(), limit, page
    )
    return json_response(items, headers=page.headers(total))


@bp.post("/devices/<device_name>/cellular_locate")
def cellular_locate(device_name: str) -> Response:
    name, result = app_backend().devices.cellular_locate(g.account, device_name, _opt(params(), "id_type"))
    return json_response({name: _LOCATE_ANSWERS[result.status]})


# ---- device operations -----------------------------------------------------------------------------


def _rows_answer(processed: list[dict[str, Any]], rejected: list[RejectedRow]) -> Response:
    """``{"processed": [...], "unprocessed": [...]}``, 422 if any row was not carried out. The ``error`` of an
    unprocessed row is its attribute errors as a JSON-encoded string, as documented."""
    unprocessed = [
        {"device_index": r.index, "error": json.dumps(r.errors, separators=(",", ":")), "input": r.input}
        for r in rejected
    ]
    return json_response({"processed": processed, "unprocessed": unprocessed}, 422 if unprocessed else 200)


def _status_answer(results: dict[str, DeviceResult], done: str, missing: str = DEVICE_MISSING) -> dict[str, str]:
    """Each requested device → its answer: ``done`` on success, ``missing`` for a device the account does
    not have (or, for SMS, cannot take one), ``Error: <reason>`` when the lifecycle refuses."""
    words = {Status.DONE: done, Status.MISSING: missing, Status.UNAVAILABLE: missing}
    return {
        ident: f"Error: {r.reason}" if r.status is Status.REFUSED else words[r.status] for ident, r in results.items()
    }


@bp.post("/device_operations/activation_request")
def activation_request() -> Response:
    p = params()
    plan = get_str(p, "rate_plan_name", required=True, allow_empty=False)
    rows = get_dict_list(p, "activation_requests")
    assert plan is not None
    failing = g.get("fail_after")
    if failing is not None and failing.get("apply_rows") is not None:
        rows = rows[: failing["apply_rows"]]  # a fault: only part of the request is carried out
    processed, rejected = app_backend().operations.activation_request(
        g.account, plan, rows, app_faults().unprocessed_activations
    )
    return _rows_answer(processed, rejected)


@bp.post("/device_operations/suspend_no_billing_request")
def suspend_no_billing_request() -> Response:
    p = params()
    value = p.get("suspension_requests")
    if isinstance(value, dict) and "devices" in value:  # "a hash comprising an array ... named 'devices'"
        p = {"suspension_requests": value["devices"]}
    rows = get_dict_list(p, "suspension_requests")
    processed, rejected = app_backend().operations.suspend_no_billing_request(g.account, rows)
    return _rows_answer(processed, rejected)


@bp.put("/device_operations/change_cost_center")
def change_cost_center() -> Response:
    p = params()
    names = get_str_list(p, "device_names", required=True)
    cost_center = get_str(p, "cost_center", required=True)
    assert cost_center is not None
    results = app_backend().operations.change_cost_center(g.account, names, _opt(p, "id_type"), cost_center)
    return json_response({"change_status": _status_answer(results, "Success")})


@bp.put("/device_operations/change_simstate")
def change_simstate() -> Response:
    p = params()
    names = get_str_list(p, "device_names", required=True)
    state = get_str(p, "state", required=True, allow_empty=False)
    assert state is not None
    results = app_backend().operations.change_simstate(g.account, names, _opt(p, "id_type"), state.strip().lower())
    return json_response({"change_status": _status_answer(results, "Success")})


@bp.post("/device_operations/remove_usage_limit")
def remove_usage_limit() -> Response:
    p = params()
    names = get_str_list(p, "device_names", required=True)
    results = app_backend().operations.remove_usage_limit(g.account, names, _opt(p, "id_type"))
    return json_response({"status": _status_answer(results, "Success: Device data limit removed.")})


@bp.post("/device_operations/send_sms")
def send_sms() -> Response:
    p = params()
    names = get_str_list(p, "device_names", required=True)
    text = get_str(p, "sms_text", required=True, allow_empty=False)
    assert text is not None
    results = app_backend().operations.send_sms(g.account, names, _opt(p, "id_type"), text)
    return json_response({"status": _status_answer(results, "Success: Attempting SMS Send.", SMS_UNAVAILABLE)})


@bp.post("/device_operations/set_usage_limit")
def set_usage_limit() -> Response:
    p = params()
    names = get_str_list(p, "device_names", required=True)
    if p.get("kb_limit") in (None, ""):
        raise BadRequest("kb_limit is missing")
    kb_limit = get_int(p, "kb_limit", minimum=0, maximum=KB_LIMIT_MAX)
    assert kb_limit is not None
    actions = [a.lower() for a in get_str_list(p, "action")]
    if any(a not in ("suspend", "email") for a in actions):
        raise BadRequest("action does not have a valid value (one of suspend, email)")
    # The document requires an action but its JSON example gives none: tolerate, alerting by email only.
    action = "suspend" if "suspend" in actions else "email"
    usernames = get_str_list(p, "usernames")
    results = app_backend().operations.set_usage_limit(
        g.account, names, _opt(p, "id_type"), kb_limit, action, usernames
    )
    return json_response({"status": _status_answer(results, "Success: Device data limit is set.")})


@bp.post("/device_operations/upload_request")
def upload_request() -> Response:
    p = params()
    email = get_str(p, "upload_email", required=True, allow_empty=False)
    sku = get_str(p, "upload_sku", required=True, allow_empty=False)
    raw = p.get("upload_ids")
    if isinstance(raw, list) and raw and all(isinstance(x, (str, int)) for x in raw):
        raw = [{"imei": str(x)} for x in raw]
    ids = get_dict_list({"upload_ids": raw}, "upload_ids")
    assert email is not None and sku is not None
    processed, rejected = app_backend().operations.upload_request(g.account, email, sku, ids)
    return _rows_answer(processed, rejected)


@bp.get("/device_operations/calamp_events")
def calamp_events() -> Response:
    p = params()
    if p.get("event_code") in (None, ""):
        raise BadRequest("event_code is missing")
    event_code = get_int(p, "event_code")
    assert event_code is not None
    backend = app_backend()
    start, end = parse_range(_opt(p, "start_date"), _opt(p, "end_date"), backend.now())
    page = page_request(p)
    items, total = backend.devices.calamp_events(g.account, event_code, start, end, _opt(p, "state"), page)
    return json_response(items, headers=page.headers(total))


# ---- rate plans and users --------------------------------------------------------------------------


@bp.get("/rate_plans")
def rate_plans() -> Response:
    page = page_request(params())
    items = app_backend().accounts.rate_plans(g.account)
    return json_response(page.slice(items), headers=page.headers(len(items)))


@bp.get("/users")
def users() -> Response:
    page = page_request(params())
    items = app_backend().accounts.users(g.account)
    return json_response(page.slice(items), headers=page.headers(len(items)))
