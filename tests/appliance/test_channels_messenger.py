"""Messenger: parsing ``object: page`` deliveries (rendering and sending: test_channels_messenger_send.py)."""
from __future__ import annotations

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
from tests.appliance.channel_helpers import (
    only_event,
    PAGE_ID,
    PSID,
    T_MS,
    T_S,
    at_ms,
    at_s,
    delivery,
    load_fixture,
    messaging_entry,
    messaging_event,
)

USER = ContactRef(PSID)


def parse(payload) -> ParsedWebhook:
    return messenger.ADAPTER.parse_webhook(payload)


def parse_events(*events, key="messaging", time=T_MS):
    return parse(delivery("page", messaging_entry(PAGE_ID, list(events), time=time, key=key)))


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
        messaging_event(timestamp=at_ms(T_MS).isoformat(timespec="milliseconds"),
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
