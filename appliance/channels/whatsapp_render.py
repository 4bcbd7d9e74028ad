"""WhatsApp Cloud API request bodies (docs/spec/meta-platform.md §5, flow-format.md rules).

Pure: an :class:`Outbound` to the bodies that send it, in order. Buttons render as an
interactive ``button`` (1–3 reply buttons), an interactive ``list`` (4–10 choices) or a
``cta_url`` (exactly one link button). Every limit is checked and never truncated: a value over
it raises :class:`RenderError`, as does anything WhatsApp cannot carry (cards, private replies,
call buttons, link buttons mixed with others).
"""

from __future__ import annotations

import re
from typing import Any

from appliance.channels.graph import check_length
from appliance.channels.outbound import Button, Media, Outbound, Recipient, RenderError

__all__ = ["render", "LIST_BUTTON_LABEL"]

TEXT_LIMIT = 4096
INTERACTIVE_BODY = 1024
MAX_REPLY_BUTTONS = 3
REPLY_ID = 256
REPLY_TITLE = 20
MAX_LIST_ROWS = 10
ROW_ID = 200
ROW_TITLE = 24
CTA_TEXT = 20
CALLBACK_DATA = 512
LIST_BUTTON_LABEL = "Choose"  # the label that opens the list; at most 20 characters

_MEDIA_TYPE = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
_LINK = re.compile(r"https?://", re.IGNORECASE)
_PHONE = re.compile(r"\+?\d+")


def render(outbound: Outbound) -> list[dict[str, Any]]:
    """The request bodies for ``outbound``.

    A template is sent alone. Text with buttons or quick replies is one interactive message
    (preceded by the media, if any). Media carries the text as its caption, except audio,
    which takes none: audio then text. ``reply_to`` quotes on the first body; ``metadata``
    goes on every body as ``biz_opaque_callback_data``.
    """
    base = _base(outbound)
    if outbound.cards:
        raise RenderError("WhatsApp cannot send cards")
    parts: list[dict[str, Any]] = []
    choices = list(outbound.buttons) + list(outbound.quick_replies)
    if outbound.template is not None:
        if outbound.text or outbound.media or choices:
            raise RenderError("a template is sent alone, without text, media or buttons")
        template: dict[str, Any] = {
            "name": outbound.template.name,
            "language": {"code": outbound.template.language},
        }
        if outbound.template.components:
            template["components"] = [dict(c) for c in outbound.template.components]
        parts.append({"type": "template", "template": template})
    elif choices:
        if not outbound.text:
            raise RenderError("buttons need text")
        if outbound.media is not None:
            parts.append(_media(outbound.media, None))
        parts.append({"type": "interactive", "interactive": _interactive(outbound.text, choices)})
    elif outbound.media is not None:
        if outbound.media.type == "audio":
            parts.append(_media(outbound.media, None))
            if outbound.text:
                parts.append(_text(outbound.text))
        else:
            parts.append(_media(outbound.media, outbound.text))
    elif outbound.text:
        parts.append(_text(outbound.text))
    else:
        raise RenderError("nothing to send")
    if outbound.reply_to:
        parts[0]["context"] = {"message_id": outbound.reply_to}
    return [{**base, **part} for part in parts]


def _base(outbound: Outbound) -> dict[str, Any]:
    base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    base.update(_address(outbound.recipient))
    if outbound.metadata is not None:
        base["biz_opaque_callback_data"] = check_length(
            outbound.metadata, CALLBACK_DATA, "metadata", RenderError
        )
    return base


def _address(r: Recipient) -> dict[str, str]:
    """``to`` (the phone number) when we know it, else ``recipient`` (the BSUID): users with a
    WhatsApp username may have no known number."""
    if r.comment_id:
        raise RenderError("WhatsApp has no private replies to comments")
    wa_id = r.wa_id
    if wa_id is None and r.external_id and _PHONE.fullmatch(r.external_id):
        wa_id = r.external_id
    if wa_id:
        return {"to": wa_id}
    bsuid = r.bsuid or r.external_id
    if bsuid:
        return {"recipient": bsuid}
    raise RenderError("the recipient has no wa_id and no BSUID")


def _text(text: str) -> dict[str, Any]:
    body: dict[str, Any] = {"body": check_length(text, TEXT_LIMIT, "text", RenderError)}
    if _LINK.search(text):
        body["preview_url"] = True
    return {"type": "text", "text": body}


def _media(media: Media, caption: str | None) -> dict[str, Any]:
    kind = _MEDIA_TYPE[media.type]
    content: dict[str, Any] = {"link": media.url}
    if caption:
        content["caption"] = check_length(caption, TEXT_LIMIT, "caption", RenderError)
    return {"type": kind, kind: content}


def _interactive(text: str, choices: list[Button]) -> dict[str, Any]:
    for b in choices:
        if len([k for k in (b.payload, b.url, b.phone) if k is not None]) != 1:
            raise RenderError("a button needs exactly one of payload, url or phone")
        if b.phone is not None:
            raise RenderError("WhatsApp cannot send call buttons")
    body = {"text": check_length(text, INTERACTIVE_BODY, "interactive body", RenderError)}
    links = [b for b in choices if b.url is not None]
    if links:
        if len(choices) != 1:
            raise RenderError("a link button must be the only button on WhatsApp")
        return {"type": "cta_url", "body": body, "action": {"name": "cta_url", "parameters": {
            "display_text": check_length(links[0].title, CTA_TEXT, "link button title",
                                         RenderError),
            "url": links[0].url,
        }}}
    if len(choices) <= MAX_REPLY_BUTTONS:
        return {"type": "button", "body": body, "action": {"buttons": [
            {"type": "reply", "reply": {
                "id": check_length(b.payload or "", REPLY_ID, "button id", RenderError),
                "title": check_length(b.title, REPLY_TITLE, "button title", RenderError),
            }} for b in choices
        ]}}
    if len(choices) > MAX_LIST_ROWS:
        raise RenderError(f"{len(choices)} choices; a list holds at most {MAX_LIST_ROWS}")
    rows = [{
        "id": check_length(b.payload or "", ROW_ID, "list row id", RenderError),
        "title": check_length(b.title, ROW_TITLE, "list row title", RenderError),
    } for b in choices]
    return {"type": "list", "body": body,
            "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}}
