"""``/webhooks/meta`` of the platform app, and its data-deletion callback.

POST order of work: raw bytes (413 over 1 MiB) -> ``X-Hub-Signature-256`` with the platform
app secret on those exact bytes (403, nothing stored) -> split by asset (400 when it is not a
delivery) -> journal per tenant, durably -> 200. Nothing here waits for a tenant.

``/webhooks/meta`` is one raw ASGI route (Litestar's ``@asgi``), as the appliance's: it is the
router's hottest path and Litestar's per-request work for a regular handler (``Request`` and
``Response`` objects, signature model, body caching) cost more CPU than verifying and splitting
a delivery. The app's exception handlers still apply, so refusals are the same JSON errors.
Methods: GET the handshake, POST a delivery, OPTIONS 204, anything else 405 with
``Allow: GET, OPTIONS, POST``. The route is not listed in ``/schema`` (raw ASGI routes are not).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import asgi, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    ClientException,
    InternalServerException,
    MethodNotAllowedException,
)
from litestar.params import PathParameter, URLEncodedBody
from litestar.types import Receive, Scope, Send

from appliance.channels import signature
from appliance.errors import Forbidden, NotFound, PayloadTooLarge
from control_plane.routing import split
from control_plane.web import CpDep

__all__ = ["webhooks_meta", "data_deletion", "data_deletion_status", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1024 * 1024
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


@asgi("/webhooks/meta", copy_scope=False)
async def webhooks_meta(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET`` the handshake, ``POST`` a delivery (see the module docstring)."""
    method = scope["method"]  # type: ignore[typeddict-item]
    if method == "POST":
        await _receive_webhook(scope, receive, send)
    elif method == "GET":
        await _send_text(send, _verify_subscription(scope))
    elif method == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", b"GET, OPTIONS, POST")]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        raise MethodNotAllowedException(headers={"Allow": "GET, OPTIONS, POST"})


async def _send_text(send: Send, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [_TEXT, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _cp(scope: Scope) -> Any:
    return scope["litestar_app"].state.cp  # type: ignore[typeddict-item]


def _verify_subscription(scope: Scope) -> str:
    """Meta's handshake for the platform app: the bare challenge when mode and token match."""
    params = ASGIConnection(scope).query_params  # type: ignore[var-annotated]
    expected = _cp(scope).platform.meta_verify_token
    token = params.get("hub.verify_token") or ""
    if (expected is not None and params.get("hub.mode") == "subscribe" and params.get("hub.challenge")
            and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())):
        return str(params["hub.challenge"])
    raise Forbidden("verification failed: hub.mode must be subscribe and hub.verify_token must match "
                    "AAT_META_VERIFY_TOKEN", code="verification_failed")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The raw body; 413 as soon as the announced or the received length passes 1 MiB."""
    announced = _header(scope, b"content-length")
    if announced is not None:
        try:
            length = int(announced)
        except ValueError:
            raise ClientException(f"Invalid content-length: {announced!r}") from None
        if length > MAX_BODY_BYTES:
            raise PayloadTooLarge("the delivery is larger than 1 MiB")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise PayloadTooLarge("the delivery is larger than 1 MiB")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")


async def _receive_webhook(scope: Scope, receive: Receive, send: Send) -> None:
    """Acknowledge a delivery once every tenant's part of it is durable."""
    cp = _cp(scope)
    try:
        body = await _read_body(scope, receive)
    except PayloadTooLarge:
        cp.metrics.webhooks_rejected.labels(reason="too_large").inc()
        raise
    if not signature.verify(body, _header(scope, b"x-hub-signature-256"), cp.platform.secrets()):
        cp.metrics.webhooks_rejected.labels(reason="signature").inc()
        raise Forbidden("X-Hub-Signature-256 is missing or does not match the body", code="invalid_signature")
    try:
        delivery = split.split(body)
    except Exception:
        cp.metrics.webhooks_rejected.labels(reason="not_json").inc()
        raise
    await cp.router.accept(delivery)
    cp.metrics.webhooks_received.inc()
    await _send_text(send, "EVENT_RECEIVED")


@post("/data-deletion", status_code=200, request_max_body_size=16 * 1024)
async def data_deletion(cp: CpDep, data: URLEncodedBody[dict[str, str]]) -> dict[str, str]:
    """Meta's data-deletion callback for the platform app: forwarded, re-signed, to every tenant
    that saw this user; answers ``{"url", "confirmation_code"}``."""
    return await cp.deletions.receive(data.get("signed_request", ""))


@get("/data-deletion/{code:str}", media_type="text/html")
async def data_deletion_status(code: Annotated[str, PathParameter(pattern=r"^[A-Z0-9]{20}$")], cp: CpDep) -> str:
    """The status page Meta links the person to."""
    row = await cp.deletions.status(code)
    if row is None:
        raise NotFound("no deletion request has this confirmation code")
    return (f"<!doctype html><meta charset=utf-8><title>Data deletion request {code}</title>"
            f"<h1>Data deletion request</h1><p>Confirmation code: <code>{code}</code></p>"
            f"<p>Received {row['received_at']}. It was passed on to {row['tenants']} business workspace(s) "
            "that held conversations with you; each erases your contact and messages.</p>")
