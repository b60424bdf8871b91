"""The documented shape of every Lattigo answer, as JSON Schema, written from ``lattigo-api-v2.txt``.

The transport checks every successful (2xx) answer against the shape its endpoint declares before anything
reads it: an answer of any other shape is an :class:`~lattigo_fleet.client.errors.UnexpectedAnswer`, never
a success. The schemas say only what the document promises and the client relies on (a device object has
a ``device_name``, an ``iccid`` and a ``state``; a rate plan a string ``name``; a per-device status is a
string), and leave the other fields free, so that a field the platform adds does not break the client.

``ENDPOINT_SHAPES`` maps ``"METHOD endpoint-template"`` to its shape: one place to read what each endpoint
answers, pinned by a table test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, validators

from lattigo_fleet.client._http import short_body

__all__ = ["Shape", "ENDPOINT_SHAPES"]

#: Deeper answers are refused before any schema or reader sees them (no documented answer nests past 4).
MAX_NESTING = 64


def _is_integer(checker: Any, instance: Any) -> bool:
    """A JSON integer literal only: not ``1.0`` (which JSON Schema would count) nor ``true``."""
    return isinstance(instance, int) and not isinstance(instance, bool)


#: Draft 2020-12, except that ``"integer"`` means what the client will receive as a Python ``int``.
_Validator = validators.extend(
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
)


#: Python types of the JSON types, as :data:`_Validator` checks them (``bool`` is no integer).
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}
#: The keywords :func:`_quick_check` knows; a schema with any other is checked by jsonschema alone.
_QUICK_KEYWORDS = frozenset({"type", "required", "properties", "items", "minLength"})

Check = Callable[[Any], bool]


def _quick_check(schema: Any) -> Check | None:
    """A plain-Python predicate that is true exactly when ``schema`` accepts a value, for the few keywords the
    shapes of the long answers use; None for a schema it does not know (jsonschema then judges alone).

    Why: jsonschema walks a page of 1,000 devices in ~60 ms, most of the client's time to list 100,000 SIMs;
    this does it in a few. jsonschema still writes every message: a value this refuses is judged again by it
    (a table test holds the two to the same verdict)."""
    if not isinstance(schema, dict) or not set(schema) <= _QUICK_KEYWORDS:
        return None
    types: tuple[type, ...] | None = None
    no_bool = False  # "integer" without "boolean": a bool is an int to Python, not to the shapes
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(n in _PY_TYPES for n in names):
            return None
        types = tuple(t for n in names for t in _PY_TYPES[n])
        no_bool = "integer" in names and "boolean" not in names
    least: int | None = schema.get("minLength")
    required = tuple(schema.get("required", ()))
    props: list[tuple[str, Check]] = []
    for key, sub in schema.get("properties", {}).items():
        check = _quick_check(sub)
        if check is None:
            return None
        props.append((key, check))
    item = _quick_check(schema["items"]) if "items" in schema else None
    if "items" in schema and item is None:
        return None

    def accepts(value: Any) -> bool:
        if types is not None and (not isinstance(value, types) or (no_bool and isinstance(value, bool))):
            return False
        if isinstance(value, str):
            return least is None or len(value) >= least
        if isinstance(value, dict):
            return all(k in value for k in required) and all(c(value[k]) for k, c in props if k in value)
        if isinstance(value, list) and item is not None:
            return all(map(item, value))
        return True

    return accepts


@dataclass(frozen=True)
class Shape:
    """One answer's shape: a name for messages (``"a device object"``) and its JSON Schema."""

    name: str
    schema: dict[str, Any]
    _validator: Any = field(init=False, repr=False, compare=False)
    _quick: Check | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)
        object.__setattr__(self, "_validator", _Validator(self.schema))
        object.__setattr__(self, "_quick", _quick_check(self.schema))

    def problem(self, data: Any) -> str | None:
        """None when ``data`` has this shape, else what is wrong with it (the first difference, short)."""
        if self._quick is not None and self._quick(data):
            return None
        error = next(self._validator.iter_errors(data), None)
        if error is None:
            return None
        where = error.json_path if error.path else "the answer"
        return f"expected {self.name}; at {short_body(where, 80)}: {short_body(error.message, 160)}"


# --- building blocks ---------------------------------------------------------------------------------

_ID = {"type": ["string", "integer"], "minLength": 1}  # device names and ICCIDs: "36500", 36500
_TEXT_OR_NULL = {"type": ["string", "null"]}
_OBJECT = {"type": "object"}
#: An answer keyed by device name: a device is never called like an error answer's key.
_DEVICE_KEY = {"minLength": 1, "not": {"enum": ["error", "errors", "message", "errorMessage"]}}


def _array_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_DEVICE = {
    "type": "object",
    "required": ["device_name", "iccid", "state"],
    "properties": {
        "id": {"type": ["integer", "string", "null"]},
        "device_name": _ID,
        "iccid": _ID,
        "state": {"type": "string", "minLength": 1},
        "imei": {"type": ["string", "integer", "null"]},
        "cost_center": _TEXT_OR_NULL,
        "note": _TEXT_OR_NULL,
        "note1": _TEXT_OR_NULL,
        "note2": _TEXT_OR_NULL,
        "note3": _TEXT_OR_NULL,
        "connected": {"type": ["boolean", "null"]},
    },
}

