"""The provider's diff and refresh rules: only declared fields count, and refresh shows live values."""

from __future__ import annotations

from providers.sim import _observed_inputs, changed_fields

BASE = {
    "iccid": "89010000000000000001", "imei": "353000000000001", "name": "truck-1", "state": "active",
    "rate_plan": "P", "region_code": None, "device_sku": None, "cost_center": "ops",
    "notes": {"note": "a"}, "usage_limit": None,
    "managed": ["cost_center", "imei", "notes.note", "rate_plan", "state", "usage_limit"],
}


def test_no_change_when_declared_fields_match_even_if_outputs_carry_more():
    olds = {**BASE, "device_name": "36500", "live_state": "active", "msisdn": "1555"}
    assert changed_fields(olds, dict(BASE)) == []


def test_each_declared_field_is_named():
    news = {**BASE, "cost_center": "logistics", "notes": {"note": "b"}, "state": "suspended",
            "usage_limit": {"kb_limit": 1, "action": "suspend", "usernames": []}}
    assert changed_fields(BASE, news) == ["state", "cost_center", "notes", "usage_limit"]


def test_unmanaged_fields_never_diff():
    news = {**BASE, "cost_center": None, "managed": [m for m in BASE["managed"] if m != "cost_center"]}
    olds = {**BASE, "managed": news["managed"], "cost_center": "whatever-live-says"}
    assert changed_fields(olds, news) == []


def test_refresh_takes_live_values_but_keeps_write_only_ones():
    live = {"imei": "353000000000001", "state": "suspended", "cost_center": "rogue", "note": "edited",
            "note1": "not managed"}
    stored = {**BASE, "usage_limit": {"kb_limit": 5, "action": "suspend", "usernames": ["ops"]}}
    observed = _observed_inputs(stored, live)
    assert observed["state"] == "suspended"
    assert observed["cost_center"] == "rogue"
    assert observed["notes"] == {"note": "edited"}  # only the managed note fields
    assert observed["usage_limit"] == stored["usage_limit"]  # limits cannot be read back
    assert observed["rate_plan"] == "P"
    assert changed_fields(observed, BASE) == ["state", "cost_center", "notes", "usage_limit"]


def test_a_sim_on_its_way_to_the_declared_state_is_not_drift():
    stored = {**BASE, "state": "suspended_no_billing"}
    observed = _observed_inputs(stored, {"imei": BASE["imei"], "state": "pending_suspend_no_billing",
                                         "cost_center": "ops", "note": "a"})
    assert observed["state"] == "suspended_no_billing"
    other = _observed_inputs(BASE, {"imei": BASE["imei"], "state": "pending_suspend_no_billing",
                                    "cost_center": "ops", "note": "a"})
    assert other["state"] == "pending_suspend_no_billing"  # heading somewhere else than declared: shown
