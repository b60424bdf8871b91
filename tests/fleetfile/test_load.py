"""Valid fleets: precedence (SIM over group over defaults), anchors and merge keys, fleet.d, policy,
and where every value comes from (source_of)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet.fleetfile import (
    UNMANAGED,
    DesiredSim,
    Location,
    Policy,
    UsageLimit,
    load_fleet,
)
from tests.fleetfile.conftest import LoadFleet, WriteFleet
from tests.fleetfile.helpers import iccid

FIXTURES = Path(__file__).parent / "fixtures"
V = "version: 1\n"
A, B, C = iccid(0), iccid(1), iccid(2)


def test_ok_fixture_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "ok")
    fleet = load_fleet("fleet.yaml")
    oncall = UsageLimit(51200, "suspend", ("ops-oncall",))
    footer = {"note3": "managed by lattigo-fleet"}
    assert fleet.sims == [
        DesiredSim(
            iccid="89014103211118510720",
            imei="356938035643809",
            name="truck-0042",
            group="trucks-east",
            state="active",
            rate_plan="ACME Co 5mb Rate Plan",
            cost_center="logistics",
            notes={"note": "east fleet", "note1": "driver: Ana", **footer},
            usage_limit=oncall,
        ),
        DesiredSim(
            iccid="89014103211118510721",
            imei="356938035643817",
            name="truck-0043",
            group="trucks-east",
            rate_plan="ACME Co 5mb Rate Plan",
            cost_center="logistics",
            notes={"note": "east fleet", **footer},
            usage_limit=UsageLimit(102400, "suspend", ("ops-oncall",)),  # merge key over the anchor
        ),
        DesiredSim(
            iccid="8901410321111851072",
            imei="3569380356438250",
            group="spares",
            state="suspended_no_billing",
            rate_plan="ACME Co 5mb Rate Plan",
            cost_center="",
            notes=footer,
            usage_limit=None,
        ),
        DesiredSim(
            iccid="89014103211118510730",
            imei="490154203237518",
            name="sensor-01",
            group="sensors",
            rate_plan="ACME Co 1mb Rate Plan",
            region_code="02134",
            notes={"note": "", "note3": ""},
        ),
        DesiredSim(
            iccid="89014103211118510731",
            device_sku="XYZ000000012345",
            name="sensor-02",
            group="trucks-east",
            state="suspended",
            rate_plan="ACME Co 5mb Rate Plan",
            cost_center="logistics",
            notes={"note": "east fleet", **footer},
            usage_limit=oncall,
        ),
        DesiredSim(
            iccid="89014103211118510740",
            name="lab-bench",
            rate_plan="ACME Co 5mb Rate Plan",
            notes=footer,
            usage_limit=UsageLimit(1024, "email", ("ops-oncall", "qa")),
        ),
    ]
    assert [s.group for s in fleet.sims] == ["trucks-east", "trucks-east", "spares", "sensors", "trucks-east", None]
    assert fleet.sims[2].name == "8901410321111851072"  # the name defaults to the ICCID
    assert fleet.files == ["fleet.yaml", "fleet.d/10-sensors.yaml", "fleet.d/20-lab.yaml"]
    assert fleet.policy == Policy("retain", max_changes_percent=10.0)
    assert fleet.by_iccid["89014103211118510731"] is fleet.sims[4]
    assert fleet.by_name["lab-bench"] is fleet.sims[5]
    assert len(fleet) == 6


def _fleet(defaults: dict[str, Any] | None, group: dict[str, Any] | None, sim: dict[str, Any] | None) -> str:
    """A fleet of one SIM in group g; each level written as a YAML flow mapping (JSON), or left out."""
    text = V
    if defaults is not None:
        text += f"defaults: {json.dumps(defaults)}\n"
    if group is not None:
        text += f"groups:\n  g: {json.dumps(group)}\n"
    entry = {"iccid": A, **({"group": "g"} if group is not None else {}), **(sim or {})}
    return text + f"sims:\n  - {json.dumps(entry)}\n"


L1 = {"kb_limit": 10, "action": "email", "usernames": ["a"]}
L2 = {"kb_limit": 20, "action": "suspend"}

PRECEDENCE = [
    # (defaults, group, sim) → attribute, expected value
    pytest.param(None, None, None, "state", "active", id="state-defaults-to-active"),
    pytest.param({"state": "suspended"}, None, None, "state", "suspended", id="state-from-defaults"),
    pytest.param(
        {"state": "suspended"},
        {"state": "suspended_no_billing"},
        None,
        "state",
        "suspended_no_billing",
        id="state-group-over-defaults",
    ),
    pytest.param(
        {"state": "suspended"},
        {"state": "suspended_no_billing"},
        {"state": "active"},
        "state",
        "active",
        id="state-sim-over-group",
    ),
    pytest.param(None, None, None, "rate_plan", None, id="rate-plan-unmanaged"),
    pytest.param({"rate_plan": "D"}, {}, None, "rate_plan", "D", id="rate-plan-from-defaults-through-empty-group"),
    pytest.param({"rate_plan": "D"}, {"rate_plan": "G"}, None, "rate_plan", "G", id="rate-plan-group"),
    pytest.param({"rate_plan": "D"}, {"rate_plan": "G"}, {"rate_plan": "S"}, "rate_plan", "S", id="rate-plan-sim"),
    pytest.param({"region_code": "02134"}, None, None, "region_code", "02134", id="region-code-defaults"),
    pytest.param(None, {"device_sku": "SKU"}, None, "device_sku", "SKU", id="device-sku-group"),
    pytest.param(None, None, None, "cost_center", None, id="cost-center-unmanaged"),
    pytest.param(None, {"cost_center": "x"}, {"cost_center": ""}, "cost_center", "", id="cost-center-empty-managed"),
    pytest.param(None, None, None, "notes", {}, id="notes-unmanaged"),
    pytest.param(
        {"notes": {"note": "d", "note1": "d"}},
        {"notes": {"note1": "g", "note2": "g"}},
        {"notes": {"note2": "s"}},
        "notes",
        {"note": "d", "note1": "g", "note2": "s"},
        id="notes-merge-per-key",
    ),
    pytest.param(
        {"notes": {"note": "d"}},
        None,
        {"notes": {"note": ""}},
        "notes",
        {"note": ""},
        id="notes-empty-string-overrides",
    ),
    pytest.param(None, None, None, "usage_limit", UNMANAGED, id="usage-limit-unmanaged"),
    pytest.param(
        {"usage_limit": L1}, {}, None, "usage_limit", UsageLimit(10, "email", ("a",)), id="usage-limit-from-defaults"
    ),
    pytest.param(
        {"usage_limit": L1}, {"usage_limit": None}, None, "usage_limit", None, id="usage-limit-null-in-group-means-none"
    ),
    pytest.param(
        {"usage_limit": L1},
        {"usage_limit": None},
        {"usage_limit": L2},
        "usage_limit",
        UsageLimit(20, "suspend", ()),
        id="usage-limit-sim-over-null-group",
    ),
    pytest.param({"usage_limit": None}, None, None, "usage_limit", None, id="usage-limit-null-in-defaults"),
    pytest.param(
        {"usage_limit": L1},
        None,
        {"usage_limit": L2},
        "usage_limit",
        UsageLimit(20, "suspend", ()),
        id="usage-limit-replaced-whole-not-merged",
    ),
    pytest.param(
        None,
        None,
        {"usage_limit": {"kb_limit": 5, "action": "suspend", "usernames": ["b", "a"]}},
        "usage_limit",
        UsageLimit(5, "suspend", ("a", "b")),
        id="usernames-sorted",
    ),
    pytest.param(
        None,
        None,
        {"usage_limit": {"kb_limit": 51200.0, "action": "suspend"}},
        "usage_limit",
        UsageLimit(51200, "suspend"),
        id="kb-limit-integral-float",
    ),
    pytest.param({"ignore_changes": ["state"]}, None, None, "ignore_changes", ("state",), id="ignore-from-defaults"),
    pytest.param(
        {"ignore_changes": ["state"]},
        {"ignore_changes": ["notes", "cost_center"]},
        None,
        "ignore_changes",
        ("cost_center", "notes"),
        id="ignore-group-replaces-defaults",
    ),
    pytest.param(
        {"ignore_changes": ["state"]},
        None,
        {"ignore_changes": []},
        "ignore_changes",
        (),
        id="ignore-sim-empty-list-ignores-nothing",
    ),
    pytest.param(None, None, None, "imei", None, id="imei-absent"),
    pytest.param(None, None, {"imei": "3569380356438250"}, "imei", "3569380356438250", id="imeisv-16-digits"),
]


@pytest.mark.parametrize("defaults, group, sim, attribute, expected", PRECEDENCE)
def test_precedence(
    load: LoadFleet,
    defaults: dict[str, Any] | None,
    group: dict[str, Any] | None,
    sim: dict[str, Any] | None,
    attribute: str,
    expected: Any,
) -> None:
    (got,) = load(_fleet(defaults, group, sim)).sims
    value = getattr(got, attribute)
    assert value == expected
    assert type(value) is type(expected)
    if attribute == "usage_limit" and isinstance(value, UsageLimit):
        assert type(value.kb_limit) is int


def test_anchors_aliases_and_merge_keys(load: LoadFleet) -> None:
    fleet = load(
        V
        + "x-truck: &truck\n  rate_plan: P\n  notes: &n {note: anchored}\n"
        + "x-more: &more {cost_center: cc, state: suspended}\n"
        + "defaults: {<<: *more, state: active}\n"
        + "sims:\n"
        + f'  - <<: *truck\n    iccid: "{A}"\n'
        + f'  - <<: [*truck, *more]\n    iccid: "{B}"\n    rate_plan: Q\n'
        + f'  - iccid: "{C}"\n    notes: *n\n'
    )
    a, b, c = fleet.sims
    assert (a.rate_plan, a.notes, a.state, a.cost_center) == ("P", {"note": "anchored"}, "active", "cc")
    assert (b.rate_plan, b.state, b.cost_center) == ("Q", "suspended", "cc")
    assert (c.rate_plan, c.notes) == (None, {"note": "anchored"})


def test_extension_fields_null_sections_and_no_sims(load: LoadFleet) -> None:
    fleet = load(V + "x-anything: {whatever: [1, 2]}\ndefaults:\ngroups:\nsims:\npolicy:\n")
    assert fleet.sims == [] and fleet.policy == Policy()


def test_fleet_d_files_in_name_order_and_groups_across_files(load: LoadFleet) -> None:
    fleet = load(
        {
            "fleet.yaml": V + "groups:\n  main-g: {cost_center: m}\n" + f'sims:\n  - {{iccid: "{A}", group: d-g}}\n',
            "fleet.d/b.yaml": f'sims:\n  - {{iccid: "{C}", group: main-g}}\n',
            "fleet.d/a.yaml": "groups:\n  d-g: {cost_center: d}\n" + f'sims:\n  - {{iccid: "{B}"}}\n',
            "fleet.d/README.md": "not yaml: [",
            "fleet.d/.hidden.yaml": "not: [valid",
        }
    )
    assert [(s.iccid, s.cost_center) for s in fleet.sims] == [(A, "d"), (B, None), (C, "m")]
    assert fleet.files == ["fleet.yaml", "fleet.d/a.yaml", "fleet.d/b.yaml"]


def test_fleet_d_of_another_file_name_is_stem_d(load: LoadFleet, write_fleet: WriteFleet) -> None:
    write_fleet({"prod.yaml": V, "prod.d/a.yaml": f'sims:\n  - iccid: "{A}"\n', "fleet.d/a.yaml": "bad: ["})
    fleet = load_fleet("prod.yaml")
    assert [s.iccid for s in fleet.sims] == [A]
    assert fleet.files == ["prod.yaml", "prod.d/a.yaml"]


def test_paths_keep_the_directory_given(write_fleet: WriteFleet, tmp_path: Path) -> None:
    write_fleet({"stack/fleet.yaml": V, "stack/fleet.d/a.yaml": f'sims:\n  - iccid: "{A}"\n'})
    assert load_fleet("stack/fleet.yaml").files == ["stack/fleet.yaml", "stack/fleet.d/a.yaml"]
    assert load_fleet(tmp_path / "stack" / "fleet.yaml").source_of(A) == Location(
        str(tmp_path / "stack" / "fleet.d" / "a.yaml"), 2, 5
    )


def test_iccid_lengths_and_note_limits(load: LoadFleet) -> None:
    hundred = "é" * 100  # characters, not bytes
    fleet = load(sims_yaml(f'  - {{iccid: "{A}", notes: {{note: "{hundred}"}}}}', f'  - iccid: "{A[:-1]}"'))
    assert [len(s.iccid) for s in fleet.sims] == [20, 19]
    assert fleet.sims[0].notes == {"note": hundred}


def sims_yaml(*lines: str) -> str:
    return V + "sims:\n" + "".join(f"{line}\n" for line in lines)


POLICIES = [
    pytest.param("", Policy("retain", None, 10.0), id="default"),
    pytest.param("policy: {on_remove: suspend}\n", Policy("suspend", None, 10.0), id="on-remove-suspend"),
    pytest.param("policy: {max_changes: 5}\n", Policy("retain", 5, None), id="count"),
    pytest.param("policy: {max_changes: 0}\n", Policy("retain", 0, None), id="zero"),
    pytest.param("policy: {max_changes: 25%}\n", Policy("retain", None, 25.0), id="percent"),
    pytest.param("policy: {max_changes: '12.5%'}\n", Policy("retain", None, 12.5), id="decimal-percent"),
    pytest.param("policy: {max_changes: 100%}\n", Policy("retain", None, 100.0), id="hundred-percent"),
    pytest.param("policy: {max_changes: 0%}\n", Policy("retain", None, 0.0), id="zero-percent"),
]


@pytest.mark.parametrize("text, expected", POLICIES)
def test_policy(load: LoadFleet, text: str, expected: Policy) -> None:
    assert load(V + text).policy == expected


def test_source_of_points_where_each_value_is_written(load: LoadFleet) -> None:
    fleet = load(
        {
            "fleet.yaml": (
                V  # 1
                + "x-lim: &lim {kb_limit: 5, action: email, usernames: [ops]}\n"  # 2
                + "defaults:\n"  # 3
                + "  rate_plan: P\n"  # 4
                + "  notes: {note3: footer}\n"  # 5
                + "groups:\n"  # 6
                + "  g:\n"  # 7
                + "    cost_center: cc\n"  # 8
                + "    usage_limit: *lim\n"  # 9
                + "sims:\n"  # 10
                + f'  - iccid: "{A}"\n'  # 11
                + "    group: g\n"  # 12
                + "    notes: {note1: mine}\n"  # 13
            ),
            "fleet.d/a.yaml": f'sims:\n  - name: b\n    iccid: "{B}"\n    state: suspended\n',
        }
    )
    expected = {
        (A, None): ("fleet.yaml", 11, 5),
        (A, "iccid"): ("fleet.yaml", 11, 12),
        (A, "name"): ("fleet.yaml", 11, 12),  # the default name is the ICCID
        (A, "group"): ("fleet.yaml", 12, 12),
        (A, "rate_plan"): ("fleet.yaml", 4, 14),  # from defaults
        (A, "cost_center"): ("fleet.yaml", 8, 18),  # from the group
        (A, "usage_limit"): ("fleet.yaml", 2, 8),  # an alias: where the anchor is written
        (A, "usage_limit.kb_limit"): ("fleet.yaml", 2, 24),
        (A, "usage_limit.usernames[0]"): ("fleet.yaml", 2, 54),
        (A, "notes.note1"): ("fleet.yaml", 13, 20),
        (A, "note3"): ("fleet.yaml", 5, 18),
        (A, "notes.note2"): ("fleet.yaml", 13, 12),  # unmanaged note: the SIM's notes
        (A, "state"): ("fleet.yaml", 11, 5),  # the default state is written nowhere: the SIM
        (A, "imei"): ("fleet.yaml", 11, 5),  # unmanaged: the SIM
        (B, None): ("fleet.d/a.yaml", 2, 5),
        (B, "name"): ("fleet.d/a.yaml", 2, 11),
        (B, "state"): ("fleet.d/a.yaml", 4, 12),
        (B, "rate_plan"): ("fleet.yaml", 4, 14),
    }
    got = {key: tuple(fleet.source_of(*key)) for key in expected}
    assert got == expected
    assert str(fleet.source_of(B, "state")) == "fleet.d/a.yaml:4:12"
    with pytest.raises(KeyError):
        fleet.source_of(C)


@pytest.mark.parametrize(
    ("policy", "fast"),
    [
        ("policy: {max_changes: 10%}\n", True),  # the usual way to write the policy: libyaml reads it
        ("policy:\n  max_changes: 25%\n", True),
        ("%YAML 1.1\n---\n", False),  # a directive changes how the file reads: positions from the start
    ],
)
def test_a_percent_sign_is_read_the_fast_way_unless_it_is_a_directive(policy: str, fast: bool) -> None:
    """A `%` sent every file with a percentage limit down the slow, positioned parser (7 s and 160 MB for
    10,000 SIMs, in `validate` and twice per `pulumi` run); only a directive line needs it."""
    from lattigo_fleet.fleetfile.loader import _fast_data, _NotFast

    text = policy + V + f'sims:\n  - {{iccid: "{A}", state: active}}\n'
    if fast:
        assert _fast_data(text)["sims"] == [{"iccid": A, "state": "active"}]
    else:
        with pytest.raises(_NotFast):
            _fast_data(text)
