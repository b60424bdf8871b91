"""The desired-state types: to_inputs/from_inputs round trips (also through what Pulumi does to
values), managed fields, activation problems, the blast-radius limit, account checks, the CLI hook."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping
from typing import Any

import pytest

from lattigo_fleet.fleetfile import (
    UNMANAGED,
    DesiredSim,
    FleetError,
    Issue,
    Policy,
    UsageLimit,
    main_validate,
    validate_against_account,
)
from tests.fleetfile.conftest import LoadFleet, WriteFleet
from tests.fleetfile.helpers import iccid, imei

A = iccid(0)
LIMIT = UsageLimit(51200, "suspend", ("ops-oncall",))

SIMS = [
    pytest.param(DesiredSim(iccid=A), id="bare"),
    pytest.param(
        DesiredSim(
            iccid=A,
            imei=imei(0),
            name="truck-0042",
            state="suspended",
            rate_plan="P",
            region_code="02134",
            device_sku="SKU",
            cost_center="logistics",
            notes={"note": "a", "note3": "d"},
            usage_limit=LIMIT,
        ),
        id="everything",
    ),
    pytest.param(DesiredSim(iccid=A, usage_limit=None), id="no-limit"),
    pytest.param(DesiredSim(iccid=A, cost_center="", notes={"note1": ""}), id="empty-strings-managed"),
    pytest.param(DesiredSim(iccid=A, usage_limit=UsageLimit(1, "email", ("b", "a"))), id="email-limit"),
    pytest.param(DesiredSim(iccid=A, state="suspended_no_billing", imei=imei(1)), id="no-billing"),
    pytest.param(DesiredSim(iccid=A, cost_center="c", ignore_changes=("state", "cost_center")), id="ignore-changes"),
]


def pulumi_like(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a Pulumi round trip may do to inputs: drop None values and empty dicts, numbers as floats."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if v is not None and v != {}}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    out: dict[str, Any] = walk(inputs)
    return out


@pytest.mark.parametrize("sim", SIMS)
def test_to_inputs_from_inputs_round_trip(sim: DesiredSim) -> None:
    inputs = sim.to_inputs()
    assert json.loads(json.dumps(inputs)) == inputs  # JSON-able
    assert DesiredSim.from_inputs(inputs) == sim
    assert DesiredSim.from_inputs(json.loads(json.dumps(inputs))) == sim
    assert DesiredSim.from_inputs(pulumi_like(inputs)) == sim
    back = DesiredSim.from_inputs(pulumi_like(inputs))
    assert back.usage_limit is UNMANAGED if sim.usage_limit is UNMANAGED else back.usage_limit == sim.usage_limit
    assert pickle.loads(pickle.dumps(sim)) == sim
    assert pickle.loads(pickle.dumps(sim)).usage_limit is sim.usage_limit or sim.usage_limit is not UNMANAGED


def test_to_inputs_exact() -> None:
    """Only what fleet.yaml declares, so that a reviewer's diff shows account fields and nothing else."""
    sim = DesiredSim(iccid=A, imei=imei(0), group="g", rate_plan="P", notes={"note2": "x"}, usage_limit=None)
    assert sim.to_inputs() == {
        "iccid": A,
        "imei": imei(0),
        "name": A,
        "state": "active",
        "rate_plan": "P",
        "notes": {"note2": "x"},
        "usage_limit": "none",
    }
    ignoring = DesiredSim(iccid=A, cost_center="ops", ignore_changes=("notes", "state"))
    assert ignoring.to_inputs() == {
        "iccid": A,
        "name": A,
        "state": "active",
        "cost_center": "ops",
        "ignore_changes": ["state", "notes"],
    }


def test_from_inputs_without_managed_infers_it() -> None:
    sim = DesiredSim.from_inputs({"iccid": A, "cost_center": "c", "notes": {"note": ""}})
    assert sim == DesiredSim(iccid=A, cost_center="c", notes={"note": ""})
    assert sim.usage_limit is UNMANAGED


def test_from_inputs_reads_the_inputs_of_earlier_versions() -> None:
    """State written before inputs were trimmed: a `managed` list, None values, None for "no limit"."""
    legacy = {
        "iccid": A,
        "name": A,
        "state": "active",
        "imei": imei(0),
        "rate_plan": None,
        "cost_center": None,
        "notes": {"note2": "x"},
        "usage_limit": None,
        "managed": ["imei", "notes.note2", "state", "usage_limit"],
    }
    assert DesiredSim.from_inputs(legacy) == DesiredSim(iccid=A, imei=imei(0), notes={"note2": "x"}, usage_limit=None)


@pytest.mark.parametrize("bad", [None, {}, {"name": "x"}, "89014103211118510720"])
def test_from_inputs_rejects_non_sims(bad: Any) -> None:
    with pytest.raises(ValueError):
        DesiredSim.from_inputs(bad)


