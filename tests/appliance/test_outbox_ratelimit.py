"""appliance.outbox.ratelimit: the limit holds for every window, counted on arrival."""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time

import pytest

from appliance.outbox.ratelimit import MARGIN_SECONDS, LimiterRegistry, SlidingWindowLimiter

PERIOD = 1.0 + MARGIN_SECONDS


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in one half-open window ``[t, t + window)``."""
    times = sorted(times)
    best, low = 0, 0
    for high, t in enumerate(times):
        while t - times[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


def simulate(
    rate: int, sends: int, seed: int, arrival: str, *, latency: float = 0.3,
    gaps: tuple[float, ...] = (0.0, 0.0, 0.001, 0.01),
) -> tuple[list[float], list[float]]:
    """Drive a limiter on a fake clock as the sender does: reserve, send (a random latency up
    to ``latency``), release; callers come ``gaps`` apart. Returns the start times and when
    each request reached 'Meta': at its start, at its end, or anywhere between (``arrival``);
    the limit must hold whichever."""
    rng = random.Random(seed)
    clock = FakeClock()
    limiter = SlidingWindowLimiter(rate, clock=clock)
    finishing: list[float] = []  # heap of the end times of requests in flight
    starts: list[float] = []
    arrivals: list[float] = []
    while len(starts) < sends or finishing:
        while finishing and finishing[0] <= clock.now:
            heapq.heappop(finishing)
            limiter.release()
        wait = math.inf
        if len(starts) < sends:
            wait = limiter.reserve()
            if wait == 0:
                start, end = clock.now, clock.now + rng.uniform(0.0, latency)
                starts.append(start)
                arrivals.append({"start": start, "end": end, "random": rng.uniform(start, end)}[arrival])
                heapq.heappush(finishing, end)
                clock.advance(rng.choice(gaps))
                continue
        next_end = finishing[0] if finishing else math.inf
        clock.advance(min(wait, next_end - clock.now))
    return starts, arrivals


@pytest.mark.parametrize("arrival", ["start", "end", "random"])
@pytest.mark.parametrize(("rate", "seed"), [(1, 1), (3, 2), (20, 3), (80, 4), (300, 5)])
def test_never_more_than_rate_arrivals_in_any_second(rate: int, seed: int, arrival: str) -> None:
    _, arrivals = simulate(rate, sends=rate * 5 + 7, seed=seed, arrival=arrival)
    assert max_in_any_window(arrivals) <= rate


@pytest.mark.parametrize("rate", [1, 5, 50])
def test_instant_requests_go_at_the_full_rate(rate: int) -> None:
    starts, _ = simulate(rate, sends=3 * rate, seed=0, arrival="start", latency=0.0, gaps=(0.0,))
    offsets = [round(t - starts[0], 6) for t in starts]
    assert offsets == [0.0] * rate + [round(PERIOD, 6)] * rate + [round(2 * PERIOD, 6)] * rate


def test_rate_slots_are_granted_at_once() -> None:
    limiter = SlidingWindowLimiter(3, clock=FakeClock())
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.in_use == 3


def test_while_every_slot_is_in_flight_the_wait_is_unbounded() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, clock=clock)
    limiter.reserve(), limiter.reserve()
    clock.advance(5.0)  # in flight for a long time: still counted
    assert limiter.reserve() == math.inf


def test_wait_runs_until_the_oldest_finished_request_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, clock=clock)
    for _ in range(3):
        limiter.reserve()
    for _ in range(3):
        clock.advance(0.1)
        limiter.release()  # finished at +0.1, +0.2, +0.3
    clock.advance(0.2)  # now +0.5
    assert limiter.reserve() == pytest.approx(0.1 + PERIOD - 0.5)


def test_a_slot_frees_exactly_one_period_after_its_request_finished() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, clock=clock)
    limiter.reserve()
    clock.advance(0.25)
    limiter.release()
    clock.advance(PERIOD - 1e-6)
    assert limiter.reserve() > 0
    clock.advance(1e-6)
    assert limiter.reserve() == 0.0


def test_a_request_in_doubt_keeps_its_slot_for_the_hold_too() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, clock=clock)
    limiter.reserve()
    clock.advance(2.0)  # timed out: it may still arrive within the next 2 s
    limiter.release(hold=2.0)
    clock.advance(2.0 + PERIOD - 1e-6)
    assert limiter.reserve() == pytest.approx(1e-6)
    clock.advance(1e-6)
    assert limiter.reserve() == 0.0


def test_a_held_slot_does_not_delay_slots_that_free_sooner() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, clock=clock)
    limiter.reserve()
    limiter.reserve()
    limiter.release(hold=5.0)  # in doubt: counted until 5 s + one period from now
    clock.advance(0.5)
    limiter.release()  # answered later, but frees first
    assert limiter.reserve() == pytest.approx(PERIOD)
    clock.advance(PERIOD)
    assert (limiter.reserve(), limiter.reserve()) == (0.0, pytest.approx(5.0 - 0.5))


async def test_a_lease_marked_in_doubt_is_released_with_its_hold() -> None:
    limiter = SlidingWindowLimiter(1, period=0.1, margin=0.0)
    async with limiter.slot() as lease:
        lease.in_doubt(0.3)
    assert limiter.reserve() == pytest.approx(0.4, abs=0.05)


def test_a_refused_reserve_takes_no_slot() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, clock=clock)
    limiter.reserve()
    limiter.release()
    limiter.reserve()  # refused: the finished request still counts
    assert limiter.in_use == 1


def test_release_without_a_reserved_slot_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        SlidingWindowLimiter(1, clock=FakeClock()).release()


@pytest.mark.parametrize("rate", [0, -1])
def test_rate_must_be_positive(rate: int) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(rate)


# --- acquire / slot on a real event loop -----------------------------------------------------

async def test_acquire_waits_for_a_release_then_one_period() -> None:
    limiter = SlidingWindowLimiter(1, period=0.2, margin=0.0)
    await limiter.acquire()
    started = time.monotonic()

    async def finish_later() -> None:
        await asyncio.sleep(0.1)
        limiter.release()

    releaser = asyncio.create_task(finish_later())
    await asyncio.wait_for(limiter.acquire(), timeout=2.0)
    assert time.monotonic() - started >= 0.1 + 0.2 - 0.01
    await releaser


async def test_slot_is_released_when_the_request_raises() -> None:
    limiter = SlidingWindowLimiter(1, period=0.2, margin=0.0)
    with pytest.raises(ConnectionError):
        async with limiter.slot():
            raise ConnectionError
    assert limiter.reserve() > 0  # finished, so counted for one period, not in flight
    await asyncio.sleep(0.21)
    assert limiter.reserve() == 0.0


# --- the registry ----------------------------------------------------------------------------

def test_registry_keeps_one_limiter_per_channel() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    assert registry.for_channel(1, 80) is registry.for_channel(1, 80)
    assert registry.for_channel(1, 80) is not registry.for_channel(2, 80)


def test_registry_applies_a_new_rate_at_once() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    registry.for_channel(1, 80)
    assert registry.for_channel(1, 50).rate == 50


def test_a_lower_rate_counts_the_sends_already_made() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    limiter = registry.for_channel(1, 5)
    for _ in range(4):
        limiter.reserve()
        limiter.release()
    assert registry.for_channel(1, 3).reserve() > 0  # 4 sends in the last second > 3


def test_a_higher_rate_grants_only_the_difference() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    limiter = registry.for_channel(1, 2)
    limiter.reserve(), limiter.reserve()
    raised = registry.for_channel(1, 4)
    assert [raised.reserve() for _ in range(3)][:2] == [0.0, 0.0]
    assert raised.in_use == 4


# --- carried over a restart -------------------------------------------------------------------

def test_a_send_carried_over_counts_every_slot_until_a_period_after_it_came_back() -> None:
    clock = FakeClock()
    registry = LimiterRegistry(clock=clock)
    registry.carry_over(1, seconds_ago=0.25)
    limiter = registry.for_channel(1, 80)
    assert (limiter.in_use, limiter.reserve()) == (80, pytest.approx(PERIOD - 0.25))
    clock.advance(PERIOD - 0.25)
    assert (limiter.in_use, limiter.reserve()) == (0, 0.0)


def test_a_send_in_doubt_counts_every_slot_for_a_period_from_now() -> None:
    clock = FakeClock()
    registry = LimiterRegistry(clock=clock)
    limiter = registry.for_channel(1, 80)  # carried over to a limiter that already exists
    registry.carry_over(1, seconds_ago=0.0)
    assert limiter.reserve() == pytest.approx(PERIOD)


def test_a_send_more_than_a_period_ago_holds_nothing() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    registry.carry_over(1, seconds_ago=PERIOD + 0.5)
    assert [registry.for_channel(1, 2).reserve() for _ in range(2)] == [0.0, 0.0]


def test_a_carried_over_channel_holds_no_other() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    registry.carry_over(1, seconds_ago=0.0)
    assert (registry.for_channel(1, 80).reserve() > 0, registry.for_channel(2, 80).reserve()) == (True, 0.0)


async def test_a_waiter_cancelled_just_as_a_slot_is_released_stays_cancelled() -> None:
    # asyncio.wait_for on Python 3.11 would swallow this cancellation (gh-86296) and go on
    # to take a slot for a caller that is gone.
    limiter = SlidingWindowLimiter(2, period=0.1, margin=0.0)
    await limiter.acquire()
    limiter.release()  # counted for one period: the waiter below waits a bounded time
    await limiter.acquire()  # in flight
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    limiter.release()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
