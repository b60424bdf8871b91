"""Request parsing: Rack-style nested form fields, JSON bodies, tolerant times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from emulator.errors import BadRequest
from emulator.params import get_str_list, parse_body, parse_nested_query
from emulator.timeutil import parse_time


def test_rack_nested_fields() -> None:
    assert parse_nested_query("device_names[]=123&device_names[]=456&cost_center=Acme") == {
        "device_names": ["123", "456"],
        "cost_center": "Acme",
    }
    rows = parse_nested_query(
        "rate_plan_name=P&activation_requests[][imei]=1&activation_requests[][iccid]=2"
        "&activation_requests[][imei]=3&activation_requests[][iccid]=4&activation_requests[][note3]=n"
    )
    assert rows == {
        "rate_plan_name": "P",
        "activation_requests": [{"imei": "1", "iccid": "2"}, {"imei": "3", "iccid": "4", "note3": "n"}],
    }
    assert parse_nested_query("a[b][c]=1&a[b][d]=2") == {"a": {"b": {"c": "1", "d": "2"}}}
    assert parse_nested_query("note=") == {"note": ""}


def test_bodies() -> None:
    assert parse_body(b'{"a": 1}', "application/json") == {"a": 1}
    assert parse_body(b'{"a": 1}', None) == {"a": 1}  # JSON without a content type is still JSON
    assert parse_body(b"a=1", "application/x-www-form-urlencoded") == {"a": "1"}
    assert parse_body(b"", "application/json") is None
    with pytest.raises(BadRequest):
        parse_body(b"{nope", "application/json")


def test_lists() -> None:
    assert get_str_list({"device_names": [123, "456"]}, "device_names") == ["123", "456"]
    assert get_str_list({"device_names": "123,456"}, "device_names") == ["123", "456"]
    assert get_str_list({"device_names[]": ["1"]}, "device_names") == ["1"]
    with pytest.raises(BadRequest):
        get_str_list({}, "device_names", required=True)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2024-05-23", datetime(2024, 5, 23, tzinfo=UTC)),
        ("2024-05-23T10:00:00Z", datetime(2024, 5, 23, 10, tzinfo=UTC)),
        ("2024-05-23T12:00:00+02:00", datetime(2024, 5, 23, 10, tzinfo=UTC)),
        ("2024-05-23T10:00:00", datetime(2024, 5, 23, 10, tzinfo=UTC)),  # no zone: UTC
        ("2024-05-23 10:00:00", datetime(2024, 5, 23, 10, tzinfo=UTC)),
        ("20240523", datetime(2024, 5, 23, tzinfo=UTC)),
        ("2024/05/23", datetime(2024, 5, 23, tzinfo=UTC)),
        ("2024-05-23T10:00:00.250Z", datetime(2024, 5, 23, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_in(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_bad_time() -> None:
    with pytest.raises(BadRequest):
        parse_time("next tuesday")
