"""View models: stored rows turned into what a template shows, so the templates hold markup
and the decisions live here, where they are tested as plain functions.

Nothing here escapes anything: the templates autoescape every value. What this module does
guard is URLs, which escaping does not make safe: only ``https:`` (and for links ``http:``)
URLs are ever put in an ``href`` or ``src`` (:func:`safe_url`); anything else (``javascript:``,
``data:``) is shown as text, or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from appliance.outbox.policy import HUMAN_AGENT_WINDOW, WINDOW
from appliance.timeutil import from_iso

__all__ = [
    "safe_url", "message_view", "note_view", "conversation_view", "composer_state", "Composer",
    "local_time", "CHANNEL_NAMES", "duration_text",
]

CHANNEL_NAMES = {"messenger": "Messenger", "instagram": "Instagram", "whatsapp": "WhatsApp"}

_STATUS = {
    "received": None, "queued": "Sending…", "sent": "Sent", "delivered": "Delivered", "read": "Read",
    "failed": "Not delivered",
}
_MEDIA_LABEL = {"image": "Photo", "video": "Video", "audio": "Voice or audio message", "file": "File",
                "sticker": "Sticker", "story_mention": "Mentioned you in their story", "share": "Shared a post",
                "ig_reel": "Shared a reel", "reel": "Shared a reel", "fallback": "Shared a link",
                "location": "Location", "template": "Card"}
_KIND_LABEL = {
    "story_reply": "Replied to your story", "story_mention": "Mentioned you in their story",
    "comment": "Commented on your post", "postback": "Tapped a button", "quick_reply": "Tapped a quick reply",
    "button": "Tapped a template button", "interactive": "Answered", "referral": "Came from a link or ad",
    "reaction": "Reacted", "template": "Template", "contacts": "Shared contacts", "location": "Shared a location",
    "unsupported": "A message this inbox cannot show (open it in the Meta app)",
}


def safe_url(url: Any, *, allow_http: bool = False) -> str | None:
    """``url`` when it is an absolute https URL (http too for plain links), else ``None``."""
    if not isinstance(url, str) or len(url) > 4000:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes or not parts.netloc:
        return None
    return url.strip()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_time(iso: str | None, zone: ZoneInfo) -> dict[str, str] | None:
    """``{"iso", "clock", "day", "full"}`` of a stored UTC time, in the workspace's zone
    (``13:05``, ``Thu 26 Nov 2026``, ``26 Nov 2026, 13:05 CET``). Formatted by hand, not with
    ``strftime``: a 500-message thread formats 500 times, and ``strftime`` was a fifth of it."""
    if not iso:
        return None
    moment = from_iso(iso).astimezone(zone)
    clock = f"{moment.hour:02d}:{moment.minute:02d}"
    date = f"{moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year:04d}"
    return {"iso": iso, "clock": clock, "day": f"{_DAYS[moment.weekday()]} {date}",
            "full": f"{date}, {clock} {moment.tzname()}"}


def duration_text(delta: timedelta) -> str:
    """``2 d 3 h`` / ``5 h 12 min`` / ``7 min``: how long is left, for people."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, (dict, list)):
        return value
    if value == ("{}" if isinstance(default, dict) else "[]"):
        return default  # most rows: no payload, no attachments
    try:
        return json.loads(value) if value else default
    except (TypeError, ValueError):
        return default


def _attachment_view(item: dict[str, Any]) -> dict[str, Any]:
    kind = str(item.get("type") or "file")
    url = safe_url(item.get("url"))
    view: dict[str, Any] = {"type": kind, "label": _MEDIA_LABEL.get(kind, "Attachment"), "url": url,
                            "show": None, "title": item.get("title") or item.get("filename")}
    if url and kind in ("image", "sticker", "story_mention"):
        view["show"] = "image"
    elif url and kind == "video":
        view["show"] = "video"
    elif url and kind == "audio":
        view["show"] = "audio"
    elif url:
        view["show"] = "link"
    if kind == "location":
        coordinates = item.get("coordinates") if isinstance(item.get("coordinates"), dict) else {}
        lat = item.get("latitude", coordinates.get("lat"))
        long = item.get("longitude", coordinates.get("long"))
        if isinstance(lat, (int, float)) and isinstance(long, (int, float)):
            view["title"] = item.get("name") or item.get("address") or f"{lat:.5f}, {long:.5f}"
            view["url"] = f"https://www.openstreetmap.org/?mlat={lat}&mlon={long}#map=16/{lat}/{long}"
            view["show"] = "link"
    if item.get("media_id") and not url:
        view["note"] = "WhatsApp media: open it in the WhatsApp Business app"
    return view


