"""Messenger: parsing ``object: page`` deliveries, rendering Send-API bodies, sending."""

from __future__ import annotations

import httpx
import pytest

from appliance.channels import messenger
from appliance.channels.events import (
    Attachment,
    ContactRef,
    Echo,
    InboundMessage,
    MessageRevoked,
    ParsedWebhook,
    ParseProblem,
    PreferenceChange,
    StatusUpdate,
)
from appliance.channels.graph import digest
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
    PAGE_ID,
    PSID,
    T_MS,
    T_S,
    TOKEN,
    MockGraph,
    at_ms,
    at_s,
    delivery,
    load_fixture,
    messaging_entry,
    messaging_event,
    make_settings,
)

USER = ContactRef(PSID)


def parse(payload) -> ParsedWebhook:
    return messenger.ADAPTER.parse_webhook(payload)


def parse_events(*events, key="messaging", time=T_MS):
    return parse(delivery("page", messaging_entry(PAGE_ID, list(events), time=time, key=key)))


def only_event(result: ParsedWebhook):
    assert result.problems == [] and result.ignored == 0
    assert len(result.events) == 1
    return result.events[0]


def inbound(**fields) -> InboundMessage:
    defaults = dict(channel="messenger", asset_id=PAGE_ID, contact=USER, occurred_at=at_ms(T_MS))
    return InboundMessage(**{**defaults, **fields})


# --- the fixtures -----------------------------------------------------------------------------


def test_fixture_text():
    assert only_event(parse(load_fixture("messenger_text"))) == inbound(
        kind="text", dedupe_key="messenger:mid:m_Ab12Cd34", external_id="m_Ab12Cd34",
        text="Hello, are you open on Sunday?",
    )


def test_fixture_quick_reply():
    assert only_event(parse(load_fixture("messenger_quick_reply"))) == inbound(
        kind="quick_reply", dedupe_key="messenger:mid:m_QR001", external_id="m_QR001",
        text="Large", payload={"payload": "SIZE_LARGE"},
    )


def test_fixture_postback_opens_the_window():
    event = only_event(parse(load_fixture("messenger_postback")))
    assert event == inbound(
        kind="postback", dedupe_key="messenger:postback:m_PB001", external_id="m_PB001",
        text="Get Started", payload={"payload": "GET_STARTED", "title": "Get Started"},
    )
    assert event.opens_window


