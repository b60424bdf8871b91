"""The comment stays under the size limit whatever the fleet, and says what it cut: a preview of 5,000 SIMs
with 500 changes, built from steps of a captured one (so it runs in a fraction of a second)."""

from __future__ import annotations

import argparse
import copy
import io
import json
from pathlib import Path
from typing import Any

from lattigo_fleet.commands import plan

FIXTURES = Path(__file__).parent / "fixtures"


def _template(doc: dict[str, Any], name: str, op: str) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in doc["steps"] if s["op"] == op and s["urn"].endswith(f"::{name}"))
    return step


def _renamed(step: dict[str, Any], i: int) -> dict[str, Any]:
    """The step of SIM number i: its ICCID, URN and name replaced."""
    text = json.dumps(step)
    old_iccid = step["urn"].rsplit("::", 1)[-1]
    state: dict[str, Any] = step.get("newState") or step["oldState"]
    old_name = state["inputs"]["name"]
    iccid = f"8901990{i:013d}"
    text = text.replace(old_iccid, iccid).replace(f'"{old_name}"', f'"sim-{i:05d}"')
    renamed: dict[str, Any] = json.loads(text)
    return renamed


def synthetic_preview(total: int, plan_of: dict[str, int], note: str | None = None) -> str:
    """`plan_of`: how many SIMs of each kind change (cost_center, notes, suspend, activate, usage_limit,
    restore); the other SIMs are unchanged. As in a real preview, every SIM in the stack has its refresh step,
    and an unchanged one nothing else (`pulumi preview --json` lists no `same` step for it)."""
    changes = json.loads((FIXTURES / "changes.json").read_text())
    create = json.loads((FIXTURES / "create.json").read_text())
    templates = {
        "cost_center": _template(changes, "89012600000000000001", "update"),
        "notes": _template(changes, "89012600000000000002", "update"),
        "suspend": _template(changes, "89012600000000000003", "update"),
        "usage_limit": _template(changes, "89012600000000000004", "update"),
        "restore": _template(changes, "89012600000000000008", "update"),
        "activate": _template(create, "89012600000000000009", "create"),
    }
    refresh = _template(changes, "89012600000000000005", "refresh")
    steps: list[dict[str, Any]] = []
    i = 0
    kinds = [k for k, n in plan_of.items() for _ in range(n)]
    kinds += ["same"] * (total - len(kinds))
    for kind in kinds:
        i += 1
        step = None if kind == "same" else _renamed(copy.deepcopy(templates[kind]), i)
        if note is not None and kind == "notes":
            assert step is not None
            step["newState"]["inputs"]["notes"] = {"note1": note}
        if kind != "activate":
            steps.append(_renamed(copy.deepcopy(refresh), i))
        if kind != "same":  # an unchanged resource has its refresh step alone in the document
            steps.append(_renamed(copy.deepcopy(templates[kind]), i) if step is None else step)
    doc = {"steps": steps, "diagnostics": changes["diagnostics"], "changeSummary": {}, "config": {}}
    return json.dumps(doc)


def render(text: str) -> tuple[str, str, int]:
    out, log = io.StringIO(), io.StringIO()
    args = argparse.Namespace(from_file="-", json=False, stack=None, cwd=None)
    code = plan.main(args, out=out, log=log, stdin=io.StringIO(text))
    return out.getvalue(), log.getvalue(), code


def test_5000_sims_with_500_changes_stay_under_the_limit_and_name_what_was_cut() -> None:
    text = synthetic_preview(
        5000, {"activate": 20, "suspend": 30, "restore": 10, "cost_center": 300, "notes": 100, "usage_limit": 40}
    )
    comment, log, code = render(text)  # how long it takes is a benchmark's question, not a test's
    assert code == 0
    assert len(comment) < plan.COMMENT_LIMIT
    # Every change is counted, whatever was cut.
    for label, count in (
        ("activate", 20),
        ("suspend", 30),
        ("restore", 10),
        ("cost center", 300),
        ("notes", 100),
        ("usage limit", 40),
    ):
        assert f"| {label} | {count} |" in comment
    # Activations and suspensions are never the ones cut.
    for i in range(1, 61):
        assert f"8901990{i:013d}" in comment
    assert "**500 SIM(s) change in the Lattigo account.**" in comment
    assert "<details><summary>500 SIMs, activations and suspensions first</summary>" in comment
    # What was cut is counted and named, and the job log has every SIM.
    cut_line = next(line for line in comment.splitlines() if line.startswith("_… and"))
    shown = comment.count("| `8901990")
    assert shown < 500
    assert shown == 300  # all activations, suspensions, restores; the first 100 of each routine kind
    assert cut_line == "_… and 200 more cost-center moves: see the job log._"
    assert log.count("\n  sim-") == 500


def test_the_worst_case_stays_under_the_limit() -> None:
    """Every SIM changes, with the longest notes, characters that Markdown and HTML care about, and a flood
    of warnings."""
    note = ("|`<details>` " * 10)[:100]
    text = json.loads(synthetic_preview(5000, {"notes": 5000}, note=note))
    text["diagnostics"] = [{"severity": "warning", "message": "warning: " + "w" * 5000 + "\n"}] * 5000
    comment, _log, _code = render(json.dumps(text))
    assert len(comment) < plan.COMMENT_LIMIT
    assert "4,970 more warnings: see the job log" in comment
    cut_line = next(line for line in comment.splitlines() if line.startswith("_… and"))
    assert cut_line.endswith("more note changes: see the job log._")
    assert comment.rstrip().endswith("</details>")


def test_a_short_list_is_not_folded() -> None:
    comment, _log, _code = render(synthetic_preview(50, {"cost_center": 3}))
    assert "<details>" not in comment and comment.count("| `8901990") == 3
