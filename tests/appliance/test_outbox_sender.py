"""The sender against the Graph API stand-in (a real HTTP server on loopback), through the real
app: what goes out (the exact JSON), the policy, the retry matrix, code 190, the rate limit,
ordering, and crash recovery. The app runs on another thread and event loop; tests watch the
database through the gateway and the stand-in's record, never the app's asyncio objects."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from appliance.channels.events import ContactRef
from appliance.connections.store import mark_needs_reauth
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.metrics import Metrics
from appliance.outbox import store as outbox
from appliance.outbox.sender import Sender
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso, utcnow
from tests.appliance.outbox_helpers import (
    CONTACTS,
    IG_ID,
    PAGE_ID,
    PHONE_ID,
    bodies,
    channel_row,
    connect,
    hours_ago,
    make_conversation,
    message,
    messenger_echo,
    outbox_row,
    queue,
    running_app,
    settled,
    setup_conversation,
    whatsapp_status,
)
from tests.helpers import ingest, make_token, wait_until
from tests.standins.graph_api import GraphStandIn, Scripted

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


# --- what goes out ---------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp"])
async def test_a_bot_message_goes_out_in_metas_format(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str
) -> None:
    message_id = queue_to(workspace, runtime, channel)
    await settled(workspace, message_id)
    assert bodies(graph_api, ASSET[channel]) == [expected_body(channel, message_id)]


@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp"])
async def test_a_send_is_posted_to_the_assets_endpoint_with_its_token(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str
) -> None:
    await settled(workspace, queue_to(workspace, runtime, channel))
    [request] = graph_api.requests
    assert (request.path, request.headers["authorization"]) == (
        f"/v25.0/{ASSET[channel]}/messages", "Bearer EAAG-test-token")


@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp"])
async def test_a_sent_message_records_metas_id(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, channel: str
) -> None:
    row = await settled(workspace, queue_to(workspace, runtime, channel))
    assert (row["status"], row["external_id"]) == (
        "sent", "wamid.OUT1" if channel == "whatsapp" else "m_OUT1")


async def test_a_message_in_two_requests_references_each_part(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = queue_to(workspace, runtime, "messenger", "Look at this",
                          payload={"media": {"type": "image", "url": "https://example.com/a.jpg"}})
    await settled(workspace, message_id)
    assert bodies(graph_api, PAGE_ID) == [
        {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {
            "attachment": {"type": "image", "payload": {"url": "https://example.com/a.jpg", "is_reusable": True}},
            "metadata": f"aat:{message_id}"}},
        {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
         "message": {"text": "Look at this", "metadata": f"aat:{message_id}:1"}},
    ]


async def test_wake_from_another_thread_sends_at_once(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = setup_conversation(workspace, "messenger")
    await asyncio.sleep(0.3)  # let the idle sender settle into its long poll
    queue(workspace, conversation_id)
    woken = time.monotonic()
    runtime.wake_sender()  # from the test's thread, not the app's
    await wait_until(lambda: _requests(graph_api, 1))
    assert graph_api.requests[0].at - woken < 1.0  # the idle poll is 5 s


async def _requests(graph_api: GraphStandIn, count: int) -> bool:
    return len(graph_api.requests) >= count


# --- the policy: through the API, and again at send time -------------------------------------

@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_a_human_reply_at_30_hours_goes_out_with_the_human_agent_tag(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn, channel: str
) -> None:
    _, conversation_id = setup_conversation(workspace, channel, last_inbound_at=hours_ago(30))
    response = await reply(client, auth, conversation_id, text="An agent here")
    message_id = int(response.json()["id"])
    await settled(workspace, message_id)
    assert bodies(graph_api, ASSET[channel]) == [
        expected_body(channel, message_id, "An agent here", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")]


async def test_a_human_reply_at_30_hours_is_recorded_as_tagged(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    _, conversation_id = setup_conversation(workspace, "messenger", last_inbound_at=hours_ago(30))
    response = await reply(client, auth, conversation_id, text="An agent here")
    await settled(workspace, int(response.json()["id"]))
    item = await api_message(client, auth, conversation_id)
    assert (item["status"], item["sent_by"], item["messaging_type"], item["tag"]) == (
        "sent", "user", "MESSAGE_TAG", "HUMAN_AGENT")


async def test_an_agent_reply_is_accepted_for_sending(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    _, conversation_id = setup_conversation(workspace, "whatsapp", last_inbound_at=hours_ago(23))
    response = await reply(client, auth, conversation_id, text="Yes, open until 8")
    assert (response.status_code, response.json()["status"], response.json()["text"]) == (
        202, "queued", "Yes, open until 8")


# (channel, hours since the contact wrote, body, expected error code)
REFUSED_BY_THE_API = [
    pytest.param("whatsapp", 25, {"text": "Hi"}, "template_required", id="whatsapp-free-form-25h"),
    pytest.param("whatsapp", None, {"text": "Hi"}, "template_required", id="whatsapp-never-wrote"),
    pytest.param("messenger", 24 * 8, {"text": "Hi"}, "outside_window", id="messenger-8-days"),
    pytest.param("instagram", 24 * 7, {"text": "Hi"}, "outside_window", id="instagram-7-days"),
    pytest.param("messenger", 1, {"template": {"name": "order_update", "language": "en_US"}},
                 "template_not_supported", id="messenger-template"),
]


@pytest.mark.parametrize(("channel", "hours", "body", "code"), REFUSED_BY_THE_API)
async def test_the_api_refuses_what_meta_would_refuse(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace,
    channel: str, hours: float | None, body: dict[str, Any], code: str,
) -> None:
    channel_id = connect(workspace, channel)
    _, external_id, wa_id = CONTACTS[channel]
    conversation_id = make_conversation(workspace, channel_id, external_id, wa_id=wa_id,
                                        last_inbound_at=None if hours is None else hours_ago(hours))
    response = await reply(client, auth, conversation_id, **body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)


async def test_a_refused_reply_queues_nothing_and_sends_nothing(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = setup_conversation(workspace, "whatsapp", last_inbound_at=hours_ago(25))
    await reply(client, auth, conversation_id, text="Hi")
    runtime.wake_sender()
    messages = (await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=auth)).json()
    assert (messages["items"], await runtime.db.read(outbox.depth), graph_api.requests) == ([], 0, [])


@pytest.mark.parametrize("hours", [24 * 30, None], ids=["30-days", "never-wrote"])
async def test_a_whatsapp_template_goes_out_outside_the_window(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn,
    hours: float | None,
) -> None:
    channel_id = connect(workspace, "whatsapp")
    _, external_id, wa_id = CONTACTS["whatsapp"]
    conversation_id = make_conversation(workspace, channel_id, external_id, wa_id=wa_id,
                                        last_inbound_at=None if hours is None else hours_ago(hours))
    response = await reply(client, auth, conversation_id, template=TEMPLATE)
    message_id = int(response.json()["id"])
    await settled(workspace, message_id)
    assert bodies(graph_api, PHONE_ID) == [{
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
        "biz_opaque_callback_data": f"aat:{message_id}", "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"},
                     "components": TEMPLATE["components"]},
    }]


# (channel, hours since the contact wrote, sent_by, expected error code)
BLOCKED_AT_SEND_TIME = [
    pytest.param("messenger", 25, "bot", "outside_window", id="messenger-bot-25h"),
    pytest.param("instagram", 25, "bot", "outside_window", id="instagram-bot-25h"),
    pytest.param("messenger", 24 * 7 + 1, "user", "outside_window", id="messenger-human-7d"),
    pytest.param("whatsapp", 25, "bot", "template_required", id="whatsapp-bot-25h"),
    pytest.param("whatsapp", 30, "user", "template_required", id="whatsapp-human-30h"),
]


@pytest.mark.parametrize(("channel", "hours", "sent_by", "code"), BLOCKED_AT_SEND_TIME)
async def test_a_send_the_policy_forbids_fails_with_the_reason_and_is_never_attempted(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn,
    channel: str, hours: float, sent_by: str, code: str,
) -> None:
    row = await settled(workspace, queue_to(workspace, runtime, channel, hours=hours, sent_by=sent_by))
    assert (row["status"], row["error_code"], bool(row["error_message"]), graph_api.requests) == (
        "failed", code, True, [])


COMMENT_ID = "112233445566778_9988776655"


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_a_private_reply_within_7_days_goes_to_the_comment(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str
) -> None:
    channel_id = connect(workspace, channel)
    conversation_id = make_conversation(workspace, channel_id, CONTACTS[channel][1], last_inbound_at=None)
    message_id = queue(workspace, conversation_id, "Thanks! Check your inbox", payload={
        "private_reply_to": COMMENT_ID, "comment_created_at": to_iso(hours_ago(24 * 6))})
    runtime.wake_sender()
    await settled(workspace, message_id)
    assert bodies(graph_api, ASSET[channel]) == [{
        "recipient": {"comment_id": COMMENT_ID}, "messaging_type": "RESPONSE",
        "message": {"text": "Thanks! Check your inbox", "metadata": f"aat:{message_id}"}}]


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_a_private_reply_after_7_days_is_never_attempted(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str
) -> None:
    _, conversation_id = setup_conversation(workspace, channel)  # a DM window open changes nothing
    message_id = queue(workspace, conversation_id, "Thanks!", payload={
        "private_reply_to": COMMENT_ID, "comment_created_at": to_iso(hours_ago(24 * 7 + 1))})
    runtime.wake_sender()
    row = await settled(workspace, message_id)
    assert (row["status"], row["error_code"], graph_api.requests) == ("failed", "outside_window", [])


@pytest.mark.parametrize(("channel", "endpoint"), [("messenger", "comments"), ("instagram", "replies")])
async def test_a_public_reply_goes_under_the_comment_not_into_the_inbox(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str,
    endpoint: str,
) -> None:
    _, conversation_id = setup_conversation(workspace, channel)
    message_id = queue(workspace, conversation_id, "We sent you a DM", kind="comment",
                       payload={"public_reply_to": COMMENT_ID})
    runtime.wake_sender()
    row = await settled(workspace, message_id)
    assert (row["status"], row["error_code"], graph_api.requests) == ("sent", None, [])
    [request] = graph_api.other_requests
    assert (request.method, request.path, request.json) == (
        "POST", f"/v25.0/{COMMENT_ID}/{endpoint}", {"message": "We sent you a DM"})
    assert request.headers["authorization"].startswith("Bearer ")


# --- the retry matrix ---------------------------------------------------------------------------

# 131056 (pair rate) waits at least 6 s before its retry: it is covered below with the
# sender on a fake clock instead of slowing this table down.
TRANSIENT = [("messenger", c) for c in (1, 2, 4, 17, 32, 613, 1200, 80001, 80002, 80003, 80004, 80005, 80006)] + [
    ("instagram", c) for c in (2, 613, 80002)] + [
    ("whatsapp", c) for c in (1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133016, 135000)]


@pytest.mark.parametrize(("channel", "code"), TRANSIENT)
async def test_a_transient_error_is_retried_then_sent(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, channel: str, code: int
) -> None:
    graph_api.fail_next(ASSET[channel], GraphStandIn.graph_error(code))
    message_id = queue_to(workspace, runtime, channel)
    row = await settled(workspace, message_id)
    assert (row["status"], bodies(graph_api, ASSET[channel])) == ("sent", [expected_body(channel, message_id)] * 2)


@pytest.mark.parametrize("answer", [
    pytest.param(Scripted(status=500, body=b"<html>Internal error</html>"), id="html-500"),
    pytest.param(Scripted(status=502, body=b"Bad gateway"), id="text-502"),
    pytest.param(Scripted(status=503, body=b""), id="empty-503"),
    pytest.param(Scripted(status=504, body=b"{broken"), id="broken-json-504"),
    pytest.param(Scripted(status=429, body=b"Too Many Requests"), id="text-429"),
    pytest.param(Scripted(status=500, error={"message": "An unexpected error", "code": 987654}), id="unknown-code-500"),
    pytest.param(Scripted(drop=True), id="dropped-connection"),
])
async def test_a_bare_server_error_or_dropped_connection_is_retried_then_sent(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn, answer: Scripted
) -> None:
    graph_api.fail_next(PAGE_ID, answer)
    message_id = queue_to(workspace, runtime, "messenger")
    row = await settled(workspace, message_id)
    assert (row["status"], len(graph_api.requests)) == ("sent", 2)


async def test_a_timeout_is_retried_then_sent(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PAGE_ID, Scripted(status=200, body=b"{}", delay=0.8))
    async with running_app(tuned(settings, http_timeout_seconds=0.3), workspace) as app:
        message_id = queue_to(workspace, app.app.state.runtime, "messenger")
        row = await settled(workspace, message_id)
    assert (row["status"], bodies(graph_api, PAGE_ID)) == ("sent", [expected_body("messenger", message_id)] * 2)


# (channel, code, subcode, HTTP status, Meta's message)
PERMANENT = [
    ("messenger", 10, 2018278, 400, "(#10) This message is sent outside of allowed window."),
    ("instagram", 10, 2534022, 400, "(#10) This message is sent outside of allowed window."),
    ("messenger", 100, 2018001, 400, "(#100) No matching user found"),
    ("messenger", 551, 1545041, 400, "This person isn't available right now."),
    ("messenger", 230, None, 403, "(#230) Permissions disallow message to user"),
    ("messenger", 368, None, 400, "Temporarily blocked for policies violations"),
    ("messenger", 10900, None, 400, "Activity already replied to"),
    ("whatsapp", 131026, None, 400, "Message undeliverable"),
    ("whatsapp", 131047, None, 400, "Re-engagement message"),
    ("whatsapp", 131050, None, 400, "User has stopped marketing messages"),
    ("whatsapp", 131049, None, 400, "Marketing message not delivered to maintain healthy ecosystem engagement"),
    ("whatsapp", 131008, None, 400, "Required parameter is missing"),
    ("whatsapp", 132001, None, 404, "Template name does not exist in the translation"),
    ("whatsapp", 131026, None, 500, "Message undeliverable"),  # even with a 5xx
]


@pytest.mark.parametrize(("channel", "code", "subcode", "status", "text"), PERMANENT)
async def test_a_permanent_error_fails_at_once_with_metas_code_and_message(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn,
    channel: str, code: int, subcode: int | None, status: int, text: str,
) -> None:
    graph_api.fail_next(ASSET[channel], GraphStandIn.graph_error(code, subcode=subcode, status=status, message=text))
    _, conversation_id = setup_conversation(workspace, channel)
    message_id = queue(workspace, conversation_id)
    runtime.wake_sender()
    await settled(workspace, message_id)
    item = await api_message(client, auth, conversation_id)
    assert (item["status"], item["error"], len(graph_api.requests)) == (
        "failed", {"code": str(code), "message": text}, 1)


async def test_a_bare_client_error_fails_at_once(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PAGE_ID, Scripted(status=400, body=b"<html>Bad request</html>"))
    row = await settled(workspace, queue_to(workspace, runtime, "messenger"))
    assert (row["status"], row["error_code"], len(graph_api.requests)) == ("failed", "http_400", 1)


# (what Meta answers every time, the error code the message ends with)
EXHAUSTED = [
    pytest.param(GraphStandIn.graph_error(2, message="Service temporarily unavailable"), "2", id="code-2"),
    pytest.param(GraphStandIn.graph_error(130429, message="Rate limit hit"), "130429", id="code-130429"),
    pytest.param(Scripted(status=503, body=b"unavailable"), "http_503", id="bare-503"),
    pytest.param(Scripted(drop=True), "network_error", id="dropped"),
]


@pytest.mark.parametrize(("answer", "code"), EXHAUSTED)
async def test_retries_stop_after_max_attempts(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, answer: Scripted, code: str
) -> None:
    graph_api.fail_next(PAGE_ID, answer, answer, answer)
    async with running_app(tuned(settings, send_max_attempts=3), workspace) as app:
        row = await settled(workspace, queue_to(workspace, app.app.state.runtime, "messenger"))
    assert (row["status"], row["error_code"], len(graph_api.requests)) == ("failed", code, 3)


async def test_messages_to_one_contact_go_out_in_order_when_the_first_is_retried(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PAGE_ID, GraphStandIn.graph_error(2))
    _, conversation_id = setup_conversation(workspace, "messenger")
    first, second, third = (queue(workspace, conversation_id, text) for text in ("one", "two", "three"))
    runtime.wake_sender()
    await settled(workspace, third)
    assert [b["message"]["metadata"] for b in bodies(graph_api, PAGE_ID)] == [
        f"aat:{first}", f"aat:{first}", f"aat:{second}", f"aat:{third}"]


# --- code 190: the channel needs re-authentication ----------------------------------------------

async def _fail_with_190(workspace: Workspace, runtime: Any, graph_api: GraphStandIn) -> tuple[int, int]:
    """Meta rejects the channel's token (the stand-in checks it: 401, code 190, subcode 463);
    returns (channel id, conversation id) once the message has failed."""
    graph_api.tokens[PAGE_ID] = "EAAG-the-new-token"
    channel_id, conversation_id = setup_conversation(workspace, "messenger")
    message_id = queue(workspace, conversation_id)
    runtime.wake_sender()
    await settled(workspace, message_id)
    return channel_id, conversation_id


async def test_190_marks_the_channel_needs_reauth(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel_id, _ = await _fail_with_190(workspace, runtime, graph_api)
    [channel] = (await client.get("/api/v1/channels", headers=auth)).json()["items"]
    assert (channel["id"], channel["status"], bool(channel["status_reason"])) == (
        str(channel_id), "needs_reauth", True)


async def test_190_fails_the_message_with_the_reason(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = await _fail_with_190(workspace, runtime, graph_api)
    item = await api_message(client, auth, conversation_id)
    assert (item["status"], item["error"]) == ("failed", {
        "code": "190", "message": "the channel's access token is no longer valid; reconnect the channel"})


async def test_190_is_not_retried(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    await _fail_with_190(workspace, runtime, graph_api)
    assert len(graph_api.requests) == 1


async def test_190_scripted_with_an_expired_session(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(190, subcode=463, status=401, message="Session expired"))
    message_id = queue_to(workspace, runtime, "whatsapp")
    await settled(workspace, message_id)
    assert channel_row(workspace, message(workspace, message_id)["channel_id"])["status"] == "needs_reauth"


async def test_after_190_a_queued_message_fails_without_a_request(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = await _fail_with_190(workspace, runtime, graph_api)
    later = queue(workspace, conversation_id, "Still there?")
    runtime.wake_sender()
    row = await settled(workspace, later)
    assert (row["status"], row["error_code"], len(graph_api.requests)) == ("failed", "channel_needs_reauth", 1)


async def test_after_190_an_agent_reply_is_refused(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = await _fail_with_190(workspace, runtime, graph_api)
    response = await reply(client, auth, conversation_id, text="Hello?")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "channel_unavailable")


async def test_after_reconnecting_messages_go_out_again(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = await _fail_with_190(workspace, runtime, graph_api)
    response = await client.post("/api/v1/channels", headers=auth, json={
        "type": "messenger", "external_id": PAGE_ID, "access_token": "EAAG-the-new-token"})
    assert response.status_code == 201
    message_id = queue(workspace, conversation_id, "Back again")
    runtime.wake_sender()
    row = await settled(workspace, message_id)
    assert (row["status"], graph_api.requests[-1].headers["authorization"]) == ("sent", "Bearer EAAG-the-new-token")


# --- the rate limit --------------------------------------------------------------------------------

async def _burst(workspace: Workspace, runtime: Any, count: int, **channel_kw: Any) -> list[int]:
    """``count`` WhatsApp contacts who wrote an hour ago, one message queued to each."""
    channel_id = connect(workspace, "whatsapp", **channel_kw)

    def fill(db: Any) -> list[int]:
        ids = []
        for n in range(count):
            ref = ContactRef(f"GE.{n:020d}", wa_id=f"99555{n:07d}", bsuid=f"GE.{n:020d}")
            contact_id, _ = contacts.upsert_contact(db, channel_id, ref, iso_now())
            contacts.touch_inbound(db, contact_id, to_iso(hours_ago(1)))
            conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, iso_now())
            ids.append(outbox.enqueue(db, conversation_id=conversation_id, kind="text", text=f"Order #{n} shipped",
                                      payload={}, sent_by="bot", user_id=None, messaging_type=None, tag=None,
                                      now=iso_now()))
        return ids

    ids = workspace.gateway.write_sync(fill)
    runtime.wake_sender()
    return ids


async def _all_sent(workspace: Workspace, ids: list[int], timeout: float) -> list[str]:
    for message_id in ids:
        await settled(workspace, message_id, timeout=timeout)
    return sorted({message(workspace, i)["status"] for i in ids})


async def test_a_burst_on_a_channel_limited_to_50_per_second_breaks_no_limit(
    client: AsyncTestClient, runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.rate_limits[PHONE_ID] = 50
    ids = await _burst(workspace, runtime, 200, rate_limit=50)
    statuses = await _all_sent(workspace, ids, timeout=20)
    assert (graph_api.violations, statuses, len(graph_api.requests)) == ([], ["sent"], 200)


async def test_the_default_whatsapp_rate_setting_applies_to_a_channel_without_its_own(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.rate_limits[PHONE_ID] = 20
    async with running_app(tuned(settings, rate_limit_whatsapp=20), workspace) as app:
        ids = await _burst(workspace, app.app.state.runtime, 40)
        statuses = await _all_sent(workspace, ids, timeout=20)
    assert (graph_api.violations, statuses, len(graph_api.requests)) == ([], ["sent"], 40)


# --- crash recovery: sends in doubt ----------------------------------------------------------------

def _crashed_mid_send(workspace: Workspace, channel: str, text: str = "Hello",
                      payload: dict[str, Any] | None = None) -> int:
    """A message a crashed process had claimed (``sending``): Meta may or may not have it."""
    _, conversation_id = setup_conversation(workspace, channel)
    message_id = queue(workspace, conversation_id, text, payload=payload)
    workspace.gateway.write_sync(lambda db: outbox.claim_due(db, iso_now(), 10))
    return message_id


async def test_an_echo_within_the_grace_settles_a_send_in_doubt(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = _crashed_mid_send(workspace, "messenger")
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=30), workspace) as app:
        await ingest(app, messenger_echo(message_id, "m_ECHO77"))
        row = await settled(workspace, message_id)
    assert (row["status"], row["external_id"], graph_api.requests) == ("sent", "m_ECHO77", [])


async def test_a_whatsapp_status_within_the_grace_settles_a_send_in_doubt(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = _crashed_mid_send(workspace, "whatsapp")
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=30), workspace) as app:
        await ingest(app, whatsapp_status(message_id, "wamid.HBgLSTATUS77", "delivered"))
        row = await settled(workspace, message_id)
    assert (row["status"], row["external_id"], graph_api.requests) == ("delivered", "wamid.HBgLSTATUS77", [])


async def test_without_an_echo_a_send_in_doubt_goes_out_once_after_the_grace(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = _crashed_mid_send(workspace, "messenger")
    started = time.monotonic()
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=0.6), workspace):
        row = await settled(workspace, message_id)
    [request] = graph_api.requests
    assert (row["status"], request.json, request.at - started >= 0.6) == (
        "sent", expected_body("messenger", message_id), True)


async def test_a_send_queued_before_a_restart_goes_out_once(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    _, conversation_id = setup_conversation(workspace, "instagram")
    message_id = queue(workspace, conversation_id)  # no app running: it waits in the database
    async with running_app(settings, workspace):
        await settled(workspace, message_id)
    assert bodies(graph_api, IG_ID) == [expected_body("instagram", message_id)]


MEDIA_AND_TEXT = {"media": {"type": "image", "url": "https://example.com/a.jpg"}}


async def test_an_echo_of_the_last_part_settles_a_whole_message_in_doubt(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = _crashed_mid_send(workspace, "messenger", "Look", MEDIA_AND_TEXT)
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=30), workspace) as app:
        await ingest(app, messenger_echo(message_id, "m_PART1", text="Look", part=1))
        row = await settled(workspace, message_id)
    assert (row["status"], graph_api.requests) == ("sent", [])


async def test_an_echo_of_the_first_part_leaves_only_the_rest_to_send(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    message_id = _crashed_mid_send(workspace, "messenger", "Look", MEDIA_AND_TEXT)
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=30), workspace) as app:
        await ingest(app, messenger_echo(message_id, "m_PART0", text="", part=0))
        await settled(workspace, message_id)
    assert bodies(graph_api, PAGE_ID) == [{"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                                           "message": {"text": "Look", "metadata": f"aat:{message_id}:1"}}]


async def test_an_echo_during_a_send_that_then_times_out_prevents_a_second_request(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    # Meta took the message and echoed it, but its answer never reached us.
    graph_api.fail_next(PAGE_ID, Scripted(status=200, body=b"{}", delay=2.0))
    async with running_app(tuned(settings, http_timeout_seconds=1.0), workspace) as app:
        message_id = queue_to(workspace, app.app.state.runtime, "messenger")
        await wait_until(lambda: _requests(graph_api, 1))
        await ingest(app, messenger_echo(message_id, "m_ECHO88"))
        row = await settled(workspace, message_id)
    assert (row["status"], row["external_id"], len(graph_api.requests)) == ("sent", "m_ECHO88", 1)



# --- the Sender on the test's own event loop, with a fake clock ---------------------------------

class Clock:
    """The sender's wall clock, moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Highest(random.Random):
    """No jitter: every backoff is its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


@contextlib.asynccontextmanager
async def own_sender(settings: Settings, workspace: Workspace, clock: Clock) -> AsyncIterator[Sender]:
    """The real Sender, recovered and running on this test's loop."""
    async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
        sender = Sender(gateway=workspace.gateway, settings=settings, client=http, fields=workspace.fields,
                        metrics=Metrics(), clock=clock, rng=Highest())
        await sender.recover()
        task = asyncio.create_task(sender.run())
        try:
            yield sender
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sender.drain()


