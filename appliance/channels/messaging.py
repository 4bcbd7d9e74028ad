"""Parsing of Messenger-style deliveries, shared by Messenger (``object: page``) and Instagram
(``object: instagram``): the envelope, and every event in ``entry[].messaging[]`` and
``entry[].standby[]`` (docs/spec/meta-platform.md §2–3).

:func:`parse_envelope` walks every entry and hands ``changes[]`` to a channel-specific
function (page feed comments, Instagram comments). Each part is parsed on its own: a part that
cannot be read becomes a :class:`ParseProblem` at its path and the rest still parses. Nothing
here raises on bad shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.channels.events import (
    Attachment,
    ChannelType,
    ContactRef,
    Echo,
    InboundMessage,
    MessageKind,
    MessageRevoked,
    ParsedWebhook,
    ParseProblem,
    PreferenceChange,
    StatusUpdate,
)
from appliance.channels.graph import (
    Malformed,
    delivery_entries,
    digest,
    event_time,
    id_or_none,
    parse_timestamp,
    text_or_none,
    timestamp_ms,
)

__all__ = ["EventContext", "ChangeParser", "parse_envelope", "parse_messaging_event"]


@dataclass(frozen=True, slots=True)
class EventContext:
    """Where one event sits: its channel, the entry's asset id and ``time``, its path."""

    channel: ChannelType
    asset_id: str
    path: str
    entry_time: Any = None
    standby: bool = False


ChangeParser = Callable[[EventContext, dict[str, Any]], ParsedWebhook]

# Variants Meta documents that the appliance deliberately does not use: handover protocol,
# policy enforcement, edits (IG ``message_edit``), account linking, games, payments...
_IGNORED_VARIANTS = frozenset({
    "pass_thread_control", "take_thread_control", "request_thread_control", "app_roles",
    "policy_enforcement", "policy-enforcement", "message_edit", "account_linking",
    "game_play", "checkout_update", "payment", "messaging_feedback", "response_feedback",
})

_MEDIA_KINDS: frozenset[str] = frozenset({"image", "video", "audio", "file"})
_REFERRAL_KEYS = ("ref", "source", "type", "ad_id", "ads_context_data", "referer_uri")
_OPTIN_VALUES = {"STOP_NOTIFICATIONS": "stop", "RESUME_NOTIFICATIONS": "resume"}


def parse_envelope(
    payload: Any, channel: ChannelType, webhook_object: str, parse_change: ChangeParser
) -> ParsedWebhook:
    """Every ``messaging[]``, ``standby[]`` and ``changes[]`` item of every entry."""
    out = ParsedWebhook()
    entries = delivery_entries(payload, webhook_object, out)
    if entries is None:
        return out
    for i, entry in enumerate(entries):
        path = f"entry[{i}]"
        if not isinstance(entry, dict):
            out.problems.append(ParseProblem(path, "the entry is not an object"))
            continue
        asset_id = id_or_none(entry.get("id"))
        if asset_id is None:
            out.problems.append(ParseProblem(f"{path}.id", "missing entry id"))
            continue
        for key in ("messaging", "standby", "changes"):
            items = entry.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                out.problems.append(ParseProblem(f"{path}.{key}", "not a list"))
                continue
            for j, item in enumerate(items):
                ctx = EventContext(
                    channel, asset_id, f"{path}.{key}[{j}]", entry.get("time"), key == "standby"
                )
                if key == "changes":
                    out.extend(_guard(ctx, item, parse_change))
                else:
                    out.extend(parse_messaging_event(ctx, item))
    return out


def _guard(ctx: EventContext, item: Any, parse_change: ChangeParser) -> ParsedWebhook:
    if not isinstance(item, dict):
        return ParsedWebhook(problems=[ParseProblem(ctx.path, "the change is not an object")])
    return parse_change(ctx, item)


def parse_messaging_event(ctx: EventContext, event: Any) -> ParsedWebhook:
    """One item of ``messaging[]``/``standby[]``: at most one event, or a problem, or ignored."""
    out = ParsedWebhook()
    try:
        _parse_event(ctx, event, out)
    except Malformed as exc:
        out.problems.append(ParseProblem(ctx.path + exc.subpath, exc.reason))
    return out


def _parse_event(ctx: EventContext, event: Any, out: ParsedWebhook) -> None:
    if not isinstance(event, dict):
        raise Malformed("the event is not an object")
    for key, handler in _HANDLERS:
        value = event.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise Malformed("not an object", f".{key}")
        handler(ctx, event, value, out)
        return
    if _IGNORED_VARIANTS.intersection(event):
        out.ignored += 1
        return
    raise Malformed("no known event in it")


def _party(event: dict[str, Any], key: str) -> str:
    party = event.get(key)
    found = id_or_none(party.get("id")) if isinstance(party, dict) else None
    if found is None:
        raise Malformed(f"missing {key} id")
    return found


def _when(ctx: EventContext, event: dict[str, Any]) -> datetime:
    when = event_time(event.get("timestamp"), ctx.entry_time)
    if when is None:
        raise Malformed("missing or unreadable timestamp")
    return when


