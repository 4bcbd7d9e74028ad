"""Outbound webhooks through the app: the subscriptions API (secrets shown once, URLs judged
when saved), events from real conversations arriving signed, the delivery log and replay, with
the app's own dispatcher."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.errors import Unprocessable
from appliance.integrations import webhook_dispatcher
from appliance.integrations.webhooks import RetryPolicy
from appliance.integrations.webhooks.routes import check_url
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    count,
    detail_paths,
    error_of,
    messenger_text,
    on_shared_app,
    rows,
    shared,
    snapshot,
)
from tests.appliance.integrations_helpers import files_containing, logged, quiet_http_loggers
from tests.helpers import connect_channel, ingest, make_token, wait_until
from tests.standins.http_target import Answer, HttpTarget

PAGE = "112233445566778"


@pytest.fixture
def receiver() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The receiver listens on loopback: tests switch the private-address guard off, unless
    parametrized with ``GUARDED``."""
    return settings.model_copy(update={"http_allow_private": getattr(request, "param", True)})


GUARDED = pytest.mark.parametrize("settings", [False], indirect=True, ids=["guarded"])


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def test_create_returns_the_secret_once_and_it_is_never_readable_again(
    client: AsyncTestClient, workspace: Workspace, settings: Settings, admin: dict[str, str], receiver: HttpTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_http_loggers(caplog)
    url = f"{receiver.base_url}/hooks/T0001/sk-path-token-4711"
    created = await client.post("/api/v1/webhooks", headers=admin, json={
        "url": url, "events": ["message.created", "contact.created", "message.created"], "description": "CRM"})
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["events"] == ["contact.created", "message.created"] and body["url"] == url
    shown = (await client.get(f"/api/v1/webhooks/{body['id']}", headers=admin)).json()
    assert "secret" not in shown and shown["url"] == url
    listed = (await client.get("/api/v1/webhooks", headers=admin)).json()["items"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    stored = rows(workspace, "SELECT * FROM webhook_subscriptions")[0]
    assert secret not in json.dumps(stored) and "sk-path-token-4711" not in json.dumps(stored)
    rotated = await client.post(f"/api/v1/webhooks/{body['id']}/rotate-secret", headers=admin)
    assert rotated.json()["secret"] != secret
    assert files_containing(settings.data_dir, secret, rotated.json()["secret"], "sk-path-token-4711") == []
    assert secret not in logged(caplog) and "sk-path-token-4711" not in logged(caplog)


@on_shared_app
@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]",
                                  "10.0.0.5", "172.16.3.4", "192.168.1.10", "169.254.169.254", "[fd00::1]",
                                  "100.64.1.1", "0.0.0.0", "224.0.0.1", "localhost", "metadata.localhost"])
async def test_private_literal_urls_are_refused_at_create_and_nothing_is_written(shared: Shared, host: str) -> None:
    # The shared app runs with the private-address guard on (the default).
    headers = make_token(shared.workspace, "admin")
    before = snapshot(shared.workspace, "webhook_subscriptions")
    response = await shared.client.post("/api/v1/webhooks", headers=headers,
                                        json={"url": f"http://{host}:8080/hook", "events": ["contact.updated"]})
    assert detail_paths(response) == ["url"]
    assert error_of(response, 422)["code"] == "invalid_url"
    assert snapshot(shared.workspace, "webhook_subscriptions") == before


@on_shared_app
@pytest.mark.parametrize(("body", "path"), [
    ({"url": "ftp://example.com/x", "events": ["contact.updated"]}, "url"),
    ({"url": "https://example.com/x", "events": ["contact.exploded"]}, "events.0"),
    ({"url": "https://example.com/x", "events": []}, "events"),
    ({"url": "https://example.com/x", "events": ["contact.updated"], "secret": "mine"}, "secret"),
])
async def test_bad_subscriptions_are_422_with_a_path(shared: Shared, body: dict[str, Any], path: str) -> None:
    headers = make_token(shared.workspace, "admin")
    before = snapshot(shared.workspace, "webhook_subscriptions")
    response = await shared.client.post("/api/v1/webhooks", headers=headers, json=body)
    assert detail_paths(response) == [path]
    assert snapshot(shared.workspace, "webhook_subscriptions") == before


def test_https_is_required_when_the_appliance_is_served_over_https(settings: Settings) -> None:
    runtime = SimpleNamespace(settings=settings.model_copy(update={"public_url": "https://aat.example.com"}))
    with pytest.raises(Unprocessable):
        check_url("http://hooks.example.com/x", runtime)  # type: ignore[arg-type]
    assert check_url("https://hooks.example.com/x", runtime) == "https://hooks.example.com/x"  # type: ignore[arg-type]


