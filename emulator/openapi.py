"""The OpenAPI 3 description of the emulated API (Lattigo v2, ThingSpace, admin), served at /openapi.json.

Built from small helpers so that every endpoint states its verb, parameters, body and return codes. Over
400 lines because it is one document with an entry per endpoint; splitting it would scatter that document.
"""

from __future__ import annotations

from typing import Any

from emulator.accounts import RATE_PLAN_FIELDS
from emulator.lifecycle import API_STATES
from emulator.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE
from emulator.sims import DEVICE_FIELDS, ID_TYPES, NOTE_FIELDS

_ERR = {"$ref": "#/components/schemas/Error"}
_TS_ERR = {"$ref": "#/components/schemas/ThingSpaceError"}


def _q(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_DEVICE_NAME = {
    "name": "device_name",
    "in": "path",
    "required": True,
    "description": "as returned by v2/devices, or an id of id_type",
    "schema": {"type": "string"},
}
_ID_TYPE = _q("id_type", "id type if different from device_name", {"type": "string", "enum": list(ID_TYPES)})
_PAGING = [
    _q("page", "page to retrieve (from 1)", {"type": "integer", "minimum": 1, "default": 1}),
    _q(
        "per_page",
        f"records per page (default {DEFAULT_PER_PAGE}, at most {MAX_PER_PAGE})",
        {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE},
    ),
    _q("offset", "records skipped before the first page", {"type": "integer", "minimum": 0, "default": 0}),
]
_DATES = [
    _q("start_date", "ISO 8601 date or time, inclusive; default one month ago", {"type": "string"}),
    _q("end_date", "ISO 8601 date or time, inclusive; default now", {"type": "string"}),
]
_LIMIT = _q("limit", "maximum number of results, newest first (default 1)", {"type": "integer", "minimum": 1})
_PAGE_HEADERS = {
    h: {"schema": {"type": "string"}}
    for h in ("X-Total", "X-Total-Pages", "X-Page", "X-Per-Page", "X-Next-Page", "X-Prev-Page", "X-Offset")
}


def _json(schema: dict[str, Any], description: str = "OK", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _errors(*codes: int, ts: bool = False) -> dict[str, Any]:
    text = {
        400: "Missing or incorrect parameters",
        401: "Credentials are missing or incorrect",
        403: "A device of another account",
        404: "Unknown path or device",
        405: "Method not allowed",
        415: "Unsupported media type",
        422: "Unprocessable Entity",
        429: "Too many requests (see Retry-After)",
    }
    out = {str(c): _json(_TS_ERR if ts else _ERR, text.get(c, "Error")) for c in codes}
    if "429" in out:
        out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return out


def _body(schema: dict[str, Any], form: bool = True) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"required": True, "content": content}


def _op(
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    tag: str = "lattigo",
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        out["parameters"] = parameters
    if body:
        out["requestBody"] = body
    if security is not None:
        out["security"] = security
    return out


_STR_LIST = {"type": "array", "items": {"type": "string"}}
_STATUS_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_STD = (400, 401, 403, 404, 405, 429)


def _rows_schema(input_props: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "processed": {"type": "array", "items": {"type": "object"}},
            "unprocessed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "device_index": {"type": "integer"},
                        "error": {"type": "string", "description": "JSON-encoded hash of arrays"},
                        "input": {"type": "object", "properties": {p: {"type": "string"} for p in input_props}},
                    },
                },
            },
        },
    }


