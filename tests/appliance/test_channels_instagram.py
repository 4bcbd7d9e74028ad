"""Instagram: messaging and comments in ``object: instagram`` deliveries, rendering, sending."""

from __future__ import annotations

import httpx
import pytest

from appliance.channels import instagram
from appliance.channels.events import (
    Attachment,
    ContactRef,
    Echo,
    InboundMessage,
    MessageRevoked,
    ParsedWebhook,
    ParseProblem,
    StatusUpdate,
)
from appliance.channels.outbound import (
    Button,
    Card,
    ChannelAccount,
    GraphError,
    Media,
    Outbound,
    Recipient,
    RenderError,
    Template,
)
from tests.appliance.channel_helpers import (
    send_once,
    only_event,
    IG_ID,
    IGSID,
    T_MS,
    T_S,
    TOKEN,
    at_ms,
    at_s,
    delivery,
    load_fixture,
    messaging_entry,
    messaging_event,
)

USER = ContactRef(IGSID)


def parse(payload) -> ParsedWebhook:
    return instagram.ADAPTER.parse_webhook(payload)


def parse_events(*events, key="messaging"):
    return parse(delivery("instagram", messaging_entry(IG_ID, list(events), key=key)))


def ig_event(**variant):
    return messaging_event(sender=IGSID, recipient=IG_ID, **variant)


def inbound(**fields) -> InboundMessage:
    defaults = dict(channel="instagram", asset_id=IG_ID, contact=USER, occurred_at=at_ms(T_MS))
    return InboundMessage(**{**defaults, **fields})


# --- the fixtures -----------------------------------------------------------------------------


def test_fixture_text():
    assert only_event(parse(load_fixture("instagram_text"))) == inbound(
        kind="text", dedupe_key="instagram:mid:aWdfZAG1fake01", external_id="aWdfZAG1fake01",
        text="Do you ship to Tbilisi?",
    )


def test_fixture_story_reply():
    assert only_event(parse(load_fixture("instagram_story_reply"))) == inbound(
        kind="story_reply", dedupe_key="instagram:mid:aWdfZAG1fake02",
        external_id="aWdfZAG1fake02", text="Where is this from?",
        payload={"story_id": "18023456789012345",
                 "story_url": "https://lookaside.example/story.jpg"},
    )


def test_fixture_story_mention_opens_the_window():
    event = only_event(parse(load_fixture("instagram_story_mention")))
    assert event == inbound(
        contact=ContactRef("6120001112223335"), kind="story_mention",
        dedupe_key="instagram:mid:aWdfZAG1fake03", external_id="aWdfZAG1fake03",
        attachments=(Attachment("story_mention", url="https://lookaside.example/mention.jpg"),),
    )
    assert event.opens_window


def test_fixture_comment():
    assert only_event(parse(load_fixture("instagram_comment"))) == InboundMessage(
        channel="instagram", asset_id=IG_ID,
        contact=ContactRef("6120001112223336", username="nika.design"), kind="comment",
        occurred_at=at_s(T_S), dedupe_key="instagram:comment:17865432109876543",
        external_id="17865432109876543", text="price?",
        payload={"comment_id": "17865432109876543", "media_id": "17912345678901234",
                 "media_product_type": "FEED", "live": False},
        opens_window=False,
    )


# --- messaging --------------------------------------------------------------------------------


def test_unsend_revokes_the_message():
    assert only_event(parse_events(ig_event(message={"mid": "m_1", "is_deleted": True}))) == \
        MessageRevoked(channel="instagram", asset_id=IG_ID, contact_external_id=IGSID,
                       external_id="m_1", occurred_at=at_ms(T_MS),
                       dedupe_key="instagram:deleted:m_1")


def test_seen_names_the_message():
    assert only_event(parse_events(ig_event(read={"mid": "m_OUT1"}))) == StatusUpdate(
        channel="instagram", asset_id=IG_ID, contact_external_id=IGSID, status="read",
        occurred_at=at_ms(T_MS), dedupe_key="instagram:read:m_OUT1", external_ids=("m_OUT1",),
    )


def test_quick_reply_and_reply_to():
    event = only_event(parse_events(ig_event(message={
        "mid": "m_2", "text": "Yes", "quick_reply": {"payload": "YES"}, "reply_to": {"mid": "m_1"},
    })))
    assert (event.kind, event.payload, event.reply_to) == ("quick_reply", {"payload": "YES"}, "m_1")


