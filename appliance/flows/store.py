"""Flows, versions, runs, the step log and timers. SQL only.

Documents are stored as JSON text and parsed once per version (:func:`load_version` caches
the parsed model: published versions are immutable, so the cache never goes stale).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import NotFound
from appliance.flows.effects import ContactView, RunState
from appliance.flows.models import FlowDocument
from appliance.store.rows import many, one, scalar

__all__ = [
    "create_flow", "update_flow", "delete_flow", "get_flow", "list_flows", "publish",
    "load_version", "published_candidates", "find_published", "active_run", "get_run",
    "create_run", "reserve_run", "insert_run", "save_run", "contact_view", "record_steps", "add_timer", "due_timers",
    "take_timer", "stats", "run_counts",
]

_FLOW_COLUMNS = "id, name, document, published_version, draft_updated_at, published_at, created_at"


def _public(row: dict[str, Any], db: Database) -> dict[str, Any]:
    document = json.loads(row["document"])
    published = None
    if row["published_version"] is not None:
        published = scalar(db, "SELECT document FROM flow_versions WHERE flow_id = ? AND version = ?",
                           [row["id"], row["published_version"]])
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": "published" if row["published_version"] is not None else "draft",
        "version": row["published_version"] or 0,
        "has_unpublished_changes": published is None or json.loads(published) != document,
        "document": document,
        "published_at": row["published_at"],
        "updated_at": row["draft_updated_at"],
        "created_at": row["created_at"],
    }


def create_flow(db: Database, document: dict[str, Any], now: str) -> dict[str, Any]:
    cursor = db.execute(
        "INSERT INTO flows (name, document, draft_updated_at, created_at) VALUES (?, ?, ?, ?)",
        [document["name"], json.dumps(document, ensure_ascii=False), now, now],
    )
    return get_flow(db, int(cursor.lastrowid))


def update_flow(db: Database, flow_id: int, document: dict[str, Any], now: str) -> dict[str, Any]:
    _row(db, flow_id)
    db.execute(
        "UPDATE flows SET name = ?, document = ?, draft_updated_at = ? WHERE id = ?",
        [document["name"], json.dumps(document, ensure_ascii=False), now, flow_id],
    )
    return get_flow(db, flow_id)


def delete_flow(db: Database, flow_id: int, now: str) -> None:
    """Soft delete: the flow stops firing; its active runs end as ``interrupted``."""
    _row(db, flow_id)
    db.execute("UPDATE flows SET deleted_at = ? WHERE id = ?", [now, flow_id])
    db.execute(
        "UPDATE flow_runs SET status = 'interrupted', ended_at = ?, updated_at = ?, waiting = NULL "
        "WHERE flow_id = ? AND status = 'active'",
        [now, now, flow_id],
    )


def _row(db: Database, flow_id: int) -> dict[str, Any]:
    row = one(db, f"SELECT {_FLOW_COLUMNS} FROM flows WHERE id = ? AND deleted_at IS NULL", [flow_id])
    if row is None:
        raise NotFound(f"flow {flow_id} does not exist")
    return row


def get_flow(db: Database, flow_id: int) -> dict[str, Any]:
    return _public(_row(db, flow_id), db)


def is_deleted(db: Database, flow_id: int) -> bool:
    return scalar(db, "SELECT deleted_at IS NOT NULL FROM flows WHERE id = ?", [flow_id]) in (1, None)


def draft_document(db: Database, flow_id: int) -> dict[str, Any]:
    return json.loads(_row(db, flow_id)["document"])


def list_flows(db: Database, *, after_id: int | None, limit: int) -> list[dict[str, Any]]:
    rows = many(
        db,
        f"SELECT {_FLOW_COLUMNS} FROM flows WHERE deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?",
        [after_id or 0, limit],
    )
    return [_public(r, db) for r in rows]


def publish(db: Database, flow_id: int, document: dict[str, Any], now: str) -> int:
    """Freeze ``document`` as the next version; running contacts keep theirs."""
    _row(db, flow_id)
    version = int(scalar(db, "SELECT COALESCE(max(version), 0) + 1 FROM flow_versions WHERE flow_id = ?",
                         [flow_id]))
    db.execute(
        "INSERT INTO flow_versions (flow_id, version, document, published_at) VALUES (?, ?, ?, ?)",
        [flow_id, version, json.dumps(document, ensure_ascii=False), now],
    )
    db.execute(
        "UPDATE flows SET published_version = ?, published_at = ? WHERE id = ?", [version, now, flow_id]
    )
    return version


@functools.lru_cache(maxsize=512)
def _parse(document: str) -> FlowDocument:
    return FlowDocument.model_validate_json(document)


def load_version(db: Database, flow_id: int, version: int) -> FlowDocument | None:
    text = scalar(db, "SELECT document FROM flow_versions WHERE flow_id = ? AND version = ?", [flow_id, version])
    return _parse(text) if text is not None else None


def published_candidates(db: Database) -> list[tuple[int, int, FlowDocument]]:
    """Every live published flow with its current version, oldest flow first."""
    rows = many(
        db,
        """SELECT f.id, f.published_version AS version, v.document FROM flows f
           JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.published_version
           WHERE f.deleted_at IS NULL ORDER BY f.id""",
    )
    return [(r["id"], r["version"], _parse(r["document"])) for r in rows]


def find_published(db: Database, reference: str) -> tuple[int, int] | None:
    """A live published flow by id or by name (``goto_flow``)."""
    row = None
    if reference.isdigit():
        row = one(db, "SELECT id, published_version FROM flows WHERE id = ? AND deleted_at IS NULL "
                      "AND published_version IS NOT NULL", [int(reference)])
    if row is None:
        row = one(db, "SELECT id, published_version FROM flows WHERE name = ? AND deleted_at IS NULL "
                      "AND published_version IS NOT NULL ORDER BY id LIMIT 1", [reference])
    return (row["id"], row["published_version"]) if row else None


def _state(row: dict[str, Any], contact: ContactView | None) -> RunState:
    return RunState(
        run_id=row["id"], flow_id=row["flow_id"], version=row["version"], step=row["step"],
        status=row["status"], waiting=row["waiting"], retries=row["retries"], turns=row["turns"],
        timer=row["timer"], origin_comment=row["origin_comment"], contact=contact,
    )


def active_run(db: Database, contact_id: int, contact: ContactView | None) -> RunState | None:
    row = one(db, "SELECT * FROM flow_runs WHERE contact_id = ? AND status = 'active'", [contact_id])
    return _state(row, contact) if row else None


def get_run(db: Database, run_id: int, contact: ContactView | None) -> tuple[RunState, int] | None:
    row = one(db, "SELECT * FROM flow_runs WHERE id = ?", [run_id])
    return (_state(row, contact), row["contact_id"]) if row else None


def create_run(
    db: Database, *, flow_id: int, version: int, contact_id: int, trigger: str, now: str,
    contact: ContactView, no_active_run: bool = False,
) -> RunState:
    """A new active run; any other active run of the contact ends as ``interrupted``.
    ``no_active_run``: the caller read, in this same transaction, that the contact has none
    (the interrupting UPDATE is then skipped)."""
    if not no_active_run:
        db.execute(
            "UPDATE flow_runs SET status = 'interrupted', waiting = NULL, ended_at = ?, updated_at = ? "
            "WHERE contact_id = ? AND status = 'active'",
            [now, now, contact_id],
        )
    cursor = db.execute(
        """INSERT INTO flow_runs (flow_id, version, contact_id, status, trigger, started_at, updated_at)
           VALUES (?, ?, ?, 'active', ?, ?, ?)""",
        [flow_id, version, contact_id, trigger, now, now],
    )
    return RunState(run_id=int(cursor.lastrowid), flow_id=flow_id, version=version, step=None, contact=contact)


def reserve_run(
    db: Database, *, contact_id: int, now: str, contact: ContactView, flow_id: int, version: int,
    no_active_run: bool = False,
) -> RunState:
    """:func:`create_run` without the INSERT: any other active run of the contact ends as
    ``interrupted`` now, and the new run gets the id its row will have; the caller writes the
    row with :func:`insert_run` (as it stands after the run's first engine step: one INSERT
    instead of an INSERT and an UPDATE) before any other run is created or any row refers to
    it, in the same transaction. The id is the one SQLite's AUTOINCREMENT would choose (one
    more than the largest ever used or present)."""
    if not no_active_run:
        db.execute(
            "UPDATE flow_runs SET status = 'interrupted', waiting = NULL, ended_at = ?, updated_at = ? "
            "WHERE contact_id = ? AND status = 'active'",
            [now, now, contact_id],
        )
    next_id = scalar(db, "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'flow_runs'), 0), "
                         "COALESCE((SELECT max(id) FROM flow_runs), 0)) + 1")
    return RunState(run_id=int(next_id), flow_id=flow_id, version=version, step=None, contact=contact)


def insert_run(db: Database, state: RunState, *, contact_id: int, trigger: str, now: str) -> None:
    """Write a run reserved by :func:`reserve_run` as ``state`` (what :func:`create_run` then
    :func:`save_run` would leave; the ``flow.completed`` event is :func:`save_run`'s, with
    ``written=True``)."""
    db.execute(
        """INSERT INTO flow_runs (id, flow_id, version, contact_id, status, trigger, step, waiting, retries,
               turns, timer, origin_comment, started_at, updated_at, ended_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [state.run_id, state.flow_id, state.version, contact_id, state.status, trigger, state.step,
         state.waiting, state.retries, state.turns, state.timer, state.origin_comment, now, now,
         now if state.status != "active" else None],
    )


