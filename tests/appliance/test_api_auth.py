"""Who may call ``/api/v1``: bearer tokens (401 without a valid one) and roles (403 when too
low), for every route the app serves; tokens are stored only as hashes."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.team.credentials import new_api_token
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    error_of,
    execute,
    messenger_text,
    on_shared_app,
    rows,
    shared,
    snapshot,
)
from tests.helpers import connect_channel, ingest, make_token, outbox_empty, wait_until

# The 401 and role tables run on one app per module; every test builds its own channel,
# contact and conversation in it.
_ids = itertools.count(1)

PRICING = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())

# (method, route as the app declares it) -> (lowest role, request body, status on success)
ROUTES: dict[tuple[str, str], tuple[str, Any, int]] = {
    ("GET", "/api/v1/me"): ("agent", None, 200),
    ("GET", "/api/v1/contacts"): ("agent", None, 200),
    ("GET", "/api/v1/contacts/{contact_id:int}"): ("agent", None, 200),
    ("PATCH", "/api/v1/contacts/{contact_id:int}"): ("agent", {"fields": {"plan": "pro"}}, 200),
    ("DELETE", "/api/v1/contacts/{contact_id:int}"): ("agent", None, 204),
    ("POST", "/api/v1/contacts/{contact_id:int}/tags"): ("agent", {"tag": "vip"}, 200),
    ("DELETE", "/api/v1/contacts/{contact_id:int}/tags/{tag:str}"): ("agent", None, 200),
    ("GET", "/api/v1/contacts/{contact_id:int}/export"): ("agent", None, 200),
    ("GET", "/api/v1/contacts/export.csv"): ("admin", None, 200),
    ("POST", "/api/v1/contacts/import"): ("admin", b"channel,external_id,name\nmessenger,1,Ana\n", 200),  # a dry run
    ("POST", "/api/v1/contacts/{contact_id:int}/objection"): ("agent", None, 200),
    ("GET", "/api/v1/workspace/export"): ("owner", None, 200),
    ("GET", "/api/v1/conversations"): ("agent", None, 200),
    ("GET", "/api/v1/conversations/{conversation_id:int}"): ("agent", None, 200),
    ("GET", "/api/v1/conversations/{conversation_id:int}/messages"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/messages"): ("agent", {"text": "On our way"}, 202),
    ("GET", "/api/v1/channels"): ("admin", None, 200),
    ("POST", "/api/v1/channels"): (
        "admin", {"type": "whatsapp", "external_id": "100200300", "access_token": "EAAG-new"}, 201),
    ("DELETE", "/api/v1/channels/{channel_id:int}"): ("admin", None, 200),
    ("GET", "/api/v1/users"): ("admin", None, 200),
    ("POST", "/api/v1/users"): ("admin", {"email": "new.agent@example.com", "role": "agent"}, 201),
    ("GET", "/api/v1/flows/schema"): ("agent", None, 200),
    ("GET", "/api/v1/flows"): ("admin", None, 200),
    ("POST", "/api/v1/flows"): ("admin", PRICING, 201),
    ("GET", "/api/v1/flows/{flow_id:int}"): ("admin", None, 200),
    ("PUT", "/api/v1/flows/{flow_id:int}"): ("admin", PRICING, 200),
    ("DELETE", "/api/v1/flows/{flow_id:int}"): ("admin", None, 204),
    ("POST", "/api/v1/flows/{flow_id:int}/publish"): ("admin", None, 200),
    ("GET", "/api/v1/flows/{flow_id:int}/export"): ("admin", None, 200),
    ("GET", "/api/v1/flows/{flow_id:int}/stats"): ("admin", None, 200),
    ("POST", "/api/v1/flows/{flow_id:int}/preview"): ("admin", {"text": "price"}, 200),
    ("GET", "/api/v1/links"): ("admin", None, 200),
    ("GET", "/api/v1/channels/{channel_id:int}/links"): ("admin", None, 200),
    ("GET", "/api/v1/channels/{channel_id:int}/links/qr.svg"): ("admin", None, 200),
    ("GET", "/api/v1/channels/{channel_id:int}/profile"): ("admin", None, 200),
    ("PUT", "/api/v1/channels/{channel_id:int}/profile"): ("admin", {"get_started_payload": "GET_STARTED"}, 200),
    ("GET", "/api/v1/settings/workspace"): ("admin", None, 200),
    ("GET", "/api/v1/audit"): ("admin", None, 200),
    ("POST", "/api/v1/users/{user_id:int}/reset-link"): ("admin", None, 201),
    ("GET", "/api/v1/events"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/assign"): ("agent", {"user_id": None}, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/close"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/reopen"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/pause-bot"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/resume-bot"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/read"): ("agent", None, 200),
    ("GET", "/api/v1/conversations/{conversation_id:int}/notes"): ("agent", None, 200),
    ("POST", "/api/v1/conversations/{conversation_id:int}/notes"): ("agent", {"text": "VIP"}, 201),
    ("GET", "/api/v1/canned-replies"): ("agent", None, 200),
    ("POST", "/api/v1/canned-replies"): ("admin", {"shortcut": "hours", "text": "9 to 5"}, 201),
    ("PUT", "/api/v1/canned-replies/{reply_id:int}"): ("admin", {"shortcut": "hours", "text": "9 to 6"}, 200),
    ("DELETE", "/api/v1/canned-replies/{reply_id:int}"): ("admin", None, 204),  # called with ?duration=0 (a stream otherwise)
    ("PUT", "/api/v1/settings/workspace"): ("admin", {"timezone": "Asia/Tbilisi"}, 200),
    ("GET", "/api/v1/broadcasts"): ("admin", None, 200),
    ("POST", "/api/v1/broadcasts"): ("admin", {"name": "Sale", "message": {"text": "Sale today"}}, 201),
    ("POST", "/api/v1/broadcasts/estimate"): ("admin", {"message": {"text": "Sale today"}}, 200),
    ("GET", "/api/v1/broadcasts/{broadcast_id:int}"): ("admin", None, 200),
    ("POST", "/api/v1/broadcasts/{broadcast_id:int}/start"): ("admin", None, 200),
    ("POST", "/api/v1/broadcasts/{broadcast_id:int}/pause"): ("admin", None, 200),
    ("POST", "/api/v1/broadcasts/{broadcast_id:int}/cancel"): ("admin", None, 200),
    ("GET", "/api/v1/entitlements"): ("agent", None, 200),
    ("GET", "/api/v1/templates"): ("agent", None, 200),
    ("POST", "/api/v1/templates/sync"): ("admin", None, 200),
    ("GET", "/api/v1/integrations/google-sheets"): ("admin", None, 200),
    ("PUT", "/api/v1/integrations/google-sheets"): (
        "admin", {"client_id": "c.apps.googleusercontent.com", "client_secret": "s", "refresh_token": "1//r"}, 200),
    ("DELETE", "/api/v1/integrations/google-sheets"): ("admin", None, 200),
    ("GET", "/api/v1/webhooks"): ("admin", None, 200),
    ("POST", "/api/v1/webhooks"): (
        "admin", {"url": "https://hooks.example.invalid/aat", "events": ["contact.updated"], "active": False}, 201),
    ("GET", "/api/v1/webhooks/{webhook_id:int}"): ("admin", None, 200),
    ("PATCH", "/api/v1/webhooks/{webhook_id:int}"): ("admin", {"description": "CRM"}, 200),
    ("DELETE", "/api/v1/webhooks/{webhook_id:int}"): ("admin", None, 204),
    ("POST", "/api/v1/webhooks/{webhook_id:int}/rotate-secret"): ("admin", None, 200),
    ("GET", "/api/v1/webhooks/{webhook_id:int}/deliveries"): ("admin", None, 200),
    ("GET", "/api/v1/webhooks/deliveries/{delivery_id:int}"): ("admin", None, 200),
    ("POST", "/api/v1/webhooks/deliveries/{delivery_id:int}/replay"): ("admin", None, 202),
    ("GET", "/api/v1/settings/ai"): ("admin", None, 200),
    ("PUT", "/api/v1/settings/ai"): (
        "admin", {"provider": "anthropic", "model": "claude-sonnet-5", "api_key": "sk-ant-role-matrix"}, 200),
    ("DELETE", "/api/v1/settings/ai"): ("admin", None, 204),
    ("GET", "/api/v1/knowledge"): ("agent", None, 200),
    ("POST", "/api/v1/knowledge"): ("admin", {"title": "Hours", "text": "We open at 10."}, 201),
    ("GET", "/api/v1/knowledge/search"): ("agent", None, 200),
    ("GET", "/api/v1/knowledge/{document_id:int}"): ("agent", None, 200),
    ("PUT", "/api/v1/knowledge/{document_id:int}"): ("admin", {"title": "Hours", "text": "We open at 9."}, 200),
    ("DELETE", "/api/v1/knowledge/{document_id:int}"): ("admin", None, 204),
}
# Known deviations, each strict: the test starts failing (as a reminder) once it is fixed.
KNOWN: dict[tuple[str, str, str], str] = {}
RANK = {"agent": 0, "admin": 1, "owner": 2}
TABLES = ("ai_settings", "ai_api_keys", "knowledge_documents", "knowledge_chunks",
          "channels", "contacts", "contact_tags", "conversations", "messages", "users", "outbox", "flows",
          "broadcasts", "whatsapp_templates", "google_connection", "webhook_subscriptions", "webhook_deliveries")


def _url(route: str, ids: dict[str, int]) -> str:
    if route == "/api/v1/events":
        return route + "?duration=0"
    if route == "/api/v1/contacts/import":
        return route + "?dry_run=true"
    if route == "/api/v1/knowledge/search":
        return route + "?q=hours"
    return (route.replace("{contact_id:int}", str(ids["contact"]))
            .replace("{conversation_id:int}", str(ids["conversation"]))
            .replace("{channel_id:int}", str(ids["channel"]))
            .replace("{flow_id:int}", str(ids["flow"]))
            .replace("{broadcast_id:int}", str(ids["broadcast"]))
            .replace("{user_id:int}", str(ids["user"]))
            .replace("{reply_id:int}", str(ids["reply"]))
            .replace("{webhook_id:int}", str(ids["webhook"]))
            .replace("{delivery_id:int}", str(ids["delivery"]))
            .replace("{document_id:int}", str(ids["document"]))
            .replace("{tag:str}", "vip"))


async def _world(client: AsyncTestClient, workspace: Workspace) -> dict[str, int]:
    """A newly connected Page with one contact (tagged vip), their conversation, a flow, a
    broadcast scheduled far ahead, and a WhatsApp number with its account (templates)."""
    n = next(_ids)
    page = f"5550000{n:06d}"
    channel = connect_channel(workspace, "messenger", page)
    await ingest(client, messenger_text(f"24600{n:06d}", f"m_auth_{n}", page=page))
    contact = rows(workspace, "SELECT c.id FROM contacts c WHERE c.channel_id = ?", [channel])[0]["id"]
    conversation = rows(workspace, "SELECT id FROM conversations WHERE contact_id = ?", [contact])[0]["id"]
    execute(workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, 'vip', 'x')", [contact])
    flow = await client.post("/api/v1/flows", json=PRICING, headers=make_token(workspace, "owner"))
    assert flow.status_code == 201, flow.text
    user = workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO users (email, role, created_at) VALUES (?, 'agent', 'x')", [f"agent.{n}@example.com"]).lastrowid)
    reply = workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO canned_replies (shortcut, text, created_at, updated_at) VALUES (?, 'x', 'x', 'x')",
        [f"s{n}"]).lastrowid)
    broadcast = await _scheduled_broadcast(client, workspace)
    webhook, delivery = _paused_webhook_with_a_delivery(workspace)
    ids_ai = {"document": _knowledge_document(workspace)}
    return {**ids_ai, "channel": channel, "contact": contact, "conversation": conversation, "flow": int(flow.json()["id"]),
            "user": user, "reply": reply, "broadcast": broadcast, "webhook": webhook, "delivery": delivery}


def _paused_webhook_with_a_delivery(workspace: Workspace) -> tuple[int, int]:
    """A paused webhook subscription (nothing is sent to it) with one dead delivery."""
    from appliance.integrations.webhooks import store as hooks

    def seal(sub_id: int) -> tuple[str, str]:
        return (workspace.fields.encrypt("https://hooks.example.invalid/aat", hooks.url_context(sub_id)),
                workspace.fields.encrypt("whsec_test", hooks.secret_context(sub_id)))

    def create(db: Any) -> tuple[int, int]:
        sub = hooks.create_subscription(db, events_=["contact.updated"], description=None, active=False,
                                        seal=seal, now="2026-01-01T00:00:00.000Z")
        delivery = db.execute(
            """INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, refs, occurred_at, status,
                   expires_at, created_at, updated_at)
               VALUES (?, 1, 'contact.updated', '{}', 'x', 'dead', 'x', 'x', 'x')""", [sub["id"]]).lastrowid
        return int(sub["id"]), int(delivery)

    return workspace.gateway.write_sync(create)



def _knowledge_document(workspace: Workspace) -> int:
    """A knowledge base document (appliance/ai)."""
    from appliance.ai.knowledge import service, store as knowledge
    from appliance.ai.knowledge.upload import DocumentInput

    prepared = service.prepare(DocumentInput("Hours", "text", None, None, "We open at 10."))
    row = workspace.gateway.write_sync(knowledge.insert_document, **prepared.values(), now="2026-01-01T00:00:00.000Z")
    return int(row["id"])

async def _scheduled_broadcast(client: AsyncTestClient, workspace: Workspace) -> int:
    """A broadcast scheduled far ahead, and a WhatsApp number with its account (template sync)."""
    owner = make_token(workspace, "owner")
    connect_channel(workspace, "whatsapp", "305550000000001", waba_id="205550000000001")
    created = await client.post("/api/v1/broadcasts", headers=owner, json={
        "name": "Later", "message": {"text": "Much later"}, "send_at": "2099-01-01T09:00:00Z"})
    assert created.status_code == 201, created.text
    started = await client.post(f"/api/v1/broadcasts/{created.json()['id']}/start", headers=owner)
    assert started.json()["status"] == "scheduled", started.text
    return int(created.json()["id"])


async def _call(client: AsyncTestClient, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    if isinstance(body, bytes):  # a CSV file
        return await client.request(method, url, headers={**headers, "Content-Type": "text/csv"}, content=body)
    return await client.request(method, url, headers=headers, json=body) if body is not None \
        else await client.request(method, url, headers=headers)


def test_every_api_route_is_in_the_role_matrix(client: AsyncTestClient) -> None:
    served = {
        (method, route.path)
        for route in client.app.routes
        if route.path.startswith("/api/v1")
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD")
    }
    assert served == set(ROUTES), "add new /api/v1 routes (and their role) to ROUTES in this file"


# --- 401 -----------------------------------------------------------------------------------------

@on_shared_app
@pytest.mark.parametrize(("method", "route"), sorted(ROUTES))
async def test_no_credentials_is_401_and_changes_nothing(
    shared: Shared, method: str, route: str
) -> None:
    client, workspace = shared.client, shared.workspace
    ids = await _world(client, workspace)
    before = snapshot(workspace, *TABLES)
    response = await _call(client, method, _url(route, ids), ROUTES[(method, route)][1], {})
    error = error_of(response, 401)
    assert error["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(workspace, *TABLES) == before


def _revoked(workspace: Workspace) -> dict[str, str]:
    headers = make_token(workspace, "owner")
    token = headers["Authorization"].removeprefix("Bearer ")
    execute(workspace, "UPDATE api_tokens SET revoked_at = '2026-01-01T00:00:00.000Z' WHERE token_hash = ?",
            [hashlib.sha256(token.encode()).hexdigest()])
    return headers


BAD_CREDENTIALS = {
    "no header": lambda ws: {},
    "empty header": lambda ws: {"Authorization": ""},
    "basic scheme": lambda ws: {"Authorization": "Basic b3duZXI6c2VjcmV0"},
    "bearer without token": lambda ws: {"Authorization": "Bearer"},
    "not an API token": lambda ws: {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"},
    "unknown token": lambda ws: {"Authorization": f"Bearer {new_api_token()}"},
    "revoked token": _revoked,
}


@on_shared_app
@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_bad_credentials_are_401_with_a_reason(shared: Shared, case: str) -> None:
    client, workspace = shared.client, shared.workspace
    response = await client.get("/api/v1/contacts", headers=BAD_CREDENTIALS[case](workspace))
    error = error_of(response, 401)
    assert error["code"] == "unauthorized"
    assert "Bearer" in error["message"] or "token" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


@on_shared_app
async def test_revoked_token_message_says_so(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    response = await client.get("/api/v1/me", headers=_revoked(workspace))
    assert error_of(response, 401)["message"] == "the API token is unknown or has been revoked"


@on_shared_app
async def test_token_that_is_not_ascii_is_401(shared: Shared) -> None:
    client = shared.client
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer aat_\u00e9t\u00e9".encode()})
    assert error_of(response, 401)["code"] == "unauthorized"


@on_shared_app
async def test_options_needs_credentials_too(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    response = await client.options("/api/v1/channels")
    assert error_of(response, 401)["code"] == "unauthorized"
    allowed = await client.options("/api/v1/channels", headers=make_token(workspace, "admin"))
    assert allowed.status_code == 204
    assert "POST" in allowed.headers["allow"]


@on_shared_app
async def test_options_respects_roles(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    response = await client.options("/api/v1/channels", headers=make_token(workspace, "agent"))
    assert error_of(response, 403)["code"] == "forbidden"


# --- roles ---------------------------------------------------------------------------------------

MATRIX = [
    pytest.param(role, method, route, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[(role, method, route)])]
                 if (role, method, route) in KNOWN else [])
    for role in RANK for (method, route) in sorted(ROUTES)
]


@on_shared_app
@pytest.mark.parametrize(("role", "method", "route"), MATRIX)
async def test_role_matrix(
    shared: Shared, role: str, method: str, route: str
) -> None:
    client, workspace = shared.client, shared.workspace
    lowest, body, success = ROUTES[(method, route)]
    if isinstance(body, dict) and "email" in body:
        body = {**body, "email": f"{role}.{next(_ids)}@example.com"}
    if isinstance(body, dict) and "shortcut" in body:
        body = {**body, "shortcut": f"s{next(_ids)}x"}
    ids = await _world(client, workspace)
    headers = make_token(workspace, role)
    before = snapshot(workspace, *TABLES)
    response = await _call(client, method, _url(route, ids), body, headers)
    if RANK[role] >= RANK[lowest]:
        assert response.status_code == success, response.text
        await outbox_empty(client)  # a queued reply goes out before the next test looks
    else:
        error = error_of(response, 403)
        assert error["code"] == "forbidden"
        assert error["message"] == f"this needs the {lowest} role or higher; you are {role}"
        assert snapshot(workspace, *TABLES) == before


NEW_OWNER = {"email": "second.owner@example.com", "role": "owner", "password": "correct horse battery"}


@pytest.mark.parametrize("role", ["agent", "admin"])
async def test_only_an_owner_creates_an_owner(client: AsyncTestClient, workspace: Workspace, role: str) -> None:
    response = await client.post("/api/v1/users", json=NEW_OWNER, headers=make_token(workspace, role))
    assert error_of(response, 403)["code"] == "forbidden"
    assert rows(workspace, "SELECT email FROM users") == []


async def test_an_owner_creates_an_owner(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.post("/api/v1/users", json=NEW_OWNER, headers=make_token(workspace, "owner"))
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "owner"


async def test_me_names_the_token(client: AsyncTestClient, workspace: Workspace) -> None:
    response = await client.get("/api/v1/me", headers=make_token(workspace, "agent"))
    assert response.status_code == 200
    body = response.json()
    assert body["user"] is None
    assert body["token"]["name"] == "test-agent" and body["token"]["role"] == "agent"
    assert "csrf_token" in body


# --- storage ---------------------------------------------------------------------------------------

async def test_tokens_are_stored_only_as_their_sha256(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "admin")
    raw = headers["Authorization"].removeprefix("Bearer ")
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    stored = rows(workspace, "SELECT * FROM api_tokens")
    assert len(stored) == 1
    assert stored[0]["token_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert all(raw not in str(column) for column in stored[0].values())


async def test_using_a_token_records_when(client: AsyncTestClient, workspace: Workspace) -> None:
    headers = make_token(workspace, "agent")
    assert rows(workspace, "SELECT last_used_at FROM api_tokens") == [{"last_used_at": None}]
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200

    async def touched() -> bool:
        return rows(workspace, "SELECT last_used_at FROM api_tokens")[0]["last_used_at"] is not None

    await wait_until(touched)
