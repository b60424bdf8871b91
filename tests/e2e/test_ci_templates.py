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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

from devtools.pulumi_stack import REPO
from emulator.server import EmulatorServer
from lattigo_fleet.engine_settings import ENGINE_ENV
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

def jq(value):
    text = json.dumps(value)
    if "--jq" in args:
        text = subprocess.run(["jq", "-r", opt("--jq")], input=text, capture_output=True, text=True,
                              check=True).stdout
    return text

def comment_rows(pr):
    return [{{"id": int(pr) * 1000 + i, "user": {{"login": "github-actions[bot]"}}, "body": body}}
            for i, body in enumerate(db["comments"].get(pr, []), 1)]

def gh_api(path):
    parts = path.split("?")[0].strip("/").split("/")
    query = dict(urllib.parse.parse_qsl(path.partition("?")[2]))
    if parts[3:5] == ["actions", "artifacts"]:
        found = [{{"name": name, "expired": False, "workflow_run": {{"id": r["databaseId"]}}}}
                 for r in reversed(db["runs"]) for name in r["artifacts"] if name == query.get("name", name)]
        done(jq({{"total_count": len(found), "artifacts": found}}))
    if parts[3:4] == ["commits"] and parts[5:] == ["pulls"]:
        pull = db["pulls"].get(parts[4])
        done(jq([pull] if pull else []))
    if parts[3:4] == ["pulls"]:
        done(jq(next(p for p in db["pulls"].values() if str(p["number"]) == parts[4])))
    if parts[3:4] == ["issues"] and parts[5:] == ["comments"]:
        done(jq(comment_rows(parts[4])))
    if parts[3:5] == ["issues", "comments"]:
        rows = [c for pr in db["comments"] for c in comment_rows(pr) if c["id"] == int(parts[5])]
        done(jq(rows[0])) if rows else done(code=1, err="gh: Not Found (HTTP 404)\n")
    done(code=1, err=f"gh: Not Found (HTTP 404): {{path}}\n")

