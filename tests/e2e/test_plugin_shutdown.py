"""Our plugins stop when the engine asks, even when they were started with SIGINT ignored.

The engine closes a plugin by sending SIGINT to its process group and waits 5 s before SIGKILL. A run started
from a CI step's background job (`cmd &` in a non-interactive shell, `nohup`) inherits SIGINT ignored, and
neither Go nor Python installs a handler then: every such run stalled 5 s while the engine closed the language
host it had asked for the required plugins (before the program started), and again for the provider host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.pulumi_stack import REPO

# Generous: the bound only keeps a broken host from hanging the suite; a host that honours SIGINT exits at once,
# one that does not is killed by nobody and stays until it.
EXIT_BOUND_S = 60


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _started_ignoring_sigint(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint,
        start_new_session=True,  # its own process group, as the engine starts plugins
        env=env,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()  # serving: the port is the first line
    assert port.isdigit(), (port, proc.stderr.read() if proc.poll() is not None and proc.stderr else b"")
    return proc


def _interrupted_exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    os.killpg(proc.pid, signal.SIGINT)  # what the engine's plugin Close does first
    try:
        return proc.wait(timeout=EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def test_the_language_host_exits_on_sigint_it_inherited_ignored(pulumi_bin: str) -> None:
    host = Path(pulumi_bin) / "pulumi-language-python"
    proc = _started_ignoring_sigint([str(host), "127.0.0.1:1"])
    assert _interrupted_exit_code(proc) == 0, "the language host ignored the engine's SIGINT"


@pytest.mark.parametrize("launcher", ["module", "plugin script"])
def test_the_provider_host_exits_on_sigint_it_inherited_ignored(pulumi_bin: str, launcher: str) -> None:
    if launcher == "module":
        argv = [sys.executable, "-m", "lattigo_fleet.provider_host"]
    else:  # the launcher the engine runs, which execs the virtualenv's Python
        argv = [str(Path(pulumi_bin) / "pulumi-resource-pulumi-python")]
    env = {**os.environ, "PULUMI_RUNTIME_VIRTUALENV": str(REPO / ".venv")}
    proc = _started_ignoring_sigint(argv, env)
    assert _interrupted_exit_code(proc) == 0, "the provider host ignored the engine's SIGINT"
