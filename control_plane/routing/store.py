"""The forwarding journal, unclaimed entries, known users and counters. SQL only.

Times are ISO-8601 UTC text (``appliance.timeutil``), which sorts as it should.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlite_utils import Database

from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one
from control_plane.routing.split import body_of

__all__ = [
    "journal", "journal_many", "pending_for", "tenants_with_pending", "mark_delivered", "mark_failed", "list_deliveries",
    "get_delivery", "replay", "claim_unclaimed", "purge", "bump", "counters", "drop_tenant",
    "users_tenants", "forget_user", "record_deletion", "deletion_by_code", "dead_letter_expired",
    "retry_now",
]

PUBLIC = ("id, tenant_id, object, entries, status, attempts, received_at, next_attempt_at, last_attempt_at, "
          "delivered_at, dead_at, last_error")


def journal(
    db: Database,
    rows: list[tuple[str, str, int, bytes]],
    unclaimed: list[tuple[str, str, str, bytes]],
    users: Iterable[tuple[str, str]],
    now: str,
    expires_at: str,
) -> list[int]:
    """Durably record one delivery: per tenant ``(tenant_id, object, entries, body)``, unclaimed
    ``(kind, asset_id, object, entry)``, known ``(user_hash, tenant_id)``. Returns the delivery ids."""
    ids = []
    for tenant_id, object_, entries, body in rows:
        cursor = db.conn.execute(
            "INSERT INTO deliveries (tenant_id, object, entries, body, status, received_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)", [tenant_id, object_, entries, body, now, now])
        ids.append(int(cursor.lastrowid))
    if unclaimed:
        db.conn.executemany(
            "INSERT INTO unclaimed (channel_type, asset_id, object, entry, received_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(*u, now, expires_at) for u in unclaimed])
        bump(db, "unknown_asset_entries", len(unclaimed))
    db.conn.executemany(
        "INSERT INTO known_users (user_hash, tenant_id, last_seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT (user_hash, tenant_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        [(h, t, now) for h, t in users])
    return ids


def journal_many(db: Database, deliveries: list[tuple[Any, ...]]) -> list[list[int] | Exception]:
    """:func:`journal` for several deliveries in one transaction, each in a savepoint of its own:
    per delivery its ids, or the exception that undid only its rows."""
    outcomes: list[list[int] | Exception] = []
    for args in deliveries:
        db.conn.execute("SAVEPOINT delivery")
        try:
            outcomes.append(journal(db, *args))
        except Exception as exc:  # noqa: BLE001 - this delivery's request answers with it
            db.conn.execute("ROLLBACK TO delivery")
            outcomes.append(exc)
        db.conn.execute("RELEASE delivery")
    return outcomes


def pending_for(db: Database, tenant_id: str, after_id: int, limit: int) -> list[dict[str, Any]]:
    return many(db, "SELECT id, object, body, attempts, received_at, next_attempt_at FROM deliveries "
                    "WHERE tenant_id = ? AND status = 'pending' AND id > ? ORDER BY id LIMIT ?",
                [tenant_id, after_id, limit])


def tenants_with_pending(db: Database) -> list[str]:
    return [r["tenant_id"] for r in many(db, "SELECT DISTINCT tenant_id FROM deliveries WHERE status = 'pending'")]


def mark_delivered(db: Database, ids: list[int], now: str) -> None:
    """Delivered: the body goes at once (the control plane keeps no messages it does not need)."""
    db.conn.executemany(
        "UPDATE deliveries SET status = 'delivered', body = NULL, attempts = attempts + 1, last_attempt_at = ?, "
        "delivered_at = ?, next_attempt_at = NULL, last_error = NULL WHERE id = ? AND status = 'pending'",
        [(now, now, i) for i in ids])


def mark_failed(db: Database, outcomes: list[tuple[int, int, str | None]], error: str, now: str) -> None:
    """``(id, attempts, next_attempt_at or None for a dead letter)`` per delivery."""
    for delivery_id, attempts, next_at in outcomes:
        if next_at is None:
            db.conn.execute(
                "UPDATE deliveries SET status = 'dead', attempts = ?, last_attempt_at = ?, dead_at = ?, "
                "next_attempt_at = NULL, last_error = ? WHERE id = ? AND status = 'pending'",
                [attempts, now, now, error, delivery_id])
        else:
            db.conn.execute(
                "UPDATE deliveries SET attempts = ?, last_attempt_at = ?, next_attempt_at = ?, last_error = ? "
                "WHERE id = ? AND status = 'pending'", [attempts, now, next_at, error, delivery_id])
    if any(next_at is None for _, _, next_at in outcomes):
        bump(db, "dead_letters", sum(1 for _, _, n in outcomes if n is None))


def retry_now(db: Database, tenant_id: str, now: str) -> int:
    return db.conn.execute("UPDATE deliveries SET next_attempt_at = ? WHERE tenant_id = ? AND status = 'pending' "
                           "AND next_attempt_at > ?", [now, tenant_id, now]).rowcount


def list_deliveries(db: Database, *, tenant_id: str | None, status: str | None, before_id: int | None,
                    limit: int) -> list[dict[str, Any]]:
    where, params = ["id < ?"], [before_id or 2**62]
    if tenant_id:
        where.append("tenant_id = ?")
        params.append(tenant_id)
    if status:
        where.append("status = ?")
        params.append(status)
    return many(db, f"SELECT {PUBLIC} FROM deliveries WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                [*params, limit])


def get_delivery(db: Database, delivery_id: int) -> dict[str, Any]:
    row = one(db, f"SELECT {PUBLIC}, body FROM deliveries WHERE id = ?", [delivery_id])
    if row is None:
        raise NotFound(f"delivery {delivery_id} does not exist (or was purged)")
    return row


def replay(db: Database, delivery_id: int, now: str) -> dict[str, Any]:
    """A dead letter back in its tenant's queue, with a fresh schedule."""
    row = get_delivery(db, delivery_id)
    if row["status"] != "dead":
        raise Conflict(f"delivery {delivery_id} is {row['status']}: only dead letters are replayed", code="not_dead")
    if row["body"] is None:
        raise Conflict(f"delivery {delivery_id}'s body was purged (dead letters are kept 7 days)", code="purged")
    db.conn.execute("UPDATE deliveries SET status = 'pending', attempts = 0, received_at = ?, next_attempt_at = ?, "
                    "dead_at = NULL WHERE id = ?", [now, now, delivery_id])
    return get_delivery(db, delivery_id)


