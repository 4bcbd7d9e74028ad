"""``/api/v1/broadcasts``: the resource's shape, what creation checks (a bad broadcast is a 422
that stores nothing), scheduling in a time zone, the state machine, and the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import count, error_of, rows, walk
from tests.appliance.broadcast_helpers import (
    ORDER_READY,
    SPRING_SALE,
    act,
    catalogue,
    connect,
    create,
    fetch,
    sync_templates,
)
from tests.helpers import make_token
from tests.standins.graph_api import GraphStandIn

SALE_FLOW = {
    "schema": "aat.flow/v1", "name": "Spring sale",
    "triggers": [{"type": "postback", "payload": "SPRING_SALE"}],
    "start": "hello", "steps": {"hello": {"type": "message", "text": "Here is what is on sale"}},
}
LATER = "2099-01-01T09:00:00Z"


@pytest.fixture
def auth(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def publish(client: AsyncTestClient, auth: dict[str, str], document: dict[str, Any], *,
                  published: bool = True) -> str:
    flow = await client.post("/api/v1/flows", json=document, headers=auth)
    assert flow.status_code == 201, flow.text
    if published:
        assert (await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=auth)).status_code == 200
    return str(flow.json()["id"])


async def with_catalogue(client: AsyncTestClient, auth: dict[str, str], workspace: Workspace,
                         graph: GraphStandIn, *templates: dict[str, Any]) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph, *(templates or (SPRING_SALE, ORDER_READY)))
    await sync_templates(client, auth)


# --- the resource ---------------------------------------------------------------------------------

async def test_a_new_broadcast_is_a_draft_with_zero_counts(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    body = await create(client, auth, {"text": "Sale!"}, {"tags": {"any": ["vip"]}})
    assert body == {
        "id": body["id"], "name": "Spring sale", "status": "draft", "status_reason": None,
        "audience": {"tags": {"any": ["vip"]}}, "message": {"text": "Sale!"}, "send_at": None, "timezone": None,
        "counts": {"total": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0, "skipped": 0},
        "skipped_reasons": {}, "progress": {"audience_complete": False, "pending": 0, "queued": 0},
        "created_at": body["created_at"], "started_at": None, "completed_at": None,
    }


async def test_get_returns_what_create_returned(client: AsyncTestClient, auth: dict[str, str]) -> None:
    created = await create(client, auth, {"text": "Sale!"})
    assert await fetch(client, auth, created["id"]) == created


async def test_an_unknown_broadcast_is_404(client: AsyncTestClient, auth: dict[str, str]) -> None:
    assert error_of(await client.get("/api/v1/broadcasts/999", headers=auth), 404)["code"] == "not_found"


async def test_the_list_is_newest_first_and_pages(client: AsyncTestClient, auth: dict[str, str]) -> None:
    ids = [(await create(client, auth, {"text": f"Sale {i}"}))["id"] for i in range(5)]
    pages = await walk(client, "/api/v1/broadcasts", auth, limit=2)
    assert [[b["id"] for b in p] for p in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1]]


async def test_a_flow_button_carries_the_flows_postback_payload(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "messenger")  # WhatsApp cannot mix link and reply buttons
    flow_id = await publish(client, auth, SALE_FLOW)
    body = await create(client, auth, {"text": "Sale!", "buttons": [
        {"title": "Show me", "flow_id": flow_id}, {"title": "Shop", "url": "https://shop.example/"}]})
    assert body["message"]["buttons"] == [
        {"title": "Show me", "flow_id": flow_id, "payload": "SPRING_SALE"},
        {"title": "Shop", "url": "https://shop.example/"}]


async def test_a_template_is_stored_with_its_account_and_category(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    await with_catalogue(client, auth, workspace, graph_api)
    body = await create(client, auth, {"template": {"name": "order_ready", "language": "en_US",
                                                    "body": {"order": "#1", "first_name": "{{contact.first_name}}"}}})
    assert body["message"]["template"] == {
        "name": "order_ready", "language": "en_US", "body": {"order": "#1", "first_name": "{{contact.first_name}}"},
        "waba_id": "203040506070809", "category": "UTILITY"}


# --- a bad broadcast: 422, nothing stored ----------------------------------------------------------

BAD_TEXT = [
    pytest.param({"text": "Hi", "template": {"name": "spring_sale", "language": "en_US"}}, "message",
                 id="text-and-template"),
    pytest.param({}, "message", id="neither"),
    pytest.param({"text": ""}, "message.text", id="empty-text"),
    pytest.param({"text": "Hi", "buttons": [{"title": "Go", "payload": "GO", "url": "https://x.example/"}]},
                 "message.buttons.0", id="button-with-two-actions"),
    pytest.param({"text": "Hi", "buttons": [{"title": "A much too long button title", "payload": "GO"}]},
                 "message.buttons.0.title", id="button-title-over-20"),
    pytest.param({"text": "Hi", "buttons": [{"title": str(i), "payload": str(i)} for i in range(4)]},
                 "message.buttons", id="four-buttons"),
    pytest.param({"text": "Hi", "buttons": [{"title": "Go", "flow_id": "999"}]}, "message.buttons.0.flow_id",
                 id="unknown-flow"),
]


@pytest.mark.parametrize(("message", "path"), BAD_TEXT)
async def test_a_bad_message_is_422_and_stores_nothing(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, message: dict[str, Any], path: str
) -> None:
    connect(workspace, "whatsapp")
    response = await client.post("/api/v1/broadcasts", headers=auth, json={"name": "Sale", "message": message})
    assert [d["path"] for d in error_of(response, 422).get("details", [])] == [path]
    assert count(workspace, "broadcasts") == 0


async def test_a_flow_without_a_postback_trigger_cannot_be_a_button(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    flow_id = await publish(client, auth, {**SALE_FLOW, "triggers": [{"type": "keyword", "keywords": ["sale"]}]})
    response = await client.post("/api/v1/broadcasts", headers=auth, json={
        "name": "Sale", "message": {"text": "Hi", "buttons": [{"title": "Go", "flow_id": flow_id}]}})
    [detail] = error_of(response, 422)["details"]
    assert detail["path"] == "message.buttons.0.flow_id" and "postback" in detail["message"]


async def test_an_unpublished_flow_cannot_be_a_button(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    flow_id = await publish(client, auth, SALE_FLOW, published=False)
    response = await client.post("/api/v1/broadcasts", headers=auth, json={
        "name": "Sale", "message": {"text": "Hi", "buttons": [{"title": "Go", "flow_id": flow_id}]}})
    assert "not published" in error_of(response, 422)["details"][0]["message"]


async def test_a_text_must_fit_every_channel_the_audience_reaches(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "whatsapp")
    connect(workspace, "instagram")
    long = {"name": "Sale", "message": {"text": "x" * 1500}}
    refused = await client.post("/api/v1/broadcasts", headers=auth, json=long)
    assert "instagram" in error_of(refused, 422)["details"][0]["message"]
    only_whatsapp = await client.post("/api/v1/broadcasts", headers=auth,
                                      json={**long, "audience": {"channels": ["whatsapp"]}})
    assert only_whatsapp.status_code == 201, only_whatsapp.text


BAD_TEMPLATES = [
    pytest.param({"name": "autumn_sale", "language": "en_US"}, "message.template", id="not-in-catalogue"),
    pytest.param({"name": "spring_sale", "language": "en_US", "header": ["Acme"], "body": ["Ana"]},
                 "message.template.body", id="too-few-body-variables"),
    pytest.param({"name": "spring_sale", "language": "en_US", "body": ["Ana", "20%"]},
                 "message.template.header", id="header-variable-missing"),
    pytest.param({"name": "spring_sale", "language": "en_US", "header": ["Acme"], "body": ["Ana", "20%"],
                  "header_media": {"type": "image", "link": "https://x.example/a.jpg"}},
                 "message.template.header_media", id="media-header-on-a-text-header"),
    pytest.param({"name": "spring_sale", "language": "en_US", "header": ["Acme"], "body": ["Ana", "20%"],
                  "buttons": [{"index": 1, "payload": "X"}]},
                 "message.template.buttons.0.index", id="url-button-as-quick-reply"),
    pytest.param({"name": "order_ready", "language": "en_US", "body": ["#1", "Ana"]},
                 "message.template.body", id="positional-for-named"),
    pytest.param({"name": "order_ready", "language": "en_US", "body": {"order": "#1"}},
                 "message.template.body", id="named-variable-missing"),
]


@pytest.mark.parametrize(("template", "path"), BAD_TEMPLATES)
async def test_a_template_must_match_the_catalogue(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn,
    template: dict[str, Any], path: str,
) -> None:
    await with_catalogue(client, auth, workspace, graph_api)
    response = await client.post("/api/v1/broadcasts", headers=auth,
                                 json={"name": "Sale", "message": {"template": template}})
    assert [d["path"] for d in error_of(response, 422)["details"]] == [path]
    assert count(workspace, "broadcasts") == 0


async def test_a_template_in_two_accounts_needs_the_account(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    await with_catalogue(client, auth, workspace, graph_api)
    other = "999000999000999"
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO whatsapp_templates (waba_id, name, language, status, updated_at) "
        "VALUES (?, 'order_ready', 'en_US', 'APPROVED', 'x')", [other]))
    message = {"template": {"name": "order_ready", "language": "en_US", "body": {"order": "1", "first_name": "A"}}}
    ambiguous = await client.post("/api/v1/broadcasts", headers=auth, json={"name": "S", "message": message})
    assert error_of(ambiguous, 422)["details"][0]["path"] == "message.template.waba_id"
    message["template"]["waba_id"] = other
    named = await client.post("/api/v1/broadcasts", headers=auth, json={"name": "S", "message": message})
    assert named.json()["message"]["template"]["waba_id"] == other


# --- scheduling ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("send_at", "timezone", "stored"), [
    ("2099-03-01T09:00:00", "Europe/Berlin", "2099-03-01T08:00:00.000Z"),
    ("2099-07-01T09:00:00", "Europe/Berlin", "2099-07-01T07:00:00.000Z"),
    ("2099-07-01T09:00:00+04:00", "Europe/Berlin", "2099-07-01T05:00:00.000Z"),
    ("2099-07-01T09:00:00Z", None, "2099-07-01T09:00:00.000Z"),
], ids=["winter-time", "summer-time", "offset-wins", "utc"])
async def test_send_at_is_read_in_its_time_zone(
    client: AsyncTestClient, auth: dict[str, str], send_at: str, timezone: str | None, stored: str
) -> None:
    body = await create(client, auth, {"text": "Sale"}, send_at=send_at, **({"timezone": timezone} if timezone else {}))
    assert (body["send_at"], body["timezone"]) == (stored, timezone or "UTC")


async def test_a_local_send_at_defaults_to_the_workspaces_time_zone(
    client: AsyncTestClient, auth: dict[str, str]
) -> None:
    await client.put("/api/v1/settings/workspace", headers=auth, json={"timezone": "Asia/Tbilisi"})
    body = await create(client, auth, {"text": "Sale"}, send_at="2099-07-01T09:00:00")
    assert (body["send_at"], body["timezone"]) == ("2099-07-01T05:00:00.000Z", "Asia/Tbilisi")


@pytest.mark.parametrize(("extra", "path"), [
    ({"send_at": "2099-07-01T09:00:00", "timezone": "Mars/Olympus"}, "timezone"),
    ({"send_at": "next friday"}, "send_at"),
], ids=["unknown-zone", "not-a-time"])
async def test_a_bad_schedule_is_422(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, extra: dict[str, Any], path: str
) -> None:
    response = await client.post("/api/v1/broadcasts", headers=auth,
                                 json={"name": "Sale", "message": {"text": "Hi"}, **extra})
    assert error_of(response, 422)["details"][0]["path"] == path
    assert count(workspace, "broadcasts") == 0


# --- the state machine -----------------------------------------------------------------------------

async def transition(client: AsyncTestClient, auth: dict[str, str], broadcast_id: str, action: str) -> Any:
    return await client.post(f"/api/v1/broadcasts/{broadcast_id}/{action}", headers=auth)


async def test_starting_with_send_at_ahead_schedules_it(client: AsyncTestClient, auth: dict[str, str]) -> None:
    created = await create(client, auth, {"text": "Sale"}, send_at=LATER)
    assert (await act(client, auth, created["id"], "start"))["status"] == "scheduled"


async def test_starting_without_send_at_sends_now(client: AsyncTestClient, auth: dict[str, str]) -> None:
    created = await create(client, auth, {"text": "Sale"})
    started = await act(client, auth, created["id"], "start")
    assert started["status"] in ("sending", "completed") and started["started_at"] is not None


async def test_pause_and_start_again_keep_the_schedule(client: AsyncTestClient, auth: dict[str, str]) -> None:
    created = await create(client, auth, {"text": "Sale"}, send_at=LATER)
    await act(client, auth, created["id"], "start")
    statuses = [(await act(client, auth, created["id"], a))["status"] for a in ("pause", "start")]
    assert statuses == ["paused", "scheduled"]


# (setup actions, refused action) -> 409 invalid_transition
REFUSED = [
    pytest.param([], "pause", id="pause-a-draft"),
    pytest.param(["cancel"], "start", id="start-a-cancelled"),
    pytest.param(["cancel"], "pause", id="pause-a-cancelled"),
]


@pytest.mark.parametrize(("setup", "action"), REFUSED)
async def test_impossible_transitions_are_409(
    client: AsyncTestClient, auth: dict[str, str], setup: list[str], action: str
) -> None:
    created = await create(client, auth, {"text": "Sale"}, send_at=LATER)
    for step in setup:
        await act(client, auth, created["id"], step)
    before = await fetch(client, auth, created["id"])
    assert error_of(await transition(client, auth, created["id"], action), 409)["code"] == "invalid_transition"
    assert await fetch(client, auth, created["id"]) == before


async def test_a_completed_broadcast_cannot_be_cancelled(client: AsyncTestClient, auth: dict[str, str]) -> None:
    created = await create(client, auth, {"text": "Sale"})  # nobody to send to: completes at once
    await act(client, auth, created["id"], "start")
    from tests.appliance.broadcast_helpers import until_status

    await until_status(client, auth, created["id"], "completed")
    assert error_of(await transition(client, auth, created["id"], "cancel"), 409)["code"] == "invalid_transition"


async def test_repeating_an_action_changes_nothing_and_is_audited_once(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    created = await create(client, auth, {"text": "Sale"}, send_at=LATER)
    for action in ("start", "start", "pause", "pause", "cancel", "cancel"):
        assert (await transition(client, auth, created["id"], action)).status_code == 200
    actions = [r["action"] for r in rows(workspace, "SELECT action FROM audit_log WHERE target_kind = 'broadcast' "
                                                    "ORDER BY id")]
    assert actions == ["broadcast.create", "broadcast.start", "broadcast.pause", "broadcast.cancel"]


async def test_every_action_is_audited_with_who_and_what(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    created = await create(client, auth, {"text": "Sale"}, send_at=LATER)
    for action in ("start", "pause", "start", "cancel"):
        await act(client, auth, created["id"], action)
    entries = rows(workspace, "SELECT actor_kind, actor_label, action, target_id, details FROM audit_log "
                              "WHERE target_kind = 'broadcast' ORDER BY id")
    assert [(e["actor_kind"], e["actor_label"], e["action"], e["target_id"], e["details"]) for e in entries] == [
        ("token", "test-admin", "broadcast.create", created["id"], '{"kind": "text"}'),
        ("token", "test-admin", "broadcast.start", created["id"], '{"from": "draft", "to": "scheduled"}'),
        ("token", "test-admin", "broadcast.pause", created["id"], '{"from": "scheduled", "to": "paused"}'),
        ("token", "test-admin", "broadcast.resume", created["id"], '{"from": "paused", "to": "scheduled"}'),
        ("token", "test-admin", "broadcast.cancel", created["id"], '{"from": "scheduled", "to": "cancelled"}'),
    ]


async def test_a_template_meta_paused_cannot_be_started(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    await with_catalogue(client, auth, workspace, graph_api, {**ORDER_READY, "status": "PAUSED"})
    created = await create(client, auth, {"template": {"name": "order_ready", "language": "en_US",
                                                       "body": {"order": "1", "first_name": "A"}}})
    refused = await transition(client, auth, created["id"], "start")
    assert error_of(refused, 409) == {"code": "template_not_sendable",
                                      "message": "the template order_ready (en_US) is paused at Meta"}
    assert (await fetch(client, auth, created["id"]))["status"] == "draft"


async def test_agents_cannot_see_broadcasts(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.get("/api/v1/broadcasts", headers=make_token(workspace, "agent"))
    assert error_of(response, 403)["code"] == "forbidden"
