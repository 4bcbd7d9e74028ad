"""What to send, independent of channel, and what came back.

The outbox builds an :class:`Outbound` from a stored message; an adapter's ``render`` turns it
into one or more Graph API request bodies (Messenger cannot carry text and an attachment in one
message, so that is two requests), and ``send`` posts one body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Recipient",
    "Button",
    "Card",
    "Media",
    "Template",
    "Outbound",
    "ChannelAccount",
    "GraphError",
    "SendResult",
    "RenderError",
]


class RenderError(ValueError):
    """The message cannot be expressed on this channel (too many buttons, URL button on a
    channel without native buttons, template on Messenger...). The message is not sent."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who receives it. ``comment_id`` makes it a private reply to that comment."""

    external_id: str | None = None  # PSID / IGSID / WhatsApp BSUID or wa_id
    wa_id: str | None = None
    bsuid: str | None = None
    comment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A reply button (``payload``), a link (``url``) or a call button (``phone``)."""

    title: str
    payload: str | None = None
    url: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    title: str
    subtitle: str | None = None
    image_url: str | None = None
    url: str | None = None  # default action when the card is tapped
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Media:
    type: Literal["image", "video", "audio", "file"]
    url: str


@dataclass(frozen=True, slots=True)
class Template:
    """A WhatsApp message template; ``components`` are passed through as Meta defines them."""

    name: str
    language: str
    components: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to one recipient.

    ``messaging_type``/``tag`` are decided by the policy (``RESPONSE`` inside the window,
    ``MESSAGE_TAG`` + ``HUMAN_AGENT`` for a human between 24 h and 7 days). ``metadata`` is our
    message id; Meta echoes it back (Messenger ``metadata``, WhatsApp
    ``biz_opaque_callback_data``) so an echo or status can be matched to the send.
    """

    recipient: Recipient
    text: str | None = None
    media: Media | None = None
    buttons: tuple[Button, ...] = ()
    quick_replies: tuple[Button, ...] = ()
    cards: tuple[Card, ...] = ()
    template: Template | None = None
    messaging_type: Literal["RESPONSE", "UPDATE", "MESSAGE_TAG"] = "RESPONSE"
    tag: str | None = None
    reply_to: str | None = None
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelAccount:
    """A connected asset with its decrypted token, as the sender needs it."""

    id: int
    type: Literal["messenger", "instagram", "whatsapp"]
    external_id: str
    access_token: str
    page_id: str | None = None
    waba_id: str | None = None


@dataclass(frozen=True, slots=True)
class GraphError:
    """A Graph API error (``{"error": {...}}``), or a transport failure (``code`` None).

    Branch on ``code``/``subcode``, never on ``message`` (docs/spec/meta-platform.md §Shared).
    """

    code: int | None
    message: str
    subcode: int | None = None
    http_status: int | None = None
    fbtrace_id: str | None = None
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    external_id: str | None = None
    error: GraphError | None = None
    retry_after: float | None = None  # seconds, when Meta says how long to wait
    raw: Mapping[str, Any] = field(default_factory=dict)
    # No answer came (timeout, dropped connection): Meta may have received it, or still may.
    in_doubt: bool = False
