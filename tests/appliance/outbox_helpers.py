"""Helpers for the outbox tests: conversations with a chosen window, queued messages, the
outbox and message rows as the database holds them, and an app started on demand.

Everything here goes through the workspace's thread-safe gateway: the app under test runs on
another thread and event loop, so tests never touch its asyncio objects.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.app import create_app
from appliance.channels.events import ContactRef
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.outbox import store as outbox
from appliance.settings import Settings
from appliance.store.rows import one
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso, utcnow
from tests.helpers import connect_channel, wait_until
from tests.standins.graph_api import GraphStandIn

PAGE_ID = "112233445566778"
IG_ID = "17841455566677788"
PHONE_ID = "109876543210987"
WABA_ID = "203040506070809"

# channel type -> (asset id, a contact's external id, its wa_id)
CONTACTS = {
    "messenger": (PAGE_ID, "2460001112223334", None),
    "instagram": (IG_ID, "6120001112223334", None),
    "whatsapp": (PHONE_ID, "GE.40012345678901234567", "995555123456"),
}


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)


def connect(workspace: Workspace, channel_type: str, **extra: Any) -> int:
    asset = CONTACTS[channel_type][0]
    if channel_type == "whatsapp":
        extra.setdefault("waba_id", WABA_ID)
    return connect_channel(workspace, channel_type, asset, **extra)


def make_conversation(
    workspace: Workspace,
    channel_id: int,
    external_id: str,
    *,
    last_inbound_at: datetime | None,
    wa_id: str | None = None,
) -> int:
    """A contact on ``channel_id`` whose last window-opening event was at ``last_inbound_at``
    (None: never wrote), and its conversation; returns the conversation id."""

    def write(db: Any) -> int:
        now = iso_now()
        ref = ContactRef(external_id, wa_id=wa_id, bsuid=external_id if wa_id else None)
        contact_id, _ = contacts.upsert_contact(db, channel_id, ref, now)
        if last_inbound_at is not None:
            contacts.touch_inbound(db, contact_id, to_iso(last_inbound_at))
        return inbox.ensure_conversation(db, contact_id, channel_id, now)

    return workspace.gateway.write_sync(write)


def setup_conversation(
    workspace: Workspace, channel_type: str, *, last_inbound_at: datetime | None = None,
    **channel: Any,
) -> tuple[int, int]:
    """Connect ``channel_type`` and open a conversation with its standard contact, who last
    wrote at ``last_inbound_at`` (default: one minute ago). Returns (channel id, conversation id)."""
    channel_id = connect(workspace, channel_type, **channel)
    _, external_id, wa_id = CONTACTS[channel_type]
    when = last_inbound_at if last_inbound_at is not None else hours_ago(1 / 60)
    return channel_id, make_conversation(workspace, channel_id, external_id,
                                         last_inbound_at=when, wa_id=wa_id)


def queue(
    workspace: Workspace,
    conversation_id: int,
    text: str | None = "Hello",
    *,
    sent_by: str = "bot",
    payload: dict[str, Any] | None = None,
    kind: str = "text",
) -> int:
    """Queue one outbound message straight into the outbox; returns its message id."""
    return workspace.gateway.write_sync(
        lambda db: outbox.enqueue(
            db, conversation_id=conversation_id, kind=kind, text=text, payload=payload or {},
            sent_by=sent_by, user_id=None, messaging_type=None, tag=None, now=iso_now(),
        )
    )


def message(workspace: Workspace, message_id: int) -> dict[str, Any]:
    return workspace.gateway.read_sync(lambda db: inbox.get_message(db, message_id))


def outbox_row(workspace: Workspace, message_id: int) -> dict[str, Any] | None:
    return workspace.gateway.read_sync(
        lambda db: one(db, "SELECT * FROM outbox WHERE message_id = ?", [message_id])
    )


def channel_row(workspace: Workspace, channel_id: int) -> dict[str, Any]:
    return workspace.gateway.read_sync(
        lambda db: one(db, "SELECT * FROM channels WHERE id = ?", [channel_id])
    )


async def settled(workspace: Workspace, message_id: int, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until the message has left the outbox (sent or failed); returns its row."""

    async def gone() -> bool:
        return await workspace.gateway.read(
            lambda db: one(db, "SELECT 1 AS x FROM outbox WHERE message_id = ?", [message_id])
        ) is None

    await wait_until(gone, timeout=timeout)
    return message(workspace, message_id)


def bodies(graph_api: GraphStandIn, asset_id: str) -> list[Any]:
    return [r.json for r in graph_api.sends_to(asset_id)]


def messenger_echo(message_id: int, mid: str, *, psid: str = CONTACTS["messenger"][1],
                   text: str = "Hello", part: int = 0) -> bytes:
    """A Messenger ``message_echoes`` delivery of our own send, carrying our metadata."""
    ms = int(utcnow().timestamp() * 1000)
    return json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": ms, "messaging": [{
        "sender": {"id": PAGE_ID}, "recipient": {"id": psid}, "timestamp": ms,
        "message": {"mid": mid, "text": text, "is_echo": True, "app_id": 123456789,
                    "metadata": outbox.reference(message_id, part)},
    }]}]}).encode()


def whatsapp_status(message_id: int, wamid: str, status: str = "sent", *, part: int = 0) -> bytes:
    """A WhatsApp ``statuses`` delivery for our send, carrying ``biz_opaque_callback_data``."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
            "statuses": [{"id": wamid, "status": status,
                          "timestamp": str(int(utcnow().timestamp())),
                          "recipient_id": CONTACTS["whatsapp"][2],
                          "biz_opaque_callback_data": outbox.reference(message_id, part)}],
        }}]}]}).encode()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, workspace: Workspace) -> AsyncIterator[AsyncTestClient]:
    """Start the app now, as tests/conftest.py's ``client`` does, for tests that need other
    settings or that prepare the database first (as a crashed process would have left it:
    the lifespan runs the sender's crash recovery before anything else)."""
    app = create_app(settings, workspace=workspace, run_queue=False)
    async with AsyncTestClient(app=app) as client:
        yield client

