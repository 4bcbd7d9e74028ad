"""Erasure (``DELETE /api/v1/contacts/{id}``): everything tied to the contact goes, in every
table, the raw webhook journal included; other contacts stay exactly as they were; the audit
log says an erasure happened, not whom it erased. Checked on a full SQLCipher export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.privacy import erasure
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (
    IG_ACCOUNT_ID,
    PAGE_ID,
    WA_PHONE_NUMBER_ID,
    execute,
    instagram_text,
    messenger_text,
    rows,
    value,
    whatsapp_text,
)
from tests.appliance.privacy_helpers import export_to, find_everywhere, open_export
from tests.conftest import fixture_json
from tests.helpers import connect_channel, ingest, make_token, outbox_empty, post_webhook

PRICING = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())
ERASED_WA_ID = "995599000111"
ERASED_NAME = "Zuzanna Ŝtęfańska"
ERASED_TEXTS = ["what is the price of the blue velvet sofa", "deliver to Rustaveli Avenue 12"]
ERASED_CAPTION = "photo of my green armchair"
ERASED_MEDIA_ID = "1203948576099881"
ERASED_NOTE = "prefers delivery after six, ring twice"
KEPT_PSID = "2460009998887776"


def _image(wa_id: str, wamid: str) -> bytes:
    """A WhatsApp photo (media id, caption) from ``wa_id``: media live on Meta; we hold the id."""
    body = fixture_json("whatsapp_image")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": ERASED_NAME}, "wa_id": wa_id}]
    message = value["messages"][0]
    message.update({"id": wamid, "from": wa_id})
    message["image"].update(id=ERASED_MEDIA_ID, caption=ERASED_CAPTION)
    return json.dumps(body).encode()


def _status(wa_id: str, wamid: str) -> bytes:
    body = fixture_json("whatsapp_status_delivered")
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(id=wamid, recipient_id=wa_id)
    return json.dumps(body).encode()


async def _publish_pricing(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "admin")
    flow = await client.post("/api/v1/flows", json=PRICING, headers=headers)
    assert flow.status_code == 201, flow.text
    assert (await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=headers)).status_code == 200


async def _world(client: AsyncTestClient, workspace: Workspace) -> dict[str, Any]:
    """The person to erase writes on WhatsApp (a flow answers, addressing them by name) and sends
    a photo, is tagged, has a custom field, changed their subscription twice, has a team
    notification and an agent's note about them, a status report and a redelivered message in
    the journal. Another person writes on Messenger."""
    connect_channel(workspace, "whatsapp", WA_PHONE_NUMBER_ID)
    connect_channel(workspace, "messenger", PAGE_ID)
    await _publish_pricing(client, workspace)
    first = whatsapp_text(ERASED_WA_ID, "wamid.erase1", name=ERASED_NAME, text=ERASED_TEXTS[0])
    await ingest(client, first)
    await ingest(client, first)  # Meta redelivers: deduplicated, so never linked to the contact
    await ingest(client, whatsapp_text(ERASED_WA_ID, "wamid.erase2", name=ERASED_NAME, text=ERASED_TEXTS[1]))
    await outbox_empty(client)
    await ingest(client, _image(ERASED_WA_ID, "wamid.erase3"))
    await ingest(client, _status(ERASED_WA_ID, "wamid.unknown-to-us"))
    await ingest(client, messenger_text(KEPT_PSID, "m_keep_1", text="please keep my order"))
    contact = rows(workspace, "SELECT id FROM contacts WHERE wa_id = ?", [ERASED_WA_ID])[0]["id"]
    kept = rows(workspace, "SELECT id FROM contacts WHERE external_id = ?", [KEPT_PSID])[0]["id"]
    headers = make_token(workspace, "agent")
    assert (await client.post(f"/api/v1/contacts/{contact}/tags", json={"tag": "sofa-buyer"}, headers=headers)).status_code == 200
    for change in ({"fields": {"street": "Rustaveli Avenue 12"}}, {"subscribed": False}, {"subscribed": True}):
        assert (await client.patch(f"/api/v1/contacts/{contact}", json=change, headers=headers)).status_code == 200
    conversation = value(workspace, "SELECT id FROM conversations WHERE contact_id = ?", [contact])
    execute(workspace, "INSERT INTO notifications (conversation_id, text, created_at) VALUES (?, ?, 'x')",
            [conversation, f"{ERASED_NAME} asked for a human"])
    note = await client.post(f"/api/v1/conversations/{conversation}/notes", json={"text": ERASED_NOTE},
                             headers=headers)
    assert note.status_code == 201, note.text
    return {"contact": contact, "kept": kept, "conversation": conversation}


def _kept_rows(workspace: Workspace, kept: int) -> dict[str, Any]:
    return {
        "contact": rows(workspace, "SELECT * FROM contacts WHERE id = ?", [kept]),
        "conversation": rows(workspace, "SELECT * FROM conversations WHERE contact_id = ?", [kept]),
        "messages": rows(workspace, "SELECT * FROM messages WHERE contact_id = ?", [kept]),
        "journal": rows(workspace, "SELECT j.* FROM webhook_journal j JOIN webhook_journal_contacts l "
                                   "ON l.journal_id = j.id WHERE l.contact_id = ?", [kept]),
    }


async def test_erasure_leaves_no_trace_in_a_full_export(
    client: AsyncTestClient, workspace: Workspace, tmp_path: Path
) -> None:
    world = await _world(client, workspace)
    before = export_to(workspace.settings, tmp_path, "before.aatx")
    mentioned = find_everywhere(open_export(before), [ERASED_NAME, *ERASED_TEXTS, ERASED_CAPTION, ERASED_MEDIA_ID,
                                                      ERASED_NOTE])
    assert {hit.split(": ", 1)[1] for hit in mentioned} == {ERASED_NAME, *ERASED_TEXTS, ERASED_CAPTION,
                                                            ERASED_MEDIA_ID, ERASED_NOTE}
    assert "webhook_journal.body: " + ERASED_CAPTION in mentioned  # the journal holds it before
    kept_before = _kept_rows(workspace, world["kept"])

    response = await client.delete(f"/api/v1/contacts/{world['contact']}", headers=make_token(workspace, "agent"))
    assert response.status_code == 204, response.text

    after = open_export(export_to(workspace.settings, tmp_path, "after.aatx"))
    assert find_everywhere(after, [ERASED_NAME, "Zuzanna", *ERASED_TEXTS, "blue velvet", "Rustaveli", "sofa-buyer",
                                   ERASED_CAPTION, ERASED_MEDIA_ID, ERASED_NOTE]) == []
    # Meta's ids of the person are gone too, except in dedupe keys (kept 8 days, see erasure.py).
    assert find_everywhere(after, [ERASED_WA_ID], skip=("seen_events",)) == []
    assert _kept_rows(workspace, world["kept"]) == kept_before
    assert after.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


async def test_erasure_reaches_every_table_that_names_the_contact(client: AsyncTestClient, workspace: Workspace) -> None:
    world = await _world(client, workspace)
    contact, conversation = world["contact"], world["conversation"]
    runs = [r["id"] for r in rows(workspace, "SELECT id FROM flow_runs WHERE contact_id = ?", [contact])]
    assert runs and value(workspace, "SELECT count(*) FROM flow_step_events WHERE run_id = ?", [runs[0]])
    assert value(workspace, "SELECT count(*) FROM consent_log WHERE contact_id = ?", [contact]) == 2

    assert (await client.delete(f"/api/v1/contacts/{contact}", headers=make_token(workspace, "agent"))).status_code == 204

    for table, scope in workspace.gateway.read_sync(erasure.scoped_tables).items():
        for column in scope:
            ids = {"contact_id": [contact], "conversation_id": [conversation], "run_id": runs}.get(column)
            if ids is None:
                continue
            left = value(workspace, f"SELECT count(*) FROM {table} WHERE {column} IN ({','.join('?' * len(ids))})", ids)
            if table == "events" and column == "contact_id":
                assert rows(workspace, "SELECT type FROM events WHERE contact_id = ?", [contact]) == [
                    {"type": "contact.deleted"}]
            else:
                assert left == 0, f"{table}.{column} still names the erased contact"
    assert value(workspace, "SELECT count(*) FROM webhook_journal WHERE body IS NULL") == 5


async def test_the_audit_log_records_the_erasure_without_whom(client: AsyncTestClient, workspace: Workspace) -> None:
    world = await _world(client, workspace)
    assert (await client.delete(f"/api/v1/contacts/{world['contact']}", headers=make_token(workspace, "agent"))).status_code == 204
    entry = rows(workspace, "SELECT * FROM audit_log WHERE action = 'contact.erase'")
    assert len(entry) == 1
    assert (entry[0]["target_kind"], entry[0]["target_id"], entry[0]["details"]) == ("contact", None, "{}")
    assert ERASED_WA_ID not in json.dumps(entry) and "Zuzanna" not in json.dumps(entry)


async def test_erasing_a_commenter_removes_its_private_reply_record(client: AsyncTestClient, workspace: Workspace) -> None:
    connect_channel(workspace, "instagram", IG_ACCOUNT_ID)
    headers = make_token(workspace, "admin")
    flow = await client.post("/api/v1/flows", headers=headers, json={
        "schema": "aat.flow/v1", "name": "Price comments", "triggers": [{"type": "comment", "keywords": ["price"]}],
        "start": "dm", "steps": {"dm": {"type": "message", "text": "Hi! The price is 15 EUR."}}})
    assert (await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=headers)).status_code == 200
    await ingest(client, json.dumps(fixture_json("instagram_comment")).encode())
    await outbox_empty(client)
    assert value(workspace, "SELECT count(*) FROM comment_private_replies") == 1
    contact = value(workspace, "SELECT id FROM contacts WHERE external_id = '6120001112223336'")
    assert (await client.delete(f"/api/v1/contacts/{contact}", headers=make_token(workspace, "agent"))).status_code == 204
    assert value(workspace, "SELECT count(*) FROM comment_private_replies") == 0


async def test_a_table_added_later_is_erased_by_convention_and_hooks_run(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    """A feature's own table (say, AI memory) needs no code here if it has a contact_id column;
    anything else registers a hook."""
    execute(workspace, "CREATE TABLE test_ai_memory (contact_id INTEGER, fact TEXT)")
    await ingest(client, instagram_text("6120005556667778", "ig_mem_1"))
    contact = value(workspace, "SELECT id FROM contacts")
    execute(workspace, "INSERT INTO test_ai_memory VALUES (?, 'likes blue sofas')", [contact])
    seen: list[int] = []

    def hook(db: Any, row: dict[str, Any]) -> int:
        seen.append(row["id"])
        return 0

    erasure.register_hook(hook)
    try:
        assert (await client.delete(f"/api/v1/contacts/{contact}", headers=make_token(workspace, "agent"))).status_code == 204
    finally:
        erasure._HOOKS.remove(hook)
    assert value(workspace, "SELECT count(*) FROM test_ai_memory") == 0
    assert seen == [contact]


async def test_pending_journal_rows_are_left_for_processing(workspace: Workspace) -> None:
    """A delivery acknowledged but not yet read is processed after the erasure (it is new)."""
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO channels (type, external_id, created_at, updated_at) VALUES ('messenger', ?, 'x', 'x')",
        [PAGE_ID]))
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO contacts (channel_id, external_id, created_at, updated_at) VALUES (1, ?, 'x', 'x')", [KEPT_PSID]))
    body = messenger_text(KEPT_PSID, "m_pending")
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO webhook_journal (received_at, body) VALUES ('x', ?)", [body]))
    workspace.gateway.write_sync(erasure.erase_contact, 1)
    assert value(workspace, "SELECT body FROM webhook_journal") == body


def test_deleted_rows_are_overwritten_in_the_file(workspace: Workspace) -> None:
    """SQLCipher is built with secure_delete on: erased rows do not linger in free pages."""
    assert workspace.gateway.read_sync(lambda db: db.execute("PRAGMA secure_delete").fetchone()[0]) == 1
    assert workspace.gateway.write_sync(lambda db: db.execute("PRAGMA secure_delete").fetchone()[0]) == 1


async def test_erasing_an_unknown_contact_is_404(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.delete("/api/v1/contacts/987654", headers=make_token(workspace, "agent"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert value(workspace, "SELECT count(*) FROM audit_log") == 0


async def test_erasure_is_a_post_webhook_away_from_a_new_contact(client: AsyncTestClient, workspace: Workspace) -> None:
    """The person writing again after the erasure is a new contact with a new id (ids are never
    reused), holding only the new message."""
    await ingest(client, messenger_text(KEPT_PSID, "m_before"))
    old = value(workspace, "SELECT id FROM contacts")
    assert (await client.delete(f"/api/v1/contacts/{old}", headers=make_token(workspace, "agent"))).status_code == 204
    assert (await post_webhook(client, messenger_text(KEPT_PSID, "m_after", text="hello again"))).status_code == 200
    await ingest(client, messenger_text(KEPT_PSID, "m_after2", text="still me"))
    new = value(workspace, "SELECT id FROM contacts")
    assert new > old
    assert [r["text"] for r in rows(workspace, "SELECT text FROM messages ORDER BY id")] == ["hello again", "still me"]
