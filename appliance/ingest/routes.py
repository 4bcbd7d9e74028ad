"""``/webhooks/meta``: the handshake, and deliveries verified, journaled, acknowledged.

POST order of work, and why: read the raw bytes (413 over 1 MiB) -> verify
``X-Hub-Signature-256`` on those exact bytes (403; nothing stored, a counter counts it) ->
check the body is a JSON object (400) -> commit it to the journal -> 200. Parsing and
everything else happens after, from the journal (appliance.ingest.processor).

The path is one raw ASGI route (Litestar's ``@asgi``): every reply starts with a delivery here,
and Litestar's per-request work for a regular handler (signature model, dependency injection,
``Request`` and ``Response`` objects) cost more CPU than the handler's own work. The app's
middleware (access log) and exception handlers still apply, so refusals are the same JSON
errors, and the wire behaviour of every method is what the two regular handlers gave: GET the
handshake, POST a delivery, OPTIONS 204 (``Allow: GET, OPTIONS``), anything else 405 with
``Allow: GET, OPTIONS, POST``. The route is not listed in ``/schema`` (raw ASGI routes are not).
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar import asgi
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    ClientException,
    InternalServerException,
    MethodNotAllowedException,
)
from litestar.types import Receive, Scope, Send

from appliance.channels import signature
from appliance.errors import BadRequest, Forbidden, PayloadTooLarge
from appliance.ingest import journal
from appliance.metrics import WEBHOOK_OBJECTS
from appliance.timeutil import iso_now

__all__ = ["MAX_BODY_BYTES", "webhooks_meta"]

MAX_BODY_BYTES = 1024 * 1024

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class _Envelope(msgspec.Struct):
    # Any: a JSON object whose ``object`` is not a string is still journaled (the processor
    # records it as a problem); only a body that is not a JSON object at all is refused.
    object: Any = ""


@asgi("/webhooks/meta", copy_scope=False)
async def webhooks_meta(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET`` the handshake, ``POST`` a delivery (see the module docstring)."""
    method = scope["method"]  # type: ignore[typeddict-item]
    if method == "POST":
        await _receive_webhook(scope, receive, send)
    elif method == "GET":
        await _send_text(send, _verify_subscription(scope))
    elif method == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", b"GET, OPTIONS")]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        raise MethodNotAllowedException(headers={"Allow": "GET, OPTIONS, POST"})


async def _send_text(send: Send, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [_TEXT, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _verify_subscription(scope: Scope) -> str:
    """Meta's verification handshake: the ``hub.challenge`` to echo when mode and token match."""
    params = ASGIConnection(scope).query_params  # type: ignore[var-annotated]
    expected = scope["litestar_app"].state.runtime.settings.meta_verify_token  # type: ignore[typeddict-item]
    token = params.get("hub.verify_token") or ""
    if (
        expected is not None
        and params.get("hub.mode") == "subscribe"
        and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
        and params.get("hub.challenge")
    ):
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
    """Acknowledge a delivery once its raw body is durable."""
    runtime = scope["litestar_app"].state.runtime  # type: ignore[typeddict-item]
    metrics = runtime.metrics
    try:
        body = await _read_body(scope, receive)
    except PayloadTooLarge:
        metrics.webhooks_rejected.labels(reason="too_large").inc()
        raise
    secrets = runtime.settings.app_secrets()
    if not signature.verify(body, _header(scope, b"x-hub-signature-256"), secrets):
        metrics.webhooks_rejected.labels(reason="signature").inc()
        raise Forbidden(
            "X-Hub-Signature-256 is missing or does not match the body"
            + ("" if secrets else " (AAT_META_APP_SECRET is not set)"),
            code="invalid_signature",
        )
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        metrics.webhooks_rejected.labels(reason="not_json").inc()
        raise BadRequest("the body is not a JSON object", code="invalid_json") from exc
    await runtime.db.write(journal.append, body, iso_now())
    metrics.webhooks_received.labels(
        object=envelope.object if isinstance(envelope.object, str) and envelope.object in WEBHOOK_OBJECTS
        else "other"
    ).inc()
    if runtime.processor is not None:
        runtime.processor.wake()
    await _send_text(send, "EVENT_RECEIVED")
