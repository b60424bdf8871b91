"""Shared fixtures: the emulator on loopback.

- ``emulator``: one :class:`emulator.server.EmulatorServer` for the whole session (real HTTP through
  waitress on 127.0.0.1, a free port), seed ``empty``, ``activation_delay`` 0, credentials
  ``EMULATOR_KEY_NAME`` / ``EMULATOR_API_KEY`` (importable from this module). Its state is shared: use it
  only when a test does not care what earlier tests left behind.
- ``fresh_emulator``: the same server, reset before the test: state back to seed ``empty``, faults cleared,
  request log cleared, ThingSpace tokens dropped, clock offset back to 0.

Both give the server object: ``.base_url`` (``http://127.0.0.1:PORT``, no trailing slash), ``.auth``
(``(key_name, api_key)``), ``.key_name``, ``.api_key``, and in-process shortcuts with the same effect as the
admin API: ``.reset(seed)``, ``.tick()``, ``.set_faults(**settings)``, ``.requests_log()``,
``.clear_requests()``, ``.add_sims([...])``, ``.sims(account)``, ``.record_usage(iccid, day, bytes)``,
``.advance_clock(seconds)``. The admin HTTP API is under ``{base_url}/_emulator/`` (see emulator/admin.py).

The seed ``empty`` has rate plans "ACME Co 5mb Rate Plan" and "ACME Co 10MB Plan", users "ops-oncall" and
"fleet-admin", no SIMs of its own, and a second account (``OTHER_ACCOUNT_KEY_NAME`` / ``OTHER_ACCOUNT_API_KEY``)
owning two SIMs (``OTHER_ACCOUNT_SIMS``: device names 90001, 90002) that answer 403 to our keys.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.models import OTHER_ACCOUNT_API_KEY, OTHER_ACCOUNT_KEY_NAME
from emulator.seeds import OTHER_ACCOUNT_SIMS
from emulator.server import EmulatorServer

EMULATOR_KEY_NAME = "test-key"
EMULATOR_API_KEY = "test-secret-0123456789"

__all__ = [
    "EMULATOR_API_KEY",
    "EMULATOR_KEY_NAME",
    "OTHER_ACCOUNT_API_KEY",
    "OTHER_ACCOUNT_KEY_NAME",
    "OTHER_ACCOUNT_SIMS",
]


def emulator_env(emulator: EmulatorServer, **extra: str) -> dict[str, str]:
    """The environment that points every command at this emulator: Lattigo and ThingSpace credentials."""
    return {
        "LATTIGO_ENDPOINT": emulator.base_url,
        "LATTIGO_KEY_NAME": EMULATOR_KEY_NAME,
        "LATTIGO_API_KEY": EMULATOR_API_KEY,
        "LATTIGO_THINGSPACE_ENDPOINT": emulator.base_url,
        "LATTIGO_THINGSPACE_APP_KEY": EMULATOR_KEY_NAME,
        "LATTIGO_THINGSPACE_APP_SECRET": EMULATOR_API_KEY,
        "LATTIGO_THINGSPACE_USERNAME": EMULATOR_KEY_NAME,
        "LATTIGO_THINGSPACE_PASSWORD": EMULATOR_API_KEY,
        **extra,
    }


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(
        db=":memory:",
        seed="empty",
        key_name=EMULATOR_KEY_NAME,
        api_key=EMULATOR_API_KEY,
        activation_delay=0.0,
        host="127.0.0.1",
        port=0,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_emulator(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset("empty")
    return emulator


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by what a test drives: `e2e` (tests/e2e: the real pulumi CLI, minutes) and `fast` (the rest:
    the library, the emulator over loopback, seconds). `make check` runs `-m fast`; `make test` runs all."""
    for item in items:
        if "/tests/e2e/" in str(item.path) or item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.e2e)  # also a slow test outside tests/e2e (tests/packaging builds a wheel)
        else:
            item.add_marker(pytest.mark.fast)
    # Longest first: run side by side (`make test`: pytest-xdist, one test at a time per worker), the few
    # minute-long story tests start at once on their own workers and the seconds-long ones fill in around them.
    items.sort(key=lambda item: (item.path.name not in LONGEST_FIRST, item.get_closest_marker("e2e") is None))


# The tests that each take a minute or more: a whole PR -> merge -> nightly story through the CI templates.
LONGEST_FIRST = ("test_ci_templates.py",)