def claim_unclaimed(db: Database, kind: str, asset_id: str, tenant_id: str, now: str) -> list[dict[str, Any]]:
    """Entries that arrived for ``asset_id`` before anyone connected it become deliveries of
    ``tenant_id``; returns the new delivery rows (one per object)."""
    rows = many(db, "SELECT id, object, entry FROM unclaimed WHERE channel_type = ? AND asset_id = ? AND expires_at > ? "
                    "ORDER BY id", [kind, asset_id, now])
    if not rows:
        return []
    created = []
    for object_ in sorted({r["object"] for r in rows}):
        entries = [bytes(r["entry"]) for r in rows if r["object"] == object_]
        body = body_of(object_, entries)
        cursor = db.conn.execute(
            "INSERT INTO deliveries (tenant_id, object, entries, body, status, received_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)", [tenant_id, object_, len(entries), body, now, now])
        created.append({"id": int(cursor.lastrowid), "object": object_, "body": body, "attempts": 0,
                        "received_at": now, "next_attempt_at": now})
    db.conn.executemany("DELETE FROM unclaimed WHERE id = ?", [(r["id"],) for r in rows])
    bump(db, "unclaimed_claimed", len(rows))
    return created


def dead_letter_expired(db: Database, received_before: str, now: str) -> int:
    """Pending deliveries past the retry horizon that no worker attempted (tenant long down)."""
    return db.conn.execute(
        "UPDATE deliveries SET status = 'dead', dead_at = ?, next_attempt_at = NULL, "
        "last_error = COALESCE(last_error, 'retry horizon passed') WHERE status = 'pending' AND received_at < ?",
        [now, received_before]).rowcount


def purge(db: Database, *, now: str, kept_since: str) -> dict[str, int]:
    """Delivered rows (already without body) and dead letters older than ``kept_since``;
    unclaimed entries past their 24 h."""
    delivered = db.conn.execute("DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < ?",
                                [kept_since]).rowcount
    dead = db.conn.execute("DELETE FROM deliveries WHERE status = 'dead' AND dead_at < ?", [kept_since]).rowcount
    unclaimed = db.conn.execute("DELETE FROM unclaimed WHERE expires_at <= ?", [now]).rowcount
    return {"delivered": delivered, "dead": dead, "unclaimed": unclaimed}


def drop_tenant(db: Database, tenant_id: str) -> None:
    """Everything the router holds for a tenant being torn down."""
    db.conn.execute("DELETE FROM deliveries WHERE tenant_id = ?", [tenant_id])
    db.conn.execute("DELETE FROM known_users WHERE tenant_id = ?", [tenant_id])


def bump(db: Database, name: str, by: int = 1) -> None:
    db.conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", [name, by])


def counters(db: Database) -> dict[str, int]:
    return {r["name"]: r["value"] for r in many(db, "SELECT name, value FROM counters")}


def users_tenants(db: Database, user_hash: str) -> list[str]:
    return [r["tenant_id"] for r in many(db, "SELECT tenant_id FROM known_users WHERE user_hash = ?", [user_hash])]


def forget_user(db: Database, user_hash: str) -> None:
    db.conn.execute("DELETE FROM known_users WHERE user_hash = ?", [user_hash])


def record_deletion(db: Database, *, code: str, request_hash: str, tenants: int, now: str) -> dict[str, Any]:
    existing = one(db, "SELECT * FROM deletion_requests WHERE request_hash = ?", [request_hash])
    if existing is not None:
        return existing
    db.conn.execute("INSERT INTO deletion_requests (code, request_hash, tenants, forwarded, received_at) "
                    "VALUES (?, ?, ?, ?, ?)", [code, request_hash, tenants, tenants, now])
    return one(db, "SELECT * FROM deletion_requests WHERE code = ?", [code])  # type: ignore[return-value]


def deletion_by_code(db: Database, code: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM deletion_requests WHERE code = ?", [code])
