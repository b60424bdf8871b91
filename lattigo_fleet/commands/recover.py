"""`lattigo-fleet recover`: the one way back after a `pulumi up` (preview, destroy, refresh) was killed.

A run killed with SIGKILL (a CI timeout, an OOM kill, a lost runner) leaves two things behind:

- the stack's **lock** (the file backend keeps the lock file of the dead run): every later `up` is refused
  with "the stack is currently locked ... pulumi cancel";
- without `PULUMI_SKIP_CHECKPOINTS=true`, **pending CREATE operations** in the state, which only an
  interactive `pulumi refresh` clears: every later `up` warns about them. With the project's engine settings
  (:data:`lattigo_fleet.engine_settings.ENGINE_ENV`) the engine writes the state once, at the end of a run,
  so a killed run leaves none of its own; a stack that ran without them once may still hold some.

Recovering is safe because the provider is level-based: every run plans against the live account, so the
next `pulumi up` adopts the SIMs the killed run activated and finds nothing left to send for what it changed.
What is not safe is to take the lock away from a run that is still alive (`pulumi cancel` deletes every lock
file of the stack), so this command first makes sure that none is:

1. no `pulumi up|preview|destroy|refresh|import|watch` process runs on this stack in this project directory
   (read from /proc), and the process named in the lock file, if it is on this host, is gone;
2. `pulumi cancel --yes --stack NAME` (a stack without a lock is fine);
3. if the state holds pending operations: `pulumi refresh --yes --skip-preview --clear-pending-creates
   --stack NAME` (Pulumi v3.260: the other pending kinds are dropped by any refresh; the CREATEs by the flag).

It prints one line per step. Errors are one line (`lattigo-fleet recover: ...`), exit code 1.

Over 400 lines: most of it is the /proc and lock-file reading that proves no run is alive, which belongs with the
one command that needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlparse

from lattigo_fleet.commands import pulumi_cli
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.commands.pulumi_cli import NOT_ON_PATH as NOT_ON_PATH  # what recover says without pulumi
from lattigo_fleet.engine_settings import ENGINE_ENV

COMMAND = Command("recover")
# The pulumi subcommands that take the stack's lock (or, for preview, run the program against the account).
RUNNING_COMMANDS = frozenset({"up", "update", "preview", "pre", "destroy", "down", "dn", "refresh", "import", "watch"})
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
PULUMI_TIMEOUT = 1800  # seconds; a refresh reads every SIM of the account


class RecoverError(CommandFailure):
    """Something the user has to act on; the message is one line."""


@dataclass(frozen=True)
class PulumiProcess:
    pid: int
    command: str  # up, preview, ...
    stack: str | None  # as given on the command line (--stack/-s), None: the project's selected stack
    project_dir: Path | None  # the directory of the Pulumi.yaml it runs on, if found


@dataclass(frozen=True)
class Lock:
    path: Path
    pid: int | None
    hostname: str
    timestamp: str


# ---- processes, from /proc ------------------------------------------------------------------------------


def find_project_dir(start: Path) -> Path | None:
    """The directory holding Pulumi.yaml: `start` or its nearest ancestor, as pulumi searches."""
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in PROJECT_FILES):
            return directory
    return None


def parse_pulumi_argv(argv: Sequence[str]) -> tuple[str | None, str | None, str | None]:
    """(subcommand, --stack value, --cwd value) of a pulumi command line (argv[0] excluded)."""
    command = stack = cwd = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        value_of = None
        for flag, short in (("--stack", "-s"), ("--cwd", "-C")):
            if arg in (flag, short):
                value_of = (flag, args[i + 1] if i + 1 < len(args) else None)
                i += 1
            elif arg.startswith(flag + "="):
                value_of = (flag, arg.split("=", 1)[1])
            elif arg.startswith(short) and len(arg) > 2 and not arg.startswith("--"):
                value_of = (flag, arg[2:].lstrip("="))
        if value_of is not None:
            if value_of[0] == "--stack":
                stack = value_of[1]
            else:
                cwd = value_of[1]
        elif command is None and arg in RUNNING_COMMANDS:
            command = arg
        i += 1
    return command, stack, cwd


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def pulumi_processes(proc_root: Path = Path("/proc")) -> list[PulumiProcess]:
    """Every running `pulumi` CLI process that works on a stack (up, preview, destroy, refresh, ...)."""
    found: list[PulumiProcess] = []
    try:
        entries = [e for e in os.listdir(proc_root) if e.isdigit()]
    except OSError:
        return found
    for entry in entries:
        pid = int(entry)
        if pid == os.getpid():
            continue
        raw = _read(proc_root / entry / "cmdline")
        if not raw:
            continue  # gone, or a zombie
        argv = raw.rstrip(b"\0").decode(errors="replace").split("\0")
        if os.path.basename(argv[0]) != "pulumi":
            continue
        command, stack, cwd_flag = parse_pulumi_argv(argv[1:])
        if command is None:
            continue
        try:
            cwd = Path(os.readlink(proc_root / entry / "cwd"))
        except OSError:
            cwd = None
        start = None if cwd is None else (cwd / cwd_flag if cwd_flag else cwd)
        project = None if start is None else find_project_dir(Path(os.path.normpath(start)))
        found.append(PulumiProcess(pid, command, stack, project))
    return sorted(found, key=lambda p: p.pid)


def _same_stack(given: str | None, stack: str, selected: str | None) -> bool:
    """Whether a process's --stack (None: the selected stack) names `stack` (names may be fully qualified)."""
    name = given if given is not None else selected
    if name is None:
        return True  # cannot tell: assume the worst
    return name.rsplit("/", 1)[-1] == stack.rsplit("/", 1)[-1]


