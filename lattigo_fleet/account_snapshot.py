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

The file is JSON lines, a header and then one SIM per line, so that a stack's job keeps its 5,000 SIMs of a
100,000-SIM account and never holds the rest: the program keeps the SIMs its stack declares or holds (`keep`),
and `lattigo-fleet drift` hands its preview a slice of the file (write_slice), because the provider's refresh
reads the snapshot before the program runs. The header keeps what only the whole account can say: what every
stack held and the cost centers in use (the new-cost-center warning), and how many SIMs follow (a file whose
upload stopped half-way is refused, not read as a smaller account).

A snapshot is refused (one line, the file named) when it is not one, is of another account (endpoint and key
name; it never holds a credential), or is older than its bound: SNAPSHOT_MAX_AGE_S by default (an hour: the
run of a 20-stack matrix on few runners fits in it, and a stale preview cannot cause a wrong write, see
above), LATTIGO_FLEET_SNAPSHOT_MAX_AGE (seconds) to change it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from lattigo_fleet.client.models import LiveDevice

SCHEMA = "lattigo-fleet/account-snapshot/v2"
OLDER_SCHEMAS = ("lattigo-fleet/account-snapshot/v1",)
SNAPSHOT_ENV = "LATTIGO_FLEET_ACCOUNT_SNAPSHOT"
MAX_AGE_ENV = "LATTIGO_FLEET_SNAPSHOT_MAX_AGE"
SNAPSHOT_MAX_AGE_S = 3600

# Each SIM's line starts with its ICCID, so a reader that keeps a few SIMs of many skips the others unparsed.
_SIM_LINE = '{"iccid":"'


class AccountSnapshotError(Exception):
    """The snapshot cannot be used; the message is one line and names the file."""


@dataclass(frozen=True)
class Snapshot:
    sims: dict[str, LiveDevice]
    held: dict[str, frozenset[str]] = field(default_factory=dict)  # stack -> the ICCIDs its state held
    # The cost centers the whole account uses (the new-cost-center warning's question), kept when `sims` is a
    # slice of it; None: those of `sims`, which is then the whole account.
    cost_centers: frozenset[str] | None = None
    read_at: float | None = None

    def cost_centers_in_use(self) -> frozenset[str]:
        return self.cost_centers if self.cost_centers is not None else cost_centers_of(self.sims.values())


