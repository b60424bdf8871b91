"""The settings table (lattigo_fleet/settings.py) is the one place; Pulumi.yaml and docs/settings.md follow it."""

from __future__ import annotations

import re

import pytest
from ruamel.yaml import YAML

from devtools.pulumi_stack import REPO
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
