"""The usage report for people (aligned tables) and for machines (JSON, CSV: one row per SIM and day)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from lattigo_fleet.terminal.table import table
from lattigo_fleet.usage.report import PROVISIONAL_NOTE, Comparison, Discrepancy, SimInfo, Total, UsageReport

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
DAILY_COLUMNS = 6  # cost centers shown side by side in the daily table; the rest are summed as "other"


def human_bytes(n: int | float) -> str:
    value, unit = float(n), 0
    while abs(value) >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{int(value)} B" if unit == 0 else f"{value:.1f} {UNITS[unit]}"


def _name(sim: SimInfo) -> str:
    """The fleet.yaml name, or "-" where it is only the ICCID again."""
    return sim.name if sim.name != sim.iccid else "-"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _totals_table(column: str, totals: Sequence[Total], whole: int) -> list[str]:
    """One line per cost center or group: SIMs, data, SMS and its share of the fleet's bytes."""
    return table(
        [column, "SIMs", "data", "bytes", "SMS", "share"],
        [
            [
                t.key,
                f"{t.sims:,}",
                human_bytes(t.bytes_used),
                f"{t.bytes_used:,}",
                f"{t.sms_used:,}",
                _share(t.bytes_used, whole),
            ]
            for t in totals
        ],
        right=(1, 2, 3, 4, 5),
    )


def _pct(value: float) -> str:
    return f"{100 * value:g}%"


def render_text(report: UsageReport, requests: dict[str, Any] | None = None) -> str:
    r = report
    total = r.total
    span = f"{r.start.isoformat()} .. {r.end.isoformat()} ({len(r.days)} day(s))"
    lines = [
        f"Usage {span}: {total.sims:,} SIM(s), Lattigo daily_data_usages",
        f"Total: {human_bytes(total.bytes_used)} ({total.bytes_used:,} bytes), {total.sms_used:,} SMS",
        "",
    ]
    lines.append("By cost center (as the account has them now):")
    lines += _totals_table("cost center", r.cost_centers, total.bytes_used)
    lines += ["", "By group (fleet.yaml):"]
    lines += _totals_table("group", r.groups, total.bytes_used)
    lines += ["", f"Top {len(r.top)} SIM(s):" if r.top else "Top SIMs: none used any data."]
    if r.top:
        lines += table(
            ["SIM", "ICCID", "cost center", "group", "data", "bytes", "SMS"],
            [
                [
                    _name(row.sim),
                    row.sim.iccid,
                    row.sim.cost_center,
                    row.sim.group,
                    human_bytes(row.bytes_used),
                    f"{row.bytes_used:,}",
                    f"{row.sms_used:,}",
                ]
                for row in r.top
            ],
            right=(4, 5, 6),
        )
    shown = r.cost_centers[:DAILY_COLUMNS]
    rest = r.cost_centers[DAILY_COLUMNS:]
    headers = ["day", "total"] + [t.key for t in shown] + (["other"] if rest else [])
    daily_rows = []
    for day in r.days:
        row = [day.isoformat(), human_bytes(total.daily[day])] + [human_bytes(t.daily[day]) for t in shown]
        if rest:
            row.append(human_bytes(sum(t.daily[day] for t in rest)))
        daily_rows.append(row)
    lines += ["", "Daily data by cost center:"]
    lines += table(headers, daily_rows, right=tuple(range(1, len(headers))))
    if r.over is not None and r.month is not None:
        first, last = r.month
        lines += [
            "",
            f"Over {_pct(r.over_threshold or 0)} of their usage limit this month ({first.isoformat()} .. "
            f"{last.isoformat()}): {len(r.over)} SIM(s)",
        ]
        if r.over:
            lines += table(
                ["SIM", "ICCID", "cost center", "limit", "used", "share", "action"],
                [
                    [
                        _name(o.sim),
                        o.sim.iccid,
                        o.sim.cost_center,
                        human_bytes(o.limit_bytes),
                        human_bytes(o.month_bytes),
                        f"{100 * o.share:.1f}%",
                        o.sim.limit_action or "-",
                    ]
                    for o in r.over
                ],
                right=(3, 4, 5),
            )
    if r.comparison is not None:
        c = r.comparison
        lines += [
            "",
            f"Lattigo against ThingSpace ({c.compared_sims:,} SIM(s); a day differs when the difference is "
            f"above {_pct(c.tolerance)} and above {c.min_bytes:,} bytes): "
            + (
                f"{len(c.discrepancies)} day(s) differ on {c.sims_with_discrepancies} SIM(s)"
                if c.discrepancies
                else "no day differs"
            ),
        ]
        lines += _discrepancy_table(c.discrepancies)
        lines += _provisional_lines(c)
    if r.not_read:
        lines += ["", f"Not read ({len(r.not_read)}):"]
        lines += [f"  {iccid}  {source}: {error}" for iccid, source, error in r.not_read]
    for note in r.notes:
        lines += ["", f"Note: {note}."]
    if requests:
        lines += ["", _requests_line(requests)]
    return "\n".join(lines) + "\n"