async def _waiting_for_retry(workspace: Workspace, message_id: int) -> dict[str, Any]:
    async def retried() -> bool:
        row = outbox_row(workspace, message_id)
        return row is not None and row["state"] == "queued" and row["attempts"] == 1

    await wait_until(retried)
    return outbox_row(workspace, message_id)  # type: ignore[return-value]


async def test_the_sender_stops_when_cancelled_just_as_it_is_woken(settings: Settings, workspace: Workspace) -> None:
    # asyncio.wait_for on Python 3.11 swallows a cancellation that arrives with the wake-up
    # (gh-86296): the run loop would go on, and the app's shutdown would wait for it forever.
    sender = Sender(gateway=workspace.gateway, settings=settings, client=httpx.AsyncClient(),
                    fields=workspace.fields, metrics=Metrics())
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(0.3)  # idle, waiting to be woken
    sender.wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    assert done == {task}


async def test_recover_requeues_a_send_in_doubt_after_the_grace(settings: Settings, workspace: Workspace) -> None:
    message_id = _crashed_mid_send(workspace, "messenger")
    clock = Clock()
    sender = Sender(gateway=workspace.gateway, settings=tuned(settings, send_in_doubt_grace_seconds=20),
                    client=httpx.AsyncClient(), fields=workspace.fields, metrics=Metrics(), clock=clock)
    assert await sender.recover() == 1
    row = outbox_row(workspace, message_id)
    assert (row["state"], row["next_attempt_at"]) == ("queued", to_iso(clock.now + timedelta(seconds=20)))  # type: ignore[index]