def runs_on(
    processes: Iterable[PulumiProcess], project_dir: Path, stack: str, selected: str | None
) -> list[PulumiProcess]:
    """The processes that work on `stack` of the project in `project_dir`."""
    here = project_dir.resolve()
    return [
        p
        for p in processes
        if p.project_dir is not None and p.project_dir.resolve() == here and _same_stack(p.stack, stack, selected)
    ]


def pid_is_pulumi(pid: int, proc_root: Path = Path("/proc")) -> bool:
    raw = _read(proc_root / str(pid) / "cmdline")
    return (
        raw is not None and bool(raw) and os.path.basename(raw.split(b"\0", 1)[0].decode(errors="replace")) == "pulumi"
    )


# ---- the file backend's lock ----------------------------------------------------------------------------


def project_name(project_dir: Path) -> str:
    for name in PROJECT_FILES:
        path = project_dir / name
        if path.is_file():
            match = re.search(r"^name:\s*['\"]?([^'\"\s#]+)", path.read_text(encoding="utf-8"), re.MULTILINE)
            if match:
                return match.group(1)
    raise RecoverError(f"no project name in {project_dir / PROJECT_FILES[0]}")


def backend_url(project_dir: Path, env: Mapping[str, str]) -> str | None:
    """The backend pulumi uses here: PULUMI_BACKEND_URL, Pulumi.yaml's backend.url, or the logged-in one."""
    if env.get("PULUMI_BACKEND_URL"):
        return env["PULUMI_BACKEND_URL"]
    for name in PROJECT_FILES:
        path = project_dir / name
        if path.is_file():
            match = re.search(
                r"^backend:\s*\n\s+url:\s*['\"]?([^'\"\s]+)", path.read_text(encoding="utf-8"), re.MULTILINE
            )
            if match:
                return match.group(1)
    home = Path(env.get("PULUMI_HOME") or Path.home() / ".pulumi")
    try:
        return json.loads((home / "credentials.json").read_text(encoding="utf-8")).get("current") or None
    except (OSError, ValueError, AttributeError):
        return None


