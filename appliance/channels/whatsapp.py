"""WhatsApp Cloud API: ``object: whatsapp_business_account`` deliveries and sending.

Events are routed by ``value.metadata.phone_number_id`` (``entry.id`` is the WABA id, which
several numbers share). Contacts are keyed by the business-scoped user id (BSUID,
``user_id``) when Meta sends one, else by ``wa_id``: from 2026 users with a WhatsApp username
arrive without ``wa_id`` and without ``from`` (docs/spec/meta-platform.md §4). Rendering lives
in :mod:`appliance.channels.whatsapp_render`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from appliance.channels.adapter import ModuleAdapter
from appliance.channels.events import (
    Attachment,
    ContactRef,
    InboundMessage,
    MessageKind,
    ParsedWebhook,
    ParseProblem,
    PreferenceChange,
    SendError,
    StatusUpdate,
    TemplateStatus,
)
from appliance.channels.graph import (
    Malformed,
    delivery_entries,
    event_time,
    id_or_none,
    int_or_none,
    text_or_none,
    timestamp_ms,
)
from appliance.channels.outbound import ChannelAccount, GraphError, SendResult
from appliance.channels.whatsapp_render import render
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.channels.wire import GraphWire

__all__ = ["ADAPTER", "parse_webhook", "render", "send", "reply_to_comment"]

_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_MEDIA_EXTRA = ("sha256", "filename", "voice", "animated")
_STATUSES = ("sent", "delivered", "read", "failed")
_IGNORED_TYPES = ("system", "request_welcome")  # number changes, first-open pings


def parse_webhook(payload: Any) -> ParsedWebhook:
    """Every event of a ``whatsapp_business_account`` delivery (contract:
    :mod:`appliance.channels.base`): messages, statuses, ``user_preferences`` and
    ``message_template_status_update``; other fields (account and quality updates) and
    ``value.errors`` count as ignored."""
    out = ParsedWebhook()
    entries = delivery_entries(payload, "whatsapp_business_account", out)
    if entries is None:
        return out
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            out.problems.append(ParseProblem(f"entry[{i}]", "not an entry with a changes list"))
            continue
        for j, change in enumerate(changes):
            path = f"entry[{i}].changes[{j}]"
            try:
                if isinstance(change, dict) and change.get("field") == "message_template_status_update":
                    _template_status(entry, change, out)
                    continue
                _parse_change(path, change, entry.get("time"), out)
            except Malformed as exc:
                out.problems.append(ParseProblem(path + exc.subpath, exc.reason))
    return out


def _parse_change(path: str, change: Any, entry_time: Any, out: ParsedWebhook) -> None:
    if not isinstance(change, dict):
        raise Malformed("the change is not an object")
    field = change.get("field")
    if field not in ("messages", "user_preferences"):
        out.ignored += 1
        return
    value = change.get("value")
    if not isinstance(value, dict):
        raise Malformed("not an object", ".value")
    metadata = value.get("metadata")
    asset_id = id_or_none(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
    if asset_id is None:
        raise Malformed("missing phone_number_id", ".value.metadata")
    contacts = _contacts(path, value.get("contacts"), out)
    groups = {"messages": _message, "statuses": _status, "user_preferences": _preference}
    found = False
    for key, parse in groups.items():
        items = value.get(key)
        if items is None:
            continue
        found = True
        if not isinstance(items, list):
            out.problems.append(ParseProblem(f"{path}.value.{key}", "not a list"))
            continue
        for k, item in enumerate(items):
            item_path = f"{path}.value.{key}[{k}]"
            try:
                parse(asset_id, contacts, item, entry_time, out)
            except Malformed as exc:
                out.problems.append(ParseProblem(item_path + exc.subpath, exc.reason))
    errors = value.get("errors")  # system-level errors, not tied to a message
    if isinstance(errors, list) and errors:
        out.ignored += len(errors)
    elif not found:
        out.ignored += 1


def _contacts(path: str, raw: Any, out: ParsedWebhook) -> list[ContactRef]:
    contacts = []
    for k, item in enumerate(raw if isinstance(raw, list) else ()):
        wa_id = id_or_none(item.get("wa_id")) if isinstance(item, dict) else None
        user_id = id_or_none(item.get("user_id")) if isinstance(item, dict) else None
        if wa_id is None and user_id is None:
            out.problems.append(
                ParseProblem(f"{path}.value.contacts[{k}]", "contact without wa_id or user_id")
            )
            continue
        profile = item.get("profile")
        profile = profile if isinstance(profile, dict) else {}
        contacts.append(ContactRef(
            external_id=user_id or wa_id,  # type: ignore[arg-type]
            name=text_or_none(profile.get("name")),
            username=text_or_none(profile.get("username")),
            wa_id=wa_id,
            bsuid=user_id,
            parent_bsuid=id_or_none(item.get("parent_user_id")),
        ))
    return contacts


def _contact(contacts: list[ContactRef], wa_id: str | None, user_id: str | None) -> ContactRef:
    """The contact with this ``wa_id`` or BSUID, completed with whichever id it lacked; the
    only contact when the item names nobody; else a contact built from the ids alone."""
    for contact in contacts:
        if (wa_id and contact.wa_id == wa_id) or (user_id and contact.bsuid == user_id):
            if contact.wa_id is None and wa_id:
                contact = replace(contact, wa_id=wa_id)
            if contact.bsuid is None and user_id:
                contact = replace(contact, bsuid=user_id, external_id=user_id)
            return contact
    if wa_id is None and user_id is None:
        if len(contacts) == 1:
            return contacts[0]
        raise Malformed("no sender id")
    external_id: str = user_id or wa_id  # type: ignore[assignment]
    return ContactRef(external_id=external_id, wa_id=wa_id, bsuid=user_id)


def _obj(container: dict[str, Any], key: str, at: str = "") -> dict[str, Any]:
    """``container[key]`` when it is an object; ``at`` is the container's subpath."""
    value = container.get(key)
    if not isinstance(value, dict):
        raise Malformed(f"missing {key} object", f"{at}.{key}")
    return value


