"""The project's settings, written once: every stack config key, its environment variable, type and default.

The program and the provider process both read their settings here (from the stack config Pulumi hands
them, then the environment, then the default). Pulumi.yaml declares the project's own keys with their types
and these defaults (Pulumi types only keys of the project's namespace, and a typed key needs a default), and
docs/settings.md's table lists every key: tests pin both to this table. A key in the `lattigo:` or
`lattigo-fleet:` namespace that is not in it is refused with a did-you-mean: a typo must not silently fall
back to a default. The credentials may come from the environment instead of the stack (CI secrets); the
guard's escape hatch and the account's request budget are environment variables for one run, which win over
the stack's setting (a CI job sets the budget's share of each job: lattigo_fleet/client/budget.py). Reading the
settings hands the stack's request budget to every Lattigo client the process makes afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lattigo_fleet.client import budget
from lattigo_fleet.suggest import CONFIG_KEY_CUTOFF, did_you_mean

NAMESPACES = ("lattigo", "lattigo-fleet")
TRUE_WORDS = ("1", "true", "yes")
MERGE_MODES = ("strict", "heal")  # lattigo-fleet:mergeMode (plan_document.py says what each does)


@dataclass(frozen=True)
class Setting:
    key: str  # the stack config key, with its namespace
    env: str | None  # the environment variable read when the stack config does not set it
    type: str  # string | boolean | integer
    default: str | None
    doc: str
    secret: bool = False
    env_wins: bool = False  # the environment variable, when set, wins over the stack's setting (a per-run choice)

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "lattigo:endpoint", "LATTIGO_ENDPOINT", "string", None, "API base URL (the emulator's URL for tests and demos)"
    ),
    Setting("lattigo:keyName", "LATTIGO_KEY_NAME", "string", None, "API key name (HTTP Basic user)"),
    Setting(
        "lattigo:apiKey",
        "LATTIGO_API_KEY",
        "string",
        None,
        "API key, set with `--secret`; never written to state in plaintext, logs or errors",
        secret=True,
    ),
    Setting(
        "lattigo-fleet:fleetFile",
        None,
        "string",
        "fleet.yaml",
        "the fleet file (`fleet.d/*.yaml` beside it is merged in)",
    ),
    Setting(
        "lattigo-fleet:allowLargeChanges",
        "LATTIGO_ALLOW_LARGE_CHANGES",
        "boolean",
        "false",
        "`true` lifts the blast-radius guard (`policy.max_changes`) for *every* run until removed; "
        "for one run, set the environment variable instead",
        env_wins=True,
    ),
    Setting("lattigo-fleet:activationTimeout", None, "integer", "300", "seconds to wait for an activation to finish"),
    Setting(
        "lattigo-fleet:auditLog",
        None,
        "string",
        "",
        "a file to append every mutating call to, as JSON lines (empty: none)",
    ),
    Setting(
        "lattigo-fleet:batchWindowMs",
        None,
        "integer",
        "200",
        "how long a bulk call waits for compatible calls to join it, in milliseconds",
    ),
    Setting(
        "lattigo-fleet:siblingStacks",
        None,
        "string",
        "",
        "the other stacks that manage a slice of the same account, comma-separated (`east,west` or "
        "`org/project/stack`; this stack's own name is skipped): a SIM one of them owns is refused here",
    ),
    Setting(
        "lattigo-fleet:mergeMode",
        None,
        "string",
        "strict",
        "what the merge applies: `strict` (the default) exactly the approved plan, or nothing when the account or "
        "the fleet files moved since the review; `heal` whatever fleet.yaml needs at merge time (level-based)",
    ),
    Setting(
        budget.STACK_KEY,
        budget.RATE_ENV,
        "string",  # a number, fractions allowed (Pulumi's project config has no number type)
        "0",
        "the account's request budget, requests per second (0: no ceiling); the jobs of one run share it "
        f"(`{budget.SHARES_ENV}`), each sending at most budget / shares; the environment variable wins",
        env_wins=True,
    ),
    Setting(
        "lattigo:thingspaceEndpoint",
        "LATTIGO_THINGSPACE_ENDPOINT",
        "string",
        "https://thingspace.verizon.com",
        "ThingSpace API base URL, for `lattigo-fleet usage --compare` (the emulator's URL for tests)",
    ),
    Setting(
        "lattigo:thingspaceAppKey",
        "LATTIGO_THINGSPACE_APP_KEY",
        "string",
        None,
        "ThingSpace application key (OAuth2 client id), for `usage --compare`",
    ),
    Setting(
        "lattigo:thingspaceAppSecret",
        "LATTIGO_THINGSPACE_APP_SECRET",
        "string",
        None,
        "ThingSpace application secret, set with `--secret`",
        secret=True,
    ),
    Setting(
        "lattigo:thingspaceUsername",
        "LATTIGO_THINGSPACE_USERNAME",
        "string",
        None,
        "ThingSpace UWS username (the VZ-M2M session login)",
    ),
    Setting(
        "lattigo:thingspacePassword",
        "LATTIGO_THINGSPACE_PASSWORD",
        "string",
        None,
        "ThingSpace UWS password, set with `--secret`; never retried after a refusal (5 lock the account)",
        secret=True,
    ),
)
BY_KEY = {s.key: s for s in SETTINGS}


def default_of(key: str) -> str:
    """A setting's default, as the table states it (the one statement of it: Settings' defaults read it)."""
    default = BY_KEY[key].default
    if default is None:
        raise KeyError(f"{key} has no default")
    return default


class SettingsError(Exception):
    """A setting is missing, unknown or of the wrong type; the message says which and what to do."""


@dataclass(frozen=True)
class Settings:
    endpoint: str
    key_name: str
    api_key: str = field(repr=False)
    fleet_file: str = default_of("lattigo-fleet:fleetFile")
    allow_large_changes: bool = default_of("lattigo-fleet:allowLargeChanges") in TRUE_WORDS
    activation_timeout: float = float(default_of("lattigo-fleet:activationTimeout"))
    batch_window: float = float(default_of("lattigo-fleet:batchWindowMs")) / 1000  # seconds
    audit_log: str | None = default_of("lattigo-fleet:auditLog") or None
    sibling_stacks: tuple[str, ...] = ()
    merge_mode: str = default_of("lattigo-fleet:mergeMode")
    #: the account's request budget (the variable or the stack's key) and the jobs sharing it
    request_budget: budget.RequestBudget = budget.RequestBudget()


def unknown_keys(keys: Iterable[str]) -> list[str]:
    """One message per config key of our namespaces that no setting has, with the nearest known key."""
    problems = []
    known = list(BY_KEY)
    for key in sorted(keys):
        if key.split(":", 1)[0] not in NAMESPACES or key in BY_KEY:
            continue
        guess = did_you_mean(key, known, CONFIG_KEY_CUTOFF)
        hint = f"; did you mean `{guess}`?" if guess else f"; the known keys are {', '.join(known)}"
        problems.append(f"unknown stack config key `{key}`{hint} (fix it with `pulumi config rm {key}`)")
    return problems


def leaves_the_project(path: str) -> bool:
    """An absolute path, or one whose `..` climbs out of the project directory."""
    import posixpath

    normal = posixpath.normpath(path.replace("\\", "/"))
    return posixpath.isabs(normal) or os.path.isabs(path) or normal == ".." or normal.startswith("../")


def read_settings(config_get: Callable[[str], Any], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the stack config (`config_get(key)`: None when unset), else the environment, else the
    default. Raises SettingsError naming every missing credential or badly typed value."""
    env = os.environ if env is None else env
    raw: dict[str, str | None] = {}
    for setting in SETTINGS:
        value = config_get(setting.key)
        if setting.env_wins and env.get(setting.env or ""):
            value = env[setting.env or ""]  # a per-run choice wins over the stack's setting, either way
        if value in (None, ""):
            value = (env.get(setting.env) if setting.env else None) or setting.default
        raw[setting.key] = None if value is None else str(value)

    problems = []
    missing = [k for k in ("lattigo:endpoint", "lattigo:keyName", "lattigo:apiKey") if not raw[k]]
    if missing:
        problems.append(
            "Lattigo credentials are not configured: set " + ", ".join(missing) + " in the stack "
            "(`pulumi config set ...`, the key with `--secret`) or " + ", ".join(str(BY_KEY[k].env) for k in missing)
        )

    def number(key: str) -> float:
        try:
            value = float(raw[key] or "")
        except ValueError:
            problems.append(f"{key} must be a number, not {raw[key]!r}")
            return float(BY_KEY[key].default or 0)
        if value < 0:
            problems.append(f"{key} must not be negative, not {raw[key]!r}")
        return value

    # A key with a default is never empty here: an empty value fell back to the default above.
    allow = str(raw["lattigo-fleet:allowLargeChanges"]).lower()
    if allow not in (*TRUE_WORDS, "0", "false", "no"):
        problems.append(f"lattigo-fleet:allowLargeChanges must be true or false, not {allow!r}")
    timeout, window = number("lattigo-fleet:activationTimeout"), number("lattigo-fleet:batchWindowMs")
    from lattigo_fleet.sharding import invalid_stack_names, parse_stacks

    siblings = parse_stacks(raw["lattigo-fleet:siblingStacks"])
    if bad := invalid_stack_names(siblings):
        problems.append(
            f"lattigo-fleet:siblingStacks: {', '.join(map(repr, bad))} is not a stack name (`stack` or "
            "`org/project/stack`, comma-separated)"
        )
    request_budget, stack_rate = _request_budget(raw[budget.STACK_KEY], env, problems)
    merge_mode = str(raw["lattigo-fleet:mergeMode"])
    if merge_mode not in MERGE_MODES:
        problems.append(f"lattigo-fleet:mergeMode must be {' or '.join(MERGE_MODES)}, not {merge_mode!r}")
    from lattigo_fleet.client._http import insecure_endpoint

    for key in ("lattigo:endpoint", "lattigo:thingspaceEndpoint"):
        if raw[key] and (why := insecure_endpoint(str(raw[key]))):
            problems.append(f"{key}: {why}")
    fleet_file = str(raw["lattigo-fleet:fleetFile"])
    if leaves_the_project(fleet_file):
        # The stack file is in the pull request: it must not point the program at the runner's own files.
        problems.append(
            f"lattigo-fleet:fleetFile must be a path inside the project (relative, no `..` out of it), not "
            f"{fleet_file[:80]!r}"
        )
    if problems:
        raise SettingsError("; ".join(problems))
    # Every client this process makes from now on keeps to the stack's budget, with no caller passing it on.
    budget.use_stack_setting(stack_rate)
    return Settings(
        endpoint=str(raw["lattigo:endpoint"]),
        key_name=str(raw["lattigo:keyName"]),
        api_key=str(raw["lattigo:apiKey"]),
        fleet_file=fleet_file,
        allow_large_changes=allow in TRUE_WORDS,
        activation_timeout=timeout,
        batch_window=window / 1000,
        audit_log=raw["lattigo-fleet:auditLog"] or None,
        sibling_stacks=siblings,
        merge_mode=merge_mode,
        request_budget=request_budget,
    )


def _request_budget(
    value: str | None, env: Mapping[str, str], problems: list[str]
) -> tuple[budget.RequestBudget, float]:
    """The request budget of this job (client/budget.py says how it is shared) and the stack's own setting;
    a bad value, the variable's or the key's, is a problem naming it."""
    # When the variable is set, `value` is the variable's (it wins): then the stack sets no ceiling of its own.
    stack_value = BY_KEY[budget.STACK_KEY].default if env.get(budget.RATE_ENV) else value
    try:
        stack_rate = budget.parse_rate(str(stack_value), budget.STACK_KEY, zero_is_none=True)
        return budget.request_budget(env, stack_rate), stack_rate
    except budget.BudgetError as exc:
        problems.append(str(exc))
        return budget.RequestBudget(), 0.0
