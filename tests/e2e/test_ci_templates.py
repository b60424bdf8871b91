"""The CI templates under ci/ run as written: every job's own steps, in order, against the emulator.

Each workflow file is parsed (ruamel.yaml) and its jobs' `run:` steps (GitHub) / `script:` lines (GitLab) are
executed in bash, with the `env:` / `variables:` the file declares, in a fresh temporary "checkout" per job (a
copy of the project like tests/e2e/test_readme.py makes, plus the fleet repository's committed files), with
no `pulumi` or `lattigo-fleet` on PATH: the job's own `make setup` / `make -s env` lines provide them. The
story is the one a fleet repository lives: pull request -> merge -> nightly drift report, then an
out-of-band change in the account and the nightly report again.

What is substituted, and nothing else:

- GitHub `${{ ... }}` in `env:` and `run:`: the values of GITHUB_EXPRESSIONS below (secrets: the emulator's
  URL and credentials, a temporary file backend, a passphrase; vars: the stack; github: the token, the
  repository, the pull request's number). Any other expression fails the test.
- GitHub `uses:` steps are not run: the temporary checkout stands for actions/checkout, this machine's
  Python 3.11, Go and CLI cache for setup-python, setup-go and actions/cache. `$GITHUB_ENV` and
  `$GITHUB_PATH` work as on a runner (a new file per step, read after it); each step runs in
  `bash --noprofile --norc -eo pipefail`, as `shell: bash` does.
- GitLab CI/CD variables and predefined variables: GITLAB_VARIABLES below. The jobs' `before_script:`
  (packages of the job's image: it must only run apt-get) is not run; the template's cache locations
  (CACHE_VARIABLES) keep this machine's, so nothing is rebuilt. The script lines run in one
  `bash --noprofile --norc -eo pipefail`, as the runner does.
- The forge: `gh` (GitHub) and `curl` (GitLab's REST API, the only URLs the scripts send to curl) are a fake
  first on PATH (FAKE_FORGE): it records each call with its arguments and the text of the body file it
  was given, and keeps the comments, notes and issues that a real forge would, in a JSON file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

from lattigo_fleet.engine_settings import ENGINE_ENV
from tests.e2e.harness import REPO
from tests.e2e.test_readme import make_clone, plain_env, real_cache_dir

CI = REPO / "ci"
GITHUB_WORKFLOWS = {name: CI / "github" / f"{name}.yml" for name in ("pull-request", "merge", "nightly-drift")}
GITLAB_PIPELINE = CI / "gitlab" / ".gitlab-ci.yml"
STACK = "prod"
PASSPHRASE = "a passphrase of the fleet repository's own"
PR_NUMBER = "7"
MR_IID = "7"
FORGE_TOKEN = "fake-forge-token"
GITLAB_API = "https://gitlab.example.com/api/v4"
MAKE_ENV = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
    **ENGINE_ENV,
}  # what `make -s env` exports
SECRETS = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "LATTIGO_ENDPOINT", "LATTIGO_KEY_NAME", "LATTIGO_API_KEY")
CACHE_VARIABLES = ("LATTIGO_FLEET_CACHE", "GOPATH", "GOCACHE", "GOMODCACHE")
DRIFTED_SIM = ("truck-0009", "89014103000211118008")  # declared with cost center Fleet-East


@dataclass
class Account:
    """Where the jobs' secrets point: the emulator (seeded with the demo account) and a file backend."""

    endpoint: str
    key_name: str
    api_key: str
    backend: str

    def github_expressions(self) -> dict[str, str]:
        return {
            "secrets.PULUMI_BACKEND_URL": self.backend,
            "secrets.PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "secrets.LATTIGO_ENDPOINT": self.endpoint,
            "secrets.LATTIGO_KEY_NAME": self.key_name,
            "secrets.LATTIGO_API_KEY": self.api_key,
            "vars.PULUMI_STACK": STACK,
            "github.token": FORGE_TOKEN,
            "github.repository": "acme/fleet",
            "github.event.pull_request.number": PR_NUMBER,
        }

    def gitlab_variables(self) -> dict[str, str]:
        return {
            "PULUMI_BACKEND_URL": self.backend,
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "LATTIGO_ENDPOINT": self.endpoint,
            "LATTIGO_KEY_NAME": self.key_name,
            "LATTIGO_API_KEY": self.api_key,
            "GITLAB_TOKEN": FORGE_TOKEN,
            "CI_API_V4_URL": GITLAB_API,
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": MR_IID,
            "CI_JOB_URL": "https://gitlab.example.com/acme/fleet/-/jobs/1",
        }


