"""WhatsApp Cloud API: parsing ``whatsapp_business_account`` deliveries (rendering and sending:
test_channels_whatsapp_send.py)."""

from __future__ import annotations

import pytest

from appliance.channels import whatsapp
from appliance.channels.events import (
    Attachment,
    ContactRef,
    InboundMessage,
    ParsedWebhook,
    ParseProblem,
    PreferenceChange,
    SendError,
    StatusUpdate,
)
from tests.appliance.channel_helpers import (
    only_event,
    PHONE_NUMBER_ID,
    T_S,
    WABA_ID,
    at_s,
    load_fixture,
    wa_delivery,
    wa_value,
)

GIORGI = ContactRef("995555123456", name="Giorgi", wa_id="995555123456")
MARIAM = ContactRef("995555123457", name="Mariam", wa_id="995555123457")
WA = "995555123456"


def parse(payload) -> ParsedWebhook:
    return whatsapp.ADAPTER.parse_webhook(payload)


def inbound(wamid, **fields) -> InboundMessage:
    defaults = dict(channel="whatsapp", asset_id=PHONE_NUMBER_ID, occurred_at=at_s(T_S),
                    dedupe_key=f"whatsapp:msg:{wamid}", external_id=wamid)
    return InboundMessage(**{**defaults, **fields})


def message(msg_type, content=None, wamid="wamid.IN1", **extra):
    msg = {"from": WA, "id": wamid, "timestamp": str(T_S), "type": msg_type, **extra}
    if content is not None:
        msg[msg_type] = content
    return msg


def parse_messages(*messages, contacts=None):
    contacts = contacts if contacts is not None else [{"profile": {"name": "Giorgi"},
                                                        "wa_id": WA}]
    return parse(wa_delivery(wa_value(contacts=contacts, messages=list(messages))))


# --- the fixtures -----------------------------------------------------------------------------


def test_fixture_text_keys_the_contact_on_the_bsuid():
    assert only_event(parse(load_fixture("whatsapp_text"))) == inbound(
        "wamid.HBgLOTk1NTU1MTIzNDU2FQIAEhggFAKE01",
        contact=ContactRef("GE.40012345678901234567", name="Giorgi", wa_id=WA,
                           bsuid="GE.40012345678901234567"),
        kind="text", text="Is the store open today?",
    )


def test_fixture_username_only_contact_has_no_wa_id():
    assert only_event(parse(load_fixture("whatsapp_text_username_only"))) == inbound(
        "wamid.HBgLFAKE02",
        contact=ContactRef("GE.40098765432109876543", name="Lika",
                           bsuid="GE.40098765432109876543"),
        kind="text", text="hi, no phone shown",
    )


def test_fixture_image():
    assert only_event(parse(load_fixture("whatsapp_image"))) == inbound(
        "wamid.c3121e8c55be440dbc1689f474618c35", contact=MARIAM, kind="image",
        text="this one", attachments=(Attachment(
            "image", media_id="1203948576012345", mime_type="image/jpeg",
            extra={"sha256": "n3x5f0WbZq4pVvL2kS9QfA=="}),),
    )


def test_fixture_button_reply_quotes_our_message():
    assert only_event(parse(load_fixture("whatsapp_button_reply"))) == inbound(
        "wamid.98e5757e02134d67bf40919bf25f8325", contact=GIORGI, kind="interactive",
        text="Pro plan", payload={"type": "button_reply", "id": "plan_pro", "title": "Pro plan"},
        reply_to="wamid.HBgLOUTFAKE03",
    )


def test_fixture_list_reply():
    assert only_event(parse(load_fixture("whatsapp_list_reply"))) == inbound(
        "wamid.72d61499bfa8428a8f0dc3737e4c8847", contact=GIORGI, kind="interactive",
        text="Vake", payload={"type": "list_reply", "id": "branch_vake", "title": "Vake"},
    )


def test_fixture_template_button():
    assert only_event(parse(load_fixture("whatsapp_template_button"))) == inbound(
        "wamid.09bc0e62adcc4f8db2253c81b4cf7dda", contact=GIORGI, kind="button",
        text="Track order", payload={"payload": "TRACK_991"},
    )