def save_run(
    db: Database, state: RunState, now: str, *, stored_status: str | None = None, written: bool = False,
) -> None:
    """Persist the run; its completion is a ``flow.completed`` event. ``stored_status``: the
    status the row holds now, when the caller knows it (this transaction wrote or read it and
    ``state.contact`` is set); otherwise it is read. ``written``: :func:`insert_run` has just
    written the row as ``state`` (``stored_status``: the status it was reserved with): only
    the event."""
    ended = now if state.status != "active" else None
    if state.status == "completed":
        if stored_status is not None and state.contact is not None:
            previous: dict[str, Any] | None = {"status": stored_status, "contact_id": state.contact.id}
        else:
            previous = one(db, "SELECT status, contact_id FROM flow_runs WHERE id = ?", [state.run_id])
        if previous is not None and previous["status"] == "active":
            events.emit(db, "flow.completed", flow_id=state.flow_id, run_id=state.run_id,
                        contact_id=previous["contact_id"], now=now)
    if written:
        return
    db.execute(
        """UPDATE flow_runs SET status = ?, step = ?, waiting = ?, retries = ?, turns = ?, timer = ?,
               origin_comment = ?, updated_at = ?, ended_at = COALESCE(ended_at, ?)
           WHERE id = ?""",
        [state.status, state.step, state.waiting, state.retries, state.turns, state.timer,
         state.origin_comment, now, ended, state.run_id],
    )


