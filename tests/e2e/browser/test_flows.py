"""The flow builder in Chromium against a real appliance: the spec's example flow built from an
empty canvas with the mouse and keyboard, published, triggered by a signed webhook and its
counts seen on the nodes; an existing flow opened with every step and connection; an edited
text reaching the next contact; an invalid connection's error on its node; the preview chat
following a button path."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser.conftest import PAGE_ID, Browsers, WebApp
from tests.e2e.conftest import wait_for

_n = itertools.count(1)
EXAMPLE_STEPS = {
    "hello": {"type": "message", "text": "Hi {{contact.first_name|there}}! What would you like?",
              "buttons": [{"title": "Plans", "next": "plans"}, {"title": "Talk to a human", "next": "human"}]},
    "plans": {"type": "message", "text": "Pro is 15 EUR a month.", "next": "ask_email"},
    "ask_email": {"type": "input", "text": "Where can we send the details?", "validate": "email",
                  "save_to": "email", "retry_text": "That doesn't look like an email.", "max_retries": 3,
                  "next": "thanks", "on_invalid": "human"},
    "thanks": {"type": "action", "actions": [{"add_tag": "lead"}], "next": "bye"},
    "bye": {"type": "message", "text": "Thanks! Sent to {{contact.fields.email|you}}."},
    "human": {"type": "handoff", "text": "Connecting you with our team."},
}
EXAMPLE_EDGES = {"hello:plans", "hello:human", "plans:ask_email", "ask_email:thanks", "ask_email:human", "thanks:bye"}


def create_flow(web_app: WebApp, name: str, keyword: str, steps: dict[str, Any], *, start: str = "hello",
                publish: bool = False, layout: dict[str, Any] | None = None) -> str:
    document: dict[str, Any] = {"schema": "aat.flow/v1", "name": name, "start": start, "steps": steps,
                                "triggers": [{"type": "keyword", "keywords": [keyword]}]}
    if layout:
        document["layout"] = layout
    api = web_app.appliance.api
    created = api.post("/api/v1/flows", json=document)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    if publish:
        done = api.post(f"/api/v1/flows/{flow_id}/publish")
        assert done.status_code == 200, done.text
    return flow_id


def texts_sent(web_app: WebApp, psid: str) -> list[str]:
    out = []
    for request in web_app.sends_to(PAGE_ID):
        body = request.json or {}
        if (body.get("recipient") or {}).get("id") != psid:
            continue
        message = body.get("message") or {}
        payload = (message.get("attachment") or {}).get("payload") or {}
        out.append(message.get("text") or payload.get("text") or "")
    return out


def wait_sent(web_app: WebApp, psid: str, text: str) -> None:
    wait_for(lambda: any(text in t for t in texts_sent(web_app, psid)), what=f"the bot to send {text!r}")


def postback(web_app: WebApp, psid: str, title: str) -> None:
    """The contact taps the button ``title`` of the last button template sent to them."""
    payload = None
    for request in web_app.sends_to(PAGE_ID):
        body = request.json or {}
        template = ((body.get("message") or {}).get("attachment") or {}).get("payload") or {}
        if (body.get("recipient") or {}).get("id") == psid:
            payload = next((b["payload"] for b in template.get("buttons", []) if b.get("title") == title), payload)
    assert payload, f"no button {title!r} was sent"
    at = int(time.time() * 1000)
    web_app.webhook({"object": "page", "entry": [{"id": PAGE_ID, "time": at, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": at,
        "postback": {"mid": f"m_flow_postback_{next(_n)}", "title": title, "payload": payload}}]}]})


def node(page: Page, step: str) -> Locator:
    return page.locator(f'[data-step-id="{step}"]')


def connect(page: Page, step: str, port: str, target: str) -> None:
    """Drags from the step's output dot to the target node, with the mouse."""
    dot = node(page, step).locator(f'.port[data-port="{port}"]').bounding_box()
    box = node(page, target).locator(".fnode-head").bounding_box()
    assert dot and box
    page.mouse.move(dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()


def add_step(page: Page, label: str, step_id: str, after: str | None = None) -> None:
    if after:
        node(page, after).locator(".fnode-head").click()
    else:
        page.keyboard.press("Escape")
    page.get_by_role("button", name=f"Add a {label} step").click()
    page.get_by_label("Step id").fill(step_id)
    page.get_by_label("Step id").press("Enter")
    expect(node(page, step_id)).to_be_visible()


def open_builder(page: Page, flow_id: str) -> None:
    page.goto(f"/flows/{flow_id}")
    expect(page.locator("#builder[data-ready=true]")).to_have_count(1)


def test_build_the_example_from_an_empty_canvas_publish_trigger_and_see_counts(
    browsers: Browsers, web_app: WebApp
) -> None:
    page = browsers.signed_in("admin", viewport={"width": 1600, "height": 1000})
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Flows").click()
    page.get_by_role("link", name="New flow").click()
    expect(page.locator("#canvas-empty")).to_be_visible()
    page.get_by_label("Flow name").fill("Pricing questions (built)")
    page.get_by_role("button", name="Add trigger").click()
    page.get_by_label("Keywords (comma-separated)").fill("pricebuilt, pricing built")

    add_step(page, "Message", "hello")
    page.get_by_label("Text", exact=True).fill("Hi {{contact.first_name|there}}! What would you like?")
    page.get_by_role("button", name="Add button").click()
    page.get_by_label("Button title").fill("Plans")
    page.get_by_role("button", name="Add button").click()
    page.get_by_label("Button title").nth(1).fill("Talk to a human")
    add_step(page, "Message", "plans", after="hello")
    page.get_by_label("Text", exact=True).fill("Pro is 15 EUR a month.")
    add_step(page, "Question", "ask_email", after="plans")
    page.get_by_label("Text", exact=True).fill("Where can we send the details?")
    page.get_by_label("Expected answer").select_option("email")
    page.get_by_label("Save the answer to field").fill("email")
    page.get_by_label("Retry text").fill("That doesn't look like an email.")
    page.get_by_label("Retries").fill("3")
    add_step(page, "Action", "thanks", after="ask_email")
    page.get_by_label("Tag", exact=True).fill("lead")
    add_step(page, "Message", "bye", after="thanks")
    page.get_by_label("Text", exact=True).fill("Thanks! Sent to {{contact.fields.email|you}}.")
    page.get_by_role("button", name="Fit", exact=True).click()
    add_step(page, "Handoff", "human", after="plans")
    page.get_by_role("button", name="Fit", exact=True).click()

    connect(page, "hello", "buttons.0", "plans")
    connect(page, "hello", "buttons.1", "human")
    connect(page, "plans", "next", "ask_email")
    connect(page, "ask_email", "next", "thanks")
    connect(page, "ask_email", "on_invalid", "human")
    connect(page, "thanks", "next", "bye")
    for edge in EXAMPLE_EDGES:
        expect(page.locator(f'[data-edge="{edge}"]')).to_have_count(1)

    # The keyboard: Delete removes the selected step with its connections, Ctrl+Z brings both back.
    node(page, "bye").click()
    page.keyboard.press("Delete")
    expect(node(page, "bye")).to_have_count(0)
    expect(page.locator('[data-edge="thanks:bye"]')).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(node(page, "bye")).to_have_count(1)
    expect(page.locator('[data-edge="thanks:bye"]')).to_have_count(1)
    web_app.shot(page, "flow-built")

    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r".*/flows/\d+$"))
    flow_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.locator("#toasts")).to_contain_text("Version 1 is live")
    stored = web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()
    assert stored["status"] == "published"
    assert stored["document"]["steps"] == EXAMPLE_STEPS
    assert stored["document"]["start"] == "hello"
    assert stored["document"]["triggers"] == [{"type": "keyword", "keywords": ["pricebuilt", "pricing built"]}]
    assert set(stored["document"]["layout"]) == set(EXAMPLE_STEPS)

    psid = web_app.messenger("what is the pricebuilt?")
    wait_sent(web_app, psid, "What would you like?")
    postback(web_app, psid, "Plans")
    wait_sent(web_app, psid, "Where can we send the details?")

    page.get_by_role("button", name="Stats", exact=True).click()
    expect(node(page, "hello")).to_have_attribute("data-entered", "1")
    expect(node(page, "plans")).to_have_attribute("data-entered", "1")
    expect(node(page, "ask_email")).to_have_attribute("data-entered", "1")
    expect(node(page, "bye")).to_have_attribute("data-entered", "0")
    expect(node(page, "hello").locator('.out-row[data-port="buttons.0"] .clicks')).to_have_text("1 click · 100%")
    expect(page.locator("#stats-summary")).to_contain_text("1 runs started")
    web_app.shot(page, "flow-stats")


