"""The one place errors become HTTP responses: ``{"error": {"code", "message", "details"}}``.

Our :class:`~appliance.errors.AatError` family maps by its ``status_code``; Litestar's own
exceptions (body and parameter validation, unknown route, wrong method, auth) are reshaped to
the same body: a body that is empty or not JSON is 400 ``invalid_json``, one that does not
match the schema 422 ``invalid_request`` with a ``details`` entry per problem, located by its
dotted path (``template.name``); a body that is not UTF-8 or is nested too deeply for the
decoder is 400 ``invalid_json`` too. Anything else is a 500 ``internal_error`` that is logged
by type and stack only; a 401 always carries ``WWW-Authenticate: Bearer``; our errors carry
the headers they name (:meth:`~appliance.errors.AatError.headers`: ``Retry-After`` ...).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)

from appliance.errors import AatError, Detail, error_body

__all__ = ["exception_handlers"]

log = logging.getLogger("aat.web")

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_request", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}

# How Litestar reports a body that is missing altogether: the KeyError of its ``data`` kwarg.
_NO_BODY = {"key": "data", "message": "'data'"}
# pydantic prefixes the message of a ``ValueError`` raised in a validator with this.
_VALUE_ERROR = "Value error, "


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _aat_error(_: Request[Any, Any, Any], exc: AatError) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("request failed", extra={"code": exc.code, "cause": type(exc.__cause__).__name__})
    return _json(exc.status_code, exc.to_body(), exc.headers())


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    details = []
    for item in exc.extra or []:
        if not isinstance(item, dict):
            continue
        if all(item.get(k) == v for k, v in _NO_BODY.items()):
            return _json(400, error_body("invalid_json", "the request body is empty: send a JSON object"))
        key = str(item.get("key") or item.get("source") or "body")
        message = str(item.get("message") or "invalid value").removeprefix(_VALUE_ERROR)
        details.append(Detail(key, message))
    if not details:
        # Litestar reports a body that is not JSON as a bare 400 with no field errors.
        return _json(400, error_body("invalid_json", "the request body is not valid JSON"))
    return _json(
        422, error_body("invalid_request", "the request does not match the expected schema; see details",
                        details)
    )


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc.__cause__, SerializationException):
        # msgspec's message locates the problem ("invalid character (byte 5)") without quoting it.
        return _json(400, error_body("invalid_json", f"the request body is not valid JSON: {exc.detail}"))
    if isinstance(exc, NotAuthorizedException):
        specific = exc.detail and exc.detail != HTTPStatus.UNAUTHORIZED.phrase
        message = exc.detail if specific else "missing or invalid credentials: send `Authorization: Bearer <token>`"
    elif isinstance(exc, PermissionDeniedException):
        message = exc.detail or "your role does not allow this"
    elif status == 404:
        message = "no such resource or route"
    elif status == 405:
        message = "this method is not allowed on this path"
    elif status == 413:
        message = "the request body is too large"
    elif status >= 500:
        log.error("request failed", extra={"status": status, "error": type(exc).__name__})
        message = "internal error; it has been logged"
    else:
        message = exc.detail
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    code = exc.extra.get("code") if isinstance(exc.extra, dict) else None
    return _json(status, error_body(code or _CODES.get(status, "error"), message), headers)


def _undecodable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # msgspec raises these, not a DecodeError, for a JSON string that is not UTF-8 and for
    # nesting deeper than its recursion limit; only a request body gets decoded that way.
    problem = "is not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "is nested too deeply"
    return _json(400, error_body("invalid_json", f"the request body is not valid JSON: it {problem}"))


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error", exc_info=exc)
    return _json(500, error_body("internal_error", "internal error; it has been logged"))


exception_handlers: dict[Any, Any] = {
    AatError: _aat_error,
    ValidationException: _validation,
    HTTPException: _http,
    UnicodeDecodeError: _undecodable,
    RecursionError: _undecodable,
    Exception: _unexpected,
}
