"""`lattigo-fleet` subcommands, one module each; the CLI finds them through its table (lattigo_fleet/cli.py).

What they share is written once, as pip's `cli/base_command.py` and `cli/cmdoptions.py` do it:

- :mod:`~lattigo_fleet.commands.base`: how a command ends: a :class:`CommandFailure` becomes one line on
  standard error and its exit code (with ``--json``, for ``import``, a JSON error too), Ctrl-C one line.
- :mod:`~lattigo_fleet.commands.common`: the failure itself, pulumi's error line, the fleet file loaded or refused
  with its first problem and "(and N more: run `lattigo-fleet validate`)".
- :mod:`~lattigo_fleet.commands.credentials`: the stack's config, else the environment; the hints of a refusal.
- :mod:`~lattigo_fleet.commands.pulumi_cli`: every run of the `pulumi` CLI.
- :mod:`~lattigo_fleet.terminal.table` and :mod:`~lattigo_fleet.terminal.progress`: the one table and the one
  progress bar; :mod:`lattigo_fleet.suggest`: the one did-you-mean.

`plan` (the pull-request comment) and `drift` (the scheduled drift report) read `pulumi preview --json`
through :mod:`lattigo_fleet.commands.preview_json`.
"""

from lattigo_fleet.commands.common import CommandFailure, fail

__all__ = ["CommandFailure", "fail"]
