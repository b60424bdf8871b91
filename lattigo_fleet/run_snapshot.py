"""The account as the program read it, handed to the provider process of the same `pulumi` run.

A run needs the live account twice: the program checks fleet.yaml against it before registering anything
(account_check), and the provider plans each Sim's calls against it. Both used to page through the whole
account, a few seconds apart: two listings per run. The program now leaves what it read for the provider,
which takes it instead of listing the account again.

Both processes descend from one engine process (the program through the language host, the provider
directly), so the file is named for that process: its pid and its start time (a pid can be reused, a
pid with its start time cannot). The file lives in a directory of the user's own (created 0700, refused if
it is anyone else's or anything but a directory), is written 0600 and replaced atomically, names the account
it was read from (endpoint and key name: never a credential), and is removed by the provider that takes it.
A provider that finds no file, or one of another account, reads the account itself, as before; so does any
platform without /proc. Files a run left behind (its provider never started) are removed after a day.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lattigo_fleet.account_snapshot import account_of
from lattigo_fleet.client.models import LiveDevice

__all__ = ["account_of", "parent_of", "run_key", "take", "write"]

SCHEMA = "lattigo-fleet/run-snapshot/v1"
LEFT_BEHIND_S = 24 * 3600


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def run_key(engine_pid: int | None) -> str | None:
    """The engine process's identity, or None where it cannot be told (no /proc)."""
    if not engine_pid or engine_pid <= 1:
        return None
    started = _start_time(engine_pid)
    return f"{engine_pid}-{started}" if started else None


def _own_directory(create: bool) -> Path | None:
    """The user's directory for run snapshots, if it is safe to use: a real directory, ours, closed to others."""
    directory = Path(tempfile.gettempdir()) / f"lattigo-fleet-{os.getuid()}"
    if create:
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            return None
    try:
        info = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return directory


def _path(directory: Path, key: str) -> Path:
    return directory / f"snapshot-{key}.json"


def write(key: str | None, account: str, sims: Mapping[str, LiveDevice], month_bytes: Mapping[str, int | None]) -> None:
    """Leave the program's read for this run's provider. Best effort: a failure only costs the provider a read."""
    if key is None:
        return
    directory = _own_directory(create=True)
    if directory is None:
        return
    _remove_left_behind(directory)
    doc = {"schema": SCHEMA, "account": account, "sims": sims, "month_bytes": month_bytes}
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".snapshot-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp made it 0600
            json.dump(doc, out, separators=(",", ":"))
        os.replace(temporary, _path(directory, key))
    except OSError:
        return


def take(key: str | None, account: str) -> tuple[dict[str, LiveDevice], dict[str, int | None]] | None:
    """This run's snapshot of this account, removed as it is taken; None when there is none to take."""
    if key is None:
        return None
    directory = _own_directory(create=False)
    if directory is None:
        return None
    path = _path(directory, key)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        with open(path, encoding="utf-8") as handle:
            doc: Any = json.load(handle)
    except (OSError, ValueError):
        return None
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("account") != account:
        return None
    sims, months = doc.get("sims"), doc.get("month_bytes")
    if not isinstance(sims, dict) or not isinstance(months, dict):
        return None
    return sims, months


def _remove_left_behind(directory: Path) -> None:
    cutoff = time.time() - LEFT_BEHIND_S
    try:
        for entry in directory.iterdir():
            if entry.name.startswith(("snapshot-", ".snapshot-")) and entry.stat().st_mtime < cutoff:
                entry.unlink()
    except OSError:
        pass
