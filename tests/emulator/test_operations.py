"""v2/device_operations: activation, suspension without billing, cost center, SIM state, usage limits,
SMS, upload, in both encodings, with the documents' own examples as fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.emulator.helpers import Api, fixture, iccid, imei, utc_today

ACT = "/v2/device_operations/activation_request"


def test_activation_example_with_422_response(api: Api, admin: AdminClient, encoding: str) -> None:
    """The documented request; the middle ICCID is not in inventory, so the answer is the documented 422."""
    admin.add_sims([{"iccid": "89222222222222222222"}, {"iccid": "89666666666666666666"}])
    resp = api.post(ACT, fixture("activation_request.json"), encoding)
    assert resp.status_code == 422
    expected = fixture("activation_response_422.json")
    body = resp.json()
    assert body["processed"] == expected["processed"]
    assert len(body["unprocessed"]) == 1
    row, doc_row = body["unprocessed"][0], expected["unprocessed"][0]
    assert row["device_index"] == doc_row["device_index"] == 1
    assert row["input"] == doc_row["input"]
    assert isinstance(row["error"], str)  # a JSON-encoded hash of arrays, as documented
    error = json.loads(row["error"])
    assert list(error) == list(json.loads(doc_row["error"])) == ["iccid"]
    assert all(isinstance(m, str) and m for m in error["iccid"])
    sims = admin.sims()
    assert sims["89222222222222222222"]["state"] == "active"  # activation_delay is 0 in tests
    assert sims["89666666666666666666"]["note3"] == "Note fields do not need to be filled in any particular order."
    assert sims["89666666666666666666"]["rate_plan"] == "ACME Co 5mb Rate Plan"


def test_activation_all_processed_is_200(api: Api, admin: AdminClient, encoding: str) -> None:
    admin.add_sims([{"iccid": i} for i in ("89222222222222222222", "89444444444444444444", "89666666666666666666")])
    resp = api.post(ACT, fixture("activation_request_newer_edition.json"), encoding)  # a 16-digit IMEI too
    assert resp.status_code == 200
    assert resp.json()["unprocessed"] == [] and len(resp.json()["processed"]) == 3
    names = api.get("/v2/devices").json()
    assert len(names) == 3
    assert api.get("/v2/devices/89666666666666666666", params={"id_type": "iccid"}).json()["imei"] == (
        "5555555555555555"
    )


def test_activation_on_another_plan_single(api: Api, admin: AdminClient) -> None:
    admin.add_sims([{"iccid": "89222222222222222222"}])
    resp = api.post(ACT, fixture("activation_request_single_10mb.json"))
    assert resp.status_code == 200
    assert admin.sims()["89222222222222222222"]["rate_plan"] == "ACME Co 10MB Plan"


def test_activation_is_asynchronous(fresh_emulator: EmulatorServer, api: Api, admin: AdminClient) -> None:
    admin.post("reset", {"activation_delay": 30})
    admin.add_sims([{"iccid": iccid(1)}])
    resp = api.post(
        ACT, {"rate_plan_name": "ACME Co 5mb Rate Plan", "activation_requests": [{"iccid": iccid(1), "imei": imei(1)}]}
    )
    assert resp.status_code == 200
    name = api.get("/v2/devices").json()[0]
    device = api.get(f"/v2/devices/{name}").json()
    assert device["state"] == "pending_activation"
    assert api.get("/v2/devices", params={"state": "pending_activation"}).json() == [name]
    admin.post("clock", {"advance_seconds": 29})
    assert api.get(f"/v2/devices/{name}").json()["state"] == "pending_activation"
    admin.post("clock", {"advance_seconds": 2})
    device = api.get(f"/v2/devices/{name}").json()
    assert device["state"] == "active" and device["last_activation_date"] and device["msisdn"]
    # and tick finishes queued work at once
    admin.add_sims([{"iccid": iccid(2)}])
    api.post(
        ACT, {"rate_plan_name": "ACME Co 5mb Rate Plan", "activation_requests": [{"iccid": iccid(2), "imei": imei(2)}]}
    )
    assert admin.sims()[iccid(2)]["state"] == "pending_activation"
    assert admin.post("tick")["ran"] >= 1
    assert admin.sims()[iccid(2)]["state"] == "active"


def test_activation_row_errors(api: Api, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    make_sims(1, state="active", start=1)
    admin.add_sims([{"iccid": iccid(2)}, {"iccid": iccid(3)}, {"iccid": iccid(4)}])
    rows = [
        {"iccid": iccid(1), "imei": imei(1)},  # already active
        {"iccid": iccid(2), "imei": "1234"},  # bad IMEI
        {"iccid": iccid(99), "imei": imei(99)},  # not in inventory
        {"iccid": iccid(3), "imei": imei(3)},  # fine
        {"iccid": iccid(3), "imei": imei(3)},  # duplicated
        {"iccid": "", "imei": imei(5)},  # blank
        {"iccid": iccid(4), "imei": imei(4), "note": "x" * 251},  # note too long
        {"iccid": "89019900000000000017", "imei": imei(6)},  # another account's SIM
    ]
    resp = api.post(ACT, {"rate_plan_name": "ACME Co 5mb Rate Plan", "activation_requests": rows})
    assert resp.status_code == 422
    body = resp.json()
    assert [p["iccid"] for p in body["processed"]] == [iccid(3)]
    errors = {u["device_index"]: json.loads(u["error"]) for u in body["unprocessed"]}
    assert set(errors) == {0, 1, 2, 4, 5, 6, 7}
    assert "already" in errors[0]["iccid"][0]
    assert "imei" in errors[1]
    assert "inventory" in errors[2]["iccid"][0]
    assert "iccid" in errors[4]
    assert errors[5]["iccid"] == ["can't be blank"]
    assert "note" in errors[6]
    assert "inventory" in errors[7]["iccid"][0]
    assert body["unprocessed"][0]["input"]["iccid"] == iccid(1)


def test_activation_unknown_plan_and_carrier_rejection(api: Api, admin: AdminClient) -> None:
    admin.add_sims([{"iccid": iccid(1)}, {"iccid": iccid(2)}])
    resp = api.post(
        ACT, {"rate_plan_name": "No Such Plan", "activation_requests": [{"iccid": iccid(1), "imei": imei(1)}]}
    )
    assert resp.status_code == 422
    assert "rate_plan_name" in json.loads(resp.json()["unprocessed"][0]["error"])
    admin.faults(unprocessed_activations=[iccid(2)])
    resp = api.post(
        ACT,
        {
            "rate_plan_name": "ACME Co 5mb Rate Plan",
            "activation_requests": [{"iccid": iccid(1), "imei": imei(1)}, {"iccid": iccid(2), "imei": imei(2)}],
        },
    )
    assert resp.status_code == 422
    assert [p["iccid"] for p in resp.json()["processed"]] == [iccid(1)]
    assert json.loads(resp.json()["unprocessed"][0]["error"]) == {"iccid": ["was rejected by the carrier"]}
    assert admin.sims()[iccid(2)]["state"] == "inventory"


def test_suspend_no_billing_example_and_queue(
    api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    resp = api.post(
        "/v2/device_operations/suspend_no_billing_request", fixture("suspend_no_billing_request.json"), encoding
    )
    assert resp.status_code == 422 and len(resp.json()["unprocessed"]) == 2
    admin.post("reset", {"activation_delay": 60})
    sims = make_sims(2) + make_sims(1, state="suspended", start=5)
    rows = [{"imei": s["imei"], "iccid": s["iccid"]} for s in sims]
    resp = api.post("/v2/device_operations/suspend_no_billing_request", {"suspension_requests": rows}, encoding)
    assert resp.status_code == 200, resp.text
    assert [p["iccid"] for p in resp.json()["processed"]] == [s["iccid"] for s in sims]
    states = {s["iccid"]: s["state"] for s in admin.sims().values()}
    assert set(states.values()) == {"pending_suspend_no_billing"}
    # asking again is idempotent
    assert (
        api.post(
            "/v2/device_operations/suspend_no_billing_request", {"suspension_requests": rows[:1]}, encoding
        ).status_code
        == 200
    )
    admin.post("tick")
    assert {s["state"] for s in admin.sims().values()} == {"suspended_no_billing"}
    name = sims[0]["device_name"]
    resp = api.put("/v2/device_operations/change_simstate", {"device_names": [name], "state": "restore"}, encoding)
    assert resp.json() == {"change_status": {name: "Success"}}
    assert admin.sims()[sims[0]["iccid"]]["state"] == "active"
    wrong_imei = api.post(
        "/v2/device_operations/suspend_no_billing_request",
        {"suspension_requests": [{"iccid": sims[1]["iccid"], "imei": "999999999999999"}]},
        encoding,
    )
    assert wrong_imei.status_code == 422 and "imei" in json.loads(wrong_imei.json()["unprocessed"][0]["error"])


def test_change_cost_center(
    api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    examples = fixture("curl_examples.json")
    resp = api.put("/v2/device_operations/change_cost_center", examples[f"change_cost_center_{encoding}"], encoding)
    assert resp.status_code == 200
    expected_names = ["123", "789"] if encoding == "json" else ["123", "456"]
    assert resp.json() == {"change_status": {n: "Error: Device does not exist." for n in expected_names}}
    sims = make_sims(2)
    names = [s["device_name"] for s in sims]
    resp = api.put(
        "/v2/device_operations/change_cost_center", {"device_names": [*names, "123"], "cost_center": "Acme"}, encoding
    )
    assert resp.json() == {
        "change_status": {names[0]: "Success", names[1]: "Success", "123": "Error: Device does not exist."}
    }
    assert {admin.sims()[s["iccid"]]["cost_center"] for s in sims} == {"Acme"}
    by_iccid = api.put(
        "/v2/device_operations/change_cost_center",
        {"device_names": [sims[0]["iccid"]], "cost_center": "West", "id_type": "iccid"},
        encoding,
    )
    assert by_iccid.json() == {"change_status": {sims[0]["iccid"]: "Success"}}


def test_change_simstate_transitions(
    api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    examples = fixture("curl_examples.json")
    resp = api.put("/v2/device_operations/change_simstate", examples[f"change_simstate_{encoding}"], encoding)
    assert resp.status_code == 200
    assert set(resp.json()["change_status"].values()) == {"Error: Device does not exist."}
    active = make_sims(1)[0]
    suspended = make_sims(1, state="suspended", start=2)[0]
    pending = make_sims(1, state="pending_activation", start=3)[0]
    names = [active["device_name"], suspended["device_name"]]
    resp = api.put("/v2/device_operations/change_simstate", {"device_names": names, "state": "suspend"}, encoding)
    assert resp.json() == {"change_status": {names[0]: "Success", names[1]: "Success"}}  # idempotent
    sims = admin.sims()
    assert sims[active["iccid"]]["state"] == "suspended" and sims[active["iccid"]]["suspended_reason"] == "api"
    resp = api.put("/v2/device_operations/change_simstate", {"device_names": names, "state": "restore"}, encoding)
    assert resp.json() == {"change_status": {names[0]: "Success", names[1]: "Success"}}
    assert {s["state"] for s in admin.sims().values() if s["iccid"] != pending["iccid"]} == {"active"}
    by_iccid = api.put(
        "/v2/device_operations/change_simstate",
        {"device_names": [active["iccid"]], "state": "suspend", "id_type": "iccid"},
        encoding,
    )
    assert by_iccid.json() == {"change_status": {active["iccid"]: "Success"}}


def test_change_simstate_refuses_impossible_transition(
    fresh_emulator: EmulatorServer, api: Api, admin: AdminClient, encoding: str
) -> None:
    admin.post("reset", {"activation_delay": 60})
    made = admin.add_sims(
        [
            {"iccid": iccid(1), "imei": imei(1), "state": "pending_activation"},
            {"iccid": iccid(2), "imei": imei(2), "state": "active"},
        ],
    )
    pending, active = made[0]["device_name"], made[1]["device_name"]
    resp = api.put(
        "/v2/device_operations/change_simstate", {"device_names": [pending, active], "state": "suspend"}, encoding
    )
    status = resp.json()["change_status"]
    assert status[active] == "Success"
    assert status[pending].startswith("Error: ") and "pending activation" in status[pending]
    assert admin.sims()[iccid(1)]["state"] == "pending_activation"


def test_usage_limits_set_remove_and_enforce(
    api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    examples = fixture("curl_examples.json")
    resp = api.post("/v2/device_operations/set_usage_limit", examples[f"set_usage_limit_{encoding}"], encoding)
    assert resp.status_code == 200
    assert set(resp.json()["status"].values()) == {"Error: Device does not exist."}
    sims = make_sims(2)
    names = [s["device_name"] for s in sims]
    resp = api.post(
        "/v2/device_operations/set_usage_limit",
        {"device_names": names, "kb_limit": 1024, "action": "suspend", "usernames": ["ops-oncall", "nobody"]},
        encoding,
    )
    assert resp.json() == {"status": {n: "Success: Device data limit is set." for n in names}}
    view = admin.sims()[sims[0]["iccid"]]
    assert view["usage_limit"] == {"kb_limit": 1024, "action": "suspend", "usernames": ["ops-oncall"]}
    # the JSON example gives no action: tolerated (email only)
    resp = api.post(
        "/v2/device_operations/set_usage_limit",
        {"device_names": names[1:], "kb_limit": 2048, "usernames": ["fleet-admin"]},
        encoding,
    )
    assert resp.status_code == 200
    assert admin.sims()[sims[1]["iccid"]]["usage_limit"]["action"] == "email"
    # enforcement: this month passes 1024 KB -> suspended (action suspend); email-only stays active
    today = utc_today().isoformat()
    for s in sims:
        admin.post("usage", {"iccid": s["iccid"], "date": today, "bytes": 3 * 1024 * 1024})
    after = admin.sims()
    assert after[sims[0]["iccid"]]["state"] == "suspended"
    assert after[sims[0]["iccid"]]["suspended_reason"] == "usage_limit"
    assert after[sims[1]["iccid"]]["state"] == "active"
    assert api.get(f"/v2/devices/{names[0]}").json()["bytes_used"] == 3 * 1024 * 1024
    # removal
    resp = api.post("/v2/device_operations/remove_usage_limit", {"device_names": [*names, "123"]}, encoding)
    assert resp.json() == {
        "status": {
            names[0]: "Success: Device data limit removed.",
            names[1]: "Success: Device data limit removed.",
            "123": "Error: Device does not exist.",
        }
    }
    assert admin.sims()[sims[0]["iccid"]]["usage_limit"] is None
    assert admin.sims()[sims[0]["iccid"]]["state"] == "suspended"  # no change without further intervention
    resp = api.post("/v2/device_operations/remove_usage_limit", examples[f"remove_usage_limit_{encoding}"], encoding)
    assert resp.status_code == 200


def test_setting_a_limit_below_current_usage_suspends(
    api: Api, admin: AdminClient, make_sims: Callable[..., list[dict[str, Any]]]
) -> None:
    sim = make_sims(1)[0]
    admin.post("usage", {"iccid": sim["iccid"], "date": utc_today().isoformat(), "bytes": 5_000_000})
    api.post(
        "/v2/device_operations/set_usage_limit",
        {"device_names": [sim["device_name"]], "kb_limit": 1000, "action": "suspend"},
    )
    assert admin.sims()[sim["iccid"]]["state"] == "suspended"


def test_send_sms(api: Api, admin: AdminClient, encoding: str, make_sims: Callable[..., list[dict[str, Any]]]) -> None:
    examples = fixture("curl_examples.json")
    resp = api.post("/v2/device_operations/send_sms", examples["send_sms_form"], "form")
    err = "Error: Device does not exist, or does not have SMS enabled."
    assert resp.json() == {"status": {"123": err, "456": err}}
    active = make_sims(1)[0]["device_name"]
    suspended = make_sims(1, state="suspended", start=2)[0]["device_name"]
    resp = api.post(
        "/v2/device_operations/send_sms", {"device_names": [active, suspended], "sms_text": "PING"}, encoding
    )
    assert resp.json() == {"status": {active: "Success: Attempting SMS Send.", suspended: err}}
    sms = api.get(f"/v2/devices/{active}/get_sms", params={"direction": "sent"}).json()
    assert [m["message_body"] for m in sms] == ["PING"]
    assert sms[0]["event_status"] == "delivered"  # activation_delay 0: delivered by the next request


def test_upload_request(api: Api, encoding: str) -> None:
    resp = api.post("/v2/device_operations/upload_request", fixture("upload_request.json"), encoding)
    assert resp.status_code == 200
    assert [p["imei"] for p in resp.json()["processed"]] == ["111111111111111", "333333333333333", "555555555555555"]
    body = fixture("upload_request.json")
    body["upload_ids"][1]["imei"] = "33333"
    resp = api.post("/v2/device_operations/upload_request", body, encoding)
    assert resp.status_code == 422
    doc = fixture("upload_response_422.json")
    got = resp.json()
    assert [set(p) for p in got["processed"]] == [set(p) for p in doc["processed"]]
    assert got["unprocessed"][0]["device_index"] == doc["unprocessed"][0]["device_index"]
    assert list(json.loads(got["unprocessed"][0]["error"])) == ["imei"]
    assert got["unprocessed"][0]["input"] == {"imei": "33333"}