def _lattigo_paths() -> dict[str, Any]:
    device_ref = {"$ref": "#/components/schemas/Device"}
    message_list = {"type": "array", "items": {"$ref": "#/components/schemas/CalAmpMessage"}}
    usage_list = {"type": "array", "items": {"$ref": "#/components/schemas/DataUsage"}}
    per_device = [_DEVICE_NAME, _ID_TYPE]
    return {
        "/v2/devices": {
            "get": _op(
                "device_names of the account (or device objects with details=true)",
                {
                    "200": _json({"oneOf": [_STR_LIST, {"type": "array", "items": device_ref}]}, headers=_PAGE_HEADERS),
                    **_errors(400, 401, 405, 429),
                },
                [
                    _q("details", "true (or t, 1) for device objects", {"type": "boolean"}),
                    _q("state", "only devices in this state", {"type": "string", "enum": list(API_STATES)}),
                    *_PAGING,
                ],
            )
        },
        "/v2/devices/{device_name}": {
            "get": _op("one device object", {"200": _json(device_ref), **_errors(*_STD)}, per_device)
        },
        "/v2/devices/{device_name}/get_sms": {
            "get": _op(
                "SMS MT status objects",
                {"200": _json({"type": "array", "items": {"$ref": "#/components/schemas/Sms"}}), **_errors(*_STD)},
                [
                    *per_device,
                    _q("start_date", "ISO 8601 date, inclusive (time ignored)"),
                    _q("end_date", "ISO 8601 date, inclusive (time ignored)"),
                    _q("direction", "all, received or sent", {"type": "string", "enum": ["all", "received", "sent"]}),
                ],
            )
        },
        "/v2/devices/{device_name}/calamp_messages": {
            "get": _op(
                "CalAmp messages in a date range, oldest first",
                {"200": _json(message_list, headers=_PAGE_HEADERS), **_errors(*_STD)},
                [*per_device, *_DATES, _q("event_code", "only this event code", {"type": "integer"}), *_PAGING],
            )
        },
        "/v2/devices/{device_name}/last_calamp_message": {
            "get": _op(
                "the latest CalAmp message, or [] when there is none",
                {
                    "200": _json({"oneOf": [{"$ref": "#/components/schemas/CalAmpMessage"}, {"type": "array"}]}),
                    **_errors(*_STD),
                },
                per_device,
            )
        },
        "/v2/devices/{device_name}/note": {
            method: _op(
                "set a note field (notes over 100 characters are truncated)"
                + (" (POST tolerated)" if method == "post" else ""),
                {"200": _json(_STATUS_MAP, '{"<device_name>": "Success"}'), **_errors(*_STD)},
                per_device,
                _body(
                    {
                        "type": "object",
                        "required": ["field_name", "note"],
                        "properties": {
                            "field_name": {"type": "string", "enum": list(NOTE_FIELDS)},
                            "note": {"type": "string"},
                            "id_type": {"type": "string"},
                        },
                    }
                ),
            )
            for method in ("put", "post")
        },
        "/v2/devices/{device_name}/device_reports": {
            "get": _op(
                "device reports, newest first",
                {
                    "200": _json({"type": "array", "items": {"type": "object"}}, headers=_PAGE_HEADERS),
                    **_errors(*_STD),
                },
                [*per_device, *_DATES, _LIMIT, *_PAGING],
            )
        },
        "/v2/devices/{device_name}/daily_data_usages": {
            "get": _op(
                "daily data usage, newest first",
                {"200": _json(usage_list, headers=_PAGE_HEADERS), **_errors(*_STD)},
                [*per_device, *_DATES, _LIMIT, *_PAGING],
            )
        },
        "/v2/devices/{device_name}/monthly_data_usages": {
            "get": _op(
                "monthly data usage (date_for is the month's first day), newest first",
                {"200": _json(usage_list, headers=_PAGE_HEADERS), **_errors(*_STD)},
                [*per_device, *_DATES, _LIMIT, *_PAGING],
            )
        },
        "/v2/devices/{device_name}/cellular_locate": {
            "post": _op(
                "request a carrier location",
                {"200": _json(_STATUS_MAP, '{"<device_name>": "<carrier_response>"}'), **_errors(*_STD)},
                per_device,
            )
        },
        "/v2/device_operations/activation_request": {
            "post": _op(
                "request activation of inventory SIMs (asynchronous: 200 means accepted)",
                {
                    "200": _json(_rows_schema([]), "all rows accepted"),
                    "422": _json(_rows_schema(["iccid", "imei", *NOTE_FIELDS]), "some rows unprocessed"),
                    **_errors(400, 401, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["rate_plan_name", "activation_requests"],
                        "properties": {
                            "rate_plan_name": {"type": "string"},
                            "activation_requests": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["iccid"],
                                    "properties": {
                                        "iccid": {"type": "string"},
                                        "imei": {"type": "string", "description": "15 or 16 digits"},
                                        "device_sku": {"type": "string"},
                                        "region_code": {"type": "string"},
                                        **{f: {"type": "string", "maxLength": 250} for f in NOTE_FIELDS},
                                    },
                                },
                            },
                        },
                    }
                ),
            )
        },
        "/v2/device_operations/suspend_no_billing_request": {
            "post": _op(
                "queue suspensions without billing (active|suspended -> pending -> suspended_no_billing)",
                {
                    "200": _json(_rows_schema([])),
                    "422": _json(_rows_schema(["iccid", "imei"])),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "properties": {
                            "suspension_requests": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"imei": {"type": "string"}, "iccid": {"type": "string"}},
                                },
                            }
                        },
                    }
                ),
            )
        },
        "/v2/device_operations/change_cost_center": {
            "put": _op(
                "set the cost center of devices",
                {
                    "200": _json({"type": "object", "properties": {"change_status": _STATUS_MAP}}),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["device_names", "cost_center"],
                        "properties": {"device_names": _STR_LIST, "cost_center": {"type": "string"}},
                    }
                ),
            )
        },
        "/v2/device_operations/change_simstate": {
            "put": _op(
                "suspend or restore devices (per device: Success | Error: <reason>)",
                {
                    "200": _json({"type": "object", "properties": {"change_status": _STATUS_MAP}}),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["device_names", "state"],
                        "properties": {
                            "device_names": _STR_LIST,
                            "state": {"type": "string", "enum": ["suspend", "restore"]},
                            "id_type": {"type": "string", "enum": list(ID_TYPES)},
                        },
                    }
                ),
            )
        },
        "/v2/device_operations/remove_usage_limit": {
            "post": _op(
                "remove the monthly usage limit",
                {
                    "200": _json({"type": "object", "properties": {"status": _STATUS_MAP}}),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body({"type": "object", "required": ["device_names"], "properties": {"device_names": _STR_LIST}}),
            )
        },
        "/v2/device_operations/send_sms": {
            "post": _op(
                "queue an SMS to active devices",
                {
                    "200": _json({"type": "object", "properties": {"status": _STATUS_MAP}}),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["device_names", "sms_text"],
                        "properties": {"device_names": _STR_LIST, "sms_text": {"type": "string"}},
                    }
                ),
            )
        },
        "/v2/device_operations/set_usage_limit": {
            "post": _op(
                "set a monthly usage limit (action suspend is enforced; without action: email only)",
                {
                    "200": _json({"type": "object", "properties": {"status": _STATUS_MAP}}),
                    **_errors(400, 401, 403, 405, 429),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["device_names", "kb_limit"],
                        "properties": {
                            "device_names": _STR_LIST,
                            "kb_limit": {"type": "integer", "minimum": 0},
                            "action": {"type": "string", "enum": ["suspend", "email"]},
                            "usernames": _STR_LIST,
                        },
                    }
                ),
            )
        },
        "/v2/device_operations/upload_request": {
            "post": _op(
                "upload IMEIs to the carrier device database",
                {"200": _json(_rows_schema([])), "422": _json(_rows_schema(["imei"])), **_errors(400, 401, 405, 429)},
                body=_body(
                    {
                        "type": "object",
                        "required": ["upload_email", "upload_sku", "upload_ids"],
                        "properties": {
                            "upload_email": {"type": "string"},
                            "upload_sku": {"type": "string"},
                            "upload_ids": {
                                "type": "array",
                                "items": {"type": "object", "properties": {"imei": {"type": "string"}}},
                            },
                        },
                    }
                ),
            )
        },
        "/v2/device_operations/calamp_events": {
            "get": _op(
                "CalAmp messages with one event code across all devices",
                {"200": _json(message_list, headers=_PAGE_HEADERS), **_errors(400, 401, 405, 429)},
                [
                    _q("event_code", "event code", {"type": "integer"}, required=True),
                    *_DATES,
                    _q("state", "only devices in this state", {"type": "string", "enum": list(API_STATES)}),
                    *_PAGING,
                ],
            )
        },
        "/v2/rate_plans": {
            "get": _op(
                "rate plans of the account",
                {
                    "200": _json(
                        {"type": "array", "items": {"$ref": "#/components/schemas/RatePlan"}}, headers=_PAGE_HEADERS
                    ),
                    **_errors(400, 401, 405, 429),
                },
                _PAGING,
            )
        },
        "/v2/users": {
            "get": _op(
                "usernames of the account",
                {"200": _json(_STR_LIST, headers=_PAGE_HEADERS), **_errors(400, 401, 405, 429)},
                _PAGING,
            )
        },
    }


