"""Every rule of fleet.yaml, as a table: input files → the exact issues (file:line:column, field path,
and a part of the message).  All issues come at once, in file order, never as a traceback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lattigo_fleet.fleetfile import FleetError, load_fleet, main_validate
from tests.fleetfile.conftest import FleetFiles, FleetIssues, WriteFleet
from tests.fleetfile.helpers import iccid, imei

FIXTURES = Path(__file__).parent / "fixtures"
V = "version: 1\n"
A, B, C = iccid(0), iccid(1), iccid(2)
I0, I1 = imei(0), imei(1)
LONG_NOTE = "x" * 101


def sims(*lines: str) -> str:
    """fleet.yaml with version on line 1, "sims:" on line 2 and the given lines from line 3."""
    return V + "sims:\n" + "".join(f"{line}\n" for line in lines)


CASES = [
    # ---- files and YAML
    pytest.param("", [("fleet.yaml:1:1", "", "file is empty")], id="empty-file"),
    pytest.param("# nothing yet\n\n", [("fleet.yaml:1:1", "", "file is empty")], id="comments-only"),
    pytest.param(
        V + "sims: [\n",
        [("fleet.yaml:3:1", "", "invalid YAML: expected the node content, but found '<stream end>'")],
        id="yaml-syntax",
    ),
    pytest.param(
        V + "sims:\n\t- iccid: x\n", [("fleet.yaml:3:1", "", "invalid YAML: found character '\\t'")], id="yaml-tab"
    ),
    pytest.param(
        V + "sims: []\nversion: 1\n",
        [("fleet.yaml:3:1", "version", "key 'version' is declared twice in this file: first at fleet.yaml:1:1")],
        id="duplicate-key",
    ),
    pytest.param(
        V + "groups:\n  g: {}\n  h: {}\n  g: {state: active}\n",
        [("fleet.yaml:5:3", "groups.g", "group 'g' is declared twice in this file: first at fleet.yaml:3:3")],
        id="duplicate-group-same-file",
    ),
    pytest.param(
        V + "sims:\n  - {iccid: '" + A + "', imei: '" + I0 + "', imei: '" + I1 + "', state: bogus}\n",
        [
            ("fleet.yaml:3:62", "sims[0].imei", "key 'imei' is declared twice in this file: first at fleet.yaml:3:37"),
            ("fleet.yaml:3:94", "sims[0].state", "must be one of active, suspended, suspended_no_billing"),
        ],
        id="duplicate-key-then-carries-on",
    ),
    pytest.param(
        V + "x-bad: !custom foo\nsims: []\n",
        [("fleet.yaml:2:8", "x-bad", "YAML tags are not supported here (!custom)")],
        id="yaml-tag",
    ),
    pytest.param(
        V + "groups:\n  42: {}\n",
        [("fleet.yaml:3:3", "groups", 'the key 42 must be a string: quote it ("42")')],
        id="non-string-key",
    ),
    # ---- version and top level
    pytest.param(
        "sims: []\n",
        [("fleet.yaml:1:1", "", "missing required field 'version' (write version: 1)")],
        id="version-missing",
    ),
    pytest.param(
        "version: 2\n",
        [("fleet.yaml:1:10", "version", "unsupported version 2: this lattigo-fleet reads version 1")],
        id="version-2",
    ),
    pytest.param(
        'version: "1"\n',
        [("fleet.yaml:1:10", "version", 'must be the number 1, not the string "1"')],
        id="version-string",
    ),
    pytest.param("- a\n- b\n", [("fleet.yaml:1:1", "", "must be a mapping, not a list")], id="top-level-list"),
    pytest.param(
        "# a comment\nhello\n", [("fleet.yaml:2:1", "", 'must be a mapping, not "hello"')], id="top-level-scalar"
    ),
    pytest.param(
        V + "sim: []\n",
        [("fleet.yaml:2:1", "sim", "unknown field 'sim' in fleet.yaml (did you mean 'sims'?); allowed: version")],
        id="unknown-top-level",
    ),
    # ---- iccid
    pytest.param(
        sims(f"  - iccid: {A}"),
        [("fleet.yaml:3:12", "sims[0].iccid", f'must be a string, not the number {A}: quote it, "{A}" (YAML reads')],
        id="iccid-int",
    ),
    pytest.param(
        sims("  - iccid: 0890141032111185107"),
        [
            (
                "fleet.yaml:3:12",
                "sims[0].iccid",
                'quote it, "0890141032111185107" (YAML reads unquoted digits as a number',
            )
        ],
        id="iccid-int-leading-zero",
    ),
    pytest.param(
        sims('  - iccid: "123"'),
        [("fleet.yaml:3:12", "sims[0].iccid", 'must be 19 or 20 digits, not "123" (3 digits)')],
        id="iccid-short",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}1"'),
        [("fleet.yaml:3:12", "sims[0].iccid", "must be 19 or 20 digits, not")],
        id="iccid-21-digits",
    ),
    pytest.param(
        sims(f'  - iccid: "{A[:-1]}X"'),
        [("fleet.yaml:3:12", "sims[0].iccid", "must be 19 or 20 digits")],
        id="iccid-letter",
    ),
    pytest.param(
        sims(f'  - imei: "{I0}"', "    name: orphan"),
        [("fleet.yaml:3:5", "sims[0]", "missing required field 'iccid'")],
        id="iccid-missing",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', f'  - iccid: "{A}"'),
        [
            (
                "fleet.yaml:4:12",
                "sims[1].iccid",
                f"ICCID {A} is declared twice: first at fleet.yaml:3:12 (sims[0].iccid)",
            )
        ],
        id="iccid-duplicate",
    ),
    # ---- imei
    pytest.param(
        sims(f'  - iccid: "{A}"', f'    imei: "{I0[:-1]}"'),
        [("fleet.yaml:4:11", "sims[0].imei", f'must be 15 digits (IMEI) or 16 (IMEISV), not "{I0[:-1]}" (14 digits)')],
        id="imei-14-digits",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', f'    imei: "{I0}12"'),
        [("fleet.yaml:4:11", "sims[0].imei", "must be 15 digits (IMEI) or 16 (IMEISV)")],
        id="imei-17-digits",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    imei: 012345678901234"),
        [("fleet.yaml:4:11", "sims[0].imei", 'not the number 12345678901234: quote it, "012345678901234"')],
        id="imei-int-loses-zero",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', f'    imei: "{I0}"', f'  - iccid: "{B}"', f'    imei: "{I0}"'),
        [("fleet.yaml:6:11", "sims[1].imei", f"IMEI {I0} is declared twice: first at fleet.yaml:4:11 (sims[0].imei)")],
        id="imei-duplicate",
    ),
    # ---- name
    pytest.param(
        sims(f'  - iccid: "{A}"', "    name: truck 43"),
        [("fleet.yaml:4:11", "sims[0].name", "must start with a letter or digit and hold only letters, digits")],
        id="name-pattern",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    name: t1", f'  - iccid: "{B}"', "    name: t1"),
        [
            (
                "fleet.yaml:6:11",
                "sims[1].name",
                "the resource name 't1' is already taken by sims[0].name at fleet.yaml:4:11",
            )
        ],
        id="name-duplicate",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', f'  - iccid: "{B}"', f'    name: "{A}"'),
        [("fleet.yaml:5:11", "sims[1].name", "is already taken by sims[0].iccid (its ICCID, the default name)")],
        id="name-is-another-iccid",
    ),
    # ---- state, strings
    pytest.param(
        sims(f'  - iccid: "{A}"', "    state: suspend"),
        [
            (
                "fleet.yaml:4:12",
                "sims[0].state",
                "must be one of active, suspended, suspended_no_billing, not \"suspend\" (did you mean 'suspended'?)",
            )
        ],
        id="state-enum",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', '    rate_plan: ""'),
        [("fleet.yaml:4:16", "sims[0].rate_plan", "must not be empty")],
        id="rate-plan-empty",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    cost_center:"),
        [("fleet.yaml:4:5", "sims[0].cost_center", "must be a string, not empty (null)")],
        id="cost-center-null",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    cost_center: true"),
        [("fleet.yaml:4:18", "sims[0].cost_center", 'must be a string, not true (a boolean): quote it, "true"')],
        id="cost-center-bool",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    region_code: 02134"),
        [("fleet.yaml:4:18", "sims[0].region_code", 'not the number 2134: quote it, "02134"')],
        id="region-code-zip-unquoted",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    rateplan: P"),
        [("fleet.yaml:4:5", "sims[0].rateplan", "unknown field 'rateplan' in a SIM (did you mean 'rate_plan'?)")],
        id="sim-unknown-field",
    ),
    pytest.param(
        sims("  -"),
        [("fleet.yaml:3:4", "sims[0]", "must be a mapping, not empty (null)")],
        id="sim-null",
    ),
    # ---- notes
    pytest.param(
        sims(f'  - iccid: "{A}"', f"    notes: {{note2: {LONG_NOTE}}}"),
        [("fleet.yaml:4:20", "sims[0].notes.note2", "is 101 characters long; at most 100 are allowed")],
        id="note-too-long",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    notes:", "      note4: x"),
        [("fleet.yaml:5:7", "sims[0].notes.note4", "unknown note field 'note4' (did you mean 'note'?)")],
        id="note-unknown",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    notes: {note: 2024-01-01}"),
        [
            (
                "fleet.yaml:4:19",
                "sims[0].notes.note",
                'must be a string, not a date (2024-01-01): quote it, "2024-01-01"',
            )
        ],
        id="note-date",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    notes: [a]"),
        [("fleet.yaml:4:12", "sims[0].notes", "must be a mapping, not a list")],
        id="notes-list",
    ),
    # ---- usage_limit
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb_limit: 0, action: suspend}"),
        [("fleet.yaml:4:29", "sims[0].usage_limit.kb_limit", "must be at least 1, not the number 0")],
        id="kb-limit-zero",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb_limit: 1.5, action: suspend}"),
        [("fleet.yaml:4:29", "sims[0].usage_limit.kb_limit", "must be an integer, not the number 1.5")],
        id="kb-limit-float",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb_limit: 10, action: both}"),
        [("fleet.yaml:4:41", "sims[0].usage_limit.action", 'must be one of suspend, email, not "both"')],
        id="usage-action-enum",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit:", "      kb_limit: 10"),
        [("fleet.yaml:4:5", "sims[0].usage_limit", "missing required field 'action'")],
        id="usage-action-missing",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb_limit: 10, action: email}"),
        [("fleet.yaml:4:5", "sims[0].usage_limit", "usernames is required when action is 'email'")],
        id="usage-email-without-usernames",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb_limit: 10, action: email, usernames: []}"),
        [("fleet.yaml:4:59", "sims[0].usage_limit.usernames", "must name at least one user when action is 'email'")],
        id="usage-email-empty-usernames",
    ),
    pytest.param(
        sims(
            f'  - iccid: "{A}"',
            "    usage_limit:",
            "      kb_limit: 10",
            "      action: suspend",
            "      usernames: [a, b, a]",
        ),
        [("fleet.yaml:7:25", "sims[0].usage_limit.usernames[2]", '"a" is listed twice')],
        id="usage-usernames-duplicate",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: none"),
        [("fleet.yaml:4:18", "sims[0].usage_limit", 'must be a mapping or null, not "none"')],
        id="usage-limit-string",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    usage_limit: {kb: 10, action: suspend, kb_limit: 1}"),
        [("fleet.yaml:4:19", "sims[0].usage_limit.kb", "unknown field 'kb' in sims[0].usage_limit")],
        id="usage-unknown-field",
    ),
    # ---- defaults and groups
    pytest.param(
        V + "defaults:\n  iccid: '" + A + "'\n  name: x\n  group: g\n",
        [
            ("fleet.yaml:3:3", "defaults.iccid", "'iccid' can only be set on a SIM, not in defaults"),
            ("fleet.yaml:4:3", "defaults.name", "'name' can only be set on a SIM, not in defaults"),
            ("fleet.yaml:5:3", "defaults.group", "'group' can only be set on a SIM, not in defaults"),
        ],
        id="defaults-sim-only-fields",
    ),
    pytest.param(
        V + "groups:\n  g:\n    imei: '" + I0 + "'\n",
        [("fleet.yaml:4:5", "groups.g.imei", "'imei' can only be set on a SIM, not in group 'g'")],
        id="group-sim-only-field",
    ),
    pytest.param(
        V + "groups:\n  trucks-east: {}\n" + "sims:\n" + f'  - iccid: "{A}"\n    group: trucks-est\n',
        [
            (
                "fleet.yaml:6:12",
                "sims[0].group",
                "unknown group 'trucks-est' (did you mean 'trucks-east'?); the groups are trucks-east",
            )
        ],
        id="group-unknown",
    ),
    pytest.param(
        sims(f'  - iccid: "{A}"', "    group: g"),
        [("fleet.yaml:4:12", "sims[0].group", "unknown group 'g'; no groups are declared")],
        id="group-unknown-no-groups",
    ),
    pytest.param(
        V + "groups:\n  -bad: {}\n",
        [("fleet.yaml:3:3", "groups.-bad", 'invalid group name "-bad": must start with a letter or digit')],
        id="group-name",
    ),
    pytest.param(
        V + "groups:\n  g: []\n",
        [("fleet.yaml:3:6", "groups.g", "must be a mapping or null, not a list")],
        id="group-not-mapping",
    ),
    # ---- policy
    pytest.param(
        V + "policy:\n  on_remove: delete\n",
        [("fleet.yaml:3:14", "policy.on_remove", 'must be one of retain, suspend, not "delete"')],
        id="on-remove-enum",
    ),
    pytest.param(
        V + "policy: {max_changes: -1}\n",
        [("fleet.yaml:2:23", "policy.max_changes", "must be at least 0, not the number -1")],
        id="max-changes-negative",
    ),
    pytest.param(
        V + "policy: {max_changes: 101%}\n",
        [
            (
                "fleet.yaml:2:23",
                "policy.max_changes",
                'must be a percentage between 0% and 100%, such as "10%", not "101%"',
            )
        ],
        id="max-changes-over-100-percent",
    ),
    pytest.param(
        V + "policy: {max_changes: '10'}\n",
        [("fleet.yaml:2:23", "policy.max_changes", "must be a percentage between 0% and 100%")],
        id="max-changes-string-without-percent",
    ),
    pytest.param(
        V + "policy: {max_changes: 2.5}\n",
        [("fleet.yaml:2:23", "policy.max_changes", "must be a whole number of SIMs (e.g. 5) or a percentage")],
        id="max-changes-float",
    ),
    pytest.param(
        V + "policy: {on_remove: retain, max: 3}\n",
        [("fleet.yaml:2:29", "policy.max", "unknown field 'max' in policy")],
        id="policy-unknown-field",
    ),
    # ---- fleet.d
    pytest.param(
        {"fleet.yaml": V, "fleet.d/a.yaml": "version: 1\ndefaults: {}\npolicy: {}\nother: 1\n"},
        [
            ("fleet.d/a.yaml:1:1", "version", "'version' belongs in fleet.yaml: files in fleet.d may hold only groups"),
            ("fleet.d/a.yaml:2:1", "defaults", "'defaults' belongs in fleet.yaml"),
            ("fleet.d/a.yaml:3:1", "policy", "'policy' belongs in fleet.yaml"),
            ("fleet.d/a.yaml:4:1", "other", "unknown field 'other' in fleet.d files; allowed: groups, sims"),
        ],
        id="fleet-d-only-groups-and-sims",
    ),
    pytest.param(
        {"fleet.yaml": sims(f'  - iccid: "{A}"'), "fleet.d/a.yaml": f'sims:\n  - iccid: "{B}"\n  - iccid: "{A}"\n'},
        [
            (
                "fleet.d/a.yaml:3:12",
                "sims[1].iccid",
                f"ICCID {A} is declared twice: first at fleet.yaml:3:12 (sims[0].iccid)",
            )
        ],
        id="fleet-d-duplicate-iccid",
    ),
    pytest.param(
        {
            "fleet.yaml": V,
            "fleet.d/a.yaml": f'sims:\n  - iccid: "{A}"\n',
            "fleet.d/b.yaml": f'sims:\n  - {{iccid: "{A}"}}\n',
        },
        [("fleet.d/b.yaml:2:13", "sims[0].iccid", "first at fleet.d/a.yaml:2:12 (sims[0].iccid)")],
        id="fleet-d-duplicate-iccid-between-fragments",
    ),
    pytest.param(
        {"fleet.yaml": V + "groups:\n  g: {}\n", "fleet.d/a.yaml": "groups:\n  h: {}\n  g: {}\n"},
        [("fleet.d/a.yaml:3:3", "groups.g", "group 'g' is declared twice: first at fleet.yaml:3:3")],
        id="fleet-d-duplicate-group",
    ),
    pytest.param(
        {"fleet.yaml": V, "fleet.d/a.yaml": f'sims:\n  - iccid: "{A}"\n    imei: "123"\n    group: nope\n'},
        [
            ("fleet.d/a.yaml:3:11", "sims[0].imei", "must be 15 digits (IMEI) or 16 (IMEISV)"),
            ("fleet.d/a.yaml:4:12", "sims[0].group", "unknown group 'nope'"),
        ],
        id="fleet-d-schema-positions",
    ),
    pytest.param(
        {"fleet.yaml": V, "fleet.d/a.yaml": "sims:\n  - {iccid: \n"},
        [("fleet.d/a.yaml:3:1", "", "invalid YAML:")],
        id="fleet-d-yaml-syntax",
    ),
    pytest.param(
        {"fleet.yaml": V, "fleet.d/a.yaml": "# moved to fleet.yaml\n"},
        [("fleet.d/a.yaml:1:1", "", "file is empty: expected groups or sims")],
        id="fleet-d-empty",
    ),
    pytest.param(
        {"fleet.yaml": V, "fleet.d/a.yml": "sims: []\n"},
        [("fleet.d/a.yml:1:1", "", "not read: fleet.d takes only *.yaml files (rename it to a.yaml)")],
        id="fleet-d-yml",
    ),
    pytest.param(
        {"fleet.yaml": sims(f'  - iccid: "{A}"', "    group: g"), "fleet.d/a.yaml": "groups: [\n"},
        [
            (
                "fleet.yaml:4:12",
                "sims[0].group",
                "unknown group 'g'; no groups are declared "
                "(unless it is declared in fleet.d/a.yaml, which could not be read)",
            ),
            ("fleet.d/a.yaml:2:1", "", "invalid YAML"),
        ],
        id="unknown-group-with-unreadable-fragment",
    ),
    pytest.param(
        {"fleet.yaml": V, "fleet.d": ""},
        [("fleet.d", "", "is not a directory")],
        id="fleet-d-not-a-directory",
    ),
    # ---- anchors, aliases and merge keys: the position is where the value is written
    pytest.param(
        V
        + "x-base: &base\n  state: bogus\n"
        + "sims:\n"
        + f'  - <<: *base\n    iccid: "{A}"\n  - <<: *base\n    iccid: "{B}"\n',
        [("fleet.yaml:3:10", "sims[0].state", 'not "bogus"')],
        id="anchor-merge-error-reported-once-at-anchor",
    ),
    pytest.param(
        V + "x-limit: &lim {kb_limit: 10, action: email}\n" + "sims:\n" + f'  - iccid: "{A}"\n    usage_limit: *lim\n',
        [("fleet.yaml:2:10", "sims[0].usage_limit", "usernames is required when action is 'email'")],
        id="anchor-alias-error-at-anchor",
    ),
    pytest.param(
        V
        + "x-limit: &lim {kb_limit: 10, action: suspend}\n"
        + "sims:\n"
        + f'  - iccid: "{A}"\n    usage_limit: {{<<: *lim, kb_limit: 0}}\n',
        [("fleet.yaml:5:39", "sims[0].usage_limit.kb_limit", "must be at least 1")],
        id="merge-override-error-at-override",
    ),
    pytest.param(
        V
        + "x-limit: &lim {kb_limit: 0, action: suspend}\n"
        + "sims:\n"
        + f'  - iccid: "{A}"\n    usage_limit: {{<<: *lim, usernames: [a]}}\n',
        [("fleet.yaml:2:26", "sims[0].usage_limit.kb_limit", "must be at least 1")],
        id="merge-inherited-error-at-anchor",
    ),
]


@pytest.mark.parametrize("files, expected", CASES)
def test_invalid_fleet_reports_every_issue_at_its_place(
    issues: FleetIssues, files: FleetFiles, expected: list[tuple[str, str, str]]
) -> None:
    got = issues(files)
    assert [(f"{i.file}:{i.line}:{i.column}" if i.file != "fleet.d" else i.file, i.field) for i in got] == [
        (where, field) for where, field, _ in expected
    ], "\n".join(map(str, got))
    for issue, (_, _, message) in zip(got, expected, strict=True):
        assert message in issue.message, str(issue)


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FleetError) as caught:
        load_fleet("nope.yaml")
    assert [str(i) for i in caught.value.issues] == ["nope.yaml:1:1: no such file"]


def test_directory_instead_of_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fleet.yaml").mkdir()
    with pytest.raises(FleetError) as caught:
        load_fleet("fleet.yaml")
    assert [str(i) for i in caught.value.issues] == ["fleet.yaml:1:1: is a directory, not a file"]


def test_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fleet.yaml").write_bytes(b"version: 1\nsims: []\n# caf\xe9\n")
    with pytest.raises(FleetError) as caught:
        load_fleet("fleet.yaml")
    assert [str(i) for i in caught.value.issues] == ["fleet.yaml:3:6: is not UTF-8 text"]


def test_golden_errors_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet with an error of each kind in fleet.yaml and fleet.d: the whole report, line for line."""
    monkeypatch.chdir(FIXTURES / "errors")
    (FIXTURES / "errors" / "fleet.d" / "30-empty.yaml").touch()  # git keeps empty files, but be sure
    expected = (FIXTURES / "errors" / "expected.txt").read_text(encoding="utf-8").splitlines()
    with pytest.raises(FleetError) as caught:
        load_fleet("fleet.yaml")
    assert [str(i) for i in caught.value.issues] == expected
    assert str(caught.value).splitlines() == expected
    # Each "error" in a comment marks one expected issue; the empty file cannot carry its mark.
    marked = sum(
        line.split("#", 1)[1].count("error") if "#" in line else 0
        for path in ["fleet.yaml", *sorted(str(p) for p in Path("fleet.d").iterdir())]
        for line in Path(path).read_text(encoding="utf-8").splitlines()[1 if path == "fleet.yaml" else 0 :]
    )
    assert len(expected) == marked + 1