def gh():
    if os.environ.get("GH_TOKEN") != TOKEN:
        done(code=4, err="gh: not authenticated\n")
    if args[0] == "api":
        gh_api(next(a for a in args[1:] if a.startswith("repos/")))
    if args[:2] == ["run", "list"]:
        runs = [r for r in reversed(db["runs"]) if r["workflow"] == opt("--workflow")
                and r["headSha"] == opt("--commit") and r["conclusion"] == opt("--status", r["conclusion"])]
        done(jq([{{"databaseId": r["databaseId"]}} for r in runs][: int(opt("--limit", "20"))]))
    if args[:2] == ["run", "download"]:
        import shutil
        run = next((r for r in db["runs"] if str(r["databaseId"]) == args[2]), None)
        if run and "--name" not in args and run["artifacts"]:  # all of them, each in a directory of its name
            for name, kept in run["artifacts"].items():
                shutil.copytree(kept, os.path.join(opt("--dir", "."), name), dirs_exist_ok=True)
            done()
        if not run or opt("--name") not in run["artifacts"]:
            done(code=1, err=f"no artifact matches {{opt('--name')}}\n")
        shutil.copytree(run["artifacts"][opt("--name")], opt("--dir", "."), dirs_exist_ok=True)
        done()
    if args[:2] == ["pr", "list"]:
        done(jq(db["open_pulls"]))
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
        done(jq([{{k: i[k] for k in fields}} for i in db["issues"] if i["state"] == opt("--state", "open")]))
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
    method, headers, data, url, query, output = "GET", [], {{}}, None, False, None
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
        elif a in ("-o", "--output"):
            output = next(it)
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
    split = urllib.parse.urlsplit(url)
    path = split.path[len(urllib.parse.urlsplit(API).path):].strip("/").split("/")
    params = dict(urllib.parse.parse_qsl(split.query))
    call["method"], call["path"], call["data"] = method, "/".join(path), data
    if path[2:3] == ["repository"] and path[5:] == ["merge_requests"]:
        done(json.dumps([m for m in db["gl_mrs"] if m["merge_commit_sha"] == path[4]]))
    if path[2:] == ["merge_requests"]:
        done(json.dumps([m for m in db["gl_mrs"] if m["state"] == params.get("state", m["state"])]))
    if path[2:3] == ["merge_requests"] and path[4:] == ["pipelines"]:
        done(json.dumps([p for p in reversed(db["gl_pipelines"]) if p["mr"] == int(path[3])]))
    if path[2:3] == ["pipelines"] and path[4:] == ["jobs"]:
        done(json.dumps([j for j in db["gl_jobs"] if j["pipeline"] == int(path[3])]))
    if path[2:3] == ["jobs"] and path[4:5] == ["artifacts"]:
        job = next((j for j in db["gl_jobs"] if j["id"] == int(path[3])), None)
        kept = job and job["artifacts"].get("/".join(path[5:]))
        if not kept:
            done(code=22, err="curl: (22) The requested URL returned error: 404\n")
        import shutil
        shutil.copyfile(kept, output)
        done()
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
        self.state.write_text(
            json.dumps(
                {
                    "calls": [],
                    "comments": {},
                    "issues": [],
                    "notes": [],
                    "gl_issues": [],
                    # GitHub: merge commit -> its pull request; open pull requests; workflow runs and artifacts.
                    "pulls": {},
                    "open_pulls": [],
                    "runs": [],
                    # GitLab: merge requests, pipelines, jobs and their artifacts.
                    "gl_mrs": [],
                    "gl_pipelines": [],
                    "gl_jobs": [],
                }
            )
        )
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
        db: dict[str, Any] = json.loads(self.state.read_text())
        return db

    def update(self, **values: Any) -> None:
        """What the forge knows besides the calls (pull requests, runs), as the test's story sets it."""
        db = self.db
        db.update(values)
        self.state.write_text(json.dumps(db, indent=1))

    def append(self, key: str, row: dict[str, Any]) -> None:
        db = self.db
        db[key].append(row)
        self.state.write_text(json.dumps(db, indent=1))

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.db["calls"][since:]
        return calls


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
    run_id: int = 0  # GitHub: the run's id; GitLab: the job's
    summary: Path | None = None  # GitHub: $GITHUB_STEP_SUMMARY


