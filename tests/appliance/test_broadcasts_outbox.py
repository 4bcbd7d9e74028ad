"""What broadcasts changed in the outbox and the sender: claim priority, not-before times,
holding a channel after Meta throttles it, error 131050 recording a marketing opt-out (as
the sender's answer and as a WhatsApp status), and a broadcast's batched queueing writing
what ``enqueue`` writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.broadcasts import recipients
from appliance.outbox import store as outbox
from appliance.settings import Settings
from appliance.store.rows import scalar
from appliance.store.workspace import Workspace
from appliance.timeutil import from_iso, iso_in, iso_now, utcnow
from tests.appliance.api_helpers import rows
from tests.appliance.outbox_helpers import (
    PHONE_ID,
    WABA_ID,
    connect,
    hours_ago,
    make_conversation,
    message,
    outbox_row,
    queue,
    running_app,
    settled,
)
from tests.helpers import ingest, wait_until
from tests.standins.graph_api import GraphStandIn


def enqueue(workspace: Workspace, conversation_id: int, *, priority: int = 0, not_before: str | None = None) -> int:
    return workspace.gateway.write_sync(lambda db: outbox.enqueue(
        db, conversation_id=conversation_id, kind="text", text="Hello", payload={}, sent_by="bot", user_id=None,
        messaging_type=None, tag=None, now=iso_now(), priority=priority, not_before=not_before))


def claim(workspace: Workspace, limit: int) -> list[int]:
    return [r["message_id"] for r in workspace.gateway.write_sync(lambda db: outbox.claim_due(db, iso_now(), limit))]


def two_whatsapp_conversations(workspace: Workspace) -> tuple[int, int]:
    channel_id = connect(workspace, "whatsapp")
    first = make_conversation(workspace, channel_id, "995550000001", wa_id="995550000001",
                              last_inbound_at=hours_ago(0.1))
    second = make_conversation(workspace, channel_id, "995550000002", wa_id="995550000002",
                               last_inbound_at=hours_ago(0.1))
    return first, second


def test_due_agent_replies_are_claimed_before_broadcast_messages(workspace: Workspace) -> None:
    first, second = two_whatsapp_conversations(workspace)
    broadcast = enqueue(workspace, first, priority=1)
    reply = enqueue(workspace, second, priority=0)
    assert claim(workspace, 1) == [reply]
    assert claim(workspace, 1) == [broadcast]


def test_priority_never_reorders_one_conversation(workspace: Workspace) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    broadcast = enqueue(workspace, first, priority=1)
    enqueue(workspace, first, priority=0)
    assert claim(workspace, 5) == [broadcast]


def test_a_message_is_not_due_before_its_not_before(workspace: Workspace) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    enqueue(workspace, first, not_before=iso_in(60))
    assert claim(workspace, 5) == []
    assert workspace.gateway.read_sync(outbox.next_due_at) > iso_in(59)


def test_a_not_before_in_the_past_means_now(workspace: Workspace) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    message_id = enqueue(workspace, first, not_before="2000-01-01T00:00:00.000Z")
    assert claim(workspace, 5) == [message_id]


# --- the sender holds a throttled channel -----------------------------------------------------

async def _gap_after_first_error(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, code: int
) -> float:
    """Seconds between a refused send (``code``) and the next request on the same channel,
    when another conversation's message is waiting to go out."""
    first, second = two_whatsapp_conversations(workspace)
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(code))
    async with running_app(settings.model_copy(update={"send_backoff_base_seconds": 1.0}), workspace) as client:
        runtime = client.app.state.runtime
        refused = queue(workspace, first)
        runtime.wake_sender()

        async def answered() -> bool:
            return outbox_row(workspace, refused)["attempts"] == 1 and outbox_row(workspace, refused)["state"] == "queued"

        await wait_until(answered)
        waiting = queue(workspace, second)
        runtime.wake_sender()
        await settled(workspace, waiting)
        await settled(workspace, refused)
    requests = graph_api.sends_to(PHONE_ID)
    return requests[1].at - requests[0].at


@pytest.mark.parametrize("code", [130429, 80007, 613], ids=["throughput", "waba-rate-limit", "calls-per-hour"])
async def test_a_throttled_channel_holds_every_send_for_the_backoff(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, code: int
) -> None:
    assert await _gap_after_first_error(settings, workspace, graph_api, code) >= 0.45


