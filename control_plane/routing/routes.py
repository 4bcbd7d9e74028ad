"""``/webhooks/meta`` of the platform app, and its data-deletion callback.

POST order of work: raw bytes (413 over 1 MiB) -> ``X-Hub-Signature-256`` with the platform
app secret on those exact bytes (403, nothing stored) -> split by asset (400 when it is not a
delivery) -> journal per tenant, durably -> 200. Nothing here waits for a tenant.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.exceptions import ClientException
from litestar.params import PathParameter, URLEncodedBody

from appliance.channels import signature
from appliance.errors import Forbidden, NotFound, PayloadTooLarge
from control_plane.routing import split
from control_plane.web import CpDep

__all__ = ["verify_subscription", "receive_webhook", "data_deletion", "data_deletion_status", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1024 * 1024


@get("/webhooks/meta", media_type="text/plain", sync_to_thread=False)
def verify_subscription(request: Request[Any, Any, Any], cp: CpDep) -> Response[str]:
    """Meta's handshake for the platform app: the bare challenge when mode and token match."""
    params = request.query_params
    expected = cp.platform.meta_verify_token
    token = params.get("hub.verify_token") or ""
    if (expected is not None and params.get("hub.mode") == "subscribe" and params.get("hub.challenge")
            and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())):
        return Response(params["hub.challenge"], media_type="text/plain")
    raise Forbidden("verification failed: hub.mode must be subscribe and hub.verify_token must match "
                    "AAT_META_VERIFY_TOKEN", code="verification_failed")


@post("/webhooks/meta", request_max_body_size=MAX_BODY_BYTES, status_code=200, media_type="text/plain")
async def receive_webhook(request: Request[Any, Any, Any]) -> str:
    """Acknowledge a delivery once every tenant's part of it is durable. (The control plane is
    taken from the app's state, not injected: the hottest route skips dependency resolution.)"""
    cp = request.app.state.cp
    try:
        body = await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            cp.metrics.webhooks_rejected.labels(reason="too_large").inc()
            raise PayloadTooLarge("the delivery is larger than 1 MiB") from exc
        raise
    if not signature.verify(body, request.headers.get("x-hub-signature-256"), cp.platform.secrets()):
        cp.metrics.webhooks_rejected.labels(reason="signature").inc()
        raise Forbidden("X-Hub-Signature-256 is missing or does not match the body", code="invalid_signature")
    try:
        delivery = split.split(body)
    except Exception:
        cp.metrics.webhooks_rejected.labels(reason="not_json").inc()
        raise
    await cp.router.accept(delivery)
    cp.metrics.webhooks_received.inc()
    return "EVENT_RECEIVED"


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
