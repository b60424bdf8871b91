"""Fixtures of the emulator's contract tests (on top of tests/conftest.py's ``fresh_emulator``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from emulator.admin_client import AdminClient
from emulator.server import EmulatorServer
from tests.emulator.helpers import ENCODINGS, Api, iccid, imei


@pytest.fixture
def api(fresh_emulator: EmulatorServer) -> Api:
    return Api(fresh_emulator.base_url, fresh_emulator.auth)


@pytest.fixture
def admin(fresh_emulator: EmulatorServer) -> AdminClient:
    return AdminClient(fresh_emulator.base_url)


@pytest.fixture
def frozen_clock(fresh_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> float:
    """Pin the emulator's clock: only ``POST /_emulator/clock`` (advance_seconds) moves it, so what depends
    on time (the rate limiter's buckets, token expiry, queued work) does not depend on how fast the test
    runs. Gives the pinned wall-clock seconds."""
    pinned = time.time()
    monkeypatch.setattr(fresh_emulator.backend.store.clock, "source", lambda: pinned)
    return pinned


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make_sims(admin: AdminClient) -> Callable[..., list[dict[str, Any]]]:
    """make_sims(n, state="active", start=1, **fields) -> the admin view of n new SIMs."""

    def make(n: int, state: str | None = "active", start: int = 1, **fields: Any) -> list[dict[str, Any]]:
        specs = []
        for k in range(start, start + n):
            spec = {"iccid": iccid(k), "imei": imei(k), **fields}
            if state is not None:
                spec["state"] = state
            specs.append(spec)
        return admin.add_sims(list(specs))

    return make
