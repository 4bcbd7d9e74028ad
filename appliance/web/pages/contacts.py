"""Contacts: ``/contacts`` (search, filters, CSV import and export) and ``/contacts/{id}`` (the
profile: tags, fields, subscription, the conversation, GDPR export and erasure).

The pages render from the stores; changes go through the JSON API from ``contacts.js``
(``PATCH``, tags, ``DELETE``, the import), so the API's validation is the only one.
"""

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlite_utils import Database

from appliance.contacts import store as contacts
from appliance.contacts.routes import contact_filter
from appliance.errors import NotFound
from appliance.store.rows import many, scalar
from appliance.web.api import IdPath, decode_cursor, encode_cursor, is_id
from appliance.web.pages import views
from appliance.web.pages.common import layout, not_found_page, signed_in
from appliance.web.pages.inbox import workspace_zone

__all__ = ["CONTACT_PAGES", "PAGE_SIZE"]

PAGE_SIZE = 50
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")

Query = Annotated[str | None, QueryParameter(required=False, max_length=200)]


def _clean(value: str | None, limit: int = 200) -> str | None:
    """A filter value from the query string, or ``None`` when empty or unusable (pages never
    answer 400 to a hand-edited URL; they ignore what they cannot use)."""
    if value is None:
        return None
    value = value.strip()[:limit]
    return value if value and _TEXT.match(value) else None


def _filters(q: str | None, tag: str | None, channel: str | None, field: str | None, value: str | None,
             subscribed: str | None) -> dict[str, Any]:
    field = _clean(field, 64)
    if field is not None and not _FIELD_NAME.match(field):
        field = None
    return {
        "q": _clean(q), "tag": _clean(tag, 64), "channel": channel if channel in views.CHANNEL_NAMES else None,
        "field": field, "value": _clean(value, 2000) if field else None,
        "subscribed": subscribed if subscribed in ("true", "false") else None,
    }


def _query_string(filters: dict[str, Any]) -> str:
    """The filters as the API's query (``field=name:value``), for the export link."""
    params = {k: v for k, v in filters.items() if v is not None and k not in ("field", "value")}
    if filters["field"]:
        params["field"] = filters["field"] + (f":{filters['value']}" if filters["value"] is not None else "")
    return urlencode(params)


def _row_view(row: dict[str, Any], zone: Any) -> dict[str, Any]:
    name = row["name"] or (f"@{row['username']}" if row["username"] else None) \
        or f"{views.CHANNEL_NAMES[row['channel']]} contact {row['external_id']}"
    return {**row, "display_name": name, "last_inbound": views.local_time(row["last_inbound_at"], zone),
            "created": views.local_time(row["created_at"], zone)}


@get("/contacts", include_in_schema=False)
async def contacts_page(
    request: Request[Any, Any, Any], q: Query = None, tag: Query = None, channel: Query = None,
    field: Query = None, value: Annotated[str | None, QueryParameter(required=False, max_length=2000)] = None,
    subscribed: Query = None, cursor: Query = None, erased: Query = None,
) -> Template:
    principal = await signed_in(request)
    filters = _filters(q, tag, channel, field, value, subscribed)
    try:
        after = decode_cursor(cursor, is_id)
    except Exception:  # noqa: BLE001 - a stale or edited cursor: start from the first page
        after = None
    api_field = None
    if filters["field"]:
        api_field = filters["field"] + (f":{filters['value']}" if filters["value"] is not None else "")
    flt = contact_filter(q=filters["q"], tag=filters["tag"], channel=filters["channel"], field=api_field,
                         subscribed=filters["subscribed"])

    def read(db: Database) -> dict[str, Any]:
        zone = workspace_zone(db)
        rows = contacts.list_contacts(db, flt, after_id=after, limit=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return {
            "rows": [_row_view(r, zone) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None,
            "all_tags": [r["tag"] for r in many(db, "SELECT DISTINCT tag FROM contact_tags ORDER BY tag LIMIT 500")],
            "channel_types": [r["type"] for r in many(db, "SELECT DISTINCT type FROM channels ORDER BY type")],
            "field_names": [r["key"] for r in many(db, """
                SELECT DISTINCT j.key FROM (SELECT fields FROM contacts ORDER BY id DESC LIMIT 2000) c,
                json_each(c.fields) j ORDER BY j.key LIMIT 200""")],
        }

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="contacts")
    query = _query_string(filters)
    return Template("contacts/list.html", context={
        **context, **data, "filters": filters, "query": query, "paged": after is not None,
        "filtered": any(v is not None for v in filters.values()),
        "request_notice": "The contact was erased, with everything tied to them." if erased == "1" else None})


@get("/contacts/{contact_id:int}", include_in_schema=False)
async def contact_page(
    request: Request[Any, Any, Any], contact_id: Annotated[int, IdPath], objected: Query = None
) -> Template:
    principal = await signed_in(request)

    def read(db: Database) -> dict[str, Any] | None:
        zone = workspace_zone(db)
        try:
            row = contacts.get_contact(db, contact_id)
        except NotFound:
            return None
        conversation = scalar(db, "SELECT id FROM conversations WHERE contact_id = ?", [contact_id])
        return {"contact": _row_view(row, zone), "conversation_id": conversation,
                "all_tags": [r["tag"] for r in many(db, "SELECT DISTINCT tag FROM contact_tags ORDER BY tag LIMIT 500")]}

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="contacts")
    if data is None:
        return not_found_page(context, "contact")
    notice = ("Objection recorded: unsubscribed, automation ended and the bot paused for this contact."
              if objected == "1" else None)
    return Template("contacts/profile.html", context={**context, **data, "request_notice": notice})


CONTACT_PAGES = [contacts_page, contact_page]
