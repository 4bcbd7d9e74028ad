"""Connected channels: the routing table and the tokens the control plane checks. SQL only."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from appliance.errors import Conflict, NotFound
from appliance.store.rows import many, one

__all__ = [
    "add_channel", "remove_channel", "get_channel", "list_channels", "all_routes", "due_for_check", "record_check",
    "mark_notified", "public_channel",
]


def add_channel(db: Database, *, tenant_id: str, channel_type: str, external_id: str, name: str | None,
                waba_id: str | None, page_id: str | None, token_enc: str | None, appliance_channel_id: str | None,
                now: str) -> dict[str, Any]:
    """Route ``external_id`` to ``tenant_id`` (or refresh the token of an existing route)."""
    existing = one(db, "SELECT * FROM channels WHERE type = ? AND external_id = ?", [channel_type, external_id])
    if existing is not None and existing["tenant_id"] != tenant_id:
        raise Conflict(f"this {channel_type} asset is connected to another tenant; disconnect it there first",
                       code="asset_taken")
    if existing is None:
        db.conn.execute(
            "INSERT INTO channels (tenant_id, type, external_id, name, waba_id, page_id, token_enc, appliance_channel_id, "
            "connected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tenant_id, channel_type, external_id, name or "", waba_id, page_id, token_enc, appliance_channel_id, now])
    else:
        db.conn.execute(
            "UPDATE channels SET name = COALESCE(?, name), waba_id = COALESCE(?, waba_id), page_id = COALESCE(?, page_id), "
            "token_enc = ?, appliance_channel_id = ?, status = 'active', status_reason = NULL, owner_notified_at = NULL, "
            "connected_at = ? WHERE id = ?",
            [name, waba_id, page_id, token_enc, appliance_channel_id, now, existing["id"]])
    return one(db, "SELECT * FROM channels WHERE type = ? AND external_id = ?", [channel_type, external_id])  # type: ignore[return-value]


def get_channel(db: Database, tenant_id: str, channel_id: int) -> dict[str, Any]:
    row = one(db, "SELECT * FROM channels WHERE id = ? AND tenant_id = ?", [channel_id, tenant_id])
    if row is None:
        raise NotFound(f"tenant {tenant_id} has no channel {channel_id}", code="channel_not_found")
    return row


def remove_channel(db: Database, tenant_id: str, channel_id: int) -> dict[str, Any]:
    """The routing entry and the token go together."""
    row = get_channel(db, tenant_id, channel_id)
    db.conn.execute("DELETE FROM channels WHERE id = ?", [channel_id])
    return row


def list_channels(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    return many(db, "SELECT * FROM channels WHERE tenant_id = ? ORDER BY id", [tenant_id])


def all_routes(db: Database) -> list[dict[str, Any]]:
    return many(db, "SELECT c.type, c.external_id, c.tenant_id, c.waba_id FROM channels c "
                    "JOIN tenants t ON t.id = c.tenant_id WHERE t.status != 'deleted'")


def due_for_check(db: Database, checked_before: str) -> list[dict[str, Any]]:
    return many(db, "SELECT c.*, t.owner_email, t.name AS tenant_name FROM channels c JOIN tenants t ON t.id = c.tenant_id "
                    "WHERE t.status IN ('active', 'suspended') AND c.token_enc IS NOT NULL "
                    "AND (c.checked_at IS NULL OR c.checked_at < ?) ORDER BY c.id", [checked_before])


def record_check(db: Database, channel_id: int, *, status: str, reason: str | None, expires_at: str | None,
                 now: str) -> dict[str, Any]:
    db.conn.execute("UPDATE channels SET status = ?, status_reason = ?, token_expires_at = ?, checked_at = ? "
                    "WHERE id = ?", [status, reason, expires_at, now, channel_id])
    return one(db, "SELECT * FROM channels WHERE id = ?", [channel_id])  # type: ignore[return-value]


def mark_notified(db: Database, channel_id: int, now: str) -> None:
    db.conn.execute("UPDATE channels SET owner_notified_at = ? WHERE id = ?", [now, channel_id])


def public_channel(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "tenant_id", "type", "external_id", "name", "waba_id", "page_id", "status",
                                "status_reason", "token_expires_at", "checked_at", "appliance_channel_id",
                                "connected_at")} | {"id": str(row["id"])}
