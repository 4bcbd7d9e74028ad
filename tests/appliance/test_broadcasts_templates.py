"""The WhatsApp template catalogue: synced from ``GET /{waba-id}/message_templates`` (paging,
the exact request, Meta's errors), kept current by ``message_template_status_update``
webhooks, and listed by ``GET /api/v1/templates``."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.channels.events import TemplateStatus
from appliance.channels.whatsapp import parse_webhook
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import error_of, rows
from tests.appliance.broadcast_helpers import ORDER_READY, SPRING_SALE, WABA_ID, catalogue, connect, sync_templates
from tests.appliance.channel_helpers import at_s
from tests.helpers import ingest, make_token
from tests.standins.graph_api import GraphStandIn

T_S = 1795721862


@pytest.fixture
def auth(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


def many_templates(count: int) -> list[dict[str, Any]]:
    return [{**ORDER_READY, "id": str(10_000 + i), "name": f"order_ready_{i:03d}"} for i in range(count)]


def status_update(event: str, *, name: str = "order_ready", template_id: Any = 9002, **extra: Any) -> dict[str, Any]:
    value = {"event": event, "message_template_id": template_id, "message_template_name": name,
             "message_template_language": "en_US", "reason": "NONE", **extra}
    return {"object": "whatsapp_business_account", "entry": [{
        "id": WABA_ID, "time": T_S, "changes": [{"field": "message_template_status_update", "value": value}]}]}


def catalogue_rows(workspace: Workspace) -> list[dict[str, Any]]:
    return rows(workspace, "SELECT waba_id, template_id, name, language, status, category, status_reason "
                           "FROM whatsapp_templates ORDER BY name")


# --- sync ----------------------------------------------------------------------------------------------

async def test_sync_reads_every_page_with_the_channels_token(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, *many_templates(130))
    assert await sync_templates(client, auth) == {"accounts": [{"waba_id": WABA_ID, "templates": 130}]}
    calls = [r for r in graph_api.other_requests if r.path.endswith("/message_templates")]
    assert [(r.method, r.path, urllib.parse.parse_qs(r.query), r.headers["authorization"]) for r in calls] == [
        ("GET", f"/v25.0/{WABA_ID}/message_templates",
         {"fields": ["id,name,language,status,category,parameter_format,components"], "limit": ["100"]},
         "Bearer EAAG-test-token"),
        ("GET", f"/v25.0/{WABA_ID}/message_templates",
         {"fields": ["id,name,language,status,category,parameter_format,components"], "limit": ["100"],
          "after": ["100"]},
         "Bearer EAAG-test-token"),
    ]


async def test_sync_stores_status_category_and_components(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, SPRING_SALE, {**ORDER_READY, "status": "rejected", "category": "utility"})
    await sync_templates(client, auth)
    listed = (await client.get("/api/v1/templates", headers=auth)).json()["items"]
    assert [(t["name"], t["status"], t["category"], t["parameter_format"]) for t in listed] == [
        ("spring_sale", "APPROVED", "MARKETING", "POSITIONAL"), ("order_ready", "REJECTED", "UTILITY", "NAMED")]
    assert listed[0]["components"] == SPRING_SALE["components"]


async def test_sync_replaces_the_accounts_catalogue(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, SPRING_SALE, ORDER_READY)
    await sync_templates(client, auth)
    catalogue(graph_api, {**ORDER_READY, "status": "PAUSED"})
    await sync_templates(client, auth)
    assert [(r["name"], r["status"]) for r in catalogue_rows(workspace)] == [("order_ready", "PAUSED")]


async def test_a_graph_error_is_reported_and_keeps_the_catalogue(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, SPRING_SALE)
    await sync_templates(client, auth)
    graph_api.fail_next(WABA_ID, GraphStandIn.graph_error(200, message="Permissions error"))
    assert await sync_templates(client, auth) == {"accounts": [
        {"waba_id": WABA_ID, "error": {"code": 200, "message": "Permissions error"}}]}
    assert [r["name"] for r in catalogue_rows(workspace)] == ["spring_sale"]


async def test_sync_without_a_whatsapp_account_is_422(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    connect(workspace, "messenger")
    response = await client.post("/api/v1/templates/sync", headers=auth)
    assert error_of(response, 422)["code"] == "no_whatsapp_account"


async def test_sync_is_audited_per_account(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, SPRING_SALE)
    await sync_templates(client, auth)
    entries = rows(workspace, "SELECT actor_kind, action, target_kind, target_id, details FROM audit_log")
    assert entries == [{"actor_kind": "token", "action": "templates.sync", "target_kind": "waba",
                        "target_id": WABA_ID, "details": '{"templates": 1}'}]


async def test_sync_of_one_channel_needs_a_whatsapp_number(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace
) -> None:
    messenger = connect(workspace, "messenger")
    response = await client.post("/api/v1/templates/sync", headers=auth, json={"channel_id": str(messenger)})
    assert error_of(response, 422)["code"] == "no_whatsapp_account"


async def test_the_list_filters_by_status(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, SPRING_SALE, {**ORDER_READY, "status": "PAUSED"})
    await sync_templates(client, auth)
    listed = await client.get("/api/v1/templates", headers=make_token(workspace, "agent"),
                              params={"status": "approved"})
    assert [t["name"] for t in listed.json()["items"]] == ["spring_sale"]


# --- message_template_status_update ------------------------------------------------------------------

def test_a_status_update_parses_into_a_template_status() -> None:
    parsed = parse_webhook(status_update("PAUSED", reason="Low quality", message_template_category="MARKETING"))
    assert (parsed.events, parsed.problems) == ([TemplateStatus(
        channel="whatsapp", asset_id=WABA_ID, template_id="9002", name="order_ready", language="en_US",
        status="PAUSED", occurred_at=at_s(T_S), dedupe_key=f"whatsapp:template:{WABA_ID}:9002:PAUSED:{T_S * 1000}",
        category="MARKETING", reason="Low quality",
    )], [])


def test_a_status_update_without_a_name_is_a_problem() -> None:
    body = status_update("APPROVED")
    del body["entry"][0]["changes"][0]["value"]["message_template_name"]
    parsed = parse_webhook(body)
    assert (parsed.events, [p.path for p in parsed.problems]) == ([], ["entry[0].changes[0].value"])


async def test_a_status_update_changes_the_catalogued_template(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, ORDER_READY)
    await sync_templates(client, auth)
    await ingest(client, json.dumps(status_update("DISABLED", reason="Policy")).encode())
    assert catalogue_rows(workspace) == [{"waba_id": WABA_ID, "template_id": "9002", "name": "order_ready",
                                          "language": "en_US", "status": "DISABLED", "category": "UTILITY",
                                          "status_reason": "Policy"}]


async def test_a_status_update_for_an_unsynced_template_records_it(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    await ingest(client, json.dumps(status_update("APPROVED", name="welcome_back", template_id=77,
                                                  message_template_category="UTILITY")).encode())
    assert catalogue_rows(workspace) == [{"waba_id": WABA_ID, "template_id": "77", "name": "welcome_back",
                                          "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                                          "status_reason": None}]


async def test_a_status_update_creates_no_channel(client: AsyncTestClient, workspace: Workspace) -> None:
    await ingest(client, json.dumps(status_update("APPROVED")).encode())
    assert rows(workspace, "SELECT count(*) AS n FROM channels") == [{"n": 0}]


async def test_a_repeated_status_update_is_applied_once(
    client: AsyncTestClient, auth: dict[str, str], workspace: Workspace, graph_api: GraphStandIn
) -> None:
    connect(workspace, "whatsapp")
    catalogue(graph_api, ORDER_READY)
    await sync_templates(client, auth)
    body = json.dumps(status_update("PAUSED")).encode()
    await ingest(client, body)
    await ingest(client, body)
    journal = rows(workspace, "SELECT events, duplicates FROM webhook_journal ORDER BY id")
    assert journal == [{"events": 1, "duplicates": 0}, {"events": 1, "duplicates": 1}]
