"""Access and portability (GDPR Art. 15 and 20): everything about one contact, as one JSON
document (``GET /api/v1/contacts/{id}/export``). SQL only.

The profile as stored (every identifier Meta gave), tags with when they were added, custom
fields, the subscription and marketing preference with their history, the conversation with
every message, the flow runs with their step log, and under ``other_records`` the rows of any
further table that names the contact by the erasure convention (notes, notifications, AI
memory...): the same reach as erasure (:mod:`appliance.privacy.erasure`), so what can be erased
can be seen first. Secrets (columns ending ``_enc`` or ``_hash``) are left out; raw webhook
copies are not included (they repeat the messages and are purged after a few days).
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from appliance import __version__
from appliance.errors import NotFound
from appliance.inbox.store import public_message
from appliance.privacy import erasure
from appliance.store.rows import many, one
from appliance.timeutil import iso_now

__all__ = ["FORMAT", "build"]

FORMAT = "aat-contact-export/1"
# Covered above, or internal bookkeeping that says nothing the rest does not.
_SHOWN = frozenset({"contacts", "contact_tags", "conversations", "messages", "flow_runs", "flow_step_events",
                    "consent_log"})
_INTERNAL = frozenset({"events", "outbox", "flow_timers", "webhook_journal_contacts", "comment_private_replies"})


def _profile(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "channel": row["channel"],
        "channel_name": row["channel_name"],
        "external_id": row["external_id"],
        "wa_id": row["wa_id"],
        "bsuid": row["bsuid"],
        "parent_bsuid": row["parent_bsuid"],
        "name": row["name"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "username": row["username"],
        "phone": row["phone"],
        "timezone": row["timezone"],
        "last_inbound_at": row["last_inbound_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _runs(db: Database, contact_id: int) -> list[dict[str, Any]]:
    runs = many(db, """SELECT r.id, r.flow_id, f.name AS flow_name, r.version, r.status, r.trigger, r.step,
                              r.started_at, r.ended_at
                       FROM flow_runs r LEFT JOIN flows f ON f.id = r.flow_id
                       WHERE r.contact_id = ? ORDER BY r.id""", [contact_id])
    for run in runs:
        run["steps"] = many(db, "SELECT step, event, detail, at FROM flow_step_events WHERE run_id = ? ORDER BY id",
                            [run["id"]])
        run["id"], run["flow_id"] = str(run["id"]), str(run["flow_id"])
    return runs


def _other_records(db: Database, contact_id: int, conversations: list[int]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    params = {"contact": contact_id, "conversations": json.dumps(conversations)}
    for table, scope in erasure.scoped_tables(db).items():
        scope = [c for c in scope if c in ("contact_id", "conversation_id")]
        if table in _SHOWN or table in _INTERNAL or not scope:
            continue
        where = " OR ".join("contact_id = :contact" if c == "contact_id"
                            else "conversation_id IN (SELECT value FROM json_each(:conversations))" for c in scope)
        rows = many(db, f"SELECT * FROM {json.dumps(table)} WHERE {where}", params)
        rows = [{k: v for k, v in r.items() if not k.endswith(("_enc", "_hash")) and not isinstance(v, bytes)}
                for r in rows]
        if rows:
            found[table] = rows
    return found


def build(db: Database, contact_id: int) -> dict[str, Any]:
    contact = one(db, """SELECT c.*, ch.type AS channel, ch.name AS channel_name
                         FROM contacts c JOIN channels ch ON ch.id = c.channel_id WHERE c.id = ?""", [contact_id])
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist")
    conversations = many(db, """SELECT id, status, bot_paused, last_message_at, created_at
                                FROM conversations WHERE contact_id = ? ORDER BY id""", [contact_id])
    for conversation in conversations:
        messages = many(db, "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", [conversation["id"]])
        conversation["messages"] = [public_message(m) for m in messages]
        conversation["bot_paused"] = bool(conversation["bot_paused"])
    return {
        "format": FORMAT,
        "exported_at": iso_now(),
        "exported_by": f"aat-appliance {__version__}",
        "contact": _profile(contact),
        "tags": many(db, "SELECT tag, created_at AS added_at FROM contact_tags WHERE contact_id = ? ORDER BY tag",
                     [contact_id]),
        "fields": json.loads(contact["fields"] or "{}"),
        "consent": {
            "subscribed": bool(contact["subscribed"]),
            "marketing_opt_out": bool(contact["marketing_opt_out"]),
            "history": [
                {"subject": r["subject"], "value": bool(r["value"]), "at": r["at"]}
                for r in many(db, "SELECT subject, value, at FROM consent_log WHERE contact_id = ? ORDER BY id",
                              [contact_id])
            ],
        },
        "conversations": [{**c, "id": str(c["id"])} for c in conversations],
        "flow_runs": _runs(db, contact_id),
        "other_records": _other_records(db, contact_id, [c["id"] for c in conversations]),
    }