def test_fixture_referral():
    payload = {"ref": "summer-sale", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    sender = "2460001112223335"
    assert only_event(parse(load_fixture("messenger_referral"))) == inbound(
        contact=ContactRef(sender), kind="referral", payload=payload,
        dedupe_key=f"messenger:referral:{sender}:{T_MS}:{digest(payload)}",
    )


def test_fixture_echo_is_recorded_as_the_business_speaking_to_the_user():
    assert only_event(parse(load_fixture("messenger_echo"))) == Echo(
        channel="messenger", asset_id=PAGE_ID, contact=USER, occurred_at=at_ms(T_MS),
        dedupe_key="messenger:echo:m_ECHO01", external_id="m_ECHO01", kind="text",
        text="We open at 10.", app_id="123456789", metadata=None,
    )


def test_fixture_delivery_and_read_both_entries():
    result = parse(load_fixture("messenger_delivery_read"))
    assert result.problems == [] and result.ignored == 0
    assert result.events == [
        StatusUpdate(
            channel="messenger", asset_id=PAGE_ID, contact_external_id=PSID,
            status="delivered", occurred_at=at_ms(T_MS),
            dedupe_key=f"messenger:delivered:{PSID}:1764180000000",
            external_ids=("m_OUT001",), watermark=at_ms(1764180000000),
        ),
        StatusUpdate(
            channel="messenger", asset_id=PAGE_ID, contact_external_id=PSID, status="read",
            occurred_at=at_ms(T_MS), dedupe_key=f"messenger:read:{PSID}:1764180005000",
            watermark=at_ms(1764180005000),
        ),
    ]


def test_fixture_page_feed_comment():
    event = only_event(parse(load_fixture("page_feed_comment")))
    assert event == InboundMessage(
        channel="messenger", asset_id=PAGE_ID,
        contact=ContactRef("8700001112223334", name="Ana Lima"), kind="comment",
        occurred_at=at_s(T_S), dedupe_key="messenger:comment:1001_9001:add",
        external_id="1001_9001", text="How much is shipping?",
        payload={"comment_id": "1001_9001", "post_id": "112233445566778_1001",
                 "parent_id": "112233445566778_1001", "verb": "add"},
        opens_window=False,
    )


# --- messaging variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attachment", "kind", "expected"),
    [
        ({"type": "image", "payload": {"url": "https://cdn/i.jpg"}}, "image",
         Attachment("image", url="https://cdn/i.jpg")),
        ({"type": "video", "payload": {"url": "https://cdn/v.mp4"}}, "video",
         Attachment("video", url="https://cdn/v.mp4")),
        ({"type": "audio", "payload": {"url": "https://cdn/a.mp4"}}, "audio",
         Attachment("audio", url="https://cdn/a.mp4")),
        ({"type": "file", "payload": {"url": "https://cdn/f.pdf"}}, "file",
         Attachment("file", url="https://cdn/f.pdf")),
        ({"type": "image", "payload": {"url": "https://cdn/s.png", "sticker_id": 369239263222822}},
         "sticker", Attachment("sticker", url="https://cdn/s.png",
                               extra={"sticker_id": 369239263222822})),
        ({"type": "location", "title": "Pin",
          "payload": {"coordinates": {"lat": 41.7, "long": 44.8}}}, "location",
         Attachment("location",
                    extra={"title": "Pin", "coordinates": {"lat": 41.7, "long": 44.8}})),
        ({"type": "fallback", "url": "https://example.com", "title": "Link", "payload": None},
         "unsupported", Attachment("fallback", url="https://example.com", extra={"title": "Link"})),
        ({"type": "template", "payload": {"template_type": "generic"}}, "unsupported",
         Attachment("template")),
    ],
)
def test_attachment_kinds(attachment, kind, expected):
    event = only_event(parse_events(messaging_event(
        message={"mid": "m_1", "attachments": [attachment, {"type": "image", "payload": {}}]}
    )))
    assert event.kind == kind
    assert event.attachments == (expected, Attachment("image"))
    assert event.opens_window


def test_reply_to_a_message():
    event = only_event(parse_events(messaging_event(
        message={"mid": "m_2", "text": "this one", "reply_to": {"mid": "m_1"}}
    )))
    assert (event.kind, event.reply_to) == ("text", "m_1")


def test_unsupported_message_and_message_without_content():
    result = parse_events(
        messaging_event(message={"mid": "m_1", "is_unsupported": True}),
        messaging_event(message={"mid": "m_2"}),
    )
    assert [e.kind for e in result.events] == ["unsupported", "unsupported"]


def test_ad_referral_on_a_message_is_kept():
    referral = {"ref": "x", "source": "ADS", "type": "OPEN_THREAD", "ad_id": "6045"}
    event = only_event(parse_events(messaging_event(
        message={"mid": "m_1", "text": "hi", "referral": referral}
    )))
    assert event.payload == {"referral": referral}


def test_reaction_does_not_open_the_window():
    event = only_event(parse_events(messaging_event(
        reaction={"mid": "m_OUT1", "action": "react", "reaction": "love", "emoji": "❤"}
    )))
    assert event == inbound(
        kind="reaction", external_id=None, opens_window=False,
        dedupe_key=f"messenger:reaction:{PSID}:m_OUT1:{T_MS}:react",
        payload={"target": "m_OUT1", "action": "react", "reaction": "love", "emoji": "❤"},
    )