# --- message / echo ---------------------------------------------------------------------------


def _on_message(ctx: EventContext, event: dict, message: dict, out: ParsedWebhook) -> None:
    mid = id_or_none(message.get("mid"))
    if mid is None:
        raise Malformed("message without mid")
    when = _when(ctx, event)
    ch = ctx.channel
    if message.get("is_echo") is True:
        # The business's own message: sender is the page/IG account, recipient the user.
        kind, text, _payload, attachments, _reply = _content(ctx, message, out, echo=True)
        app_id = message.get("app_id")
        out.events.append(Echo(
            channel=ch, asset_id=ctx.asset_id, contact=ContactRef(_party(event, "recipient")),
            occurred_at=when, dedupe_key=f"{ch}:echo:{mid}", external_id=mid, kind=kind,
            text=text, attachments=attachments,
            app_id=None if app_id is None or isinstance(app_id, bool) else str(app_id),
            metadata=text_or_none(message.get("metadata")),
        ))
        return
    sender = _party(event, "sender")
    if message.get("is_deleted") is True:  # Instagram unsend
        out.events.append(MessageRevoked(
            channel=ch, asset_id=ctx.asset_id, contact_external_id=sender, external_id=mid,
            occurred_at=when, dedupe_key=f"{ch}:deleted:{mid}",
        ))
        return
    kind, text, payload, attachments, reply_to = _content(ctx, message, out, echo=False)
    out.events.append(InboundMessage(
        channel=ch, asset_id=ctx.asset_id, contact=ContactRef(sender), kind=kind,
        occurred_at=when, dedupe_key=f"{ch}:mid:{mid}", external_id=mid, text=text,
        payload=payload, attachments=attachments, reply_to=reply_to, standby=ctx.standby,
    ))


def _content(
    ctx: EventContext, message: dict, out: ParsedWebhook, *, echo: bool
) -> tuple[MessageKind, str | None, dict[str, Any], tuple[Attachment, ...], str | None]:
    """Kind, text, payload, attachments and replied-to mid of a ``message`` object."""
    text = text_or_none(message.get("text"))
    payload: dict[str, Any] = {}
    attachments = _attachments(ctx, message.get("attachments"), out)
    reply = message.get("reply_to")
    reply = reply if isinstance(reply, dict) else {}
    story = reply.get("story")
    referral = message.get("referral")
    if isinstance(referral, dict):  # ads / shop product that started the conversation
        payload["referral"] = referral
    kind: MessageKind
    quick_reply = message.get("quick_reply")
    if message.get("is_unsupported") is True:
        kind = "unsupported"
    elif isinstance(quick_reply, dict):
        kind = "quick_reply"
        payload["payload"] = text_or_none(quick_reply.get("payload"))
    elif isinstance(story, dict):
        kind = "story_reply"
        payload["story_id"] = id_or_none(story.get("id"))
        payload["story_url"] = text_or_none(story.get("url"))
    elif attachments:
        kind = _attachment_kind(attachments[0].type, echo)
    elif text is not None:
        kind = "text"
    else:
        kind = "unsupported"
    return kind, text, payload, attachments, id_or_none(reply.get("mid"))


def _attachment_kind(att_type: str, echo: bool) -> MessageKind:
    if att_type in _MEDIA_KINDS:
        return att_type  # type: ignore[return-value]
    if att_type in ("sticker", "location", "story_mention"):
        return att_type  # type: ignore[return-value]
    if att_type == "template" and echo:
        return "template"  # our own generic/button template, echoed back
    return "unsupported"  # share, ig_reel, reel, fallback, template from a user...


def _attachments(ctx: EventContext, raw: Any, out: ParsedWebhook) -> tuple[Attachment, ...]:
    if not isinstance(raw, list):
        return ()
    found = []
    for i, item in enumerate(raw):
        att_type = text_or_none(item.get("type")) if isinstance(item, dict) else None
        if att_type is None:
            out.problems.append(
                ParseProblem(f"{ctx.path}.message.attachments[{i}]", "attachment without type")
            )
            continue
        body = item.get("payload")
        body = body if isinstance(body, dict) else {}
        extra: dict[str, Any] = {}
        for key in ("sticker_id", "title", "coordinates"):
            value = body.get(key, item.get(key))
            if value is not None:
                extra[key] = value
        if "sticker_id" in extra:
            att_type = "sticker"  # Messenger sends stickers as type "image" with a sticker_id
        url = text_or_none(body.get("url")) or text_or_none(item.get("url"))
        found.append(Attachment(type=att_type, url=url, extra=extra))
    return tuple(found)


# --- other variants -----------------------------------------------------------------------------


