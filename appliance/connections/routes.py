"""``/api/v1/channels``: connect, list and disconnect Meta assets. Tokens are write-only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, delete, get, post
from litestar.params import JSONBody, PathParameter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from appliance.web.api import RuntimeDep
from appliance.connections import store
from appliance.team.auth import requires
from appliance.timeutil import iso_now

__all__ = ["ChannelController", "ConnectChannel"]

MetaId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class ConnectChannel(BaseModel):
    """Connect (or reconnect) a Page, an Instagram account or a WhatsApp number."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["messenger", "instagram", "whatsapp"]
    external_id: MetaId = Field(description="Page id, Instagram account id, or WhatsApp phone_number_id")
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=4096, strip_whitespace=True)]
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    waba_id: MetaId | None = Field(None, description="WhatsApp Business Account id (WhatsApp)")
    page_id: MetaId | None = Field(
        None, description="The Facebook Page an Instagram account is connected through (Facebook Login)"
    )
    rate_limit: int | None = Field(None, ge=1, le=1000, description="Sends per second; default per type")


def public_channel(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "id": str(row["id"])}


class ChannelController(Controller):
    path = "/channels"
    guards = [requires("admin")]

    @get("/")
    async def list_channels(self, runtime: RuntimeDep) -> dict[str, Any]:
        rows = await runtime.db.read(store.list_channels)
        return {"items": [public_channel(r) for r in rows], "next_cursor": None}

    @post("/", status_code=201)
    async def connect(self, data: JSONBody[ConnectChannel], runtime: RuntimeDep) -> dict[str, Any]:
        token_enc = runtime.fields.encrypt(data.access_token, store.token_context(data.type, data.external_id))
        row = await runtime.db.write(
            store.connect_channel,
            channel_type=data.type,
            external_id=data.external_id,
            token_enc=token_enc,
            name=data.name,
            waba_id=data.waba_id,
            page_id=data.page_id,
            rate_limit=data.rate_limit,
            now=iso_now(),
        )
        runtime.wake_sender()
        return public_channel(row)

    @delete("/{channel_id:int}", status_code=200)
    async def disconnect(self, channel_id: Annotated[int, PathParameter(ge=1)], runtime: RuntimeDep) -> dict[str, Any]:
        row = await runtime.db.write(store.disconnect_channel, channel_id, iso_now())
        return public_channel(row)
