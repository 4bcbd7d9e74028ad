"""Conversations and messages: SQL only.

One conversation per contact: it opens and closes, it is never duplicated. Messages hold both
directions; outbound ones move ``queued -> sent -> delivered -> read`` (never backwards; Meta's
statuses arrive out of order) or end ``failed`` with Meta's code and a reason.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import NotFound
from appliance.store.rows import many, one, scalar

__all__ = [
    "ensure_conversation",
    "open_conversation_for",
    "insert_message",
    "record_inbound",
    "advance_status",
    "advance_status_by_watermark",
    "find_outbound_by_reference",
    "revoke_message",
    "get_conversation",
    "list_conversations",
    "list_messages",
    "get_message",
    "public_message",
    "STATUS_RANK",
]

STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def ensure_conversation(
    db: Database, contact_id: int, channel_id: int, now: str, *, new_contact: bool = False
) -> int:
    """The contact's conversation, created if it has none. ``new_contact``: the contact was
    created in this transaction, so it has none (contact ids are never reused): no lookup."""
    if not new_contact:
        row = one(db, "SELECT id FROM conversations WHERE contact_id = ?", [contact_id])
        if row is not None:
            return int(row["id"])
    cursor = db.execute(
        """INSERT INTO conversations (contact_id, channel_id, created_at, updated_at)
           VALUES (?, ?, ?, ?)""",
        [contact_id, channel_id, now, now],
    )
    return int(cursor.lastrowid)


def open_conversation_for(
    db: Database, contact_id: int, channel_id: int, now: str, *, occurred_at: str, counts_unread: bool
) -> int:
    """The conversation of a contact created in this transaction, created as
    :func:`record_inbound` will leave it once it stores the contact's first message
    (``occurred_at``; unread when ``counts_unread``): pass ``fresh=True`` there, and it skips
    its UPDATE (one statement and the counts triggers' work fewer per new contact). Should that
    message be a duplicate, :func:`record_inbound` puts the conversation back as
    :func:`ensure_conversation` would have created it."""
    cursor = db.execute(
        """INSERT INTO conversations (contact_id, channel_id, unread_count, last_message_at, created_at, updated_at)
           VALUES (?, ?, ?, MAX('', ?), ?, ?)""",
        [contact_id, channel_id, int(counts_unread), occurred_at, now, now],
    )
    return int(cursor.lastrowid)


# json.dumps(..., ensure_ascii=False[, sort_keys=True]) builds an encoder per call; these are the
# same encoders, built once (every inbound message and every reply is encoded here).
_PAYLOAD_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_ATTACHMENTS_JSON = json.JSONEncoder(ensure_ascii=False).encode


def insert_message(db: Database, values: dict[str, Any]) -> int | None:
    """Insert one message row; ``None`` when its ``(channel_id, external_id)`` already exists."""
    row = dict(values)
    payload = row.setdefault("payload", {})
    attachments = row.setdefault("attachments", [])
    # Most messages carry neither (a text and its reply): their JSON is known without encoding.
    row["payload"] = "{}" if payload == {} else _PAYLOAD_JSON(payload)
    row["attachments"] = "[]" if attachments == [] else _ATTACHMENTS_JSON(attachments)
    row.setdefault("updated_at", row["created_at"])
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = db.execute(
        f"INSERT OR IGNORE INTO messages ({columns}) VALUES ({marks})", list(row.values())
    )
    return int(cursor.lastrowid) if cursor.rowcount == 1 else None


def record_inbound(
    db: Database, conversation_id: int, values: dict[str, Any], *, counts_unread: bool, now: str,
    fresh: bool = False,
) -> int | None:
    """Store a message from the contact (or an echo) and bump the conversation.

    A new message from the contact reopens a closed conversation and counts as unread.
    Returns the message id, or ``None`` for a duplicate. ``fresh``: the conversation was
    created by :func:`open_conversation_for` for this message (same ``occurred_at`` and
    ``counts_unread``) in this transaction.
    """
    message_id = insert_message(db, {**values, "conversation_id": conversation_id})
    if message_id is None:
        if fresh:  # back to what ensure_conversation creates
            db.execute("UPDATE conversations SET unread_count = 0, last_message_at = NULL WHERE id = ?",
                       [conversation_id])
        return None
    events.emit(db, "message.created", message_id=message_id, conversation_id=conversation_id,
                contact_id=values.get("contact_id"), now=now)
    events.emit(db, "conversation.updated", conversation_id=conversation_id, now=now)
    occurred = values["occurred_at"]
    if fresh:
        return message_id
    if counts_unread:
        db.execute(
            """UPDATE conversations SET status = 'open', unread_count = unread_count + 1,
                   last_message_at = MAX(COALESCE(last_message_at, ''), ?), updated_at = ?
               WHERE id = ?""",
            [occurred, now, conversation_id],
        )
    else:
        db.execute(
            """UPDATE conversations SET last_message_at = MAX(COALESCE(last_message_at, ''), ?),
                   updated_at = ? WHERE id = ?""",
            [occurred, now, conversation_id],
        )
    return message_id


def advance_status(
    db: Database,
    message_id: int,
    status: str,
    now: str,
    *,
    external_id: str | None = None,
    error: tuple[str | None, str | None] | None = None,
) -> bool:
    """Move an outbound message's status forward; ``failed`` only replaces queued/sent.

    Returns whether anything changed.
    """
    if status == "failed":
        code, message = error or (None, None)
        cursor = db.execute(
            """UPDATE messages SET status = 'failed', error_code = ?, error_message = ?,
                   external_id = COALESCE(external_id, ?), updated_at = ?
               WHERE id = ? AND status IN ('queued', 'sent')""",
            [code, message, external_id, now, message_id],
        )
        if cursor.rowcount == 1:
            events.emit(db, "message.updated", message_id=message_id, now=now)
        return cursor.rowcount == 1
    rank = STATUS_RANK[status]
    cursor = db.execute(
        f"""UPDATE messages SET status = ?, external_id = COALESCE(external_id, ?), updated_at = ?
            WHERE id = ? AND direction = 'out' AND status IN
              ({", ".join(repr(s) for s, r in STATUS_RANK.items() if r < rank)})""",
        [status, external_id, now, message_id],
    )
    if cursor.rowcount == 1:
        events.emit(db, "message.updated", message_id=message_id, now=now)
    return cursor.rowcount == 1


def advance_status_by_watermark(
    db: Database, conversation_id: int, status: str, watermark: str, now: str
) -> list[int]:
    """Messenger ``delivery``/``read``: every outbound message sent at or before the watermark."""
    rank = STATUS_RANK[status]
    lower = ", ".join(repr(s) for s, r in STATUS_RANK.items() if 0 < r < rank)
    ids = [r["id"] for r in many(
        db,
        f"""SELECT id FROM messages WHERE conversation_id = ? AND direction = 'out'
               AND sent_at IS NOT NULL AND sent_at <= ? AND status IN ({lower})""",
        [conversation_id, watermark],
    )]
    if ids:
        db.execute(
            f"UPDATE messages SET status = ?, updated_at = ? WHERE id IN ({', '.join('?' * len(ids))})",
            [status, now, *ids],
        )
        for message_id in ids:
            events.emit(db, "message.updated", message_id=message_id, now=now)
    return ids


def find_outbound_by_reference(
    db: Database, channel_id: int, *, external_id: str | None, message_id: int | None
) -> int | None:
    """Our outbound message that Meta refers to: by Meta's id, else by the id we sent along."""
    if external_id:
        found = scalar(
            db, "SELECT id FROM messages WHERE channel_id = ? AND external_id = ?",
            [channel_id, external_id],
        )
        if found is not None:
            return int(found)
    if message_id is not None:
        found = scalar(
            db, "SELECT id FROM messages WHERE id = ? AND channel_id = ? AND direction = 'out'",
            [message_id, channel_id],
        )
        return int(found) if found is not None else None
    return None


def revoke_message(db: Database, channel_id: int, external_id: str, now: str) -> bool:
    """The sender took it back: keep the row (the thread stays readable), drop the content."""
    cursor = db.execute(
        """UPDATE messages SET text = NULL, attachments = '[]',
               payload = json_set(payload, '$.deleted', json('true')), updated_at = ?
           WHERE channel_id = ? AND external_id = ?""",
        [now, channel_id, external_id],
    )
    for row in many(db, "SELECT id FROM messages WHERE channel_id = ? AND external_id = ?", [channel_id, external_id]):
        events.emit(db, "message.updated", message_id=row["id"], now=now)
    return cursor.rowcount > 0


_CONVERSATION_SELECT = """
SELECT cv.id, cv.status, cv.assignee_id, cv.bot_paused, cv.unread_count, cv.last_message_at,
       cv.created_at, cv.contact_id, ch.type AS channel, cv.channel_id,
       c.name AS contact_name, c.external_id AS contact_external_id, c.username AS contact_username,
       c.wa_id AS contact_wa_id, c.bsuid AS contact_bsuid, c.last_inbound_at,
       ch.status AS channel_status
FROM conversations cv
JOIN contacts c ON c.id = cv.contact_id
JOIN channels ch ON ch.id = cv.channel_id
"""


def get_conversation(db: Database, conversation_id: int) -> dict[str, Any]:
    row = one(db, _CONVERSATION_SELECT + " WHERE cv.id = ?", [conversation_id])
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return row


def list_conversations(
    db: Database,
    *,
    status: str | None,
    assignee: int | None,
    unassigned: bool,
    channel: str | None,
    before: tuple[str, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Most recent activity first; ``before`` is the cursor ``(last_message_at, id)``."""
    where, params = ["1 = 1"], []
    if status:
        where.append("cv.status = ?")
        params.append(status)
    if unassigned:
        where.append("cv.assignee_id IS NULL")
    elif assignee is not None:
        where.append("cv.assignee_id = ?")
        params.append(assignee)
    if channel:
        where.append("ch.type = ?")
        params.append(channel)
    if before is not None:
        where.append("(COALESCE(cv.last_message_at, ''), cv.id) < (?, ?)")
        params.extend(before)
    sql = (
        _CONVERSATION_SELECT + " WHERE " + " AND ".join(where)
        + " ORDER BY COALESCE(cv.last_message_at, '') DESC, cv.id DESC LIMIT ?"
    )
    return many(db, sql, [*params, limit])


def list_messages(
    db: Database, conversation_id: int, *, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Oldest first; ``after_id`` is the cursor."""
    get_conversation(db, conversation_id)
    return many(
        db,
        "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
        [conversation_id, after_id or 0, limit],
    )


def get_message(db: Database, message_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM messages WHERE id = ?", [message_id])
    if row is None:
        raise NotFound(f"message {message_id} does not exist")
    return row


def public_message(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a message row (docs/spec/api.md)."""
    error = None
    if row["error_code"] is not None or row["error_message"] is not None:
        error = {"code": row["error_code"], "message": row["error_message"]}
    return {
        "id": str(row["id"]),
        "conversation_id": str(row["conversation_id"]),
        "direction": row["direction"],
        "kind": row["kind"],
        "text": row["text"],
        "payload": json.loads(row["payload"]),
        "attachments": json.loads(row["attachments"]),
        "external_id": row["external_id"],
        "reply_to": row["reply_to"],
        "status": row["status"],
        "error": error,
        "sent_by": row["sent_by"],
        "sent_by_user_id": str(row["sent_by_user_id"]) if row["sent_by_user_id"] else None,
        "messaging_type": row["messaging_type"],
        "tag": row["tag"],
        "occurred_at": row["occurred_at"],
        "sent_at": row["sent_at"],
        "created_at": row["created_at"],
    }
