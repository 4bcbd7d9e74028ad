"""``/webhooks/meta``: the handshake, and deliveries verified, journaled, acknowledged.

POST order of work, and why: read the raw bytes (413 over 1 MiB) -> verify
``X-Hub-Signature-256`` on those exact bytes (403; nothing stored, a counter counts it) ->
check the body is a JSON object (400) -> commit it to the journal -> 200. Parsing and
everything else happens after, from the journal (appliance.ingest.processor).

The path is one raw ASGI route (``appliance.channels.webhook_route``, shared with the control
plane's router: every reply starts with a delivery here). The wire behaviour of every method is
what the two regular handlers before it gave: GET the handshake, POST a delivery, OPTIONS 204
(``Allow: GET, OPTIONS``), anything else 405 with ``Allow: GET, OPTIONS, POST``. The route is not
listed in ``/schema`` (raw ASGI routes are not).
"""

from typing import Any

import msgspec
from litestar import asgi
from litestar.types import Receive, Scope, Send

from appliance.channels import signature, webhook_route
from appliance.errors import BadRequest, Forbidden
from appliance.ingest import journal
from appliance.metrics import WEBHOOK_OBJECTS
from appliance.timeutil import iso_now

__all__ = ["MAX_BODY_BYTES", "webhooks_meta"]

MAX_BODY_BYTES = webhook_route.MAX_BODY_BYTES


class _Envelope(msgspec.Struct):
    # Any: a JSON object whose ``object`` is not a string is still journaled (the processor
    # records it as a problem); only a body that is not a JSON object at all is refused.
    object: Any = ""


@asgi("/webhooks/meta", copy_scope=False)
async def webhooks_meta(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET`` the handshake, ``POST`` a delivery (see the module docstring)."""
    runtime = scope["litestar_app"].state.runtime  # type: ignore[typeddict-item]
    await webhook_route.serve(
        scope, receive, send, accept=_accept, verify_token=runtime.settings.meta_verify_token,
        on_too_large=lambda: runtime.metrics.webhooks_rejected.labels(reason="too_large").inc(),
        options_allow=b"GET, OPTIONS",
    )


async def _accept(scope: Scope, body: bytes) -> None:
    """Verify the raw body's signature, check it is a JSON object, and journal it durably."""
    runtime = scope["litestar_app"].state.runtime  # type: ignore[typeddict-item]
    metrics = runtime.metrics
    secrets = runtime.settings.app_secrets()
    if not signature.verify(body, webhook_route.header(scope, b"x-hub-signature-256"), secrets):
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
