"""Erasure (GDPR Art. 17): a contact and everything tied to it, removed for good. SQL only.

What goes, in one transaction:

- every row of every table that names the contact by convention: a column ``contact_id``
  (the contact's tags, runs, consent log, notes, AI memory...), ``conversation_id`` (its
  conversation, messages, notes, notifications, outbox), ``message_id`` (outbox rows, domain
  events) or ``run_id`` (the runs' step log, timers, comment private replies). A feature that
  adds a table about contacts and follows the convention is covered without touching this
  module; data that cannot follow it registers a hook with :func:`register_hook`;
- the private replies recorded for the contact's comments (keyed by Meta's comment id);
- the raw webhook bodies that mention the contact: the journal rows linked to it when they
  were processed, and every other processed or failed row whose body contains one of its
  identifiers as a JSON string (statuses, read receipts and duplicates are never linked).
  The body is blanked (``NULL``); the row keeps its counts, which say nothing about anyone;
- then the contact row. A ``contact.deleted`` domain event (ids only) tells live views and
  outbound webhooks.

SQLCipher is built with ``secure_delete`` on, so deleted rows are overwritten in the file
(pinned by ``tests/appliance/test_privacy_erasure.py``).

What stays, on purpose:

- the audit log entry saying that an erasure happened, by whom and when, not whom it erased;
- dedupe keys (``seen_events``): Meta's message ids, no name or text, gone after 8 days. Deleting
  them would let a late retry of an erased message store it again;
- journal rows still ``pending`` when the erasure runs: they are events Meta delivered but we
  have not yet read, and are processed afterwards like any new message from the person.
  Blanking them would also drop other contacts' events batched in the same delivery;
- builder previews (``flow_previews``): they belong to team members, not to contacts.

Scanning the journal can take a while on a busy workspace, so callers do it on a reader first
(:func:`plan`) and pass the result to :func:`erase_contact`, which then only scans the rows
that arrived since.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import NotFound
from appliance.store.rows import many, one, scalar

__all__ = [
    "SCOPE_COLUMNS",
    "JournalScan",
    "Erased",
    "register_hook",
    "identifiers",
    "plan",
    "scan_journal",
    "erase_contact",
    "contacts_with_external_id",
    "scoped_tables",
]

# The columns that tie a row to a contact, and the tables erasure must order by hand.
SCOPE_COLUMNS = ("contact_id", "conversation_id", "message_id", "run_id")
_LAST = ("messages", "flow_runs", "conversations", "contacts")  # the others' subqueries read these
_NEVER = frozenset({"audit_log", "deletion_requests", "webhook_journal"})
_IDENTIFIER_COLUMNS = ("external_id", "wa_id", "bsuid", "parent_bsuid", "username", "phone")

# Hooks: ``fn(db, contact) -> rows removed`` for data that no scope column can reach.
_HOOKS: list[Callable[[Database, dict[str, Any]], int]] = []


def register_hook(fn: Callable[[Database, dict[str, Any]], int]) -> None:
    """Erase something more with every contact (called inside the erasure's transaction, before
    the contact's rows go; ``contact`` is its full row). Register once, at import time."""
    if fn not in _HOOKS:
        _HOOKS.append(fn)


@dataclass(frozen=True, slots=True)
class JournalScan:
    """Journal rows (ids) whose body mentions the contact, among the rows up to ``upto``."""

    ids: tuple[int, ...] = ()
    upto: int = 0


@dataclass(slots=True)
class Erased:
    """What one erasure removed: rows per table, and raw journal bodies blanked."""

    rows: dict[str, int] = field(default_factory=dict)
    journal_bodies: int = 0
    channel: str = ""

    @property
    def messages(self) -> int:
        return self.rows.get("messages", 0)

    def summary(self) -> dict[str, Any]:
        return {"rows": dict(sorted(self.rows.items())), "journal_bodies": self.journal_bodies}


def _contact(db: Database, contact_id: int) -> dict[str, Any]:
    row = one(db, "SELECT c.*, ch.type AS channel FROM contacts c JOIN channels ch ON ch.id = c.channel_id "
                  "WHERE c.id = ?", [contact_id])
    if row is None:
        raise NotFound(f"contact {contact_id} does not exist")
    return row


def identifiers(contact: dict[str, Any]) -> list[bytes]:
    """The contact's ids as they appear in Meta's JSON: quoted, non-ASCII escaped as Meta does."""
    values = {str(contact[c]) for c in _IDENTIFIER_COLUMNS if contact.get(c)}
    return [json.dumps(value).encode() for value in sorted(values)]


def scan_journal(db: Database, needles: list[bytes], *, after_id: int = 0) -> JournalScan:
    """Processed or failed journal rows after ``after_id`` whose body contains a needle."""
    upto = int(scalar(db, "SELECT COALESCE(max(id), 0) FROM webhook_journal") or 0)
    if not needles or upto <= after_id:
        return JournalScan((), max(upto, after_id))
    match = " OR ".join("instr(body, ?) > 0" for _ in needles)
    rows = db.conn.execute(
        f"""SELECT id FROM webhook_journal WHERE id > ? AND id <= ? AND body IS NOT NULL
               AND state != 'pending' AND ({match})""",
        [after_id, upto, *needles],
    ).fetchall()
    return JournalScan(tuple(r[0] for r in rows), upto)


def plan(db: Database, contact_id: int) -> JournalScan:
    """The slow part of an erasure, for a reader connection: scan the journal."""
    return scan_journal(db, identifiers(_contact(db, contact_id)))


def scoped_tables(db: Database) -> dict[str, list[str]]:
    """Every table with a scope column -> those columns, in erasure order."""
    names = [r[0] for r in db.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    found: dict[str, list[str]] = {}
    for name in names:
        if name in _NEVER:
            continue
        columns = {r[1] for r in db.conn.execute(f"PRAGMA table_info({json.dumps(name)})")}
        scope = [c for c in SCOPE_COLUMNS if c in columns]
        if scope or name in _LAST:
            found[name] = scope
    ordered = {t: s for t, s in found.items() if t not in _LAST}
    ordered.update({t: found.get(t, []) for t in _LAST})
    return ordered


def _where(scope: list[str]) -> str:
    conditions = {
        "contact_id": "contact_id = :contact",
        "conversation_id": "conversation_id IN (SELECT value FROM json_each(:conversations))",
        "message_id": "message_id IN (SELECT id FROM messages WHERE contact_id = :contact)",
        "run_id": "run_id IN (SELECT value FROM json_each(:runs))",
    }
    return " OR ".join(conditions[c] for c in scope)


def _blank_journal(db: Database, contact: dict[str, Any], scan: JournalScan | None) -> int:
    scan = scan or JournalScan()
    tail = scan_journal(db, identifiers(contact), after_id=scan.upto)
    ids = json.dumps(sorted({*scan.ids, *tail.ids}))
    return db.conn.execute(
        """UPDATE webhook_journal SET body = NULL
           WHERE body IS NOT NULL AND state != 'pending'
             AND (id IN (SELECT journal_id FROM webhook_journal_contacts WHERE contact_id = ?)
                  OR id IN (SELECT value FROM json_each(?)))""",
        [contact["id"], ids],
    ).rowcount


def erase_contact(db: Database, contact_id: int, *, scan: JournalScan | None = None) -> Erased:
    """Remove the contact and everything tied to it (see the module docstring); run it inside
    one write transaction. ``scan`` is :func:`plan`'s result, if it was made on a reader."""
    contact = _contact(db, contact_id)
    erased = Erased(channel=contact["channel"])
    params = {
        "contact": contact_id,
        "conversations": json.dumps([r["id"] for r in many(
            db, "SELECT id FROM conversations WHERE contact_id = ?", [contact_id])]),
        "runs": json.dumps([r["id"] for r in many(db, "SELECT id FROM flow_runs WHERE contact_id = ?", [contact_id])]),
    }
    erased.journal_bodies = _blank_journal(db, contact, scan)
    erased.rows["comment_private_replies"] = db.conn.execute(
        """DELETE FROM comment_private_replies WHERE channel_id = ? AND comment_id IN
               (SELECT external_id FROM messages WHERE contact_id = ? AND kind = 'comment'
                  AND external_id IS NOT NULL)""",
        [contact["channel_id"], contact_id],
    ).rowcount
    for hook in _HOOKS:
        erased.rows[f"hook:{getattr(hook, '__qualname__', 'hook')}"] = hook(db, contact)
    for table, scope in scoped_tables(db).items():
        where = "id = :contact" if table == "contacts" else _where(scope)
        if not where:
            continue
        count = db.conn.execute(f"DELETE FROM {json.dumps(table)} WHERE {where}", params).rowcount
        erased.rows[table] = erased.rows.get(table, 0) + count
    erased.rows = {table: n for table, n in erased.rows.items() if n}
    events.emit(db, "contact.deleted", contact_id=contact_id)
    return erased


def contacts_with_external_id(db: Database, user_id: str) -> list[int]:
    """Contacts Meta knows by ``user_id`` on any channel (PSID, IGSID, BSUID or ``wa_id``)."""
    return [r["id"] for r in many(
        db, "SELECT id FROM contacts WHERE external_id = ? OR bsuid = ? OR wa_id = ? ORDER BY id",
        [user_id, user_id, user_id])]
