"""Per-channel send rate limits that are never exceeded, as Meta counts them.

Meta counts a request when it *arrives*, which is some unknown time after we start it and
before its answer comes back. A limiter that only spaces request *starts* one second apart
can be exceeded whenever latency varies: a slow request followed by fast ones lands more
than ``rate`` arrivals in one second at Meta (measured: dozens of violations a run at 50/s on
loopback). So a send holds its slot from the moment it starts until ``period`` after it
*finished*:

- a slot is taken by :meth:`SlidingWindowLimiter.reserve` (or :meth:`acquire`) and counted
  while the request is in flight;
- :meth:`release` records when the answer (or the failure) came back; the slot stays counted
  for ``period`` more seconds.

Guarantee: of two requests that arrive less than ``period`` apart, the one started first was
still counted when the other started (it finished no earlier than it arrived), so no window of
``period`` seconds ever sees more than ``rate`` arrivals, whatever the latency. The price is throughput: each slot cycles
once per ``period`` + round trip (80/s over a 200 ms round trip sends about 67/s). A small
``margin`` pads the period against clock-rate differences with Meta.

A request that got no answer (a timeout, a dropped connection) breaks the premise: it may
still reach Meta after we gave up on it, from a queue we cannot see (measured: a request
stuck in a full accept queue arrived after its 2 s timeout and a burst at 50/s broke the
limit). Its slot is therefore released with ``hold``, the request timeout, and stays
counted that much longer (:meth:`Lease.in_doubt`).

A restart forgets what the limiters counted, so the sends of the last ``period`` before it are
carried over (:meth:`LimiterRegistry.carry_over`, from the database): a channel that sent in that
time starts with every slot counted until ``period`` after its last send came back, and one with
a send in doubt (in flight when the process died) until ``period`` after the start. Conservative
(one send counts as many), and it costs only the first second after a restart on a channel that
was busy just before it. It assumes what the dead process had in flight arrived before it was
restarted.

Not thread-safe: one limiter is used from one event loop, where :meth:`reserve` and
:meth:`release` never await, so callers need no lock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

__all__ = ["Lease", "SlidingWindowLimiter", "LimiterRegistry", "MARGIN_SECONDS", "PERIOD_SECONDS"]

PERIOD_SECONDS = 1.0  # Meta's rate limits are per second
MARGIN_SECONDS = 0.02


class Lease:
    """One reserved slot, as :meth:`SlidingWindowLimiter.slot` hands it to the request."""

    __slots__ = ("hold",)

    def __init__(self) -> None:
        self.hold = 0.0

    def in_doubt(self, seconds: float) -> None:
        """The request got no answer and may still arrive at Meta within ``seconds``: keep
        its slot counted that much longer after it is released."""
        self.hold = max(self.hold, seconds)


class SlidingWindowLimiter:
    def __init__(
        self,
        rate: int,
        period: float = PERIOD_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = MARGIN_SECONDS,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        self.rate = rate
        self.period = period + margin
        self._clock = clock
        self._in_flight = 0
        self._finished: deque[float] = deque()  # when each counted slot's count starts to run out, earliest first
        self._closed_until = -math.inf  # no slot before this clock time (carried over a restart)
        self._released = asyncio.Event()

    def count_full_until(self, moment: float) -> None:
        """Count every slot as taken until clock time ``moment``: sends made before this
        limiter existed (a previous process's) that it cannot count one by one."""
        self._closed_until = max(self._closed_until, moment)

    @property
    def in_use(self) -> int:
        """Slots counted now: requests in flight plus those finished within ``period``."""
        now = self._clock()
        if now < self._closed_until:
            return self.rate
        self._expire(now)
        return self._in_flight + len(self._finished)

    def _expire(self, now: float) -> None:
        # The same arithmetic as the wait in reserve(): a refusal must never say "wait 0".
        while self._finished and self._finished[0] + self.period <= now:
            self._finished.popleft()

    def reserve(self) -> float:
        """Take a slot and return 0, or return how long to wait before asking again
        (``math.inf`` while every slot is held by a request in flight: wait for a release)."""
        now = self._clock()
        if now < self._closed_until:
            return self._closed_until - now
        self._expire(now)
        if self._in_flight + len(self._finished) < self.rate:
            self._in_flight += 1
            return 0.0
        if self._finished:
            return self._finished[0] + self.period - now
        return math.inf

    def release(self, hold: float = 0.0) -> None:
        """The request of a reserved slot has finished (whatever its outcome); its slot stays
        counted for ``period`` (plus ``hold`` for a request that may still arrive)."""
        if self._in_flight <= 0:
            raise RuntimeError("release() without a reserved slot")
        self._in_flight -= 1
        finished = self._clock() + hold
        if self._finished and finished < self._finished[-1]:
            bisect.insort(self._finished, finished)  # a held slot ends later: keep the order
        else:
            self._finished.append(finished)
        self._released.set()

    async def acquire(self) -> None:
        """Wait for a slot; pair with :meth:`release`, or use :meth:`slot`."""
        while (wait := self.reserve()) > 0:
            self._released.clear()
            # asyncio.timeout, not wait_for: see Sender._sleep_until_due (gh-86296).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wait) else wait):
                    await self._released.wait()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Lease]:
        """Hold a slot for the duration of one request."""
        await self.acquire()
        lease = Lease()
        try:
            yield lease
        finally:
            self.release(lease.hold)


class LimiterRegistry:
    """One limiter per channel. When a channel's rate changes, its limiter takes the new rate
    at once and keeps the sends it already counted: a fresh limiter would forget the last
    second and could let old and new sends together exceed either limit."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limiters: dict[int, SlidingWindowLimiter] = {}
        self._carried: dict[int, float] = {}  # channel id -> clock time its last earlier send came back

    def carry_over(self, channel_id: int, seconds_ago: float) -> None:
        """The channel's last request before this process came back ``seconds_ago`` (0: it
        may have been in flight until now): its limiter counts every slot as taken until
        ``period`` after that (the module docstring)."""
        finished = self._clock() - max(seconds_ago, 0.0)
        limiter = self._limiters.get(channel_id)
        if limiter is not None:
            limiter.count_full_until(finished + limiter.period)
        else:
            self._carried[channel_id] = max(self._carried.get(channel_id, -math.inf), finished)

    def for_channel(self, channel_id: int, rate: int) -> SlidingWindowLimiter:
        limiter = self._limiters.get(channel_id)
        if limiter is None:
            limiter = self._limiters[channel_id] = SlidingWindowLimiter(rate, clock=self._clock)
            finished = self._carried.pop(channel_id, None)
            if finished is not None:
                limiter.count_full_until(finished + limiter.period)
        elif limiter.rate != rate:
            if rate < 1:
                raise ValueError("rate must be at least 1")
            limiter.rate = rate
        return limiter
