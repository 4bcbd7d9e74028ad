"""Flows through the real stack: signed webhooks in, the Graph API stand-in out."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.flows.tasks import fire_due_timers
from appliance.store.rows import many, one
from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from tests.appliance.flow_run_helpers import (
    ASSETS,
    deep,
    flow_fixture,
    publish_flow,
    reply_ids,
    say,
    sent,
    tap,
    texts_of,
)
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn

CHANNELS = ("messenger", "instagram", "whatsapp")


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    return make_token(workspace, "admin")


def _contact(workspace: Workspace) -> dict[str, Any]:
    row = workspace.gateway.read_sync(lambda db: one(db, "SELECT * FROM contacts ORDER BY id LIMIT 1"))
    assert row is not None
    tags = workspace.gateway.read_sync(lambda db: [r["tag"] for r in many(
        db, "SELECT tag FROM contact_tags WHERE contact_id = ?", [row["id"]])])
    return {**row, "fields": json.loads(row["fields"]), "tags": tags}


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_spec_example_flow_runs_on_every_channel(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channel: str
) -> None:
    await publish_flow(client, admin, flow_fixture("pricing"))
    await say(client, channel, "How much is the PRICE?")
    first = (await sent(graph_api, 1))[0]
    assert first.path == f"/v25.0/{ASSETS[channel]}/messages"
    assert [title for title, _ in reply_ids(first)] == ["Plans", "Talk to a human"]
    if channel == "whatsapp":
        assert first.json["interactive"]["type"] == "button"
    elif channel == "messenger":
        assert first.json["message"]["attachment"]["payload"]["template_type"] == "button"
    else:
        assert first.json["message"]["quick_replies"][0]["content_type"] == "text"
    plans_payload = reply_ids(first)[0][1]
    await tap(client, channel, plans_payload, "Plans")
    requests = await sent(graph_api, 3)
    assert texts_of(requests[1:3]) == ["Pro is 15 EUR a month.", "Where can we send the details?"]
    await say(client, channel, "not an email")
    requests = await sent(graph_api, 4)
    assert texts_of(requests[3:4]) == ["That doesn't look like an email."]
    await say(client, channel, "Ana@Example.com")
    requests = await sent(graph_api, 5)
    assert texts_of(requests[4:5]) == ["Thanks! Sent to ana@example.com."]
    contact = _contact(workspace)
    assert contact["fields"] == {"email": "ana@example.com"}
    assert contact["tags"] == ["lead"]
    assert graph_api.violations == []


async def test_greeting_uses_the_contact_name_with_fallback(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, flow_fixture("pricing"))
    await say(client, "whatsapp", "price")  # WhatsApp profile name "Giorgi"
    await say(client, "messenger", "price")  # Messenger gives no name: the fallback
    requests = await sent(graph_api, 2)
    assert sorted(texts_of(requests)) == ["Hi Giorgi! What would you like?", "Hi there! What would you like?"]


async def test_handoff_pauses_automation(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, flow_fixture("pricing"))
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    await tap(client, "messenger", reply_ids(first)[1][1], "Talk to a human")
    requests = await sent(graph_api, 2)
    assert texts_of(requests[1:]) == ["Connecting you with our team."]
    conversation = (await client.get("/api/v1/conversations", headers=admin)).json()["items"][0]
    assert conversation["bot_paused"] is True
    await say(client, "messenger", "price")
    await asyncio.sleep(0.5)
    assert len(graph_api.requests) == 2  # the bot stays quiet; the inbox has the message
    messages = (await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=admin)).json()
    assert messages["items"][-1]["text"] == "price"


async def test_running_contacts_stay_on_their_version(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    document = flow_fixture("pricing")
    flow_id = await publish_flow(client, admin, document)
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    await tap(client, "messenger", reply_ids(first)[0][1], "Plans")
    await sent(graph_api, 3)  # now waiting for the e-mail on version 1
    changed = deep(document)
    changed["steps"]["bye"]["text"] = "Version two says thanks."
    assert (await client.put(f"/api/v1/flows/{flow_id}", json=changed, headers=admin)).status_code == 200
    published = await client.post(f"/api/v1/flows/{flow_id}/publish", headers=admin)
    assert published.json()["version"] == 2
    await say(client, "messenger", "ana@example.com")
    requests = await sent(graph_api, 4)
    assert texts_of(requests[3:]) == ["Thanks! Sent to ana@example.com."]
    await say(client, "messenger", "price", sender="2460009999999999")
    second = (await sent(graph_api, 5))[4]
    await tap(client, "messenger", reply_ids(second)[0][1], "Plans", sender="2460009999999999")
    await sent(graph_api, 7)
    await say(client, "messenger", "bo@example.com", sender="2460009999999999")
    requests = await sent(graph_api, 8)
    assert texts_of(requests[7:]) == ["Version two says thanks."]


async def test_stats_count_runs_steps_and_clicks(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    flow_id = await publish_flow(client, admin, flow_fixture("pricing"))
    await say(client, "messenger", "price")
    first = (await sent(graph_api, 1))[0]
    await tap(client, "messenger", reply_ids(first)[0][1], "Plans")
    await sent(graph_api, 3)
    await say(client, "whatsapp", "price")
    await sent(graph_api, 4)
    stats = (await client.get(f"/api/v1/flows/{flow_id}/stats", headers=admin)).json()
    assert stats["runs"]["started"] == 2 and stats["runs"]["active"] == 2
    assert stats["steps"]["hello"] == {"entered": 2, "completed": 1, "clicks": {"Plans": 1}, "dropped": 1}
    assert stats["steps"]["plans"] == {"entered": 1, "completed": 1, "clicks": {}, "dropped": 0}
    assert stats["steps"]["ask_email"]["entered"] == 1


async def test_five_options_on_whatsapp_become_a_list(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    document = {
        "schema": "aat.flow/v1", "name": "Branches",
        "triggers": [{"type": "keyword", "keywords": ["branch"]}],
        "start": "pick",
        "steps": {
            "pick": {"type": "message", "text": "Which branch?", "buttons": [
                {"title": name, "next": "done"} for name in ("Vake", "Saburtalo", "Old Town", "Gldani", "Isani")]},
            "done": {"type": "message", "text": "Noted."},
        },
    }
    await publish_flow(client, admin, document)
    await say(client, "whatsapp", "branch")
    request = (await sent(graph_api, 1))[0]
    assert request.json["interactive"]["type"] == "list"
    rows = request.json["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["Vake", "Saburtalo", "Old Town", "Gldani", "Isani"]
    await tap(client, "whatsapp", rows[3]["id"], "Gldani")
    assert texts_of((await sent(graph_api, 2))[1:]) == ["Noted."]


async def test_a_delay_fires_when_its_time_comes_and_only_once(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], runtime: Any
) -> None:
    document = {
        "schema": "aat.flow/v1", "name": "Later",
        "triggers": [{"type": "keyword", "keywords": ["remind"]}],
        "start": "ok",
        "steps": {
            "ok": {"type": "message", "text": "I'll remind you in an hour.", "next": "wait"},
            "wait": {"type": "delay", "seconds": 3600, "next": "ping"},
            "ping": {"type": "message", "text": "Here is your reminder."},
        },
    }
    await publish_flow(client, admin, document)
    await say(client, "whatsapp", "remind me")
    await sent(graph_api, 1)
    timers = workspace.gateway.read_sync(lambda db: many(db, "SELECT kind, due_at, fired_at FROM flow_timers"))
    assert len(timers) == 1 and timers[0]["kind"] == "delay" and timers[0]["fired_at"] is None
    assert await asyncio.to_thread(fire_due_timers, runtime, to_iso(utcnow() + timedelta(minutes=30))) == {"fired": 0}
    later = to_iso(utcnow() + timedelta(minutes=61))
    assert await asyncio.to_thread(fire_due_timers, runtime, later) == {"fired": 1}
    assert await asyncio.to_thread(fire_due_timers, runtime, later) == {"fired": 0}
    assert texts_of((await sent(graph_api, 2))[1:]) == ["Here is your reminder."]
    await asyncio.sleep(0.3)
    assert len(graph_api.requests) == 2


async def test_an_input_timeout_goes_on_timeout(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str], runtime: Any
) -> None:
    document = {
        "schema": "aat.flow/v1", "name": "Ask",
        "triggers": [{"type": "keyword", "keywords": ["quote"]}],
        "start": "ask",
        "steps": {
            "ask": {"type": "input", "text": "How many units?", "validate": "number", "save_to": "units",
                    "timeout_seconds": 600, "on_timeout": "nudge", "next": "thanks"},
            "nudge": {"type": "message", "text": "Still there? Write \"quote\" to start again."},
            "thanks": {"type": "message", "text": "Got it."},
        },
    }
    await publish_flow(client, admin, document)
    await say(client, "messenger", "quote please")
    await sent(graph_api, 1)
    await asyncio.to_thread(fire_due_timers, runtime, to_iso(utcnow() + timedelta(minutes=11)))
    assert texts_of((await sent(graph_api, 2))[1:]) == ['Still there? Write "quote" to start again.']


async def test_stop_and_start_change_the_subscription(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, flow_fixture("pricing"))
    await say(client, "messenger", "price")
    await sent(graph_api, 1)
    await say(client, "messenger", "STOP")
    requests = await sent(graph_api, 2)
    assert "unsubscribed" in texts_of(requests[1:])[0]
    contact = _contact(workspace)
    assert contact["subscribed"] == 0
    runs = workspace.gateway.read_sync(lambda db: many(db, "SELECT status FROM flow_runs"))
    assert runs == [{"status": "interrupted"}]
    await say(client, "messenger", "Start")
    await sent(graph_api, 3)
    assert _contact(workspace)["subscribed"] == 1


async def test_goto_flow_continues_in_the_other_flow(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Second", "start": "hi",
        "steps": {"hi": {"type": "message", "text": "Welcome to the second flow."}},
    })
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "First",
        "triggers": [{"type": "keyword", "keywords": ["go"]}], "start": "jump",
        "steps": {"jump": {"type": "goto_flow", "flow": "Second"}},
    })
    await say(client, "instagram", "go")
    assert texts_of(await sent(graph_api, 1)) == ["Welcome to the second flow."]


async def test_postback_trigger_beats_keyword_and_default_catches_the_rest(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Fallback", "triggers": [{"type": "default"}], "start": "s",
        "steps": {"s": {"type": "message", "text": "Sorry, I did not get that."}},
    })
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Menu", "triggers": [
            {"type": "postback", "payload": "GET_STARTED"}, {"type": "keyword", "keywords": ["started"]}],
        "start": "s", "steps": {"s": {"type": "message", "text": "Welcome aboard."}},
    })
    await tap(client, "messenger", "GET_STARTED", "Get Started")
    await say(client, "messenger", "what?")
    assert texts_of(await sent(graph_api, 2)) == ["Welcome aboard.", "Sorry, I did not get that."]


async def test_comment_starts_a_private_reply_once_per_comment(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    from tests.conftest import fixture_bytes
    from tests.helpers import ingest

    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Price comments",
        "triggers": [{"type": "comment", "keywords": ["price"], "public_reply": "Sent you a DM!"}],
        "start": "dm",
        "steps": {"dm": {"type": "message", "text": "Hi! The price is 15 EUR.", "next": "more"},
                  "more": {"type": "message", "text": "Anything else?"}},
    })
    await ingest(client, fixture_bytes("instagram_comment"))
    await ingest(client, fixture_bytes("instagram_comment"))  # Meta redelivers
    request = (await sent(graph_api, 1))[0]
    assert request.json["recipient"] == {"comment_id": "17865432109876543"}
    assert request.json["message"]["text"] == "Hi! The price is 15 EUR."
    await asyncio.sleep(0.3)
    assert len(graph_api.requests) == 1  # no second private reply; "more" waits for their answer
    public = [r for r in graph_api.other_requests if r.path.endswith("/replies")]
    assert [(r.path, r.json) for r in public] == [
        ("/v25.0/17865432109876543/replies", {"message": "Sent you a DM!"})]
    await say(client, "instagram", "thanks!", sender="6120001112223336")
    assert texts_of((await sent(graph_api, 2))[1:]) == ["Anything else?"]


async def test_integration_steps_take_on_error_until_configured(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Lookup", "triggers": [{"type": "keyword", "keywords": ["order"]}],
        "start": "call",
        "steps": {
            "call": {"type": "http_request", "url": "https://example.com/orders", "next": "ok", "on_error": "sorry"},
            "ok": {"type": "message", "text": "Found it."},
            "sorry": {"type": "message", "text": "Our order system is not connected yet."},
        },
    })
    await say(client, "whatsapp", "order status")
    assert texts_of(await sent(graph_api, 1)) == ["Our order system is not connected yet."]
