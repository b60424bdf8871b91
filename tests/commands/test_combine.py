"""`lattigo-fleet combine`: one comment (one drift issue) from the reports of a matrix of stacks."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet import plan_document
from lattigo_fleet.cli import build_parser
from lattigo_fleet.commands import combine
from lattigo_fleet.commands.combine import digests, shares
from lattigo_fleet.commands.plan import COMMENT_LIMIT

HERE = Path(__file__).parent
GITHUB_LIMIT = 65_536


def plan_dir(root: Path, stack: str, fixture: str | None, exit_code: int, markdown: str | None = None) -> Path:
    """A stack's artifact as the action keeps it: stack.json, plan.md and (with a fixture) its plan document."""
    directory = root / f"fleet-plan-7-{'b' * 40}-{stack}"
    directory.mkdir(parents=True)
    meta = {"stack": stack, "exit_code": exit_code, "artifact": directory.name}
    (directory / "stack.json").write_text(json.dumps(meta))
    if fixture:
        doc: dict[str, Any] = json.loads((HERE / "fixtures" / f"{fixture}.plan.json").read_text())
        doc["stack"] = stack
        doc["digest"] = plan_document.digest(doc)
        plan_document.write(doc, directory / "fleet-plan.json")
        text = (HERE / "golden" / f"{fixture}.md").read_text().replace("stack `ci`", f"stack `{stack}`")
        (directory / "plan.md").write_text(markdown if markdown is not None else text)
    elif markdown is not None:
        (directory / "plan.md").write_text(markdown)
    return directory


def drift_dir(root: Path, stack: str, exit_code: int, text: str) -> Path:
    directory = root / f"fleet-drift-{stack}"
    directory.mkdir(parents=True)
    (directory / "stack.json").write_text(json.dumps({"stack": stack, "exit_code": exit_code}))
    (directory / "drift.md").write_text(text)
    return directory


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    code = combine.main(build_parser().parse_args(["combine", *argv]), out)
    return code, out.getvalue(), capsys.readouterr().err


def test_the_summary_comes_first_failures_first_and_carries_each_approved_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    east = plan_dir(tmp_path, "east", "changes", 0)
    west = plan_dir(tmp_path, "west", "refused", 1)
    quiet = plan_dir(tmp_path, "quiet", None, 0, "## lattigo-fleet plan · stack `quiet`\n\n**No change**\n")
    code, out, err = run(["plan", str(east), str(west), str(quiet), "--stacks", "east,west,north,quiet"], capsys)
    assert (code, err) == (1, ""), "a stack refused, one missing: the comment, then exit 1"
    east_doc = plan_document.read(east / "fleet-plan.json")
    west_doc = plan_document.read(west / "fleet-plan.json")
    lines = out.splitlines()
    assert lines[:8] == [
        "## lattigo-fleet plan · 4 stacks",
        "",
        "**1 of 4 change the Lattigo account**; **2 failed: nothing will be applied for them**.",
        "",
        "| stack | SIMs changed | calls | guard | plan |",
        "| --- | ---: | ---: | --- | --- |",
        "| `north` | — | — | **no plan**: the job ended before it kept one (see its log) | — |",
        f"| `west` | 5 | 5 | **refused** (5 out of service, limit 1) | `{west_doc['digest'][7:19]}` |",
    ]
    assert lines[8] == f"| `east` | 6 | 5 | passes (1 out of service, limit 5) | `{east_doc['digest'][7:19]}` |"
    assert lines[9] == "| `quiet` | — | — | — | — |"
    # Only a plan the merge may apply is marked: the refused one is not.
    assert digests(out) == {"east": east_doc["digest"]}
    sections = out.split("\n---\n\n")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "## lattigo-fleet plan · stack `west`",
        "## lattigo-fleet plan · stack `east`",
        "## lattigo-fleet plan · stack `quiet`",
    ]
    assert sections[1] == (east / "plan.md").read_text(), "a stack's plan as its job printed it"


def test_no_stack_changed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["plan", "--stacks", "[]"], capsys)
    assert code == 0 and out == "## lattigo-fleet plan · 0 stacks\n\n**No stack changed**: nothing to plan.\n"