def _file_backend_root(url: str | None) -> Path | None:
    if not url or not url.startswith("file://"):
        return None
    parsed = urlparse(url)
    return Path(unquote(parsed.netloc + parsed.path)).expanduser()


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def restore_cut_off_checkpoint(url: str | None, project: str, stack: str) -> str:
    """A state file that does not parse (a run killed while it wrote it, a disk that filled): keep it aside as
    `<name>.cut-off-<time>` and put the backend's backup of the previous checkpoint (`<name>.bak`) in its
    place. What the killed run changed is re-read from the account by the next run, as after any kill.
    Returns the line to print; raises RecoverError when it cannot be done from here."""
    import shutil
    import time

    root = _file_backend_root(url)
    short = stack.rsplit("/", 1)[-1]
    if root is None:
        raise RecoverError(
            f"the state of stack '{stack}' does not load (a cut-off checkpoint) and its backend is not a local "
            f"directory: restore the object `.pulumi/stacks/{project}/{short}.json.bak` over `{short}.json` "
            "in the bucket, then run recover again; nothing was changed"
        )
    stacks = root / ".pulumi" / "stacks"
    for current in (stacks / project / f"{short}.json", stacks / f"{short}.json"):
        if not current.exists():
            continue
        # The bucket driver keeps each file's metadata in a `.attrs` sidecar that it truncates, then writes:
        # a kill between the two leaves it empty, and reading the state fails with EOF. A missing sidecar is
        # read as no metadata, so a cut-off one is set aside and the state itself is left as it is.
        sidecars = [Path(f"{path}.attrs") for path in (current, current.with_name(current.name + ".bak"))]
        cut = [side for side in sidecars if side.exists() and not _parses(side)]
        if cut:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for side in cut:
                side.rename(side.with_name(f"{side.name}.cut-off-{stamp}"))
            names = ", ".join(side.name for side in cut)
            return f"checkpoint: the state's metadata file {names} was cut off; set it aside (the state is intact)"
        backup = current.with_name(current.name + ".bak")
        try:
            json.loads(current.read_bytes() or b"null")["checkpoint"]
            raise RecoverError(f"pulumi cannot load the state of stack '{stack}', yet {current} parses")
        except (ValueError, TypeError, KeyError):
            pass
        try:
            json.loads(backup.read_bytes())
        except (OSError, ValueError):
            raise RecoverError(
                f"the state file {current} is cut off and has no usable backup ({backup.name}): restore one "
                f"from {root / '.pulumi' / 'backups'} or your bucket's versions; nothing was changed"
            ) from None
        aside = current.with_name(f"{current.name}.cut-off-{time.strftime('%Y%m%dT%H%M%S')}")
        current.rename(aside)
        shutil.copyfile(backup, current)
        return (
            f"checkpoint: the state file was cut off (kept as {aside.name}); restored the previous checkpoint "
            f"from {backup.name}: the next up re-reads the account"
        )
    raise RecoverError(f"pulumi cannot load the state of stack '{stack}', and no state file was found under {stacks}")


def lock_files(url: str | None, project: str, stack: str) -> list[Lock] | None:
    """The lock files of a file:// backend (None: another kind of backend, which this cannot read)."""
    root = _file_backend_root(url)
    if root is None:
        return None
    short = stack.rsplit("/", 1)[-1]
    locks = []
    locks_dir = root / ".pulumi" / "locks"
    for directory in (locks_dir / "organization" / project / short, locks_dir / short):
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
            try:
                body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                body = {}
            pid = body.get("pid")
            locks.append(
                Lock(
                    path,
                    pid if isinstance(pid, int) else None,
                    str(body.get("hostname") or ""),
                    str(body.get("timestamp") or ""),
                )
            )
    return locks


# ---- pulumi ---------------------------------------------------------------------------------------------