# --- the fake forge ----------------------------------------------------------------------------------------

FAKE_FORGE = r'''#!{python}
"""A fake `gh` / `curl` (GitLab REST API): records each call, keeps comments, notes and issues."""
import json, os, subprocess, sys, urllib.parse
STATE, TOKEN, API = {state!r}, {token!r}, {api!r}
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(STATE) as f:
    db = json.load(f)
call = {{"tool": tool, "args": args, "body": None}}
db["calls"].append(call)

def done(out="", code=0, err=""):
    with open(STATE, "w") as f:
        json.dump(db, f, indent=1)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)

def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default

def body_file(name="--body-file"):
    with open(opt(name)) as f:
        call["body"] = f.read()
    return call["body"]

def gh():
    if os.environ.get("GH_TOKEN") != TOKEN:
        done(code=4, err="gh: not authenticated\n")
    if args[:2] == ["pr", "comment"]:
        comments = db["comments"].setdefault(args[2], [])
        text = body_file()
        if "--edit-last" in args:
            if not comments:
                done(code=1, err="no comments found for current user\n")
            comments[-1] = text
        else:
            comments.append(text)
        done(f"https://github.com/acme/fleet/pull/{{args[2]}}#issuecomment-{{len(comments)}}\n")
    if args[:2] == ["issue", "list"]:
        fields = opt("--json").split(",")
        found = [{{k: i[k] for k in fields}} for i in db["issues"] if i["state"] == opt("--state", "open")]
        text = json.dumps(found)
        if "--jq" in args:
            text = subprocess.run(["jq", "-r", opt("--jq")], input=text, capture_output=True, text=True,
                                  check=True).stdout
        done(text)
    if args[:2] == ["issue", "create"]:
        db["issues"].append({{"number": len(db["issues"]) + 1, "title": opt("--title"), "body": body_file(),
                             "state": "open"}})
        done(f"https://github.com/acme/fleet/issues/{{len(db['issues'])}}\n")
    if args[:2] in (["issue", "edit"], ["issue", "close"]):
        issue = db["issues"][int(args[2]) - 1]
        if args[1] == "edit":
            issue["body"] = body_file()
        else:
            issue["state"], call["body"] = "closed", opt("--comment")
        done()
    done(code=2, err=f"fake gh: not supported: {{args}}\n")

def curl():
    method, headers, data, url, query = "GET", [], {{}}, None, False
    it = iter(args)
    for a in it:
        if a in ("-X", "--request"):
            method = next(it)
        elif a in ("-H", "--header"):
            headers.append(next(it))
        elif a == "--data-urlencode":
            spec = next(it)
            name, sep, value = spec.partition("=")
            if not sep:
                name, _, path = spec.partition("@")
                with open(path) as f:
                    value = f.read()
                call["body"] = value
            data[name] = value
        elif a in ("-G", "--get"):
            query = True
        elif a.startswith("-"):
            continue  # -f -s -S
        else:
            url = a
    if not url or not url.startswith(API + "/"):
        done(code=7, err=f"fake curl: only the GitLab API is served here, not {{url}}\n")
    if f"PRIVATE-TOKEN: {{TOKEN}}" not in headers:
        done(code=22, err="curl: (22) The requested URL returned error: 401\n")
    if method == "GET" and data and not query:
        method = "POST"
    path = urllib.parse.urlsplit(url).path[len(urllib.parse.urlsplit(API).path):].strip("/").split("/")
    call["method"], call["path"], call["data"] = method, "/".join(path), data
    if path[2:4] == ["merge_requests", {mr!r}] and path[4] == "notes":
        notes = db["notes"]
        if method == "GET":
            done(json.dumps(sorted(notes, key=lambda n: -n["id"])))
        if method == "POST":
            notes.append({{"id": len(notes) + 1, "body": data["body"]}})
            done(json.dumps(notes[-1]))
        note = notes[int(path[5]) - 1]
        note["body"] = data["body"]
        done(json.dumps(note))
    if path[2] == "issues":
        issues = db["gl_issues"]
        if method == "GET":
            state = data.get("state", "all")
            search = data.get("search", "")
            done(json.dumps([i for i in issues if state in ("all", i["state"]) and search in i["title"]]))
        if method == "POST":
            issues.append({{"iid": len(issues) + 1, "title": data["title"], "description": data["description"],
                           "state": "opened"}})
            done(json.dumps(issues[-1]))
        issue = issues[int(path[3]) - 1]
        if "description" in data:
            issue["description"] = data["description"]
        if data.get("state_event") == "close":
            issue["state"] = "closed"
        done(json.dumps(issue))
    done(code=22, err=f"curl: (22) The requested URL returned error: 404 ({{url}})\n")

gh() if tool == "gh" else curl()
'''


