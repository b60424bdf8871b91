"""The subcommands' shared framework: how a command ends (base.Command), the one pulumi adapter, the one
credential reader and its hints, the one table, the one progress style, the one did-you-mean, and the table
of commands in the CLI."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.pulumi_stack import REPO
from lattigo_fleet import suggest
from lattigo_fleet.cli import COMMANDS, CommandInfo, build_parser, command_named
from lattigo_fleet.cli import main as cli_main
from lattigo_fleet.client import AuthenticationError, LattigoConnectionError, RateLimited
from lattigo_fleet.commands import pulumi_cli
from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.commands.credentials import (
    CREDENTIALS_HINT,
    api_failure_line,
    read_credentials,
    thingspace_credentials,
)
from lattigo_fleet.terminal.progress import progress_bar
from lattigo_fleet.terminal.table import table

ENV = {"LATTIGO_ENDPOINT": "http://127.0.0.1:1", "LATTIGO_KEY_NAME": "fleet-key", "LATTIGO_API_KEY": "s3cret-key"}


class Stopped(CommandFailure):
    exit_code = 4


# --- how a command ends ---------------------------------------------------------------------------------


def test_a_failure_is_one_line_on_stderr_and_exit_code_1() -> None:
    err = io.StringIO()

    def work() -> int:
        raise CommandFailure("the first line\nand a second one")

    assert Command("drift").run(work, stderr=err) == 1
    assert err.getvalue() == "lattigo-fleet drift: the first line\n"


def test_a_failure_keeps_its_own_exit_code() -> None:
    def work() -> int:
        raise Stopped("stale")

    assert Command("apply").run(work, stderr=io.StringIO()) == 4


def test_json_errors_go_to_stdout_too_only_where_the_command_promises_them() -> None:
    out, err = io.StringIO(), io.StringIO()

    def work() -> int:
        raise CommandFailure("x exists")

    command = Command("import", error_prefix="error: ", json_errors=True)
    assert command.run(work, json_output=True, stdout=out, stderr=err) == 1
    assert json.loads(out.getvalue()) == {"ok": False, "error": "x exists"}
    assert err.getvalue() == "lattigo-fleet import: error: x exists\n"
    out = io.StringIO()
    assert Command("usage").run(work, json_output=True, stdout=out, stderr=io.StringIO()) == 1
    assert out.getvalue() == ""


def test_ctrl_c_is_one_line_with_the_commands_words_and_code() -> None:
    err = io.StringIO()

    def work() -> int:
        raise KeyboardInterrupt

    command = Command("import", interrupted="interrupted, nothing written", interrupted_code=130)
    assert command.run(work, stderr=err) == 130
    assert err.getvalue() == "lattigo-fleet import: interrupted, nothing written\n"


def test_success_is_the_works_exit_code() -> None:
    assert Command("drift").run(lambda: 2) == 2


# --- the pulumi adapter ---------------------------------------------------------------------------------


def test_the_command_line_of_every_pulumi_run() -> None:
    assert pulumi_cli.argv(["up", "--yes"], stack="dev", cwd="infra") == [
        "pulumi",
        "up",
        "--yes",
        "--non-interactive",
        "--stack",
        "dev",
        "--cwd",
        "infra",
    ]
    assert pulumi_cli.argv(["config"], json=True) == ["pulumi", "config", "--json", "--non-interactive"]


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """A `pulumi` on PATH that runs the shell script the test writes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    monkeypatch.setenv("PATH", str(bin_dir))

    def write(body: str) -> None:
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    return write


def test_pulumi_missing_is_the_callers_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(Stopped, match="`pulumi` is not on PATH"):
        pulumi_cli.run(["cancel"], failure=Stopped)


def test_a_failed_run_is_pulumis_last_error_line(fake_pulumi: Callable[[str], None]) -> None:
    fake_pulumi('echo "Updating..." >&2; echo "error: stack is locked" >&2; echo "  details" >&2; exit 255')
    with pytest.raises(CommandFailure) as caught:
        pulumi_cli.run_json(["config", "--show-secrets"], stack="dev")
    assert str(caught.value) == "pulumi config failed: stack is locked"


