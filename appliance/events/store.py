"""The ``events`` table. SQL only; see the package docstring."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, scalar
from appliance.timeutil import iso_now

__all__ = ["EVENT_TYPES", "emit", "since", "latest_id", "purge"]

EVENT_TYPES = frozenset({
    "message.created", "message.updated", "conversation.updated", "conversation.assigned",
    "contact.created", "contact.updated", "contact.deleted", "flow.completed",
})


def emit(
    db: Database,
    type_: str,
    *,
    conversation_id: int | None = None,
    contact_id: int | None = None,
    message_id: int | None = None,
    flow_id: int | None = None,
    run_id: int | None = None,
    user_id: int | None = None,
    now: str | None = None,
) -> None:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    db.conn.execute(
        """INSERT INTO events (type, conversation_id, contact_id, message_id, flow_id, run_id, user_id, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [type_, conversation_id, contact_id, message_id, flow_id, run_id, user_id, now or iso_now()],
    )


def since(db: Database, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit])


def latest_id(db: Database) -> int:
    return int(scalar(db, "SELECT COALESCE(max(id), 0) FROM events") or 0)


def purge(db: Database, before: str) -> int:
    return db.conn.execute("DELETE FROM events WHERE created_at < ?", [before]).rowcount