def _on_postback(ctx: EventContext, event: dict, postback: dict, out: ParsedWebhook) -> None:
    sender, when = _party(event, "sender"), _when(ctx, event)
    mid = id_or_none(postback.get("mid"))  # only since v11.0
    title, data = text_or_none(postback.get("title")), text_or_none(postback.get("payload"))
    payload: dict[str, Any] = {"payload": data, "title": title}
    referral = postback.get("referral")
    if isinstance(referral, dict):
        payload["referral"] = _referral(referral)
    key = mid or f"{sender}:{timestamp_ms(when)}:{digest(data, title)}"
    out.events.append(InboundMessage(
        channel=ctx.channel, asset_id=ctx.asset_id, contact=ContactRef(sender), kind="postback",
        occurred_at=when, dedupe_key=f"{ctx.channel}:postback:{key}", external_id=mid,
        text=title, payload=payload, standby=ctx.standby,
    ))


def _referral(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: raw[k] for k in _REFERRAL_KEYS if raw.get(k) is not None}


def _on_referral(ctx: EventContext, event: dict, referral: dict, out: ParsedWebhook) -> None:
    sender, when = _party(event, "sender"), _when(ctx, event)
    payload = _referral(referral)
    out.events.append(InboundMessage(
        channel=ctx.channel, asset_id=ctx.asset_id, contact=ContactRef(sender), kind="referral",
        occurred_at=when,
        dedupe_key=f"{ctx.channel}:referral:{sender}:{timestamp_ms(when)}:{digest(payload)}",
        payload=payload, standby=ctx.standby,
    ))


def _on_reaction(ctx: EventContext, event: dict, reaction: dict, out: ParsedWebhook) -> None:
    sender, when = _party(event, "sender"), _when(ctx, event)
    target = id_or_none(reaction.get("mid"))
    if target is None:
        raise Malformed("reaction without mid", ".reaction")
    action = text_or_none(reaction.get("action")) or "react"
    out.events.append(InboundMessage(
        channel=ctx.channel, asset_id=ctx.asset_id, contact=ContactRef(sender), kind="reaction",
        occurred_at=when,
        dedupe_key=f"{ctx.channel}:reaction:{sender}:{target}:{timestamp_ms(when)}:{action}",
        payload={"target": target, "action": action,
                 "reaction": text_or_none(reaction.get("reaction")),
                 "emoji": text_or_none(reaction.get("emoji"))},
        opens_window=False, standby=ctx.standby,
    ))


def _watermark(raw: dict[str, Any], key: str) -> datetime | None:
    if raw.get("watermark") is None:
        return None
    watermark = parse_timestamp(raw["watermark"])
    if watermark is None:
        raise Malformed("unreadable watermark", f".{key}.watermark")
    return watermark


def _on_delivery(ctx: EventContext, event: dict, delivery: dict, out: ParsedWebhook) -> None:
    sender, when = _party(event, "sender"), _when(ctx, event)
    mids = delivery.get("mids")
    ids = tuple(m for m in map(id_or_none, mids if isinstance(mids, list) else ()) if m)
    watermark = _watermark(delivery, "delivery")
    if watermark is None and not ids:
        raise Malformed("delivery without mids or watermark", ".delivery")
    key = timestamp_ms(watermark) if watermark else digest(sorted(ids))
    out.events.append(StatusUpdate(
        channel=ctx.channel, asset_id=ctx.asset_id, contact_external_id=sender,
        status="delivered", occurred_at=when,
        dedupe_key=f"{ctx.channel}:delivered:{sender}:{key}", external_ids=ids,
        watermark=watermark,
    ))


def _on_read(ctx: EventContext, event: dict, read: dict, out: ParsedWebhook) -> None:
    sender, when = _party(event, "sender"), _when(ctx, event)
    watermark = _watermark(read, "read")  # Messenger
    mid = id_or_none(read.get("mid"))  # Instagram
    if watermark is None and mid is None:
        raise Malformed("read without mid or watermark", ".read")
    key = f"{sender}:{timestamp_ms(watermark)}" if watermark else mid
    out.events.append(StatusUpdate(
        channel=ctx.channel, asset_id=ctx.asset_id, contact_external_id=sender,
        status="read", occurred_at=when, dedupe_key=f"{ctx.channel}:read:{key}",
        external_ids=(mid,) if mid else (), watermark=watermark,
    ))


def _on_optin(ctx: EventContext, event: dict, optin: dict, out: ParsedWebhook) -> None:
    if optin.get("type") != "notification_messages":
        out.ignored += 1  # one-time notifications, checkbox plugin, send-to-messenger
        return
    sender, when = _party(event, "sender"), _when(ctx, event)
    # The same event reports the first opt-in and later STOP / RESUME taps.
    value = _OPTIN_VALUES.get(optin.get("notification_messages_status"), "opt_in")
    out.events.append(PreferenceChange(
        channel=ctx.channel, asset_id=ctx.asset_id, contact=ContactRef(sender),
        topic="marketing", value=value, occurred_at=when,  # type: ignore[arg-type]
        dedupe_key=f"{ctx.channel}:optin:{sender}:{timestamp_ms(when)}:{value}",
    ))


_HANDLERS: tuple[tuple[str, Callable[[EventContext, dict, dict, ParsedWebhook], None]], ...] = (
    ("message", _on_message),
    ("postback", _on_postback),
    ("referral", _on_referral),
    ("reaction", _on_reaction),
    ("delivery", _on_delivery),
    ("read", _on_read),
    ("optin", _on_optin),
)
