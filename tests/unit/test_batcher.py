"""The batcher: when a batch goes (complete, full, stalled, idle), and that every caller gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from lattigo_fleet.batcher import Batcher


def run_callers(batcher: Batcher[int], items: list[int], key: str = "k") -> tuple[dict[int, Any], dict[int, str]]:
    results: dict[int, Any] = {}
    errors: dict[int, str] = {}

    def worker(item: int) -> None:
        try:
            results[item] = batcher.call(key, item, member=item)
        except Exception as exc:
            errors[item] = str(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def answer_none(key: Hashable, items: Sequence[int]) -> list[None]:
    return [None] * len(items)


def test_a_batch_goes_when_everything_it_expects_has_arrived_whatever_the_timing() -> None:
    calls: list[list[int]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[int]:
        calls.append(sorted(items))
        return [i * 10 for i in items]

    batcher: Batcher[int] = Batcher(flush, window=60.0)
    batcher.expect("k", range(1, 9))
    results, errors = run_callers(batcher, list(range(1, 9)))
    assert calls == [list(range(1, 9))]  # one request, sent without waiting out the 60 s window
    assert results == {i: i * 10 for i in range(1, 9)} and errors == {}
    assert batcher.flushes == [("k", 8, "complete")]


def test_each_caller_gets_its_own_result_or_error() -> None:
    def flush(key: Hashable, items: Sequence[int]) -> list[int | ValueError]:
        return [ValueError(f"{i} refused") if i == 3 else i for i in items]

    batcher: Batcher[int] = Batcher(flush, window=60.0)
    batcher.expect("k", [1, 2, 3, 4])
    results, errors = run_callers(batcher, [1, 2, 3, 4])
    assert results == {1: 1, 2: 2, 4: 4} and errors == {3: "3 refused"}


def test_a_failed_bulk_call_is_retried_one_item_at_a_time() -> None:
    calls: list[list[int]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[str]:
        calls.append(sorted(items))
        if 3 in items:
            raise ConnectionError("device 3 broke the whole request")
        return [f"ok {i}" for i in items]

    batcher: Batcher[int] = Batcher(flush, window=60.0)
    batcher.expect("k", [1, 2, 3, 4])
    results, errors = run_callers(batcher, [1, 2, 3, 4])
    assert results == {1: "ok 1", 2: "ok 2", 4: "ok 4"}
    assert errors == {3: "device 3 broke the whole request"}
    assert calls[0] == [1, 2, 3, 4] and sorted(map(tuple, calls[1:])) == [(1,), (2,), (3,), (4,)]


def test_different_keys_never_merge_and_full_batches_go_at_once() -> None:
    calls: list[tuple[Hashable, list[int]]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[None]:
        calls.append((key, list(items)))
        return [None] * len(items)

    batcher: Batcher[int] = Batcher(flush, window=60.0, max_size=2)
    f1 = batcher.submit("a", 1)
    f2 = batcher.submit("a", 2)  # reaches max_size: sent without waiting for anything else
    assert f1.result(timeout=5) is None and f2.result(timeout=5) is None
    batcher.expect("b", [3])
    batcher.submit("b", 3, member=3).result(timeout=5)
    assert calls == [("a", [1, 2]), ("b", [3])]
    assert [why for _, _, why in batcher.flushes] == ["full", "complete"]


def test_a_batch_goes_when_as_many_wait_as_can_be_served_at_once() -> None:
    calls: list[list[int]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[None]:
        calls.append(sorted(items))
        return [None] * len(items)

    batcher: Batcher[int] = Batcher(flush, window=60.0, capacity=3)
    batcher.expect("k", range(10))  # expects more than will come (say a --target run)
    run_callers(batcher, [0, 1, 2])
    assert calls == [[0, 1, 2]]
    assert batcher.flushes == [("k", 3, "stalled")]


def test_a_stalled_batcher_sends_the_largest_batch_and_lets_the_others_fill() -> None:
    """Capacity 4: three callers wait under "big", one under "small", and more are expected under both. Sending
    only "big" frees three places; "small" keeps filling and goes complete, one request instead of two
    (sending every batch at each stall split the 1,000-SIM change into 6 requests against a floor of 3)."""
    calls: list[tuple[Hashable, list[int]]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[None]:
        calls.append((key, sorted(items)))
        return [None] * len(items)

    batcher: Batcher[int] = Batcher(flush, window=60.0, capacity=4)
    batcher.expect("big", [1, 2, 3, 9])
    batcher.expect("small", [10, 11])
    done: dict[int, Any] = {}

    def caller(key: str, item: int) -> None:
        done[item] = batcher.call(key, item, member=item)

    first = [threading.Thread(target=caller, args=(k, i)) for k, i in (("small", 10), ("big", 1), ("big", 2))]
    for t in first:
        t.start()
    while batcher._waiting < 3:  # the three are in (a condition, not a clock)
        threading.Event().wait(0.001)
    caller("big", 3)  # the fourth caller: stalled; "big" (3 items) goes, "small" (1) waits
    assert calls == [("big", [1, 2, 3])]
    caller("small", 11)  # "small" is now complete
    for t in first:
        t.join(timeout=10)
    assert calls == [("big", [1, 2, 3]), ("small", [10, 11])]
    assert [why for _, _, why in batcher.flushes] == ["stalled", "complete"]


def test_a_stall_also_sends_the_other_batches_its_callers_wait_on() -> None:
    """A caller with items in two batches is freed only when both go: a stall that sent one of them would free
    nobody, and the batcher would wait for its 30 s fallback."""
    calls: list[tuple[Hashable, list[int]]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[None]:
        calls.append((key, sorted(items)))
        return [None] * len(items)

    batcher: Batcher[int] = Batcher(flush, window=60.0, capacity=2)
    batcher.expect("a", [1, 2, 3, 4])
    batcher.expect("b", [5, 6])
    batcher.expect("c", [7, 8])
    other = threading.Thread(target=lambda: batcher.call("c", 7, member=7))
    other.start()
    while batcher._waiting < 1:
        threading.Event().wait(0.001)
    outcomes = batcher.call_many([("a", 1, 1), ("a", 2, 2), ("b", 5, 5)])  # the second caller: stalled
    assert outcomes == [None, None, None]
    assert sorted(calls) == [("a", [1, 2]), ("b", [5])]  # "c" keeps waiting for 8
    batcher.flush_all()
    other.join(timeout=10)
    assert sorted(calls) == [("a", [1, 2]), ("b", [5]), ("c", [7])]


def test_without_expectations_an_idle_window_is_the_fallback() -> None:
    batcher: Batcher[int] = Batcher(answer_none, window=0.05)
    assert batcher.submit("k", 1).result(timeout=5) is None
    assert batcher.flushes == [("k", 1, "idle")]


@pytest.mark.parametrize("late", [True, False])
def test_members_sent_are_not_waited_for_again(late: bool) -> None:
    calls: list[list[int]] = []

    def flush(key: Hashable, items: Sequence[int]) -> list[None]:
        calls.append(sorted(items))
        return [None] * len(items)

    batcher: Batcher[int] = Batcher(flush, window=0.05, expect_window=0.05)
    batcher.expect("k", [1, 2])
    batcher.submit("k", 1, member=1).result(timeout=5)  # 2 never came in time: the idle window sent 1
    if late:
        batcher.submit("k", 2, member=2).result(timeout=5)  # complete now: goes at once
        assert batcher.flushes[-1] == ("k", 1, "complete")
    assert calls[0] == [1]


def test_a_batch_waits_for_expected_members_longer_than_the_idle_window() -> None:
    """Changed SIMs can reach the provider seconds apart (the engine works through thousands of unchanged ones
    in between): while the plan still expects some, the short idle window does not send the batch."""
    batcher: Batcher[int] = Batcher(answer_none, window=0.01, expect_window=60.0)
    batcher.expect("k", [1, 2])
    first = batcher.submit("k", 1, member=1)
    assert not first.done()
    threading.Event().wait(0.1)  # ten idle windows
    assert not first.done() and batcher.flushes == []
    batcher.submit("k", 2, member=2).result(timeout=5)
    assert first.result(timeout=5) is None and batcher.flushes == [("k", 2, "complete")]


def test_a_member_that_will_not_come_is_struck_off_and_the_batch_goes() -> None:
    batcher: Batcher[int] = Batcher(answer_none, window=60.0, expect_window=60.0)
    batcher.expect("k", [1, 2, 3])
    futures = [batcher.submit("k", 1, member=1), batcher.submit("k", 2, member=2)]
    batcher.settle(3)  # its diff found nothing to change
    assert [f.result(timeout=5) for f in futures] == [None, None]
    assert batcher.flushes == [("k", 2, "complete")]
