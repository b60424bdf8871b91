"""The settings table (lattigo_fleet/settings.py) is the one place; Pulumi.yaml and docs/settings.md follow it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ruamel.yaml import YAML

from devtools.pulumi_stack import REPO
from lattigo_fleet.client import RequestBudget, budget
from lattigo_fleet.settings import BY_KEY, SETTINGS, SettingsError, read_settings, unknown_keys

CREDENTIALS = {"lattigo:endpoint": "https://x", "lattigo:keyName": "k", "lattigo:apiKey": "s"}


def test_pulumi_yaml_declares_the_project_keys_with_the_same_types_and_defaults() -> None:
    project = YAML(typ="safe").load((REPO / "Pulumi.yaml").read_text())
    assert project["name"] == "lattigo-fleet"
    # No refresh before every run: each diff is against the live account already (Pulumi.yaml says why).
    assert "refresh" not in (project.get("options") or {})
    declared = project["config"]
    ours = [s for s in SETTINGS if s.key.startswith("lattigo-fleet:")]
    assert set(declared) == {s.name for s in ours}
    for setting in ours:
        assert declared[setting.name]["type"] == setting.type
        assert str(declared[setting.name]["default"]).lower() == str(setting.default).lower()


def test_the_settings_page_lists_every_key() -> None:
    page = (REPO / "docs" / "settings.md").read_text()
    listed = set(re.findall(r"^\| `(lattigo(?:-fleet)?:\w+)`", page, re.M))
    assert listed == set(BY_KEY)


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("lattigo-fleet:fleetfile", "did you mean `lattigo-fleet:fleetFile`?"),
        ("lattigo:endpiont", "did you mean `lattigo:endpoint`?"),
        ("lattigo:api_key", "did you mean `lattigo:apiKey`?"),
        ("lattigo-fleet:colour", "the known keys are"),
    ],
)
def test_an_unknown_key_of_ours_is_named_with_a_hint(key: str, hint: str) -> None:
    [message] = unknown_keys([key, "aws:region", "lattigo-fleet:fleetFile"])
    assert f"`{key}`" in message and hint in message


def test_settings_come_from_config_then_environment_then_default() -> None:
    settings = read_settings(CREDENTIALS.get, env={})
    assert (
        settings.fleet_file,
        settings.activation_timeout,
        settings.batch_window,
        settings.audit_log,
        settings.allow_large_changes,
    ) == ("fleet.yaml", 300.0, 0.2, None, False)
    from_env = read_settings(
        lambda k: None, env={"LATTIGO_ENDPOINT": "https://e", "LATTIGO_KEY_NAME": "k", "LATTIGO_API_KEY": "s"}
    )
    assert from_env.endpoint == "https://e"


def test_the_per_run_escape_hatch_wins_over_the_stack_setting_either_way() -> None:
    config = {**CREDENTIALS, "lattigo-fleet:allowLargeChanges": "false"}
    assert read_settings(config.get, env={"LATTIGO_ALLOW_LARGE_CHANGES": "true"}).allow_large_changes
    config["lattigo-fleet:allowLargeChanges"] = "true"
    assert not read_settings(config.get, env={"LATTIGO_ALLOW_LARGE_CHANGES": "false"}).allow_large_changes
    assert read_settings(config.get, env={}).allow_large_changes


def test_missing_credentials_and_bad_values_are_all_named() -> None:
    with pytest.raises(SettingsError) as caught:
        read_settings({"lattigo:endpoint": "https://x", "lattigo-fleet:batchWindowMs": "soon"}.get, env={})
    message = str(caught.value)
    assert "lattigo:keyName, lattigo:apiKey" in message and "LATTIGO_KEY_NAME" in message
    assert "batchWindowMs must be a number" in message


def test_the_api_key_is_not_in_the_settings_repr() -> None:
    assert "s3cr3t" not in repr(read_settings({**CREDENTIALS, "lattigo:apiKey": "s3cr3t"}.get, env={}))


def test_the_makefile_sets_the_engine_settings_the_module_names() -> None:
    from lattigo_fleet.engine_settings import ENGINE_ENV

    makefile = (REPO / "Makefile").read_text()
    exported = dict(re.findall(r"^export ((?:PULUMI_|GO)\w+) := (\S+)$", makefile, re.M))
    assert {k: exported.get(k) for k in ENGINE_ENV} == ENGINE_ENV


def test_make_env_prints_the_engine_settings_without_loading_pulumi() -> None:
    # Every CI job runs `make -s env` (action.yml, the GitLab component): it costs a Python start, not Pulumi's
    # SDK and gRPC (the provider host's imports), which took 0.2 CPU-s of each call.
    probe = (
        "import sys, runpy\n"
        "runpy.run_module('lattigo_fleet.engine_settings', run_name='__main__')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'grpc', 'google')), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stderr.strip() == "[]", done.stderr
    assert "export PULUMI_PARALLEL=512\n" in done.stdout


def test_a_large_fleet_without_the_engine_settings_is_warned() -> None:
    from lattigo_fleet.engine_settings import ENGINE_ENV, advice

    assert advice(10, env={}) is None  # small: not worth a warning
    assert advice(5000, env=ENGINE_ENV) is None
    message = advice(5000, env={**ENGINE_ENV, "PULUMI_SKIP_CHECKPOINTS": "false"})
    assert message and "PULUMI_SKIP_CHECKPOINTS=true" in message and "square" in message


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("lattigo:endpoint", "http://api.lattigo.example", "clear text"),
        ("lattigo:thingspaceEndpoint", "http://thingspace.example", "clear text"),
        ("lattigo-fleet:fleetFile", "/etc/passwd", "inside the project"),
        ("lattigo-fleet:fleetFile", "../other/fleet.yaml", "inside the project"),
        ("lattigo-fleet:fleetFile", "fleets/../../x.yaml", "inside the project"),
    ],
)
def test_settings_a_pull_request_could_turn_against_the_runner_are_refused(key: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        read_settings({**CREDENTIALS, key: value}.get, env={})
    assert key in str(caught.value) and says in str(caught.value)


def test_loopback_http_and_a_fleet_file_in_a_subdirectory_are_fine() -> None:
    settings = read_settings(
        {**CREDENTIALS, "lattigo:endpoint": "http://127.0.0.1:5000", "lattigo-fleet:fleetFile": "fleets/prod.yaml"}.get,
        env={},
    )
    assert settings.endpoint == "http://127.0.0.1:5000" and settings.fleet_file == "fleets/prod.yaml"


# --- the account's request budget ---------------------------------------------------------------------------

RATE_KEY = "lattigo-fleet:requestsPerSecond"


@pytest.fixture
def stack_budget() -> Iterator[None]:
    """Reading settings hands the stack's budget to the process's later clients: put it back after the test."""
    yield
    budget.use_stack_setting(0.0)


@pytest.mark.parametrize(
    ("stack", "env", "expected"),
    [
        (None, {}, RequestBudget()),  # the default: no ceiling
        ("0", {}, RequestBudget()),
        ("4", {}, RequestBudget(4.0, 1)),
        ("2.5", {"LATTIGO_FLEET_BUDGET_SHARES": "5"}, RequestBudget(2.5, 5)),
        ("4", {"LATTIGO_FLEET_REQUESTS_PER_SECOND": "10"}, RequestBudget(10.0, 1)),  # the variable wins
        (None, {"LATTIGO_FLEET_REQUESTS_PER_SECOND": "10", "LATTIGO_FLEET_BUDGET_SHARES": "5"}, RequestBudget(10, 5)),
    ],
)
def test_the_request_budget_comes_from_the_stack_and_the_variable_wins(
    stack: str | None, env: dict[str, str], expected: RequestBudget, stack_budget: None
) -> None:
    config = {**CREDENTIALS, **({RATE_KEY: stack} if stack is not None else {})}
    assert read_settings(config.get, env=env).request_budget == expected


KEY_SAYS = "lattigo-fleet:requestsPerSecond must be a number of requests per second, 0 or more (0: no ceiling), not "
RATE_SAYS = "LATTIGO_FLEET_REQUESTS_PER_SECOND must be a positive number of requests per second, not "


@pytest.mark.parametrize(
    ("stack", "env", "says"),
    [
        ("-1", {}, KEY_SAYS + "'-1'"),
        ("fast", {}, KEY_SAYS + "'fast'"),
        ("4", {"LATTIGO_FLEET_REQUESTS_PER_SECOND": "0"}, RATE_SAYS + "'0'"),
        (
            "4",
            {"LATTIGO_FLEET_BUDGET_SHARES": "two"},
            "LATTIGO_FLEET_BUDGET_SHARES must be a whole number of jobs >= 1, not 'two'",
        ),
    ],
)
def test_a_bad_budget_is_refused_naming_the_key_or_variable_and_the_value(
    stack: str, env: dict[str, str], says: str, stack_budget: None
) -> None:
    with pytest.raises(SettingsError) as caught:
        read_settings({**CREDENTIALS, RATE_KEY: stack}.get, env=env)
    assert str(caught.value) == says


def test_every_client_made_after_the_settings_are_read_keeps_to_the_stacks_budget(
    stack_budget: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program, the provider and the commands make their clients from the settings without passing the
    budget on: the client takes it where the settings left it (and the variables, which win)."""
    from lattigo_fleet.client import LattigoClient

    monkeypatch.delenv("LATTIGO_FLEET_REQUESTS_PER_SECOND", raising=False)
    monkeypatch.setenv("LATTIGO_FLEET_BUDGET_SHARES", "2")
    settings = read_settings({**CREDENTIALS, RATE_KEY: "6"}.get, env={"LATTIGO_FLEET_BUDGET_SHARES": "2"})
    with LattigoClient(settings.endpoint, settings.key_name, settings.api_key) as client:
        assert client.budget == RequestBudget(6.0, 2) == settings.request_budget
        assert client.budget.per_job == 3.0
    monkeypatch.setenv("LATTIGO_FLEET_REQUESTS_PER_SECOND", "10")
    with LattigoClient(settings.endpoint, settings.key_name, settings.api_key) as client:
        assert client.budget == RequestBudget(10.0, 2)
    read_settings(CREDENTIALS.get, env={})  # another stack, without a budget
    monkeypatch.delenv("LATTIGO_FLEET_REQUESTS_PER_SECOND")
    with LattigoClient(settings.endpoint, settings.key_name, settings.api_key) as client:
        assert client.budget.per_job is None


def test_a_bad_budget_stops_a_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stack_budget: None
) -> None:
    from lattigo_fleet.cli import main

    monkeypatch.setenv("LATTIGO_ENDPOINT", CREDENTIALS["lattigo:endpoint"])
    monkeypatch.setenv("LATTIGO_KEY_NAME", CREDENTIALS["lattigo:keyName"])
    monkeypatch.setenv("LATTIGO_API_KEY", CREDENTIALS["lattigo:apiKey"])
    monkeypatch.setenv("LATTIGO_FLEET_REQUESTS_PER_SECOND", "ten")
    code = main(["calamp", "last", "89014103000211118000"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"lattigo-fleet calamp last: {RATE_SAYS}'ten'"]