async def test_a_transient_error_of_one_message_does_not_hold_the_channel(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    assert await _gap_after_first_error(settings, workspace, graph_api, 131000) < 0.4


# --- 131050: the contact stopped marketing messages --------------------------------------------

def opted_out(workspace: Workspace, conversation_id: int) -> bool:
    return bool(workspace.gateway.read_sync(lambda db: scalar(
        db, "SELECT c.marketing_opt_out FROM contacts c JOIN conversations cv ON cv.contact_id = c.id "
            "WHERE cv.id = ?", [conversation_id])))


async def test_131050_from_the_send_fails_it_and_records_the_opt_out(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(131050, message="User stopped marketing"))
    message_id = queue(workspace, first)
    runtime.wake_sender()
    row = await settled(workspace, message_id)
    assert (row["status"], row["error_code"], opted_out(workspace, first)) == ("failed", "131050", True)


def _failed_status(message_id: int, wamid: str, code: int) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
            "statuses": [{"id": wamid, "status": "failed", "timestamp": str(int(utcnow().timestamp())),
                          "recipient_id": "995550000001", "biz_opaque_callback_data": f"aat:{message_id}",
                          "errors": [{"code": code, "title": "Marketing stopped"}]}],
        }}]}]}).encode()


async def test_131050_in_a_status_records_the_opt_out(
    client: AsyncTestClient, runtime: Any, workspace: Workspace
) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    message_id = queue(workspace, first)
    runtime.wake_sender()
    sent = await settled(workspace, message_id)
    await ingest(client, _failed_status(message_id, sent["external_id"], 131050))
    assert (message(workspace, message_id)["status"], opted_out(workspace, first)) == ("failed", True)


async def test_another_failed_status_records_no_opt_out(
    client: AsyncTestClient, runtime: Any, workspace: Workspace
) -> None:
    first, _ = two_whatsapp_conversations(workspace)
    message_id = queue(workspace, first)
    runtime.wake_sender()
    sent = await settled(workspace, message_id)
    await ingest(client, _failed_status(message_id, sent["external_id"], 131026))
    assert opted_out(workspace, first) is False


def _queued_rows(workspace: Workspace, message_id: int) -> tuple[Any, ...]:
    msg = rows(workspace, "SELECT * FROM messages WHERE id = ?", [message_id])[0]
    box = rows(workspace, "SELECT * FROM outbox WHERE message_id = ?", [message_id])[0]
    conv = rows(workspace, "SELECT last_message_at, updated_at FROM conversations WHERE id = ?",
                [msg["conversation_id"]])[0]
    emitted = [(e["type"], e["contact_id"] == msg["contact_id"], e["message_id"] == message_id) for e in rows(
        workspace, "SELECT * FROM events WHERE conversation_id = ? ORDER BY id", [msg["conversation_id"]])]
    skip = {"id", "message_id", "conversation_id", "contact_id"}
    return ({k: v for k, v in msg.items() if k not in skip}, {k: v for k, v in box.items() if k not in skip},
            conv, emitted)


def test_a_batch_queued_by_a_broadcast_writes_what_enqueue_writes_one_by_one(workspace: Workspace) -> None:
    first, second = two_whatsapp_conversations(workspace)
    now = iso_now()
    contact = rows(workspace, "SELECT c.id AS contact_id, c.channel_id, c.name, c.first_name, c.last_name, "
                              "c.fields, 'whatsapp' AS channel_type FROM contacts c JOIN conversations v "
                              "ON v.contact_id = c.id WHERE v.id = ?", [second])[0]
    payload = {"template": {"name": "spring_sale", "language": "en_US"}, "broadcast": {"id": 7}}
    alone = workspace.gateway.write_sync(lambda db: outbox.enqueue(
        db, conversation_id=first, kind="template", text=None, payload=payload, sent_by="bot", user_id=None,
        messaging_type=None, tag=None, now=now, priority=recipients.BROADCAST_PRIORITY))
    queued = workspace.gateway.write_sync(lambda db: recipients._queue(
        db, 7, {"template": {"name": "spring_sale", "language": "en_US"}}, [(contact, second)], {}, set(), now,
        from_iso(now), ""))
    together = queued[0][0]
    assert together == alone + 1 and queued[0][1:] == (now, 7, contact["contact_id"])
    assert _queued_rows(workspace, alone) == _queued_rows(workspace, together)