def test_an_existing_flow_shows_every_step_and_connection(browsers: Browsers, web_app: WebApp) -> None:
    flow_id = create_flow(web_app, "Example as stored", "examplestored", EXAMPLE_STEPS)
    page = browsers.signed_in("admin")
    page.goto("/flows")
    page.get_by_role("link", name="Example as stored").click()
    expect(page.locator("[data-step-id]")).to_have_count(len(EXAMPLE_STEPS))
    for step in EXAMPLE_STEPS:
        expect(node(page, step)).to_be_visible()
    expect(page.locator("[data-edge]")).to_have_count(len(EXAMPLE_EDGES))
    assert {e.get_attribute("data-edge") for e in page.locator("[data-edge]").all()} == EXAMPLE_EDGES
    expect(node(page, "hello")).to_contain_text("Talk to a human")
    expect(node(page, "ask_email")).to_contain_text("Expects email → email")
    expect(page.locator("#flow-status")).to_have_text("Unsaved changes")  # positions were added
    web_app.shot(page, "flow-existing")
    assert page.url.endswith(f"/flows/{flow_id}")

    # Drag a node with the mouse: its new place is saved in the document's layout.
    head = node(page, "bye").locator(".fnode-head").bounding_box()
    assert head
    page.mouse.move(head["x"] + 10, head["y"] + 5)
    page.mouse.down()
    page.mouse.move(head["x"] + 10, head["y"] + 205, steps=6)
    page.mouse.up()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#flow-status")).to_have_text("Draft")
    layout = web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()["document"]["layout"]
    assert layout["bye"]["y"] > layout["thanks"]["y"] + 200 and set(layout) == set(EXAMPLE_STEPS)

    # Zoom, duplicate with Ctrl+D and take it back with Ctrl+Z.
    node(page, "plans").click()
    page.keyboard.press("Control+d")
    expect(node(page, "message_1")).to_contain_text("Pro is 15 EUR a month.")
    page.keyboard.press("Control+z")
    expect(node(page, "message_1")).to_have_count(0)
    before = page.locator("#zoom-level").inner_text()
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#zoom-level")).not_to_have_text(before)


