"""A broadcast's recipients: materialised from its audience, decided, queued. SQL only (with the
pure policy and per-recipient rendering).

Every function is one transaction and may run again after a crash without doing anything
twice:

- :func:`materialize` inserts the audience's next chunk of contact ids as ``pending``
  recipients (``INSERT OR IGNORE``) and moves the broadcast's cursor, together;
- :func:`advance` takes pending recipients in contact-id order, decides each one
  (:mod:`appliance.broadcasts.policy`), and either marks it ``skipped`` with the reason or
  queues its message in the outbox and records the message id on the recipient, in the same
  transaction. So a recipient is pending (nothing queued) or queued with exactly one message:
  a restart never queues a second copy, and in-flight sends are the outbox's in-doubt
  business (``aat:<message id>`` references). It queues only while the broadcast has fewer
  than ``backlog`` messages waiting (appliance/broadcasts/worker.py), so the outbox never
  holds more than a moment of the broadcast;
- :func:`pull_back` (pause, cancel) takes the broadcast's messages that the sender has not
  taken yet (``queued``, never attempted) out of the outbox and the inbox, and makes their
  recipients pending again. Those it has taken (claimed, waiting for a rate-limit slot or
  being sent, or waiting for a retry, or in doubt after a crash) go out as usual;
- :func:`estimate` counts the audience and what the policy would decide for each, now.

WhatsApp's pair rate (about one message per 6 s to the same user, docs/spec/meta-platform.md
§7): a broadcast sends one message per contact, and queues it no earlier than 6 s after the
contact's last outbound message (6 s from now when one is still waiting in the outbox).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.broadcasts.policy import Plan, decide, plan_of
from appliance.flows.templating import render_template, render_url
from appliance.inbox.store import ensure_conversation
from appliance.outbox.retry import PAIR_RATE_SECONDS
from appliance.store.rows import many, one
from appliance.timeutil import from_iso, to_iso

__all__ = ["materialize", "advance", "pull_back", "estimate", "render_message", "BROADCAST_PRIORITY"]

BROADCAST_PRIORITY = 1  # after agent replies and flow messages (0); see outbox.store.claim_due
PAIR_RATE = timedelta(seconds=PAIR_RATE_SECONDS)

_FACTS = """
SELECT c.id AS contact_id, c.channel_id, c.subscribed, c.marketing_opt_out, c.last_inbound_at,
       c.name, c.first_name, c.last_name, c.fields, ch.type AS channel_type, ch.status AS channel_status,
       ch.waba_id AS channel_waba_id
FROM contacts c JOIN channels ch ON ch.id = c.channel_id
"""


def _decide(plan: Plan, row: dict[str, Any], now: datetime) -> str | None:
    last = row["last_inbound_at"]
    return decide(
        plan, channel_type=row["channel_type"], channel_status=row["channel_status"],
        channel_waba_id=row["channel_waba_id"], subscribed=bool(row["subscribed"]),
        marketing_opt_out=bool(row["marketing_opt_out"]), last_inbound_at=from_iso(last) if last else None,
        now=now,
    )


def materialize(db: Database, broadcast_id: int, where: str, params: list[Any], *, chunk: int) -> bool:
    """Add the audience's next ``chunk`` contact ids; True once the audience is complete."""
    row = one(db, "SELECT cursor_contact_id, through_contact_id, materialized FROM broadcasts WHERE id = ?",
              [broadcast_id])
    if row is None or row["materialized"]:
        return True
    low, through = row["cursor_contact_id"], row["through_contact_id"] or 0
    high = min(low + chunk, through)
    db.execute(
        f"""INSERT OR IGNORE INTO broadcast_recipients (broadcast_id, contact_id)
            SELECT ?, c.id FROM contacts c JOIN channels ch ON ch.id = c.channel_id
            WHERE c.id > ? AND c.id <= ? AND ({where}) ORDER BY c.id""",
        [broadcast_id, low, high, *params],
    )
    done = high >= through
    db.execute("UPDATE broadcasts SET cursor_contact_id = ?, materialized = ? WHERE id = ?",
               [high, int(done), broadcast_id])
    return done


