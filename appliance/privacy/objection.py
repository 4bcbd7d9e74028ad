"""Objection (GDPR Art. 21): the contact no longer wants automated or marketing messages.

One write: the contact is unsubscribed (no broadcasts; recorded in the consent log), its active
flow run ends as ``interrupted`` (its timers then fire into nothing), its conversation's bot is
paused (no flow reacts to what it writes, STOP/START words included, until an agent resumes
it), and bot messages still waiting in the outbox are cancelled: they fail with the code
``objection`` instead of being sent. What an agent writes by hand still goes out. SQL only.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.contacts import store as contacts
from appliance.outbox import store as outbox
from appliance.store.rows import many

__all__ = ["object_to_processing", "CANCEL_CODE"]

CANCEL_CODE = "objection"
_CANCEL_REASON = "not sent: the contact objected to automated messages"


def object_to_processing(db: Database, contact_id: int, now: str) -> dict[str, Any]:
    contacts.get_contact(db, contact_id)
    contacts.update_contact(db, contact_id, {"subscribed": False}, now)
    runs = db.conn.execute(
        """UPDATE flow_runs SET status = 'interrupted', waiting = NULL, ended_at = ?, updated_at = ?
           WHERE contact_id = ? AND status = 'active'""",
        [now, now, contact_id],
    ).rowcount
    for row in many(db, "SELECT id FROM conversations WHERE contact_id = ? AND bot_paused = 0", [contact_id]):
        db.conn.execute("UPDATE conversations SET bot_paused = 1, updated_at = ? WHERE id = ?", [now, row["id"]])
        events.emit(db, "conversation.updated", conversation_id=row["id"], now=now)
    queued = many(
        db,
        """SELECT o.id, o.message_id FROM outbox o JOIN messages m ON m.id = o.message_id
           WHERE m.contact_id = ? AND m.sent_by = 'bot' AND o.state = 'queued'""",
        [contact_id],
    )
    for row in queued:
        outbox.mark_failed(db, row["id"], row["message_id"], code=CANCEL_CODE, reason=_CANCEL_REASON, now=now)
    return {
        "contact": contacts.get_contact(db, contact_id),
        "runs_ended": runs,
        "messages_cancelled": len(queued),
        "bot_paused": True,
    }
