"""What the thread shows for messages that arrived by webhook beyond plain text: a story reply
with the story, a comment with its post, delivery and read receipts and a failed send with its
reason (all live); the views' unread counts and the channel filter."""

from __future__ import annotations

import itertools
import re
import time

from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import IG_ID, PAGE_ID, Browsers, WebApp
from tests.e2e.conftest import wait_for
from tests.standins.graph_api import GraphStandIn

_ids = itertools.count(1)
STORY_URL = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1801&signature=story"


def _open(page: Page, conversation: str) -> None:
    page.locator(f'a.conv-item[data-conversation-id="{conversation}"]').click()
    expect(page.locator(f'.thread[data-conversation-id="{conversation}"]')).to_be_visible()


def _instagram(web_app: WebApp, sender: str, message: dict[str, object]) -> None:
    at = int(time.time() * 1000)
    web_app.webhook({"object": "instagram", "entry": [{"id": IG_ID, "time": at, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": IG_ID}, "timestamp": at, "message": message}]}]})


def test_a_story_reply_shows_the_story_and_a_comment_its_post(browsers: Browsers, web_app: WebApp) -> None:
    fan = f"61200900{next(_ids):08d}"
    _instagram(web_app, fan, {"mid": f"aWdfstory{next(_ids)}", "text": "Where is this from?",
                              "reply_to": {"story": {"id": "18023456789012345", "url": STORY_URL}}})
    commenter = f"61200800{next(_ids):08d}"
    web_app.webhook({"object": "instagram", "entry": [{"id": IG_ID, "time": int(time.time()), "changes": [{
        "field": "comments", "value": {"id": f"1786543210987{next(_ids):04d}", "text": "price of the blue one?",
                                       "from": {"id": commenter, "username": "nika.design"},
                                       "media": {"id": "17912345678901234", "media_product_type": "FEED"}}}]}]})
    page = browsers.signed_in("agent")
    _open(page, web_app.conversation_of(fan))
    story = page.locator(".msg", has_text="Where is this from?")
    expect(story.locator(".msg-context")).to_contain_text("Replied to your story")
    expect(story.locator("img.msg-story")).to_have_attribute("src", STORY_URL)
    expect(story.get_by_role("link", name="Open the story")).to_have_attribute("href", STORY_URL)
    web_app.shot(page, "inbox-story-reply")
    _open(page, web_app.conversation_of(commenter))
    comment = page.locator(".msg", has_text="price of the blue one?")
    expect(comment.locator(".msg-context")).to_contain_text("Commented on your post")
    expect(comment.locator(".msg-context")).to_contain_text("Post 17912345678901234")


def test_receipts_and_a_failed_send_update_live(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("can you confirm by message?")
    conversation = web_app.conversation_of(psid)
    page = browsers.signed_in("agent")
    _open(page, conversation)
    box = page.get_by_label("Message to Messenger contact")
    box.fill("Confirmed for Friday.")
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".msg-out", has_text="Confirmed for Friday.")
    expect(reply.locator(".msg-status")).to_have_text("Sent")
    for field in ("delivery", "read"):
        at = int(time.time() * 1000) + 1000
        event = {"watermark": at} if field == "read" else {"watermark": at, "mids": []}
        web_app.webhook({"object": "page", "entry": [{"id": PAGE_ID, "time": at, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": at, field: event}]}]})
        expect(reply.locator(".msg-status")).to_have_text("Delivered" if field == "delivery" else "Read")

    web_app.graph.fail_next(PAGE_ID, GraphStandIn.graph_error(
        100, subcode=2018001, message="No matching user found"))
    box.fill("Are you still there?")
    page.get_by_role("button", name="Send").click()
    failed = page.locator(".msg-out", has_text="Are you still there?")
    expect(failed).to_have_class(re.compile(r"\bmsg-failed\b"))
    expect(failed.locator(".msg-error")).to_contain_text("Not delivered:")
    expect(failed.locator(".msg-error")).to_contain_text("(Meta code 100)")
    web_app.shot(page, "inbox-receipts-and-failure")


def _count(page: Page, view: str) -> int:
    return int(page.locator(f'.views [data-count="{view}"]').inner_text())


def test_unread_counts_and_the_channel_filter(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.signed_in("agent2")
    page.evaluate("window.__stay = 1")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    before = _count(page, "unassigned")
    psid = web_app.messenger("unread one")
    web_app.messenger("unread two", psid=psid)
    conversation = web_app.conversation_of(psid)
    item = page.locator(f'a.conv-item[data-conversation-id="{conversation}"]')
    expect(item).to_have_class(re.compile(r"\bunread\b"))
    expect(item.locator(".badge")).to_have_text("2")
    expect(page.locator('.views [data-count="unassigned"]')).to_have_text(str(before + 1))
    item.click()
    expect(page.locator(f'.thread[data-conversation-id="{conversation}"]')).to_be_visible()
    expect(item).not_to_have_class(re.compile(r"\bunread\b"))
    wait_for(lambda: web_app.appliance.api.get(f"/api/v1/conversations/{conversation}").json()["unread_count"] == 0,
             what="the conversation marked read")
    assert page.evaluate("window.__stay") == 1, "no reload"

    wa = web_app.whatsapp("filter me", name="Filter Person")
    page.goto("/inbox")
    page.get_by_label("Channel").select_option("whatsapp")
    expect(page).to_have_url(f"{web_app.url}/inbox?view=open&channel=whatsapp")
    expect(page.locator(f'a.conv-item[data-conversation-id="{web_app.conversation_of(wa)}"]')).to_be_visible()
    expect(page.locator("a.conv-item .chip.ch-messenger")).to_have_count(0)
    expect(page.locator("a.conv-item .chip.ch-whatsapp").first).to_be_visible()