def test_postback_without_mid_has_a_stable_content_based_dedupe_key():
    event = messaging_event(postback={"title": "Plans", "payload": "PLANS",
                                      "referral": {"ref": "r1", "source": "SHORTLINK",
                                                   "type": "OPEN_THREAD", "junk": 1}})
    first = only_event(parse_events(event))
    assert first.external_id is None
    assert first.dedupe_key == f"messenger:postback:{PSID}:{T_MS}:{digest('PLANS', 'Plans')}"
    assert first.payload == {"payload": "PLANS", "title": "Plans",
                             "referral": {"ref": "r1", "source": "SHORTLINK",
                                          "type": "OPEN_THREAD"}}
    assert only_event(parse_events(event)).dedupe_key == first.dedupe_key
    other = messaging_event(postback={"title": "Plans", "payload": "OTHER"})
    assert only_event(parse_events(other)).dedupe_key != first.dedupe_key


def test_referral_from_an_ad_keeps_its_context():
    referral = {"source": "ADS", "type": "OPEN_THREAD", "ad_id": "6045",
                "ads_context_data": {"ad_title": "Sale", "photo_url": "https://x"},
                "referer_uri": "https://m.me/x"}
    event = only_event(parse_events(messaging_event(referral=referral)))
    assert event.payload == referral and event.opens_window


def test_delivery_without_watermark_is_keyed_by_its_mids():
    event = only_event(parse_events(messaging_event(delivery={"mids": ["m_2", "m_1"]})))
    assert event.external_ids == ("m_2", "m_1") and event.watermark is None
    assert event.dedupe_key == f"messenger:delivered:{PSID}:{digest(['m_1', 'm_2'])}"


@pytest.mark.parametrize(
    ("optin", "value"),
    [
        ({"type": "notification_messages", "notification_messages_token": "t",
          "title": "Deals"}, "opt_in"),
        ({"type": "notification_messages", "notification_messages_status": "STOP_NOTIFICATIONS"},
         "stop"),
        ({"type": "notification_messages",
          "notification_messages_status": "RESUME_NOTIFICATIONS"}, "resume"),
    ],
)
def test_marketing_optin(optin, value):
    assert only_event(parse_events(messaging_event(optin=optin))) == PreferenceChange(
        channel="messenger", asset_id=PAGE_ID, contact=USER, topic="marketing", value=value,
        occurred_at=at_ms(T_MS), dedupe_key=f"messenger:optin:{PSID}:{T_MS}:{value}",
    )


@pytest.mark.parametrize(
    "variant",
    [
        {"optin": {"type": "one_time_notif_req", "payload": "x"}},
        {"pass_thread_control": {"new_owner_app_id": "1", "metadata": "x"}},
        {"take_thread_control": {"previous_owner_app_id": "1"}},
        {"request_thread_control": {"requested_owner_app_id": "1"}},
        {"policy_enforcement": {"action": "block", "reason": "x"}},
        {"message_edit": {"mid": "m_1", "text": "edited", "num_edit": 1}},
        {"app_roles": {"123": ["primary_receiver"]}},
    ],
)
def test_known_unused_variants_are_ignored(variant):
    result = parse_events(messaging_event(**variant))
    assert result == ParsedWebhook(ignored=1)


def test_standby_events_are_marked():
    result = parse_events(
        messaging_event(message={"mid": "m_S1", "text": "hello"}),
        messaging_event(postback={"mid": "m_S2", "title": "t", "payload": "p"}),
        key="standby",
    )
    assert [(e.kind, e.standby) for e in result.events] == [("text", True), ("postback", True)]


def test_echo_with_metadata_and_template_attachment():
    event = only_event(parse_events(messaging_event(
        sender=PAGE_ID, recipient=PSID,
        message={"mid": "m_E2", "is_echo": True, "app_id": "999", "metadata": "msg-42",
                 "attachments": [{"type": "template", "payload": {"template_type": "button"}}]},
    )))
    assert isinstance(event, Echo)
    assert (event.kind, event.metadata, event.app_id, event.contact) == (
        "template", "msg-42", "999", USER)
    assert event.dedupe_key == "messenger:echo:m_E2"


