"""``/admin/api``: the control plane's admin API (admin tokens only). Thin handlers: validate,
call one service, return its answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, JSONBody, PathParameter, QueryParameter
from litestar.response import File
from pydantic import BaseModel, ConfigDict, StringConstraints

from appliance import audit
from appliance.audit import store as audit_store
from appliance.errors import Unprocessable
from appliance.team.models import Email
from appliance.timeutil import iso_now
from control_plane.channels.models import ConnectChannel, FacebookLogin, WhatsAppSignup
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.tasks import sweep_once
from control_plane.routing import store as routing
from control_plane.web import CpDep, Cursor, Limit, actor_of, admin_guard, decode_cursor, page

__all__ = ["AdminController"]

TenantId = Annotated[str, PathParameter(pattern=r"^t[0-9a-f]{12}$")]
RowId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
TenantStatus = Literal["provisioning", "active", "suspended", "deleting", "deleted"]
DeliveryStatus = Literal["pending", "delivered", "dead"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    owner_email: Email | None = None
    plan: Annotated[str, StringConstraints(max_length=64)] | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passphrase: Annotated[str, StringConstraints(min_length=8, max_length=1024)]


@dataclass
class ImportForm:
    file: UploadFile
    name: str
    passphrase: str


class AdminController(Controller):
    path = "/admin/api"
    guards = [admin_guard]

    # --- tenants --------------------------------------------------------------------------------
    @get("/tenants")
    async def list_tenants(self, cp: CpDep, status: Annotated[TenantStatus | None, QueryParameter()] = None,
                           limit: Annotated[int, Limit] = 50, cursor: Annotated[str | None, Cursor] = None) -> dict[str, Any]:
        rows = await cp.store.gateway.read(tenants.list_tenants, status=status, after_id=decode_cursor(cursor, str),
                                           limit=limit + 1)
        return page([tenants.public_tenant(r) for r in rows], limit, lambda t: t["id"])

    @post("/tenants", status_code=201)
    async def create_tenant(self, data: JSONBody[NewTenant], request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """A new tenant, ``provisioning`` until its appliance answers (then ``active``)."""
        row = await cp.lifecycle.create(name=data.name, owner_email=data.owner_email, plan=data.plan,
                                        actor=actor_of(request))
        return tenants.public_tenant(row)

    @get("/tenants/{tenant_id:str}")
    async def get_tenant(self, tenant_id: TenantId, cp: CpDep) -> dict[str, Any]:
        return tenants.public_tenant(await cp.store.gateway.read(tenants.get_tenant, tenant_id))

    @post("/tenants/{tenant_id:str}/suspend", status_code=200)
    async def suspend(self, tenant_id: TenantId, request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        return tenants.public_tenant(await cp.lifecycle.transition(tenant_id, "suspended", actor_of(request)))

    @post("/tenants/{tenant_id:str}/resume", status_code=200)
    async def resume(self, tenant_id: TenantId, request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """Suspended or deleting (before its teardown) back to active."""
        return tenants.public_tenant(await cp.lifecycle.transition(tenant_id, "active", actor_of(request)))

    @delete("/tenants/{tenant_id:str}", status_code=200)
    async def delete_tenant(self, tenant_id: TenantId, request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """Stop it now; the teardown follows once ``delete_after`` (retention) has passed."""
        return tenants.public_tenant(await cp.lifecycle.transition(tenant_id, "deleting", actor_of(request)))

    # --- channels and onboarding ----------------------------------------------------------------
    @get("/tenants/{tenant_id:str}/channels")
    async def list_channels(self, tenant_id: TenantId, cp: CpDep) -> dict[str, Any]:
        return {"items": await cp.channels.list(tenant_id), "next_cursor": None}

    @post("/tenants/{tenant_id:str}/channels", status_code=201)
    async def connect_channel(self, tenant_id: TenantId, data: JSONBody[ConnectChannel], request: Request[Any, Any, Any],
                              cp: CpDep) -> dict[str, Any]:
        """Routing entry + the channel in the tenant's appliance (what onboarding ends in)."""
        return await cp.channels.connect(tenant_id, data, actor_of(request))

    @delete("/tenants/{tenant_id:str}/channels/{channel_id:int}", status_code=200)
    async def disconnect_channel(self, tenant_id: TenantId, channel_id: RowId, request: Request[Any, Any, Any],
                                 cp: CpDep) -> dict[str, Any]:
        return await cp.channels.disconnect(tenant_id, channel_id, actor_of(request))

    @post("/tenants/{tenant_id:str}/onboarding/facebook", status_code=201)
    async def facebook_login(self, tenant_id: TenantId, data: JSONBody[FacebookLogin], request: Request[Any, Any, Any],
                             cp: CpDep) -> dict[str, Any]:
        return {"items": await cp.onboarding.facebook_login(tenant_id, data, actor_of(request))}

    @post("/tenants/{tenant_id:str}/onboarding/whatsapp", status_code=201)
    async def whatsapp_signup(self, tenant_id: TenantId, data: JSONBody[WhatsAppSignup], request: Request[Any, Any, Any],
                              cp: CpDep) -> dict[str, Any]:
        return await cp.onboarding.whatsapp_signup(tenant_id, data, actor_of(request))

    # --- operations -----------------------------------------------------------------------------
    @post("/tenants/{tenant_id:str}/support-token", status_code=201)
    async def support_token(self, tenant_id: TenantId, request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """A short-lived admin API token in the tenant's appliance ``{token, url, expires_at}``; audited."""
        return await cp.support.issue(tenant_id, actor_of(request))

    @post("/tenants/{tenant_id:str}/export", status_code=200)
    async def export_tenant(self, tenant_id: TenantId, data: JSONBody[ExportRequest], request: Request[Any, Any, Any],
                            cp: CpDep) -> File:
        """The whole workspace as one SQLCipher 4 file keyed by the passphrase given."""
        out = cp.transfers.scratch_file(".aatx")
        try:
            await cp.transfers.export(tenant_id, out, data.passphrase, actor_of(request))
        except BaseException:
            cp.transfers.discard(out)
            raise
        return File(path=out, filename=f"{tenant_id}.aatx", media_type="application/octet-stream",
                    background=BackgroundTask(cp.transfers.discard, out))

    @post("/tenants/import", status_code=201, request_max_body_size=4 * 1024**3)
    async def import_tenant(self, data: Annotated[ImportForm, Body(media_type=RequestEncodingType.MULTI_PART)],
                            request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """A new tenant from an export file (multipart: ``file``, ``name``, ``passphrase``)."""
        if not data.name.strip() or len(data.name) > 200:
            raise Unprocessable("give the new tenant a name of 1 to 200 characters", code="invalid_name")
        source = cp.transfers.scratch_file(".import")
        try:
            with open(source, "wb") as fh:
                while chunk := await data.file.read(1 << 20):
                    fh.write(chunk)
            row = await cp.transfers.import_(source, data.name.strip(), data.passphrase, actor_of(request))
        finally:
            cp.transfers.discard(source)
        return tenants.public_tenant(row)

    # --- the forwarding journal -----------------------------------------------------------------
    @get("/deliveries")
    async def list_deliveries(self, cp: CpDep, tenant: Annotated[str | None, QueryParameter()] = None,
                              status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
                              limit: Annotated[int, Limit] = 50,
                              cursor: Annotated[str | None, Cursor] = None) -> dict[str, Any]:
        rows = await cp.store.gateway.read(routing.list_deliveries, tenant_id=tenant, status=status,
                                           before_id=decode_cursor(cursor, int), limit=limit + 1)
        return page([_delivery(r) for r in rows], limit, lambda d: int(d["id"]))

    @post("/deliveries/{delivery_id:int}/replay", status_code=200)
    async def replay(self, delivery_id: RowId, request: Request[Any, Any, Any], cp: CpDep) -> dict[str, Any]:
        """A dead letter back in its tenant's queue with a fresh retry schedule."""
        actor = actor_of(request)

        def replay(db: Any) -> dict[str, Any]:
            row = routing.replay(db, delivery_id, iso_now())
            audit.record(db, actor, "delivery.replay", target_kind="delivery", target_id=delivery_id,
                         details={"tenant": row["tenant_id"]})
            return row

        row = await cp.store.gateway.write(replay)
        cp.forwarder.enqueue(row["tenant_id"], [row])
        return _delivery(row)

    # --- audit and sweeps -----------------------------------------------------------------------
    @get("/audit")
    async def list_audit(self, cp: CpDep, limit: Annotated[int, Limit] = 50,
                         cursor: Annotated[str | None, Cursor] = None) -> dict[str, Any]:
        rows = await cp.store.gateway.read(audit_store.list_entries, before_id=decode_cursor(cursor, int), limit=limit + 1)
        return page(rows, limit, lambda e: int(e["id"]))

    @get("/audit/verify")
    async def verify_audit(self, cp: CpDep) -> dict[str, Any]:
        intact, checked, broken = await cp.store.gateway.read(audit.verify)
        return {"intact": intact, "checked": checked, "broken_at": None if broken is None else str(broken)}

    @post("/sweep", status_code=200)
    async def sweep(self, cp: CpDep) -> dict[str, Any]:
        """Run the periodic sweep now (teardowns due, purges, token checks)."""
        return await sweep_once(cp)


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "body"} | {"id": str(row["id"])}
