"""The ``http_request`` step through the real stack: a signed webhook starts the flow, the step
calls a loopback server (tests switch the private-address guard off), ``save`` puts JSON paths
into contact fields, and the next message (to the Graph stand-in) shows them. Failures take
``on_error`` with the reason recorded on the step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.integrations.http_step import perform
from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import rows
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent, texts_of
from tests.appliance.integrations_helpers import logged, quiet_http_loggers
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn
from tests.standins.http_target import Answer, HttpTarget


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Private addresses allowed (the target is on loopback) unless parametrized otherwise."""
    return settings.model_copy(update=getattr(request, "param", {"http_allow_private": True}))


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    return make_token(workspace, "admin")


def order_flow(url: str, **lookup: Any) -> dict[str, Any]:
    return {
        "schema": "aat.flow/v1",
        "name": "Order status",
        "triggers": [{"type": "keyword", "channels": ["messenger", "instagram", "whatsapp"],
                      "keywords": ["order"], "match": "contains"}],
        "start": "lookup",
        "steps": {
            "lookup": {
                "type": "http_request", "method": "POST", "url": url,
                "headers": {"X-Api-Key": "k-secret-4711"},
                "body": {"who": "{{contact.first_name|someone}}", "channel": "{{contact.channel}}"},
                "timeout_seconds": 5,
                "save": {"plan": "$.order.plan", "first_sku": "$.order.items[0].sku"},
                "next": "tell", "on_error": "sorry", **lookup,
            },
            "tell": {"type": "message", "text": "Plan {{contact.fields.plan|unknown}}, first {{contact.fields.first_sku|none}}."},
            "sorry": {"type": "message", "text": "Sorry, we could not look that up."},
        },
    }


def outcome(workspace: Workspace) -> str | None:
    found = rows(workspace, "SELECT detail FROM flow_step_events WHERE step = 'lookup' AND event = 'completed'")
    return found[0]["detail"] if found else None


def contact_fields(workspace: Workspace) -> dict[str, Any]:
    return json.loads(rows(workspace, "SELECT fields FROM contacts ORDER BY id LIMIT 1")[0]["fields"])


async def test_the_response_is_saved_into_contact_fields_and_used_by_the_next_message(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    target: HttpTarget, caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_http_loggers(caplog)
    target.answer = {"order": {"plan": "Pro", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}}
    await publish_flow(client, admin, order_flow(f"{target.base_url}/orders/{{{{contact.first_name|anon}}}}?src=aat"))
    await say(client, "whatsapp", "where is my order?")  # WhatsApp profile name "Giorgi"
    assert texts_of(await sent(graph_api, 1)) == ["Plan Pro, first A-1."]
    call = target.requests[0]
    assert (call.method, call.path, call.query) == ("POST", "/orders/Giorgi", "src=aat")
    assert call.json == {"who": "Giorgi", "channel": "whatsapp"}
    assert call.headers["x-api-key"] == "k-secret-4711"
    assert call.headers["content-type"] == "application/json"
    assert contact_fields(workspace) == {"plan": "Pro", "first_sku": "A-1"}
    assert outcome(workspace) is None  # completed without an error detail
    text = logged(caplog)
    assert "http_request step" in text
    assert "k-secret-4711" not in text and "Giorgi" not in text and "/orders" not in text


async def test_template_values_cannot_change_the_url_structure(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], target: HttpTarget
) -> None:
    await publish_flow(client, admin, order_flow(f"{target.base_url}/q?nick={{{{contact.fields.nick}}}}"))
    known_contact(workspace, "2460009999999999", {"nick": "../admin?x=1&y=2#"})
    await say(client, "messenger", "order", sender="2460009999999999")
    await sent(graph_api, 1)
    assert (target.requests[0].path, target.requests[0].query) == ("/q", "nick=..%2Fadmin%3Fx%3D1%26y%3D2%23")


def known_contact(workspace: Workspace, psid: str, fields: dict[str, Any]) -> None:
    """A Messenger contact who is already known, with these fields."""
    from appliance.channels.events import ContactRef
    from appliance.contacts import store as contacts
    from appliance.timeutil import iso_now

    channel = rows(workspace, "SELECT id FROM channels WHERE type = 'messenger'")[0]["id"]

    def create(db: Any) -> None:
        contact_id, _ = contacts.upsert_contact(db, channel, ContactRef(external_id=psid), iso_now())
        db.execute("UPDATE contacts SET fields = ? WHERE id = ?", [json.dumps(fields), contact_id])

    workspace.gateway.write_sync(create)