def test_fixture_location():
    assert only_event(parse(load_fixture("whatsapp_location"))) == inbound(
        "wamid.0611ac4d3ff64f159df8a8edffba3bd5", contact=MARIAM, kind="location",
        attachments=(Attachment("location", extra={"latitude": 41.7151, "longitude": 44.8271,
                                                   "name": "Tbilisi"}),),
    )


def test_fixture_reaction_does_not_open_the_window():
    assert only_event(parse(load_fixture("whatsapp_reaction"))) == inbound(
        "wamid.89ae5d7b4eaa432c8fb6fefe4bbcd167", contact=MARIAM, kind="reaction",
        payload={"target": "wamid.HBgLOUTFAKE03", "emoji": "👍", "action": "react"},
        opens_window=False,
    )


def test_fixture_status_delivered():
    assert only_event(parse(load_fixture("whatsapp_status_delivered"))) == StatusUpdate(
        channel="whatsapp", asset_id=PHONE_NUMBER_ID, contact_external_id=WA,
        status="delivered", occurred_at=at_s(T_S),
        dedupe_key="whatsapp:status:wamid.HBgLOUTFAKE03:delivered",
        external_ids=("wamid.HBgLOUTFAKE03",),
    )


def test_fixture_status_failed_131047():
    assert only_event(parse(load_fixture("whatsapp_status_failed_131047"))) == StatusUpdate(
        channel="whatsapp", asset_id=PHONE_NUMBER_ID, contact_external_id=WA,
        status="failed", occurred_at=at_s(T_S),
        dedupe_key="whatsapp:status:wamid.HBgLOUTFAKE04:failed",
        external_ids=("wamid.HBgLOUTFAKE04",), error=SendError(131047, "error"),
    )


@pytest.mark.parametrize("name", [
    "whatsapp_button_reply", "whatsapp_image", "whatsapp_list_reply", "whatsapp_location",
    "whatsapp_reaction", "whatsapp_status_delivered", "whatsapp_status_failed_131047",
    "whatsapp_template_button", "whatsapp_text", "whatsapp_text_username_only",
])
def test_every_fixture_routes_on_the_phone_number_id_not_the_waba(name):
    event = only_event(parse(load_fixture(name)))
    assert event.asset_id == PHONE_NUMBER_ID != WABA_ID


# --- message types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg_type", "content", "kind", "text", "attachment"),
    [
        ("video", {"id": "v1", "mime_type": "video/mp4", "sha256": "h", "caption": "look"},
         "video", "look", Attachment("video", media_id="v1", mime_type="video/mp4",
                                     extra={"sha256": "h"})),
        ("audio", {"id": "a1", "mime_type": "audio/ogg", "voice": True}, "audio", None,
         Attachment("audio", media_id="a1", mime_type="audio/ogg", extra={"voice": True})),
        ("document", {"id": "d1", "mime_type": "application/pdf", "filename": "menu.pdf",
                      "url": "https://lookaside.test/d1"}, "file", None,
         Attachment("file", url="https://lookaside.test/d1", media_id="d1",
                    mime_type="application/pdf", extra={"filename": "menu.pdf"})),
        ("sticker", {"id": "s1", "mime_type": "image/webp", "animated": False}, "sticker", None,
         Attachment("sticker", media_id="s1", mime_type="image/webp",
                    extra={"animated": False})),
    ],
)
def test_media_messages(msg_type, content, kind, text, attachment):
    event = only_event(parse_messages(message(msg_type, content)))
    assert (event.kind, event.text, event.attachments) == (kind, text, (attachment,))


def test_nfm_reply_decodes_the_flow_response():
    event = only_event(parse_messages(message("interactive", {"type": "nfm_reply", "nfm_reply": {
        "name": "flow", "body": "Sent", "response_json": '{"flow_token": "t", "size": "L"}'}})))
    assert (event.kind, event.text) == ("interactive", "Sent")
    assert event.payload == {"type": "nfm_reply", "name": "flow",
                             "response": {"flow_token": "t", "size": "L"}}


def test_nfm_reply_with_invalid_json_keeps_the_string():
    event = only_event(parse_messages(message("interactive", {"type": "nfm_reply", "nfm_reply": {
        "name": "flow", "response_json": "{not json"}})))
    assert event.payload["response"] == "{not json"


