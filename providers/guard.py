"""`FleetGuard`: one bookkeeping resource per stack that makes the blast-radius guard see removals.

Deletes never reach a provider during a preview, and the program cannot see which SIMs the stack held before.
This resource can: its stored inputs are the ICCIDs of the last applied fleet, and Pulumi hands them to
`check` as `olds` in every preview and update. So `check` knows which SIMs fleet.yaml no longer declares,
adds the suspensions the program planned, and refuses the run when together they pass `policy.max_changes`.
A failed check fails the run before Pulumi deletes anything (deletes come last, and only after a
successful program). It makes no API call.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


def removals(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """SIMs the stack held that fleet.yaml no longer declares, if removing one suspends it."""
    if news.get("on_remove") != "suspend":
        return []  # retain: a removal sends nothing, so it takes nothing out of service
    return sorted(set(olds.get("iccids") or []) - set(news.get("iccids") or []))


class FleetGuardProvider(ResourceProvider):
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        removed = removals(olds, news)
        suspended = int(news.get("suspensions") or 0)
        limit = int(news.get("limit") or 0)
        if removed and len(removed) + suspended > limit and not news.get("allow_large_changes"):
            shown = ", ".join(removed[:10]) + (f" and {len(removed) - 10} more" if len(removed) > 10 else "")
            return CheckResult(news, [CheckFailure(
                "iccids",
                f"policy.max_changes: this run would take {len(removed) + suspended} SIMs out of service "
                f"({len(removed)} removed from fleet.yaml with on_remove: suspend: {shown}; {suspended} "
                f"suspended), more than the limit of {limit}; if that is intended, run "
                "`pulumi config set lattigo-fleet:allowLargeChanges true`",
            )])
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("iccids", "on_remove", "limit")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="fleet", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)


class FleetGuard(Resource, module="lattigo", name="FleetGuard"):
    def __init__(self, name: str, *, iccids: list[str], on_remove: str, limit: int, suspensions: int,
                 allow_large_changes: bool, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FleetGuardProvider(), name, {
            "iccids": sorted(iccids), "on_remove": on_remove, "limit": limit, "suspensions": suspensions,
            "allow_large_changes": allow_large_changes,
        }, opts)
