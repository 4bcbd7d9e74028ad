"""The workspace settings: name, time zone, subscription words, and what they change."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent, texts_of
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    connect_channel(workspace, "messenger", ASSETS["messenger"])
    return make_token(workspace, "admin")


async def test_defaults_then_partial_updates(client: AsyncTestClient, admin: dict[str, str]) -> None:
    settings = (await client.get("/api/v1/settings/workspace", headers=admin)).json()
    assert settings["name"] == "" and settings["timezone"] == "UTC"
    assert "stop" in settings["subscription"]["stop"]
    updated = await client.put("/api/v1/settings/workspace", json={"name": "Nika Design"}, headers=admin)
    assert updated.status_code == 200
    assert updated.json()["name"] == "Nika Design" and updated.json()["timezone"] == "UTC"


@pytest.mark.parametrize(("body", "path"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"subscription": {"stop": [], "start": ["go"], "stop_reply": "a", "start_reply": "b"}}, "subscription.stop"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_settings_are_422_and_change_nothing(
    client: AsyncTestClient, admin: dict[str, str], body: dict, path: str
) -> None:
    before = (await client.get("/api/v1/settings/workspace", headers=admin)).json()
    response = await client.put("/api/v1/settings/workspace", json=body, headers=admin)
    assert response.status_code == 422
    assert [d["path"] for d in response.json()["error"]["details"]] == [path]
    assert (await client.get("/api/v1/settings/workspace", headers=admin)).json() == before


async def test_workspace_name_in_templates_and_own_stop_words(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await client.put("/api/v1/settings/workspace", json={
        "name": "Nika Design",
        "subscription": {"stop": ["basta"], "start": ["ancora"], "stop_reply": "Ciao!", "start_reply": "Bentornato!"},
    }, headers=admin)
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Hello", "triggers": [{"type": "keyword", "keywords": ["hello"]}],
        "start": "s", "steps": {"s": {"type": "message", "text": "Welcome to {{workspace.name}}."}},
    })
    await say(client, "messenger", "hello")
    await say(client, "messenger", "Basta!")
    await say(client, "messenger", "stop")  # no longer a stop word here: nothing answers it
    await say(client, "messenger", "ancora")
    assert texts_of(await sent(graph_api, 3)) == ["Welcome to Nika Design.", "Ciao!", "Bentornato!"]
