"""Connecting and disconnecting channels: the routing entry here, the channel in the tenant.

Connect: the tenant's appliance gets the channel first (``POST /api/v1/channels`` with the
control plane's own API token in that appliance); only when it accepted it does the routing
entry appear, together with the token (encrypted) and the audit record, and the entries kept
for that asset while nobody had claimed it become the tenant's deliveries. Disconnect: the
appliance erases its token (``DELETE /api/v1/channels/{id}``), then the routing entry and the
control plane's copy of the token go.
"""

from __future__ import annotations

from typing import Any

import httpx

from appliance import audit
from appliance.errors import AatError, Conflict, ServiceUnavailable
from appliance.timeutil import iso_now
from control_plane.channels import store
from control_plane.channels.models import ConnectChannel
from control_plane.db import Store
from control_plane.lifecycle import store as tenants
from control_plane.lifecycle.service import Lifecycle
from control_plane.routing import store as routing_store
from control_plane.routing.forwarder import Forwarder
from control_plane.routing.service import RoutingTable

__all__ = ["Channels", "token_context"]


def token_context(channel_type: str, external_id: str) -> str:
    return f"channels.token:{channel_type}:{external_id}"


class Channels:
    def __init__(self, cp_store: Store, http: httpx.AsyncClient, lifecycle: Lifecycle, table: RoutingTable,
                 forwarder: Forwarder, *, timeout: float = 15.0) -> None:
        self.store = cp_store
        self.db = cp_store.gateway
        self.http = http
        self.lifecycle = lifecycle
        self.table = table
        self.forwarder = forwarder
        self.timeout = timeout

    async def _tenant(self, tenant_id: str) -> tuple[dict[str, Any], str]:
        row = await self.db.read(tenants.get_tenant, tenant_id)
        token = self.lifecycle.api_token(row) if row["status"] == "active" else None
        if row["status"] != "active" or not row["url"] or token is None:
            raise Conflict(f"tenant {tenant_id} is {row['status']}: channels change only while it is active "
                           "and running", code="tenant_not_active")
        return row, token

    async def _call(self, row: dict[str, Any], token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, row["url"] + path, headers={"Authorization": f"Bearer {token}"},
                                               timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"tenant {row['id']}'s appliance did not answer ({type(exc).__name__}); retry later",
                                     code="tenant_unreachable") from exc
        return response

    async def connect(self, tenant_id: str, data: ConnectChannel, actor: audit.Actor) -> dict[str, Any]:
        row, token = await self._tenant(tenant_id)
        response = await self._call(row, token, "POST", "/api/v1/channels", json=data.model_dump(exclude_none=True))
        if response.status_code != 201:
            raise AatError(f"the tenant's appliance refused the channel (HTTP {response.status_code}: "
                           f"{_error_code(response)})", code="tenant_refused")
        appliance_id = str(response.json()["id"])
        token_enc = self.store.fields.encrypt(data.access_token, token_context(data.type, data.external_id))

        def add(db: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            now = iso_now()
            channel = store.add_channel(db, tenant_id=tenant_id, channel_type=data.type, external_id=data.external_id,
                                        name=data.name, waba_id=data.waba_id, page_id=data.page_id, token_enc=token_enc,
                                        appliance_channel_id=appliance_id, now=now)
            claimed = routing_store.claim_unclaimed(db, data.type, data.external_id, tenant_id, now)
            if data.waba_id:
                claimed += routing_store.claim_unclaimed(db, "whatsapp_waba", data.waba_id, tenant_id, now)
            audit.record(db, actor, "channel.connect", target_kind="tenant", target_id=tenant_id,
                         details={"type": data.type, "external_id": data.external_id, "claimed": len(claimed)})
            return channel, claimed

        channel, claimed = await self.db.write(add)
        self.table.add(data.type, data.external_id, tenant_id, data.waba_id)
        if claimed:
            self.forwarder.enqueue(tenant_id, claimed)
        return store.public_channel(channel)

    async def disconnect(self, tenant_id: str, channel_id: int, actor: audit.Actor) -> dict[str, Any]:
        channel = await self.db.read(store.get_channel, tenant_id, channel_id)
        row, token = await self._tenant(tenant_id)
        if channel["appliance_channel_id"]:
            response = await self._call(row, token, "DELETE", f"/api/v1/channels/{channel['appliance_channel_id']}")
            if response.status_code not in (200, 404):
                raise AatError(f"the tenant's appliance did not disconnect the channel (HTTP {response.status_code})",
                               code="tenant_refused")

        def remove(db: Any) -> dict[str, Any]:
            removed = store.remove_channel(db, tenant_id, channel_id)
            audit.record(db, actor, "channel.disconnect", target_kind="tenant", target_id=tenant_id,
                         details={"type": removed["type"], "external_id": removed["external_id"]})
            return removed

        removed = await self.db.write(remove)
        self.table.remove(removed["type"], removed["external_id"])
        return store.public_channel(removed)

    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        await self.db.read(tenants.get_tenant, tenant_id)
        return [store.public_channel(r) for r in await self.db.read(store.list_channels, tenant_id)]


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no error body"
