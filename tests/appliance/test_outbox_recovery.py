"""The sender after a crash (sends in doubt settled by echoes and statuses, or sent once after
the grace) and the Sender on the test's own event loop with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from appliance.connections.store import mark_needs_reauth
from appliance.metrics import Metrics
from appliance.outbox import store as outbox
from appliance.outbox.ratelimit import MARGIN_SECONDS, PERIOD_SECONDS
from appliance.outbox.sender import Sender
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, to_iso, utcnow
from tests.appliance.outbox_helpers import (
    IG_ID,
    PAGE_ID,
    PHONE_ID,
    bodies,
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
from tests.appliance.sender_helpers import (
    PSID,
    expected_body,
    queue_to,
    requests_reached,
    tuned,
)
from tests.helpers import ingest, wait_until
from tests.standins.graph_api import GraphStandIn, Scripted

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


# --- the rate limit across a restart ------------------------------------------------------------
# Meta counts a request on arrival; a new process's limiter would not know what the last one sent
# in the second before it died (tests/e2e/test_broadcasts_sigkill.py shows the violation).

PERIOD = PERIOD_SECONDS + MARGIN_SECONDS


def _sent(workspace: Workspace, conversation_id: int, seconds_ago: float) -> None:
    """A message the previous process sent on the conversation's channel ``seconds_ago``."""
    message_id = queue(workspace, conversation_id, "Earlier")

    def send(db: Any) -> None:
        [row] = outbox.claim_due(db, iso_now(), 10)
        outbox.mark_sent(db, row["outbox_id"], message_id, ["m_EARLIER"],
                         to_iso(utcnow() - timedelta(seconds=seconds_ago)))

    workspace.gateway.write_sync(send)


async def test_a_send_just_before_the_start_holds_the_channel_for_the_rest_of_its_second(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel_id, conversation_id = setup_conversation(workspace, "messenger")
    marked = time.monotonic()
    _sent(workspace, conversation_id, seconds_ago=0.3)
    message_id = queue(workspace, conversation_id, "Now")
    async with running_app(settings, workspace):
        await settled(workspace, message_id)
    [request] = graph_api.requests
    assert request.json["message"]["text"] == "Now"
    assert request.at - marked >= PERIOD - 0.3 - 0.002  # sent_at is stored to the millisecond


async def test_a_send_in_doubt_holds_its_channel_for_a_second_after_the_start(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn
) -> None:
    in_doubt = _crashed_mid_send(workspace, "messenger")  # waits for its echo: the grace is long
    channel_id = message(workspace, in_doubt)["channel_id"]
    other = make_conversation(workspace, channel_id, "2460009998887776", last_inbound_at=hours_ago(1 / 60))
    message_id = queue(workspace, other, "Next")
    started = time.monotonic()
    async with running_app(tuned(settings, send_in_doubt_grace_seconds=30), workspace):
        await settled(workspace, message_id)
    [request] = graph_api.requests
    assert (request.json["recipient"], request.at - started >= PERIOD) == ({"id": "2460009998887776"}, True)


def test_only_recent_and_in_doubt_sends_are_carried_over(workspace: Workspace) -> None:
    messenger, on_messenger = setup_conversation(workspace, "messenger")
    instagram, on_instagram = setup_conversation(workspace, "instagram")
    whatsapp, _ = setup_conversation(workspace, "whatsapp")
    _sent(workspace, on_messenger, seconds_ago=0.5)
    _sent(workspace, on_instagram, seconds_ago=5)
    _crashed_mid_send(workspace, "whatsapp")
    since = to_iso(utcnow() - timedelta(seconds=PERIOD))
    last = workspace.gateway.read_sync(lambda db: outbox.last_sends(db, since))
    assert set(last) == {messenger, whatsapp} and last[whatsapp] is None and last[messenger] >= since


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
        await wait_until(lambda: requests_reached(graph_api, 1))
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
    sender = Sender(gateway=workspace.gateway, settings=settings, user_agent="aat-test", fields=workspace.fields,
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
    sender = Sender(gateway=workspace.gateway, settings=settings, user_agent="aat-test",
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
                    user_agent="aat-test", fields=workspace.fields, metrics=Metrics(), clock=clock)
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
