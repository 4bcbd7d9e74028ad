"""``GET /api/v1/contacts/export.csv`` and ``POST /api/v1/contacts/import``: contacts as CSV
(the format and its rules: :mod:`appliance.contacts.csv_io`).

Both are admin actions (a whole address book leaves or enters the workspace) and both are
recorded in the audit log, with counts, never names.

The import takes the file as ``text/csv`` (the body) or ``multipart/form-data`` (field
``file``). ``?dry_run=true`` answers what would happen, row by row, with every error, and
writes nothing; without it the import is all or nothing: 200 with the counts, or 422
``invalid_import`` with a ``details`` entry per problem (``row 7.external_id``) and no change.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream
from sqlite_utils import Database

from appliance.audit import record
from appliance.contacts import csv_io, store
from appliance.contacts.routes import FieldQuery, SubscribedQuery, contact_filter
from appliance.errors import BadRequest
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now
from appliance.web.api import RuntimeDep

__all__ = ["ContactCsvController"]

EXPORT_BATCH = 1000


class ContactCsvController(Controller):
    path = "/contacts"
    guards = [requires("admin")]

    @get("/export.csv", media_type="text/csv")
    async def export_csv(
        self,
        request: Request[Principal, Any, Any],
        runtime: RuntimeDep,
        q: Annotated[str | None, QueryParameter(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
        tag: Annotated[str | None, QueryParameter(max_length=64)] = None,
        channel: FromQuery[Literal["messenger", "instagram", "whatsapp"] | None] = None,
        field: FieldQuery = None,
        subscribed: SubscribedQuery = None,
    ) -> Stream:
        """Every contact matching the filters of ``GET /api/v1/contacts``, newest first, as CSV
        (UTF-8 with a BOM, so spreadsheets read accents right); the import reads it back."""
        flt = contact_filter(q=q, tag=tag, channel=channel, field=field, subscribed=subscribed)
        actor = actor_of(request)
        filters = {k: v for k, v in {"q": bool(q), "tag": bool(tag), "channel": channel, "field": bool(field),
                                     "subscribed": subscribed}.items() if v}

        def start(db: Database) -> list[str]:
            record(db, actor, "contacts.export", target_kind="contact", details={"filters": filters})
            return csv_io.field_names(db)

        fields = await runtime.db.write(start)

        async def lines() -> AsyncIterator[str]:
            yield "\ufeff" + csv_io.export_header(fields)
            after = None
            while True:
                batch = await runtime.db.read(store.list_contacts, flt, after_id=after, limit=EXPORT_BATCH)
                yield "".join(csv_io.export_line(contact, fields) for contact in batch)
                if len(batch) < EXPORT_BATCH:
                    return
                after = batch[-1]["id"]

        name = f"contacts-{iso_now()[:10]}.csv"
        return Stream(lines(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

    @post("/import", status_code=200, request_max_body_size=csv_io.MAX_BYTES + 64 * 1024)
    async def import_csv(
        self,
        request: Request[Principal, Any, Any],
        runtime: RuntimeDep,
        dry_run: Annotated[bool, QueryParameter(description="preview only: nothing is written")] = False,
    ) -> dict[str, Any]:
        """Create or update contacts from a CSV file; see the module docstring."""
        data = await _file(request)
        parsed = await asyncio.to_thread(csv_io.parse, data)
        if dry_run:
            report = (await runtime.db.read(csv_io.plan, parsed)).report()
            return {"dry_run": True, **report}
        actor = actor_of(request)

        def run(db: Database) -> dict[str, int]:
            counts = csv_io.apply(db, parsed, iso_now())
            record(db, actor, "contacts.import", target_kind="contact", details=counts)
            return counts

        return {"dry_run": False, **await runtime.db.write(run)}


async def _file(request: Request[Any, Any, Any]) -> bytes:
    content_type, _ = request.content_type
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("send the CSV file in the form field `file`", code="missing_file")
        return await upload.read()
    if content_type in ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"):
        return await request.body()
    raise BadRequest("send the file as text/csv, or as multipart/form-data in the field `file`",
                     code="unsupported_media_type")
