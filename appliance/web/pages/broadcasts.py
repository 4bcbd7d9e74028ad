"""Broadcasts (admins and owners): ``/broadcasts`` (the list with live progress, pause, resume,
cancel, syncing the WhatsApp template catalogue) and ``/broadcasts/new`` (the audience builder
with its live recipient count, the message, the schedule).

The pages render from the stores; everything that changes something goes through
``/api/v1/broadcasts`` and ``/api/v1/templates`` from ``broadcasts.js``, so the API's
validation is the only one (a broadcast the API refuses shows the API's message and paths).
Progress is read again from ``GET /api/v1/broadcasts`` while something is sending or
scheduled (broadcasts emit no live events: a 100,000-recipient broadcast would flood the
event stream).
"""

import json
from typing import Any
from zoneinfo import available_timezones

from litestar import Request, get
from litestar.response import Template
from sqlite_utils import Database

from appliance.broadcasts import catalogue
from appliance.broadcasts import store as broadcasts
from appliance.flows import store as flows
from appliance.flows.models import PostbackTrigger
from appliance.store.rows import many, scalar
from appliance.web.pages import views
from appliance.web.pages.common import layout, signed_in
from appliance.web.pages.inbox import workspace_zone

__all__ = ["BROADCAST_PAGES", "broadcast_view", "LIST_SIZE", "ACTIVE"]

LIST_SIZE = 100
ACTIVE = ("scheduled", "sending")
STATUS_LABELS = {"draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "paused": "Paused",
                 "completed": "Completed", "cancelled": "Cancelled"}
STATUS_CHIPS = {"sending": "chip-ok", "scheduled": "chip-note", "paused": "chip-warn", "cancelled": "chip-danger"}
REASON_LABELS = {"no_channel": "no channel", "unsubscribed": "unsubscribed", "marketing_opt_out": "marketing opt-out",
                 "outside_window": "outside the 24-hour window", "cancelled": "cancelled"}


def broadcast_view(item: dict[str, Any], zone: Any) -> dict[str, Any]:
    """A broadcast as the list shows it: ``item`` is the API shape (``store.public``).

    ``done`` counts the recipients decided (sent, failed or skipped) out of ``total``; while
    the audience is still being materialised the total is not known yet (``percent`` None)."""
    counts = item["counts"]
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    known = item["progress"]["audience_complete"] or item["status"] in ("completed", "cancelled")
    percent = round(100 * done / counts["total"]) if known and counts["total"] else (100 if known else None)
    message = item["message"]
    template = message.get("template")
    return {
        **item, "done": done, "percent": percent,
        "status_label": STATUS_LABELS[item["status"]], "status_chip": STATUS_CHIPS.get(item["status"], ""),
        "kind": f"Template {template['name']} ({template['language']})" if template else "Text",
        "preview": (message.get("text") or "")[:120],
        "reasons": [(REASON_LABELS.get(k, k), v) for k, v in sorted(item["skipped_reasons"].items())],
        "send_at_local": views.local_time(item["send_at"], zone),
        "created_local": views.local_time(item["created_at"], zone),
        "can_start": item["status"] in ("draft", "paused"), "can_pause": item["status"] in ACTIVE,
        "can_cancel": item["status"] not in ("completed", "cancelled"),
    }


@get("/broadcasts", include_in_schema=False)
async def broadcasts_page(request: Request[Any, Any, Any]) -> Template:
    principal = await signed_in(request, "admin")

    def read(db: Database) -> dict[str, Any]:
        zone = workspace_zone(db)
        rows = broadcasts.list_broadcasts(db, before_id=None, limit=LIST_SIZE)
        return {
            "rows": [broadcast_view(broadcasts.public(r), zone) for r in rows],
            "templates": scalar(db, "SELECT count(*) FROM whatsapp_templates WHERE status = ?", [catalogue.SENDABLE]),
            "has_whatsapp": bool(catalogue.accounts(db)),
        }

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="broadcasts")
    live = any(r["status"] in ACTIVE for r in data["rows"])
    return Template("broadcasts/list.html", context={**context, **data, "live": live})


_ZONES: list[str] = []


def _zones() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(available_timezones()))
    return _ZONES


def _button_flows(db: Database) -> list[dict[str, Any]]:
    """Published flows a button can start (those with a ``postback`` trigger)."""
    names = {r["id"]: r["name"] for r in many(db, "SELECT id, name FROM flows WHERE deleted_at IS NULL")}
    return [{"id": str(flow_id), "name": names.get(flow_id) or f"Flow {flow_id}"}
            for flow_id, _, document in flows.published_candidates(db)
            if any(isinstance(t, PostbackTrigger) for t in document.triggers)]


@get("/broadcasts/new", include_in_schema=False)
async def new_broadcast_page(request: Request[Any, Any, Any]) -> Template:
    principal = await signed_in(request, "admin")

    def read(db: Database) -> dict[str, Any]:
        templates = catalogue.list_templates(db, status=catalogue.SENDABLE)
        return {
            "all_tags": [r["tag"] for r in many(db, "SELECT DISTINCT tag FROM contact_tags ORDER BY tag LIMIT 500")],
            "field_names": [r["key"] for r in many(db, """
                SELECT DISTINCT j.key FROM (SELECT fields FROM contacts ORDER BY id DESC LIMIT 2000) c,
                json_each(c.fields) j ORDER BY j.key LIMIT 200""")],
            "channel_types": [r["type"] for r in many(db, "SELECT DISTINCT type FROM channels ORDER BY type")],
            "flows": _button_flows(db),
            "templates": [{**t, "components_json": json.dumps(t["components"], ensure_ascii=False)} for t in templates],
            "workspace_zone": workspace_zone(db).key,
        }

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="broadcasts")
    return Template("broadcasts/new.html", context={**context, **data, "zones": _zones()})


BROADCAST_PAGES = [broadcasts_page, new_broadcast_page]