MANAGED = [
    pytest.param(DesiredSim(iccid=A), ("state",), id="only-state"),
    pytest.param(DesiredSim(iccid=A, usage_limit=None), ("state", "usage_limit"), id="no-limit-is-managed"),
    pytest.param(
        DesiredSim(iccid=A, cost_center="", notes={"note3": "", "note": "x"}),
        ("cost_center", "notes.note", "notes.note3", "state"),
        id="empty-values-managed",
    ),
]


@pytest.mark.parametrize("sim, expected", MANAGED)
def test_managed(sim: DesiredSim, expected: tuple[str, ...]) -> None:
    assert sim.managed == expected
    for name in expected:
        assert sim.is_managed(name)
    assert sim.is_managed("iccid") and sim.is_managed("name")
    assert not sim.is_managed("region_code")
    assert sim.is_managed("notes") == bool(sim.notes)
    assert sim.is_managed("note3") == ("notes.note3" in expected)


ACTIVATION = [
    pytest.param(DesiredSim(iccid=A, imei=imei(0), rate_plan="P"), [], id="ready"),
    pytest.param(DesiredSim(iccid=A, device_sku="SKU", rate_plan="P"), [], id="sku-instead-of-imei"),
    pytest.param(DesiredSim(iccid=A, imei=imei(0)), ["no rate_plan"], id="no-rate-plan"),
    pytest.param(DesiredSim(iccid=A, rate_plan="P"), ["no imei"], id="no-imei"),
    pytest.param(DesiredSim(iccid=A), ["no rate_plan", "no imei"], id="neither"),
]


@pytest.mark.parametrize("sim, expected", ACTIVATION)
def test_activation_problems(sim: DesiredSim, expected: list[str]) -> None:
    problems = sim.activation_problems()
    assert [p.split(":")[0] for p in problems] == expected


def test_desired_sim_normalises_and_checks() -> None:
    sim = DesiredSim(iccid=A, notes={"note3": "c", "note": "a"})
    assert list(sim.notes) == ["note", "note3"]
    assert sim.name == A
    assert sim == DesiredSim(iccid=A, group="other", notes={"note": "a", "note3": "c"})  # group is provenance
    assert len({sim, DesiredSim(iccid=A, notes={"note": "a", "note3": "c"})}) == 1
    for kwargs in ({"state": "on"}, {"notes": {"note9": "x"}}, {"usage_limit": {"kb_limit": 1}}, {"imei": 1}):
        with pytest.raises(ValueError):
            DesiredSim(iccid=A, **kwargs)
    with pytest.raises(ValueError):
        DesiredSim(iccid="")


def test_usage_limit() -> None:
    # a float and a list, as they come back through Pulumi: normalised to an int and a sorted tuple
    limit = UsageLimit(10.0, "email", ["b", "a", "b"])  # type: ignore[arg-type]
    assert (limit.kb_limit, type(limit.kb_limit), limit.usernames) == (10, int, ("a", "b"))
    assert limit.to_dict() == {"kb_limit": 10, "action": "email", "usernames": ["a", "b"]}
    assert UsageLimit.from_dict(limit.to_dict()) == limit
    assert UsageLimit.from_dict({"kb_limit": 5, "action": "suspend"}) == UsageLimit(5, "suspend")
    for args in ((0, "suspend"), (1.5, "suspend"), (True, "suspend"), (5, "alarm"), (5, "email"), (5, "email", "ab")):
        with pytest.raises(ValueError):
            UsageLimit(*args)


LIMITS = [
    # (policy, fleet size, limit)
    (Policy(), 0, 0),
    (Policy(), 1, 1),  # 10% rounded up: a small fleet may still suspend one SIM
    (Policy(), 5, 1),
    (Policy(), 10, 1),
    (Policy(), 11, 2),
    (Policy(), 1000, 100),
    (Policy(max_changes_percent=7), 100, 7),  # no float trap (0.07 * 100 = 7.000000000000001)
    (Policy(max_changes_percent=12.5), 8, 1),
    (Policy(max_changes_percent=12.5), 9, 2),
    (Policy(max_changes_percent=0), 50, 0),
    (Policy(max_changes_percent=100), 7, 7),
    (Policy(max_changes=5), 1, 5),
    (Policy(max_changes=0), 1000, 0),
]


@pytest.mark.parametrize("policy, size, expected", LIMITS)
def test_policy_limit_for(policy: Policy, size: int, expected: int) -> None:
    assert policy.limit_for(size) == expected


