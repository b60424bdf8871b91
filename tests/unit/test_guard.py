"""FleetGuard's check: removals (with on_remove: suspend) plus planned suspensions against the limit."""

from __future__ import annotations

from providers.guard import FleetGuardProvider, removals

OLD = {"iccids": ["a", "b", "c", "d"]}


def news(iccids, on_remove="suspend", limit=1, suspensions=0, allow=False):
    return {"iccids": iccids, "on_remove": on_remove, "limit": limit, "suspensions": suspensions,
            "allow_large_changes": allow}


def test_removals_only_count_when_removing_suspends():
    assert removals(OLD, news(["a", "b"])) == ["c", "d"]
    assert removals(OLD, news(["a", "b"], on_remove="retain")) == []
    assert removals({}, news(["a"])) == []  # first run: nothing was held before


def test_check_refuses_over_the_limit_and_names_the_sims():
    result = FleetGuardProvider().check(OLD, news(["a", "b"]))
    [failure] = result.failures
    assert "2 removed" in failure.reason and "c, d" in failure.reason


def test_removals_and_suspensions_share_one_budget():
    assert FleetGuardProvider().check(OLD, news(["a", "b", "c"], limit=1)).failures == []
    assert FleetGuardProvider().check(OLD, news(["a", "b", "c"], limit=1, suspensions=1)).failures


def test_allow_large_changes_lifts_the_guard():
    assert FleetGuardProvider().check(OLD, news([], allow=True)).failures == []
