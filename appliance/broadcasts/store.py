"""Broadcasts and their status: SQL only (recipients: :mod:`appliance.broadcasts.recipients`).

Life of a broadcast::

    draft --start--> scheduled --(send_at)--> sending --(all decided and sent)--> completed
      |                  |  ^                   |  ^
      |                  pause|start          pause|start (resume)
      |                  v  |                   v  |
      '---------------> paused <----------------'
    draft, scheduled, sending, paused --cancel--> cancelled

``start`` on a draft or a paused broadcast sends it now, or schedules it while ``send_at`` is
ahead. Pausing, in one transaction, stops queueing and pulls back every message of the
broadcast still waiting in the outbox that the sender has not taken
(:func:`appliance.broadcasts.recipients.pull_back`): their recipients are pending again. What
the sender has already taken (at most the worker's backlog, about half a second of sending:
waiting for a rate-limit slot or being sent), and messages waiting for a retry or in doubt
after a crash (they may have reached Meta), go out as usual. Resuming continues with the
pending recipients. Cancelling pulls back the same way and ends the broadcast.

Counts come from the ``n_*`` columns, which triggers keep (migrations/appliance/0008): a
recipient moves ``pending -> queued -> sent -> delivered -> read`` (or ``failed``) with its
message, or ``pending -> skipped`` with a reason. In the API, ``sent`` counts every message
Meta accepted (sent, delivered or read), ``delivered`` the delivered or read ones. A cancelled
broadcast's undecided recipients count as skipped, reason ``cancelled``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance.broadcasts.recipients import pull_back
from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one, scalar

__all__ = [
    "create", "get", "list_broadcasts", "public", "start", "pause", "cancel", "start_due", "sending",
    "next_scheduled_at", "complete_if_done", "auto_pause", "TERMINAL",
]

TERMINAL = ("completed", "cancelled")


def create(
    db: Database, *, name: str, audience: dict[str, Any], message: dict[str, Any], send_at: str | None,
    timezone: str | None, now: str,
) -> dict[str, Any]:
    cursor = db.execute(
        """INSERT INTO broadcasts (name, audience, message, send_at, timezone, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [name, json.dumps(audience, ensure_ascii=False, sort_keys=True),
         json.dumps(message, ensure_ascii=False, sort_keys=True), send_at, timezone, now, now],
    )
    return get(db, int(cursor.lastrowid))


