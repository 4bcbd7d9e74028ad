"""POST /webhooks/meta end to end: verification, the journal, and what ends up stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from litestar.testing import AsyncTestClient

from appliance.store.rows import many, scalar
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso
from tests.conftest import RUN_STARTED_AT, VERIFY_TOKEN, fixture_bytes, fixture_json, signed_headers
from tests.helpers import connect_channel, ingest, journal_settled, post_webhook


def _journal_count(workspace: Workspace) -> int:
    return workspace.gateway.read_sync(lambda db: scalar(db, "SELECT count(*) FROM webhook_journal"))


def _messages(workspace: Workspace) -> list[dict[str, Any]]:
    return workspace.gateway.read_sync(lambda db: many(db, """
        SELECT m.*, c.external_id AS contact_external_id, c.name AS contact_name, c.wa_id, c.bsuid,
               ch.type AS channel, ch.external_id AS channel_external_id
        FROM messages m JOIN contacts c ON c.id = m.contact_id JOIN channels ch ON ch.id = m.channel_id
        ORDER BY m.id"""))


# --- the handshake -------------------------------------------------------------------------

async def test_handshake_echoes_the_bare_challenge(client: AsyncTestClient) -> None:
    response = await client.get("/webhooks/meta", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {},
])
async def test_handshake_refuses_wrong_token_or_mode(client: AsyncTestClient, params: dict[str, str]) -> None:
    response = await client.get("/webhooks/meta", params=params)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "verification_failed"


# --- refusals leave nothing behind ----------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {},
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"X-Hub-Signature-256": "sha1=abc"},
    signed_headers(b"a different body"),
    signed_headers(fixture_bytes("messenger_text"), secret="another-apps-secret"),
])
async def test_forged_or_unsigned_delivery_is_refused_and_not_stored(
    client: AsyncTestClient, workspace: Workspace, headers: dict[str, str]
) -> None:
    response = await client.post("/webhooks/meta", content=fixture_bytes("messenger_text"), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert _journal_count(workspace) == 0
    metrics = (await client.get("/metrics")).text
    assert 'aat_webhooks_rejected_total{reason="signature"} 1.0' in metrics


async def test_body_over_one_mebibyte_is_413(client: AsyncTestClient, workspace: Workspace) -> None:
    body = b'{"object":"page","entry":[],"pad":"' + b"x" * (1024 * 1024) + b'"}'
    response = await post_webhook(client, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _journal_count(workspace) == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b""])
async def test_signed_body_that_is_not_a_json_object_is_400(
    client: AsyncTestClient, workspace: Workspace, body: bytes
) -> None:
    response = await post_webhook(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert _journal_count(workspace) == 0


# --- what is stored --------------------------------------------------------------------------

# fixture -> (channel, kind, direction, sent_by, text, contact external id)
STORED = {
    "messenger_text": ("messenger", "text", "in", "contact", "Hello, are you open on Sunday?", "2460001112223334"),
    "messenger_quick_reply": ("messenger", "quick_reply", "in", "contact", "Large", "2460001112223334"),
    "messenger_postback": ("messenger", "postback", "in", "contact", "Get Started", "2460001112223334"),
    "messenger_referral": ("messenger", "referral", "in", "contact", None, "2460001112223335"),
    "page_feed_comment": ("messenger", "comment", "in", "contact", "How much is shipping?", "8700001112223334"),
    "instagram_text": ("instagram", "text", "in", "contact", "Do you ship to Tbilisi?", "6120001112223334"),
    "instagram_story_reply": ("instagram", "story_reply", "in", "contact", "Where is this from?", "6120001112223334"),
    "instagram_story_mention": ("instagram", "story_mention", "in", "contact", None, "6120001112223335"),
    "instagram_comment": ("instagram", "comment", "in", "contact", "price?", "6120001112223336"),
    "whatsapp_text": ("whatsapp", "text", "in", "contact", "Is the store open today?", "GE.40012345678901234567"),
    "whatsapp_text_username_only": ("whatsapp", "text", "in", "contact", "hi, no phone shown", "GE.40098765432109876543"),
    "whatsapp_image": ("whatsapp", "image", "in", "contact", "this one", "995555123457"),
    "whatsapp_location": ("whatsapp", "location", "in", "contact", None, "995555123457"),
    "whatsapp_reaction": ("whatsapp", "reaction", "in", "contact", None, "995555123457"),
    "whatsapp_button_reply": ("whatsapp", "interactive", "in", "contact", "Pro plan", "995555123456"),
    "whatsapp_list_reply": ("whatsapp", "interactive", "in", "contact", "Vake", "995555123456"),
    "whatsapp_template_button": ("whatsapp", "button", "in", "contact", "Track order", "995555123456"),
    "messenger_echo": ("messenger", "text", "out", "echo", "We open at 10.", "2460001112223334"),
}


@pytest.mark.parametrize("name", sorted(STORED))
async def test_every_fixture_is_stored_as_one_message(
    client: AsyncTestClient, workspace: Workspace, name: str
) -> None:
    await ingest(client, fixture_bytes(name))
    rows = _messages(workspace)
    assert len(rows) == 1, rows
    row = rows[0]
    channel, kind, direction, sent_by, text, contact = STORED[name]
    assert (row["channel"], row["kind"], row["direction"], row["sent_by"], row["text"],
            row["contact_external_id"]) == (channel, kind, direction, sent_by, text, contact)
    assert row["status"] == ("sent" if direction == "out" else "received")
    state = workspace.gateway.read_sync(lambda db: many(db, "SELECT state, error FROM webhook_journal"))
    assert state == [{"state": "processed", "error": None}]


async def test_payload_details_survive(client: AsyncTestClient, workspace: Workspace) -> None:
    for name in ("messenger_postback", "messenger_quick_reply", "page_feed_comment", "whatsapp_image",
                 "whatsapp_location", "instagram_story_reply", "messenger_referral"):
        await ingest(client, fixture_bytes(name))
    rows = {r["kind"]: r for r in _messages(workspace)}
    assert json.loads(rows["postback"]["payload"])["payload"] == "GET_STARTED"
    assert json.loads(rows["quick_reply"]["payload"])["payload"] == "SIZE_LARGE"
    comment = json.loads(rows["comment"]["payload"])
    assert (comment["post_id"], comment["comment_id"]) == ("112233445566778_1001", "1001_9001")
    image = json.loads(rows["image"]["attachments"])[0]
    assert (image["type"], image["media_id"], image["mime_type"]) == ("image", "1203948576012345", "image/jpeg")
    location = json.loads(rows["location"]["attachments"])[0]
    assert (location["latitude"], location["longitude"], location["name"]) == (41.7151, 44.8271, "Tbilisi")
    assert json.loads(rows["story_reply"]["payload"])["story_id"] == "18023456789012345"
    assert json.loads(rows["referral"]["payload"])["ref"] == "summer-sale"


async def test_contacts_carry_what_meta_told(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, fixture_bytes("whatsapp_text"))
    await ingest(client, fixture_bytes("whatsapp_text_username_only"))
    await ingest(client, fixture_bytes("page_feed_comment"))
    contacts = workspace.gateway.read_sync(lambda db: many(
        db, "SELECT external_id, wa_id, bsuid, name, first_name, last_name, phone, last_inbound_at FROM contacts ORDER BY id"))
    assert contacts[0] == {
        "external_id": "GE.40012345678901234567", "wa_id": "995555123456", "bsuid": "GE.40012345678901234567",
        "name": "Giorgi", "first_name": "Giorgi", "last_name": None, "phone": "995555123456",
        "last_inbound_at": to_iso(datetime.fromtimestamp(RUN_STARTED_AT, UTC)),  # the fixture's time
    }
    assert contacts[1]["external_id"] == "GE.40098765432109876543"
    assert contacts[1]["wa_id"] is None and contacts[1]["phone"] is None
    # A comment does not open the messaging window; the commenter's full name is split.
    assert contacts[2]["name"] == "Ana Lima"
    assert (contacts[2]["first_name"], contacts[2]["last_name"]) == ("Ana", "Lima")
    assert contacts[2]["last_inbound_at"] is None


async def test_whatsapp_contact_seen_by_wa_id_then_bsuid_stays_one_contact(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    first = fixture_json("whatsapp_image")  # wa_id 995555123457, no user_id
    await ingest(client, json.dumps(first).encode())
    later = fixture_json("whatsapp_location")
    later["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "GE.4001"
    await ingest(client, json.dumps(later).encode())
    contacts = workspace.gateway.read_sync(lambda db: many(db, "SELECT external_id, wa_id, bsuid FROM contacts"))
    assert contacts == [{"external_id": "GE.4001", "wa_id": "995555123457", "bsuid": "GE.4001"}]


async def test_triple_delivery_is_stored_once(client: AsyncTestClient, workspace: Workspace) -> None:
    for _ in range(3):
        await ingest(client, fixture_bytes("whatsapp_text"))
    assert len(_messages(workspace)) == 1
    journal = workspace.gateway.read_sync(lambda db: many(db, "SELECT events, duplicates FROM webhook_journal ORDER BY id"))
    assert journal == [{"events": 1, "duplicates": 0}, {"events": 1, "duplicates": 1}, {"events": 1, "duplicates": 1}]
    assert "aat_webhook_events_duplicated_total 2.0" in (await client.get("/metrics")).text


async def test_batch_of_many_entries_and_events_is_split(client: AsyncTestClient, workspace: Workspace) -> None:
    base = fixture_json("messenger_text")
    template = base["entry"][0]
    entries = []
    for e in range(4):
        events = []
        for i in range(5):
            event = json.loads(json.dumps(template["messaging"][0]))
            event["message"]["mid"] = f"m_batch_{e}_{i}"
            event["message"]["text"] = f"message {e}.{i}"
            event["sender"]["id"] = f"24600011122{e:05d}"
            events.append(event)
        entries.append({**template, "messaging": events})
    await ingest(client, json.dumps({"object": "page", "entry": entries}).encode())
    rows = _messages(workspace)
    assert len(rows) == 20
    assert len({r["contact_external_id"] for r in rows}) == 4
    assert [r["text"] for r in rows[:3]] == ["message 0.0", "message 0.1", "message 0.2"]


async def test_non_ascii_text_is_verified_on_the_escaped_raw_body(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    # Meta escapes non-ASCII before signing; json.dumps does the same by default.
    payload = fixture_json("messenger_text")
    payload["entry"][0]["messaging"][0]["message"]["text"] = "äöå Тбилиси 🎉"
    body = json.dumps(payload).encode()
    assert b"\\u00e4" in body
    await ingest(client, body)
    assert _messages(workspace)[0]["text"] == "äöå Тбилиси 🎉"


async def test_page_echo_is_outbound_and_self_comment_is_dropped(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await ingest(client, fixture_bytes("messenger_echo"))
    self_comment = fixture_json("page_feed_comment")
    self_comment["entry"][0]["changes"][0]["value"]["from"] = {"id": "112233445566778", "name": "The Page"}
    await ingest(client, json.dumps(self_comment).encode())
    rows = _messages(workspace)
    assert [(r["direction"], r["sent_by"], r["kind"]) for r in rows] == [("out", "echo", "text")]
    contact = workspace.gateway.read_sync(lambda db: many(db, "SELECT last_inbound_at FROM contacts"))
    assert contact == [{"last_inbound_at": None}]  # an echo never opens the window


def _sent_message(workspace: Workspace, external_id: str, sent_at: str = "2026-11-26T16:58:00.000Z") -> int:
    """An outbound message as the sender leaves it after Meta accepted it (no outbox row, so
    the running sender leaves it alone)."""
    from appliance.inbox.store import insert_message

    def insert(db: Any) -> int:
        conversation = many(db, "SELECT id, contact_id, channel_id FROM conversations")[0]
        return insert_message(db, {
            "conversation_id": conversation["id"], "contact_id": conversation["contact_id"],
            "channel_id": conversation["channel_id"], "direction": "out", "kind": "text", "text": "x",
            "external_id": external_id, "status": "sent", "sent_by": "bot", "occurred_at": sent_at,
            "sent_at": sent_at, "created_at": sent_at,
        })

    return workspace.gateway.write_sync(insert)


async def test_whatsapp_statuses_update_the_outbound_message(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await ingest(client, fixture_bytes("whatsapp_text"))
    message_id = _sent_message(workspace, "wamid.HBgLOUTFAKE03")
    await ingest(client, fixture_bytes("whatsapp_status_delivered"))
    failed = fixture_json("whatsapp_status_failed_131047")
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.HBgLOUTFAKE03"
    await ingest(client, json.dumps(failed).encode())
    row = workspace.gateway.read_sync(lambda db: many(db, "SELECT status, error_code FROM messages WHERE id = ?", [message_id]))
    # delivered, then a late "failed" cannot undo a delivery
    assert row == [{"status": "delivered", "error_code": None}]


async def test_failed_status_marks_a_sent_message_failed_with_the_code(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await ingest(client, fixture_bytes("whatsapp_text"))
    message_id = _sent_message(workspace, "wamid.HBgLOUTFAKE04")
    await ingest(client, fixture_bytes("whatsapp_status_failed_131047"))
    row = workspace.gateway.read_sync(lambda db: many(db, "SELECT status, error_code FROM messages WHERE id = ?", [message_id]))
    assert row == [{"status": "failed", "error_code": "131047"}]


async def test_messenger_delivery_and_read_watermarks(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, fixture_bytes("messenger_text"))
    for sent_at, mid in (("2025-11-26T17:59:00.000Z", "m_OUT001"), ("2025-11-26T18:00:01.000Z", "m_OUT002"),
                         ("2025-11-26T18:00:09.000Z", "m_OUT003")):
        _sent_message(workspace, mid, sent_at)
    # watermarks: delivered up to 18:00:00 (+ mid m_OUT001), read up to 18:00:05
    await ingest(client, fixture_bytes("messenger_delivery_read"))
    statuses = workspace.gateway.read_sync(lambda db: [r["status"] for r in many(
        db, "SELECT status FROM messages WHERE direction = 'out' ORDER BY id")])
    assert statuses == ["read", "read", "sent"]


async def test_events_for_an_unconnected_asset_are_kept(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, fixture_bytes("instagram_text"))
    channels = workspace.gateway.read_sync(lambda db: many(db, "SELECT type, external_id, status FROM channels"))
    assert channels == [{"type": "instagram", "external_id": "17841455566677788", "status": "disconnected"}]
    connect_channel(workspace, "instagram", "17841455566677788")
    channels = workspace.gateway.read_sync(lambda db: many(db, "SELECT status FROM channels"))
    assert channels == [{"status": "active"}]
    assert len(_messages(workspace)) == 1


async def test_unparseable_event_is_kept_and_marked_never_a_5xx(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    payload = fixture_json("messenger_text")
    good = payload["entry"][0]["messaging"][0]
    payload["entry"][0]["messaging"] = [good, {"sender": {}, "timestamp": "soon", "message": 7}]
    body = json.dumps(payload).encode()
    response = await post_webhook(client, body)
    assert response.status_code == 200
    await journal_settled(client)
    journal = workspace.gateway.read_sync(lambda db: many(db, "SELECT state, error, body FROM webhook_journal"))
    assert journal[0]["state"] == "failed"
    assert "entry[0].messaging[1]" in journal[0]["error"]
    assert journal[0]["body"] == body  # kept, byte for byte
    assert len(_messages(workspace)) == 1  # the good event is stored


async def test_unknown_object_is_marked_failed(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await post_webhook(client, b'{"object": "permissions", "entry": []}')
    assert response.status_code == 200
    await journal_settled(client)
    journal = workspace.gateway.read_sync(lambda db: many(db, "SELECT state, error FROM webhook_journal"))
    assert journal == [{"state": "failed", "error": "object: unknown or missing webhook object"}]


async def test_second_app_secret_is_accepted(client: AsyncTestClient, workspace: Workspace, settings: Any) -> None:
    body = fixture_bytes("instagram_text")
    response = await client.post("/webhooks/meta", content=body, headers=signed_headers(body, secret="ig-secret"))
    assert response.status_code == 403
    settings.meta_extra_app_secrets = [SecretStr("ig-secret")]
    response = await client.post("/webhooks/meta", content=body, headers=signed_headers(body, secret="ig-secret"))
    assert response.status_code == 200



async def test_processed_raw_bodies_are_purged_after_the_retention_and_dedupe_still_holds(
    client: AsyncTestClient, workspace: Workspace, runtime: Any
) -> None:
    from datetime import timedelta

    from appliance.ingest.tasks import purge_journal
    from appliance.timeutil import to_iso, utcnow

    await ingest(client, fixture_bytes("whatsapp_text"))
    assert purge_journal(runtime) == {"journal_rows": 0, "dedupe_keys": 0, "events": 0}  # too young
    old = to_iso(utcnow() - timedelta(days=runtime.settings.journal_retention_days, hours=1))
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE webhook_journal SET processed_at = ?", [old]))
    assert purge_journal(runtime) == {"journal_rows": 1, "dedupe_keys": 0, "events": 0}
    assert _journal_count(workspace) == 0
    await ingest(client, fixture_bytes("whatsapp_text"))  # Meta retries after the purge
    assert len(_messages(workspace)) == 1
    very_old = to_iso(utcnow() - timedelta(days=9))
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE seen_events SET seen_at = ?", [very_old]))
    assert purge_journal(runtime)["dedupe_keys"] == 1


async def test_a_failed_delivery_keeps_its_body_until_retried(
    client: AsyncTestClient, workspace: Workspace, runtime: Any
) -> None:
    from datetime import timedelta

    from appliance.ingest.tasks import purge_journal
    from appliance.timeutil import to_iso, utcnow

    await post_webhook(client, b'{"object": "permissions", "entry": []}')
    await journal_settled(client)
    old = to_iso(utcnow() - timedelta(days=30))
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE webhook_journal SET processed_at = ?", [old]))
    assert purge_journal(runtime)["journal_rows"] == 0
    assert workspace.gateway.read_sync(lambda db: many(db, "SELECT state FROM webhook_journal")) == [{"state": "failed"}]
