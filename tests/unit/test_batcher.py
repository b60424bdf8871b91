"""The batcher merges concurrent compatible requests into one call and routes each result back."""

from __future__ import annotations

import threading

import pytest

from lattigo_fleet.batcher import Batcher


def test_concurrent_same_key_requests_share_one_flush():
    calls = []

    def flush(key, items):
        calls.append((key, list(items)))
        return [item * 10 if item != 3 else ValueError("item 3 refused") for item in items]

    batcher = Batcher(flush, window=0.2)
    results, errors = {}, {}
    barrier = threading.Barrier(4)

    def worker(item):
        barrier.wait()
        try:
            results[item] = batcher.call(("k",), item)
        except ValueError as exc:
            errors[item] = str(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(calls) == 1 and sorted(calls[0][1]) == [1, 2, 3, 4]
    assert results == {1: 10, 2: 20, 4: 40}
    assert errors == {3: "item 3 refused"}


def test_different_keys_never_merge_and_full_batches_flush_at_once():
    calls = []
    batcher = Batcher(lambda key, items: calls.append((key, list(items))) or [None] * len(items),
                      window=5.0, max_size=2)
    f1 = batcher.submit("a", 1)
    f2 = batcher.submit("a", 2)  # reaches max_size: flushed without waiting for the window
    assert f1.result(timeout=1) is None and f2.result(timeout=1) is None
    batcher.submit("b", 3).result(timeout=6)
    assert calls == [("a", [1, 2]), ("b", [3])]


def test_a_failed_bulk_call_fails_every_caller():
    def flush(key, items):
        raise ConnectionError("boom")

    batcher = Batcher(flush, window=0.01)
    with pytest.raises(ConnectionError):
        batcher.call("k", 1)


def test_saturated_callers_flush_without_waiting_out_the_window():
    calls = []
    batcher = Batcher(lambda key, items: calls.append(list(items)) or [None] * len(items),
                      window=30.0, saturation=3)
    threads = [threading.Thread(target=batcher.call, args=("k", i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads), "the third waiting caller should have flushed the batch"
    assert sorted(x for c in calls for x in c) == [0, 1, 2]
