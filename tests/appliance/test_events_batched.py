"""``events.batched``: the journal processor's chunk writes its events together, in the order
emitted, with the same rows as one statement each; on an error, none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.events import store as events
from appliance.store import connection
from appliance.store.gateway import wrap_database
from appliance.store.savepoint import savepoint
from appliance.store.workspace import Workspace

NOW = "2026-11-27T18:00:00.000Z"


def _emit_many(db: Any, count: int) -> None:
    for n in range(count):
        events.emit(db, "message.created" if n % 2 else "conversation.updated", conversation_id=n,
                    contact_id=n + 1000, message_id=None if n % 3 else n, now=NOW)


def _rows(db: Any, after: int = 0) -> list[tuple[Any, ...]]:
    return [tuple(row)[1:] for row in db.execute(
        "SELECT id, type, conversation_id, contact_id, message_id, flow_id, run_id, user_id, created_at"
        " FROM events WHERE id > ? ORDER BY id", [after])]


def test_a_batch_writes_the_same_rows_in_the_same_order_as_one_emit_each(workspace: Workspace) -> None:
    def run(db: Any) -> tuple[list[Any], list[Any], list[Any]]:
        _emit_many(db, 45)  # one statement each
        one_by_one = _rows(db)
        last = events.latest_id(db)
        with events.batched(db):
            _emit_many(db, 45)  # 32 + 8 + 5 x 1 rows
            held = _rows(db, last)  # nothing written before the block ends
        return one_by_one, held, _rows(db, last)

    one_by_one, held, batched = workspace.gateway.write_sync(run)
    assert held == []
    assert len(one_by_one) == 45 and batched == one_by_one


def test_a_batch_that_raises_writes_none_of_its_events(workspace: Workspace) -> None:
    def run(db: Any) -> list[Any]:
        with pytest.raises(RuntimeError), savepoint(db, "chunk"), events.batched(db):
            _emit_many(db, 3)
            raise RuntimeError("a delivery failed")
        events.emit(db, "contact.created", contact_id=7, now=NOW)  # after the block: written at once
        return _rows(db)

    assert workspace.gateway.write_sync(run) == [("contact.created", None, 7, None, None, None, None, NOW)]


def test_a_batch_holds_only_its_own_connections_events(workspace: Workspace, tmp_path: Path) -> None:
    other = wrap_database(connection.connect(tmp_path / "other.db", bytes(range(32))))
    other.execute("""CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT, conversation_id INTEGER,
                     contact_id INTEGER, message_id INTEGER, flow_id INTEGER, run_id INTEGER, user_id INTEGER,
                     created_at TEXT)""")

    def run(db: Any) -> tuple[list[Any], list[Any], list[Any]]:
        with events.batched(db):
            events.emit(db, "contact.created", contact_id=1, now=NOW)
            events.emit(other, "contact.created", contact_id=2, now=NOW)  # another database: at once
            inside = _rows(db), _rows(other)
        return inside[0], inside[1], _rows(db)

    try:
        held, elsewhere, after = workspace.gateway.write_sync(run)
    finally:
        other.conn.close()
    assert held == []
    assert elsewhere == [("contact.created", None, 2, None, None, None, None, NOW)]
    assert after == [("contact.created", None, 1, None, None, None, None, NOW)]
