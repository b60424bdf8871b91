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