@pytest.mark.parametrize("att_type", ["share", "ig_reel", "reel"])
def test_shares_and_reels_are_unsupported_but_kept(att_type):
    event = only_event(parse_events(ig_event(message={
        "mid": "m_3", "attachments": [{"type": att_type, "payload": {"url": "https://cdn/x"}}],
    })))
    assert event.kind == "unsupported"
    assert event.attachments == (Attachment(att_type, url="https://cdn/x"),)


def test_is_unsupported():
    assert only_event(parse_events(ig_event(message={"mid": "m_4", "is_unsupported": True}))) \
        .kind == "unsupported"


def test_reaction_and_unreaction():
    result = parse_events(
        ig_event(reaction={"mid": "m_OUT", "action": "react", "reaction": "love", "emoji": "❤"}),
        ig_event(timestamp=T_MS + 1, reaction={"mid": "m_OUT", "action": "unreact"}),
    )
    assert [(e.kind, e.payload["action"], e.opens_window) for e in result.events] == [
        ("reaction", "react", False), ("reaction", "unreact", False)]
    assert result.events[0].dedupe_key != result.events[1].dedupe_key


def test_postback_from_an_icebreaker():
    event = only_event(parse_events(ig_event(postback={"mid": "m_5", "title": "Prices",
                                                       "payload": "PRICES"})))
    assert (event.kind, event.text, event.dedupe_key) == ("postback", "Prices",
                                                          "instagram:postback:m_5")


def test_echo_from_the_ig_app():
    event = only_event(parse_events(messaging_event(
        sender=IG_ID, recipient=IGSID, message={"mid": "m_6", "text": "sent by hand",
                                                "is_echo": True}
    )))
    assert event == Echo(channel="instagram", asset_id=IG_ID, contact=USER,
                         occurred_at=at_ms(T_MS), dedupe_key="instagram:echo:m_6",
                         external_id="m_6", text="sent by hand")


def test_message_edit_is_ignored_and_standby_is_marked():
    result = parse_events(
        ig_event(message_edit={"mid": "m_1", "text": "new", "num_edit": 1}),
        ig_event(message={"mid": "m_7", "text": "while another app owns the thread"}),
        key="standby",
    )
    assert result.ignored == 1
    assert [e.standby for e in result.events] == [True]


def test_iso_string_timestamps():
    payload = delivery("instagram", messaging_entry(
        IG_ID, [ig_event(timestamp=None, message={"mid": "m_8", "text": "x"})],
        time=at_s(T_S).strftime("%Y-%m-%dT%H:%M:%S+0000")))
    assert only_event(parse(payload)).occurred_at == at_s(T_S)


# --- comments ---------------------------------------------------------------------------------


def changes(*items, time=T_S):
    return parse(delivery("instagram", {"id": IG_ID, "time": time, "changes": list(items)}))


COMMENT = {"id": "c_1", "text": "price?", "from": {"id": IGSID, "username": "jane"},
           "media": {"id": "m_9", "media_product_type": "REELS"}}


def test_reply_on_an_ad_and_live_comment():
    result = changes(
        {"field": "comments", "value": {**COMMENT, "parent_id": "c_0",
                                        "media": {**COMMENT["media"], "ad_id": "ad_1",
                                                  "ad_title": "Sale"}}},
        {"field": "live_comments", "value": {**COMMENT, "id": "c_2",
                                             "media": {"id": "m_live",
                                                       "media_product_type": "LIVE"}}},
    )
    assert result.problems == []
    assert [e.payload for e in result.events] == [
        {"comment_id": "c_1", "media_id": "m_9", "media_product_type": "REELS",
         "parent_id": "c_0", "live": False, "ad_id": "ad_1"},
        {"comment_id": "c_2", "media_id": "m_live", "media_product_type": "LIVE",
         "live": True},
    ]
    assert [e.dedupe_key for e in result.events] == ["instagram:comment:c_1",
                                                     "instagram:comment:c_2"]


