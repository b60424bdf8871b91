"""Merge compatible requests from concurrent callers into one bulk call.

Modelled on the request batcher of Terraform's Google provider: requests for the same key that are waiting
together are sent as one bulk call, each caller gets its own item's result, and a bulk call that fails as a
whole is retried one item at a time, so that one bad item never fails the others that shared its request.

When a batch goes, in order of preference:
1. **Everything it expects has arrived.** The caller may say, per key, which members (ICCIDs) will submit in
   this run (`expect`): the provider knows it from fleet.yaml and the live account, exactly as the preview
   planned. Then the batch is complete as soon as they are all in: deterministic, whatever the timing.
2. **It is full** (`max_size`: the Applier gives it the client's bulk request size, `chunk_size`).
3. **Nothing else can arrive**: as many callers wait here as the provider can serve at once (`capacity`:
   the engine hands out no more work until one of them returns). Then the largest batch goes, with every
   other batch its callers also wait on (so that each of them is freed): that frees the most places, and
   the other batches keep filling instead of each going out in pieces at every stall.
4. **It has been idle** for `window` seconds (no new item), when nothing more is expected under its key; or,
   while expected members are still to come, for `expect_window` seconds: the fallback when expectations are
   wrong (`--target`, a run cut short, a SIM still activating). A member the engine will not send after all
   (its diff found nothing to change) is struck off with `settle`, so a batch does not wait for it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

# A flush function gets the key and the items, and returns one result per item, in the same order:
# either a value, or an Exception instance for that item alone.
FlushFn = Callable[[Hashable, Sequence[Item]], Sequence[Any]]


@dataclass
class _Pending(Generic[Item]):
    items: list[Item] = field(default_factory=list)
    members: set[Hashable] = field(default_factory=set)
    futures: list[Future[Any]] = field(default_factory=list)
    callers: set[int] = field(default_factory=set)  # the call_many calls waiting on this batch
    timer: threading.Timer | None = None


class Batcher(Generic[Item]):
    def __init__(
        self,
        flush: FlushFn[Item],
        *,
        window: float = 0.2,
        max_size: int | None = None,
        capacity: int | None = None,
        expect_window: float = 30.0,
    ) -> None:
        self._flush_fn = flush
        self._expect_window = expect_window
        self._window = window
        self._max_size = max_size
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending[Item]] = {}
        self._expected: dict[Hashable, set[Hashable]] = {}
        self._waiting = 0  # callers blocked in call/call_many
        self._callers = itertools.count()
        self.flushes: list[tuple[Hashable, int, str]] = []  # (key, size, why): what happened, for tests and logs

    def expect(self, key: Hashable, members: Collection[Hashable]) -> None:
        """Declare the members that will submit under `key` in this run (replacing any earlier expectation)."""
        with self._lock:
            self._expected[key] = set(members)

    def settle(self, member: Hashable) -> None:
        """`member` will not submit anything in this run (the engine found nothing to change for it): no batch
        waits for it any longer, and one that was only waiting for it goes now."""
        ready = []
        with self._lock:
            for key, expected in self._expected.items():
                if member in expected:
                    expected.discard(member)
                    pending = self._pending.get(key)
                    if pending is not None and self._ready(key, pending):
                        ready.append((key, self._take(key)))
        for key, pending in ready:
            if pending is not None:
                self._run(key, pending, "complete")

    def submit(
        self, key: Hashable, item: Item, member: Hashable | None = None, caller: int | None = None
    ) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending()
            pending.items.append(item)
            pending.futures.append(future)
            if member is not None:
                pending.members.add(member)
            if caller is not None:
                pending.callers.add(caller)
            why = self._ready(key, pending)
            taken = self._take(key) if why else None
            if taken is None:
                self._restart_timer(key, pending)
        if taken is not None:
            self._run(key, taken, why or "ready")
        return future

    def call(self, key: Hashable, item: Item, member: Hashable | None = None, timeout: float | None = None) -> Any:
        """Submit and wait: returns this item's result or raises its exception."""
        [outcome] = self.call_many([(key, item, member)], timeout=timeout)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def call_many(
        self, requests: Sequence[tuple[Hashable, Item, Hashable | None]], timeout: float | None = None
    ) -> list[Any]:
        """Submit several items at once (they may join different batches) and wait for all of them.
        Returns each item's result, or its exception instance."""
        # Counted as waiting only once its items are in: a stalled batch must hold every counted caller's items.
        caller = next(self._callers)
        futures = [self.submit(key, item, member, caller) for key, item, member in requests]
        with self._lock:
            self._waiting += 1
        try:
            self.flush_if_stalled()
            outcomes: list[Any] = []
            for future in futures:
                try:
                    outcomes.append(future.result(timeout=timeout))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        finally:
            with self._lock:
                self._waiting -= 1

    def flush_if_stalled(self) -> None:
        """If as many callers wait here as can be served at once: send the largest batch, and every other batch
        that one of its callers also waits on."""
        with self._lock:
            if self._capacity is None or self._waiting < self._capacity or not self._pending:
                return
            largest = max(self._pending, key=lambda key: len(self._pending[key].items))
            freed = self._pending[largest].callers
            keys = [largest, *(k for k, p in self._pending.items() if k != largest and p.callers & freed)]
            taken = [(key, self._take(key)) for key in keys]
        for key, pending in taken:
            if pending is not None:
                self._run(key, pending, "stalled")

    def flush_all(self) -> None:
        """Send every pending batch now."""
        with self._lock:
            taken = [(key, self._take(key)) for key in list(self._pending)]
        for key, pending in taken:
            if pending is not None:
                self._run(key, pending, "flushed")

    # -- under the lock ---------------------------------------------------------------------------------
    def _ready(self, key: Hashable, pending: _Pending[Item]) -> str | None:
        if self._max_size is not None and len(pending.items) >= self._max_size:
            return "full"
        expected = self._expected.get(key)
        if expected and expected <= pending.members:
            return "complete"
        return None

    def _restart_timer(self, key: Hashable, pending: _Pending[Item]) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        outstanding = bool(self._expected.get(key, set()) - pending.members)
        window = self._expect_window if outstanding else self._window
        pending.timer = threading.Timer(window, self._flush_idle, args=(key, pending))
        pending.timer.daemon = True
        pending.timer.start()

    def _take(self, key: Hashable) -> _Pending[Item] | None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            if pending.timer is not None:
                pending.timer.cancel()
            expected = self._expected.get(key)
            if expected is not None:
                expected -= pending.members  # sent: later arrivals under this key are not waited for again
        return pending

    # -- sending --------------------------------------------------------------------------------------------
    def _flush_idle(self, key: Hashable, pending: _Pending[Item]) -> None:
        with self._lock:
            if self._pending.get(key) is not pending:
                return  # already sent
            taken = self._take(key)
        if taken is not None:
            self._run(key, taken, "idle")

    def _run(self, key: Hashable, pending: _Pending[Item], why: str) -> None:
        with self._lock:
            self.flushes.append((key, len(pending.items), why))
        try:
            results = self._results(key, pending.items)
        except Exception as exc:
            results = [exc] * len(pending.items)
        for future, result in zip(pending.futures, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _results(self, key: Hashable, items: list[Item]) -> list[Any]:
        try:
            results = list(self._flush_fn(key, items))
            if len(results) != len(items):
                raise RuntimeError(f"batch for {key!r} returned {len(results)} results for {len(items)} items")
            return results
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        # The bulk call failed as a whole: try each item alone, so only the bad one fails.
        return [self._results(key, [item])[0] for item in items]
