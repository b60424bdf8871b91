"""Fixtures for the client's contract tests: a client pointed at a freshly reset emulator.

The client's waits (Retry-After, backoff, polling) go to a list instead of sleeping, so the tests are fast
and can assert what the client would have waited.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulator.server import EmulatorServer
from lattigo_fleet.client import LattigoClient, ThingSpaceClient
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME

PLAN = "ACME Co 5mb Rate Plan"


def iccid(n: int) -> str:
    return f"8901{n:016d}"


def imei(n: int) -> str:
    return f"35{n:013d}"


@dataclass
class Clock:
    """A fake monotonic clock that sleeping advances."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def emu(fresh_emulator: EmulatorServer) -> EmulatorServer:
    return fresh_emulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def client(emu: EmulatorServer, clock: Clock, audit_path: Path) -> Iterator[LattigoClient]:
    c = LattigoClient(
        emu.base_url,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        audit_log=audit_path,
        max_retries=4,
        sleep=clock.sleep,
        clock=clock,
        timeout=10,
    )
    yield c
    c.close()


@pytest.fixture
def ts(emu: EmulatorServer, clock: Clock) -> Iterator[ThingSpaceClient]:
    c = ThingSpaceClient(
        emu.base_url,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        sleep=clock.sleep,
        clock=clock,
        timeout=10,
    )
    yield c
    c.close()


def add_active(emu: EmulatorServer, start: int, count: int, **fields: Any) -> list[str]:
    emu.add_sims(
        [{"iccid": iccid(n), "imei": imei(n), "state": "active", **fields} for n in range(start, start + count)]
    )
    return [iccid(n) for n in range(start, start + count)]


def add_inventory(emu: EmulatorServer, start: int, count: int) -> list[str]:
    emu.add_sims([{"iccid": iccid(n), "imei": imei(n)} for n in range(start, start + count)])
    return [iccid(n) for n in range(start, start + count)]


def api_requests(
    emu: EmulatorServer, path_suffix: str | None = None, method: str | None = None
) -> list[dict[str, Any]]:
    out = []
    for entry in emu.requests_log():
        if path_suffix is not None and not entry["path"].rstrip("/").endswith(path_suffix):
            continue
        if method is not None and entry["method"] != method:
            continue
        out.append(entry)
    return out