def _sender(row: dict[str, Any], payload: dict[str, Any], contact_name: str, users: dict[int, str]) -> tuple[str, str]:
    """``(who, role)``: the name shown above a message and its kind of author."""
    sent_by = row["sent_by"]
    if sent_by == "contact":
        return contact_name, "contact"
    if sent_by == "user":
        return users.get(row.get("sent_by_user_id") or 0, "An agent"), "agent"
    if sent_by == "echo":
        return "Sent outside this inbox", "echo"
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    if meta.get("provider") or meta.get("passages") is not None:
        return "AI assistant", "ai"
    return "Bot", "bot"


def _context(kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """What a message refers to: the story, the post, the button, the ad."""
    if kind == "story_reply":
        return {"label": "Replied to your story", "url": safe_url(payload.get("story_url")), "link": "Open the story"}
    if kind == "comment":
        url = safe_url(payload.get("permalink_url"))
        post = payload.get("post_id") or payload.get("media_id")
        label = "Replied to a comment on your post" if payload.get("parent_id") else "Commented on your post"
        return {"label": label + (" (live)" if payload.get("live") else ""), "url": url,
                "link": "Open the post", "detail": None if url else (f"Post {post}" if post else None)}
    if kind in ("postback", "quick_reply", "button"):
        return {"label": _KIND_LABEL[kind], "detail": payload.get("title")}
    if kind == "interactive":
        answer = payload.get("title") or payload.get("name")
        return {"label": "Answered a WhatsApp form" if payload.get("type") == "nfm_reply" else "Picked an option",
                "detail": answer}
    if kind == "referral" or payload.get("referral"):
        referral = payload.get("referral") if isinstance(payload.get("referral"), dict) else payload
        source = referral.get("source") or referral.get("source_type") or referral.get("type")
        ref = referral.get("ref") or referral.get("ad_id") or referral.get("source_id")
        return {"label": "Came from " + ("an ad" if referral.get("ad_id") or source == "ad" else "a link"),
                "detail": " · ".join(str(v) for v in (source, ref) if v),
                "url": safe_url(referral.get("source_url") or referral.get("referer_uri"), allow_http=True),
                "link": "Open the source"}
    if kind == "reaction":
        emoji = payload.get("emoji") or payload.get("reaction")
        removed = payload.get("action") == "unreact"
        return {"label": "Removed a reaction" if removed else f"Reacted {emoji or ''}".strip()}
    if kind == "template":
        template = payload.get("template") if isinstance(payload.get("template"), dict) else {}
        if template:
            return {"label": "WhatsApp template", "detail": f"{template.get('name')} ({template.get('language')})"}
    if kind == "contacts":
        cards = payload.get("contacts") if isinstance(payload.get("contacts"), list) else []
        names = [str((c.get("name") or {}).get("formatted_name") or "") for c in cards if isinstance(c, dict)]
        return {"label": "Shared contacts", "detail": ", ".join(n for n in names if n) or None}
    if kind == "unsupported":
        return {"label": _KIND_LABEL["unsupported"]}
    return None


def message_view(row: dict[str, Any], *, contact_name: str, users: dict[int, str], zone: ZoneInfo) -> dict[str, Any]:
    """One message as the thread shows it (see the module docstring about URLs)."""
    payload = _json(row.get("payload"), {})
    attachments = [_attachment_view(a) for a in _json(row.get("attachments"), []) if isinstance(a, dict)]
    who, role = _sender(row, payload, contact_name, users)
    kind = row["kind"]
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    passages = [p for p in meta.get("passages") or [] if isinstance(p, dict)]
    buttons = [b.get("title") for b in (payload.get("buttons") or []) + (payload.get("quick_replies") or [])
               if isinstance(b, dict) and b.get("title")]
    cards = [{"title": c.get("title"), "subtitle": c.get("subtitle"), "image": safe_url(c.get("image_url"))}
             for c in payload.get("cards") or [] if isinstance(c, dict)]
    error = None
    if row.get("error_code") is not None or row.get("error_message") is not None:
        error = {"code": row.get("error_code"), "message": row.get("error_message") or "Meta refused the message"}
    context = _context(kind, payload)
    if context and context.get("detail") == row.get("text"):
        context["detail"] = None  # a button's title is already the message's text
    return {
        "id": row["id"],
        "direction": row["direction"],
        "kind": kind,
        "who": who,
        "role": role,
        "text": row.get("text"),
        "deleted": bool(payload.get("deleted")),
        "attachments": attachments,
        "context": context,
        "buttons": buttons,
        "cards": cards,
        "passages": passages,
        "ai_model": meta.get("model"),
        "status": row["status"],
        "status_label": _STATUS.get(row["status"]),
        "error": error,
        "human_agent": row.get("tag") == "HUMAN_AGENT",
        "standby": bool(payload.get("standby")),
        "forwarded": bool(payload.get("forwarded") or payload.get("frequently_forwarded")),
        "time": local_time(row.get("occurred_at") or row.get("created_at"), zone),
        "created_at": row.get("created_at"),
    }


def note_view(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    author = row.get("author_name") or row.get("author") or "AI assistant"
    return {"id": row["id"], "text": row["text"], "who": author, "time": local_time(row["created_at"], zone),
            "created_at": row["created_at"]}


def _preview(last: dict[str, Any] | None) -> str:
    if last is None:
        return "No messages yet"
    text = (last.get("text") or "").strip()
    if not text:
        text = _KIND_LABEL.get(last["kind"]) or _MEDIA_LABEL.get(last["kind"]) or last["kind"]
    prefix = "You: " if last["direction"] == "out" else ""
    return (prefix + " ".join(text.split()))[:140]


def conversation_view(row: dict[str, Any], last: dict[str, Any] | None, zone: ZoneInfo,
                      users: dict[int, str]) -> dict[str, Any]:
    name = row["contact_name"] or row["contact_username"] or f"{CHANNEL_NAMES[row['channel']]} contact"
    return {
        "id": row["id"],
        "name": name,
        "initial": name[:1].upper(),
        "channel": row["channel"],
        "channel_name": CHANNEL_NAMES[row["channel"]],
        "status": row["status"],
        "unread": row["unread_count"],
        "assignee": users.get(row["assignee_id"]) if row["assignee_id"] else None,
        "assignee_id": row["assignee_id"],
        "bot_paused": bool(row["bot_paused"]),
        "preview": _preview(last),
        "time": local_time(row["last_message_at"], zone),
    }


@dataclass(frozen=True, slots=True)
class Composer:
    """What the agent can send now, and why (docs: appliance/outbox/policy.py).

    ``mode``: ``free`` (inside the 24-hour window), ``human_agent`` (Messenger/Instagram, 24 h
    to 7 days: sent with the HUMAN_AGENT tag), ``template`` (WhatsApp after 24 h: only an
    approved template), ``blocked`` (nothing can be sent; ``reason`` says why).
    """

    mode: str
    notice: str
    until: datetime | None = None


def composer_state(channel: str, channel_status: str, last_inbound_at: str | None, now: datetime) -> Composer:
    """Mirrors :func:`appliance.outbox.policy.decide` for a human reply (composer.js does the same
    in the browser, to keep the countdown live)."""
    if channel_status != "active":
        state = "needs to be reconnected" if channel_status == "needs_reauth" else "is disconnected"
        return Composer("blocked", f"This {CHANNEL_NAMES[channel]} channel {state}: nothing can be sent until "
                                   "an admin reconnects it in Settings → Channels.")
    last = from_iso(last_inbound_at) if last_inbound_at else None
    age = now - last if last else None
    if age is not None and age < WINDOW:
        until = last + WINDOW  # type: ignore[operator]
        return Composer("free", f"Reply window open: {duration_text(until - now)} left.", until)
    if channel == "whatsapp":
        return Composer("template", "More than 24 hours since the contact's last message: WhatsApp allows only "
                                    "an approved template until they write again.")
    if age is not None and age < HUMAN_AGENT_WINDOW:
        until = last + HUMAN_AGENT_WINDOW  # type: ignore[operator]
        return Composer("human_agent", "The 24-hour window has closed. A person may still reply for "
                                       f"{duration_text(until - now)}: your reply is sent with Meta's HUMAN_AGENT "
                                       "tag. Automated messages cannot be sent.", until)
    if last is None:
        return Composer("blocked", "This contact has not sent you a direct message yet: Meta allows no message until they "
                                      "do.")
    return Composer("blocked", "The contact has not written in the last 7 days: Meta allows no message until "
                               "they write again.")