class Forge:
    def __init__(self, root: Path) -> None:
        self.bin = root / "forge-bin"
        self.bin.mkdir(parents=True)
        self.state = root / "forge.json"
        self.state.write_text(json.dumps({"calls": [], "comments": {}, "issues": [], "notes": [], "gl_issues": []}))
        script = self.bin / "fake-forge"
        script.write_text(
            FAKE_FORGE.format(
                python=sys.executable, state=str(self.state), token=FORGE_TOKEN, api=GITLAB_API, mr=MR_IID
            )
        )
        script.chmod(0o755)
        for tool in ("gh", "curl"):
            (self.bin / tool).symlink_to(script)

    @property
    def db(self) -> dict[str, Any]:
        return json.loads(self.state.read_text())

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self.db["calls"][since:]


# --- running a job -----------------------------------------------------------------------------------------


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@dataclass
class Job:
    name: str
    ok: bool
    log: str
    checkout: Path
    failed_at: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    """A fleet repository (its committed files), the account and the fake forge; runs jobs in fresh checkouts."""

    def __init__(self, root: Path, account: Account, committed: dict[str, str]) -> None:
        self.root, self.account, self.committed = root, account, committed
        self.forge = Forge(root)
        self.home = root / "home"
        self.home.mkdir()
        self.steps = root / "steps"  # each GitHub step's script, $GITHUB_ENV and $GITHUB_PATH
        self.steps.mkdir()
        self.jobs = 0

    def base_env(self) -> dict[str, str]:
        env = plain_env(self.home)
        env.pop("PULUMI_CONFIG_PASSPHRASE")  # the jobs get theirs from their secrets
        env["PATH"] = f"{self.forge.bin}{os.pathsep}{env['PATH']}"
        return env

    def checkout(self) -> Path:
        self.jobs += 1
        clone = make_clone(self.root / f"job-{self.jobs}")
        # The clone's .venv is the repo's: never rebuilt by `make setup`, whatever touched the repo's files later.
        stamp = (REPO / ".venv" / ".installed").stat().st_mtime_ns  # exact: make compares nanoseconds
        for name in ("pyproject.toml", "constraints.txt"):
            os.utime(clone / name, ns=(stamp, stamp))
        for name, text in self.committed.items():
            (clone / name).write_text(text)
        return clone

    def run_github(self, workflow: str) -> Job:
        doc = load(GITHUB_WORKFLOWS[workflow])
        ((name, job),) = doc["jobs"].items()
        shell = (doc.get("defaults") or {}).get("run", {}).get("shell", "bash")
        expressions = self.account.github_expressions()

        def sub(text: Any) -> str:
            def one(m: re.Match[str]) -> str:
                assert m.group(1) in expressions, f"{workflow}: no substitution for ${{{{ {m.group(1)} }}}}"
                return expressions[m.group(1)]

            return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, str(text))

        checkout = self.checkout()
        env = self.base_env()
        env.update({k: sub(v) for k, v in {**(doc.get("env") or {}), **(job.get("env") or {})}.items()})
        since, log = len(self.forge.calls()), []
        for i, step in enumerate(job["steps"]):
            if "uses" in step:
                assert str(step["uses"]).startswith("actions/"), step
                continue
            assert step.get("shell", shell) == "bash", step
            files = {kind: self.steps / f"job-{self.jobs}-step-{i}.{kind}" for kind in ("env", "path")}
            for f in files.values():
                f.write_text("")
            script = self.steps / f"job-{self.jobs}-step-{i}.sh"
            script.write_text(sub(step["run"]))
            step_env = {
                **env,
                **{k: sub(v) for k, v in (step.get("env") or {}).items()},
                "GITHUB_ENV": str(files["env"]),
                "GITHUB_PATH": str(files["path"]),
            }
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=checkout,
                env=step_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=1200,
            )
            label = step.get("name") or step["run"].splitlines()[0]
            log.append(f"--- {workflow}: {label} (exit {proc.returncode})\n{proc.stdout}")
            if proc.returncode:
                return Job(name, False, "".join(log), checkout, label, self.forge.calls(since))
            env.update(read_github_env(files["env"].read_text()))
            for line in files["path"].read_text().splitlines():
                env["PATH"] = f"{line}{os.pathsep}{env['PATH']}"
        return Job(name, True, "".join(log), checkout, None, self.forge.calls(since))

    def run_gitlab(self, name: str) -> Job:
        doc = load(GITLAB_PIPELINE)
        job = {**doc[doc[name]["extends"]], **doc[name]} if "extends" in doc[name] else doc[name]
        for line in job.get("before_script") or []:
            assert line.startswith("apt-get "), f"{name}: before_script is for the image's packages only: {line}"
        checkout = self.checkout()
        env = self.base_env()
        env.update(self.account.gitlab_variables())
        env["CI_PROJECT_DIR"] = str(checkout)
        for key, value in {**(doc.get("variables") or {}), **(job.get("variables") or {})}.items():
            if key not in CACHE_VARIABLES:
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), str(value))
        script = "\n".join(str(line) for line in flatten(job["script"]))
        since = len(self.forge.calls())
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1200,
        )
        log = f"--- {name} (exit {proc.returncode})\n{proc.stdout}"
        return Job(
            name, proc.returncode == 0, log, checkout, None if proc.returncode == 0 else name, self.forge.calls(since)
        )