def test_list_reply_with_description():
    event = only_event(parse_messages(message("interactive", {"type": "list_reply", "list_reply": {
        "id": "b1", "title": "Vake", "description": "Open 8-20"}})))
    assert event.payload == {"type": "list_reply", "id": "b1", "title": "Vake",
                             "description": "Open 8-20"}


@pytest.mark.parametrize("reaction", [{"message_id": "wamid.OUT", "emoji": ""},
                                      {"message_id": "wamid.OUT"}])
def test_removed_reaction_is_an_unreact(reaction):
    event = only_event(parse_messages(message("reaction", reaction)))
    assert event.payload == {"target": "wamid.OUT", "emoji": None, "action": "unreact"}
    assert event.external_id == "wamid.IN1"


def test_contacts_message():
    cards = [{"name": {"formatted_name": "Nino"}, "phones": [{"phone": "+995 5"}]}]
    event = only_event(parse_messages(message("contacts", cards)))
    assert (event.kind, event.payload) == ("contacts", {"contacts": cards})


def test_unsupported_and_order_and_unknown_types():
    result = parse_messages(
        message("unsupported", {"type": "poll"}, wamid="w1",
                errors=[{"code": 131051, "title": "Message type unknown"}]),
        message("order", {"catalog_id": "c", "product_items": []}, wamid="w2"),
        message("future_type", {"x": 1}, wamid="w3"),
    )
    assert [(e.kind, e.payload) for e in result.events] == [
        ("unsupported", {"error_codes": [131051]}),
        ("unsupported", {"type": "order", "order": {"catalog_id": "c", "product_items": []}}),
        ("unsupported", {"type": "future_type"}),
    ]


def test_system_and_request_welcome_are_ignored():
    result = parse_messages(
        message("system", {"body": "changed number", "type": "user_changed_number"}),
        message("request_welcome", None, wamid="w2"),
    )
    assert result == ParsedWebhook(ignored=2)


def test_forwards_referral_and_context():
    referral = {"source_url": "https://fb.me/x", "source_id": "1", "source_type": "ad",
                "headline": "Sale", "ctwa_clid": "abc"}
    event = only_event(parse_messages(message(
        "text", {"body": "hi"}, referral=referral,
        context={"forwarded": True, "frequently_forwarded": True},
    )))
    assert event.payload == {"forwarded": True, "frequently_forwarded": True,
                             "referral": referral}
    assert event.reply_to is None


# --- contacts ---------------------------------------------------------------------------------


def test_each_message_is_matched_to_its_contact():
    contacts = [
        {"profile": {"name": "A", "username": "@a"}, "wa_id": "111", "user_id": "US.1",
         "parent_user_id": "US.ENT.9"},
        {"profile": {"name": "B"}, "user_id": "US.2"},
        {"profile": {"name": "C"}, "wa_id": "333"},
    ]
    result = parse_messages(
        message("text", {"body": "c"}, wamid="w1", **{"from": "333"}),
        {**message("text", {"body": "b"}, wamid="w2", from_user_id="US.2"), "from": None},
        message("text", {"body": "a"}, wamid="w3", **{"from": "111"}),
        message("text", {"body": "?"}, wamid="w4", **{"from": "444"}),
        contacts=contacts,
    )
    assert result.problems == []
    assert [e.contact for e in result.events] == [
        ContactRef("333", name="C", wa_id="333"),
        ContactRef("US.2", name="B", bsuid="US.2"),
        ContactRef("US.1", name="A", username="@a", wa_id="111", bsuid="US.1",
                   parent_bsuid="US.ENT.9"),
        ContactRef("444", wa_id="444"),  # not in contacts: built from the message
    ]


def test_a_message_without_sender_takes_the_single_contact():
    msg = message("text", {"body": "x"})
    del msg["from"]
    event = only_event(parse_messages(msg, contacts=[{"profile": {"name": "Lika"},
                                                      "user_id": "GE.1"}]))
    assert event.contact == ContactRef("GE.1", name="Lika", bsuid="GE.1")


