"""Data-subject rights as the API, Meta's callbacks and the retention job use them.

Each function takes the workspace gateway and runs the slow, read-only part of an erasure
(scanning the webhook journal) on a reader, then the erasure itself as one write, so
acknowledging webhooks never waits behind a scan. They block: call them from a worker thread
(``asyncio.to_thread`` in handlers; huey tasks already run in one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from appliance import audit
from appliance.privacy import deletion, erasure, objection
from appliance.privacy.signed_request import SignedRequest
from appliance.store.gateway import Gateway
from appliance.store.rows import scalar
from appliance.timeutil import to_iso

__all__ = [
    "erase_contact",
    "object_to_processing",
    "receive_deletion_request",
    "complete_request",
    "complete_due",
    "business_name",
]


def erase_contact(gateway: Gateway, contact_id: int, actor: audit.Actor) -> erasure.Erased:
    """Erase one contact; the audit log records that an erasure happened, not whom it erased."""
    scan = gateway.read_sync(erasure.plan, contact_id)

    def erase(db: Database) -> erasure.Erased:
        erased = erasure.erase_contact(db, contact_id, scan=scan)
        audit.record(db, actor, "contact.erase", target_kind="contact")
        return erased

    return gateway.write_sync(erase)


def object_to_processing(gateway: Gateway, contact_id: int, actor: audit.Actor, now: str) -> dict[str, Any]:
    def run(db: Database) -> dict[str, Any]:
        result = objection.object_to_processing(db, contact_id, now)
        audit.record(db, actor, "contact.objection", target_kind="contact", target_id=contact_id,
                     details={k: v for k, v in result.items() if k != "contact"}, now=now)
        return result

    return gateway.write_sync(run)


def _plans(db: Database, user_id: str) -> dict[int, erasure.JournalScan]:
    return {cid: erasure.plan(db, cid) for cid in erasure.contacts_with_external_id(db, user_id)}


def complete_request(gateway: Gateway, request_id: int, now: datetime) -> dict[str, Any] | None:
    """Erase what a pending request names; ``None`` if it was not pending."""
    user_id = gateway.read_sync(deletion.user_of, request_id)
    if user_id is None:
        return None
    scans = gateway.read_sync(_plans, user_id)
    return gateway.write_sync(deletion.complete, request_id, to_iso(now), scans)


def receive_deletion_request(
    gateway: Gateway, request: SignedRequest, *, kind: str, grace_days: float, now: datetime
) -> dict[str, Any]:
    """Record a verified callback (the same signed_request again finds the same row) and, when
    no grace period applies, erase at once. Returns the request row."""
    due_at = to_iso(now + timedelta(days=grace_days))
    row, _ = gateway.write_sync(
        deletion.find_or_create, request_hash=request.digest, kind=kind, user_id=request.user_id,
        now=to_iso(now), due_at=due_at,
    )
    if row["status"] == "pending" and row["due_at"] <= to_iso(now):
        row = complete_request(gateway, row["id"], now) or row
    return row


def complete_due(gateway: Gateway, now: datetime) -> int:
    """Complete every pending request whose grace period is over; returns how many."""
    done = 0
    for request_id in gateway.read_sync(deletion.due_ids, to_iso(now)):
        if complete_request(gateway, request_id, now) is not None:
            done += 1
    return done


def business_name(db: Database) -> str:
    return str(scalar(db, "SELECT value FROM workspace_settings WHERE key = 'name'") or "")
