"""The sender against the Graph API stand-in: the retry matrix, code 190 (the channel needs
re-authentication) and the rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.channels.events import ContactRef
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.outbox import store as outbox
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso
from tests.appliance.outbox_helpers import (
    PAGE_ID,
    PHONE_ID,
    bodies,
    channel_row,
    connect,
    hours_ago,
    message,
    queue,
    running_app,
    settled,
    setup_conversation,
)
from tests.appliance.sender_helpers import (
    ASSET,
    api_message,
    auth,  # noqa: F401 - a fixture
    expected_body,
    queue_to,
    reply,
    tuned,
)
from tests.standins.graph_api import GraphStandIn, Scripted

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


async def test_a_send_that_timed_out_keeps_its_rate_slot_for_the_timeout_as_well(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    # Meta may count a request we gave up on whenever it gets there, so at 1 send per second the
    # retry waits the timeout (0.3 s) and then the second and its margin, after the timeout.
    graph_api.rate_limits[PAGE_ID] = 1
    graph_api.fail_next(PAGE_ID, Scripted(status=200, body=b"{}", delay=0.8))
    async with running_app(tuned(settings, http_timeout_seconds=0.3), workspace) as app:
        message_id = queue_to(workspace, app.app.state.runtime, "messenger", rate_limit=1)
        row = await settled(workspace, message_id)
    first, retry = graph_api.sends_to(PAGE_ID)
    assert (row["status"], graph_api.violations) == ("sent", [])
    assert retry.at - first.at >= 0.3 + 0.3 + 1.0


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