def test_a_contact_learns_the_id_it_lacked_from_the_message():
    event = only_event(parse_messages(
        message("text", {"body": "x"}, from_user_id="GE.7"),
        contacts=[{"profile": {"name": "Giorgi"}, "wa_id": WA}],
    ))
    assert event.contact == ContactRef("GE.7", name="Giorgi", wa_id=WA, bsuid="GE.7")


# --- statuses and preferences ----------------------------------------------------------------


def test_status_with_callback_data_and_bsuid_recipient():
    status = {"id": "wamid.OUT", "status": "read", "timestamp": str(T_S),
              "recipient_id": WA, "recipient_user_id": "GE.4001",
              "biz_opaque_callback_data": "msg-991",
              "pricing": {"billable": False, "pricing_model": "PMP", "category": "service"}}
    assert only_event(parse(wa_delivery(wa_value(statuses=[status])))) == StatusUpdate(
        channel="whatsapp", asset_id=PHONE_NUMBER_ID, contact_external_id="GE.4001",
        status="read", occurred_at=at_s(T_S), dedupe_key="whatsapp:status:wamid.OUT:read",
        external_ids=("wamid.OUT",), callback_data="msg-991",
    )


def test_status_error_prefers_the_title():
    status = {"id": "w", "status": "failed", "timestamp": str(T_S), "recipient_id": WA,
              "errors": [{"code": "131026", "title": "Message undeliverable",
                          "message": "Message undeliverable."}]}
    event = only_event(parse(wa_delivery(wa_value(statuses=[status]))))
    assert event.error == SendError(131026, "Message undeliverable")


def test_statuses_of_one_message_have_distinct_keys_and_unknown_statuses_are_ignored():
    statuses = [{"id": "w", "status": s, "timestamp": str(T_S), "recipient_id": WA}
                for s in ("sent", "delivered", "read", "deleted")]
    result = parse(wa_delivery(wa_value(statuses=statuses)))
    assert [e.dedupe_key for e in result.events] == [
        "whatsapp:status:w:sent", "whatsapp:status:w:delivered", "whatsapp:status:w:read"]
    assert result.ignored == 1


def test_user_preferences():
    prefs = [
        {"wa_id": WA, "detail": "User requested to stop marketing messages",
         "category": "marketing_messages", "value": "stop", "timestamp": T_S},
        {"wa_id": "111", "user_id": "US.1", "category": "marketing_messages",
         "value": "resume", "timestamp": str(T_S + 60)},
        {"wa_id": WA, "category": "something_else", "value": "stop", "timestamp": T_S},
    ]
    result = parse(wa_delivery(wa_value(
        contacts=[{"profile": {"name": "Giorgi"}, "wa_id": WA}], user_preferences=prefs),
        field="user_preferences"))
    assert result.problems == [] and result.ignored == 1
    assert result.events == [
        PreferenceChange(channel="whatsapp", asset_id=PHONE_NUMBER_ID, contact=GIORGI,
                         topic="marketing", value="stop", occurred_at=at_s(T_S),
                         dedupe_key=f"whatsapp:pref:{WA}:{T_S * 1000}:stop"),
        PreferenceChange(channel="whatsapp", asset_id=PHONE_NUMBER_ID,
                         contact=ContactRef("US.1", wa_id="111", bsuid="US.1"),
                         topic="marketing", value="resume", occurred_at=at_s(T_S + 60),
                         dedupe_key=f"whatsapp:pref:US.1:{(T_S + 60) * 1000}:resume"),
    ]


# message_template_status_update is parsed (TemplateStatus): tests/appliance/test_broadcasts_templates.py
@pytest.mark.parametrize("field", ["account_update", "phone_number_quality_update", "flows", "history"])
def test_other_fields_are_ignored(field):
    assert parse(wa_delivery({"event": "x"}, field=field)) == ParsedWebhook(ignored=1)


def test_system_errors_are_ignored():
    value = wa_value(errors=[{"code": 131000, "title": "Something went wrong"},
                             {"code": 130429, "title": "Rate limit hit"}])
    assert parse(wa_delivery(value)) == ParsedWebhook(ignored=2)


# --- batches and malformed parts ---------------------------------------------------------------


