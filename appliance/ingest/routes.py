"""``/webhooks/meta``: the handshake, and deliveries verified, journaled, acknowledged.

POST order of work, and why: read the raw bytes (413 over 1 MiB) -> verify
``X-Hub-Signature-256`` on those exact bytes (403; nothing stored, a counter counts it) ->
check the body is a JSON object (400) -> commit it to the journal -> 200. Parsing and
everything else happens after, from the journal (appliance.ingest.processor).
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import ClientException

from appliance.web.api import RuntimeDep
from appliance.channels import signature
from appliance.errors import BadRequest, Forbidden, PayloadTooLarge
from appliance.ingest import journal
from appliance.metrics import WEBHOOK_OBJECTS
from appliance.timeutil import iso_now

__all__ = ["verify_subscription", "receive_webhook", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1024 * 1024


class _Envelope(msgspec.Struct):
    # Any: a JSON object whose ``object`` is not a string is still journaled (the processor
    # records it as a problem); only a body that is not a JSON object at all is refused.
    object: Any = ""


@get("/webhooks/meta", media_type="text/plain", include_in_schema=True, sync_to_thread=False)
def verify_subscription(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[str]:
    """Meta's verification handshake: echo ``hub.challenge`` when mode and token match."""
    params = request.query_params
    expected = runtime.settings.meta_verify_token
    token = params.get("hub.verify_token") or ""
    if (
        expected is not None
        and params.get("hub.mode") == "subscribe"
        and hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
        and params.get("hub.challenge")
    ):
        return Response(params["hub.challenge"], media_type="text/plain", status_code=200)
    raise Forbidden("verification failed: hub.mode must be subscribe and hub.verify_token must match "
                    "AAT_META_VERIFY_TOKEN", code="verification_failed")


@post("/webhooks/meta", request_max_body_size=MAX_BODY_BYTES, status_code=200, media_type="text/plain")
async def receive_webhook(request: Request[Any, Any, Any], runtime: RuntimeDep) -> str:
    """Acknowledge a delivery once its raw body is durable."""
    metrics = runtime.metrics
    try:
        body = await request.body()
    except ClientException as exc:
        if exc.status_code == 413:
            metrics.webhooks_rejected.labels(reason="too_large").inc()
            raise PayloadTooLarge("the delivery is larger than 1 MiB") from exc
        raise
    secrets = runtime.settings.app_secrets()
    if not signature.verify(body, request.headers.get("x-hub-signature-256"), secrets):
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
    return "EVENT_RECEIVED"
