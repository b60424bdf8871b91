"""Checks of a loaded fleet against the live account: rate plans and usernames that it does not list."""

from __future__ import annotations

from lattigo_fleet.fleetfile.messages import _did_you_mean, _show
from lattigo_fleet.fleetfile.model import FleetSpec, Issue


def validate_against_account(fleet: FleetSpec, rate_plans: set[str], usernames: set[str]) -> list[Issue]:
    """Rate plans that ``v2/rate_plans`` does not list and usernames that ``v2/users`` does not list
    (the API silently ignores bad usernames; we do not).  Every value written anywhere is checked
    (defaults, groups even if unused, SIMs), once per place it is written, and each Issue points at
    that place; in file order, like load_fleet's issues."""
    unknown = [
        w
        for w in fleet._written
        if (w.kind == "rate_plan" and w.value not in rate_plans) or (w.kind == "username" and w.value not in usernames)
    ]
    if not unknown:
        return []
    issues = []
    for written in fleet.located()._written:
        if written.kind == "rate_plan" and written.value not in rate_plans:
            known = (
                f"the account's rate plans: {', '.join(sorted(rate_plans)[:10])}{', …' if len(rate_plans) > 10 else ''}"
                if rate_plans
                else "the account has no rate plans"
            )
            issues.append(
                Issue.at(
                    written.location,
                    written.field,
                    f"unknown rate plan {_show(written.value)}{_did_you_mean(written.value, rate_plans)}: "
                    f"v2/rate_plans does not list it ({known})",
                )
            )
        elif written.kind == "username" and written.value not in usernames:
            issues.append(
                Issue.at(
                    written.location,
                    written.field,
                    f"unknown user {_show(written.value)}{_did_you_mean(written.value, usernames)}: "
                    "v2/users does not list it (the API would silently ignore it and nobody would be alerted)",
                )
            )
    order = {file: n for n, file in enumerate(fleet.files)}
    return sorted(issues, key=lambda i: (order.get(i.file, len(order)), i.line, i.column))
