"""``/api/v1/contacts``: list (filters, cursor pages), read, rectify, erase, tags."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    detail_paths,
    error_of,
    instagram_text,
    messenger_text,
    on_shared_app,
    rows,
    running_app,
    shared,
    snapshot,
    walk,
    whatsapp_text,
)
from tests.helpers import ingest, make_token

API_FIELDS = {"id", "channel", "external_id", "name", "first_name", "last_name", "username", "phone",
              "tags", "fields", "subscribed", "last_inbound_at", "created_at"}
TABLES = ("contacts", "contact_tags", "conversations", "messages")
_ids = itertools.count(1)


async def _whatsapp_contact(client: AsyncTestClient, workspace: Workspace, name: str = "Giorgi") -> str:
    """Ingest a message from a new WhatsApp user; returns the contact's id."""
    n = next(_ids)
    wa_id = f"99555{n:07d}"
    await ingest(client, whatsapp_text(wa_id, f"wamid.contact{n}", name=name))
    return str(rows(workspace, "SELECT id FROM contacts WHERE wa_id = ?", [wa_id])[0]["id"])


async def _world(client: AsyncTestClient, workspace: Workspace) -> dict[str, str]:
    """One contact per channel, two on WhatsApp; Giorgi is tagged vip."""
    headers = make_token(workspace, "agent")
    await ingest(client, messenger_text("2460001112223334", "m_world_1"))
    await ingest(client, instagram_text("6120001112223334", "ig_world_1"))
    ana = await _whatsapp_contact(client, workspace, "Ana Lima")
    giorgi = await _whatsapp_contact(client, workspace, "Giorgi Beridze")
    await client.post(f"/api/v1/contacts/{giorgi}/tags", json={"tag": "vip"}, headers=headers)
    return {"ana": ana, "giorgi": giorgi}


