"""The Live Chat inbox: ``/inbox`` and the fragments its script swaps in.

``/inbox?view=open|mine|unassigned|closed&channel=&conversation=`` renders the whole screen:
the conversation list, the open conversation (its newest :data:`THREAD_SIZE` messages with the
notes between them), the composer and the contact. The fragments are the same templates,
served alone, so the browser never builds markup from message content:

- ``/inbox/fragments/list``: the list (after a ``conversation.*`` event);
- ``/inbox/fragments/thread/{id}``: a conversation (opening one without reloading the page);
- ``/inbox/fragments/timeline/{id}?after_message=&after_note=`` (new items) or ``?before=``
  (earlier ones);
- ``/inbox/fragments/message/{id}``: one message again (after ``message.updated``);
- ``/inbox/fragments/header/{id}``, ``/inbox/fragments/contact/{id}``.

Every handler reads in one gateway call; none waits on Meta or an AI provider.
"""

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from markupsafe import Markup
from sqlite_utils import Database

from appliance.contacts import store as contacts
from appliance.errors import NotFound
from appliance.flows.timing import known_zone
from appliance.inbox import canned
from appliance.inbox import store as inbox
from appliance.store.rows import many, scalar
from appliance.timeutil import utcnow
from appliance.web.api import IdPath, decode_cursor, encode_cursor
from appliance.web.pages import store, views
from appliance.web.pages.common import layout, signed_in
from appliance.web.pages.session import page_context
from appliance.web.pages.timeline import timeline_html

__all__ = ["INBOX_PAGES", "THREAD_SIZE", "LIST_SIZE"]

THREAD_SIZE = 500
LIST_SIZE = 50

Id = Annotated[int, IdPath]
OptionalId = Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1, required=False)]


def workspace_zone(db: Database) -> ZoneInfo:
    name = scalar(db, "SELECT value FROM workspace_settings WHERE key = 'timezone'") or "UTC"
    return ZoneInfo(name if known_zone(name) else "UTC")


def _names(db: Database) -> dict[int, str]:
    """Every user's display name, for authors of messages, notes and assignments (disabled users
    included: their old messages keep their name)."""
    return {r["id"]: r["name"] or r["email"] for r in many(db, "SELECT id, email, name FROM users")}


def _view(value: str | None) -> str:
    return value if value in store.VIEWS else "open"


def _channel(value: str | None) -> str | None:
    return value if value in views.CHANNEL_NAMES else None


def _list_cursor(position: Any) -> bool:
    return isinstance(position, list) and len(position) == 2 and isinstance(position[0], str) \
        and isinstance(position[1], int)


def read_list(db: Database, *, user_id: int | None, view: str, channel: str | None, cursor: str | None,
              zone: ZoneInfo | None = None, names: dict[int, str] | None = None) -> dict[str, Any]:
    zone = zone or workspace_zone(db)
    names = names if names is not None else _names(db)
    before = decode_cursor(cursor, _list_cursor)
    rows = inbox.list_conversations(db, **store.view_filter(view, user_id), channel=channel,
                                    before=tuple(before) if before else None, limit=LIST_SIZE + 1)
    more = len(rows) > LIST_SIZE
    rows = rows[:LIST_SIZE]
    last = store.last_messages(db, [r["id"] for r in rows])
    items = [views.conversation_view(r, last.get(r["id"]), zone, names) for r in rows]
    next_cursor = encode_cursor([rows[-1]["last_message_at"] or "", rows[-1]["id"]]) if more and rows else None
    return {"conversations": items, "next_cursor": next_cursor,
            "counts": store.view_counts(db, user_id, channel)}


def _timeline(rows: list[dict[str, Any]], notes: list[dict[str, Any]], contact_name: str, zone: ZoneInfo,
              names: dict[int, str]) -> Markup:
    return timeline_html(rows, notes, contact_name=contact_name, names=names, zone=zone)