def test_own_comments_and_other_fields_are_ignored():
    result = changes(
        {"field": "comments", "value": {**COMMENT, "from": {"id": IG_ID, "username": "shop"}}},
        {"field": "mentions", "value": {"media_id": "1"}},
        {"field": "story_insights", "value": {"reach": 1}},
    )
    assert result == ParsedWebhook(ignored=3)


def test_malformed_comments_are_problems_and_the_rest_parses():
    result = changes(
        {"field": "comments", "value": {**COMMENT, "from": {"username": "jane"}}},
        {"field": "comments", "value": {**COMMENT, "id": None}},
        {"field": "comments", "value": COMMENT},
        "junk",
        time=None,
    )
    assert result.events == []
    assert result.problems == [
        ParseProblem("entry[0].changes[0].value.from", "comment without from id"),
        ParseProblem("entry[0].changes[1].value", "comment without id"),
        ParseProblem("entry[0].changes[2].value", "missing or unreadable timestamp"),
        ParseProblem("entry[0].changes[3]", "the change is not an object"),
    ]


def test_messaging_and_comments_in_one_batch():
    payload = delivery(
        "instagram",
        messaging_entry(IG_ID, [ig_event(message={"mid": "m_1", "text": "äöå Тбилиси 🎉"}),
                                ig_event(read={"mid": "m_OUT"})]),
        {"id": IG_ID, "time": T_S, "changes": [{"field": "comments", "value": COMMENT}]},
        messaging_entry("17841400000000001", [messaging_event(
            sender="999", recipient="17841400000000001", message={"mid": "m_2", "text": "b"})]),
    )
    result = parse(payload)
    assert result.problems == [] and result.ignored == 0
    assert [(type(e).__name__, e.asset_id) for e in result.events] == [
        ("InboundMessage", IG_ID), ("StatusUpdate", IG_ID), ("InboundMessage", IG_ID),
        ("InboundMessage", "17841400000000001")]
    assert result.events[0].text == "äöå Тбилиси 🎉"


# --- render ---------------------------------------------------------------------------------

TO = Recipient(external_id=IGSID)
R = {"recipient": {"id": IGSID}, "messaging_type": "RESPONSE"}


@pytest.mark.parametrize(
    ("outbound", "bodies"),
    [
        pytest.param(Outbound(TO, text="Hi", metadata="msg-1"),
                     [{**R, "message": {"text": "Hi", "metadata": "msg-1"}}], id="text"),
        pytest.param(
            Outbound(TO, text="Pick", buttons=(Button("A", payload="A"), Button("B", payload="B")),
                     quick_replies=(Button("C", payload="C"),)),
            [{**R, "message": {"text": "Pick", "quick_replies": [
                {"content_type": "text", "title": t, "payload": t} for t in "ABC"]}}],
            id="reply-buttons-become-quick-replies"),
        pytest.param(
            Outbound(TO, text="Our site", buttons=(Button("Open", url="https://x.test"),
                                                   Button("More", payload="MORE"))),
            [{**R, "message": {"attachment": {"type": "template", "payload": {
                "template_type": "generic", "elements": [{"title": "Our site", "buttons": [
                    {"type": "web_url", "url": "https://x.test", "title": "Open"},
                    {"type": "postback", "title": "More", "payload": "MORE"}]}]}}}}],
            id="link-buttons-become-a-card"),
        pytest.param(
            Outbound(TO, text="See", media=Media("image", "https://x.test/a.jpg")),
            [{**R, "message": {"attachment": {"type": "image",
                                              "payload": {"url": "https://x.test/a.jpg"}}}},
             {**R, "message": {"text": "See"}}], id="media-then-text"),
        pytest.param(
            Outbound(TO, cards=(Card("Pro", url="https://x.test/pro"),),
                     quick_replies=(Button("Later", payload="LATER"),)),
            [{**R, "message": {
                "attachment": {"type": "template", "payload": {"template_type": "generic",
                    "elements": [{"title": "Pro", "default_action": {
                        "type": "web_url", "url": "https://x.test/pro"}}]}},
                "quick_replies": [{"content_type": "text", "title": "Later",
                                   "payload": "LATER"}]}}], id="cards"),
        pytest.param(
            Outbound(TO, text="Agent", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT"),
            [{"recipient": {"id": IGSID}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
              "message": {"text": "Agent"}}], id="human-agent"),
        pytest.param(
            Outbound(Recipient(comment_id="c_1"), text="Sent you the details"),
            [{"recipient": {"comment_id": "c_1"}, "messaging_type": "RESPONSE",
              "message": {"text": "Sent you the details"}}], id="private-reply"),
    ],
)
def test_render(outbound, bodies):
    assert instagram.ADAPTER.render(outbound) == bodies


@pytest.mark.parametrize(
    ("ok", "too_long"),
    [
        pytest.param(Outbound(TO, text="x" * 1000), Outbound(TO, text="x" * 1001), id="text"),
        pytest.param(Outbound(TO, text="x" * 80, buttons=(Button("a", url="https://x"),)),
                     Outbound(TO, text="x" * 81, buttons=(Button("a", url="https://x"),)),
                     id="text-as-card-title"),
        pytest.param(Outbound(TO, text="t", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(13))),
                     Outbound(TO, text="t", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(14))),
                     id="quick-reply-count"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("u", url="https://x"),) + tuple(
                         Button(str(i), payload=str(i)) for i in range(2))),
                     Outbound(TO, text="t", buttons=(Button("u", url="https://x"),) + tuple(
                         Button(str(i), payload=str(i)) for i in range(3))),
                     id="card-button-count"),
        pytest.param(Outbound(TO, text="t", quick_replies=(Button("x" * 20, payload="p"),)),
                     Outbound(TO, text="t", quick_replies=(Button("x" * 21, payload="p"),)),
                     id="quick-reply-title"),
    ],
)
def test_render_limits_pass_at_the_limit_and_fail_one_over(ok, too_long):
    assert instagram.ADAPTER.render(ok)
    with pytest.raises(RenderError):
        instagram.ADAPTER.render(too_long)