def test_echo_without_app_id_came_from_a_person_or_another_tool():
    event = only_event(parse_events(messaging_event(
        sender=PAGE_ID, recipient=PSID, message={"mid": "m_E3", "text": "hi", "is_echo": True},
    )))
    assert event.app_id is None


# --- timestamps ------------------------------------------------------------------------------


def test_event_without_timestamp_takes_the_entry_time():
    event = only_event(parse_events(
        messaging_event(timestamp=None, message={"mid": "m_1", "text": "x"}), time=T_MS - 5000
    ))
    assert event.occurred_at == at_ms(T_MS - 5000)


def test_iso_timestamps_are_read():
    event = only_event(parse_events(
        messaging_event(timestamp="2026-11-26T19:37:42.367+00:00",
                        message={"mid": "m_1", "text": "x"})
    ))
    assert event.occurred_at == at_ms(T_MS)


def test_no_timestamp_anywhere_is_a_problem():
    result = parse_events(messaging_event(timestamp=None, message={"mid": "m_1"}), time=None)
    assert result == ParsedWebhook(
        problems=[ParseProblem("entry[0].messaging[0]", "missing or unreadable timestamp")]
    )


# --- batches and malformed parts ---------------------------------------------------------------


def test_batch_of_entries_and_events_parses_everything_in_order():
    page2 = "998877665544332"
    payload = delivery(
        "page",
        messaging_entry(PAGE_ID, [
            messaging_event(message={"mid": "m_1", "text": "one"}),
            messaging_event(sender="2460000000000002", message={"mid": "m_2", "text": "two"}),
            messaging_event(delivery={"mids": ["m_O1"], "watermark": T_MS}),
        ]),
        messaging_entry(page2, [
            messaging_event(recipient=page2, message={"mid": "m_3", "text": "three"}),
        ]),
        {"id": PAGE_ID, "time": T_S, "changes": [
            {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "c1",
                                        "post_id": "p", "parent_id": "p", "message": "four",
                                        "from": {"id": "77"}, "created_time": T_S}},
        ]},
    )
    result = parse(payload)
    assert result.problems == [] and result.ignored == 0
    assert [(e.asset_id, e.dedupe_key) for e in result.events] == [
        (PAGE_ID, "messenger:mid:m_1"),
        (PAGE_ID, "messenger:mid:m_2"),
        (PAGE_ID, f"messenger:delivered:{PSID}:{T_MS}"),
        (page2, "messenger:mid:m_3"),
        (PAGE_ID, "messenger:comment:c1:add"),
    ]


def test_malformed_parts_become_problems_and_the_rest_still_parses():
    payload = delivery(
        "page",
        messaging_entry(PAGE_ID, [
            messaging_event(message={"mid": "m_ok1", "text": "fine"}),
            "not an event",
            {"recipient": {"id": PAGE_ID}, "timestamp": T_MS, "message": {"mid": "m_x"}},
            messaging_event(message={"text": "no mid, +995 555 123456"}),
            messaging_event(timestamp="yesterday", message={"mid": "m_y", "text": "x"}),
            messaging_event(reaction={"action": "react"}),
            messaging_event(delivery={"watermark": "soon"}),
            messaging_event(read={}),
            messaging_event(message="text"),
            messaging_event(something_new={"a": 1}),
            messaging_event(message={"mid": "m_ok2", "text": "fine too"}),
        ]),
        "not an entry",
        {"time": T_MS, "messaging": []},
        {"id": PAGE_ID, "messaging": {"not": "a list"}},
    )
    result = parse(payload)
    assert [e.external_id for e in result.events] == ["m_ok1", "m_ok2"]
    assert result.problems == [
        ParseProblem("entry[0].messaging[1]", "the event is not an object"),
        ParseProblem("entry[0].messaging[2]", "missing sender id"),
        ParseProblem("entry[0].messaging[3]", "message without mid"),
        ParseProblem("entry[0].messaging[4]", "missing or unreadable timestamp"),
        ParseProblem("entry[0].messaging[5].reaction", "reaction without mid"),
        ParseProblem("entry[0].messaging[6].delivery.watermark", "unreadable watermark"),
        ParseProblem("entry[0].messaging[7].read", "read without mid or watermark"),
        ParseProblem("entry[0].messaging[8].message", "not an object"),
        ParseProblem("entry[0].messaging[9]", "no known event in it"),
        ParseProblem("entry[1]", "the entry is not an object"),
        ParseProblem("entry[2].id", "missing entry id"),
        ParseProblem("entry[3].messaging", "not a list"),
    ]
    assert not any("995" in p.reason or "no mid," in p.reason for p in result.problems)


