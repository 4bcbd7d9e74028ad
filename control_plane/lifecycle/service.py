"""Driving tenants through their lifecycle (see ``lifecycle.store`` for the states).

Admins (API, CLI) change a tenant's *state* in the database, audited in the same
transaction; :meth:`Lifecycle.converge` then makes the world match it through the provisioner:
provision and start, stop, tear down. The sweep converges every live tenant again every
``AAT_CP_SWEEP_SECONDS``, so a step cut short by a crash, or a change the CLI made while the
server ran, is finished by the next sweep. Convergence is serialised per tenant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from appliance import audit
from appliance.errors import AatError
from appliance.store.keys import FieldCipher
from appliance.timeutil import iso_in, iso_now
from control_plane.db import Store
from control_plane.lifecycle import store
from control_plane.provisioning.base import (
    Provisioner, TenantSpec, new_master_key, new_webhook_secret,
)
from control_plane.routing import store as routing_store
from control_plane.routing.forwarder import Forwarder, Target
from control_plane.routing.service import RoutingTable
from control_plane.settings import ControlPlaneSettings, PlatformApp

__all__ = ["Lifecycle", "seal", "unseal", "new_tenant_row", "CONTROL_PLANE_TOKEN"]

log = logging.getLogger("aat.cp.lifecycle")

CONTROL_PLANE_TOKEN = "aat-control-plane"


def _context(field: str, tenant_id: str) -> str:
    return f"tenants.{field}:{tenant_id}"


def seal(fields: FieldCipher, field: str, tenant_id: str, value: str) -> str:
    return fields.encrypt(value, _context(field, tenant_id))


def unseal(fields: FieldCipher, field: str, tenant_id: str, value: str | None) -> str | None:
    return None if value is None else fields.decrypt(value, _context(field, tenant_id))


def new_tenant_row(db: Any, fields: FieldCipher, *, name: str, provisioner: str, owner_email: str | None,
                   plan: str | None, actor: audit.Actor, tenant_id: str | None = None) -> dict[str, Any]:
    """A tenant in ``provisioning`` with fresh secrets (a store-level step: runs in one write)."""
    tenant_id = tenant_id or store.new_tenant_id()
    sealed = {"master_key": seal(fields, "master_key", tenant_id, new_master_key()),
              "webhook_secret": seal(fields, "webhook_secret", tenant_id, new_webhook_secret())}
    row = store.insert_tenant(db, tenant_id=tenant_id, name=name, provisioner=provisioner, secrets_enc=sealed,
                              owner_email=owner_email, plan=plan, now=iso_now())
    audit.record(db, actor, "tenant.create", target_kind="tenant", target_id=tenant_id,
                 details={"provisioner": provisioner})
    return row


class Lifecycle:
    def __init__(self, settings: ControlPlaneSettings, platform: PlatformApp, cp_store: Store,
                 provisioner: Provisioner, forwarder: Forwarder, table: RoutingTable) -> None:
        self.settings = settings
        self.platform = platform
        self.store = cp_store
        self.db = cp_store.gateway
        self.provisioner = provisioner
        self.forwarder = forwarder
        self.table = table
        self._locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        provisioner.on_ready(self._ready)
        self.entitlements_public_key = ""  # set by the runtime: every tenant's AAT_ENTITLEMENTS_PUBLIC_KEY
        self.on_active: Any = None  # (tenant_id) -> None, after an active tenant converged (entitlement push)

    def _ready(self, tenant_id: str, ready: bool) -> None:
        self.forwarder.set_up(tenant_id, ready)

    # --- secrets -------------------------------------------------------------------------------
    def spec(self, row: dict[str, Any]) -> TenantSpec:
        spec = self.spec_from(row, self.store.fields, self.platform)
        return dataclasses.replace(spec, entitlements_public_key=self.entitlements_public_key,
                                   control_plane_url=self.settings.public_url.rstrip("/"))

    @staticmethod
    def spec_from(row: dict[str, Any], fields: FieldCipher, platform: PlatformApp) -> TenantSpec:
        """What the provisioner needs, with the tenant's secrets decrypted."""
        master = unseal(fields, "master_key", row["id"], row["master_key_enc"])
        secret = unseal(fields, "webhook_secret", row["id"], row["webhook_secret_enc"])
        if master is None or secret is None:
            raise AatError(f"tenant {row['id']} has no keys any more (it was torn down)", code="tenant_deleted")
        return TenantSpec(id=row["id"], name=row["name"], master_key=master, webhook_secret=secret,
                          graph_api_base=platform.graph_api_base, graph_api_version=platform.graph_api_version,
                          port=row["port"])

    def api_token(self, row: dict[str, Any]) -> str | None:
        return unseal(self.store.fields, "api_token", row["id"], row["api_token_enc"])

    def _target(self, row: dict[str, Any]) -> None:
        if row["url"] is None or row["webhook_secret_enc"] is None:
            return
        secret = unseal(self.store.fields, "webhook_secret", row["id"], row["webhook_secret_enc"])
        current = self.forwarder.targets.get(row["id"])
        target = Target(row["id"], row["url"], secret.encode(), active=row["status"] == "active",  # type: ignore[union-attr]
                        up=current.up if current else True)
        self.forwarder.set_target(target)

    # --- admin actions (state first, audited; then converge) -------------------------------------
    async def create(self, *, name: str, owner_email: str | None, plan: str | None, actor: audit.Actor,
                     wait: bool = False, restore: tuple[Path, str] | None = None) -> dict[str, Any]:
        tenant_id = store.new_tenant_id()
        if restore is not None:
            # The new storage is filled before the tenant exists as far as anyone else can see.
            spec = TenantSpec(id=tenant_id, name=name, master_key=new_master_key(), webhook_secret=new_webhook_secret())
            await self.provisioner.restore(spec, *restore)
            row = await self.db.write(self.insert_restored, self.store.fields, spec, self.provisioner.name,
                                      owner_email, actor)
        else:
            row = await self.db.write(new_tenant_row, self.store.fields, name=name, provisioner=self.provisioner.name,
                                      owner_email=owner_email, plan=plan, actor=actor, tenant_id=tenant_id)
        return await self._after_change(row["id"], wait)

    @staticmethod
    def insert_restored(db: Any, fields: FieldCipher, spec: TenantSpec, provisioner: str, owner_email: str | None,
                        actor: audit.Actor) -> dict[str, Any]:
        """The tenant row of an import, whose storage ``restore`` already filled with ``spec``'s keys."""
        sealed = {"master_key": seal(fields, "master_key", spec.id, spec.master_key),
                  "webhook_secret": seal(fields, "webhook_secret", spec.id, spec.webhook_secret)}
        row = store.insert_tenant(db, tenant_id=spec.id, name=spec.name, provisioner=provisioner, secrets_enc=sealed,
                                  owner_email=owner_email, plan=None, now=iso_now())
        audit.record(db, actor, "tenant.import", target_kind="tenant", target_id=spec.id,
                     details={"provisioner": provisioner})
        return row

    async def transition(self, tenant_id: str, status: str, actor: audit.Actor, *, wait: bool = False) -> dict[str, Any]:
        delete_after = iso_in(self.settings.retention_days * 86400) if status == "deleting" else None
        action = {"suspended": "tenant.suspend", "active": "tenant.resume", "deleting": "tenant.delete"}[status]

        def change(db: Any) -> dict[str, Any]:
            row = store.set_status(db, tenant_id, status, iso_now(), delete_after=delete_after)
            audit.record(db, actor, action, target_kind="tenant", target_id=tenant_id,
                         details={"delete_after": delete_after} if delete_after else None)
            return row

        await self.db.write(change)
        return await self._after_change(tenant_id, wait)

    async def _after_change(self, tenant_id: str, wait: bool) -> dict[str, Any]:
        if wait:
            await self.converge(tenant_id)
        else:
            self._spawn(self.converge(tenant_id))
        return await self.db.read(store.get_tenant, tenant_id)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- convergence -----------------------------------------------------------------------------
    async def converge(self, tenant_id: str) -> None:
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            row = await self.db.read(store.get_tenant, tenant_id)
            try:
                await self._converge(row)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded on the tenant, retried by the sweep
                message = exc.message if isinstance(exc, AatError) else f"{type(exc).__name__}: {exc}"
                log.warning("tenant convergence failed", extra={"tenant": tenant_id, "error": type(exc).__name__})
                await self.db.write(store.set_error, tenant_id, message, iso_now())

    async def _converge(self, row: dict[str, Any]) -> None:
        status, tenant_id = row["status"], row["id"]
        if status in ("provisioning", "active"):
            spec = self.spec(row)
            endpoint = await (self.provisioner.provision(spec) if status == "provisioning" else self.provisioner.start(spec))
            if row["api_token_enc"] is None:
                result = await self.provisioner.exec(
                    spec, ["aat-appliance", "tokens", "create", "--name", CONTROL_PLANE_TOKEN, "--role", "owner"])
                token = result.check("creating the control plane's API token").last_line
                await self.db.write(store.set_api_token, tenant_id, seal(self.store.fields, "api_token", tenant_id, token))
            if row["url"] != endpoint.url or row["port"] != endpoint.port or status == "provisioning" or row["last_error"]:
                await self.db.write(store.set_endpoint, tenant_id, url=endpoint.url, port=endpoint.port, now=iso_now())
            self._target(await self.db.read(store.get_tenant, tenant_id))
            if self.on_active is not None:
                self.on_active(tenant_id)
        elif status in ("suspended", "deleting"):
            self._target(row)
            await self.provisioner.stop(tenant_id)
            if status == "deleting" and row["delete_after"] is not None and row["delete_after"] <= iso_now():
                await self._teardown(tenant_id)

    async def _teardown(self, tenant_id: str) -> None:
        """Stop, destroy (crypto-shred), remove storage, routing and secrets; keep the audit record."""
        await self.provisioner.teardown(tenant_id)
        assets = self.table.assets_of(tenant_id)

        def finish(db: Any) -> None:
            routing_store.drop_tenant(db, tenant_id)
            store.mark_deleted(db, tenant_id, iso_now())
            audit.record(db, audit.Actor("system"), "tenant.teardown", target_kind="tenant", target_id=tenant_id,
                         details={"routes_removed": len(assets)})

        await self.db.write(finish)
        self.table.drop_tenant(tenant_id)
        self.forwarder.remove_target(tenant_id)
        log.info("tenant torn down", extra={"tenant": tenant_id})

    # --- start and the sweep ---------------------------------------------------------------------
    async def start(self) -> None:
        """At start: every live tenant's target at once (deliveries are queued for them), then
        converge them all in the background (local: start their processes)."""
        rows = await self.db.read(store.live_tenants)
        for row in rows:
            self._target(row)
        self._spawn(self._converge_all([r["id"] for r in rows]))

    async def _converge_all(self, tenant_ids: list[str]) -> None:
        await asyncio.gather(*(self.converge(t) for t in tenant_ids))

    async def sweep_tenants(self) -> None:
        await self._converge_all([r["id"] for r in await self.db.read(store.live_tenants)])

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.provisioner.close()
