"""The usage cache is a cache: a broken one is set aside and rebuilt, a busy or unusable one is one clear error."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from lattigo_fleet.usage.cache import UsageCache, UsageCacheError
from lattigo_fleet.usage.report import DayFigure

TODAY = date(2026, 12, 6)
DAY = date(2026, 12, 1)


def fill(path: Path) -> None:
    with UsageCache(path, today=TODAY) as cache:
        cache.store("lattigo", "s", "8901", {DAY: DayFigure(10, 1, 1)}, [DAY])
        cache.commit()


@pytest.mark.parametrize("damage", ["not a database", "cut off"])
def test_a_corrupted_cache_is_set_aside_and_rebuilt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "usage.sqlite"
    fill(path)
    if damage == "not a database":
        path.write_bytes(b"this is no sqlite file at all\n" * 100)
    else:
        data = path.read_bytes()
        path.write_bytes(data[:100] + b"\x00" * 50 + data[150:])
    with UsageCache(path, today=TODAY) as cache:
        assert cache.set_aside is not None and cache.set_aside.exists(), "the broken file is kept, renamed"
        assert cache.load("lattigo", "s", ["8901"], DAY, DAY) == {}, "rebuilt empty: the days are read again"
        cache.store("lattigo", "s", "8901", {DAY: DayFigure(10, 1, 1)}, [DAY])
        cache.commit()
    with UsageCache(path, today=TODAY) as cache:
        assert cache.set_aside is None and cache.load("lattigo", "s", ["8901"], DAY, DAY)


def test_a_directory_at_the_path_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    path.mkdir()
    with pytest.raises(UsageCacheError, match="usage.sqlite.*directory"):
        UsageCache(path, today=TODAY)


def test_a_cache_locked_by_another_process_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite"
    fill(path)
    holder = sqlite3.connect(str(path), check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UsageCacheError, match="locked"):
            with UsageCache(path, today=TODAY, busy_timeout=0.2) as cache:
                cache.store("lattigo", "s", "8902", {DAY: DayFigure(1, 0, 1)}, [DAY])
                cache.commit()
    finally:
        holder.rollback()
        holder.close()


def test_thingspace_days_still_provisional_are_not_cached_but_lattigo_days_are(tmp_path: Path) -> None:
    """A ThingSpace figure of the last PROVISIONAL_DAYS days may still grow: cached, it would never be read
    again and, once final, show as a discrepancy against Lattigo's complete figure."""
    yesterday, settled = date(2026, 12, 5), date(2026, 12, 2)
    days = [settled, yesterday]
    figures = {d: DayFigure(10, 1, 1) for d in days}
    with UsageCache(tmp_path / "usage.sqlite", today=TODAY) as cache:
        assert cache.store("thingspace", "s", "8901", figures, days) == 1
        assert cache.store("lattigo", "s", "8901", figures, days) == 2
        cache.commit()
        assert set(cache.load("thingspace", "s", ["8901"], settled, yesterday)["8901"]) == {settled}
        assert set(cache.load("lattigo", "s", ["8901"], settled, yesterday)["8901"]) == set(days)
