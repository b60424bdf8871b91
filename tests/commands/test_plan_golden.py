"""`lattigo-fleet plan` against previews captured from real runs: the comment and its JSON, pinned as golden
files (tests/commands/golden/). After a deliberate change of the output: UPDATE_GOLDEN=1 pytest this file,
then read the diff of the golden files."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

from lattigo_fleet.commands import plan

HERE = Path(__file__).parent
FIXTURES, GOLDEN = HERE / "fixtures", HERE / "golden"
CASES = ["create", "changes", "remove_suspend", "refused", "drift", "unreachable"]


def run_plan(name: str, *, as_json: bool) -> tuple[int, str, str]:
    out, log = io.StringIO(), io.StringIO()
    plan_file = FIXTURES / f"{name}.plan.json"
    args = argparse.Namespace(
        from_file=str(FIXTURES / f"{name}.json"),
        plan_file=str(plan_file) if plan_file.exists() else None,
        json=as_json,
        stack=None,
        cwd=None,
    )
    code = plan.main(args, out=out, log=log)
    return code, out.getvalue(), log.getvalue()


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("name", CASES)
def test_markdown_comment_matches_its_golden_file(name: str) -> None:
    _code, text, _log = run_plan(name, as_json=False)
    check_golden(GOLDEN / f"{name}.md", text)


@pytest.mark.parametrize("name", CASES)
def test_json_matches_its_golden_file(name: str) -> None:
    _code, text, _log = run_plan(name, as_json=True)
    json.loads(text)
    check_golden(GOLDEN / f"{name}.json", text)


def test_one_of_each_change_is_counted_and_listed_with_old_and_new_values() -> None:
    code, text, _log = run_plan("changes", as_json=True)
    doc = json.loads(text)
    assert code == 0
    assert doc["counts"] == {"suspend": 1, "restore": 1, "cost_center": 1, "notes": 1, "usage_limit": 1, "forget": 1}
    rows = {(c["sim"], c["field"]): (c["old"], c["new"], c["action"]) for c in doc["changes"]}
    assert rows == {
        ("truck-1", "cost_center"): ("ops", "Fleet-East", "cost_center"),
        ("truck-2", "notes.note1"): (None, "east depot", "notes"),
        ("truck-3", "state"): ("active", "suspended", "suspend"),
        ("truck-4", "usage_limit"): (None, {"kb_limit": 51200, "action": "suspend", "usernames": []}, "usage_limit"),
        ("truck-8", "state"): ("suspended", "active", "restore"),
        ("truck-6", None): (None, None, "forget"),
    }


def test_new_sims_say_adopted_or_activated_with_the_rate_plan() -> None:
    _code, text, _log = run_plan("create", as_json=True)
    doc = json.loads(text)
    assert doc["counts"] == {"activate": 1, "adopt": 8}
    adopted = [c for c in doc["changes"] if c["action"] == "adopt"]
    assert [(c["sim"], c["field"], c["new"]) for c in adopted] == [
        (f"truck-{i}", "origin", "adopted") for i in range(1, 9)
    ]
    activated = [c for c in doc["changes"] if c["action"] == "activate"]
    assert [(c["sim"], c["field"], c["new"]) for c in activated] == [
        ("truck-9", "origin", "activated"),
        ("truck-9", "rate_plan", "ACME Co 5mb Rate Plan"),
    ]
    _code, markdown, _log = run_plan("create", as_json=False)
    table = markdown[markdown.index("### SIMs") :]
    assert table.index("truck-9") < table.index("truck-1")  # activations first


def test_a_removal_under_on_remove_suspend_is_a_suspension() -> None:
    _code, text, _log = run_plan("remove_suspend", as_json=True)
    doc = json.loads(text)
    assert doc["counts"] == {"forget_suspend": 1}
    assert doc["changes"] == [
        {
            "sim": "truck-7",
            "iccid": "89012600000000000007",
            "field": "state",
            "old": "active",
            "new": "suspended",
            "action": "forget_suspend",
        }
    ]


def test_a_refusal_by_the_guard_is_shown_first_and_fails_the_job() -> None:
    code, text, log = run_plan("refused", as_json=False)
    assert code == 1
    assert text.splitlines()[2] == "> [!CAUTION]"
    assert "Refused by the blast-radius guard (5 SIMs out of service)" in text
    assert "| **refused by the guard** (policy.max_changes) | **5** |" in text
    assert log.count("\n") == 1 and "refused by the blast-radius guard" in log


def test_a_failed_preview_shows_its_errors_and_exits_1() -> None:
    code, text, log = run_plan("unreachable", as_json=False)
    assert code == 1
    assert "The preview failed" in text and "cannot read the Lattigo account at http://127.0.0.1:9" in text
    assert log.startswith("lattigo-fleet plan: the preview failed: cannot read the Lattigo account")