def test_a_bad_attachment_is_a_problem_but_the_message_is_kept():
    result = parse_events(messaging_event(message={
        "mid": "m_1", "attachments": ["junk", {"payload": {}}, {"type": "video", "payload": {}}],
    }))
    assert [e.kind for e in result.events] == ["video"]
    assert result.problems == [
        ParseProblem("entry[0].messaging[0].message.attachments[0]", "attachment without type"),
        ParseProblem("entry[0].messaging[0].message.attachments[1]", "attachment without type"),
    ]


def test_unknown_fields_are_tolerated_and_non_ascii_is_preserved():
    text = "äöå Тбилиси 🎉"
    payload = delivery("page", {
        **messaging_entry(PAGE_ID, [{
            **messaging_event(message={"mid": "m_1", "text": text, "nlp": {"entities": {}},
                                       "new_field": [1, 2]}),
            "surprise": True,
        }]),
        "hop_context": [],
    })
    payload["brand_new"] = {"x": 1}
    event = only_event(parse(payload))
    assert event.text == text


def test_the_same_event_delivered_twice_has_the_same_dedupe_key():
    payload = load_fixture("messenger_referral")
    assert parse(payload).events[0].dedupe_key == parse(payload).events[0].dedupe_key


# --- page feed ------------------------------------------------------------------------------


def feed(value, page=PAGE_ID, field="feed"):
    return parse(delivery("page", {"id": page, "time": T_S,
                                   "changes": [{"field": field, "value": value}]}))


COMMENT = {"from": {"id": "8700001112223334", "name": "Ana Lima"}, "item": "comment",
           "comment_id": "1001_9001", "post_id": "p_1", "parent_id": "p_1",
           "created_time": T_S, "message": "hi"}


@pytest.mark.parametrize("verb", ["remove", "hide"])
def test_removed_or_hidden_comment_is_revoked(verb):
    assert only_event(feed({**COMMENT, "verb": verb})) == MessageRevoked(
        channel="messenger", asset_id=PAGE_ID, contact_external_id="8700001112223334",
        external_id="1001_9001", occurred_at=at_s(T_S),
        dedupe_key=f"messenger:comment:1001_9001:{verb}",
    )


def test_reply_comment_with_permalink():
    event = only_event(feed({**COMMENT, "verb": "add", "parent_id": "1001_8000",
                             "post": {"permalink_url": "https://facebook.com/p/1"}}))
    assert event.payload == {"comment_id": "1001_9001", "post_id": "p_1",
                             "parent_id": "1001_8000", "verb": "add",
                             "permalink_url": "https://facebook.com/p/1"}


@pytest.mark.parametrize(
    "value",
    [
        {**COMMENT, "verb": "edited"},
        {**COMMENT, "verb": "add", "from": {"id": PAGE_ID, "name": "The Page"}},  # own comment
        {**COMMENT, "verb": "add", "item": "reaction"},
        {**COMMENT, "verb": "add", "item": "status"},
    ],
)
def test_unused_feed_items_are_ignored(value):
    assert feed(value) == ParsedWebhook(ignored=1)


