"""Instagram messaging and comments: ``object: instagram`` deliveries, Send-API bodies, sending.

Parsing covers ``messaging[]``/``standby[]`` (shared with Messenger, see
:mod:`appliance.channels.messaging`) and ``changes[field=comments|live_comments]``.
Rendering differs from Messenger (docs/spec/meta-platform.md §5): text up to 1000 characters,
only the ``HUMAN_AGENT`` tag, no button template (reply buttons become quick replies, link
buttons a generic-template element) and no ``file`` attachments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.channels.adapter import ModuleAdapter
from appliance.channels.events import (
    ContactRef,
    InboundMessage,
    ParsedWebhook,
    ParseProblem,
)
from appliance.channels.graph import (
    Malformed,
    check_length,
    created_id,
    event_time,
    id_or_none,
    send_api_message_id,
    text_or_none,
)
from appliance.channels.messaging import EventContext, parse_envelope
from appliance.channels.messaging_render import (
    CARD_TEXT,
    MAX_CARD_BUTTONS,
    button,
    card_element,
    envelope,
    generic_template,
    is_reply_button,
    media_attachment,
    quick_replies,
    text_message,
)
from appliance.channels.outbound import (
    ChannelAccount,
    Outbound,
    RenderError,
    SendResult,
)
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.channels.wire import GraphWire

__all__ = ["ADAPTER", "parse_webhook", "render", "send", "send_url", "reply_to_comment"]

TEXT_LIMIT = 1000
TAGS = frozenset({"HUMAN_AGENT"})  # the only tag Instagram accepts
_COMMENT_FIELDS = ("comments", "live_comments")


def parse_webhook(payload: Any) -> ParsedWebhook:
    """Every event of an ``object: instagram`` delivery (see :mod:`appliance.channels.base`)."""
    return parse_envelope(payload, "instagram", "instagram", _parse_change)


def _parse_change(ctx: EventContext, change: dict[str, Any]) -> ParsedWebhook:
    out = ParsedWebhook()
    field = change.get("field")
    if field not in _COMMENT_FIELDS:
        out.ignored += 1  # mentions, story_insights, ...
        return out
    try:
        _parse_comment(ctx, change.get("value"), field == "live_comments", out)
    except Malformed as exc:
        out.problems.append(ParseProblem(ctx.path + exc.subpath, exc.reason))
    return out


def _parse_comment(ctx: EventContext, value: Any, live: bool, out: ParsedWebhook) -> None:
    if not isinstance(value, dict):
        raise Malformed("not an object", ".value")
    author = value.get("from")
    author_id = id_or_none(author.get("id")) if isinstance(author, dict) else None
    if author_id is None:
        raise Malformed("comment without from id", ".value.from")
    if author_id == ctx.asset_id:
        out.ignored += 1  # the account's own replies fire the webhook too
        return
    comment_id = id_or_none(value.get("id"))
    if comment_id is None:
        raise Malformed("comment without id", ".value")
    # Comment values carry no time of their own in Meta's samples; the entry's time (seconds)
    # is the fallback.
    when = event_time(value.get("timestamp", value.get("created_time")), ctx.entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp", ".value")
    media = value.get("media")
    media = media if isinstance(media, dict) else {}
    payload: dict[str, Any] = {
        "comment_id": comment_id,
        "media_id": id_or_none(media.get("id")),
        "media_product_type": text_or_none(media.get("media_product_type")),
        "live": live,
    }
    parent_id = id_or_none(value.get("parent_id"))
    if parent_id:
        payload["parent_id"] = parent_id
    ad_id = id_or_none(media.get("ad_id"))
    if ad_id:
        # Comments on ads can be notified twice (§3); the dedupe key absorbs that.
        payload["ad_id"] = ad_id
    out.events.append(InboundMessage(
        channel="instagram", asset_id=ctx.asset_id,
        contact=ContactRef(author_id, username=text_or_none(author.get("username"))),
        kind="comment", occurred_at=when, dedupe_key=f"instagram:comment:{comment_id}",
        external_id=comment_id, text=text_or_none(value.get("text")), payload=payload,
        opens_window=False,
    ))


def render(outbound: Outbound) -> list[dict[str, Any]]:
    """The Send-API bodies for ``outbound``, in order: media, then text (or the link-button
    element that carries it), then cards; quick replies ride on the last body.

    Reply buttons (payload only) become quick replies with the text; any link button turns
    text and buttons (at most 3) into one generic-template element whose title is the text
    (at most 80 characters). Raises :class:`RenderError`.
    """
    if outbound.template is not None:
        raise RenderError("WhatsApp templates cannot be sent on Instagram")
    messages: list[dict[str, Any]] = []
    if outbound.media is not None:
        if outbound.media.type == "file":
            raise RenderError("Instagram cannot send file attachments")
        # Instagram's send reference documents only ``payload.url`` (no ``is_reusable``).
        messages.append(media_attachment(outbound.media, reusable=False))
    replies = list(outbound.quick_replies)
    if outbound.buttons and not outbound.text:
        raise RenderError("buttons need text")
    if outbound.text and all(is_reply_button(b) for b in outbound.buttons):
        replies = list(outbound.buttons) + replies
        messages.append(text_message(outbound.text, TEXT_LIMIT))
    elif outbound.text:
        if len(outbound.buttons) > MAX_CARD_BUTTONS:
            raise RenderError(
                f"link buttons need a card, which holds at most {MAX_CARD_BUTTONS} buttons"
            )
        element = {
            "title": check_length(outbound.text, CARD_TEXT, "text with link buttons",
                                  RenderError),
            "buttons": [button(b, allow_phone=False) for b in outbound.buttons],
        }
        messages.append({"attachment": generic_template([element])})
    if outbound.cards:
        elements = [card_element(c, allow_phone=False) for c in outbound.cards]
        messages.append({"attachment": generic_template(elements)})
    if not messages:
        raise RenderError("nothing to send")
    if replies:
        messages[-1]["quick_replies"] = quick_replies(replies)
    return [envelope(outbound, m, TAGS) for m in messages]


def send_url(settings: Settings, account: ChannelAccount) -> str:
    """Facebook Login accounts (with a page) send through the page on graph.facebook.com;
    Instagram Login accounts send as the IG account on graph.instagram.com."""
    if account.page_id:
        return settings.graph_url(f"{account.page_id}/messages")
    return settings.instagram_url(f"{account.external_id}/messages")


async def send(
    wire: GraphWire, settings: Settings, account: ChannelAccount, body: dict[str, Any]
) -> SendResult:
    """POST ``body`` to the account's messages endpoint (:func:`send_url`)."""
    return await wire.post(send_url(settings, account), account.access_token, body, send_api_message_id)


async def reply_to_comment(
    wire: GraphWire, settings: Settings, account: ChannelAccount, comment_id: str, text: str
) -> SendResult:
    """A public reply under an Instagram comment: ``POST /<COMMENT_ID>/replies {"message"}``
    (graph.facebook.com with a Page token, graph.instagram.com with Instagram Login)."""
    path = f"{comment_id}/replies"
    url = settings.graph_url(path) if account.page_id else settings.instagram_url(path)
    return await wire.post(url, account.access_token, {"message": text}, created_id)


ADAPTER = ModuleAdapter(
    name="instagram", webhook_object="instagram", parse_webhook=parse_webhook, render=render,
    send=send, reply_to_comment=reply_to_comment,
)
