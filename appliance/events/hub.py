"""Live updates: one reader of the ``events`` table fanning out to every open browser.

The gateway calls :meth:`EventHub.wake` after each commit (from its writer thread); the hub's
task then reads the new events once, renders each into what the page needs (the message or
conversation as the API shows it, read once for everybody), and puts it on every subscriber's
queue. Wake-ups are coalesced (at most one read per ``MIN_GAP`` seconds), so a burst of
webhooks costs a handful of reads, not one per commit. A subscriber that falls more than
``QUEUE_SIZE`` events behind is dropped; its browser reconnects with ``Last-Event-ID`` and
catches up from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from appliance.events import store

if TYPE_CHECKING:
    from appliance.runtime import Runtime

__all__ = ["EventHub", "LiveEvent", "render_events"]

log = logging.getLogger("aat.events")

MIN_GAP = 0.02
QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: int
    type: str
    data: str  # JSON


def render_events(db: Database, rows: list[dict[str, Any]]) -> list[LiveEvent]:
    """Each event with the resource it is about, as the JSON API would show it."""
    from appliance.inbox import store as inbox
    from appliance.inbox.routes import public_conversation

    rendered = []
    for row in rows:
        body: dict[str, Any] = {"type": row["type"], "at": row["created_at"]}
        for key in ("conversation_id", "contact_id", "message_id", "flow_id", "run_id", "user_id"):
            if row[key] is not None:
                body[key] = str(row[key])
        try:
            if row["type"].startswith("message.") and row["message_id"] is not None:
                body["message"] = inbox.public_message(inbox.get_message(db, row["message_id"]))
            elif row["type"].startswith("conversation.") and row["conversation_id"] is not None:
                body["conversation"] = public_conversation(inbox.get_conversation(db, row["conversation_id"]))
        except Exception:  # noqa: BLE001 - erased or gone since: the event still tells what happened
            pass
        rendered.append(LiveEvent(row["id"], row["type"], json.dumps(body, ensure_ascii=False)))
    return rendered


def _read(db: Database, after_id: int) -> list[LiveEvent]:
    return render_events(db, store.since(db, after_id, 500))


class EventHub:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._subscribers: set[asyncio.Queue[LiveEvent | None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_id = 0

    def wake(self) -> None:
        """Thread-safe: something committed; maybe events."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._subscribers:
            loop.call_soon_threadsafe(self._wake.set)

    def subscribe(self) -> asyncio.Queue[LiveEvent | None]:
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LiveEvent | None]) -> None:
        self._subscribers.discard(queue)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.last_id = await self._runtime.db.read(store.latest_id)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._wake.wait()
            self._wake.clear()
            if not self._subscribers:
                self.last_id = await self._runtime.db.read(store.latest_id)
                continue
            try:
                events = await self._runtime.db.read(_read, self.last_id)
            except Exception:  # noqa: BLE001 - keep serving; try again on the next wake
                log.exception("reading live events failed")
                await asyncio.sleep(1)
                continue
            for event in events:
                self.last_id = event.id
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(event)
                    except asyncio.QueueFull:
                        self._subscribers.discard(queue)
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.get_nowait()
                            queue.put_nowait(None)  # tells the stream to end; the browser reconnects
            if len(events) == 500:
                self._wake.set()
            await asyncio.sleep(MIN_GAP)