def test_main_validate_prints_every_issue(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(FIXTURES / "errors")
    assert main_validate("fleet.yaml") == 1
    out = capsys.readouterr().out.splitlines()
    assert out == (FIXTURES / "errors" / "expected.txt").read_text(encoding="utf-8").splitlines()


def test_never_a_traceback() -> None:
    """Random damage to a valid fleet gives a FleetError or a fleet, never any other exception."""
    source = (FIXTURES / "ok" / "fleet.yaml").read_text(encoding="utf-8")
    rng = random.Random(5)
    alphabet = list(" \t\n:-{}[],&*<>!|\"'#%@`?0123456789abcxyz")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.yaml"
        for _ in range(120):
            text = list(source)
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(text))
                action = rng.random()
                if action < 0.4:
                    text[i] = rng.choice(alphabet)
                elif action < 0.7:
                    del text[i]
                else:
                    text.insert(i, rng.choice(alphabet))
            path.write_text("".join(text), encoding="utf-8")
            try:
                load_fleet(path)
            except FleetError as e:
                assert e.issues
                for issue in e.issues:
                    assert issue.line >= 1 and issue.column >= 1 and issue.message


def test_ignore_changes_names_only_fields_it_can_ignore(issues: FleetIssues) -> None:
    found = issues('version: 1\nsims:\n  - {iccid: "89014103211118510720", ignore_changes: [state, rate_plan]}\n')
    [issue] = found
    assert (issue.line, issue.field) == (3, "sims[0].ignore_changes[1]")
    assert "rate_plan" in issue.message and "state" in issue.message