def test_other_page_fields_are_ignored():
    assert feed({"anything": 1}, field="ratings") == ParsedWebhook(ignored=1)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({**COMMENT, "verb": "add", "from": None}, ParseProblem(
            "entry[0].changes[0].value.from", "comment without from id")),
        ({**COMMENT, "verb": "add", "comment_id": None}, ParseProblem(
            "entry[0].changes[0].value", "comment without comment_id")),
        ("nope", ParseProblem("entry[0].changes[0].value", "not an object")),
    ],
)
def test_malformed_comments_are_problems(value, problem):
    assert feed(value) == ParsedWebhook(problems=[problem])


def test_comment_without_created_time_uses_the_entry_time():
    value = {k: v for k, v in COMMENT.items() if k != "created_time"}
    assert only_event(feed({**value, "verb": "add"})).occurred_at == at_s(T_S)


# --- render ---------------------------------------------------------------------------------

TO = Recipient(external_id=PSID)
R = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE"}
QR = [Button("Red", payload="RED"), Button("Green", payload="GREEN")]
QR_JSON = [{"content_type": "text", "title": "Red", "payload": "RED"},
           {"content_type": "text", "title": "Green", "payload": "GREEN"}]


def btn_template(text, buttons):
    return {"attachment": {"type": "template", "payload": {
        "template_type": "button", "text": text, "buttons": buttons}}}


@pytest.mark.parametrize(
    ("outbound", "bodies"),
    [
        pytest.param(Outbound(TO, text="Hi"), [{**R, "message": {"text": "Hi"}}], id="text"),
        pytest.param(
            Outbound(TO, text="Pick", quick_replies=tuple(QR)),
            [{**R, "message": {"text": "Pick", "quick_replies": QR_JSON}}], id="quick-replies"),
        pytest.param(
            Outbound(TO, text="Pick", buttons=(
                Button("Plans", payload="PLANS"), Button("Site", url="https://x.test"),
                Button("Call", phone="+15550001111"))),
            [{**R, "message": btn_template("Pick", [
                {"type": "postback", "title": "Plans", "payload": "PLANS"},
                {"type": "web_url", "url": "https://x.test", "title": "Site"},
                {"type": "phone_number", "title": "Call", "payload": "+15550001111"},
            ])}], id="button-template"),
        pytest.param(
            Outbound(TO, text="Pick", buttons=tuple(
                Button(f"B{i}", payload=f"P{i}") for i in range(4)), quick_replies=(QR[0],)),
            [{**R, "message": {"text": "Pick", "quick_replies": [
                {"content_type": "text", "title": f"B{i}", "payload": f"P{i}"} for i in range(4)
            ] + [QR_JSON[0]]}}], id="four-buttons-become-quick-replies"),
        pytest.param(
            Outbound(TO, text="Look", media=Media("image", "https://x.test/a.jpg"),
                     quick_replies=tuple(QR)),
            [{**R, "message": {"attachment": {"type": "image", "payload": {
                "url": "https://x.test/a.jpg", "is_reusable": True}}}},
             {**R, "message": {"text": "Look", "quick_replies": QR_JSON}}],
            id="media-then-text"),
        pytest.param(
            Outbound(TO, media=Media("file", "https://x.test/a.pdf"), metadata="msg-7"),
            [{**R, "message": {"attachment": {"type": "file", "payload": {
                "url": "https://x.test/a.pdf", "is_reusable": True}}, "metadata": "msg-7"}}],
            id="file-with-metadata"),
        pytest.param(
            Outbound(TO, cards=(
                Card("Pro", subtitle="15 EUR", image_url="https://x.test/p.png",
                     url="https://x.test/pro", buttons=(Button("Buy", payload="BUY"),)),
                Card("Free"))),
            [{**R, "message": {"attachment": {"type": "template", "payload": {
                "template_type": "generic", "elements": [
                    {"title": "Pro", "subtitle": "15 EUR", "image_url": "https://x.test/p.png",
                     "default_action": {"type": "web_url", "url": "https://x.test/pro"},
                     "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY"}]},
                    {"title": "Free"}]}}}}],
            id="cards"),
        pytest.param(
            Outbound(TO, text="An agent here", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT",
                     metadata="msg-1"),
            [{"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
              "message": {"text": "An agent here", "metadata": "msg-1"}}], id="human-agent-tag"),
        pytest.param(
            Outbound(TO, text="News", messaging_type="UPDATE", tag="HUMAN_AGENT"),
            [{"recipient": {"id": PSID}, "messaging_type": "UPDATE",
              "message": {"text": "News"}}], id="tag-only-with-message-tag"),
        pytest.param(
            Outbound(Recipient(comment_id="1001_9001"), text="Details inside"),
            [{"recipient": {"comment_id": "1001_9001"}, "messaging_type": "RESPONSE",
              "message": {"text": "Details inside"}}], id="private-reply"),
    ],
)
def test_render(outbound, bodies):
    assert messenger.ADAPTER.render(outbound) == bodies


