"""The sender against the Graph API stand-in (a real HTTP server on loopback), through the real
app: what goes out (the exact JSON) and the policy. The retry matrix, code 190 and the rate limit:
test_outbox_retries.py; crash recovery and the sender on a fake clock: test_outbox_recovery.py.
The app runs on another thread and event loop; tests watch the database through the gateway and
the stand-in's record, never the app's asyncio objects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.outbox import store as outbox
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso
from tests.appliance.outbox_helpers import (
    CONTACTS,
    PAGE_ID,
    PHONE_ID,
    bodies,
    connect,
    hours_ago,
    make_conversation,
    queue,
    settled,
    setup_conversation,
)
from tests.appliance.sender_helpers import (
    ASSET,
    PSID,
    TEMPLATE,
    WA_ID,
    api_message,
    auth,  # noqa: F401 - a fixture
    expected_body,
    queue_to,
    reply,
    requests_reached,
)
from tests.helpers import wait_until
from tests.standins.graph_api import GraphStandIn

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
    await wait_until(lambda: requests_reached(graph_api, 1))
    assert graph_api.requests[0].at - woken < 1.0  # the idle poll is 5 s


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
