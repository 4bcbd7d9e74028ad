"""Send-API body pieces shared by Messenger and Instagram (docs/spec/meta-platform.md §5).

Pure functions from :mod:`appliance.channels.outbound` values to JSON fragments. Every limit is
checked, never truncated: a value over it raises :class:`RenderError`.
"""

from __future__ import annotations

from typing import Any

from appliance.channels.graph import check_length
from appliance.channels.outbound import Button, Card, Media, Outbound, RenderError

__all__ = [
    "MAX_QUICK_REPLIES",
    "is_reply_button",
    "text_message",
    "quick_replies",
    "button",
    "generic_template",
    "media_attachment",
    "envelope",
]

MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
BUTTON_TITLE = 20
MAX_CARDS = 10
CARD_TEXT = 80
MAX_CARD_BUTTONS = 3
METADATA = 1000


def is_reply_button(b: Button) -> bool:
    """A button that only sends a payload back (no link, no call)."""
    return b.payload is not None and b.url is None and b.phone is None


def text_message(text: str, limit: int) -> dict[str, Any]:
    return {"text": check_length(text, limit, "text", RenderError)}


def quick_replies(buttons: list[Button]) -> list[dict[str, Any]]:
    """``quick_replies`` for payload buttons: at most 13, titles at most 20 characters."""
    if len(buttons) > MAX_QUICK_REPLIES:
        raise RenderError(
            f"{len(buttons)} quick replies; the limit is {MAX_QUICK_REPLIES}"
        )
    replies = []
    for i, b in enumerate(buttons):
        if not is_reply_button(b):
            raise RenderError(f"quick reply {i} must carry a payload and no url or phone")
        replies.append({
            "content_type": "text",
            "title": check_length(b.title, QUICK_REPLY_TITLE, f"quick reply {i} title",
                                  RenderError),
            "payload": b.payload,
        })
    return replies


def button(b: Button, *, allow_phone: bool = True) -> dict[str, Any]:
    """A template button: ``postback``, ``web_url`` or ``phone_number``."""
    title = check_length(b.title, BUTTON_TITLE, "button title", RenderError)
    kinds = [k for k in (b.payload, b.url, b.phone) if k is not None]
    if len(kinds) != 1:
        raise RenderError("a button needs exactly one of payload, url or phone")
    if b.url is not None:
        return {"type": "web_url", "url": b.url, "title": title}
    if b.phone is not None:
        if not allow_phone:
            raise RenderError("call buttons are not supported on this channel")
        return {"type": "phone_number", "title": title, "payload": b.phone}
    return {"type": "postback", "title": title, "payload": b.payload}


def _buttons(buttons: tuple[Button, ...] | list[Button], allow_phone: bool) -> list[dict]:
    if len(buttons) > MAX_CARD_BUTTONS:
        raise RenderError(f"{len(buttons)} buttons on a card; the limit is {MAX_CARD_BUTTONS}")
    return [button(b, allow_phone=allow_phone) for b in buttons]


def card_element(card: Card, *, allow_phone: bool = True) -> dict[str, Any]:
    element: dict[str, Any] = {
        "title": check_length(card.title, CARD_TEXT, "card title", RenderError)
    }
    if card.subtitle:
        element["subtitle"] = check_length(card.subtitle, CARD_TEXT, "card subtitle", RenderError)
    if card.image_url:
        element["image_url"] = card.image_url
    if card.url:
        element["default_action"] = {"type": "web_url", "url": card.url}
    if card.buttons:
        element["buttons"] = _buttons(card.buttons, allow_phone)
    return element


def generic_template(elements: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``attachment`` of a generic template (carousel) of at most 10 elements."""
    if len(elements) > MAX_CARDS:
        raise RenderError(f"{len(elements)} cards; the limit is {MAX_CARDS}")
    return {"type": "template", "payload": {"template_type": "generic", "elements": elements}}


def media_attachment(media: Media, *, reusable: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"url": media.url}
    if reusable:
        payload["is_reusable"] = True
    return {"attachment": {"type": media.type, "payload": payload}}


def envelope(
    outbound: Outbound, message: dict[str, Any], allowed_tags: frozenset[str]
) -> dict[str, Any]:
    """One Send-API body: recipient, ``messaging_type`` (and ``tag`` for ``MESSAGE_TAG``),
    and ``message`` with our ``metadata`` (echoed back in ``message_echoes``)."""
    r = outbound.recipient
    if r.comment_id:
        recipient = {"comment_id": r.comment_id}  # private reply to a comment
    elif r.external_id:
        recipient = {"id": r.external_id}
    else:
        raise RenderError("the recipient has no id and no comment id")
    body: dict[str, Any] = {"recipient": recipient, "messaging_type": outbound.messaging_type}
    if outbound.messaging_type == "MESSAGE_TAG":
        if outbound.tag not in allowed_tags:
            raise RenderError(
                f"MESSAGE_TAG needs one of the tags {', '.join(sorted(allowed_tags))}"
            )
        body["tag"] = outbound.tag
    message = dict(message)
    if outbound.metadata is not None:
        message["metadata"] = check_length(outbound.metadata, METADATA, "metadata", RenderError)
    body["message"] = message
    return body