@pytest.mark.parametrize(
    ("ok", "too_long"),
    [
        pytest.param(Outbound(TO, text="x" * 2000), Outbound(TO, text="x" * 2001), id="text"),
        pytest.param(Outbound(TO, text="x" * 640, buttons=(Button("a", payload="a"),)),
                     Outbound(TO, text="x" * 641, buttons=(Button("a", payload="a"),)),
                     id="button-template-text"),
        pytest.param(Outbound(TO, text="t", quick_replies=(Button("x" * 20, payload="p"),)),
                     Outbound(TO, text="t", quick_replies=(Button("x" * 21, payload="p"),)),
                     id="quick-reply-title"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("x" * 20, url="https://x"),)),
                     Outbound(TO, text="t", buttons=(Button("x" * 21, url="https://x"),)),
                     id="button-title"),
        pytest.param(Outbound(TO, text="t", quick_replies=tuple(
                         Button(str(i), payload=str(i)) for i in range(13))),
                     Outbound(TO, text="t", quick_replies=tuple(
                         Button(str(i), payload=str(i)) for i in range(14))),
                     id="quick-reply-count"),
        pytest.param(Outbound(TO, text="t", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(10)),
                         quick_replies=tuple(Button(str(i), payload=str(i)) for i in range(3))),
                     Outbound(TO, text="t", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(10)),
                         quick_replies=tuple(Button(str(i), payload=str(i)) for i in range(4))),
                     id="buttons-plus-quick-replies-count"),
        pytest.param(Outbound(TO, cards=tuple(Card(str(i)) for i in range(10))),
                     Outbound(TO, cards=tuple(Card(str(i)) for i in range(11))),
                     id="card-count"),
        pytest.param(Outbound(TO, cards=(Card("x" * 80, subtitle="y" * 80),)),
                     Outbound(TO, cards=(Card("x" * 81),)), id="card-title"),
        pytest.param(Outbound(TO, cards=(Card("x", subtitle="y" * 80),)),
                     Outbound(TO, cards=(Card("x", subtitle="y" * 81),)), id="card-subtitle"),
        pytest.param(Outbound(TO, cards=(Card("x", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(3))),)),
                     Outbound(TO, cards=(Card("x", buttons=tuple(
                         Button(str(i), payload=str(i)) for i in range(4))),)),
                     id="card-buttons"),
        pytest.param(Outbound(TO, text="t", metadata="m" * 1000),
                     Outbound(TO, text="t", metadata="m" * 1001), id="metadata"),
    ],
)
def test_render_limits_pass_at_the_limit_and_fail_one_over(ok, too_long):
    assert messenger.ADAPTER.render(ok)
    with pytest.raises(RenderError):
        messenger.ADAPTER.render(too_long)


