"""The CI templates under ci/ run as written: every job's own steps, in order, against the emulator.

The templates are thin callers: the GitHub workflows of the composite action (action.yml, `uses: ./`), the
GitLab pipeline of the CI/CD component (templates/lattigo-fleet/template.yml, `include: component:`). Each
workflow file is parsed (ruamel.yaml) and its jobs' `run:` steps (GitHub) / `script:` lines (GitLab) are
executed in bash, with the `env:` / `variables:` the file declares, in a fresh temporary "checkout" per job (a
copy of the project like tests/e2e/test_readme.py makes, plus action.yml and the fleet repository's committed
files), with no `pulumi` or `lattigo-fleet` on PATH: the job's own `make setup` / `make -s env` lines provide
them. The story is the one a fleet repository lives: pull request -> merge -> nightly drift report, then an
out-of-band change in the account and the nightly report again.

What is substituted, and nothing else:

- GitHub `${{ ... }}` in `env:`, `with:`, `run:` and `if:`, read as GitHub reads them (`evaluate`: literals,
  `==`, `!=`, `&&`, `||`, `!`, the status functions): the values of the workflow's contexts (secrets: the
  emulator's URL and credentials, a temporary file backend, a passphrase; vars: the stack; github: the token,
  the repository, the pull request's number and head). Any other expression fails the test.
- `uses: ./`: the checkout's composite action. Its steps run in a scope of their own (`Scope`), as on a
  runner: `inputs.*` from the step's `with:` and the action's defaults (a required one must be given, an
  undeclared one fails), `github.*` (and `github.action_path`), its own steps' outputs (`$GITHUB_OUTPUT`),
  no `secrets` or `vars`; `failure()` is its own steps'; a `run:` step names its shell. Its `outputs:` are
  given back to the job (Job.outputs).
- Other `uses:` steps are not run: the temporary checkout stands for actions/checkout, this machine's Python
  3.11, Go and CLI cache for setup-python, setup-go and actions/cache (whose path and key are recorded);
  actions/upload-artifact keeps the files in the fake forge. `$GITHUB_ENV`, `$GITHUB_PATH` and
  `$GITHUB_OUTPUT` work as on a runner (a new file per step, read after it); each step runs in
  `bash --noprofile --norc -eo pipefail`, as `shell: bash` does.
- GitLab: the pipeline's `include:` (a `component:` resolves to this project's templates/, a `local:` to its
  file) with `spec: inputs` checked and `$[[ inputs.x ]]` interpolated, merged as GitLab merges, then the job
  with its `extends` chain; its `rules:` must let it run in the pipeline it is run in. CI/CD variables and
  predefined variables: GITLAB_VARIABLES below. The jobs' `before_script:` (packages of the job's image: it
  must only run apt-get) is not run; the template's cache locations (CACHE_VARIABLES) keep this machine's,
  so nothing is rebuilt. The script lines run in one `bash --noprofile --norc -eo pipefail`, as the runner
  does.
- The forge: `gh` (GitHub) and `curl` (GitLab's REST API, the only URLs the scripts send to curl) are a fake
  first on PATH (FAKE_FORGE): it records each call with its arguments and the text of the body file it
  was given, and keeps the comments, notes and issues that a real forge would, in a JSON file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
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
ACTION = REPO / "action.yml"
COMPONENT = REPO / "templates" / "lattigo-fleet" / "template.yml"
FLEET_REPOSITORY_FILES = ("action.yml",)  # besides test_readme's CLONE_FILES: what the jobs here read
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
SECRET_INPUTS = {  # the action's input for each secret
    "PULUMI_BACKEND_URL": "backend-url",
    "PULUMI_CONFIG_PASSPHRASE": "config-passphrase",
    "LATTIGO_ENDPOINT": "lattigo-endpoint",
    "LATTIGO_KEY_NAME": "lattigo-key-name",
    "LATTIGO_API_KEY": "lattigo-api-key",
}
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
            "CI_SERVER_FQDN": "gitlab.example.com",
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
        scope = params.get("scope[]")
        done(json.dumps([j for j in db["gl_jobs"] if j["pipeline"] == int(path[3])
                         and scope in (None, j["status"])]))
    if path[2:3] == ["pipelines"] and path[4:] == ["bridges"]:
        done(json.dumps([b for b in db["gl_bridges"] if b["pipeline"] == int(path[3])]))
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
                    "gl_bridges": [],
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


# --- GitHub expressions, composite actions, GitLab includes ------------------------------------------------

Value = str | bool | float | None | list[Any] | dict[str, Any]
TOKEN = re.compile(
    r"\s*(?:(\|\||&&|==|!=|!|\(|\)|\[|\])|'((?:[^']|'')*)'|(\d+(?:\.\d+)?)(?![\w.-])|([A-Za-z_][\w.-]*))"
)
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


def from_json(value: Value) -> Value:
    """GitHub's fromJSON: a JSON text to its value (numbers are floats, as GitHub's are)."""
    assert isinstance(value, str), f"fromJSON of {value!r}"
    loaded: Value = json.loads(value, parse_int=float)
    return loaded


def evaluate(expression: str, lookup: Callable[[str], Value], functions: Mapping[str, bool]) -> Value:
    """A GitHub expression, as much of the syntax as the templates use: literals, context names (`lookup`), the
    status functions, `fromJSON(...)` and an index (`[0]`), `!`, `==` and `!=` (strings compared ignoring case,
    as GitHub does), `&&` and `||` (which give an operand, as GitHub's do), parentheses. Anything else fails
    the test."""
    tokens: list[tuple[str, Value]] = []
    text, pos = expression.strip(), 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        assert m and m.end() > pos, f"expression {expression!r}: cannot read {text[pos:]!r}"
        pos = m.end()
        op, string, number, name = m.groups()
        if op:
            tokens.append(("op", op))
        elif string is not None:
            tokens.append(("value", string.replace("''", "'")))
        elif number is not None:
            tokens.append(("value", float(number)))
        else:
            assert name is not None
            literals: dict[str, Value] = {"true": True, "false": False, "null": None}
            tokens.append(("value", literals[name]) if name in literals else ("name", name))

    def at(i: int) -> tuple[str, Value]:
        return tokens[i] if i < len(tokens) else ("end", None)

    def either(i: int) -> tuple[Value, int]:
        left, i = both(i)
        while at(i) == ("op", "||"):
            right, i = both(i + 1)
            left = left if truthy(left) else right
        return left, i

    def both(i: int) -> tuple[Value, int]:
        left, i = negation(i)
        while at(i) == ("op", "&&"):
            right, i = negation(i + 1)
            left = right if truthy(left) else left
        return left, i

    def negation(i: int) -> tuple[Value, int]:
        if at(i) == ("op", "!"):
            value, i = negation(i + 1)
            return not truthy(value), i
        return comparison(i)

    def comparison(i: int) -> tuple[Value, int]:
        left, i = indexed(i)
        if at(i) in (("op", "=="), ("op", "!=")):
            equal_op = at(i)[1] == "=="
            right, i = indexed(i + 1)
            return (folded(left) == folded(right)) == equal_op, i
        return left, i

    def indexed(i: int) -> tuple[Value, int]:
        value, i = primary(i)
        while at(i) == ("op", "["):
            index, i = either(i + 1)
            assert at(i) == ("op", "]"), f"expression {expression!r}: no closing bracket"
            assert isinstance(value, list) and isinstance(index, float), f"expression {expression!r}: index"
            value, i = value[int(index)], i + 1
        return value, i

    def primary(i: int) -> tuple[Value, int]:
        kind, value = at(i)
        if (kind, value) == ("op", "("):
            inner, i = either(i + 1)
            assert at(i) == ("op", ")"), f"expression {expression!r}: no closing parenthesis"
            return inner, i + 1
        if kind == "value":
            return value, i + 1
        assert kind == "name" and isinstance(value, str), f"expression {expression!r}: unexpected {value!r}"
        if value == "fromJSON" and at(i + 1) == ("op", "("):
            argument, i = either(i + 2)
            assert at(i) == ("op", ")"), f"expression {expression!r}: fromJSON( without )"
            return from_json(argument), i + 1
        if at(i + 1) == ("op", "("):
            assert value in functions and at(i + 2) == ("op", ")"), f"expression {expression!r}: {value}()"
            return functions[value], i + 3
        return lookup(value), i + 1

    result, end = either(0)
    assert end == len(tokens), f"expression {expression!r}: cannot read past token {end}"
    return result


def truthy(value: Value) -> bool:
    return value not in (False, None, "", 0)


def folded(value: Value) -> Value:
    return value.casefold() if isinstance(value, str) else value


def as_text(value: Value) -> str:
    """A value where GitHub puts it in a string (`${{ }}` in `run:`, `env:`, `with:`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


@dataclass
class Scope:
    """Where a step's expressions are read: a workflow's job, or the steps of a composite action it uses (which
    see their `inputs`, `github`, their own steps' outputs and status, and no `secrets` or `vars`)."""

    where: str
    context: dict[str, str]  # flat names: secrets.X, vars.X, github.X, inputs.X
    shell: str | None  # the default shell (`defaults.run.shell`); a composite action's steps must name theirs
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # a step's id -> its outputs
    failed: bool = False  # a step here failed: what failure() reads
    caller_env: dict[str, str] = field(default_factory=dict)  # a composite's: the env of the step that uses it
    # A job's own `if:` reads the jobs it needs: success() all of them succeeded, failure() one failed.
    needs_status: dict[str, bool] | None = None

    def lookup(self, name: str) -> Value:
        if name in self.context:
            return self.context[name]
        parts = name.split(".")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.steps.get(parts[1], {}).get(parts[3], "")
        if name == "runner.os":
            return "Linux"
        raise AssertionError(f"{self.where}: no substitution for ${{{{ {name} }}}}")

    def functions(self) -> dict[str, bool]:
        if self.needs_status is not None:
            return self.needs_status
        return {"success": not self.failed, "failure": self.failed, "always": True, "cancelled": False}

    def value(self, text: Any) -> Value:
        """A value that is one whole `${{ }}` as GitHub reads it where it need not be a string (`strategy:`):
        its value itself (a list, a number); anything else as `sub` reads it."""
        if isinstance(text, bool | int | float):
            return float(text) if not isinstance(text, bool) else text
        m = re.fullmatch(r"\s*\$\{\{\s*(.*?)\s*\}\}\s*", str(text), re.S)
        return evaluate(m.group(1), self.lookup, self.functions()) if m else self.sub(text)

    def sub(self, text: Any) -> str:
        if isinstance(text, bool):
            return str(text).lower()
        return re.sub(
            r"\$\{\{\s*(.*?)\s*\}\}",
            lambda m: as_text(evaluate(m.group(1), self.lookup, self.functions())),
            str(text),
        )

    def runs(self, condition: Any) -> bool:
        """A step's `if:` (without a status function: success() && it)."""
        if condition is None:
            return bool(self.functions()["success"])
        text = str(condition).strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        if not any(re.search(rf"\b{f}\(\)", text) for f in STATUS_FUNCTIONS):
            text = f"success() && ({text})"
        return truthy(evaluate(text, self.lookup, self.functions()))


@dataclass
class GitHubRun:
    """One job's run: what its steps share."""

    workflow: str
    checkout: Path
    run_id: int
    env: dict[str, str]
    pr_files: dict[str, str]
    log: list[str] = field(default_factory=list)
    failed_at: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    caches: list[dict[str, str]] = field(default_factory=list)  # actions/cache's path and key, as given
    outputs: dict[str, str] = field(default_factory=dict)  # the outputs of the (last) composite action run
    before: dict[str, str] | None = None  # a push's files before it (a `fetch-depth: 0` checkout's HEAD^1)


def component_file(address: str) -> Path:
    """`<host>/<group>/lattigo-fleet/<name>@<version>`: this project's templates/ (the version under test)."""
    m = re.fullmatch(r"[^/\s]+(?:/[^/\s]+)*/lattigo-fleet/([\w-]+)@[\w.~-]+", address)
    assert m, f"include: component {address!r} is not lattigo-fleet's"
    for path in (REPO / "templates" / m.group(1) / "template.yml", REPO / "templates" / f"{m.group(1)}.yml"):
        if path.exists():
            return path
    raise AssertionError(f"include: component {address!r}: no such component in templates/")


def with_inputs(path: Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """A file with a `spec: inputs:` header, its `$[[ inputs.x ]]` interpolated in keys and values, as GitLab
    does at include time: every input given is declared, an input without a default is given, `options` hold."""
    header, sep, body = path.read_text().partition("\n---\n")
    assert sep, f"{path}: no `---` after the spec header"
    declared = YAML(typ="safe").load(header)["spec"]["inputs"]
    assert set(given) <= set(declared), f"{path}: inputs {set(given) - set(declared)} are not declared"
    values: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        assert name in given or "default" in spec, f"{path}: input {name} is required"
        value = given.get(name, spec.get("default"))
        assert "options" not in spec or value in spec["options"], f"{path}: {name}: {value!r} not in options"
        values[name] = str(value)

    def interpolate(node: Any) -> Any:
        if isinstance(node, dict):
            return {interpolate(k): interpolate(v) for k, v in node.items()}
        if isinstance(node, list):
            return [interpolate(v) for v in node]
        if not isinstance(node, str):
            return node

        def one(m: re.Match[str]) -> str:
            assert m.group(1) in values, f"{path}: $[[ inputs.{m.group(1)} ]] is not declared"
            return values[m.group(1)]

        text = re.sub(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", one, node)
        assert "$[[" not in text, f"{path}: interpolation not supported here: {text}"
        return text

    interpolated: dict[str, Any] = interpolate(YAML(typ="safe").load(body))
    return interpolated


def merged(base: Any, over: Any) -> Any:
    """GitLab's merge of configuration (includes, `extends`): hashes deep, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base[k], v) if k in base else v for k, v in over.items()}}
    return over


def gitlab_pipeline(
    inputs: Mapping[str, Mapping[str, str]] | None = None, path: Path = GITLAB_PIPELINE
) -> dict[str, Any]:
    """A pipeline file (ci/gitlab/.gitlab-ci.yml, or a child pipeline's) with its includes (a component, or a
    local file) merged in, each with its `inputs` (and, for the include whose command is a key of `inputs`,
    those on top)."""
    return with_includes(load(path), inputs)


def with_includes(doc: dict[str, Any], inputs: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    includes = doc.pop("include", None) or []
    whole: dict[str, Any] = {}
    for include in [includes] if isinstance(includes, dict | str) else includes:
        assert isinstance(include, dict), f"include {include!r}: only component: and local: are run here"
        given = dict(include.get("inputs") or {})
        given.update((inputs or {}).get(str(given.get("command")), {}))
        if "component" in include:
            path = component_file(str(include["component"]))
        else:
            assert set(include) <= {"local", "inputs"}, f"include {include!r}: only component: and local:"
            path = REPO / str(include["local"]).lstrip("/")
        with_spec = re.search(r"^spec:", path.read_text().partition("\n---\n")[0], re.M)
        whole = merged(whole, with_inputs(path, given) if with_spec else load(path))
    pipeline: dict[str, Any] = merged(whole, doc)
    return pipeline


def gitlab_job(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends` chain merged in."""
    job = doc[name]
    parents = job.get("extends") or []
    base: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        base = merged(base, gitlab_job(doc, parent))
    resolved: dict[str, Any] = merged(base, {k: v for k, v in job.items() if k != "extends"})
    return resolved


# --- running a job -----------------------------------------------------------------------------------------


def job_order(jobs: Mapping[str, Any]) -> list[str]:
    """The jobs in an order their `needs:` allow (each after the jobs it needs), else as written."""
    order: list[str] = []
    while len(order) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in order
            and all(
                n in order for n in ([job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs") or [])
            )
        ]
        assert ready, f"jobs {set(jobs) - set(order)} need each other"
        order.append(ready[0])
    return order


def default_shell(doc: Mapping[str, Any]) -> str:
    return str((doc.get("defaults") or {}).get("run", {}).get("shell", "bash"))


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
    env: dict[str, str] = field(default_factory=dict)  # GitHub: the job's environment after its last step
    outputs: dict[str, str] = field(default_factory=dict)  # GitHub: the composite action's outputs
    caches: list[dict[str, str]] = field(default_factory=list)  # GitHub: actions/cache's path and key
    job_outputs: dict[str, str] = field(default_factory=dict)  # GitHub: the job's `outputs:`


@dataclass
class GitLabRun:
    """A GitLab pipeline's run: its jobs by name, and the child pipelines its trigger jobs ran."""

    pipeline: int
    jobs: dict[str, Job] = field(default_factory=dict)
    children: dict[str, GitLabRun] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs.values()) and all(c.ok for c in self.children.values())


@dataclass
class WorkflowRun:
    """A GitHub workflow's run: each job's runs (one per combination of its matrix), results and outputs."""

    run_id: int
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)  # success | failure | skipped
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # a job's `outputs:`
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> the directory that keeps its files


class Runner:
    """A fleet repository (its committed files), the account and the fake forge; runs jobs in fresh checkouts."""

    def __init__(self, root: Path, account: Account, committed: dict[str, str]) -> None:
        self.root, self.account, self.committed = root, account, committed
        self.forge = Forge(root)
        self.home = root / "home"
        self.home.mkdir()
        self.steps = root / "steps"  # each GitHub step's script, $GITHUB_ENV, $GITHUB_PATH and $GITHUB_OUTPUT
        self.steps.mkdir()
        (root / "artifacts").mkdir()
        self.jobs = 0
        self.runs = 0  # GitHub: workflow runs (each has its id)
        self.step_files = 0

    def base_env(self) -> dict[str, str]:
        env = plain_env(self.home)
        env.pop("PULUMI_CONFIG_PASSPHRASE")  # the jobs get theirs from their secrets
        env["PATH"] = f"{self.forge.bin}{os.pathsep}{env['PATH']}"
        return env

    def checkout(self) -> Path:
        self.jobs += 1
        clone = make_clone(self.root / f"job-{self.jobs}")
        # The fleet repository is a clone of this one: it has the action too (`uses: ./`).
        for name in FLEET_REPOSITORY_FILES:
            shutil.copy2(REPO / name, clone / name)
        # The clone's .venv is the repo's: never rebuilt by `make setup`, whatever touched the repo's files later.
        stamp = (REPO / ".venv" / ".installed").stat().st_mtime_ns  # exact: make compares nanoseconds
        for name in ("pyproject.toml", "constraints.txt"):
            os.utime(clone / name, ns=(stamp, stamp))
        for name, text in self.committed.items():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
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
        expressions: dict[str, str] | None = None,
    ) -> Job:
        """One run of a workflow of one job (ci/github/*.yml): `run_workflow`, and that job's run."""
        run = self.run_workflow(
            GITHUB_WORKFLOWS[workflow],
            event=event,
            sha=sha,
            head=head,
            pr=pr,
            inputs=inputs,
            pr_files=pr_files,
            expressions=expressions,
        )
        ((_name, (job,)),) = run.jobs.items()
        return job

    def run_workflow(
        self,
        path: Path,
        *,
        event: str | None = None,
        sha: str = "0" * 40,
        head: str | None = None,
        pr: str = PR_NUMBER,
        inputs: dict[str, str] | None = None,
        pr_files: dict[str, str] | None = None,
        expressions: dict[str, str] | None = None,
        before: dict[str, str] | None = None,
    ) -> WorkflowRun:
        """One run of a workflow, as the runner would for `event` on commit `sha` (a pull request's: `head`),
        `expressions` overriding the secrets and variables. Its jobs run one after another in the order of their
        `needs:` (a job whose `if:` does not hold is skipped; a matrix job runs once per combination of its
        `strategy.matrix`, which must not fail fast), each in a fresh checkout of main's files (`committed`); a
        checkout with a `path:` is the pull request's (`pr_files`, default the same), as far as its
        sparse-checkout lists, and with a `fetch-depth` it is a git repository whose HEAD^1 holds main's files
        (the pull request's merge commit and its base). A root checkout with `fetch-depth: 0` on a push is a git
        repository whose HEAD^1 holds `before` (the files before the push; `github.event.before` is that commit).
        `uses: ./` runs the checkout's composite action (action.yml): its steps, with its inputs from `with:`
        and its defaults, its outputs given back. Other `uses:` steps are skipped but actions/upload-artifact
        and actions/download-artifact, which keep and give back the run's artifacts (also in the fake forge,
        for `gh run download`), and actions/cache, whose key is recorded. A failed step skips the rest but
        `if: failure()`."""
        doc = load(path)
        triggers = doc[True if True in doc else "on"]
        event = event or next(iter(triggers))
        assert event in triggers, f"{path.name} does not run on {event}"
        declared = (triggers.get("workflow_dispatch") or {}).get("inputs") or {}
        given_inputs = inputs or {}
        if event != "workflow_dispatch":
            assert not given_inputs, f"{path.name}: inputs on {event}"
        assert set(given_inputs) <= set(declared), f"{path.name}: inputs {set(given_inputs) - set(declared)}"
        given = {
            k: json.dumps(v["default"]) if "default" in v and event == "workflow_dispatch" else ""
            for k, v in declared.items()
        }
        given.update(given_inputs)
        context = {
            **self.account.github_expressions(),
            "github.event.pull_request.number": pr,
            "github.event.pull_request.head.sha": head or sha,
            "github.event.pull_request.head.repo.full_name": "acme/fleet",  # not a fork's
            "github.event.before": "",
            **{f"inputs.{k}": v for k, v in given.items()},
            **(expressions or {}),
        }
        self.runs += 1
        run_id = 9000 + self.runs
        artifacts: dict[str, str] = {}
        run = WorkflowRun(run_id)
        jobs: dict[str, Any] = doc["jobs"]
        for job_id in job_order(jobs):
            job = jobs[job_id]
            needs = [job["needs"]] if isinstance(job.get("needs"), str) else list(job.get("needs") or [])
            job_context = dict(context)
            for need in needs:
                job_context[f"needs.{need}.result"] = run.results[need]
                # A skipped job's outputs are empty, as GitHub gives them.
                outputs = run.outputs.get(need) or {k: "" for k in jobs[need].get("outputs") or {}}
                job_context.update({f"needs.{need}.outputs.{k}": v for k, v in outputs.items()})
            status = {
                "success": all(run.results[n] == "success" for n in needs),
                "failure": any(run.results[n] == "failure" for n in needs),
                "always": True,
                "cancelled": False,
            }
            where = f"{path.name}: {job_id}"
            gate = Scope(where, job_context, None, needs_status=status)
            if not gate.runs(job.get("if")):
                run.results[job_id] = "skipped"
                continue
            combinations: list[dict[str, Value]] = [{}]
            strategy = job.get("strategy") or {}
            if "matrix" in strategy:
                assert strategy.get("fail-fast") is False, f"{where}: a stack's failure must not cancel the others"
                parallel = gate.value(strategy.get("max-parallel", 256))
                assert isinstance(parallel, float) and parallel >= 1, f"{where}: max-parallel {parallel!r}"
                ((axis, values),) = strategy["matrix"].items()
                values = gate.value(values)
                assert isinstance(values, list) and values, f"{where}: a matrix of no value fails the workflow"
                combinations = [{axis: value} for value in values]
            results = []
            for combination in combinations:
                scope_context = {
                    **job_context,
                    **{f"matrix.{k}": as_text(v) for k, v in combination.items()},
                    "strategy.job-total": str(len(combinations)),
                }
                label = f"{job_id} ({', '.join(as_text(v) for v in combination.values())})" if combination else job_id
                job_run = self.github_job(
                    doc,
                    job,
                    Scope(f"{path.name}: {label}", scope_context, default_shell(doc)),
                    event=event,
                    sha=sha,
                    pr=pr,
                    run_id=run_id,
                    artifacts=artifacts,
                    pr_files=pr_files,
                    before=before,
                    name=label,
                )
                run.jobs.setdefault(job_id, []).append(job_run)
                results.append(job_run.ok)
                run.outputs[job_id] = job_run.job_outputs
            run.results[job_id] = "success" if all(results) else "failure"
        self.forge.append(
            "runs",
            {
                "databaseId": run_id,
                "workflow": doc["name"],
                "headSha": head or sha,
                "conclusion": "failure" if "failure" in run.results.values() else "success",
                "artifacts": artifacts,
            },
        )
        run.artifacts = artifacts
        return run

    def github_job(
        self,
        doc: Mapping[str, Any],
        job: Mapping[str, Any],
        scope: Scope,
        *,
        event: str,
        sha: str,
        pr: str,
        run_id: int,
        artifacts: dict[str, str],
        pr_files: dict[str, str] | None,
        before: dict[str, str] | None,
        name: str,
    ) -> Job:
        """One job of a run (one combination of its matrix), in a fresh checkout."""
        checkout = self.checkout()
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
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_STEP_SUMMARY": str(summary),
                "GITHUB_WORKSPACE": str(checkout),
                "RUNNER_OS": "Linux",
            }
        )
        env.update({k: scope.sub(v) for k, v in {**(doc.get("env") or {}), **(job.get("env") or {})}.items()})
        since = len(self.forge.calls())
        run = GitHubRun(
            str(doc["name"]),
            checkout,
            run_id,
            env,
            self.committed if pr_files is None else pr_files,
            artifacts=artifacts,
        )
        run.before = before
        self.github_steps(run, list(job["steps"]), scope)
        job_outputs = {k: scope.sub(v) for k, v in (job.get("outputs") or {}).items()}
        return Job(
            name,
            run.failed_at is None,
            "".join(run.log),
            checkout,
            run.failed_at,
            self.forge.calls(since),
            run_id,
            summary,
            run.env,
            run.outputs,
            run.caches,
            job_outputs,
        )

    def github_steps(self, run: GitHubRun, steps: list[dict[str, Any]], scope: Scope) -> None:
        for step in steps:
            label = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            if not scope.runs(step.get("if")):
                continue
            passed = self.github_uses(run, step, scope) if "uses" in step else self.github_run(run, step, scope, label)
            if not passed:
                scope.failed = True
                run.failed_at = run.failed_at or label

    def github_run(self, run: GitHubRun, step: dict[str, Any], scope: Scope, label: str) -> bool:
        assert step.get("shell", scope.shell) == "bash", f"{scope.where}: {label}: shell bash"
        self.step_files += 1
        prefix = self.steps / f"job-{self.jobs}-step-{self.step_files}"
        files = {kind: prefix.with_suffix(f".{kind}") for kind in ("env", "path", "output")}
        for f in files.values():
            f.write_text("")
        script = prefix.with_suffix(".sh")
        script.write_text(scope.sub(step["run"]))
        step_env = {
            **run.env,
            **scope.caller_env,
            **{k: scope.sub(v) for k, v in (step.get("env") or {}).items()},
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_PATH": str(files["path"]),
            "GITHUB_OUTPUT": str(files["output"]),
        }
        cwd = run.checkout / scope.sub(step.get("working-directory", "."))
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=step_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=1200,
        )
        run.log.append(f"--- {scope.where}: {label} (exit {proc.returncode})\n{proc.stdout}")
        # The runner reads the files a step wrote when it ends, whatever its exit status.
        run.env.update(read_github_env(files["env"].read_text()))
        for line in files["path"].read_text().splitlines():
            run.env["PATH"] = f"{line}{os.pathsep}{run.env['PATH']}"
        if step.get("id"):
            scope.steps[step["id"]] = read_github_env(files["output"].read_text())
        return proc.returncode == 0

    def github_uses(self, run: GitHubRun, step: dict[str, Any], scope: Scope) -> bool:
        uses = str(step["uses"])
        if uses.startswith("./"):
            return self.github_action(run, step, scope)
        assert uses.startswith("actions/"), step
        given_with = {k: scope.sub(v) for k, v in (step.get("with") or {}).items()}
        checkout = run.checkout
        if uses.startswith("actions/cache@"):
            run.caches.append({"path": given_with["path"], "key": given_with["key"]})
        if uses.startswith("actions/checkout@") and "path" in given_with:
            assert given_with["persist-credentials"] == "false", step
            wanted = given_with["sparse-checkout"].split()
            where = checkout / given_with["path"]
            if "fetch-depth" in given_with:  # the pull request's merge commit, whose HEAD^1 is main (the base)
                base = {n: t for n, t in self.committed.items() if sparse(n, wanted)}
                git_history(where, base, {n: t for n, t in run.pr_files.items() if sparse(n, wanted)})
            else:
                for name, text in run.pr_files.items():
                    if sparse(name, wanted):
                        (where / name).parent.mkdir(parents=True, exist_ok=True)
                        (where / name).write_text(text)
        elif uses.startswith("actions/checkout@") and given_with.get("fetch-depth") == "0" and run.before is not None:
            scope.context["github.event.before"] = git_history(checkout, run.before, self.committed, keep=True)
        if uses.startswith("actions/upload-artifact@"):
            found = checkout / given_with["path"]
            assert found.exists() or given_with.get("if-no-files-found") == "ignore", step
            if found.exists():
                assert given_with["name"] not in run.artifacts, f"artifact {given_with['name']} twice in one run"
                kept = self.root / "artifacts" / str(run.run_id) / given_with["name"]
                if found.is_dir():  # the directory's files, at the artifact's root
                    shutil.copytree(found, kept)
                else:
                    kept.mkdir(parents=True)
                    shutil.copy(found, kept / found.name)
                run.artifacts[given_with["name"]] = str(kept)
        if uses.startswith("actions/download-artifact@"):  # this run's: by name into path, by pattern each in its own
            target = checkout / given_with.get("path", ".")
            if given_with.get("name"):
                assert given_with["name"] in run.artifacts, f"download-artifact: no artifact {given_with['name']}"
                shutil.copytree(run.artifacts[given_with["name"]], target, dirs_exist_ok=True)
            else:
                assert given_with.get("merge-multiple", "false") == "false", step
                for name, directory in run.artifacts.items():
                    if fnmatch.fnmatchcase(name, given_with.get("pattern", "*")):
                        shutil.copytree(directory, target / name, dirs_exist_ok=True)
        return True  # setup-python, setup-go, cache: this machine's

    def github_action(self, run: GitHubRun, step: dict[str, Any], scope: Scope) -> bool:
        """`uses: ./path`: the composite action's steps, in a scope of their own."""
        where = run.checkout / str(step["uses"])
        action = load(where / "action.yml")
        assert action["runs"]["using"] == "composite", where
        declared: dict[str, Any] = action.get("inputs") or {}
        given = {k: scope.sub(v) for k, v in (step.get("with") or {}).items()}
        assert set(given) <= set(declared), f"{scope.where}: inputs {set(given) - set(declared)} not in the action"
        for name, spec in declared.items():
            assert name in given or not spec.get("required"), f"{scope.where}: the action's input {name} is required"
        github = {k: v for k, v in scope.context.items() if k.startswith("github.")}
        inner = Scope(
            f"{scope.where} > action.yml",
            {**github, "github.action_path": str(where.resolve())},
            None,
            caller_env={k: scope.sub(v) for k, v in (step.get("env") or {}).items()},
        )
        # Defaults are read in the action's scope, before any input is known.
        inner.context.update(
            {f"inputs.{k}": given.get(k, inner.sub(spec.get("default", ""))) for k, spec in declared.items()}
        )
        self.github_steps(run, action["runs"]["steps"], inner)
        run.outputs = {k: inner.sub(v["value"]) for k, v in (action.get("outputs") or {}).items()}
        if step.get("id"):
            scope.steps[step["id"]] = dict(run.outputs)
        return not inner.failed

    def run_gitlab(
        self,
        name: str,
        *,
        source: str | None = None,
        sha: str = "0" * 40,
        mr: str | None = None,
        variables: dict[str, str] | None = None,
        mr_files: dict[str, str] | None = None,
        inputs: dict[str, str] | None = None,
    ) -> Job:
        """One job in a pipeline of its own (`source`, commit `sha`, merge request `mr`), with the pipeline's
        `variables` (Run pipeline). The job is the pipeline's with its includes expanded (the component, with
        the inputs the pipeline gives it, `inputs` on top). Its `artifacts:` are kept in the fake forge as
        GitLab keeps them. A merge request's job checks out a git repository as the runner does: its `origin`
        has main (`committed`), and the checkout is the merge request's commit (`mr_files` on top of main),
        whose sha is CI_COMMIT_SHA."""
        doc = gitlab_pipeline({name.removeprefix("fleet-"): inputs} if inputs else None)
        source = source or {"fleet-plan": "merge_request_event", "fleet-apply": "push", "fleet-drift": "schedule"}[name]
        return self.gitlab_job(
            doc, name, source=source, sha=sha, mr=mr, variables=variables, mr_files=mr_files, pipeline=None
        )

    def run_gitlab_pipeline(
        self,
        path: Path,
        *,
        source: str,
        sha: str = "0" * 40,
        mr: str | None = None,
        variables: dict[str, str] | None = None,
        mr_files: dict[str, str] | None = None,
        before: dict[str, str] | None = None,
    ) -> GitLabRun:
        """A whole pipeline of `path` for `source`: its jobs whose rules hold, stage by stage, each given the
        artifacts of the jobs of earlier stages; a trigger job (`trigger: include: artifact:`) runs the child
        pipeline that an earlier job kept as an artifact, with its includes, as the trigger's status. On a push,
        `before` is main before it: the checkout is a git repository whose first commit holds it, and
        CI_COMMIT_BEFORE_SHA is that commit."""
        doc = gitlab_pipeline(path=path)
        self.jobs += 1
        pipeline = 100 + self.jobs
        run = GitLabRun(pipeline)
        self.forge.append(
            "gl_pipelines", {"id": pipeline, "mr": int(mr) if mr else None, "status": "running", "sha": sha}
        )
        self.gitlab_stages(
            doc, run, pipeline, source=source, sha=sha, mr=mr, variables=variables, mr_files=mr_files, before=before
        )
        self.set_pipeline_status(pipeline, run.ok)
        return run

    def gitlab_stages(
        self,
        doc: dict[str, Any],
        run: GitLabRun,
        pipeline: int,
        *,
        source: str,
        sha: str,
        mr: str | None,
        variables: dict[str, str] | None,
        mr_files: dict[str, str] | None = None,
        before: dict[str, str] | None = None,
        child: bool = False,
    ) -> None:
        stages = doc.get("stages", [".pre", "build", "test", "deploy", ".post"])
        names = [
            n
            for n, j in doc.items()
            if not n.startswith(".") and isinstance(j, dict) and ("script" in j or "trigger" in j or "extends" in j)
        ]
        names = [n for n in names if n not in ("variables", "default", "workflow")]
        failed = False
        artifacts: dict[str, str] = {}
        for stage in stages:
            for name in [n for n in names if gitlab_job(doc, n).get("stage", "test") == stage]:
                job = gitlab_job(doc, name)
                env = self.gitlab_env(source, sha, mr, child, {**(doc.get("variables") or {}), **(variables or {})})
                if not job_runs(job.get("rules") or [{"when": "on_success"}], env, failed):
                    continue
                if "trigger" in job:
                    ((include,),) = [job["trigger"]["include"]]
                    assert job["trigger"].get("strategy") == "depend", f"{name}: its status is the child's"
                    maker = run.jobs[include["job"]]
                    kept = next(j for j in self.forge.db["gl_jobs"] if j["id"] == maker.run_id)["artifacts"]
                    child_doc = with_includes(load(Path(kept[include["artifact"]])))
                    self.jobs += 1
                    child_pipeline = 100 + self.jobs
                    self.forge.append(
                        "gl_pipelines", {"id": child_pipeline, "mr": None, "status": "running", "sha": sha}
                    )
                    self.forge.append(
                        "gl_bridges",
                        {"pipeline": pipeline, "name": name, "downstream_pipeline": {"id": child_pipeline}},
                    )
                    child_run = GitLabRun(child_pipeline)
                    self.gitlab_stages(
                        child_doc,
                        child_run,
                        child_pipeline,
                        source="parent_pipeline",
                        sha=sha,
                        mr=mr,
                        variables=None,
                        mr_files=mr_files,
                        child=True,
                    )
                    self.set_pipeline_status(child_pipeline, child_run.ok)
                    run.children[name] = child_run
                    failed = failed or not child_run.ok
                    continue
                result = self.gitlab_job(
                    doc,
                    name,
                    source=source,
                    sha=sha,
                    mr=mr,
                    variables=variables,
                    mr_files=mr_files,
                    pipeline=pipeline,
                    before=before,
                    artifacts_in=artifacts,
                    child=child,
                )
                run.jobs[name] = result
                failed = failed or not result.ok
            for result in run.jobs.values():  # what the next stages get
                artifacts.update(next(j for j in self.forge.db["gl_jobs"] if j["id"] == result.run_id)["artifacts"])

    def set_pipeline_status(self, pipeline: int, ok: bool) -> None:
        db = self.forge.db
        for row in db["gl_pipelines"]:
            if row["id"] == pipeline:
                row["status"] = "success" if ok else "failed"
        self.forge.update(gl_pipelines=db["gl_pipelines"])

    def gitlab_env(
        self, source: str, sha: str, mr: str | None, child: bool, extra: Mapping[str, Any]
    ) -> dict[str, str]:
        """The predefined variables of a job (a child pipeline's has no merge request's), then `extra`."""
        env = self.base_env()
        env.update(self.account.gitlab_variables())
        env.update(
            {
                "CI_PIPELINE_SOURCE": source,
                "CI_COMMIT_SHA": sha,
                "CI_COMMIT_BRANCH": "main",
                "CI_DEFAULT_BRANCH": "main",
            }
        )
        if mr and not child:
            env["CI_MERGE_REQUEST_IID"] = mr
            env["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = "main"
        else:
            env.pop("CI_MERGE_REQUEST_IID", None)
        for key, value in extra.items():
            if key not in CACHE_VARIABLES:
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), str(value))
        return env

    def gitlab_job(
        self,
        doc: dict[str, Any],
        name: str,
        *,
        source: str,
        sha: str,
        mr: str | None,
        variables: dict[str, str] | None,
        mr_files: dict[str, str] | None,
        pipeline: int | None,
        before: dict[str, str] | None = None,
        artifacts_in: Mapping[str, str] | None = None,
        child: bool = False,
    ) -> Job:
        """One job of `doc` (its `extends` chain merged in), in a fresh checkout with `artifacts_in` (an
        artifact's path -> the file that keeps it) in place; a pipeline of its own when `pipeline` is None."""
        job = gitlab_job(doc, name)
        for line in job.get("before_script") or []:
            assert line.startswith("apt-get "), f"{name}: before_script is for the image's packages only: {line}"
        assert job["stage"] in doc.get("stages", [".pre", "build", "test", "deploy", ".post"]), job["stage"]
        checkout = self.checkout()
        extra: dict[str, str] = {}
        if mr:  # a child pipeline's job checks out the same commit (its merge request's variables it has not)
            sha = git_merge_request(checkout, mr_files or {})
            extra["CI_MERGE_REQUEST_DIFF_BASE_SHA"] = subprocess.run(
                ["git", "rev-parse", "HEAD^1"], cwd=checkout, capture_output=True, text=True, check=True
            ).stdout.strip()
        if before is not None and source == "push":
            extra["CI_COMMIT_BEFORE_SHA"] = git_history(checkout, before, self.committed, keep=True)
        for path, stored in (artifacts_in or {}).items():
            (checkout / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(stored, checkout / path)
        job_id = 500 + self.jobs
        env = self.gitlab_env(source, sha, mr, child, {**(doc.get("variables") or {}), **(job.get("variables") or {})})
        env.update(
            {
                "CI_PROJECT_DIR": str(checkout),
                "CI_JOB_ID": str(job_id),
                "CI_PIPELINE_URL": f"https://gitlab.example.com/acme/fleet/-/pipelines/{pipeline}",
                **extra,
            }
        )
        env.update(variables or {})
        if pipeline is None:
            assert any(rule_holds(rule["if"], env) for rule in job["rules"]), f"{name} does not run on {source}"
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
                found = checkout / path
                files = [found] if found.is_file() else sorted(f for f in found.rglob("*") if f.is_file())
                for file in files:  # each file of a directory, by its path (as the artifacts API serves them)
                    relative = file.relative_to(checkout).as_posix()
                    kept[relative] = str(self.root / "artifacts" / f"job-{job_id}" / relative)
                    Path(kept[relative]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(file, kept[relative])
        if pipeline is None:
            pipeline = 100 + self.jobs
            self.forge.append(
                "gl_pipelines",
                {
                    "id": pipeline,
                    "mr": int(mr) if mr else None,
                    "status": "success" if passed else "failed",
                    "sha": sha,
                },
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


def sparse(name: str, wanted: list[str]) -> bool:
    """Whether a sparse checkout (non-cone: patterns as .gitignore reads them) of `wanted` has the file `name`."""
    return any(name == w or name.startswith(w + "/") or fnmatch.fnmatchcase(name, w) for w in wanted)


def git_history(where: Path, base: dict[str, str], files: dict[str, str], keep: bool = False) -> str:
    """A git repository at `where` of two commits: `base`, then `files` over it (HEAD); the first's sha. With
    `keep`, `where` is a checkout already (its other files are in both commits), else it holds only these."""
    where.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.com",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.com",
    }

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, env=env, check=True, capture_output=True, text=True).stdout

    def write(tree: dict[str, str]) -> None:
        for name, text in tree.items():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            (where / name).write_text(text)

    git("init", "-q", "-b", "main")
    (where / ".git" / "info" / "exclude").write_text(".venv\n.cache/\n")
    for name in set(files) - set(base):
        (where / name).unlink(missing_ok=True)
    write(base)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", "base")
    first = git("rev-parse", "HEAD").strip()
    for name in set(base) - set(files):
        (where / name).unlink()
    write(files)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", "change")
    return first


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


def job_runs(rules: list[dict[str, Any]], env: Mapping[str, str], earlier_failed: bool) -> bool:
    """A job's `rules:` as GitLab reads them: the first that holds decides; an `if` holds by its condition, a
    rule without one always; `when: on_success` (the default) runs if no job of an earlier stage failed,
    `always` runs, `never` does not."""
    for rule in rules:
        if "if" in rule and not rule_holds(str(rule["if"]), env):
            continue
        when = rule.get("when", "on_success")
        assert when in ("on_success", "always", "never"), f"rules: when: {when}"
        return when == "always" or (when == "on_success" and not earlier_failed)
    return False


def rule_holds(condition: str, env: Mapping[str, str]) -> bool:
    """A `rules: if:` of the form the templates use: `$A == "x" && $B == $C`."""

    def value(term: str) -> str:
        term = term.strip()
        if term.startswith("$"):
            return env.get(term[1:], "")
        assert term.startswith('"') and term.endswith('"'), f"rules: if: {condition!r}"
        return term[1:-1]

    for clause in condition.split("&&"):
        left, op, right = re.split(r"\s*(==|!=)\s*", clause.strip())
        if (value(left) == value(right)) != (op == "=="):
            return False
    return True


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
    """The fleet repository before the pull request, as docs/own-account.md onboards an account that already
    has SIMs: the stack, `lattigo-fleet import` of the account as it is, a first `pulumi up` (adopts, sends
    nothing). The pull request then declares the shipped fleet.yaml's changes, with the rest of the account
    merged in."""
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


def for_command(step: Mapping[str, Any], command: str) -> bool:
    """Whether an action step can run for `command` (its `if` names no command, or this one)."""
    condition = str(step.get("if") or "")
    return "inputs.command" not in condition or f"inputs.command == '{command}'" in condition


def test_templates_declare_the_settings_and_serialize_applies() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert "${{ secrets." not in ACTION.read_text() and "${{ vars." not in ACTION.read_text()
    for name, path in GITHUB_WORKFLOWS.items():
        doc = load(path)
        # The workflow is a caller of the action: its checkouts, then `uses: ./` with the command and the stack.
        ((_job, job),) = doc["jobs"].items()
        (call,) = [step for step in job["steps"] if step.get("uses") == "./"]
        command = call["with"]["command"]
        assert command == {"pull-request": "plan", "merge": "apply", "nightly-drift": "drift"}[name]
        assert call["with"]["stack"] == "${{ vars.PULUMI_STACK }}"
        # The engine settings are the action's to set (from `make env`: the story tests check the job's env),
        # never a copy here.
        assert not set(MAKE_ENV) & set(doc.get("env") or {}), f"{name}: the engine settings are the action's"
        # The secrets reach only the step that runs pulumi, and the checkout keeps no token: from the secrets
        # into the action's inputs (never an env: it would reach every step of the action)...
        assert not set(SECRETS) & {k for s in (doc, job, *job["steps"]) for k in (s.get("env") or {})}, name
        assert {k: v for k, v in call["with"].items() if k in SECRET_INPUTS.values()} == {
            field: f"${{{{ secrets.{secret} }}}}" for secret, field in SECRET_INPUTS.items()
        }, f"{name}: each secret from its secret"
        # ...and in the action, into one step of the command alone, as the variable of its name.
        steps = [step for step in action["runs"]["steps"] if for_command(step, command)]
        with_secrets = [
            step["name"]
            for step in steps
            if any(f"inputs.{field}" in json.dumps(step) for field in SECRET_INPUTS.values())
        ]
        assert len(with_secrets) == 1, f"{name}: {with_secrets}"
        (secret_step,) = [step for step in steps if step.get("name") == with_secrets[0]]
        assert {k: secret_step["env"].get(k) for k in SECRETS} == {
            secret: f"${{{{ inputs.{field} }}}}" for secret, field in SECRET_INPUTS.items()
        }, name
        assert "inputs." not in secret_step["run"], f"{name}: the secrets are read from the environment"
        checkout = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False, name
        assert job["steps"].index(checkout) < job["steps"].index(call), f"{name}: `./` is the checkout's action"
    triggers = {name: load(path)[True if True in load(path) else "on"] for name, path in GITHUB_WORKFLOWS.items()}
    # The plan runs main's workflow and code (pull_request_target); the pull request is checked out as data.
    assert set(triggers["pull-request"]) == {"pull_request_target"}
    plan_steps = load(GITHUB_WORKFLOWS["pull-request"])["jobs"]["plan"]["steps"]
    checkouts = [s.get("with") or {} for s in plan_steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert "ref" not in checkouts[0] and checkouts[1]["path"] == ".pull-request"
    assert checkouts[1]["sparse-checkout"].split() == ["fleet.yaml", "fleet.d"]
    (plan_call,) = [s for s in plan_steps if s.get("uses") == "./"]
    assert plan_call["with"]["pull-request-files"] == checkouts[1]["path"], "the action plans the data checkout"
    assert load(GITHUB_WORKFLOWS["merge"])["jobs"]["apply"]["environment"] == "lattigo-fleet-apply"
    assert triggers["merge"]["push"]["branches"] == ["main"]
    assert set(triggers["merge"]["workflow_dispatch"]["inputs"]) == {"plan_run", "digest", "heal"}
    (apply_call,) = [s for s in load(GITHUB_WORKFLOWS["merge"])["jobs"]["apply"]["steps"] if s.get("uses") == "./"]
    assert {k: apply_call["with"][k] for k in ("plan-run", "digest", "heal")} == {
        "plan-run": "${{ inputs.plan_run }}",
        "digest": "${{ inputs.digest }}",
        "heal": "${{ inputs.heal }}",
    }
    assert "schedule" in triggers["nightly-drift"]
    merge = load(GITHUB_WORKFLOWS["merge"])["concurrency"]
    assert merge["cancel-in-progress"] is False and "fleet-apply" in merge["group"]

    # GitLab: the pipeline is three includes of the component, one per command, each with the stack.
    includes = load(GITLAB_PIPELINE)["include"]
    assert [i["inputs"]["command"] for i in includes] == ["plan", "apply", "drift"]
    assert {i["inputs"]["stack"] for i in includes} == {STACK}
    assert all(str(i["component"]).endswith("/lattigo-fleet/lattigo-fleet@v1") for i in includes)
    gitlab = gitlab_pipeline()
    jobs = {name: gitlab_job(gitlab, name) for name in ("fleet-plan", "fleet-apply", "fleet-drift")}
    assert not any(name.startswith("fleet-") for name in gitlab if name not in jobs), "one job per include"
    for name, job in jobs.items():
        assert {k: str(job["variables"].get(k)) for k in MAKE_ENV} == MAKE_ENV, name
        assert job["variables"]["FLEET_STACK"] == STACK and job["stage"] == name.removeprefix("fleet-"), name
    assert jobs["fleet-apply"]["resource_group"]
    assert jobs["fleet-apply"]["environment"]["name"] == "lattigo-fleet-apply"
    assert "environment" not in jobs["fleet-plan"] and "environment" not in jobs["fleet-drift"]
    sources = {name: " ".join(r["if"] for r in job["rules"]) for name, job in jobs.items()}
    assert '"merge_request_event"' in sources["fleet-plan"]
    assert '"push"' in sources["fleet-apply"] and "$CI_DEFAULT_BRANCH" in sources["fleet-apply"]
    assert '"schedule"' in sources["fleet-drift"] and '"schedule"' not in sources["fleet-apply"]
    # The plan document (and, in a child pipeline of many stacks, the stack's report), kept even when it failed.
    assert jobs["fleet-plan"]["artifacts"]["paths"] == ["fleet-plan.json", "fleet-report/"]
    assert jobs["fleet-plan"]["artifacts"]["when"] == "always"
    assert jobs["fleet-apply"]["artifacts"] == {
        "when": "on_failure",
        "paths": ["fleet-plan-now.json"],
        "expire_in": "30 days",
    }
    text = COMPONENT.read_text()
    for secret in (*SECRETS, "GITLAB_TOKEN"):
        assert f"${secret}" in text or secret in text, secret
    # An input the component does not declare, or a command it does not have, is refused as GitLab would.
    with pytest.raises(AssertionError, match="not declared"):
        gitlab_pipeline({"plan": {"stack_name": STACK}})
    with pytest.raises(AssertionError, match="not in options"):
        gitlab_pipeline({"plan": {"command": "destroy"}})


def test_the_runner_reads_expressions_as_github_does() -> None:
    """The runner's reading of `${{ }}` and `if:` (what the action's steps rely on), as GitHub's docs state."""
    context = {"inputs.command": "apply", "inputs.empty": "", "inputs.heal": "false"}
    scope = Scope("table", context, None)
    rows = [
        ("inputs.command == 'apply'", True),
        ("inputs.command == 'APPLY'", True),  # strings compare ignoring case
        ("inputs.command != 'plan' && inputs.empty == ''", True),
        ("inputs.command == 'plan' || inputs.command == 'drift'", False),
        ("!(inputs.command == 'apply')", False),
        ("inputs.heal", True),  # a non-empty string is truthy, "false" too
        ("inputs.empty", False),
        ("failure() && inputs.command == 'apply'", False),
    ]
    assert [(condition, scope.runs(condition)) for condition, _ in rows] == rows
    assert scope.sub("${{ inputs.empty || inputs.command }}-${{ steps.none.outputs.x }}") == "apply-"
    scope.failed = True
    assert scope.runs("failure() && inputs.command == 'apply'") and not scope.runs("inputs.command == 'apply'")
    assert scope.runs("always()")
    with pytest.raises(AssertionError, match="no substitution"):
        scope.sub("${{ secrets.LATTIGO_API_KEY }}")


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
    # The action set up the CLI with its cache (keyed on the pin), gave the job the engine settings of `make
    # env`, and says what it planned: the digest, that it changes the account, the artifact that keeps it.
    pin = re.search(r"^pulumi==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pin and [c["path"] for c in first.caches] == ["~/.cache/lattigo-fleet"]
    assert first.caches[0]["key"].startswith(f"lattigo-fleet-Linux-pulumi-{pin.group(1)}-"), first.caches
    assert {k: first.env.get(k) for k in MAKE_ENV} == MAKE_ENV, "the engine settings reach every later step"
    first_plan = json.loads((first.checkout / "fleet-plan.json").read_text())
    assert first.outputs == {
        "digest": first_plan["digest"],
        "has-changes": "true",
        "plan-file": "./fleet-plan.json",
        "artifact": f"fleet-plan-{PR_NUMBER}-{'b1' * 20}",
        "exit-code": "0",
        "drift": "",
        "stacks": "",
        "count": "",
        "parallel": "",
    }
    assert first_plan["stack"] == STACK, "the stack input reaches pulumi"
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
    assert (refused.outputs["exit-code"], refused.outputs["digest"]) == ("3", now["digest"]), refused.outputs
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

    # The stack is the action's input, and it is what pulumi runs: a stack the backend does not hold fails
    # (pulumi: "no stack selected", though this machine's workspace has prod selected since the onboarding).
    elsewhere = runner.run_github("nightly-drift", expressions={"vars.PULUMI_STACK": "staging"})
    assert not elsewhere.ok and elsewhere.failed_at == "Drift report", elsewhere.log[-3000:]
    assert "no stack selected" in elsewhere.log.split("action.yml: Drift report")[1], elsewhere.log[-3000:]


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
    # The merge request widget's counts (artifacts:reports:terraform): one per SIM the plan changes.
    report = json.loads((second.checkout / "fleet-plan.tfreport.json").read_text())
    assert set(report) == {"create", "update", "delete"} and report["update"] >= 1, report
    assert sum(report.values()) == len(approved["sims"]), (report, [s["action"] for s in approved["sims"]])
    assert approved["stack"] == STACK, "the component's stack input reaches pulumi"

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

    # The stack is the include's input, and it is what pulumi runs: a stack the backend does not hold fails.
    elsewhere = runner.run_gitlab("fleet-drift", inputs={"stack": "staging"})
    assert not elsewhere.ok and "no stack selected" in elsewhere.log, elsewhere.log[-3000:]
    assert runner.forge.db["gl_issues"][0]["state"] == "closed", "an error leaves the issue alone"
