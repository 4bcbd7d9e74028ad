"""Per-channel send rate limits that are never exceeded.

A sliding-window log: at most ``rate`` sends start within any window of ``period`` seconds.
A token bucket would allow up to twice the rate across a refill boundary; Meta counts per
number / per Page, so the guarantee must hold for every window. The window is padded by a
small margin so that the requests' arrival at Meta, a few milliseconds after they start, still
respects the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["SlidingWindowLimiter", "LimiterRegistry"]

MARGIN_SECONDS = 0.02


class SlidingWindowLimiter:
    def __init__(
        self,
        rate: int,
        period: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = MARGIN_SECONDS,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        self.rate = rate
        self.period = period + margin
        self._clock = clock
        self._starts: deque[float] = deque()

    def reserve(self) -> float:
        """Take a slot now and return 0, or return how many seconds until one frees up."""
        now = self._clock()
        while self._starts and now - self._starts[0] >= self.period:
            self._starts.popleft()
        if len(self._starts) < self.rate:
            self._starts.append(now)
            return 0.0
        return self._starts[0] + self.period - now

    async def acquire(self) -> None:
        """Wait for a slot. Callers on one event loop need no lock: reserve() never awaits."""
        while (wait := self.reserve()) > 0:
            await asyncio.sleep(wait)


class LimiterRegistry:
    """One limiter per channel, rebuilt when the channel's rate changes."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limiters: dict[int, SlidingWindowLimiter] = {}

    def for_channel(self, channel_id: int, rate: int) -> SlidingWindowLimiter:
        limiter = self._limiters.get(channel_id)
        if limiter is None or limiter.rate != rate:
            limiter = self._limiters[channel_id] = SlidingWindowLimiter(rate, clock=self._clock)
        return limiter
