"""Helpers of the sender tests: expected bodies, queueing a message, the API token, replies."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.outbox_helpers import (
    CONTACTS,
    hours_ago,
    queue,
    setup_conversation,
)
from tests.helpers import make_token
from tests.standins.graph_api import GraphStandIn

ASSET = {channel: asset for channel, (asset, _, _) in CONTACTS.items()}
PSID, WA_ID = CONTACTS["messenger"][1], CONTACTS["whatsapp"][2]
TEMPLATE = {
    "name": "order_update", "language": "en_US",
    "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/p.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "#991"}, {"type": "text", "text": "Friday"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "TRACK_991"}]},
    ],
}


def expected_body(channel: str, message_id: int, text: str = "Hello", *,
                  messaging_type: str = "RESPONSE", tag: str | None = None) -> dict[str, Any]:
    """The exact Graph API body for a text message (docs/spec/meta-platform.md §5)."""
    if channel == "whatsapp":
        return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
                "biz_opaque_callback_data": f"aat:{message_id}", "type": "text", "text": {"body": text}}
    body: dict[str, Any] = {"recipient": {"id": CONTACTS[channel][1]}, "messaging_type": messaging_type,
                            "message": {"text": text, "metadata": f"aat:{message_id}"}}
    if tag is not None:
        body["tag"] = tag
    return body


def queue_to(workspace: Workspace, runtime: Any, channel: str, text: str = "Hello", *,
             hours: float = 0.1, sent_by: str = "bot", payload: dict[str, Any] | None = None,
             **channel_kw: Any) -> int:
    """Connect ``channel``, open a conversation whose contact wrote ``hours`` ago, queue one
    message and wake the sender; returns the message id."""
    _, conversation_id = setup_conversation(workspace, channel, last_inbound_at=hours_ago(hours), **channel_kw)
    message_id = queue(workspace, conversation_id, text, sent_by=sent_by, payload=payload)
    runtime.wake_sender()
    return message_id


@pytest.fixture
def auth(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def reply(client: AsyncTestClient, auth: dict[str, str], conversation_id: int, **body: Any) -> Any:
    return await client.post(f"/api/v1/conversations/{conversation_id}/messages", json=body, headers=auth)


async def api_message(client: AsyncTestClient, auth: dict[str, str], conversation_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=auth)
    [item] = [m for m in response.json()["items"] if m["direction"] == "out"]
    return item


def tuned(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


async def requests_reached(graph_api: GraphStandIn, count: int) -> bool:
    """Whether the stand-in has received ``count`` requests (for ``wait_until``)."""
    return len(graph_api.requests) >= count
