"""Durable time for flows: huey wakes runs at their timers; the database stays the truth.

Each timer is a row in ``flow_timers``; scheduling it also puts a huey task with that row's
token (an id, nothing else) at its due time. Whichever comes first, the scheduled task or the
minutely sweep, claims the row (``take_timer``) and the run continues once. After SIGKILL,
huey's SQLite queue still holds the scheduled tasks, and the sweep catches any it lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from huey import SqliteHuey, crontab

from appliance.flows import runner, store
from appliance.flows.runner import Followups
from appliance.runtime import Runtime
from appliance.timeutil import from_iso, iso_now

__all__ = ["register", "fire_due_timers", "FollowupDispatcher"]

log = logging.getLogger("aat.flows")


def fire_due_timers(runtime: Runtime, due_before: str | None = None) -> dict[str, Any]:
    """Fire every timer due by ``due_before`` (default: now). The sweep; tests pass a later
    time to make time pass."""
    due_before = due_before or iso_now()
    tokens = runtime.db.read_sync(store.due_timers, due_before)
    for token in tokens:
        fire_one(runtime, token, due_before)
    return {"fired": len(tokens)}


def fire_one(runtime: Runtime, token: str, due_before: str | None = None) -> None:
    followups = runtime.db.write_sync(
        runner.fire_timer, token, iso_now(), seed=random.randrange(2**31),
        executors=runtime.call_kinds(), due_before=due_before,
    )
    runtime.followups.dispatch(followups)


class FollowupDispatcher:
    """Does what a committed transaction asked for, from whichever thread committed it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.schedule_timer: Any = None  # set by register(): huey's scheduled task
        self.loop: asyncio.AbstractEventLoop | None = None

    def dispatch(self, followups: Followups) -> None:
        if self.schedule_timer is not None:
            for token, due in followups.timers:
                self.schedule_timer.schedule(args=(token,), eta=from_iso(due))
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if followups.queued_messages:
            loop.call_soon_threadsafe(self._runtime.wake_sender)
        for run_id, call in followups.calls:
            loop.call_soon_threadsafe(self._runtime.start_call, run_id, call)


def register(huey: SqliteHuey, runtime: Runtime) -> None:
    @huey.task(name="flows.fire_timer")
    def fire_timer_task(token: str) -> None:
        fire_one(runtime, token)

    @huey.periodic_task(crontab(minute="*"), name="flows.sweep_timers")
    def sweep_timers_task() -> dict[str, Any]:
        return fire_due_timers(runtime)

    runtime.followups.schedule_timer = fire_timer_task
