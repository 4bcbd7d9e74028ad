"""How fast and when broadcasts go out: the channel's rate limit against the Graph stand-in
(which answers 130429 when one second holds more than the limit), backoff when Meta throttles
anyway, the pair rate, pause and resume, cancel, scheduling, agent replies during a broadcast,
and a template Meta pauses mid-send."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from tests.appliance.api_helpers import rows
from tests.appliance.broadcast_helpers import (
    ORDER_READY,
    PHONE_ID,
    WABA_ID,
    act,
    catalogue,
    connect,
    create,
    fetch,
    recipients,
    send,
    sent_to,
    sync_templates,
    until_status,
    wa_contact,
)
from tests.appliance.outbox_helpers import queue, running_app, settled
from tests.helpers import ingest, make_token, wait_until
from tests.standins.graph_api import GraphStandIn, RecordedRequest


@pytest.fixture
def auth(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


def busiest_second(requests: list[RecordedRequest]) -> int:
    """The most requests that arrived within any one second (a sliding window)."""
    times = sorted(r.at for r in requests)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def contacts(workspace: Workspace, count: int, **channel: Any) -> int:
    channel_id = connect(workspace, "whatsapp", **channel)
    for n in range(count):
        wa_contact(workspace, channel_id, n)
    return channel_id


# --- the rate limit -----------------------------------------------------------------------------------

async def test_the_limiter_holds_the_channels_rate_against_meta(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.rate_limits[PHONE_ID] = 20  # the stand-in refuses (130429) the 21st request in a second
    contacts(workspace, 100, rate_limit=20)
    final = await send(client, auth, {"text": "The sale is on"}, timeout=30)
    requests = graph_api.sends_to(PHONE_ID)
    assert (graph_api.violations, busiest_second(requests), final["counts"]["sent"]) == ([], 20, 100)
    assert sorted(Counter(sent_to(graph_api)).values()) == [1] * 100
    assert requests[-1].at - requests[0].at >= 4.0  # 100 at 20/s: the limit, not the machine, set the pace


async def test_when_meta_throttles_anyway_the_broadcast_backs_off_and_everyone_gets_one_copy(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    graph_api.rate_limits[PHONE_ID] = 10  # Meta's real limit is below the configured one
    contacts(workspace, 40, rate_limit=25)
    async with running_app(settings.model_copy(update={"send_backoff_base_seconds": 0.5}), workspace) as client:
        auth = make_token(workspace, "admin")
        final = await send(client, auth, {"text": "The sale is on"}, timeout=60)
    accepted = [r for r in graph_api.sends_to(PHONE_ID)]
    refused = len(graph_api.violations)
    assert refused > 0 and final["counts"] == {"total": 40, "sent": 40, "delivered": 0, "read": 0, "failed": 0,
                                               "skipped": 0}
    delivered = Counter(sent_to(graph_api))
    assert len(accepted) == 40 + refused and set(delivered) == {f"9955500000{n:02d}" for n in range(40)}


# --- the pair rate ------------------------------------------------------------------------------------

async def test_a_contact_gets_no_broadcast_within_6_seconds_of_its_last_message(
    client: AsyncTestClient, auth: dict[str, str], runtime: Any, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 1)
    [conversation] = rows(workspace, "SELECT id FROM conversations")
    await settled(workspace, queue(workspace, conversation["id"], "Your order shipped"))
    await send(client, auth, {"text": "The sale is on"}, timeout=20)
    first, second = graph_api.sends_to(PHONE_ID)
    assert second.at - first.at >= 6.0


# --- pause, resume, cancel -----------------------------------------------------------------------------

async def _sending(client: AsyncTestClient, auth: dict[str, str], graph_api: GraphStandIn, at_least: int) -> str:
    broadcast = await create(client, auth, {"text": "The sale is on"})
    await act(client, auth, broadcast["id"], "start")

    async def started() -> bool:
        return len(graph_api.sends_to(PHONE_ID)) >= at_least

    await wait_until(started)
    return broadcast["id"]


def taken_by_sender(workspace: Workspace, broadcast_id: str) -> set[int]:
    """Messages of the broadcast the sender has already taken (claimed) or sent."""
    return {r["message_id"] for r in rows(
        workspace, "SELECT r.message_id FROM broadcast_recipients r LEFT JOIN outbox o ON o.message_id = r.message_id "
                   "WHERE r.broadcast_id = ? AND r.message_id IS NOT NULL AND (o.id IS NULL OR o.state = 'sending')",
        [int(broadcast_id)])}


async def test_pause_stops_the_broadcast_and_resume_finishes_it_without_a_second_copy(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 30, rate_limit=5)
    broadcast_id = await _sending(client, auth, graph_api, at_least=3)
    paused = await act(client, auth, broadcast_id, "pause")
    taken = taken_by_sender(workspace, broadcast_id)
    assert paused["status"] == "paused" and len(taken) <= 5 + 3  # at most the backlog beyond what went out

    async def quiet() -> bool:
        return (await fetch(client, auth, broadcast_id))["progress"]["queued"] == 0

    await wait_until(quiet)
    after_pause = len(graph_api.sends_to(PHONE_ID))
    references = {int(r.json["biz_opaque_callback_data"].split(":")[1]) for r in graph_api.sends_to(PHONE_ID)}
    assert references <= taken  # nothing the sender had not taken went out after the pause
    pending = [r for r in recipients(workspace, broadcast_id).values() if r["state"] == "pending"]
    assert len(pending) == 30 - after_pause and all(r["message_id"] is None for r in pending)
    assert rows(workspace, "SELECT count(*) AS n FROM messages WHERE status = 'queued'") == [{"n": 0}]

    resumed = await act(client, auth, broadcast_id, "start")
    assert resumed["status"] == "sending"
    final = await until_status(client, auth, broadcast_id, "completed", timeout=20)
    assert final["counts"]["sent"] == 30 and sorted(Counter(sent_to(graph_api)).values()) == [1] * 30


async def test_a_paused_broadcast_sends_nothing_more(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    import asyncio

    contacts(workspace, 30, rate_limit=5)
    broadcast_id = await _sending(client, auth, graph_api, at_least=2)
    await act(client, auth, broadcast_id, "pause")
    await asyncio.sleep(2.0)  # what the sender had taken has gone out by now (5/s)
    settled_count = len(graph_api.sends_to(PHONE_ID))
    await asyncio.sleep(1.5)
    assert len(graph_api.sends_to(PHONE_ID)) == settled_count < 30


async def test_cancel_ends_it_and_counts_the_rest_as_skipped(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 30, rate_limit=5)
    broadcast_id = await _sending(client, auth, graph_api, at_least=3)
    cancelled = await act(client, auth, broadcast_id, "cancel")
    assert cancelled["status"] == "cancelled"

    async def quiet() -> bool:
        return (await fetch(client, auth, broadcast_id))["progress"]["queued"] == 0

    await wait_until(quiet)
    final = await fetch(client, auth, broadcast_id)
    went_out = len(graph_api.sends_to(PHONE_ID))
    assert final["counts"] == {"total": 30, "sent": went_out, "delivered": 0, "read": 0, "failed": 0,
                               "skipped": 30 - went_out}
    assert final["skipped_reasons"] == {"cancelled": 30 - went_out}
    assert len(set(sent_to(graph_api))) == went_out < 30


# --- scheduling -----------------------------------------------------------------------------------------

async def test_a_scheduled_broadcast_starts_at_send_at(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 2)
    send_at = utcnow() + timedelta(seconds=2)
    broadcast = await create(client, auth, {"text": "The sale is on"}, send_at=to_iso(send_at))
    assert (await act(client, auth, broadcast["id"], "start"))["status"] == "scheduled"
    final = await until_status(client, auth, broadcast["id"], "completed")
    assert final["started_at"] >= to_iso(send_at) and final["counts"]["sent"] == 2
    assert len(graph_api.sends_to(PHONE_ID)) == 2


async def test_a_scheduled_broadcast_started_again_stays_scheduled(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 1)
    broadcast = await create(client, auth, {"text": "Later"}, send_at=to_iso(utcnow() + timedelta(days=1)))
    await act(client, auth, broadcast["id"], "start")
    again = await act(client, auth, broadcast["id"], "start")
    assert (again["status"], graph_api.sends_to(PHONE_ID)) == ("scheduled", [])


# --- agent replies during a broadcast -------------------------------------------------------------------

async def test_an_agent_reply_is_not_stuck_behind_a_broadcast(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel_id = contacts(workspace, 20, rate_limit=4)
    customer = wa_contact(workspace, channel_id, 99, tags=("customer",))
    broadcast = await create(client, auth, {"text": "The sale is on"}, {"tags": {"none": ["customer"]}})
    await act(client, auth, broadcast["id"], "start")
    # The first second's 4 sends leave together: wait for all of them, so that none of that
    # burst is still on its way when the reply is queued.
    await wait_until(lambda: _count_at_least(graph_api, 4))
    [conversation] = rows(workspace, "SELECT id FROM conversations WHERE contact_id = ?", [customer])
    before = len(graph_api.sends_to(PHONE_ID))
    reply = await client.post(f"/api/v1/conversations/{conversation['id']}/messages", headers=auth,
                              json={"text": "Your refund is on its way"})
    await settled(workspace, int(reply.json()["id"]), timeout=10)
    order = sent_to(graph_api)
    # 20 broadcast messages at 4/s take 5 s: the reply waits for a slot with at most one of
    # them, not behind every message the broadcast has queued.
    assert order.index("995550000099") <= before + 2
    await until_status(client, auth, broadcast["id"], "completed", timeout=20)


async def _count_at_least(graph_api: GraphStandIn, n: int) -> bool:
    return len(graph_api.sends_to(PHONE_ID)) >= n


# --- a template Meta pauses mid-send ----------------------------------------------------------------------

def template_status(event: str) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": WABA_ID, "time": int(utcnow().timestamp()), "changes": [{
            "field": "message_template_status_update", "value": {
                "event": event, "message_template_id": 9002, "message_template_name": "order_ready",
                "message_template_language": "en_US", "reason": "NONE"}}]}]}).encode()


async def test_a_template_meta_pauses_pauses_the_broadcast(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    contacts(workspace, 30, rate_limit=5)
    catalogue(graph_api, ORDER_READY)
    await sync_templates(client, auth)
    broadcast = await create(client, auth, {"template": {"name": "order_ready", "language": "en_US",
                                                         "body": {"order": "1", "first_name": "A"}}})
    await act(client, auth, broadcast["id"], "start")
    await wait_until(lambda: _count_at_least(graph_api, 2))
    await ingest(client, template_status("PAUSED"))
    paused = await until_status(client, auth, broadcast["id"], "paused")
    assert paused["status_reason"] == "the template order_ready (en_US) is paused at Meta"
    [entry] = rows(workspace, "SELECT actor_kind, action, details FROM audit_log WHERE action = 'broadcast.pause'")
    assert (entry["actor_kind"], json.loads(entry["details"])["reason"]) == ("system", "template_not_sendable")
    refused = await client.post(f"/api/v1/broadcasts/{broadcast['id']}/start", headers=auth)
    assert refused.json()["error"]["code"] == "template_not_sendable"
    await ingest(client, template_status("APPROVED"))
    await act(client, auth, broadcast["id"], "start")
    final = await until_status(client, auth, broadcast["id"], "completed", timeout=20)
    assert final["counts"]["sent"] == 30 and sorted(Counter(sent_to(graph_api)).values()) == [1] * 30