class Runner:
    """A fleet repository (its committed files), the account and the fake forge; runs jobs in fresh checkouts."""

    def __init__(self, root: Path, account: Account, committed: dict[str, str]) -> None:
        self.root, self.account, self.committed = root, account, committed
        self.forge = Forge(root)
        self.home = root / "home"
        self.home.mkdir()
        self.steps = root / "steps"  # each GitHub step's script, $GITHUB_ENV and $GITHUB_PATH
        self.steps.mkdir()
        (root / "artifacts").mkdir()
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

    def run_github(
        self,
        workflow: str,
        *,
        event: str | None = None,
        sha: str = "0" * 40,
        head: str | None = None,
        pr: str = PR_NUMBER,
        inputs: dict[str, str] | None = None,
        pr_files: dict[str, str] | None = None,
    ) -> Job:
        """One run of a workflow's job, as the runner would for `event` on commit `sha` (a pull request's:
        `head`). The checkout is main's files (`committed`); a checkout with a `path:` is the pull request's
        (`pr_files`, default the same), as far as its sparse-checkout lists. Other `uses:` steps are skipped but
        actions/upload-artifact, which keeps the files as the run's artifact in the fake forge (for `gh run
        download`). A failed step skips the rest but `if: failure()`."""
        doc = load(GITHUB_WORKFLOWS[workflow])
        ((name, job),) = doc["jobs"].items()
        shell = (doc.get("defaults") or {}).get("run", {}).get("shell", "bash")
        triggers = doc[True if True in doc else "on"]
        event = event or next(iter(triggers))
        assert event in triggers, f"{workflow} does not run on {event}"
        declared = (triggers.get("workflow_dispatch") or {}).get("inputs") or {}
        if event != "workflow_dispatch":
            declared = {}
        assert set(inputs or {}) <= set(declared), f"{workflow}: inputs {set(inputs or {}) - set(declared)}"
        given = {k: json.dumps(v["default"]) if "default" in v else "" for k, v in declared.items()}
        given.update(inputs or {})
        expressions = {
            **self.account.github_expressions(),
            "github.event.pull_request.number": pr,
            "github.event.pull_request.head.sha": head or sha,
            **{f"inputs.{k}": v for k, v in given.items()},
        }
        if event != "workflow_dispatch":
            expressions.update({f"inputs.{k}": "" for k in ("plan_run", "digest", "heal")})

        def sub(text: Any) -> str:
            def one(m: re.Match[str]) -> str:
                assert m.group(1) in expressions, f"{workflow}: no substitution for ${{{{ {m.group(1)} }}}}"
                return expressions[m.group(1)]

            return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, str(text))

        checkout = self.checkout()
        run_id = 9000 + self.jobs
        summary = self.steps / f"job-{self.jobs}-summary.md"
        summary.write_text("")
        env = self.base_env()
        env.update(
            {
                "GITHUB_EVENT_NAME": event,
                "GITHUB_SHA": sha,
                "GITHUB_REF": f"refs/pull/{pr}/merge" if event == "pull_request" else "refs/heads/main",
                "GITHUB_RUN_ID": str(run_id),
                "GITHUB_REPOSITORY": "acme/fleet",
                "GITHUB_STEP_SUMMARY": str(summary),
            }
        )
        env.update({k: sub(v) for k, v in {**(doc.get("env") or {}), **(job.get("env") or {})}.items()})
        since, log, failed_at = len(self.forge.calls()), [], None
        artifacts: dict[str, str] = {}
        for i, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            condition = step.get("if")
            runs = {None: failed_at is None, "failure()": failed_at is not None, "always()": True}
            assert condition in runs, f"{workflow}: step if {condition!r}"
            if not runs[condition]:
                continue
            if "uses" in step:
                uses = str(step["uses"])
                assert uses.startswith("actions/"), step
                if not uses.startswith(("actions/checkout@", "actions/upload-artifact@")):
                    continue  # setup-python, setup-go, cache: this machine's
                given_with = {k: sub(v) for k, v in (step.get("with") or {}).items()}
                if uses.startswith("actions/checkout@") and "path" in given_with:
                    assert given_with["persist-credentials"] == "False", step
                    wanted = given_with["sparse-checkout"].split()
                    for name, text in (self.committed if pr_files is None else pr_files).items():
                        if any(name == w or name.startswith(w + "/") for w in wanted):
                            (checkout / given_with["path"] / name).parent.mkdir(parents=True, exist_ok=True)
                            (checkout / given_with["path"] / name).write_text(text)
                if uses.startswith("actions/upload-artifact@"):
                    found = checkout / given_with["path"]
                    assert found.exists() or given_with.get("if-no-files-found") == "ignore", step
                    if found.exists():
                        kept = self.root / "artifacts" / str(run_id) / given_with["name"]
                        kept.mkdir(parents=True)
                        shutil.copy(found, kept / found.name)
                        artifacts[given_with["name"]] = str(kept)
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
            log.append(f"--- {workflow}: {label} (exit {proc.returncode})\n{proc.stdout}")
            if proc.returncode:
                failed_at = failed_at or label
                continue
            env.update(read_github_env(files["env"].read_text()))
            for line in files["path"].read_text().splitlines():
                env["PATH"] = f"{line}{os.pathsep}{env['PATH']}"
        self.forge.append(
            "runs",
            {
                "databaseId": run_id,
                "workflow": doc["name"],
                "headSha": head or sha,
                "conclusion": "failure" if failed_at else "success",
                "artifacts": artifacts,
            },
        )
        return Job(name, failed_at is None, "".join(log), checkout, failed_at, self.forge.calls(since), run_id, summary)

    def run_gitlab(
        self,
        name: str,
        *,
        source: str | None = None,
        sha: str = "0" * 40,
        mr: str | None = None,
        variables: dict[str, str] | None = None,
        mr_files: dict[str, str] | None = None,
    ) -> Job:
        """One job in a pipeline of its own (`source`, commit `sha`, merge request `mr`), with the pipeline's
        `variables` (Run pipeline). Its `artifacts:` are kept in the fake forge as GitLab keeps them. A merge
        request's job checks out a git repository as the runner does: its `origin` has main (`committed`), and
        the checkout is the merge request's commit (`mr_files` on top of main), whose sha is CI_COMMIT_SHA."""
        doc = load(GITLAB_PIPELINE)
        job = {**doc[doc[name]["extends"]], **doc[name]} if "extends" in doc[name] else doc[name]
        for line in job.get("before_script") or []:
            assert line.startswith("apt-get "), f"{name}: before_script is for the image's packages only: {line}"
        checkout = self.checkout()
        if mr:
            sha = git_merge_request(checkout, mr_files or {})
        job_id = 500 + self.jobs
        env = self.base_env()
        env.update(self.account.gitlab_variables())
        source = source or {"fleet-plan": "merge_request_event", "fleet-apply": "push", "fleet-drift": "schedule"}[name]
        env.update(
            {
                "CI_PROJECT_DIR": str(checkout),
                "CI_PIPELINE_SOURCE": source,
                "CI_COMMIT_SHA": sha,
                "CI_JOB_ID": str(job_id),
                "CI_COMMIT_BRANCH": "main",
                "CI_DEFAULT_BRANCH": "main",
            }
        )
        if mr:
            env["CI_MERGE_REQUEST_IID"] = mr
            env["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = "main"
        else:
            env.pop("CI_MERGE_REQUEST_IID", None)
        for key, value in {**(doc.get("variables") or {}), **(job.get("variables") or {})}.items():
            if key not in CACHE_VARIABLES:
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), str(value))
        env.update(variables or {})
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
        passed = proc.returncode == 0
        artifacts = job.get("artifacts") or {}
        kept: dict[str, str] = {}
        if {"on_success": passed, "on_failure": not passed, "always": True}[artifacts.get("when", "on_success")]:
            for path in artifacts.get("paths") or []:
                if (checkout / path).exists():
                    kept[path] = str(self.root / "artifacts" / f"job-{job_id}-{path}")
                    shutil.copy(checkout / path, kept[path])
        pipeline = 100 + self.jobs
        self.forge.append(
            "gl_pipelines",
            {"id": pipeline, "mr": int(mr) if mr else None, "status": "success" if passed else "failed", "sha": sha},
        )
        self.forge.append(
            "gl_jobs",
            {
                "id": job_id,
                "name": name,
                "pipeline": pipeline,
                "status": "success" if passed else "failed",
                "artifacts": kept,
            },
        )
        log = f"--- {name} (exit {proc.returncode})\n{proc.stdout}"
        return Job(name, passed, log, checkout, None if passed else name, self.forge.calls(since), job_id)


