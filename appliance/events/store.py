"""The ``events`` table. SQL only; see the package docstring."""

from __future__ import annotations

import threading
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, scalar
from appliance.timeutil import iso_now

__all__ = ["EVENT_TYPES", "emit", "batched", "since", "latest_id", "purge"]

EVENT_TYPES = frozenset({
    "message.created", "message.updated", "conversation.updated", "conversation.assigned",
    "contact.created", "contact.updated", "contact.deleted", "flow.completed",
})

_INSERT = "INSERT INTO events (type, conversation_id, contact_id, message_id, flow_id, run_id, user_id, created_at) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_STATEMENT = 64  # 512 parameters, far below SQLite's limit


class _Collecting(threading.local):
    """The connection whose events this thread is collecting (:class:`batched`), and them."""

    conn: Any = None
    rows: list[tuple[Any, ...]] = []


_collecting = _Collecting()


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
    """Append one event (inside a :class:`batched` block on ``db``: at the end of the block)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    row = (type_, conversation_id, contact_id, message_id, flow_id, run_id, user_id, now or iso_now())
    if _collecting.conn is db.conn:
        _collecting.rows.append(row)
        return
    db.conn.execute(_INSERT + _ROW, row)


class batched:  # noqa: N801 - used as a context manager, like a function
    """``with batched(db):`` the events emitted on ``db`` in the block (by this thread) are
    written when it ends, in one statement, in the order emitted: the same rows with the same
    ids as one by one (each statement's AUTOINCREMENT bookkeeping is paid once, not per event),
    so a consumer reading after the commit cannot tell. Nothing is written when the block
    raises. Use it inside the savepoint or transaction of the change the events describe (the
    rows must land in it), around code that does not itself read ``events``. A block inside
    another on the same connection adds to the outer one."""

    __slots__ = ("_db", "_outer")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if _collecting.conn is not None:
            self._outer = True  # nested (or another connection's block is open): leave it be
            return
        _collecting.conn = self._db.conn
        _collecting.rows = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._outer:
            return
        rows = _collecting.rows
        _collecting.conn = None
        _collecting.rows = []
        if exc_type is not None or not rows:
            return
        conn = self._db.conn
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start:start + _ROWS_PER_STATEMENT]
            conn.execute(_INSERT + ", ".join([_ROW] * len(chunk)), [v for row in chunk for v in row])


def since(db: Database, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit])


def latest_id(db: Database) -> int:
    return int(scalar(db, "SELECT COALESCE(max(id), 0) FROM events") or 0)


def purge(db: Database, before: str) -> int:
    return db.conn.execute("DELETE FROM events WHERE created_at < ?", [before]).rowcount
