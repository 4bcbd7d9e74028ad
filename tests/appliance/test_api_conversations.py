"""``/api/v1/conversations``: the inbox read API (filters, cursor pages, messages) and the
agent reply endpoint with Meta's messaging policy."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    age_window,
    count,
    detail_paths,
    error_of,
    execute,
    instagram_text,
    messenger_text,
    now_ms,
    on_shared_app,
    rows,
    running_app,
    shared,
    snapshot,
    walk,
    whatsapp_text,
)
from tests.helpers import connect_channel, ingest, make_token, outbox_empty, wait_until

LIST_FIELDS = {"id", "contact", "channel", "status", "assignee", "bot_paused", "last_message_at",
               "window_expires_at"}
MESSAGE_FIELDS = {"id", "direction", "kind", "text", "payload", "attachments", "external_id", "status",
                  "error", "sent_by", "created_at"}
_ids = itertools.count(1)


def _conversation_of(workspace: Workspace, external_id: str) -> str:
    return str(rows(workspace, """SELECT cv.id FROM conversations cv JOIN contacts c ON c.id = cv.contact_id
                                  WHERE c.external_id = ?""", [external_id])[0]["id"])


async def _talk(app: Shared, channel: str, *, connect: bool = True, minutes_ago: float = 1) -> dict[str, str]:
    """A new asset of ``channel`` (connected unless told otherwise) and a contact who wrote to it."""
    n = next(_ids)
    sender = f"{n:016d}"
    at = now_ms(minutes_ago)
    if channel == "whatsapp":
        asset = f"30{n:013d}"
        body = whatsapp_text(sender, f"wamid.talk{n}", at_ms=at)
        body = body.replace(b"109876543210987", asset.encode())
    elif channel == "instagram":
        asset = f"178{n:014d}"
        body = instagram_text(sender, f"ig_talk_{n}", at_ms=at, account=asset)
    else:
        asset = f"10{n:013d}"
        body = messenger_text(sender, f"m_talk_{n}", at_ms=at, page=asset)
    if connect:
        connect_channel(app.workspace, channel, asset)
    await ingest(app.client, body)
    conversation = _conversation_of(app.workspace, sender)
    contact = str(rows(app.workspace, "SELECT contact_id FROM conversations WHERE id = ?",
                       [int(conversation)])[0]["contact_id"])
    return {"asset": asset, "sender": sender, "conversation": conversation, "contact": contact}


def _outbound(workspace: Workspace, conversation: str) -> list[dict[str, Any]]:
    return rows(workspace, "SELECT * FROM messages WHERE conversation_id = ? AND direction = 'out'",
                [int(conversation)])


# --- list -----------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def inbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Shared, dict[str, str]]]:
    """Four conversations on an app of their own, only read by the tests using it:

    ===  =========  ======  ========  ==============
    key  channel    status  assignee  last activity
    ===  =========  ======  ========  ==============
    a    messenger  open    -         10 minutes ago
    b    whatsapp   closed  agent     20 minutes ago
    c    instagram  open    agent     30 minutes ago
    d    whatsapp   open    -         40 minutes ago
    ===  =========  ======  ========  ==============
    """
    async with running_app(tmp_path_factory.mktemp("inbox") / "data") as app:
        keys = {}
        for key, channel, minutes in (("a", "messenger", 10), ("b", "whatsapp", 20),
                                      ("c", "instagram", 30), ("d", "whatsapp", 40)):
            keys[key] = (await _talk(app, channel, minutes_ago=minutes))["conversation"]
        user = (await app.client.post("/api/v1/users", json={"email": "agent@example.com", "role": "agent"},
                                      headers=make_token(app.workspace, "admin"))).json()["id"]
        keys["user"] = user
        execute(app.workspace, "UPDATE conversations SET status = 'closed' WHERE id = ?", [keys["b"]])
        execute(app.workspace, "UPDATE conversations SET assignee_id = ? WHERE id IN (?, ?)",
                [user, keys["b"], keys["c"]])
        yield app, keys


FILTERS = {
    "no filter": ({}, "abcd"),
    "open": ({"status": "open"}, "acd"),
    "closed": ({"status": "closed"}, "b"),
    "channel": ({"channel": "whatsapp"}, "bd"),
    "unassigned": ({"assignee": "none"}, "ad"),
    "assigned to a user": ({"assignee": "{user}"}, "bc"),
    "assigned to nobody known": ({"assignee": "987654"}, ""),
    "me, as a token": ({"assignee": "me"}, ""),
    "filters combine": ({"status": "open", "assignee": "{user}"}, "c"),
    "channel and status": ({"channel": "whatsapp", "status": "open"}, "d"),
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(FILTERS))
async def test_list_filters(inbox: tuple[Shared, dict[str, str]], case: str) -> None:
    app, keys = inbox
    params, expected = FILTERS[case]
    params = {k: v.format(**keys) for k, v in params.items()}
    response = await app.client.get("/api/v1/conversations", params=params, headers=make_token(app.workspace, "agent"))
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["items"]] == [keys[k] for k in expected]


@on_shared_app
async def test_list_item_shape(inbox: tuple[Shared, dict[str, str]]) -> None:
    app, keys = inbox
    response = await app.client.get("/api/v1/conversations", headers=make_token(app.workspace, "agent"))
    item = response.json()["items"][1]  # b
    assert LIST_FIELDS <= set(item)
    assert item["id"] == keys["b"]
    assert (item["channel"], item["status"], item["assignee"], item["bot_paused"]) == (
        "whatsapp", "closed", keys["user"], False)
    assert {"id", "name"} <= set(item["contact"])
    assert item["contact"]["name"] == "Giorgi"
    assert item["last_message_at"].endswith("Z")
    # the 24-hour window runs from the contact's last message
    contact = (await app.client.get(f"/api/v1/contacts/{item['contact']['id']}",
                                    headers=make_token(app.workspace, "agent"))).json()
    assert item["last_message_at"] == contact["last_inbound_at"]
    assert item["window_expires_at"] > item["last_message_at"]


@on_shared_app
@pytest.mark.parametrize("assignee", ["bob", "-1", "1.5", "²", "9" * 30, ""])
async def test_bad_assignee_is_400(inbox: tuple[Shared, dict[str, str]], assignee: str) -> None:
    app, _ = inbox
    response = await app.client.get("/api/v1/conversations", params={"assignee": assignee},
                                    headers=make_token(app.workspace, "agent"))
    error = error_of(response, 400)
    assert error["code"] == "invalid_query"
    assert "assignee" in error["message"]


@on_shared_app
@pytest.mark.parametrize(("params", "path"), [
    ({"status": "pending"}, "status"), ({"channel": "sms"}, "channel"), ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
])
async def test_bad_list_parameters_are_422(inbox: tuple[Shared, dict[str, str]], params: dict[str, Any],
                                           path: str) -> None:
    app, _ = inbox
    response = await app.client.get("/api/v1/conversations", params=params, headers=make_token(app.workspace, "agent"))
    assert detail_paths(response) == [path]


@on_shared_app
@pytest.mark.parametrize("cursor", ["!!!", "MTI", "WyJ4Il0", "WzEsIDJd"])
async def test_bad_cursor_is_400(inbox: tuple[Shared, dict[str, str]], cursor: str) -> None:
    app, _ = inbox
    response = await app.client.get("/api/v1/conversations", params={"cursor": cursor},
                                    headers=make_token(app.workspace, "agent"))
    assert error_of(response, 400)["code"] == "invalid_cursor"


async def _five_conversations(client: AsyncTestClient, workspace: Workspace) -> list[str]:
    """Five Messenger conversations whose last messages are 50, 10, 30, 20 and 40 minutes old."""
    for n, minutes in enumerate((50, 10, 30, 20, 40)):
        await ingest(client, messenger_text(f"24600000000000{n:02d}", f"m_order_{n}", at_ms=now_ms(minutes)))
    return [_conversation_of(workspace, f"24600000000000{n:02d}") for n in range(5)]


async def test_pages_follow_the_last_activity(client: AsyncTestClient, workspace: Workspace) -> None:
    ids = await _five_conversations(client, workspace)
    pages = await walk(client, "/api/v1/conversations", make_token(workspace, "agent"), limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p] == [ids[1], ids[3], ids[2], ids[4], ids[0]]


async def test_a_new_message_moves_its_conversation_to_the_top(client: AsyncTestClient, workspace: Workspace) -> None:
    ids = await _five_conversations(client, workspace)
    await ingest(client, messenger_text("2460000000000000", "m_order_late", at_ms=now_ms(1)))
    response = await client.get("/api/v1/conversations", headers=make_token(workspace, "agent"))
    assert [c["id"] for c in response.json()["items"]] == [ids[0], ids[1], ids[3], ids[2], ids[4]]


async def test_get_one_conversation(client: AsyncTestClient, workspace: Workspace) -> None:
    ids = await _five_conversations(client, workspace)
    response = await client.get(f"/api/v1/conversations/{ids[2]}", headers=make_token(workspace, "agent"))
    assert response.status_code == 200
    assert LIST_FIELDS <= set(response.json())
    assert response.json()["id"] == ids[2]


@on_shared_app
@pytest.mark.parametrize(("url", "status"), [
    ("/api/v1/conversations/987654", 404), ("/api/v1/conversations/987654/messages", 404),
    ("/api/v1/conversations/0", 422), ("/api/v1/conversations/99999999999999999999/messages", 422),
])
async def test_no_such_conversation(shared: Shared, url: str, status: int) -> None:
    response = await shared.client.get(url, headers=make_token(shared.workspace, "agent"))
    error = error_of(response, status)
    if status == 404:
        assert error["message"] == "conversation 987654 does not exist"


# --- messages --------------------------------------------------------------------------------------

async def _thread(app: Shared, length: int) -> dict[str, str]:
    talk = await _talk(app, "messenger", minutes_ago=length + 1)
    for i in range(1, length):
        await ingest(app.client, messenger_text(talk["sender"], f"m_{talk['sender']}_{i}", text=f"line {i}",
                                                at_ms=now_ms(length - i), page=talk["asset"]))
    return talk


@on_shared_app
async def test_messages_are_oldest_first_with_the_api_fields(shared: Shared) -> None:
    talk = await _thread(shared, 3)
    response = await shared.client.get(f"/api/v1/conversations/{talk['conversation']}/messages",
                                       headers=make_token(shared.workspace, "agent"))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [m["text"] for m in items] == ["hello", "line 1", "line 2"]
    first = items[0]
    assert MESSAGE_FIELDS <= set(first)
    assert (first["direction"], first["kind"], first["status"], first["sent_by"], first["error"]) == (
        "in", "text", "received", "contact", None)
    assert (first["payload"], first["attachments"]) == ({}, [])
    assert first["external_id"].startswith("m_talk_")


@on_shared_app
async def test_message_pages_walk_the_thread_once(shared: Shared) -> None:
    talk = await _thread(shared, 5)
    pages = await walk(shared.client, f"/api/v1/conversations/{talk['conversation']}/messages",
                       make_token(shared.workspace, "agent"), limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [m["text"] for p in pages for m in p] == ["hello", "line 1", "line 2", "line 3", "line 4"]


@on_shared_app
async def test_message_cursor_must_be_one_we_issued(shared: Shared) -> None:
    talk = await _thread(shared, 1)
    response = await shared.client.get(f"/api/v1/conversations/{talk['conversation']}/messages",
                                       params={"cursor": "WyJ4Il0"}, headers=make_token(shared.workspace, "agent"))
    assert error_of(response, 400)["code"] == "invalid_cursor"


# --- replies ---------------------------------------------------------------------------------------

async def _reply(app: Shared, conversation: str, body: Any) -> Any:
    return await app.client.post(f"/api/v1/conversations/{conversation}/messages", json=body,
                                 headers=make_token(app.workspace, "agent"))


async def _sent_to(app: Shared, asset: str) -> dict[str, Any]:
    """The one request the sender made to the Graph stand-in for ``asset``."""
    async def arrived() -> bool:
        return len(app.graph.sends_to(asset)) == 1

    await wait_until(arrived)
    await outbox_empty(app.client)
    return app.graph.sends_to(asset)[0].json


@on_shared_app
async def test_reply_is_queued_and_sent(shared: Shared) -> None:
    talk = await _talk(shared, "messenger")
    response = await _reply(shared, talk["conversation"], {"text": "We open at 10."})
    assert response.status_code == 202, response.text
    body = response.json()
    assert MESSAGE_FIELDS <= set(body)
    assert (body["direction"], body["kind"], body["text"], body["status"], body["sent_by"]) == (
        "out", "text", "We open at 10.", "queued", "user")
    sent = await _sent_to(shared, talk["asset"])
    assert (sent["recipient"], sent["message"]["text"], sent["messaging_type"]) == (
        {"id": talk["sender"]}, "We open at 10.", "RESPONSE")
    assert _outbound(shared.workspace, talk["conversation"])[0]["status"] == "sent"


@on_shared_app
async def test_reply_appears_in_the_thread_and_moves_the_conversation_up(shared: Shared) -> None:
    talk = await _talk(shared, "whatsapp", minutes_ago=30)
    message = (await _reply(shared, talk["conversation"], {"text": "Yes, until 8."})).json()
    await outbox_empty(shared.client)
    headers = make_token(shared.workspace, "agent")
    thread = (await shared.client.get(f"/api/v1/conversations/{talk['conversation']}/messages",
                                      headers=headers)).json()["items"]
    assert [(m["id"], m["direction"]) for m in thread][-1] == (message["id"], "out")
    conversation = (await shared.client.get(f"/api/v1/conversations/{talk['conversation']}",
                                            headers=headers)).json()
    assert conversation["last_message_at"] == message["created_at"]


@on_shared_app
@pytest.mark.parametrize("body", [
    {}, {"text": "hi", "template": {"name": "hello_world", "language": "en_US"}},
    {"text": None, "template": None},
])
async def test_reply_needs_exactly_one_of_text_or_template(shared: Shared, body: dict[str, Any]) -> None:
    talk = await _talk(shared, "whatsapp")
    before = snapshot(shared.workspace, "messages", "outbox")
    response = await _reply(shared, talk["conversation"], body)
    assert error_of(response, 422)["details"] == [
        {"path": "body", "message": "give exactly one of `text` or `template`"}]
    assert snapshot(shared.workspace, "messages", "outbox") == before


@on_shared_app
@pytest.mark.parametrize(("body", "paths"), [
    ({"text": ""}, ["text"]),
    ({"text": "x" * 4097}, ["text"]),
    ({"text": "hi", "quick_replies": []}, ["quick_replies"]),
    ({"template": {"name": "Hello World", "language": "en_US"}}, ["template.name"]),
    ({"template": {"name": "hello_world", "language": "English"}}, ["template.language"]),
    ({"template": {"name": "hello_world"}}, ["template.language"]),
    ({"template": {"name": "hello_world", "language": {"code": "en_US", "policy": "x"}}}, ["template.language"]),
])
async def test_invalid_reply_is_422(shared: Shared, body: dict[str, Any], paths: list[str]) -> None:
    talk = await _talk(shared, "whatsapp")
    before = snapshot(shared.workspace, "messages", "outbox")
    response = await _reply(shared, talk["conversation"], body)
    assert detail_paths(response) == paths
    assert snapshot(shared.workspace, "messages", "outbox") == before


@on_shared_app
@pytest.mark.parametrize(("channel", "limit"), [("messenger", 2000), ("instagram", 1000)])
async def test_text_over_the_channel_limit_cannot_render(shared: Shared, channel: str, limit: int) -> None:
    talk = await _talk(shared, channel)
    response = await _reply(shared, talk["conversation"], {"text": "x" * (limit + 1)})
    error = error_of(response, 422)
    assert error["code"] == "cannot_render"
    assert str(limit) in error["message"]
    assert _outbound(shared.workspace, talk["conversation"]) == []


@on_shared_app
@pytest.mark.parametrize(("channel", "limit"), [("messenger", 2000), ("instagram", 1000)])
async def test_text_at_the_channel_limit_is_queued(shared: Shared, channel: str, limit: int) -> None:
    talk = await _talk(shared, channel)
    response = await _reply(shared, talk["conversation"], {"text": "x" * limit})
    assert response.status_code == 202, response.text
    await outbox_empty(shared.client)


@on_shared_app
async def test_reply_on_a_disconnected_channel_is_409(shared: Shared) -> None:
    talk = await _talk(shared, "messenger")
    channel = rows(shared.workspace, "SELECT id FROM channels WHERE external_id = ?", [talk["asset"]])[0]["id"]
    await shared.client.delete(f"/api/v1/channels/{channel}", headers=make_token(shared.workspace, "admin"))
    response = await _reply(shared, talk["conversation"], {"text": "hello?"})
    error = error_of(response, 409)
    assert error["code"] == "channel_unavailable"
    assert "reconnect" in error["message"]
    assert _outbound(shared.workspace, talk["conversation"]) == []


@on_shared_app
async def test_reply_on_a_channel_never_connected_is_409(shared: Shared) -> None:
    talk = await _talk(shared, "instagram", connect=False)
    response = await _reply(shared, talk["conversation"], {"text": "hello?"})
    assert error_of(response, 409)["code"] == "channel_unavailable"


@on_shared_app
async def test_reply_to_no_such_conversation_is_404(shared: Shared) -> None:
    response = await _reply(shared, "987654", {"text": "hello?"})
    assert error_of(response, 404)["message"] == "conversation 987654 does not exist"


@on_shared_app
@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_human_agent_tag_between_24_hours_and_7_days(shared: Shared, channel: str) -> None:
    talk = await _talk(shared, channel)
    age_window(shared.workspace, talk["contact"], hours=30)
    response = await _reply(shared, talk["conversation"], {"text": "Sorry for the wait!"})
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["messaging_type"], response.json()["tag"]) == (
        "queued", "MESSAGE_TAG", "HUMAN_AGENT")
    sent = await _sent_to(shared, talk["asset"])
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@on_shared_app
@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_no_reply_after_7_days(shared: Shared, channel: str) -> None:
    talk = await _talk(shared, channel)
    age_window(shared.workspace, talk["contact"], hours=7 * 24 + 1)
    response = await _reply(shared, talk["conversation"], {"text": "Still there?"})
    assert error_of(response, 422)["code"] == "outside_window"
    assert _outbound(shared.workspace, talk["conversation"]) == []


@on_shared_app
async def test_no_reply_when_the_contact_never_opened_the_window(shared: Shared) -> None:
    talk = await _talk(shared, "messenger")
    execute(shared.workspace, "UPDATE contacts SET last_inbound_at = NULL WHERE id = ?", [int(talk["contact"])])
    response = await _reply(shared, talk["conversation"], {"text": "Hi!"})
    assert error_of(response, 422)["code"] == "outside_window"


@on_shared_app
async def test_messenger_refuses_templates(shared: Shared) -> None:
    talk = await _talk(shared, "messenger")
    response = await _reply(shared, talk["conversation"], {"template": {"name": "hello_world", "language": "en_US"}})
    assert error_of(response, 422)["code"] == "template_not_supported"
    assert _outbound(shared.workspace, talk["conversation"]) == []


@on_shared_app
async def test_whatsapp_free_form_inside_24_hours(shared: Shared) -> None:
    talk = await _talk(shared, "whatsapp")
    age_window(shared.workspace, talk["contact"], hours=23)
    response = await _reply(shared, talk["conversation"], {"text": "Yes!"})
    assert response.status_code == 202, response.text
    sent = await _sent_to(shared, talk["asset"])
    assert (sent["type"], sent["text"]["body"]) == ("text", "Yes!")


@on_shared_app
async def test_whatsapp_free_form_after_24_hours_needs_a_template(shared: Shared) -> None:
    talk = await _talk(shared, "whatsapp")
    age_window(shared.workspace, talk["contact"], hours=25)
    before = count(shared.workspace, "outbox")
    response = await _reply(shared, talk["conversation"], {"text": "Are you still interested?"})
    error = error_of(response, 422)
    assert error["code"] == "template_required"
    assert "template" in error["message"]
    assert _outbound(shared.workspace, talk["conversation"]) == []
    assert count(shared.workspace, "outbox") == before


@on_shared_app
@pytest.mark.parametrize("language", ["en_US", {"code": "en_US"}])
async def test_whatsapp_template_after_24_hours(shared: Shared, language: Any) -> None:
    talk = await _talk(shared, "whatsapp")
    age_window(shared.workspace, talk["contact"], hours=72)
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Giorgi"}]}]
    response = await _reply(shared, talk["conversation"],
                            {"template": {"name": "order_update", "language": language, "components": components}})
    assert response.status_code == 202, response.text
    assert (response.json()["kind"], response.json()["status"]) == ("template", "queued")
    sent = await _sent_to(shared, talk["asset"])
    assert (sent["type"], sent["template"]) == (
        "template", {"name": "order_update", "language": {"code": "en_US"}, "components": components})
