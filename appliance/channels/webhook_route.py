"""Meta's ``/webhooks/meta`` as one raw ASGI route: the HTTP side shared by the appliance
(``appliance.ingest.routes``) and the control plane's router (``control_plane.routing.routes``).

Both serve the path with Litestar's ``@asgi`` rather than regular handlers: every delivery
passes here, and Litestar's per-request work (signature model, dependency injection, ``Request``
and ``Response`` objects) cost more CPU than verifying and journaling it (BENCHMARKS.md). The
app's middleware and exception handlers still apply, so a refusal raised here is the app's usual
JSON error. The module does not import Litestar: the appliance's front door
(``appliance.web.front``) serves the path with it while the app is still being built, and
renders the same errors itself.

Contract of :func:`serve`:

- ``POST``: ``accept(scope, body)`` with the raw body, read whole, 413 (``PayloadTooLarge``) as
  soon as the announced or received length passes :data:`MAX_BODY_BYTES` (``on_too_large`` is
  called first, for the caller's counter), 400 for a non-numeric ``Content-Length``; then
  ``200 EVENT_RECEIVED`` (text/plain) once ``accept`` returns. ``accept`` verifies the signature
  on those bytes and makes the delivery durable; whatever it raises is the answer. A client that
  disconnects before its body is in gets no answer and nothing is accepted.
- ``GET``: Meta's verification handshake: the bare ``hub.challenge`` (200, text/plain) when
  ``hub.mode`` is ``subscribe`` and ``hub.verify_token`` equals ``verify_token`` (compared in
  constant time), otherwise 403 ``verification_failed``.
- ``OPTIONS``: 204 with ``Allow: options_allow``; any other method 405 with
  ``Allow: GET, OPTIONS, POST``.

Refusals are raised as :mod:`appliance.errors` (``BadRequest``, ``Forbidden``,
``MethodNotAllowed``, ``PayloadTooLarge``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from appliance.errors import BadRequest, Forbidden, MethodNotAllowed, PayloadTooLarge

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send
    from pydantic import SecretStr

__all__ = ["MAX_BODY_BYTES", "header", "serve"]

MAX_BODY_BYTES = 1024 * 1024

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


async def serve(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    accept: Callable[[Scope, bytes], Awaitable[None]],
    verify_token: SecretStr | None,
    on_too_large: Callable[[], None],
    options_allow: bytes = b"GET, OPTIONS, POST",
) -> None:
    """Answer one request to ``/webhooks/meta`` (see the module docstring)."""
    method = scope["method"]  # type: ignore[typeddict-item]
    if method == "POST":
        try:
            body = await _read_body(scope, receive)
        except PayloadTooLarge:
            on_too_large()
            raise
        except _Disconnected:
            return  # nobody to answer; the server does not answer for us either
        await accept(scope, body)
        await _send_text(send, "EVENT_RECEIVED")
    elif method == "GET":
        await _send_text(send, _handshake(scope, verify_token))
    elif method == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", options_allow)]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        raise MethodNotAllowed("GET, OPTIONS, POST")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower-case bytes), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_text(send: Send, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [_TEXT, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Disconnected(Exception):
    """The client went away before its body was in."""


def _query(scope: Scope) -> dict[str, str]:
    """The query parameters, the first value of each."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _handshake(scope: Scope, expected: SecretStr | None) -> str:
    params = _query(scope)
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


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    announced = header(scope, b"content-length")
    if announced is not None:
        try:
            length = int(announced)
        except ValueError:
            raise BadRequest("the Content-Length header is not a number of bytes") from None
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
            raise _Disconnected