def _message(
    asset_id: str, contacts: list[ContactRef], msg: Any, entry_time: Any, out: ParsedWebhook
) -> None:
    if not isinstance(msg, dict):
        raise Malformed("the message is not an object")
    wamid = id_or_none(msg.get("id"))
    if wamid is None:
        raise Malformed("message without id")
    when = event_time(msg.get("timestamp"), entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp")
    msg_type = text_or_none(msg.get("type"))
    if msg_type in _IGNORED_TYPES:
        out.ignored += 1
        return
    contact = _contact(contacts, id_or_none(msg.get("from")), id_or_none(msg.get("from_user_id")))
    kind, text, payload, attachments = _content(msg_type, msg)
    context = msg.get("context")
    context = context if isinstance(context, dict) else {}
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag) is True:
            payload[flag] = True
    referral = msg.get("referral")
    if isinstance(referral, dict):  # first message from a Click-to-WhatsApp ad
        payload["referral"] = referral
    out.events.append(InboundMessage(
        channel="whatsapp", asset_id=asset_id, contact=contact, kind=kind, occurred_at=when,
        dedupe_key=f"whatsapp:msg:{wamid}", external_id=wamid, text=text, payload=payload,
        attachments=attachments, reply_to=id_or_none(context.get("id")),
        opens_window=kind != "reaction",
    ))


