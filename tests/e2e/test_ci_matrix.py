"""The templates for an account as many stacks (ci/github/stacks/, the action's matrix mode) run as written.

The runner is tests/e2e/test_ci_templates.py's (its docstring says what it substitutes): every job of each
workflow in the order of its `needs:`, a matrix job once per stack, the action's own steps, the fake forge.
The account is three stacks of one project, `east`, `west` and `north`, two SIMs each, every stack with its
fleet file under fleets/ and the three listed as siblings, as docs/ci.md lays them out. The story: a pull
request that changes one of the three plans that one alone and posts ONE comment (the summary, its plan, its
digest); its merge applies that stack alone; a nightly drift with drift in two stacks keeps ONE issue with a
section for each, closed once both are in sync again. The same story runs on GitLab (ci/gitlab/stacks/: the
child pipeline that the component's stacks job writes). (This file is apart from test_ci_templates.py so
that pytest-xdist runs it beside that file's long tests.)
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.pulumi_stack import REPO
from emulator.server import EmulatorServer
from lattigo_fleet.commands.combine import digests
from tests.e2e.fleets import PLAN_5MB, iccid, imei
from tests.e2e.test_ci_templates import (
    ACTION,
    MR_IID,
    PR_NUMBER,
    SECRET_INPUTS,
    SECRETS,
    Account,
    Runner,
    WorkflowRun,
    clear_requests,
    gitlab_job,
    gitlab_pipeline,
    load,
    mutating,
    shell,
)
from tests.e2e.test_readme import real_cache_dir

GITLAB_STACKS = REPO / "ci" / "gitlab" / "stacks" / ".gitlab-ci.yml"
WORKFLOWS = {
    name: REPO / "ci" / "github" / "stacks" / f"{name}.yml" for name in ("pull-request", "merge", "nightly-drift")
}
STACKS = {"east": (1, 2), "west": (3, 4), "north": (5, 6)}  # stack -> its SIMs (tests.e2e.fleets numbering)
VARIABLES = {  # the repository's variables (docs/ci.md), as the workflows read them
    "vars.LATTIGO_FLEET_MAX_PARALLEL": "2",
    "vars.LATTIGO_FLEET_REQUESTS_PER_SECOND": "",
    "vars.LATTIGO_FLEET_ACCOUNT_SNAPSHOT": "",
}


def fleet_file(stack: str, notes: dict[int, str] | None = None) -> str:
    rows = "".join(
        f'  - {{iccid: "{iccid(i)}", imei: "{imei(i)}", name: {stack}-{i}, cost_center: logistics'
        + (f", notes: {{note: {(notes or {})[i]}}}" if i in (notes or {}) else "")
        + "}\n"
        for i in STACKS[stack]
    )
    return f'version: 1\ndefaults: {{rate_plan: "{PLAN_5MB}"}}\nsims:\n{rows}'


def onboard_stacks(runner: Runner) -> None:
    """The fleet repository before the pull request: three stacks of the one account, each with its fleet file
    (fleets/<stack>.yaml) and the list of its siblings, each applied once (it adopts its SIMs: nothing sent)."""
    work = runner.checkout()
    (work / "fleets").mkdir()
    for stack in STACKS:
        (work / "fleets" / f"{stack}.yaml").write_text(fleet_file(stack))
    env = {**runner.base_env(), **{k: v for k, v in runner.account.gitlab_variables().items() if k in SECRETS}}
    names = ",".join(STACKS)
    script = ['eval "$(make -s env)"']
    for stack in STACKS:
        script += [
            f"pulumi stack init {stack} --non-interactive",
            f"pulumi config set --stack {stack} lattigo-fleet:fleetFile fleets/{stack}.yaml",
            f"pulumi config set --stack {stack} lattigo-fleet:siblingStacks {names}",
        ]
    # The three first applies at once, as the matrix runs them: each adopts its own SIMs.
    script += [
        f"pulumi up --yes --non-interactive --stack {stack} > up-{stack}.log 2>&1 & pids+=($!)" for stack in STACKS
    ]
    script += ['for pid in "${pids[@]}"; do wait "$pid" || { cat up-*.log; exit 1; }; done']
    shell(work, env, "\n".join(script))
    runner.committed = {
        **{f"fleets/{s}.yaml": (work / "fleets" / f"{s}.yaml").read_text() for s in STACKS},
        **{f"Pulumi.{s}.yaml": (work / f"Pulumi.{s}.yaml").read_text() for s in STACKS},
    }


def set_cost_center(endpoint: str, sims: dict[int, str]) -> None:
    """Out of band, as in the portal."""
    rows = [{"iccid": iccid(i), "cost_center": cost_center} for i, cost_center in sims.items()]
    requests.post(f"{endpoint}/_emulator/sims", timeout=30, json={"sims": rows}).raise_for_status()


def listings(endpoint: str) -> list[dict[str, Any]]:
    """The requests that list the account (its pages)."""
    log = requests.get(f"{endpoint}/_emulator/requests", timeout=30).json()
    rows: list[dict[str, Any]] = log.get("requests", log) if isinstance(log, dict) else log
    return [r for r in rows if r["method"] == "GET" and re.fullmatch(r"/v2/devices/?", r["path"])]


def job_names(run: WorkflowRun, job: str) -> list[str]:
    return [j.name for j in run.jobs.get(job, [])]


def ok_run(run: WorkflowRun) -> WorkflowRun:
    failed = [j for jobs in run.jobs.values() for j in jobs if not j.ok]
    assert not failed, "\n".join(f"{j.name} failed at {j.failed_at!r}\n{j.log[-6000:]}" for j in failed)
    return run


@pytest.fixture
def three_stacks(emulator: EmulatorServer, tmp_path: Path, pulumi_bin: str) -> Iterator[Account]:
    emulator.reset("empty")
    assert emulator.key_name is not None and emulator.api_key is not None  # narrows: the fixture sets both
    assert (real_cache_dir() / "pulumi").is_dir(), "the pinned CLI should be in the machine's cache already"
    assert shutil.which("jq") and shutil.which("git"), "the fake gh runs `--jq` through jq; stacks reads git"
    emulator.add_sims(
        [
            {"iccid": iccid(i), "imei": imei(i), "state": "active", "cost_center": "logistics", "rate_plan": PLAN_5MB}
            for sims in STACKS.values()
            for i in sims
        ]
    )
    backend = tmp_path / "backend"
    backend.mkdir()
    try:
        yield Account(emulator.base_url, emulator.key_name, emulator.api_key, backend.as_uri())
    finally:
        for clone in tmp_path.glob("job-*"):
            if (clone / ".venv").is_symlink():
                (clone / ".venv").unlink()  # never let a cleanup follow it into the repo's venv
        emulator.reset("empty")


# --- the templates' shape ------------------------------------------------------------------------------------


def test_the_matrix_workflows_run_each_stack_apart_and_keep_the_secrets_in_one_step() -> None:
    action = load(ACTION)
    jobs = {name: load(path)["jobs"] for name, path in WORKFLOWS.items()}
    matrix_jobs = {"pull-request": "plan", "merge": "apply", "nightly-drift": "drift"}
    for name, job_name in matrix_jobs.items():
        job = jobs[name][job_name]
        # The list of stacks is the stacks job's (read from the repository), never typed here.
        assert job["strategy"] == {
            "fail-fast": False,
            "max-parallel": "${{ fromJSON(needs.stacks.outputs.parallel) }}",
            "matrix": {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"},
        }, name
        (call,) = [s for s in job["steps"] if s.get("uses") == "./"]
        assert call["with"]["stack"] == "${{ matrix.stack }}" and call["with"]["matrix"] is True, name
        # The account's budget is shared by the jobs that run at once: as many shares as the matrix's parallel.
        assert call["with"]["budget-shares"] == "${{ needs.stacks.outputs.parallel }}", name
        assert call["with"]["requests-per-second"] == "${{ vars.LATTIGO_FLEET_REQUESTS_PER_SECOND }}", name
        assert {k: v for k, v in call["with"].items() if k in SECRET_INPUTS.values()} == {
            field: f"${{{{ secrets.{secret} }}}}" for secret, field in SECRET_INPUTS.items()
        }, name
        stacks_call = next(s for s in jobs[name]["stacks"]["steps"] if s.get("uses") == "./")
        assert stacks_call["with"]["command"] == "stacks"
        assert stacks_call["with"]["max-parallel"] == "${{ vars.LATTIGO_FLEET_MAX_PARALLEL || '4' }}"
        assert not any(k in SECRET_INPUTS.values() for k in stacks_call["with"]), f"{name}: stacks reads no secret"
    # The jobs that write the comment and the issue have no secret of the account.
    for name, job_name in (("pull-request", "comment"), ("nightly-drift", "issue")):
        (call,) = [s for s in jobs[name][job_name]["steps"] if s.get("uses") == "./"]
        assert not set(call["with"]) & set(SECRET_INPUTS.values()), name
        assert "!cancelled()" in jobs[name][job_name]["if"], f"{name}: {job_name} runs after failed stacks too"
    # In the action, each new command's secrets reach one step alone (snapshot), and none reach the others.
    for command, expected in (("snapshot", ["Read the account once"]), ("stacks", []), ("comment", [])):
        steps = [s for s in action["runs"]["steps"] if f"inputs.command == '{command}'" in str(s.get("if"))]
        with_secrets = [s["name"] for s in steps if any(f"inputs.{f}" in json.dumps(s) for f in SECRET_INPUTS.values())]
        assert with_secrets == expected, command
    # The pull request's checkouts hold data alone: its fleet files (and, for the stacks job, its settings,
    # whose paths it only diffs); the merge is applied with main's environment and never from a fork.
    plan_checkout = next(s for s in jobs["pull-request"]["plan"]["steps"] if (s.get("with") or {}).get("path"))
    assert plan_checkout["with"]["sparse-checkout"].split() == ["fleets", "fleet.yaml", "fleet.d"]
    assert "head.repo.full_name == github.repository" in jobs["pull-request"]["stacks"]["if"]
    assert jobs["merge"]["apply"]["environment"] == "lattigo-fleet-apply"
    assert load(WORKFLOWS["merge"])["concurrency"] == {"group": "fleet-apply", "cancel-in-progress": False}


def test_the_gitlab_pipeline_is_one_include_and_the_child_it_writes() -> None:
    (include,) = load(GITLAB_STACKS)["include"]
    assert include["inputs"]["command"] == "stacks"
    assert include["inputs"]["component"] == include["component"], "the child includes the same component"
    doc = gitlab_pipeline(path=GITLAB_STACKS)
    run = gitlab_job(doc, "fleet-stacks-run")
    assert run["trigger"] == {
        "include": [{"artifact": "fleet-stacks.yml", "job": "fleet-stacks"}],
        "strategy": "depend",
    }
    assert run["needs"] == ["fleet-stacks"] and run["rules"] == gitlab_job(doc, "fleet-stacks")["rules"]
    assert gitlab_job(doc, "fleet-stacks")["artifacts"]["paths"] == ["fleet-stacks.yml"]
    assert "environment" not in gitlab_job(doc, "fleet-stacks"), "the parent's job has no write key"


# --- the story -------------------------------------------------------------------------------------------


def test_github_matrix_plans_applies_and_reports_drift_per_stack(tmp_path: Path, three_stacks: Account) -> None:
    runner = Runner(tmp_path, three_stacks, {})
    onboard_stacks(runner)
    main = dict(runner.committed)

    # A pull request from a fork is not planned: no job runs.
    fork = runner.run_workflow(
        WORKFLOWS["pull-request"], expressions={**VARIABLES, "github.event.pull_request.head.repo.full_name": "x/y"}
    )
    assert set(fork.results.values()) == {"skipped"} and not fork.jobs

    # The pull request changes west's fleet file alone: only west is planned, and ONE comment shows the summary
    # of the stacks planned, then west's plan with its digest (the marker the merge of west reads).
    head = "b1" * 20
    changed = {**main, "fleets/west.yaml": fleet_file("west", {3: "west depot"})}
    plan = ok_run(runner.run_workflow(WORKFLOWS["pull-request"], head=head, pr_files=changed, expressions=VARIABLES))
    assert plan.results == {"stacks": "success", "snapshot": "skipped", "plan": "success", "comment": "success"}
    assert plan.outputs["stacks"] == {"stacks": '["west"]', "count": "1", "parallel": "1"}
    assert job_names(plan, "plan") == ["plan (west)"]
    artifact = f"fleet-plan-{PR_NUMBER}-{head}-west"
    assert set(plan.artifacts) == {artifact}, "one artifact per stack planned"
    kept = Path(plan.artifacts[artifact])
    assert sorted(p.name for p in kept.iterdir()) == ["fleet-plan.json", "plan.md", "stack.json"]
    document = json.loads((kept / "fleet-plan.json").read_text())
    assert document["stack"] == "west" and document["counts"]["sims"] == 1
    (west_job,) = plan.jobs["plan"]
    assert west_job.summary is not None and "west depot" in west_job.summary.read_text(), "its full plan"
    (comment,) = runner.forge.db["comments"][PR_NUMBER]
    summary, _, sections = comment.partition("\n---\n")
    assert summary.startswith("## lattigo-fleet plan · 1 stack\n"), comment
    row = next(line for line in summary.splitlines() if line.startswith("| `west` |"))
    assert re.fullmatch(r"\| `west` \| 1 \| 1 \| passes \(0 out of service, limit \d+\) \| `[0-9a-f]{12}` \|", row), row
    assert digests(comment) == {"west": document["digest"]}
    assert "## lattigo-fleet plan · stack `west`" in sections and "west depot" in sections, comment
    assert "`east`" not in comment and "`north`" not in comment, "the stacks the pull request leaves alone"
    (commenter,) = plan.jobs["comment"]
    assert [c["args"][:4] for c in commenter.calls if c["tool"] == "gh"] == [
        ["pr", "comment", PR_NUMBER, "--edit-last"],
        ["pr", "comment", PR_NUMBER, "--body-file"],
    ], "the first push makes the comment that later pushes edit"

    # The merge: the push changed west alone, whose job applies west's approved plan (found by its marker and
    # its artifact); nothing is sent for the other stacks.
    runner.forge.update(pulls={"c1" * 20: {"number": int(PR_NUMBER), "head": {"sha": head}}})
    runner.committed = changed
    clear_requests(three_stacks.endpoint)
    merged = ok_run(runner.run_workflow(WORKFLOWS["merge"], sha="c1" * 20, before=main, expressions=VARIABLES))
    assert merged.results == {"stacks": "success", "apply": "success"}
    assert job_names(merged, "apply") == ["apply (west)"]
    assert f"applied the approved plan {document['digest'][7:19]}" in merged.jobs["apply"][0].log
    sent = [json.dumps(r) for r in mutating(three_stacks.endpoint)]
    others = [iccid(i) for stack, sims in STACKS.items() for i in sims if i != 3]
    assert sent and all(iccid(3) in r and not any(o in r for o in others) for r in sent), sent

    # Nightly: every stack checked (two at once: LATTIGO_FLEET_MAX_PARALLEL); drift in east and west keeps ONE
    # issue with a section for each of the two, north in sync is a row of its summary.
    # The account is read once for the run (the snapshot job), not once per stack.
    set_cost_center(three_stacks.endpoint, {1: "Warehouse", 4: "Field-Service"})
    clear_requests(three_stacks.endpoint)
    nightly = ok_run(runner.run_workflow(WORKFLOWS["nightly-drift"], expressions=VARIABLES))
    assert nightly.outputs["stacks"] == {"stacks": '["east", "north", "west"]', "count": "3", "parallel": "2"}
    assert nightly.results == {"stacks": "success", "snapshot": "success", "drift": "success", "issue": "success"}
    assert job_names(nightly, "drift") == ["drift (east)", "drift (north)", "drift (west)"]
    assert len(listings(three_stacks.endpoint)) == 1, "one listing of the account for the three stacks"
    (issue,) = runner.forge.db["issues"]
    assert (issue["title"], issue["state"]) == ("Fleet drift", "open")
    body = issue["body"]
    assert body.startswith("## lattigo-fleet drift · 3 stacks\n\n**2 of 3 drifted from their fleet files**"), body
    assert "| `north` | in sync |" in body
    assert body.count("## lattigo-fleet drift · stack `") == 2, body
    for what in ("stack `east`", "east-1", "Warehouse", "stack `west`", "west-4", "Field-Service"):
        assert what in body, f"the drift issue does not name {what!r}\n{body}"
    assert "stack `north`" not in body

    # Both put back (in the portal): the next night closes the one issue.
    set_cost_center(three_stacks.endpoint, {1: "logistics", 4: "logistics"})
    ok_run(runner.run_workflow(WORKFLOWS["nightly-drift"], expressions=VARIABLES))
    assert [(i["title"], i["state"]) for i in runner.forge.db["issues"]] == [("Fleet drift", "closed")]


def test_gitlab_child_pipelines_plan_apply_and_report_drift_per_stack(tmp_path: Path, three_stacks: Account) -> None:
    runner = Runner(tmp_path, three_stacks, {})
    onboard_stacks(runner)
    main = dict(runner.committed)

    # The merge request changes west alone: the child pipeline plans west, then ONE note for all stacks.
    changed = {**main, "fleets/west.yaml": fleet_file("west", {3: "west depot"})}
    mr = runner.run_gitlab_pipeline(GITLAB_STACKS, source="merge_request_event", mr=MR_IID, mr_files=changed)
    child = mr.children["fleet-stacks-run"]
    assert mr.ok, "\n".join(j.log[-6000:] for j in [*mr.jobs.values(), *child.jobs.values()] if not j.ok)
    assert list(mr.jobs) == ["fleet-stacks"] and list(child.jobs) == ["fleet-plan: west", "fleet-comment"]
    (note,) = runner.forge.db["notes"]
    document = json.loads((child.jobs["fleet-plan: west"].checkout / "fleet-plan.json").read_text())
    assert note["body"].startswith("<!-- lattigo-fleet plan -->\n\n## lattigo-fleet plan · 1 stack\n"), note["body"]
    assert digests(note["body"]) == {"west": document["digest"]} and "west depot" in note["body"]
    assert "`east`" not in note["body"] and "`north`" not in note["body"]

    # The merge (a push to main): the child applies west's approved plan, and nothing else.
    runner.forge.update(gl_mrs=[{"iid": int(MR_IID), "state": "merged", "merge_commit_sha": "c1" * 20}])
    runner.committed = changed
    clear_requests(three_stacks.endpoint)
    merge = runner.run_gitlab_pipeline(GITLAB_STACKS, source="push", sha="c1" * 20, before=main)
    child = merge.children["fleet-stacks-run"]
    assert merge.ok, "\n".join(j.log[-6000:] for j in [*merge.jobs.values(), *child.jobs.values()] if not j.ok)
    assert list(child.jobs) == ["fleet-apply: west"]
    assert f"applied the approved plan {document['digest'][7:19]}" in child.jobs["fleet-apply: west"].log
    sent = [json.dumps(r) for r in mutating(three_stacks.endpoint)]
    others = [iccid(i) for sims in STACKS.values() for i in sims if i != 3]
    assert sent and all(iccid(3) in r and not any(o in r for o in others) for r in sent), sent

    # The schedule: every stack, the account read once; drift in east and west opens ONE issue (it closes by the
    # single stack's steps, which test_ci_templates.py runs, and as the GitHub story above shows for a matrix).
    set_cost_center(three_stacks.endpoint, {1: "Warehouse", 4: "Field-Service"})
    clear_requests(three_stacks.endpoint)
    nightly = runner.run_gitlab_pipeline(GITLAB_STACKS, source="schedule")
    child = nightly.children["fleet-stacks-run"]
    assert nightly.ok, "\n".join(j.log[-6000:] for j in [*nightly.jobs.values(), *child.jobs.values()] if not j.ok)
    assert list(child.jobs) == [
        "fleet-snapshot",
        "fleet-drift: east",
        "fleet-drift: north",
        "fleet-drift: west",
        "fleet-drift-issue",
    ]
    assert len(listings(three_stacks.endpoint)) == 1
    (issue,) = runner.forge.db["gl_issues"]
    assert (issue["title"], issue["state"]) == ("Fleet drift", "opened")
    assert issue["description"].count("## lattigo-fleet drift · stack `") == 2, issue["description"]
    assert "| `north` | in sync |" in issue["description"] and "Field-Service" in issue["description"]