#: ``{processed: [{...}], unprocessed: [{device_index, error, input}]}`` (activation, suspension, upload).
_ROWS = {
    "type": "object",
    "required": ["processed", "unprocessed"],
    "properties": {
        "processed": _array_of(_OBJECT),
        "unprocessed": _array_of(
            {
                "type": "object",
                "properties": {
                    "device_index": {"type": ["integer", "null"]},
                    "error": {"type": ["string", "object", "array", "null"]},
                    "input": {"type": ["object", "null"]},
                },
            }
        ),
    },
}


def _status_map(key: str) -> dict[str, Any]:
    """``{key: {device_name: "Success..." | "Error: ..."}}``."""
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "object", "additionalProperties": {"type": "string"}}},
    }


# --- the shapes --------------------------------------------------------------------------------------

DEVICE_NAMES = Shape("an array of device names", _array_of(_ID))
DEVICES = Shape("an array of device objects", _array_of(_DEVICE))
DEVICE = Shape("a device object", _DEVICE)
OBJECTS = Shape("an array of objects", _array_of(_OBJECT))  # SMS, device reports, data usages
_MESSAGE = {
    "type": "object",
    "required": ["message_id"],
    "properties": {
        "message_id": {"type": ["integer", "string"]},
        "event_code": {"type": ["integer", "string", "null"]},
    },
}
MESSAGES = Shape("an array of CalAmp message objects", _array_of(_MESSAGE))
LAST_MESSAGE = Shape(
    "a CalAmp message object (or an empty array)",
    {"oneOf": [_MESSAGE, {"type": "array", "maxItems": 1, "items": _MESSAGE}]},
)
NOTE = Shape(
    'a {"<device_name>": "Success"} object',
    {"type": "object", "minProperties": 1, "propertyNames": _DEVICE_KEY, "additionalProperties": {"type": "string"}},
)
LOCATE = Shape(
    'a {"<device_name>": <carrier_response>} object',
    {"type": "object", "minProperties": 1, "propertyNames": _DEVICE_KEY},
)
ROWS = Shape("a {processed, unprocessed} object", _ROWS)
CHANGE_STATUS = Shape("a {change_status: {device_name: status}} object", _status_map("change_status"))
STATUS = Shape("a {status: {device_name: status}} object", _status_map("status"))
RATE_PLANS = Shape(
    "an array of rate plan objects",
    _array_of({"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}),
)
USERS = Shape("an array of usernames", _array_of({"type": "string"}))

_D = "v2/devices/:device_name"
_O = "v2/device_operations"

#: Every endpoint the client calls and the shape of its successful answer.
ENDPOINT_SHAPES: dict[str, Shape] = {
    "GET v2/devices": DEVICE_NAMES,
    "GET v2/devices?details=true": DEVICES,
    f"GET {_D}": DEVICE,
    f"GET {_D}/get_sms": OBJECTS,
    f"GET {_D}/calamp_messages": MESSAGES,
    f"GET {_D}/last_calamp_message": LAST_MESSAGE,
    f"PUT {_D}/note": NOTE,
    f"GET {_D}/device_reports": OBJECTS,
    f"GET {_D}/daily_data_usages": OBJECTS,
    f"GET {_D}/monthly_data_usages": OBJECTS,
    f"POST {_D}/cellular_locate": LOCATE,
    f"POST {_O}/activation_request": ROWS,
    f"POST {_O}/suspend_no_billing_request": ROWS,
    f"POST {_O}/upload_request": ROWS,
    f"PUT {_O}/change_cost_center": CHANGE_STATUS,
    f"PUT {_O}/change_simstate": CHANGE_STATUS,
    f"POST {_O}/remove_usage_limit": STATUS,
    f"POST {_O}/send_sms": STATUS,
    f"POST {_O}/set_usage_limit": STATUS,
    f"GET {_O}/calamp_events": MESSAGES,
    "GET v2/rate_plans": RATE_PLANS,
    "GET v2/users": USERS,
}


# A JSON string, written "unrolled" (runs of plain characters, then one escape): alternating one character at a
# time made this scan most of the time the client took to read a page of 1,000 devices.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(range(256)).translate(None, b"[]{}")
_OPENING = frozenset(b"[{")


def nests_deeper_than(text: bytes | str, limit: int = MAX_NESTING) -> bool:
    """Whether JSON text opens more than ``limit`` brackets at once, found without parsing it: `json.loads` of
    a deep document recurses to the interpreter's limit, and a finalizer that the garbage collector runs down
    there fails in turn ("Exception ignored ..."), even when the RecursionError itself is caught."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET):
        depth += 1 if byte in _OPENING else -1
        if depth > limit:
            return True
    return False


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply ``value`` nests arrays and objects (a scalar is 0), counting no further than ``limit + 1``.

    Iterative, so that a hostile answer cannot exhaust the stack of whoever reads it next. Only containers
    are stacked: a page of 1,000 devices is 1,000 objects but 30,000 scalars.
    """
    if not isinstance(value, (list, dict)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if depth > limit:
                return depth
        children = item.values() if isinstance(item, dict) else item
        stack.extend([(child, depth + 1) for child in children if isinstance(child, (list, dict))])
    return deepest