def _content(
    msg_type: str | None, msg: dict[str, Any]
) -> tuple[MessageKind, str | None, dict[str, Any], tuple[Attachment, ...]]:
    """Kind, text, payload and attachments of one ``messages[]`` item by its ``type``."""
    if msg_type == "text":
        body = text_or_none(_obj(msg, "text").get("body"))
        if body is None:
            raise Malformed("text without body", ".text")
        return "text", body, {}, ()
    if msg_type in _MEDIA_TYPES:
        media = _obj(msg, msg_type)
        media_id, url = id_or_none(media.get("id")), text_or_none(media.get("url"))
        if media_id is None and url is None:
            raise Malformed("media without id", f".{msg_type}")
        kind: Any = "file" if msg_type == "document" else msg_type
        extra = {k: media[k] for k in _MEDIA_EXTRA if media.get(k) is not None}
        attachment = Attachment(type=kind, url=url, media_id=media_id,
                                mime_type=text_or_none(media.get("mime_type")), extra=extra)
        return kind, text_or_none(media.get("caption")), {}, (attachment,)
    if msg_type == "interactive":
        return _interactive(_obj(msg, "interactive"))
    if msg_type == "button":  # a tap on a template's quick-reply button
        tapped = _obj(msg, "button")
        return "button", text_or_none(tapped.get("text")), {
            "payload": text_or_none(tapped.get("payload"))}, ()
    if msg_type == "location":
        place = _obj(msg, "location")
        extra = {k: place[k] for k in ("latitude", "longitude", "name", "address", "url")
                 if place.get(k) is not None}
        return "location", None, {}, (Attachment("location", extra=extra),)
    if msg_type == "contacts":
        cards = msg.get("contacts")
        return "contacts", None, {"contacts": cards if isinstance(cards, list) else []}, ()
    if msg_type == "reaction":
        reaction = _obj(msg, "reaction")
        target = id_or_none(reaction.get("message_id"))
        if target is None:
            raise Malformed("reaction without message_id", ".reaction")
        emoji = text_or_none(reaction.get("emoji")) or None  # empty or absent: removed
        return "reaction", None, {
            "target": target, "emoji": emoji, "action": "react" if emoji else "unreact"}, ()
    if msg_type == "unsupported":
        errors = msg.get("errors")
        codes = [int_or_none(e.get("code")) for e in errors if isinstance(e, dict)] \
            if isinstance(errors, list) else []
        return "unsupported", None, {"error_codes": [c for c in codes if c is not None]}, ()
    if msg_type == "order":
        return "unsupported", None, {"type": "order", "order": msg.get("order")}, ()
    return "unsupported", None, {"type": msg_type}, ()


def _interactive(
    obj: dict[str, Any],
) -> tuple[MessageKind, str | None, dict[str, Any], tuple[Attachment, ...]]:
    reply_type = text_or_none(obj.get("type"))
    if reply_type in ("button_reply", "list_reply"):
        reply = _obj(obj, reply_type, ".interactive")
        title = text_or_none(reply.get("title"))
        payload: dict[str, Any] = {"type": reply_type, "id": text_or_none(reply.get("id")),
                                   "title": title}
        description = text_or_none(reply.get("description"))
        if description is not None:
            payload["description"] = description
        return "interactive", title, payload, ()
    if reply_type == "nfm_reply":  # a completed WhatsApp Flow
        reply = _obj(obj, "nfm_reply", ".interactive")
        response: Any = reply.get("response_json")
        if isinstance(response, str):
            try:
                response = json.loads(response)
            except ValueError:
                pass  # keep the string as sent
        return "interactive", text_or_none(reply.get("body")), {
            "type": "nfm_reply", "name": text_or_none(reply.get("name")), "response": response,
        }, ()
    return "interactive", None, {"type": reply_type}, ()


