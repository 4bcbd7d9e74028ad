"""What the server-rendered pages read: SQL only, one function per screen region.

Each page reads everything it shows in one gateway call (one reader-thread hop), through the
domain stores where they have the query (``inbox.store``, ``contacts.store``) and here where a
page needs a shape no API returns: the inbox's view counts, the last message of each listed
conversation, a thread's newest messages with the notes between them, the channels whose token
died.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = [
    "VIEWS",
    "view_filter",
    "view_counts",
    "last_messages",
    "recent_messages",
    "messages_after",
    "notes_between",
    "notes_after",
    "active_users",
    "broken_channels",
    "channel_types",
    "unread_total",
]

# The inbox's views: (status, assignee) as inbox.store.list_conversations takes them.
VIEWS = ("open", "mine", "unassigned", "closed")


def view_filter(view: str, user_id: int | None) -> dict[str, Any]:
    """``list_conversations`` keyword arguments for one of :data:`VIEWS`."""
    if view == "mine":
        return {"status": "open", "assignee": user_id or -1, "unassigned": False}
    if view == "unassigned":
        return {"status": "open", "assignee": None, "unassigned": True}
    if view == "closed":
        return {"status": "closed", "assignee": None, "unassigned": False}
    return {"status": "open", "assignee": None, "unassigned": False}


def view_counts(db: Database, user_id: int | None, channel: str | None) -> dict[str, dict[str, int]]:
    """``{view: {"conversations": n, "unread": n}}`` from ``conversation_counts`` (kept by
    triggers on ``conversations``, migration 0012): a few rows, whatever the inbox's size."""
    scope = " WHERE channel_id IN (SELECT id FROM channels WHERE type = :channel)" if channel else ""
    rows = many(db, f"""SELECT status, assignee_id, sum(conversations) AS n, sum(unread) AS unread
                        FROM conversation_counts{scope} GROUP BY status, assignee_id""", {"channel": channel})
    counts = {view: {"conversations": 0, "unread": 0} for view in VIEWS}

    def add(view: str, row: dict[str, Any]) -> None:
        counts[view]["conversations"] += int(row["n"] or 0)
        counts[view]["unread"] += int(row["unread"] or 0)

    for row in rows:
        if row["status"] == "closed":
            add("closed", row)
            continue
        add("open", row)
        if row["assignee_id"] == 0:
            add("unassigned", row)
        elif user_id is not None and row["assignee_id"] == user_id:
            add("mine", row)
    return counts


def unread_total(db: Database) -> int:
    """Unread messages in open conversations (the nav badge)."""
    row = one(db, "SELECT coalesce(sum(unread), 0) AS n FROM conversation_counts WHERE status = 'open'")
    return int(row["n"]) if row else 0


def last_messages(db: Database, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The newest message of each conversation (its preview line in the list)."""
    found: dict[int, dict[str, Any]] = {}
    for conversation_id in conversation_ids:
        row = one(db, """SELECT conversation_id, kind, text, direction, sent_by, payload FROM messages
                         WHERE conversation_id = ? ORDER BY id DESC LIMIT 1""", [conversation_id])
        if row is not None:
            found[conversation_id] = row
    return found


def recent_messages(db: Database, conversation_id: int, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` messages before ``before_id`` (all when ``None``), oldest first."""
    rows = many(db, "SELECT * FROM messages WHERE conversation_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                [conversation_id, before_id or 2**63 - 1, limit])
    rows.reverse()
    return rows


def messages_after(db: Database, conversation_id: int, after_id: int, limit: int = 200) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
                [conversation_id, after_id, limit])


_NOTES = """SELECT n.id, n.conversation_id, n.text, n.created_at, n.user_id, u.email AS author,
                   u.name AS author_name
            FROM notes n LEFT JOIN users u ON u.id = n.user_id"""


def notes_between(db: Database, conversation_id: int, since: str | None) -> list[dict[str, Any]]:
    """The conversation's notes from ``since`` on (every note when ``None``), oldest first."""
    return many(db, _NOTES + " WHERE n.conversation_id = ? AND n.created_at >= ? ORDER BY n.id",
                [conversation_id, since or ""])


def notes_after(db: Database, conversation_id: int, after_id: int) -> list[dict[str, Any]]:
    return many(db, _NOTES + " WHERE n.conversation_id = ? AND n.id > ? ORDER BY n.id", [conversation_id, after_id])


def active_users(db: Database) -> list[dict[str, Any]]:
    """The team members a conversation can be assigned to."""
    return many(db, "SELECT id, email, name, role FROM users WHERE disabled_at IS NULL ORDER BY email")


def broken_channels(db: Database) -> list[dict[str, Any]]:
    """Channels whose token Meta stopped accepting: every page shows a banner until they are
    reconnected."""
    return many(db, "SELECT id, type, name, external_id, status_reason FROM channels "
                    "WHERE status = 'needs_reauth' ORDER BY id")


def channel_types(db: Database) -> list[str]:
    """The channel types connected (or once connected) here, for the channel filters."""
    return [r["type"] for r in many(db, "SELECT DISTINCT type FROM channels ORDER BY type")]
