"""``/api/v1/channels``: connect, reconnect, list, disconnect; tokens are write-only and a
disconnect erases the stored token at once."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.connections.store import token_context
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    PAGE_ID,
    Shared,
    detail_paths,
    error_of,
    messenger_text,
    on_shared_app,
    rows,
    shared,
    snapshot,
    walk,
)
from tests.helpers import ingest, make_token

TOKEN = "EAAGm0PX4ZCpsBAKZBsecret-page-token"
API_FIELDS = {"id", "type", "external_id", "name", "status", "connected_at"}
_ids = itertools.count(1)


def _stored(workspace: Workspace, channel_id: str) -> dict[str, Any]:
    return rows(workspace, "SELECT * FROM channels WHERE id = ?", [int(channel_id)])[0]


def _no_token_in(response: Any, *tokens: str) -> None:
    for token in tokens:
        assert token not in response.text
    assert "access_token" not in response.text


async def _connect(client: AsyncTestClient, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/api/v1/channels", headers=headers, json={
        "type": "messenger", "external_id": PAGE_ID, "access_token": TOKEN, **body})


async def test_connect_answers_201_with_the_channel(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await _connect(client, make_token(workspace), name="Cafe Tbilisi")
    assert response.status_code == 201, response.text
    body = response.json()
    assert API_FIELDS <= set(body)
    assert isinstance(body["id"], str)
    assert (body["type"], body["external_id"], body["name"], body["status"]) == (
        "messenger", PAGE_ID, "Cafe Tbilisi", "active")
    assert body["connected_at"].endswith("Z")
    _no_token_in(response, TOKEN)


async def test_the_token_is_stored_encrypted_and_bound_to_its_channel(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    body = (await _connect(client, make_token(workspace))).json()
    stored = _stored(workspace, body["id"])["access_token_enc"]
    assert TOKEN not in stored
    assert workspace.fields.decrypt(stored, token_context("messenger", PAGE_ID)) == TOKEN


@pytest.mark.parametrize("extra", [
    {"type": "whatsapp", "external_id": "109876543210987", "waba_id": "203040506070809"},
    {"type": "instagram", "external_id": "17841455566677788", "page_id": PAGE_ID},
    {"type": "instagram", "external_id": "17841455566677788"},
])
async def test_every_type_connects_with_its_own_ids(
    client: AsyncTestClient, workspace: Workspace, extra: dict[str, str]
) -> None:
    response = await _connect(client, make_token(workspace), **extra)
    assert response.status_code == 201, response.text
    stored = _stored(workspace, response.json()["id"])
    assert (stored["type"], stored["external_id"]) == (extra["type"], extra["external_id"])
    assert (stored["waba_id"], stored["page_id"]) == (extra.get("waba_id"), extra.get("page_id"))


async def test_reconnect_updates_the_same_channel(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    first = (await _connect(client, headers, name="Old name", rate_limit=50)).json()
    await client.delete(f"/api/v1/channels/{first['id']}", headers=headers)
    response = await _connect(client, headers, access_token="EAAG-rotated-token")
    assert response.status_code == 201
    again = response.json()
    assert again["id"] == first["id"]
    assert (again["status"], again["name"]) == ("active", "Old name")  # left out: kept
    stored = _stored(workspace, again["id"])
    assert stored["rate_limit"] == 50
    assert workspace.fields.decrypt(stored["access_token_enc"], token_context("messenger", PAGE_ID)) == \
        "EAAG-rotated-token"
    assert len(rows(workspace, "SELECT id FROM channels")) == 1
    _no_token_in(response, TOKEN, "EAAG-rotated-token")


async def test_connecting_a_channel_that_webhooks_already_created(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, messenger_text("2460001112223334", "m_before_connect"))
    assert _stored(workspace, "1")["status"] == "disconnected"
    response = await _connect(client, make_token(workspace))
    assert response.status_code == 201
    assert (response.json()["id"], response.json()["status"]) == ("1", "active")


INVALID = {
    "unknown type": ({"type": "telegram"}, ["type"]),
    "non-numeric id": ({"external_id": "page-12"}, ["external_id"]),
    "empty id": ({"external_id": ""}, ["external_id"]),
    "numeric id as a number": ({"external_id": 112233}, ["external_id"]),
    "empty token": ({"access_token": ""}, ["access_token"]),
    "blank token": ({"access_token": "   "}, ["access_token"]),
    "token not a string": ({"access_token": 12345}, ["access_token"]),
    "unknown field": ({"app_secret": "x"}, ["app_secret"]),
    "waba_id on messenger": ({"waba_id": "203040506070809"}, ["body"]),
    "page_id on whatsapp": ({"type": "whatsapp", "page_id": PAGE_ID}, ["body"]),
    "rate limit zero": ({"rate_limit": 0}, ["rate_limit"]),
    "name too long": ({"name": "x" * 201}, ["name"]),
    "several at once": ({"type": "sms", "external_id": "x", "access_token": ""},
                        ["type", "external_id", "access_token"]),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_connect_is_422_with_paths_and_writes_nothing(shared: Shared, case: str) -> None:
    change, paths = INVALID[case]
    before = snapshot(shared.workspace, "channels")
    body = {"type": "messenger", "external_id": f"9{next(_ids):08d}", "access_token": TOKEN, **change}
    response = await shared.client.post("/api/v1/channels", json=body, headers=make_token(shared.workspace))
    assert detail_paths(response) == paths
    assert error_of(response, 422)["code"] == "invalid_request"
    assert snapshot(shared.workspace, "channels") == before


@on_shared_app
@pytest.mark.parametrize("missing", ["type", "external_id", "access_token"])
async def test_missing_required_field_is_422(shared: Shared, missing: str) -> None:
    body = {"type": "messenger", "external_id": "123", "access_token": TOKEN}
    del body[missing]
    response = await shared.client.post("/api/v1/channels", json=body, headers=make_token(shared.workspace))
    assert detail_paths(response) == [missing]
    assert error_of(response, 422)["details"][0]["message"] == "Field required"


@on_shared_app
async def test_connect_body_that_is_not_json_is_400(shared: Shared) -> None:
    before = snapshot(shared.workspace, "channels")
    response = await shared.client.post("/api/v1/channels", content=b'{"type": "messenger",',
                                        headers={**make_token(shared.workspace), "content-type": "application/json"})
    assert error_of(response, 400)["code"] == "invalid_json"
    assert snapshot(shared.workspace, "channels") == before


async def test_disconnect_erases_the_token_at_once(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    channel = (await _connect(client, headers)).json()
    response = await client.delete(f"/api/v1/channels/{channel['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    _no_token_in(response, TOKEN)
    # Read straight after the response: the write was committed before it was sent.
    stored = _stored(workspace, channel["id"])
    assert (stored["status"], stored["access_token_enc"]) == ("disconnected", None)


async def test_disconnect_keeps_the_conversations(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    channel = (await _connect(client, headers)).json()
    await ingest(client, messenger_text("2460001112223334", "m_keep"))
    await client.delete(f"/api/v1/channels/{channel['id']}", headers=headers)
    assert len(rows(workspace, "SELECT id FROM conversations")) == 1
    assert len(rows(workspace, "SELECT id FROM messages")) == 1


async def test_disconnect_twice_is_harmless(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    channel = (await _connect(client, headers)).json()
    await client.delete(f"/api/v1/channels/{channel['id']}", headers=headers)
    response = await client.delete(f"/api/v1/channels/{channel['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"


@on_shared_app
@pytest.mark.parametrize(("channel_id", "status"), [("999999", 404), ("0", 422), ("9" * 30, 422), ("abc", 404)])
async def test_disconnect_of_no_such_channel(shared: Shared, channel_id: str, status: int) -> None:
    before = snapshot(shared.workspace, "channels")
    response = await shared.client.delete(f"/api/v1/channels/{channel_id}", headers=make_token(shared.workspace))
    error_of(response, status)
    assert snapshot(shared.workspace, "channels") == before


async def test_list_never_shows_tokens(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    await _connect(client, headers)
    await _connect(client, headers, type="whatsapp", external_id="109876543210987", access_token="EAAG-wa-token")
    response = await client.get("/api/v1/channels", headers=headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(c["type"], c["status"]) for c in items] == [("messenger", "active"), ("whatsapp", "active")]
    assert all(API_FIELDS <= set(c) and not any("token" in key for key in c) for c in items)
    _no_token_in(response, TOKEN, "EAAG-wa-token")


async def test_list_pages_through_every_channel(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace)
    for n in range(5):
        await _connect(client, headers, external_id=f"70000{n}")
    pages = await walk(client, "/api/v1/channels", headers, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["external_id"] for p in pages for c in p] == [f"70000{n}" for n in range(5)]