@pytest.mark.parametrize(("headers", "seconds"), [
    pytest.param({"Retry-After": "120"}, 120, id="retry-after"),
    pytest.param({"X-Business-Use-Case-Usage": '{"112233445566778": [{"type": "messenger", "call_count": 100, '
                                                '"estimated_time_to_regain_access": 3}]}'}, 180, id="buc-minutes"),
])
async def test_a_retry_waits_as_long_as_meta_asked(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, headers: dict[str, str], seconds: float
) -> None:
    graph_api.fail_next(PAGE_ID, GraphStandIn.graph_error(80006, headers=headers))
    _, conversation_id = setup_conversation(workspace, "messenger")
    message_id = queue(workspace, conversation_id)
    clock = Clock()
    async with own_sender(settings, workspace, clock):
        row = await _waiting_for_retry(workspace, message_id)
    assert (row["next_attempt_at"], row["last_error"]) == (to_iso(clock.now + timedelta(seconds=seconds)), "code 80006")


async def test_a_pair_rate_error_is_retried_no_sooner_than_6_seconds(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(131056, message="Pair rate limit hit"))
    _, conversation_id = setup_conversation(workspace, "whatsapp")
    message_id = queue(workspace, conversation_id)
    clock = Clock()
    async with own_sender(settings, workspace, clock):
        row = await _waiting_for_retry(workspace, message_id)
    assert row["next_attempt_at"] == to_iso(clock.now + timedelta(seconds=6))


