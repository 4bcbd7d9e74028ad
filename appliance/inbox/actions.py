"""What agents do to a conversation: assign, close, reopen, pause and resume the bot, read,
and private notes (never sent). SQL only; every change is a ``conversation.updated`` event
(and ``conversation.assigned`` for an assignment)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import Unprocessable
from appliance.inbox.store import get_conversation
from appliance.store.rows import many, scalar

__all__ = ["assign", "set_status", "set_bot_paused", "mark_read", "add_note", "list_notes"]


def _update(db: Database, conversation_id: int, sql: str, params: list[Any], now: str) -> dict[str, Any]:
    get_conversation(db, conversation_id)
    db.conn.execute(f"UPDATE conversations SET {sql}, updated_at = ? WHERE id = ?", [*params, now, conversation_id])
    events.emit(db, "conversation.updated", conversation_id=conversation_id, now=now)
    return get_conversation(db, conversation_id)


def assign(db: Database, conversation_id: int, user_id: int | None, now: str) -> dict[str, Any]:
    if user_id is not None and not scalar(db, "SELECT 1 FROM users WHERE id = ? AND disabled_at IS NULL", [user_id]):
        raise Unprocessable(f"user {user_id} does not exist or is disabled", code="unknown_user")
    row = _update(db, conversation_id, "assignee_id = ?", [user_id], now)
    if user_id is not None:
        events.emit(db, "conversation.assigned", conversation_id=conversation_id, user_id=user_id, now=now)
    return row


def set_status(db: Database, conversation_id: int, status: str, now: str) -> dict[str, Any]:
    return _update(db, conversation_id, "status = ?", [status], now)


def set_bot_paused(db: Database, conversation_id: int, paused: bool, now: str) -> dict[str, Any]:
    """Pausing also ends the contact's active flow run: a human took over."""
    row = _update(db, conversation_id, "bot_paused = ?", [int(paused)], now)
    if paused:
        db.conn.execute(
            "UPDATE flow_runs SET status = 'interrupted', waiting = NULL, ended_at = ?, updated_at = ? "
            "WHERE contact_id = ? AND status = 'active'",
            [now, now, row["contact_id"]],
        )
    return row


def mark_read(db: Database, conversation_id: int, now: str) -> dict[str, Any]:
    return _update(db, conversation_id, "unread_count = 0", [], now)


def add_note(db: Database, conversation_id: int, user_id: int | None, text: str, now: str) -> dict[str, Any]:
    get_conversation(db, conversation_id)
    note_id = db.conn.execute(
        "INSERT INTO notes (conversation_id, user_id, text, created_at) VALUES (?, ?, ?, ?)",
        [conversation_id, user_id, text, now],
    ).lastrowid
    events.emit(db, "conversation.updated", conversation_id=conversation_id, now=now)
    return _public_note(many(db, _NOTES + " WHERE n.id = ?", [note_id])[0])


_NOTES = """SELECT n.id, n.conversation_id, n.text, n.created_at, n.user_id, u.email AS author
            FROM notes n LEFT JOIN users u ON u.id = n.user_id"""


def _public_note(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "conversation_id": str(row["conversation_id"]), "text": row["text"],
            "author": row["author"], "user_id": str(row["user_id"]) if row["user_id"] else None,
            "created_at": row["created_at"]}


def list_notes(db: Database, conversation_id: int) -> list[dict[str, Any]]:
    get_conversation(db, conversation_id)
    return [_public_note(r) for r in many(db, _NOTES + " WHERE n.conversation_id = ? ORDER BY n.id", [conversation_id])]


