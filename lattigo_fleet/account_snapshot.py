"""One read of the account for many stacks: a snapshot file that read-only runs plan from.

An account of 100,000 SIMs sharded into 20 stacks would otherwise be listed in full by every stack's job
(100 pages each, 2,000 requests per nightly drift). A first job of the run (`lattigo-fleet snapshot`) lists the
account once and hands the file to the stack jobs (a CI artifact); `lattigo-fleet plan` and `drift` take it
with `--account-snapshot FILE` (or LATTIGO_FLEET_ACCOUNT_SNAPSHOT in the environment of a `pulumi preview`),
and the program and the provider plan from it instead of listing the account.

Only previews do. A snapshot is a picture of the account at one time, so a plan computed from it is what the
account needed then: an `up` (the merge) never plans from one, it reads the account itself, and in the strict
merge mode refuses when what it reads differs from what the approved plan was computed from (plan_document).
So a write is always re-checked against the live account, SIM by SIM, before it is sent.

The snapshot job also records what each stack of the account holds (its state's ICCIDs, `held`): the stacks
of a sharded account check that none declares a SIM a sibling owns (sharding.py), which otherwise costs every
stack job one `pulumi stack export` per sibling (19 in a 20-stack matrix). The fleet files of the siblings are
still read from the checkout, so a commit that adds one ICCID to two stacks is refused as before.

A snapshot is refused (one line, the file named) when it is not one, is of another account (endpoint and key
name; it never holds a credential), or is older than its bound: SNAPSHOT_MAX_AGE_S by default (an hour: the
run of a 20-stack matrix on few runners fits in it, and a stale preview cannot cause a wrong write, see
above), LATTIGO_FLEET_SNAPSHOT_MAX_AGE (seconds) to change it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lattigo_fleet.client.models import LiveDevice

SCHEMA = "lattigo-fleet/account-snapshot/v1"
SNAPSHOT_ENV = "LATTIGO_FLEET_ACCOUNT_SNAPSHOT"
MAX_AGE_ENV = "LATTIGO_FLEET_SNAPSHOT_MAX_AGE"
SNAPSHOT_MAX_AGE_S = 3600


class AccountSnapshotError(Exception):
    """The snapshot cannot be used; the message is one line and names the file."""


@dataclass(frozen=True)
class Snapshot:
    sims: dict[str, LiveDevice]
    held: dict[str, frozenset[str]] = field(default_factory=dict)  # stack -> the ICCIDs its state held


def account_of(endpoint: str, key_name: str) -> str:
    """The account a snapshot is of: where it was read and with which key name (never the key itself)."""
    return f"{endpoint.rstrip('/')}#{key_name}"


def write(
    path: str | os.PathLike[str],
    account: str,
    sims: Mapping[str, LiveDevice],
    read_at: float,
    held: Mapping[str, Iterable[str]] | None = None,
) -> None:
    doc = {
        "schema": SCHEMA,
        "account": account,
        "read_at": datetime.fromtimestamp(read_at, UTC).isoformat(timespec="seconds"),
        "sims": sims,
        "held": {stack: sorted(iccids) for stack, iccids in (held or {}).items()},
    }
    target = Path(path)
    temporary = target.with_name(f".{target.name}.partial")
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(doc, out, separators=(",", ":"))
    os.replace(temporary, target)


def max_age(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(MAX_AGE_ENV, "").strip()
    if not raw:
        return SNAPSHOT_MAX_AGE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise AccountSnapshotError(f"{MAX_AGE_ENV}={raw!r}: must be a positive number of seconds")
    return value


def read(
    path: str | os.PathLike[str], account: str, *, bound_s: float | None = None, now: float | None = None
) -> Snapshot:
    """A usable snapshot of `account`: its SIMs keyed by ICCID, and what each stack held."""
    bound = max_age() if bound_s is None else bound_s
    try:
        with open(path, encoding="utf-8") as handle:
            doc: Any = json.load(handle)
    except OSError as exc:
        raise AccountSnapshotError(f"the account snapshot {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise AccountSnapshotError(f"the account snapshot {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("sims"), dict):
        raise AccountSnapshotError(f"{path} is not a lattigo-fleet account snapshot ({SCHEMA})")
    if doc.get("account") != account:
        raise AccountSnapshotError(
            f"the account snapshot {path} is of {doc.get('account')!r}, not of this stack's account {account!r}"
        )
    try:
        read_at = datetime.fromisoformat(str(doc["read_at"])).timestamp()
    except (KeyError, ValueError):
        raise AccountSnapshotError(f"the account snapshot {path} does not say when it was read") from None
    age = (time.time() if now is None else now) - read_at
    if age > bound:
        raise AccountSnapshotError(
            f"the account snapshot {path} was read {age / 60:.0f} min ago ({doc['read_at']}), more than its bound of "
            f"{bound / 60:.0f} min ({MAX_AGE_ENV}): read the account again (lattigo-fleet snapshot)"
        )
    held = doc.get("held") or {}
    if not isinstance(held, dict) or not all(isinstance(v, list) for v in held.values()):
        raise AccountSnapshotError(f"the account snapshot {path}: `held` is not a list of ICCIDs per stack")
    return Snapshot(doc["sims"], {str(stack): frozenset(map(str, iccids)) for stack, iccids in held.items()})


def from_environment(account: str, env: Mapping[str, str] | None = None) -> Snapshot | None:
    """The snapshot a `pulumi preview` was handed (LATTIGO_FLEET_ACCOUNT_SNAPSHOT), or None when none was."""
    env = os.environ if env is None else env
    path = env.get(SNAPSHOT_ENV, "").strip()
    if not path:
        return None
    return read(path, account, bound_s=max_age(env))
