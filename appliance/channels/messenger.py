"""Messenger (Facebook Pages): ``object: page`` deliveries, Send-API bodies, sending.

Parsing covers ``messaging[]``/``standby[]`` (shared with Instagram, see
:mod:`appliance.channels.messaging`) and page feed comments in ``changes[field=feed]``.
Rendering follows docs/spec/meta-platform.md §5 and the button rules of flow-format.md: up to
3 buttons as a button template, more as quick replies, cards as a generic template.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.channels.adapter import ModuleAdapter
from appliance.channels.events import (
    ContactRef,
    InboundMessage,
    MessageRevoked,
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
    button,
    card_element,
    envelope,
    generic_template,
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

__all__ = ["ADAPTER", "parse_webhook", "render", "send", "reply_to_comment"]

TEXT_LIMIT = 2000
BUTTON_TEMPLATE_TEXT = 640
MAX_NATIVE_BUTTONS = 3
TAGS = frozenset({"HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE",
                  "POST_PURCHASE_UPDATE"})


def parse_webhook(payload: Any) -> ParsedWebhook:
    """Every event of an ``object: page`` delivery (see :mod:`appliance.channels.base`)."""
    return parse_envelope(payload, "messenger", "page", _parse_change)


def _parse_change(ctx: EventContext, change: dict[str, Any]) -> ParsedWebhook:
    out = ParsedWebhook()
    if change.get("field") != "feed":
        out.ignored += 1
        return out
    try:
        _parse_feed(ctx, change.get("value"), out)
    except Malformed as exc:
        out.problems.append(ParseProblem(ctx.path + exc.subpath, exc.reason))
    return out


def _parse_feed(ctx: EventContext, value: Any, out: ParsedWebhook) -> None:
    if not isinstance(value, dict):
        raise Malformed("not an object", ".value")
    verb = value.get("verb")
    # Only new, removed and hidden comments matter; posts, reactions, shares and comment
    # edits are other ``item``/``verb`` values of the same field.
    if value.get("item") != "comment" or verb not in ("add", "remove", "hide"):
        out.ignored += 1
        return
    author = value.get("from")
    # ``from`` is missing when the app lacks pages_read_user_content (§2, [U]).
    author_id = id_or_none(author.get("id")) if isinstance(author, dict) else None
    if author_id is None:
        raise Malformed("comment without from id", ".value.from")
    if author_id == ctx.asset_id:
        out.ignored += 1  # the Page's own comments and replies
        return
    comment_id = id_or_none(value.get("comment_id"))
    if comment_id is None:
        raise Malformed("comment without comment_id", ".value")
    when = event_time(value.get("created_time"), ctx.entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp", ".value")
    dedupe_key = f"messenger:comment:{comment_id}:{verb}"
    if verb != "add":
        out.events.append(MessageRevoked(
            channel="messenger", asset_id=ctx.asset_id, contact_external_id=author_id,
            external_id=comment_id, occurred_at=when, dedupe_key=dedupe_key,
        ))
        return
    payload: dict[str, Any] = {
        "comment_id": comment_id,
        "post_id": id_or_none(value.get("post_id")),
        "parent_id": id_or_none(value.get("parent_id")),
        "verb": verb,
    }
    post = value.get("post")
    permalink = text_or_none(value.get("permalink_url")) or (
        text_or_none(post.get("permalink_url")) if isinstance(post, dict) else None
    )
    if permalink:
        payload["permalink_url"] = permalink
    out.events.append(InboundMessage(
        channel="messenger", asset_id=ctx.asset_id,
        contact=ContactRef(author_id, name=text_or_none(author.get("name"))),
        kind="comment", occurred_at=when, dedupe_key=dedupe_key, external_id=comment_id,
        text=text_or_none(value.get("message")), payload=payload, opens_window=False,
    ))


def render(outbound: Outbound) -> list[dict[str, Any]]:
    """The Send-API bodies for ``outbound``, in order: media, then text (with its buttons),
    then cards; quick replies ride on the last body. Raises :class:`RenderError`."""
    if outbound.template is not None:
        raise RenderError("WhatsApp templates cannot be sent on Messenger")
    messages: list[dict[str, Any]] = []
    if outbound.media is not None:
        messages.append(media_attachment(outbound.media, reusable=True))
    replies = list(outbound.quick_replies)
    if outbound.buttons and not outbound.text:
        raise RenderError("buttons need text")
    if outbound.text and 0 < len(outbound.buttons) <= MAX_NATIVE_BUTTONS:
        messages.append({"attachment": {"type": "template", "payload": {
            "template_type": "button",
            "text": check_length(outbound.text, BUTTON_TEMPLATE_TEXT, "button template text",
                                 RenderError),
            "buttons": [button(b) for b in outbound.buttons],
        }}})
    elif outbound.text:
        if any(b.url is not None or b.phone is not None for b in outbound.buttons):
            raise RenderError("more than 3 buttons become quick replies, which cannot link")
        replies = list(outbound.buttons) + replies
        messages.append(text_message(outbound.text, TEXT_LIMIT))
    if outbound.cards:
        messages.append({"attachment": generic_template([card_element(c) for c in outbound.cards])})
    if not messages:
        raise RenderError("nothing to send")
    if replies:
        messages[-1]["quick_replies"] = quick_replies(replies)
    return [envelope(outbound, m, TAGS) for m in messages]


async def send(
    wire: GraphWire, settings: Settings, account: ChannelAccount, body: dict[str, Any]
) -> SendResult:
    """POST ``body`` to ``/<PAGE_ID>/messages`` (``account.external_id`` is the page id)."""
    return await wire.post(settings.graph_url(f"{account.external_id}/messages"), account.access_token, body,
                           send_api_message_id)


async def reply_to_comment(
    wire: GraphWire, settings: Settings, account: ChannelAccount, comment_id: str, text: str
) -> SendResult:
    """A public reply under a Page comment: ``POST /<COMMENT_ID>/comments {"message"}``."""
    return await wire.post(settings.graph_url(f"{comment_id}/comments"), account.access_token,
                           {"message": text}, created_id)


ADAPTER = ModuleAdapter(
    name="messenger", webhook_object="page", parse_webhook=parse_webhook, render=render,
    send=send, reply_to_comment=reply_to_comment,
)
