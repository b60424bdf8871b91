"""`plan --json` and `drift --json` in the shape of Pulumi's own summary, `plan --gitlab-report` (GitLab's
Terraform report), and the full plan in GitHub's job summary when the comment had to be cut: from the previews
captured from real runs (tests/commands/fixtures/)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lattigo_fleet.commands import drift, plan, pulumi_summary
from lattigo_fleet.commands.preview_json import Preview, Step, parse_preview
from tests.commands.test_plan_size import synthetic_preview

FIXTURES = Path(__file__).parent / "fixtures"
SIM_TYPE = "pulumi-python:dynamic/lattigo:Sim"
URN = f"urn:pulumi:ci::lattigo-fleet::{SIM_TYPE}::"
PULUMI_KEYS = ["result", "durationSeconds", "changeSummary", "steps", "diagnostics"]
# What `plan --json` and `drift --json` held before Pulumi's keys came: kept, with the same values.
PLAN_KEYS = ["stack", "plan", "failed", "refused", "sims_changing", "counts", "changes"]
DRIFT_KEYS = [
    "stack",
    "in_sync",
    "counts",
    "drift",
    "unmanaged",
    "not_checked",
    "warnings",
    "left_alone",
    "stale_plans",
]


def iccid(i: int) -> str:
    return f"890126000000000000{i:02d}"


def run_plan(
    name: str,
    *,
    as_json: bool = True,
    plan_file: bool = True,
    gitlab: Path | None = None,
    environ: dict[str, str] | None = None,
    preview_text: str | None = None,
) -> tuple[int, str, str]:
    out, log = io.StringIO(), io.StringIO()
    document = FIXTURES / f"{name}.plan.json"
    args = argparse.Namespace(
        from_file="-" if preview_text is not None else str(FIXTURES / f"{name}.json"),
        plan_file=str(document) if plan_file and document.exists() else None,
        json=as_json,
        gitlab_report=str(gitlab) if gitlab else None,
        stack=None,
        cwd=None,
    )
    stdin = io.StringIO(preview_text) if preview_text is not None else None
    code = plan.main(args, out=out, log=log, stdin=stdin, environ=environ or {})
    return code, out.getvalue(), log.getvalue()


def plan_json(name: str, **kwargs: Any) -> dict[str, Any]:
    _code, text, _log = run_plan(name, **kwargs)
    doc: dict[str, Any] = json.loads(text)
    return doc


# --- plan --json -------------------------------------------------------------------------------------------


def test_plan_json_leads_with_pulumis_summary_and_keeps_its_own_keys_after_it() -> None:
    doc = plan_json("changes")
    assert list(doc) == PULUMI_KEYS + PLAN_KEYS
    assert (doc["result"], doc["durationSeconds"]) == ("succeeded", 0)
    # The 9 SIMs of the stack: 5 updated, 1 removed, 3 unchanged (the stack and the FleetGuard are not counted).
    assert doc["changeSummary"] == {"create": 0, "update": 5, "delete": 1, "same": 3}
    assert doc["counts"] == {"suspend": 1, "restore": 1, "cost_center": 1, "notes": 1, "usage_limit": 1, "forget": 1}
    assert len(doc["changes"]) == 6


def test_plan_steps_are_the_changed_sims_alone_in_the_comments_order() -> None:
    steps = plan_json("changes")["steps"]
    assert [(s["op"], s["sim"], s["actions"]) for s in steps] == [
        ("update", "truck-3", ["suspend"]),
        ("update", "truck-8", ["restore"]),
        ("delete", "truck-6", ["forget"]),
        ("update", "truck-1", ["cost_center"]),
        ("update", "truck-2", ["notes"]),
        ("update", "truck-4", ["usage_limit"]),
    ]
    unchanged = {iccid(5), iccid(7), iccid(9)}
    assert not unchanged & {s["iccid"] for s in steps}


def test_a_plan_step_has_pulumis_keys_then_each_field_before_and_after_and_the_calls() -> None:
    step = next(s for s in plan_json("changes")["steps"] if s["sim"] == "truck-1")
    assert step == {
        "op": "update",
        "urn": URN + iccid(1),
        "type": SIM_TYPE,
        "name": iccid(1),
        "diffs": ["cost_center"],
        "detailedDiff": {"cost_center": {"kind": "update", "inputDiff": True}},
        "sim": "truck-1",
        "iccid": iccid(1),
        "actions": ["cost_center"],
        "fields": {"cost_center": {"before": "ops", "after": "Fleet-East"}},
        "calls": [{"kind": "cost_center", "cost_center": "Fleet-East"}],
        "note": None,
    }
    removed = next(s for s in plan_json("changes")["steps"] if s["sim"] == "truck-6")
    assert (removed["diffs"], removed["detailedDiff"], removed["fields"], removed["calls"]) == ([], None, {}, [])
    assert removed["note"] == "removed from fleet.yaml, on_remove: retain: nothing sent"


def test_adoptions_and_activations_are_creates() -> None:
    doc = plan_json("create")
    assert doc["changeSummary"] == {"create": 9, "update": 0, "delete": 0, "same": 0}
    by_sim = {s["sim"]: s for s in doc["steps"]}
    assert (by_sim["truck-1"]["actions"], by_sim["truck-1"]["calls"]) == (["adopt"], [])
    assert by_sim["truck-9"]["actions"] == ["activate"]
    assert by_sim["truck-9"]["fields"] == {
        "origin": {"before": None, "after": "activated"},
        "rate_plan": {"before": None, "after": "ACME Co 5mb Rate Plan"},
    }
    assert [c["kind"] for c in by_sim["truck-9"]["calls"]] == ["activate"]


def test_a_refused_plan_fails_and_lists_what_the_guard_refused_with_the_sims_urns() -> None:
    doc = plan_json("refused")
    assert doc["result"] == "failed"
    # The guard stopped the preview before any SIM's step: the plan document says what each would do.
    assert doc["changeSummary"] == {"create": 0, "update": 0, "delete": 5, "same": 0}
    assert [(s["op"], s["urn"], s["actions"]) for s in doc["steps"]] == [
        ("delete", URN + iccid(i), ["forget_suspend"]) for i in (4, 5, 7, 8, 9)
    ]
    assert doc["steps"][0]["fields"] == {"state": {"before": "active", "after": "suspended"}}


def test_a_failed_preview_counts_nothing_it_did_not_reach() -> None:
    doc = plan_json("unreachable")
    assert (doc["result"], doc["steps"]) == ("failed", [])
    assert doc["changeSummary"] == {"create": 0, "update": 0, "delete": 0, "same": 0}
    assert [d["severity"] for d in doc["diagnostics"]] == ["error", "error"]


def test_a_pulumi_update_that_sends_no_call_is_a_step_with_no_action() -> None:
    doc = json.loads((FIXTURES / "changes.plan.json").read_text())
    doc["sims"] = [e for e in doc["sims"] if e["name"] != "truck-1"]  # the account already holds Fleet-East
    report = plan.build_report(parse_preview((FIXTURES / "changes.json").read_text()), doc)
    found = plan.render_json(report)
    step = found["steps"][-1]
    assert (step["op"], step["sim"], step["actions"], step["calls"]) == ("update", "truck-1", [], [])
    assert step["fields"] == {"cost_center": {"before": "ops", "after": "Fleet-East"}}  # the stack's record
    assert found["changeSummary"]["update"] == 5 and found["counts"].get("cost_center") is None


def test_without_the_plan_document_the_calls_are_not_known() -> None:
    steps = plan_json("changes", plan_file=False)["steps"]
    assert {s["sim"]: s["calls"] for s in steps} == {f"truck-{i}": None for i in (1, 2, 3, 4, 6, 8)}


def test_the_duration_is_pulumis_in_whole_seconds() -> None:
    text = json.loads((FIXTURES / "changes.json").read_text())
    text["duration"] = 3_999_000_000  # nanoseconds, as Pulumi writes a Go time.Duration
    assert plan_json("changes", preview_text=json.dumps(text))["durationSeconds"] == 3
    assert parse_preview(json.dumps(text)).duration_seconds == 3


def test_a_replacement_is_one_step() -> None:
    steps = [
        Step("create-replacement", URN + iccid(1)),
        Step("replace", URN + iccid(1), detailed_diff={"iccid": "update"}, input_diffs=frozenset({"iccid"})),
        Step("delete-replaced", URN + iccid(1)),
    ]
    found = pulumi_summary.sim_steps(Preview(steps, []))
    assert [(name, s.op, dict(s.detailed_diff)) for name, s in found.items()] == [
        (iccid(1), "replace", {"iccid": "update"})
    ]


# --- drift --json ------------------------------------------------------------------------------------------


def drift_json() -> dict[str, Any]:
    from tests.commands.test_drift_report import report

    return drift.render_json(report())


def test_drift_json_leads_with_pulumis_summary_and_keeps_its_own_keys_after_it() -> None:
    doc = drift_json()
    # No durationSeconds: the same account gives the same document, run after run.
    assert list(doc) == [k for k in PULUMI_KEYS if k != "durationSeconds"] + DRIFT_KEYS
    assert doc["result"] == "succeeded"
    assert doc["changeSummary"] == {"create": 0, "update": 3, "delete": 0, "same": 5}
    assert doc["counts"] == {"drift": 3, "drifted_sims": 3, "pending": 0, "unmanaged": 2}
    assert [d["iccid"] for d in doc["drift"]] == [iccid(1), iccid(2), iccid(5)]


def test_drift_steps_say_each_field_live_before_and_declared_after() -> None:
    steps = drift_json()["steps"]
    assert [(s["op"], s["sim"], s["kind"], s["fields"]) for s in steps] == [
        (
            "update",
            "truck-1",
            "drift",
            {"cost_center": {"before": "Warehouse", "after": "Fleet-East", "kind": "drift"}},
        ),
        ("update", "truck-2", "drift", {"notes.note1": {"before": "west", "after": "east depot", "kind": "drift"}}),
        ("update", "truck-5", "drift", {"state": {"before": "suspended", "after": "active", "kind": "drift"}}),
    ]
    assert steps[0]["urn"] == URN + iccid(1) and steps[0]["calls"] is None  # no plan document given
    assert steps[0]["detailedDiff"] == {"cost_center": {"kind": "update", "inputDiff": True}}


# --- the GitLab report -------------------------------------------------------------------------------------


def test_every_action_of_the_comment_maps_to_one_pulumi_operation() -> None:
    assert set(pulumi_summary.ACTION_OPS) == set(plan.BY_KEY)
    assert {op for op in pulumi_summary.ACTION_OPS.values()} == {"create", "update", "delete"}
    assert {a for a, op in pulumi_summary.ACTION_OPS.items() if op == "create"} == {"activate", "adopt"}
    assert {a for a, op in pulumi_summary.ACTION_OPS.items() if op == "delete"} == {
        "forget",
        "forget_suspend",
        "removed",
    }


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("create", {"create": 9, "update": 0, "delete": 0}),  # 8 adoptions and 1 activation
        ("changes", {"create": 0, "update": 5, "delete": 1}),
        ("remove_suspend", {"create": 0, "update": 0, "delete": 1}),  # suspended, then forgotten
        ("refused", {"create": 0, "update": 0, "delete": 5}),  # what the merge request asks for
        ("drift", {"create": 0, "update": 3, "delete": 0}),
    ],
)
def test_the_gitlab_report_counts_the_sims_created_updated_and_deleted(
    tmp_path: Path, name: str, counts: dict[str, int]
) -> None:
    path = tmp_path / "gitlab-report.json"
    _code, _text, log = run_plan(name, as_json=False, gitlab=path)
    assert json.loads(path.read_text()) == counts
    assert list(json.loads(path.read_text())) == ["create", "update", "delete"]  # GitLab's keys, nothing else
    assert f"wrote the GitLab report {path} ({counts['create']} to add, {counts['update']} to change" in log


def test_the_gitlab_report_is_written_with_json_output_too(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    code, text, _log = run_plan("changes", gitlab=path)
    assert code == 0 and json.loads(text)["changeSummary"]["update"] == 5
    assert json.loads(path.read_text()) == {"create": 0, "update": 5, "delete": 1}


def test_a_failed_preview_writes_no_gitlab_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    code, _text, log = run_plan("unreachable", as_json=False, gitlab=path)
    assert code == 1 and not path.exists()
    assert f"no GitLab report written to {path}: the preview failed" in log


def test_an_unwritable_gitlab_report_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _log = run_plan("changes", as_json=False, gitlab=tmp_path / "missing" / "report.json")
    err = capsys.readouterr().err
    assert code == 1 and text == ""
    assert err.startswith("lattigo-fleet plan: cannot write the GitLab report to ") and err.count("\n") == 1


def test_a_replacement_counts_as_a_delete_and_a_create_and_counts_are_capped_as_gitlab_caps_them() -> None:
    assert pulumi_summary.gitlab_report({"replace": 2, "update": 1, "same": 40}) == {
        "create": 2,
        "update": 1,
        "delete": 2,
    }
    assert pulumi_summary.gitlab_report({"update": 2_000_000})["update"] == 999_999


def test_the_flag() -> None:
    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    assert parser.parse_args(["--gitlab-report", "tf.json"]).gitlab_report == "tf.json"
    assert parser.parse_args([]).gitlab_report is None


# --- the full plan in the job summary ----------------------------------------------------------------------

BIG = synthetic_preview(5000, {"suspend": 30, "cost_center": 300, "notes": 100})


def test_a_cut_comment_puts_the_full_plan_in_the_job_summary_and_says_so(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    code, comment, log = run_plan(
        "big", as_json=False, plan_file=False, preview_text=BIG, environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert code == 0 and len(comment) < plan.COMMENT_LIMIT
    cut_line = next(line for line in comment.splitlines() if line.startswith("_… and"))
    assert cut_line == "_… and 200 more cost-center moves: the full plan is in the job summary._"
    full = summary.read_text()
    assert full.count("| `8901990") == 430  # every SIM that changes, no routine kind cut
    assert "_… and" not in full
    assert "the full plan is in the job summary ($GITHUB_STEP_SUMMARY)" in log
    assert log.count("\n  sim-") == 430  # the job log still lists every SIM


def test_the_job_summary_is_appended_to_never_replaced(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("# an earlier step's summary\n")
    run_plan("big", as_json=False, plan_file=False, preview_text=BIG, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert text.startswith("# an earlier step's summary\n\n## lattigo-fleet plan")


def test_without_the_variable_nothing_is_written_and_the_note_points_at_the_job_log(tmp_path: Path) -> None:
    _code, comment, _log = run_plan("big", as_json=False, plan_file=False, preview_text=BIG, environ={})
    assert comment.count("see the job log._") == 1 and "job summary" not in comment
    assert list(tmp_path.iterdir()) == []


def test_a_comment_that_was_not_cut_writes_no_job_summary(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    _code, comment, _log = run_plan("changes", as_json=False, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert not summary.exists() and "job summary" not in comment
    _code, _text, _log = run_plan(
        "big", preview_text=BIG, plan_file=False, environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert not summary.exists()  # --json is never cut


def test_a_job_summary_that_cannot_be_written_leaves_the_note_on_the_job_log(tmp_path: Path) -> None:
    summary = tmp_path / "missing" / "step_summary.md"
    code, comment, log = run_plan(
        "big", as_json=False, plan_file=False, preview_text=BIG, environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert code == 0 and "job summary" not in comment and "see the job log._" in comment
    assert "lattigo-fleet plan: cannot add the full plan to the job summary: " in log


def test_a_plan_too_long_even_for_the_job_summary_stays_under_githubs_limit_and_says_so() -> None:
    report = plan.build_report(parse_preview(BIG))
    full = plan.full_plan(report, budget=20_000)
    assert len(full.encode("utf-8")) <= 20_000
    assert full.rstrip().splitlines()[-3].startswith("_… and") and "see the job log._" in full
