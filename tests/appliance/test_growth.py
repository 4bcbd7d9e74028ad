"""Growth entry points: ref links with QR codes, and conversation profiles pushed to Meta."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.flow_run_helpers import publish_flow, sent, tap, texts_of
from tests.helpers import connect_channel, make_token
from tests.standins.graph_api import GraphStandIn

PAGE, IG, WA = "112233445566778", "17841455566677788", "109876543210987"


@pytest.fixture
def channels(workspace: Workspace) -> dict[str, int]:
    return {
        "messenger": connect_channel(workspace, "messenger", PAGE),
        "instagram": connect_channel(workspace, "instagram", IG, page_id=PAGE),
        "whatsapp": connect_channel(workspace, "whatsapp", WA, waba_id="203040506070809"),
    }


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    return make_token(workspace, "admin")


async def test_ref_links_for_every_channel_with_qr_codes(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str]
) -> None:
    graph_api.objects[IG] = {"username": "nika.design"}
    graph_api.objects[WA] = {"display_phone_number": "+1 555-000-1111"}
    urls = {}
    for channel, channel_id in channels.items():
        response = await client.get(f"/api/v1/channels/{channel_id}/links", params={"ref": "summer-sale"},
                                    headers=admin)
        assert response.status_code == 200, response.text
        urls[channel] = response.json()["url"]
        assert response.json()["qr_svg"].startswith("<svg")
    assert urls == {
        "messenger": f"https://m.me/{PAGE}?ref=summer-sale",
        "instagram": "https://ig.me/m/nika.design?ref=summer-sale",
        "whatsapp": "https://wa.me/15550001111?text=summer-sale",
    }
    image = await client.get(f"/api/v1/channels/{channels['messenger']}/links/qr.svg", params={"ref": "summer-sale"},
                             headers=admin)
    assert image.headers["content-type"].startswith("image/svg+xml") and b"<svg" in image.content
    # the handles were asked once and remembered
    lookups = [r for r in graph_api.other_requests if r.method == "GET"]
    assert sorted((r.path, r.query) for r in lookups) == [
        (f"/v25.0/{WA}", "fields=display_phone_number"), (f"/v25.0/{IG}", "fields=username")]
    await client.get(f"/api/v1/channels/{channels['instagram']}/links", params={"ref": "x"}, headers=admin)
    assert len([r for r in graph_api.other_requests if r.method == "GET"]) == 2


async def test_links_of_published_ref_flows(
    client: AsyncTestClient, channels: dict[str, int], admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Sale", "triggers": [{"type": "ref", "ref": "sale", "channels": ["messenger"]}],
        "start": "s", "steps": {"s": {"type": "message", "text": "Welcome to the sale!"}},
    })
    items = (await client.get("/api/v1/links", headers=admin)).json()["items"]
    assert [(i["flow_name"], i["channel"], i["url"]) for i in items] == [
        ("Sale", "messenger", f"https://m.me/{PAGE}?ref=sale")]


async def test_an_unknown_handle_is_a_clear_409(
    client: AsyncTestClient, channels: dict[str, int], admin: dict[str, str]
) -> None:
    response = await client.get(f"/api/v1/channels/{channels['instagram']}/links", params={"ref": "x"}, headers=admin)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "handle_unknown"


async def test_messenger_profile_is_pushed_and_its_postbacks_start_flows(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str]
) -> None:
    profile = {
        "get_started_payload": "GET_STARTED",
        "greeting": "Hi {{user_first_name}}!",
        "persistent_menu": [{"title": "Prices", "payload": "MENU_PRICES"},
                            {"title": "Website", "url": "https://example.com"}],
        "ice_breakers": [{"question": "Do you ship?", "payload": "ICE_SHIPPING"}],
    }
    response = await client.put(f"/api/v1/channels/{channels['messenger']}/profile", json=profile, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["push_error"] is None and response.json()["pushed_at"]
    [push] = graph_api.other_requests
    assert (push.method, push.path) == ("POST", f"/v25.0/{PAGE}/messenger_profile")
    assert push.json == {
        "get_started": {"payload": "GET_STARTED"},
        "greeting": [{"locale": "default", "text": "Hi {{user_first_name}}!"}],
        "persistent_menu": [{"locale": "default", "composer_input_disabled": False, "call_to_actions": [
            {"type": "postback", "title": "Prices", "payload": "MENU_PRICES"},
            {"type": "web_url", "title": "Website", "url": "https://example.com"}]}],
        "ice_breakers": [{"locale": "default", "call_to_actions": [
            {"question": "Do you ship?", "payload": "ICE_SHIPPING"}]}],
    }
    await publish_flow(client, admin, {
        "schema": "aat.flow/v1", "name": "Shipping", "triggers": [{"type": "postback", "payload": "ICE_SHIPPING"}],
        "start": "s", "steps": {"s": {"type": "message", "text": "We ship worldwide."}},
    })
    await tap(client, "messenger", "ICE_SHIPPING", "Do you ship?")
    assert texts_of(await sent(graph_api, 1)) == ["We ship worldwide."]


async def test_clearing_parts_deletes_them_at_meta(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str]
) -> None:
    response = await client.put(f"/api/v1/channels/{channels['instagram']}/profile",
                                json={"ice_breakers": [{"question": "Prices?", "payload": "P"}]}, headers=admin)
    assert response.status_code == 200
    calls = [(r.method, r.path, r.query, r.json) for r in graph_api.other_requests]
    assert calls == [
        ("POST", f"/v25.0/{PAGE}/messenger_profile", "platform=instagram",
         {"platform": "instagram", "ice_breakers": [{"locale": "default", "call_to_actions": [
             {"question": "Prices?", "payload": "P"}]}]}),
        ("DELETE", f"/v25.0/{PAGE}/messenger_profile", "platform=instagram",
         {"fields": ["persistent_menu"], "platform": "instagram"}),
    ]


async def test_whatsapp_prompts_and_commands(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str]
) -> None:
    response = await client.put(f"/api/v1/channels/{channels['whatsapp']}/profile", json={
        "welcome_message": True, "ice_breakers": [{"question": "Opening hours?", "payload": "HOURS"}],
        "commands": [{"name": "menu", "description": "See the menu"}]}, headers=admin)
    assert response.status_code == 200, response.text
    [push] = graph_api.other_requests
    assert (push.path, push.json) == (f"/v25.0/{WA}/conversational_automation", {
        "enable_welcome_message": True, "prompts": ["Opening hours?"],
        "commands": [{"command_name": "menu", "command_description": "See the menu"}]})


@pytest.mark.parametrize(("channel", "profile", "problem"), [
    ("whatsapp", {"persistent_menu": [{"title": "A", "payload": "A"}]}, "does not exist on WhatsApp"),
    ("instagram", {"greeting": "Hello"}, "Instagram has no Get Started button or greeting"),
    ("messenger", {"commands": [{"name": "menu", "description": "Menu"}]}, "only on WhatsApp"),
])
async def test_a_profile_the_channel_cannot_show_is_422_and_not_stored(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str],
    channel: str, profile: dict[str, Any], problem: str,
) -> None:
    response = await client.put(f"/api/v1/channels/{channels[channel]}/profile", json=profile, headers=admin)
    assert response.status_code == 422
    assert problem in response.json()["error"]["message"]
    stored = await client.get(f"/api/v1/channels/{channels[channel]}/profile", headers=admin)
    assert stored.json()["profile"] == {}
    assert graph_api.other_requests == []


async def test_meta_refusing_the_profile_is_reported_and_the_profile_kept(
    client: AsyncTestClient, graph_api: GraphStandIn, channels: dict[str, int], admin: dict[str, str]
) -> None:
    graph_api.fail_next(PAGE, GraphStandIn.graph_error(100, message="(#100) Invalid keys"))
    response = await client.put(f"/api/v1/channels/{channels['messenger']}/profile",
                                json={"get_started_payload": "GO"}, headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body["push_error"] == "Meta refused the profile (code 100): (#100) Invalid keys"
    assert body["pushed_at"] is None and body["profile"] == {"get_started_payload": "GO"}


async def test_unknown_profile_field_is_422(
    client: AsyncTestClient, channels: dict[str, int], admin: dict[str, str]
) -> None:
    response = await client.put(f"/api/v1/channels/{channels['messenger']}/profile", json={"menu": []}, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "menu"