def _thingspace_paths() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"thingspaceBearer": [], "vzM2mSession": []}]
    return {
        "/api/ts/v1/oauth2/token": {
            "post": _op(
                "API token (client credentials, HTTP Basic app_key:app_secret); valid one hour, reissued unchanged",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "access_token": {"type": "string"},
                                "token_type": {"type": "string"},
                                "expires_in": {"type": "integer"},
                            },
                        }
                    ),
                    **_errors(400, 401, 429, ts=True),
                },
                body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": {"grant_type": {"type": "string"}}}
                        }
                    },
                },
                tag="thingspace",
                security=[{"basic": []}],
            )
        },
        "/api/m2m/v1/session/login": {
            "post": _op(
                "VZ-M2M session token (expires after 20 minutes unused; 5 failed logins lock the username)",
                {
                    "200": _json({"type": "object", "properties": {"sessionToken": {"type": "string"}}}),
                    **_errors(400, 401, 403, 429, ts=True),
                },
                body=_body(
                    {
                        "type": "object",
                        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                    },
                    form=False,
                ),
                tag="thingspace",
                security=[{"thingspaceBearer": []}],
            )
        },
        "/api/m2m/v1/session/logout": {
            "post": _op(
                "end a session (VZ-M2M-Token header)",
                {"200": _json({"type": "object"}), **_errors(400, 401, ts=True)},
                tag="thingspace",
                security=bearer,
            )
        },
        "/api/m2m/v1/devices/usage/actions/list": {
            "post": _op(
                "Retrieve Daily Usage of one SIM by ICCID (hasMoreData: continue from the last timestamp)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "hasMoreData": {"type": "boolean"},
                                "deviceId": {"type": "object"},
                                "usageHistory": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                    "202": {
                        "description": "a page with hasMoreData true, body as for 200 (Verizon's way; the "
                        "thingspace_more_data_status setting gives 200 instead)"
                    },
                    **_errors(400, 401, 404, 429, ts=True),
                },
                body=_body(
                    {
                        "type": "object",
                        "required": ["deviceId", "earliest", "latest"],
                        "properties": {
                            "deviceId": {
                                "type": "object",
                                "properties": {"id": {"type": "string"}, "kind": {"type": "string", "enum": ["iccid"]}},
                            },
                            "earliest": {"type": "string", "format": "date-time"},
                            "latest": {"type": "string", "format": "date-time"},
                        },
                    },
                    form=False,
                ),
                tag="thingspace",
                security=bearer,
            )
        },
    }