def test_batch_of_numbers_messages_and_statuses():
    other = wa_value(contacts=[{"profile": {"name": "X"}, "wa_id": "222"}],
                     messages=[message("text", {"body": "äöå Тбилиси 🎉"}, wamid="w9",
                                       **{"from": "222"})])
    other["metadata"]["phone_number_id"] = "555"
    payload = wa_delivery(
        wa_value(contacts=[{"profile": {"name": "Giorgi"}, "wa_id": WA}],
                 messages=[message("text", {"body": "1"}, wamid="w1"),
                           message("text", {"body": "2"}, wamid="w2")],
                 statuses=[{"id": "wamid.OUT", "status": "sent", "timestamp": str(T_S),
                            "recipient_id": WA}]),
        other,
    )
    payload["entry"].append({"id": "waba2", "changes": [
        {"field": "messages", "value": wa_value(statuses=[
            {"id": "wamid.OUT2", "status": "delivered", "timestamp": str(T_S),
             "recipient_id": WA, "new_field": {"x": 1}}])}]})
    result = parse(payload)
    assert result.problems == [] and result.ignored == 0
    assert [(e.asset_id, e.dedupe_key) for e in result.events] == [
        (PHONE_NUMBER_ID, "whatsapp:msg:w1"),
        (PHONE_NUMBER_ID, "whatsapp:msg:w2"),
        (PHONE_NUMBER_ID, "whatsapp:status:wamid.OUT:sent"),
        ("555", "whatsapp:msg:w9"),
        (PHONE_NUMBER_ID, "whatsapp:status:wamid.OUT2:delivered"),
    ]
    assert result.events[3].text == "äöå Тбилиси 🎉"


def test_malformed_parts_become_problems_and_the_rest_still_parses():
    good = message("text", {"body": "fine"}, wamid="w_ok")
    no_meta = wa_value(messages=[good])
    del no_meta["metadata"]["phone_number_id"]
    payload = wa_delivery(
        wa_value(
            contacts=[{"profile": {"name": "Nobody"}}, {"wa_id": WA}],
            messages=[
                "junk",
                {**good, "id": None},
                {**good, "id": "w1", "timestamp": "noon"},
                message("text", {"text": "no body, +995 555"}, wamid="w2"),
                message("image", {"caption": "no id"}, wamid="w3"),
                message("reaction", {"emoji": "👍"}, wamid="w4"),
                message("interactive", {"type": "button_reply"}, wamid="w5"),
                good,
            ],
            statuses=[{"status": "sent"}, {"id": "x", "status": "read"}],
        ),
        no_meta,
        "not a value",
    )
    payload["entry"].extend(["junk", {"id": "waba"}])
    payload["entry"][0]["changes"].append(7)
    result = parse(payload)
    assert [e.dedupe_key for e in result.events] == ["whatsapp:msg:w_ok"]
    v = "entry[0].changes[0].value"
    assert result.problems == [
        ParseProblem(f"{v}.contacts[0]", "contact without wa_id or user_id"),
        ParseProblem(f"{v}.messages[0]", "the message is not an object"),
        ParseProblem(f"{v}.messages[1]", "message without id"),
        ParseProblem(f"{v}.messages[2]", "missing or unreadable timestamp"),
        ParseProblem(f"{v}.messages[3].text", "text without body"),
        ParseProblem(f"{v}.messages[4].image", "media without id"),
        ParseProblem(f"{v}.messages[5].reaction", "reaction without message_id"),
        ParseProblem(f"{v}.messages[6].interactive.button_reply", "missing button_reply object"),
        ParseProblem(f"{v}.statuses[0]", "status without id"),
        ParseProblem(f"{v}.statuses[1]", "missing or unreadable timestamp"),
        ParseProblem("entry[0].changes[1].value.metadata", "missing phone_number_id"),
        ParseProblem("entry[0].changes[2].value", "not an object"),
        ParseProblem("entry[0].changes[3]", "the change is not an object"),
        ParseProblem("entry[1]", "not an entry with a changes list"),
        ParseProblem("entry[2]", "not an entry with a changes list"),
    ]
    assert not any("995" in p.reason for p in result.problems)


def test_value_without_messages_or_statuses_is_ignored():
    assert parse(wa_delivery(wa_value())) == ParsedWebhook(ignored=1)