def cost_centers_of(sims: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(str(sim["cost_center"]) for sim in sims if sim.get("cost_center"))


def account_of(endpoint: str, key_name: str) -> str:
    """The account a snapshot is of: where it was read and with which key name (never the key itself)."""
    return f"{endpoint.rstrip('/')}#{key_name}"


def write(
    path: str | os.PathLike[str],
    account: str,
    sims: Mapping[str, LiveDevice],
    read_at: float,
    held: Mapping[str, Iterable[str]] | None = None,
    *,
    cost_centers: Iterable[str] | None = None,
    slice_of: str | None = None,
) -> None:
    """JSON lines: a header (what the file is, of which account, when read, what each stack held, the cost
    centers in use, how many SIMs follow), then one SIM per line. A reader keeps the SIMs it needs and never
    holds the rest: a stack's job uses 5,000 SIMs of a 100,000-SIM account (`keep` in `read`)."""
    header = {
        "schema": SCHEMA,
        "account": account,
        "read_at": datetime.fromtimestamp(read_at, UTC).isoformat(timespec="seconds"),
        "held": {stack: sorted(iccids) for stack, iccids in (held or {}).items()},
        "cost_centers": sorted(cost_centers_of(sims.values()) if cost_centers is None else set(cost_centers)),
        "slice_of": slice_of,
        "sims": len(sims),
    }
    target = Path(path)
    temporary = target.with_name(f".{target.name}.partial")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(_line(header))
        for iccid, sim in sims.items():
            out.write(_line({"iccid": iccid, **{k: v for k, v in sim.items() if k != "iccid"}}))
    os.replace(temporary, target)


def _line(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


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
    path: str | os.PathLike[str],
    account: str,
    *,
    keep: Callable[[str], bool] | None = None,
    keep_held_by: str | None = None,
    bound_s: float | None = None,
    now: float | None = None,
) -> Snapshot:
    """A usable snapshot of `account`: its SIMs keyed by ICCID, what each stack held, and the cost centers of
    the whole account. With `keep`, only the SIMs it wants, and those that the stack `keep_held_by` held."""
    bound = max_age() if bound_s is None else bound_s
    with _opened(path) as handle:
        header = _header(path, handle, account, bound, time.time() if now is None else now)
        if keep is not None and keep_held_by is not None:
            keep = _or_held(keep, frozenset(map(str, header["held"].get(keep_held_by, ()))))
        sims, count = _sims(path, handle, keep)
    if count != header["sims"]:
        raise AccountSnapshotError(
            f"the account snapshot {path} is cut short: {count:,} of its {header['sims']:,} SIMs; read the account "
            "again (lattigo-fleet snapshot)"
        )
    return _snapshot(sims, header)


def read_header(path: str | os.PathLike[str], account: str, *, bound_s: float | None = None) -> Snapshot:
    """What the snapshot's first line says (what each stack held, the account's cost centers, when it was
    read), refused as `read` refuses; no SIMs."""
    with _opened(path) as handle:
        return _snapshot({}, _header(path, handle, account, max_age() if bound_s is None else bound_s, time.time()))


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """The snapshot open for reading; a file that cannot be read is refused in one line that names it."""
    try:
        with open(path, encoding="utf-8") as handle:
            yield handle
    except OSError as exc:
        raise AccountSnapshotError(f"the account snapshot {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AccountSnapshotError(f"the account snapshot {path} is not text") from None


def _snapshot(sims: dict[str, LiveDevice], header: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        sims,
        {str(stack): frozenset(map(str, iccids)) for stack, iccids in header["held"].items()},
        frozenset(map(str, header["cost_centers"])),
        header["read_at"],
    )


def _or_held(keep: Callable[[str], bool], held: frozenset[str]) -> Callable[[str], bool]:
    return lambda iccid: iccid in held or keep(iccid)


def _header(path: str | os.PathLike[str], handle: IO[str], account: str, bound: float, now: float) -> dict[str, Any]:
    try:
        doc: Any = json.loads(handle.readline() or "null")
    except ValueError as exc:
        raise AccountSnapshotError(f"the account snapshot {path} is not JSON lines: line 1: {exc}") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema in OLDER_SCHEMAS:
        raise AccountSnapshotError(
            f"the account snapshot {path} was written by an older lattigo-fleet ({schema}): read the account again "
            "(lattigo-fleet snapshot)"
        )
    if schema != SCHEMA or not isinstance(doc.get("sims"), int):
        raise AccountSnapshotError(f"{path} is not a lattigo-fleet account snapshot ({SCHEMA})")
    if doc.get("account") != account:
        raise AccountSnapshotError(
            f"the account snapshot {path} is of {doc.get('account')!r}, not of this stack's account {account!r}"
        )
    try:
        doc["read_at"] = read_at = datetime.fromisoformat(str(doc["read_at"])).timestamp()
    except (KeyError, ValueError):
        raise AccountSnapshotError(f"the account snapshot {path} does not say when it was read") from None
    age = now - read_at
    if age > bound:
        when = datetime.fromtimestamp(read_at, UTC).isoformat(timespec="seconds")
        raise AccountSnapshotError(
            f"the account snapshot {path} was read {age / 60:.0f} min ago ({when}), more than its bound of "
            f"{bound / 60:.0f} min ({MAX_AGE_ENV}): read the account again (lattigo-fleet snapshot)"
        )
    doc["held"] = held = doc.get("held") or {}
    if not isinstance(held, dict) or not all(isinstance(v, list) for v in held.values()):
        raise AccountSnapshotError(f"the account snapshot {path}: `held` is not a list of ICCIDs per stack")
    doc["cost_centers"] = cost_centers = doc.get("cost_centers") or []
    if not isinstance(cost_centers, list):
        raise AccountSnapshotError(f"the account snapshot {path}: `cost_centers` is not a list")
    return cast(dict[str, Any], doc)


def _sims(
    path: str | os.PathLike[str], handle: IO[str], keep: Callable[[str], bool] | None
) -> tuple[dict[str, LiveDevice], int]:
    sims: dict[str, LiveDevice] = {}
    count = 0
    for number, line in enumerate(handle, start=2):
        count += 1
        leading = _leading_iccid(line) if keep is not None else None
        if leading is not None and keep is not None and not keep(leading):
            continue
        try:
            sim: Any = json.loads(line)
        except ValueError as exc:
            raise AccountSnapshotError(f"the account snapshot {path}: line {number} is not JSON: {exc}") from None
        if not isinstance(sim, dict) or not isinstance(sim.get("iccid"), str):
            raise AccountSnapshotError(f"the account snapshot {path}: line {number} is not a SIM with an ICCID")
        if keep is None or leading is not None or keep(sim["iccid"]):  # a leading ICCID was asked already
            sims[sim["iccid"]] = cast(LiveDevice, sim)
    return sims, count


def _leading_iccid(line: str) -> str | None:
    """The ICCID a SIM's line starts with (write puts it first), or None: parse the line to know."""
    if not line.startswith(_SIM_LINE):
        return None
    end = line.find('"', len(_SIM_LINE))
    iccid = line[len(_SIM_LINE) : end]
    return iccid if end > 0 and "\\" not in iccid else None


def write_slice(
    target: str | os.PathLike[str], account: str, snapshot: Snapshot, stack: str, declared: Iterable[str]
) -> None:
    """The slice of `snapshot` that one stack's preview needs, written to `target`: the SIMs `stack` declares
    or held, under the header of the whole account (what every stack held, its cost centers, and when it was
    read, so the bound still counts from then). The provider of a drift's refresh reads the snapshot before the
    program can hand it anything (run_snapshot.py): a slice keeps 95,000 SIMs it never uses out of it."""
    wanted = set(declared) | snapshot.held.get(stack, frozenset())
    sims = {iccid: sim for iccid, sim in snapshot.sims.items() if iccid in wanted}
    assert snapshot.read_at is not None, "a snapshot read from a file says when it was read"
    write(
        target,
        account,
        sims,
        snapshot.read_at,
        snapshot.held,
        cost_centers=snapshot.cost_centers_in_use(),
        slice_of=stack,
    )


def from_environment(
    account: str,
    env: Mapping[str, str] | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
    keep_held_by: str | None = None,
) -> Snapshot | None:
    """The snapshot a `pulumi preview` was handed (LATTIGO_FLEET_ACCOUNT_SNAPSHOT), or None when none was."""
    env = os.environ if env is None else env
    path = env.get(SNAPSHOT_ENV, "").strip()
    if not path:
        return None
    return read(path, account, keep=keep, keep_held_by=keep_held_by, bound_s=max_age(env))
