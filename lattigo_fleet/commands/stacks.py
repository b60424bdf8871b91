"""`lattigo-fleet stacks`: the stacks of this repository, and which of them a change touches.

One account as many stacks of one project (docs/teams.md, docs/ci.md): each stack `S` has its settings in
`Pulumi.S.yaml`, whose `lattigo-fleet:fleetFile` names its fleet file (`fleet.yaml` by default; the `<stem>.d`
directory beside it goes with it). Those files are the one list of the stacks: a CI matrix runs what this
command prints (`--json`: a JSON list for GitHub's `fromJSON`; `--gitlab-pipeline FILE`: a GitLab child
pipeline with one job per stack), so that no stack is typed twice.

With `--changed-from REF`, only the stacks a change since REF touches (`git diff --name-only REF`, the
working tree against REF, plus untracked files): its fleet file, a file of its `<stem>.d`, or its
`Pulumi.S.yaml`; a change of `Pulumi.yaml` (the project's settings, shared by all) touches every stack.
`--changes-in DIR` reads the changes in another checkout of the same project (a pull request's, checked out
beside the base branch's as data) while the stacks and their fleet files stay this directory's.

Nothing here reads a fleet file or runs pulumi: the stack names and paths come from the settings files, the
changes from git.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure

COMMAND = Command("stacks")
PROJECT_FILE = "Pulumi.yaml"  # the project's own settings: a change of them touches every stack
SETTINGS_PREFIX, SETTINGS_SUFFIX = "Pulumi.", ".yaml"
GIT_TIMEOUT = 60  # seconds: one diff of a checkout


class StacksFailure(CommandFailure):
    """The stacks cannot be listed: no settings file, one that is not YAML, or a change git cannot list."""


@dataclass(frozen=True)
class StackFiles:
    """One stack of the project, as its files name it (paths relative to the project directory, POSIX)."""

    name: str
    settings: str  # Pulumi.<name>.yaml ("" when the stack has none: every setting from the environment)
    fleet_file: str

    @property
    def fleet_dir(self) -> str:
        """The `<stem>.d` directory beside the fleet file, which the loader merges in."""
        head, tail = posixpath.split(self.fleet_file)
        return posixpath.join(head, f"{posixpath.splitext(tail)[0]}.d")

    def touched_by(self, path: str) -> bool:
        """Whether a change of `path` (relative to the project) can change what this stack plans."""
        path = posixpath.normpath(path)
        return (
            path in (PROJECT_FILE, self.fleet_file)
            or (bool(self.settings) and path == self.settings)
            or path.startswith(self.fleet_dir + "/")
        )


def settings_file_name(stack: str) -> str:
    return f"{SETTINGS_PREFIX}{stack}{SETTINGS_SUFFIX}"


def stack_files(project_dir: Path, name: str) -> StackFiles:
    """The stack `name`: its settings file, and the fleet file it names (the default without one)."""
    import yaml

    from lattigo_fleet.settings import leaves_the_project
    from lattigo_fleet.sharding import sibling_fleet_file

    settings = project_dir / settings_file_name(name)
    try:
        found = sibling_fleet_file(name, project_dir)  # the one reading of a stack's fleet file setting
    except OSError as exc:
        raise StacksFailure(f"{settings.name}: cannot read it: {exc.strerror or exc}") from None
    except yaml.MarkedYAMLError as exc:  # the file's name, the parser's problem and where
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise StacksFailure(
            f"{settings.name}: not a stack settings file: {exc.problem or exc.context}{where}"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or ["not YAML"])[0]
        raise StacksFailure(f"{settings.name}: not a stack settings file: {first}") from None
    if found is None:
        from lattigo_fleet.settings import default_of

        return StackFiles(name, "", default_of("lattigo-fleet:fleetFile"))
    fleet_file = os.path.relpath(found, project_dir).replace(os.sep, "/")
    if leaves_the_project(fleet_file):
        raise StacksFailure(
            f"{settings.name}: lattigo-fleet:fleetFile must be a path inside the project, not {fleet_file[:80]!r}"
        )
    return StackFiles(name, settings.name, posixpath.normpath(fleet_file))


def find_stacks(project_dir: Path) -> list[StackFiles]:
    """Every stack whose `Pulumi.<stack>.yaml` is in the project directory, by name."""
    if not project_dir.is_dir():
        raise StacksFailure(f"{project_dir}: no such directory")
    names = sorted(
        p.name[len(SETTINGS_PREFIX) : -len(SETTINGS_SUFFIX)]
        for p in project_dir.iterdir()
        if p.name.startswith(SETTINGS_PREFIX) and p.name.endswith(SETTINGS_SUFFIX) and p.name != PROJECT_FILE
    )
    if not names:
        raise StacksFailure(
            f"no stack settings in {project_dir} (a Pulumi.<stack>.yaml for each stack: `pulumi stack init`)"
        )
    return [stack_files(project_dir, name) for name in names]


def _git(args: Sequence[str], cwd: Path, ref: str) -> list[str]:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise StacksFailure(f"cannot list the changes since {ref}: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise StacksFailure(f"cannot list the changes since {ref}: git took over {GIT_TIMEOUT} s in {cwd}") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        raise StacksFailure(f"cannot list the changes since {ref} in {cwd}: {why}")
    return [line for line in proc.stdout.splitlines() if line]


def changed_paths(checkout: Path, ref: str) -> set[str]:
    """The paths (relative to `checkout`, a project directory in a git work tree) that differ between `ref` and
    the working tree, and the untracked ones. Renames count as both names."""
    if ref.startswith("-"):
        raise StacksFailure(f"--changed-from {ref!r}: not a git revision")
    if not checkout.is_dir():
        raise StacksFailure(f"cannot list the changes since {ref}: {checkout}: no such directory")
    # --relative: paths from the project directory (it may be a subdirectory of the repository), and only there.
    diff = _git(["diff", "--name-only", "--no-renames", "--relative", ref, "--"], checkout, ref)
    untracked = _git(["ls-files", "--others", "--exclude-standard"], checkout, ref)
    return {posixpath.normpath(p) for p in [*diff, *untracked]}


def touched(stacks: Iterable[StackFiles], paths: Iterable[str]) -> list[StackFiles]:
    changed = list(paths)
    return [s for s in stacks if any(s.touched_by(p) for p in changed)]


def select(
    project_dir: Path, *, changed_from: str | None = None, changes_in: Path | None = None, stack: str | None = None
) -> list[StackFiles]:
    """The stacks the command prints: all of the project, or `stack` alone, then those a change touches."""
    if stack is not None:
        from lattigo_fleet.sharding import invalid_stack_names

        if invalid_stack_names([stack]) or "/" in stack:
            raise StacksFailure(f"--stack {stack[:80]!r}: not a stack name of this project")
        stacks = [stack_files(project_dir, stack)]
    else:
        stacks = find_stacks(project_dir)
    if changed_from is None:
        return stacks
    return touched(stacks, changed_paths(changes_in or project_dir, changed_from))


# --- GitLab: a child pipeline with one job per stack ---------------------------------------------------------

# What the child pipeline of each command runs: the per-stack job, and the job after them that reports for all
# (a merge has none: each stack's job reports itself). The hidden jobs are the component's (its `jobs` include).
GITLAB_COMMANDS = {"plan": "fleet-comment", "apply": None, "drift": "fleet-drift-issue"}
GITLAB_STAGES = ("snapshot", "stacks", "report")


def gitlab_pipeline(
    stacks: Sequence[StackFiles],
    command: str,
    component: str,
    image: str = "",
    variables: Sequence[tuple[str, str]] = (),
) -> str:
    """The child pipeline of a sharded account's pipeline (the component's `stacks` job writes it; its
    `stacks-run` job triggers it): the component included for its hidden jobs, then

    - `fleet-snapshot` (plan and drift of more than one stack): the account read once, for the stack jobs;
    - one job per stack, `fleet-<command>: <stack>`, with the stack, its fleet file and the matrix's variables
      (the stacks of the run, the budget's shares: every stack job may run at once; a merge's apply of a stack
      waits for that stack's previous one alone);
    - the report for all (plan: ONE note for the merge request; drift: ONE issue), after the stack jobs
      whatever they ended with.

    A child pipeline runs on the parent's commit, so the rules of the hidden jobs (a merge request's, a push's,
    a schedule's pipeline) are replaced: the parent chose the command. With no stack, one job says so (GitLab
    refuses a pipeline without a job). `image` is every job's; `variables` (the parent's context: its merge
    request, its Run pipeline's variables) are the child's."""
    if command not in GITLAB_COMMANDS:
        raise StacksFailure(f"--gitlab-command must be one of {', '.join(GITLAB_COMMANDS)}, not {command!r}")
    if not component:
        raise StacksFailure("--gitlab-component: the address of the lattigo-fleet component the child includes")
    q = json.dumps
    names = [s.name for s in stacks]
    lines = [
        "# Written by `lattigo-fleet stacks --gitlab-pipeline`: one job per stack of the repository.",
        f"stages: {q(list(GITLAB_STAGES))}",
        "include:",
        f"  - component: {q(component)}",
        f"    inputs: {{command: jobs, stage: {q(GITLAB_STAGES[-1])}}}",
        *([f"default: {{image: {q(image)}}}"] if image else []),
        "variables:",
        '  FLEET_MATRIX: "true"',
        f"  FLEET_STACKS: {q(json.dumps(names))}",
        f"  LATTIGO_FLEET_BUDGET_SHARES: {q(str(max(len(stacks), 1)))}",
        *[f"  {name}: {q(value)}" for name, value in variables],
        "",
    ]
    if not stacks:
        lines += [
            f"{q('fleet-' + command + ': no stack')}:",
            f"  stage: {q(GITLAB_STAGES[1])}",
            "  script: ['echo \"No stack of the repository changed: nothing to run.\"']",
        ]
        return "\n".join(lines) + "\n"
    if command != "apply" and len(stacks) > 1:
        lines += [
            "fleet-snapshot:",
            "  extends: .lattigo-fleet-snapshot",
            f"  stage: {q(GITLAB_STAGES[0])}",
            "  rules: [{when: on_success}]",
            "  variables:",
            f"    FLEET_STACK: {q(stacks[0].name)}",
            "",
        ]
    for stack in stacks:
        lines += [
            f"{q(f'fleet-{command}: {stack.name}')}:",
            f"  extends: .lattigo-fleet-{command}",
            f"  stage: {q(GITLAB_STAGES[1])}",
            "  rules: [{when: on_success}]",
        ]
        if command == "apply":  # one apply of a stack at a time; the stacks of one merge apply side by side
            lines.append(f"  resource_group: {q('lattigo-fleet-apply-' + stack.name)}")
        lines += [
            "  variables:",
            f"    FLEET_STACK: {q(stack.name)}",
            f"    FLEET_FILE: {q(stack.fleet_file)}",
            "",
        ]
    report = GITLAB_COMMANDS[command]
    if report:
        lines += [
            f"{report}:",
            f"  extends: .lattigo-{report}",
            f"  stage: {q(GITLAB_STAGES[2])}",
            "  rules: [{when: always}]  # after every stack's job, whatever it ended with",
            "",
        ]
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")
    parser.add_argument(
        "--changed-from",
        metavar="REF",
        help="only the stacks whose fleet file (or its <stem>.d), Pulumi.<stack>.yaml or Pulumi.yaml changed "
        "between REF and the working tree (git diff --name-only REF)",
    )
    parser.add_argument(
        "--changes-in",
        metavar="DIR",
        help="with --changed-from: read the changes in DIR, the same project in another checkout (a pull "
        "request's), instead of --cwd",
    )
    parser.add_argument("--stack", help="this stack alone (its fleet file; the default one if it has no settings file)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list of the names (a CI matrix)")
    output.add_argument(
        "--gitlab-pipeline",
        metavar="FILE",
        help="write a GitLab child pipeline to FILE: one job per stack (the component's stacks job does)",
    )
    parser.add_argument(
        "--gitlab-command",
        choices=sorted(GITLAB_COMMANDS),
        default="plan",
        help="with --gitlab-pipeline: what each stack's job runs",
    )
    parser.add_argument(
        "--gitlab-component",
        metavar="ADDRESS",
        default="",
        help="with --gitlab-pipeline: the lattigo-fleet component the child pipeline includes (its hidden jobs)",
    )
    parser.add_argument("--gitlab-image", default="", metavar="IMAGE", help="with --gitlab-pipeline: the jobs' image")
    parser.add_argument(
        "--gitlab-variable",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --gitlab-pipeline: a variable of the child pipeline (repeatable)",
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return COMMAND.run(lambda: _stacks(args, out or sys.stdout))


def _stacks(args: argparse.Namespace, out: TextIO) -> int:
    if args.changes_in and not args.changed_from:
        raise StacksFailure("--changes-in needs --changed-from REF (the changes since which revision)")
    project = Path(args.cwd or ".")
    changes_in = Path(args.changes_in) if args.changes_in else None
    stacks = select(project, changed_from=args.changed_from, changes_in=changes_in, stack=args.stack)
    if args.gitlab_pipeline:
        variables = []
        for item in args.gitlab_variable:
            name, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise StacksFailure(f"--gitlab-variable {item[:80]!r}: not NAME=VALUE")
            variables.append((name, value))
        text = gitlab_pipeline(stacks, args.gitlab_command, args.gitlab_component, args.gitlab_image, variables)
        try:
            Path(args.gitlab_pipeline).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StacksFailure(f"cannot write {args.gitlab_pipeline}: {exc.strerror or exc}") from None
        names = ", ".join(s.name for s in stacks) or "none"
        print(f"lattigo-fleet stacks: wrote {args.gitlab_pipeline} ({len(stacks)} stack(s): {names})", file=sys.stderr)
    elif args.json:
        out.write(json.dumps([s.name for s in stacks]) + "\n")
    else:
        # Tab-separated, one stack a line: for a shell's `while IFS=$'\t' read -r stack fleet_file`.
        out.writelines(f"{s.name}\t{s.fleet_file}\n" for s in stacks)
    return 0