def git_merge_request(checkout: Path, mr_files: dict[str, str]) -> str:
    """Make `checkout` (main's files) a git repository whose `origin` holds main, then commit the merge
    request's files on top of it, as the runner's checkout of a merge request is; return that commit."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=checkout, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    (checkout / ".git" / "info" / "exclude").write_text(".venv\n.cache/\n")
    git("add", "-A")
    git("commit", "-q", "-m", "main")
    git("clone", "-q", "--bare", ".", str(checkout.parent / f"{checkout.name}-origin.git"))
    git("remote", "add", "origin", str(checkout.parent / f"{checkout.name}-origin.git"))
    for name, text in mr_files.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", "merge request")
    return git("rev-parse", "HEAD")


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
def demo_account(emulator: EmulatorServer, tmp_path: Path, pulumi_bin: str) -> Iterator[Account]:
    emulator.reset("demo")  # the demo account: what the shipped fleet.yaml is written against
    assert emulator.key_name is not None and emulator.api_key is not None  # narrows: the fixture sets both
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


def test_templates_declare_the_settings_and_serialize_applies() -> None:
    for name, path in GITHUB_WORKFLOWS.items():
        doc = load(path)
        env = doc["env"]
        assert {k: str(env.get(k)) for k in MAKE_ENV} == MAKE_ENV, f"{name}: the engine settings of `make env`"
        assert env["PULUMI_STACK"] == "${{ vars.PULUMI_STACK }}"
        # The secrets reach only the step that runs pulumi, and the checkout keeps no token.
        ((_job, job),) = doc["jobs"].items()
        assert not set(SECRETS) & set(env) and not set(SECRETS) & set(job.get("env") or {}), name
        with_secrets = [step["name"] for step in job["steps"] if set(SECRETS) & set(step.get("env") or {})]
        assert len(with_secrets) == 1, f"{name}: {with_secrets}"
        for step in job["steps"]:
            for secret in SECRETS:
                if secret in (step.get("env") or {}):
                    assert step["env"][secret] == f"${{{{ secrets.{secret} }}}}", f"{name}: {secret} from a secret"
        checkout = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False, name
    triggers = {name: load(path)[True if True in load(path) else "on"] for name, path in GITHUB_WORKFLOWS.items()}
    # The plan runs main's workflow and code (pull_request_target); the pull request is checked out as data.
    assert set(triggers["pull-request"]) == {"pull_request_target"}
    plan_steps = load(GITHUB_WORKFLOWS["pull-request"])["jobs"]["plan"]["steps"]
    checkouts = [s.get("with") or {} for s in plan_steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert "ref" not in checkouts[0] and checkouts[1]["path"] == ".pull-request"
    assert checkouts[1]["sparse-checkout"].split() == ["fleet.yaml", "fleet.d"]
    assert load(GITHUB_WORKFLOWS["merge"])["jobs"]["apply"]["environment"] == "lattigo-fleet-apply"
    assert triggers["merge"]["push"]["branches"] == ["main"]
    assert set(triggers["merge"]["workflow_dispatch"]["inputs"]) == {"plan_run", "digest", "heal"}
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
    assert gitlab["fleet-plan"]["artifacts"]["paths"] == ["fleet-plan.json"]
    assert gitlab["fleet-apply"]["artifacts"] == {
        "when": "on_failure",
        "paths": ["fleet-plan-now.json"],
        "expire_in": "30 days",
    }
    text = GITLAB_PIPELINE.read_text()
    for secret in (*SECRETS, "GITLAB_TOKEN"):
        assert f"${secret}" in text or secret in text, secret


def hijacked(stack_file: str) -> str:
    """A pull request's stack file that would send the API key to another host."""
    text = stack_file.rstrip("\n") + "\n"
    line = "  lattigo:endpoint: https://attacker.invalid\n"
    return text.replace("config:\n", "config:\n" + line, 1) if "config:\n" in text else text + "config:\n" + line


