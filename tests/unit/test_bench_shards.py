"""The sharded bench's round rows (bench/shards.py): what its table and JSON print."""

from __future__ import annotations

from pathlib import Path

from bench import shards


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
