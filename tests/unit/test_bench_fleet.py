"""The fleet bench's Markdown (bench/fleet.py), from a report as the bench writes it: every run's CPU seconds of
all its processes and its load at start and end; the trivial program's runs beside ours with ours / trivial,
checked against the target where one applies (the no-change preview at 10,000 SIMs)."""

from __future__ import annotations

from typing import Any

from bench import fleet

MACHINE = {
    "pulumi": "v3.260.0",
    "cpus": 2,
    "loadavg": "1.50 1.20 1.00",
    "python": "3.11.7",
    "date": "2026-12-07 10:00",
    "engine_env": {"PULUMI_SKIP_CHECKPOINTS": "true"},
}


def procs(engine: float, program: float, provider: float, other: float = 0.0) -> dict[str, dict[str, float]]:
    cpu = {"engine": engine, "program": program, "provider": provider, "other": other}
    return {r: {"cpu_s": c, "peak_rss_mb": 100.0, "processes": 1} for r, c in cpu.items()}


def run(n: int, scenario: str, wall: float, processes: dict[str, dict[str, float]], load: tuple[float, float]) -> Any:
    return {
        "sims": n,
        "scenario": scenario,
        "command": "pulumi preview --expect-no-changes",
        "exit_code": 0,
        "as_expected": True,
        "wall_s": wall,
        "output_lines": 10,
        "processes": processes,
        "cpu_s_total": round(sum(p["cpu_s"] for p in processes.values()), 2),
        "peak_rss_mb_three_sum_of_peaks": 300.0,
        "loadavg_1m": {"start": load[0], "end": load[1]},
    }


def ours(n: int, scenario: str, wall: float, processes: dict[str, dict[str, float]], load: tuple[float, float]) -> Any:
    requests = {"reads": 4, "writes": 0, "floor_reads": 3, "floor_writes": 0, "naive_reads": n, "naive_writes": 0}
    return {
        **run(n, scenario, wall, processes, load),
        "requests": {**requests, "by_endpoint": {}, "devices_by_write_endpoint": {}},
        "state_bytes_per_sim": 1200.0,
    }


def trivial(n: int, beside: str, wall: float, processes: dict[str, dict[str, float]]) -> Any:
    name = {"first adoption": "first up", "no-change preview": "no-change preview"}[beside]
    return {**run(n, f"trivial: {name}", wall, processes, (0.5, 0.75)), "beside": beside}


ADOPT, PREVIEW = fleet.SCENARIOS[0], fleet.SCENARIOS[1]
REPORT: dict[str, Any] = {
    "machine": MACHINE,
    "rows": [
        ours(1000, ADOPT, 4.5, procs(2.0, 2.5, 1.5, 0.5), (1.25, 1.5)),  # 6.5 CPU-s all
        ours(1000, PREVIEW, 6.0, procs(3.5, 2.5, 2.5, 0.5), (1.5, 1.75)),  # 9.0
        ours(10000, PREVIEW, 50.0, procs(30.0, 20.0, 20.0), (1.0, 2.0)),  # 70.0
    ],
    "trivial": [
        trivial(1000, ADOPT, 3.0, procs(1.0, 1.0, 0.5, 0.1)),  # 2.6 CPU-s all
        trivial(1000, PREVIEW, 4.0, procs(6.0, 3.0, 3.0)),  # 12.0
        trivial(10000, PREVIEW, 100.0, procs(40.0, 40.0, 20.0)),  # 100.0
    ],
}


def table(text: str, first_header: str, second_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header starts with these two columns, as header -> cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} | {second_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


def test_every_run_shows_the_cpu_seconds_of_all_its_processes_and_its_load_at_start_and_end() -> None:
    rows = table(fleet.markdown(REPORT), "SIMs", "scenario")

    assert [(r["SIMs"], r["scenario"], r["CPU-s all"], r["load 1m"]) for r in rows] == [
        ("1,000", ADOPT, "6.5", "1.25 → 1.50"),
        ("1,000", PREVIEW, "9.0", "1.50 → 1.75"),
        ("10,000", PREVIEW, "70.0", "1.00 → 2.00"),
    ]


def test_the_trivial_programs_runs_stand_beside_ours_with_the_ratio_and_the_target_at_10000() -> None:
    rows = table(fleet.markdown(REPORT), "SIMs", "beside our")

    assert [
        (
            r["SIMs"],
            r["beside our"],
            r["trivial wall s"],
            r["trivial CPU-s all"],
            r["trivial load 1m"],
            r["our wall s"],
            r["our CPU-s all"],
            r["wall ours/trivial"],
            r["CPU-s ours/trivial"],
        )
        for r in rows
    ] == [
        ("1,000", ADOPT, "3.0", "2.6", "0.50 → 0.75", "4.5", "6.5", "1.50×", "2.50×"),
        ("1,000", PREVIEW, "4.0", "12.0", "0.50 → 0.75", "6.0", "9.0", "1.50×", "0.75×"),
        ("10,000", PREVIEW, "100.0", "100.0", "0.50 → 0.75", "50.0", "70.0", "0.50× (≤ 0.6 ✅)", "0.70× (≤ 0.6 ❌)"),
    ]
    assert rows[1]["engine"] == "6.0 s / 100"


def test_a_trivial_run_without_ours_beside_it_shows_no_ratio() -> None:
    report = {**REPORT, "rows": REPORT["rows"][:1]}  # ours stopped after the first adoption

    rows = table(fleet.markdown(report), "SIMs", "beside our")

    assert [(r["beside our"], r["our wall s"], r["wall ours/trivial"]) for r in rows] == [
        (ADOPT, "4.5", "1.50×"),
        (PREVIEW, "—", "—"),
        (PREVIEW, "—", "—"),
    ]


def test_without_trivial_runs_there_is_no_trivial_table() -> None:
    text = fleet.markdown({**REPORT, "trivial": []})

    assert "Beside a trivial program" not in text and "| SIMs | beside our |" not in text


def test_the_json_row_carries_ours_against_the_trivial_run_beside_it() -> None:
    assert fleet.vs_trivial(REPORT["rows"][1], REPORT["trivial"][1]) == {
        "trivial_scenario": "trivial: no-change preview",
        "trivial_wall_s": 4.0,
        "trivial_cpu_s_total": 12.0,
        "wall_ratio": 1.5,
        "cpu_s_ratio": 0.75,
    }