def _provisional_lines(c: Comparison) -> list[str]:
    """The window's provisional days, apart: what differs there is not counted above (nor in the exit status).
    Nothing at all for a window that ends before them, so such a report reads as it always did."""
    if c.provisional_from is None:
        return []
    sims = len({d.sim.iccid for d in c.provisional})
    return [
        "",
        f"Provisional from {c.provisional_from.isoformat()} ({PROVISIONAL_NOTE}; not counted above): "
        + (f"{len(c.provisional)} day(s) differ on {sims} SIM(s)" if c.provisional else "no day differs"),
        *_discrepancy_table(c.provisional),
    ]


def _discrepancy_table(days: Sequence[Discrepancy]) -> list[str]:
    """Days on which the two sources differ, a row each (nothing for none)."""
    if not days:
        return []
    return table(
        ["SIM", "ICCID", "day", "Lattigo bytes", "ThingSpace bytes", "difference"],
        [
            [
                _name(d.sim),
                d.sim.iccid,
                d.day.isoformat(),
                f"{d.lattigo:,}",
                f"{d.thingspace:,}",
                f"{d.difference:+,} ({_share(abs(d.difference), max(d.lattigo, d.thingspace))})",
            ]
            for d in days
        ],
        right=(3, 4, 5),
    )


def _requests_line(req: dict[str, Any]) -> str:
    parts = [f"{req.get('lattigo', 0):,} Lattigo request(s)"]
    if "thingspace" in req:
        parts.append(f"{req['thingspace']:,} ThingSpace request(s)")
    return (
        f"Read with {', '.join(parts)}; {req.get('cached_days', 0):,} SIM-day(s) from the cache "
        f"({req.get('cache') or 'none'}); {req.get('seconds', 0.0):.1f} s."
    )


def render_json(report: UsageReport, requests: dict[str, Any] | None = None) -> dict[str, Any]:
    r = report
    out: dict[str, Any] = {
        "from": r.start.isoformat(),
        "to": r.end.isoformat(),
        "days": len(r.days),
        "totals": {
            "sims": r.total.sims,
            "bytes": r.total.bytes_used,
            "sms": r.total.sms_used,
            "daily": {d.isoformat(): b for d, b in sorted(r.total.daily.items())},
        },
        "cost_centers": [t.to_json("cost_center") for t in r.cost_centers],
        "groups": [t.to_json("group") for t in r.groups],
        "top": [{"iccid": row.sim.iccid, "name": row.sim.name, "bytes": row.bytes_used} for row in r.top],
        "sims": [row.to_json() for row in r.sims],
        "over": None,
        "compare": None if r.comparison is None else r.comparison.to_json(),
        "not_read": [{"iccid": i, "source": s, "error": e} for i, s, e in r.not_read],
        "notes": r.notes,
    }
    if r.over is not None and r.month is not None:
        out["over"] = {
            "threshold": r.over_threshold,
            "month_from": r.month[0].isoformat(),
            "month_to": r.month[1].isoformat(),
            "sims": [o.to_json() for o in r.over],
        }
    if requests is not None:
        out["requests"] = requests
    return out


def render_csv(report: UsageReport) -> str:
    """One row per SIM and day of the range (zeros included): the long format a spreadsheet pivots."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    c = report.comparison
    header = ["date", "iccid", "name", "cost_center", "group", "bytes"]
    if c is not None:
        header += ["thingspace_bytes", "differs"]
    writer.writerow(header)
    flagged = {(d.sim.iccid, d.day): "yes" for d in c.discrepancies} if c is not None else {}
    flagged.update({(d.sim.iccid, d.day): "provisional" for d in c.provisional} if c is not None else {})
    for row in sorted(report.sims, key=lambda r: (r.sim.name, r.sim.iccid)):
        ts = c.thingspace.get(row.sim.iccid, {}) if c is not None else {}
        for day in report.days:
            line: list[Any] = [
                day.isoformat(),
                row.sim.iccid,
                row.sim.name,
                row.sim.cost_center,
                row.sim.group,
                row.daily.get(day, 0),
            ]
            if c is not None:
                line += [ts[day].bytes_used if day in ts else 0, flagged.get((row.sim.iccid, day), "no")]
            writer.writerow(line)
    return buf.getvalue()