def _status(
    asset_id: str, contacts: list[ContactRef], item: Any, entry_time: Any, out: ParsedWebhook
) -> None:
    if not isinstance(item, dict):
        raise Malformed("the status is not an object")
    status_id = id_or_none(item.get("id"))
    if status_id is None:
        raise Malformed("status without id")
    status = item.get("status")
    if status not in _STATUSES:
        out.ignored += 1  # older or rarer values ("deleted", "warning")
        return
    when = event_time(item.get("timestamp"), entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp")
    error = None
    errors = item.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if isinstance(first, dict):
        error = SendError(
            code=int_or_none(first.get("code")),
            message=text_or_none(first.get("title")) or text_or_none(first.get("message"))
            or "error",
        )
    out.events.append(StatusUpdate(
        channel="whatsapp", asset_id=asset_id,
        # The BSUID first, like ContactRef.external_id.
        contact_external_id=id_or_none(item.get("recipient_user_id"))
        or id_or_none(item.get("recipient_id")),
        status=status, occurred_at=when, dedupe_key=f"whatsapp:status:{status_id}:{status}",
        external_ids=(status_id,), error=error,
        callback_data=text_or_none(item.get("biz_opaque_callback_data")),
    ))


def _preference(
    asset_id: str, contacts: list[ContactRef], item: Any, entry_time: Any, out: ParsedWebhook
) -> None:
    if not isinstance(item, dict):
        raise Malformed("the preference is not an object")
    if item.get("category") != "marketing_messages":
        out.ignored += 1
        return
    value = item.get("value")
    if value not in ("stop", "resume"):
        raise Malformed("unknown preference value")
    when = event_time(item.get("timestamp"), entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp")
    wa_id, user_id = id_or_none(item.get("wa_id")), id_or_none(item.get("user_id"))
    if wa_id is None and user_id is None:
        raise Malformed("no wa_id or user_id")
    contact = _contact(contacts, wa_id, user_id)
    out.events.append(PreferenceChange(
        channel="whatsapp", asset_id=asset_id, contact=contact, topic="marketing",
        value=value, occurred_at=when,
        dedupe_key=f"whatsapp:pref:{contact.external_id}:{timestamp_ms(when)}:{value}",
    ))


def _template_status(entry: dict[str, Any], change: dict[str, Any], out: ParsedWebhook) -> None:
    """``{"event": "APPROVED", "message_template_id": 123, "message_template_name": ...,
    "message_template_language": "en_US", "reason": ..., "message_template_category"?}`` on the
    WABA (``entry.id``)."""
    value = change.get("value")
    if not isinstance(value, dict):
        raise Malformed("not an object", ".value")
    waba_id = id_or_none(entry.get("id"))
    name = text_or_none(value.get("message_template_name"))
    language = text_or_none(value.get("message_template_language"))
    status = text_or_none(value.get("event"))
    if waba_id is None or not name or not language or not status:
        raise Malformed("a template status needs the account id, template name, language and event", ".value")
    when = event_time(None, entry.get("time"))
    if when is None:
        raise Malformed("missing or unreadable time")
    template_id = id_or_none(value.get("message_template_id"))
    reason = text_or_none(value.get("reason"))
    out.events.append(TemplateStatus(
        channel="whatsapp", asset_id=waba_id, template_id=template_id, name=name, language=language,
        status=status.upper(), occurred_at=when,
        dedupe_key=f"whatsapp:template:{waba_id}:{template_id or name + '/' + language}:{status}:{timestamp_ms(when)}",
        category=(text_or_none(value.get("message_template_category")) or "").upper() or None,
        reason=None if reason in (None, "NONE") else reason,
    ))


def _message_id(data: Mapping[str, Any]) -> str | None:
    messages = data.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    return id_or_none(first.get("id")) if isinstance(first, dict) else None


async def send(
    wire: GraphWire, settings: Settings, account: ChannelAccount, body: dict[str, Any]
) -> SendResult:
    """POST ``body`` to ``/<PHONE_NUMBER_ID>/messages`` (``account.external_id``)."""
    return await wire.post(settings.graph_url(f"{account.external_id}/messages"), account.access_token, body,
                           _message_id)


async def reply_to_comment(
    wire: GraphWire, settings: Settings, account: ChannelAccount, comment_id: str, text: str
) -> SendResult:
    """WhatsApp has no comments: always ``ok=False``, nothing is sent."""
    return SendResult(ok=False, error=GraphError(code=None, message="WhatsApp has no comments"))


ADAPTER = ModuleAdapter(
    name="whatsapp", webhook_object="whatsapp_business_account", parse_webhook=parse_webhook, render=render,
    send=send, reply_to_comment=reply_to_comment,
)
