"""The broadcast worker: one asyncio task in the web process that moves broadcasts along.

Each round (every :data:`TICK_SECONDS` while something is sending, else when the next
scheduled broadcast is due, at the latest every :data:`IDLE_SECONDS`, or at once when woken
by the API) it:

1. starts the scheduled broadcasts whose ``send_at`` has come;
2. for every sending broadcast: pauses it if its template stopped being sendable at Meta;
   materialises its audience (chunks of :data:`CHUNK` contact ids, one transaction each);
   decides and queues recipients in batches of :data:`BATCH` while fewer than ``backlog`` of
   its messages wait in the outbox; wakes the sender; marks it completed when nothing is left.

The backlog is :data:`BACKLOG_SECONDS` of the fastest connected channel's rate (at least
:data:`MIN_BACKLOG`, at most :data:`MAX_BACKLOG`). It is what the sender can take ahead of
Meta's limit: enough to keep the limiter busy between two rounds, and small enough that an
agent reply on the same channel waits at most about that long for a slot, and that a pause
stops the broadcast within about that long (the sender finishes what it already took).

All state is in the database (appliance/broadcasts/recipients.py), so a restart, even after
SIGKILL, carries on where the last committed transaction left off. The rate itself is the
sender's business: its per-channel limiter (appliance/outbox/ratelimit.py) is never exceeded,
whatever the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import weakref
from typing import Any

from appliance.broadcasts import recipients, service, store
from appliance.broadcasts.audience import compile_where
from appliance.runtime import Runtime
from appliance.store.rows import many
from appliance.timeutil import from_iso, iso_now, utcnow
from appliance.workspace import store as workspace

__all__ = ["BroadcastWorker", "worker_for", "TICK_SECONDS", "IDLE_SECONDS"]

log = logging.getLogger("aat.broadcasts")

TICK_SECONDS = 0.1
IDLE_SECONDS = 5.0
ERROR_PAUSE_SECONDS = 1.0
CHUNK = 5000
BATCH = 200
MAX_BATCHES = 10
BACKLOG_SECONDS = 0.5
MIN_BACKLOG = 5
MAX_BACKLOG = 1000

_WORKERS: weakref.WeakKeyDictionary[Runtime, BroadcastWorker] = weakref.WeakKeyDictionary()


def worker_for(runtime: Runtime) -> BroadcastWorker:
    """The runtime's worker (created on first use)."""
    worker = _WORKERS.get(runtime)
    if worker is None:
        worker = _WORKERS[runtime] = BroadcastWorker(runtime)
    return worker


def _channel_rates(db: Any) -> list[dict[str, Any]]:
    return many(db, "SELECT type, rate_limit FROM channels WHERE status = 'active'")


class BroadcastWorker:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look now (a broadcast was started or resumed). Safe from any thread."""
        loop = self._loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if loop is None or current is loop:
            self._wake.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Rounds until cancelled; an unexpected error is logged and the loop carries on."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                timeout = TICK_SECONDS if await self.round() else await self._idle_timeout()
            except Exception:  # noqa: BLE001 - the worker must never die quietly
                log.exception("broadcast round failed")
                timeout = ERROR_PAUSE_SECONDS
            # asyncio.timeout, not wait_for: see Sender._sleep_until_due (gh-86296).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _idle_timeout(self) -> float:
        next_at = await self._runtime.db.read(store.next_scheduled_at)
        if next_at is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.0, (from_iso(next_at) - utcnow()).total_seconds()))

    def _backlog(self, channels: list[dict[str, Any]]) -> int:
        settings = self._runtime.settings
        fastest = max((c["rate_limit"] or settings.rate_limit_for(c["type"]) for c in channels), default=0)
        return max(MIN_BACKLOG, min(MAX_BACKLOG, math.ceil(fastest * BACKLOG_SECONDS)))

    async def round(self) -> bool:
        """One pass over every broadcast; True while any is sending."""
        db = self._runtime.db
        started = await db.write(store.start_due, iso_now())
        for broadcast_id in started:
            log.info("broadcast started", extra={"broadcast_id": broadcast_id})
        active = await db.read(store.sending)
        if not active:
            return False
        backlog = self._backlog(await db.read(_channel_rates))
        name = (await db.read(workspace.read))["name"]
        for row in active:
            await self._advance(row, backlog, name)
        return True

    async def _advance(self, row: dict[str, Any], backlog: int, workspace_name: str) -> None:
        db = self._runtime.db
        broadcast_id = row["id"]
        if "template" in json.loads(row["message"]) and await db.read(service.template_problem_of, broadcast_id):
            reason = await db.write(service.check_template, broadcast_id, iso_now())
            if reason:
                log.warning("broadcast paused: template not sendable", extra={"broadcast_id": broadcast_id})
                return
        if not row["materialized"]:
            where, params = compile_where(json.loads(row["audience"]), from_iso(row["started_at"]))
            while not await db.write(recipients.materialize, broadcast_id, where, params, chunk=CHUNK):
                pass
        queued = 0
        result: dict[str, Any] = {"more": False, "full": False}
        for _ in range(MAX_BATCHES):
            result = await db.write(recipients.advance, broadcast_id, iso_now(), backlog=backlog, batch=BATCH,
                                    workspace_name=workspace_name)
            queued += result["queued"]
            if not result["more"] or result["full"]:
                break
        if queued:
            self._runtime.wake_sender()
        if result["more"] or result["full"]:
            return
        now = await db.read(store.get, broadcast_id)
        if now["materialized"] and not now["n_pending"] and not now["n_queued"] and await db.write(
            store.complete_if_done, broadcast_id, iso_now()
        ):
            log.info("broadcast completed", extra={"broadcast_id": broadcast_id})
