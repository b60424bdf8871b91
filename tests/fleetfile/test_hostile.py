"""Hostile fleet files (issue "Hostile inputs"): YAML bombs, huge numbers, control characters, duplicate
anchors, deep nesting.  Each is a located issue (file:line:column, field), reported with the others,
quickly, and never a traceback or a Python warning."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import pytest

from lattigo_fleet.fleetfile import FleetError, Issue, main_validate
from lattigo_fleet.fleetfile.positions import MAX_ALIAS_NODES, MAX_DEPTH
from tests.fleetfile.conftest import FleetIssues, LoadFleet, WriteFleet
from tests.fleetfile.helpers import iccid, limit_of

V = "version: 1\n"
A, B = iccid(0), iccid(1)
KB_MAX = 2**53 - 1


@pytest.fixture(autouse=True)
def time_limit() -> Iterator[None]:
    """Fail (rather than hang for minutes and eat gigabytes) if a file is not refused quickly."""

    def expired(signum: int, frame: FrameType | None) -> NoReturn:
        raise TimeoutError("the loader took more than 10 s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def laughs(levels: int = 9, width: int = 9, merge: bool = False) -> str:
    """The classic billion-laughs file (9 levels of 9: 313 bytes), as lists or as merge keys."""
    lines = [V, 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels], strict=False):
        aliases = ",".join([f"*{prev}"] * width)
        lines.append(f"x-{name}: &{name} [{aliases}]\n")
    if merge:  # the same growth through merge keys: each level a mapping merging the previous ones
        lines = [V, "x-a: &a {" + ", ".join(f"k{i}: lol" for i in range(width)) + "}\n"]
        for level, (prev, name) in enumerate(zip(names, names[1:levels], strict=False), 1):
            keys = ", ".join(f"m{level}_{i}: {{<<: *{prev}}}" for i in range(width))
            lines.append(f"x-{name}: &{name} {{{keys}}}\n")
    lines.append(f"sims: *{names[levels - 1]}\n")
    return "".join(lines)


def at(text: str, issue: Issue) -> str:
    """The text of the file from the issue's position on (to check what it points at)."""
    return text.splitlines()[issue.line - 1][issue.column - 1 :]


# ---- 1. bombs


@pytest.mark.parametrize("merge", [False, True], ids=["aliases", "merge-keys"])
def test_billion_laughs_is_refused_at_the_alias_it_would_expand(issues: FleetIssues, merge: bool) -> None:
    text = laughs(merge=merge)
    found = issues(text)  # how long it takes is bench/fuzz_loader.py's to measure, not a test's
    [issue] = found
    assert issue.file == "fleet.yaml" and at(text, issue).startswith("*")
    assert issue.field.startswith("x-")
    assert issue.message.startswith("alias *") and "YAML bomb" in issue.message
    assert f"({MAX_ALIAS_NODES:,} plus one per node written in the file)" in issue.message


