"""Reading daily usage at fleet size: per SIM (both daily endpoints are per device), concurrently within a
bound, through the local cache of complete days.

For each source and SIM, the days of the range the cache does not hold are read in one request (the window
from the first missing day to the last; Lattigo's ``limit`` set to cover it, ThingSpace's ``hasMoreData``
followed by the client). ``workers`` threads per source (8 by default) share one client each; 429s are the
clients' business (Lattigo's transport rides them out within its retry budget and slows its threads down;
ThingSpace's retries honour ``Retry-After``). A SIM that fails is reported and the others go on; a refused
credential stops everything at once (every other request would be refused too).

Progress bars go to stderr, one per source, in the commands' one style (:mod:`lattigo_fleet.terminal.progress`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any, TextIO

from lattigo_fleet.client import AuthenticationError, LattigoError
from lattigo_fleet.terminal.progress import progress_bar
from lattigo_fleet.usage.cache import UsageCache
from lattigo_fleet.usage.report import LATTIGO, THINGSPACE, DayFigure, Series, days_between


@dataclass
class Source:
    """One API to read days from: ``read(iccid, first, last) -> Series``; ``requests()`` counts what it sent."""

    name: str
    scope: str
    read: Callable[[str, date, date], Series]
    requests: Callable[[], int]


@dataclass
class FetchResult:
    series: dict[str, dict[str, Series]] = field(default_factory=dict)  # source -> iccid -> days
    not_read: list[tuple[str, str, str]] = field(default_factory=list)  # (iccid, source, error)
    requests: dict[str, int] = field(default_factory=dict)
    fetched_sims: dict[str, int] = field(default_factory=dict)  # SIMs that needed a request, per source
    cached_days: int = 0
    seconds: float = 0.0


def lattigo_source(client: Any, scope: str) -> Source:
    """``daily_data_usages`` of one SIM by ICCID; ``limit`` covers the window (it defaults to 1 upstream)."""

    def read(iccid: str, first: date, last: date) -> Series:
        rows = client.daily_data_usages(
            iccid, start_date=first, end_date=last, limit=(last - first).days + 1, id_type="iccid"
        )
        series: Series = {}
        for row in rows:
            raw = row.get("date_for")
            if raw is None:
                continue
            day = date.fromisoformat(str(raw)[:10])
            if first <= day <= last:
                fig = DayFigure(int(row.get("bytes_used") or 0), int(row.get("sms_used") or 0))
                series[day] = series[day] + fig if day in series else fig
        return series

    return Source(LATTIGO, scope, read, lambda: client.stats.total_requests)


def thingspace_source(client: Any, scope: str) -> Source:
    """Retrieve Daily Usage of one SIM by ICCID, same-day records summed (as the document's sample needs)."""

    def read(iccid: str, first: date, last: date) -> Series:
        earliest = datetime.combine(first, dtime(0, 0), UTC)
        latest = datetime.combine(last, dtime(23, 59, 59), UTC)
        series: Series = {}
        for day, usage in client.daily_usage_by_day(iccid, earliest, latest).items():
            if first <= day <= last:
                series[day] = DayFigure(usage.bytes_used, usage.sms_used, usage.records)
        return series

    return Source(THINGSPACE, scope, read, lambda: client.stats.total_requests)


def fetch_usage(
    sources: Sequence[Source],
    iccids: Sequence[str],
    start: date,
    end: date,
    cache: UsageCache,
    *,
    workers: int = 8,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> FetchResult:
    """Every SIM's days in [start, end] from each source: the cache's complete days, the rest read."""
    started = time.monotonic()
    result = FetchResult()
    days = days_between(start, end)
    before = {s.name: s.requests() for s in sources}
    jobs: list[tuple[Source, str, date, date]] = []
    for source in sources:
        known = cache.load(source.name, source.scope, iccids, start, end)
        result.series[source.name] = {iccid: dict(known.get(iccid, {})) for iccid in iccids}
        for iccid in iccids:
            missing = [d for d in days if d not in known.get(iccid, {})]
            if missing:
                jobs.append((source, iccid, missing[0], missing[-1]))
        result.fetched_sims[source.name] = sum(1 for job in jobs if job[0] is source)
    result.cached_days = cache.hits
    bars = {
        s.name: progress_bar(
            f"{s.name} daily usage",
            stream=stream,
            total=result.fetched_sims[s.name],
            show=False if not result.fetched_sims[s.name] else progress,
        )
        for s in sources
    }
    pools = {
        s.name: ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"usage-{s.name}") for s in sources
    }
    pending: dict[Future[Series], tuple[Source, str, date, date]] = {}
    try:
        for job in jobs:
            source, iccid, first, last = job
            pending[pools[source.name].submit(source.read, iccid, first, last)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                source, iccid, first, last = pending.pop(future)
                bars[source.name].update(1)
                try:
                    series = future.result()
                except AuthenticationError:
                    raise
                except LattigoError as exc:
                    result.not_read.append((iccid, source.name, str(exc)))
                    continue
                result.series[source.name][iccid].update(series)
                cache.store(source.name, source.scope, iccid, series, days_between(first, last))
        cache.commit()
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        for bar in bars.values():
            bar.close()
        cache.commit()
    result.requests = {s.name: s.requests() - before[s.name] for s in sources}
    result.not_read.sort()
    result.seconds = time.monotonic() - started
    return result
