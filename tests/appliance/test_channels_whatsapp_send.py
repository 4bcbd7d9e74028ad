"""WhatsApp Cloud API: rendering message bodies and sending them to the Graph API."""

from __future__ import annotations

import httpx
import pytest

from appliance.channels import whatsapp
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
    PHONE_NUMBER_ID,
    TOKEN,
    WABA_ID,
)

WA = "995555123456"


# --- render ---------------------------------------------------------------------------------

TO = Recipient(external_id=WA, wa_id=WA)
B = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA}


def reply(id_, title):
    return {"type": "reply", "reply": {"id": id_, "title": title}}


@pytest.mark.parametrize(
    ("outbound", "bodies"),
    [
        pytest.param(Outbound(TO, text="Hi"), [{**B, "type": "text", "text": {"body": "Hi"}}],
                     id="text"),
        pytest.param(Outbound(TO, text="See https://x.test", metadata="msg-1",
                              reply_to="wamid.IN"),
                     [{**B, "type": "text", "biz_opaque_callback_data": "msg-1",
                       "context": {"message_id": "wamid.IN"},
                       "text": {"body": "See https://x.test", "preview_url": True}}],
                     id="text-with-link-metadata-and-quote"),
        pytest.param(Outbound(Recipient(external_id="US.134912"), text="Hi"),
                     [{"messaging_product": "whatsapp", "recipient_type": "individual",
                       "recipient": "US.134912", "type": "text", "text": {"body": "Hi"}}],
                     id="bsuid-only"),
        pytest.param(Outbound(Recipient(external_id="US.1", wa_id="+16505551234"), text="Hi"),
                     [{**B, "to": "+16505551234", "type": "text", "text": {"body": "Hi"}}],
                     id="wa-id-wins"),
        pytest.param(Outbound(Recipient(external_id="16505551234"), text="Hi"),
                     [{**B, "to": "16505551234", "type": "text", "text": {"body": "Hi"}}],
                     id="external-id-is-a-number"),
        pytest.param(
            Outbound(TO, text="Confirm?", buttons=(Button("Yes", payload="slot_yes"),),
                     quick_replies=(Button("No", payload="slot_no"),)),
            [{**B, "type": "interactive", "interactive": {
                "type": "button", "body": {"text": "Confirm?"},
                "action": {"buttons": [reply("slot_yes", "Yes"), reply("slot_no", "No")]}}}],
            id="reply-buttons"),
        pytest.param(
            Outbound(TO, text="Branch?", buttons=tuple(
                Button(f"Branch {i}", payload=f"br_{i}") for i in range(4))),
            [{**B, "type": "interactive", "interactive": {
                "type": "list", "body": {"text": "Branch?"},
                "action": {"button": "Choose", "sections": [{"rows": [
                    {"id": f"br_{i}", "title": f"Branch {i}"} for i in range(4)]}]}}}],
            id="list"),
        pytest.param(
            Outbound(TO, text="Our menu", buttons=(Button("Open", url="https://x.test/m"),)),
            [{**B, "type": "interactive", "interactive": {
                "type": "cta_url", "body": {"text": "Our menu"},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "Open", "url": "https://x.test/m"}}}}],
            id="cta-url"),
        pytest.param(
            Outbound(TO, text="this one", media=Media("image", "https://x.test/a.jpg")),
            [{**B, "type": "image", "image": {"link": "https://x.test/a.jpg",
                                              "caption": "this one"}}], id="image-caption"),
        pytest.param(
            Outbound(TO, media=Media("file", "https://x.test/a.pdf")),
            [{**B, "type": "document", "document": {"link": "https://x.test/a.pdf"}}],
            id="document"),
        pytest.param(
            Outbound(TO, text="listen", media=Media("audio", "https://x.test/a.ogg"),
                     metadata="m1", reply_to="wamid.IN"),
            [{**B, "type": "audio", "audio": {"link": "https://x.test/a.ogg"},
              "biz_opaque_callback_data": "m1", "context": {"message_id": "wamid.IN"}},
             {**B, "type": "text", "text": {"body": "listen"}, "biz_opaque_callback_data": "m1"}],
            id="audio-then-text"),
        pytest.param(
            Outbound(TO, text="Pick", media=Media("video", "https://x.test/v.mp4"),
                     buttons=(Button("A", payload="a"),)),
            [{**B, "type": "video", "video": {"link": "https://x.test/v.mp4"}},
             {**B, "type": "interactive", "interactive": {
                 "type": "button", "body": {"text": "Pick"},
                 "action": {"buttons": [reply("a", "A")]}}}],
            id="media-then-buttons"),
        pytest.param(
            Outbound(TO, template=Template("order_update", "en_US", components=(
                {"type": "body", "parameters": [{"type": "text", "text": "#991"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "TRACK_991"}]})),
                metadata="msg-5"),
            [{**B, "type": "template", "biz_opaque_callback_data": "msg-5", "template": {
                "name": "order_update", "language": {"code": "en_US"}, "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "#991"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0",
                     "parameters": [{"type": "payload", "payload": "TRACK_991"}]}]}}],
            id="template"),
        pytest.param(
            Outbound(TO, template=Template("hello_world", "en_US")),
            [{**B, "type": "template", "template": {"name": "hello_world",
                                                    "language": {"code": "en_US"}}}],
            id="template-without-parameters"),
    ],
)
def test_render(outbound, bodies):
    assert whatsapp.ADAPTER.render(outbound) == bodies