def test_an_edited_text_reaches_the_next_contact_after_publishing(browsers: Browsers, web_app: WebApp) -> None:
    flow_id = create_flow(web_app, "Opening hours", "openinghours",
                          {"hello": {"type": "message", "text": "We open at 9."}}, publish=True)
    before = web_app.messenger("openinghours?")
    wait_sent(web_app, before, "We open at 9.")
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    node(page, "hello").click()
    page.get_by_label("Text", exact=True).fill("We open at 10 now.")
    expect(node(page, "hello")).to_contain_text("We open at 10 now.")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.locator("#toasts")).to_contain_text("Version 2 is live")
    after = web_app.messenger("openinghours?")
    wait_sent(web_app, after, "We open at 10 now.")
    assert texts_sent(web_app, before) == ["We open at 9."]
    page.get_by_role("button", name="History", exact=True).click()
    expect(page.locator("#versions li")).to_have_count(2)


def test_an_invalid_connection_shows_its_error_on_the_node(browsers: Browsers, web_app: WebApp) -> None:
    flow_id = create_flow(web_app, "Loop risk", "looprisk", {
        "tag": {"type": "action", "actions": [{"add_tag": "seen"}], "next": "check"},
        "check": {"type": "condition", "if": [{"field": "seen", "op": "has_tag"}], "else": "done"},
        "done": {"type": "end"},
    }, start="tag", layout={"tag": {"x": 40, "y": 40}, "check": {"x": 380, "y": 40}, "done": {"x": 720, "y": 40}})
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    connect(page, "check", "then", "tag")  # back to "tag": a loop with no message, input or delay
    expect(page.locator('[data-edge="check:tag"]')).to_have_count(1)
    page.get_by_role("button", name="Publish", exact=True).click()
    broken = page.locator(".fnode.has-error")
    expect(broken).to_have_count(1)
    expect(broken.locator(".fnode-errors")).to_contain_text("these steps loop without a message, input or delay")
    assert broken.get_attribute("data-step-id") in {"tag", "check"}
    expect(page.locator("#error-summary")).to_contain_text("Not published")
    web_app.shot(page, "flow-invalid-connection")
    assert web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()["status"] == "draft"


