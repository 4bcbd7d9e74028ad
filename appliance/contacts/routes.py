"""``/api/v1/contacts``: list, read, rectify, erase, tag."""

import asyncio
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from appliance.contacts import store
from appliance.contacts.store import ContactFilter
from appliance.privacy import service as privacy_service
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now
from appliance.web.api import Cursor, IdPath, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["ContactController", "public_contact", "contact_filter", "FieldQuery", "SubscribedQuery"]

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True,
                                       pattern=r"^[^\x00-\x1f/]+$")]
# Profile values are one line of text: no control characters (NUL, newlines, ...).
ShortText = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
FieldValue = Annotated[str, StringConstraints(max_length=2000)] | int | float | bool | None


class ContactChanges(BaseModel):
    """Rectification: only the fields given change. A null profile value (``name``, ``phone``,
    ...) clears it; a ``name`` alone also sets ``first_name``/``last_name`` from it; in
    ``fields`` a null value removes that field; ``fields`` and ``subscribed`` themselves
    cannot be null."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request

    name: ShortText | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    fields: dict[FieldName, FieldValue] | None = Field(None, max_length=200)
    subscribed: bool | None = None

    @field_validator("subscribed", mode="before")
    @classmethod
    def _a_json_boolean(cls, value: Any) -> Any:
        # Litestar validates in lax mode, which would read "no" or 0 as false.
        if value is not None and not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    @field_validator("fields", "subscribed")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values the client sent: leaving the key out is how to change nothing.
        if value is None:
            raise ValueError("must not be null; leave the key out to keep the current value")
        return value


class NewTag(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its first request
    tag: Tag


def public_contact(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "channel": row["channel"],
        "channel_id": str(row["channel_id"]),
        "external_id": row["external_id"],
        "name": row["name"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "username": row["username"],
        "phone": row["phone"],
        "wa_id": row["wa_id"],
        "bsuid": row["bsuid"],
        "tags": row["tags"],
        "fields": row["fields"],
        "subscribed": row["subscribed"],
        "marketing_opt_out": row["marketing_opt_out"],
        "last_inbound_at": row["last_inbound_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


ContactId = Annotated[int, IdPath]

FieldQuery = Annotated[str | None, QueryParameter(
    max_length=2100, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}(:[^\x00-\x1f\x7f]{0,2000})?$",
    description="`name:value`: the custom field equals the value (as text: `plan:pro`, `age:30`, `vip:true`); "
                "`name` alone: the contact has the field")]
SubscribedQuery = Annotated[Literal["true", "false"] | None, QueryParameter(
    description="`true`: subscribed contacts only; `false`: unsubscribed ones only")]


def contact_filter(*, q: str | None = None, tag: str | None = None, channel: str | None = None,
                   field: str | None = None, subscribed: str | None = None) -> ContactFilter:
    """The filter of ``GET /api/v1/contacts`` (and the CSV export) from its query values."""
    field_filter = None
    if field:
        name, colon, value = field.partition(":")
        field_filter = (name, value if colon else None)
    return ContactFilter(q=q, tag=tag, channel=channel, field=field_filter,
                         subscribed=None if subscribed is None else subscribed == "true")


class ContactController(Controller):
    path = "/contacts"
    guards = [requires("agent")]

    @get("/")
    async def list_contacts(
        self,
        runtime: RuntimeDep,
        q: Annotated[str | None, QueryParameter(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                                                description="part of a name, username, phone or id")] = None,
        tag: Annotated[str | None, QueryParameter(max_length=64)] = None,
        channel: FromQuery[Literal["messenger", "instagram", "whatsapp"] | None] = None,
        field: FieldQuery = None,
        subscribed: SubscribedQuery = None,
        limit: Annotated[int, Limit] = 50,
        cursor: Annotated[str | None, Cursor] = None,
    ) -> dict[str, Any]:
        after = decode_cursor(cursor, is_id)
        flt = contact_filter(q=q, tag=tag, channel=channel, field=field, subscribed=subscribed)
        rows = await runtime.db.read(store.list_contacts, flt, after_id=after, limit=limit + 1)
        return page([public_contact(r) for r in rows], limit, lambda item: int(item["id"]))

    @get("/{contact_id:int}")
    async def get_contact(self, contact_id: ContactId, runtime: RuntimeDep) -> dict[str, Any]:
        return public_contact(await runtime.db.read(store.get_contact, contact_id))

    @patch("/{contact_id:int}")
    async def update_contact(self, contact_id: ContactId, data: JSONBody[ContactChanges], runtime: RuntimeDep) -> dict[str, Any]:
        changes = data.model_dump(exclude_unset=True)
        row = await runtime.db.write(store.update_contact, contact_id, changes, iso_now())
        return public_contact(row)

    @delete("/{contact_id:int}", status_code=204)
    async def erase_contact(
        self, contact_id: ContactId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> None:
        """GDPR erasure: the contact and everything tied to it (appliance.privacy.erasure). The
        audit log records that an erasure happened, not whom it erased."""
        await asyncio.to_thread(privacy_service.erase_contact, runtime.db, contact_id, actor_of(request))

    @post("/{contact_id:int}/tags", status_code=200)
    async def add_tag(self, contact_id: ContactId, data: JSONBody[NewTag], runtime: RuntimeDep) -> dict[str, Any]:
        await runtime.db.write(store.add_tag, contact_id, data.tag, iso_now())
        return public_contact(await runtime.db.read(store.get_contact, contact_id))

    @delete("/{contact_id:int}/tags/{tag:str}", status_code=200)
    async def remove_tag(self, contact_id: ContactId, tag: FromPath[str], runtime: RuntimeDep) -> dict[str, Any]:
        await runtime.db.write(store.remove_tag, contact_id, tag)
        return public_contact(await runtime.db.read(store.get_contact, contact_id))