def test_json_is_read_and_the_stack_config_flattened(fake_pulumi: Callable[[str], None]) -> None:
    fake_pulumi("""echo '{"lattigo:endpoint": {"value": "http://x"}, "plain": "y"}'""")
    assert pulumi_cli.stack_config("dev") == {"lattigo:endpoint": "http://x", "plain": "y"}


def test_a_run_never_waits_on_standard_input(fake_pulumi: Callable[[str], None]) -> None:
    fake_pulumi('read line; echo "read: [$line]"')
    proc = pulumi_cli.run(["whoami"], timeout=20)
    assert proc.stdout == "read: []\n"


def test_a_run_over_its_time_is_one_line(fake_pulumi: Callable[[str], None]) -> None:
    fake_pulumi("exec /bin/sleep 5")
    with pytest.raises(Stopped, match=r"^pulumi refresh did not finish within 0.2 s$"):
        pulumi_cli.run(["refresh"], timeout=0.2, failure=Stopped)


# --- credentials ----------------------------------------------------------------------------------------


def test_credentials_from_the_environment_without_a_stack() -> None:
    credentials = read_credentials(None, env=ENV)
    assert (credentials.endpoint, credentials.key_name, credentials.api_key) == (
        "http://127.0.0.1:1",
        "fleet-key",
        "s3cret-key",
    )
    assert credentials.fleet_file is None
    assert "s3cret-key" not in repr(credentials)


def test_missing_credentials_are_the_callers_failure() -> None:
    with pytest.raises(Stopped, match="Lattigo credentials are not configured"):
        read_credentials(None, env={}, failure=Stopped)


def test_a_stack_that_cannot_be_read_is_named(fake_pulumi: Callable[[str], None]) -> None:
    fake_pulumi('echo "error: no stack named prod found" >&2; exit 255')
    with pytest.raises(Stopped) as caught:
        read_credentials("prod", env=ENV, failure=Stopped)
    assert (
        str(caught.value) == "cannot read the config of stack 'prod': pulumi config failed: no stack named prod found"
    )


def test_the_thingspace_keys_missing_are_named() -> None:
    with pytest.raises(CommandFailure) as caught:
        thingspace_credentials(read_credentials(None, env=ENV), env={})
    assert "lattigo:thingspaceAppKey (LATTIGO_THINGSPACE_APP_KEY)" in str(caught.value)
    assert "lattigo:thingspacePassword (LATTIGO_THINGSPACE_PASSWORD)" in str(caught.value)


@pytest.mark.parametrize(
    ("exc", "api", "line"),
    [
        (
            LattigoConnectionError(method="GET", endpoint="v2/devices", detail="Connection refused"),
            "Lattigo",
            "cannot reach the Lattigo API at http://h (connection refused): check lattigo:endpoint / LATTIGO_ENDPOINT",
        ),
        (
            AuthenticationError(method="GET", endpoint="v2/devices", status=401),
            "Lattigo",
            f"the Lattigo API at http://h refused the credentials (HTTP 401): {CREDENTIALS_HINT}",
        ),
        (
            AuthenticationError(method="POST", endpoint="session/login", status=400),
            "ThingSpace",
            "the ThingSpace API at http://h refused the credentials (HTTP 400): check "
            "lattigo:thingspaceAppKey/AppSecret/Username/Password (or LATTIGO_THINGSPACE_*)",
        ),
        (
            RateLimited(method="GET", endpoint="v2/devices", status=429),
            "Lattigo",
            "the Lattigo API at http://h kept answering 429 (rate limited): try again later",
        ),
    ],
)
def test_an_api_failure_is_one_line_with_the_keys_to_check(exc: Exception, api: str, line: str) -> None:
    assert api_failure_line(exc, "http://h", api) == line


# --- the table, the progress, the did-you-mean -----------------------------------------------------------


