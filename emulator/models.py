"""The emulated platform, assembled: :class:`Backend` builds each part of the state once and hands them
to the HTTP layer. No rules and no HTTP here; each part owns its own:

- :mod:`emulator.store`: the SQLite database (one connection + a re-entrant lock), the emulated clock,
  queued work;
- :mod:`emulator.accounts`: accounts, key pairs, rate plans, users;
- :mod:`emulator.sims`: the SIM rows, the lifecycle applied to them, finding devices as the API sees them;
- :mod:`emulator.devices`, :mod:`emulator.operations`, :mod:`emulator.usage`: the Lattigo model
  (``v2/devices``, ``v2/device_operations``, usage and its limit);
- :mod:`emulator.tokens`: ThingSpace's API tokens and sessions;
- :mod:`emulator.admin_queries`: what ``/_emulator/*`` needs (inspection, drift, reset).

The names other code has always imported from here (account and key constants, field lists) still are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from emulator.accounts import (
    ACCOUNT_IDS,
    ACCOUNT_NAMES,
    MAX_KEY_PAIRS,
    OTHER_ACCOUNT,
    OTHER_ACCOUNT_API_KEY,
    OTHER_ACCOUNT_KEY_NAME,
    PRIMARY_ACCOUNT,
    RATE_PLAN_FIELDS,
    Accounts,
    KeyRing,
)
from emulator.admin_queries import AdminQueries
from emulator.devices import Devices
from emulator.operations import Operations
from emulator.sims import DEVICE_FIELDS, ID_TYPES, NOTE_FIELDS, Sims, is_iccid, is_imei
from emulator.store import Store
from emulator.tokens import ThingSpaceTokens
from emulator.usage import Usage

__all__ = [
    "ACCOUNT_IDS",
    "ACCOUNT_NAMES",
    "DEVICE_FIELDS",
    "ID_TYPES",
    "MAX_KEY_PAIRS",
    "NOTE_FIELDS",
    "OTHER_ACCOUNT",
    "OTHER_ACCOUNT_API_KEY",
    "OTHER_ACCOUNT_KEY_NAME",
    "PRIMARY_ACCOUNT",
    "RATE_PLAN_FIELDS",
    "Backend",
    "is_iccid",
    "is_imei",
]


class Backend:
    """The emulated platform: its parts, built once over one store. Blueprints call the parts directly
    (``backend.devices.get_device(...)``); what cuts across them (the clock, queued work, reset) is here."""

    def __init__(
        self,
        db: str = ":memory:",
        keys: Sequence[tuple[str, str]] = (),
        activation_delay: float = 2.0,
        seed: str = "empty",
    ) -> None:
        keyring = KeyRing(keys)
        self.store = Store(db, activation_delay)
        self.accounts = Accounts(self.store, keyring)
        self.sims = Sims(self.store)
        self.usage = Usage(self.store, self.sims)
        self.devices = Devices(self.store, self.sims)
        self.operations = Operations(self.store, self.sims, self.accounts, self.usage)
        self.thingspace = ThingSpaceTokens(self.store, keyring)
        self.admin = AdminQueries(self.store, self.accounts, self.sims, self.thingspace, seed)
        if self.store.meta("seed") is None:
            self.admin.reset(seed)
        else:
            self.store.refresh_next_due()

    @property
    def activation_delay(self) -> float:
        """Seconds of the emulated clock that queued work takes (the admin API may change it)."""
        return self.store.activation_delay

    @activation_delay.setter
    def activation_delay(self, seconds: float) -> None:
        self.store.activation_delay = seconds

    @property
    def default_seed(self) -> str:
        return self.admin.default_seed

    def now(self) -> datetime:
        return self.store.now()

    def advance_clock(self, seconds: float) -> datetime:
        return self.store.advance_clock(seconds)

    def tick(self) -> int:
        """Run all queued work now, whatever its due time. Returns how many jobs ran."""
        return self.store.tick()

    def reset(self, seed: str | None = None) -> None:
        """Wipe every part and load a seed (default: the one the backend was created with)."""
        self.admin.reset(seed)

    def close(self) -> None:
        self.store.close()
