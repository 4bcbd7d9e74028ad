"""``/webhooks/meta`` of the platform app, and its data-deletion callback.

POST order of work: raw bytes (413 over 1 MiB) -> ``X-Hub-Signature-256`` with the platform
app secret on those exact bytes (403, nothing stored) -> split by asset (400 when it is not a
delivery) -> journal per tenant, durably -> 200. Nothing here waits for a tenant.

``/webhooks/meta`` is one raw ASGI route (``appliance.channels.webhook_route``, as the
appliance's: it is the router's hottest path). Methods: GET the handshake, POST a delivery,
OPTIONS 204, anything else 405 with ``Allow: GET, OPTIONS, POST``. The route is not listed in
``/schema`` (raw ASGI routes are not).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import asgi, get, post
from litestar.params import PathParameter, URLEncodedBody
from litestar.types import Receive, Scope, Send

from appliance.channels import signature, webhook_route
from appliance.errors import Forbidden, NotFound
from control_plane.routing import split
from control_plane.web import CpDep

__all__ = ["webhooks_meta", "data_deletion", "data_deletion_status", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = webhook_route.MAX_BODY_BYTES


@asgi("/webhooks/meta", copy_scope=False)
async def webhooks_meta(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET`` the handshake, ``POST`` a delivery (see the module docstring)."""
    cp = _cp(scope)
    await webhook_route.serve(
        scope, receive, send, accept=_accept, verify_token=cp.platform.meta_verify_token,
        on_too_large=lambda: cp.metrics.webhooks_rejected.labels(reason="too_large").inc(),
    )


def _cp(scope: Scope) -> Any:
    return scope["litestar_app"].state.cp  # type: ignore[typeddict-item]


async def _accept(scope: Scope, body: bytes) -> None:
    """Verify the raw body with the platform app's secret, split it by asset, and journal every
    tenant's part durably."""
    cp = _cp(scope)
    if not signature.verify(body, webhook_route.header(scope, b"x-hub-signature-256"), cp.platform.secrets()):
        cp.metrics.webhooks_rejected.labels(reason="signature").inc()
        raise Forbidden("X-Hub-Signature-256 is missing or does not match the body", code="invalid_signature")
    try:
        delivery = split.split(body)
    except Exception:
        cp.metrics.webhooks_rejected.labels(reason="not_json").inc()
        raise
    await cp.router.accept(delivery)
    cp.metrics.webhooks_received.inc()


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