def _admin_paths() -> dict[str, Any]:
    none: list[dict[str, list[str]]] = []
    obj = {"type": "object"}

    def admin(summary: str, body: bool = False) -> dict[str, Any]:
        return _op(
            summary,
            {"200": _json(obj), "400": _json(_ERR, "bad input")},
            body=_body(obj, form=False) if body else None,
            tag="admin",
            security=none,
        )

    return {
        "/_emulator/requests": {
            "get": admin("request log, oldest first: [{method, path, query, body, status}] (no credentials)"),
            "delete": admin("clear the request log"),
        },
        "/_emulator/sims": {
            "get": admin(
                "every SIM with rate_plan, usage_limit, suspended_reason, account (?account=primary|other|all)"
            ),
            "post": admin(
                "{sims: [{iccid, imei?, state?, ...}]}: add to inventory (no state) or change out of band", True
            ),
        },
        "/_emulator/faults": {
            "get": admin("current fault settings"),
            "post": admin(
                "set faults: rate_limit_per_second, rate_limit_burst, error_rate, error_status, latency_ms, "
                "fail_next [{path, status, count, method?, retry_after?, message?, skip?, after?, apply_rows?, "
                "expire_sessions?}], unprocessed_activations, "
                "thingspace_usage_skew, thingspace_page_days, thingspace_duplicate_days, "
                "thingspace_more_data_status (202|200)",
                True,
            ),
            "delete": admin("clear every fault"),
        },
        "/_emulator/tick": {"post": admin("run all queued work (activations, suspensions, SMS) now")},
        "/_emulator/reset": {"post": admin("{seed?: empty|demo}: wipe state, faults, request log", True)},
        "/_emulator/usage": {
            "get": admin("{usage: [{iccid, date, bytes, sms, sms_mt}]}: the days recorded (?date=&iccid=&account=)"),
            "post": admin(
                "{iccid, date, bytes, sms?, sms_mt?}: set one day's usage; {usage: [{...}]}: many, all or none", True
            ),
        },
        "/_emulator/clock": {"get": admin("emulated now"), "post": admin("{advance_seconds}", True)},
        "/_emulator/thingspace/expire-sessions": {"post": admin("expire every VZ-M2M session now")},
        "/_emulator/thingspace/expire-tokens": {"post": admin("expire every API token now")},
        "/_emulator/thingspace/unlock": {"post": admin("clear failed-login counters and locks")},
        "/_emulator/health": {"get": admin("liveness")},
    }


