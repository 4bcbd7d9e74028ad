"""Server-Sent Events: what a signed-in page receives, and resuming with Last-Event-ID."""

from __future__ import annotations

import json

from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.conftest import fixture_bytes
from tests.helpers import connect_channel, ingest, make_token


def _events(text: str) -> list[dict]:
    found = []
    for block in text.split("\r\n\r\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
        if "event" in fields:
            found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return found


async def test_missed_events_come_with_their_resources(client: AsyncTestClient, workspace: Workspace) -> None:
    connect_channel(workspace, "whatsapp", "109876543210987")
    headers = make_token(workspace, "agent")
    await ingest(client, fixture_bytes("whatsapp_text"))
    response = await client.get("/api/v1/events?duration=0", headers={**headers, "Last-Event-ID": "0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert [e["event"] for e in events] == ["contact.created", "message.created", "conversation.updated"]
    message = events[1]["data"]["message"]
    assert (message["text"], message["direction"], message["kind"]) == ("Is the store open today?", "in", "text")
    assert events[2]["data"]["conversation"]["contact"]["name"] == "Giorgi"
    resumed = await client.get("/api/v1/events?duration=0", headers={**headers, "Last-Event-ID": str(events[1]["id"])})
    assert [e["event"] for e in _events(resumed.text)] == ["conversation.updated"]


async def test_the_stream_needs_credentials(client: AsyncTestClient) -> None:
    assert (await client.get("/api/v1/events?duration=0")).status_code == 401
