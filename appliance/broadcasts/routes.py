"""``/api/v1/broadcasts`` (admins) and ``/api/v1/templates`` (the WhatsApp template catalogue).

Every change is recorded in the audit log; validation that needs the database is in
:mod:`appliance.broadcasts.service`, the state machine in :mod:`appliance.broadcasts.store`.
"""

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, QueryParameter

from appliance.broadcasts import catalogue, service, store, templates
from appliance.broadcasts.models import Estimate, NewBroadcast, SyncTemplates
from appliance.broadcasts.worker import worker_for
from appliance.team.auth import Principal, actor_of, requires
from appliance.web.api import Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["BroadcastController", "TemplateController"]

BroadcastId = Annotated[int, IdPath]


class BroadcastController(Controller):
    path = "/broadcasts"
    guards = [requires("admin")]

    @get("/")
    async def list_broadcasts(
        self, runtime: RuntimeDep, limit: Annotated[int, Limit] = 50, cursor: Annotated[str | None, Cursor] = None
    ) -> dict[str, Any]:
        """Newest first, with their counts."""
        before = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_broadcasts, before_id=before, limit=limit + 1)
        return page([store.public(r) for r in rows], limit, lambda item: int(item["id"]))

    @post("/", status_code=201)
    async def create(
        self, data: JSONBody[NewBroadcast], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """A draft; ``POST .../start`` sends it (at ``send_at`` when that is ahead)."""
        return store.public(await runtime.db.write(service.create, data, actor_of(request)))

    @post("/estimate", status_code=200)
    async def estimate(self, data: JSONBody[Estimate], runtime: RuntimeDep) -> dict[str, Any]:
        """The live recipient count: ``{total, eligible, skipped_reasons}`` if it were sent now."""
        return await runtime.db.read(service.estimate, data.audience, data.message)

    @get("/{broadcast_id:int}")
    async def get_broadcast(self, broadcast_id: BroadcastId, runtime: RuntimeDep) -> dict[str, Any]:
        return store.public(await runtime.db.read(store.get, broadcast_id))

    async def _act(self, broadcast_id: int, action: str, request: Request[Principal, Any, Any],
                   runtime: RuntimeDep) -> dict[str, Any]:
        row = await runtime.db.write(service.act, broadcast_id, action, actor_of(request))
        worker_for(runtime).wake()
        return store.public(row)

    @post("/{broadcast_id:int}/start", status_code=200)
    async def start(
        self, broadcast_id: BroadcastId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Send (or schedule) a draft; resume a paused broadcast."""
        return await self._act(broadcast_id, "start", request, runtime)

    @post("/{broadcast_id:int}/pause", status_code=200)
    async def pause(
        self, broadcast_id: BroadcastId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Stop sending; messages the sender has not attempted are taken back."""
        return await self._act(broadcast_id, "pause", request, runtime)

    @post("/{broadcast_id:int}/cancel", status_code=200)
    async def cancel(
        self, broadcast_id: BroadcastId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """End it; recipients not reached yet are skipped (``cancelled``)."""
        return await self._act(broadcast_id, "cancel", request, runtime)


class TemplateController(Controller):
    path = "/templates"

    @get("/", guards=[requires("agent")])
    async def list_templates(
        self,
        runtime: RuntimeDep,
        waba_id: Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,32}$")] = None,
        status: Annotated[str | None, QueryParameter(pattern=r"^[A-Za-z_]{1,32}$")] = None,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        """The catalogue (agents pick templates for replies outside the window)."""
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(catalogue.list_templates, waba_id=waba_id, status=status, after_id=after,
                                     limit=limit + 1)
        return page(rows, limit, lambda item: int(item["id"]))

    @post("/sync", guards=[requires("admin")], status_code=200)
    async def sync(
        self, request: Request[Principal, Any, Any], runtime: RuntimeDep, data: JSONBody[SyncTemplates | None] = None
    ) -> dict[str, Any]:
        """Read every connected WhatsApp account's templates from Meta (or one number's)."""
        channel_id = int(data.channel_id) if data and data.channel_id else None
        return await templates.sync(runtime, actor_of(request), channel_id)
