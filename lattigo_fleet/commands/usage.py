"""``lattigo-fleet usage``: data usage per SIM, cost center and group (fleet.yaml's) over a date range (month
to date by default): totals, daily figures, the top consumers, the SIMs above a share of their usage limit,
and with ``--compare`` Lattigo's daily figures against ThingSpace's, day by day.

The flow: credentials (:mod:`lattigo_fleet.commands.credentials`: the stack's config with ``--stack``, else the
environment),
the SIMs (one paged read of the account for ICCIDs and cost centers; fleet.yaml for groups, names and usage
limits), the days (:func:`lattigo_fleet.usage.fetch.fetch_usage`: per SIM, concurrent, through the cache of
complete days), the report (:func:`lattigo_fleet.usage.report.build_report`, pure), and the output (a table,
``--json``, ``--csv``; ``--chart FILE`` besides).

Exit codes: 0; 2 when there is something to look at (a SIM over ``--over``, a day that differs with
``--compare``, but not one of the last days ThingSpace may still add to: those are shown apart, as provisional,
see :func:`lattigo_fleet.usage.report.provisional`); 1 on an error (one line on stderr), or when some SIMs could
not be read (the report is still printed, and names them).

ThingSpace credentials (``--compare``) come from the stack (``lattigo:thingspaceAppKey``,
``lattigo:thingspaceAppSecret``, ``lattigo:thingspaceUsername``, ``lattigo:thingspacePassword``, the two
secrets set with ``--secret``; ``lattigo:thingspaceEndpoint``) or from ``LATTIGO_THINGSPACE_*``; they never
appear in output or errors (the client scrubs them).

Over 400 lines: the command's argument parsing, the rendering of its three outputs and its error paths are one unit
for a reader; the report logic, fetching, cache and chart live in lattigo_fleet/usage/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from lattigo_fleet.commands.base import Command
from lattigo_fleet.commands.common import CommandFailure, load_fleet_file
from lattigo_fleet.commands.credentials import api_failure_line, read_credentials, thingspace_credentials
from lattigo_fleet.usage.cache import UsageCache, UsageCacheError, default_path, scope_of, utc_today
from lattigo_fleet.usage.report import (
    NO_COST_CENTER,
    NO_GROUP,
    NOT_IN_FLEET,
    SimInfo,
    UsageReport,
    build_report,
    month_start,
    parse_share,
)

COMMAND = Command("usage", interrupted="interrupted (the days read so far are cached)")
OK, ATTENTION, ERROR = 0, 2, 1


class UsageFailure(CommandFailure):
    """What stops the report, as one line for the user."""


# --- arguments -----------------------------------------------------------------------------------------------


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _share_arg(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_share(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Data usage per SIM, cost center and group over a date range (default: month to date, UTC), from "
        "Lattigo's daily_data_usages; --compare sets ThingSpace's Retrieve Daily Usage beside it. Complete days "
        "are cached locally, so a nightly run reads only the new ones."
    )
    parser.add_argument(
        "--stack",
        help="read the credentials (and fleetFile) from this stack's config, else "
        "from LATTIGO_* / LATTIGO_THINGSPACE_* environment variables",
    )
    parser.add_argument("--cwd", help="the project directory (default: the current directory)")
    parser.add_argument(
        "--fleet",
        metavar="FILE",
        help="the fleet file for groups, names and usage limits "
        "(default: the stack's lattigo-fleet:fleetFile, or fleet.yaml; none if it does not exist)",
    )
    parser.add_argument(
        "--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first day (default: the 1st of --to's month)"
    )
    parser.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last day (default: today, UTC)")
    parser.add_argument("--top", type=_count, default=10, metavar="N", help="the N largest consumers (default 10)")
    parser.add_argument(
        "--over",
        type=_share_arg("--over"),
        metavar="SHARE",
        help="list the SIMs whose usage this month is at least SHARE (e.g. 80%%) of the usage limit "
        "fleet.yaml declares",
    )
    parser.add_argument("--compare", action="store_true", help="Lattigo against ThingSpace, per SIM and day")
    parser.add_argument(
        "--tolerance",
        type=_share_arg("--tolerance"),
        default=0.05,
        metavar="SHARE",
        help="with --compare: a day differs above this share of the larger figure (default 5%%)",
    )
    parser.add_argument(
        "--min-bytes",
        type=_count,
        default=1024,
        metavar="N",
        help="with --compare: ... and above N bytes (default 1024)",
    )
    parser.add_argument(
        "--chart",
        metavar="FILE",
        help="write an HTML chart (inline SVG) of daily usage by cost center, and of the discrepancies with --compare",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON for machines")
    output.add_argument("--csv", action="store_true", help="print CSV: one row per SIM and day")
    parser.add_argument("--cache", metavar="FILE", help=f"the cache of complete days (default: {_cache_hint()})")
    parser.add_argument("--no-cache", action="store_true", help="read every day from the APIs; store nothing")
    parser.add_argument(
        "--workers", type=_count, default=8, metavar="N", help="concurrent requests per API (default 8)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _cache_hint() -> str:
    return "${XDG_CACHE_HOME:-~/.cache}/lattigo-fleet/usage.sqlite"


# --- the SIMs --------------------------------------------------------------------------------------------------


def sim_infos(snapshot: Mapping[str, Mapping[str, Any]], fleet: Any | None) -> tuple[list[SimInfo], int]:
    """The account's SIMs, named and grouped by fleet.yaml where it declares them; and how many SIMs fleet.yaml
    declares that the account does not list (not activated yet: no usage)."""
    from lattigo_fleet.fleetfile.model import UsageLimit

    declared = fleet.by_iccid if fleet is not None else {}
    infos = []
    for iccid, device in sorted(snapshot.items()):
        sim = declared.get(iccid)
        limit = sim.usage_limit if sim is not None and isinstance(sim.usage_limit, UsageLimit) else None
        infos.append(
            SimInfo(
                iccid=iccid,
                name=sim.name if sim is not None else iccid,
                cost_center=str(device.get("cost_center") or "") or NO_COST_CENTER,
                group=(sim.group or NO_GROUP) if sim is not None else NOT_IN_FLEET,
                kb_limit=limit.kb_limit if limit else None,
                limit_action=limit.action if limit else None,
                state=device.get("state"),
            )
        )
    return infos, len(set(declared) - set(snapshot))


def _load_fleet(path: Path, explicit: bool) -> Any | None:

    if not path.exists() and not explicit:
        return None
    return load_fleet_file(path, UsageFailure)


def _api_failure(exc: Exception, what: str, endpoint: str) -> UsageFailure:
    return UsageFailure(api_failure_line(exc, endpoint, what))


# --- the command -----------------------------------------------------------------------------------------------


def produce(
    args: argparse.Namespace,
    env: Mapping[str, str],
    stderr: TextIO,
    lattigo_factory: Callable[..., Any] | None = None,
    thingspace_factory: Callable[..., Any] | None = None,
) -> tuple[UsageReport, dict[str, Any]]:
    """Read everything and build the report; raises UsageFailure with one line."""
    from lattigo_fleet.client import LattigoClient, LattigoError, ThingSpaceClient, ThingSpaceError
    from lattigo_fleet.usage.fetch import fetch_usage, lattigo_source, thingspace_source

    today = utc_today()
    end = args.end or today
    start = args.start or month_start(end)
    if start > end:
        raise UsageFailure(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    credentials = read_credentials(args.stack, cwd=args.cwd, env=env, failure=UsageFailure)
    settings, stack_fleet = credentials.settings, credentials.fleet_file
    ts_creds = thingspace_credentials(credentials, env, UsageFailure) if args.compare else None
    base = Path(args.cwd or ".")
    fleet_path = base / (args.fleet or stack_fleet or "fleet.yaml")
    fleet = _load_fleet(fleet_path, explicit=bool(args.fleet or stack_fleet))

    make_lattigo = lattigo_factory or LattigoClient
    client = make_lattigo(settings.endpoint, settings.key_name, settings.api_key, pool_maxsize=max(10, args.workers))
    ts_client = None
    try:
        try:
            snapshot = client.snapshot()
        except LattigoError as exc:
            raise _api_failure(exc, "Lattigo", settings.endpoint) from None
        sims, not_listed = sim_infos(snapshot, fleet)
        sources = [lattigo_source(client, scope_of(settings.endpoint, settings.key_name))]
        if ts_creds is not None:
            make_ts = thingspace_factory or ThingSpaceClient
            ts_client = make_ts(
                ts_creds.endpoint,
                ts_creds.app_key,
                ts_creds.app_secret,
                ts_creds.username,
                ts_creds.password,
                max_retries=10,
            )
            sources.append(thingspace_source(ts_client, scope_of(ts_creds.endpoint, ts_creds.app_key)))
        fetch_start = min(start, month_start(end)) if args.over is not None else start
        cache_path = None if args.no_cache else Path(args.cache) if args.cache else default_path(env)
        listing = client.stats.total_requests
        try:
            cache = UsageCache(cache_path, today=today)
        except UsageCacheError as exc:
            raise UsageFailure(str(exc)) from None
        if cache.set_aside is not None:
            print(
                f"lattigo-fleet usage: the cache {cache_path} was corrupted: kept as {cache.set_aside.name}, "
                "and a new one started (the days are read again)",
                file=stderr,
            )
        with cache:
            try:
                fetched = fetch_usage(
                    sources,
                    [s.iccid for s in sims],
                    fetch_start,
                    end,
                    cache,
                    workers=max(1, args.workers),
                    progress=False if args.no_progress else None,
                    stream=stderr,
                )
            except UsageCacheError as exc:
                raise UsageFailure(str(exc)) from None
            except LattigoError as exc:  # a refused credential: every other request would be refused too
                if isinstance(exc, ThingSpaceError) and ts_creds is not None:
                    raise _api_failure(exc, "ThingSpace", ts_creds.endpoint) from None
                raise _api_failure(exc, "Lattigo", settings.endpoint) from None
        if ts_client is not None:
            ts_client.logout()
    finally:
        client.close()
        if ts_client is not None:
            ts_client.close()

    report = build_report(
        sims,
        fetched.series["lattigo"],
        start,
        end,
        top=args.top,
        over=args.over,
        thingspace=fetched.series.get("thingspace") if args.compare else None,
        tolerance=args.tolerance,
        min_bytes=args.min_bytes,
        not_read=fetched.not_read,
        today=today,
    )
    if fleet is None:
        report.notes.append(f"no fleet file ({fleet_path}): groups and usage limits are unknown")
    elif not_listed:
        report.notes.append(f"{not_listed} SIM(s) of {fleet_path} are not in the account yet: no usage to read")
    requests = {
        "lattigo": fetched.requests.get("lattigo", 0),
        "lattigo_listing": listing,
        "cached_days": fetched.cached_days,
        "cache": str(cache_path) if cache_path else None,
        "seconds": round(fetched.seconds, 3),
    }
    if args.compare:
        requests["thingspace"] = fetched.requests.get("thingspace", 0)
    return report, requests


def main(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    **factories: Any,
) -> int:
    from lattigo_fleet.usage.chart import render_chart
    from lattigo_fleet.usage.render import render_csv, render_json, render_text

    out = out or sys.stdout
    err = err or sys.stderr

    def work() -> int:
        report, requests = produce(args, os.environ if env is None else env, err, **factories)
        if args.chart:
            try:
                Path(args.chart).write_text(render_chart(report), encoding="utf-8")
            except OSError as exc:
                raise UsageFailure(f"{args.chart}: cannot write the chart: {exc.strerror or exc}") from None
        if args.json:
            out.write(json.dumps(render_json(report, requests), indent=2, ensure_ascii=False) + "\n")
        elif args.csv:
            out.write(render_csv(report))
        else:
            out.write(render_text(report, requests))
            if args.chart:
                out.write(f"Chart written to {args.chart}.\n")
        if report.not_read:
            COMMAND.fail(f"{len(report.not_read)} SIM read(s) failed: the report leaves them out", err)
            return ERROR
        return ATTENTION if report.attention else OK

    return COMMAND.run(work, stderr=err)
