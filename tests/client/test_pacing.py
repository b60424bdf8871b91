"""Under rate limiting the client slows down instead of failing SIMs: the adaptive token bucket.

Against the real emulator (``rate_limit_per_second``/``rate_limit_burst``: a token bucket per key that
answers 429 with ``Retry-After``), with real time: concurrent bulk calls of one client all succeed. The
assertions are counts of outcomes (no failure, some 429s happened), never durations. The unit tests of
:class:`AdaptiveRateLimiter` run on a fake clock.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from emulator.server import EmulatorServer
from lattigo_fleet.client import BulkResult, LattigoClient
from lattigo_fleet.client.pacing import AdaptiveRateLimiter
from tests.client.conftest import add_active, api_requests
from tests.conftest import EMULATOR_API_KEY, EMULATOR_KEY_NAME


def test_concurrent_bulk_calls_all_succeed_under_a_429_storm(emu: EmulatorServer) -> None:
    sims = add_active(emu, 0, 48)
    emu.set_faults(rate_limit_per_second=4, rate_limit_burst=2)
    client = LattigoClient(emu.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, chunk_size=4, timeout=10)
    groups = [sims[i : i + 8] for i in range(0, len(sims), 8)]  # 6 calls of 2 requests each, all at once
    try:
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            results: list[BulkResult] = list(pool.map(lambda g: client.change_simstate(g, "suspend"), groups))
    finally:
        emu.set_faults(rate_limit_per_second=None, rate_limit_burst=None)
        client.close()
    failed = {k: v for r in results for k, v in r.failed.items()}
    assert failed == {}
    assert sorted(i for r in results for i in r.succeeded) == sorted(sims)
    statuses = [r["status"] for r in api_requests(emu, "change_simstate")]
    assert statuses.count(429) > 0  # the storm happened ...
    assert statuses.count(200) == 12  # ... and every chunk went through exactly once
    assert client._http.limiter.enabled and client._http.limiter.throttles == statuses.count(429)
    assert {s["state"] for s in emu.sims() if s["iccid"] in set(sims)} == {"suspended"}


def test_per_sim_calls_queued_behind_a_slow_account_do_not_fail_for_their_turn(emu: EmulatorServer) -> None:
    """One call per SIM (notes) under a rate limit far below the run's concurrency: the time a call waits for
    its turn in the shared bucket is the account's throughput, not a failure of that call, so it does not
    count against the call's retry budget (its own retries and the waits the server asked of it do). Here
    the queue is longer than the budget: every SIM still gets its note."""
    sims = add_active(emu, 0, 24)  # at 4 requests/s: a queue of about 6 s, twice the budget
    emu.set_faults(rate_limit_per_second=4, rate_limit_burst=1)
    client = LattigoClient(emu.base_url, EMULATOR_KEY_NAME, EMULATOR_API_KEY, timeout=10, retry_budget=3.0)
    errors: list[Exception] = []

    def note(iccid: str) -> None:
        try:
            client.set_note(iccid, "note1", "fw 3.4.0")
        except Exception as exc:  # counted: the assertion names them
            errors.append(exc)

    try:
        with ThreadPoolExecutor(max_workers=len(sims)) as pool:
            list(pool.map(note, sims))
    finally:
        emu.set_faults(rate_limit_per_second=None, rate_limit_burst=None)
        client.close()
    assert errors == []
    assert {s["iccid"]: s.get("note1") for s in emu.sims() if s["iccid"] in set(sims)} == dict.fromkeys(
        sims, "fw 3.4.0"
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_does_not_pace_until_the_first_429() -> None:
    limiter = AdaptiveRateLimiter(FakeClock())
    assert [limiter.acquire()[0] for _ in range(50)] == [0.0] * 50
    assert not limiter.enabled


def test_a_429_lowers_the_rate_and_pauses_every_thread_for_the_retry_after() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, min_rate=0.5, decrease=0.5)
    sent = [limiter.acquire()[1] for _ in range(20)]  # 20 requests in the last 2 s window: 10/s measured
    limiter.on_throttle(sent[-1], retry_after=3.0)
    assert limiter.enabled and limiter.rate == 5.0  # measured 10/s, halved
    waits = [limiter.acquire()[0] for _ in range(3)]
    assert waits[0] == 3.0  # the Retry-After, for whoever comes next
    assert waits == sorted(waits) and waits[2] > 3.0  # and then paced at the new rate


def test_concurrent_429s_from_one_burst_lower_the_rate_once() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, min_rate=0.1, decrease=0.5)
    sent = [limiter.acquire()[1] for _ in range(20)]
    clock.now += 0.1
    for at in sent[-5:]:  # five requests of the same burst answered 429
        limiter.on_throttle(at, retry_after=None)
    assert limiter.rate == 5.0 and limiter.throttles == 5 and limiter.epoch == 1


def test_successes_raise_the_rate_again_with_the_time_since_the_429() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, min_rate=0.1, decrease=0.5, recovery=2.0, probe=0.25)
    sent = [limiter.acquire()[1] for _ in range(20)]  # 10/s measured
    limiter.on_throttle(sent[-1], retry_after=None)
    assert limiter.rate == 5.0
    clock.now += 1.0
    limiter.on_success()
    assert limiter.rate == 7.5  # half way back to the 10/s of before the 429
    clock.now += 1.0
    limiter.on_success()
    assert limiter.rate == 10.0
    clock.now += 4.0
    limiter.on_success()
    assert limiter.rate == 20.0  # then probing beyond it: +25% of it per second


def test_the_wait_for_a_token_is_not_charged_again_when_its_request_is_throttled() -> None:
    """One caller alone in a 429 storm: each retry waits one token's spacing (1/rate), never more. The bucket
    once moved its clock past the time the caller had already waited for its token without refilling it, so
    the throttled request's token stayed owed and the next retry paid for two (a call alone overran its
    retry budget, found in a full run: 6.7 s of waits under a 6-s budget)."""
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, min_rate=0.5, decrease=0.5)
    sent_at = limiter.acquire()[1]
    spacings = []
    for backoff in (0.4, 0.6, 0.3):
        limiter.on_throttle(sent_at, retry_after=None)  # rate is at its floor: 0.5/s, one token per 2 s
        clock.now += backoff  # the caller's own backoff before it retries
        wait, sent_at = limiter.acquire()
        spacings.append(round(backoff + wait, 9))
        clock.now += wait  # it waits for its token, then sends
    assert spacings == [2.0, 2.0, 2.0]


# --- a ceiling: the job's share of the account's request budget ----------------------------------------------


def _send_times(limiter: AdaptiveRateLimiter, clock: FakeClock, n: int) -> list[float]:
    """n requests one after another, each sent when its token allows (the caller waits as told)."""
    times = []
    for _ in range(n):
        wait, sent_at = limiter.acquire()
        clock.now += wait
        times.append(round(sent_at - 100.0, 9))
    return times


def test_a_ceiling_paces_from_the_first_request() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, ceiling=2.0)
    assert limiter.enabled and limiter.rate == 2.0
    assert _send_times(limiter, clock, 5) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_under_a_ceiling_a_pause_earns_no_burst() -> None:
    """After a minute of silence the next requests still go 1 / ceiling apart: jobs that pause together (a
    matrix waiting for its snapshot) must not resume with a burst each."""
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, ceiling=4.0)
    _send_times(limiter, clock, 3)
    clock.now += 60.0
    start = clock.now - 100.0
    assert [round(t - start, 9) for t in _send_times(limiter, clock, 4)] == [0.0, 0.25, 0.5, 0.75]


def test_successes_never_raise_the_rate_above_the_ceiling() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, ceiling=3.0, probe=1.0)
    for _ in range(20):
        clock.now += 5.0
        limiter.acquire()
        limiter.on_success()
    assert limiter.rate == 3.0


def test_a_429_under_a_ceiling_still_lowers_the_rate_which_recovers_up_to_the_ceiling_only() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, ceiling=2.0, decrease=0.5, recovery=2.0, probe=0.5)
    sent = _send_times(limiter, clock, 5)  # 0 .. 2.0 s: at the ceiling
    limiter.on_throttle(100.0 + sent[-1], retry_after=None)
    assert limiter.rate == 1.0 and limiter.throttles == 1  # halved
    clock.now += 1.0
    limiter.on_success()
    assert limiter.rate == 1.5  # half way back
    clock.now += 10.0
    limiter.on_success()
    assert limiter.rate == 2.0  # back to the ceiling, and no further (probing would have gone to 8/s)


def test_a_ceiling_below_the_floor_wins_over_the_floor_and_a_429_still_lowers_the_rate() -> None:
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(clock, ceiling=0.2, min_rate=0.5, decrease=0.5)
    limiter.on_throttle(limiter.acquire()[1], retry_after=None)
    assert limiter.rate == 0.1
    clock.now += 60.0
    limiter.on_success()
    assert limiter.rate == 0.2
