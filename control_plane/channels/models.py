"""Request schemas of channel onboarding (``/admin/api/tenants/{id}/channels`` and the flows)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["ConnectChannel", "FacebookLogin", "WhatsAppSignup", "MetaId"]

MetaId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class ConnectChannel(BaseModel):
    """The appliance's ``POST /api/v1/channels`` body: what onboarding ends in."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["messenger", "instagram", "whatsapp"]
    external_id: MetaId = Field(description="Page id, Instagram account id, or WhatsApp phone_number_id")
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=4096, strip_whitespace=True)]
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    waba_id: MetaId | None = None
    page_id: MetaId | None = None

    @model_validator(mode="after")
    def _fits_type(self) -> ConnectChannel:
        if self.waba_id is not None and self.type != "whatsapp":
            raise ValueError("waba_id belongs to WhatsApp channels only")
        if self.page_id is not None and self.type != "instagram":
            raise ValueError("page_id belongs to Instagram channels only")
        return self


class FacebookLogin(BaseModel):
    """The ``code`` Facebook Login for Business returned (server-side exchange, §9)."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    redirect_uri: Annotated[str, StringConstraints(max_length=2048)] | None = None


class WhatsAppSignup(BaseModel):
    """Embedded Signup's FINISH session info plus its ``code`` (30 s to live: exchanged first)."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    waba_id: MetaId
    phone_number_id: MetaId
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] | None = Field(
        None, description="Two-step verification PIN for /register; leave out for coexistence numbers")
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
