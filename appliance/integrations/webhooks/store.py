"""Outbound webhooks: subscriptions, deliveries and their attempts. SQL only.

URLs and signing secrets are stored field-encrypted; the caller seals and opens them with the
workspace's cipher, bound to the subscription by :func:`url_context` / :func:`secret_context`
(a ciphertext copied onto another row does not open).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.errors import NotFound
from appliance.store.rows import many, one, scalar
from appliance.timeutil import from_iso, to_iso

__all__ = [
    "url_context", "secret_context", "create_subscription", "update_subscription", "set_secret",
    "delete_subscription", "get_subscription", "list_subscriptions", "dispatch_state", "fan_out", "due_deliveries",
    "next_due_at", "record_attempt", "expire", "list_deliveries", "get_delivery", "attempts_of",
    "replay", "purge", "REF_COLUMNS",
]

REF_COLUMNS = ("conversation_id", "contact_id", "message_id", "flow_id", "run_id", "user_id")


def url_context(subscription_id: int) -> str:
    return f"webhook_subscriptions.url:{subscription_id}"


def secret_context(subscription_id: int) -> str:
    return f"webhook_subscriptions.secret:{subscription_id}"


# --- subscriptions --------------------------------------------------------------------------

def create_subscription(
    db: Database, *, events_: list[str], description: str | None, active: bool,
    seal: Callable[[int], tuple[str, str]], now: str,
) -> dict[str, Any]:
    """Insert a subscription; ``seal(id)`` gives ``(url_enc, secret_enc)`` bound to its id."""
    cursor = db.execute(
        """INSERT INTO webhook_subscriptions (url_enc, events, secret_enc, description, active, created_at, updated_at)
           VALUES ('', ?, '', ?, ?, ?, ?)""",
        [json.dumps(events_), description, int(active), now, now],
    )
    subscription_id = int(cursor.lastrowid)
    url_enc, secret_enc = seal(subscription_id)
    db.execute("UPDATE webhook_subscriptions SET url_enc = ?, secret_enc = ? WHERE id = ?",
               [url_enc, secret_enc, subscription_id])
    return get_subscription(db, subscription_id)


def update_subscription(db: Database, subscription_id: int, changes: dict[str, Any], now: str) -> dict[str, Any]:
    """Change the given columns (``url_enc``, ``events``, ``description``, ``active``)."""
    get_subscription(db, subscription_id)
    values = dict(changes)
    if "events" in values:
        values["events"] = json.dumps(values["events"])
    if "active" in values:
        values["active"] = int(values["active"])
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE webhook_subscriptions SET {assignments}, updated_at = ? WHERE id = ?",
                   [*values.values(), now, subscription_id])
    return get_subscription(db, subscription_id)


def set_secret(db: Database, subscription_id: int, secret_enc: str, now: str) -> dict[str, Any]:
    get_subscription(db, subscription_id)
    db.execute("UPDATE webhook_subscriptions SET secret_enc = ?, updated_at = ? WHERE id = ?",
               [secret_enc, now, subscription_id])
    return get_subscription(db, subscription_id)


def delete_subscription(db: Database, subscription_id: int) -> None:
    """The subscription, its deliveries and their attempts, at once."""
    get_subscription(db, subscription_id)
    db.execute("DELETE FROM webhook_subscriptions WHERE id = ?", [subscription_id])


def _subscription(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "events": json.loads(row["events"]), "active": bool(row["active"])}


def get_subscription(db: Database, subscription_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM webhook_subscriptions WHERE id = ?", [subscription_id])
    if row is None:
        raise NotFound(f"webhook {subscription_id} does not exist")
    return _subscription(row)


def list_subscriptions(db: Database, *, after_id: int | None, limit: int) -> list[dict[str, Any]]:
    rows = many(db, "SELECT * FROM webhook_subscriptions WHERE id > ? ORDER BY id LIMIT ?", [after_id or 0, limit])
    return [_subscription(r) for r in rows]


# --- deliveries -----------------------------------------------------------------------------

def dispatch_state(db: Database) -> tuple[bool, int, int]:
    """``(any active subscription, cursor, latest event id)``: whether :func:`fan_out` has work."""
    active = scalar(db, "SELECT 1 FROM webhook_subscriptions WHERE active = 1 LIMIT 1") is not None
    cursor = scalar(db, "SELECT last_event_id FROM webhook_dispatch WHERE id = 1")
    return active, int(cursor or 0), events.latest_id(db)


def fan_out(db: Database, *, now: str, lifetime: timedelta, limit: int = 500) -> int:
    """Turn the domain events after the cursor into one delivery per matching active
    subscription created before the event; advance the cursor. Returns the number of
    deliveries created. Idempotent: (subscription, event) is unique."""
    subscriptions = [_subscription(r) for r in many(db, "SELECT * FROM webhook_subscriptions WHERE active = 1")]
    if not subscriptions:
        # Nothing listens: skip what happened so far rather than read it for nobody.
        db.execute("INSERT OR REPLACE INTO webhook_dispatch (id, last_event_id) VALUES (1, ?)",
                   [events.latest_id(db)])
        return 0
    cursor = scalar(db, "SELECT last_event_id FROM webhook_dispatch WHERE id = 1") or 0
    batch = events.since(db, int(cursor), limit)
    created = 0
    for event in batch:
        refs = {k: event[k] for k in REF_COLUMNS if event[k] is not None}
        expires = to_iso(from_iso(event["created_at"]) + lifetime)
        for sub in subscriptions:
            if event["type"] not in sub["events"] or sub["created_at"] > event["created_at"]:
                continue
            inserted = db.execute(
                """INSERT OR IGNORE INTO webhook_deliveries (subscription_id, event_id, event_type, refs,
                       occurred_at, next_attempt_at, expires_at, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [sub["id"], event["id"], event["type"], json.dumps(refs), event["created_at"], now, expires,
                 now, now],
            )
            created += inserted.rowcount
    if batch:
        db.execute("INSERT OR REPLACE INTO webhook_dispatch (id, last_event_id) VALUES (1, ?)", [batch[-1]["id"]])
    return created