@pytest.mark.parametrize(
    "outbound",
    [
        pytest.param(Outbound(TO, media=Media("file", "https://x.test/a.pdf")), id="file"),
        pytest.param(Outbound(TO, text="t", messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE"),
                     id="messenger-only-tag"),
        pytest.param(Outbound(TO, text="t", messaging_type="MESSAGE_TAG"), id="no-tag"),
        pytest.param(Outbound(TO, template=Template("t", "en")), id="template"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("c", phone="+1555"),)), id="call"),
        pytest.param(Outbound(TO, buttons=(Button("a", url="https://x"),)), id="no-text"),
        pytest.param(Outbound(TO), id="nothing"),
    ],
)
def test_render_errors(outbound):
    with pytest.raises(RenderError):
        instagram.ADAPTER.render(outbound)


# --- send -----------------------------------------------------------------------------------

BODY = {"recipient": {"id": IGSID}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}}


async def send(account, respond):
    return await send_once(instagram.ADAPTER, account, BODY, respond)


@pytest.mark.parametrize(
    ("account", "url"),
    [
        (ChannelAccount(1, "instagram", IG_ID, TOKEN, page_id="112233445566778"),
         "https://graph.test/v25.0/112233445566778/messages"),  # Facebook Login
        (ChannelAccount(1, "instagram", IG_ID, TOKEN),
         f"https://ig.test/v25.0/{IG_ID}/messages"),  # Instagram Login
    ],
)
async def test_send_goes_through_the_page_or_the_instagram_host(account, url):
    graph, result = await send(
        account, lambda r: httpx.Response(200, json={"recipient_id": IGSID, "message_id": "m_9"})
    )
    request = graph.requests[0]
    assert str(request.url) == url
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert graph.last_json == BODY
    assert result.ok and result.external_id == "m_9"


async def test_send_reports_a_private_reply_already_used():
    _, result = await send(
        ChannelAccount(1, "instagram", IG_ID, TOKEN),
        lambda r: httpx.Response(400, json={"error": {
            "message": "Activity already replied to", "code": 10900, "type": "OAuthException",
            "fbtrace_id": "Z"}}),
    )
    assert result.error == GraphError(10900, "Activity already replied to", None, 400, "Z",
                                      "OAuthException")


async def test_send_connection_failure_is_an_error_not_an_exception():
    def respond(request):
        raise httpx.ConnectError("refused", request=request)

    _, result = await send(ChannelAccount(1, "instagram", IG_ID, TOKEN), respond)
    assert result.error == GraphError(code=None, message="connection failed")
