"""How every subcommand runs and ends, written once (pip's `cli/base_command.py`: `Command.main`).

A command's work raises a :class:`~lattigo_fleet.commands.common.CommandFailure` for what the user can fix;
:meth:`Command.run` turns it into the command's one line on standard error and its exit code (with ``--json``,
for a command that promises it, the same error as a JSON document on standard output), and Ctrl-C into one
line too. No command prints its own traceback or exit handling: its `main` is ``Command(...).run(work)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from lattigo_fleet.commands.common import CommandFailure, fail


@dataclass(frozen=True)
class Command:
    """One subcommand's edge: its name in messages (``sms send``), and how it words its end."""

    name: str
    #: Written before each error: `import` says "error: " (what its users' scripts read).
    error_prefix: str = ""
    #: With ``--json``, a failure is also ``{"ok": false, "error": ...}`` on standard output.
    json_errors: bool = False
    #: What Ctrl-C says (what was kept or not written), and its exit code.
    interrupted: str = "interrupted"
    interrupted_code: int = 1

    def fail(self, message: str, stream: TextIO | None = None) -> int:
        """The command's one-line error on ``stream`` (None: standard error); exit code 1."""
        return fail(self.name, self.error_prefix + message, stream)

    def run(
        self,
        work: Callable[[], int],
        *,
        json_output: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> int:
        """``work()``'s exit code; a failure's one line (and JSON document) and exit code instead."""
        try:
            return int(work())
        except CommandFailure as exc:
            if json_output and self.json_errors:
                (stdout or sys.stdout).write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
            self.fail(str(exc), stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            fail(self.name, self.interrupted, stderr)
            return self.interrupted_code