@pytest.mark.parametrize(
    "outbound",
    [
        pytest.param(Outbound(TO), id="nothing"),
        pytest.param(Outbound(Recipient(), text="t"), id="no-recipient"),
        pytest.param(Outbound(TO, template=Template("order_update", "en_US")), id="template"),
        pytest.param(Outbound(TO, buttons=(Button("a", payload="a"),)), id="buttons-no-text"),
        pytest.param(Outbound(TO, text="t", buttons=tuple(
            Button(str(i), payload=str(i)) for i in range(3)) + (Button("u", url="https://x"),)),
            id="url-among-four-buttons"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a"),)), id="button-without-action"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a", payload="p", url="https://x"),)),
                     id="button-with-two-actions"),
        pytest.param(Outbound(TO, text="t", quick_replies=(Button("a", url="https://x"),)),
                     id="url-quick-reply"),
        pytest.param(Outbound(TO, text="t", messaging_type="MESSAGE_TAG"), id="tag-missing"),
        pytest.param(Outbound(TO, text="t", messaging_type="MESSAGE_TAG", tag="CUSTOMER_FEEDBACK"),
                     id="unknown-tag"),
    ],
)
def test_render_errors(outbound):
    with pytest.raises(RenderError):
        messenger.ADAPTER.render(outbound)


# --- send -----------------------------------------------------------------------------------

ACCOUNT = ChannelAccount(id=1, type="messenger", external_id=PAGE_ID, access_token=TOKEN)
BODY = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}}


async def send(respond):
    graph = MockGraph(respond)
    async with graph.client() as client:
        result = await messenger.ADAPTER.send(client, make_settings(), ACCOUNT, BODY)
    return graph, result


async def test_send_posts_to_the_page_and_reads_the_message_id():
    graph, result = await send(
        lambda r: httpx.Response(200, json={"recipient_id": PSID, "message_id": "m_OUT9"})
    )
    request = graph.requests[0]
    assert str(request.url) == f"https://graph.test/v25.0/{PAGE_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert graph.last_json == BODY
    assert result.ok and result.external_id == "m_OUT9"
    assert result.raw == {"recipient_id": PSID, "message_id": "m_OUT9"}


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, {"message": "Error validating access token: Session has expired",
               "type": "OAuthException", "code": 190, "error_subcode": 463,
               "fbtrace_id": "A1"},
         GraphError(190, "Error validating access token: Session has expired", 463, 401, "A1",
                    "OAuthException")),
        (400, {"message": "(#10) This message is sent outside of allowed window.",
               "type": "OAuthException", "code": 10, "error_subcode": 2018278,
               "fbtrace_id": "B2"},
         GraphError(10, "(#10) This message is sent outside of allowed window.", 2018278, 400,
                    "B2", "OAuthException")),
        (400, {"message": "(#551) This person isn't available right now.", "code": 551,
               "error_subcode": 1545041},
         GraphError(551, "(#551) This person isn't available right now.", 1545041, 400)),
    ],
)
async def test_send_reports_graph_errors(status, error, expected):
    _, result = await send(lambda r: httpx.Response(status, json={"error": error}))
    assert not result.ok and result.error == expected and result.external_id is None


async def test_send_reads_the_buc_wait():
    buc = '{"112233445566778":[{"type":"messenger","call_count":100,' \
          '"estimated_time_to_regain_access":4}]}'
    _, result = await send(lambda r: httpx.Response(
        400, headers={"X-Business-Use-Case-Usage": buc},
        json={"error": {"code": 80006, "message": "rate"}},
    ))
    assert result.error.code == 80006 and result.retry_after == 240.0


async def test_send_timeout_is_an_error_not_an_exception():
    def respond(request):
        raise httpx.ReadTimeout("slow", request=request)

    _, result = await send(respond)
    assert not result.ok and result.error == GraphError(code=None, message="timeout")
