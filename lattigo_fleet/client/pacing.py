"""Client-side pacing: an adaptive token bucket shared by every thread of one client.

Modelled on the AWS SDKs' "adaptive" retry mode: the bucket does nothing until the server first answers
429; from then on every request takes a token first, and the rate at which tokens come back adapts to what
the server allows:

* a 429 lowers the rate multiplicatively (``rate * decrease``, never below ``min_rate``), and pauses every
  thread until the ``Retry-After`` the server asked for. 429s answering requests sent before the last
  decrease do not lower it again (one storm of concurrent 429s is one signal, not N);
* every other answer lets the rate grow back with the time since that decrease (as CUBIC does, simplified):
  back to the rate of before the 429 over ``recovery`` seconds, then beyond it by ``probe`` of it per
  second, so that the client finds the server's limit again, or its new one after it is lifted.

With a ``ceiling`` (the job's share of the account's request budget, :mod:`lattigo_fleet.client.budget`) the
bucket is on from the first request, at the ceiling, and holds one token at most (no burst above it after a
pause: jobs that all pause and resume together must not all burst at once); a 429 still lowers the rate,
which then recovers up to the ceiling and never beyond.

Tokens are reserved, not polled: ``acquire`` takes its token at once (the bucket may go into debt) and
returns how long the caller must wait for it, so that a caller whose ``sleep`` is injected (tests) never
spins. A reservation made before a 429 lowered the rate is stale: ``epoch`` changes with every decrease,
and a caller whose epoch changed while it waited reserves again. The rate starts from the rate actually
measured when the first 429 arrives.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["AdaptiveRateLimiter"]


class AdaptiveRateLimiter:
    """A token bucket whose rate follows the server's 429s. Thread-safe; one per client."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        min_rate: float = 0.5,
        decrease: float = 0.7,
        recovery: float = 2.0,
        probe: float = 0.1,
        window: float = 2.0,
        ceiling: float | None = None,
    ) -> None:
        if ceiling is not None and not ceiling > 0:
            raise ValueError(f"ceiling must be a positive rate, not {ceiling!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self.ceiling = ceiling
        # A floor at or above the ceiling would keep a 429 from lowering the rate (or lift it over the ceiling):
        # under a low ceiling, the floor is one decrease below it.
        self.min_rate = min_rate if ceiling is None else min(min_rate, ceiling * decrease)
        self.decrease = decrease
        self.recovery = recovery
        self.probe = probe
        self._w_max = ceiling or 0.0  # the rate when the last 429 came (a ceiling: the rate it starts at)
        self._window = window
        self.enabled = ceiling is not None  # no pacing until the first 429, unless there is a ceiling
        self.rate = ceiling or 0.0  # tokens per second, once enabled
        self._tokens = 1.0 if ceiling is not None else 0.0  # a budgeted client's first request goes at once
        self._stamp = clock() if ceiling is not None else 0.0
        self._not_before = 0.0  # a Retry-After every thread honours
        self._last_decrease = float("-inf")
        self._sent: deque[float] = deque(maxlen=512)  # recent send times, to measure the rate
        self.throttles = 0  # 429s seen (for diagnostics and tests)
        self.epoch = 0  # bumped by every decrease: reservations made before it are stale

    def acquire(self) -> tuple[float, float]:
        """Take a token for one request: ``(seconds to wait before sending, the send time to report)``.

        Compare :attr:`epoch` before and after the wait: if it changed, the rate fell meanwhile and the
        caller should reserve again."""
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self.enabled:
                self._refill(now)
                self._tokens -= 1.0
                # Nothing goes before the Retry-After; after it, one token every 1/rate seconds.
                wait = max(0.0, self._not_before - now) + (-self._tokens / self.rate if self._tokens < 0 else 0.0)
            sent_at = now + wait
            self._sent.append(sent_at)
            return wait, sent_at

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A 429 answered the request sent at ``sent_at``: lower the rate and honour ``Retry-After``."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if retry_after is not None:
                self._not_before = max(self._not_before, now + retry_after)
            if self.enabled:
                # The time until now earned tokens (the waits for the tokens just spent): only the pause ahead
                # earns none. Moving the stamp without this kept a throttled request's token owed, so a caller
                # alone paid for two at its next retry.
                self._refill(now)
            self._stamp = max(self._stamp, now, self._not_before)  # no tokens accrue during the pause
            if sent_at < self._last_decrease:
                return  # sent before the last decrease: the same congestion, already answered
            measured = self._measured_rate(now)
            base = self.rate if self.enabled else measured
            self._w_max = self._capped(max(self.min_rate, min(base, measured if measured > 0 else base)))
            self.rate = max(self.min_rate, self._w_max * self.decrease)
            self.enabled = True
            # After a Retry-After pause the first request goes at once, the next ones paced; without one,
            # the very next request already waits its turn.
            self._tokens = 1.0 if retry_after else min(self._tokens, 0.0)
            self._last_decrease = now
            self.epoch += 1

    def on_success(self) -> None:
        """An answer that was not a 429: the server coped, so allow a little more."""
        with self._lock:
            if not self.enabled:
                return
            since = max(0.0, self._clock() - self._last_decrease)
            if since <= self.recovery:
                target = self._w_max * (self.decrease + (1 - self.decrease) * since / self.recovery)
            else:
                target = self._w_max * (1 + self.probe * (since - self.recovery))
            self.rate = self._capped(max(self.rate, target))

    def _capped(self, rate: float) -> float:
        return rate if self.ceiling is None else min(rate, self.ceiling)

    def _refill(self, now: float) -> None:
        capacity = max(1.0, self.rate) if self.ceiling is None else 1.0
        if now > self._stamp:
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def _measured_rate(self, now: float) -> float:
        recent = [t for t in self._sent if now - self._window <= t <= now]
        return len(recent) / self._window

    def __repr__(self) -> str:
        state = f"rate={self.rate:.2f}/s" if self.enabled else "unpaced"
        if self.ceiling is not None:
            state += f", ceiling={self.ceiling:g}/s"
        return f"AdaptiveRateLimiter({state}, throttles={self.throttles})"