def flatten(lines: Any) -> list[str]:
    """GitLab flattens nested arrays in `script:` (YAML anchors)."""
    return [x for item in lines for x in (flatten(item) if isinstance(item, list) else [item])]


def read_github_env(text: str) -> dict[str, str]:
    """`NAME=value` lines and `NAME<<DELIMITER` blocks, as the runner reads $GITHUB_ENV."""
    found, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            found[key] = "\n".join(iter(lambda: next(lines), delimiter))
        elif "=" in line:
            key, value = line.split("=", 1)
            found[key] = value
    return found


def ok(job: Job) -> Job:
    assert job.ok, f"{job.name} failed at {job.failed_at!r}\n{job.log[-8000:]}"
    return job


# --- the fleet repository and the account ------------------------------------------------------------------


def shell(cwd: Path, env: dict[str, str], script: str) -> str:
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-6000:]}"
    return proc.stdout


def onboard(runner: Runner) -> None:
    """The fleet repository before the pull request, as the README's GitOps section onboards an account: the
    stack, `lattigo-fleet import` of the account as it is, a first `pulumi up` (adopts, sends nothing). The
    pull request then declares the shipped fleet.yaml's changes, with the rest of the account merged in."""
    work = runner.checkout()
    env = {
        **runner.base_env(),
        **{k: v for k, v in runner.account.gitlab_variables().items() if k in SECRETS},
        "PULUMI_STACK": STACK,
    }
    shell(
        work,
        env,
        'eval "$(make -s env)"\n'
        f"pulumi stack init {STACK} --non-interactive\n"
        "lattigo-fleet import --force\n"
        "pulumi up --yes --non-interactive\n"
        f"cp {REPO / 'fleet.yaml'} fleet.yaml\n"
        "lattigo-fleet import --merge\n",
    )
    runner.committed = {
        "fleet.yaml": (work / "fleet.yaml").read_text(),
        f"Pulumi.{STACK}.yaml": (work / f"Pulumi.{STACK}.yaml").read_text(),
    }