def contact_view(db: Database, contact_id: int) -> tuple[ContactView, dict[str, Any]]:
    """The engine's view of a contact, and the row with its channel and conversation."""
    row = one(
        db,
        """SELECT c.*, ch.type AS channel, cv.id AS conversation_id, cv.bot_paused,
                  (SELECT json_group_array(t.tag) FROM contact_tags t WHERE t.contact_id = c.id) AS tags_json
           FROM contacts c JOIN channels ch ON ch.id = c.channel_id
           LEFT JOIN conversations cv ON cv.contact_id = c.id WHERE c.id = ?""",
        [contact_id],
    )
    if row is None:
        raise NotFound(f"contact {contact_id} does not exist")
    tags = frozenset(json.loads(row.pop("tags_json")))
    view = ContactView(
        id=contact_id, channel=row["channel"], name=row["name"], first_name=row["first_name"],
        last_name=row["last_name"], fields=json.loads(row["fields"] or "{}"), tags=tags,
        subscribed=bool(row["subscribed"]), timezone=row["timezone"],
    )
    return view, row


_STEP_ROWS = 64  # rows per INSERT (448 parameters)


def record_steps(db: Database, state: RunState, records: list[tuple[str, str, str | None]], now: str) -> None:
    """The step log of one engine step, in order, as one multi-row INSERT (cheaper than a
    statement per row; the same rows and ids)."""
    for start in range(0, len(records), _STEP_ROWS):
        chunk = records[start:start + _STEP_ROWS]
        values: list[Any] = []
        for s, e, d in chunk:
            values += (state.run_id, state.flow_id, state.version, s, e, d, now)
        db.conn.execute(
            "INSERT INTO flow_step_events (run_id, flow_id, version, step, event, detail, at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)), values)


def add_timer(db: Database, token: str, run_id: int, kind: str, due_at: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO flow_timers (token, run_id, kind, due_at) VALUES (?, ?, ?, ?)",
        [token, run_id, kind, due_at],
    )


def due_timers(db: Database, now: str, limit: int = 500) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT token FROM flow_timers WHERE fired_at IS NULL AND due_at <= ? ORDER BY due_at LIMIT ?",
        [now, limit],
    )]


