"""The accounts: who they are, their key pairs, their rate plans and users. No HTTP here.

Two accounts exist in every seed: the primary one (the key pairs the emulator was started with) and a
second one with a fixed key pair, whose SIMs answer 403 to the primary account's keys and vice versa.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from emulator.errors import Unauthorized
from emulator.store import Store

PRIMARY_ACCOUNT = 1
OTHER_ACCOUNT = 2
ACCOUNT_NAMES = {PRIMARY_ACCOUNT: "primary", OTHER_ACCOUNT: "other"}
ACCOUNT_IDS = {v: k for k, v in ACCOUNT_NAMES.items()}

#: The second account's fixed key pair: its SIMs answer 403 to the primary account and vice versa.
OTHER_ACCOUNT_KEY_NAME = "globex-key"
OTHER_ACCOUNT_API_KEY = "globex-secret-not-for-production"

MAX_KEY_PAIRS = 5

RATE_PLAN_FIELDS = (
    "name",
    "days_in_term",
    "activation_fee",
    "termination_fee",
    "monthly_data_plan_cost",
    "monthly_data_allowance_bytes",
    "overage_data_unit_bytes",
    "overage_data_unit_cost",
    "monthly_sms_plan_cost",
    "monthly_sms_allowance",
    "overage_sms_unit",
    "overage_sms_unit_cost",
)


class KeyRing:
    """The key pairs of both accounts: (key name, API key) → account."""

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        if len(keys) > MAX_KEY_PAIRS:
            raise ValueError(f"an account has at most {MAX_KEY_PAIRS} key pairs")
        self._keys: dict[str, tuple[str, int]] = {name: (key, PRIMARY_ACCOUNT) for name, key in keys}
        self._keys[OTHER_ACCOUNT_KEY_NAME] = (OTHER_ACCOUNT_API_KEY, OTHER_ACCOUNT)

    def authenticate(self, key_name: str | None, api_key: str | None) -> int:
        """The account of a key pair, or Unauthorized."""
        if not key_name or api_key is None:
            raise Unauthorized("Credentials are missing")
        entry = self._keys.get(key_name)
        if entry is None or not hmac.compare_digest(entry[0].encode(), api_key.encode()):
            raise Unauthorized("Credentials are incorrect")
        return entry[1]


class Accounts:
    """Each account's key pairs (through its :class:`KeyRing`), rate plans and users."""

    def __init__(self, store: Store, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys

    def authenticate(self, key_name: str | None, api_key: str | None) -> int:
        """The account of a key pair, or Unauthorized."""
        return self.keys.authenticate(key_name, api_key)

    def add_rate_plan(self, account_id: int, plan: dict[str, Any]) -> None:
        cols = ["account_id", *RATE_PLAN_FIELDS]
        with self.store.tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO rate_plans({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                (account_id, *(plan.get(f) for f in RATE_PLAN_FIELDS)),
            )

    def add_user(self, account_id: int, username: str) -> None:
        with self.store.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO users(account_id, username) VALUES (?, ?)", (account_id, username))

    def has_rate_plan(self, account: int, name: str) -> bool:
        row = self.store.conn.execute(
            "SELECT 1 FROM rate_plans WHERE account_id = ? AND name = ?", (account, name)
        ).fetchone()
        return row is not None

    def usernames(self, account: int) -> set[str]:
        rows = self.store.conn.execute("SELECT username FROM users WHERE account_id = ?", (account,)).fetchall()
        return {r[0] for r in rows}

    def rate_plans(self, account: int) -> list[dict[str, Any]]:
        with self.store.op() as conn:
            rows = conn.execute("SELECT * FROM rate_plans WHERE account_id = ? ORDER BY id", (account,)).fetchall()
            return [{f: r[f] for f in RATE_PLAN_FIELDS} for r in rows]

    def users(self, account: int) -> list[str]:
        with self.store.op() as conn:
            rows = conn.execute("SELECT username FROM users WHERE account_id = ? ORDER BY id", (account,)).fetchall()
            return [r[0] for r in rows]