def openapi_document(server_url: str) -> dict[str, Any]:
    device_props: dict[str, Any] = {f: {"type": "string", "nullable": True} for f in DEVICE_FIELDS}
    device_props.update(
        id={"type": "integer"},
        connected={"type": "boolean"},
        bytes_used={"type": "integer", "description": "this month"},
        sms_used={"type": "integer", "description": "this month"},
        state={"type": "string", "enum": list(API_STATES)},
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Lattigo API v2 and ThingSpace Retrieve Daily Usage (lattigo-fleet emulator)",
            "version": "2",
            "description": (
                "Emulated behaviour of the reference documents. Times out are ISO 8601 UTC. Lists are paged "
                "(page, per_page, offset; X-Total, X-Total-Pages, X-Page, X-Per-Page, X-Next-Page, X-Prev-Page, "
                "X-Offset). SIM lifecycle: inventory -> pending_activation -> active <-> suspended; "
                "active|suspended -> pending_suspend_no_billing -> suspended_no_billing -> (restore) active."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"basic": []}],
        "tags": [{"name": "lattigo"}, {"name": "thingspace"}, {"name": "admin"}],
        "paths": {**_lattigo_paths(), **_thingspace_paths(), **_admin_paths()},
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "key_name:api_key"},
                "thingspaceBearer": {"type": "http", "scheme": "bearer"},
                "vzM2mSession": {"type": "apiKey", "in": "header", "name": "VZ-M2M-Token"},
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                "ThingSpaceError": {
                    "type": "object",
                    "properties": {"errorCode": {"type": "string"}, "errorMessage": {"type": "string"}},
                },
                "Device": {"type": "object", "properties": device_props},
                "RatePlan": {
                    "type": "object",
                    "properties": {f: {"type": "string" if f == "name" else "number"} for f in RATE_PLAN_FIELDS},
                },
                "DataUsage": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "date_for": {"type": "string", "format": "date"},
                        "bytes_used": {"type": "integer"},
                        "sms_used": {"type": "integer"},
                    },
                },
                "Sms": {
                    "type": "object",
                    "properties": {
                        f: {"type": "string", "nullable": True}
                        for f in (
                            "event_id",
                            "event_status",
                            "event_timestamp",
                            "event_type",
                            "imsi",
                            "message_body",
                            "msisdn",
                            "report_timestamp",
                            "failure_reason",
                        )
                    },
                },
                "CalAmpMessage": {"type": "object", "properties": {"message_id": {"type": "integer"}}},
            },
        },
    }