def test_policy_defaults_and_checks() -> None:
    assert Policy() == Policy("retain", None, 10.0)
    assert Policy(max_changes=3).max_changes_percent is None
    assert Policy().describe() == "10% of the fleet" and Policy(max_changes=1).describe() == "1 SIM"
    for kwargs in ({"on_remove": "delete"}, {"max_changes": -1}, {"max_changes_percent": 101}):
        with pytest.raises(ValueError):
            Policy(**kwargs)


def test_issue_and_fleet_error_text() -> None:
    one = Issue("fleet.yaml", 12, 5, "sims[3].imei", "must be 15 digits (IMEI) or 16 (IMEISV)")
    two = Issue("fleet.yaml", 1, 1, "", "file is empty")
    assert str(one) == "fleet.yaml:12:5: sims[3].imei: must be 15 digits (IMEI) or 16 (IMEISV)"
    assert str(two) == "fleet.yaml:1:1: file is empty"
    error = FleetError([one, two])
    assert error.issues == [one, two]
    assert str(error) == f"{one}\n{two}"
    assert pickle.loads(pickle.dumps(error)).issues == [one, two]


ACCOUNT_FLEET = {
    "fleet.yaml": (
        "version: 1\n"  # 1
        "x-lim: &lim {kb_limit: 5, action: email, usernames: [ops, nobody]}\n"  # 2
        "defaults:\n"  # 3
        "  rate_plan: Old Plan\n"  # 4
        "groups:\n"  # 5
        "  g: {rate_plan: ACME 5mb, usage_limit: *lim}\n"  # 6
        "  unused: {rate_plan: Gone}\n"  # 7
        "sims:\n"  # 8
        f'  - {{iccid: "{iccid(0)}", usage_limit: *lim}}\n'  # 9
        f'  - {{iccid: "{iccid(1)}", group: g}}\n'  # 10
        f'  - {{iccid: "{iccid(2)}", usage_limit: {{kb_limit: 1, action: suspend, usernames: [opps]}}}}\n'  # 11
    ),
    "fleet.d/a.yaml": f'sims:\n  - iccid: "{iccid(3)}"\n    rate_plan: ACME 1mb\n',
}


def test_validate_against_account(load: LoadFleet) -> None:
    fleet = load(ACCOUNT_FLEET)
    got = validate_against_account(fleet, rate_plans={"ACME 5mb", "Old Plan"}, usernames={"ops"})
    assert [(f"{i.file}:{i.line}:{i.column}", i.field) for i in got] == [
        # each value once, where it is written, however many SIMs use it
        ("fleet.yaml:2:59", "groups.g.usage_limit.usernames[1]"),
        ("fleet.yaml:7:23", "groups.unused.rate_plan"),
        ("fleet.yaml:11:93", "sims[2].usage_limit.usernames[0]"),
        ("fleet.d/a.yaml:3:16", "sims[0].rate_plan"),
    ]
    assert 'unknown user "nobody"' in got[0].message and "silently ignore" in got[0].message
    assert 'unknown rate plan "Gone": v2/rate_plans does not list it' in got[1].message
    assert "(did you mean 'ops'?)" in got[2].message
    assert "(did you mean 'ACME 5mb'?)" in got[3].message
    assert (
        validate_against_account(fleet, {"ACME 5mb", "ACME 1mb", "Old Plan", "Gone"}, {"ops", "nobody", "opps"}) == []
    )


def test_validate_against_empty_account(load: LoadFleet) -> None:
    fleet = load(ACCOUNT_FLEET)
    got = validate_against_account(fleet, set(), set())
    assert len(got) == 7  # 4 rate plans + 3 usernames, each once (nobody and ops behind one anchor)
    assert "the account has no rate plans" in next(i for i in got if i.field == "defaults.rate_plan").message


def test_main_validate_ok(write_fleet: WriteFleet) -> None:
    path = write_fleet({"fleet.yaml": "version: 1\nsims:\n" + f'  - iccid: "{iccid(0)}"\n'})
    out = io.StringIO()
    assert main_validate(path, out) == 0
    assert out.getvalue() == "fleet.yaml: 1 SIM OK\n"
    write_fleet({"fleet.d/a.yaml": f'sims:\n  - iccid: "{iccid(1)}"\n'})
    out = io.StringIO()
    assert main_validate(path, out=out) == 0
    assert out.getvalue() == "fleet.yaml: 2 SIMs OK\n"


def test_main_validate_errors(write_fleet: WriteFleet, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_fleet("version: 3\nsims: [{iccid: 1}]\n")
    assert main_validate(path) == 1
    assert capsys.readouterr().out.splitlines() == [
        "fleet.yaml:1:10: version: unsupported version 3: this lattigo-fleet reads version 1 only",
        'fleet.yaml:2:16: sims[0].iccid: must be a string, not the number 1: quote it, "1" '
        "(YAML reads unquoted digits as a number, which drops leading zeros)",
    ]
