"""Data-subject rights over HTTP.

At the root (no API token; Meta and the person call these):

- ``POST /data-deletion``: Meta's data-deletion callback. ``signed_request`` (form field) is
  verified (403 forged, 400 malformed, 413 oversize), the request recorded, the person's
  contacts erased (at once, or after ``AAT_ERASURE_GRACE_DAYS``), and the answer is exactly
  ``{"url", "confirmation_code"}``. ``POST /deauthorize`` is the same handler for Meta's
  deauthorize callback (someone removed the app): recorded and erased the same way.
- ``GET /data-deletion/{code}``: the status page (HTML) Meta links people to.

Under ``/api/v1/contacts`` (agents and above): ``GET {id}/export`` (access, portability) and
``POST {id}/objection`` (unsubscribe and stop automation). Erasure is ``DELETE
/api/v1/contacts/{id}`` (appliance.contacts.routes), rectification ``PATCH`` there.

``GET /api/v1/workspace/export`` (owner): the whole workspace as one JSON document
(:mod:`appliance.privacy.json_export`), streamed; the same as ``aat-appliance export-json``.
"""

import asyncio
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

from litestar import Controller, Request, Response, get, post
from litestar.response import Stream
from litestar.exceptions import ClientException
from litestar.params import FromPath

from appliance import audit
from appliance.errors import BadRequest, PayloadTooLarge
from appliance.privacy import contact_export, deletion, json_export, service, status_page
from appliance.privacy.signed_request import verify
from appliance.team.auth import Principal, actor_of, requires
from appliance.timeutil import iso_now, utcnow
from appliance.web.api import IdPath, RuntimeDep

__all__ = ["deletion_callback", "deletion_status", "ContactRightsController", "export_workspace_json"]

MAX_CALLBACK_BYTES = 16 * 1024
_CODE = re.compile(r"^[A-Z0-9]{1,64}$")


def _signed_request_field(body: bytes) -> str:
    try:
        fields = parse_qs(body.decode("ascii"), strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("send a form-encoded body with one field, signed_request",
                         code="malformed_signed_request") from exc
    values = fields.get("signed_request") or []
    if len(values) != 1 or not values[0]:
        raise BadRequest("send a form-encoded body with one field, signed_request",
                         code="malformed_signed_request")
    return values[0]


@post(["/data-deletion", "/deauthorize"], request_max_body_size=MAX_CALLBACK_BYTES, status_code=200)
async def deletion_callback(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, str]:
    """Meta's data-deletion (and deauthorize) callback: ``{"url", "confirmation_code"}``."""
    try:
        body = await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            raise PayloadTooLarge("a signed request is a few hundred bytes; this body is too large") from exc
        raise
    checked = verify(_signed_request_field(body), runtime.settings.app_secrets())
    kind = "deauthorize" if request.url.path.rstrip("/").endswith("/deauthorize") else "data_deletion"
    row = await asyncio.to_thread(
        service.receive_deletion_request, runtime.db, checked, kind=kind,
        grace_days=runtime.settings.erasure_grace_days, now=utcnow(),
    )
    code = row["code"]
    return {"url": f"{runtime.settings.public_url}/data-deletion/{code}", "confirmation_code": code}


@get("/data-deletion/{code:str}", media_type="text/html", include_in_schema=True)
async def deletion_status(code: FromPath[str], runtime: RuntimeDep) -> Response[str]:
    """The human-readable status of a deletion request."""
    row = await runtime.db.read(deletion.get_by_code, code) if _CODE.match(code) else None
    if row is None:
        return Response(status_page.render_unknown(), status_code=404, media_type="text/html",
                        headers=status_page.HEADERS)
    business = await runtime.db.read(service.business_name)
    return Response(status_page.render(row, business), media_type="text/html", headers=status_page.HEADERS)


ContactId = Annotated[int, IdPath]


class ContactRightsController(Controller):
    path = "/contacts"
    guards = [requires("agent")]

    @get("/{contact_id:int}/export")
    async def export_contact(
        self, contact_id: ContactId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> Response[dict[str, Any]]:
        """Everything about the contact as one JSON document (access, portability)."""
        document = await runtime.db.read(contact_export.build, contact_id)
        await runtime.db.write(_audit_export, actor_of(request), contact_id)
        return Response(document, headers={
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.json"',
            "Cache-Control": "no-store",
        })

    @post("/{contact_id:int}/objection", status_code=200)
    async def object_to_processing(
        self, contact_id: ContactId, request: Request[Principal, Any, Any], runtime: RuntimeDep
    ) -> dict[str, Any]:
        """The contact objects: unsubscribe, end the active run, pause the bot, cancel queued
        bot messages. Returns the contact and what was stopped."""
        # contacts.routes imports this package (erasure), so its contact shape is imported here.
        from appliance.contacts.routes import public_contact

        result = await asyncio.to_thread(
            service.object_to_processing, runtime.db, contact_id, actor_of(request), iso_now()
        )
        return {**{k: v for k, v in result.items() if k != "contact"}, "contact": public_contact(result["contact"])}


def _audit_export(db: Any, actor: Any, contact_id: int) -> None:
    audit.record(db, actor, "contact.export", target_kind="contact", target_id=contact_id)


@get("/workspace/export", guards=[requires("owner")], media_type="application/json")
async def export_workspace_json(request: Request[Principal, Any, Any], runtime: RuntimeDep) -> Stream:
    """The whole workspace as one JSON document (portability): every table, secrets left out."""
    await runtime.db.write(audit.record, actor_of(request), "workspace.export_json")
    return Stream(json_export.stream(runtime.settings), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="workspace-{iso_now()[:10]}.json"',
        "Cache-Control": "no-store",
    })
