"""HTTP plumbing of the control plane: the runtime dependency, admin authentication, list
pages, and the one place errors become responses.

Errors are the appliance's hierarchy (``appliance.errors``: one family for both programs) and
render the same body, ``{"error": {"code", "message", "details"}}`` (docs/spec/api.md). This
module does not import the appliance's web package: the control plane shares its store, keys,
audit and errors, not its HTTP layer.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from litestar import MediaType, Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter

from appliance import audit
from appliance.errors import AatError, BadRequest, Detail, Unauthorized, error_body
from control_plane.admin import tokens

if TYPE_CHECKING:
    from control_plane.runtime import ControlPlane

__all__ = [
    "cp_dep", "CpDep", "admin_guard", "actor_of", "exception_handlers", "page", "decode_cursor", "Limit", "Cursor",
]

log = logging.getLogger("aat.cp.web")


def cp_dep(state: State) -> ControlPlane:
    return state.cp


CpDep = NamedDependency["ControlPlane"]
Limit = QueryParameter(name="limit", ge=1, le=500, description="Page size (default 50, max 500).")
Cursor = QueryParameter(name="cursor", description="next_cursor of the previous page.")


def page(items: list[dict[str, Any]], limit: int, position: Any) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    cursor = None
    if more and items:
        cursor = base64.urlsafe_b64encode(json.dumps(position(items[-1])).encode()).decode().rstrip("=")
    return {"items": items, "next_cursor": cursor}


def decode_cursor(cursor: str | None, kind: type) -> Any:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest("the cursor is not one this API returned; start again without it", code="invalid_cursor")
    return value


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """``Authorization: Bearer <admin token>`` (``aat-control-plane admin-token create``), else 401."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an admin token: `Authorization: Bearer <token>` (aat-control-plane admin-token create)")
    cp: ControlPlane = connection.app.state.cp
    row = await cp.store.gateway.read(tokens.find, tokens.hash_token(token.strip()))
    if row is None:
        raise Unauthorized("the admin token is unknown or revoked")
    client = connection.client.host if connection.client else None
    connection.scope["aat_actor"] = audit.Actor("admin", id=str(row["id"]), label=row["name"], ip=client)


def actor_of(request: Request[Any, Any, Any]) -> audit.Actor:
    return request.scope["aat_actor"]  # type: ignore[typeddict-item]


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _aat_error(_: Request[Any, Any, Any], exc: AatError) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("request failed", extra={"code": exc.code, "cause": type(exc.__cause__).__name__})
    return _json(exc.status_code, exc.to_body(), exc.headers())


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    details = [Detail(str(i.get("key") or i.get("source") or "body"),
                      str(i.get("message") or "invalid value").removeprefix("Value error, "))
               for i in exc.extra or [] if isinstance(i, dict)]
    if not details:
        return _json(400, error_body("invalid_json", "the request body is not valid JSON"))
    return _json(422, error_body("invalid_request", "the request does not match the expected schema; see details",
                                 details))


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 401: "unauthorized"}
    message = {404: "no such resource or route", 405: "this method is not allowed on this path",
               413: "the request body is too large"}.get(status, exc.detail)
    if status >= 500:
        log.error("request failed", extra={"status": status, "error": type(exc).__name__})
        message = "internal error; it has been logged"
    return _json(status, error_body(codes.get(status, "bad_request" if status < 500 else "internal_error"), message))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error", exc_info=exc)
    return _json(500, error_body("internal_error", "internal error; it has been logged"))


exception_handlers: dict[Any, Any] = {
    AatError: _aat_error, ValidationException: _validation, HTTPException: _http, Exception: _unexpected,
}