def render_message(message: dict[str, Any], contact: dict[str, Any], workspace_name: str) -> tuple[str, str | None, dict[str, Any]]:
    """``(kind, text, payload)`` of one recipient's outbox message: the stored message with its
    ``{{...}}`` filled in from the contact."""
    fields = contact["fields"]
    values = {
        "contact": {
            "first_name": contact["first_name"], "last_name": contact["last_name"], "name": contact["name"],
            "channel": contact["channel_type"],
            "fields": json.loads(fields) if isinstance(fields, str) else dict(fields or {}),
        },
        "workspace": {"name": workspace_name},
    }
    template = message.get("template")
    if template is None:
        buttons = [
            {"title": b["title"], "url": render_url(b["url"], values)} if "url" in b
            else {"title": b["title"], "payload": b["payload"]}
            for b in message.get("buttons", ())
        ]
        return "text", render_template(message["text"], values), {"buttons": buttons} if buttons else {}
    components: list[dict[str, Any]] = []
    media = template.get("header_media")
    if media:
        components.append({"type": "header", "parameters": [
            {"type": media["type"], media["type"]: {"link": render_url(media["link"], values)}}]})
    elif template.get("header"):
        components.append({"type": "header", "parameters": [
            {"type": "text", "text": render_template(v, values)} for v in template["header"]]})
    body = template.get("body")
    if isinstance(body, list) and body:
        components.append({"type": "body", "parameters": [
            {"type": "text", "text": render_template(v, values)} for v in body]})
    elif isinstance(body, dict) and body:
        components.append({"type": "body", "parameters": [
            {"type": "text", "parameter_name": k, "text": render_template(v, values)} for k, v in body.items()]})
    for button in template.get("buttons", ()):
        components.append({"type": "button", "sub_type": "quick_reply", "index": str(button["index"]),
                           "parameters": [{"type": "payload", "payload": button["payload"]}]})
    sent = {"name": template["name"], "language": template["language"]}
    if components:
        sent["components"] = components  # type: ignore[assignment]
    return "template", None, {"template": sent}


def _pair_rate_facts(db: Database, contact_ids: list[int], conversation_ids: list[int]) -> tuple[dict[int, str], set[int]]:
    """For the pair rate (module docstring), in two statements for a whole batch: each contact's
    last outbound ``sent_at``, and the conversations with a message still in the outbox."""
    marks = ", ".join("?" * len(contact_ids))
    last = {r["contact_id"]: r["last"] for r in many(
        db, f"""SELECT contact_id, max(sent_at) AS last FROM messages
                WHERE contact_id IN ({marks}) AND direction = 'out' GROUP BY contact_id""", contact_ids)
            if r["last"]}
    waiting: set[int] = set()
    if conversation_ids:
        marks = ", ".join("?" * len(conversation_ids))
        waiting = {r["conversation_id"] for r in many(
            db, f"SELECT DISTINCT conversation_id FROM outbox WHERE conversation_id IN ({marks})", conversation_ids)}
    return last, waiting


def _not_before(last: str | None, waiting: bool, now: datetime) -> str | None:
    """The pair rate (module docstring): when this contact may get its next WhatsApp message,
    given its last outbound ``sent_at`` and whether a message to it still waits in the outbox."""
    candidates = [from_iso(last) + PAIR_RATE] if last else []
    if waiting:
        candidates.append(now + PAIR_RATE)
    due = max(candidates, default=None)
    return to_iso(due) if due is not None and due > now else None


def _conversations(db: Database, contact_ids: list[int]) -> dict[int, int]:
    """contact id -> conversation id, for those that have one (one statement for a batch)."""
    marks = ", ".join("?" * len(contact_ids))
    return {r["contact_id"]: r["id"] for r in many(
        db, f"SELECT contact_id, id FROM conversations WHERE contact_id IN ({marks})", contact_ids)}


