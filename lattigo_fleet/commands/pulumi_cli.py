"""The one adapter for running the `pulumi` CLI from a subcommand: the command line (`--non-interactive`,
`--json`, `--stack`, `--cwd`), the run (never waiting on standard input, so a command in CI cannot hang on a
prompt), and its failures as one line for the user: pulumi missing from PATH, a run over its time, and the
line of pulumi's own output that says why it failed (:func:`~lattigo_fleet.commands.common.pulumi_error_line`).

Every `pulumi` the commands start goes through :func:`run`: the preview that `plan` and `drift` read, the
`up` that `apply` runs, `recover`'s cancel/export/refresh, and the stack config read by :func:`stack_config`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lattigo_fleet.commands.common import CommandFailure, pulumi_error_line

NOT_ON_PATH = '`pulumi` is not on PATH (run `eval "$(make -s env)"` in the clone)'


def argv(command: Sequence[str], *, stack: str | None = None, cwd: str | None = None, json: bool = False) -> list[str]:
    """`pulumi COMMAND [--json] --non-interactive [--stack S] [--cwd C]`."""
    args = ["pulumi", *command, *(["--json"] if json else []), "--non-interactive"]
    if stack:
        args += ["--stack", stack]
    if cwd:
        args += ["--cwd", cwd]
    return args


def run(
    command: Sequence[str],
    *,
    stack: str | None = None,
    cwd: str | None = None,
    json: bool = False,
    env: Mapping[str, str] | None = None,
    workdir: str | Path | None = None,
    timeout: float | None = None,
    output_to: int | None = None,
    capture: bool = True,
    failure: type[CommandFailure] = CommandFailure,
) -> subprocess.CompletedProcess[str]:
    """Run pulumi and return the finished run, whatever its exit code (:func:`failed` words a failure). Its
    output is captured, unless ``capture`` is false: then its standard output goes to the file descriptor
    ``output_to`` (None: ours) and its standard error to ours. Raises ``failure`` when pulumi cannot be
    started or does not finish within ``timeout`` seconds."""
    args = argv(command, stack=stack, cwd=cwd, json=json)
    try:
        return subprocess.run(
            args,
            cwd=workdir,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else output_to,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise failure(NOT_ON_PATH) from None
    except subprocess.TimeoutExpired:
        raise failure(f"pulumi {command[0]} did not finish within {timeout:g} s") from None


def failed(
    what: str, proc: subprocess.CompletedProcess[str], failure: type[CommandFailure] = CommandFailure
) -> CommandFailure:
    """``failure`` saying that ``what`` (e.g. "pulumi cancel") failed, and pulumi's own reason, in one line."""
    return failure(f"{what} failed: {pulumi_error_line((proc.stderr or '') + (proc.stdout or ''))}")


def run_json(
    command: Sequence[str],
    *,
    stack: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    failure: type[CommandFailure] = CommandFailure,
) -> Any:
    """Run a pulumi command that prints one JSON document (`config --show-secrets`, ...) and read it."""
    proc = run(command, stack=stack, cwd=cwd, json=True, env=env, failure=failure)
    if proc.returncode:
        raise failed(f"pulumi {command[0]}", proc, failure)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise failure(f"pulumi {' '.join(command)} did not print JSON") from None


def stack_config(
    stack: str | None, cwd: str | None = None, failure: type[CommandFailure] = CommandFailure
) -> dict[str, Any]:
    """The stack's configuration, secrets in clear (`pulumi config --json --show-secrets`): key -> value. The
    one reader of it for every command that takes `--stack`; raises ``failure`` with a one-line reason."""
    config = run_json(["config", "--show-secrets"], stack=stack, cwd=cwd, failure=failure)
    if not isinstance(config, Mapping):
        raise failure("pulumi config --json did not print an object")
    return {str(k): (v.get("value") if isinstance(v, Mapping) else v) for k, v in config.items()}
