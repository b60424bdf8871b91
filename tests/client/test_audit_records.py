"""The audit record of every mutating endpoint, whole (all but its time and duration), and the requests sent.

Each case drives one endpoint against the scripted stub through one outcome (ok, partial, refused, a chunk
failing alone, an error that stops the operation) and pins the JSON lines the audit log received.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet.client import (
    ActivationRow,
    AuthenticationError,
    LattigoClient,
    LattigoError,
)
from tests.client.stub import Reply, Stub, StubRequest, start_stub

KEY, SECRET = "stub-key", "stub-secret-value"
A, B, C = "8901" + "1" * 16, "8901" + "2" * 16, "8901" + "3" * 16
IMEI = "351234567890123"
OPS = "v2/device_operations"

#: ``make(**kw)``: a client of the stub (``max_retries`` 1, no sleeping) writing its audit log under tmp_path
MakeClient = Callable[..., LattigoClient]


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub, server = start_stub()
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture
def make(stub: Stub, tmp_path: Path) -> MakeClient:
    path = tmp_path / "audit.jsonl"

    def make(**kw: Any) -> LattigoClient:
        kw.setdefault("max_retries", 1)
        return LattigoClient(stub.base_url, KEY, SECRET, sleep=lambda s: None, audit_log=path, **kw)

    return make


def audit(client: LattigoClient) -> list[dict[str, Any]]:
    assert client.audit.path is not None
    lines = [json.loads(line) for line in client.audit.path.read_text().splitlines()]
    for line in lines:
        assert line.pop("time").endswith("Z") and line.pop("duration_ms") >= 0
    return lines


def sent(stub: Stub) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.body) for r in stub.requests]


def test_set_note_ok(stub: Stub, make: MakeClient) -> None:
    stub.handler = lambda req: (200, {}, {A: "Success"})
    client = make()
    client.set_note(A, "note1", "hello")
    body = {"field_name": "note1", "note": "hello", "id_type": "iccid"}
    assert sent(stub) == [("PUT", f"/v2/devices/{A}/note", body)]
    assert audit(client) == [
        {
            "method": "PUT",
            "endpoint": "v2/devices/:device_name/note",
            "devices": [A],
            "outcome": "ok",
            "status": 200,
            "field_name": "note1",
        }
    ]


def test_set_note_refused_raises_and_records_the_refusal(stub: Stub, make: MakeClient) -> None:
    stub.handler = lambda req: (200, {}, {A: "Error: note too long"})
    client = make()
    with pytest.raises(LattigoError) as info:
        client.set_note(A, "note", "x" * 10)
    assert str(info.value) == f"PUT v2/devices/{A}/note (device {A}): LattigoError: Error: note too long"
    assert audit(client) == [
        {
            "method": "PUT",
            "endpoint": "v2/devices/:device_name/note",
            "devices": [A],
            "outcome": "error",
            "status": 200,
            "failures": {A: "Error: note too long"},
            "detail": f"LattigoError: {info.value}",
            "field_name": "note",
        }
    ]


def test_set_note_http_error_records_the_error(stub: Stub, make: MakeClient) -> None:
    stub.handler = lambda req: (404, {}, {"error": "Device not found"})
    client = make()
    with pytest.raises(LattigoError) as info:
        client.set_note(A, "note", "x")
    assert audit(client) == [
        {
            "method": "PUT",
            "endpoint": "v2/devices/:device_name/note",
            "devices": [A],
            "outcome": "error",
            "status": 404,
            "detail": f"NotFound: {info.value}",
            "field_name": "note",
        }
    ]


def test_cellular_locate_ok_and_refused(stub: Stub, make: MakeClient) -> None:
    answers = iter([{A: {"lat": 1.5, "lng": 2.5}}, {B: "Error: not supported"}])
    stub.handler = lambda req: (200, {}, next(answers))
    client = make()
    assert client.cellular_locate(A) == {"lat": 1.5, "lng": 2.5}
    with pytest.raises(LattigoError) as info:
        client.cellular_locate(B)
    assert sent(stub) == [
        ("POST", f"/v2/devices/{A}/cellular_locate", {"id_type": "iccid"}),
        ("POST", f"/v2/devices/{B}/cellular_locate", {"id_type": "iccid"}),
    ]
    endpoint = "v2/devices/:device_name/cellular_locate"
    assert audit(client) == [
        {"method": "POST", "endpoint": endpoint, "devices": [A], "outcome": "ok", "status": 200},
        {
            "method": "POST",
            "endpoint": endpoint,
            "devices": [B],
            "outcome": "error",
            "status": 200,
            "failures": {B: "Error: not supported"},
            "detail": f"LattigoError: {info.value}",
        },
    ]


def test_activation_partial_then_5xx_recovered(stub: Stub, make: MakeClient) -> None:
    posts = {"n": 0}

    def handler(req: StubRequest) -> Reply:
        if req.path.endswith("activation_request"):
            posts["n"] += 1
            if posts["n"] == 1:
                row = {"device_index": 1, "error": '{"iccid":["has already been taken"]}', "input": {"iccid": B}}
                return 422, {}, {"processed": [{"iccid": A}], "unprocessed": [row]}
            if posts["n"] == 2:
                return 503, {}, {"error": "maintenance"}
            return 200, {}, {"processed": [{"iccid": C}], "unprocessed": []}
        return 404, {}, {"error": "Device not found"}

    stub.handler = handler
    client = make(chunk_size=2)
    result = client.activate([ActivationRow(A, IMEI), ActivationRow(B, IMEI), ActivationRow(C, IMEI)], "plan")
    assert result.accepted == [A, C] and result.rejected == {B: "iccid: has already been taken"}
    assert result.resent == [C]
    assert [(m, p) for m, p, _ in sent(stub)] == [
        ("POST", f"/{OPS}/activation_request"),
        ("POST", f"/{OPS}/activation_request"),
        ("GET", f"/v2/devices/{C}"),
        ("POST", f"/{OPS}/activation_request"),
    ]
    endpoint = f"{OPS}/activation_request"
    lines, plan = audit(client), {"rate_plan_name": "plan"}
    error = lines[1]["detail"]
    assert error.startswith("ServerError: POST v2/device_operations/activation_request") and "HTTP 503" in error
    assert lines == [
        {
            "method": "POST",
            "endpoint": endpoint,
            "devices": [A, B],
            "outcome": "partial",
            "status": 422,
            "failures": {B: "iccid: has already been taken"},
            "rate_plan_name": "plan",
        },
        {
            "method": "POST",
            "endpoint": endpoint,
            "devices": [C],
            "outcome": "error",
            "status": 503,
            "detail": error,
            "rate_plan_name": "plan",
        },
        {"method": "POST", "endpoint": endpoint, "devices": [C], "outcome": "ok", "status": 200, **plan},
    ]


def test_activation_refused_whole(stub: Stub, make: MakeClient) -> None:
    stub.handler = lambda req: (422, {}, {"error": "Rate plan not found"})
    client = make()
    result = client.activate([ActivationRow(A, IMEI), ActivationRow(B, IMEI)], "nope")
    assert result.rejected == {A: "Rate plan not found", B: "Rate plan not found"}
    assert audit(client) == [
        {
            "method": "POST",
            "endpoint": f"{OPS}/activation_request",
            "devices": [A, B],
            "outcome": "rejected",
            "status": 422,
            "failures": {A: "Rate plan not found", B: "Rate plan not found"},
            "rate_plan_name": "nope",
        }
    ]


def test_bulk_chunk_failing_alone_and_partial(stub: Stub, make: MakeClient) -> None:
    def handler(req: StubRequest) -> Reply:
        names = req.body["device_names"]
        if "1" in names:
            return 400, {}, {"error": "bad chunk"}
        return 200, {}, {"change_status": {"3": "Success", "4": "Error: Device does not exist."}}

    stub.handler = handler
    client = make(chunk_size=2)
    result = client.change_cost_center(["1", "2", "3", "4"], "CC-9")
    assert result.succeeded == ["3"]
    assert sent(stub) == [
        ("PUT", f"/{OPS}/change_cost_center", {"device_names": ["1", "2"], "cost_center": "CC-9"}),
        ("PUT", f"/{OPS}/change_cost_center", {"device_names": ["3", "4"], "cost_center": "CC-9"}),
    ]
    lines = audit(client)
    chunk_error = lines[0]["detail"]
    assert chunk_error.startswith(f"BadRequest: PUT {OPS}/change_cost_center") and "HTTP 400" in chunk_error
    assert result.failed == {"1": chunk_error, "2": chunk_error, "4": "Error: Device does not exist."}
    assert lines == [
        {
            "method": "PUT",
            "endpoint": f"{OPS}/change_cost_center",
            "devices": ["1", "2"],
            "outcome": "failed",
            "status": 400,
            "failures": {"1": chunk_error, "2": chunk_error},
            "detail": chunk_error,
        },
        {
            "method": "PUT",
            "endpoint": f"{OPS}/change_cost_center",
            "devices": ["3", "4"],
            "outcome": "partial",
            "status": 200,
            "failures": {"4": "Error: Device does not exist."},
        },
    ]


def test_bulk_auth_failure_stops_with_the_partial_result(stub: Stub, make: MakeClient) -> None:
    def handler(req: StubRequest) -> Reply:
        if "5" in req.body["device_names"]:
            return 401, {}, {"error": "Unauthorized"}
        return 200, {}, {"status": {n: "Success" for n in req.body["device_names"]}}

    stub.handler = handler
    client = make(chunk_size=1)
    with pytest.raises(AuthenticationError) as info:
        client.set_usage_limit(["4", "5", "6"], 1024, action="email")
    assert info.value.partial_result.succeeded == ["4"]
    assert sent(stub) == [
        ("POST", f"/{OPS}/set_usage_limit", {"device_names": ["4"], "kb_limit": 1024, "action": "email"}),
        ("POST", f"/{OPS}/set_usage_limit", {"device_names": ["5"], "kb_limit": 1024, "action": "email"}),
    ]
    assert audit(client) == [
        {"method": "POST", "endpoint": f"{OPS}/set_usage_limit", "devices": ["4"], "outcome": "ok", "status": 200},
        {
            "method": "POST",
            "endpoint": f"{OPS}/set_usage_limit",
            "devices": ["5"],
            "outcome": "error",
            "status": 401,
            "detail": f"AuthenticationError: {info.value}",
        },
    ]


def test_bulk_answer_without_statuses_fails_every_device(stub: Stub, make: MakeClient) -> None:
    stub.handler = lambda req: (200, {}, {"something": "else"})
    client = make()
    result = client.remove_usage_limit(["7"])
    reason = result.failed["7"]
    assert reason.startswith("UnexpectedAnswer: POST v2/device_operations/remove_usage_limit")
    assert "'status' is a required property" in reason and result.succeeded == []
    assert audit(client) == [
        {
            "method": "POST",
            "endpoint": f"{OPS}/remove_usage_limit",
            "devices": ["7"],
            "outcome": "failed",
            "status": 200,
            "failures": {"7": reason},
            "detail": reason,
        }
    ]


def test_suspend_no_billing_and_upload_request(stub: Stub, make: MakeClient) -> None:
    def handler(req: StubRequest) -> Reply:
        if req.path.endswith("suspend_no_billing_request"):
            return 200, {}, {"processed": [{"iccid": A}], "unprocessed": []}
        row = {"device_index": 0, "error": '{"imei":["is invalid"]}', "input": {"imei": "1"}}
        return 422, {}, {"processed": [], "unprocessed": [row]}

    stub.handler = handler
    client = make()
    assert client.suspend_no_billing([(A, IMEI), (A, IMEI)]).succeeded == [A]
    upload = client.upload_request(["1", "2"], "ops@example.com", "SKU-1")
    assert upload.succeeded == ["2"] and upload.failed == {"1": "imei: is invalid"}
    assert sent(stub) == [
        ("POST", f"/{OPS}/suspend_no_billing_request", {"suspension_requests": [{"imei": IMEI, "iccid": A}]}),
        (
            "POST",
            f"/{OPS}/upload_request",
            {"upload_email": "ops@example.com", "upload_sku": "SKU-1", "upload_ids": [{"imei": "1"}, {"imei": "2"}]},
        ),
    ]
    assert audit(client) == [
        {
            "method": "POST",
            "endpoint": f"{OPS}/suspend_no_billing_request",
            "devices": [A],
            "outcome": "ok",
            "status": 200,
        },
        {
            "method": "POST",
            "endpoint": f"{OPS}/upload_request",
            "devices": ["1", "2"],
            "outcome": "partial",
            "status": 422,
            "failures": {"1": "imei: is invalid"},
        },
    ]


def test_upload_request_error_carries_the_partial_result(stub: Stub, make: MakeClient) -> None:
    def handler(req: StubRequest) -> Reply:
        if req.body["upload_ids"][0]["imei"] == "1":
            return 200, {}, {"processed": [{"imei": "1"}], "unprocessed": []}
        return 500, {}, {"error": "boom"}

    stub.handler = handler
    client = make(chunk_size=1)
    with pytest.raises(LattigoError) as info:
        client.upload_request(["1", "2"], "ops@example.com", "SKU-1")
    assert info.value.partial_result.succeeded == ["1"]
    assert [line["outcome"] for line in audit(client)] == ["ok", "error"]
    assert audit(client)[1]["status"] == 500


def test_a_call_that_cannot_be_recorded_is_not_sent(stub: Stub, tmp_path: Path) -> None:
    """A full disk under the audit log: the call is refused before it is sent (AuditLogError), and the run
    stops on it; nothing reaches the API unrecorded."""
    from lattigo_fleet.client import AuditLogError

    client = LattigoClient(stub.base_url, KEY, SECRET, sleep=lambda s: None, audit_log=tmp_path / "audit.jsonl")
    client.audit.min_free_bytes = 1 << 62  # more room than any disk has: the disk is "full"
    with pytest.raises(AuditLogError, match="audit log"):
        client.set_note(A, "note", "hello")
    assert sent(stub) == []


def test_a_record_that_fails_to_write_after_the_call_stops_the_run(stub: Stub) -> None:
    """/dev/full takes the open and fails every write: the call went out, its record could not be written, so
    the error says so (the run stops) instead of the record being lost in silence."""
    from lattigo_fleet.client import AuditLogError

    stub.handler = lambda req: (200, {}, {A: "Success"})
    client = LattigoClient(stub.base_url, KEY, SECRET, sleep=lambda s: None, audit_log="/dev/full")
    client.audit.min_free_bytes = 0
    with pytest.raises(AuditLogError, match="could not be recorded"):
        client.set_note(A, "note", "hello")
