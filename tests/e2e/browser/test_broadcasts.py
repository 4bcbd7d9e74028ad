"""Broadcasts in the browser: an audience built from tags, a field condition and a channel with
its live recipient count, a text with a button that starts a flow, sent and followed until the
Graph stand-in has every message; a scheduled broadcast paused, resumed and cancelled; agents
do not see the screen."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.e2e.browser.conftest import WA_NUMBER_ID, WABA_ID, Browsers, WebApp
from tests.e2e.conftest import wait_for

FLOW = {
    "schema": "aat.flow/v1", "name": "Browser sale flow",
    "triggers": [{"type": "postback", "payload": "BROWSER_SALE"}],
    "start": "hello", "steps": {"hello": {"type": "message", "text": "Here is what is on sale"}},
}


TEMPLATE = {
    "id": "7001", "name": "browser_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
    "parameter_format": "POSITIONAL",
    "components": [{"type": "BODY", "text": "Hi {{1}}, everything is {{2}} off."},
                   {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Show me"}]}],
}


def _contact(web_app: WebApp, name: str, tags: tuple[str, ...], fields: dict[str, Any], *,
             days_ago: float = 0) -> str:
    wa_id = web_app.whatsapp(f"hi, it's {name}", name=name, at_s=int(time.time() - days_ago * 86400))
    contact = web_app.contact_of(wa_id)
    api = web_app.appliance.api
    for tag in tags:
        assert api.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": tag}).status_code == 200
    if fields:
        response = api.patch(f"/api/v1/contacts/{contact['id']}", json={"fields": fields})
        assert response.status_code == 200, response.text
    return wa_id


def _publish_flow(web_app: WebApp) -> str:
    """The flow the buttons start (published once for the whole run)."""
    api = web_app.appliance.api
    for item in api.get("/api/v1/flows", params={"limit": 500}).json()["items"]:
        if item["name"] == FLOW["name"] and item["status"] == "published":
            return str(item["id"])
    flow = api.post("/api/v1/flows", json=FLOW)
    assert flow.status_code == 201, flow.text
    assert api.post(f"/api/v1/flows/{flow.json()['id']}/publish").status_code == 200
    return str(flow.json()["id"])


def test_build_an_audience_see_the_count_send_and_watch_progress(browsers: Browsers, web_app: WebApp) -> None:
    gold = [_contact(web_app, "Gilda Spring", ("spring-b",), {"plan": "gold"}),
            _contact(web_app, "Gonzalo Spring", ("spring-b", "newsletter-b"), {"plan": "gold"})]
    _contact(web_app, "Silvia Spring", ("spring-b",), {"plan": "silver"})  # fails the field condition
    _contact(web_app, "Sam Staff", ("spring-b", "staff-b"), {"plan": "gold"})  # has an excluded tag
    _publish_flow(web_app)
    sends_before = len(web_app.sends_to(WA_NUMBER_ID))

    page = browsers.signed_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcasts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Broadcasts")
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Broadcast name").fill("Spring sale (browser)")
    page.get_by_label("Has any of these tags").fill("spring-b")
    expect(page.locator("#recipient-count")).to_have_text("4 contacts match")
    page.get_by_label("Has none of these tags").fill("staff-b")
    expect(page.locator("#recipient-count")).to_have_text("3 contacts match")
    page.get_by_role("button", name="Add a field condition").click()
    page.get_by_label("Field (condition 1)").fill("plan")
    page.get_by_label("Operator (condition 1)").select_option("eq")
    page.get_by_label("Value (condition 1)").fill("gold")
    page.get_by_role("checkbox", name="WhatsApp").check()
    page.get_by_label("Last wrote after").fill("1d")
    expect(page.locator("#recipient-count")).to_have_text("2 contacts match")
    expect(page.locator("#audience-count")).to_contain_text("2 would get it now")

    page.get_by_label("Text", exact=True).fill("Hi {{contact.first_name|there}}, the spring sale is on")
    page.get_by_role("button", name="Add a button").click()
    page.get_by_label("Button 1 title").fill("Show me")
    page.get_by_label("Button 1 action").select_option("flow")
    page.get_by_label("Flow (button 1)").select_option(label="Browser sale flow")
    web_app.shot(page, "broadcast-new")
    page.get_by_role("button", name="Send broadcast").click()

    page.wait_for_url("**/broadcasts")
    row = page.locator("#broadcasts-table tbody tr", has_text="Spring sale (browser)")
    expect(row.locator(".b-status")).to_have_text("Completed", timeout=20_000)
    expect(row.locator("[data-count=sent]")).to_have_text("2 sent")
    expect(row.locator(".b-done")).to_have_text("2 of 2")
    expect(row.get_by_role("progressbar", name="Progress of Spring sale (browser)")).to_have_attribute("value", "100")
    web_app.shot(page, "broadcasts")

    sends = web_app.sends_to(WA_NUMBER_ID)[sends_before:]
    assert sorted(r.json["to"] for r in sends) == sorted(gold)
    bodies = {r.json["to"]: r.json["interactive"] for r in sends}
    assert bodies[gold[0]]["body"]["text"] == "Hi Gilda, the spring sale is on"
    assert [b["reply"]["title"] for b in bodies[gold[0]]["action"]["buttons"]] == ["Show me"]
    assert bodies[gold[0]]["action"]["buttons"][0]["reply"]["id"] == "BROWSER_SALE"


def test_a_scheduled_broadcast_is_paused_resumed_and_cancelled(browsers: Browsers, web_app: WebApp) -> None:
    _contact(web_app, "Lea Later", ("later-b",), {})
    page = browsers.signed_in("admin")
    page.goto("/broadcasts/new")
    page.get_by_label("Broadcast name").fill("Next year (browser)")
    page.get_by_label("Has any of these tags").fill("later-b")
    expect(page.locator("#recipient-count")).to_have_text("1 contact matches")
    page.get_by_label("Text", exact=True).fill("See you next year")
    page.get_by_role("radio", name="Schedule for later").check()
    page.get_by_label("Send at").fill("2099-01-01T09:00")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Schedule broadcast").click()

    page.wait_for_url("**/broadcasts")
    row = page.locator("#broadcasts-table tbody tr", has_text="Next year (browser)")
    expect(row.locator(".b-status")).to_have_text("Scheduled")
    expect(row.locator("time")).to_have_attribute("datetime", "2099-01-01T08:00:00.000Z")
    expect(row).to_contain_text("given in Europe/Berlin")
    row.get_by_role("button", name="Pause Next year (browser)").click()
    expect(row.locator(".b-status")).to_have_text("Paused")
    row.get_by_role("button", name="Resume Next year (browser)").click()
    expect(row.locator(".b-status")).to_have_text("Scheduled")
    row.get_by_role("button", name="Cancel Next year (browser)").click()
    dialog = page.get_by_role("dialog", name="Cancel this broadcast?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel the broadcast").click()
    expect(row.locator(".b-status")).to_have_text("Cancelled")
    expect(row.locator(".b-done")).to_have_text("0 of 0")  # it never started: no audience was taken
    expect(row.get_by_role("button", name=re.compile("Pause|Resume|Cancel"))).to_have_count(0)

    items = web_app.appliance.api.get("/api/v1/broadcasts").json()["items"]
    broadcast = next(b for b in items if b["name"] == "Next year (browser)")
    assert (broadcast["status"], broadcast["send_at"], broadcast["timezone"]) == \
        ("cancelled", "2099-01-01T08:00:00.000Z", "Europe/Berlin")


def test_a_template_reaches_a_contact_outside_the_window(browsers: Browsers, web_app: WebApp) -> None:
    web_app.graph.templates[WABA_ID] = [TEMPLATE]
    wa_id = _contact(web_app, "Olga Old", ("tpl-b",), {}, days_ago=3)
    _publish_flow(web_app)
    sends_before = len(web_app.sends_to(WA_NUMBER_ID))
    page = browsers.signed_in("admin")
    page.goto("/broadcasts")
    page.get_by_role("button", name="Sync WhatsApp templates").click()
    expect(page.locator("#templates-count")).to_have_text("The catalogue was synced from Meta: 1 template.")

    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Broadcast name").fill("Template (browser)")
    page.get_by_label("Has any of these tags").fill("tpl-b")
    expect(page.locator("#audience-count")).to_contain_text("1 contact matches; 0 would get it now (skipped: 1 outside")
    page.get_by_role("radio", name=re.compile("WhatsApp template")).check()
    page.get_by_label("Template", exact=True).select_option(label="browser_sale (en_US, marketing)")
    expect(page.locator("#template-body")).to_have_text("Hi {{1}}, everything is {{2}} off.")
    expect(page.locator("#audience-count")).to_contain_text("1 contact matches; 1 would get it now")
    page.get_by_label("Body variable {{1}}").fill("{{contact.first_name|there}}")
    page.get_by_label("Body variable {{2}}").fill("20%")
    page.get_by_label("Quick reply “Show me” starts").select_option(label="Browser sale flow")
    web_app.shot(page, "broadcast-template")
    page.get_by_role("button", name="Send broadcast").click()

    page.wait_for_url("**/broadcasts")
    row = page.locator("#broadcasts-table tbody tr", has_text="Template (browser)")
    expect(row.locator(".b-status")).to_have_text("Completed", timeout=20_000)
    expect(row.locator("[data-count=sent]")).to_have_text("1 sent")
    [send] = web_app.sends_to(WA_NUMBER_ID)[sends_before:]
    assert (send.json["to"], send.json["template"]) == (wa_id, {
        "name": "browser_sale", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Olga"}, {"type": "text", "text": "20%"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "BROWSER_SALE"}]}]})


def test_a_refused_broadcast_shows_the_apis_reason(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.signed_in("admin")
    page.goto("/broadcasts/new")
    page.get_by_label("Broadcast name").fill("Too long")
    page.get_by_label("Text", exact=True).fill("Hi")
    page.get_by_role("button", name="Add a button").click()
    page.get_by_label("Button 1 title").fill("A button")
    page.get_by_role("button", name="Send broadcast").click()  # no flow chosen
    expect(page.get_by_role("alert")).to_contain_text("message.buttons.0")
    assert wait_for(lambda: page.url.endswith("/broadcasts/new"), what="staying on the form")


def test_agents_have_no_broadcasts(browsers: Browsers) -> None:
    page = browsers.signed_in("agent")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Broadcasts")).to_have_count(0)
    page.goto("/broadcasts")
    expect(page.get_by_role("heading", level=1)).to_have_text("You don't have access to this page")