def run_pulumi(args: Sequence[str], project_dir: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return pulumi_cli.run(args, env=env, workdir=project_dir, timeout=PULUMI_TIMEOUT, failure=RecoverError)


def selected_stack(project_dir: Path, env: Mapping[str, str]) -> str | None:
    proc = run_pulumi(["stack", "--show-name"], project_dir, env)
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


def pending_operations(project_dir: Path, stack: str, env: Mapping[str, str]) -> tuple[list[str], int]:
    """(the types of the state's pending operations, how many resources it holds)."""
    proc = run_pulumi(["stack", "export", "--stack", stack], project_dir, env)
    if proc.returncode:
        raise pulumi_cli.failed("pulumi stack export", proc, RecoverError)
    try:
        deployment = json.loads(proc.stdout).get("deployment") or {}
    except ValueError:
        raise RecoverError("pulumi stack export did not print JSON") from None
    ops = [str(op.get("type", "?")) for op in deployment.get("pending_operations") or []]
    return ops, len(deployment.get("resources") or [])


def _counted(ops: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    words = {"creating": "CREATE", "updating": "UPDATE", "deleting": "DELETE", "reading": "READ", "importing": "IMPORT"}
    return ", ".join(f"{n} {words.get(op, op.upper())}" for op, n in sorted(counts.items()))


# ---- the command ----------------------------------------------------------------------------------------


def recover(
    project_dir: Path,
    stack: str | None,
    env: Mapping[str, str],
    *,
    yes: bool,
    out: TextIO = sys.stdout,
    proc_root: Path = Path("/proc"),
    confirm: Callable[[str], str] | None = None,
) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    selected = selected_stack(project_dir, env)
    if stack is None:
        if selected is None:
            raise RecoverError(f"no stack selected in {project_dir}: pass --stack NAME")
        stack = selected

    # 1. Nothing may still run on the stack: `pulumi cancel` would take the lock away from a live run.
    running = runs_on(pulumi_processes(proc_root), project_dir, stack, selected)
    if running:
        first = running[0]
        others = f" (and pid {', '.join(str(p.pid) for p in running[1:])})" if running[1:] else ""
        raise RecoverError(
            f"pulumi {first.command} (pid {first.pid}){others} is still running on stack '{stack}' "
            f"in {project_dir}: let it finish or stop it, then run recover again; nothing was changed"
        )
    locks = lock_files(backend_url(project_dir, env), project_name(project_dir), stack)
    host = socket.gethostname()
    for lock in locks or ():
        if lock.hostname and lock.hostname != host:
            raise RecoverError(
                f"the lock of stack '{stack}' was taken by pid {lock.pid} on host {lock.hostname}, "
                "which cannot be checked from here: make sure that run is over, then run "
                "`pulumi cancel --yes` yourself; nothing was changed"
            )
        if lock.pid is not None and pid_is_pulumi(lock.pid, proc_root):
            raise RecoverError(
                f"pulumi (pid {lock.pid}), which holds the lock of stack '{stack}', is still "
                "running: let it finish or stop it, then run recover again; nothing was changed"
            )
    say(f"checked: no pulumi run on stack '{stack}' in {project_dir} is alive")

    try:
        ops, _ = pending_operations(project_dir, stack, env)
        cut_off = False
    except RecoverError as exc:
        if "failed to load checkpoint" not in str(exc):
            raise
        ops, cut_off = [], True
    if not yes:
        what = "no lock file" if locks == [] else f"{len(locks)} lock file(s)" if locks else "the lock (if any)"
        question = (
            ("restore the previous checkpoint (the state file is cut off), " if cut_off else "")
            + f"remove {what} of stack '{stack}'"
            + (f" and clear {len(ops)} pending operation(s) ({_counted(ops)})" if ops else "")
            + "? [y/N] "
        )
        if confirm is None:
            if not sys.stdin.isatty():
                raise RecoverError("not a terminal: pass --yes to recover without a question; nothing was changed")
            confirm = input
        if confirm(question).strip().lower() not in ("y", "yes"):
            say("nothing changed")
            return 1

    if cut_off:
        say(restore_cut_off_checkpoint(backend_url(project_dir, env), project_name(project_dir), stack))
        ops, _ = pending_operations(project_dir, stack, env)

    # 2. The lock.
    cancel = run_pulumi(["cancel", "--yes", "--stack", stack], project_dir, env)
    no_update = re.search(
        r"not (currently )?(being )?updat|no (update|operation)s? (is )?(currently )?in progress",
        cancel.stderr + cancel.stdout,
        re.IGNORECASE,
    )
    if cancel.returncode and not no_update:
        raise pulumi_cli.failed("pulumi cancel", cancel, RecoverError)
    if locks is None:
        say(f"lock: pulumi cancel --yes: stack '{stack}' is unlocked")
    elif locks:
        holders = ", ".join(
            f"pid {lock.pid} on {lock.hostname or '?'} since {lock.timestamp[:19] or '?'}" for lock in locks
        )
        say(f"lock: removed the lock left by a dead run ({holders}) with pulumi cancel --yes")
    else:
        say(f"lock: none; stack '{stack}' was not locked")

    # 3. Pending operations.
    if not ops:
        say("pending operations: none in the state, nothing to clear")
    else:
        refresh = run_pulumi(
            ["refresh", "--yes", "--skip-preview", "--clear-pending-creates", "--stack", stack], project_dir, env
        )
        if refresh.returncode:
            raise pulumi_cli.failed("pulumi refresh --clear-pending-creates", refresh, RecoverError)
        left, _ = pending_operations(project_dir, stack, env)
        if left:
            raise RecoverError(
                f"{len(left)} pending operation(s) ({_counted(left)}) are still in the state after "
                "pulumi refresh --clear-pending-creates"
            )
        say(f"pending operations: cleared {len(ops)} ({_counted(ops)}) with pulumi refresh --clear-pending-creates")
    say(
        f"next: pulumi up --stack {stack} (it plans against the live account: SIMs the dead run activated are "
        "adopted, nothing is sent twice)"
    )
    return 0


def engine_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the pulumi commands: the caller's, with the project's engine settings."""
    return {**(os.environ if base is None else base), **ENGINE_ENV}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", "-s", default=None, help="the stack (default: the selected stack)")
    parser.add_argument("--cwd", "-C", default=".", help="the project directory, holding Pulumi.yaml (default: .)")
    parser.add_argument("--yes", "-y", action="store_true", help="recover without asking first")


def main(args: argparse.Namespace) -> int:
    return COMMAND.run(lambda: _recover(args))


def _recover(args: argparse.Namespace) -> int:
    start = Path(args.cwd).expanduser().resolve()
    project_dir = find_project_dir(start)
    if project_dir is None:
        raise RecoverError(f"no Pulumi.yaml in {start} or above (pass --cwd PROJECT_DIR)")
    return recover(project_dir, args.stack, engine_env(), yes=args.yes)
