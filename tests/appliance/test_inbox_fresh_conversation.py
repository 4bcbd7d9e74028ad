"""A new contact's conversation created as its first message leaves it
(``inbox.open_conversation_for`` + ``record_inbound(fresh=True)``, one UPDATE fewer on the
ingest path) ends exactly as ``ensure_conversation`` + ``record_inbound`` leave it: the same
conversation row, the same inbox counts and the same events, for a message that counts as
unread, one that does not (a reaction), and a duplicate (nothing stored). And
``insert_message`` stores a message's payload and attachments as the JSON encoders give them,
empty ones (written without encoding) included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.channels.events import ContactRef
from appliance.connections.store import connect_channel
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.store.rows import many, one
from appliance.store.workspace import Workspace

NOW = "2026-11-27T09:00:00.000Z"
OCCURRED = "2026-11-27T08:59:58.250Z"


def _message(contact_id: int, channel_id: int, external_id: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "channel_id": channel_id, "direction": "in", "kind": "text",
            "text": "hi", "external_id": external_id, "status": "received", "sent_by": "contact",
            "occurred_at": OCCURRED, "created_at": NOW}


def _store(db: Any, channel_id: int, name: str, external_id: str, *, fresh: bool, counts_unread: bool) -> dict[str, Any]:
    contact_id, created = contacts.upsert_contact(db, channel_id, ContactRef(external_id=name), NOW)
    assert created
    if fresh:
        conversation_id = inbox.open_conversation_for(db, contact_id, channel_id, NOW, occurred_at=OCCURRED,
                                                      counts_unread=counts_unread)
    else:
        conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, NOW, new_contact=True)
    before = int(one(db, "SELECT COALESCE(max(id), 0) AS id FROM events")["id"])  # type: ignore[index]
    stored = inbox.record_inbound(db, conversation_id, _message(contact_id, channel_id, external_id),
                                  counts_unread=counts_unread, now=NOW, fresh=fresh)
    row = one(db, "SELECT status, assignee_id, bot_paused, unread_count, last_message_at, created_at, updated_at "
                  "FROM conversations WHERE id = ?", [conversation_id])
    emitted = [(e["type"], e["conversation_id"] == conversation_id, e["message_id"] == stored)
               for e in many(db, "SELECT * FROM events WHERE id > ? ORDER BY id", [before])]
    return {"stored": stored is not None, "conversation": row, "events": emitted,
            "counts": many(db, "SELECT status, assignee_id, conversations, unread FROM conversation_counts "
                               "WHERE channel_id = ? ORDER BY status, assignee_id", [channel_id])}


@pytest.mark.parametrize("counts_unread", [True, False])
def test_a_fresh_conversation_ends_as_ensure_conversation_leaves_it(workspace: Workspace, counts_unread: bool) -> None:
    def run(db: Any) -> None:
        results = []
        for fresh in (False, True):
            channel_id = connect_channel(db, channel_type="messenger", external_id=f"page-{fresh}", token_enc="t",
                                         name=None, waba_id=None, page_id=None, rate_limit=None, now=NOW)["id"]
            first = _store(db, channel_id, "psid-1", "mid.1", fresh=fresh, counts_unread=counts_unread)
            # A second new contact whose message id is already stored: a duplicate, nothing stored.
            duplicate = _store(db, channel_id, "psid-2", "mid.1", fresh=fresh, counts_unread=counts_unread)
            results.append((first, duplicate))
        (plain, plain_dup), (fresh, fresh_dup) = results
        assert plain["stored"] and fresh["stored"] and not plain_dup["stored"] and not fresh_dup["stored"]
        assert fresh == plain
        assert fresh_dup == plain_dup
        assert plain["conversation"]["unread_count"] == int(counts_unread)
        assert plain["conversation"]["last_message_at"] == OCCURRED
        assert plain_dup["conversation"]["last_message_at"] is None
        assert plain_dup["counts"][0]["conversations"] == 2

    workspace.gateway.write_sync(run)


def test_payload_and_attachments_are_stored_as_encoded(workspace: Workspace) -> None:
    cases = [({}, []), ({"b": "é", "a": [1, {}]}, [{"type": "image", "url": "https://x/é"}]), ({"flow": {}}, [{}])]

    def run(db: Any) -> list[tuple[str, str]]:
        channel_id = connect_channel(db, channel_type="messenger", external_id="page-json", token_enc="t",
                                     name=None, waba_id=None, page_id=None, rate_limit=None, now=NOW)["id"]
        contact_id, _ = contacts.upsert_contact(db, channel_id, ContactRef(external_id="psid-json"), NOW)
        conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, NOW)
        stored = []
        for n, (payload, attachments) in enumerate(cases):
            message_id = inbox.insert_message(db, {**_message(contact_id, channel_id, f"mid.json{n}"),
                                                   "conversation_id": conversation_id, "payload": payload,
                                                   "attachments": attachments})
            row = one(db, "SELECT payload, attachments FROM messages WHERE id = ?", [message_id])
            stored.append((row["payload"], row["attachments"]))  # type: ignore[index]
        return stored

    assert workspace.gateway.write_sync(run) == [
        (json.dumps(payload, ensure_ascii=False, sort_keys=True), json.dumps(attachments, ensure_ascii=False))
        for payload, attachments in cases]
