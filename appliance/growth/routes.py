"""Growth entry points: ref links with QR codes, and the conversation profile per channel.

``GET /api/v1/channels/{id}/profile``, ``PUT`` the same (stored, then pushed to Meta: the
answer says whether Meta took it), ``GET /api/v1/channels/{id}/links?ref=`` (the link and a
QR code as SVG), ``GET /api/v1/channels/{id}/links/qr.svg?ref=`` (the image itself), and
``GET /api/v1/links`` (every ``ref`` trigger of the published flows on every active channel).
"""

import io
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from appliance.audit import audited
from appliance.channels.graph import call_json
from appliance.channels.profile import ProfileError, handle_lookup, profile_requests, ref_link
from appliance.connections import store as channels
from appliance.errors import Conflict, Unprocessable
from appliance.growth import store
from appliance.runtime import Runtime
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now
from appliance.web.api import IdPath, RuntimeDep

__all__ = ["GrowthController", "all_links", "ChannelProfile"]

Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]{1,100}$")]


class MenuItem(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    title: Annotated[str, StringConstraints(min_length=1, max_length=30)]
    payload: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https://\S+$", max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one(self) -> "MenuItem":
        if (self.payload is None) == (self.url is None):
            raise ValueError("a menu item needs exactly one of `payload` or `url`")
        return self


class IceBreaker(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    question: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    payload: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]
    description: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ChannelProfile(BaseModel):
    """What Meta shows before and around a conversation. Payloads start ``postback`` flows."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    get_started_payload: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    greeting: Annotated[str, StringConstraints(min_length=1, max_length=160)] | None = None
    persistent_menu: list[MenuItem] = Field(default_factory=list, max_length=20)
    ice_breakers: list[IceBreaker] = Field(default_factory=list, max_length=4)
    commands: list[Command] = Field(default_factory=list, max_length=30)
    welcome_message: bool = False


def _qr_svg(url: str) -> str:
    import segno  # only a QR code request needs it

    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False)
    return buffer.getvalue().decode()


async def _token(runtime: Runtime, channel_id: int) -> tuple[dict[str, Any], str]:
    row = await runtime.db.read(channels.credentials, channel_id)
    if row["status"] != "active" or not row["access_token_enc"]:
        raise Conflict("the channel is not connected; connect it first", code="channel_unavailable")
    token = runtime.fields.decrypt(row["access_token_enc"], channels.token_context(row["type"], row["external_id"]))
    return row, token


def _url(runtime: Runtime, host: str, path: str) -> str:
    return runtime.settings.graph_url(path) if host == "graph" else runtime.settings.instagram_url(path)


async def _handle(runtime: Runtime, channel_id: int) -> tuple[dict[str, Any], str | None]:
    """The channel's public handle, asked of Meta once and remembered."""
    saved = await runtime.db.read(store.get_profile, channel_id)
    row = await runtime.db.read(channels.credentials, channel_id)
    if saved["handle"] or row["type"] == "messenger":
        return row, saved["handle"]
    lookup = handle_lookup(row["type"], asset_id=row["external_id"], page_id=row["page_id"])
    _, token = await _token(runtime, channel_id)
    host, path, field_name = lookup  # type: ignore[misc]
    data, error = await call_json(runtime.http, "GET", _url(runtime, host, path), token, params={"fields": field_name})
    if error is not None or not data or not data.get(field_name):
        return row, None
    await runtime.db.write(store.save_handle, channel_id, str(data[field_name]), iso_now())
    return row, str(data[field_name])


async def _link(runtime: Runtime, channel_id: int, ref: str | None) -> str:
    row, handle = await _handle(runtime, channel_id)
    try:
        return ref_link(row["type"], asset_id=row["external_id"], handle=handle, ref=ref)
    except ProfileError as exc:
        raise Conflict(f"{exc}: Meta did not tell it (is the channel's token valid?)", code="handle_unknown") from exc


@get("/links", guards=[requires("admin")])
async def all_links(runtime: RuntimeDep) -> dict[str, Any]:
    """Every ref link the published flows answer, per active channel, with its QR code."""
    triggers = await runtime.db.read(store.ref_triggers)
    rows = [c for c in await runtime.db.read(channels.list_channels) if c["status"] == "active"]
    items = []
    for trigger in triggers:
        for channel in rows:
            if channel["type"] not in trigger["channels"]:
                continue
            try:
                url = await _link(runtime, channel["id"], trigger["ref"])
            except Conflict:
                continue
            items.append({**{k: trigger[k] for k in ("flow_id", "flow_name", "ref")},
                          "channel_id": str(channel["id"]), "channel": channel["type"], "url": url,
                          "qr_svg_url": f"/api/v1/channels/{channel['id']}/links/qr.svg?ref={trigger['ref']}"})
    return {"items": items, "next_cursor": None}


class GrowthController(Controller):
    path = "/channels/{channel_id:int}"
    guards = [requires("admin")]

    @get("/links")
    async def link(
        self, channel_id: Annotated[int, IdPath], runtime: RuntimeDep,
        ref: Annotated[Ref | None, QueryParameter()] = None,
    ) -> dict[str, Any]:
        url = await _link(runtime, channel_id, ref)
        return {"url": url, "ref": ref, "qr_svg": _qr_svg(url)}

    @get("/links/qr.svg", media_type="image/svg+xml")
    async def qr(
        self, channel_id: Annotated[int, IdPath], runtime: RuntimeDep,
        ref: Annotated[Ref | None, QueryParameter()] = None,
    ) -> Response[str]:
        url = await _link(runtime, channel_id, ref)
        return Response(_qr_svg(url), media_type="image/svg+xml",
                        headers={"Content-Disposition": f'inline; filename="{ref or "chat"}.svg"'})

    @get("/profile")
    async def get_profile(self, channel_id: Annotated[int, IdPath], runtime: RuntimeDep) -> dict[str, Any]:
        await runtime.db.read(channels.get_channel, channel_id)
        return await runtime.db.read(store.get_profile, channel_id)

    @put("/profile")
    async def put_profile(
        self, channel_id: Annotated[int, IdPath], data: JSONBody[ChannelProfile],
        request: Request[Principal, Any, Any], runtime: RuntimeDep,
    ) -> dict[str, Any]:
        """Store the profile, then push it to Meta; ``push_error`` says why Meta refused."""
        row, token = await _token(runtime, channel_id)
        profile = data.model_dump(exclude_defaults=True)
        try:
            requests = profile_requests(row["type"], profile, asset_id=row["external_id"], page_id=row["page_id"])
        except ProfileError as exc:
            raise Unprocessable(str(exc), code="invalid_profile") from exc
        await runtime.db.write(
            audited, actor_of(request), "channel.profile", "channel", store.save_profile, channel_id, profile,
            iso_now(), target_of=lambda _: channel_id,
        )
        error = None
        for request in requests:
            _, failure = await call_json(runtime.http, request.method, _url(runtime, request.host, request.path),
                                         token, body=dict(request.body), params=request.params)
            if failure is not None:
                error = f"Meta refused the profile (code {failure.code}): {failure.message}"
                break
        await runtime.db.write(store.record_push, channel_id, error, iso_now())
        return await runtime.db.read(store.get_profile, channel_id)
