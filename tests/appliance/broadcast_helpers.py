"""Helpers for the broadcast tests: contacts with chosen traits, the template catalogue on the
Graph stand-in, broadcasts created and driven through the API, and their rows.

Contacts are written through the store functions (as ingest writes them), everything about a
broadcast goes through ``/api/v1``. The app runs on another thread and event loop: tests watch
it through the thread-safe gateway and HTTP only.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.channels.events import ContactRef
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.store.rows import many, one
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso, utcnow
from tests.helpers import connect_channel, wait_until
from tests.standins.graph_api import GraphStandIn

PHONE_ID = "109876543210987"
WABA_ID = "203040506070809"
PAGE_ID = "112233445566778"
IG_ID = "17841455566677788"
ASSETS = {"whatsapp": PHONE_ID, "messenger": PAGE_ID, "instagram": IG_ID}

SPRING_SALE = {
    "id": "9001", "name": "spring_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Spring at {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, everything is {{2}} off until Sunday."},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Show me"},
                                        {"type": "URL", "text": "Shop", "url": "https://shop.example/"}]},
    ],
}
ORDER_READY = {
    "id": "9002", "name": "order_ready", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
    "parameter_format": "NAMED",
    "components": [{"type": "BODY", "text": "Your order {{order}} is ready, {{first_name}}."}],
}


def connect(workspace: Workspace, channel_type: str, **extra: Any) -> int:
    if channel_type == "whatsapp":
        extra.setdefault("waba_id", WABA_ID)
    return connect_channel(workspace, channel_type, ASSETS[channel_type], **extra)


def make_contact(
    workspace: Workspace,
    channel_id: int,
    external_id: str,
    *,
    wa_id: str | None = None,
    hours_ago: float | None = 1.0,
    tags: tuple[str, ...] = (),
    fields: dict[str, Any] | None = None,
    subscribed: bool = True,
    opted_out: bool = False,
    name: str | None = None,
) -> int:
    """A contact (and its conversation) who last wrote ``hours_ago`` hours ago (None: never)."""

    def write(db: Any) -> int:
        now = iso_now()
        contact_id, _ = contacts.upsert_contact(db, channel_id, ContactRef(external_id, name=name, wa_id=wa_id), now)
        if hours_ago is not None:
            contacts.touch_inbound(db, contact_id, to_iso(utcnow() - timedelta(hours=hours_ago)))
        inbox.ensure_conversation(db, contact_id, channel_id, now)
        for tag in tags:
            contacts.add_tag(db, contact_id, tag, now)
        db.execute("UPDATE contacts SET fields = ?, subscribed = ?, marketing_opt_out = ? WHERE id = ?",
                   [json.dumps(fields or {}), int(subscribed), int(opted_out), contact_id])
        return contact_id

    return workspace.gateway.write_sync(write)


def wa_contact(workspace: Workspace, channel_id: int, n: int, **traits: Any) -> int:
    wa_id = f"99555{n:07d}"
    return make_contact(workspace, channel_id, wa_id, wa_id=wa_id, **traits)


def catalogue(graph: GraphStandIn, *templates: dict[str, Any], waba_id: str = WABA_ID) -> None:
    graph.templates[waba_id] = [dict(t) for t in templates]


async def sync_templates(client: AsyncTestClient, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/api/v1/templates/sync", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def create(client: AsyncTestClient, auth: dict[str, str], message: dict[str, Any],
                 audience: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"name": "Spring sale", "message": message, **({"audience": audience} if audience else {}), **extra}
    response = await client.post("/api/v1/broadcasts", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def act(client: AsyncTestClient, auth: dict[str, str], broadcast_id: str, action: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/broadcasts/{broadcast_id}/{action}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def fetch(client: AsyncTestClient, auth: dict[str, str], broadcast_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def until_status(client: AsyncTestClient, auth: dict[str, str], broadcast_id: str, status: str,
                       timeout: float = 15.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await fetch(client, auth, broadcast_id))
        return seen["status"] == status

    await wait_until(reached, timeout=timeout)
    return seen


async def send(client: AsyncTestClient, auth: dict[str, str], message: dict[str, Any],
               audience: dict[str, Any] | None = None, timeout: float = 15.0) -> dict[str, Any]:
    """Create, start and wait until completed; returns the final broadcast."""
    created = await create(client, auth, message, audience)
    await act(client, auth, created["id"], "start")
    return await until_status(client, auth, created["id"], "completed", timeout)


def recipients(workspace: Workspace, broadcast_id: str) -> dict[int, dict[str, Any]]:
    """contact id -> its recipient row."""
    rows = workspace.gateway.read_sync(lambda db: many(
        db, "SELECT * FROM broadcast_recipients WHERE broadcast_id = ? ORDER BY contact_id", [int(broadcast_id)]))
    return {r["contact_id"]: r for r in rows}


def broadcast_row(workspace: Workspace, broadcast_id: str) -> dict[str, Any]:
    row = workspace.gateway.read_sync(lambda db: one(db, "SELECT * FROM broadcasts WHERE id = ?", [int(broadcast_id)]))
    assert row is not None
    return row


def sent_to(graph: GraphStandIn, asset: str = PHONE_ID) -> list[str]:
    """Recipients of the sends to ``asset`` (WhatsApp ``to``, Messenger ``recipient.id``), in order."""
    def recipient(body: dict[str, Any]) -> str:
        if body.get("messaging_product") == "whatsapp":
            return body.get("to") or body["recipient"]
        return body["recipient"]["id"]

    return [recipient(r.json) for r in graph.sends_to(asset)]


def at(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