async def test_events_from_a_conversation_arrive_signed_and_the_log_shows_them(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], receiver: HttpTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_http_loggers(caplog)
    connect_channel(workspace, "messenger", PAGE)
    created = (await client.post("/api/v1/webhooks", headers=admin, json={
        "url": f"{receiver.base_url}/hook", "events": ["message.created", "contact.created"]})).json()
    receiver.secret = created["secret"]
    await ingest(client, messenger_text("2460001112223334", "m_hook_1", text="my secret order 4711"))

    async def both() -> bool:
        return len(receiver.requests) >= 2

    await wait_until(both)
    by_type = {r.json["type"]: r for r in receiver.requests}
    assert set(by_type) == {"contact.created", "message.created"}
    assert all(r.signature_ok for r in receiver.requests)
    message = by_type["message.created"]
    assert message.headers["x-aat-event"] == "message.created"
    assert message.json["data"]["message"]["text"] == "my secret order 4711"
    api_message = (await client.get(f"/api/v1/conversations/{message.json['data']['conversation_id']}/messages",
                                     headers=admin)).json()["items"][0]
    assert message.json["data"]["message"] == api_message

    async def recorded() -> bool:
        log = (await client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=admin)).json()["items"]
        return len(log) == 2 and all(d["status"] == "delivered" for d in log)

    await wait_until(recorded)
    log = (await client.get(f"/api/v1/webhooks/{created['id']}/deliveries", headers=admin)).json()["items"]
    one = (await client.get(f"/api/v1/webhooks/deliveries/{log[0]['id']}", headers=admin)).json()
    assert [a["status"] for a in one["attempt_log"]] == [200]
    text = logged(caplog)
    assert "webhook attempt" in text  # the dispatcher did log: ids, statuses, durations
    assert "my secret order 4711" not in text and created["secret"] not in text and "/hook" not in text


async def test_a_dead_delivery_is_replayed_from_the_log(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], receiver: HttpTarget
) -> None:
    worker = webhook_dispatcher(client.app.state.runtime)
    worker.policy = RetryPolicy(base_seconds=0.05, lifetime=timedelta(seconds=0.3), poll_seconds=0.05)
    receiver.script(*[Answer(status=500) for _ in range(50)])
    created = (await client.post("/api/v1/webhooks", headers=admin, json={
        "url": f"{receiver.base_url}/hook", "events": ["contact.created"]})).json()
    connect_channel(workspace, "messenger", PAGE)
    await ingest(client, messenger_text("2460001112223335", "m_hook_2"))
    log_url = f"/api/v1/webhooks/{created['id']}/deliveries"

    async def dead() -> bool:
        return [d["status"] for d in (await client.get(log_url, headers=admin)).json()["items"]] == ["dead"]

    await wait_until(dead)
    tries = len(receiver.requests)
    receiver.clear_script()  # the receiver is fixed
    delivery = (await client.get(log_url, headers=admin, params={"status": "dead"})).json()["items"][0]
    replayed = await client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay", headers=admin)
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"

    async def delivered() -> bool:
        return [d["status"] for d in (await client.get(log_url, headers=admin)).json()["items"]] == ["delivered"]

    await wait_until(delivered)
    assert len(receiver.requests) == tries + 1
    assert receiver.requests[-1].json["id"] == receiver.requests[0].json["id"]


async def test_deleting_a_subscription_erases_it_and_its_log(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], receiver: HttpTarget
) -> None:
    created = (await client.post("/api/v1/webhooks", headers=admin, json={
        "url": f"{receiver.base_url}/hook", "events": ["contact.created"]})).json()
    connect_channel(workspace, "messenger", PAGE)
    await ingest(client, messenger_text("2460001112223336", "m_hook_3"))

    async def one_delivery() -> bool:
        return count(workspace, "webhook_deliveries") == 1

    await wait_until(one_delivery)
    assert (await client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)).status_code == 204
    assert [count(workspace, t) for t in ("webhook_subscriptions", "webhook_deliveries", "webhook_attempts")] == [0, 0, 0]
    assert error_of(await client.get(f"/api/v1/webhooks/{created['id']}", headers=admin), 404)["code"] == "not_found"


@GUARDED
async def test_a_change_of_url_is_judged_and_a_pause_stops_deliveries(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    created = (await client.post("/api/v1/webhooks", headers=admin, json={
        "url": "https://hooks.example.com/aat", "events": ["contact.created"]})).json()
    hook = f"/api/v1/webhooks/{created['id']}"
    refused = await client.patch(hook, headers=admin, json={"url": "http://169.254.169.254/latest"})
    assert detail_paths(refused) == ["url"]
    paused = await client.patch(hook, headers=admin, json={"active": False, "description": "later"})
    assert paused.json()["active"] is False and paused.json()["url"] == "https://hooks.example.com/aat"
    assert detail_paths(await client.patch(hook, headers=admin, json={"events": None})) == ["events"]
    connect_channel(workspace, "messenger", PAGE)
    await ingest(client, messenger_text("2460001112223337", "m_hook_4"))
    await asyncio.sleep(1.0)  # two rounds of the dispatcher
    assert count(workspace, "webhook_deliveries") == 0
