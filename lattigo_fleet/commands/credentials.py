"""The one credential reader of the subcommands, and the words for credentials an API refused.

Every command that calls an API reads its settings here, as the Pulumi program does
(:func:`lattigo_fleet.settings.read_settings`): from the stack's config (`--stack`: through `pulumi config
--json --show-secrets`), else the environment (`LATTIGO_*`), else the defaults. `usage --compare` reads the
ThingSpace keys the same way. An API that cannot be reached or refuses the credentials is said in one line
that names the keys to check (:func:`api_failure_line`); no secret ever appears in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lattigo_fleet.commands import pulumi_cli
from lattigo_fleet.commands.common import CommandFailure
from lattigo_fleet.settings import BY_KEY, SettingsError, read_settings

if TYPE_CHECKING:
    from lattigo_fleet.settings import Settings

CREDENTIALS_HINT = "check lattigo:keyName and lattigo:apiKey (or LATTIGO_KEY_NAME / LATTIGO_API_KEY)"
ENDPOINT_HINT = "check lattigo:endpoint / LATTIGO_ENDPOINT"
THINGSPACE_CREDENTIALS_HINT = "check lattigo:thingspaceAppKey/AppSecret/Username/Password (or LATTIGO_THINGSPACE_*)"
THINGSPACE_ENDPOINT_HINT = "check lattigo:thingspaceEndpoint / LATTIGO_THINGSPACE_ENDPOINT"
FLEET_FILE_KEY = "lattigo-fleet:fleetFile"
THINGSPACE_KEYS = (
    "lattigo:thingspaceEndpoint",
    "lattigo:thingspaceAppKey",
    "lattigo:thingspaceAppSecret",
    "lattigo:thingspaceUsername",
    "lattigo:thingspacePassword",
)


@dataclass(frozen=True)
class Credentials:
    """The Lattigo settings a command runs with, and the stack config they were read from ({} without one)."""

    settings: Settings
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    @property
    def key_name(self) -> str:
        return self.settings.key_name

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    @property
    def fleet_file(self) -> str | None:
        """The stack's `lattigo-fleet:fleetFile`, or None when the stack does not set it (or there is no stack):
        a command then looks for fleet.yaml, and need not find one."""
        return str(self.config.get(FLEET_FILE_KEY) or "") or None

    def __repr__(self) -> str:  # never the key
        return f"Credentials(endpoint={self.endpoint!r}, key_name={self.key_name!r})"


@dataclass(frozen=True)
class ThingSpaceCredentials:
    endpoint: str
    app_key: str
    app_secret: str
    username: str
    password: str

    def __repr__(self) -> str:  # never the secrets
        return f"ThingSpaceCredentials(endpoint={self.endpoint!r})"


def stack_config(
    stack: str | None, cwd: str | None = None, failure: type[CommandFailure] = CommandFailure
) -> dict[str, Any]:
    """The stack's config (None: the selected stack), or ``failure`` saying which stack could not be read."""
    try:
        return pulumi_cli.stack_config(stack, cwd)
    except CommandFailure as exc:
        which = f"stack {stack!r}" if stack else "the selected stack"
        raise failure(f"cannot read the config of {which}: {exc}") from None


def read_credentials(
    stack: str | None,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    selected_stack: bool = False,
    failure: type[CommandFailure] = CommandFailure,
) -> Credentials:
    """The Lattigo settings from ``stack``'s config, else the environment (``env``: None is ours). Without a
    stack no config is read, unless ``selected_stack`` (a command that runs pulumi on the stack anyway)."""
    config = stack_config(stack, cwd, failure) if stack or selected_stack else {}
    try:
        settings = read_settings(lambda key: config.get(key), env)
    except SettingsError as exc:
        raise failure(str(exc)) from None
    return Credentials(settings, config)


def thingspace_credentials(
    credentials: Credentials, env: Mapping[str, str], failure: type[CommandFailure] = CommandFailure
) -> ThingSpaceCredentials:
    """The stack's `lattigo:thingspace*` keys, else `LATTIGO_THINGSPACE_*`; ``failure`` names the missing ones."""
    values: dict[str, str] = {}
    missing = []
    for key in THINGSPACE_KEYS:
        setting = BY_KEY.get(key)
        env_name = setting.env if setting else "LATTIGO_THINGSPACE_" + _snake(key.split(":thingspace", 1)[1])
        value = (
            credentials.config.get(key)
            or (env.get(env_name) if env_name else None)
            or (setting.default if setting else None)
        )
        if value:
            values[key] = str(value)
        else:
            missing.append(f"{key} ({env_name})")
    if missing:
        raise failure(
            "--compare needs the ThingSpace credentials: set "
            + ", ".join(missing)
            + " (the secret and the password with `pulumi config set --secret`)"
        )
    return ThingSpaceCredentials(*(values[k] for k in THINGSPACE_KEYS))


def _snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def api_failure_line(exc: Exception, endpoint: str, api: str = "Lattigo") -> str:
    """An API call that failed for the whole command, in one line: unreachable, credentials refused (with the
    keys to check), rate limited; else what the client said (it never holds a secret)."""
    from lattigo_fleet.client import AuthenticationError, LattigoConnectionError, RateLimited

    thingspace = api == "ThingSpace"
    if isinstance(exc, LattigoConnectionError):
        detail = str(exc.detail or exc).lower()
        why = "connection refused" if "refused" in detail else "timed out" if "timed out" in detail else "no answer"
        hint = THINGSPACE_ENDPOINT_HINT if thingspace else ENDPOINT_HINT
        return f"cannot reach the {api} API at {endpoint} ({why}): {hint}"
    if isinstance(exc, AuthenticationError):
        hint = THINGSPACE_CREDENTIALS_HINT if thingspace else CREDENTIALS_HINT
        return f"the {api} API at {endpoint} refused the credentials (HTTP {exc.status or 401}): {hint}"
    if isinstance(exc, RateLimited):
        return f"the {api} API at {endpoint} kept answering 429 (rate limited): try again later"
    return f"reading the {api} API at {endpoint} failed: {exc}"
