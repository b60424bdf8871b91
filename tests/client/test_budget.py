"""The account's request budget: where it is read, how jobs share it, and that jobs sharing it meet no 429.

Time is the emulator's own clock, pinned (only ``advance_clock`` moves it): the clients wait on it and the
emulator's token bucket refills on it, so each run is the same run however fast the machine is. The
assertions are counts of answers, never durations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest

from emulator.server import EmulatorServer
from lattigo_fleet.client import BudgetError, LattigoClient, RequestBudget, request_budget
from lattigo_fleet.client.budget import RATE_ENV, SHARES_ENV
from tests.client.conftest import Clock
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME


@pytest.mark.parametrize(
    ("env", "budget"),
    [
        ({}, RequestBudget(0.0, 1)),
        ({RATE_ENV: ""}, RequestBudget(0.0, 1)),  # set empty: unset
        ({RATE_ENV: "10"}, RequestBudget(10.0, 1)),
        ({RATE_ENV: "10", SHARES_ENV: "5"}, RequestBudget(10.0, 5)),
        ({RATE_ENV: " 2.5 ", SHARES_ENV: "20"}, RequestBudget(2.5, 20)),
        ({SHARES_ENV: "4"}, RequestBudget(0.0, 4)),  # shares of no budget: still no ceiling
    ],
)
def test_the_budget_is_read_from_the_environment(env: Mapping[str, str], budget: RequestBudget) -> None:
    assert request_budget(env, stack_rate=0.0) == budget


def test_shares_divide_the_budget_and_the_variable_wins_over_the_stack_setting() -> None:
    assert request_budget({RATE_ENV: "10", SHARES_ENV: "5"}, stack_rate=0.0).per_job == 2.0
    assert request_budget({SHARES_ENV: "4"}, stack_rate=8.0).per_job == 2.0
    assert request_budget({RATE_ENV: "3"}, stack_rate=8.0).per_job == 3.0
    assert request_budget({}, stack_rate=0.0).per_job is None
    assert str(request_budget({RATE_ENV: "10", SHARES_ENV: "5"}, 0.0)) == (
        "2 requests/s (the account's 10, 5 jobs sharing it)"
    )


RATE_SAYS = "LATTIGO_FLEET_REQUESTS_PER_SECOND must be a positive number of requests per second, not "
SHARES_SAYS = "LATTIGO_FLEET_BUDGET_SHARES must be a whole number of jobs >= 1, not "


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({RATE_ENV: "fast"}, RATE_SAYS + "'fast'"),
        ({RATE_ENV: "0"}, RATE_SAYS + "'0'"),
        ({RATE_ENV: "-3"}, RATE_SAYS + "'-3'"),
        ({RATE_ENV: "inf"}, RATE_SAYS + "'inf'"),
        ({RATE_ENV: "nan"}, RATE_SAYS + "'nan'"),
        ({RATE_ENV: " "}, RATE_SAYS + "' '"),
        ({RATE_ENV: "10", SHARES_ENV: "0"}, SHARES_SAYS + "'0'"),
        ({RATE_ENV: "10", SHARES_ENV: "2.5"}, SHARES_SAYS + "'2.5'"),
        ({RATE_ENV: "10", SHARES_ENV: "-1"}, SHARES_SAYS + "'-1'"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable_and_the_value(
    env: Mapping[str, str], message: str
) -> None:
    with pytest.raises(BudgetError) as caught:
        request_budget(env, stack_rate=0.0)
    assert str(caught.value) == message


def test_a_client_takes_the_budget_of_its_environment_from_the_first_request(
    emu: EmulatorServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No caller passes it: the client reads it. 10 requests/s shared by 5 jobs: one request every 0.5 s."""
    monkeypatch.setenv(RATE_ENV, "10")
    monkeypatch.setenv(SHARES_ENV, "5")
    client = LattigoClient(emu.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, sleep=clock.sleep, clock=clock)
    try:
        assert client.budget == RequestBudget(10.0, 5)
        for _ in range(4):
            client.rate_plans()
    finally:
        client.close()
    assert clock.waits == [0.5, 0.5, 0.5]


def test_a_client_given_no_budget_is_not_paced(emu: EmulatorServer, clock: Clock) -> None:
    client = LattigoClient(
        emu.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, sleep=clock.sleep, clock=clock, budget=RequestBudget()
    )
    try:
        for _ in range(4):
            client.rate_plans()
    finally:
        client.close()
    assert clock.waits == []


# --- jobs side by side under the account's limit --------------------------------------------------------------

ACCOUNT_LIMIT = 8  # requests/s: the emulator's token bucket per key (burst: as many)
JOBS = 4
REQUESTS_PER_JOB = 10


def _side_by_side(emu: EmulatorServer, jobs: int, budget: RequestBudget) -> Counter[int]:
    """``jobs`` clients of one key (one account), taking turns one request at a time, each waiting on the
    emulator's pinned clock; the statuses the emulator answered, counted."""
    emu.reset()
    emu.set_faults(rate_limit_per_second=ACCOUNT_LIMIT)
    store_clock = emu.backend.store.clock

    def sleep(seconds: float) -> None:
        if seconds > 0:
            emu.advance_clock(seconds)

    clients = [
        LattigoClient(
            emu.base_url,
            EMULATOR_KEY_NAME,
            EMULATOR_API_KEY,
            clock=store_clock.timestamp,
            sleep=sleep,
            budget=budget,
        )
        for _ in range(jobs)
    ]
    try:
        for _ in range(REQUESTS_PER_JOB * JOBS // jobs):
            for client in clients:
                client.rate_plans()
    finally:
        for client in clients:
            client.close()
    return Counter(entry["status"] for entry in emu.requests_log())


def test_jobs_sharing_the_budget_meet_no_429_where_one_job_alone_meets_them(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = emu.backend.store.clock.source()
    monkeypatch.setattr(emu.backend.store.clock, "source", lambda: pinned)
    shared = _side_by_side(emu, JOBS, RequestBudget(ACCOUNT_LIMIT, JOBS))  # each job at 8 / 4 = 2 requests/s
    alone = _side_by_side(emu, 1, RequestBudget())  # one job, pacing itself only after 429s
    unshared = _side_by_side(emu, JOBS, RequestBudget())
    assert shared == Counter({200: REQUESTS_PER_JOB * JOBS})
    assert alone[200] == unshared[200] == REQUESTS_PER_JOB * JOBS  # every request gets through in the end ...
    assert alone[429] > 0 and unshared[429] > 0  # ... after 429s


def test_a_listing_paced_by_its_budget_does_not_fail_for_the_time_it_waited_its_turn(
    emu: EmulatorServer, clock: Clock
) -> None:
    """The listing bound (``listing_timeout``) is there for a server that pages slowly; the waits a small share
    of the budget imposes are this job's turn in the account's throughput, known in advance, not a slow
    server: 6 pages at 1 request/s are 5 s of waiting, more than a 2-s bound, and the listing completes."""
    emu.add_sims([{"iccid": f"8901{n:016d}", "imei": f"35{n:013d}", "state": "active"} for n in range(12)])
    client = LattigoClient(
        emu.base_url,
        EMULATOR_KEY_NAME,
        EMULATOR_API_KEY,
        sleep=clock.sleep,
        clock=clock,
        per_page=2,
        listing_timeout=2.0,
        budget=RequestBudget(1.0, 1),
    )
    try:
        assert len(client.snapshot()) == 12
    finally:
        client.close()
    assert clock.waits == [1.0] * 5
