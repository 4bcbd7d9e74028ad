"""The outbox: outbound messages waiting for the sender. SQL only.

A message row (``messages``, ``direction = 'out'``) holds the content and the status the inbox
shows; its ``outbox`` row exists while it still has to go out. Life of an outbox row::

    queued --claim_due--> sending --mark_sent--> (deleted, message 'sent')
                             |------mark_retry--> queued (next_attempt_at later)
                             '------mark_failed-> (deleted, message 'failed' with the reason)

Per conversation only the oldest row is ever claimed, so a contact receives messages in the
order they were queued, and a message waiting for a retry holds back the ones after it. Among
due rows, lower ``priority`` goes first: agent replies and flow messages (0) before broadcast
messages (1).
After a crash, rows still ``sending`` are *in doubt* (Meta may have accepted them):
:func:`recover_in_doubt` requeues them after a grace period during which an echo or status
carrying our reference (:func:`reference`) settles them instead (:func:`settle`). A message
may take several requests (parts); ``parts_done`` counts those Meta accepted, from our own
answers or from its echoes and statuses, and the sender never repeats them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import NotFound
from appliance.inbox.store import STATUS_RANK, advance_status, insert_message
from appliance.store.savepoint import savepoint
from appliance.store.rows import many, one, scalar

log = logging.getLogger("aat.outbox")

__all__ = [
    "reference",
    "parse_reference",
    "enqueue",
    "claim_due",
    "claim_due_or_nothing",
    "next_due_at",
    "mark_part_sent",
    "mark_sent",
    "mark_sent_many",
    "mark_retry",
    "mark_failed",
    "last_sends",
    "recover_in_doubt",
    "settle",
    "depth",
]


def reference(message_id: int, part: int = 0) -> str:
    """What we send as Messenger ``metadata`` / WhatsApp ``biz_opaque_callback_data``:
    ``aat:<message id>`` for a message's first request, ``aat:<message id>:<part>`` for the
    further requests of a message that takes several."""
    return f"aat:{message_id}" if part == 0 else f"aat:{message_id}:{part}"


def parse_reference(text: str | None) -> tuple[int, int] | None:
    """``(message id, part)`` from :func:`reference`'s text; None when it is not ours."""
    if not text or not text.startswith("aat:"):
        return None
    parts = text.split(":")
    try:
        return int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
    except (ValueError, IndexError):
        return None


def enqueue(
    db: Database,
    *,
    conversation_id: int,
    kind: str,
    text: str | None,
    payload: dict[str, Any],
    sent_by: str,
    user_id: int | None,
    messaging_type: str | None,
    tag: str | None,
    now: str,
    priority: int = 0,
    not_before: str | None = None,
    contact_id: int | None = None,
    channel_id: int | None = None,
    announce: bool = True,
) -> int:
    """Queue one outbound message; returns its message id. It is due at ``not_before``
    (default ``now``); ``priority`` orders due rows (see the module docstring).
    ``contact_id`` and ``channel_id``: the conversation's, when the caller has just read
    them in this transaction (otherwise they are read). ``announce=False``: the caller has
    already emitted ``conversation.updated`` for this conversation in this transaction, so
    no second one (consumers read the conversation after the commit: it would say the same)."""
    if contact_id is not None and channel_id is not None:
        conversation: dict[str, Any] | None = {"contact_id": contact_id, "channel_id": channel_id}
    else:
        conversation = one(
            db, "SELECT contact_id, channel_id FROM conversations WHERE id = ?", [conversation_id]
        )
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    message_id = insert_message(
        db,
        {
            "conversation_id": conversation_id,
            "contact_id": conversation["contact_id"],
            "channel_id": conversation["channel_id"],
            "direction": "out",
            "kind": kind,
            "text": text,
            "payload": payload,
            "status": "queued",
            "sent_by": sent_by,
            "sent_by_user_id": user_id,
            "messaging_type": messaging_type,
            "tag": tag,
            "occurred_at": now,
            "created_at": now,
        },
    )
    assert message_id is not None  # no external_id yet, so never a duplicate
    db.execute(
        """INSERT INTO outbox (message_id, conversation_id, channel_id, next_attempt_at, created_at, priority)
           VALUES (?, ?, ?, ?, ?, ?)""",
        [message_id, conversation_id, conversation["channel_id"], max(now, not_before or now), now, priority],
    )
    db.execute(
        "UPDATE conversations SET last_message_at = MAX(COALESCE(last_message_at, ''), ?), updated_at = ? WHERE id = ?",
        [now, now, conversation_id],
    )
    events.emit(db, "message.created", message_id=message_id, conversation_id=conversation_id,
                contact_id=conversation["contact_id"], now=now)
    if announce:
        events.emit(db, "conversation.updated", conversation_id=conversation_id, now=now)
    return message_id


