"""Flows: ``/flows`` (the list: status, versions, triggers; create and import) and the builder,
``/flows/new`` and ``/flows/{id}`` (admin and above, like the flows API).

The builder page is a shell: ``flow_editor.js`` loads the document from ``GET /api/v1/flows/{id}``
and saves, publishes, previews and reads stats through the same API, so the API's validation
is the only one and its ``{path, message}`` errors are what the canvas shows on the nodes. The
page itself renders what the script cannot know cheaply: the published versions (for the
history panel) and the names of the other flows (for ``goto_flow``).
"""

from typing import Annotated, Any

from litestar import Request, get
from litestar.response import Template
from sqlite_utils import Database

from appliance.errors import NotFound
from appliance.flows import analytics
from appliance.flows import store as flows
from appliance.web.api import IdPath
from appliance.web.pages import views
from appliance.web.pages.common import layout, not_found_page, signed_in
from appliance.web.pages.inbox import workspace_zone

__all__ = ["FLOW_PAGES", "trigger_summary"]

_TRIGGER_NAMES = {
    "keyword": "Keyword", "comment": "Comment", "story_reply": "Story reply", "story_mention": "Story mention",
    "ref": "Link (ref)", "postback": "Menu / ice breaker", "welcome": "Welcome", "default": "Default reply",
}


def trigger_summary(trigger: dict[str, Any]) -> str:
    """One line for a trigger: ``Keyword: price, pricing``."""
    kind = str(trigger.get("type", ""))
    name = _TRIGGER_NAMES.get(kind, kind)
    detail: list[str] = []
    if trigger.get("keywords"):
        detail.append(", ".join(str(k) for k in trigger["keywords"][:5]) + ("…" if len(trigger["keywords"]) > 5 else ""))
    for key in ("ref", "payload"):
        if trigger.get(key):
            detail.append(str(trigger[key]))
    if trigger.get("channels"):
        detail.append("on " + ", ".join(views.CHANNEL_NAMES.get(c, c) for c in trigger["channels"]))
    return f"{name}: {' · '.join(detail)}" if detail else name


def _row_view(row: dict[str, Any], zone: Any) -> dict[str, Any]:
    document = row["document"]
    return {
        "id": row["id"], "name": row["name"], "status": row["status"], "version": row["version"],
        "changed": row["has_unpublished_changes"] and row["status"] == "published",
        "steps": len(document.get("steps", {})),
        "triggers": [trigger_summary(t) for t in document.get("triggers", [])],
        "updated": views.local_time(row["updated_at"], zone),
    }


@get("/flows", include_in_schema=False)
async def flows_page(request: Request[Any, Any, Any]) -> Template:
    principal = await signed_in(request, "admin")

    def read(db: Database) -> dict[str, Any]:
        zone = workspace_zone(db)
        return {"rows": [_row_view(r, zone) for r in flows.list_flows(db, after_id=None, limit=500)]}

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="flows")
    return Template("flows/list.html", context={**context, **data})


async def _editor(request: Request[Any, Any, Any], flow_id: int | None) -> Template:
    principal = await signed_in(request, "admin")

    def read(db: Database) -> dict[str, Any] | None:
        zone = workspace_zone(db)
        name = "New flow"
        versions: list[dict[str, Any]] = []
        if flow_id is not None:
            try:
                name = flows.get_flow(db, flow_id)["name"]
            except NotFound:
                return None
            versions = [{**v, "when": views.local_time(v["published_at"], zone)}
                        for v in analytics.flow_versions(db, flow_id)]
        return {"flow_name": name, "versions": versions, "flow_names": analytics.flow_names(db)}

    data = await request.app.state.runtime.db.read(read)
    context = await layout(request, principal, active="flows")
    if data is None:
        return not_found_page(context, "flow")
    return Template("flows/editor.html", context={**context, **data, "flow_id": flow_id})


@get("/flows/new", include_in_schema=False)
async def new_flow_page(request: Request[Any, Any, Any]) -> Template:
    return await _editor(request, None)


@get("/flows/{flow_id:int}", include_in_schema=False)
async def flow_page(request: Request[Any, Any, Any], flow_id: Annotated[int, IdPath]) -> Template:
    return await _editor(request, flow_id)


FLOW_PAGES = [flows_page, new_flow_page, flow_page]
