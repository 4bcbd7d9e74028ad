"""Broadcasts going out through the real app to the Graph stand-in: the exact requests, every
skip reason, templates outside the window, buttons that start flows, and delivery statuses
rolling up into the counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.connections.store import disconnect_channel
from appliance.store.workspace import Workspace
from appliance.timeutil import iso_now, utcnow
from tests.appliance.api_helpers import rows
from tests.appliance.broadcast_helpers import (
    IG_ID,
    ORDER_READY,
    PAGE_ID,
    PHONE_ID,
    SPRING_SALE,
    WABA_ID,
    catalogue,
    connect,
    make_contact,
    recipients,
    send,
    sent_to,
    sync_templates,
    wa_contact,
)
from tests.helpers import ingest, make_token, outbox_empty, wait_until
from tests.standins.graph_api import GraphStandIn

SALE_FLOW = {
    "schema": "aat.flow/v1", "name": "Spring sale",
    "triggers": [{"type": "postback", "payload": "SPRING_SALE"}],
    "start": "hello", "steps": {"hello": {"type": "message", "text": "Here is what is on sale"}},
}


@pytest.fixture
def auth(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def published_flow(client: AsyncTestClient, auth: dict[str, str]) -> str:
    flow = await client.post("/api/v1/flows", json=SALE_FLOW, headers=auth)
    await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=auth)
    return str(flow.json()["id"])


def wa_value(**fields: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID}, **fields}


def wa_delivery(value: dict[str, Any], field: str = "messages") -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": WABA_ID, "time": int(utcnow().timestamp()), "changes": [{"field": field, "value": value}]}]}).encode()


def statuses(*items: tuple[str, str, str, int | None]) -> bytes:
    """A WhatsApp statuses delivery: (wamid, status, recipient wa_id, error code or None)."""
    now = str(int(utcnow().timestamp()))
    return wa_delivery(wa_value(statuses=[
        {"id": wamid, "status": status, "timestamp": now, "recipient_id": to,
         **({"errors": [{"code": code, "title": "error"}]} if code else {})}
        for wamid, status, to, code in items]))


# --- what goes out ----------------------------------------------------------------------------------

async def test_text_with_buttons_goes_out_personalised_with_the_flows_payload(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel = connect(workspace, "whatsapp")
    wa_contact(workspace, channel, 1, name="Nino Beridze")
    wa_contact(workspace, channel, 2)
    flow_id = await published_flow(client, auth)
    final = await send(client, auth, {"text": "Hi {{contact.first_name|there}}, the sale is on", "buttons": [
        {"title": "Show me", "flow_id": flow_id}, {"title": "Later", "payload": "LATER"}]})
    messages = {r["contact_id"]: r["message_id"] for r in recipients(workspace, final["id"]).values()}
    # Two sends in flight at once may reach the stand-in in either order.
    bodies = sorted((r.json for r in graph_api.sends_to(PHONE_ID)), key=lambda body: body["to"])
    assert bodies == [
        {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
         "biz_opaque_callback_data": f"aat:{message_id}", "type": "interactive", "interactive": {
             "type": "button", "body": {"text": f"Hi {name}, the sale is on"}, "action": {"buttons": [
                 {"type": "reply", "reply": {"id": "SPRING_SALE", "title": "Show me"}},
                 {"type": "reply", "reply": {"id": "LATER", "title": "Later"}}]}}}
        for to, name, message_id in zip(["995550000001", "995550000002"], ["Nino", "there"],
                                         sorted(messages.values()), strict=True)
    ]


async def test_a_tap_on_a_flow_button_starts_the_flow(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel = connect(workspace, "whatsapp")
    wa_contact(workspace, channel, 1)
    flow_id = await published_flow(client, auth)
    await send(client, auth, {"text": "The sale is on", "buttons": [{"title": "Show me", "flow_id": flow_id}]})
    tap = wa_delivery(wa_value(
        contacts=[{"profile": {"name": "Nino"}, "wa_id": "995550000001"}],
        messages=[{"from": "995550000001", "id": "wamid.TAP1", "timestamp": str(int(utcnow().timestamp())),
                   "type": "interactive", "context": {"from": PHONE_ID, "id": "wamid.OUT1"},
                   "interactive": {"type": "button_reply", "button_reply": {"id": "SPRING_SALE", "title": "Show me"}}}]))
    await ingest(client, tap)
    await outbox_empty(client)
    assert graph_api.sends_to(PHONE_ID)[-1].json["text"] == {"body": "Here is what is on sale"}


async def test_a_template_goes_to_contacts_outside_the_window(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel = connect(workspace, "whatsapp")
    wa_contact(workspace, channel, 1, hours_ago=24 * 30, name="Nino Beridze")
    wa_contact(workspace, channel, 2, hours_ago=None)
    catalogue(graph_api, SPRING_SALE)
    await sync_templates(client, auth)
    flow_id = await published_flow(client, auth)
    final = await send(client, auth, {"template": {
        "name": "spring_sale", "language": "en_US", "header": ["{{workspace.name|Acme}}"],
        "body": ["{{contact.first_name|friend}}", "20%"], "buttons": [{"index": 0, "flow_id": flow_id}]}})
    assert (final["counts"]["sent"], final["skipped_reasons"]) == (2, {})
    # Sends to different contacts may overtake each other: pick Nino's.
    [first] = [r.json for r in graph_api.sends_to(PHONE_ID) if r.json["to"] == "995550000001"]
    assert first["template"] == {"name": "spring_sale", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "Acme"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Nino"}, {"type": "text", "text": "20%"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0",
         "parameters": [{"type": "payload", "payload": "SPRING_SALE"}]}]}


async def test_a_named_template_gets_named_parameters(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    channel = connect(workspace, "whatsapp")
    wa_contact(workspace, channel, 1, hours_ago=None, fields={"order": "A-17"})
    catalogue(graph_api, ORDER_READY)
    await sync_templates(client, auth)
    await send(client, auth, {"template": {"name": "order_ready", "language": "en_US", "body": {
        "order": "{{contact.fields.order}}", "first_name": "{{contact.first_name|there}}"}}})
    assert graph_api.sends_to(PHONE_ID)[0].json["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": "first_name", "text": "there"},
        {"type": "text", "parameter_name": "order", "text": "A-17"}]}]


# --- who is skipped, and why ------------------------------------------------------------------------

async def test_every_skip_reason_is_counted_and_skipped_contacts_get_nothing(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    whatsapp, messenger = connect(workspace, "whatsapp"), connect(workspace, "messenger")
    instagram = connect(workspace, "instagram")
    wa_contact(workspace, whatsapp, 1)                                  # sent
    wa_contact(workspace, whatsapp, 2, subscribed=False)                # unsubscribed
    wa_contact(workspace, whatsapp, 3, opted_out=True)                  # marketing_opt_out
    wa_contact(workspace, whatsapp, 4, hours_ago=25)                    # outside_window: template only
    make_contact(workspace, messenger, "2460000000001")                 # sent
    make_contact(workspace, messenger, "2460000000002", hours_ago=30)   # outside_window: no broadcast
    make_contact(workspace, instagram, "6120000000001")                 # no_channel
    workspace.gateway.write_sync(lambda db: disconnect_channel(db, instagram, iso_now()))
    final = await send(client, auth, {"text": "The sale is on"})
    assert final["counts"] == {"total": 7, "sent": 2, "delivered": 0, "read": 0, "failed": 0, "skipped": 5}
    assert final["skipped_reasons"] == {"unsubscribed": 1, "marketing_opt_out": 1, "outside_window": 2,
                                        "no_channel": 1}
    assert (sent_to(graph_api, PHONE_ID), sent_to(graph_api, PAGE_ID), graph_api.sends_to(IG_ID)) == (
        ["995550000001"], ["2460000000001"], [])


async def test_each_skipped_recipient_keeps_its_reason(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    whatsapp = connect(workspace, "whatsapp")
    unsubscribed = wa_contact(workspace, whatsapp, 1, subscribed=False)
    late = wa_contact(workspace, whatsapp, 2, hours_ago=48)
    final = await send(client, auth, {"text": "The sale is on"})
    states = {k: (r["state"], r["reason"], r["message_id"]) for k, r in recipients(workspace, final["id"]).items()}
    assert states == {unsubscribed: ("skipped", "unsubscribed", None), late: ("skipped", "outside_window", None)}


@pytest.mark.parametrize(("template", "skipped"), [(SPRING_SALE, {"marketing_opt_out": 1}), (ORDER_READY, {})],
                         ids=["marketing", "utility"])
async def test_opted_out_contacts_get_utility_templates_but_no_marketing(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn,
    template: dict[str, Any], skipped: dict[str, int],
) -> None:
    wa_contact(workspace, connect(workspace, "whatsapp"), 1, opted_out=True)
    catalogue(graph_api, template)
    await sync_templates(client, auth)
    variables = ({"header": ["Acme"], "body": ["Ana", "20%"]} if template is SPRING_SALE
                 else {"body": {"order": "1", "first_name": "Ana"}})
    final = await send(client, auth, {"template": {"name": template["name"], "language": "en_US", **variables}})
    assert final["skipped_reasons"] == skipped


def preference(wa_id: str, value: str, at: int) -> bytes:
    """A WhatsApp ``user_preferences`` delivery: the contact stopped or resumed marketing."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "field": "user_preferences", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
            "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                                  "category": "marketing_messages", "value": value, "timestamp": str(at)}],
        }}]}]}).encode()