def test_the_preview_chat_follows_a_button_path(browsers: Browsers, web_app: WebApp) -> None:
    flow_id = create_flow(web_app, "Previewed", "previewed", EXAMPLE_STEPS)
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    page.get_by_role("button", name="Preview", exact=True).click()
    chat = page.locator("#preview-chat")
    expect(chat).to_contain_text("Hi Preview! What would you like?")
    chat.get_by_role("button", name="Plans").click()
    expect(chat).to_contain_text("Pro is 15 EUR a month.")
    expect(chat).to_contain_text("Where can we send the details?")
    page.get_by_label("Reply as the contact").fill("not an email")
    page.get_by_label("Reply as the contact").press("Enter")
    expect(chat).to_contain_text("That doesn't look like an email.")
    web_app.shot(page, "flow-preview")
    page.get_by_label("Channel", exact=True).select_option("whatsapp")
    expect(chat.locator(".bubble.from-bot.ch-whatsapp")).to_have_count(1)
    expect(chat.get_by_role("button", name="Talk to a human")).to_be_visible()


def test_the_dashboard_charts_todays_messages_for_an_agent(browsers: Browsers, web_app: WebApp) -> None:
    web_app.whatsapp("hello from the dashboard test", name="Dana Dashboard")
    page = browsers.signed_in("agent")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator("#chart-inbound rect.bar-whatsapp")).to_have_count(1)
    assert int(page.locator("#kpi-inbound .value").inner_text()) >= 1
    assert int(page.locator("#kpi-contacts .value").inner_text()) >= 1
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Flows")).to_have_count(0)
    web_app.shot(page, "dashboard")


def test_history_restores_a_version_and_the_document_exports_and_imports(
    browsers: Browsers, web_app: WebApp, tmp_path: Path
) -> None:
    api = web_app.appliance.api
    flow_id = create_flow(web_app, "Versioned", "versioned", {"hello": {"type": "message", "text": "First words."}},
                          publish=True)
    document = api.get(f"/api/v1/flows/{flow_id}").json()["document"]
    document["steps"]["hello"]["text"] = "Second words."
    assert api.put(f"/api/v1/flows/{flow_id}", json=document).status_code == 200
    assert api.post(f"/api/v1/flows/{flow_id}/publish").json()["version"] == 2
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    expect(node(page, "hello")).to_contain_text("Second words.")
    page.get_by_role("button", name="History", exact=True).click()
    expect(page.locator("#versions li")).to_have_count(2)
    page.get_by_role("button", name="Restore version 1").click()
    expect(node(page, "hello")).to_contain_text("First words.")
    expect(page.locator("#flow-status")).to_have_text("Unsaved changes")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#flow-status")).to_have_text("Draft differs from the live version")
    assert api.get(f"/api/v1/flows/{flow_id}").json()["document"]["steps"]["hello"]["text"] == "First words."

    with page.expect_download() as download:
        page.get_by_role("button", name="Export", exact=True).click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["steps"] == {"hello": {"type": "message", "text": "First words."}}
    exported["steps"]["hello"]["text"] = "Imported words."
    upload = tmp_path / "flow.json"
    upload.write_text(json.dumps(exported), encoding="utf-8")
    page.get_by_label("Import a flow document").set_input_files(str(upload))
    expect(node(page, "hello")).to_contain_text("Imported words.")
    page.get_by_role("button", name="Undo", exact=True).click()
    expect(node(page, "hello")).to_contain_text("First words.")

    exported["name"] = "Imported from a file"
    upload.write_text(json.dumps(exported), encoding="utf-8")
    page.goto("/flows")
    page.get_by_label("Import a flow from a JSON file").set_input_files(str(upload))
    page.wait_for_url(re.compile(r".*/flows/\d+$"))
    expect(page.locator("#flow-title")).to_have_text("Imported from a file")
    expect(node(page, "hello")).to_contain_text("Imported words.")
