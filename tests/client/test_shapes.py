"""The documented shapes, pinned as a table: what each endpoint's answer must be, checked on examples
taken from the API document (``lattigo-api-v2.txt``) and on the surprises of the issue."""

from __future__ import annotations

from typing import Any

import pytest

from lattigo_fleet.client import shapes
from lattigo_fleet.client.shapes import ENDPOINT_SHAPES, nesting_depth

DEVICE = {"id": 3, "device_name": "36500", "iccid": "89014103000211118000", "state": "active", "meid": None}

DOCUMENTED = [
    ("GET v2/devices", ["36500", "36501"]),
    ("GET v2/devices?details=true", [DEVICE]),
    ("GET v2/devices/:device_name", DEVICE),
    ("GET v2/devices/:device_name/last_calamp_message", {"message_id": 281, "mobile_id": "2424476102"}),
    ("GET v2/devices/:device_name/last_calamp_message", []),
    ("PUT v2/devices/:device_name/note", {"36500": "Success"}),
    ("POST v2/devices/:device_name/cellular_locate", {"36500": "Success: Location request submitted."}),
    (
        "POST v2/device_operations/activation_request",
        {
            "processed": [{"iccid": "89222222222222222222", "imei": "1111111111111111", "request_type": "activate"}],
            "unprocessed": [{"device_index": 1, "error": '{"iccid":["bad"]}', "input": {"iccid": "8944"}}],
        },
    ),
    ("PUT v2/device_operations/change_simstate", {"change_status": {"123": "Success", "456": "Error: x"}}),
    ("POST v2/device_operations/set_usage_limit", {"status": {"123": "Success: Device data limit is set."}}),
    ("GET v2/rate_plans", [{"name": "ACME Co 5mb Rate Plan", "days_in_term": 30}]),
    ("GET v2/users", ["ops-oncall", "fleet-admin"]),
    ("GET v2/device_operations/calamp_events", [{"message_id": 1, "event_code": 5}]),
]

SURPRISES = [
    ("GET v2/devices", [1.0]),  # a float is not a device name, even one JSON Schema would call an integer
    ("GET v2/devices", [True]),
    ("GET v2/devices/:device_name", {"error": "Device not found"}),
    ("GET v2/devices?details=true", [{"device_name": "1"}]),
    ("PUT v2/devices/:device_name/note", {}),
    ("PUT v2/devices/:device_name/note", {"error": "note too long"}),
    ("POST v2/device_operations/activation_request", {"error": "internal"}),
    ("POST v2/device_operations/activation_request", []),
    ("PUT v2/device_operations/change_simstate", {"status": {"123": "Success"}}),
    ("POST v2/device_operations/send_sms", {"status": {"123": 1}}),
    ("GET v2/rate_plans", ["ACME"]),
    ("GET v2/users", [{"username": "x"}]),
]


@pytest.mark.parametrize(("endpoint", "answer"), DOCUMENTED)
def test_documented_answers_have_their_shape(endpoint: str, answer: Any) -> None:
    assert ENDPOINT_SHAPES[endpoint].problem(answer) is None


@pytest.mark.parametrize(("endpoint", "answer"), SURPRISES)
def test_surprises_do_not(endpoint: str, answer: Any) -> None:
    problem = ENDPOINT_SHAPES[endpoint].problem(answer)
    assert problem is not None and problem.startswith(f"expected {ENDPOINT_SHAPES[endpoint].name}")


def test_every_shape_constant_is_declared_for_an_endpoint() -> None:
    constants = {v.name for v in vars(shapes).values() if isinstance(v, shapes.Shape)}
    assert constants == {v.name for v in ENDPOINT_SHAPES.values()} and len(constants) == 13


def test_nesting_depth_is_iterative_and_stops_counting_past_the_limit() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep, limit=64) == 65
    assert nesting_depth({"a": [1, {"b": []}]}) == 4 and nesting_depth("x") == 0


# --- the quick check agrees with jsonschema ----------------------------------------------------------------

# Values of every JSON type, the edge ones included (a bool is no integer, "" is no name, 1.0 is a float).
PROBES: list[Any] = [None, True, False, 0, 7, 1.0, "", "x", "36500", [], [1], {}, {"a": 1}]
# The keys the shapes name, set (to each probe) on every object of an example.
NAMED_KEYS = ["device_name", "iccid", "state", "id", "imei", "note", "connected", "name", "message_id", "event_code"]
# A valid answer of every shape with a quick check.
QUICK_EXAMPLES = [answer for _, answer in DOCUMENTED] + [[{"date_for": "2024-05-01", "bytes_used": 10}]]


def _variants(value: Any) -> list[Any]:
    """``value`` with one thing changed: any node replaced by a probe, any key of an object removed or set."""
    out: list[Any] = list(PROBES)
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += [[*value[:i], v, *value[i + 1 :]] for v in _variants(item)]
        out.append([*value, *value])
    elif isinstance(value, dict):
        for key, item in value.items():
            out += [{**value, key: v} for v in _variants(item)]
            out.append({k: v for k, v in value.items() if k != key})
        out += [{**value, key: v} for key in NAMED_KEYS if key not in value for v in PROBES]
    return out


# The shapes with a quick check (the others have keywords it does not know: jsonschema alone judges them).
QUICK = {s.name: s for s in ENDPOINT_SHAPES.values() if s._quick is not None}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_the_quick_check_accepts_exactly_what_jsonschema_accepts(name: str) -> None:
    """On the valid answers of the shape, and on every answer one change away from one of them."""
    shape = QUICK[name]
    assert shape._quick is not None
    examples = [answer for answer in QUICK_EXAMPLES if shape._validator.is_valid(answer)]
    assert examples
    for example in examples:
        for answer in [example, *_variants(example)]:
            assert shape._quick(answer) == shape._validator.is_valid(answer), answer


def test_the_long_answers_have_a_quick_check() -> None:
    """The answers that come 1,000 objects a page are the ones it is for."""
    assert shapes.DEVICES._quick is not None and shapes.DEVICE_NAMES._quick is not None
    page = [dict(DEVICE, device_name=str(36500 + n)) for n in range(1000)]
    assert shapes.DEVICES.problem(page) is None
    page[999] = dict(DEVICE, state="")
    assert shapes.DEVICES.problem(page) == (
        "expected an array of device objects; at $[999].state: '' should be non-empty"
    )