def _contact_view(contact: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    name = contact["name"] or (f"@{contact['username']}" if contact["username"] else None) \
        or f"{views.CHANNEL_NAMES[contact['channel']]} contact"
    return {**contact, "display_name": name, "last_inbound": views.local_time(contact["last_inbound_at"], zone)}


def read_thread(db: Database, conversation_id: int, *, before: int | None = None,
                zone: ZoneInfo | None = None, names: dict[int, str] | None = None) -> dict[str, Any]:
    """A conversation as the thread shows it; raises NotFound."""
    zone = zone or workspace_zone(db)
    names = names if names is not None else _names(db)
    row = inbox.get_conversation(db, conversation_id)
    contact = _contact_view(contacts.get_contact(db, row["contact_id"]), zone)
    rows = store.recent_messages(db, conversation_id, before_id=before, limit=THREAD_SIZE + 1)
    older = None
    if len(rows) > THREAD_SIZE:
        rows = rows[1:]
        older = rows[0]["id"]
    # Notes from the oldest message shown on (all of them when the whole thread is shown).
    since = rows[0]["created_at"] if older else None
    notes = store.notes_between(db, conversation_id, since)
    if before is not None and rows:
        notes = [n for n in notes if n["created_at"] < rows[-1]["created_at"]]
    conversation = views.conversation_view(row, None, zone, names)
    channel = one_channel(db, row["channel_id"])
    return {
        "conversation": conversation,
        "contact": contact,
        "timeline": _timeline(rows, notes, contact["display_name"], zone, names),
        "older": older,
        "users": [{"id": u["id"], "label": u["name"] or u["email"]} for u in store.active_users(db)],
        "canned": canned.list_replies(db),
        "channel_status": row["channel_status"],
        "last_inbound_at": row["last_inbound_at"],
        "waba_id": channel.get("waba_id"),
        "composer": views.composer_state(row["channel"], row["channel_status"], row["last_inbound_at"], utcnow()),
    }


def one_channel(db: Database, channel_id: int) -> dict[str, Any]:
    rows = many(db, "SELECT id, type, waba_id, status FROM channels WHERE id = ?", [channel_id])
    return rows[0] if rows else {}


def _thread_context(thread: dict[str, Any], principal: Any, view: str) -> dict[str, Any]:
    return {"thread": thread, "me": principal.user_id, "view": view}


@get("/", sync_to_thread=False, include_in_schema=False)
def home() -> Redirect:
    return Redirect("/inbox", status_code=303)


@get("/inbox", include_in_schema=False)
async def inbox_page(
    request: Request[Any, Any, Any],
    view: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
    channel: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
    conversation: OptionalId = None,
    before: OptionalId = None,
    cursor: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
) -> Template:
    principal = await signed_in(request)
    runtime = request.app.state.runtime
    view, channel = _view(view), _channel(channel)

    def read(db: Database) -> dict[str, Any]:
        zone, names = workspace_zone(db), _names(db)
        data = read_list(db, user_id=principal.user_id, view=view, channel=channel, cursor=cursor,
                         zone=zone, names=names)
        data["channel_types"] = store.channel_types(db)
        data["thread"], data["missing"] = None, False
        if conversation is not None:
            try:
                data["thread"] = read_thread(db, conversation, before=before, zone=zone, names=names)
            except NotFound:
                data["missing"] = True
        return data

    data = await runtime.db.read(read)
    context = await layout(request, principal, active="inbox")
    return Template("inbox/page.html", status_code=404 if data["missing"] else 200, context={
        **context, **data, "view": view, "channel": channel, "selected": conversation, "me": principal.user_id})


# --- fragments -----------------------------------------------------------------------------------

@get("/inbox/fragments/list", include_in_schema=False)
async def list_fragment(
    request: Request[Any, Any, Any],
    view: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
    channel: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
    conversation: OptionalId = None,
    cursor: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
) -> Template:
    principal = await signed_in(request)
    view, channel = _view(view), _channel(channel)
    data = await request.app.state.runtime.db.read(
        lambda db: read_list(db, user_id=principal.user_id, view=view, channel=channel, cursor=cursor))
    return Template("inbox/_list_fragment.html", context=page_context(
        request, **data, view=view, channel=channel, selected=conversation))


async def _thread_fragment(request: Request[Any, Any, Any], conversation_id: int, template: str,
                           view: str | None) -> Template:
    principal = await signed_in(request)
    try:
        thread = await request.app.state.runtime.db.read(read_thread, conversation_id)
    except NotFound:
        return Template("inbox/_gone.html", status_code=404, context=page_context(request))
    return Template(template, context=page_context(request, **_thread_context(thread, principal, _view(view))))


@get("/inbox/fragments/thread/{conversation_id:int}", include_in_schema=False)
async def thread_fragment(request: Request[Any, Any, Any], conversation_id: Id,
                          view: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None
                          ) -> Template:
    return await _thread_fragment(request, conversation_id, "inbox/_thread_fragment.html", view)


@get("/inbox/fragments/header/{conversation_id:int}", include_in_schema=False)
async def header_fragment(request: Request[Any, Any, Any], conversation_id: Id,
                          view: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None
                          ) -> Template:
    return await _thread_fragment(request, conversation_id, "inbox/_header.html", view)


@get("/inbox/fragments/contact/{conversation_id:int}", include_in_schema=False)
async def contact_fragment(request: Request[Any, Any, Any], conversation_id: Id) -> Template:
    return await _thread_fragment(request, conversation_id, "inbox/_contact.html", None)


@get("/inbox/fragments/timeline/{conversation_id:int}", include_in_schema=False)
async def timeline_fragment(
    request: Request[Any, Any, Any], conversation_id: Id,
    after_message: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1, required=False)] = None,
    after_note: Annotated[int | None, QueryParameter(ge=0, le=2**63 - 1, required=False)] = None,
    before: OptionalId = None,
) -> Template:
    """New items (``after_message``/``after_note``: the newest ids the page shows) or the page of
    older ones (``before``: the oldest message id it shows)."""
    await signed_in(request)

    def read(db: Database) -> dict[str, Any]:
        zone, names = workspace_zone(db), _names(db)
        row = inbox.get_conversation(db, conversation_id)
        contact = _contact_view(contacts.get_contact(db, row["contact_id"]), zone)
        if before is not None:
            thread = read_thread(db, conversation_id, before=before, zone=zone, names=names)
            return {"timeline": thread["timeline"], "older": thread["older"]}
        rows = store.messages_after(db, conversation_id, after_message or 0)
        notes = store.notes_after(db, conversation_id, after_note or 0)
        return {"timeline": _timeline(rows, notes, contact["display_name"], zone, names), "older": None}

    try:
        data = await request.app.state.runtime.db.read(read)
    except NotFound:
        return Template("inbox/_gone.html", status_code=404, context=page_context(request))
    return Template("inbox/_timeline.html", context=page_context(request, **data))


@get("/inbox/fragments/message/{message_id:int}", include_in_schema=False)
async def message_fragment(request: Request[Any, Any, Any], message_id: Id) -> Template:
    await signed_in(request)

    def read(db: Database) -> dict[str, Any]:
        row = inbox.get_message(db, message_id)
        conversation = inbox.get_conversation(db, row["conversation_id"])
        name = conversation["contact_name"] or conversation["contact_username"] or "Contact"
        return views.message_view(row, contact_name=name, users=_names(db), zone=workspace_zone(db))

    try:
        message = await request.app.state.runtime.db.read(read)
    except NotFound:
        return Template("inbox/_gone.html", status_code=404, context=page_context(request))
    return Template("inbox/_one_message.html", context=page_context(request, m=message))


INBOX_PAGES = [home, inbox_page, list_fragment, thread_fragment, header_fragment, contact_fragment,
               timeline_fragment, message_fragment]
