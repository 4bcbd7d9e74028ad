"""Inbox actions: assign, close/reopen, pause/resume the bot, read, notes, canned replies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.rows import many
from appliance.store.workspace import Workspace
from appliance.team import store as team
from appliance.timeutil import iso_now
from tests.appliance.flow_run_helpers import flow_fixture, publish_flow, say, sent, texts_of
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn


@pytest.fixture
def agent(workspace: Workspace) -> dict[str, str]:
    connect_channel(workspace, "messenger", "112233445566778")
    return make_token(workspace, "agent")


async def _conversation(client: AsyncTestClient, headers: dict[str, str]) -> dict[str, Any]:
    await say(client, "messenger", "hello there")
    return (await client.get("/api/v1/conversations", headers=headers)).json()["items"][0]


async def test_assign_close_reopen_and_read(client: AsyncTestClient, workspace: Workspace, agent: dict[str, str]) -> None:
    conversation = await _conversation(client, agent)
    assert conversation["unread_count"] == 1
    user = workspace.gateway.write_sync(lambda db: team.create_user(
        db, email="bo@example.com", role="agent", name="Bo", password_hash=None, now=iso_now()))
    base = f"/api/v1/conversations/{conversation['id']}"
    assigned = await client.post(f"{base}/assign", json={"user_id": str(user["id"])}, headers=agent)
    assert assigned.status_code == 200 and assigned.json()["assignee"] == str(user["id"])
    mine = await client.get(f"/api/v1/conversations?assignee={user['id']}", headers=agent)
    assert [c["id"] for c in mine.json()["items"]] == [conversation["id"]]
    assert (await client.post(f"{base}/assign", json={"user_id": "999999"}, headers=agent)).status_code == 422
    assert (await client.post(f"{base}/close", headers=agent)).json()["status"] == "closed"
    assert (await client.post(f"{base}/reopen", headers=agent)).json()["status"] == "open"
    assert (await client.post(f"{base}/read", headers=agent)).json()["unread_count"] == 0
    types = workspace.gateway.read_sync(lambda db: [r["type"] for r in many(db, "SELECT type FROM events")])
    assert "conversation.assigned" in types


async def test_pausing_the_bot_stops_the_running_flow(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, agent: dict[str, str]
) -> None:
    await publish_flow(client, make_token(workspace, "admin"), flow_fixture("pricing"))
    await say(client, "messenger", "price")
    await sent(graph_api, 1)
    conversation = (await client.get("/api/v1/conversations", headers=agent)).json()["items"][0]
    base = f"/api/v1/conversations/{conversation['id']}"
    assert (await client.post(f"{base}/pause-bot", headers=agent)).json()["bot_paused"] is True
    assert workspace.gateway.read_sync(lambda db: many(db, "SELECT status FROM flow_runs")) == [{"status": "interrupted"}]
    await say(client, "messenger", "price")
    await asyncio.sleep(0.4)
    assert len(graph_api.requests) == 1
    assert (await client.post(f"{base}/resume-bot", headers=agent)).json()["bot_paused"] is False
    await say(client, "messenger", "price")
    assert texts_of(await sent(graph_api, 2))[1] == "Hi there! What would you like?"


async def test_notes_are_kept_and_never_sent(
    client: AsyncTestClient, graph_api: GraphStandIn, agent: dict[str, str]
) -> None:
    conversation = await _conversation(client, agent)
    base = f"/api/v1/conversations/{conversation['id']}"
    note = await client.post(f"{base}/notes", json={"text": "VIP customer, be nice"}, headers=agent)
    assert note.status_code == 201 and note.json()["text"] == "VIP customer, be nice"
    assert [n["text"] for n in (await client.get(f"{base}/notes", headers=agent)).json()["items"]] == [
        "VIP customer, be nice"]
    await asyncio.sleep(0.3)
    assert graph_api.requests == []
    assert (await client.post(f"{base}/notes", json={"text": ""}, headers=agent)).status_code == 422


async def test_canned_replies_are_edited_by_admins_and_read_by_agents(
    client: AsyncTestClient, workspace: Workspace, agent: dict[str, str]
) -> None:
    admin = make_token(workspace, "admin")
    created = await client.post("/api/v1/canned-replies", json={"shortcut": "hours", "text": "We open at 10."},
                                headers=admin)
    assert created.status_code == 201
    assert (await client.post("/api/v1/canned-replies", json={"shortcut": "hours", "text": "x"},
                              headers=admin)).status_code == 409
    assert (await client.post("/api/v1/canned-replies", json={"shortcut": "x", "text": "y"},
                              headers=agent)).status_code == 403
    listed = (await client.get("/api/v1/canned-replies", headers=agent)).json()["items"]
    assert [(r["shortcut"], r["text"]) for r in listed] == [("hours", "We open at 10.")]
