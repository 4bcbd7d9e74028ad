"""What each tenant's appliance was last given (``tenant_entitlements``). SQL only."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = ["get", "record_pushed", "record_error", "due", "set_plan"]


def get(db: Database, tenant_id: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM tenant_entitlements WHERE tenant_id = ?", [tenant_id])


def record_pushed(db: Database, tenant_id: str, *, plan: str, issued_at: str, expires_at: str, now: str) -> None:
    db.conn.execute(
        "INSERT INTO tenant_entitlements (tenant_id, plan, issued_at, expires_at, pushed_at, last_error, updated_at) "
        "VALUES (?, ?, ?, ?, ?, NULL, ?) ON CONFLICT (tenant_id) DO UPDATE SET plan = excluded.plan, "
        "issued_at = excluded.issued_at, expires_at = excluded.expires_at, pushed_at = excluded.pushed_at, "
        "last_error = NULL, updated_at = excluded.updated_at",
        [tenant_id, plan, issued_at, expires_at, now, now])


def record_error(db: Database, tenant_id: str, error: str, now: str) -> None:
    """A failed push; what was last accepted (plan, expiry) stays as it was."""
    db.conn.execute(
        "INSERT INTO tenant_entitlements (tenant_id, last_error, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant_id) DO UPDATE SET last_error = excluded.last_error, updated_at = excluded.updated_at",
        [tenant_id, error[:500], now])


def due(db: Database, *, refresh_before: str) -> list[str]:
    """Active tenants with a plan whose appliance has not accepted a token for that plan, or
    whose token expires before ``refresh_before``."""
    return [r["id"] for r in many(
        db, "SELECT t.id FROM tenants t LEFT JOIN tenant_entitlements e ON e.tenant_id = t.id "
        "WHERE t.status = 'active' AND t.plan IS NOT NULL AND t.url IS NOT NULL "
        "AND (e.pushed_at IS NULL OR e.plan IS NOT t.plan OR e.expires_at < ?) ORDER BY t.id", [refresh_before])]


def set_plan(db: Database, tenant_id: str, plan: str, now: str) -> bool:
    """The tenant's plan; ``True`` when it changed."""
    cursor = db.conn.execute("UPDATE tenants SET plan = ?, updated_at = ? WHERE id = ? AND plan IS NOT ?",
                             [plan, now, tenant_id, plan])
    return cursor.rowcount > 0
