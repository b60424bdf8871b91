"""`lattigo-fleet` subcommands, one module each (the parser entries and dispatch live in lattigo_fleet/cli.py).

`plan` (the pull-request comment) and `drift` (the scheduled drift report) read `pulumi preview --json`
through :mod:`lattigo_fleet.commands.preview_json`. Every subcommand reports what a user can fix (a bad file, a
wrong key, an unreachable endpoint) with :func:`fail`: one line on standard error, exit code 1, no traceback.
"""

from lattigo_fleet.commands.common import CommandFailure, fail

__all__ = ["CommandFailure", "fail"]
