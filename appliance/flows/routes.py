"""``/api/v1/flows``: documents, publishing, the schema, preview, stats, export."""

import functools
import json
from urllib.parse import quote
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, StringConstraints

from appliance.audit import audited
from appliance.errors import BadRequest, NotFound, Unprocessable
from appliance.flows import store
from appliance.flows.models import flow_json_schema
from appliance.flows.preview import run_preview
from appliance.flows.validate import check_document, check_publish
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import from_iso, iso_now, to_iso, utcnow
from appliance.web.api import MAX_ID, Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["FlowController", "flow_schema"]

FlowId = Annotated[int, IdPath]


@functools.cache
def _schema() -> dict[str, Any]:
    return flow_json_schema()


def _invalid(errors: list[Any], message: str) -> Unprocessable:
    return Unprocessable(message, code="invalid_flow", details=errors)


def _warnings(items: list[Any]) -> list[dict[str, str]]:
    return [{"path": w.path, "message": w.message} for w in items]


class PreviewInput(BaseModel):
    """What the pretend contact does: type ``text``, tap a button (``payload``), or start over."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    text: Annotated[str, StringConstraints(max_length=2000)] | None = None
    payload: Annotated[str, StringConstraints(max_length=1000)] | None = None
    channel: Literal["messenger", "instagram", "whatsapp"] = "messenger"
    reset: bool = False


def _moment(text: str) -> datetime:
    moment = from_iso(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # naive = UTC


def _range(since: str | None, until: str | None) -> tuple[str, str]:
    try:
        end = _moment(until) if until else utcnow() + timedelta(seconds=1)
        start = _moment(since) if since else end - timedelta(days=30)
        if start >= end:
            raise BadRequest("`from` must be before `to`", code="invalid_query")
        return to_iso(start), to_iso(end)
    except (ValueError, OverflowError) as exc:  # unparseable, or beyond the years 1-9999 in UTC
        raise BadRequest("`from` and `to` must be ISO-8601 times, e.g. 2026-11-01T00:00:00Z",
                         code="invalid_query") from exc


@get("/flows/schema", guards=[requires("agent")])
async def flow_schema() -> dict[str, Any]:
    """The JSON Schema of ``aat.flow/v1`` (any role: integrators validate documents with it)."""
    return _schema()


class FlowController(Controller):
    path = "/flows"
    guards = [requires("admin")]

    @get("/")
    async def list_flows(
        self, runtime: RuntimeDep, limit: Annotated[int, Limit] = 50, cursor: Annotated[str | None, Cursor] = None
    ) -> dict[str, Any]:
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_flows, after_id=after, limit=limit + 1)
        return page(rows, limit, lambda item: int(item["id"]))

    @post("/", status_code=201)
    async def create(
        self, data: JSONBody[Any], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Store a new draft (also how an exported document is imported)."""
        checked = check_document(data)
        if checked.document is None:
            raise _invalid(checked.errors, "the flow document is invalid")
        return await runtime.db.write(
            audited, actor_of(request), "flow.create", "flow", store.create_flow, checked.document.to_json(),
            iso_now(), target_of=lambda r: r["id"],
        )

    @get("/{flow_id:int}")
    async def get_flow(self, flow_id: FlowId, runtime: RuntimeDep) -> dict[str, Any]:
        return await runtime.db.read(store.get_flow, flow_id)

    @put("/{flow_id:int}")
    async def update(
        self, flow_id: FlowId, data: JSONBody[Any], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Replace the draft; the published version keeps running until the next publish."""
        checked = check_document(data)
        if checked.document is None:
            raise _invalid(checked.errors, "the flow document is invalid")
        return await runtime.db.write(
            audited, actor_of(request), "flow.update", "flow", store.update_flow, flow_id,
            checked.document.to_json(), iso_now(), target_of=lambda r: r["id"],
        )

    @delete("/{flow_id:int}", status_code=204)
    async def remove(self, flow_id: FlowId, request: Request[Principal, Any, Any], runtime: RuntimeDep) -> None:
        await runtime.db.write(
            audited, actor_of(request), "flow.delete", "flow", store.delete_flow, flow_id, iso_now(),
            target_of=lambda _: flow_id,
        )

    @post("/{flow_id:int}/publish", status_code=200)
    async def publish(
        self, flow_id: FlowId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Freeze the draft as a new immutable version; contacts already running stay on theirs."""
        draft = await runtime.db.read(store.draft_document, flow_id)
        checked = check_document(draft)
        if checked.document is None:
            raise _invalid(checked.errors, "the draft is invalid")
        published = check_publish(checked.document)
        if published.document is None:
            raise _invalid(published.errors, "the flow cannot be published")
        version = await runtime.db.write(
            audited, actor_of(request), "flow.publish", "flow", store.publish, flow_id,
            checked.document.to_json(), iso_now(), target_of=lambda _: flow_id,
        )
        return {"version": version, "warnings": _warnings(published.warnings)}

    @get("/{flow_id:int}/export")
    async def export(
        self, flow_id: FlowId, runtime: RuntimeDep,
        version: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    ) -> Response[bytes]:
        """The document as a file (the draft, or a published ``version``)."""
        if version is None:
            document = await runtime.db.read(store.draft_document, flow_id)
        else:
            loaded = await runtime.db.read(store.load_version, flow_id, version)
            if loaded is None:
                raise NotFound(f"flow {flow_id} has no published version {version}")
            document = loaded.to_json()
        title = str(document.get("name", "flow"))
        ascii_name = "".join(c if c.isascii() and c.isalnum() else "-" for c in title).strip("-")[:60] or "flow"
        # RFC 6266: an ASCII fallback, and the real name percent-encoded for clients that read it.
        disposition = (f'attachment; filename="{ascii_name}.aat-flow.json"; '
                       f"filename*=UTF-8''{quote(title[:60], safe='')}.aat-flow.json")
        return Response(
            json.dumps(document, ensure_ascii=False, indent=2).encode(),
            media_type="application/json",
            headers={"Content-Disposition": disposition},
        )

    @get("/{flow_id:int}/stats")
    async def stats(
        self, flow_id: FlowId, runtime: RuntimeDep,
        since: Annotated[str | None, QueryParameter(name="from")] = None,
        until: Annotated[str | None, QueryParameter(name="to")] = None,
    ) -> dict[str, Any]:
        """Runs by outcome and, per step, entered/completed/dropped and clicks per button."""
        start, end = _range(since, until)
        result = await runtime.db.read(store.stats, flow_id, start, end)
        return {**result, "from": start, "to": end}

    @post("/{flow_id:int}/preview", status_code=200)
    async def preview(
        self, flow_id: FlowId, data: JSONBody[PreviewInput], request: Request[Principal, Any, Any],
        runtime: RuntimeDep,
    ) -> dict[str, Any]:
        """Talk to the draft as a pretend contact; returns what the bot would send."""
        owner = f"{request.user.kind}:{request.user.id}"
        return await runtime.db.write(
            run_preview, flow_id, owner, channel=data.channel, text=data.text, payload=data.payload,
            reset=data.reset, now=iso_now(),
        )