def advance(
    db: Database, broadcast_id: int, now: str, *, backlog: int, batch: int, workspace_name: str = "",
) -> dict[str, Any]:
    """Decide up to ``batch`` pending recipients, queueing while fewer than ``backlog`` of the
    broadcast's messages wait. ``more``: calling again now would find work; ``full``: it
    stopped because the backlog is full."""
    row = one(db, "SELECT status, message, n_queued FROM broadcasts WHERE id = ?", [broadcast_id])
    result = {"queued": 0, "skipped": 0, "more": False, "full": False}
    if row is None or row["status"] != "sending":
        return result
    room = backlog - row["n_queued"]
    if room <= 0:
        result["full"] = True
        return result
    message = json.loads(row["message"])
    plan = plan_of(message)
    moment = from_iso(now)
    pending = many(
        db,
        _FACTS + """JOIN broadcast_recipients r ON r.contact_id = c.id
                    WHERE r.broadcast_id = ? AND r.state = 'pending' ORDER BY r.contact_id LIMIT ?""",
        [broadcast_id, batch],
    )
    if not pending:
        return result
    # Batched reads and writes: one statement each for the whole batch where the rows allow it
    # (the per-recipient outcome is the same as deciding them one by one).
    contact_ids = [c["contact_id"] for c in pending]
    conversations = _conversations(db, contact_ids)
    last_sent, waiting = _pair_rate_facts(db, contact_ids, list(conversations.values()))
    skipped: list[tuple[Any, ...]] = []
    chosen: list[tuple[dict[str, Any], int]] = []  # (contact, conversation id) to queue
    for contact in pending:
        reason = _decide(plan, contact, moment)
        if reason is not None:
            skipped.append((reason, now, broadcast_id, contact["contact_id"]))
            result["skipped"] += 1
            continue
        if len(chosen) >= room:
            result["full"] = True
            break
        contact_id = contact["contact_id"]
        conversation_id = conversations.get(contact_id)
        if conversation_id is None:
            conversation_id = ensure_conversation(db, contact_id, contact["channel_id"], now)
        chosen.append((contact, conversation_id))
    else:
        result["more"] = len(pending) == batch
    queued = _queue(db, broadcast_id, message, chosen, last_sent, waiting, now, moment, workspace_name)
    result["queued"] = len(queued)
    db.conn.executemany(
        """UPDATE broadcast_recipients SET state = 'skipped', reason = ?, decided_at = ?
           WHERE broadcast_id = ? AND contact_id = ?""", skipped)
    db.conn.executemany(
        """UPDATE broadcast_recipients SET state = 'queued', message_id = ?, decided_at = ?
           WHERE broadcast_id = ? AND contact_id = ?""", queued)
    return result


def _next_message_id(db: Database) -> int:
    """The id SQLite would give the next message (``AUTOINCREMENT``: above every id ever used)."""
    row = one(db, """SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
                              COALESCE((SELECT max(id) FROM messages), 0)) AS last""", [])
    return int(row["last"] if row else 0) + 1


