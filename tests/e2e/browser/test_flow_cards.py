"""The flow builder's card form in Chromium against a real appliance: a message's carousel
built entirely through the form (cards added, filled, reordered and removed; buttons of each
kind; a card button connected to a step by dragging on the canvas), saved, and the stored
document read back through the API; a document over the card limits shows each problem on the
field it concerns, from the form and from the API's invalid_flow paths; an HTTP request step's
headers and saved fields edited as rows, not JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.browser.conftest import Browsers, WebApp
from tests.e2e.browser.test_flows import connect, create_flow, node, open_builder

STEPS = {
    "offer": {"type": "message", "text": "Which one would you like?"},
    "sizes": {"type": "message", "text": "We have S, M and L."},
    "human": {"type": "handoff", "text": "Connecting you with our team."},
}
LAYOUT = {"offer": {"x": 40, "y": 40}, "sizes": {"x": 420, "y": 40}, "human": {"x": 420, "y": 320}}


def test_a_carousel_is_built_in_the_form_and_a_card_button_connected_on_the_canvas(
    browsers: Browsers, web_app: WebApp
) -> None:
    flow_id = create_flow(web_app, "Carousel", "carousel", STEPS, start="offer", layout=LAYOUT)
    page = browsers.signed_in("admin", viewport={"width": 1600, "height": 1000})
    open_builder(page, flow_id)
    node(page, "offer").locator(".fnode-head").click()
    for _ in range(3):
        page.get_by_role("button", name="Add card", exact=True).click()
    page.get_by_label("Card 1 title").fill("Red shirt")
    page.get_by_label("Card 1 subtitle").fill("Cotton, 20 EUR")
    page.get_by_label("Card 1 image URL").fill("https://shop.example.com/red.jpg")
    page.get_by_role("button", name="Add a button to card 1").click()
    page.get_by_label("Card 1 button 1 title").fill("Sizes")
    page.get_by_role("button", name="Add a button to card 1").click()
    page.get_by_label("Card 1 button 2 title").fill("See it online")
    page.get_by_label("Card 1 button 2 type").select_option("url")
    page.get_by_label("Card 1 button 2 link URL").fill("https://shop.example.com/red")
    page.get_by_label("Card 2 title").fill("Blue shirt")
    for _ in range(3):
        page.get_by_role("button", name="Add a button to card 2").click()
    expect(page.get_by_role("button", name="Add a button to card 2")).to_have_count(0)  # 3 per card
    expect(page.get_by_role("group", name="Card 2", exact=True)).to_contain_text("3 buttons is the most a card holds.")
    page.get_by_role("button", name="Remove button 3 of card 2").click()
    page.get_by_role("button", name="Remove button 2 of card 2").click()
    page.get_by_label("Card 2 button 1 title").fill("Talk to us")
    page.get_by_label("Card 2 button 1 goes to").select_option("human")
    expect(page.get_by_label("Card 1 title")).to_have_attribute("maxlength", "80")
    expect(page.get_by_label("Card 1 button 1 title")).to_have_attribute("maxlength", "20")
    page.get_by_role("button", name="Remove card 3").click()
    page.get_by_role("button", name="Move card 2 up").click()  # Blue first now
    expect(page.get_by_label("Card 1 title")).to_have_value("Blue shirt")
    expect(node(page, "offer")).to_contain_text("2 cards: Blue shirt · Red shirt")
    expect(page.locator('[data-edge="offer:human"]')).to_have_count(1)

    # Red's "Sizes" button (card 2 now) is a port on the node: drag it to the step.
    connect(page, "offer", "cards.1.buttons.0", "sizes")
    expect(page.locator('[data-edge="offer:sizes"]')).to_have_attribute("data-port", "cards.1.buttons.0")
    page.get_by_role("button", name="Undo", exact=True).click()  # undo and redo redraw just that step
    expect(page.locator('[data-edge="offer:sizes"]')).to_have_count(0)
    page.get_by_role("button", name="Redo", exact=True).click()
    expect(page.locator('[data-edge="offer:sizes"]')).to_have_attribute("data-port", "cards.1.buttons.0")
    node(page, "offer").locator(".fnode-head").click()
    expect(page.get_by_label("Card 2 button 1 goes to")).to_have_value("sizes")
    expect(node(page, "offer")).to_contain_text("Red shirt: See it online ↗")
    web_app.shot(page, "flow-cards-form")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#flow-status")).to_have_text("Draft")
    stored = web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()["document"]
    assert stored["steps"]["offer"] == {
        "type": "message", "text": "Which one would you like?",
        "cards": [
            {"title": "Blue shirt", "buttons": [{"title": "Talk to us", "next": "human"}]},
            {"title": "Red shirt", "subtitle": "Cotton, 20 EUR", "image_url": "https://shop.example.com/red.jpg",
             "buttons": [{"title": "Sizes", "next": "sizes"},
                         {"title": "See it online", "url": "https://shop.example.com/red"}]},
        ],
    }
    assert stored["steps"]["sizes"] == STEPS["sizes"]


def test_card_limits_show_on_the_fields_they_concern(browsers: Browsers, web_app: WebApp, tmp_path: Path) -> None:
    flow_id = create_flow(web_app, "Too many cards", "toomanycards", STEPS, start="offer", layout=LAYOUT)
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    cards = [{"title": f"Card number {i}", "buttons": [{"title": "Sizes", "next": "sizes"}]} for i in range(11)]
    cards[0]["title"] = "x" * 81
    document = {"schema": "aat.flow/v1", "name": "Too many cards", "start": "offer", "layout": LAYOUT,
                "triggers": [{"type": "keyword", "keywords": ["toomanycards"]}],
                "steps": {**STEPS, "offer": {"type": "message", "text": "Pick", "cards": cards}}}
    upload = tmp_path / "cards.json"
    upload.write_text(json.dumps(document), encoding="utf-8")
    page.get_by_label("Import a flow document").set_input_files(str(upload))
    node(page, "offer").locator(".fnode-head").click()
    cards_field = page.locator('.cards-field[data-path="cards"]')
    expect(cards_field.locator(":scope > .field-error")).to_have_text("At most 10 cards: remove 1.")
    expect(page.get_by_role("button", name="Add card", exact=True)).to_have_count(0)
    title = page.locator('[data-path="cards.0.title"]')
    expect(title.locator(".field-error")).to_have_text("At most 80 characters (81 now).")

    page.get_by_role("button", name="Save", exact=True).click()  # the API refuses it, by path
    expect(page.locator("#error-summary")).to_contain_text("steps.offer.cards")
    expect(node(page, "offer")).to_have_class(re.compile(r"\bhas-error\b"))
    expect(cards_field.locator(":scope > .field-error")).to_contain_text("List should have at most 10 items")
    web_app.shot(page, "flow-cards-limit")
    page.get_by_role("button", name="Remove card 11").click()
    expect(page.get_by_role("button", name="Add card", exact=True)).to_have_count(0)  # 10 is the limit
    page.get_by_role("button", name="Save", exact=True).click()  # the next problem, on its field
    expect(page.locator("#error-summary")).to_contain_text("steps.offer.cards.0.title")
    expect(title.locator(".field-error")).to_contain_text("String should have at most 80 characters")
    expect(title).to_have_class(re.compile(r"\binvalid\b"))
    page.get_by_label("Card 1 title").fill("A shorter title")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#flow-status")).to_have_text("Draft")
    stored = web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()["document"]["steps"]["offer"]["cards"]
    assert [c["title"] for c in stored] == ["A shorter title"] + [f"Card number {i}" for i in range(1, 10)]


def test_an_http_request_step_edits_headers_and_saved_fields_as_rows(browsers: Browsers, web_app: WebApp) -> None:
    flow_id = create_flow(web_app, "Order lookup", "orderlookup", {
        "lookup": {"type": "http_request", "method": "POST", "url": "https://api.example.com/orders",
                   "headers": {"Authorization": "Bearer abc"}, "body": {"id": "{{contact.fields.order}}"}},
    }, start="lookup")
    page = browsers.signed_in("admin")
    open_builder(page, flow_id)
    node(page, "lookup").locator(".fnode-head").click()
    expect(page.locator(".step-form .field-json")).to_have_count(1)  # only the body, which is JSON itself
    expect(page.get_by_label("Header 1 name")).to_have_value("Authorization")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 2 name").fill("X-Shop")
    page.get_by_label("Header 2 value").fill("casa-lima")
    page.get_by_role("button", name="Add saved field").click()
    page.get_by_label("Saved field 1 contact field").fill("order_status")
    page.get_by_label("Saved field 1 from the answer at (json path)").fill("$.status")
    expect(page.get_by_label("Send the body as")).to_have_value("json")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#flow-status")).to_have_text("Draft")
    step = web_app.appliance.api.get(f"/api/v1/flows/{flow_id}").json()["document"]["steps"]["lookup"]
    assert step["headers"] == {"Authorization": "Bearer abc", "X-Shop": "casa-lima"}
    assert step["save"] == {"order_status": "$.status"}
    assert step["body"] == {"id": "{{contact.fields.order}}"}
