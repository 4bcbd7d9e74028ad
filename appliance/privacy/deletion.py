"""Deletion requests from Meta's data-deletion and deauthorize callbacks. SQL only.

A request is ``pending`` until its ``due_at`` (``AAT_ERASURE_GRACE_DAYS`` after it arrived; at
once by default), then ``completed``: every contact Meta knows by the request's user id is
erased (:mod:`appliance.privacy.erasure`), the counts are kept for the status page, and the
user id itself is dropped. A retried callback (same ``signed_request``) finds its row by
``request_hash`` and gets the same confirmation code.

Meta's ``user_id`` is app-scoped. With Facebook Login it is not the page-scoped id (PSID) a
Messenger conversation carries, so it may match nobody here although the person wrote to the
business: the status page says so instead of claiming the data is gone.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from sqlite_utils import Database

from appliance import audit
from appliance.privacy import erasure
from appliance.store.rows import many, one

__all__ = ["KINDS", "new_code", "find_or_create", "get_by_code", "due_ids", "complete", "user_of"]

KINDS = ("data_deletion", "deauthorize")
_ALPHABET = string.ascii_uppercase + string.digits
CODE_LENGTH = 20  # ~103 bits: the status page is public, the code is its only key


def new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))


def find_or_create(
    db: Database, *, request_hash: str, kind: str, user_id: str, now: str, due_at: str
) -> tuple[dict[str, Any], bool]:
    """The request for this signed_request: ``(row, created)``."""
    existing = one(db, "SELECT * FROM deletion_requests WHERE request_hash = ?", [request_hash])
    if existing is not None:
        return existing, False
    cursor = db.conn.execute(
        """INSERT INTO deletion_requests (code, request_hash, kind, user_id, requested_at, due_at)
           VALUES (?, ?, ?, ?, ?, ?)""",
        [new_code(), request_hash, kind, user_id, now, due_at],
    )
    audit.record(db, audit.Actor("meta"), f"{kind}.request", target_kind="deletion_request",
                 target_id=cursor.lastrowid, now=now)
    return one(db, "SELECT * FROM deletion_requests WHERE id = ?", [cursor.lastrowid]), True  # type: ignore[return-value]


def get_by_code(db: Database, code: str) -> dict[str, Any] | None:
    row = one(db, "SELECT * FROM deletion_requests WHERE code = ?", [code])
    if row is not None:
        row["channels"] = json.loads(row["channels"])
    return row


def due_ids(db: Database, now: str) -> list[int]:
    return [r["id"] for r in many(
        db, "SELECT id FROM deletion_requests WHERE status = 'pending' AND due_at <= ? ORDER BY id", [now])]


def user_of(db: Database, request_id: int) -> str | None:
    row = one(db, "SELECT user_id FROM deletion_requests WHERE id = ? AND status = 'pending'", [request_id])
    return row["user_id"] if row else None


def complete(
    db: Database, request_id: int, now: str, scans: dict[int, erasure.JournalScan] | None = None
) -> dict[str, Any] | None:
    """Erase what the request names and record what went; ``None`` when it is not pending
    (another run completed it: completing is idempotent). ``scans``: contact id -> the
    journal scan a reader made for it (:func:`erasure.plan`)."""
    user_id = user_of(db, request_id)
    if user_id is None:
        return None
    scans = scans or {}
    contacts = messages = 0
    channels: set[str] = set()
    for contact_id in erasure.contacts_with_external_id(db, user_id):
        erased = erasure.erase_contact(db, contact_id, scan=scans.get(contact_id))
        contacts += 1
        messages += erased.messages
        channels.add(erased.channel)
        audit.record(db, audit.Actor("meta"), "contact.erase", target_kind="contact",
                     details={"deletion_request": request_id}, now=now)
    db.conn.execute(
        """UPDATE deletion_requests SET status = 'completed', user_id = NULL, completed_at = ?,
               contacts_erased = ?, messages_erased = ?, channels = ? WHERE id = ?""",
        [now, contacts, messages, json.dumps(sorted(channels)), request_id],
    )
    audit.record(db, audit.Actor("meta"), "deletion_request.complete", target_kind="deletion_request",
                 target_id=request_id, details={"contacts": contacts}, now=now)
    return one(db, "SELECT * FROM deletion_requests WHERE id = ?", [request_id])