def expect_no_changes(runner: Runner) -> None:
    """The account matches fleet.yaml: the next `pulumi preview --expect-no-changes` passes."""
    env = {
        **runner.base_env(),
        **{k: v for k, v in runner.account.gitlab_variables().items() if k in SECRETS},
        "PULUMI_STACK": STACK,
    }
    shell(runner.checkout(), env, 'eval "$(make -s env)"\npulumi preview --expect-no-changes --non-interactive')


def change_out_of_band(endpoint: str, cost_center: str) -> None:
    requests.post(
        f"{endpoint}/_emulator/sims", timeout=30, json={"sims": [{"iccid": DRIFTED_SIM[1], "cost_center": cost_center}]}
    ).raise_for_status()


@pytest.fixture
def demo_account(emulator, tmp_path, pulumi_bin):
    emulator.reset("demo")  # the demo account: what the shipped fleet.yaml is written against
    assert (real_cache_dir() / "pulumi").is_dir(), "the pinned CLI should be in the machine's cache already"
    assert shutil.which("jq"), "the fake gh runs `--jq` through jq"
    backend = tmp_path / "backend"
    backend.mkdir()
    try:
        yield Account(emulator.base_url, emulator.key_name, emulator.api_key, backend.as_uri())
    finally:
        for clone in tmp_path.glob("job-*"):
            if (clone / ".venv").is_symlink():
                (clone / ".venv").unlink()  # never let a cleanup follow it into the repo's venv
        emulator.reset("empty")


# --- the tests ---------------------------------------------------------------------------------------------


def test_templates_declare_the_settings_and_serialize_applies():
    for name, path in GITHUB_WORKFLOWS.items():
        doc = load(path)
        env = doc["env"]
        assert {k: str(env.get(k)) for k in MAKE_ENV} == MAKE_ENV, f"{name}: the engine settings of `make env`"
        for secret in SECRETS:
            assert env[secret] == f"${{{{ secrets.{secret} }}}}", f"{name}: {secret} from a secret"
        assert env["PULUMI_STACK"] == "${{ vars.PULUMI_STACK }}"
    triggers = {name: load(path)[True if True in load(path) else "on"] for name, path in GITHUB_WORKFLOWS.items()}
    assert "pull_request" in triggers["pull-request"]
    assert triggers["merge"]["push"]["branches"] == ["main"]
    assert "schedule" in triggers["nightly-drift"]
    merge = load(GITHUB_WORKFLOWS["merge"])["concurrency"]
    assert merge["cancel-in-progress"] is False and "fleet-apply" in merge["group"]

    gitlab = load(GITLAB_PIPELINE)
    assert {k: str(gitlab["variables"].get(k)) for k in MAKE_ENV} == MAKE_ENV
    assert gitlab["fleet-apply"]["resource_group"]
    sources = {
        job: " ".join(r["if"] for r in gitlab[job]["rules"]) for job in ("fleet-plan", "fleet-apply", "fleet-drift")
    }
    assert '"merge_request_event"' in sources["fleet-plan"]
    assert '"push"' in sources["fleet-apply"] and "$CI_DEFAULT_BRANCH" in sources["fleet-apply"]
    assert '"schedule"' in sources["fleet-drift"] and '"schedule"' not in sources["fleet-apply"]
    text = GITLAB_PIPELINE.read_text()
    for secret in (*SECRETS, "GITLAB_TOKEN"):
        assert f"${secret}" in text or secret in text, secret