def _queue(
    db: Database, broadcast_id: int, message: dict[str, Any], chosen: list[tuple[dict[str, Any], int]],
    last_sent: dict[int, str], waiting: set[int], now: str, moment: datetime, workspace_name: str,
) -> list[tuple[Any, ...]]:
    """Queue one outbox message per ``(contact, conversation id)``: the rows, events and
    conversation updates :func:`appliance.outbox.store.enqueue` writes for each (a queued
    ``messages`` row, its ``outbox`` row at :data:`BROADCAST_PRIORITY`, the conversation's
    ``last_message_at``, ``message.created`` and ``conversation.updated``), one
    ``executemany`` per table for the whole batch. Message ids are given explicitly (the next
    ones SQLite would give: this runs in the writer's transaction) so that each recipient gets
    its own. Returns the recipients' updates ``(message id, now, broadcast id, contact id)``."""
    if not chosen:
        return []
    first_id = _next_message_id(db)
    messages: list[tuple[Any, ...]] = []
    boxes: list[tuple[Any, ...]] = []
    bumps: list[tuple[Any, ...]] = []
    emitted: list[tuple[Any, ...]] = []
    recipients_queued: list[tuple[Any, ...]] = []
    for offset, (contact, conversation_id) in enumerate(chosen):
        message_id = first_id + offset
        contact_id, channel_id = contact["contact_id"], contact["channel_id"]
        kind, text, payload = render_message(message, contact, workspace_name)
        payload["broadcast"] = {"id": broadcast_id}
        not_before = _not_before(last_sent.get(contact_id), conversation_id in waiting, moment) \
            if contact["channel_type"] == "whatsapp" else None
        messages.append((message_id, conversation_id, contact_id, channel_id, kind, text,
                         json.dumps(payload, ensure_ascii=False, sort_keys=True), now, now, now))
        boxes.append((message_id, conversation_id, channel_id, max(now, not_before or now), now))
        bumps.append((now, now, conversation_id))
        emitted.append(("message.created", conversation_id, contact_id, message_id, now))
        emitted.append(("conversation.updated", conversation_id, None, None, now))
        recipients_queued.append((message_id, now, broadcast_id, contact_id))
    conn = db.conn
    conn.executemany(
        """INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, kind, text, payload,
                                 attachments, status, sent_by, sent_by_user_id, messaging_type, tag,
                                 occurred_at, created_at, updated_at)
           VALUES (?, ?, ?, ?, 'out', ?, ?, ?, '[]', 'queued', 'bot', NULL, NULL, NULL, ?, ?, ?)""", messages)
    conn.executemany(
        f"""INSERT INTO outbox (message_id, conversation_id, channel_id, next_attempt_at, created_at, priority)
            VALUES (?, ?, ?, ?, ?, {BROADCAST_PRIORITY})""", boxes)
    conn.executemany(
        """UPDATE conversations SET last_message_at = MAX(COALESCE(last_message_at, ''), ?), updated_at = ?
           WHERE id = ?""", bumps)
    conn.executemany(
        "INSERT INTO events (type, conversation_id, contact_id, message_id, created_at) VALUES (?, ?, ?, ?, ?)",
        emitted)
    return recipients_queued


def pull_back(db: Database, broadcast_id: int, now: str) -> int:
    """Take the broadcast's messages the sender never attempted back out of the outbox and the
    inbox; their recipients are pending again. Returns how many."""
    # CROSS JOIN: walk the outbox (about a second of sending) rather than the recipients.
    rows = many(
        db,
        """SELECT r.contact_id, r.message_id, o.conversation_id FROM outbox o
           CROSS JOIN broadcast_recipients r ON r.message_id = o.message_id
           WHERE r.broadcast_id = ? AND o.state = 'queued' AND o.attempts = 0""",
        [broadcast_id],
    )
    for row in rows:
        db.execute(
            """UPDATE broadcast_recipients SET state = 'pending', message_id = NULL, decided_at = NULL
               WHERE broadcast_id = ? AND contact_id = ?""",
            [broadcast_id, row["contact_id"]],
        )
        db.execute("DELETE FROM messages WHERE id = ?", [row["message_id"]])  # its outbox row goes with it
    for conversation_id in sorted({r["conversation_id"] for r in rows}):
        events.emit(db, "conversation.updated", conversation_id=conversation_id, now=now)
    return len(rows)


def _rows(db: Database, where: str, params: list[Any], size: int = 2000) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        batch = many(db, _FACTS + f" WHERE c.id > ? AND ({where}) ORDER BY c.id LIMIT ?", [after, *params, size])
        yield from batch
        if len(batch) < size:
            return
        after = batch[-1]["contact_id"]


def estimate(db: Database, where: str, params: list[Any], message: dict[str, Any], now: str) -> dict[str, Any]:
    """The audience now: ``{total, eligible, skipped_reasons}``."""
    plan = plan_of(message)
    moment = from_iso(now)
    total = eligible = 0
    reasons: dict[str, int] = {}
    for contact in _rows(db, where, params):
        total += 1
        reason = _decide(plan, contact, moment)
        if reason is None:
            eligible += 1
        else:
            reasons[reason] = reasons.get(reason, 0) + 1
    return {"total": total, "eligible": eligible, "skipped_reasons": reasons}