def test_too_long_for_one_comment_each_cut_stack_says_where_its_full_plan_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twenty stacks of 15,000 characters each and a short one: the short one whole, the others cut in equal
    shares, the summary whole; the comment under GitHub's limit."""
    rows = "".join(f"| truck-{i:05d} | `8901260000000{i:07d}` | cost center | a → b |\n" for i in range(220))
    dirs = [plan_dir(tmp_path, "a-short", "create", 0)]
    for n in range(20):
        head = f"## lattigo-fleet plan · stack `s{n:02d}`\n\n<details><summary>SIMs</summary>\n\n"
        dirs.append(plan_dir(tmp_path, f"s{n:02d}", "changes", 0, head + rows))
    code, out, err = run(["plan", *map(str, dirs), "--see", " (run https://ci/1)"], capsys)
    assert code == 0 and len(out) <= COMMENT_LIMIT < GITHUB_LIMIT
    assert "cut to fit the size limit: stack(s) s00, s01" in err
    summary, *sections = out.split("\n---\n\n")
    assert summary.count("\n| `") == 21 and len(digests(out)) == 21, "the summary is never cut"
    short = next(s for s in sections if s.startswith("## lattigo-fleet plan · stack `a-short`"))
    assert short == (dirs[0] / "plan.md").read_text()
    cut = [s for s in sections if "is cut here" in s]
    assert len(cut) == 20
    for section in cut:
        stack = section.splitlines()[0].split("`")[1]
        assert section.endswith(
            f"the full plan is in the job summary of its plan job and its artifact `fleet-plan-7-{'b' * 40}-{stack}`"
            " (run https://ci/1)._\n"
        ), section[-400:]
        assert section.count("<details>") == section.count("</details>"), "a fold it opened is closed"
        assert all(line.startswith(("|", "#", "<", "_")) or not line for line in section.splitlines()), "cut at a line"


@pytest.mark.parametrize(
    ("lengths", "budget", "room"),
    [
        ([10, 20], 100, [10, 20]),
        ([10, 100, 100], 110, [10, 50, 50]),
        ([60, 60], 100, [50, 50]),
        ([], 100, []),
        ([5, 5], -3, [0, 0]),
    ],
)
def test_shares_give_what_a_short_section_leaves_to_the_long_ones(
    lengths: list[int], budget: int, room: list[int]
) -> None:
    assert shares(lengths, budget) == room


IN_SYNC = "## lattigo-fleet drift · stack `{}`\n\n**In sync: the live account matches fleet.yaml.**\n"
DRIFT = "## lattigo-fleet drift · stack `{}`\n\n**Drift: 1 drifted field(s) on 1 SIM(s).**\n\n| SIM | ... |\n"


@pytest.mark.parametrize(
    ("reports", "expected", "code"),
    [
        ({"east": (2, DRIFT), "north": (0, IN_SYNC), "west": (2, DRIFT)}, ["east", "west"], 2),
        ({"east": (0, IN_SYNC), "north": (0, IN_SYNC)}, [], 0),
        ({"east": (0, IN_SYNC)}, [], 1),  # west, expected, kept no report: nothing to close the issue on
        ({"east": (2, DRIFT)}, ["east"], 2),  # drift found: the issue is kept, west's row says it is missing
    ],
)
def test_drift_one_issue_with_a_section_per_stack_that_drifted(
    tmp_path: Path,
    reports: dict[str, tuple[int, str]],
    expected: list[str],
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dirs = [str(drift_dir(tmp_path, stack, c, text.format(stack))) for stack, (c, text) in reports.items()]
    stacks = sorted({*reports, "west"} if code == 1 or len(reports) == 1 else reports)
    got, out, _ = run(["drift", *dirs, "--stacks", json.dumps(stacks)], capsys)
    assert got == code
    shown = [line.split("`")[1] for line in out.splitlines() if line.startswith("## lattigo-fleet drift · stack ")]
    assert shown == expected
    for stack in stacks:
        assert f"| `{stack}` |" in out
    if "north" in reports:
        assert "| `north` | in sync |" in out
    if code == 2:
        assert "| `east` | **drift**: Drift: 1 drifted field(s) on 1 SIM(s). |" in out


def test_a_report_that_is_not_one_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = run(["plan", str(tmp_path / "empty")], capsys)
    assert (code, out) == (
        1,
        "",
    ) and err == f"lattigo-fleet combine: {tmp_path / 'empty'}: no stack.json: not the report of a stack's job\n"
    east = plan_dir(tmp_path, "east", "changes", 0)
    doc = json.loads((east / "fleet-plan.json").read_text())
    doc["stack"] = "west"
    doc["digest"] = plan_document.digest(doc)
    plan_document.write(doc, east / "fleet-plan.json")
    code, _, err = run(["plan", str(east)], capsys)
    assert code == 1 and err.endswith("the plan of stack 'west', not of 'east'\n") and len(err.splitlines()) == 1
    code, _, err = run(["plan", "--stacks", "a b/c"], capsys)
    assert code == 1 and err == "lattigo-fleet combine: --stacks: 'b/c' is not a stack name\n"


def test_a_cut_section_says_where_the_job_keeps_its_full_report(tmp_path: Path) -> None:
    """A GitLab job has no job summary: its stack.json says where the full report is."""
    directory = plan_dir(tmp_path, "east", "changes", 0, "## lattigo-fleet plan · stack `east`\n\n" + "| x |\n" * 3000)
    meta = json.loads((directory / "stack.json").read_text())
    (directory / "stack.json").write_text(json.dumps({**meta, "full": "the log and artifacts of its job https://j/1"}))
    text, cut = combine.combine(combine.read_reports([directory], "plan", []), "plan", limit=4000)
    assert cut == ["east"] and len(text) <= 4000
    assert text.endswith("the full plan is in the log and artifacts of its job https://j/1._\n"), text[-300:]