def plan_digest(text: str) -> str:
    """The digest a reviewer reads in the plan comment."""
    found: list[str] = re.findall(r"\(`(sha256:[0-9a-f]{64})`\)", text)
    assert len(found) == 1, text
    return found[0]


def mutating(endpoint: str) -> list[dict[str, Any]]:
    log = requests.get(f"{endpoint}/_emulator/requests", timeout=30).json()
    rows = log.get("requests", log) if isinstance(log, dict) else log
    return [r for r in rows if r["method"] != "GET" and not r["path"].startswith("/_emulator")]


def clear_requests(endpoint: str) -> None:
    requests.delete(f"{endpoint}/_emulator/requests", timeout=30).raise_for_status()


def test_github_workflows_pull_request_merge_nightly(tmp_path: Path, demo_account: Account) -> None:
    runner = Runner(tmp_path, demo_account, {})
    onboard(runner)

    # The pull request: the plan comment (with the plan's digest) and the plan document kept as the run's
    # artifact; a second push edits the comment and keeps a new document.
    first = ok(runner.run_github("pull-request", sha="a1" * 20, head="b1" * 20))
    plan = (first.checkout / "plan.md").read_text()
    assert "## lattigo-fleet plan" in plan
    comments = runner.forge.db["comments"][PR_NUMBER]
    assert comments == [plan], "one comment, the plan's Markdown"
    for what in ("truck-0301", "activate", "truck-0005", "suspend", "Cold-Chain", "fw 3.4.0", "merge mode **strict**"):
        assert what in plan, f"the plan comment does not say {what!r}\n{plan}"
    assert [c["args"][-3:] for c in first.calls] == [
        ["--edit-last", "--body-file", "plan.md"],
        [PR_NUMBER, "--body-file", "plan.md"],
    ]
    second = ok(runner.run_github("pull-request", sha="a2" * 20, head="b2" * 20))
    assert len(runner.forge.db["comments"][PR_NUMBER]) == 1, "the second push edits the comment"
    assert [c["args"][2:4] for c in second.calls] == [[PR_NUMBER, "--edit-last"]]
    approved = json.loads((second.checkout / "fleet-plan.json").read_text())
    assert plan_digest(runner.forge.db["comments"][PR_NUMBER][0]) == approved["digest"]
    assert approved["source"]["pull_request"] == int(PR_NUMBER)

    # The merge applies the approved plan, found from the commit's pull request, its comment and its last run.
    runner.forge.update(pulls={"c1" * 20: {"number": int(PR_NUMBER), "head": {"sha": "b2" * 20}}})
    clear_requests(demo_account.endpoint)
    merged = ok(runner.run_github("merge", sha="c1" * 20))
    assert f"applied the approved plan {approved['digest'][7:19]}" in merged.log, merged.log[-4000:]
    name = f"fleet-plan-{PR_NUMBER}-{'b2' * 20}"
    assert ["run", "download", str(second.run_id), "--name", name, "--dir", "approved"] in [
        c["args"] for c in merged.calls
    ]
    assert mutating(demo_account.endpoint), "the merge sent the plan's calls"
    expect_no_changes(runner)

    # Nightly, in sync: no issue; no open pull request whose plan to check.
    nightly = ok(runner.run_github("nightly-drift"))
    drift = (nightly.checkout / "drift.md").read_text()
    assert "In sync" in drift and "plans checked (0)" in drift, drift
    assert [c["args"][:2] for c in nightly.calls] == [["pr", "list"], ["issue", "list"]]
    assert not runner.forge.db["issues"]

    # A second pull request (#8) is planned; then someone moves a SIM to another cost center in the portal.
    # It also points the stack's endpoint elsewhere: the plan runs with main's stack config, never the PR's.
    fleet = runner.committed["fleet.yaml"]
    assert fleet.count("note: Truck 0003,") == 1
    eight_fleet = fleet.replace("note: Truck 0003,", "note: Truck 0003 east,")
    stack_file = f"Pulumi.{STACK}.yaml"
    eight_files = {
        **runner.committed,
        "fleet.yaml": eight_fleet,
        stack_file: hijacked(runner.committed[stack_file]),
        "__main__.py": 'raise SystemExit("the pull request\'s own code ran")\n',
    }
    ok(runner.run_github("pull-request", sha="a3" * 20, head="b3" * 20, pr="8", pr_files=eight_files))
    assert "Truck 0003 east" in runner.forge.db["comments"]["8"][0], "the plan is of the pull request's fleet"
    eight_digest = plan_digest(runner.forge.db["comments"]["8"][0])
    runner.forge.update(open_pulls=[{"number": 8, "headRefOid": "b3" * 20}])
    change_out_of_band(demo_account.endpoint, "Warehouse")

    # The nightly report opens ONE issue, naming the drift and the open pull request whose plan it makes stale...
    ok(runner.run_github("nightly-drift"))
    issues = runner.forge.db["issues"]
    assert [(i["title"], i["state"]) for i in issues] == [("Fleet drift", "open")]
    for what in (*DRIFTED_SIM, "cost_center", "Fleet-East", "Warehouse", f"#8 (plan {eight_digest[7:19]})"):
        assert what in issues[0]["body"], f"the drift issue does not name {what!r}\n{issues[0]['body']}"
    # ...which the next night updates rather than opening another.
    change_out_of_band(demo_account.endpoint, "Field-Service")
    again = ok(runner.run_github("nightly-drift"))
    issues = runner.forge.db["issues"]
    assert len(issues) == 1 and "Field-Service" in issues[0]["body"]
    assert [c["args"][:3] for c in again.calls][-1] == ["issue", "edit", "1"]

    # Pull request #8 merges: its plan is stale (truck-0009 moved since its review). Nothing is sent; the job
    # fails, lists the SIM and field, and keeps the plan at merge time for a new review.
    runner.committed["fleet.yaml"] = eight_fleet  # merged: main holds it now (and main's stack config)
    runner.forge.update(pulls={"c2" * 20: {"number": 8, "head": {"sha": "b3" * 20}}}, open_pulls=[])
    clear_requests(demo_account.endpoint)
    refused = runner.run_github("merge", sha="c2" * 20)
    assert not refused.ok and refused.failed_at == "Apply the approved plan", refused.log[-4000:]
    assert mutating(demo_account.endpoint) == [], "a stale plan sends nothing"
    assert refused.summary is not None  # narrows: a GitHub job has a step summary
    summary = refused.summary.read_text()
    assert f"the approved plan {eight_digest[7:19]} is stale" in summary, summary
    assert "truck-0009" in summary and "cost_center: 'Fleet-East' at review / 'Field-Service' now" in summary
    assert f"plan_run {refused.run_id}" in summary
    now = json.loads((refused.checkout / "fleet-plan-now.json").read_text())
    runs = runner.forge.db["runs"]
    assert any(r["databaseId"] == refused.run_id and "fleet-plan-now" in r["artifacts"] for r in runs)

    # A reviewer reads the plan at merge time and runs the workflow with it: it applies exactly that plan.
    rerun = ok(
        runner.run_github(
            "merge", event="workflow_dispatch", inputs={"plan_run": str(refused.run_id), "digest": now["digest"][7:19]}
        )
    )
    assert f"applied the approved plan {now['digest'][7:19]}" in rerun.log, rerun.log[-4000:]
    expect_no_changes(runner)
    ok(runner.run_github("nightly-drift"))
    assert runner.forge.db["issues"][0]["state"] == "closed"

    # A pull request whose preview fails (the blast-radius guard): commented first, then the job fails.
    fleet = runner.committed["fleet.yaml"]
    assert fleet.count("max_changes: 25%") == 1
    runner.committed["fleet.yaml"] = fleet.replace("max_changes: 25%", "max_changes: 0").replace(
        "name: truck-0001, group: trucks-east,", "name: truck-0001, group: trucks-east, state: suspended,"
    )
    failed = runner.run_github("pull-request", sha="a4" * 20, head="b4" * 20)
    assert not failed.ok and failed.failed_at == "Fail if the preview failed", failed.log[-4000:]
    comment = runner.forge.db["comments"][PR_NUMBER]
    assert len(comment) == 1 and "blast-radius guard" in comment[0], comment

    # Its merge (had it been merged anyway) is refused by the same guard: nothing is sent.
    runner.forge.update(pulls={"c3" * 20: {"number": int(PR_NUMBER), "head": {"sha": "b4" * 20}}})
    clear_requests(demo_account.endpoint)
    refused_by_guard = runner.run_github("merge", sha="c3" * 20)
    assert not refused_by_guard.ok and "policy.max_changes" in refused_by_guard.log, refused_by_guard.log[-3000:]
    assert mutating(demo_account.endpoint) == []