@pytest.mark.parametrize("make", ["dangling symlink", "symlink loop", "fifo", "directory named yaml", "subdirectory"])
def test_every_entry_of_fleet_d_is_read_or_is_an_error(write_fleet: WriteFleet, tmp_path: Path, make: str) -> None:
    """An entry skipped in silence would make its SIMs look removed (and with on_remove: suspend, suspended)."""
    import os

    path = write_fleet(
        {
            "fleet.yaml": 'version: 1\nsims:\n  - {iccid: "89014103211118510720"}\n',
            "fleet.d/a.yaml": 'sims:\n  - {iccid: "89014103211118510721"}\n',
        }
    )
    fleet_d = tmp_path / "fleet.d"
    entry = fleet_d / ("b" if make == "subdirectory" else "b.yaml")
    if make == "dangling symlink":
        entry.symlink_to(tmp_path / "missing.yaml")
    elif make == "symlink loop":
        entry.symlink_to(entry)
    elif make == "fifo":
        os.mkfifo(entry)
    else:
        entry.mkdir()
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / path)
    [issue] = caught.value.issues
    assert issue.file.endswith(entry.name) and (issue.line, issue.column) == (1, 1)
    assert "not read" in issue.message


def test_a_fleet_file_that_is_not_a_regular_file_is_an_error_not_a_hang(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fleet.yaml")
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    assert "not a regular file" in str(caught.value)


@pytest.mark.parametrize(
    "where", ["fleet.d/p.yaml", "fleet.d (the directory)", "fleet.yaml itself", "a link inside that points out"]
)
def test_links_that_leave_the_fleets_directory_are_refused_and_never_read(tmp_path: Path, where: str) -> None:
    """A pull request may add `fleet.d/p.yaml -> /etc/passwd`: the file must not be read, and its text never
    reaches a message (which `lattigo-fleet plan` would post in the pull request)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.yaml"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\nTOKEN=very-secret-value\n")
    fleet_dir = tmp_path / "repo"
    fleet_dir.mkdir()
    fleet = fleet_dir / "fleet.yaml"
    fleet.write_text('version: 1\nsims:\n  - {iccid: "89014103211118510720"}\n')
    if where == "fleet.d/p.yaml":
        (fleet_dir / "fleet.d").mkdir()
        (fleet_dir / "fleet.d" / "p.yaml").symlink_to(secret)
    elif where == "fleet.d (the directory)":
        (fleet_dir / "fleet.d").symlink_to(outside)
    elif where == "fleet.yaml itself":
        fleet.unlink()
        fleet.symlink_to(secret)
    else:
        (fleet_dir / "fleet.d").mkdir()
        (fleet_dir / "fleet.d" / "inner").symlink_to(outside)
        (fleet_dir / "fleet.d" / "p.yaml").symlink_to(fleet_dir / "fleet.d" / "inner" / "secret.yaml")
    with pytest.raises(FleetError) as caught:
        load_fleet(fleet)
    text = str(caught.value) + "".join(i.message for i in caught.value.issues)
    assert "root:x" not in text and "very-secret" not in text and "secret.yaml" not in text, text
    [issue] = [i for i in caught.value.issues if "leaves the fleet's directory" in i.message]
    assert (issue.line, issue.column) == (1, 1) and "not read" in issue.message
    assert issue.file.endswith("p.yaml" if "p.yaml" in where or "inside" in where else where.split(" ")[0])


def test_a_link_within_the_fleets_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "east.yaml").write_text('sims:\n  - {iccid: "89014103211118510721"}\n')
    (tmp_path / "fleet.d").mkdir()
    (tmp_path / "fleet.d" / "east.yaml").symlink_to(tmp_path / "shared" / "east.yaml")
    (tmp_path / "fleet.yaml").write_text('version: 1\nsims:\n  - {iccid: "89014103211118510720"}\n')
    sims = load_fleet(tmp_path / "fleet.yaml").sims
    assert [s.iccid for s in sims] == ["89014103211118510720", "89014103211118510721"]  # the linked file's SIM too


def test_a_message_quotes_only_a_short_escaped_excerpt_of_a_value(tmp_path: Path) -> None:
    long_value = "A" * 300 + "\x1b[31m"
    (tmp_path / "fleet.yaml").write_text(f'version: 1\nsims: "{long_value}"\n'.replace("\x1b", "\\e"))
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    [issue] = caught.value.issues
    assert "A" * 60 not in issue.message and "\x1b" not in issue.message and "…" in issue.message, issue.message


@pytest.mark.parametrize(
    "field, text",
    [
        ("iccid", '"8901410321111851\\ud800"'),
        ("name", '"truck\\udcff"'),
        ("notes", '{note: "fw \\ud83d"}'),
    ],
)
def test_a_lone_surrogate_is_an_error_at_its_position_not_a_traceback(tmp_path: Path, field: str, text: str) -> None:
    """YAML's \\u escapes can spell half of a UTF-16 pair, which no UTF-8 output can carry: every later print,
    JSON document or HTTP body would fail on it."""
    sim = {"iccid": '"89014103211118510720"', field: text}
    row = ", ".join(f"{k}: {v}" for k, v in sim.items())
    (tmp_path / "fleet.yaml").write_text(f"version: 1\nsims:\n  - {{{row}}}\n")
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    found = [i for i in caught.value.issues if "surrogate" in i.message]
    assert found and found[0].line == 3, caught.value.issues
    str(caught.value).encode("utf-8")  # the message itself prints anywhere


def test_a_lone_surrogate_in_a_key_is_an_error_that_prints(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text('version: 1\nsims:\n  - {iccid: "89014103211118510720", "x\\udc80": 1}\n')
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    assert any("surrogate" in i.message for i in caught.value.issues)
    "\n".join(str(i) for i in caught.value.issues).encode("utf-8")


def test_a_lone_surrogate_in_a_group_reference_stops_before_the_checks_that_would_quote_it(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        'version: 1\ngroups: {east: {}}\nsims:\n  - {iccid: "89014103211118510720", group: "east\\ud800"}\n'
    )
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    assert [i.line for i in caught.value.issues if "surrogate" in i.message] == [4]
    "\n".join(str(i) for i in caught.value.issues).encode("utf-8")