def next_timer_at(db: Database) -> str | None:
    return scalar(db, "SELECT min(due_at) FROM flow_timers WHERE fired_at IS NULL")


def take_timer(db: Database, token: str, now: str, due_before: str | None = None) -> dict[str, Any] | None:
    """Claim a timer due by ``due_before`` (default ``now``) once, whichever of the scheduled
    task and the sweep comes first."""
    row = one(db, "SELECT token, run_id, kind, due_at FROM flow_timers WHERE token = ? AND fired_at IS NULL "
                  "AND due_at <= ?", [token, due_before or now])
    if row is None:
        return None
    db.execute("UPDATE flow_timers SET fired_at = ? WHERE token = ?", [now, token])
    return row


def run_counts(db: Database, flow_id: int, since: str, until: str) -> dict[str, int]:
    counts = {"started": 0, "active": 0, "completed": 0, "interrupted": 0, "loop_limit": 0,
              "handed_off": 0, "error": 0}
    for row in many(db, "SELECT status, count(*) AS n FROM flow_runs WHERE flow_id = ? AND started_at >= ? "
                        "AND started_at < ? GROUP BY status", [flow_id, since, until]):
        counts[row["status"]] = row["n"]
        counts["started"] += row["n"]
    return counts


def stats(db: Database, flow_id: int, since: str, until: str) -> dict[str, Any]:
    """``{runs: {...}, steps: {step: {entered, completed, clicks: {title: n}}}}`` in a range."""
    _row(db, flow_id)
    steps: dict[str, dict[str, Any]] = {}
    for row in many(
        db,
        """SELECT step, event, detail, count(*) AS n FROM flow_step_events
           WHERE flow_id = ? AND at >= ? AND at < ? GROUP BY step, event, detail""",
        [flow_id, since, until],
    ):
        entry = steps.setdefault(row["step"], {"entered": 0, "completed": 0, "clicks": {}})
        if row["event"] == "clicked":
            entry["clicks"][row["detail"]] = entry["clicks"].get(row["detail"], 0) + row["n"]
        else:
            entry[row["event"]] += row["n"]
    for entry in steps.values():
        entry["dropped"] = max(0, entry["entered"] - entry["completed"])
    return {"runs": run_counts(db, flow_id, since, until), "steps": steps}