def test_github_workflows_pull_request_merge_nightly(tmp_path, demo_account):
    runner = Runner(tmp_path, demo_account, {})
    onboard(runner)

    # The pull request: the plan comment, then a second push edits it.
    first = ok(runner.run_github("pull-request"))
    plan = (first.checkout / "plan.md").read_text()
    assert "## lattigo-fleet plan" in plan
    comments = runner.forge.db["comments"][PR_NUMBER]
    assert comments == [plan], "one comment, the plan's Markdown"
    for what in ("truck-0301", "activate", "truck-0005", "suspend", "Cold-Chain", "fw 3.4.0"):
        assert what in plan, f"the plan comment does not say {what!r}\n{plan}"
    assert [c["args"][-3:] for c in first.calls] == [
        ["--edit-last", "--body-file", "plan.md"],
        [PR_NUMBER, "--body-file", "plan.md"],
    ]
    second = ok(runner.run_github("pull-request"))
    assert len(runner.forge.db["comments"][PR_NUMBER]) == 1, "the second push edits the comment"
    assert [c["args"][2:4] for c in second.calls] == [[PR_NUMBER, "--edit-last"]]

    # The merge applies it: the account matches fleet.yaml.
    ok(runner.run_github("merge"))
    expect_no_changes(runner)

    # Nightly, in sync: no issue.
    nightly = ok(runner.run_github("nightly-drift"))
    assert "In sync" in (nightly.checkout / "drift.md").read_text()
    assert [c["args"][:2] for c in nightly.calls] == [["issue", "list"]] and not runner.forge.db["issues"]

    # Someone moves a SIM to another cost center in the portal: the nightly report opens ONE issue...
    change_out_of_band(demo_account.endpoint, "Warehouse")
    ok(runner.run_github("nightly-drift"))
    issues = runner.forge.db["issues"]
    assert [(i["title"], i["state"]) for i in issues] == [("Fleet drift", "open")]
    for what in (*DRIFTED_SIM, "cost_center", "Fleet-East", "Warehouse"):
        assert what in issues[0]["body"], f"the drift issue does not name {what!r}\n{issues[0]['body']}"
    # ...which the next night updates rather than opening another.
    change_out_of_band(demo_account.endpoint, "Field-Service")
    again = ok(runner.run_github("nightly-drift"))
    issues = runner.forge.db["issues"]
    assert len(issues) == 1 and "Field-Service" in issues[0]["body"]
    assert [c["args"][:3] for c in again.calls][1:] == [["issue", "edit", "1"]]

    # A re-run of the apply workflow heals it; the next night closes the issue.
    ok(runner.run_github("merge"))
    ok(runner.run_github("nightly-drift"))
    assert runner.forge.db["issues"][0]["state"] == "closed"

    # A pull request whose preview fails (the blast-radius guard): commented first, then the job fails.
    fleet = runner.committed["fleet.yaml"]
    assert fleet.count("max_changes: 25%") == 1
    runner.committed["fleet.yaml"] = fleet.replace("max_changes: 25%", "max_changes: 0").replace(
        "name: truck-0001, group: trucks-east,", "name: truck-0001, group: trucks-east, state: suspended,"
    )
    failed = runner.run_github("pull-request")
    assert not failed.ok and failed.failed_at == "Fail if the preview failed", failed.log[-4000:]
    comment = runner.forge.db["comments"][PR_NUMBER]
    assert len(comment) == 1 and "blast-radius guard" in comment[0], comment


def test_gitlab_pipeline_merge_request_apply_schedule(tmp_path, demo_account):
    runner = Runner(tmp_path, demo_account, {})
    onboard(runner)

    plan_job = ok(runner.run_gitlab("fleet-plan"))
    plan = (plan_job.checkout / "plan.md").read_text()
    notes = runner.forge.db["notes"]
    assert len(notes) == 1 and notes[0]["body"].startswith("<!-- lattigo-fleet plan -->") and plan in notes[0]["body"]
    assert "truck-0301" in plan and "Cold-Chain" in plan
    ok(runner.run_gitlab("fleet-plan"))
    assert len(runner.forge.db["notes"]) == 1, "the second push edits the note"
    assert [c["method"] for c in runner.forge.calls()[-2:]] == ["GET", "PUT"]

    ok(runner.run_gitlab("fleet-apply"))
    expect_no_changes(runner)

    ok(runner.run_gitlab("fleet-drift"))
    assert not runner.forge.db["gl_issues"]
    change_out_of_band(demo_account.endpoint, "Warehouse")
    ok(runner.run_gitlab("fleet-drift"))
    issues = runner.forge.db["gl_issues"]
    assert [(i["title"], i["state"]) for i in issues] == [("Fleet drift", "opened")]
    for what in (*DRIFTED_SIM, "cost_center", "Warehouse"):
        assert what in issues[0]["description"], what
    ok(runner.run_gitlab("fleet-apply"))
    ok(runner.run_gitlab("fleet-drift"))
    assert runner.forge.db["gl_issues"][0]["state"] == "closed"
