"""The webhook journal: raw bodies committed before Meta gets its 200, replayed in order.

States: ``pending`` (acknowledged, not yet used) -> ``processed`` (every event stored) or
``failed`` (some part could not be used; ``error`` says which part and why, never what it
said). Failed rows keep their body until an operator retries them (``aat-appliance journal
retry``); processed rows are deleted ``AAT_JOURNAL_RETENTION_DAYS`` after processing.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = [
    "append",
    "pending",
    "pending_and_last_id",
    "is_pending",
    "still_pending",
    "finish",
    "link_contact",
    "claim_event",
    "purge",
    "retry_failed",
    "lag",
    "SEEN_KEY_DAYS",
]

# WhatsApp retries a delivery for up to 7 days; keys outlive that.
SEEN_KEY_DAYS = 8


def append(db: Database, body: bytes, now: str) -> int:
    cursor = db.execute(
        "INSERT INTO webhook_journal (received_at, body) VALUES (?, ?)", [now, body]
    )
    return int(cursor.lastrowid)


def pending(db: Database, limit: int) -> list[dict[str, Any]]:
    return many(
        db,
        "SELECT id, body, received_at FROM webhook_journal WHERE state = 'pending' ORDER BY id LIMIT ?",
        [limit],
    )


def pending_and_last_id(db: Database, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` pending rows (:func:`pending`), and the journal's last id read just before
    them (0 when it was empty): a row journaled later has a greater id than both."""
    last = int(db.execute("SELECT coalesce(max(id), 0) FROM webhook_journal").fetchone()[0])
    return pending(db, limit), last


def is_pending(db: Database, journal_id: int) -> bool:
    row = one(db, "SELECT state FROM webhook_journal WHERE id = ?", [journal_id])
    return row is not None and row["state"] == "pending"


def still_pending(db: Database, journal_ids: list[int]) -> set[int]:
    """Which of ``journal_ids`` are still ``pending`` (one statement for a whole chunk)."""
    if not journal_ids:
        return set()
    marks = ", ".join("?" * len(journal_ids))
    return {row[0] for row in db.execute(
        f"SELECT id FROM webhook_journal WHERE state = 'pending' AND id IN ({marks})", journal_ids)}


def finish(
    db: Database, journal_id: int, *, events: int, duplicates: int, error: str | None, now: str
) -> None:
    db.execute(
        """UPDATE webhook_journal SET state = ?, processed_at = ?, events = ?, duplicates = ?,
               error = ? WHERE id = ?""",
        ["failed" if error else "processed", now, events, duplicates, error, journal_id],
    )


def link_contact(db: Database, journal_id: int, contact_id: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO webhook_journal_contacts (journal_id, contact_id) VALUES (?, ?)",
        [journal_id, contact_id],
    )


def claim_event(db: Database, key: str, now: str) -> bool:
    """True the first time ``key`` is seen: the event is new and this caller handles it."""
    cursor = db.execute("INSERT OR IGNORE INTO seen_events (key, seen_at) VALUES (?, ?)", [key, now])
    return cursor.rowcount == 1


def purge(db: Database, *, processed_before: str, keys_before: str) -> dict[str, int]:
    journal = db.execute(
        "DELETE FROM webhook_journal WHERE state = 'processed' AND processed_at < ?",
        [processed_before],
    ).rowcount
    keys = db.execute("DELETE FROM seen_events WHERE seen_at < ?", [keys_before]).rowcount
    return {"journal_rows": journal, "dedupe_keys": keys}


def retry_failed(db: Database, journal_id: int | None = None) -> int:
    """Put failed rows back in the queue (their good events are deduplicated on replay)."""
    sql = "UPDATE webhook_journal SET state = 'pending', error = NULL WHERE state = 'failed' AND body IS NOT NULL"
    params: list[Any] = []
    if journal_id is not None:
        sql += " AND id = ?"
        params.append(journal_id)
    return db.execute(sql, params).rowcount


def lag(db: Database) -> dict[str, Any]:
    row = one(
        db,
        """SELECT count(*) AS pending, min(received_at) AS oldest
           FROM webhook_journal WHERE state = 'pending'""",
    )
    failed = one(db, "SELECT count(*) AS failed FROM webhook_journal WHERE state = 'failed'")
    return {"pending": row["pending"], "oldest": row["oldest"], "failed": failed["failed"]}  # type: ignore[index]