def get(db: Database, broadcast_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM broadcasts WHERE id = ?", [broadcast_id])
    if row is None:
        raise NotFound(f"broadcast {broadcast_id} does not exist")
    return row


def list_broadcasts(db: Database, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` is the cursor."""
    return many(db, "SELECT * FROM broadcasts WHERE id < ? ORDER BY id DESC LIMIT ?", [before_id or 2**62, limit])


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape (docs/spec/api.md)."""
    reasons = {k: v for k, v in json.loads(row["skipped_reasons"]).items() if v}
    skipped = row["n_skipped"]
    if row["status"] == "cancelled" and row["n_pending"]:
        reasons["cancelled"] = reasons.get("cancelled", 0) + row["n_pending"]
        skipped += row["n_pending"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "audience": json.loads(row["audience"]),
        "message": json.loads(row["message"]),
        "send_at": row["send_at"],
        "timezone": row["timezone"],
        "counts": {
            "total": row["n_total"],
            "sent": row["n_sent"] + row["n_delivered"] + row["n_read"],
            "delivered": row["n_delivered"] + row["n_read"],
            "read": row["n_read"],
            "failed": row["n_failed"],
            "skipped": skipped,
        },
        "skipped_reasons": reasons,
        "progress": {
            "audience_complete": bool(row["materialized"]),
            "pending": 0 if row["status"] == "cancelled" else row["n_pending"],
            "queued": row["n_queued"],
        },
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
    }


def _refuse(row: dict[str, Any], action: str) -> Conflict:
    return Conflict(f"broadcast {row['id']} is {row['status']}; it cannot be {action}", code="invalid_transition")


def _begin_sending(db: Database, broadcast_id: int, now: str) -> None:
    """Into ``sending``; the first time, fix the audience's extent (the largest contact id)."""
    through = int(scalar(db, "SELECT COALESCE(max(id), 0) FROM contacts") or 0)
    db.execute(
        """UPDATE broadcasts SET status = 'sending', status_reason = NULL, updated_at = ?,
               started_at = COALESCE(started_at, ?), through_contact_id = COALESCE(through_contact_id, ?)
           WHERE id = ?""",
        [now, now, through, broadcast_id],
    )


def start(db: Database, broadcast_id: int, now: str) -> dict[str, Any]:
    """Start or resume (see the module docstring); a no-op when scheduled or sending."""
    row = get(db, broadcast_id)
    if row["status"] in TERMINAL:
        raise _refuse(row, "started")
    if row["status"] in ("draft", "paused"):
        if row["started_at"] is None and row["send_at"] is not None and row["send_at"] > now:
            db.execute("UPDATE broadcasts SET status = 'scheduled', status_reason = NULL, updated_at = ? WHERE id = ?",
                       [now, broadcast_id])
        else:
            _begin_sending(db, broadcast_id, now)
    return get(db, broadcast_id)


def pause(db: Database, broadcast_id: int, now: str, reason: str | None = None) -> dict[str, Any]:
    """Stop sending (see the module docstring); a no-op when paused."""
    row = get(db, broadcast_id)
    if row["status"] in ("draft", *TERMINAL):
        raise _refuse(row, "paused")
    if row["status"] != "paused":
        db.execute("UPDATE broadcasts SET status = 'paused', status_reason = ?, updated_at = ? WHERE id = ?",
                   [reason, now, broadcast_id])
        pull_back(db, broadcast_id, now)
    return get(db, broadcast_id)


def cancel(db: Database, broadcast_id: int, now: str) -> dict[str, Any]:
    """End it for good (see the module docstring); a no-op when cancelled."""
    row = get(db, broadcast_id)
    if row["status"] == "completed":
        raise _refuse(row, "cancelled")
    if row["status"] != "cancelled":
        db.execute(
            "UPDATE broadcasts SET status = 'cancelled', completed_at = ?, updated_at = ? WHERE id = ?",
            [now, now, broadcast_id],
        )
        pull_back(db, broadcast_id, now)
    return get(db, broadcast_id)


def auto_pause(db: Database, broadcast_id: int, reason: str, now: str) -> bool:
    """Pause a sending or scheduled broadcast by itself (its template stopped being sendable)."""
    row = get(db, broadcast_id)
    if row["status"] not in ("sending", "scheduled"):
        return False
    pause(db, broadcast_id, now, reason)
    return True


def start_due(db: Database, now: str) -> list[int]:
    """Scheduled broadcasts whose time has come start sending; returns their ids."""
    ids = [r["id"] for r in many(
        db, "SELECT id FROM broadcasts WHERE status = 'scheduled' AND (send_at IS NULL OR send_at <= ?)", [now]
    )]
    for broadcast_id in ids:
        _begin_sending(db, broadcast_id, now)
    return ids


def sending(db: Database) -> list[dict[str, Any]]:
    """The broadcasts sending now, oldest first."""
    return many(db, "SELECT * FROM broadcasts WHERE status = 'sending' ORDER BY id")


def next_scheduled_at(db: Database) -> str | None:
    return scalar(db, "SELECT min(send_at) FROM broadcasts WHERE status = 'scheduled'")


def complete_if_done(db: Database, broadcast_id: int, now: str) -> bool:
    """``completed`` once every recipient is decided and every queued message left the outbox."""
    return db.execute(
        """UPDATE broadcasts SET status = 'completed', completed_at = ?, updated_at = ?
           WHERE id = ? AND status = 'sending' AND materialized = 1 AND n_pending = 0 AND n_queued = 0""",
        [now, now, broadcast_id],
    ).rowcount == 1
