"""Tenant export and import, in the appliance's export format.

An export is exactly what ``aat-appliance export`` writes (one SQLCipher 4 file keyed with a
passphrase, docs/spec/api.md), produced inside the tenant's environment while it keeps serving.
An import creates a *new* tenant (new id, new master key, new webhook secret) whose storage is
filled by ``aat-appliance import`` before its first start. Channel tokens inside the file stay
sealed by the exporting tenant's master key, which the new tenant does not have: its channels
must be connected again (the routing entries stay with the original tenant until then).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from appliance import audit
from appliance.errors import Conflict
from appliance.privacy.export import check_passphrase
from control_plane.db import Store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle
from control_plane.settings import ControlPlaneSettings

__all__ = ["Transfers"]


class Transfers:
    def __init__(self, settings: ControlPlaneSettings, cp_store: Store, lifecycle: Lifecycle) -> None:
        self.scratch = settings.data_dir / "transfers"
        self.db = cp_store.gateway
        self.lifecycle = lifecycle

    def scratch_file(self, suffix: str) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.scratch / f"{secrets.token_hex(8)}{suffix}"

    async def export(self, tenant_id: str, out: Path, passphrase: str, actor: audit.Actor) -> dict[str, Any]:
        check_passphrase(passphrase)
        row = await self.db.read(tenants.get_tenant, tenant_id)
        if row["status"] in ("deleted",):
            raise Conflict(f"tenant {tenant_id} was torn down: there is nothing to export", code="tenant_deleted")
        await self.lifecycle.provisioner.export(self.lifecycle.spec(row), out, passphrase)
        size = out.stat().st_size
        await self.db.write(audit.record, actor, "tenant.export", target_kind="tenant", target_id=tenant_id,
                            details={"bytes": size})
        return {"tenant": tenant_id, "bytes": size}

    async def import_(self, source: Path, name: str, passphrase: str, actor: audit.Actor,
                      *, owner_email: str | None = None, wait: bool = False) -> dict[str, Any]:
        check_passphrase(passphrase)
        return await self.lifecycle.create(name=name, owner_email=owner_email, plan=None, actor=actor, wait=wait,
                                           restore=(source, passphrase))

    @staticmethod
    def discard(path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
