"""``/api/v1/channels``: connect, list and disconnect Meta assets. Tokens are write-only: no
response carries one, and DELETE erases the stored token in the same transaction."""

from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlite_utils import Database

from appliance.audit import audited
from appliance.connections import store
from appliance.entitlements import service as entitlements
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now
from appliance.web.api import Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["ChannelController", "ConnectChannel", "public_channel"]

MetaId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class ConnectChannel(BaseModel):
    """Connect (or reconnect) a Page, an Instagram account or a WhatsApp number."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request

    type: Literal["messenger", "instagram", "whatsapp"]
    external_id: MetaId = Field(description="Page id, Instagram account id, or WhatsApp phone_number_id")
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=4096, strip_whitespace=True)]
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    waba_id: MetaId | None = Field(None, description="WhatsApp Business Account id (WhatsApp)")
    page_id: MetaId | None = Field(
        None, description="The Facebook Page an Instagram account is connected through (Facebook Login)"
    )
    rate_limit: int | None = Field(None, ge=1, le=1000, description="Sends per second; default per type")

    @model_validator(mode="after")
    def _fits_type(self) -> "ConnectChannel":
        if self.waba_id is not None and self.type != "whatsapp":
            raise ValueError("waba_id belongs to WhatsApp channels only")
        if self.page_id is not None and self.type != "instagram":
            raise ValueError("page_id belongs to Instagram channels only")
        return self


def public_channel(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape; listed field by field so that no stored column (the token) leaks."""
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "external_id": row["external_id"],
        "name": row["name"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "waba_id": row["waba_id"],
        "page_id": row["page_id"],
        "rate_limit": row["rate_limit"],
        "connected_at": row["connected_at"],
        "created_at": row["created_at"],
    }


class ChannelController(Controller):
    path = "/channels"
    guards = [requires("admin")]

    @get("/")
    async def list_channels(
        self,
        runtime: RuntimeDep,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        """Every channel, oldest first, disconnected ones included."""
        after = decode_cursor(cursor, is_id)
        rows = await runtime.db.read(store.list_channels, after_id=after, limit=limit + 1)
        return page([public_channel(r) for r in rows], limit, lambda item: int(item["id"]))

    @post("/", status_code=201)
    async def connect(
        self, data: JSONBody[ConnectChannel], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Connect a channel, or reconnect it with a new token (fields left out keep their values)."""
        token_enc = runtime.fields.encrypt(data.access_token, store.token_context(data.type, data.external_id))

        def connect(db: Database) -> dict[str, Any]:
            entitlements.check_channel_room(db, runtime.entitlements, data.type, data.external_id)
            return audited(
                db, actor_of(request), "channel.connect", "channel", store.connect_channel,
                target_of=lambda r: r["id"], details={"type": data.type, "external_id": data.external_id},
                channel_type=data.type,
                external_id=data.external_id,
                token_enc=token_enc,
                name=data.name,
                waba_id=data.waba_id,
                page_id=data.page_id,
                rate_limit=data.rate_limit,
                now=iso_now(),
            )

        row = await runtime.db.write(connect)
        runtime.wake_sender()
        return public_channel(row)

    @delete("/{channel_id:int}", status_code=200)
    async def disconnect(
        self, channel_id: Annotated[int, IdPath], request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """Erase the token at once and mark the channel disconnected; its conversations stay."""
        row = await runtime.db.write(
            audited, actor_of(request), "channel.disconnect", "channel", store.disconnect_channel, channel_id,
            iso_now(), target_of=lambda r: r["id"],
        )
        return public_channel(row)
