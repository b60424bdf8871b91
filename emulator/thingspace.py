"""ThingSpace: the API token, the VZ-M2M session, and Retrieve Daily Usage, as the documents describe them.

- ``POST /api/ts/v1/oauth2/token``: Basic ``app_key:app_secret`` (the emulator's key pairs), form
  ``grant_type=client_credentials``; the same token again within its hour.
- ``POST /api/m2m/v1/session/login``: bearer + ``{"username", "password"}`` (again the key pairs);
  five consecutive failures for a username lock it (403) until ``/_emulator/reset`` or
  ``/_emulator/thingspace/unlock``. ``POST /api/m2m/v1/session/logout`` ends a session.
- ``POST /api/m2m/v1/devices/usage/actions/list``: bearer + ``VZ-M2M-Token``; a session expires after
  20 minutes without use. An expired or unknown API token answers 401 "API access token has expired" /
  "Invalid API access token"; an expired or unknown session answers 401 "VZ-M2M session token has expired"
  / "Invalid VZ-M2M session token". A page with ``hasMoreData: true`` answers 202, as Verizon does (the
  document shows only 200; the ``thingspace_more_data_status`` setting gives 200 instead); the last page 200.
Errors are ``{"errorCode": "<3-digit status>", "errorMessage": "..."}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from emulator.errors import BadRequest, Unauthorized
from emulator.http import app_backend, app_faults, json_response, params
from emulator.timeutil import parse_time
from emulator.usage import DayUsage

bp = Blueprint("thingspace", __name__, url_prefix="/api")


def _bearer() -> tuple[int, str]:
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        raise Unauthorized("Missing bearer API access token")
    return app_backend().thingspace.token_account(auth.token)


def _json_object() -> dict[str, Any]:
    p = params()
    return {k: v for k, v in p.items() if k not in request.args}


@bp.post("/ts/v1/oauth2/token")
def oauth2_token() -> Response:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        raise Unauthorized("Missing client credentials (HTTP Basic app_key:app_secret)")
    grant = params().get("grant_type")
    if grant != "client_credentials":
        raise BadRequest("grant_type must be client_credentials")
    token, expires_in = app_backend().thingspace.issue_token(auth.username, auth.password)
    return json_response(
        {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": "m2m"},
        headers={"Cache-Control": "no-store"},
    )


@bp.post("/m2m/v1/session/login")
def session_login() -> Response:
    _bearer()
    body = _json_object()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise BadRequest("username and password are required")
    return json_response({"sessionToken": app_backend().thingspace.login(username, password)})


@bp.post("/m2m/v1/session/logout")
def session_logout() -> Response:
    _bearer()
    token = request.headers.get("VZ-M2M-Token") or _json_object().get("sessionToken")
    if not token:
        raise BadRequest("VZ-M2M-Token is required")
    app_backend().thingspace.logout(str(token))
    return json_response({"sessionToken": token})


@bp.post("/m2m/v1/devices/usage/actions/list")
def usage_list() -> Response:
    _bearer()
    backend = app_backend()
    account = backend.thingspace.session_account(request.headers.get("VZ-M2M-Token"))
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest("Content-Type must be application/json")
    body = _json_object()
    device = body.get("deviceId")
    if not isinstance(device, dict) or not device.get("id") or not device.get("kind"):
        raise BadRequest("deviceId with id and kind is required")
    if str(device["kind"]).lower() != "iccid":
        raise BadRequest("Only kind iccid is supported by this request")
    for name in ("earliest", "latest"):
        if not body.get(name):
            raise BadRequest(f"{name} is required")
    earliest = parse_time(str(body["earliest"]), "earliest")
    latest = parse_time(str(body["latest"]), "latest")
    if earliest > latest:
        raise BadRequest("earliest must not be after latest")
    skew, page_days, split = app_faults().thingspace
    iccid = str(device["id"])
    usage = backend.usage.carrier_daily_usage(account, iccid, earliest, latest, page_days)
    records = [record for day in usage.days for record in _usage_records(day, usage.rate_plan, skew, split)]
    return json_response(
        {"hasMoreData": usage.more, "deviceId": {"id": iccid, "kind": "iccid"}, "usageHistory": records},
        app_faults().thingspace_more_data_status if usage.more else 200,
    )


def _usage_records(day: DayUsage, plan: str, skew: float, split: bool) -> list[dict[str, Any]]:
    """One day's usage as the carrier's records: one at ``T00:00:00Z``, or two (MO and MT SMS apart) when
    the ``thingspace_duplicate_days`` fault is on; bytes scaled by the ``thingspace_usage_skew`` fault."""
    total = int(round(day.bytes_used * (1.0 + skew)))
    parts = (
        [(total // 2, day.sms_mo, 0), (total - total // 2, 0, day.sms_mt)]
        if split
        else [(total, day.sms_mo, day.sms_mt)]
    )
    return [
        {
            "bytesUsed": part_bytes,
            "extendedAttributes": [{"key": "MoSms", "value": str(mo)}, {"key": "MtSms", "value": str(mt)}],
            "servicePlan": plan,
            "smsUsed": mo + mt,
            "source": "Usage Feed",
            "timestamp": f"{day.day}T00:00:00Z",
        }
        for part_bytes, mo, mt in parts
    ]
