"""Messenger: rendering Send-API bodies and sending them to the Graph API."""
from __future__ import annotations

import httpx
import pytest

from appliance.channels import messenger
from appliance.channels.events import (
    ContactRef,
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
    PAGE_ID,
    PSID,
    TOKEN,
)

USER = ContactRef(PSID)


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
    return await send_once(messenger.ADAPTER, ACCOUNT, BODY, respond)


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
