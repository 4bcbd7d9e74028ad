"""``GET /api/v1/audit``: the audit log, newest first (admins)."""

from typing import Annotated, Any

from litestar import get

from appliance.audit import store
from appliance.team.auth import requires
from appliance.web.api import Cursor, Limit, RuntimeDep, decode_cursor, is_id, page

__all__ = ["list_audit"]


@get("/audit", guards=[requires("admin")])
async def list_audit(
    runtime: RuntimeDep, limit: Annotated[int, Limit] = 50, cursor: Annotated[str | None, Cursor] = None
) -> dict[str, Any]:
    before = decode_cursor(cursor, is_id)
    rows = await runtime.db.read(store.list_entries, before_id=before, limit=limit + 1)
    return page(rows, limit, lambda item: int(item["id"]))
