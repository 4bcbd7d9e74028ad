"""What a webhook delivery means, independent of the channel that sent it.

Adapters turn Meta's payloads into these immutable values (pure functions, no I/O); the ingest
processor stores them. Every event carries:

- ``channel`` and ``asset_id`` (the page id, Instagram account id or WhatsApp
  ``phone_number_id`` it arrived for: the routing key to a connected channel),
- ``occurred_at``: Meta's own timestamp (the 24-hour window runs from it),
- ``dedupe_key``: the same real-world event delivered twice has the same key
  (``docs/spec/meta-platform.md`` §7: ``mid``, ``wamid``, ``(wamid, status)``, comment id + verb).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ChannelType",
    "MessageKind",
    "ContactRef",
    "Attachment",
    "InboundMessage",
    "Echo",
    "StatusUpdate",
    "MessageRevoked",
    "PreferenceChange",
    "TemplateStatus",
    "InboundEvent",
    "ParseProblem",
    "ParsedWebhook",
    "SendError",
]

ChannelType = Literal["messenger", "instagram", "whatsapp"]

MessageKind = Literal[
    "text", "image", "video", "audio", "file", "sticker", "location", "contacts", "reaction",
    "story_mention", "story_reply", "comment", "postback", "quick_reply", "button",
    "interactive", "referral", "template", "unsupported",
]


@dataclass(frozen=True, slots=True)
class ContactRef:
    """The person on the other side, as the channel identifies them.

    ``external_id`` is the PSID (Messenger), IGSID (Instagram), or on WhatsApp the
    business-scoped user id (``user_id``) when Meta sends one, else ``wa_id``.
    """

    external_id: str
    name: str | None = None
    username: str | None = None
    wa_id: str | None = None
    bsuid: str | None = None
    parent_bsuid: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A piece of media or structured content; ``url`` may be short-lived (Meta's CDN)."""

    type: str  # image | video | audio | file | sticker | location | story_mention | share | ...
    url: str | None = None
    media_id: str | None = None  # WhatsApp media id (download with GET /{media_id})
    mime_type: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # sha256, filename, coordinates ...


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """Something the contact did that belongs in the conversation: a message, a button tap, a
    comment, a story reply, a referral, a reaction.

    ``opens_window`` says whether it (re)opens Meta's 24-hour messaging window; comments and
    reactions do not. ``standby`` marks events delivered while another app owns the thread
    (handover protocol): they are stored but never answered by automation.
    """

    channel: ChannelType
    asset_id: str
    contact: ContactRef
    kind: MessageKind
    occurred_at: datetime
    dedupe_key: str
    external_id: str | None = None
    text: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None
    opens_window: bool = True
    standby: bool = False


@dataclass(frozen=True, slots=True)
class Echo:
    """A message the business sent, reported back by Meta: from this app (``metadata`` carries
    our message id), another app (``app_id``), or a person in Meta's own inbox. Recorded as
    outbound (``sent_by: echo``); never the contact's words; never triggers automation.
    """

    channel: ChannelType
    asset_id: str
    contact: ContactRef  # the recipient
    occurred_at: datetime
    dedupe_key: str
    external_id: str
    kind: MessageKind = "text"
    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    app_id: str | None = None
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class SendError:
    code: int | None
    message: str
    subcode: int | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Meta reports on outbound messages: ``sent``, ``delivered``, ``read`` or ``failed``.

    Either explicit ``external_ids`` (WhatsApp ``statuses[].id``, Messenger ``delivery.mids``,
    Instagram ``read.mid``) or a ``watermark``: every outbound message to this contact sent at
    or before it (Messenger ``delivery``/``read``). ``callback_data`` is WhatsApp's
    ``biz_opaque_callback_data``, which carries our message id.
    """

    channel: ChannelType
    asset_id: str
    contact_external_id: str | None
    status: Literal["sent", "delivered", "read", "failed"]
    occurred_at: datetime
    dedupe_key: str
    external_ids: tuple[str, ...] = ()
    watermark: datetime | None = None
    error: SendError | None = None
    callback_data: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRevoked:
    """The contact unsent a message (Instagram ``is_deleted``): its content is removed."""

    channel: ChannelType
    asset_id: str
    contact_external_id: str
    external_id: str
    occurred_at: datetime
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class PreferenceChange:
    """Marketing consent changed: WhatsApp ``user_preferences`` (stop/resume), Messenger
    ``optin`` for marketing messages (opt_in, stop, resume)."""

    channel: ChannelType
    asset_id: str
    contact: ContactRef
    topic: Literal["marketing"]
    value: Literal["opt_in", "stop", "resume"]
    occurred_at: datetime
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class TemplateStatus:
    """Meta reviewed, paused, disabled or reinstated a WhatsApp message template
    (``message_template_status_update``). ``asset_id`` is the WhatsApp Business Account id
    (the template belongs to the account, not to one number): no channel is looked up for it.
    ``status`` is Meta's ``event`` (``APPROVED``, ``REJECTED``, ``PAUSED``, ``DISABLED`` ...)."""

    channel: ChannelType
    asset_id: str
    template_id: str | None
    name: str
    language: str
    status: str
    occurred_at: datetime
    dedupe_key: str
    category: str | None = None
    reason: str | None = None


InboundEvent = InboundMessage | Echo | StatusUpdate | MessageRevoked | PreferenceChange | TemplateStatus


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """Part of a delivery that could not be understood. ``path`` locates it
    (``entry[0].messaging[2]``); ``reason`` says why and never quotes the content."""

    path: str
    reason: str


@dataclass(slots=True)
class ParsedWebhook:
    """The result of parsing one delivery: the events, the problems, and how many parts were
    understood but deliberately not used (handover notices, account updates, self-comments)."""

    events: list[InboundEvent] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)
    ignored: int = 0

    def extend(self, other: ParsedWebhook) -> None:
        self.events.extend(other.events)
        self.problems.extend(other.problems)
        self.ignored += other.ignored