def test_billion_laughs_through_the_cli_is_one_located_line(
    write_fleet: WriteFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_fleet(laughs())
    assert main_validate(path) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("fleet.yaml:") and "alias *" in line


def test_aliases_up_to_the_limit_load(load: LoadFleet) -> None:
    """Heavy but honest reuse: every SIM merges a base and shares a limit (the limit scales with the file).
    Also linear: ruamel compared every merging map with all the earlier ones (2,000 SIMs: about a minute)."""
    n = 2000
    text = (
        V
        + "x-base: &base {rate_plan: P, cost_center: cc, notes: {note: a, note1: b}}\n"
        + "x-lim: &lim {kb_limit: 1024, action: email, usernames: [ops, dev]}\n"
        + "sims:\n"
        + "".join(f'  - {{<<: *base, iccid: "{iccid(0)[:-4]}{i:04d}", usage_limit: *lim}}\n' for i in range(n))
    )
    fleet = load(text)
    assert len(fleet.sims) == n
    assert {(s.rate_plan, limit_of(s).kb_limit) for s in fleet.sims} == {("P", 1024)}


def test_a_small_file_may_not_expand_beyond_the_alias_limit(issues: FleetIssues) -> None:
    # 1,100 aliases to a 1,001-node list: 1.1 million nodes from a few kilobytes.
    text = V + "x-a: &a [" + ",".join(["x"] * 1000) + "]\n" + "x-b: [" + ",".join(["*a"] * 1100) + "]\n"
    [issue] = issues(text)
    assert issue.line == 3 and issue.field.startswith("x-b[")
    assert at(text, issue).startswith("*a")
    assert issue.message.startswith("alias *a: the aliases of this file repeat more than 1,001,")


@pytest.mark.parametrize(
    "number, line",
    [("9" * 5000, 4), ("-" + "1" * 4301, 4), ("0x" + "f" * 3600, 4)],
    ids=["5000-digits", "negative-4301-digits", "hex-beyond-4300-digits"],
)
def test_an_integer_too_long_to_read_is_a_located_issue(issues: FleetIssues, number: str, line: int) -> None:
    text = V + f'sims:\n  - iccid: "{A}"\n    usage_limit: {{kb_limit: {number}, action: suspend}}\n'
    [issue] = issues(text)
    assert (issue.line, issue.column) == (line, text.splitlines()[line - 1].index(number) + 1)
    assert issue.field == "sims[0].usage_limit.kb_limit"
    assert "too long" in issue.message and "4,300 digits" in issue.message
    assert len(issue.message) < 200


def test_a_value_ruamel_cannot_construct_is_a_located_issue(issues: FleetIssues) -> None:
    text = V + "x-when: 2024-13-01\nsims: []\n"
    [issue] = issues(text)
    assert (issue.line, issue.column, issue.field) == (2, 9, "x-when")
    assert "2024-13-01" in issue.message and "month must be in 1..12" in issue.message


@pytest.mark.parametrize(
    "kb, ok",
    [
        (str(KB_MAX), True),
        (str(KB_MAX + 2), False),  # 2^53 + 1: would be sent as 2^53
        (str(2**63), False),
        ("1e300", False),  # a float that is "integer": would become a 301-digit int
    ],
)
def test_kb_limit_is_at_most_what_a_json_number_holds_exactly(
    load: LoadFleet, issues: FleetIssues, kb: str, ok: bool
) -> None:
    text = V + f'sims:\n  - iccid: "{A}"\n    usage_limit: {{kb_limit: {kb}, action: suspend}}\n'
    if ok:
        assert limit_of(load(text).sims[0]).kb_limit == KB_MAX
        return
    [issue] = issues(text)
    column = text.splitlines()[3].index(kb) + 1
    assert (issue.line, issue.column, issue.field) == (4, column, "sims[0].usage_limit.kb_limit")
    assert issue.message.startswith(f"must be at most {KB_MAX}")
    assert "2^53" in issue.message


def test_kb_limit_maximum_is_explained_in_the_schema() -> None:
    from lattigo_fleet.fleetfile import fleet_schema

    kb = fleet_schema()["$defs"]["usage_limit"]["properties"]["kb_limit"]
    assert kb["maximum"] == KB_MAX
    assert "precision" in kb["description"]


# ---- 2. positions


def test_control_character_is_reported_where_it_is(issues: FleetIssues) -> None:
    text = V + f'sims:\n  - iccid: "{A}"\n    cost_center: "a\x07b"\n'
    [issue] = issues(text)
    assert (issue.line, issue.column, issue.field) == (4, 20, "")
    assert issue.message == "control character U+0007 is not allowed in YAML"


def test_every_control_character_is_reported_with_crlf_and_lone_cr_lines(issues: FleetIssues) -> None:
    text = V + "x-a: \x00\r\nx-b: ok\rx-c: \x1b[31m\nsims: []\n\x7f"
    found = issues(text)
    assert [(i.line, i.column, i.message) for i in found] == [
        (2, 6, "control character U+0000 is not allowed in YAML"),
        (4, 6, "control character U+001B is not allowed in YAML"),
        (6, 1, "control character U+007F is not allowed in YAML"),
    ]


def test_other_characters_yaml_refuses_are_named_too(issues: FleetIssues) -> None:
    [issue] = issues(V + "x-a: \ufffe\nsims: []\n")
    assert (issue.line, issue.column) == (2, 6)
    assert issue.message == "character U+FFFE is not allowed in YAML"


def test_many_control_characters_are_summarised(issues: FleetIssues) -> None:
    found = issues(V + "x-a: " + "\x01" * 50 + "\n")
    assert len(found) == 11
    assert found[-1].message == "40 more characters that YAML does not allow"
    assert all("<unicode string>" not in i.message for i in found)


def test_duplicate_anchor_is_a_located_error_not_a_warning(issues: FleetIssues) -> None:
    text = V + "x-a: &a {state: active}\nx-b: &a {state: suspended}\n" + f'sims:\n  - <<: *a\n    iccid: "{A}"\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning would fail the test
        [issue] = issues(text)
    assert (issue.line, issue.column, issue.field) == (3, 6, "x-b")
    assert issue.message == (
        "anchor &a is defined twice in this file: first at fleet.yaml:2:6 "
        "(an alias means the latest one above it: rename one of them)"
    )


def test_duplicate_anchor_is_reported_with_the_other_issues(issues: FleetIssues) -> None:
    text = V + "x-a: &a 1\nx-b: &a 2\n" + f'sims:\n  - {{iccid: "{A}", state: bogus}}\n'
    found = issues(text)
    assert [(i.line, i.field) for i in found] == [(3, "x-b"), (5, "sims[0].state")]


@pytest.mark.parametrize("shape", ["flow", "block", "mappings"])
def test_deep_nesting_is_a_located_issue(issues: FleetIssues, shape: str) -> None:
    depth = 5000 if shape == "flow" else 300
    if shape == "flow":
        text = V + "x-deep: " + "[" * depth + "]" * depth + "\nsims: []\n"
    elif shape == "block":
        text = V + "x-deep:\n" + "".join(" " * i + "-\n" for i in range(1, depth)) + "sims: []\n"
    else:
        text = V + "x-deep:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, depth)) + "sims: []\n"
    [issue] = issues(text)
    assert issue.line > 1 and issue.field.startswith("x-deep")
    assert issue.message == f"nested more than {MAX_DEPTH} levels deep: a fleet file needs fewer than 10"


def test_issues_never_carry_ruamel_stream_names(issues: FleetIssues) -> None:
    for text in (V + "x: [\n", V + "sims: *nope\n", V + "x: \x07\n", V + "---\n---\n"):
        for issue in issues(text):
            assert "<unicode string>" not in issue.message and "<file>" not in issue.message


def test_fleet_error_issues_are_sorted_and_complete(issues: FleetIssues) -> None:
    """A bomb in a fleet.d file does not hide the issues of fleet.yaml."""
    bomb = laughs()[11:]  # without its "version: 1" line
    found = issues({"fleet.yaml": V + f'sims:\n  - {{iccid: "{A}", state: bogus}}\n', "fleet.d/a.yaml": bomb})
    # complete: the state of fleet.yaml and the bomb of fleet.d/a.yaml, each at its place; sorted: by file
    assert [(i.file, i.line, i.field) for i in found] == [
        ("fleet.yaml", 3, "sims[0].state"),
        ("fleet.d/a.yaml", 7, "x-g[0]"),
    ]
    assert found[0].message.startswith("must be one of active,") and found[0].message.endswith('not "bogus"')
    assert at(bomb, found[1]).startswith("*f") and "YAML bomb" in found[1].message
    # and the error prints them in that order, one per line
    assert str(FleetError(found)).splitlines() == [str(i) for i in found]


def test_aliases_of_long_strings_are_bounded_by_the_text_they_expand_to(tmp_path: Path) -> None:
    """Few nodes, much text: 500 aliases of a list of 200 strings of 10 kB, under the node bound, would expand
    to about 1 GB of strings; the loader refuses it by the size of the expanded text, at the alias."""
    from lattigo_fleet.fleetfile import FleetError, load_fleet

    value = "x" * 10_000
    lines = ["version: 1", "x-big: &big", *(f"  - {value}" for _ in range(200)), "x-many:"]
    lines += ["  - *big" for _ in range(500)]
    lines += ["sims: []"]
    (tmp_path / "fleet.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(FleetError) as caught:
        load_fleet(tmp_path / "fleet.yaml")
    [issue] = caught.value.issues
    assert "characters" in issue.message and issue.line > 200, issue
