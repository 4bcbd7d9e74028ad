"""Applying parsed events to the workspace, inside the writer's transaction.

One journal row is applied atomically with the row's own state change: either every event of
the delivery is stored and the row is ``processed``/``failed``, or nothing is (a crash replays
it). Each event runs in its own savepoint (a delivery of one event: the delivery's, see
``within``), so one event that fails (a bug, a constraint) is recorded as a problem and the
others are still stored (the journal processor first tries a whole chunk ``unguarded``, and
applies it this way only if something failed). Dedupe keys are claimed in the same
savepoint as the event's effects, so a replayed delivery is stored once, and answered once:
flows react to a new message inside that same savepoint (:func:`appliance.flows.runner.on_inbound`).

A WhatsApp template status (:class:`TemplateStatus`) concerns a Business Account, not a number:
it updates the template catalogue and looks up no channel. A failed status with code 131050
(the contact stopped marketing messages) records the contact's marketing opt-out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from appliance.broadcasts import catalogue
from appliance.channels.events import (
    Attachment,
    Echo,
    InboundEvent,
    InboundMessage,
    MessageRevoked,
    ParsedWebhook,
    PreferenceChange,
    StatusUpdate,
    TemplateStatus,
)
from appliance.connections.store import channel_for_asset
from appliance.flows import runner
from appliance.flows.runner import Followups, InboundFacts, Snapshot
from appliance.contacts import store as contacts
from appliance.inbox import store as inbox
from appliance.ingest import journal
from appliance.store.savepoint import savepoint
from appliance.outbox import store as outbox
from appliance.store.rows import scalar
from appliance.timeutil import to_iso

__all__ = ["InboundNote", "ApplySummary", "apply_delivery"]

# WhatsApp: "user stopped marketing messages" (docs/spec/meta-platform.md §7).
MARKETING_STOPPED = 131050


@dataclass(frozen=True, slots=True)
class InboundNote:
    """A stored message from a contact, for what reacts to it (flows, live updates)."""

    message_id: int
    contact_id: int
    conversation_id: int
    channel_id: int
    new_contact: bool
    event: InboundMessage


@dataclass(slots=True)
class ApplySummary:
    journal_id: int
    events: int = 0
    duplicates: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)
    inbound: list[InboundNote] = field(default_factory=list)
    changed_messages: list[int] = field(default_factory=list)
    changed_conversations: set[int] = field(default_factory=set)
    followups: Followups = field(default_factory=Followups)
    executors: frozenset[str] = frozenset()
    snapshot: Snapshot | None = None


def _attachments(items: tuple[Attachment, ...]) -> list[dict[str, Any]]:
    result = []
    for item in items:
        entry: dict[str, Any] = {"type": item.type, "url": item.url}
        if item.media_id:
            entry["media_id"] = item.media_id
        if item.mime_type:
            entry["mime_type"] = item.mime_type
        entry.update(item.extra)
        result.append(entry)
    return result


def _contact_and_conversation(
    db: Database, channel_id: int, ref: Any, journal_id: int, now: str, *, inbound_at: str | None = None
) -> tuple[int, int, bool]:
    contact_id, created = contacts.upsert_contact(db, channel_id, ref, now, inbound_at=inbound_at)
    conversation_id = inbox.ensure_conversation(db, contact_id, channel_id, now, new_contact=created)
    journal.link_contact(db, journal_id, contact_id)
    return contact_id, conversation_id, created


def _apply_inbound(db: Database, ch: dict[str, Any], ev: InboundMessage, s: ApplySummary, now: str) -> None:
    occurred = to_iso(ev.occurred_at)
    counts_unread = ev.kind != "reaction"
    # _contact_and_conversation, but a new contact's conversation is created as this message
    # leaves it (inbox.open_conversation_for): no UPDATE of it right after.
    contact_id, created = contacts.upsert_contact(db, ch["id"], ev.contact, now,
                                                  inbound_at=occurred if ev.opens_window else None)
    if created:
        conversation_id = inbox.open_conversation_for(db, contact_id, ch["id"], now, occurred_at=occurred,
                                                      counts_unread=counts_unread)
    else:
        conversation_id = inbox.ensure_conversation(db, contact_id, ch["id"], now)
    journal.link_contact(db, s.journal_id, contact_id)
    if ev.opens_window and not created:
        contacts.touch_inbound(db, contact_id, occurred)
    payload = dict(ev.payload)
    if ev.standby:
        payload["standby"] = True
    message_id = inbox.record_inbound(
        db,
        conversation_id,
        {
            "contact_id": contact_id,
            "channel_id": ch["id"],
            "direction": "in",
            "kind": ev.kind,
            "text": ev.text,
            "payload": payload,
            "attachments": _attachments(ev.attachments),
            "external_id": ev.external_id,
            "reply_to": ev.reply_to,
            "status": "received",
            "sent_by": "contact",
            "occurred_at": occurred,
            "created_at": now,
        },
        counts_unread=counts_unread,
        now=now,
        fresh=created,
    )
    if message_id is None:
        s.duplicates += 1
        return
    s.changed_messages.append(message_id)
    s.changed_conversations.add(conversation_id)
    s.inbound.append(InboundNote(message_id, contact_id, conversation_id, ch["id"], created, ev))
    if ev.standby or ev.kind == "reaction":
        return  # another app owns the thread, or nothing to answer
    first_words = created or not scalar(
        db, "SELECT 1 FROM messages WHERE contact_id = ? AND direction = 'in' AND kind != 'comment' "
            "AND id != ? LIMIT 1", [contact_id, message_id])
    facts = InboundFacts(
        contact_id=contact_id, conversation_id=conversation_id, channel=ev.channel, kind=ev.kind,
        text=ev.text, payload=payload, new_contact=bool(first_words) and ev.kind != "comment",
        occurred_at=occurred, channel_id=ch["id"], conversation_announced=True,  # by record_inbound
        contact_created=created,
        contact_view=runner.created_contact_view(contact_id, ch["type"], ev.contact.name) if created else None,
    )
    s.followups.merge(runner.on_inbound(db, facts, now, seed=random.randrange(2**31), executors=s.executors,
                                        snapshot=s.snapshot))


def _apply_echo(db: Database, ch: dict[str, Any], ev: Echo, s: ApplySummary, now: str) -> None:
    contact_id, conversation_id, _ = _contact_and_conversation(db, ch["id"], ev.contact, s.journal_id, now)
    ref = outbox.parse_reference(ev.metadata)
    ours = inbox.find_outbound_by_reference(
        db, ch["id"], external_id=ev.external_id, message_id=ref[0] if ref else None
    )
    if ours is not None:
        # Our own send coming back: settle it, never store it a second time.
        outbox.settle(db, ours, ref[1] if ref else 0, ev.external_id, now)
        if inbox.advance_status(db, ours, "sent", now, external_id=ev.external_id):
            s.changed_messages.append(ours)
        return
    occurred = to_iso(ev.occurred_at)
    message_id = inbox.record_inbound(
        db,
        conversation_id,
        {
            "contact_id": contact_id,
            "channel_id": ch["id"],
            "direction": "out",
            "kind": ev.kind,
            "text": ev.text,
            "payload": {"app_id": ev.app_id} if ev.app_id else {},
            "attachments": _attachments(ev.attachments),
            "external_id": ev.external_id,
            "status": "sent",
            "sent_by": "echo",
            "occurred_at": occurred,
            "sent_at": occurred,
            "created_at": now,
        },
        counts_unread=False,
        now=now,
    )
    if message_id is None:
        s.duplicates += 1
        return
    s.changed_messages.append(message_id)
    s.changed_conversations.add(conversation_id)


def _apply_status(db: Database, ch: dict[str, Any], ev: StatusUpdate, s: ApplySummary, now: str) -> None:
    ref = outbox.parse_reference(ev.callback_data)
    error = (str(ev.error.code) if ev.error and ev.error.code is not None else None,
             ev.error.message if ev.error else None)
    for external_id in ev.external_ids or ((None,) if ref else ()):
        ours = inbox.find_outbound_by_reference(
            db, ch["id"], external_id=external_id, message_id=ref[0] if ref else None
        )
        if ours is None:
            continue
        if ev.status != "failed":
            outbox.settle(db, ours, ref[1] if ref else 0, external_id, now)
        if inbox.advance_status(db, ours, ev.status, now, external_id=external_id, error=error):
            s.changed_messages.append(ours)
        if ev.error is not None and ev.error.code == MARKETING_STOPPED:
            contacts.set_marketing_preference(db, inbox.get_message(db, ours)["contact_id"], True, now)
    if ev.watermark is not None and ev.contact_external_id and ev.status in ("delivered", "read"):
        row = db.execute(
            """SELECT cv.id FROM conversations cv JOIN contacts c ON c.id = cv.contact_id
               WHERE c.channel_id = ? AND c.external_id = ?""",
            [ch["id"], ev.contact_external_id],
        ).fetchone()
        if row is not None:
            s.changed_messages.extend(
                inbox.advance_status_by_watermark(db, row[0], ev.status, to_iso(ev.watermark), now)
            )


def _apply_revoked(db: Database, ch: dict[str, Any], ev: MessageRevoked, s: ApplySummary, now: str) -> None:
    row = db.execute(
        "SELECT id FROM messages WHERE channel_id = ? AND external_id = ?", [ch["id"], ev.external_id]
    ).fetchone()
    if row is not None and inbox.revoke_message(db, ch["id"], ev.external_id, now):
        s.changed_messages.append(row[0])


def _apply_preference(db: Database, ch: dict[str, Any], ev: PreferenceChange, s: ApplySummary, now: str) -> None:
    contact_id, _, _ = _contact_and_conversation(db, ch["id"], ev.contact, s.journal_id, now)
    contacts.set_marketing_preference(db, contact_id, ev.value == "stop", now)


def _apply_template_status(db: Database, ev: TemplateStatus, s: ApplySummary, now: str) -> None:
    catalogue.apply_status(
        db, waba_id=ev.asset_id, template_id=ev.template_id, name=ev.name, language=ev.language,
        status=ev.status, category=ev.category, reason=ev.reason, now=now,
    )


_HANDLERS = {
    InboundMessage: _apply_inbound,
    Echo: _apply_echo,
    StatusUpdate: _apply_status,
    MessageRevoked: _apply_revoked,
    PreferenceChange: _apply_preference,
}


def _apply_event(db: Database, event: InboundEvent, s: ApplySummary, now: str) -> None:
    if not journal.claim_event(db, event.dedupe_key, now):
        s.duplicates += 1
        return
    if isinstance(event, TemplateStatus):
        _apply_template_status(db, event, s, now)
        return
    channel = s.snapshot.channel(event.channel, event.asset_id, now) if s.snapshot else \
        channel_for_asset(db, event.channel, event.asset_id, now)
    _HANDLERS[type(event)](db, channel, event, s, now)  # type: ignore[operator]


def apply_delivery(
    db: Database, journal_id: int, parsed: ParsedWebhook, now: str,
    *, executors: frozenset[str] = frozenset(), snapshot: Snapshot | None = None,
    within: str | None = None, unguarded: bool = False,
) -> ApplySummary:
    """Store every event of one journal row, let flows react, and mark the row; see the
    module docstring. ``executors`` names the outside-call kinds that can run (AI, HTTP...).

    ``within``: the name of a savepoint the caller opened right before this call, holding
    nothing else yet. A delivery of one event then uses it as the event's savepoint (rolled
    back to, not released, when the event fails) instead of opening one of its own: the same
    all-or-nothing per event and per delivery, one SAVEPOINT/RELEASE pair fewer.

    ``unguarded``: no savepoint at all; an event that fails raises instead of being recorded,
    and the caller undoes everything this call wrote (the journal processor then applies the
    delivery again guarded: ``appliance.ingest.processor._apply_batch``)."""
    summary = ApplySummary(journal_id=journal_id, events=len(parsed.events), ignored=parsed.ignored,
                           executors=executors, snapshot=snapshot or Snapshot(db))
    summary.problems.extend(f"{p.path}: {p.reason}" for p in parsed.problems)
    if unguarded:
        for event in parsed.events:
            _apply_event(db, event, summary, now)
    elif within is not None and len(parsed.events) == 1:
        event = parsed.events[0]
        try:
            _apply_event(db, event, summary, now)
        except Exception as exc:  # noqa: BLE001 - recorded on the row, as below
            if not db.conn.in_transaction:
                raise  # the error ended the whole transaction (as db.atomic() would raise it)
            db.conn.execute(f"ROLLBACK TO {within}")
            summary.problems.append(f"event 0 ({event.channel}): could not be stored ({type(exc).__name__})")
    else:
        for index, event in enumerate(parsed.events):
            try:
                with savepoint(db, "apply_event"):
                    _apply_event(db, event, summary, now)
            except Exception as exc:  # noqa: BLE001 - one bad event must not lose the others
                summary.problems.append(
                    f"event {index} ({event.channel}): could not be stored ({type(exc).__name__})")
    error = "; ".join(summary.problems)[:2000] or None
    journal.finish(db, journal_id, events=summary.events, duplicates=summary.duplicates, error=error, now=now)
    return summary