async def test_a_user_preferences_stop_skips_marketing_until_resume(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    wa_contact(workspace, connect(workspace, "whatsapp"), 1)
    now = int(utcnow().timestamp())
    await ingest(client, preference("995550000001", "stop", now - 60))
    stopped = await send(client, auth, {"text": "The sale is on"})
    assert (stopped["skipped_reasons"], graph_api.sends_to(PHONE_ID)) == ({"marketing_opt_out": 1}, [])
    await ingest(client, preference("995550000001", "resume", now - 30))
    resumed = await send(client, auth, {"text": "The sale is on"})
    assert (resumed["counts"]["sent"], sent_to(graph_api)) == (1, ["995550000001"])


async def test_a_template_skips_contacts_of_other_channels(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    wa_contact(workspace, connect(workspace, "whatsapp"), 1)
    make_contact(workspace, connect(workspace, "messenger"), "2460000000001")
    catalogue(graph_api, ORDER_READY)
    await sync_templates(client, auth)
    final = await send(client, auth, {"template": {"name": "order_ready", "language": "en_US",
                                                   "body": {"order": "1", "first_name": "Ana"}}})
    assert (final["counts"]["sent"], final["skipped_reasons"]) == (1, {"no_channel": 1})


async def test_the_audience_limits_who_is_considered(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    whatsapp = connect(workspace, "whatsapp")
    wa_contact(workspace, whatsapp, 1, tags=("vip",))
    wa_contact(workspace, whatsapp, 2)
    final = await send(client, auth, {"text": "VIP preview"}, {"tags": {"any": ["vip"]}})
    assert (final["counts"]["total"], sent_to(graph_api)) == (1, ["995550000001"])


# --- statuses roll up -------------------------------------------------------------------------------

async def test_delivery_and_read_statuses_roll_up_into_the_counts(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    whatsapp = connect(workspace, "whatsapp")
    for n in range(1, 5):
        wa_contact(workspace, whatsapp, n)
    final = await send(client, auth, {"text": "The sale is on"})
    sent = {r["to"]: r["external_id"] for r in rows(
        workspace, "SELECT c.wa_id AS \"to\", m.external_id FROM messages m JOIN contacts c ON c.id = m.contact_id "
                   "WHERE m.direction = 'out'")}
    assert len(sent) == 4
    await ingest(client, statuses(
        (sent["995550000001"], "delivered", "995550000001", None),
        (sent["995550000002"], "delivered", "995550000002", None),
        (sent["995550000002"], "read", "995550000002", None),
        (sent["995550000003"], "failed", "995550000003", 131026),
    ))
    response = await client.get(f"/api/v1/broadcasts/{final['id']}", headers=auth)
    assert response.json()["counts"] == {"total": 4, "sent": 3, "delivered": 2, "read": 1, "failed": 1, "skipped": 0}
    assert sorted(r["state"] for r in recipients(workspace, final["id"]).values()) == [
        "delivered", "failed", "read", "sent"]


async def test_a_read_without_delivered_counts_as_delivered(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    wa_contact(workspace, connect(workspace, "whatsapp"), 1)
    final = await send(client, auth, {"text": "The sale is on"})
    [wamid] = [r["external_id"] for r in rows(workspace, "SELECT external_id FROM messages WHERE direction = 'out'")]
    await ingest(client, statuses((wamid, "read", "995550000001", None)))
    counts = (await client.get(f"/api/v1/broadcasts/{final['id']}", headers=auth)).json()["counts"]
    assert (counts["sent"], counts["delivered"], counts["read"]) == (1, 1, 1)


async def test_a_failed_send_counts_as_failed(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    wa_contact(workspace, connect(workspace, "whatsapp"), 1)
    graph_api.fail_next(PHONE_ID, GraphStandIn.graph_error(131026, message="Undeliverable"))
    final = await send(client, auth, {"text": "The sale is on"})
    assert (final["counts"]["failed"], final["counts"]["sent"]) == (1, 0)


async def test_erasing_a_contact_takes_it_out_of_the_counts(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    whatsapp = connect(workspace, "whatsapp")
    kept, erased = wa_contact(workspace, whatsapp, 1), wa_contact(workspace, whatsapp, 2, subscribed=False)
    final = await send(client, auth, {"text": "The sale is on"})
    assert (await client.delete(f"/api/v1/contacts/{erased}", headers=auth)).status_code == 204

    async def recounted() -> bool:
        body = (await client.get(f"/api/v1/broadcasts/{final['id']}", headers=auth)).json()
        return body["counts"]["total"] == 1

    await wait_until(recounted)
    body = (await client.get(f"/api/v1/broadcasts/{final['id']}", headers=auth)).json()
    assert (body["counts"]["skipped"], body["skipped_reasons"], list(recipients(workspace, final["id"]))) == (
        0, {}, [kept])
