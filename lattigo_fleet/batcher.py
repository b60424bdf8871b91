"""Merge compatible requests from concurrent callers into one bulk call.

Modelled on the request batcher of Terraform's Google provider: the first request for a key opens a short
window; requests for the same key that arrive during it join the batch; when the window closes (or the batch
is full) one bulk call is sent and each caller gets its own item's result.

Why a window and not "wait for everyone": Pulumi's Python dynamic-provider server runs at most 4 operations at
once (a thread pool of 4), and the engine hands it the next resource only when one finishes, so a batch can
only ever hold what is concurrently in flight. The window is what lets those few meet; and once `saturation`
callers (the server's worker count) are all waiting here, nothing else can arrive, so the batch goes at once
instead of waiting out the window. See README "Batching" for the measured effect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
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
    futures: list[Future] = field(default_factory=list)
    timer: threading.Timer | None = None


class Batcher(Generic[Item]):
    def __init__(
        self, flush: FlushFn, *, window: float = 0.2, max_size: int = 500, saturation: int | None = None
    ) -> None:
        self._flush_fn = flush
        self._window = window
        self._max_size = max_size
        self._saturation = saturation
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending[Item]] = {}
        self._waiting = 0  # callers blocked in call/call_many: when it reaches `saturation`, send at once

    def submit(self, key: Hashable, item: Item) -> Future:
        future: Future = Future()
        flush_now = None
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending()
                pending.timer = threading.Timer(self._window, self._flush_key, args=(key,))
                pending.timer.daemon = True
                pending.timer.start()
            pending.items.append(item)
            pending.futures.append(future)
            if len(pending.items) >= self._max_size:
                flush_now = self._take(key)
        if flush_now is not None:
            self._run(key, flush_now)
        return future

    def call(self, key: Hashable, item: Item, timeout: float | None = None) -> Any:
        """Submit and wait: returns this item's result or raises its exception."""
        [outcome] = self.call_many([(key, item)], timeout=timeout)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def call_many(self, requests: Sequence[tuple[Hashable, Item]], timeout: float | None = None) -> list[Any]:
        """Submit several items at once (they may join different batches) and wait for all of them.
        Returns each item's result, or its exception instance."""
        with self._lock:
            self._waiting += 1
            saturated = self._saturation is not None and self._waiting >= self._saturation
        try:
            futures = [self.submit(key, item) for key, item in requests]
            if saturated:
                self.flush_all()
            outcomes: list[Any] = []
            for future in futures:
                try:
                    outcomes.append(future.result(timeout=timeout))
                except Exception as exc:  # noqa: BLE001 - handed back to the caller, per item
                    outcomes.append(exc)
            return outcomes
        finally:
            with self._lock:
                self._waiting -= 1

    def flush_all(self) -> None:
        """Send every pending batch now."""
        with self._lock:
            taken = [(key, self._take(key)) for key in list(self._pending)]
        for key, pending in taken:
            if pending is not None:
                self._run(key, pending)

    def _take(self, key: Hashable) -> _Pending[Item] | None:
        pending = self._pending.pop(key, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()
        return pending

    def _flush_key(self, key: Hashable) -> None:
        with self._lock:
            pending = self._take(key)
        if pending is not None:
            self._run(key, pending)

    def _run(self, key: Hashable, pending: _Pending[Item]) -> None:
        try:
            results = list(self._flush_fn(key, pending.items))
            if len(results) != len(pending.items):
                raise RuntimeError(f"batch for {key!r} returned {len(results)} results for {len(pending.items)} items")
        except Exception as exc:  # the whole batch failed: every caller sees the same error
            for future in pending.futures:
                future.set_exception(exc)
            return
        for future, result in zip(pending.futures, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