_CONTEXT = """
SELECT o.id AS outbox_id, o.attempts, o.parts_done, o.conversation_id, o.priority,
       m.id AS message_id, m.kind, m.text, m.payload, m.sent_by, m.messaging_type, m.tag,
       m.reply_to, m.created_at,
       c.id AS contact_id, c.external_id AS contact_external_id, c.wa_id, c.bsuid,
       c.last_inbound_at,
       ch.id AS channel_id, ch.type AS channel_type, ch.external_id AS channel_external_id,
       ch.status AS channel_status, ch.access_token_enc, ch.page_id, ch.waba_id, ch.rate_limit
FROM outbox o
JOIN messages m ON m.id = o.message_id
JOIN contacts c ON c.id = m.contact_id
JOIN channels ch ON ch.id = o.channel_id
"""


def claim_due(
    db: Database, now: str, limit: int, conversation_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Mark up to ``limit`` due rows ``sending`` (one per conversation, the oldest; lowest
    ``priority`` first) and return everything needed to send them. ``conversation_ids``:
    only in these conversations (the journal processor claims the replies it just queued in
    the same transaction, and hands them to the sender after the commit)."""
    only = ""
    if conversation_ids is not None:
        if not conversation_ids:
            return []
        only = f" AND o.conversation_id IN ({', '.join('?' * len(conversation_ids))})"
    ids = [r["id"] for r in many(
        db,
        f"""SELECT o.id FROM outbox o
           WHERE o.state = 'queued' AND o.next_attempt_at <= ?{only}
             AND o.id = (SELECT min(o2.id) FROM outbox o2 WHERE o2.conversation_id = o.conversation_id)
           ORDER BY o.priority, o.next_attempt_at, o.id LIMIT ?""",
        [now, *(conversation_ids or ()), limit],
    )]
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    db.execute(
        f"UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN ({marks})", ids
    )
    rows = many(db, _CONTEXT + f" WHERE o.id IN ({marks}) ORDER BY o.id", ids)
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


def claim_due_or_nothing(
    db: Database, now: str, limit: int, conversation_ids: list[int]
) -> list[dict[str, Any]] | None:
    """:func:`claim_due` in these conversations in a savepoint of the caller's transaction, all
    or nothing (a row marked ``sending`` but not returned would sit in doubt): the claimed rows,
    or None when the claim failed (logged) and wrote nothing: the rows are left to the sender's
    own claim round. An error that ended the whole transaction is raised."""
    try:
        with savepoint(db, "claim_due"):
            return claim_due(db, now, limit, conversation_ids)
    except Exception:
        if not db.conn.in_transaction:
            raise
        log.exception("claiming the due messages of %d conversations failed", len(conversation_ids))
        return None


def next_due_at(db: Database) -> str | None:
    """When :func:`claim_due` will next find something: the earliest queued head of a
    conversation. Rows behind a head are not due before it, whatever their own time (counting
    them would wake the sender in a loop while a head waits for its retry or is being sent)."""
    return scalar(
        db,
        """SELECT min(o.next_attempt_at) FROM outbox o
           WHERE o.state = 'queued'
             AND o.id = (SELECT min(o2.id) FROM outbox o2 WHERE o2.conversation_id = o.conversation_id)""",
    )


def mark_part_sent(db: Database, outbox_id: int, parts_done: int) -> None:
    """Meta accepted the parts before ``parts_done`` (never moves back: an echo may have
    reported more already)."""
    db.execute(
        "UPDATE outbox SET parts_done = MAX(parts_done, ?) WHERE id = ?", [parts_done, outbox_id]
    )


_BELOW_SENT = tuple(s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK["sent"])
_BELOW_SENT_SQL = ", ".join(repr(s) for s in _BELOW_SENT)


def mark_sent(
    db: Database,
    outbox_id: int,
    message_id: int,
    external_ids: list[str],
    now: str,
    *,
    messaging_type: str | None = None,
    tag: str | None = None,
) -> None:
    """Meta accepted every part; record how it was sent (the policy decides at send time).

    The usual case, a message still ``queued``, is one UPDATE that also moves it to ``sent``;
    otherwise how it was sent is recorded alone (its status is already ``sent`` or beyond, or
    ``failed``, or it is not outbound: :func:`advance_status` would change nothing). Either
    way the row ends as a how-sent UPDATE followed by ``advance_status(..., "sent")`` leaves it
    (tests/appliance/test_outbox_mark_sent.py compares them)."""
    db.execute("DELETE FROM outbox WHERE id = ?", [outbox_id])
    first = external_ids[0] if external_ids else None
    if len(external_ids) > 1:
        db.execute(
            "UPDATE messages SET payload = json_set(payload, '$.part_ids', json(?)) WHERE id = ?",
            [json.dumps(external_ids), message_id],
        )
    moved = db.execute(
        f"""UPDATE messages SET messaging_type = COALESCE(?, messaging_type), tag = ?,
               sent_at = COALESCE(sent_at, ?), external_id = COALESCE(external_id, ?),
               status = 'sent', updated_at = ?
            WHERE id = ? AND direction = 'out' AND status IN ({_BELOW_SENT_SQL})""",
        [messaging_type, tag, now, first, now, message_id],
    ).rowcount
    if moved:
        events.emit(db, "message.updated", message_id=message_id, now=now)
        return
    db.execute(
        """UPDATE messages SET messaging_type = COALESCE(?, messaging_type), tag = ?,
               sent_at = COALESCE(sent_at, ?), external_id = COALESCE(external_id, ?) WHERE id = ?""",
        [messaging_type, tag, now, first, message_id],
    )




def mark_sent_many(db: Database, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    """Many :func:`mark_sent` calls, given as their ``(args, kwargs)`` without ``db``, of
    single-part sends (at most one external id each), writing exactly what they would one by
    one (the outbox row deleted; messaging type, tag, ``sent_at`` and ``external_id``
    recorded; the status moved to ``sent`` where it was below it, with its
    ``message.updated`` event), in one ``executemany`` per statement. A change to one of the
    two is a change to both (tests/appliance/test_outbox_recorder.py compares them)."""
    conn = db.conn
    message_ids = [args[1] for args, _ in calls]
    marks = ", ".join("?" * len(message_ids))
    lower = ", ".join("?" * len(_BELOW_SENT))
    moving = {row[0] for row in conn.execute(
        f"SELECT id FROM messages WHERE id IN ({marks}) AND direction = 'out' AND status IN ({lower})",
        [*message_ids, *_BELOW_SENT]).fetchall()}
    conn.executemany("DELETE FROM outbox WHERE id = ?", [(args[0],) for args, _ in calls])
    updates: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for (outbox_id, message_id, external_ids, now), kwargs in calls:
        moves = message_id in moving
        updates.append((kwargs.get("messaging_type"), kwargs.get("tag"), now,
                        external_ids[0] if external_ids else None, int(moves), int(moves), now, message_id))
        if moves:
            events.append((message_id, now))
    conn.executemany(
        """UPDATE messages SET messaging_type = COALESCE(?, messaging_type), tag = ?,
               sent_at = COALESCE(sent_at, ?), external_id = COALESCE(external_id, ?),
               status = CASE WHEN ? THEN 'sent' ELSE status END,
               updated_at = CASE WHEN ? THEN ? ELSE updated_at END
           WHERE id = ?""", updates)
    conn.executemany(
        "INSERT INTO events (type, message_id, created_at) VALUES ('message.updated', ?, ?)", events)


def mark_retry(db: Database, outbox_id: int, *, next_attempt_at: str, error: str) -> None:
    """Back to ``queued``, due again at ``next_attempt_at``; ``error`` is kept for operators."""
    db.execute(
        "UPDATE outbox SET state = 'queued', next_attempt_at = ?, last_error = ? WHERE id = ?",
        [next_attempt_at, error, outbox_id],
    )


def mark_failed(
    db: Database, outbox_id: int, message_id: int, *, code: str | None, reason: str, now: str
) -> None:
    """Give up: the row leaves the outbox, the message is ``failed`` with ``{code, reason}``."""
    db.execute("DELETE FROM outbox WHERE id = ?", [outbox_id])
    advance_status(db, message_id, "failed", now, error=(code, reason))


def last_sends(db: Database, since: str) -> dict[int, str | None]:
    """The channels whose requests may have reached Meta at ``since`` or later, before this
    process started: each with the time its latest recorded send came back (``sent_at``), or
    None when it has a send in doubt (left ``sending``: it may have arrived up to the moment the
    process died). Call before :func:`recover_in_doubt`. A request Meta refused leaves no time
    behind and is not counted."""
    last: dict[int, str | None] = dict(db.execute(
        "SELECT channel_id, max(sent_at) FROM messages WHERE sent_at >= ? GROUP BY channel_id", [since]).fetchall())
    for (channel_id,) in db.execute("SELECT DISTINCT channel_id FROM outbox WHERE state = 'sending'").fetchall():
        last[channel_id] = None
    return last


def recover_in_doubt(db: Database, *, resend_at: str) -> int:
    """After a crash: rows left ``sending`` may have reached Meta. Give their echo/status until
    ``resend_at`` to settle them; then they go out again."""
    return db.execute(
        "UPDATE outbox SET state = 'queued', next_attempt_at = ?, last_error = 'in doubt after restart' "
        "WHERE state = 'sending'",
        [resend_at],
    ).rowcount


def settle(db: Database, message_id: int, part: int, external_id: str | None, now: str) -> bool:
    """Meta reported (echo or status) part ``part`` of a message still in the outbox: record
    that the parts up to it went out, so the sender sends only what is left (possibly
    nothing) instead of repeating them.

    A queued row (in doubt after a crash, or waiting for a retry) is made due at once. A row
    being sent right now keeps its state: the report may come before Meta's answer, and if
    that answer is then lost (a timeout), the retry finds the part already done."""
    cursor = db.execute(
        """UPDATE outbox SET parts_done = MAX(parts_done, ?),
               next_attempt_at = CASE WHEN state = 'queued' THEN ? ELSE next_attempt_at END
           WHERE message_id = ? AND attempts > 0""",
        [part + 1, now, message_id],
    )
    if cursor.rowcount and external_id:
        db.execute(
            "UPDATE messages SET external_id = COALESCE(external_id, ?) WHERE id = ?",
            [external_id, message_id],
        )
    return cursor.rowcount == 1


def depth(db: Database) -> int:
    """Messages still to send (queued or being sent)."""
    return int(scalar(db, "SELECT count(*) FROM outbox") or 0)
