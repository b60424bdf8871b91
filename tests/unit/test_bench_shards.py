"""The sharded bench's round rows (bench/shards.py): what its table and JSON print."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench import shards
from bench.account import floor_writes


def job(name: str, wall_s: float) -> shards.Job:
    j = shards.Job(name, ["true"], {}, Path("."))
    j.wall_s, j.cpu_s, j.peak_mb, j.exit_code = wall_s, 1.0, 100.0, 0
    return j


def test_a_rounds_wall_time_is_rounded_even_when_it_is_a_sum_of_jobs() -> None:
    first, stack = job("snapshot", 5.1), job("drift a", 7.5)
    row = shards.round_row("drift", [first, stack], first.wall_s + stack.wall_s, first, requests={"reads": 1})
    assert row["wall_s_here"] == 12.6
    assert repr(row["wall_s_here"]) == "12.6"
    assert row["one_runner_per_job_wall_s"] == 12.6
    assert row["requests"] == {"reads": 1}


def test_the_merge_floor_counts_the_changes_a_planned_pull_request_left_unapplied() -> None:
    # The pull-request round only plans its change: the merge applies it too, with the merge's own change.
    account = shards.Account(stacks=2, sims=1000)
    planned = account.change(list(range(0, 1000, 100)))  # stack 0's pull request: 10 SIMs, 2 of them notes
    merged = account.change(list(range(1, 1000, 10)))  # the merge's 10%: 100 SIMs, 20 of them notes
    assert account.take_unapplied(0) == planned + merged
    assert account.take_unapplied(0) == Counter(), "applied: the next merge starts from nothing"
    assert account.take_unapplied(1) == Counter()
    assert floor_writes(planned + merged) == 22 + 3  # a note per SIM; one bulk call per cost center or state
