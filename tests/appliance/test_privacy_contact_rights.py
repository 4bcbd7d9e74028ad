"""Access, portability and objection: ``GET /api/v1/contacts/{id}/export`` (one JSON document
with everything about the contact) and ``POST /api/v1/contacts/{id}/objection``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import WA_PHONE_NUMBER_ID, error_of, execute, rows, value, whatsapp_text
from tests.helpers import connect_channel, ingest, make_token, outbox_empty

PRICING = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())
WA_ID = "995577000222"


async def _contact_with_history(client: AsyncTestClient, workspace: Workspace) -> dict[str, Any]:
    connect_channel(workspace, "whatsapp", WA_PHONE_NUMBER_ID)
    admin = make_token(workspace, "admin")
    flow = await client.post("/api/v1/flows", json=PRICING, headers=admin)
    assert (await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=admin)).status_code == 200
    await ingest(client, whatsapp_text(WA_ID, "wamid.rights1", name="Nino Kapanadze", text="price please"))
    await outbox_empty(client)
    contact = value(workspace, "SELECT id FROM contacts WHERE wa_id = ?", [WA_ID])
    agent = make_token(workspace, "agent")
    await client.post(f"/api/v1/contacts/{contact}/tags", json={"tag": "lead"}, headers=agent)
    for change in ({"fields": {"city": "Batumi"}}, {"subscribed": False}, {"subscribed": True}):
        assert (await client.patch(f"/api/v1/contacts/{contact}", json=change, headers=agent)).status_code == 200
    return {"id": contact, "agent": agent}


async def test_export_is_one_document_with_everything_about_the_contact(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    contact = await _contact_with_history(client, workspace)
    response = await client.get(f"/api/v1/contacts/{contact['id']}/export", headers=contact["agent"])
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="contact-{contact["id"]}.json"'
    document = response.json()
    assert document["format"] == "aat-contact-export/1"
    assert set(document) == {"format", "exported_at", "exported_by", "contact", "tags", "fields", "consent",
                             "conversations", "flow_runs", "other_records"}
    assert document["contact"]["name"] == "Nino Kapanadze"
    assert document["contact"]["wa_id"] == WA_ID and document["contact"]["channel"] == "whatsapp"
    assert [t["tag"] for t in document["tags"]] == ["lead"]
    assert document["fields"] == {"city": "Batumi"}
    consent = document["consent"]
    assert (consent["subscribed"], consent["marketing_opt_out"]) == (True, False)
    assert [(h["subject"], h["value"]) for h in consent["history"]] == [("subscribed", False), ("subscribed", True)]
    [conversation] = document["conversations"]
    texts = [(m["direction"], m["text"]) for m in conversation["messages"]]
    assert texts[0] == ("in", "price please")
    assert texts[1] == ("out", "Hi Nino! What would you like?")
    [run] = document["flow_runs"]
    assert run["flow_name"] == "Pricing questions"
    assert [s["step"] for s in run["steps"]][:1] == ["hello"]
    audit = rows(workspace, "SELECT action, target_kind, target_id FROM audit_log WHERE action = 'contact.export'")
    assert audit == [{"action": "contact.export", "target_kind": "contact", "target_id": str(contact["id"])}]


async def test_export_includes_other_tables_that_name_the_contact(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    contact = await _contact_with_history(client, workspace)
    conversation = value(workspace, "SELECT id FROM conversations WHERE contact_id = ?", [contact["id"]])
    execute(workspace, "INSERT INTO notifications (conversation_id, text, created_at) VALUES (?, 'wants a call', 'x')",
            [conversation])
    document = (await client.get(f"/api/v1/contacts/{contact['id']}/export", headers=contact["agent"])).json()
    assert [n["text"] for n in document["other_records"]["notifications"]] == ["wants a call"]
    assert "events" not in document["other_records"]


async def test_export_of_an_unknown_contact_is_404(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.get("/api/v1/contacts/424242/export", headers=make_token(workspace, "agent"))
    assert error_of(response, 404)["code"] == "not_found"


async def test_objection_unsubscribes_and_stops_automation(client: AsyncTestClient, workspace: Workspace) -> None:
    contact = await _contact_with_history(client, workspace)
    run = rows(workspace, "SELECT id, status FROM flow_runs WHERE contact_id = ?", [contact["id"]])
    assert [r["status"] for r in run] == ["active"]  # waiting for a button tap
    # A bot message still waiting in the outbox: the objection cancels it.
    execute(workspace, "UPDATE outbox SET next_attempt_at = '2999-01-01T00:00:00.000Z'")
    execute(workspace, """INSERT INTO messages (conversation_id, contact_id, channel_id, direction, kind, text,
                              status, sent_by, occurred_at, created_at, updated_at)
                          SELECT id, contact_id, channel_id, 'out', 'text', 'a follow-up', 'queued', 'bot',
                                 'x', 'x', 'x' FROM conversations WHERE contact_id = ?""", [contact["id"]])
    execute(workspace, """INSERT INTO outbox (message_id, conversation_id, channel_id, next_attempt_at, created_at)
                          SELECT id, conversation_id, channel_id, '2999-01-01T00:00:00.000Z', 'x' FROM messages
                          WHERE text = 'a follow-up'""")

    response = await client.post(f"/api/v1/contacts/{contact['id']}/objection", headers=contact["agent"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["runs_ended"], body["messages_cancelled"], body["bot_paused"]) == (1, 1, True)
    assert body["contact"]["subscribed"] is False
    assert value(workspace, "SELECT status FROM flow_runs WHERE contact_id = ?", [contact["id"]]) == "interrupted"
    assert value(workspace, "SELECT bot_paused FROM conversations WHERE contact_id = ?", [contact["id"]]) == 1
    assert rows(workspace, "SELECT status, error_code FROM messages WHERE text = 'a follow-up'") == [
        {"status": "failed", "error_code": "objection"}]
    assert value(workspace, "SELECT count(*) FROM outbox") == 0
    history = (await client.get(f"/api/v1/contacts/{contact['id']}/export", headers=contact["agent"])).json()
    assert history["consent"]["history"][-1]["value"] is False
    assert rows(workspace, "SELECT action, target_id FROM audit_log WHERE action = 'contact.objection'") == [
        {"action": "contact.objection", "target_id": str(contact["id"])}]


async def test_after_an_objection_new_messages_start_no_flow(client: AsyncTestClient, workspace: Workspace) -> None:
    contact = await _contact_with_history(client, workspace)
    assert (await client.post(f"/api/v1/contacts/{contact['id']}/objection", headers=contact["agent"])).status_code == 200
    before = value(workspace, "SELECT count(*) FROM messages WHERE direction = 'out'")
    await ingest(client, whatsapp_text(WA_ID, "wamid.rights2", name="Nino Kapanadze", text="price again?"))
    await outbox_empty(client)
    assert value(workspace, "SELECT count(*) FROM messages WHERE direction = 'out'") == before
    assert value(workspace, "SELECT count(*) FROM flow_runs WHERE status = 'active'") == 0


async def test_objection_for_an_unknown_contact_is_404_and_changes_nothing(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    response = await client.post("/api/v1/contacts/424242/objection", headers=make_token(workspace, "agent"))
    assert error_of(response, 404)["code"] == "not_found"
    assert value(workspace, "SELECT count(*) FROM audit_log") == 0
