"""``GET /api/v1/events``: Server-Sent Events for the web app (and anyone with a token).

Each event is ``id: <event id>``, ``event: <type>`` (``message.created``, ``message.updated``,
``conversation.updated`` ...), ``data: <JSON>`` carrying the ids and, for message and
conversation events, the resource as the JSON API shows it. A reconnecting browser sends
``Last-Event-ID`` and first gets what it missed (up to a week back). A comment line every 15 s
keeps proxies from closing an idle stream. The stream ends after ``duration`` seconds (default
300): the browser reconnects at once, and the reconnection re-checks the session, so a
signed-out or expired session stops receiving. ``duration=0`` answers with only what was missed.
"""

import asyncio

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from appliance.events import store
from appliance.events.hub import render_events
from appliance.team.auth import Principal, requires
from appliance.web.api import RuntimeDep

__all__ = ["live_events"]

PING_SECONDS = 15.0


def _message(event: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=event.data, event=event.type, id=event.id)


@get("/events", guards=[requires("agent")])
async def live_events(
    request: Request[Principal, Any, Any], runtime: RuntimeDep,
    duration: Annotated[float, QueryParameter(ge=0, le=3600)] = 300.0,
) -> ServerSentEvent:
    """Live updates: new and changed messages and conversations, contact changes."""
    header = request.headers.get("last-event-id", "")
    resume_from = int(header) if header.isdigit() and len(header) < 19 else None
    hub = runtime.hub
    queue = hub.subscribe()

    loop = asyncio.get_running_loop()

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        sent = hub.last_id if resume_from is None else resume_from
        try:
            yield ServerSentEventMessage(comment="connected", retry=3000)
            if resume_from is not None:
                missed = await runtime.db.read(lambda db: render_events(db, store.since(db, resume_from, 1000)))
                for event in missed:
                    sent = event.id
                    yield _message(event)
            deadline = loop.time() + duration
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(PING_SECONDS, left)):
                        event = await queue.get()
                except TimeoutError:
                    if deadline - loop.time() > 0:
                        yield ServerSentEventMessage(comment="ping")
                    continue
                if event is None:
                    return  # fell behind: the browser reconnects with Last-Event-ID
                if event.id > sent:
                    sent = event.id
                    yield _message(event)
        finally:
            hub.unsubscribe(queue)

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


