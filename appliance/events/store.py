"""The ``events`` table. SQL only; see the package docstring."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, scalar
from appliance.timeutil import iso_now

__all__ = ["EVENT_TYPES", "batched", "emit", "since", "latest_id", "purge"]

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
    row = [type_, conversation_id, contact_id, message_id, flow_id, run_id, user_id, now or iso_now()]
    batch = _batch.get()
    if batch is not None and batch[0] is db.conn:
        batch[1].append(row)
        return
    db.conn.execute(_INSERTS[1], row)


_COLUMNS = "(type, conversation_id, contact_id, message_id, flow_id, run_id, user_id, created_at)"
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
# A batch is written with statements of these many rows, largest first: few distinct statement
# texts, so the connection's statement cache keeps them all.
_SIZES = (32, 8, 1)
_INSERTS = {size: f"INSERT INTO events {_COLUMNS} VALUES " + ", ".join([_ROW] * size) for size in _SIZES}
_batch: ContextVar[tuple[Any, list[list[Any]]] | None] = ContextVar("aat_events_batch", default=None)


@contextmanager
def batched(db: Database) -> Iterator[None]:
    """Within the block, the events emitted on ``db`` (on this thread) are held and written
    together, in the order emitted, when the block ends without an error: a few multi-row
    statements instead of one per event (on the writer thread each statement hands the GIL over,
    BENCHMARKS.md). When the block raises they are dropped, with the writes of the savepoint the
    caller wraps it in. For a block that nothing inside rolls back in part and that reads no
    events (the journal processor's unguarded chunk)."""
    rows: list[list[Any]] = []
    token = _batch.set((db.conn, rows))
    try:
        yield
    finally:
        _batch.reset(token)
    done = 0
    for size in _SIZES:
        while len(rows) - done >= size:
            db.conn.execute(_INSERTS[size], [value for row in rows[done:done + size] for value in row])
            done += size


def since(db: Database, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit])


def latest_id(db: Database) -> int:
    return int(scalar(db, "SELECT COALESCE(max(id), 0) FROM events") or 0)


def purge(db: Database, before: str) -> int:
    return db.conn.execute("DELETE FROM events WHERE created_at < ?", [before]).rowcount