def test_gitlab_pipeline_merge_request_apply_schedule(tmp_path: Path, demo_account: Account) -> None:
    runner = Runner(tmp_path, demo_account, {})
    onboard(runner)

    # The merge request also changes the program and points the stack at another endpoint: the plan job runs
    # the target branch's code and config, and takes only the fleet files from the merge request.
    stack_file = f"Pulumi.{STACK}.yaml"
    hostile = {
        "__main__.py": 'raise SystemExit("the merge request\'s own code ran")\n',
        stack_file: hijacked(runner.committed[stack_file]),
        "fleet.yaml": runner.committed["fleet.yaml"].replace("note: Truck 0003,", "note: Truck 0003 east,"),
    }
    plan_job = ok(runner.run_gitlab("fleet-plan", sha="a1" * 20, mr=MR_IID, mr_files=hostile))
    assert "Truck 0003 east" in (plan_job.checkout / "plan.md").read_text(), "the merge request's fleet is planned"
    assert "own code ran" not in plan_job.log
    assert (plan_job.checkout / "__main__.py").read_text() == (REPO / "__main__.py").read_text()
    assert "attacker" not in (plan_job.checkout / stack_file).read_text()
    plan = (plan_job.checkout / "plan.md").read_text()
    notes = runner.forge.db["notes"]
    assert len(notes) == 1 and notes[0]["body"].startswith("<!-- lattigo-fleet plan -->") and plan in notes[0]["body"]
    assert "truck-0301" in plan and "Cold-Chain" in plan
    second = ok(runner.run_gitlab("fleet-plan", sha="a2" * 20, mr=MR_IID))
    assert len(runner.forge.db["notes"]) == 1, "the second push edits the note"
    assert [c["method"] for c in runner.forge.calls()[-2:]] == ["GET", "PUT"]
    approved = json.loads((second.checkout / "fleet-plan.json").read_text())
    assert plan_digest(runner.forge.db["notes"][0]["body"]) == approved["digest"]

    # The merge: the commit's merge request, the digest in its note, its last successful plan job's artifact.
    runner.forge.update(gl_mrs=[{"iid": int(MR_IID), "state": "merged", "merge_commit_sha": "c1" * 20}])
    merged = ok(runner.run_gitlab("fleet-apply", sha="c1" * 20))
    assert f"applied the approved plan {approved['digest'][7:19]}" in merged.log, merged.log[-4000:]
    assert f"jobs/{second.run_id}/artifacts/fleet-plan.json" in " ".join(c.get("path", "") for c in merged.calls)
    expect_no_changes(runner)

    ok(runner.run_gitlab("fleet-drift"))
    assert not runner.forge.db["gl_issues"]
    change_out_of_band(demo_account.endpoint, "Warehouse")
    ok(runner.run_gitlab("fleet-drift"))
    issues = runner.forge.db["gl_issues"]
    assert [(i["title"], i["state"]) for i in issues] == [("Fleet drift", "opened")]
    for what in (*DRIFTED_SIM, "cost_center", "Warehouse", "plans checked (0)"):
        assert what in issues[0]["description"], what

    # A merge without a merge request (a push to main): no reviewed plan, nothing sent; the plan now is kept.
    clear_requests(demo_account.endpoint)
    pushed = runner.run_gitlab("fleet-apply", sha="c9" * 20)
    assert not pushed.ok and "is not the merge of a merge request" in pushed.log, pushed.log[-3000:]
    assert mutating(demo_account.endpoint) == []
    assert next(j for j in runner.forge.db["gl_jobs"] if j["id"] == pushed.run_id)["artifacts"]

    # A person who read the drift report heals the account on purpose (Run pipeline, FLEET_HEAL=true).
    ok(runner.run_gitlab("fleet-apply", source="web", sha="c9" * 20, variables={"FLEET_HEAL": "true"}))
    ok(runner.run_gitlab("fleet-drift"))
    assert runner.forge.db["gl_issues"][0]["state"] == "closed"