def due_deliveries(db: Database, now: str, *, limit: int, exclude: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """Pending deliveries of active subscriptions whose time has come, oldest first, with
    the subscription's sealed URL and secret."""
    rows = many(
        db,
        """SELECT d.*, s.url_enc, s.secret_enc FROM webhook_deliveries d
           JOIN webhook_subscriptions s ON s.id = d.subscription_id
           WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND s.active = 1
           ORDER BY d.next_attempt_at, d.id LIMIT ?""",
        [now, limit + len(exclude)],
    )
    return [r for r in rows if r["id"] not in exclude][:limit]


def next_due_at(db: Database, exclude: frozenset[int] = frozenset()) -> str | None:
    """When the next pending delivery (not among ``exclude``, those in flight) is due."""
    marks = ", ".join("?" for _ in exclude)
    return scalar(
        db,
        f"""SELECT min(d.next_attempt_at) FROM webhook_deliveries d
            JOIN webhook_subscriptions s ON s.id = d.subscription_id
            WHERE d.status = 'pending' AND s.active = 1 AND d.id NOT IN ({marks})""",
        list(exclude),
    )


def record_attempt(
    db: Database, delivery_id: int, *, at: str, status: int | None, error: str | None, duration_ms: int,
    outcome: str, retry_at: str | None, now: str,
) -> None:
    """Log one attempt and move the delivery on: ``delivered``, ``dead`` or ``pending`` again
    at ``retry_at``. A delivery deleted meanwhile (its subscription was) is left alone."""
    row = one(db, "SELECT attempts FROM webhook_deliveries WHERE id = ?", [delivery_id])
    if row is None:
        return
    attempt = int(row["attempts"]) + 1
    db.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
        [delivery_id, attempt, at, status, error, duration_ms],
    )
    db.execute(
        """UPDATE webhook_deliveries SET attempts = ?, status = ?, next_attempt_at = ?, last_status = ?,
               last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,
               updated_at = ?
           WHERE id = ?""",
        [attempt, outcome, retry_at if outcome == "pending" else None, status, error, outcome, at, now, delivery_id],
    )


def expire(db: Database, before: str, now: str) -> int:
    """Pending deliveries whose 24 hours ended before ``before`` without an attempt ending
    them (the subscription was paused) become ``dead``."""
    return db.execute(
        """UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL,
               last_error = COALESCE(last_error, 'expired'), updated_at = ?
           WHERE status = 'pending' AND expires_at < ?""",
        [now, before],
    ).rowcount


def list_deliveries(
    db: Database, subscription_id: int, *, status: str | None, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` is the cursor."""
    get_subscription(db, subscription_id)
    where, params = ["subscription_id = ?", "id < ?"], [subscription_id, before_id or 2**63 - 1]
    if status:
        where.append("status = ?")
        params.append(status)
    return many(db, f"SELECT * FROM webhook_deliveries WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                [*params, limit])


def get_delivery(db: Database, delivery_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM webhook_deliveries WHERE id = ?", [delivery_id])
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} does not exist")
    return row


def attempts_of(db: Database, delivery_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The latest ``limit`` attempts, oldest first."""
    rows = many(db, "SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY id DESC LIMIT ?",
                [delivery_id, limit])
    return rows[::-1]


def replay(db: Database, delivery_id: int, *, now: str, lifetime: timedelta) -> dict[str, Any]:
    """Deliver again, now, with a fresh 24 hours of retries (whatever its status was)."""
    get_delivery(db, delivery_id)
    db.execute(
        """UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, expires_at = ?,
               updated_at = ? WHERE id = ?""",
        [now, to_iso(from_iso(now) + lifetime), now, delivery_id],
    )
    return get_delivery(db, delivery_id)


def purge(db: Database, before: str) -> int:
    """Forget finished deliveries (and their attempts) last touched before ``before``."""
    return db.execute("DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated_at < ?",
                      [before]).rowcount