@pytest.mark.parametrize(("answer", "timeout", "reason"), [
    (Answer(status=500, json={"error": "boom"}), 5, "http_500"),
    (Answer(status=404, json={}), 5, "http_404"),
    (Answer(delay=3), 0.5, "timeout"),
    (Answer(size=1024 * 1024 + 1), 5, "response_too_large"),
    (Answer(gzip_bomb=20 * 1024 * 1024), 5, "response_too_large"),
    (Answer.redirect("http://169.254.169.254/latest/meta-data/iam"), 5, "blocked_address"),
    (Answer.redirect("http://[::ffff:a9fe:a9fe]/"), 5, "blocked_address"),
], ids=["500", "404", "timeout", "too-large", "gzip-bomb", "redirect-to-metadata", "redirect-to-mapped-metadata"])
async def test_failures_take_on_error_with_the_reason(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    target: HttpTarget, answer: Answer, timeout: float, reason: str,
) -> None:
    target.script(answer)
    await publish_flow(client, admin, order_flow(f"{target.base_url}/orders", timeout_seconds=timeout))
    await say(client, "messenger", "order")
    assert texts_of(await sent(graph_api, 1)) == ["Sorry, we could not look that up."]
    assert outcome(workspace) == f"error: {reason}"
    assert contact_fields(workspace) == {}


async def test_a_non_json_answer_is_saved_whole_with_the_root_path(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str], target: HttpTarget
) -> None:
    target.script(Answer(body=b"Pro plan", headers={"Content-Type": "text/plain"}))
    await publish_flow(client, admin, order_flow(f"{target.base_url}/plan", save={"plan": "$"}, method="GET",
                                                 body=None))
    await say(client, "messenger", "order")
    assert texts_of(await sent(graph_api, 1)) == ["Plan Pro plan, first none."]
    assert target.requests[0].method == "GET" and target.requests[0].body == b""


GUARDED = pytest.mark.parametrize("settings", [{}], indirect=True, ids=["guarded"])
HTTPS = pytest.mark.parametrize("settings", [{"http_allow_private": True, "public_url": "https://aat.example.com"}],
                                indirect=True, ids=["https"])


@GUARDED
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "[::1]", "[::ffff:127.0.0.1]", "0"])
async def test_loopback_is_refused_by_default(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    target: HttpTarget, host: str,
) -> None:
    await publish_flow(client, admin, order_flow(f"http://{host}:{target.port}/orders"))
    await say(client, "messenger", "order")
    assert texts_of(await sent(graph_api, 1)) == ["Sorry, we could not look that up."]
    assert outcome(workspace) == "error: blocked_address"
    assert target.requests == []


@HTTPS
async def test_allow_private_is_refused_with_a_warning_when_served_over_https(
    settings: Settings, workspace: Workspace, graph_api: GraphStandIn, target: HttpTarget,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from appliance.app import create_app

    admin = make_token(workspace, "admin")
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    async with AsyncTestClient(app=create_app(settings, workspace=workspace, run_queue=False)) as client:
        assert any("AAT_HTTP_ALLOW_PRIVATE is ignored" in r.getMessage() and r.levelname == "WARNING"
                   for r in caplog.records)
        await publish_flow(client, admin, order_flow(f"{target.base_url}/orders"))
        await say(client, "messenger", "order")
        assert texts_of(await sent(graph_api, 1)) == ["Sorry, we could not look that up."]
    assert outcome(workspace) == "error: blocked_address"
    assert target.requests == []


async def test_a_rendered_header_cannot_add_header_lines(target: HttpTarget) -> None:
    request = {"method": "GET", "url": f"{target.base_url}/x", "headers": {"X-Name": "Ana\r\nX-Admin: 1"}}
    assert await perform(request, allow_private=True) == (False, None, "invalid_header", None)
    assert target.requests == []


async def test_non_ascii_header_values_go_out_as_utf8(target: HttpTarget) -> None:
    request = {"method": "GET", "url": f"{target.base_url}/x", "headers": {"X-Name": "Zoë Ωμέγα"}}
    ok, _, _, status = await perform(request, allow_private=True)
    assert (ok, status) == (True, 200)
    # http.server reads header bytes as latin-1
    assert target.requests[0].headers["x-name"].encode("latin-1") == "Zoë Ωμέγα".encode()
