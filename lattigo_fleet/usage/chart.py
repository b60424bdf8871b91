"""``--chart usage.html``: one standalone HTML file, inline SVG written by hand (no plotting library).

- ``svg#daily-by-cost-center``: one line per cost center of its daily bytes over the range
  (``<g class="series" data-cost-center=... data-total-bytes=...>``, a point per day with ``data-day`` and
  ``data-bytes``, and a ``<title>`` tooltip);
- with ``--compare``, ``svg#discrepancies``: the fleet's daily bytes from Lattigo and from ThingSpace
  (``data-source``), and a red band on each day where some SIM differs (``data-sims``, ``data-difference``),
  followed by the table of those days.

The document is well-formed XML as well as HTML5, so that both ``html.parser`` and ``xml.etree`` read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape, quoteattr

from lattigo_fleet.usage.render import human_bytes
from lattigo_fleet.usage.report import UsageReport

SVG_NS = "http://www.w3.org/2000/svg"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 960, 340
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 20, 60


@dataclass(frozen=True)
class Line:
    label: str
    daily: Mapping[date, int]
    attrs: Mapping[str, str]
    color: str


def _attrs(values: Mapping[str, object]) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in values.items())


def _nice_step(top: float, ticks: int = 5) -> float:
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 1024 ** max(0, int(math.log(raw, 1024))) if raw >= 1 else 1
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if step * power >= raw:
            return float(step * power)
    return float(raw)


def _line_chart(
    chart_id: str,
    title: str,
    days: Sequence[date],
    lines: Sequence[Line],
    bands: Sequence[tuple[date, Mapping[str, object]]] = (),
) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max([1] + [v for line in lines for v in line.daily.values()])
    step = _nice_step(top)
    y_max = step * math.ceil(top / step)
    n = max(1, len(days) - 1)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / n if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / y_max

    out = [
        f'<svg xmlns="{SVG_NS}" id="{chart_id}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f"<title>{escape(title)}</title>",
    ]
    slot = plot_w / max(1, len(days))
    if bands:
        out.append('<g class="discrepancies">')
        index = {d: i for i, d in enumerate(days)}
        for day, attrs in bands:
            cx = x(index[day])
            out.append(
                f'<rect class="discrepancy" x="{cx - slot / 2:.1f}" y="{TOP}" width="{slot:.1f}" '
                f'height="{plot_h}" fill="#d62728" fill-opacity="0.15"{_attrs({"data-day": day.isoformat()})}'
                f"{_attrs(attrs)}><title>{escape(day.isoformat())}: {escape(str(attrs.get('data-sims')))} "
                f"SIM(s) differ</title></rect>"
            )
        out.append("</g>")
    out.append('<g class="axes" font-family="sans-serif" font-size="11" fill="#333">')
    ticks = int(round(y_max / step))
    for k in range(ticks + 1):
        v = step * k
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(human_bytes(v))}</text>')
    every = max(1, math.ceil(len(days) / 12))
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                f"{escape(day.strftime('%m-%d'))}</text>"
            )
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append("</g>")
    for line in lines:
        points = " ".join(f"{x(i):.1f},{y(line.daily.get(d, 0)):.1f}" for i, d in enumerate(days))
        total = sum(line.daily.get(d, 0) for d in days)
        out.append(f'<g class="series"{_attrs(line.attrs)} data-total-bytes="{total}">')
        out.append(f"<title>{escape(line.label)}: {escape(human_bytes(total))}</title>")
        out.append(f'<polyline fill="none" stroke="{line.color}" stroke-width="2" points="{points}"/>')
        for i, d in enumerate(days):
            v = line.daily.get(d, 0)
            out.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{line.color}" '
                f'data-day="{d.isoformat()}" data-bytes="{v}"><title>{escape(line.label)} '
                f"{d.isoformat()}: {escape(human_bytes(v))} ({v:,} bytes)</title></circle>"
            )
        out.append("</g>")
    # Legend, under the axis labels.
    out.append(
        f'<g class="legend" font-family="sans-serif" font-size="12" transform="translate({LEFT},{HEIGHT - 22})">'
    )
    offset = 0
    for line in lines:
        label = f"{line.label} ({human_bytes(sum(line.daily.get(d, 0) for d in days))})"
        out.append(
            f'<rect x="{offset}" y="-9" width="10" height="10" fill="{line.color}"/>'
            f'<text x="{offset + 14}" y="0">{escape(label)}</text>'
        )
        offset += 24 + 7 * len(label)
    out.append("</g></svg>")
    return "\n".join(out)


def render_chart(report: UsageReport) -> str:
    r = report
    days = r.days
    by_cc = [
        Line(t.key, t.daily, {"data-cost-center": t.key}, PALETTE[i % len(PALETTE)])
        for i, t in enumerate(r.cost_centers)
    ]
    title = f"Daily usage by cost center, {r.start.isoformat()} .. {r.end.isoformat()}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>{r.total.sims:,} SIM(s), {escape(human_bytes(r.total.bytes_used))} "
        f"({r.total.bytes_used:,} bytes) from Lattigo's daily_data_usages.</p>",
        _line_chart("daily-by-cost-center", title, days, by_cc),
    ]
    c = r.comparison
    if c is not None:
        per_day: dict[date, list[int]] = {}
        for d in c.discrepancies:
            per_day.setdefault(d.day, []).append(abs(d.difference))
        bands = [(day, {"data-sims": len(v), "data-difference": sum(v)}) for day, v in sorted(per_day.items())]
        lines = [
            Line("Lattigo", c.lattigo_daily, {"data-source": "lattigo"}, PALETTE[0]),
            Line("ThingSpace", c.thingspace_daily, {"data-source": "thingspace"}, PALETTE[1]),
        ]
        ctitle = "Lattigo against ThingSpace, daily bytes of the compared SIMs"
        body += [
            f"<h2>{escape(ctitle)}</h2>",
            f"<p>{len(c.discrepancies)} SIM-day(s) differ by more than {c.tolerance * 100:g}% and "
            f"{c.min_bytes:,} bytes (red bands).</p>",
            _line_chart("discrepancies", ctitle, days, lines, bands),
        ]
        if c.discrepancies:
            body.append(
                '<table class="discrepancies"><thead><tr><th>SIM</th><th>ICCID</th><th>day</th>'
                "<th>Lattigo bytes</th><th>ThingSpace bytes</th><th>difference</th></tr></thead><tbody>"
            )
            for d in c.discrepancies:
                body.append(
                    f"<tr><td>{escape(d.sim.name)}</td><td>{escape(d.sim.iccid)}</td>"
                    f"<td>{d.day.isoformat()}</td><td>{d.lattigo:,}</td><td>{d.thingspace:,}</td>"
                    f"<td>{d.difference:+,}</td></tr>"
                )
            body.append("</tbody></table>")
    style = (
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"/>'
        f"<title>{escape(title)}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
