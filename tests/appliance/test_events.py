"""Domain events are written with the changes they describe, ids only."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from appliance import events
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from tests.conftest import fixture_bytes
from tests.helpers import connect_channel, ingest, make_token, outbox_empty


def _types(workspace: Workspace) -> list[str]:
    return [e["type"] for e in workspace.gateway.read_sync(events.since, 0)]


async def test_inbound_reply_and_statuses_are_events(client: AsyncTestClient, workspace: Workspace) -> None:
    connect_channel(workspace, "whatsapp", "109876543210987")
    await ingest(client, fixture_bytes("whatsapp_text"))
    assert _types(workspace) == ["contact.created", "message.created", "conversation.updated"]
    headers = make_token(workspace, "agent")
    conversation = (await client.get("/api/v1/conversations", headers=headers)).json()["items"][0]
    reply = await client.post(f"/api/v1/conversations/{conversation['id']}/messages", json={"text": "Yes!"},
                              headers=headers)
    await outbox_empty(client)
    assert _types(workspace)[3:] == ["message.created", "conversation.updated", "message.updated"]
    created = workspace.gateway.read_sync(events.since, 3)[0]
    assert (created["message_id"], created["conversation_id"]) == (int(reply.json()["id"]), int(conversation["id"]))
    assert set(workspace.gateway.read_sync(lambda db: many(db, "SELECT * FROM events LIMIT 1"))[0]) == {
        "id", "type", "conversation_id", "contact_id", "message_id", "flow_id", "run_id", "user_id", "created_at"}


async def test_erasing_a_contact_erases_its_events(client: AsyncTestClient, workspace: Workspace) -> None:
    connect_channel(workspace, "whatsapp", "109876543210987")
    await ingest(client, fixture_bytes("whatsapp_text"))
    contact = (await client.get("/api/v1/contacts", headers=make_token(workspace, "agent"))).json()["items"][0]
    assert (await client.delete(f"/api/v1/contacts/{contact['id']}", headers=make_token(workspace, "agent"))).status_code == 204
    rows = workspace.gateway.read_sync(events.since, 0)
    assert [(r["type"], r["contact_id"]) for r in rows] == [("contact.deleted", int(contact["id"]))]


async def test_one_conversation_updated_per_transaction(client: AsyncTestClient, workspace: Workspace) -> None:
    """The inbound message and the flow's two replies change the conversation in one writer
    transaction: consumers read it after the commit, so one ``conversation.updated`` says it all."""
    connect_channel(workspace, "whatsapp", "109876543210987")
    admin = make_token(workspace, "admin")
    created = await client.post("/api/v1/flows", headers=admin, json={
        "schema": "aat.flow/v1", "name": "Two replies", "triggers": [{"type": "default"}], "start": "one",
        "steps": {"one": {"type": "message", "text": "One", "next": "two"},
                  "two": {"type": "message", "text": "Two"}}})
    assert (await client.post(f"/api/v1/flows/{created.json()['id']}/publish", headers=admin)).status_code == 200
    await ingest(client, fixture_bytes("whatsapp_text"))
    await outbox_empty(client)
    rows = workspace.gateway.read_sync(events.since, 0)
    applied = [r["type"] for r in rows if r["type"] != "message.updated"]
    assert applied == ["contact.created", "message.created", "conversation.updated", "message.created",
                       "message.created", "flow.completed"]
    assert len({r["conversation_id"] for r in rows if r["type"] == "conversation.updated"}) == 1
    assert [r["type"] for r in rows].count("message.updated") == 2
