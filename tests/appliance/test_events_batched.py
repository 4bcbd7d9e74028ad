"""``events.store.batched``: the events emitted in the block land at its end, in one statement,
as the same rows with the same ids and order as one by one; nothing when the block raises;
an inner block adds to the outer one; an unknown type still fails at once."""

from __future__ import annotations

from typing import Any

import pytest

from appliance import events
from appliance.events.store import batched
from appliance.store.rows import many
from appliance.store.workspace import Workspace

NOW = "2026-11-27T09:00:00.000Z"


def _emit_some(db: Any, base: int) -> None:
    events.emit(db, "contact.created", contact_id=base, now=NOW)
    events.emit(db, "message.created", message_id=base + 1, conversation_id=base + 2, contact_id=base, now=NOW)
    events.emit(db, "flow.completed", flow_id=3, run_id=base + 3, contact_id=base, now=NOW)


def test_batched_events_are_the_rows_emitted_one_by_one(workspace: Workspace) -> None:
    def run(db: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        _emit_some(db, 10)
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)
        try:
            with batched(db):
                _emit_some(db, 20)
                with batched(db):  # inner: adds to the outer block
                    _emit_some(db, 30)
                assert many(db, "SELECT id FROM events WHERE contact_id >= 20") == []  # not yet
        finally:
            db.conn.set_trace_callback(None)
        rows = many(db, "SELECT * FROM events ORDER BY id")
        return rows[:3], rows[3:], sum(s.startswith("INSERT INTO events") for s in statements)

    single, grouped, inserts = workspace.gateway.write_sync(run)
    assert inserts == 1
    assert [r["id"] for r in grouped] == list(range(single[-1]["id"] + 1, single[-1]["id"] + 7))
    strip = [{k: v for k, v in r.items() if k != "id"} for r in single]

    def shifted(base: int) -> list[dict[str, Any]]:
        return [{**r, **{k: v + base - 10 for k, v in r.items() if k in ("contact_id", "message_id",
                                                                         "conversation_id", "run_id") and v}}
                for r in strip]

    assert [{k: v for k, v in r.items() if k != "id"} for r in grouped] == shifted(20) + shifted(30)


def test_a_failed_block_writes_no_events_and_bad_types_fail_at_once(workspace: Workspace) -> None:
    def run(db: Any) -> int:
        with pytest.raises(RuntimeError), db.atomic(), batched(db):
            _emit_some(db, 40)
            raise RuntimeError("the change failed")
        with batched(db):
            pass  # an empty block writes nothing
        with batched(db):
            events.emit(db, "contact.updated", contact_id=50, now=NOW)  # the block is usable again
        with batched(db), pytest.raises(ValueError, match="unknown event type"):
            events.emit(db, "message.exploded", message_id=1, now=NOW)
        return len(many(db, "SELECT id FROM events"))

    assert workspace.gateway.write_sync(run) == 1