def _names(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return [c["name"] or c["external_id"] for c in response.json()["items"]]


# --- list ----------------------------------------------------------------------------------------

async def test_list_is_newest_first(client: AsyncTestClient, workspace: Workspace) -> None:
    await _world(client, workspace)
    response = await client.get("/api/v1/contacts", headers=make_token(workspace, "agent"))
    assert _names(response) == ["Giorgi Beridze", "Ana Lima", "6120001112223334", "2460001112223334"]
    assert response.json()["next_cursor"] is None


FILTERS = {
    "q matches a name": ({"q": "ana"}, ["Ana Lima"]),
    "q matches a phone": ({"q": "99555"}, ["Giorgi Beridze", "Ana Lima"]),
    "q matches an external id": ({"q": "612000"}, ["6120001112223334"]),
    "q wildcards are literal": ({"q": "%"}, []),
    "q underscore is literal": ({"q": "_"}, []),
    "tag": ({"tag": "vip"}, ["Giorgi Beridze"]),
    "unknown tag": ({"tag": "nobody"}, []),
    "channel": ({"channel": "whatsapp"}, ["Giorgi Beridze", "Ana Lima"]),
    "channel instagram": ({"channel": "instagram"}, ["6120001112223334"]),
    "filters combine": ({"channel": "whatsapp", "q": "giorgi", "tag": "vip"}, ["Giorgi Beridze"]),
    "filters combine to nothing": ({"channel": "messenger", "tag": "vip"}, []),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def directory(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    """The ``_world`` contacts on an app of their own, only read by the tests using it."""
    async with running_app(tmp_path_factory.mktemp("directory") / "data") as app:
        await _world(app.client, app.workspace)
        yield app


@on_shared_app
@pytest.mark.parametrize("case", sorted(FILTERS))
async def test_list_filters(directory: Shared, case: str) -> None:
    params, expected = FILTERS[case]
    response = await directory.client.get("/api/v1/contacts", params=params,
                                          headers=make_token(directory.workspace, "agent"))
    assert _names(response) == expected


async def test_cursor_walks_every_contact_once(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "agent")
    for n in range(5):
        await ingest(client, messenger_text(f"24600000000000{n:02d}", f"m_page_{n}"))
    everything = (await client.get("/api/v1/contacts", headers=headers)).json()["items"]
    pages = await walk(client, "/api/v1/contacts", headers, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    walked = [c["id"] for p in pages for c in p]
    assert walked == [c["id"] for c in everything]
    assert len(set(walked)) == 5


async def test_cursor_keeps_the_filter(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "agent")
    for n in range(3):
        await ingest(client, messenger_text(f"24600000000000{n:02d}", f"m_filter_{n}"))
        await _whatsapp_contact(client, workspace)
    pages = await walk(client, "/api/v1/contacts", headers, limit=1, channel="whatsapp")
    assert [c["channel"] for p in pages for c in p] == ["whatsapp"] * 3


async def test_contacts_created_while_paging_are_not_repeated(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "agent")
    for n in range(3):
        await ingest(client, messenger_text(f"24600000000000{n:02d}", f"m_grow_{n}"))
    first = (await client.get("/api/v1/contacts", params={"limit": 2}, headers=headers)).json()
    await ingest(client, messenger_text("2460000000000099", "m_grow_new"))
    rest = (await client.get("/api/v1/contacts", params={"limit": 2, "cursor": first["next_cursor"]},
                             headers=headers)).json()
    seen = [c["id"] for c in first["items"] + rest["items"]]
    assert len(seen) == len(set(seen)) == 3


@on_shared_app
@pytest.mark.parametrize(("params", "path"), [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "ten"}, "limit"),
    ({"channel": "telegram"}, "channel"), ({"q": "x" * 201}, "q"), ({"q": "\x00"}, "q"),
])
async def test_bad_list_parameters_are_422(shared: Shared, params: dict[str, Any], path: str) -> None:
    response = await shared.client.get("/api/v1/contacts", params=params, headers=make_token(shared.workspace, "agent"))
    assert detail_paths(response) == [path]


@on_shared_app
@pytest.mark.parametrize("limit", [1, 500])
async def test_limit_bounds_are_accepted(shared: Shared, limit: int) -> None:
    response = await shared.client.get("/api/v1/contacts", params={"limit": limit},
                                       headers=make_token(shared.workspace, "agent"))
    assert response.status_code == 200


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_CURSORS = {
    "not base64": "!!!",
    "not json": base64.urlsafe_b64encode(b"{oops").decode(),
    "a string": _b64("12"),
    "negative": _b64(-1),
    "beyond sqlite": _b64(2**64),
    "a float": _b64(1.5),
    "a boolean": _b64(True),
    "a list": _b64([1, 2]),
    "deeply nested": base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(BAD_CURSORS))
async def test_bad_cursor_is_400(shared: Shared, case: str) -> None:
    response = await shared.client.get("/api/v1/contacts", params={"cursor": BAD_CURSORS[case]},
                                       headers=make_token(shared.workspace, "agent"))
    error = error_of(response, 400)
    assert error["code"] == "invalid_cursor"
    assert "cursor" in error["message"]


# --- read ----------------------------------------------------------------------------------------

async def test_get_has_the_api_fields(client: AsyncTestClient, workspace: Workspace) -> None:
    contact_id = await _whatsapp_contact(client, workspace, "Ana Maria Lima")
    response = await client.get(f"/api/v1/contacts/{contact_id}", headers=make_token(workspace, "agent"))
    assert response.status_code == 200
    body = response.json()
    assert API_FIELDS <= set(body)
    assert body["id"] == contact_id
    assert (body["channel"], body["name"], body["first_name"], body["last_name"]) == (
        "whatsapp", "Ana Maria Lima", "Ana", "Maria Lima")
    assert body["external_id"] == body["phone"]  # no BSUID: the wa_id is the id, and the phone
    assert (body["tags"], body["fields"], body["subscribed"]) == ([], {}, True)
    assert body["last_inbound_at"].endswith("Z") and body["created_at"].endswith("Z")


@on_shared_app
@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)])
@pytest.mark.parametrize(("contact_id", "status"), [("987654", 404), ("0", 422), ("9" * 25, 422)])
async def test_no_such_contact(shared: Shared, method: str, body: Any, contact_id: str, status: int) -> None:
    before = snapshot(shared.workspace, *TABLES)
    response = await shared.client.request(method, f"/api/v1/contacts/{contact_id}", json=body,
                                           headers=make_token(shared.workspace, "agent"))
    error = error_of(response, status)
    if status == 404:
        assert error["message"] == f"contact {contact_id} does not exist"
    assert snapshot(shared.workspace, *TABLES) == before


