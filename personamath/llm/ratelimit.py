"""Client-side rate limiting: requests-per-minute and tokens-per-minute budgets.

Why client-side: a run with high concurrency otherwise learns its provider's limits
only through 429s, which waste time and count as retries. The bucket is shared across
threads and event loops (a threading lock, asyncio sleeps), so one engine used by
several shards in one process stays within one budget. Limits that must hold across
processes (several workers) belong to a shared limiter behind the same protocol.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

MAX_WAIT_STEP_S = 1.0  # re-check at least this often (a pause may be lifted early)


@runtime_checkable
class RateLimiter(Protocol):
    """What the engine calls around each request."""

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about `tokens` tokens may be sent."""

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token budget once the real usage is known."""

    def pause(self, seconds: float) -> None:
        """The server said 429: send nothing for `seconds`."""


class _Bucket:
    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (min(amount, self.capacity) - self.level) / self.rate)


class TokenBucketLimiter:
    """Two token buckets (requests, tokens) refilled continuously; bursts up to a minute."""

    def __init__(self, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _try(self, tokens: int) -> float:
        """Take the budget and return 0, or return how long to wait."""
        with self._lock:
            now = self._clock()
            if self._paused_until > now:
                return self._paused_until - now
            waits = [0.0]
            for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
                if bucket is not None:
                    bucket.refill(now)
                    waits.append(bucket.wait_for(amount))
            wait = max(waits)
            if wait > 0:
                return wait
            if self._requests is not None:
                self._requests.level -= 1
            if self._tokens is not None:
                self._tokens.level -= min(tokens, self._tokens.capacity)
            return 0.0

    async def acquire(self, tokens: int) -> None:
        while (wait := self._try(tokens)) > 0:
            await asyncio.sleep(min(wait, MAX_WAIT_STEP_S))

    def settle(self, estimated: int, actual: int) -> None:
        if self._tokens is None:
            return
        with self._lock:
            self._tokens.level = min(self._tokens.capacity,
                                     self._tokens.level + estimated - actual)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
