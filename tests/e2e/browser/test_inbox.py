"""The inbox in a real browser against a real appliance: conversations that arrived by
webhook, replies that reach the Graph API stand-in, live updates for every agent, assignment,
notes, the composer's policy, hostile content kept inert, keyboard use and phone layout."""

from __future__ import annotations

import time

from playwright.sync_api import Page, Route, expect

from tests.e2e.browser.conftest import PAGE_ID, WA_NUMBER_ID, WABA_ID, Browsers, WebApp
from tests.e2e.conftest import wait_for

XSS_TEXT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_NAME = '<svg onload="window.__xss=3">Eve'


def _open(page: Page, conversation: str) -> None:
    """Opens a conversation by clicking it in the list (no page load)."""
    page.locator(f'a.conv-item[data-conversation-id="{conversation}"]').click()
    expect(page.locator(f'.thread[data-conversation-id="{conversation}"]')).to_be_visible()


def _mark(page: Page) -> None:
    page.evaluate("window.__stay = 1")


def _not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__stay") == 1, "the page was reloaded"


def test_reply_to_a_conversation_that_arrived_by_webhook(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("Do you have a room for two on Friday?")
    conversation = web_app.conversation_of(psid)
    page = browsers.signed_in("agent")
    _mark(page)
    _open(page, conversation)
    expect(page.locator("#timeline")).to_contain_text("Do you have a room for two on Friday?")
    expect(page.locator("#composer-notice")).to_contain_text("Reply window open: 23 h")
    box = page.get_by_label("Message to Messenger contact")
    box.fill("Yes, we have a double room free.")
    page.get_by_role("button", name="Send").click()
    sent = wait_for(lambda: [r for r in web_app.sends_to(PAGE_ID) if r.json["recipient"] == {"id": psid}],
                    what="the reply at the Graph stand-in")
    assert sent[0].json["message"]["text"] == "Yes, we have a double room free."
    assert sent[0].json["messaging_type"] == "RESPONSE"
    reply = page.locator(".msg-out", has_text="Yes, we have a double room free.")
    expect(reply).to_be_visible()
    expect(reply.locator(".msg-status")).to_have_text("Sent")  # message.updated, live
    expect(box).to_have_value("")
    _not_reloaded(page)
    web_app.shot(page, "inbox-thread")


def test_new_messages_appear_without_reload_for_every_agent(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("first message")
    conversation = web_app.conversation_of(psid)
    ana = browsers.signed_in("agent")
    ben = browsers.signed_in("agent2")
    for page in (ana, ben):
        _mark(page)
    _open(ana, conversation)
    expect(ana.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(ben.locator("#live-status")).to_have_attribute("data-state", "live")
    web_app.messenger("second message, live", psid=psid)
    expect(ana.locator("#timeline")).to_contain_text("second message, live")
    item = ben.locator(f'a.conv-item[data-conversation-id="{conversation}"]')
    expect(item).to_contain_text("second message, live")  # the list, live
    newcomer = web_app.messenger("a brand new contact writes")
    expect(ben.locator("#conversation-list")).to_contain_text("a brand new contact writes")
    assert web_app.conversation_of(newcomer)
    for page in (ana, ben):
        _not_reloaded(page)


def test_assign_and_add_a_note(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("I want to change my booking")
    conversation = web_app.conversation_of(psid)
    ana = browsers.signed_in("agent")
    ben = browsers.signed_in("agent2")
    _open(ana, conversation)
    _open(ben, conversation)
    ana.get_by_label("Assignee").select_option(label="Ana (you)")
    expect(ana.locator(".toast", has_text="Assigned to Ana")).to_be_visible()
    expect(ben.get_by_label("Assignee")).to_have_value(wait_for(
        lambda: web_app.appliance.api.get(f"/api/v1/conversations/{conversation}").json()["assignee"]))
    ana.get_by_role("link", name="Mine").click()
    expect(ana.locator(f'a.conv-item[data-conversation-id="{conversation}"]')).to_be_visible()
    _open(ana, conversation)
    sends_before = len(web_app.sends_to(PAGE_ID))
    ana.get_by_label("Private note").check()
    expect(ana.get_by_role("button", name="Add note")).to_be_visible()
    ana.get_by_label("Message to Messenger contact").fill("Booking #4411, call her back after 5")
    ana.get_by_role("button", name="Add note").click()
    note = ana.locator(".note", has_text="Booking #4411")
    expect(note).to_contain_text("Private note")
    expect(ben.locator(".note", has_text="Booking #4411")).to_be_visible()  # live for the other agent
    time.sleep(0.5)
    assert len(web_app.sends_to(PAGE_ID)) == sends_before, "a note is never sent"
    ana.get_by_role("button", name="Close").click()
    expect(ben.locator("#thread-head")).to_contain_text("Closed")
    ben.get_by_role("button", name="Reopen").click()
    expect(ana.locator("#thread-head")).to_contain_text("Open")
    ana.get_by_role("button", name="Pause bot").click()
    expect(ana.get_by_role("button", name="Resume bot")).to_be_visible()


def test_hostile_content_stays_text(browsers: Browsers, web_app: WebApp) -> None:
    wa = web_app.whatsapp(XSS_TEXT, name=XSS_NAME)
    conversation = web_app.conversation_of(wa)
    contact = web_app.contact_of(wa)
    page = browsers.signed_in("agent")
    _open(page, conversation)
    expect(page.locator("#timeline .msg-text").last).to_have_text(XSS_TEXT)
    expect(page.locator(".thread-title h2")).to_have_text(XSS_NAME)
    web_app.whatsapp(XSS_TEXT + " again", name=XSS_NAME, wa_id=wa)  # rendered live too
    expect(page.locator("#timeline")).to_contain_text("again")
    page.goto(f"/contacts/{contact['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS_NAME)
    page.goto("/contacts")
    expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    assert page.evaluate("window.__xss") is None
    page.goto("/inbox")
    _open(page, conversation)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#timeline img[src='x'], #timeline script, #timeline svg[onload]").count() == 0


def test_the_composer_follows_meta_policy(browsers: Browsers, web_app: WebApp) -> None:
    thirty_hours_ago = int((time.time() - 30 * 3600) * 1000)
    psid = web_app.messenger("asked yesterday", at_ms=thirty_hours_ago)
    messenger = web_app.conversation_of(psid)
    page = browsers.signed_in("agent")
    _open(page, messenger)
    expect(page.locator("#composer-notice")).to_contain_text("HUMAN_AGENT tag")
    page.get_by_label("Message to Messenger contact").fill("Sorry for the wait!")
    page.keyboard.press("Control+Enter")
    sent = wait_for(lambda: [r for r in web_app.sends_to(PAGE_ID) if r.json["recipient"] == {"id": psid}],
                    what="the tagged reply")
    assert (sent[0].json["messaging_type"], sent[0].json["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    expect(page.locator(".msg-out .msg-status").last).to_contain_text("HUMAN_AGENT tag")

    web_app.graph.templates[WABA_ID] = [{
        "id": "tpl-1", "name": "booking_reminder", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello {{1}}, your room is ready on {{2}}."}]}]
    assert web_app.appliance.api.post("/api/v1/templates/sync").status_code == 200
    wa = web_app.whatsapp("old question", name="Nino", at_s=int(time.time() - 30 * 3600))
    whatsapp = web_app.conversation_of(wa)
    _open(page, whatsapp)
    expect(page.locator("#composer-notice")).to_contain_text("only an approved template")
    expect(page.get_by_label("Message to Nino")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.get_by_label("WhatsApp template").select_option(label="booking_reminder (en_US)")
    page.get_by_label("Body value {{1}}").fill("Nino")
    page.get_by_label("Body value {{2}}").fill("Friday")
    expect(page.locator("#template-preview")).to_have_text("Hello Nino, your room is ready on Friday.")
    page.get_by_role("button", name="Send").click()
    template = wait_for(lambda: [r for r in web_app.sends_to(WA_NUMBER_ID) if r.json.get("to") == wa],
                        what="the template at the Graph stand-in")[0].json["template"]
    assert template["name"] == "booking_reminder" and template["language"] == {"code": "en_US"}
    assert template["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "Nino"}, {"type": "text", "text": "Friday"}]}]

    week_ago = int((time.time() - 8 * 24 * 3600) * 1000)
    silent = web_app.conversation_of(web_app.messenger("long ago", at_ms=week_ago))
    _open(page, silent)
    expect(page.locator("#composer-notice")).to_contain_text("has not written in the last 7 days")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.get_by_label("Private note").check()
    expect(page.get_by_role("button", name="Add note")).to_be_enabled()


def test_keyboard_only(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("keyboard user here")
    conversation = web_app.conversation_of(psid)
    page = browsers.signed_in("agent")
    first = page.locator("a.conv-item").first
    first.focus()
    expect(first).to_have_attribute("data-conversation-id", conversation)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    expect(first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f'.thread[data-conversation-id="{conversation}"]')).to_be_visible()
    expect(page.locator(".thread-title h2")).to_be_focused()
    # A live change redraws the header (here another agent pauses the bot); the keyboard user
    # stays where they were instead of being dropped to the top of the page.
    assert web_app.appliance.api.post(f"/api/v1/conversations/{conversation}/pause-bot").status_code == 200
    expect(page.locator(".thread-head .chip-warn")).to_have_text("Bot paused")
    expect(page.locator(".thread-title h2")).to_be_focused()
    page.get_by_label("Message to Messenger contact").focus()
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Control+Enter")
    wait_for(lambda: [r for r in web_app.sends_to(PAGE_ID) if r.json["recipient"] == {"id": psid}], what="the send")
    # The contact panel is redrawn on every change to the contact, the agent's own tag included:
    # the keyboard user stays in the tag field, and a tag half typed when a change comes from
    # elsewhere is still there.
    tag_field, card = page.get_by_label("New tag"), page.locator("#contact-card")
    tag_field.focus()
    page.keyboard.type("vip")
    card.evaluate("card => { card.dataset.drawn = 'before'; }")
    page.keyboard.press("Enter")
    expect(page.locator("#contact-card[data-drawn]")).to_have_count(0)  # redrawn by the live update
    expect(page.locator("#contact-tags")).to_have_text("vip×")
    expect(tag_field).to_be_focused()
    page.keyboard.type("half typ")
    card.evaluate("card => { card.dataset.drawn = 'before'; }")
    contact_id = web_app.contact_of(psid)["id"]
    tagged = web_app.appliance.api.post(f"/api/v1/contacts/{contact_id}/tags", json={"tag": "from-a-flow"})
    assert tagged.status_code < 300
    expect(page.locator("#contact-card[data-drawn]")).to_have_count(0)
    expect(page.locator("#contact-tags")).to_contain_text("from-a-flow")
    expect(tag_field).to_be_focused()
    page.keyboard.type("ed")
    expect(tag_field).to_have_value("half typed")
    skip = page.get_by_role("link", name="Skip to content")
    page.goto("/contacts")
    page.keyboard.press("Tab")
    expect(skip).to_be_focused()


def test_a_list_redraw_keeps_focus_where_the_agent_moved_it_meanwhile(browsers: Browsers, web_app: WebApp) -> None:
    # The list is redrawn by every new message. The agent may move through it while that redraw is
    # being fetched: focus lands on the item they are on when it is drawn, not when it was asked for.
    older = web_app.conversation_of(web_app.messenger("an older conversation"))
    newer = web_app.conversation_of(web_app.messenger("a newer conversation"))
    page = browsers.signed_in("agent")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    held: list[Route] = []

    def hold(route: Route) -> None:  # the redraw's fetch waits until the agent has moved
        held.append(route)

    page.route("**/inbox/fragments/list?*", hold)
    page.locator(f'a.conv-item[data-conversation-id="{newer}"]').focus()
    web_app.messenger("somebody else writes")
    for _ in range(300):  # Playwright calls route handlers only while it is called: wait in it
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the new message did not redraw the list"
    page.keyboard.press("ArrowDown")
    moved_to = page.evaluate("document.activeElement.dataset.conversationId")
    assert moved_to != newer and older in page.locator("a.conv-item").evaluate_all(
        "items => items.map(item => item.dataset.conversationId)")
    for route in held:
        route.continue_()
    page.unroute("**/inbox/fragments/list?*")  # lets through any redraw asked for since
    expect(page.locator("#conversation-list")).to_contain_text("somebody else writes")
    expect(page.locator(f'a.conv-item[data-conversation-id="{moved_to}"]')).to_be_focused()


def test_phone_layout(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("writing from my phone")
    conversation = web_app.conversation_of(psid)
    page = browsers.signed_in("agent", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    expect(page.locator(".conv-pane")).to_be_visible()
    expect(page.locator(".thread-pane")).to_be_hidden()
    web_app.shot(page, "phone-inbox")
    page.locator(f'a.conv-item[data-conversation-id="{conversation}"]').click()
    expect(page.locator(".thread-pane")).to_be_visible()
    expect(page.locator(".conv-pane")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling"
    web_app.shot(page, "phone-thread")
    page.get_by_role("link", name="Back to conversations").click()
    expect(page.locator(".conv-pane")).to_be_visible()
