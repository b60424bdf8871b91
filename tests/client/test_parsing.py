"""Pure parsing and policy pieces of the clients (no network)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from lattigo_fleet.client import ActivationRow, BulkResult, LattigoError, UnprocessedRow, UsageRecord, replies
from lattigo_fleet.client._http import PolicyRetry, RetryHooks, endpoint_of, iso
from lattigo_fleet.client.errors import AuthenticationError, ThingSpaceAuthError, decode_error_hash, scrub
from lattigo_fleet.client.lattigo import LattigoClient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"iccid":["has already been taken"]}', {"iccid": ["has already been taken"]}),
        ({"iccid": ["bad", "worse"]}, {"iccid": ["bad", "worse"]}),
        ({"imei": "is invalid"}, {"imei": ["is invalid"]}),
        ('{"iccid":["unterminated"', {"base": ['{"iccid":["unterminated"']}),
        ("Something went wrong", {"base": ["Something went wrong"]}),
        ("", {}),
        (None, {}),
        ('["a", "b"]', {"base": ["a", "b"]}),
        (b'{"imei":["x"]}', {"imei": ["x"]}),
    ],
)
def test_decode_error_hash(raw: str | bytes | dict[str, Any] | None, expected: dict[str, list[str]]) -> None:
    assert decode_error_hash(raw) == expected


def test_unprocessed_row_from_document_example() -> None:
    raw = json.loads(
        '{"device_index": 1, "error": "{\\"iccid\\":[\\"Error messages would be here\\"]}",'
        ' "input": {"iccid": "89444444444444444444", "imei": "333333333333333"}}'
    )
    row = UnprocessedRow.parse(raw)
    assert row.device_index == 1
    assert row.error == {"iccid": ["Error messages would be here"]}
    assert row.input["iccid"] == "89444444444444444444"
    assert row.message == "iccid: Error messages would be here"


def test_unprocessed_row_tolerates_odd_shapes() -> None:
    assert UnprocessedRow.parse({"device_index": "2", "error": {"imei": ["x"]}}).device_index == 2
    odd = UnprocessedRow.parse({"device_index": "two", "error": "not json", "input": "nope"})
    assert odd.device_index is None and odd.input == {} and odd.message == "not json"
    assert UnprocessedRow.parse("garbage").message == "garbage"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("v2/devices", "v2/devices"),
        ("/v2/devices?page=2&per_page=10", "v2/devices"),
        ("v2/devices/8901234/note", "v2/devices/:device_name/note"),
        ("http://127.0.0.1:9/prefix/v2/devices/12%2034?id_type=iccid", "v2/devices/:device_name"),
        ("/v2/device_operations/change_simstate", "v2/device_operations/change_simstate"),
        ("http://h/api/m2m/v1/session/login", "api/m2m/v1/session/login"),
    ],
)
def test_endpoint_of(path: str, expected: str) -> None:
    assert endpoint_of(path) == expected


def test_iso_formats() -> None:
    assert iso(date(2024, 5, 1)) == "2024-05-01"
    assert iso(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00Z"
    assert iso("2024-05-01") == "2024-05-01"


def test_activation_row_body_only_has_set_fields() -> None:
    row = ActivationRow("8901", "3512", note3="n3")
    assert row.to_body() == {"imei": "3512", "iccid": "8901", "note3": "n3"}
    assert ActivationRow("8901", device_sku="SKU1").to_body() == {"iccid": "8901", "device_sku": "SKU1"}
    with pytest.raises(ValueError):
        ActivationRow("8901")
    with pytest.raises(ValueError):
        ActivationRow("", "1")


def test_status_map_error_is_a_failure() -> None:
    data = {
        "change_status": {
            "1": "Success",
            "2": "Error: Device does not exist.",
            "3": "Success: Device data limit is set.",
        }
    }
    part = replies.status_map(data, ["1", "2", "3", "4"])
    assert part.succeeded == ["1", "3"]
    assert part.failed == {"2": "Error: Device does not exist.", "4": "no status returned for this device"}
    assert replies.status_map({"weird": True}, ["1"]).failed == {"1": "no per-device status in the response"}


def test_bulk_result_merge() -> None:
    a = BulkResult(succeeded=["1"], failed={"2": "x"})
    a.merge(BulkResult(succeeded=["2"], failed={"3": "y"}))
    assert a.succeeded == ["1", "2"] and a.failed == {"3": "y"}


def test_usage_record_numbers_as_strings_or_ints() -> None:
    a = UsageRecord.parse(
        {
            "bytesUsed": "105369575",
            "smsUsed": "2",
            "extendedAttributes": [{"key": "MoSms", "value": "2"}, {"key": "MtSms", "value": 0}],
            "timestamp": "2023-10-26T00:00:00Z",
        }
    )
    b = UsageRecord.parse({"bytesUsed": 105369575, "smsUsed": 2, "timestamp": "2023-10-26T00:00:00+00:00"})
    assert a.bytes_used == b.bytes_used == 105369575
    assert a.sms_used == b.sms_used == 2
    assert (a.mo_sms, a.mt_sms) == (2, 0)
    assert b.mo_sms is None
    assert a.day == b.day == date(2023, 10, 26)
    assert a.timestamp == datetime(2023, 10, 26, tzinfo=UTC)


def test_scrub_and_error_messages_never_carry_secrets() -> None:
    assert scrub("key=s3cr3t-value here", ["s3cr3t-value", None, ""]) == "key=*** here"
    err = AuthenticationError(method="GET", endpoint="v2/devices", devices=["8901"], status=401, detail="nope")
    assert str(err) == "GET v2/devices (device 8901): AuthenticationError: HTTP 401: nope"
    many = LattigoError(method="PUT", endpoint="x", devices=[str(i) for i in range(8)])
    assert "and 3 more" in str(many)
    assert isinstance(ThingSpaceAuthError(), AuthenticationError)


def test_retry_policy_decisions() -> None:
    waits: list[float] = []
    retry = PolicyRetry.build(3, hooks=RetryHooks(sleep=waits.append, max_wait=5.0))
    assert retry.is_retry("POST", 429)
    assert retry.is_retry("GET", 503) and retry.is_retry("PUT", 500)
    assert not retry.is_retry("POST", 500)
    assert not retry.is_retry("GET", 404)
    retry.hooks.wait(99)
    assert waits == [5.0]


def test_client_repr_hides_credentials() -> None:
    client = LattigoClient("http://127.0.0.1:1", "key-name-x", "api-key-secret")
    assert "api-key-secret" not in repr(client) and "key-name-x" not in repr(client)


def test_no_repeatable_methods_means_none_not_all() -> None:
    retry = PolicyRetry.build(3, hooks=RetryHooks(), allowed_methods=(), server_error_statuses=())
    assert not retry._is_method_retryable("POST") and not retry._is_method_retryable("GET")
    assert retry.is_retry("POST", 429) and not retry.is_retry("GET", 500)
    assert retry.increment("GET", "/x", response=None, error=None).repeatable == frozenset()
