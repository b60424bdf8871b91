"""Usage reports (`lattigo-fleet usage`): daily usage per SIM, cost center and group, limits, and Lattigo
against ThingSpace.

The modules, in the order data flows: ``fetch`` (per-SIM reads of both daily endpoints, concurrent and
bounded, through ``cache``, the SQLite store of complete days), ``report`` (pure: the figures in, the report
out; every rule of the report is written there once), then ``render`` (tables, JSON, CSV) and ``chart``
(HTML with inline SVG). The command itself is :mod:`lattigo_fleet.commands.usage`.
"""

from lattigo_fleet.usage.cache import UsageCache, default_path
from lattigo_fleet.usage.report import DayFigure, SimInfo, UsageReport, build_report, differs, parse_share

__all__ = [
    "DayFigure",
    "SimInfo",
    "UsageCache",
    "UsageReport",
    "build_report",
    "default_path",
    "differs",
    "parse_share",
]
