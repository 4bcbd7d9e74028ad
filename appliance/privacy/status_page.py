"""The human-readable status page of a deletion request (``GET /data-deletion/{code}``).

Meta links people to it from their Facebook settings: it must say, in plain words, what was
erased and when, or why not. Every value is HTML-escaped; the page loads nothing else.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render", "render_unknown", "HEADERS"]

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_CHANNELS = {"messenger": "Messenger", "instagram": "Instagram", "whatsapp": "WhatsApp"}

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1f2328}"
    "h1{font-size:1.4rem}dt{font-weight:600}dd{margin:0 0 .75rem}.note{color:#59636e;font-size:.9rem}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _when(iso: str | None) -> str:
    """``2026-11-26T19:18:07.123Z`` -> ``2026-11-26 19:18 UTC``."""
    if not iso:
        return ""
    return f"{iso[:10]} {iso[11:16]} UTC"


def _outcome(request: dict[str, Any], business: str) -> str:
    status = request["status"]
    if status == "pending":
        return (f"<p>Your request is scheduled. {escape(business)} will erase the data tied to your "
                f"account on <strong>{escape(_when(request['due_at']))}</strong>.</p>")
    if status == "refused":
        return (f"<p>Your request was <strong>refused</strong> on {escape(_when(request['completed_at']))}. "
                f"Reason: {escape(request['reason'] or 'not given')}</p>")
    if request["contacts_erased"] == 0:
        return (
            f"<p>Completed on <strong>{escape(_when(request['completed_at']))}</strong>: we found no "
            f"conversation with {escape(business)} tied to the account Meta named, so there was nothing "
            "to erase.</p><p>Why this can happen: Meta identifies you to us by an id that is specific to "
            "this app. It is often different from the id under which your Messenger, Instagram or "
            "WhatsApp conversation with the business is stored, and then we cannot connect the two. "
            "If you wrote to the business and want those messages erased, ask the business directly, "
            "for example by writing to it on the same channel.</p>"
        )
    channels = ", ".join(_CHANNELS.get(c, c) for c in request["channels"]) or "its channels"
    messages = request["messages_erased"]
    return (
        f"<p>Completed on <strong>{escape(_when(request['completed_at']))}</strong>. We erased "
        f"{request['contacts_erased']} contact record{'s' if request['contacts_erased'] != 1 else ''} "
        f"on {escape(channels)}: your profile as we knew it, your conversation with "
        f"{escape(business)} and its {messages} message{'s' if messages != 1 else ''}, the tags, "
        "fields and automation history tied to you, and the copies of Meta's notifications that "
        "mentioned you. They cannot be recovered.</p>"
    )


def render(request: dict[str, Any], business: str) -> str:
    business = business or "The business"
    kind = ("a request to delete your data" if request["kind"] == "data_deletion"
            else "the removal of this app from your account")
    body = (
        "<h1>Data deletion request</h1>"
        f"<dl><dt>Confirmation code</dt><dd><code>{escape(request['code'])}</code></dd>"
        f"<dt>Received</dt><dd>{escape(_when(request['requested_at']))}, from Meta, after {escape(kind)}</dd>"
        f"<dt>Status</dt><dd>{escape(request['status'])}</dd></dl>"
        f"{_outcome(request, business)}"
        "<p class=\"note\">What we keep: a record that this erasure happened and when, without "
        "anything that identifies you. Billing records of the business are not about you and are "
        "not affected.</p>"
    )
    return _page("Data deletion request", body)


def render_unknown() -> str:
    return _page(
        "Data deletion request",
        "<h1>Data deletion request</h1><p>There is no request with this confirmation code. Check "
        "the link; codes are 20 letters and digits.</p>",
    )
