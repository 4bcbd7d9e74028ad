"""Channel onboarding (Facebook Login for Business, WhatsApp Embedded Signup) and the daily token
check, against an ``httpx.MockTransport`` that plays both the Graph API and the tenant's
appliance; the exact requests are asserted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from appliance import audit
from appliance.timeutil import iso_now
from control_plane.channels.models import FacebookLogin, WhatsAppSignup
from control_plane.channels.onboarding import Onboarding
from control_plane.channels.service import Channels
from control_plane.db import Store, open_store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle, new_tenant_row, seal
from control_plane.metrics import Metrics
from control_plane.notify import Notifier
from control_plane.routing.forwarder import Forwarder, forwarding_client
from control_plane.routing.service import RoutingTable
from control_plane.settings import ControlPlaneSettings, PlatformApp
from tests.control_plane.harness import CP_MASTER_KEY

ADMIN = audit.Actor("admin", id="1", label="tests")
TENANT_URL = "http://tenant.test"


class World:
    """Meta and the tenant's appliance, scripted; every request kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.debug: dict[str, dict[str, Any]] = {}
        self.exchange_error: dict[str, Any] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url, query = request.url, parse_qs(urlsplit(str(request.url)).query)
        if url.host == "tenant.test":
            body = json.loads(request.content)
            return httpx.Response(201, json={"id": str(len(self.requests)), **body, "access_token": None})
        path = url.path.removeprefix("/v25.0/")
        if path == "oauth/access_token":
            if self.exchange_error is not None:
                return httpx.Response(400, json={"error": self.exchange_error})
            if query.get("grant_type") == ["fb_exchange_token"]:
                return httpx.Response(200, json={"access_token": "long-user-token", "expires_in": 5183944})
            return httpx.Response(200, json={"access_token": f"token-for-{query['code'][0]}"})
        if path == "me/accounts":
            return httpx.Response(200, json={"data": [
                {"id": "111", "name": "Shop", "access_token": "page-token-111", "tasks": ["MANAGE"]},
                {"id": "222", "name": "Blog", "access_token": "page-token-222", "tasks": ["MANAGE"]}]})
        if path.endswith("/subscribed_apps") or path.endswith("/register"):
            return httpx.Response(200, json={"success": True})
        if path == "111":
            return httpx.Response(200, json={"id": "111", "instagram_business_account": {"id": "1784", "username": "shop"}})
        if path == "222":
            return httpx.Response(200, json={"id": "222"})
        if path == "debug_token":
            return httpx.Response(200, json={"data": self.debug.get(query["input_token"][0], {"is_valid": True})})
        return httpx.Response(404, json={"error": {"code": 803, "message": "unknown"}})

    def graph(self, method: str, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == "graph.test" and r.method == method
                and r.url.path.endswith(suffix)]


class _NoProvisioner:
    name = "none"

    def on_ready(self, listener: Any) -> None:
        pass


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def setup(tmp_path: Path, world: World) -> Iterator[tuple[Store, Onboarding, Notifier, str]]:
    settings = ControlPlaneSettings(data_dir=tmp_path, master_key=CP_MASTER_KEY, meta_app_id="42")
    platform = PlatformApp(meta_app_secret="app-secret", graph_api_base="http://graph.test")
    cp_store = open_store(settings)
    http = httpx.AsyncClient(transport=httpx.MockTransport(world.handler))
    forwarder = Forwarder(cp_store.gateway, forwarding_client(user_agent="tests"), Metrics())
    table = RoutingTable()
    lifecycle = Lifecycle(settings, platform, cp_store, _NoProvisioner(), forwarder, table)  # type: ignore[arg-type]

    def make(db: Any) -> str:
        row = new_tenant_row(db, cp_store.fields, name="Acme", provisioner="none", owner_email="owner@example.com",
                             plan=None, actor=ADMIN)
        tenants.set_endpoint(db, row["id"], url=TENANT_URL, port=None, now=iso_now())
        tenants.set_api_token(db, row["id"], seal(cp_store.fields, "api_token", row["id"], "aat_cp_token"))
        return str(row["id"])

    tenant_id = cp_store.gateway.write_sync(make)
    notifier = Notifier()
    channels = Channels(cp_store, http, lifecycle, table, forwarder)
    yield cp_store, Onboarding(settings, platform, cp_store, http, channels, notifier), notifier, tenant_id
    cp_store.close()


