"""Support tokens: a short-lived API token in a tenant's appliance, for a support session.

The appliance's API tokens do not expire, so the control plane gives them a lifetime of its
own: ``aat-appliance tokens create --name support-<n> --role admin`` runs in the tenant (through
the provisioner's ``exec``), the control plane records name, prefix and ``expires_at``
(``AAT_CP_SUPPORT_TOKEN_MINUTES``), and the sweep revokes it when it expires
(``control_plane.tenant_tool revoke-token``). Issuing and revoking are audited; the token is
shown once, in the answer, and stored nowhere.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from appliance import audit
from appliance.errors import Conflict
from appliance.store.rows import many
from appliance.timeutil import iso_in, iso_now
from control_plane.db import Store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle
from control_plane.settings import ControlPlaneSettings

__all__ = ["SupportTokens"]

log = logging.getLogger("aat.cp.support")


class SupportTokens:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, lifecycle: Lifecycle) -> None:
        self.minutes = settings.support_token_minutes
        self.db = cp_store.gateway
        self.lifecycle = lifecycle

    async def issue(self, tenant_id: str, actor: audit.Actor) -> dict[str, Any]:
        row = await self.db.read(tenants.get_tenant, tenant_id)
        if row["status"] != "active" or not row["url"]:
            raise Conflict(f"tenant {tenant_id} is {row['status']}: support tokens are issued for active tenants",
                           code="tenant_not_active")
        name = f"support-{secrets.token_hex(4)}"
        result = await self.lifecycle.provisioner.exec(
            self.lifecycle.spec(row), ["aat-appliance", "tokens", "create", "--name", name, "--role", "admin"])
        token = result.check("creating a support token").last_line
        expires_at = iso_in(self.minutes * 60)

        def record(db: Any) -> None:
            db.conn.execute("INSERT INTO support_tokens (tenant_id, name, prefix, issued_by, created_at, expires_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [tenant_id, name, token[:10], actor.label, iso_now(), expires_at])
            audit.record(db, actor, "tenant.support_token", target_kind="tenant", target_id=tenant_id,
                         details={"name": name, "expires_at": expires_at})

        await self.db.write(record)
        return {"token": token, "url": row["url"], "expires_at": expires_at, "name": name}

    async def revoke_expired(self) -> int:
        due = await self.db.read(lambda db: many(
            db, "SELECT s.id, s.tenant_id, s.name FROM support_tokens s JOIN tenants t ON t.id = s.tenant_id "
                "WHERE s.revoked_at IS NULL AND s.expires_at <= ? AND t.status != 'deleted'", [iso_now()]))
        revoked = 0
        for item in due:
            row = await self.db.read(tenants.get_tenant, item["tenant_id"])
            try:
                result = await self.lifecycle.provisioner.exec(
                    self.lifecycle.spec(row), ["python", "-m", "control_plane.tenant_tool", "revoke-token",
                                               "--name", item["name"]])
                result.check("revoking a support token")
            except Exception as exc:  # noqa: BLE001 - retried at the next sweep
                log.warning("support token not revoked yet", extra={"tenant": item["tenant_id"], "error": type(exc).__name__})
                continue

            def mark(db: Any, support_id: int = item["id"], tenant_id: str = item["tenant_id"], name: str = item["name"]) -> None:
                db.conn.execute("UPDATE support_tokens SET revoked_at = ? WHERE id = ?", [iso_now(), support_id])
                audit.record(db, audit.Actor("system"), "tenant.support_token_revoked", target_kind="tenant",
                             target_id=tenant_id, details={"name": name})

            await self.db.write(mark)
            revoked += 1
        return revoked
