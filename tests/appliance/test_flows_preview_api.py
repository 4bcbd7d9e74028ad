"""``POST /api/v1/flows/{id}/preview``: what the bot would send, touching no channel."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.timeutil import utcnow
from tests.appliance.api_helpers import (
    error_of,
    execute,
    snapshot,
)
from tests.appliance.flow_helpers import document, pricing_document
from tests.appliance.flow_run_helpers import (
    ASSETS,
    publish_flow,
)
from tests.appliance.flows_api_helpers import (  # noqa: F401 - fixtures
    admin,
    channels,
    create,
    reminder,
)
from tests.helpers import make_token
from tests.standins.graph_api import GraphStandIn

FLOWS = "/api/v1/flows"


# --- preview ------------------------------------------------------------------------------------

async def preview(client: AsyncTestClient, headers: dict[str, str], flow_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{FLOWS}/{flow_id}/preview", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def said(result: dict[str, Any]) -> list[str | None]:
    return [item["text"] for item in result["transcript"] if item["type"] == "message"]


QUICK = document({
    "pick": {"type": "message", "text": "Pick one", "quick_replies": [
        {"title": "Yes", "next": "yes"}, {"title": "No", "next": "no"}]},
    "yes": {"type": "message", "text": "Great."},
    "no": {"type": "message", "text": "Maybe later."},
}, name="Quick")


async def test_preview_renders_quick_replies_for_messenger(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, QUICK)
    [message] = (await preview(client, admin, flow["id"], channel="messenger"))["transcript"]
    [body] = message["channel_bodies"]
    assert body["message"]["text"] == "Pick one"
    assert [(q["content_type"], q["title"]) for q in body["message"]["quick_replies"]] == [
        ("text", "Yes"), ("text", "No")]


async def test_preview_renders_interactive_buttons_for_whatsapp(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, QUICK)
    [message] = (await preview(client, admin, flow["id"], channel="whatsapp"))["transcript"]
    [body] = message["channel_bodies"]
    assert (body["messaging_product"], body["type"], body["interactive"]["type"]) == (
        "whatsapp", "interactive", "button")
    assert body["interactive"]["body"]["text"] == "Pick one"
    assert [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]] == ["Yes", "No"]


async def test_preview_starts_at_the_first_message_with_the_contacts_name(
    client: AsyncTestClient, admin: dict[str, str]
) -> None:
    flow = await create(client, admin, pricing_document())
    result = await preview(client, admin, flow["id"], channel="messenger")
    assert said(result) == ["Hi Preview! What would you like?"]
    assert [b["title"] for b in result["transcript"][0]["buttons"]] == ["Plans", "Talk to a human"]
    assert result["run"] == {"status": "active", "step": "hello", "waiting": "reply"}


async def test_preview_tapping_a_button_continues(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, pricing_document())
    start = await preview(client, admin, flow["id"], channel="whatsapp")
    plans = start["transcript"][0]["buttons"][0]
    assert plans["title"] == "Plans"
    result = await preview(client, admin, flow["id"], channel="whatsapp", payload=plans["payload"])
    assert said(result) == ["Pro is 15 EUR a month.", "Where can we send the details?"]
    assert result["run"] == {"status": "active", "step": "ask_email", "waiting": "input"}


async def test_preview_validates_typed_answers(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, pricing_document())
    start = await preview(client, admin, flow["id"])
    await preview(client, admin, flow["id"], payload=start["transcript"][0]["buttons"][0]["payload"])
    wrong = await preview(client, admin, flow["id"], text="not an email")
    assert said(wrong) == ["That doesn't look like an email."]
    right = await preview(client, admin, flow["id"], text="Ana@Example.com")
    assert said(right) == ["Thanks! Sent to ana@example.com."]
    assert right["run"]["status"] == "completed"
    assert right["contact"] == {"tags": ["lead"], "fields": {"email": "ana@example.com"}, "subscribed": True}


async def test_preview_reset_starts_over(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, pricing_document())
    start = await preview(client, admin, flow["id"])
    await preview(client, admin, flow["id"], payload=start["transcript"][0]["buttons"][0]["payload"])
    result = await preview(client, admin, flow["id"], reset=True)
    assert said(result) == ["Hi Preview! What would you like?"]
    assert result["run"] == {"status": "active", "step": "hello", "waiting": "reply"}
    assert result["contact"]["fields"] == {}


async def test_preview_sessions_belong_to_each_user(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    flow = await create(client, admin, pricing_document())
    start = await preview(client, admin, flow["id"])
    await preview(client, admin, flow["id"], payload=start["transcript"][0]["buttons"][0]["payload"])
    other = make_token(workspace, "admin")
    assert said(await preview(client, other, flow["id"], text="hello?")) == ["Hi Preview! What would you like?"]
    mine = await preview(client, admin, flow["id"], text="not an email")
    assert said(mine) == ["That doesn't look like an email."]


async def test_preview_passes_a_delay_at_once_and_reports_it(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, reminder())
    before = utcnow()
    before -= timedelta(microseconds=before.microsecond % 1000)  # times are stored to the millisecond
    result = await preview(client, admin, flow["id"])
    assert [item["type"] for item in result["transcript"]] == ["message", "wait", "message"]
    assert said(result) == ["See you in an hour.", "Here is your reminder."]
    wait = result["transcript"][1]
    assert wait["kind"] == "delay"
    until = datetime.fromisoformat(wait["until"].replace("Z", "+00:00"))
    assert before + timedelta(hours=1) <= until <= utcnow() + timedelta(hours=1)
    assert result["run"]["status"] == "completed"


CALL = document({
    "call": {"type": "http_request", "url": "https://example.com/orders", "next": "found", "on_error": "sorry"},
    "found": {"type": "message", "text": "Found it."},
    "sorry": {"type": "message", "text": "Our order system is not connected yet."},
}, name="Lookup")


async def test_preview_of_an_outside_call_takes_on_error(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, CALL)
    result = await preview(client, admin, flow["id"])
    assert [(item["type"], item["step"]) for item in result["transcript"]] == [("call", "call"), ("message", "sorry")]
    assert result["transcript"][0]["kind"] == "http_request"
    assert said(result) == ["Our order system is not connected yet."]


async def test_preview_reports_the_call_as_not_configured(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow = await create(client, admin, CALL)
    call = (await preview(client, admin, flow["id"]))["transcript"][0]
    assert call["type"] == "call"
    assert "not_configured" in json.dumps(call)


async def test_preview_reaches_no_channel_and_stores_no_contact(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], channels: None
) -> None:
    tables = ("contacts", "conversations", "messages", "outbox", "flow_runs", "flow_step_events", "flow_timers")
    before = snapshot(workspace, *tables)
    for doc in (pricing_document(), reminder(), CALL, QUICK):
        flow_id = await publish_flow(client, admin, doc)
        for channel in ASSETS:
            start = await preview(client, admin, flow_id, channel=channel, reset=True)
            buttons = [b for item in start["transcript"] if item["type"] == "message"
                       for b in item["buttons"] + item["quick_replies"]]
            if buttons:
                await preview(client, admin, flow_id, channel=channel, payload=buttons[0]["payload"])
    assert (graph_api.requests, graph_api.other_requests) == ([], [])
    assert snapshot(workspace, *tables) == before


async def test_preview_uses_the_draft(client: AsyncTestClient, admin: dict[str, str]) -> None:
    flow_id = await publish_flow(client, admin, reminder("Version one."))
    await client.put(f"{FLOWS}/{flow_id}", json=reminder("Draft two."), headers=admin)
    assert said(await preview(client, admin, flow_id))[0] == "Draft two."


async def test_preview_of_an_invalid_draft_is_422(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    flow = await create(client, admin, pricing_document())
    # A draft saved before a rule existed: the API refuses to store one like it today.
    broken = pricing_document()
    broken["steps"]["plans"]["next"] = "gone"
    execute(workspace, "UPDATE flows SET document = ? WHERE id = ?", [json.dumps(broken), int(flow["id"])])
    response = await client.post(f"{FLOWS}/{flow['id']}/preview", json={}, headers=admin)
    error = error_of(response, 422)
    assert (error["code"], [d["path"] for d in error["details"]]) == ("invalid_flow", ["steps.plans.next"])


async def test_preview_of_an_unknown_flow_is_404(client: AsyncTestClient, admin: dict[str, str]) -> None:
    response = await client.post(f"{FLOWS}/999/preview", json={}, headers=admin)
    assert error_of(response, 404)["code"] == "not_found"