async def test_facebook_login_connects_every_page_and_its_instagram_account(
        world: World, setup: tuple[Store, Onboarding, Notifier, str]) -> None:
    cp_store, onboarding, _, tenant_id = setup
    connected = await onboarding.facebook_login(tenant_id, FacebookLogin(code="abc", redirect_uri="https://cp/cb"), ADMIN)
    assert [(c["type"], c["external_id"]) for c in connected] == [
        ("messenger", "111"), ("instagram", "1784"), ("messenger", "222")]
    exchange = parse_qs(world.graph("GET", "oauth/access_token")[0].url.query.decode())
    assert exchange == {"client_id": ["42"], "client_secret": ["app-secret"], "code": ["abc"],
                        "redirect_uri": ["https://cp/cb"]}
    long_lived = parse_qs(world.graph("GET", "oauth/access_token")[1].url.query.decode())
    assert long_lived["grant_type"] == ["fb_exchange_token"] and long_lived["fb_exchange_token"] == ["token-for-abc"]
    assert world.graph("GET", "me/accounts")[0].headers["Authorization"] == "Bearer long-user-token"
    subscribe = world.graph("POST", "111/subscribed_apps")[0]
    assert subscribe.headers["Authorization"] == "Bearer page-token-111"
    assert "messages" in parse_qs(subscribe.url.query.decode())["subscribed_fields"][0]
    posted = [json.loads(r.content) for r in world.requests if r.url.host == "tenant.test"]
    assert posted == [
        {"type": "messenger", "external_id": "111", "access_token": "page-token-111", "name": "Shop"},
        {"type": "instagram", "external_id": "1784", "access_token": "page-token-111", "name": "shop", "page_id": "111"},
        {"type": "messenger", "external_id": "222", "access_token": "page-token-222", "name": "Blog"},
    ]
    assert all(r.headers["Authorization"] == "Bearer aat_cp_token" for r in world.requests if r.url.host == "tenant.test")
    stored = cp_store.gateway.read_sync(lambda db: db.conn.execute(
        "SELECT type, external_id, token_enc FROM channels ORDER BY id").fetchall())
    assert [(t, e) for t, e, _ in stored] == [("messenger", "111"), ("instagram", "1784"), ("messenger", "222")]
    assert all(token.startswith("v1:") and "page-token" not in token for _, _, token in stored)


async def test_whatsapp_signup_exchanges_the_code_first_then_subscribes_and_registers(
        world: World, setup: tuple[Store, Onboarding, Notifier, str]) -> None:
    _, onboarding, _, tenant_id = setup
    channel = await onboarding.whatsapp_signup(tenant_id, WhatsAppSignup(
        code="es-code", waba_id="900", phone_number_id="901", pin="123456"), ADMIN)
    assert (channel["type"], channel["external_id"], channel["waba_id"]) == ("whatsapp", "901", "900")
    graph = [(r.method, r.url.path) for r in world.requests if r.url.host == "graph.test"]
    assert graph == [("GET", "/v25.0/oauth/access_token"), ("POST", "/v25.0/900/subscribed_apps"),
                     ("POST", "/v25.0/901/register")]
    register = world.graph("POST", "901/register")[0]
    assert json.loads(register.content) == {"messaging_product": "whatsapp", "pin": "123456"}
    assert register.headers["Authorization"] == "Bearer token-for-es-code"


async def test_a_coexistence_number_is_not_registered(world: World, setup: tuple[Store, Onboarding, Notifier, str]) -> None:
    _, onboarding, _, tenant_id = setup
    await onboarding.whatsapp_signup(tenant_id, WhatsAppSignup(code="c", waba_id="900", phone_number_id="902"), ADMIN)
    assert not world.graph("POST", "/register")


async def test_token_check_marks_channels_needing_reauth_and_emails_the_owner_once(
        world: World, setup: tuple[Store, Onboarding, Notifier, str]) -> None:
    cp_store, onboarding, notifier, tenant_id = setup
    await onboarding.facebook_login(tenant_id, FacebookLogin(code="abc"), ADMIN)
    soon = int(time.time()) + 3 * 86400
    world.debug["page-token-111"] = {"is_valid": True, "expires_at": soon, "app_id": "42"}
    world.debug["page-token-222"] = {"is_valid": False}
    summary = await onboarding.check_tokens()
    assert summary == {"checked": 3, "needs_reauth": 3, "notified": 3}
    check = world.graph("GET", "debug_token")[0]
    assert parse_qs(check.url.query.decode())["access_token"] == ["42|app-secret"]
    rows = cp_store.gateway.read_sync(lambda db: db.conn.execute(
        "SELECT external_id, status, status_reason FROM channels ORDER BY id").fetchall())
    assert [tuple(r) for r in rows] == [("111", "needs_reauth", "the token expires within 7 days"),
                                        ("1784", "needs_reauth", "the token expires within 7 days"),
                                        ("222", "needs_reauth", "the token is no longer valid")]
    assert [e.to for e in notifier.sent] == ["owner@example.com"] * 3
    assert "Reconnect your messenger channel in Acme" == notifier.sent[0].subject
    # Checked again the same day: nothing is checked or sent twice.
    assert await onboarding.check_tokens() == {"checked": 0, "needs_reauth": 0, "notified": 0}


async def test_a_graph_refusal_is_a_clear_error_without_the_token(world: World,
                                                                  setup: tuple[Store, Onboarding, Notifier, str]) -> None:
    from control_plane.channels.graph import GraphError

    _, onboarding, _, tenant_id = setup
    world.exchange_error = {"code": 100, "error_subcode": 36007, "message": "code expired for tok-123"}
    with pytest.raises(GraphError) as raised:
        await onboarding.whatsapp_signup(tenant_id, WhatsAppSignup(code="old", waba_id="900", phone_number_id="901"), ADMIN)
    assert raised.value.message == "Meta refused the code exchange (code 100, subcode 36007)"
    assert not world.graph("POST", "subscribed_apps")
