"""Tenants: their lifecycle state, where they run, their encrypted secrets. SQL only.

::

    provisioning ──► active ◄──► suspended
         │             │             │
         └─────────────┴──────┬──────┘
                              ▼  (delete / cancel: delete_after = now + retention)
                          deleting ──► deleted   (the sweep, once delete_after has passed)
                              │
                              └──► active        (resume before the teardown: undo)
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlite_utils import Database

from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one

__all__ = [
    "new_tenant_id", "insert_tenant", "get_tenant", "list_tenants", "set_status", "set_endpoint",
    "set_error", "set_api_token", "to_teardown", "live_tenants", "mark_deleted", "public_tenant", "STATUSES",
    "counts_by_status",
]

STATUSES = ("provisioning", "active", "suspended", "deleting", "deleted")
_ALLOWED = {
    "suspended": {"active", "provisioning"},
    "active": {"suspended", "deleting"},
    "deleting": {"provisioning", "active", "suspended"},
}


def new_tenant_id() -> str:
    """``t`` and 12 hex digits: valid as a DNS label, a container and a volume name."""
    return "t" + secrets.token_hex(6)


def insert_tenant(db: Database, *, tenant_id: str, name: str, provisioner: str, secrets_enc: dict[str, str],
                  owner_email: str | None, plan: str | None, now: str) -> dict[str, Any]:
    db.conn.execute(
        "INSERT INTO tenants (id, name, status, plan, owner_email, provisioner, master_key_enc, webhook_secret_enc, "
        "created_at, updated_at) VALUES (?, ?, 'provisioning', ?, ?, ?, ?, ?, ?, ?)",
        [tenant_id, name, plan, owner_email, provisioner, secrets_enc["master_key"], secrets_enc["webhook_secret"],
         now, now])
    return get_tenant(db, tenant_id)


def get_tenant(db: Database, tenant_id: str) -> dict[str, Any]:
    row = one(db, "SELECT * FROM tenants WHERE id = ?", [tenant_id])
    if row is None:
        raise NotFound(f"tenant {tenant_id} does not exist", code="tenant_not_found")
    return row


def list_tenants(db: Database, *, status: str | None, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    where, params = ["id > ?"], [after_id or ""]
    if status:
        where.append("status = ?")
        params.append(status)
    return many(db, f"SELECT * FROM tenants WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", [*params, limit])


def live_tenants(db: Database) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM tenants WHERE status != 'deleted' ORDER BY created_at")


def counts_by_status(db: Database) -> dict[str, int]:
    return {r["status"]: r["n"] for r in many(db, "SELECT status, count(*) AS n FROM tenants GROUP BY status")}


def set_status(db: Database, tenant_id: str, status: str, now: str, *, delete_after: str | None = None) -> dict[str, Any]:
    """A lifecycle transition requested by an admin (409 when the current state forbids it)."""
    row = get_tenant(db, tenant_id)
    if row["status"] == status:
        return row
    if row["status"] not in _ALLOWED.get(status, set()):
        raise Conflict(f"tenant {tenant_id} is {row['status']}: it cannot become {status}", code="invalid_transition")
    db.conn.execute(
        "UPDATE tenants SET status = ?, updated_at = ?, suspended_at = CASE WHEN ? = 'suspended' THEN ? ELSE NULL END, "
        "delete_after = ? WHERE id = ?", [status, now, status, now, delete_after, tenant_id])
    return get_tenant(db, tenant_id)


def set_endpoint(db: Database, tenant_id: str, *, url: str, port: int | None, now: str) -> None:
    """The appliance answered: record where, and finish provisioning."""
    db.conn.execute(
        "UPDATE tenants SET url = ?, port = ?, last_error = NULL, updated_at = ?, "
        "status = CASE WHEN status = 'provisioning' THEN 'active' ELSE status END WHERE id = ?",
        [url, port, now, tenant_id])


def set_error(db: Database, tenant_id: str, error: str, now: str) -> None:
    db.conn.execute("UPDATE tenants SET last_error = ?, updated_at = ? WHERE id = ?", [error[:500], now, tenant_id])


def set_api_token(db: Database, tenant_id: str, token_enc: str) -> None:
    db.conn.execute("UPDATE tenants SET api_token_enc = ? WHERE id = ?", [token_enc, tenant_id])


def to_teardown(db: Database, now: str) -> list[str]:
    return [r["id"] for r in many(db, "SELECT id FROM tenants WHERE status = 'deleting' AND delete_after <= ?", [now])]


def mark_deleted(db: Database, tenant_id: str, now: str) -> None:
    """Teardown done: the secrets go (crypto-shredding on the control plane's side), the record stays."""
    db.conn.execute("DELETE FROM channels WHERE tenant_id = ?", [tenant_id])
    db.conn.execute("DELETE FROM support_tokens WHERE tenant_id = ?", [tenant_id])
    db.conn.execute(
        "UPDATE tenants SET status = 'deleted', deleted_at = ?, updated_at = ?, master_key_enc = NULL, "
        "webhook_secret_enc = NULL, api_token_enc = NULL, url = NULL, port = NULL WHERE id = ?",
        [now, now, tenant_id])


def public_tenant(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape, field by field (no secret leaves this way)."""
    return {
        "id": row["id"], "name": row["name"], "status": row["status"], "plan": row["plan"],
        "owner_email": row["owner_email"], "provisioner": row["provisioner"], "url": row["url"],
        "created_at": row["created_at"], "updated_at": row["updated_at"], "suspended_at": row["suspended_at"],
        "delete_after": row["delete_after"], "deleted_at": row["deleted_at"], "last_error": row["last_error"],
    }