def buttons(n):
    return tuple(Button(f"t{i}", payload=f"p{i}") for i in range(n))


@pytest.mark.parametrize(
    ("ok", "too_long"),
    [
        pytest.param(Outbound(TO, text="x" * 4096), Outbound(TO, text="x" * 4097), id="text"),
        pytest.param(Outbound(TO, text="x" * 1024, buttons=buttons(1)),
                     Outbound(TO, text="x" * 1025, buttons=buttons(1)), id="interactive-body"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("x" * 20, payload="p"),)),
                     Outbound(TO, text="t", buttons=(Button("x" * 21, payload="p"),)),
                     id="button-title"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a", payload="p" * 256),)),
                     Outbound(TO, text="t", buttons=(Button("a", payload="p" * 257),)),
                     id="button-id"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("x" * 24, payload="p"),)
                              + buttons(3)),
                     Outbound(TO, text="t", buttons=(Button("x" * 25, payload="p"),)
                              + buttons(3)),
                     id="row-title"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a", payload="p" * 200),)
                              + buttons(3)),
                     Outbound(TO, text="t", buttons=(Button("a", payload="p" * 201),)
                              + buttons(3)),
                     id="row-id"),
        pytest.param(Outbound(TO, text="t", buttons=buttons(6), quick_replies=buttons(4)),
                     Outbound(TO, text="t", buttons=buttons(6), quick_replies=buttons(5)),
                     id="row-count"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("x" * 20, url="https://x"),)),
                     Outbound(TO, text="t", buttons=(Button("x" * 21, url="https://x"),)),
                     id="cta-title"),
        pytest.param(Outbound(TO, text="t", metadata="m" * 512),
                     Outbound(TO, text="t", metadata="m" * 513), id="callback-data"),
    ],
)
def test_render_limits_pass_at_the_limit_and_fail_one_over(ok, too_long):
    assert whatsapp.ADAPTER.render(ok)
    with pytest.raises(RenderError):
        whatsapp.ADAPTER.render(too_long)


def test_three_choices_are_buttons_and_four_are_a_list():
    three = whatsapp.ADAPTER.render(Outbound(TO, text="t", buttons=buttons(3)))
    four = whatsapp.ADAPTER.render(Outbound(TO, text="t", buttons=buttons(3),
                                            quick_replies=buttons(1)))
    assert three[0]["interactive"]["type"] == "button"
    assert four[0]["interactive"]["type"] == "list"


@pytest.mark.parametrize(
    "outbound",
    [
        pytest.param(Outbound(TO), id="nothing"),
        pytest.param(Outbound(Recipient(), text="t"), id="no-recipient"),
        pytest.param(Outbound(Recipient(comment_id="c1", external_id=WA), text="t"),
                     id="private-reply"),
        pytest.param(Outbound(TO, cards=(Card("Pro"),)), id="cards"),
        pytest.param(Outbound(TO, buttons=buttons(2)), id="buttons-without-text"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a", url="https://x"),
                                                     Button("b", payload="b"))),
                     id="url-with-reply-button"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("a", url="https://x"),
                                                     Button("b", url="https://y"))),
                     id="two-urls"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("c", phone="+1555"),)), id="call"),
        pytest.param(Outbound(TO, text="t", buttons=(Button("c"),)), id="no-action"),
        pytest.param(Outbound(TO, text="t", template=Template("x", "en")),
                     id="template-with-text"),
    ],
)
def test_render_errors(outbound):
    with pytest.raises(RenderError):
        whatsapp.ADAPTER.render(outbound)


# --- send -----------------------------------------------------------------------------------

ACCOUNT = ChannelAccount(id=3, type="whatsapp", external_id=PHONE_NUMBER_ID,
                         access_token=TOKEN, waba_id=WABA_ID)
BODY = {**B, "type": "text", "text": {"body": "Hi"}}
ACCEPTED = {"messaging_product": "whatsapp", "contacts": [{"input": WA, "wa_id": WA}],
            "messages": [{"id": "wamid.OUT1", "message_status": "accepted"}]}


async def send(respond):
    return await send_once(whatsapp.ADAPTER, ACCOUNT, BODY, respond)


async def test_send_posts_to_the_phone_number_and_reads_the_wamid():
    graph, result = await send(lambda r: httpx.Response(200, json=ACCEPTED))
    request = graph.requests[0]
    assert str(request.url) == f"https://graph.test/v25.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert graph.last_json == BODY
    assert result.ok and result.external_id == "wamid.OUT1" and result.raw == ACCEPTED


async def test_send_reports_the_re_engagement_error():
    error = {"message": "(#131047) Re-engagement message", "type": "OAuthException",
             "code": 131047, "error_data": {"messaging_product": "whatsapp",
                                            "details": "More than 24 hours have passed"},
             "fbtrace_id": "Fb1"}
    _, result = await send(lambda r: httpx.Response(400, json={"error": error}))
    assert not result.ok
    assert result.error == GraphError(131047, "(#131047) Re-engagement message", None, 400,
                                      "Fb1", "OAuthException")


async def test_send_throughput_limit_with_retry_after():
    _, result = await send(lambda r: httpx.Response(
        429, headers={"Retry-After": "4"},
        json={"error": {"code": 130429, "message": "Rate limit hit"}}))
    assert (result.error.code, result.retry_after) == (130429, 4.0)


async def test_send_success_without_messages_has_no_id():
    _, result = await send(lambda r: httpx.Response(200, json={"messaging_product": "whatsapp"}))
    assert result.ok and result.external_id is None