# --- rectify --------------------------------------------------------------------------------------

async def _patch(client: AsyncTestClient, workspace: Workspace, contact_id: str, body: Any) -> Any:
    return await client.patch(f"/api/v1/contacts/{contact_id}", json=body, headers=make_token(workspace, "agent"))


@on_shared_app
async def test_patch_sets_profile_values(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    response = await _patch(shared.client, shared.workspace, contact_id,
                            {"name": "Giorgi Beridze", "first_name": "Giorgi", "last_name": "Beridze",
                             "subscribed": False})
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["first_name"], body["last_name"], body["subscribed"]) == (
        "Giorgi Beridze", "Giorgi", "Beridze", False)
    assert body == (await shared.client.get(f"/api/v1/contacts/{contact_id}",
                                            headers=make_token(shared.workspace, "agent"))).json()


@on_shared_app
async def test_patch_null_clears_a_profile_value(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    response = await _patch(shared.client, shared.workspace, contact_id, {"phone": None})
    assert response.json()["phone"] is None


@on_shared_app
async def test_patch_fields_merge_and_null_removes(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    await _patch(shared.client, shared.workspace, contact_id, {"fields": {"plan": "pro", "seats": 3, "city": "Tbilisi"}})
    response = await _patch(shared.client, shared.workspace, contact_id,
                            {"fields": {"city": None, "vip": True, "seats": 4, "never_set": None}})
    assert response.json()["fields"] == {"plan": "pro", "seats": 4, "vip": True}


@on_shared_app
async def test_patch_with_nothing_changes_nothing(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    before = snapshot(shared.workspace, *TABLES)
    response = await _patch(shared.client, shared.workspace, contact_id, {})
    assert response.status_code == 200
    assert snapshot(shared.workspace, *TABLES) == before


async def test_agent_corrected_name_survives_a_later_webhook(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.n1", name="Gio"))
    await _patch(client, workspace, "1", {"name": "Giorgi Beridze"})
    await ingest(client, whatsapp_text("995555000001", "wamid.n2", name="G. from the profile"))
    body = (await client.get("/api/v1/contacts/1", headers=make_token(workspace, "agent"))).json()
    assert (body["name"], body["first_name"], body["last_name"]) == ("Giorgi Beridze", "Giorgi", "Beridze")


async def test_corrected_last_name_survives_a_later_webhook(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.l1", name="Ana Lima"))
    await _patch(client, workspace, "1", {"last_name": "Lima-Santos"})
    await ingest(client, whatsapp_text("995555000001", "wamid.l2", name="Ana L"))
    body = (await client.get("/api/v1/contacts/1", headers=make_token(workspace, "agent"))).json()
    assert (body["name"], body["first_name"], body["last_name"]) == ("Ana Lima", "Ana", "Lima-Santos")


async def test_uncorrected_name_follows_the_profile(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.p1", name="Gio"))
    await _patch(client, workspace, "1", {"fields": {"plan": "pro"}})
    await ingest(client, whatsapp_text("995555000001", "wamid.p2", name="Giorgi B"))
    body = (await client.get("/api/v1/contacts/1", headers=make_token(workspace, "agent"))).json()
    assert (body["name"], body["first_name"], body["last_name"]) == ("Giorgi B", "Giorgi", "B")


BAD_PATCHES = {
    "unknown field": ({"nickname": "G"}, ["nickname"]),
    "unknown field beside a good one": ({"name": "Fine", "tags": ["vip"]}, ["tags"]),
    "fields null": ({"fields": None}, ["fields"]),
    "subscribed null": ({"subscribed": None}, ["subscribed"]),
    "subscribed not a boolean": ({"subscribed": "no"}, ["subscribed"]),
    "fields not an object": ({"fields": ["a"]}, ["fields"]),
    "field value an object": ({"fields": {"address": {"city": "Tbilisi"}}}, None),
    "field name with a space": ({"fields": {"home city": "Tbilisi"}}, None),
    "name too long": ({"name": "x" * 201}, ["name"]),
    "name with a NUL": ({"name": "Gio\x00rgi"}, ["name"]),
    "name with a line break": ({"first_name": "Gio\nrgi"}, ["first_name"]),
    "body a list": ([{"name": "x"}], ["body"]),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(BAD_PATCHES))
async def test_bad_patch_is_422_and_changes_nothing(shared: Shared, case: str) -> None:
    body, paths = BAD_PATCHES[case]
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    before = snapshot(shared.workspace, *TABLES)
    response = await _patch(shared.client, shared.workspace, contact_id, body)
    got = detail_paths(response)
    if paths is None:
        assert got and all(path.startswith("fields.") for path in got), got
    else:
        assert got == paths
    assert snapshot(shared.workspace, *TABLES) == before


@on_shared_app
async def test_null_subscribed_says_how_to_keep_the_value(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    response = await _patch(shared.client, shared.workspace, contact_id, {"subscribed": None})
    assert error_of(response, 422)["details"] == [
        {"path": "subscribed", "message": "must not be null; leave the key out to keep the current value"}]


# --- erase ----------------------------------------------------------------------------------------

async def test_delete_erases_the_contact_and_everything_about_them(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.e1", name="Forget Me"))
    await ingest(client, whatsapp_text("995555000001", "wamid.e2", name="Forget Me", text="and this"))
    await ingest(client, whatsapp_text("995555000002", "wamid.k1", name="Keep Me"))
    headers = make_token(workspace, "agent")
    await client.post("/api/v1/contacts/1/tags", json={"tag": "vip"}, headers=headers)
    response = await client.delete("/api/v1/contacts/1", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert rows(workspace, "SELECT name FROM contacts") == [{"name": "Keep Me"}]
    assert rows(workspace, "SELECT contact_id FROM conversations") == [{"contact_id": 2}]
    assert rows(workspace, "SELECT contact_id FROM messages") == [{"contact_id": 2}]
    assert rows(workspace, "SELECT * FROM contact_tags") == []
    journal = rows(workspace, "SELECT id, body IS NULL AS erased FROM webhook_journal ORDER BY id")
    assert journal == [{"id": 1, "erased": 1}, {"id": 2, "erased": 1}, {"id": 3, "erased": 0}]
    assert rows(workspace, "SELECT contact_id FROM webhook_journal_contacts") == [{"contact_id": 2}]


async def test_erased_contact_is_gone(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.g1"))
    headers = make_token(workspace, "agent")
    assert (await client.delete("/api/v1/contacts/1", headers=headers)).status_code == 204
    assert error_of(await client.get("/api/v1/contacts/1", headers=headers), 404)["code"] == "not_found"
    assert error_of(await client.delete("/api/v1/contacts/1", headers=headers), 404)["code"] == "not_found"
    assert error_of(await client.get("/api/v1/conversations/1", headers=headers), 404)["code"] == "not_found"
    assert (await client.get("/api/v1/contacts", headers=headers)).json()["items"] == []


async def test_erased_contact_writing_again_starts_afresh(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, whatsapp_text("995555000001", "wamid.r1", name="Back Again", text="before"))
    headers = make_token(workspace, "agent")
    await client.post("/api/v1/contacts/1/tags", json={"tag": "vip"}, headers=headers)
    await client.delete("/api/v1/contacts/1", headers=headers)
    await ingest(client, whatsapp_text("995555000001", "wamid.r2", name="Back Again", text="after"))
    contacts = (await client.get("/api/v1/contacts", headers=headers)).json()["items"]
    assert [(c["name"], c["tags"]) for c in contacts] == [("Back Again", [])]
    assert [m["text"] for m in rows(workspace, "SELECT text FROM messages")] == ["after"]


# --- tags -----------------------------------------------------------------------------------------

@on_shared_app
async def test_tags_add_sorted_and_idempotent(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    headers = make_token(shared.workspace, "agent")
    for tag in ("vip", "lead", "vip", "  lead  "):
        response = await shared.client.post(f"/api/v1/contacts/{contact_id}/tags", json={"tag": tag}, headers=headers)
        assert response.status_code == 200
    assert response.json()["tags"] == ["lead", "vip"]
    assert API_FIELDS <= set(response.json())


@on_shared_app
async def test_tag_remove_and_remove_again(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    headers = make_token(shared.workspace, "agent")
    for tag in ("vip", "lead"):
        await shared.client.post(f"/api/v1/contacts/{contact_id}/tags", json={"tag": tag}, headers=headers)
    first = await shared.client.delete(f"/api/v1/contacts/{contact_id}/tags/vip", headers=headers)
    again = await shared.client.delete(f"/api/v1/contacts/{contact_id}/tags/vip", headers=headers)
    assert (first.status_code, first.json()["tags"]) == (200, ["lead"])
    assert (again.status_code, again.json()["tags"]) == (200, ["lead"])


@on_shared_app
async def test_tag_with_spaces_and_unicode_round_trips(shared: Shared) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    headers = make_token(shared.workspace, "agent")
    added = await shared.client.post(f"/api/v1/contacts/{contact_id}/tags", json={"tag": "სტუმარი vip"},
                                     headers=headers)
    assert added.json()["tags"] == ["სტუმარი vip"]
    removed = await shared.client.delete(f"/api/v1/contacts/{contact_id}/tags/სტუმარი%20vip", headers=headers)
    assert removed.json()["tags"] == []


@on_shared_app
@pytest.mark.parametrize("body", [{"tag": ""}, {"tag": "   "}, {"tag": "a/b"}, {"tag": "x" * 65},
                                  {"tag": "line\nbreak"}, {"tag": 7}, {"name": "vip"}, {}])
async def test_bad_tag_is_422_and_adds_nothing(shared: Shared, body: dict[str, Any]) -> None:
    contact_id = await _whatsapp_contact(shared.client, shared.workspace)
    response = await shared.client.post(f"/api/v1/contacts/{contact_id}/tags", json=body,
                                        headers=make_token(shared.workspace, "agent"))
    assert detail_paths(response)
    assert rows(shared.workspace, "SELECT tag FROM contact_tags WHERE contact_id = ?", [int(contact_id)]) == []


@on_shared_app
@pytest.mark.parametrize(("method", "url", "body"), [
    ("POST", "/api/v1/contacts/987654/tags", {"tag": "vip"}),
    ("DELETE", "/api/v1/contacts/987654/tags/vip", None),
])
async def test_tags_of_no_such_contact_are_404(shared: Shared, method: str, url: str, body: Any) -> None:
    response = await shared.client.request(method, url, json=body, headers=make_token(shared.workspace, "agent"))
    assert error_of(response, 404)["message"] == "contact 987654 does not exist"
    assert rows(shared.workspace, "SELECT * FROM contact_tags WHERE contact_id = 987654") == []