async def test_a_pair_rate_error_is_sent_once_its_time_comes(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(131056, message="Pair rate limit hit"))
    _, conversation_id = setup_conversation(workspace, "whatsapp")
    message_id = queue(workspace, conversation_id)
    clock = Clock()
    async with own_sender(settings, workspace, clock) as sender:
        await _waiting_for_retry(workspace, message_id)
        clock.advance(6)
        sender.wake()
        row = await settled(workspace, message_id)
    assert (row["status"], bodies(graph_api, PHONE_ID)) == ("sent", [expected_body("whatsapp", message_id)] * 2)


async def test_the_policy_is_checked_again_when_the_message_goes_out(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    # Queued inside the window; by the time the sender gets to it, the window has closed.
    _, conversation_id = setup_conversation(workspace, "messenger", last_inbound_at=hours_ago(23.99))
    message_id = queue(workspace, conversation_id)
    clock = Clock()
    clock.advance(120)
    async with own_sender(settings, workspace, clock):
        row = await settled(workspace, message_id)
    assert (row["status"], row["error_code"], graph_api.requests) == ("failed", "outside_window", [])


@pytest.mark.parametrize("change", ["channel-needs-reauth", "window-closed"])
async def test_a_send_meta_already_reported_is_sent_whatever_changed_since(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, change: str
) -> None:
    message_id = _crashed_mid_send(workspace, "messenger")
    clock = Clock()
    if change == "window-closed":
        clock.advance(25 * 3600)
    async with own_sender(tuned(settings, send_in_doubt_grace_seconds=3600), workspace, clock) as sender:

        channel_id = message(workspace, message_id)["channel_id"]

        def echo_arrives(db: Any) -> None:
            if change == "channel-needs-reauth":
                mark_needs_reauth(db, channel_id, "token expired", iso_now())
            outbox.settle(db, message_id, 0, "m_ECHO5", to_iso(clock.now))

        workspace.gateway.write_sync(echo_arrives)
        sender.wake()
        row = await settled(workspace, message_id)
    assert (row["status"], row["external_id"], graph_api.requests) == ("sent", "m_ECHO5", [])