def test_the_table_pads_columns_and_aligns_numbers_right() -> None:
    assert table(["name", "bytes"], [["a", 5], ["long name", 1234]], right=(1,)) == [
        "  name       bytes",
        "  a              5",
        "  long name   1234",
    ]
    assert table(["A", "B"], [[None, "x"]], indent="", cell=lambda v: "-" if v is None else str(v)) == [
        "A  B",
        "-  x",
    ]


def test_progress_shows_only_on_a_terminal_unless_asked() -> None:
    quiet = io.StringIO()
    with progress_bar("reading", stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    with progress_bar("reading", stream=shown, show=True) as bar:
        bar.update(3)
    assert shown.getvalue().startswith("\rreading: ") and shown.getvalue().endswith("\r")  # and gone when done


@pytest.mark.parametrize(
    ("word", "choices", "cutoff", "guess"),
    [
        ("truck-001", ["truck-0001", "van-0001"], suggest.NAME_CUTOFF, "truck-0001"),
        ("Fleet-Eastt", ["Fleet-East", "Lab"], suggest.COST_CENTER_CUTOFF, "Fleet-East"),
        ("Fleet-Wes", ["Fleet-East", "Lab"], suggest.COST_CENTER_CUTOFF, None),  # a new one, maybe
        ("Fleet-Wes", ["Fleet-East", "Lab"], suggest.NAME_CUTOFF, "Fleet-East"),
        ("lattigo:ApiKey", ["lattigo:apiKey", "lattigo:keyName"], suggest.CONFIG_KEY_CUTOFF, "lattigo:apiKey"),
        ("lattigo:apiToken", ["lattigo:apiKey", "lattigo:keyName"], suggest.CONFIG_KEY_CUTOFF, None),
        ("A", ["a", "b"], suggest.NAME_CUTOFF, "a"),  # equal but for case, however short
        ("zzz", ["active", "suspended"], suggest.NAME_CUTOFF, None),
    ],
)
def test_did_you_mean(word: str, choices: list[str], cutoff: float, guess: str | None) -> None:
    assert suggest.did_you_mean(word, choices, cutoff) == guess


def test_the_cutoffs() -> None:
    assert (suggest.NAME_CUTOFF, suggest.COST_CENTER_CUTOFF, suggest.CONFIG_KEY_CUTOFF) == (0.6, 0.75, 0.85)


# --- the table of commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("info", COMMANDS, ids=lambda info: info.name)
def test_every_command_of_the_table_has_its_help(info: CommandInfo, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([info.name, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: lattigo-fleet {info.name}")


@pytest.mark.parametrize("info", COMMANDS, ids=lambda info: info.name)
def test_a_command_parses_the_same_built_alone(info: CommandInfo, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([info.name, "--help"])
    whole = capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser(only=info.name).parse_args([info.name, "--help"])
    assert capsys.readouterr().out == whole


@pytest.mark.parametrize(
    ("argv", "only"),
    [(["combine", "plan", "a"], "combine"), (["sms", "send"], None), (["--help"], None), (["plna"], None), ([], None)],
)
def test_the_command_a_line_names(argv: list[str], only: str | None) -> None:
    # A device operation, --help or a typo build every parser: its help, or the did-you-mean of the choices.
    assert command_named(argv) == only


def test_a_ci_step_imports_its_own_command_only() -> None:
    # `lattigo-fleet stacks` and `combine` are steps of every matrix job: they start without the plan's, the
    # provider's and the emulator's imports (Pulumi's SDK, the API client, Flask).
    probe = (
        "import sys\n"
        "from lattigo_fleet.cli import main\n"
        "try:\n    main(['combine', 'plan', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'flask', 'emulator', 'deepdiff')"
        " or m.startswith('lattigo_fleet.client') or m == 'lattigo_fleet.commands.plan')), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.startswith("usage: lattigo-fleet combine") and done.stderr.strip() == "", done.stderr


def test_a_failure_escaping_a_command_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["recover", "--yes", "--cwd", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"lattigo-fleet recover: no Pulumi.yaml in {os.path.realpath(tmp_path)} or above (pass --cwd PROJECT_DIR)\n"
    )
